//! The store: the only module that opens redb and names its tables.
//!
//! One redb file holds everything: knowledge, per-identity sessions (dialog
//! state), registrations, subscribers, saved forms, the outbox and the
//! replies recorded for handled messages (`turn`). Records are stored as
//! versioned bytes (a format byte, then JSON) so that a renamed struct field
//! never silently changes the file's schema. Every write is one short
//! transaction through the group-commit writer (`commit`): committed
//! (durably, unless the caller asked for a lazy write) before the caller is
//! told it happened; a kill at any moment leaves the last committed state.
//! A write that fails or panics fails alone.
//!
//! Opening never panics and never guesses: only a path that does not exist
//! creates a store (in an existing folder); an empty, damaged or foreign
//! file is [`StoreError::NotAStore`]. [`Store::open_read_only`] reads a
//! store without ever writing to it (exports).
//!
//! The file records its schema version in `meta`. A file of a newer or
//! unknown version is refused; older versions are brought forward in
//! `migrate`, the one place where migrations go.

mod commit;
pub use commit::Pending;
mod outbox;
pub use outbox::{
    AnnounceRefusal, Announcement, Audience, Delivered, DeliveryKind, DeliveryState, Due, MAX_ANNOUNCEMENT_CHARS,
    OutboxMessage,
};
mod misses;
mod panics;
mod records;
mod registrations;
mod sessions;
mod turn;
mod web;

pub use misses::{MISSES_KEPT, Miss, MissKind};
pub use records::*;
pub use registrations::{CancelOutcome, NewRegistration, RegisterOutcome};
pub use turn::{Effect, EffectOutcome, SubscriberChange, TurnDone, TurnWrite};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::knowledge::{Knowledge, Text};

/// The schema this build writes and understands.
pub const SCHEMA_VERSION: u64 = 2;

/// Format byte in front of every stored record.
const RECORD_FORMAT: u8 = 1;

// ── tables ────────────────────────────────────────────────────────────
/// name → value: `schema_version`, `knowledge_loaded`, counters.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// id → Field
const FIELDS: TableDefinition<&str, &[u8]> = TableDefinition::new("knowledge_field");
/// id → Enterprise
const ENTERPRISES: TableDefinition<&str, &[u8]> = TableDefinition::new("knowledge_enterprise");
/// id → Event
const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("knowledge_event");
/// id → Faq
const FAQS: TableDefinition<&str, &[u8]> = TableDefinition::new("knowledge_faq");
/// id → Concept (the park's own, extending the built-in lexicon)
const CONCEPTS: TableDefinition<&str, &[u8]> = TableDefinition::new("knowledge_concept");
/// identity → Session (dialog state, last list shown)
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("identity_session");
/// code → Registration
const REGISTRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("code_registration");
/// (event id, sequence) → code: registrations of an event in sign-up order
pub(super) const EVENT_REGISTRATIONS: TableDefinition<(&str, u64), &str> = TableDefinition::new("eventid_seq_code");
/// event id → EventCounts: seats taken and the waiting list's length
const EVENT_COUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("eventid_counts");
/// (event id, sequence) → code: the waiting list of an event, in order
const EVENT_WAITLIST: TableDefinition<(&str, u64), &str> = TableDefinition::new("eventid_seq_waitlisted");
/// (identity, code) → (): an identity's registrations
const USER_REGISTRATIONS: TableDefinition<(&str, &str), ()> = TableDefinition::new("identity_code");
/// identity → Subscriber
pub(super) const SUBSCRIBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("identity_subscriber");
/// sequence → FormEntry (saved by dialogs' `save_form`)
const FORMS: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_form");
/// sequence → OutboxMessage, waiting to be delivered
pub(super) const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_outbox");

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the store {path} is in use by another parkbot process (a running `parkbot serve` or `parkbot chat`?). \
         Stop it first, or talk to the running server through its admin API"
    )]
    Locked { path: PathBuf },
    #[error(
        "the store {path} has schema version {found}, but this parkbot understands versions up to {supported}: \
         use a newer parkbot, or a backup made by this version"
    )]
    NewerSchema { path: PathBuf, found: u64, supported: u64 },
    #[error("the store {path} is not a parkbot store ({detail})")]
    NotAStore { path: PathBuf, detail: String },
    #[error("store {path}: {detail}")]
    Io { path: PathBuf, detail: String },
    /// A storage, transaction, table or commit error of redb.
    #[error("store: {0}")]
    Redb(#[from] redb::Error),
    #[error("store: a stored {what} record cannot be read ({detail})")]
    BadRecord { what: &'static str, detail: String },
    /// A write panicked; it was rolled back and the writer lives on.
    #[error("store: a write failed unexpectedly ({message})")]
    WriterPanic { message: String },
    /// A read panicked (a damaged file).
    #[error("store: a read failed unexpectedly ({message})")]
    ReaderPanic { message: String },
    #[error("the store is closing")]
    Closing,
    #[error("the store {path} is open read-only")]
    ReadOnly { path: PathBuf },
    #[error(
        "the store {path} was not closed cleanly and cannot be read without repair: \
         open it once for writing (e.g. start parkbot) to repair it"
    )]
    NeedsRepair { path: PathBuf },
    #[error(
        "import refused: it would remove {would_remove} item(s){}{}. Nothing was changed; use --force to import anyway",
        if *empties { " and leave the knowledge empty" } else { "" },
        if events_with_registrations.is_empty() { String::new() } else {
            format!(", including events with registrations: {}", events_with_registrations.join(", "))
        }
    )]
    ImportRefused {
        would_remove: usize,
        events_with_registrations: Vec<String>,
        empties: bool,
    },
    #[error("announcement refused: {0}")]
    AnnouncementRefused(outbox::AnnounceRefusal),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> StoreError {
                StoreError::Redb(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TransactionError,
    redb::TableError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

pub type Result<T> = std::result::Result<T, StoreError>;

/// Counts of an import.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
    /// People moved from a waiting list to a seat (raised or removed capacity).
    pub promoted: usize,
}

/// How [`Store::import`] treats what is already stored.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Remove every stored item that is not in the import.
    pub replace: bool,
    /// With `replace`: go ahead even if the import would empty the
    /// knowledge or remove an event that has (non-cancelled) registrations.
    pub force: bool,
    /// The notice queued for each person promoted from a waiting list:
    /// `{event}` and `{code}` are filled in.
    pub promotion_notice: Text,
}

