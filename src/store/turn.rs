//! Turns: everything one handled message leaves behind — the effect of a
//! dialog's completion (a sign-up, a saved form, a cancellation), the
//! identity's session and the replies sent for the platform's message id —
//! committed in ONE transaction. A platform that delivers the same message
//! again (a retry) is answered from the recorded replies by [`Store::handled`]
//! instead of being handled twice.
//!
//! Records are kept in `identity_msgid_handled` as versioned bytes, with a
//! time index `at_identity_msgid` so that each turn prunes a bounded number
//! of records older than its `forget_before`.

use std::collections::BTreeMap;
use std::sync::Arc;

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::registrations::{
    CancelOutcome, NewRegistration, RegisterOutcome, cancel_in, register_in, save_form_in, write_session_bytes,
};
use super::sessions::SessionCache;
use super::{
    AnnounceRefusal, Announcement, Audience, Pending, Result, SUBSCRIBERS, Session, Store, StoreError, Subscriber,
    decode, encode,
};
use crate::knowledge::Text;
use crate::message::Reply;

/// (identity, platform message id) → HandledRecord
pub(super) const HANDLED: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("identity_msgid_handled");
/// (unix seconds, identity, message id) → (): handled records by age
pub(super) const HANDLED_BY_TIME: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("at_identity_msgid");

/// The most old handled-message records one turn prunes.
const PRUNE_PER_TURN: usize = 256;

/// What a dialog's completion asks the store to do.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Sign up (the registration's `user` is the one registered).
    Register(NewRegistration),
    /// Save a filled-in form for the turn's identity.
    SaveForm {
        form: String,
        values: BTreeMap<String, String>,
    },
    /// Cancel one of the turn's identity's registrations; `notice` is the
    /// promotion template (`{event}`, `{code}`) for whoever moves up.
    CancelRegistration { code: String, notice: Text },
    /// Queue an announcement made by the turn's identity (staff).
    Announce { audience: Audience, text: String },
}

/// What an [`Effect`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectOutcome {
    Register(RegisterOutcome),
    /// The saved form's sequence number.
    SaveForm(u64),
    CancelRegistration(CancelOutcome),
    /// The announcement made, or why not.
    Announce(std::result::Result<Announcement, AnnounceRefusal>),
}

/// Everything one handled message leaves behind.
#[derive(Debug, Clone)]
pub struct TurnWrite {
    /// `channel:id`.
    pub identity: String,
    /// Unix seconds.
    pub now: i64,
    /// `None`: leave the session as is; `Some(None)`: remove it;
    /// `Some(Some(s))`: save `s`.
    pub session: Option<Option<Session>>,
    /// False only for harmless state (the "more" list); an effect forces
    /// a durable commit.
    pub durable: bool,
    pub effect: Option<Effect>,
    /// The platform's message id: recorded with the replies.
    pub message_id: Option<String>,
    /// Handled-message records older than this (unix seconds) may be pruned.
    pub forget_before: i64,
    /// A change of the identity's subscription, saved with the rest.
    pub subscriber: Option<SubscriberChange>,
}

/// What a message says about the identity's subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriberChange {
    /// Followed (or started the bot), possibly through a QR scene or link.
    Subscribe { scene: Option<String> },
    /// A first message: a subscriber unless they opted out before.
    FirstContact,
    /// Unfollowed or opted out.
    Unsubscribe,
    /// The platform says the person blocked the bot: not a subscriber
    /// until they start it again.
    Blocked,
}

/// The replies sent for one message, as stored.
#[derive(Debug, Deserialize)]
struct HandledRecord {
    at: i64,
    replies: Vec<Reply>,
}

/// A [`HandledRecord`] to write, borrowing its replies (encoded on the
/// writer thread: no copy of them first).
#[derive(Serialize)]
struct HandledRecordRef<'a> {
    at: i64,
    replies: &'a [Reply],
}

