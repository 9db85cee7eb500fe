//! The store: the only module that opens redb and names its tables.
//!
//! One redb file holds everything: knowledge, per-identity sessions (dialog
//! state), registrations, subscribers, saved forms and the outbox. Records are
//! stored as versioned bytes (a format byte, then JSON) so that a renamed
//! struct field never silently changes the file's schema. Every write is one
//! short transaction, committed durably before the caller is told it
//! happened; a kill at any moment leaves the last committed state.
//!
//! The file records its schema version in `meta`. A file of a newer or
//! unknown version is refused; older versions are brought forward in
//! [`migrate`], the one place where migrations go.

mod commit;
mod records;
mod registrations;
mod turn;

pub use records::*;
pub use registrations::{CancelOutcome, NewRegistration, RegisterOutcome};
pub use turn::{Effect, EffectOutcome, TurnWrite};

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::knowledge::Knowledge;

/// The schema this build writes and understands.
pub const SCHEMA_VERSION: u64 = 1;

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
/// identity → Session (dialog state, last list shown)
const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("identity_session");
/// code → Registration
const REGISTRATIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("code_registration");
/// (event id, sequence) → code: registrations of an event in sign-up order
const EVENT_REGISTRATIONS: TableDefinition<(&str, u64), &str> = TableDefinition::new("eventid_seq_code");
/// event id → EventCounts: seats taken and the waiting list's length
const EVENT_COUNTS: TableDefinition<&str, &[u8]> = TableDefinition::new("eventid_counts");
/// (event id, sequence) → code: the waiting list of an event, in order
const EVENT_WAITLIST: TableDefinition<(&str, u64), &str> = TableDefinition::new("eventid_seq_waitlisted");
/// (identity, code) → (): an identity's registrations
const USER_REGISTRATIONS: TableDefinition<(&str, &str), ()> = TableDefinition::new("identity_code");
/// identity → Subscriber
const SUBSCRIBERS: TableDefinition<&str, &[u8]> = TableDefinition::new("identity_subscriber");
/// sequence → FormEntry (saved by dialogs' `save_form`)
const FORMS: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_form");
/// sequence → OutboxMessage, waiting to be delivered
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("seq_outbox");

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
    #[error("store {path}: a stored {what} record cannot be read ({detail})")]
    BadRecord {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Counts of an import.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ImportStats {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub removed: usize,
}

/// The open store. Share it by reference (or `Arc`) across threads: reads
/// run in parallel, writes go through the group-commit thread.
pub struct Store {
    committer: commit::Committer,
    db: Arc<Database>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (or creates) the store at `path`, checking its schema version.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: path.to_path_buf(),
                detail: format!("cannot create its folder: {e}"),
            })?;
        }
        let db = Arc::new(Database::create(path).map_err(|e| open_error(path, e))?);
        let store = Store {
            committer: commit::Committer::start(db.clone()),
            db,
            path: path.to_path_buf(),
        };
        store.prepare()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }

    /// Checks the version, migrates, and creates every table.
    fn prepare(&self) -> Result<()> {
        let found = self.read_meta("schema_version")?;
        match found {
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::NewerSchema {
                    path: self.path.clone(),
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(0) => {
                return Err(StoreError::NotAStore {
                    path: self.path.clone(),
                    detail: "schema version 0 is unknown".into(),
                });
            }
            Some(v) if v < SCHEMA_VERSION => migrate(self, v)?,
            _ => {}
        }
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            w.open_table(FIELDS).map_err(|e| self.err(e))?;
            w.open_table(ENTERPRISES).map_err(|e| self.err(e))?;
            w.open_table(EVENTS).map_err(|e| self.err(e))?;
            w.open_table(FAQS).map_err(|e| self.err(e))?;
            w.open_table(SESSIONS).map_err(|e| self.err(e))?;
            w.open_table(REGISTRATIONS).map_err(|e| self.err(e))?;
            w.open_table(EVENT_REGISTRATIONS).map_err(|e| self.err(e))?;
            w.open_table(EVENT_COUNTS).map_err(|e| self.err(e))?;
            w.open_table(EVENT_WAITLIST).map_err(|e| self.err(e))?;
            w.open_table(USER_REGISTRATIONS).map_err(|e| self.err(e))?;
            w.open_table(SUBSCRIBERS).map_err(|e| self.err(e))?;
            w.open_table(FORMS).map_err(|e| self.err(e))?;
            w.open_table(OUTBOX).map_err(|e| self.err(e))?;
            let mut meta = w.open_table(META).map_err(|e| self.err(e))?;
            if found.is_none() {
                meta.insert("schema_version", SCHEMA_VERSION).map_err(|e| self.err(e))?;
            }
        }
        w.commit().map_err(|e| self.err(e))
    }

    fn read_meta(&self, key: &str) -> Result<Option<u64>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = match r.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        Ok(meta.get(key).map_err(|e| self.err(e))?.map(|v| v.value()))
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
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let mut k = Knowledge {
            field: self.all(&r, FIELDS, "field")?,
            enterprise: self.all(&r, ENTERPRISES, "enterprise")?,
            event: self.all(&r, EVENTS, "event")?,
            faq: self.all(&r, FAQS, "faq")?,
        };
        k.sort();
        Ok(k)
    }

    /// Every record of a table, in key order.
    fn all<K: redb::Key + 'static, T: DeserializeOwned>(
        &self,
        r: &redb::ReadTransaction,
        def: TableDefinition<K, &'static [u8]>,
        what: &'static str,
    ) -> Result<Vec<T>> {
        let t = r.open_table(def).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(t.len().map_err(|e| self.err(e))? as usize);
        for row in t.iter().map_err(|e| self.err(e))? {
            let (_, v) = row.map_err(|e| self.err(e))?;
            out.push(self.decode(v.value(), what)?);
        }
        Ok(out)
    }

    /// The ids of the fields in the store.
    pub fn field_ids(&self) -> Result<HashSet<String>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(FIELDS).map_err(|e| self.err(e))?;
        let mut ids = HashSet::new();
        for row in t.iter().map_err(|e| self.err(e))? {
            ids.insert(row.map_err(|e| self.err(e))?.0.value().to_string());
        }
        Ok(ids)
    }

    /// Upserts `k` by id in one transaction; with `replace`, first removes
    /// every record not in `k`. Nothing is written if anything fails.
    pub fn import(&self, k: &Knowledge, replace: bool) -> Result<ImportStats> {
        let mut stats = ImportStats::default();
        let w = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let fields = k.field.iter().map(|x| (x.id.as_str(), encode(x))).collect();
            let enterprises = k.enterprise.iter().map(|x| (x.id.as_str(), encode(x))).collect();
            let events = k.event.iter().map(|x| (x.id.as_str(), encode(x))).collect();
            let faqs = k.faq.iter().map(|x| (x.id.as_str(), encode(x))).collect();
            self.upsert(&w, FIELDS, fields, replace, &mut stats)?;
            self.upsert(&w, ENTERPRISES, enterprises, replace, &mut stats)?;
            self.upsert(&w, EVENTS, events, replace, &mut stats)?;
            self.upsert(&w, FAQS, faqs, replace, &mut stats)?;
            let mut meta = w.open_table(META).map_err(|e| self.err(e))?;
            meta.insert("knowledge_loaded", 1).map_err(|e| self.err(e))?;
        }
        w.commit().map_err(|e| self.err(e))?;
        Ok(stats)
    }

    /// Writes `items` (id, encoded record) into one knowledge table; with
    /// `replace`, first drops the records whose ids are not among them.
    fn upsert(
        &self,
        w: &redb::WriteTransaction,
        def: TableDefinition<&str, &[u8]>,
        items: Vec<(&str, Vec<u8>)>,
        replace: bool,
        stats: &mut ImportStats,
    ) -> Result<()> {
        let mut t = w.open_table(def).map_err(|e| self.err(e))?;
        if replace {
            let keep: HashSet<&str> = items.iter().map(|(id, _)| *id).collect();
            let before = t.len().map_err(|e| self.err(e))?;
            t.retain(|id, _| keep.contains(id)).map_err(|e| self.err(e))?;
            stats.removed += (before - t.len().map_err(|e| self.err(e))?) as usize;
        }
        for (id, bytes) in items {
            let old = t.insert(id, bytes.as_slice()).map_err(|e| self.err(e))?;
            match old {
                None => stats.added += 1,
                Some(v) if v.value() == bytes.as_slice() => stats.unchanged += 1,
                Some(_) => stats.updated += 1,
            }
        }
        Ok(())
    }

    // ── sessions ───────────────────────────────────────────────────────

    /// The session of `identity`, if it has one.
    pub fn session(&self, identity: &str) -> Result<Option<Session>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(SESSIONS).map_err(|e| self.err(e))?;
        match t.get(identity).map_err(|e| self.err(e))? {
            Some(v) => Ok(Some(self.decode(v.value(), "session")?)),
            None => Ok(None),
        }
    }

    /// Saves (or, with `None`, removes) the session of `identity`, durably
    /// (group commit: returns once the shared transaction is on disk).
    pub fn put_session(&self, identity: &str, session: Option<&Session>) -> Result<()> {
        self.write_session(identity, session, true)
    }

    /// Saves a session whose change is harmless to lose in a crash (only
    /// the rest of a list for "more"): no fsync of its own; it becomes
    /// durable with the next durable commit, after a second, or at close.
    pub fn put_session_lazily(&self, identity: &str, session: &Session) -> Result<()> {
        self.write_session(identity, Some(session), false)
    }

    fn write_session(&self, identity: &str, session: Option<&Session>, durable: bool) -> Result<()> {
        let identity = identity.to_string();
        let bytes = session.map(encode);
        self.write_with(durable, move |w| {
            let mut t = w.open_table(SESSIONS).map_err(|e| e.to_string())?;
            match bytes {
                Some(b) => t.insert(identity.as_str(), b.as_slice()).map(|_| ()),
                None => t.remove(identity.as_str()).map(|_| ()),
            }
            .map_err(|e| e.to_string())
        })
    }

    /// Runs `f` in a group-committed, durable write transaction.
    fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> std::result::Result<R, String> + Send + 'static,
    {
        self.write_with(true, f)
    }

    fn write_with<R, F>(&self, durable: bool, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&redb::WriteTransaction) -> std::result::Result<R, String> + Send + 'static,
    {
        self.committer.write(durable, f).map_err(|detail| StoreError::Io {
            path: self.path.clone(),
            detail,
        })
    }

    // ── registrations ──────────────────────────────────────────────────

    /// Confirmed registrations of an event.
    pub fn confirmed_count(&self, event_id: &str) -> Result<u32> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let t = r.open_table(EVENT_COUNTS).map_err(|e| self.err(e))?;
        let counts: EventCounts = match t.get(event_id).map_err(|e| self.err(e))? {
            Some(v) => self.decode(v.value(), "event counts")?,
            None => EventCounts::default(),
        };
        Ok(counts.confirmed as u32)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8], what: &'static str) -> Result<T> {
        decode(bytes).map_err(|detail| StoreError::BadRecord {
            path: self.path.clone(),
            what,
            detail,
        })
    }
}

