//! The bot core: platform-neutral. A channel adapter hands it an
//! [`Inbound`] message and renders the [`Reply`]s it returns. It knows
//! nothing of Telegram, WeChat, HTTP or XML.
//!
//! [`Bot::handle`] is the one entry point, `async`, for every channel:
//! - messages of one identity are handled one at a time, in the order
//!   `handle` was called (`lanes`); different identities never wait for
//!   each other, except in the store's shared group commit;
//! - the synchronous work (index, store reads, deciding) runs on the core's
//!   own small thread pool (`workers`), off the async worker threads;
//! - a message whose platform id was handled before gets the replies given
//!   the first time and changes nothing (`retries`, and the store's record
//!   committed with the state change);
//! - the dialog engine decides, this module carries the decision out: it
//!   saves the session, with the dialog's effect and the retry record, in
//!   one transaction (`Bot::process`);
//! - a store that cannot be read or written is said ("temporarily
//!   unavailable"), the session is left as it was, and the cause is logged.

mod answer;
mod explain;
mod lanes;
mod limits;
mod lists;
mod render;
mod retries;
mod staff;
#[cfg(test)]
mod tests;
mod workers;

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, RwLock};

use time::OffsetDateTime;

pub use crate::context::{Brain, Ctx};
use crate::dialog::{self, Dialogs, Said};
use crate::knowledge::Lang;
pub use crate::message::{Channel, Choice, Identity, Inbound, Input, Reply};
pub use crate::phrasebook::{self, Phrasebook};
use crate::search::Query;
use crate::store::{Pending, Session, Store, StoreError, SubscriberChange, TurnDone, TurnWrite};
pub(crate) use answer::Understood;
use std::sync::atomic::Ordering;

/// What the bot could not do at all (it could not even start).
#[derive(Debug, thiserror::Error)]
pub enum BotError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Identities whose list rest is kept in memory while serving.
const LISTS_KEPT: usize = 100_000;

/// What the core counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages recognised as retries (answered with the first replies).
    pub retries: std::sync::atomic::AtomicU64,
    /// Messages answered "temporarily unavailable" (store failures).
    pub unavailable: std::sync::atomic::AtomicU64,
    /// Messages over the per-identity rate limit.
    pub limited: std::sync::atomic::AtomicU64,
}

/// The current time; replaceable for tests and demos.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// How the bot behaves, besides its data.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Seconds of silence after which a dialog expires.
    pub dialog_timeout_secs: i64,
    /// Longer messages are refused politely (`[server] max_message_chars`).
    pub max_message_chars: usize,
    /// How long a platform message id is remembered, in seconds.
    pub retry_window_secs: i64,
    /// The most message ids remembered in memory (older ones are still
    /// found in the store when they changed state).
    pub retry_capacity: usize,
    /// Menu keys and the messages they stand for (`[wechat.menu]`).
    pub menu: BTreeMap<String, String>,
    /// Messages a minute per identity (`[server] messages_per_minute`);
    /// 0 is no limit. Past it: "too fast" once, then silence until the
    /// minute is over.
    pub messages_per_minute: u32,
    /// Park staff (`[staff] members`): they may announce and see figures.
    pub staff: std::collections::BTreeSet<String>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            dialog_timeout_secs: 30 * 60,
            max_message_chars: 1000,
            retry_window_secs: 15 * 60,
            retry_capacity: 100_000,
            menu: BTreeMap::new(),
            messages_per_minute: 0,
            staff: Default::default(),
        }
    }
}