/// The open database: writable (with its writer thread) or read-only.
enum Db {
    Writable {
        db: Arc<Database>,
        committer: commit::Committer,
    },
    ReadOnly(ReadOnlyDatabase),
}

/// Switches that make the store fail, for tests of its callers.
#[cfg(test)]
#[derive(Default)]
struct Faults {
    reads: std::sync::atomic::AtomicBool,
    writes: std::sync::atomic::AtomicBool,
}

/// The open store. Share it by reference (or `Arc`) across threads: reads
/// run in parallel, writes go through the group-commit thread.
pub struct Store {
    db: Db,
    path: PathBuf,
    /// Sessions as last committed (see `sessions.rs`).
    sessions: Arc<sessions::SessionCache>,
    #[cfg(test)]
    faults: Faults,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens the store at `path`, checking its schema version. Only a path
    /// that does not exist creates a new store; its folder must exist. An
    /// empty, damaged or foreign file is [`StoreError::NotAStore`].
    pub fn open(path: &Path) -> Result<Store> {
        let exists = check_path(path)?;
        let db = guard(path, || {
            let db = if exists {
                Database::open(path)
            } else {
                Database::create(path)
            };
            db.map_err(|e| open_error(path, e))
        })?;
        let db = Arc::new(db);
        guard(path, || prepare(path, &db)).map_err(|e| damaged(path, e))?;
        let sessions = Arc::new(sessions::SessionCache::default());
        let ended = sessions.clone();
        let store = Store {
            db: Db::Writable {
                committer: commit::Committer::start(
                    db.clone(),
                    Box::new(move |committed| ended.batch_ended(committed)),
                ),
                db,
            },
            path: path.to_path_buf(),
            sessions,
            #[cfg(test)]
            faults: Faults::default(),
        };
        Ok(store)
    }

