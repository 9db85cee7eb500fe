//! While serving, the rest of each identity's last list (for "more") is
//! kept here in memory rather than written to the store on every list: one
//! long-lived process needs no file for it, and a restart that forgets it
//! costs only a "more". Bounded: past the limit the oldest half goes.

use std::collections::HashMap;

use crate::knowledge::Lang;
use crate::message::Identity;
use crate::store::MoreList;

pub(super) struct Lists {
    kept: HashMap<Identity, Kept>,
    next: u64,
    limit: usize,
}

/// What memory holds for one identity.
struct Kept {
    /// When it was last changed (for dropping the oldest).
    seq: u64,
    more: Option<MoreList>,
    /// The language of the identity's last message, when it changed since
    /// the store last saved it.
    lang: Option<Lang>,
}

impl Lists {
    pub(super) fn new(limit: usize) -> Lists {
        Lists {
            kept: HashMap::new(),
            next: 0,
            limit: limit.max(2),
        }
    }

    /// The rest of `who`'s last list and their newer language.
    pub(super) fn get(&self, who: &Identity) -> (Option<MoreList>, Option<Lang>) {
        self.kept.get(who).map_or((None, None), |k| (k.more.clone(), k.lang))
    }

    /// Replaces the rest of `who`'s last list (`Some(None)`: forgets it)
    /// and records a newer language, when given.
    pub(super) fn set(&mut self, who: &Identity, more: Option<Option<MoreList>>, lang: Option<Lang>) {
        if more.is_none() && lang.is_none() {
            return;
        }
        self.next += 1;
        let seq = self.next;
        let kept = self.kept.entry(who.clone()).or_insert(Kept {
            seq,
            more: None,
            lang: None,
        });
        kept.seq = seq;
        if let Some(more) = more {
            kept.more = more;
        }
        if lang.is_some() {
            kept.lang = lang;
        }
        if kept.more.is_none() && kept.lang.is_none() {
            self.kept.remove(who);
        } else if self.kept.len() > self.limit {
            // The oldest half goes: a forgotten list costs a "more", a
            // forgotten language is the store's (saved with the next change).
            let oldest_kept = self.next - (self.limit / 2) as u64;
            self.kept.retain(|_, k| k.seq > oldest_kept);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> MoreList {
        MoreList {
            shown: n,
            rest: vec![crate::store::ItemRef::new(
                crate::store::ItemKind::Event,
                &format!("e{n}"),
            )]
            .into(),
            unlisted: 0,
        }
    }

    #[test]
    fn kept_per_identity_and_bounded() {
        let mut l = Lists::new(4);
        let a = Identity::console("a");
        l.set(&a, Some(Some(list(5))), None);
        assert_eq!(l.get(&a), (Some(list(5)), None));
        l.set(&a, None, Some(Lang::En));
        assert_eq!(l.get(&a), (Some(list(5)), Some(Lang::En)), "a language beside the list");
        l.set(&a, Some(None), None);
        assert_eq!(l.get(&a), (None, Some(Lang::En)));
        for i in 0..10 {
            l.set(&Identity::console(&format!("p{i}")), Some(Some(list(i))), None);
        }
        assert!(l.kept.len() <= 4);
        assert_eq!(l.get(&Identity::console("p9")).0, Some(list(9)), "the newest stay");
        assert_eq!(l.get(&Identity::console("p0")).0, None, "the oldest go");
    }
}