pub struct Bot {
    store: Arc<Store>,
    brain: RwLock<Arc<Brain>>,
    phrases: Arc<Phrasebook>,
    dialogs: Dialogs,
    settings: Settings,
    clock: Clock,
    lanes: Arc<lanes::Lanes>,
    /// Serving: the rest of each identity's last list, in memory.
    lists: Option<Mutex<lists::Lists>>,
    /// The threads that run each message's synchronous part.
    workers: workers::Workers,
    retries: Mutex<retries::Retries>,
    limiter: Mutex<limits::Limiter>,
    stats: Stats,
    /// When the newest message id kept in the store was handled (unix
    /// seconds; `i64::MIN` for none): read from the store at the start,
    /// raised as ids are written. The store keeps only the ids of messages
    /// that changed something; when the retry window does not reach back
    /// to this time, a message id memory does not know needs no read.
    stored_until: std::sync::atomic::AtomicI64,
    /// Tests: an identity whose handling is slow.
    #[cfg(test)]
    slow: Mutex<Option<(Identity, std::time::Duration)>>,
}

/// While serving: what a message changes in the in-memory list and
/// language state, applied once its turn is committed (or at once when
/// nothing is written).
#[derive(Default)]
struct MemoryUpdate {
    /// The rest of the last list (`Some(None)`: forget it).
    more: Option<Option<crate::store::MoreList>>,
    lang: Option<Lang>,
}

/// A message handled on a core thread: answered, or its turn queued
/// for the group commit (awaited by [`Bot::handle`]).
enum Processed {
    Done(Vec<Reply>),
    Committing {
        pending: Pending<TurnDone>,
        lang: Lang,
        memory: MemoryUpdate,
    },
}

/// What carrying a decision out came to.
enum Carried {
    Replies(Vec<Reply>),
    Committing(Pending<TurnDone>, MemoryUpdate),
}

/// What one message comes to before it is carried out.
struct Decision {
    replies: Vec<Reply>,
    finish: Option<dialog::Finish>,
    /// An opt-out or opt-in the person asked for.
    subscription: Option<SubscriberChange>,
}

impl Decision {
    /// A dialog's step; a dialog message ends any list that was shown.
    fn step(step: Box<dialog::Step>, session: &mut Session) -> Decision {
        session.more = None;
        Decision {
            replies: step.replies,
            finish: step.finish,
            subscription: None,
        }
    }

