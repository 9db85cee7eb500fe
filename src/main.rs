//! The `parkbot` command: parses arguments, loads the configuration, sets up
//! logging, and hands over to the library. It only wires.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use parkbot::app::{self, App, export};
use parkbot::bot::{Clock, system_clock};
use parkbot::channels::console::Console;
use parkbot::config::Config;

const ABOUT: &str = "The chat bot of the Shougang Sci-Fi Industry Cluster (首钢科幻产业集聚区).

Answers questions about the park's enterprises, fields, events and services in
Chinese and English, from knowledge kept in one redb store file.";

const AFTER: &str = "Examples:
  parkbot serve                         web chat at http://127.0.0.1:8080/ (WeChat, Telegram when configured)
  parkbot chat                          talk to the bot in the terminal
  parkbot ask 有哪些视频特效企业？      one question, one answer
  parkbot import data/park.toml         load knowledge (TOML or JSON)
  parkbot export knowledge > all.toml   write all knowledge back out
  parkbot export registrations --event web3-forum > web3.csv
  parkbot check                         validate configuration, dialogs, seed knowledge
  parkbot announce --audience all --text \"园区今晚8点闭园\"   queue an announcement
  parkbot export misses                 questions the bot could not answer, grouped
  parkbot explain 晚上能进园区吗         why a question is answered the way it is

Configuration: --config FILE, else config/default.toml in the current folder,
else the built-in default. Any key can be set from the environment as
PARKBOT_<SECTION>__<KEY>, e.g. PARKBOT_STORE__PATH=/var/lib/parkbot.redb.
Logging: RUST_LOG=info (or debug, …) on stderr; [log] format = \"json\" for JSON.";

