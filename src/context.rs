//! What one message's handling needs to know: the knowledge and its index
//! ([`Brain`], swapped as one after an import), the wording, the store for
//! reads, the time and the language of the conversation. Shared by the
//! bot core and the dialog engine, below both.

use std::collections::HashMap;

use time::OffsetDateTime;

use crate::knowledge::{Knowledge, Lang};
use crate::phrasebook::Phrasebook;
use crate::search::Index;
use crate::store::Store;

/// Knowledge and its index, swapped as one after an import.
pub struct Brain {
    pub knowledge: Knowledge,
    pub index: Index,
    /// For each field (same order as `knowledge.field`), its enterprises.
    pub members: Vec<Vec<usize>>,
}

impl Brain {
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
            knowledge,
            index,
            members,
        }
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