    /// Opens an existing store for reading only (exports, listings): the
    /// file is never written, and may be read-only. Writes return
    /// [`StoreError::ReadOnly`].
    pub fn open_read_only(path: &Path) -> Result<Store> {
        if !check_path(path)? {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                detail: "no such file".into(),
            });
        }
        let db = guard(path, || {
            redb::Builder::new().open_read_only(path).map_err(|e| match e {
                redb::DatabaseError::RepairAborted => StoreError::NeedsRepair {
                    path: path.to_path_buf(),
                },
                e => open_error(path, e),
            })
        })?;
        let store = Store {
            db: Db::ReadOnly(db),
            path: path.to_path_buf(),
            sessions: Default::default(),
            #[cfg(test)]
            faults: Faults::default(),
        };
        guard(path, || match store.read_meta("schema_version")? {
            Some(v) if v > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            }),
            Some(SCHEMA_VERSION) => {
                let r = store.begin_read()?;
                for def in KNOWLEDGE_TABLES.iter().chain(RECORD_TABLES) {
                    r.open_table(*def)?.len()?;
                }
                Ok(())
            }
            Some(v) => Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: format!("schema version {v} needs upgrading: open it once for writing"),
            }),
            None => Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: "no schema version".into(),
            }),
        })
        .map_err(|e| damaged(path, e))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes reads and/or writes fail from now on (tests of the callers).
    #[cfg(test)]
    pub(crate) fn inject_faults(&self, reads: bool, writes: bool) {
        use std::sync::atomic::Ordering::SeqCst;
        self.faults.reads.store(reads, SeqCst);
        self.faults.writes.store(writes, SeqCst);
    }

    #[cfg(test)]
    fn injected(&self, writes: bool) -> Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let on = if writes {
            &self.faults.writes
        } else {
            &self.faults.reads
        };
        if on.load(SeqCst) {
            return Err(StoreError::Io {
                path: self.path.clone(),
                detail: "injected fault".into(),
            });
        }
        Ok(())
    }

    /// A read transaction (every public read starts here).
    fn begin_read(&self) -> Result<redb::ReadTransaction> {
        #[cfg(test)]
        self.injected(false)?;
        Ok(match &self.db {
            Db::Writable { db, .. } => db.begin_read()?,
            Db::ReadOnly(db) => db.begin_read()?,
        })
    }

    /// Runs `f` over a read transaction; a panic (a damaged file) becomes
    /// [`StoreError::ReaderPanic`].
    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        let r = self.begin_read()?;
        panics::caught(|| f(&r)).unwrap_or_else(|panic| {
            let message = commit::panic_message(panic.as_ref());
            tracing::error!(panic = %message, path = %self.path.display(), "a store read panicked");
            Err(StoreError::ReaderPanic { message })
        })
    }

    fn read_meta(&self, key: &str) -> Result<Option<u64>> {
        self.read(|r| read_meta(r, key))
    }

    /// The schema version recorded in the file.
    pub fn schema_version(&self) -> Result<u64> {
        Ok(self.read_meta("schema_version")?.unwrap_or(SCHEMA_VERSION))
    }

    // ── knowledge ──────────────────────────────────────────────────────

    /// Whether knowledge was ever imported (seeding happens only before).
    pub fn knowledge_loaded(&self) -> Result<bool> {
        Ok(self.read_meta("knowledge_loaded")?.unwrap_or(0) == 1)
    }

    /// All knowledge, each kind sorted by id.
    pub fn knowledge(&self) -> Result<Knowledge> {
        self.read(|r| {
            let mut k = Knowledge {
                field: all(r, FIELDS, "field")?,
                enterprise: all(r, ENTERPRISES, "enterprise")?,
                event: all(r, EVENTS, "event")?,
                faq: all(r, FAQS, "faq")?,
                concept: all(r, CONCEPTS, "concept")?,
            };
            k.sort();
            Ok(k)
        })
    }

    /// The ids of the fields in the store.
    pub fn field_ids(&self) -> Result<HashSet<String>> {
        self.read(|r| {
            let t = r.open_table(FIELDS)?;
            let mut ids = HashSet::new();
            for row in t.iter()? {
                ids.insert(row?.0.value().to_string());
            }
            Ok(ids)
        })
    }

    /// Upserts `k` by id in one durable transaction; with `opts.replace`,
    /// first removes every record not in `k`. People on a waiting list are
    /// promoted, in order, where an event now has free seats (raised or
    /// removed capacity), each told through the outbox.
    ///
    /// With `replace` but not `force`, the import is refused
    /// ([`StoreError::ImportRefused`]) when it would leave the knowledge
    /// empty (it was not) or remove an event that has a registration that
    /// is not cancelled (confirmed or waiting). Nothing is written if the
    /// import is refused or anything fails.
    pub fn import(&self, k: &Knowledge, opts: &ImportOptions) -> Result<ImportStats> {
        let k = Arc::new(k.clone());
        let opts = opts.clone();
        self.write(move |w| import_in(w, &k, &opts))
    }

    // ── sessions ───────────────────────────────────────────────────────

    /// The subscription record of `identity`, if it ever had one.
    pub fn subscriber(&self, identity: &str) -> Result<Option<Subscriber>> {
        self.read(|r| {
            let t = r.open_table(SUBSCRIBERS)?;
            match t.get(identity)? {
                Some(v) => Ok(Some(decode(v.value(), "subscriber")?)),
                None => Ok(None),
            }
        })
    }

    /// Current subscribers (identities), of one channel if given (the
    /// channel's name, e.g. `wechat`), in identity order.
    pub fn subscribers(&self, channel: Option<&str>) -> Result<Vec<String>> {
        self.read(|r| {
            let t = r.open_table(SUBSCRIBERS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let id = k.value();
                if channel.is_some_and(|c| id.split_once(':').is_none_or(|(ch, _)| ch != c)) {
                    continue;
                }
                let sub: Subscriber = decode(v.value(), "subscriber")?;
                if sub.subscribed {
                    out.push(id.to_string());
                }
            }
            Ok(out)
        })
    }

    /// The session of `identity`, if it has one.
    pub fn session(&self, identity: &str) -> Result<Option<Session>> {
        #[cfg(test)]
        self.injected(false)?;
        let miss = match self.sessions.get(identity) {
            Ok(kept) => return Ok(kept),
            Err(miss) => miss,
        };
        let found = self.read(|r| {
            let t = r.open_table(SESSIONS)?;
            match t.get(identity)? {
                Some(v) => Ok(Some(decode(v.value(), "session")?)),
                None => Ok(None),
            }
        })?;
        self.sessions.fill(identity, &found, miss);
        Ok(found)
    }

    /// Runs `f` in a group-committed, durable write transaction.
    fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnMut(&redb::WriteTransaction) -> Result<R> + Send + 'static,
    {
        self.write_with(true, f)
    }

    /// Queues `f` for the group commit and returns at once; await the
    /// result (for async callers: no thread waits through the fsync).
    fn submit_with<R, F>(&self, durable: bool, f: F) -> Result<Pending<R>>
    where
        R: Send + 'static,
        F: FnMut(&redb::WriteTransaction) -> Result<R> + Send + 'static,
    {
        self.committer()?.submit(durable, f)
    }

    /// Runs `f` in a group-committed write transaction. `f` may run more
    /// than once (a shared transaction that failed is retried job by job).
    fn write_with<R, F>(&self, durable: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnMut(&redb::WriteTransaction) -> Result<R> + Send + 'static,
    {
        self.committer()?.write(durable, f)
    }

    /// The writer, unless the store is read-only (or, in tests, writes are
    /// made to fail).
    fn committer(&self) -> Result<&commit::Committer> {
        #[cfg(test)]
        self.injected(true)?;
        match &self.db {
            Db::Writable { committer, .. } => Ok(committer),
            Db::ReadOnly(_) => Err(StoreError::ReadOnly {
                path: self.path.clone(),
            }),
        }
    }

    /// Durable commits so far (tests only).
    #[cfg(test)]
    pub(crate) fn durable_commits(&self) -> u64 {
        match &self.db {
            Db::Writable { committer, .. } => committer.durable_commits(),
            Db::ReadOnly(_) => 0,
        }
    }

    // ── registrations ──────────────────────────────────────────────────

    /// An event's confirmed and waiting registrations.
    pub fn event_counts(&self, event_id: &str) -> Result<EventCounts> {
        self.read(|r| {
            let t = r.open_table(EVENT_COUNTS)?;
            match t.get(event_id)? {
                Some(v) => decode(v.value(), "event counts"),
                None => Ok(EventCounts::default()),
            }
        })
    }

    /// Confirmed registrations of an event.
    pub fn confirmed_count(&self, event_id: &str) -> Result<u32> {
        self.read(|r| {
            let t = r.open_table(EVENT_COUNTS)?;
            let counts: EventCounts = match t.get(event_id)? {
                Some(v) => decode(v.value(), "event counts")?,
                None => EventCounts::default(),
            };
            Ok(counts.confirmed as u32)
        })
    }
}

