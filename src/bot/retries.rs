//! Platform message ids seen recently, with the replies given: a retry
//! (WeChat sends a message again when it got no answer within 5 s) gets the
//! same replies and changes nothing. Bounded by age (the retry window) and
//! by count, oldest first. Messages that changed state are also recorded in
//! the store, in the same transaction as the change, so that a retry after
//! a restart is recognised too.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use crate::message::{Identity, Reply};

/// Entries are found by a keyed 64-bit hash of their key, computed once
/// per message: dropping the oldest entry (once per message when full)
/// then reads neither its key nor hashes it again. The entry keeps its
/// key, and a look-up compares it, so that two keys with one hash can
/// never give one person another's replies.
pub(super) struct Retries {
    seen: HashMap<u64, Entry, BuildHasherDefault<AsIs>>,
    /// Insertion order, for eviction: (unix seconds, hash).
    order: VecDeque<(i64, u64)>,
    capacity: usize,
    /// Keyed per process (the ids come from outside).
    hasher: RandomState,
}

struct Entry {
    /// `identity NUL message id` (an identity never holds a NUL).
    key: Box<str>,
    replies: Vec<Reply>,
}

/// A hash that is already a hash.
#[derive(Default)]
struct AsIs(u64);

impl Hasher for AsIs {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; any other input is folded in.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Retries {
    pub(super) fn new(capacity: usize) -> Retries {
        Retries {
            seen: HashMap::default(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            hasher: RandomState::new(),
        }
    }

    fn hash(&self, identity: &Identity, message_id: &str) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(identity.as_str().as_bytes());
        h.write_u8(0);
        h.write(message_id.as_bytes());
        h.finish()
    }

    /// The replies given to `message_id` of `identity` within `window`
    /// seconds before `now`.
    pub(super) fn get(&mut self, identity: &Identity, message_id: &str, now: i64, window: i64) -> Option<Vec<Reply>> {
        self.evict(now, window);
        let entry = self.seen.get(&self.hash(identity, message_id))?;
        let (who, id) = entry.key.split_once('\0')?;
        (who == identity.as_str() && id == message_id).then(|| entry.replies.clone())
    }

    pub(super) fn put(&mut self, identity: &Identity, message_id: &str, now: i64, replies: &[Reply], window: i64) {
        let hash = self.hash(identity, message_id);
        let mut key = String::with_capacity(identity.as_str().len() + 1 + message_id.len());
        key.push_str(identity.as_str());
        key.push('\0');
        key.push_str(message_id);
        let entry = Entry {
            key: key.into_boxed_str(),
            replies: replies.to_vec(),
        };
        // A key seen before, or (once in 2^64) another with its hash:
        // replaced, and dropped when its first place in the order comes.
        if self.seen.insert(hash, entry).is_none() {
            self.order.push_back((now, hash));
        }
        self.evict(now, window);
    }

    fn evict(&mut self, now: i64, window: i64) {
        while let Some(&(at, hash)) = self.order.front() {
            if self.order.len() <= self.capacity && at >= now - window {
                break;
            }
            self.order.pop_front();
            self.seen.remove(&hash);
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembered_within_the_window_and_the_count() {
        let who = Identity::console("a");
        let mut r = Retries::new(3);
        r.put(&who, "m1", 100, &[Reply::text("one")], 60);
        assert_eq!(r.get(&who, "m1", 150, 60), Some(vec![Reply::text("one")]));
        assert_eq!(r.get(&Identity::console("b"), "m1", 150, 60), None, "per identity");
        assert_eq!(r.get(&who, "m1", 161, 60), None, "forgotten after the window");
        for (i, m) in ["a", "b", "c", "d"].iter().enumerate() {
            r.put(&who, m, 200 + i as i64, &[], 60);
        }
        assert_eq!(r.len(), 3, "bounded by count");
        assert_eq!(r.get(&who, "a", 204, 60), None, "the oldest went first");
        assert!(r.get(&who, "d", 204, 60).is_some());
    }

    #[test]
    fn an_entry_found_under_another_key_s_hash_is_not_given() {
        let (a, b) = (Identity::console("a"), Identity::console("b"));
        let mut r = Retries::new(10);
        r.put(&a, "m1", 100, &[Reply::text("a's reply")], 60);
        // As if (b, m2) hashed like (a, m1).
        let entry = r.seen.remove(&r.hash(&a, "m1")).unwrap();
        r.seen.insert(r.hash(&b, "m2"), entry);
        assert_eq!(r.get(&b, "m2", 101, 60), None);
        // A message id holding the separator is still told apart.
        r.put(&a, "x\0y", 102, &[Reply::text("one")], 60);
        assert_eq!(r.get(&a, "x\0y", 103, 60), Some(vec![Reply::text("one")]));
        assert_eq!(r.get(&a, "x", 103, 60), None);
    }
}
