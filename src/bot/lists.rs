//! While serving, the rest of each identity's last list (for "more") is
//! kept here in memory rather than written to the store on every list: one
//! long-lived process needs no file for it, and a restart that forgets it
//! costs only a "more". Bounded: past the limit the oldest half goes.

use std::collections::HashMap;

use crate::knowledge::Lang;
use crate::message::Identity;
use crate::store::MoreList;

pub(super) struct Lists {
    kept: HashMap<Identity, (u64, MoreList)>,
    /// The language of an identity's last message, when it changed since
    /// the store last saved it.
    langs: HashMap<Identity, Lang>,
    next: u64,
    limit: usize,
}

impl Lists {
    pub(super) fn new(limit: usize) -> Lists {
        Lists {
            kept: HashMap::new(),
            langs: HashMap::new(),
            next: 0,
            limit: limit.max(2),
        }
    }

    pub(super) fn lang(&self, who: &Identity) -> Option<Lang> {
        self.langs.get(who).copied()
    }

    pub(super) fn set_lang(&mut self, who: &Identity, lang: Option<Lang>) {
        match lang {
            Some(l) => {
                if self.langs.len() >= self.limit {
                    self.langs.clear(); // rare: the store's language serves meanwhile
                }
                self.langs.insert(who.clone(), l);
            }
            None => {
                self.langs.remove(who);
            }
        }
    }

    pub(super) fn get(&self, who: &Identity) -> Option<MoreList> {
        self.kept.get(who).map(|(_, l)| l.clone())
    }

    pub(super) fn set(&mut self, who: &Identity, list: Option<MoreList>) {
        match list {
            Some(l) => {
                self.next += 1;
                self.kept.insert(who.clone(), (self.next, l));
                if self.kept.len() > self.limit {
                    let oldest_kept = self.next - (self.limit / 2) as u64;
                    self.kept.retain(|_, (n, _)| *n > oldest_kept);
                }
            }
            None => {
                self.kept.remove(who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> MoreList {
        MoreList {
            shown: n,
            rest: vec![format!("event:e{n}")],
            unlisted: 0,
        }
    }

    #[test]
    fn kept_per_identity_and_bounded() {
        let mut l = Lists::new(4);
        let a = Identity::console("a");
        l.set(&a, Some(list(5)));
        assert_eq!(l.get(&a), Some(list(5)));
        l.set(&a, None);
        assert_eq!(l.get(&a), None);
        for i in 0..10 {
            l.set(&Identity::console(&format!("p{i}")), Some(list(i)));
        }
        assert!(l.kept.len() <= 4);
        assert_eq!(l.get(&Identity::console("p9")), Some(list(9)), "the newest stay");
        assert_eq!(l.get(&Identity::console("p0")), None, "the oldest go");
    }
}