    fn reply(text: String) -> Decision {
        Decision {
            replies: vec![Reply::text(text)],
            finish: None,
            subscription: None,
        }
    }
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
        let retries = retries::Retries::new(settings.retry_capacity);
        let stored_until = store.newest_handled()?.unwrap_or(i64::MIN).into();
        Ok(Bot {
            store,
            brain: RwLock::new(Arc::new(brain)),
            phrases: Arc::new(phrases),
            dialogs,
            settings,
            clock,
            lanes: Arc::new(lanes::Lanes::default()),
            workers: workers::Workers::start(),
            lists: None,
            retries: Mutex::new(retries),
            limiter: Mutex::new(limits::Limiter::default()),
            stats: Stats::default(),
            stored_until,
            #[cfg(test)]
            slow: Mutex::new(None),
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Tests: makes every message of `who` take `pause` longer.
    #[cfg(test)]
    pub(crate) fn slow_down(&self, who: Identity, pause: std::time::Duration) {
        *self.slow.lock().unwrap() = Some((who, pause));
    }

    /// Switches on what only a server needs: the per-identity message
    /// limit (`[server] messages_per_minute`), and the rest of each list
    /// ("more") kept in memory instead of written to the store (one
    /// long-lived process; a restart forgets it, which is harmless).
    pub fn serving(&mut self, config: &crate::config::Config) {
        self.settings.messages_per_minute = config.server.messages_per_minute;
        self.lists = Some(Mutex::new(lists::Lists::new(LISTS_KEPT)));
    }

    /// The bot's clock (pinned by `PARKBOT_NOW` in demos and tests).
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
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

    /// Handles one message and returns the replies, in order; the
    /// identity's state is durably committed before they are returned.
    ///
    /// The message takes its place in its identity's queue when this is
    /// called (not when the future is first polled), so an adapter that
    /// calls `handle` in arrival order gets arrival order. Dropping the
    /// future gives up the place; work already started still completes.
    pub fn handle(self: &Arc<Self>, msg: Inbound) -> impl Future<Output = Vec<Reply>> + Send + 'static {
        let ticket = self.lanes.ticket(&msg.identity);
        let bot = self.clone();
        let first = first_lang(&msg);
        async move {
            ticket.turn().await;
            // From here the message is handled to the end even if the
            // caller goes away (a closed connection), so that its
            // identity's next message never overtakes it: the ticket goes
            // with the work, and is given up only when the replies are
            // final (after the commit, when there is one).
            let (tx, rx) = tokio::sync::oneshot::channel();
            let rt = tokio::runtime::Handle::current();
            let core = bot.clone();
            bot.workers.submit(move || {
                let processed = catch_unwind(AssertUnwindSafe(|| core.process(&msg)));
                match processed {
                    Ok(Processed::Done(replies)) => {
                        drop(ticket); // the next message of this identity may go
                        drop(core); // see below
                        let _ = tx.send(replies);
                    }
                    // The commit is awaited on the async side: no thread
                    // waits through the fsync, and the identity's next
                    // message waits for it.
                    Ok(Processed::Committing { pending, lang, memory }) => {
                        rt.spawn(async move {
                            let replies = match pending.await {
                                Ok((outcome, replies)) => {
                                    log_outcome(&msg.identity, outcome.as_ref());
                                    core.apply_memory(&msg.identity, memory);
                                    core.remember_replies(&msg, &replies);
                                    replies
                                }
                                Err(e) => core.unavailable(lang, &e),
                            };
                            drop(ticket);
                            // Before the caller has the replies: whoever drops
                            // the last handle on the bot then closes its store.
                            drop(core);
                            let _ = tx.send(replies);
                        });
                    }
                    Err(panic) => {
                        let panic = panic_message(panic.as_ref());
                        tracing::error!(identity = %msg.identity, panic = %panic, "handling a message failed");
                        drop(ticket);
                        let replies = vec![Reply::text(core.phrases.t("unavailable", first, &[]))];
                        drop(core);
                        let _ = tx.send(replies);
                    }
                }
            });
            rx.await.unwrap_or_else(|_| {
                tracing::error!("handling a message failed: the core's threads have stopped");
                vec![Reply::text(bot.phrases.t("unavailable", first, &[]))]
            })
        }
    }

    /// Remembers the replies to a message that has a platform id.
    fn remember_replies(&self, msg: &Inbound, replies: &[Reply]) {
        if let Some(id) = &msg.message_id {
            self.remember(&msg.identity, id, (self.clock)().unix_timestamp(), replies);
        }
    }

    /// The synchronous handling of one message, in its identity's turn:
    /// the replies, or the commit that will give them.
    #[tracing::instrument(skip_all, fields(identity = %msg.identity))]
    fn process(&self, msg: &Inbound) -> Processed {
        #[cfg(test)]
        {
            let slow = self.slow.lock().unwrap().clone();
            if let Some((who, pause)) = slow
                && who == msg.identity
            {
                std::thread::sleep(pause);
            }
        }
        let now = (self.clock)();
        let at = now.unix_timestamp();
        let window = self.settings.retry_window_secs;
        let fallback_lang = first_lang(msg);
        if let Some(id) = &msg.message_id {
            if let Some(replies) = self.remembered(&msg.identity, id, at) {
                tracing::info!(message_id = %id, "retry recognised: the first replies again");
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                return Processed::Done(replies);
            }
            let stored = if self.store_may_know(at - window) {
                self.store.handled(msg.identity.as_str(), id, at - window)
            } else {
                Ok(None)
            };
            match stored {
                Ok(Some(replies)) => {
                    tracing::info!(message_id = %id, "retry recognised (from the store)");
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.remember(&msg.identity, id, at, &replies);
                    return Processed::Done(replies);
                }
                Ok(None) => {}
                Err(e) => return Processed::Done(self.unavailable(fallback_lang, &e)),
            }
        }
        if let Some(limited) = self.rate_limit(msg, at, fallback_lang) {
            return Processed::Done(limited);
        }
        let mut before = match self.store.session(msg.identity.as_str()) {
            Ok(s) => s,
            Err(e) => return Processed::Done(self.unavailable(fallback_lang, &e)),
        };
        if let (Some(lists), Some(stored)) = (&self.lists, before.as_mut()) {
            // Serving: the rest of the last list and a language switch live
            // in memory, newer than what the store has (see `carry_out`).
            let lists = lists.lock().unwrap_or_else(|e| e.into_inner());
            let (more, lang) = lists.get(&msg.identity);
            stored.more = more;
            stored.lang = lang.or(stored.lang);
        }
        let mut session = before.clone().unwrap_or_default();
        // The conversation's language; a new one starts in the language the
        // platform reports, until the person's own words say otherwise.
        let known = session.lang.or(msg.lang);
        let lang = match &msg.input {
            Input::Text(t) => Lang::detect_or(t, known),
            _ => known.unwrap_or(Lang::Zh),
        };
        session.lang = Some(lang);
        match self.carry_out(msg, before, session, now, lang) {
            Ok(Carried::Replies(replies)) => {
                if let Some(id) = &msg.message_id {
                    self.remember(&msg.identity, id, at, &replies);
                }
                Processed::Done(replies)
            }
            Ok(Carried::Committing(pending, memory)) => Processed::Committing { pending, lang, memory },
            Err(e) => Processed::Done(self.unavailable(lang, &e)),
        }
    }

    /// Whether a message id unknown in memory may be in the store (handled
    /// at or after `since`): only when an id the store keeps is that young.
    /// The ids of other messages live in memory only, as before this
    /// check: one dropped from there (for room, above ~110 messages/s) is
    /// handled again if it comes back. That changes nothing in the store;
    /// a retried "more" would show the next page again.
    fn store_may_know(&self, since: i64) -> bool {
        since <= self.stored_until.load(Ordering::Acquire)
    }

    fn remembered(&self, identity: &Identity, message_id: &str, at: i64) -> Option<Vec<Reply>> {
        let mut r = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        r.get(identity, message_id, at, self.settings.retry_window_secs)
    }

    fn remember(&self, identity: &Identity, message_id: &str, at: i64, replies: &[Reply]) {
        let mut r = self.retries.lock().unwrap_or_else(|e| e.into_inner());
        r.put(identity, message_id, at, replies, self.settings.retry_window_secs);
    }

    /// Over the per-identity limit: "too fast" once, then nothing until
    /// the minute is over. `None` when the message may go on.
    fn rate_limit(&self, msg: &Inbound, at: i64, lang: Lang) -> Option<Vec<Reply>> {
        let per_minute = self.settings.messages_per_minute;
        // Follows, unfollows and deep links change who is subscribed: never
        // dropped, whatever the pace.
        let exempt = matches!(
            msg.input,
            Input::Unsubscribe | Input::Subscribe { .. } | Input::Start { .. }
        );
        if per_minute == 0 || exempt {
            return None;
        }
        let verdict = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .check(&msg.identity, at, per_minute);
        match verdict {
            limits::Verdict::Go => None,
            limits::Verdict::Warn => {
                self.stats.limited.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("over the message limit: told once");
                Some(vec![Reply::text(self.phrases.t("too_fast", lang, &[]))])
            }
            limits::Verdict::Silent => {
                self.stats.limited.fetch_add(1, Ordering::Relaxed);
                Some(Vec::new())
            }
        }
    }

    /// Said when the store fails: nothing was changed, the person may try
    /// again and continue where they were.
    fn unavailable(&self, lang: Lang, e: &StoreError) -> Vec<Reply> {
        self.stats.unavailable.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "the store failed; the person was told to try again");
        vec![Reply::text(self.phrases.t("unavailable", lang, &[]))]
    }

