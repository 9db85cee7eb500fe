//! The bot core: platform-neutral. A channel adapter hands it an
//! [`Inbound`] message (an identity and a text) and sends back the replies
//! it returns. It knows nothing of Telegram, WeChat, HTTP or XML.
//!
//! Per message: load the identity's session from the store, decide what the
//! message asks for ([`answer`]), and commit the new session durably before
//! the replies are returned.

mod answer;
pub mod phrasebook;
mod render;

use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, RwLock};

use time::OffsetDateTime;

use crate::dialog::{self, Dialogs};
use crate::knowledge::{Knowledge, Lang};
use crate::search::{Index, Query};
use crate::store::{Store, StoreError};
pub use phrasebook::Phrasebook;

/// What one message's handling needs to know.
pub struct Ctx<'a> {
    pub brain: &'a Brain,
    pub phrases: &'a Phrasebook,
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

/// Locks that serialize the messages of one identity (striped: an
/// identity always maps to the same lock; different identities rarely
/// share one, and then only wait, never deadlock).
struct IdentityLocks(Vec<Mutex<()>>);

impl IdentityLocks {
    fn new(n: usize) -> IdentityLocks {
        IdentityLocks((0..n).map(|_| Mutex::new(())).collect())
    }

    fn lock(&self, identity: &Identity) -> std::sync::MutexGuard<'_, ()> {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        identity.hash(&mut h);
        let m = &self.0[(h.finish() % self.0.len() as u64) as usize];
        m.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Who sent a message: `channel:id`, e.g. `console:local`, `telegram:42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity(String);

impl Identity {
    /// Parses `channel:id` where channel is a known channel name.
    pub fn parse(s: &str) -> Option<Identity> {
        let (channel, id) = s.split_once(':')?;
        let known = matches!(channel, "console" | "telegram" | "wechat" | "web");
        (known && !id.is_empty() && !id.chars().any(char::is_control)).then(|| Identity(s.to_string()))
    }

    pub fn console(name: &str) -> Identity {
        Identity(format!("console:{name}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn channel(&self) -> &str {
        self.0.split_once(':').map_or("", |(c, _)| c)
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A message from a person, as every channel hands it over.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub identity: Identity,
    pub text: String,
}

/// What the bot could not do; the adapter says "something went wrong".
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The current time; replaceable for tests and demos.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

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
        let position: std::collections::HashMap<&str, usize> = knowledge
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

/// How the bot behaves, besides its data.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds of silence after which a dialog expires.
    pub dialog_timeout_secs: i64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            dialog_timeout_secs: 30 * 60,
        }
    }
}

pub struct Bot {
    store: Arc<Store>,
    brain: RwLock<Arc<Brain>>,
    phrases: Phrasebook,
    dialogs: Dialogs,
    settings: Settings,
    clock: Clock,
    locks: IdentityLocks,
}

impl Bot {
    /// A bot over `store`, answering from the store's knowledge.
    pub fn new(
        store: Arc<Store>,
        phrases: Phrasebook,
        dialogs: Dialogs,
        settings: Settings,
        clock: Clock,
    ) -> Result<Bot, BotError> {
        let brain = Brain::new(store.knowledge()?);
        Ok(Bot {
            store,
            brain: RwLock::new(Arc::new(brain)),
            phrases,
            dialogs,
            settings,
            clock,
            locks: IdentityLocks::new(256),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Rebuilds the index after the store's knowledge changed.
    pub fn reload_knowledge(&self) -> Result<(), BotError> {
        let brain = Arc::new(Brain::new(self.store.knowledge()?));
        *self.brain.write().unwrap_or_else(|e| e.into_inner()) = brain;
        Ok(())
    }

    pub fn brain(&self) -> Arc<Brain> {
        self.brain.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A readable account of how the knowledge ranks for `text`: the terms,
    /// the fields found, and the best hits with their evidence.
    pub fn explain(&self, text: &str) -> String {
        let brain = self.brain();
        let q = Query::new(text);
        let mut out = format!(
            "terms: {}
",
            q.terms.iter().map(|t| t.text.as_str()).collect::<Vec<_>>().join(" ")
        );
        for (f, _) in brain.index.fields_in(&q) {
            out.push_str(&format!(
                "field: {}
",
                brain.knowledge.field[f].id
            ));
        }
        for h in brain.index.search(&q) {
            let id = match h.item {
                crate::search::Item::Field(i) => format!("field:{}", brain.knowledge.field[i].id),
                crate::search::Item::Enterprise(i) => {
                    format!("enterprise:{}", brain.knowledge.enterprise[i].id)
                }
                crate::search::Item::Event(i) => format!("event:{}", brain.knowledge.event[i].id),
                crate::search::Item::Faq(i) => format!("faq:{}", brain.knowledge.faq[i].id),
            };
            out.push_str(&format!(
                "{:7.3}  {}  terms={} coverage={:.2}{}{}\n",
                h.score,
                id,
                h.terms,
                h.coverage,
                if h.confident { " confident" } else { "" },
                if h.full_name { " full-name" } else { "" }
            ));
        }
        out
    }

    /// Handles one message and returns the replies, in order. The identity's
    /// state is durably committed before this returns.
    #[tracing::instrument(skip_all, fields(identity = %msg.identity))]
    pub fn handle(&self, msg: &Inbound) -> Result<Vec<String>, BotError> {
        let _one_at_a_time = self.locks.lock(&msg.identity);
        let now = (self.clock)();
        let before = self.store.session(msg.identity.as_str())?;
        let mut session = before.clone().unwrap_or_default();
        let lang = if self.dialogs.is_link(&msg.text) {
            session.lang.unwrap_or(Lang::Zh)
        } else {
            Lang::detect_or(&msg.text, session.lang)
        };
        session.lang = Some(lang);
        let brain = self.brain();
        let ctx = Ctx {
            brain: &brain,
            phrases: &self.phrases,
            store: &self.store,
            now,
            lang,
        };
        let turn = dialog::Turn {
            ctx: &ctx,
            identity: msg.identity.as_str(),
            timeout_secs: self.settings.dialog_timeout_secs,
        };
        let q = Query::new(&msg.text);
        let replies = match dialog::handle(&self.dialogs, &turn, &mut session, &msg.text, &q) {
            dialog::Outcome::Reply { replies, saved: true } => {
                tracing::debug!("dialog completed");
                return Ok(replies);
            }
            dialog::Outcome::Reply { replies, saved: false } => {
                session.more = None;
                replies
            }
            dialog::Outcome::NotMine => {
                if self.phrases.intents.more.is_whole(&q) {
                    vec![answer::more(&ctx, &mut session)]
                } else {
                    let r = answer::answer(&ctx, &q);
                    session.more = r.more;
                    vec![r.text]
                }
            }
        };
        // A dialog step is durable before the reply; the rest of a list is
        // harmless to lose and is saved without an fsync of its own. The
        // language alone is not worth a write: it goes with the next change.
        let before = before.unwrap_or_default();
        if before.dialog != session.dialog {
            session.updated_at = now.unix_timestamp();
            self.store.put_session(msg.identity.as_str(), Some(&session))?;
        } else if before.more != session.more {
            session.updated_at = now.unix_timestamp();
            self.store.put_session_lazily(msg.identity.as_str(), &session)?;
        }
        tracing::debug!(chars = msg.text.chars().count(), "answered");
        Ok(replies)
    }
}
