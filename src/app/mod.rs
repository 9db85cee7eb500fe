//! Wiring shared by the commands: open the store named by the
//! configuration, seed it on first start, import knowledge files, load the
//! phrasebook, and check everything for `parkbot check`.

pub mod export;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Result, anyhow};
use indicatif::{ProgressBar, ProgressStyle};

use crate::assets;
use crate::bot::{Bot, Clock, Phrasebook, Settings};
use crate::config::{Config, DialogsConfig};
use crate::dialog::Dialogs;
use crate::knowledge::{Knowledge, KnowledgeError, ParsedFile, parse_file, parse_str, validate_references};
use crate::store::{ImportOptions, ImportStats, Store, StoreError};

/// Everything a command needs, opened once.
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
}

impl App {
    /// Opens the store (`db` overrides `[store] path`); a path that does
    /// not exist creates a new store.
    pub fn open(config: Config, db: Option<&Path>) -> Result<App> {
        let path = db.map(Path::to_path_buf).unwrap_or_else(|| config.store.path.clone());
        let store = Store::open(&path)?;
        Ok(App {
            config,
            store: Arc::new(store),
        })
    }

    /// Opens the store for reading only (exports): the file is not
    /// changed, and a read-only file can be read.
    ///
    /// A store left by a crash must be repaired first, which is a write:
    /// that one write is made (with a note on stderr), then it is read.
    pub fn open_read_only(config: Config, db: Option<&Path>) -> Result<App> {
        let path = db.map(Path::to_path_buf).unwrap_or_else(|| config.store.path.clone());
        let store = match Store::open_read_only(&path) {
            Err(StoreError::NeedsRepair { .. }) => {
                eprintln!(
                    "note: {} was not closed cleanly (a crash?); repairing it before reading",
                    path.display()
                );
                drop(Store::open(&path)?);
                Store::open_read_only(&path)?
            }
            other => other?,
        };
        Ok(App {
            config,
            store: Arc::new(store),
        })
    }

    /// How knowledge is imported: the promotion notice (for people a raised
    /// capacity gives a seat) is the `promoted` text of the dialog that
    /// cancels registrations.
    fn import_options(&self, replace: bool, force: bool) -> ImportOptions {
        let notice = load_dialogs(&self.config.dialogs)
            .ok()
            .and_then(|d| d.promotion_notice())
            .or_else(|| load_dialogs(&DialogsConfig::builtin()).ok()?.promotion_notice())
            .unwrap_or_default();
        ImportOptions {
            replace,
            force,
            promotion_notice: notice,
        }
    }

    /// Imports the configured seed knowledge into a store that never held
    /// any. Returns what was imported, if anything.
    pub fn seed(&self) -> Result<Option<ImportStats>> {
        if self.store.knowledge_loaded()? || self.config.knowledge.seed.is_empty() {
            return Ok(None);
        }
        let k = load_knowledge_files(&self.config.knowledge.seed, &HashSet::new())
            .map_err(|errs| anyhow!("seed knowledge is invalid:\n{}", join(&errs)))?;
        let stats = self.store.import(&k, &self.import_options(false, false))?;
        tracing::info!(items = k.len(), "seeded the store with the configured knowledge");
        Ok(Some(stats))
    }

    /// A bot over the (seeded) store.
    pub fn bot(&self, clock: Clock) -> Result<Bot> {
        self.seed()?;
        let dir = &self.config.dialogs;
        let phrases = load_phrasebook(dir).map_err(|p| anyhow!("{}", p.join("\n")))?;
        let dialogs = load_dialogs(dir).map_err(|p| anyhow!("{}", p.join("\n")))?;
        let c = &self.config;
        let settings = Settings {
            dialog_timeout_secs: c.dialogs.timeout_minutes as i64 * 60,
            max_message_chars: c.server.max_message_chars as usize,
            retry_window_secs: i64::from(c.server.retry_window_minutes) * 60,
            menu: c.wechat.menu.clone(),
            staff: c.staff.members.iter().cloned().collect(),
            ..Default::default()
        };
        Ok(Bot::new(self.store.clone(), phrases, dialogs, settings, clock)?)
    }