    /// Decides, then saves what changed (with the dialog's effect and the
    /// retry record) in one transaction, and returns the replies.
    fn carry_out(
        &self,
        msg: &Inbound,
        before: Option<Session>,
        mut session: Session,
        now: OffsetDateTime,
        lang: Lang,
    ) -> Result<Carried, StoreError> {
        let brain = self.brain();
        let ctx = Ctx {
            brain: &brain,
            phrases: &self.phrases,
            store: &self.store,
            now,
            lang,
        };
        let first_contact = before.is_none();
        let mut before = before.unwrap_or_default();
        let decision = self.decide(&ctx, msg, &mut session)?;
        let mut memory = MemoryUpdate::default();
        if self.lists.is_some() {
            // Serving: the rest of a list never goes to the store.
            let (was, now) = (before.more.take(), session.more.take());
            if was != now {
                memory.more = Some(now);
            }
            // A language switch alone is kept in memory too, and saved with
            // the identity's next durable change (the store has the one it
            // first wrote until then).
            if before.lang != session.lang && !first_contact {
                memory.lang = session.lang;
                before.lang = session.lang;
            }
        }
        let subscriber = match &msg.input {
            _ if decision.subscription.is_some() => decision.subscription.clone(),
            Input::Subscribe { scene } => Some(SubscriberChange::Subscribe { scene: scene.clone() }),
            Input::Start { payload } => Some(SubscriberChange::Subscribe { scene: payload.clone() }),
            Input::Unsubscribe => Some(SubscriberChange::Unsubscribe),
            _ if first_contact => Some(SubscriberChange::FirstContact),
            _ => None,
        };
        let dialog_changed = before.dialog != session.dialog;
        // The rest of a list, or a new language (for messages that carry
        // none, like a deep link): cheap state, written without an fsync.
        let lazy_changed = before.more != session.more || before.lang != session.lang;
        if decision.finish.is_none() && !dialog_changed && !lazy_changed && subscriber.is_none() {
            // A plain answer writes nothing.
            self.apply_memory(&msg.identity, memory);
            return Ok(Carried::Replies(decision.replies));
        }
        let at = now.unix_timestamp();
        session.updated_at = at;
        let (effect, wording) = match decision.finish {
            Some(f) => (Some(f.effect), Some(f.wording)),
            None => (None, None),
        };
        let has_effect = effect.is_some();
        let write = TurnWrite {
            identity: msg.identity.as_str().to_string(),
            now: at,
            session: Some(Some(session)),
            // A dialog step is durable before the reply; the rest of a list
            // is harmless to lose and is saved without an fsync of its own.
            // A subscription change is durable when asked for (follow,
            // unfollow); a first contact rides along with the next durable
            // commit (at most a second later).
            durable: has_effect
                || dialog_changed
                || subscriber
                    .as_ref()
                    .is_some_and(|c| *c != SubscriberChange::FirstContact),
            effect,
            // Kept in the store only where applying the message twice would
            // be wrong (a dialog step, an effect); a retry of anything else
            // is recognised in memory, and answering it again is harmless.
            message_id: msg.message_id.clone().filter(|_| has_effect || dialog_changed),
            forget_before: at - self.settings.retry_window_secs,
            subscriber,
        };
        if write.message_id.is_some() {
            // Before the commit: a retry read from then on looks in the store.
            self.stored_until.fetch_max(at, Ordering::AcqRel);
        }
        let first = decision.replies;
        let pending = self.store.commit_turn_later(write, move |outcome| {
            let mut all = first.clone();
            if let Some(w) = &wording {
                all.extend(w.replies(outcome));
            }
            all
        })?;
        Ok(Carried::Committing(pending, memory))
    }

