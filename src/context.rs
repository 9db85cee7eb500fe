//! What one message's handling needs to know: the knowledge and its index
//! ([`Brain`], swapped as one after an import), the wording, the store for
//! reads, the time and the language of the conversation. Shared by the
//! bot core and the dialog engine, below both.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use time::{Date, OffsetDateTime};

use crate::knowledge::{Knowledge, Lang};
use crate::phrasebook::Phrasebook;
use crate::search::{Index, Item, Query};
use crate::store::{ItemKind, ItemRef, Store};

/// Knowledge and its index, swapped as one after an import.
pub struct Brain {
    pub knowledge: Knowledge,
    pub index: Index,
    /// For each field (same order as `knowledge.field`), its enterprises.
    pub members: Vec<Vec<usize>>,
    /// What questions were understood as (their reading and ranking),
    /// while this knowledge holds: the same words asked again (a menu
    /// key's message, a popular question) are not read and ranked again.
    pub(crate) understood: Memo<crate::bot::Understood>,
    /// Messages as read into words (a function of the text alone, kept
    /// under the text as sent): menu keys and popular questions are
    /// normalized and cut into terms once.
    queries: Memo<Query>,
    /// List lines and events' times, made when first shown.
    pub(crate) shown: Shown,
    /// Each item's stable reference, as kept in a list's rest.
    pub(crate) keys: ItemKeys,
}

/// The reference of every item, made once per knowledge: a long list keeps
/// dozens of them for "more", now shared instead of made each time.
pub(crate) struct ItemKeys {
    field: Vec<ItemRef>,
    enterprise: Vec<ItemRef>,
    event: Vec<ItemRef>,
    faq: Vec<ItemRef>,
    /// The other way: the item a reference names ("more" resolves up to
    /// 45 of them, among 10,000 items or more).
    items: HashMap<ItemRef, Item>,
}

impl ItemKeys {
    fn new(k: &Knowledge) -> ItemKeys {
        fn keys<'a>(kind: ItemKind, ids: impl Iterator<Item = &'a String>) -> Vec<ItemRef> {
            ids.map(|id| ItemRef::new(kind, id)).collect()
        }
        let mut keys = ItemKeys {
            field: keys(ItemKind::Field, k.field.iter().map(|x| &x.id)),
            enterprise: keys(ItemKind::Enterprise, k.enterprise.iter().map(|x| &x.id)),
            event: keys(ItemKind::Event, k.event.iter().map(|x| &x.id)),
            faq: keys(ItemKind::Faq, k.faq.iter().map(|x| &x.id)),
            items: HashMap::new(),
        };
        let all = [
            (&keys.field, Item::Field as fn(usize) -> Item),
            (&keys.enterprise, Item::Enterprise),
            (&keys.event, Item::Event),
            (&keys.faq, Item::Faq),
        ];
        let mut items = HashMap::new();
        for (kind, item) in all {
            for (i, key) in kind.iter().enumerate() {
                // Ids are unique within a kind (checked at import): the
                // first wins all the same.
                items.entry(key.clone()).or_insert(item(i));
            }
        }
        keys.items = items;
        keys
    }

    /// The item `key` names, if the knowledge still holds it.
    pub(crate) fn item(&self, key: &ItemRef) -> Option<Item> {
        self.items.get(key).copied()
    }

    pub(crate) fn get(&self, item: Item) -> &ItemRef {
        match item {
            Item::Field(i) => &self.field[i],
            Item::Enterprise(i) => &self.enterprise[i],
            Item::Event(i) => &self.event[i],
            Item::Faq(i) => &self.faq[i],
        }
    }
}

/// Texts shown again and again that depend only on the knowledge and the
/// bot's wording (its phrasebook never changes while it runs): each item's
/// list line and each event's start time, one slot per language, made
/// when first shown.
pub(crate) struct Shown {
    field: Vec<Slot>,
    enterprise: Vec<Slot>,
    event: Vec<Slot>,
    faq: Vec<Slot>,
    /// Events' start times, as written in replies.
    when: Vec<Slot>,
}