const KNOWLEDGE_TABLES: &[TableDefinition<&str, &[u8]>] = &[FIELDS, ENTERPRISES, EVENTS, FAQS, CONCEPTS];
const RECORD_TABLES: &[TableDefinition<&str, &[u8]>] = &[SESSIONS, REGISTRATIONS, EVENT_COUNTS, SUBSCRIBERS];

/// Whether `path` is an existing file (else it does not exist, and its
/// folder does). A folder, an empty file or a missing folder is an error.
fn check_path(path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() > 0 => Ok(true),
        Ok(m) if m.is_file() => Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: "the file is empty".into(),
        }),
        Ok(_) => Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: "not a file".into(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            if dir.is_dir() {
                Ok(false)
            } else {
                Err(StoreError::Io {
                    path: path.to_path_buf(),
                    detail: format!("its folder {} does not exist", dir.display()),
                })
            }
        }
        Err(e) => Err(StoreError::Io {
            path: path.to_path_buf(),
            detail: e.to_string(),
        }),
    }
}

/// Runs `f`, turning a panic (redb on a damaged file) into NotAStore.
fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    panics::caught(f).unwrap_or_else(|panic| {
        Err(StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: format!("the file is damaged: {}", commit::panic_message(panic.as_ref())),
        })
    })
}