    /// Applies a message's in-memory changes (serving only).
    fn apply_memory(&self, who: &Identity, memory: MemoryUpdate) {
        let Some(lists) = &self.lists else { return };
        let mut lists = lists.lock().unwrap_or_else(|e| e.into_inner());
        lists.set(who, memory.more, memory.lang);
    }

    /// What the message means: a dialog step, an answer, or a reply only.
    fn decide(&self, ctx: &Ctx, msg: &Inbound, session: &mut Session) -> Result<Decision, StoreError> {
        let turn = dialog::Turn {
            ctx,
            identity: msg.identity.as_str(),
            timeout_secs: self.settings.dialog_timeout_secs,
            staff: self.settings.staff.contains(msg.identity.as_str()),
        };
        let help = || Decision::reply(ctx.t("help", &[]));
        let said = match &msg.input {
            Input::Text(text) => return self.decide_text(ctx, &turn, session, text),
            Input::Click(key) => {
                return match self.settings.menu.get(key) {
                    Some(text) => self.decide_text(ctx, &turn, session, text),
                    None => {
                        tracing::warn!(key = %key, "a menu key that [wechat.menu] does not map");
                        Ok(help())
                    }
                };
            }
            Input::Unsupported(kind) => {
                tracing::debug!(kind = %kind, "a message the bot cannot read");
                return Ok(Decision::reply(ctx.t("unsupported_message", &[])));
            }
            Input::Unsubscribe => {
                return Ok(Decision {
                    replies: Vec::new(),
                    finish: None,
                    subscription: None,
                });
            }
            Input::Choice(value) => match value.strip_prefix(LANG_CHOICE).map(Lang::parse) {
                Some(Some(lang)) => return Ok(self.switch_language(session, lang)),
                Some(None) => return Ok(Decision::reply(ctx.t("choice_stale", &[]))),
                None => Said::Choice(value),
            },
            Input::Start { payload: Some(p) } | Input::Subscribe { scene: Some(p) } => Said::Link(p),
            Input::Start { payload: None } | Input::Subscribe { scene: None } => return Ok(help()),
        };
        Ok(match dialog::handle(&self.dialogs, &turn, session, said)? {
            dialog::Outcome::Step(step) => Decision::step(step, session),
            // A link no dialog knows: greet.
            dialog::Outcome::NotMine => help(),
        })
    }

