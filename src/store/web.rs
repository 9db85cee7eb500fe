//! Web chat sessions: the ids the server issued to browsers, so that a
//! session id is accepted only if this server made it, also after a
//! restart. Table `websession_created`: session id → unix seconds of issue.

use redb::TableDefinition;

use super::{Result, Store};

/// session id (32 lowercase hex) → created at (unix seconds)
pub(super) const WEB_SESSIONS: TableDefinition<&str, u64> = TableDefinition::new("websession_created");

impl Store {
    /// Records `id` as a web session issued at `now` (unix seconds),
    /// durably: the id is known before it is handed out.
    pub fn issue_web_session(&self, id: &str, now: i64) -> Result<()> {
        let id = id.to_string();
        let created = u64::try_from(now).unwrap_or(0);
        self.write(move |w| {
            w.open_table(WEB_SESSIONS)?.insert(id.as_str(), created)?;
            Ok(())
        })
    }

    /// Whether `id` was issued by [`Store::issue_web_session`].
    pub fn web_session_known(&self, id: &str) -> Result<bool> {
        self.read(|r| Ok(r.open_table(WEB_SESSIONS)?.get(id)?.is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_sessions_are_known_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.redb");
        let store = Store::open(&path).unwrap();
        assert!(!store.web_session_known("ab").unwrap());
        store.issue_web_session("ab", 1_700_000_000).unwrap();
        assert!(store.web_session_known("ab").unwrap());
        drop(store);
        let store = Store::open(&path).unwrap();
        assert!(store.web_session_known("ab").unwrap());
        assert!(!store.web_session_known("cd").unwrap());
    }
}