/// Errors met while checking a file at opening: corruption means it is
/// not (or no longer) a store.
fn damaged(path: &Path, e: StoreError) -> StoreError {
    match e {
        StoreError::Redb(redb::Error::Corrupted(detail)) => StoreError::NotAStore {
            path: path.to_path_buf(),
            detail,
        },
        StoreError::Redb(
            e @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_)
            | redb::Error::TypeDefinitionChanged { .. }),
        ) => StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
        StoreError::BadRecord { what, detail } => StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: format!("a {what} record cannot be read: {detail}"),
        },
        StoreError::ReaderPanic { message } | StoreError::WriterPanic { message } => StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: format!("the file is damaged: {message}"),
        },
        other => other,
    }
}

fn read_meta(r: &redb::ReadTransaction, key: &str) -> Result<Option<u64>> {
    let meta = match r.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(meta.get(key)?.map(|v| v.value()))
}

/// Checks the version, migrates, and creates every table.
fn prepare(path: &Path, db: &Database) -> Result<()> {
    let found = read_meta(&db.begin_read()?, "schema_version")?;
    match found {
        Some(v) if v > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(0) => {
            return Err(StoreError::NotAStore {
                path: path.to_path_buf(),
                detail: "schema version 0 is unknown".into(),
            });
        }
        Some(v) if v < SCHEMA_VERSION => migrate(db, v)?,
        _ => {}
    }
    let w = db.begin_write()?;
    {
        for def in KNOWLEDGE_TABLES.iter().chain(RECORD_TABLES) {
            w.open_table(*def)?;
        }
        w.open_table(EVENT_REGISTRATIONS)?;
        w.open_table(EVENT_WAITLIST)?;
        w.open_table(USER_REGISTRATIONS)?;
        w.open_table(FORMS)?;
        w.open_table(OUTBOX)?;
        outbox::create_tables(&w)?;
        w.open_table(turn::HANDLED)?;
        w.open_table(turn::HANDLED_BY_TIME)?;
        w.open_table(web::WEB_SESSIONS)?;
        w.open_table(misses::MISSES)?;
        let mut meta = w.open_table(META)?;
        if found.is_none() {
            meta.insert("schema_version", SCHEMA_VERSION)?;
        }
    }
    w.commit()?;
    // The first reads: a damaged file shows here rather than later.
    let r = db.begin_read()?;
    for def in KNOWLEDGE_TABLES.iter().chain(RECORD_TABLES) {
        let t = r.open_table(*def)?;
        t.len()?;
        t.first()?;
    }
    Ok(())
}

/// Every record of a table, in key order.
fn all<K: redb::Key + 'static, T: DeserializeOwned>(
    r: &redb::ReadTransaction,
    def: TableDefinition<K, &'static [u8]>,
    what: &'static str,
) -> Result<Vec<T>> {
    let t = r.open_table(def)?;
    let mut out = Vec::with_capacity(t.len()? as usize);
    for row in t.iter()? {
        let (_, v) = row?;
        out.push(decode(v.value(), what)?);
    }
    Ok(out)
}

/// The import, inside its write transaction (see [`Store::import`]).
fn import_in(w: &redb::WriteTransaction, k: &Knowledge, opts: &ImportOptions) -> Result<ImportStats> {
    let mut stats = ImportStats::default();
    let mut before = 0;
    for def in KNOWLEDGE_TABLES {
        before += w.open_table(*def)?.len()?;
    }
    let fields = k.field.iter().map(|x| (x.id.as_str(), encode(x))).collect();
    let enterprises = k.enterprise.iter().map(|x| (x.id.as_str(), encode(x))).collect();
    let events = k.event.iter().map(|x| (x.id.as_str(), encode(x))).collect();
    let faqs = k.faq.iter().map(|x| (x.id.as_str(), encode(x))).collect();
    let concepts = k.concept.iter().map(|x| (x.id.as_str(), encode(x))).collect();
    upsert(w, FIELDS, fields, opts.replace, &mut stats)?;
    upsert(w, ENTERPRISES, enterprises, opts.replace, &mut stats)?;
    let removed_events = upsert(w, EVENTS, events, opts.replace, &mut stats)?;
    upsert(w, FAQS, faqs, opts.replace, &mut stats)?;
    upsert(w, CONCEPTS, concepts, opts.replace, &mut stats)?;
    if opts.replace && !opts.force {
        let empties = before > 0 && k.is_empty();
        let mut events_with_registrations = Vec::new();
        for id in removed_events {
            if registrations::has_active(w, &id)? {
                events_with_registrations.push(id);
            }
        }
        if empties || !events_with_registrations.is_empty() {
            return Err(StoreError::ImportRefused {
                would_remove: stats.removed,
                events_with_registrations,
                empties,
            });
        }
    }
    stats.promoted = registrations::promote_all(
        w,
        &opts.promotion_notice,
        time::OffsetDateTime::now_utc().unix_timestamp(),
    )?;
    w.open_table(META)?.insert("knowledge_loaded", 1)?;
    Ok(stats)
}