    fn decide_text(
        &self,
        ctx: &Ctx,
        turn: &dialog::Turn,
        session: &mut Session,
        text: &str,
    ) -> Result<Decision, StoreError> {
        let max = self.settings.max_message_chars;
        if text.chars().count() > max {
            return Ok(Decision::reply(ctx.t("message_too_long", &[("max", &max.to_string())])));
        }
        let q = ctx.brain.query(text);
        let q = &*q;
        let intents = &self.phrases.intents;
        let subscription = if intents.unsubscribe.is_whole(q) {
            Some((SubscriberChange::Unsubscribe, "unsubscribed"))
        } else if intents.subscribe.is_whole(q) {
            Some((SubscriberChange::Subscribe { scene: None }, "subscribed"))
        } else {
            None
        };
        if let Some((change, key)) = subscription {
            return Ok(Decision {
                subscription: Some(change),
                ..Decision::reply(ctx.t(key, &[]))
            });
        }
        if let Some(command) = staff::command(&self.phrases, q, text) {
            if !turn.staff {
                return Ok(Decision::reply(ctx.t("staff_only", &[])));
            }
            return Ok(Decision::reply(staff::answer(ctx, command)?));
        }
        if let Some(asked) = self.language_request(q, text) {
            return Ok(match asked {
                Some(lang) => self.switch_language(session, lang),
                None => self.offer_languages(ctx),
            });
        }
        Ok(
            match dialog::handle(&self.dialogs, turn, session, Said::Text(text, q))? {
                dialog::Outcome::Step(step) => Decision::step(step, session),
                dialog::Outcome::NotMine if self.phrases.intents.more.is_whole(q) => {
                    Decision::reply(answer::more(ctx, session)?)
                }
                dialog::Outcome::NotMine => {
                    let r = answer::answer(ctx, q)?;
                    if let Some(kind) = r.route.missed() {
                        self.record_miss(ctx, turn.identity, text, kind);
                    }
                    session.more = r.more;
                    Decision::reply(r.text)
                }
            },
        )
    }

