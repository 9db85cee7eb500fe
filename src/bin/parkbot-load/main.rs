//! parkbot-load: the load tool. Measures durably committed dialog steps per
//! second through the real bot core and store, and writes the synthetic
//! knowledge used by the benchmarks. Everything stays on this machine.
//!
//!   parkbot-load dialog --users 1,10,100 --seconds 5
//!   parkbot-load answers --count 20000
//!   parkbot-load knowledge > synthetic-10k.toml

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use parkbot::bot::{Bot, Identity, Inbound};

mod outbox;
mod synthetic;
mod wechat;

/// A folder under the system's temporary folder, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("parkbot-load-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }

    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().enable_all().build()?)
}

#[derive(Parser)]
#[command(
    name = "parkbot-load",
    about = "Load tool for parkbot: dialog throughput and synthetic knowledge"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run sign-up dialogs with N concurrent users; report durably committed steps per second
    Dialog {
        /// Concurrent users, one run per value (comma-separated)
        #[arg(long, value_delimiter = ',', default_value = "1,10,100")]
        users: Vec<usize>,
        /// Seconds per run
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Store file (default: a new file in a temporary folder per run)
        #[arg(long)]
        db: Option<PathBuf>,
    },
    /// Answer latency over the synthetic 10,000-entry knowledge: questions of
    /// every kind in both languages from many identities, one at a time
    Answers {
        /// Questions to ask in all
        #[arg(long, default_value_t = 20_000)]
        count: usize,
        /// Let a question asked again use what the bot understood it as
        /// the first time (by default every question is read and ranked
        /// anew, as a question never asked before would be)
        #[arg(long)]
        again: bool,
    },
    /// Write the synthetic 10,000-entry knowledge file (TOML) to stdout
    Knowledge,
    /// Benchmark `parkbot serve`'s WeChat endpoint against a bare axum
    /// handler (the ceiling), in one run: throughput, p50/p99, p99 at a
    /// fixed rate (open loop), RSS idle and loaded, and safe mode
    Wechat {
        /// The parkbot binary to serve
        #[arg(long, default_value = "target/release/parkbot")]
        parkbot: PathBuf,
        /// Concurrent clients in the closed-loop runs
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Seconds per measured run
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Distinct senders (openids)
        #[arg(long, default_value_t = 100_000)]
        senders: u64,
        /// Messages per second of the open-loop run
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Rounds in which the plain run and the ceiling take turns (each
        /// gets `seconds` in all), so that drift in the machine's speed
        /// weighs on both alike
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Also measure a typical Python deployment under the same load:
        /// the directory of its `app.py` (tools/python-wechat; needs
        /// gunicorn and Flask installed)
        #[arg(long)]
        python: Option<PathBuf>,
        /// How the Python comparison is served
        #[arg(long, value_enum, default_value = "gunicorn")]
        python_server: wechat::PythonServer,
    },
    /// The outbox against a mock Telegram Bot API in this process: its
    /// throughput with durable state updates (limits raised), then the rate
    /// it keeps under a configured limit
    Outbox {
        /// Recipients of the throughput run
        #[arg(long, default_value_t = 10_000)]
        recipients: usize,
        /// The configured limit of the rate run (messages per second)
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Seconds of the rate run
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// The bare axum handler used as the ceiling (started by `wechat`)
    #[command(hide = true)]
    Ceiling {
        #[arg(long)]
        listen: std::net::SocketAddr,
    },
}

const EVENT: &str = r#"
[[event]]
id = "load-forum"
title = { zh = "压测论坛", en = "Load Test Forum" }
starts_at = "2030-01-01T09:00:00+08:00"
"#;

/// One sign-up: six steps, the last one a registration.
const STEPS: &[&str] = &["报名", "1", "压测用户", "压测公司", "13812345678", "是"];

/// The same allocator as `parkbot` (see src/main.rs), so that the ceiling
/// and the load itself are measured on equal terms.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Answers { count, again } => answers(count, again),
        Command::Wechat {
            parkbot,
            concurrency,
            seconds,
            senders,
            rate,
            rounds,
            python,
            python_server,
        } => runtime()?.block_on(wechat::bench(
            parkbot,
            concurrency,
            seconds,
            senders,
            rate,
            rounds,
            python.map(|p| (p, python_server)),
        )),
        Command::Ceiling { listen } => runtime()?.block_on(wechat::ceiling(listen)),
        Command::Outbox {
            recipients,
            limit,
            seconds,
        } => runtime()?.block_on(outbox::bench(recipients, limit, seconds)),
        Command::Knowledge => {
            print!("{}", synthetic::knowledge_10k());
            Ok(())
        }
        Command::Dialog { users, seconds, db } => {
            println!("users  steps  seconds  steps/s  p50_ms  p99_ms  sign-ups");
            for n in users {
                let dir = TempDir::new()?;
                let path = db.clone().unwrap_or_else(|| dir.path().join("load.redb"));
                run(n, Duration::from_secs(seconds), &path)?;
            }
            Ok(())
        }
    }
}