impl Store {
    /// Applies the effect, saves the session and records (identity,
    /// message id) → replies, in ONE transaction. `replies` words the
    /// outcome: it runs inside the transaction, after the effect (and may
    /// run again if the batch is retried job by job).
    pub fn commit_turn<F>(&self, turn: TurnWrite, replies: F) -> Result<(Option<EffectOutcome>, Vec<Reply>)>
    where
        F: FnMut(Option<&EffectOutcome>) -> Vec<Reply> + Send + 'static,
    {
        let (durable, job) = turn_job(turn, replies, self.sessions.clone());
        self.write_with(durable, job)
    }

    /// [`Store::commit_turn`] for async callers: queued at once, awaited
    /// for its result, so no thread is held through the fsync.
    pub fn commit_turn_later<F>(&self, turn: TurnWrite, replies: F) -> Result<Pending<TurnDone>>
    where
        F: FnMut(Option<&EffectOutcome>) -> Vec<Reply> + Send + 'static,
    {
        let (durable, job) = turn_job(turn, replies, self.sessions.clone());
        self.submit_with(durable, job)
    }

    /// When the newest handled message on record was handled (unix
    /// seconds), `None` when there is none: a bot that starts knows that
    /// no id handled before it is newer.
    pub fn newest_handled(&self) -> Result<Option<i64>> {
        self.read(|r| {
            let t = match r.open_table(HANDLED_BY_TIME) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            Ok(t.last()?.map(|(k, _)| k.value().0 as i64))
        })
    }

    /// The replies recorded for a message already handled (at or after
    /// `not_before`, unix seconds).
    pub fn handled(&self, identity: &str, message_id: &str, not_before: i64) -> Result<Option<Vec<Reply>>> {
        self.read(|r| {
            // A file last written before turns existed has no such table.
            let t = match r.open_table(HANDLED) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let Some(v) = t.get((identity, message_id))? else {
                return Ok(None);
            };
            let rec: HandledRecord = decode(v.value(), "handled message")?;
            Ok((rec.at >= not_before).then_some(rec.replies))
        })
    }
}

/// Shorthands for the store's own tests: one write of a session and an
/// effect through the same path the bot uses ([`Store::commit_turn`]).
#[cfg(test)]
impl Store {
    fn test_turn(
        &self,
        identity: &str,
        now: i64,
        session: Option<Session>,
        effect: Option<Effect>,
    ) -> Result<Option<EffectOutcome>> {
        let turn = TurnWrite {
            identity: identity.to_string(),
            now,
            session: Some(session),
            durable: true,
            effect,
            message_id: None,
            forget_before: 0,
            subscriber: None,
        };
        Ok(self.commit_turn(turn, |_| Vec::new())?.0)
    }

    /// Saves (or, with `None`, removes) the session of `identity`, durably.
    pub(crate) fn put_session(&self, identity: &str, session: Option<&Session>) -> Result<()> {
        self.test_turn(identity, 0, session.cloned(), None).map(drop)
    }

    /// Records a sign-up and saves `session` for its identity.
    pub(crate) fn register(&self, new: NewRegistration, session: Option<Session>) -> Result<RegisterOutcome> {
        let (user, now) = (new.user.clone(), new.now);
        match self.test_turn(&user, now, session, Some(Effect::Register(new)))? {
            Some(EffectOutcome::Register(o)) => Ok(o),
            other => unreachable!("a registration's outcome: {other:?}"),
        }
    }

    /// Cancels `user`'s registration `code` and saves `session`.
    pub(crate) fn cancel_registration(
        &self,
        user: &str,
        code: &str,
        now: i64,
        notice: Text,
        session: Option<Session>,
    ) -> Result<CancelOutcome> {
        let effect = Effect::CancelRegistration {
            code: code.to_string(),
            notice,
        };
        match self.test_turn(user, now, session, Some(effect))? {
            Some(EffectOutcome::CancelRegistration(o)) => Ok(o),
            other => unreachable!("a cancellation's outcome: {other:?}"),
        }
    }