    /// A language switch: `Some(None)` for the command alone ("/lang",
    /// "语言": offer both), `Some(Some(lang))` with a language named after
    /// it ("/lang en", "/lang 中文").
    fn language_request(&self, q: &Query, text: &str) -> Option<Option<Lang>> {
        let intent = &self.phrases.intents.language;
        if intent.is_whole(q) {
            return Some(None);
        }
        let (command, rest) = text.trim().split_once(char::is_whitespace)?;
        if !intent.is_whole(&Query::new(command)) {
            return None;
        }
        let rest = rest.trim();
        [Lang::Zh, Lang::En]
            .into_iter()
            .find(|&l| {
                rest.eq_ignore_ascii_case(l.code())
                    || [Lang::Zh, Lang::En]
                        .iter()
                        .any(|&shown| rest.eq_ignore_ascii_case(&self.phrases.t(language_name(l), shown, &[])))
            })
            .map(Some)
    }

    /// Both languages as choices, the question in both.
    fn offer_languages(&self, ctx: &Ctx) -> Decision {
        let choices = [Lang::Zh, Lang::En]
            .into_iter()
            .map(|l| crate::message::Choice {
                value: format!("{LANG_CHOICE}{}", l.code()),
                label: self.phrases.t(language_name(l), l, &[]),
            })
            .collect();
        Decision {
            replies: vec![Reply {
                text: ctx.t("language_choose", &[]),
                choices,
            }],
            finish: None,
            subscription: None,
        }
    }

    /// The conversation goes on in `lang` (saved with the session; what
    /// the person types still decides each answer's language).
    fn switch_language(&self, session: &mut Session, lang: Lang) -> Decision {
        session.lang = Some(lang);
        Decision::reply(self.phrases.t("language_set", lang, &[]))
    }

    /// Records that the platform refused a message to `who` because they
    /// blocked the bot (Telegram's 403): no longer a subscriber, until they
    /// start the bot again. Durable when it returns.
    pub async fn record_blocked(&self, who: &Identity) -> Result<(), StoreError> {
        let now = (self.clock)().unix_timestamp();
        let write = TurnWrite {
            identity: who.as_str().to_string(),
            now,
            session: None,
            durable: true,
            effect: None,
            message_id: None,
            forget_before: now - self.settings.retry_window_secs,
            subscriber: Some(SubscriberChange::Blocked),
        };
        self.store.commit_turn_later(write, |_| Vec::new())?.await.map(|_| ())
    }

    /// Messages waiting for a person on a channel without push (the web
    /// page, the terminal): taken (marked delivered) and returned, each in
    /// the person's language.
    pub fn waiting(&self, who: &Identity) -> Result<Vec<Reply>, StoreError> {
        if !self.store.has_waiting(who.as_str())? {
            return Ok(Vec::new());
        }
        let now = (self.clock)().unix_timestamp();
        let taken = self.store.take_waiting(who.as_str(), now)?;
        Ok(taken.iter().map(|d| Reply::text(d.text())).collect())
    }

    /// Queues reminders for events starting within `before` seconds of
    /// `now` (see [`Store::queue_reminders`]), worded with the `reminder`
    /// text in both languages.
    pub fn queue_reminders(&self, now: i64, before: i64) -> Result<usize, StoreError> {
        let phrases = self.phrases.clone();
        self.store.queue_reminders(now, before, move |ev, reg| {
            let text = [Lang::Zh, Lang::En]
                .into_iter()
                .map(|l| {
                    let when = phrases.datetime(ev.starts_at.0, l);
                    let args = [
                        ("event", ev.title.get(l)),
                        ("time", when.as_str()),
                        ("venue", ev.venue.get(l)),
                        ("code", reg.code.as_str()),
                    ];
                    (l.code().to_string(), phrases.t("reminder", l, &args))
                })
                .collect();
            crate::knowledge::Text::Localized(text)
        })
    }