#[derive(Parser)]
#[command(name = "parkbot", version, about = ABOUT, after_help = AFTER)]
struct Cli {
    /// Configuration file [default: config/default.toml, else built in]
    #[arg(long, global = true, env = "PARKBOT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// The redb store file; overrides [store] path
    #[arg(long, global = true, env = "PARKBOT_DB", value_name = "FILE")]
    db: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the bot: the HTTP server (web chat at /, WeChat at /wechat,
    /// Telegram by polling or at /telegram, admin API, /metrics, /healthz)
    /// with every enabled channel, and the outbox's deliveries; Ctrl-C or
    /// SIGTERM stops it cleanly
    Serve {
        /// Address to listen on [default: [server] listen, 127.0.0.1:8080]
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Talk to the bot in the terminal, one message a line
    Chat {
        /// Console user name; the identity is console:NAME
        #[arg(long, default_value = "local")]
        user: String,
    },
    /// Send one message, print the replies and exit ("/start PAYLOAD" opens
    /// the bot as a deep link would, e.g. "/start signup:web3-forum")
    Ask {
        /// Console user name; the identity is console:NAME
        #[arg(long, default_value = "local")]
        user: String,
        /// The message (several words are joined with spaces)
        #[arg(required = true, value_name = "TEXT")]
        text: Vec<String>,
    },
    /// Load knowledge files (TOML or JSON by extension), all-or-nothing
    Import {
        /// First remove all knowledge that is not in the files (says how
        /// many items go; refuses to empty the knowledge or to remove an
        /// event with registrations unless --force)
        #[arg(long)]
        replace: bool,
        /// With --replace: remove even when that empties the knowledge or
        /// drops events that have registrations
        #[arg(long, requires = "replace")]
        force: bool,
        /// Knowledge files
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Write data out to stdout
    #[command(subcommand)]
    Export(Export),
    /// Validate configuration, dialogs and the seed knowledge; exit 1 on problems
    Check,
    /// Queue an announcement to subscribers: on the store (the next `serve`
    /// delivers it), or with --server through a running server's admin API,
    /// following delivery with a progress bar until done
    Announce {
        /// Who gets it: all, event:ID (confirmed registrants) or channel:NAME
        #[arg(long, value_name = "AUDIENCE")]
        audience: String,
        /// The text (or give it as the last arguments)
        #[arg(long, value_name = "TEXT")]
        text: Option<String>,
        /// A running server, e.g. http://127.0.0.1:8080; the token comes
        /// from [staff] admin_token / $PARKBOT_STAFF__ADMIN_TOKEN
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// With --server: queue it and return without following delivery
        #[arg(long, requires = "server")]
        no_follow: bool,
        /// The text, when --text is not given
        #[arg(value_name = "TEXT")]
        words: Vec<String>,
    },
    /// Show how a question is read (words, concepts, fields, time), how the
    /// knowledge ranks for it, and why it missed when it did
    Explain {
        /// The question
        #[arg(required = true, value_name = "TEXT")]
        text: Vec<String>,
    },
}

#[derive(Subcommand)]
enum Export {
    /// All knowledge as TOML, in the import format
    Knowledge,
    /// Registrations: event_id,code,status,name,organization,phone,user,created_at
    Registrations {
        /// Only this event's registrations
        #[arg(long, value_name = "ID")]
        event: Option<String>,
        /// Output format
        #[arg(long, value_enum, default_value_t = Format::Csv)]
        format: Format,
    },
    /// Settle-in inquiries saved by the inquiry dialog (CSV)
    Inquiries,
    /// Entries of any form saved by a dialog's `save_form` action (CSV)
    Form {
        /// The form's name (`form = "…"` in the dialog file)
        name: String,
    },
    /// Each recipient of an announcement with its delivery state and
    /// reason: announcement,recipient,channel,state,attempts,reason,updated_at
    Deliveries {
        /// The announcement's id
        #[arg(long, value_name = "ID")]
        announcement: u64,
    },
    /// Questions the bot could not answer (the fallback, or a weak
    /// answer), grouped by similar wording, the largest group first
    Misses {
        /// Output format: readable text, or CSV
        /// (count,question,other_wordings,kind,languages,channels,first_seen,last_seen)
        #[arg(long, value_enum, default_value_t = MissFormat::Text)]
        format: MissFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum MissFormat {
    Text,
    Csv,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Csv,
    Json,
}

mod announce;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        // Output piped into `head` and the like: not an error.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `parkbot serve`: the server until Ctrl-C or SIGTERM, then the store is
/// closed (after the requests in flight).
fn serve(app: App, listen: Option<std::net::SocketAddr>) -> Result<()> {
    let addr = match listen {
        Some(a) => a,
        None => app.config.server.listen.parse().context("[server] listen")?,
    };
    let mut bot = app.bot(clock()?)?;
    bot.serving(&app.config);
    let bot = Arc::new(bot);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let (router, statuses, shared) = parkbot::server::router(bot.clone(), app.config.clone());
        println!("parkbot serving on http://{}/", listener.local_addr()?);
        for s in &statuses {
            println!("  {s}");
        }
        println!("  store: {}", app.store.path().display());
        println!("Ctrl-C to stop.");
        parkbot::server::run(listener, router, shared, parkbot::server::shutdown_signal()).await?;
        anyhow::Ok(())
    })?;
    // Tasks left past the drain are dropped with the runtime; the store
    // closes (its writer flushes) when the last handle on it goes.
    drop(rt);
    drop(bot);
    let path = app.store.path().to_path_buf();
    drop(app);
    println!("stopped; {} is closed.", path.display());
    Ok(())
}

/// The configuration file: --config, else ./config/default.toml, else built in.
fn load_config(flag: Option<&Path>) -> Result<Config> {
    let env = std::env::vars();
    let local = Path::new("config/default.toml");
    let file = flag.or_else(|| local.exists().then_some(local));
    Ok(Config::load(file, env)?)
}

/// The clock: `PARKBOT_NOW` (RFC 3339) pins it, for demos and tests.
fn clock() -> Result<Clock> {
    match std::env::var("PARKBOT_NOW") {
        Ok(s) if !s.is_empty() => {
            let t = OffsetDateTime::parse(&s, &Rfc3339)
                .with_context(|| format!("PARKBOT_NOW={s:?} is not an RFC 3339 time"))?;
            Ok(Arc::new(move || t))
        }
        _ => Ok(system_clock()),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let config = load_config(cli.config.as_deref())?;
    parkbot::logging::init(
        config.log.format == "json",
        std::env::var("RUST_LOG").ok().as_deref(),
        "warn",
    );
    tracing::debug!(config = ?config, "configuration loaded");
    let db = cli.db.as_deref();
    match cli.command {
        Command::Check => {
            let app::Checked { problems, notes } = app::check(&config);
            for n in &notes {
                eprintln!("note: {n}");
            }
            if problems.is_empty() {
                println!(
                    "ok: configuration ({}), dialogs and seed knowledge are valid",
                    config.source
                );
                return Ok(ExitCode::SUCCESS);
            }
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) found", problems.len());
            Ok(ExitCode::FAILURE)
        }
        Command::Serve { listen } => {
            let app = App::open(config, db)?;
            serve(app, listen)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ask { user, text } => {
            let app = App::open(config, db)?;
            let console = Console::new(Arc::new(app.bot(clock()?)?), &user)?;
            console.ask(&text.join(" "), &mut std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Chat { user } => {
            let app = App::open(config, db)?;
            let console = Console::new(Arc::new(app.bot(clock()?)?), &user)?;
            console.chat()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { replace, force, files } => {
            let app = App::open(config, db)?;
            let stats = app.import(&files, replace, force)?;
            eprintln!(
                "imported into {}: {} added, {} updated, {} unchanged, {} removed{}",
                app.store.path().display(),
                stats.added,
                stats.updated,
                stats.unchanged,
                stats.removed,
                if stats.promoted > 0 {
                    format!(", {} moved up from waiting lists (notices queued)", stats.promoted)
                } else {
                    String::new()
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Announce {
            audience,
            text,
            server,
            no_follow,
            words,
        } => {
            let text = match text {
                Some(t) if words.is_empty() => t,
                Some(_) => anyhow::bail!("give the text either with --text or as arguments, not both"),
                None if words.is_empty() => anyhow::bail!("the announcement's text is missing (--text TEXT)"),
                None => words.join(" "),
            };
            let audience =
                parkbot::store::Audience::parse(&audience).map_err(|e| anyhow::anyhow!("--audience: {e}"))?;
            match server {
                Some(url) => announce::through_server(&url, &config.staff.admin_token, &audience, &text, !no_follow),
                None => {
                    let app = App::open(config, db)?;
                    let now = (clock()?)().unix_timestamp();
                    let a = app.store.announce(&audience, &text, "cli", now)?;
                    println!(
                        "announcement {} to {}: {} recipient(s) queued in {}; the next `parkbot serve` sends them",
                        a.id,
                        a.audience,
                        a.total,
                        app.store.path().display()
                    );
                    Ok(ExitCode::SUCCESS)
                }
            }
        }
        Command::Explain { text } => {
            let app = App::open(config, db)?;
            let bot = app.bot(clock()?)?;
            print!("{}", bot.explain(&text.join(" ")));
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(Export::Knowledge) => {
            let text = app::export_knowledge(config, db)?;
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(what) => {
            // Exports only read: the store is opened read-only.
            let app = App::open_read_only(config, db)?;
            let text = match what {
                Export::Knowledge => unreachable!("handled above"),
                Export::Registrations { event, format } => {
                    let regs = app.store.registrations(event.as_deref())?;
                    match format {
                        Format::Csv => export::registrations_csv(&regs),
                        Format::Json => export::registrations_json(&regs),
                    }
                }
                Export::Inquiries => export::form_csv(&app, "inquiries")?,
                Export::Deliveries { announcement } => {
                    if app.store.announcement(announcement)?.is_none() {
                        anyhow::bail!("there is no announcement {announcement}");
                    }
                    export::deliveries_csv(announcement, &app.store.deliveries(announcement)?)
                }
                Export::Form { name } => export::form_csv(&app, &name)?,
                Export::Misses { format } => {
                    let groups = export::group_misses(&app.store.misses()?);
                    match format {
                        MissFormat::Text => export::misses_text(&groups),
                        MissFormat::Csv => export::misses_csv(&groups),
                    }
                }
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