    /// Saves a filled-in form and `session`; returns its sequence number.
    pub(crate) fn save_form(
        &self,
        form: &str,
        user: &str,
        values: BTreeMap<String, String>,
        now: i64,
        session: Option<Session>,
    ) -> Result<u64> {
        let effect = Effect::SaveForm {
            form: form.to_string(),
            values,
        };
        match self.test_turn(user, now, session, Some(effect))? {
            Some(EffectOutcome::SaveForm(seq)) => Ok(seq),
            other => unreachable!("a form's outcome: {other:?}"),
        }
    }
}

/// What a committed turn came to: the effect's outcome and the replies.
pub type TurnDone = (Option<EffectOutcome>, Vec<Reply>);

/// The write job of a turn, and whether it must be durable.
fn turn_job<F>(
    turn: TurnWrite,
    mut replies: F,
    sessions: Arc<SessionCache>,
) -> (bool, impl FnMut(&WriteTransaction) -> Result<TurnDone> + Send + 'static)
where
    F: FnMut(Option<&EffectOutcome>) -> Vec<Reply> + Send + 'static,
{
    let durable = turn.durable || turn.effect.is_some();
    // Encoded here, on the caller's thread, not on the writer's.
    let session: Option<Option<Vec<u8>>> = turn.session.as_ref().map(|s| s.as_ref().map(encode));
    let job = move |tx: &WriteTransaction| {
        let outcome = turn.effect.as_ref().map(|e| apply(tx, &turn, e)).transpose()?;
        if let (Some(bytes), Some(written)) = (&session, &turn.session) {
            sessions.writing(&turn.identity, written);
            write_session_bytes(tx, &turn.identity, bytes.as_deref())?;
        }
        if let Some(change) = &turn.subscriber {
            write_subscriber(tx, &turn.identity, change, turn.now)?;
        }
        let replies = replies(outcome.as_ref());
        // Records are only added with a message id, so pruning there
        // too keeps the table bounded without touching it otherwise.
        if let Some(id) = &turn.message_id {
            record(tx, &turn.identity, id, turn.now, &replies)?;
            prune(tx, turn.forget_before)?;
        }
        Ok((outcome, replies))
    };
    (durable, job)
}

/// Applies a subscription change: the first subscription keeps its date
/// and scene; an unsubscribe is kept (not deleted) so that a first contact
/// later does not silently re-subscribe someone who opted out.
fn write_subscriber(tx: &WriteTransaction, identity: &str, change: &SubscriberChange, now: i64) -> Result<()> {
    let mut t = tx.open_table(SUBSCRIBERS)?;
    let old: Option<Subscriber> = t.get(identity)?.map(|v| decode(v.value(), "subscriber")).transpose()?;
    let new = match (change, old) {
        (SubscriberChange::FirstContact, Some(_)) => return Ok(()),
        (SubscriberChange::FirstContact, None) => Subscriber {
            subscribed: true,
            scene: None,
            since: now,
            updated_at: now,
            blocked: false,
        },
        (SubscriberChange::Subscribe { scene }, old) => Subscriber {
            subscribed: true,
            scene: scene.clone().or(old.as_ref().and_then(|o| o.scene.clone())),
            since: old.as_ref().filter(|o| o.subscribed).map_or(now, |o| o.since),
            updated_at: now,
            blocked: false,
        },
        (change @ (SubscriberChange::Unsubscribe | SubscriberChange::Blocked), old) => Subscriber {
            subscribed: false,
            scene: old.as_ref().and_then(|o| o.scene.clone()),
            since: old.as_ref().map_or(now, |o| o.since),
            updated_at: now,
            blocked: *change == SubscriberChange::Blocked,
        },
    };
    t.insert(identity, encode(&new).as_slice())?;
    Ok(())
}

fn apply(tx: &WriteTransaction, turn: &TurnWrite, effect: &Effect) -> Result<EffectOutcome> {
    Ok(match effect {
        Effect::Register(new) => EffectOutcome::Register(register_in(tx, new)?),
        Effect::SaveForm { form, values } => {
            EffectOutcome::SaveForm(save_form_in(tx, form, &turn.identity, values, turn.now)?)
        }
        Effect::CancelRegistration { code, notice } => {
            EffectOutcome::CancelRegistration(cancel_in(tx, &turn.identity, code, turn.now, notice)?)
        }
        Effect::Announce { audience, text } => {
            let made = super::outbox::announce_in(
                tx,
                audience,
                text,
                &turn.identity,
                turn.now,
                super::registrations::event_exists,
            );
            match made {
                Ok(a) => EffectOutcome::Announce(Ok(a)),
                Err(StoreError::AnnouncementRefused(why)) => EffectOutcome::Announce(Err(why)),
                Err(e) => return Err(e),
            }
        }
    })
}

fn record(tx: &WriteTransaction, identity: &str, message_id: &str, now: i64, replies: &[Reply]) -> Result<()> {
    let rec = HandledRecordRef { at: now, replies };
    let old = tx
        .open_table(HANDLED)?
        .insert((identity, message_id), encode(&rec).as_slice())?
        .map(|v| decode::<HandledRecord>(v.value(), "handled message"))
        .transpose();
    let mut by_time = tx.open_table(HANDLED_BY_TIME)?;
    if let Ok(Some(old)) = old {
        by_time.remove((old.at.max(0) as u64, identity, message_id))?;
    }
    by_time.insert((now.max(0) as u64, identity, message_id), ())?;
    Ok(())
}

/// Removes up to [`PRUNE_PER_TURN`] handled-message records older than `before`.
fn prune(tx: &WriteTransaction, before: i64) -> Result<()> {
    if before <= 0 {
        return Ok(());
    }
    let mut by_time = tx.open_table(HANDLED_BY_TIME)?;
    let mut old = Vec::new();
    for row in by_time.range::<(u64, &str, &str)>(..(before as u64, "", ""))? {
        let (k, _) = row?;
        let (at, identity, id) = k.value();
        old.push((at, identity.to_string(), id.to_string()));
        if old.len() >= PRUNE_PER_TURN {
            break;
        }
    }
    if old.is_empty() {
        return Ok(());
    }
    let mut handled = tx.open_table(HANDLED)?;
    for (at, identity, id) in &old {
        by_time.remove((*at, identity.as_str(), id.as_str()))?;
        handled.remove((identity.as_str(), id.as_str()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{knowledge_with, opts};
    use crate::store::{RegistrationStatus, StoreError};
    use redb::ReadableTableMetadata;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        (dir, store)
    }

    /// Reads racing the writes never bring back a session older than the
    /// last commit (the kept sessions, `sessions.rs`), whether the turns
    /// commit durably or not, and a failed write leaves the old one.
    #[test]
    fn a_session_read_after_a_commit_is_that_commit_s() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (store, stop) = (store.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        store.session("racer").unwrap();
                    }
                })
            })
            .collect();
        for t in 1..=300 {
            let mut w = turn("racer", &format!("m{t}"), t, None);
            w.message_id = None;
            w.durable = t % 3 == 0;
            store.commit_turn(w, |_| Vec::new()).unwrap();
            assert_eq!(
                store.session("racer").unwrap().unwrap().updated_at,
                t,
                "after commit {t}"
            );
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        store.inject_faults(false, true);
        let mut w = turn("racer", "late", 999, None);
        w.message_id = None;
        assert!(store.commit_turn(w, |_| Vec::new()).is_err());
        store.inject_faults(false, false);
        assert_eq!(
            store.session("racer").unwrap().unwrap().updated_at,
            300,
            "the failed write left it"
        );
        store.put_session("racer", None).unwrap();
        assert_eq!(store.session("racer").unwrap(), None, "removed");
    }

    fn turn(identity: &str, message_id: &str, now: i64, effect: Option<Effect>) -> TurnWrite {
        TurnWrite {
            identity: identity.into(),
            now,
            session: Some(Some(Session {
                updated_at: now,
                ..Session::default()
            })),
            durable: false,
            effect,
            message_id: Some(message_id.into()),
            forget_before: 0,
            subscriber: None,
        }
    }

    #[test]
    fn subscriptions_follow_subscribe_first_contact_and_unsubscribe() {
        let (_dir, store) = store();
        let with = |who: &str, change: SubscriberChange, now: i64| {
            let t = TurnWrite {
                subscriber: Some(change),
                ..turn(who, &format!("s{now}"), now, None)
            };
            store.commit_turn(t, |_| Vec::new()).unwrap();
        };
        with(
            "wechat:a",
            SubscriberChange::Subscribe {
                scene: Some("signup:e1".into()),
            },
            10,
        );
        with("wechat:a", SubscriberChange::FirstContact, 11);
        with("web:b", SubscriberChange::FirstContact, 12);
        with("wechat:c", SubscriberChange::Unsubscribe, 13);
        with("wechat:c", SubscriberChange::FirstContact, 14);
        assert_eq!(store.subscribers(None).unwrap(), ["web:b", "wechat:a"]);
        assert_eq!(store.subscribers(Some("wechat")).unwrap(), ["wechat:a"]);
        let a = store.subscriber("wechat:a").unwrap().unwrap();
        assert_eq!((a.since, a.scene.as_deref()), (10, Some("signup:e1")));
        with("wechat:a", SubscriberChange::Unsubscribe, 20);
        assert_eq!(store.subscribers(Some("wechat")).unwrap(), Vec::<String>::new());
        assert!(
            !store.subscriber("wechat:c").unwrap().unwrap().subscribed,
            "an opt-out stays"
        );
        with("wechat:a", SubscriberChange::Subscribe { scene: None }, 30);
        let a = store.subscriber("wechat:a").unwrap().unwrap();
        assert_eq!(
            (a.subscribed, a.since, a.scene.as_deref()),
            (true, 30, Some("signup:e1"))
        );
    }

    fn register(user: &str) -> Effect {
        Effect::Register(NewRegistration {
            event_id: "e1".into(),
            user: user.into(),
            name: "N".into(),
            organization: "O".into(),
            phone: "1".into(),
            now: 100,
        })
    }

    fn word(o: Option<&EffectOutcome>) -> Vec<Reply> {
        vec![Reply::text(match o {
            Some(EffectOutcome::Register(RegisterOutcome::Confirmed(r))) => format!("confirmed {}", r.code),
            Some(EffectOutcome::Register(RegisterOutcome::Waitlisted(_, n))) => format!("waiting {n}"),
            Some(other) => format!("{other:?}"),
            None => "hello".into(),
        })]
    }

    #[test]
    fn effect_session_and_record_commit_together() {
        let (_d, store) = store();
        let durable_before = store.durable_commits();
        let (outcome, replies) = store
            .commit_turn(turn("console:a", "m1", 100, Some(register("console:a"))), word)
            .unwrap();
        assert!(store.durable_commits() > durable_before, "an effect is durable");
        let Some(EffectOutcome::Register(RegisterOutcome::Confirmed(reg))) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(replies, vec![Reply::text(format!("confirmed {}", reg.code))]);
        assert_eq!(store.session("console:a").unwrap().unwrap().updated_at, 100);
        assert_eq!(
            store.user_registrations("console:a").unwrap()[0].status,
            RegistrationStatus::Confirmed
        );
        assert_eq!(store.handled("console:a", "m1", 0).unwrap(), Some(replies.clone()));
        assert_eq!(
            store.handled("console:a", "m1", 101).unwrap(),
            None,
            "too old for the caller"
        );
        assert_eq!(store.handled("console:b", "m1", 0).unwrap(), None);

        // A form, then a cancellation through turns.
        let form = Effect::SaveForm {
            form: "inquiries".into(),
            values: [("k".to_string(), "v".to_string())].into_iter().collect(),
        };
        let (o, _) = store
            .commit_turn(turn("console:a", "m2", 101, Some(form)), word)
            .unwrap();
        assert!(matches!(o, Some(EffectOutcome::SaveForm(1))));
        assert_eq!(store.forms("inquiries").unwrap()[0].user, "console:a");
        store
            .commit_turn(turn("console:b", "m1", 102, Some(register("console:b"))), word)
            .unwrap();
        let cancel = Effect::CancelRegistration {
            code: reg.code.clone(),
            notice: Text::Plain("{event} {code}".into()),
        };
        let (o, _) = store
            .commit_turn(turn("console:a", "m3", 103, Some(cancel)), word)
            .unwrap();
        let Some(EffectOutcome::CancelRegistration(CancelOutcome::Cancelled { promoted, .. })) = o else {
            panic!("{o:?}")
        };
        assert_eq!(promoted[0].user, "console:b");
        assert_eq!(store.outbox().unwrap().len(), 1);

        // No effect: the session alone; `Some(None)` removes it, `None` leaves it.
        let mut t = turn("console:a", "m4", 104, None);
        t.session = Some(None);
        store.commit_turn(t, word).unwrap();
        assert!(store.session("console:a").unwrap().is_none());
        let mut t = turn("console:b", "m5", 105, None);
        t.session = None;
        store.commit_turn(t, word).unwrap();
        assert_eq!(store.session("console:b").unwrap().unwrap().updated_at, 102);
        assert_eq!(
            store.handled("console:b", "m5", 0).unwrap(),
            Some(vec![Reply::text("hello")])
        );
    }

    #[test]
    fn old_records_are_pruned() {
        let (_d, store) = store();
        for i in 0..5 {
            store
                .commit_turn(turn("console:a", &format!("m{i}"), 10 + i, None), word)
                .unwrap();
        }
        let mut t = turn("console:b", "n", 1000, None);
        t.forget_before = 13;
        store.commit_turn(t, word).unwrap();
        let kept: Vec<bool> = (0..5)
            .map(|i| store.handled("console:a", &format!("m{i}"), 0).unwrap().is_some())
            .collect();
        assert_eq!(kept, [false, false, false, true, true]);
        assert!(store.handled("console:b", "n", 0).unwrap().is_some());
        // The time index was pruned with them.
        let left = store.read(|r| Ok(r.open_table(HANDLED_BY_TIME)?.len()?)).unwrap();
        assert_eq!(left, 3);
    }

    #[test]
    fn a_failing_effect_leaves_neither_session_nor_record() {
        let (_d, store) = store();
        store
            .write(|tx| {
                tx.open_table(super::super::EVENTS)?
                    .insert("e1", b"\x01not json".as_slice())?;
                Ok(())
            })
            .unwrap();
        let e = store
            .commit_turn(turn("console:a", "m1", 100, Some(register("console:a"))), word)
            .unwrap_err();
        assert!(matches!(e, StoreError::BadRecord { .. }), "{e}");
        assert!(store.session("console:a").unwrap().is_none());
        assert!(store.handled("console:a", "m1", 0).unwrap().is_none());
        // A panicking wording is caught too, and leaves nothing.
        let e = store
            .commit_turn(turn("console:b", "m1", 100, None), |_| panic!("wording failed"))
            .unwrap_err();
        assert!(matches!(e, StoreError::WriterPanic { .. }), "{e}");
        assert!(store.session("console:b").unwrap().is_none());
        assert!(store.handled("console:b", "m1", 0).unwrap().is_none());
    }
}