/// One text per language.
type Slot = [OnceLock<String>; 2];

impl Shown {
    fn new(k: &Knowledge) -> Shown {
        let slots = |n: usize| (0..n).map(|_| [OnceLock::new(), OnceLock::new()]).collect();
        Shown {
            field: slots(k.field.len()),
            enterprise: slots(k.enterprise.len()),
            event: slots(k.event.len()),
            faq: slots(k.faq.len()),
            when: slots(k.event.len()),
        }
    }

    /// `item`'s list line in `lang`, made by `make` the first time.
    pub(crate) fn line(&self, item: Item, lang: Lang, make: impl FnOnce() -> String) -> &str {
        let slot = match item {
            Item::Field(i) => &self.field[i],
            Item::Enterprise(i) => &self.enterprise[i],
            Item::Event(i) => &self.event[i],
            Item::Faq(i) => &self.faq[i],
        };
        slot[lang as usize].get_or_init(make)
    }

    /// When event `i` starts, in `lang`, made by `make` the first time.
    pub(crate) fn when(&self, i: usize, lang: Lang, make: impl FnOnce() -> String) -> &str {
        self.when[i][lang as usize].get_or_init(make)
    }
}

/// Values computed from a question's normalized text on one day, kept
/// for as long as the knowledge they were computed from (a reload makes a
/// new [`Brain`]). Bounded: when full it starts again empty.
pub(crate) struct Memo<V> {
    map: Mutex<HashMap<String, (Date, Arc<V>)>>,
}

/// How many questions a [`Memo`] keeps.
const MEMO_CAPACITY: usize = 512;

impl<V> Memo<V> {
    pub(crate) fn new() -> Memo<V> {
        Memo {
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The value for `key` on `day`, made by `make` (outside the lock)
    /// when it is not kept.
    pub(crate) fn get_or(&self, key: &str, day: Date, make: impl FnOnce() -> V) -> Arc<V> {
        if let Some((d, v)) = self.map.lock().unwrap_or_else(|e| e.into_inner()).get(key)
            && *d == day
        {
            return v.clone();
        }
        let v = Arc::new(make());
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MEMO_CAPACITY {
            map.clear();
        }
        map.insert(key.to_string(), (day, v.clone()));
        v
    }

    fn clear(&self) {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.lock().unwrap().len()
    }
}

impl Brain {
    /// `text` read into words ([`Query::new`]), kept for the next time it
    /// is sent.
    pub fn query(&self, text: &str) -> Arc<Query> {
        // A query does not depend on the day: one day serves for all.
        self.queries.get_or(text, Date::MIN, || Query::new(text))
    }

    pub fn new(knowledge: Knowledge) -> Brain {
        let index = Index::build(&knowledge);
        let mut members = vec![Vec::new(); knowledge.field.len()];
        let position: HashMap<&str, usize> = knowledge
            .field
            .iter()
            .enumerate()
            .map(|(i, f)| (f.id.as_str(), i))
            .collect();
        for (e, ent) in knowledge.enterprise.iter().enumerate() {
            for f in ent.fields.iter().filter_map(|id| position.get(id.as_str())) {
                members[*f].push(e);
            }
        }
        Brain {
            shown: Shown::new(&knowledge),
            keys: ItemKeys::new(&knowledge),
            knowledge,
            index,
            members,
            understood: Memo::new(),
            queries: Memo::new(),
        }
    }

    /// Forgets what questions were understood as, so the next answers read
    /// and rank them again (benchmarks of a question's first reading).
    pub fn forget_understood(&self) {
        self.understood.clear();
        self.queries.clear();
    }
}

/// One message's view of the world.
pub struct Ctx<'a> {
    pub brain: &'a Brain,
    pub phrases: &'a Phrasebook,
    /// For reads only: writes are the core's, in one place.
    pub store: &'a Store,
    pub now: OffsetDateTime,
    pub lang: Lang,
}

impl Ctx<'_> {
    /// A phrasebook text in the message's language.
    pub fn t(&self, key: &str, args: &[(&str, &str)]) -> String {
        self.phrases.t(key, self.lang, args)
    }
}