/// Writes `items` (id, encoded record) into one knowledge table; with
/// `replace`, first drops the records whose ids are not among them.
/// Returns the ids dropped.
fn upsert(
    w: &redb::WriteTransaction,
    def: TableDefinition<&str, &[u8]>,
    items: Vec<(&str, Vec<u8>)>,
    replace: bool,
    stats: &mut ImportStats,
) -> Result<Vec<String>> {
    let mut t = w.open_table(def)?;
    let mut removed = Vec::new();
    if replace {
        let keep: HashSet<&str> = items.iter().map(|(id, _)| *id).collect();
        for row in t.iter()? {
            let id = row?.0.value().to_string();
            if !keep.contains(id.as_str()) {
                removed.push(id);
            }
        }
        for id in &removed {
            t.remove(id.as_str())?;
        }
        stats.removed += removed.len();
    }
    for (id, bytes) in items {
        let old = t.insert(id, bytes.as_slice())?;
        match old {
            None => stats.added += 1,
            Some(v) if v.value() == bytes.as_slice() => stats.unchanged += 1,
            Some(_) => stats.updated += 1,
        }
    }
    Ok(removed)
}

/// A record as stored: the format byte, then JSON.
fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT];
    serde_json::to_writer(&mut out, value).expect("records serialize to JSON");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T> {
    let bad = |detail: String| StoreError::BadRecord { what, detail };
    match bytes.split_first() {
        Some((&RECORD_FORMAT, json)) => serde_json::from_slice(json).map_err(|e| bad(e.to_string())),
        Some((other, _)) => Err(bad(format!("unknown record format {other}"))),
        None => Err(bad("empty record".into())),
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen | redb::DatabaseError::LockProtocolMismatch => StoreError::Locked {
            path: path.to_path_buf(),
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(io)) if io.kind() != std::io::ErrorKind::InvalidData => {
            StoreError::Io {
                path: path.to_path_buf(),
                detail: io.to_string(),
            }
        }
        other => StoreError::NotAStore {
            path: path.to_path_buf(),
            detail: other.to_string(),
        },
    }
}