    /// The bot's wording (channels use it for their own texts, such as
    /// Telegram's command menu).
    pub fn phrases(&self) -> &Phrasebook {
        &self.phrases
    }

    /// Records a question that got the fallback or a weak answer, for
    /// staff (`parkbot export misses`): its text with phone numbers masked,
    /// language, channel and time; nothing about who asked. Not waited for;
    /// a store that cannot take it is logged, the answer goes out anyway.
    fn record_miss(&self, ctx: &Ctx, identity: &str, text: &str, kind: crate::store::MissKind) {
        let channel = identity.split_once(':').map_or("unknown", |(c, _)| c);
        let miss = crate::store::Miss {
            text: crate::logging::mask_phones_in(text.trim()),
            lang: ctx.lang,
            channel: channel.to_string(),
            at: ctx.now.unix_timestamp(),
            kind,
        };
        if let Err(e) = self.store.record_miss(miss, crate::store::MISSES_KEPT) {
            tracing::warn!(error = %e, "a missed question could not be recorded");
        }
    }

    /// A readable account of how a question is answered, and why it missed
    /// when it did: its words and concepts, the fields and time it names,
    /// the best hits with their evidence, and the route the answer took.
    pub fn explain(&self, text: &str) -> String {
        let brain = self.brain();
        let ctx = Ctx {
            brain: &brain,
            phrases: &self.phrases,
            store: &self.store,
            now: (self.clock)(),
            lang: Lang::detect(text),
        };
        explain::explain(&ctx, text)
    }
}

/// Logs what a committed dialog action came to (after the commit, so
/// that only codes that exist are logged; phone numbers masked).
fn log_outcome(who: &Identity, outcome: Option<&crate::store::EffectOutcome>) {
    use crate::logging::mask_phone;
    use crate::store::{CancelOutcome, EffectOutcome, RegisterOutcome};
    match outcome {
        Some(EffectOutcome::Register(RegisterOutcome::Confirmed(r))) => {
            tracing::info!(identity = %who, event = %r.event_id, code = %r.code, phone = %mask_phone(&r.phone), "registered");
        }
        Some(EffectOutcome::Register(RegisterOutcome::Waitlisted(r, pos))) => {
            tracing::info!(identity = %who, event = %r.event_id, code = %r.code, position = pos, phone = %mask_phone(&r.phone), "waitlisted");
        }
        Some(EffectOutcome::SaveForm(seq)) => {
            tracing::info!(identity = %who, reference = %format!("{seq:06}"), "form saved")
        }
        Some(EffectOutcome::CancelRegistration(CancelOutcome::Cancelled { cancelled, promoted })) => {
            let promoted: Vec<&str> = promoted.iter().map(|p| p.code.as_str()).collect();
            tracing::info!(identity = %who, event = %cancelled.event_id, code = %cancelled.code, promoted = ?promoted, "registration cancelled");
        }
        _ => {}
    }
}

/// The value of a language button: this prefix and the language's code
/// (a `+` value is the core's own, never a dialog option's).
const LANG_CHOICE: &str = "+lang:";

/// The phrasebook key of a language's own name.
fn language_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => "language_zh",
        Lang::En => "language_en",
    }
}

/// The language of a message before its session is known.
fn first_lang(msg: &Inbound) -> Lang {
    match &msg.input {
        Input::Text(t) => Lang::detect_or(t, msg.lang),
        _ => msg.lang.unwrap_or(Lang::Zh),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".into())
}