/// A record as stored: the format byte, then JSON.
fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = vec![RECORD_FORMAT];
    serde_json::to_writer(&mut out, value).expect("records serialize to JSON");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    match bytes.split_first() {
        Some((&RECORD_FORMAT, json)) => serde_json::from_slice(json).map_err(|e| e.to_string()),
        Some((other, _)) => Err(format!("unknown record format {other}")),
        None => Err("empty record".into()),
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
fn migrate(store: &Store, from: u64) -> Result<()> {
    for version in from..SCHEMA_VERSION {
        // No older versions exist yet. A future step goes here, e.g.
        // `1 => { rewrite records; }`, followed by the version bump below.
        let w = store.db.begin_write().map_err(|e| store.err(e))?;
        {
            let mut meta = w.open_table(META).map_err(|e| store.err(e))?;
            meta.insert("schema_version", version + 1).map_err(|e| store.err(e))?;
        }
        w.commit().map_err(|e| store.err(e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::{Text, parse_str, validate_references};

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

    #[test]
    fn import_upserts_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        assert!(!store.knowledge_loaded().unwrap());
        let k = sample();
        let s = store.import(&k, false).unwrap();
        assert_eq!((s.added, s.updated, s.unchanged), (3, 0, 0));
        assert!(store.knowledge_loaded().unwrap());
        assert_eq!(store.knowledge().unwrap(), k);
        let s = store.import(&k, false).unwrap();
        assert_eq!(s.unchanged, 3);

        let mut k2 = k.clone();
        k2.enterprise.retain(|e| e.id == "a");
        k2.enterprise[0].name = Text::Plain("A2".into());
        let s = store.import(&k2, true).unwrap();
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
}