/// Brings a store of an older schema version up to [`SCHEMA_VERSION`].
/// Each step is one transaction: `from` → `from + 1`.
fn migrate(db: &Database, from: u64) -> Result<()> {
    for version in from..SCHEMA_VERSION {
        let w = db.begin_write()?;
        if version == 1 {
            // 1 → 2: the outbox got states and indexes.
            outbox::index_old_records(&w)?;
        }
        w.open_table(META)?.insert("schema_version", version + 1)?;
        w.commit()?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::knowledge::{parse_str, validate_references};
    use std::collections::BTreeMap;

    fn sample() -> Knowledge {
        let text = r#"
[[field]]
id = "vfx"
name = "VFX"
[[enterprise]]
id = "a"
name = "A"
fields = ["vfx"]
[[enterprise]]
id = "b"
name = "B"
"#;
        validate_references(vec![parse_str("s.toml", text, false).unwrap()], &HashSet::new()).unwrap()
    }

    pub(super) fn opts(replace: bool) -> ImportOptions {
        ImportOptions {
            replace,
            ..Default::default()
        }
    }

    #[test]
    fn import_upserts_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(!store.knowledge_loaded().unwrap());
        let k = sample();
        let s = store.import(&k, &opts(false)).unwrap();
        assert_eq!((s.added, s.updated, s.unchanged), (3, 0, 0));
        assert!(store.knowledge_loaded().unwrap());
        assert_eq!(store.knowledge().unwrap(), k);
        let s = store.import(&k, &opts(false)).unwrap();
        assert_eq!(s.unchanged, 3);

        let mut k2 = k.clone();
        k2.enterprise.retain(|e| e.id == "a");
        k2.enterprise[0].name = Text::Plain("A2".into());
        let s = store.import(&k2, &opts(true)).unwrap();
        assert_eq!((s.updated, s.removed), (1, 1));
        let now = store.knowledge().unwrap();
        assert_eq!(now.enterprise.len(), 1);
        assert_eq!(now.enterprise[0].name, Text::Plain("A2".into()));
    }

    #[test]
    fn newer_schema_is_refused_and_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let db = Database::create(&path).unwrap();
            let w = db.begin_write().unwrap();
            w.open_table(META).unwrap().insert("schema_version", 99).unwrap();
            w.commit().unwrap();
        }
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::NewerSchema { found: 99, .. }), "{e}");
        let db = Database::create(&path).unwrap();
        let r = db.begin_read().unwrap();
        assert!(r.open_table(FIELDS).is_err(), "no table was created in a refused file");
    }

    #[test]
    fn second_open_is_a_plain_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let _held = Store::open(&path).unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::Locked { .. }));
        assert!(e.to_string().contains("in use by another parkbot process"));
    }

    #[test]
    fn garbage_file_is_not_a_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(&path, vec![7u8; 5000]).unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");
    }

    #[test]
    fn sessions_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(store.session("console:a").unwrap().is_none());
        let s = Session::default();
        store.put_session("console:a", Some(&s)).unwrap();
        assert!(store.session("console:a").unwrap().is_some());
        assert!(store.session("console:b").unwrap().is_none());
        store.put_session("console:a", None).unwrap();
        assert!(store.session("console:a").unwrap().is_none());
    }

    /// Knowledge with one field, one enterprise, and `events` (id, capacity).
    pub(crate) fn knowledge_with(events: &[(&str, Option<u32>)]) -> Knowledge {
        let mut text =
            String::from("[[field]]\nid = \"vfx\"\nname = \"VFX\"\n[[enterprise]]\nid = \"a\"\nname = \"A\"\n");
        for (id, cap) in events {
            text.push_str(&format!(
                "[[event]]\nid = \"{id}\"\ntitle = {{ zh = \"{id}论坛\", en = \"{id} forum\" }}\n\
                 starts_at = \"2027-01-01T09:00:00+08:00\"\n"
            ));
            if let Some(c) = cap {
                text.push_str(&format!("capacity = {c}\n"));
            }
        }
        validate_references(vec![parse_str("t.toml", &text, false).unwrap()], &HashSet::new()).unwrap()
    }

    pub(crate) fn sign_up(store: &Store, event: &str, user: &str) -> RegisterOutcome {
        let new = NewRegistration {
            event_id: event.into(),
            user: user.into(),
            name: format!("name of {user}"),
            organization: "org".into(),
            phone: "13800000000".into(),
            now: 1_700_000_000,
        };
        store.register(new, None).unwrap()
    }

    /// A small store with knowledge, sessions and registrations, closed.
    fn small_store(path: &Path) {
        let store = Store::open(path).unwrap();
        store
            .import(&knowledge_with(&[("e1", Some(1)), ("e2", None)]), &opts(true))
            .unwrap();
        for i in 0..5 {
            let s = Session {
                updated_at: i,
                ..Session::default()
            };
            store.put_session(&format!("console:u{i}"), Some(&s)).unwrap();
        }
        sign_up(&store, "e1", "console:u0");
        sign_up(&store, "e1", "console:u1");
        sign_up(&store, "e2", "console:u2");
    }

    #[test]
    fn damaged_files_never_panic() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.redb");
        small_store(&good);
        let bytes = std::fs::read(&good).unwrap();
        let mut offsets: Vec<usize> = (0..bytes.len()).step_by(4096).collect();
        offsets.extend((0..4096usize * 4).step_by(61));
        // Also every page's middle and last byte.
        offsets.extend((2048..bytes.len()).step_by(4096));
        let (mut ok, mut refused) = (0, 0);
        for (n, &at) in offsets.iter().enumerate() {
            let path = dir.path().join(format!("bad{n}.redb"));
            let mut copy = bytes.clone();
            copy[at] ^= 0x5A;
            std::fs::write(&path, &copy).unwrap();
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match Store::open(&path) {
                Ok(store) => {
                    // Reads and a write on what opened: errors are fine, panics are not.
                    let _ = store.knowledge();
                    let _ = store.registrations(None);
                    let _ = store.user_registrations("console:u0");
                    let _ = store.session("console:u3");
                    let _ = store.outbox();
                    let _ = store.forms("f");
                    let _ = store.put_session("console:new", Some(&Session::default()));
                    true
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    false
                }
            }));
            match outcome {
                Ok(true) => ok += 1,
                Ok(false) => refused += 1,
                Err(p) => panic!(
                    "a panic escaped for a byte flipped at {at}: {}",
                    commit::panic_message(p.as_ref())
                ),
            }
            std::fs::remove_file(&path).unwrap();
        }
        assert!(refused > 0, "some damage is noticed ({ok} opened)");
    }

    #[test]
    fn an_empty_file_is_not_a_store_and_stays_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        std::fs::write(&path, b"").unwrap();
        let e = Store::open(&path).unwrap_err();
        assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");
        assert!(e.to_string().contains("is not a parkbot store"), "{e}");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "not re-initialised");
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::NotAStore { .. }), "a folder: {e}");
    }

    #[test]
    fn a_missing_folder_is_an_error_and_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = Store::open(&missing.join("s.redb")).unwrap_err();
        assert!(matches!(e, StoreError::Io { .. }), "{e}");
        assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
        assert!(!missing.exists());
        let e = Store::open_read_only(&missing.join("s.redb")).unwrap_err();
        assert!(matches!(e, StoreError::Io { .. }), "{e}");
        assert!(!missing.exists());
    }

    #[test]
    fn read_only_open_reads_and_never_writes() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        small_store(&path);
        {
            let store = Store::open(&path).unwrap();
            store.save_form("f", "console:u1", BTreeMap::new(), 5, None).unwrap();
        }
        let before = std::fs::read(&path).unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).unwrap();
        {
            let store = Store::open_read_only(&path).unwrap();
            assert_eq!(store.knowledge().unwrap().event.len(), 2);
            assert_eq!(store.registrations(None).unwrap().len(), 3);
            assert_eq!(store.user_registrations("console:u1").unwrap().len(), 1);
            assert_eq!(store.forms("f").unwrap().len(), 1);
            assert!(store.outbox().unwrap().is_empty());
            assert!(store.session("console:u3").unwrap().is_some());
            assert_eq!(store.confirmed_count("e1").unwrap(), 1);
            assert!(store.handled("console:u1", "m1", 0).unwrap().is_none());
            let e = store.put_session("console:u1", None).unwrap_err();
            assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
            let e = store.import(&knowledge_with(&[]), &opts(false)).unwrap_err();
            assert!(matches!(e, StoreError::ReadOnly { .. }), "{e}");
            // Two readers at once are fine.
            let again = Store::open_read_only(&path);
            drop(again);
        }
        assert_eq!(std::fs::read(&path).unwrap(), before, "the file is unchanged");
        assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);
    }

    #[test]
    fn read_only_open_of_a_missing_or_foreign_file_fails() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        assert!(Store::open_read_only(&path).is_err());
        assert!(!path.exists(), "not created");
        std::fs::write(&path, vec![7u8; 5000]).unwrap();
        let e = Store::open_read_only(&path).unwrap_err();
        assert!(matches!(e, StoreError::NotAStore { .. }), "{e}");
    }

    #[test]
    fn destructive_imports_are_refused_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        let k = knowledge_with(&[("e1", Some(5)), ("e2", Some(5))]);
        store.import(&k, &opts(true)).unwrap();
        sign_up(&store, "e1", "console:a");
        let before = store.knowledge().unwrap();

        // Emptying the knowledge.
        let e = store.import(&Knowledge::default(), &opts(true)).unwrap_err();
        let StoreError::ImportRefused {
            would_remove,
            events_with_registrations,
            empties,
        } = &e
        else {
            panic!("{e}")
        };
        assert_eq!((*would_remove, *empties), (4, true));
        assert_eq!(events_with_registrations, &vec!["e1".to_string()]);
        assert!(e.to_string().contains("remove 4 item(s)"), "{e}");
        assert!(e.to_string().contains("--force"), "{e}");
        assert_eq!(store.knowledge().unwrap(), before, "nothing written");

        // Removing an event with a registration (and one without: fine alone).
        let without_e1 = knowledge_with(&[("e2", Some(5))]);
        let e = store.import(&without_e1, &opts(true)).unwrap_err();
        assert!(
            matches!(&e, StoreError::ImportRefused { would_remove: 1, empties: false, events_with_registrations } if events_with_registrations == &["e1"]),
            "{e}"
        );
        assert!(e.to_string().contains("e1"), "{e}");
        assert_eq!(store.knowledge().unwrap(), before);
        let without_e2 = knowledge_with(&[("e1", Some(5))]);
        assert_eq!(store.import(&without_e2, &opts(true)).unwrap().removed, 1);

        // A cancelled registration does not hold an event back.
        let code = store.user_registrations("console:a").unwrap()[0].code.clone();
        store
            .cancel_registration("console:a", &code, 1, Text::default(), None)
            .unwrap();
        let k3 = knowledge_with(&[("e3", None)]);
        assert_eq!(store.import(&k3, &opts(true)).unwrap().removed, 1);
        sign_up(&store, "e3", "console:b");

        // --force goes ahead.
        let force = ImportOptions {
            replace: true,
            force: true,
            ..Default::default()
        };
        let s = store.import(&Knowledge::default(), &force).unwrap();
        assert_eq!(s.removed, 3);
        assert!(store.knowledge().unwrap().is_empty());
    }

    #[test]
    fn injected_faults_fail_reads_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store.inject_faults(true, false);
        assert!(store.session("console:a").is_err());
        assert!(store.knowledge().is_err());
        store.put_session("console:a", Some(&Session::default())).unwrap();
        store.inject_faults(false, true);
        assert!(store.session("console:a").unwrap().is_some());
        assert!(store.put_session("console:a", None).is_err());
        store.inject_faults(false, false);
        store.put_session("console:a", None).unwrap();
        assert!(store.session("console:a").unwrap().is_none());
    }
}
