//! The sessions as last committed, kept in memory so that most messages
//! read their identity's session without a read transaction (a read
//! transaction, a table and a JSON decode were ~6 % of serve's CPU under
//! the WeChat load).
//!
//! The store stays the authority; the cache only ever holds what a read
//! found committed or nothing:
//! - the writer thread marks an identity as being written before its
//!   session is written (inside the transaction), which drops its entry,
//!   and says when the batch is over: committed, what it wrote is kept
//!   (it is what the store now holds); not committed, it is forgotten;
//! - a read that misses fills the entry only if no write was marked or
//!   ended since the read began (an epoch counts them), and the identity
//!   is not being written.
//!
//! So a read never brings back a value older than a commit it could have
//! seen. Bounded by count: when full it starts again empty.

use std::collections::HashMap;
use std::sync::Mutex;

use super::Session;

/// Identities whose session is kept.
const KEPT: usize = 100_000;

#[derive(Default)]
pub(super) struct SessionCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// `None`: the identity has no session.
    kept: HashMap<String, Option<Session>>,
    /// Moves on every write marked and every batch ended.
    epoch: u64,
    /// Identities written in the batch being committed, with what was
    /// written (kept once the batch commits).
    writing: HashMap<String, Option<Session>>,
}

/// A miss: the epoch the read began in, for [`SessionCache::fill`].
pub(super) struct Miss(u64);

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The kept session of `identity`, or the miss to fill after reading
    /// the store.
    pub(super) fn get(&self, identity: &str) -> Result<Option<Session>, Miss> {
        let inner = self.lock();
        match inner.kept.get(identity) {
            Some(s) => Ok(s.clone()),
            None => Err(Miss(inner.epoch)),
        }
    }

    /// Keeps what a read that missed found, unless a write was marked or
    /// ended since the read began.
    pub(super) fn fill(&self, identity: &str, session: &Option<Session>, miss: Miss) {
        let mut inner = self.lock();
        if inner.epoch != miss.0 || inner.writing.contains_key(identity) {
            return;
        }
        if inner.kept.len() >= KEPT {
            inner.kept.clear();
        }
        inner.kept.insert(identity.to_string(), session.clone());
    }

    /// The writer is about to write `session` as `identity`'s.
    pub(super) fn writing(&self, identity: &str, session: &Option<Session>) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.kept.remove(identity);
        inner.writing.insert(identity.to_string(), session.clone());
    }

    /// The writer's batch is over: what it wrote is kept if it was
    /// committed (the store now holds it), else forgotten (reads find the
    /// old sessions in the store).
    pub(super) fn batch_ended(&self, committed: bool) {
        let mut inner = self.lock();
        if inner.writing.is_empty() {
            return;
        }
        inner.epoch += 1;
        let written = std::mem::take(&mut inner.writing);
        if committed {
            if inner.kept.len() + written.len() > KEPT {
                inner.kept.clear();
            }
            inner.kept.extend(written);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: i64) -> Option<Session> {
        Some(Session {
            updated_at: t,
            ..Session::default()
        })
    }

    #[test]
    fn a_read_that_began_before_a_write_does_not_fill() {
        let c = SessionCache::default();
        let miss = c.get("a").unwrap_err();
        c.writing("a", &at(2));
        c.fill("a", &at(1), miss);
        assert!(c.get("a").is_err(), "the old value is not kept");
        // Read while the batch is being committed: not kept either.
        let miss = c.get("a").unwrap_err();
        c.fill("a", &at(1), miss);
        assert!(c.get("a").is_err());
        c.batch_ended(true);
        assert_eq!(c.get("a").ok(), Some(at(2)), "what was committed is kept");
    }

    #[test]
    fn a_batch_that_failed_leaves_the_store_s_value_to_reads() {
        let c = SessionCache::default();
        let miss = c.get("a").unwrap_err();
        c.fill("a", &at(1), miss);
        c.writing("a", &at(2));
        assert!(c.get("a").is_err());
        c.batch_ended(false);
        let miss = c.get("a").unwrap_err();
        c.fill("a", &at(1), miss);
        assert_eq!(c.get("a").ok(), Some(at(1)));
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn an_absent_session_is_kept_as_absent() {
        let c = SessionCache::default();
        let miss = c.get("b").unwrap_err();
        c.fill("b", &None, miss);
        assert_eq!(c.get("b").ok(), Some(None));
    }
}