    /// Imports `files` all-or-nothing, with a progress bar on a terminal.
    /// `replace` removes what the files do not hold, but never empties the
    /// knowledge or removes an event with registrations unless `force`.
    pub fn import(&self, files: &[PathBuf], replace: bool, force: bool) -> Result<ImportStats> {
        let bar = ProgressBar::new(files.len() as u64 + 1);
        bar.set_style(
            ProgressStyle::with_template("{spinner} importing [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        let known = if replace {
            HashSet::new()
        } else {
            self.store.field_ids()?
        };
        let mut parsed = Vec::new();
        let mut errors = Vec::new();
        for f in files {
            bar.set_message(f.display().to_string());
            match read_knowledge_file(f) {
                Ok(p) => parsed.push(p),
                Err(e) => errors.push(e),
            }
            bar.inc(1);
        }
        if !errors.is_empty() {
            bar.finish_and_clear();
            return Err(anyhow!("nothing was imported:\n{}", join(&errors)));
        }
        let k = validate_references(parsed, &known).map_err(|errs| {
            bar.finish_and_clear();
            anyhow!("nothing was imported:\n{}", join(&errs))
        })?;
        bar.set_message("writing");
        let stats = self.store.import(&k, &self.import_options(replace, force));
        bar.inc(1);
        bar.finish_and_clear();
        Ok(stats?)
    }
}

/// All knowledge as TOML, without changing anything: the store's when it
/// holds knowledge (opened read-only), else the seed knowledge it would be
/// given on first start (no store file is created).
pub fn export_knowledge(config: Config, db: Option<&Path>) -> Result<String> {
    let path = db.map(Path::to_path_buf).unwrap_or_else(|| config.store.path.clone());
    if path.exists() {
        let app = App::open_read_only(config, db)?;
        if app.store.knowledge_loaded()? {
            return Ok(app.store.knowledge()?.to_toml());
        }
        let k = load_knowledge_files(&app.config.knowledge.seed, &HashSet::new())
            .map_err(|errs| anyhow!("seed knowledge is invalid:\n{}", join(&errs)))?;
        return Ok(k.to_toml());
    }
    let k = load_knowledge_files(&config.knowledge.seed, &HashSet::new())
        .map_err(|errs| anyhow!("seed knowledge is invalid:\n{}", join(&errs)))?;
    Ok(k.to_toml())
}

fn join(errs: &[KnowledgeError]) -> String {
    errs.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
}

/// Reads a knowledge file from disk, or its built-in copy.
fn read_knowledge_file(path: &Path) -> Result<ParsedFile, KnowledgeError> {
    match assets::builtin_knowledge(path) {
        Some(text) => parse_str(&format!("(built-in) {}", path.display()), text, false),
        None => parse_file(path),
    }
}

/// Parses and checks knowledge files (all problems, or the knowledge).
pub fn load_knowledge_files(
    files: &[PathBuf],
    known_fields: &HashSet<String>,
) -> std::result::Result<Knowledge, Vec<KnowledgeError>> {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match read_knowledge_file(f) {
            Ok(p) => parsed.push(p),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    validate_references(parsed, known_fields)
}

/// The files of the configured dialog folder (or the built-in ones when the
/// default folder does not exist). An explicitly configured folder that does
/// not exist is `dialogs.dir = "…": folder not found`.
fn dialog_files(dialogs: &DialogsConfig) -> std::result::Result<Vec<(String, String)>, Vec<String>> {
    let dir = &dialogs.dir;
    assets::dialog_files(dir, dialogs.dir_explicit).map_err(|e| {
        if e.get_ref().is_some_and(|inner| inner.is::<assets::FolderNotFound>()) {
            vec![format!("dialogs.dir = {:?}: {e}", dir.display().to_string())]
        } else {
            vec![format!("{}: {e}", dir.display())]
        }
    })
}

/// Loads `bot.toml` from the dialog folder (or the built-in one).
pub fn load_phrasebook(dialogs: &DialogsConfig) -> std::result::Result<Phrasebook, Vec<String>> {
    let files = dialog_files(dialogs)?;
    let (name, text) = files
        .iter()
        .find(|(n, _)| n.ends_with("bot.toml"))
        .ok_or_else(|| vec![format!("{}: bot.toml is missing", dialogs.dir.display())])?;
    Phrasebook::parse(name, text)
}

/// Loads and checks the dialog files of the folder (or the built-in ones).
pub fn load_dialogs(dialogs: &DialogsConfig) -> std::result::Result<Dialogs, Vec<String>> {
    Dialogs::load(&dialog_files(dialogs)?)
}

/// What `parkbot check` found: problems fail the check, notes do not.
#[derive(Debug, Default)]
pub struct Checked {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// Every problem in the configuration's dialogs, the concept lexicon and
/// the seed knowledge (with its own concepts; the configuration itself was
/// checked when it loaded), and what a
/// channel cannot carry: an event whose id does not fit a Telegram deep
/// link is a problem when Telegram is on, a note otherwise.
pub fn check(config: &Config) -> Checked {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    match dialog_files(&config.dialogs) {
        // A missing folder is said once, not once per loader.
        Err(p) => problems.extend(p),
        Ok(_) => {
            if let Err(p) = load_phrasebook(&config.dialogs) {
                problems.extend(p);
            }
            if let Err(p) = load_dialogs(&config.dialogs) {
                problems.extend(p);
            }
        }
    }
    if let Err(p) = crate::search::concepts::builtin() {
        problems.extend(p.iter().cloned());
    }
    match load_knowledge_files(&config.knowledge.seed, &HashSet::new()) {
        Err(errs) => problems.extend(errs.iter().map(ToString::to_string)),
        Ok(k) => {
            for e in &k.event {
                if let Err(why) = crate::channels::telegram::update::payload_for_link(&format!("signup:{}", e.id)) {
                    let line = format!("event {:?}: no Telegram sign-up link: {why}", e.id);
                    if config.telegram.enabled {
                        problems.push(line)
                    } else {
                        notes.push(line)
                    }
                }
            }
        }
    }
    Checked { problems, notes }
}
