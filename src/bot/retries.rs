//! Platform message ids seen recently, with the replies given: a retry
//! (WeChat sends a message again when it got no answer within 5 s) gets the
//! same replies and changes nothing. Bounded by age (the retry window) and
//! by count, oldest first. Messages that changed state are also recorded in
//! the store, in the same transaction as the change, so that a retry after
//! a restart is recognised too.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::message::{Identity, Reply};

/// An entry's key: the identity and the message id, one string (`key`),
/// shared by the map and the eviction order.
type Key = Arc<str>;

pub(super) struct Retries {
    seen: HashMap<Key, (i64, Vec<Reply>)>,
    /// Insertion order, for eviction: (unix seconds, key).
    order: VecDeque<(i64, Key)>,
    capacity: usize,
    /// Where a look-up's key is built, so that looking up allocates nothing.
    scratch: String,
}

/// Writes the key of `message_id` of `identity` into `out`. The identity
/// (`channel:id`) never holds a NUL, so the two parts cannot run together.
fn key_into(out: &mut String, identity: &Identity, message_id: &str) {
    out.clear();
    out.push_str(identity.as_str());
    out.push('\0');
    out.push_str(message_id);
}

impl Retries {
    pub(super) fn new(capacity: usize) -> Retries {
        Retries {
            seen: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            scratch: String::new(),
        }
    }

    /// The replies given to `message_id` of `identity` within `window`
    /// seconds before `now`.
    pub(super) fn get(&mut self, identity: &Identity, message_id: &str, now: i64, window: i64) -> Option<Vec<Reply>> {
        self.evict(now, window);
        key_into(&mut self.scratch, identity, message_id);
        self.seen.get(self.scratch.as_str()).map(|(_, r)| r.clone())
    }

    pub(super) fn put(&mut self, identity: &Identity, message_id: &str, now: i64, replies: &[Reply], window: i64) {
        key_into(&mut self.scratch, identity, message_id);
        if let Some(entry) = self.seen.get_mut(self.scratch.as_str()) {
            *entry = (now, replies.to_vec());
        } else {
            let key: Key = Arc::from(self.scratch.as_str());
            self.seen.insert(key.clone(), (now, replies.to_vec()));
            self.order.push_back((now, key));
        }
        self.evict(now, window);
    }

    fn evict(&mut self, now: i64, window: i64) {
        while let Some((at, _)) = self.order.front() {
            if self.order.len() <= self.capacity && *at >= now - window {
                break;
            }
            let (_, key) = self.order.pop_front().expect("front exists");
            self.seen.remove(&*key);
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
}