fn answers(count: usize, again: bool) -> Result<()> {
    let dir = TempDir::new()?;
    let text = synthetic::knowledge_10k();
    let bot = Arc::new(synthetic::bot(
        &dir.path().join("answers.redb"),
        &text,
        parkbot::bot::system_clock(),
    )?);
    let rt = runtime()?;
    let entries = bot.brain().knowledge.len();
    let mut times = Vec::with_capacity(count);
    let mut by_question = vec![Vec::new(); synthetic::QUESTIONS.len()];
    for i in 0..count {
        let msg = Inbound::text(
            Identity::console(&format!("asker-{}", i % 100)),
            synthetic::QUESTIONS[(i / 100) % synthetic::QUESTIONS.len()],
        );
        if !again {
            bot.brain().forget_understood();
        }
        let t = Instant::now();
        rt.block_on(bot.handle(msg));
        times.push(t.elapsed());
        by_question[(i / 100) % synthetic::QUESTIONS.len()].push(t.elapsed());
    }
    for (q, mut t) in synthetic::QUESTIONS.iter().zip(by_question) {
        t.sort();
        eprintln!("p50 {:>8.1} us  {q}", t[t.len() / 2].as_secs_f64() * 1e6);
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1e6;
    println!("entries  questions  p50_us  p90_us  p99_us  max_us");
    println!(
        "{:>7}  {count:>9}  {:>6.1}  {:>6.1}  {:>6.1}  {:>6.1}",
        entries,
        pct(0.5),
        pct(0.9),
        pct(0.99),
        times.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
    );
    Ok(())
}

fn bot(path: &std::path::Path) -> Result<Arc<Bot>> {
    let now = time::macros::datetime!(2026-11-28 12:00 +08:00);
    Ok(Arc::new(synthetic::bot(path, EVENT, Arc::new(move || now))?))
}

/// `users` concurrent people, each signing up again and again through the
/// bot's async entry point (as a channel would call it).
fn run(users: usize, duration: Duration, path: &std::path::Path) -> Result<()> {
    let bot = bot(path).context("open the store")?;
    let rt = runtime()?;
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|u| {
            let (bot, stop) = (bot.clone(), stop.clone());
            rt.spawn(async move {
                let mut latencies = Vec::new();
                let mut round = 0;
                while !stop.load(Ordering::Relaxed) {
                    // A fresh identity per sign-up: each one registers.
                    let identity = Identity::console(&format!("load-{u}-{round}"));
                    for text in STEPS {
                        let t = Instant::now();
                        bot.handle(Inbound::text(identity.clone(), *text)).await;
                        latencies.push(t.elapsed());
                    }
                    round += 1;
                }
                latencies
            })
        })
        .collect();
    std::thread::sleep(duration);
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for t in tasks {
        all.extend(rt.block_on(t).map_err(|_| anyhow::anyhow!("a load task panicked"))?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let signups = bot.store().registrations(Some("load-forum"))?.len();
    println!(
        "{users:>5}  {:>5}  {elapsed:>7.2}  {:>7.0}  {:>6.2}  {:>6.2}  {signups:>8}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99)
    );
    Ok(())
}
