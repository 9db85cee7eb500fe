//! Registrations, saved forms and the outbox: every decision about seats
//! and waiting-list order is made inside one write transaction, together
//! with the identity's session, so that what a person is told is exactly
//! what is stored.
//!
//! An event's capacity is read from its stored record inside that
//! transaction (never taken from the caller). The waiting list always comes
//! first: a newcomer gets a seat only if one is free *and* nobody waits.
//! Whenever seats free up (a cancellation, or an import that raises or
//! removes a capacity) the first waiting people are promoted in order while
//! seats are free, and each is told through the outbox.

use std::collections::BTreeMap;

use redb::{ReadableTable, WriteTransaction};

use super::{
    EVENT_COUNTS, EVENT_REGISTRATIONS, EVENT_WAITLIST, EVENTS, FORMS, META, OUTBOX, REGISTRATIONS, Result, SESSIONS,
    Store, USER_REGISTRATIONS, all, decode, encode,
};
use crate::knowledge::{Event, Lang, Text};
use crate::store::{DeliveryKind, EventCounts, FormEntry, OutboxMessage, Registration, RegistrationStatus as Status};

/// Characters of registration codes: no 0/O, 1/I/L look-alikes.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 6;

/// A sign-up to record. The event's capacity is the stored event's.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub event_id: String,
    pub user: String,
    pub name: String,
    pub organization: String,
    pub phone: String,
    pub now: i64,
}

/// What a sign-up came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    Confirmed(Registration),
    /// On the waiting list at `position` (1 = next to move up).
    Waitlisted(Registration, usize),
    /// The identity already holds a registration for this event.
    Existing(Registration),
    /// The event is not (or no longer) in the store.
    EventGone,
}

/// What a cancellation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled {
        cancelled: Box<Registration>,
        /// The people moved from the waiting list to a seat, in order.
        promoted: Vec<Registration>,
    },
    /// No such active registration of this identity.
    NotFound,
}

pub(super) fn get_reg(tx: &WriteTransaction, code: &str) -> Result<Option<Registration>> {
    let t = tx.open_table(REGISTRATIONS)?;
    let v = t.get(code)?;
    v.map(|v| decode(v.value(), "registration")).transpose()
}

fn put_reg(tx: &WriteTransaction, reg: &Registration) -> Result<()> {
    tx.open_table(REGISTRATIONS)?
        .insert(reg.code.as_str(), encode(reg).as_slice())?;
    Ok(())
}

fn counts(tx: &WriteTransaction, event_id: &str) -> Result<EventCounts> {
    let t = tx.open_table(EVENT_COUNTS)?;
    let v = t.get(event_id)?;
    Ok(v.map(|v| decode(v.value(), "event counts"))
        .transpose()?
        .unwrap_or_default())
}

fn put_counts(tx: &WriteTransaction, event_id: &str, c: &EventCounts) -> Result<()> {
    tx.open_table(EVENT_COUNTS)?.insert(event_id, encode(c).as_slice())?;
    Ok(())
}

/// The stored event, if it is in the store.
/// Whether the event is in the store.
pub(super) fn event_exists(tx: &WriteTransaction, event_id: &str) -> Result<bool> {
    Ok(tx.open_table(EVENTS)?.get(event_id)?.is_some())
}

/// Every stored event.
pub(super) fn all_events(tx: &WriteTransaction) -> Result<Vec<Event>> {
    let t = tx.open_table(EVENTS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        out.push(decode(row?.1.value(), "event")?);
    }
    Ok(out)
}

fn event(tx: &WriteTransaction, event_id: &str) -> Result<Option<Event>> {
    let t = tx.open_table(EVENTS)?;
    let v = t.get(event_id)?;
    v.map(|v| decode(v.value(), "event")).transpose()
}

/// Whether anyone is on the event's waiting list.
fn anyone_waiting(tx: &WriteTransaction, event_id: &str) -> Result<bool> {
    let t = tx.open_table(EVENT_WAITLIST)?;
    Ok(t.range((event_id, 0)..=(event_id, u64::MAX))?.next().is_some())
}

/// The first on an event's waiting list, taken off it.
fn pop_waitlist(tx: &WriteTransaction, event_id: &str) -> Result<Option<Registration>> {
    let mut t = tx.open_table(EVENT_WAITLIST)?;
    let first = t
        .range((event_id, 0)..=(event_id, u64::MAX))?
        .next()
        .transpose()?
        .map(|(k, v)| (k.value().1, v.value().to_string()));
    let Some((seq, code)) = first else { return Ok(None) };
    t.remove((event_id, seq))?;
    drop(t);
    get_reg(tx, &code)
}

/// Saves (or removes) an already encoded session: callers encode before
/// their job reaches the single writer thread, which is the bottleneck.
pub(super) fn write_session_bytes(tx: &WriteTransaction, identity: &str, session: Option<&[u8]>) -> Result<()> {
    let mut t = tx.open_table(SESSIONS)?;
    match session {
        Some(bytes) => t.insert(identity, bytes)?,
        None => t.remove(identity)?,
    };
    Ok(())
}

/// The next value of a counter kept in `meta`.
pub(super) fn next_counter(tx: &WriteTransaction, name: &str) -> Result<u64> {
    let mut meta = tx.open_table(META)?;
    let next = meta.get(name)?.map_or(1, |v| v.value() + 1);
    meta.insert(name, next)?;
    Ok(next)
}

fn new_code(tx: &WriteTransaction) -> Result<String> {
    let t = tx.open_table(REGISTRATIONS)?;
    loop {
        let code: String = (0..CODE_LEN)
            .map(|_| CODE_ALPHABET[fastrand::usize(..CODE_ALPHABET.len())] as char)
            .collect();
        if t.get(code.as_str())?.is_none() {
            return Ok(code);
        }
    }
}

/// Records a sign-up, inside `tx` (the turn's transaction). A seat is given
/// only if the stored event has one free and nobody is waiting; otherwise
/// the sign-up joins the waiting list. An event not in the store is
/// [`RegisterOutcome::EventGone`].
pub(super) fn register_in(tx: &WriteTransaction, new: &NewRegistration) -> Result<RegisterOutcome> {
    let existing = user_regs(tx, &new.user)?
        .into_iter()
        .find(|r| r.event_id == new.event_id && r.status != Status::Cancelled);
    if let Some(r) = existing {
        return Ok(RegisterOutcome::Existing(r));
    }
    let Some(ev) = event(tx, &new.event_id)? else {
        return Ok(RegisterOutcome::EventGone);
    };
    let mut c = counts(tx, &new.event_id)?;
    let seq = c.last_seq + 1;
    let seat_free = ev.capacity.is_none_or(|cap| c.confirmed < u64::from(cap));
    let wait = !seat_free || anyone_waiting(tx, &new.event_id)?;
    let reg = Registration {
        code: new_code(tx)?,
        event_id: new.event_id.clone(),
        user: new.user.clone(),
        name: new.name.clone(),
        organization: new.organization.clone(),
        phone: new.phone.clone(),
        status: if wait { Status::Waitlisted } else { Status::Confirmed },
        created_at: new.now,
        seq,
        promoted_at: None,
    };
    put_reg(tx, &reg)?;
    tx.open_table(EVENT_REGISTRATIONS)?
        .insert((reg.event_id.as_str(), seq), reg.code.as_str())?;
    tx.open_table(USER_REGISTRATIONS)?
        .insert((reg.user.as_str(), reg.code.as_str()), ())?;
    c.last_seq = seq;
    let outcome = if wait {
        tx.open_table(EVENT_WAITLIST)?
            .insert((reg.event_id.as_str(), seq), reg.code.as_str())?;
        c.waitlisted += 1;
        RegisterOutcome::Waitlisted(reg, c.waitlisted as usize)
    } else {
        c.confirmed += 1;
        RegisterOutcome::Confirmed(reg)
    };
    put_counts(tx, &new.event_id, &c)?;
    Ok(outcome)
}

/// Cancels `user`'s registration `code`, inside `tx` (the turn's
/// transaction). Freed seats go to the first on the waiting list, in order,
/// while seats are free; each is told through the outbox with
/// `notice` (`{event}` and `{code}` filled in).
pub(super) fn cancel_in(
    tx: &WriteTransaction,
    user: &str,
    code: &str,
    now: i64,
    notice: &Text,
) -> Result<CancelOutcome> {
    let Some(mut reg) = get_reg(tx, code)?.filter(|r| r.user == user && r.status != Status::Cancelled) else {
        return Ok(CancelOutcome::NotFound);
    };
    let mut c = counts(tx, &reg.event_id)?;
    if reg.status == Status::Confirmed {
        c.confirmed = c.confirmed.saturating_sub(1);
    } else {
        tx.open_table(EVENT_WAITLIST)?
            .remove((reg.event_id.as_str(), reg.seq))?;
        c.waitlisted = c.waitlisted.saturating_sub(1);
    }
    put_counts(tx, &reg.event_id, &c)?;
    reg.status = Status::Cancelled;
    put_reg(tx, &reg)?;
    let promoted = promote(tx, &reg.event_id, now, notice)?;
    Ok(CancelOutcome::Cancelled {
        cancelled: Box::new(reg),
        promoted,
    })
}

/// Saves a filled-in form, inside `tx`; returns its sequence number.
pub(super) fn save_form_in(
    tx: &WriteTransaction,
    form: &str,
    user: &str,
    values: &BTreeMap<String, String>,
    now: i64,
) -> Result<u64> {
    let seq = next_counter(tx, "form_seq")?;
    let entry = FormEntry {
        seq,
        form: form.to_string(),
        user: user.to_string(),
        values: values.clone(),
        created_at: now,
    };
    tx.open_table(FORMS)?.insert(seq, encode(&entry).as_slice())?;
    Ok(seq)
}

/// Moves waiting people of `event_id` to a seat, in order, while the stored
/// event has free seats; each is marked `promoted_at` and told through the
/// outbox with `notice` (`{event}` and `{code}` filled in, in one pass). An
/// event no longer in the store promotes nobody.
fn promote(tx: &WriteTransaction, event_id: &str, now: i64, notice: &Text) -> Result<Vec<Registration>> {
    let Some(ev) = event(tx, event_id)? else {
        return Ok(Vec::new());
    };
    let mut c = counts(tx, event_id)?;
    let mut promoted = Vec::new();
    while ev.capacity.is_none_or(|cap| c.confirmed < u64::from(cap)) {
        let Some(mut next) = pop_waitlist(tx, event_id)? else {
            break;
        };
        c.confirmed += 1;
        c.waitlisted = c.waitlisted.saturating_sub(1);
        next.status = Status::Confirmed;
        next.promoted_at = Some(now);
        put_reg(tx, &next)?;
        let text = promotion_notice(notice, &ev, &next.code);
        super::outbox::enqueue(tx, &next.user, DeliveryKind::Promotion, text, now, None)?;
        promoted.push(next);
    }
    if !promoted.is_empty() {
        put_counts(tx, event_id, &c)?;
    }
    Ok(promoted)
}

/// Promotes waiting people of every event with a waiting list (after an
/// import changed capacities); returns how many were promoted.
pub(super) fn promote_all(tx: &WriteTransaction, notice: &Text, now: i64) -> Result<usize> {
    let mut waiting = Vec::new();
    {
        let t = tx.open_table(EVENT_COUNTS)?;
        for row in t.iter()? {
            let (id, v) = row?;
            let c: EventCounts = decode(v.value(), "event counts")?;
            if c.waitlisted > 0 {
                waiting.push(id.value().to_string());
            }
        }
    }
    let mut n = 0;
    for id in waiting {
        n += promote(tx, &id, now, notice)?.len();
    }
    Ok(n)
}

/// Whether the event has a registration that is not cancelled.
pub(super) fn has_active(tx: &WriteTransaction, event_id: &str) -> Result<bool> {
    let c = counts(tx, event_id)?;
    Ok(c.confirmed + c.waitlisted > 0)
}

/// The promotion notice: `{event}` (the event's title in each language)
/// and `{code}`, filled in one pass.
fn promotion_notice(template: &Text, ev: &Event, code: &str) -> Text {
    let title = |l: Lang| ev.title.get(l).to_string();
    let code = |_: Lang| code.to_string();
    crate::template::fill_text(template, &[("event", &title), ("code", &code)])
}

impl Store {
    /// Registrations, by event then sign-up order; of one event if given.
    pub fn registrations(&self, event: Option<&str>) -> Result<Vec<Registration>> {
        self.read(|r| {
            let by_event = r.open_table(EVENT_REGISTRATIONS)?;
            let regs = r.open_table(REGISTRATIONS)?;
            let rows = match event {
                Some(ev) => by_event.range((ev, 0)..=(ev, u64::MAX)),
                None => by_event.range::<(&str, u64)>(..),
            }?;
            let mut out = Vec::new();
            for row in rows {
                let (_, code) = row?;
                if let Some(v) = regs.get(code.value())? {
                    out.push(decode(v.value(), "registration")?);
                }
            }
            Ok(out)
        })
    }

    /// The registrations of one identity, oldest first.
    pub fn user_registrations(&self, user: &str) -> Result<Vec<Registration>> {
        self.read(|r| {
            let by_user = r.open_table(USER_REGISTRATIONS)?;
            let regs = r.open_table(REGISTRATIONS)?;
            let mut out: Vec<Registration> = Vec::new();
            for row in by_user.range((user, "")..)? {
                let (k, _) = row?;
                let (u, code) = k.value();
                if u != user {
                    break;
                }
                if let Some(v) = regs.get(code)? {
                    out.push(decode(v.value(), "registration")?);
                }
            }
            out.sort_by_key(|r| (r.created_at, r.seq));
            Ok(out)
        })
    }

    /// Saved entries of one form, oldest first.
    pub fn forms(&self, form: &str) -> Result<Vec<FormEntry>> {
        let entries: Vec<FormEntry> = self.read(|r| all(r, FORMS, "form"))?;
        Ok(entries.into_iter().filter(|e| e.form == form).collect())
    }

    /// Messages waiting in the outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxMessage>> {
        self.read(|r| all(r, OUTBOX, "outbox message"))
    }

    /// How many people wait for a seat at an event.
    #[cfg(test)]
    pub(crate) fn waitlisted_count(&self, event_id: &str) -> Result<u32> {
        self.read(|r| {
            let t = r.open_table(EVENT_WAITLIST)?;
            Ok(t.range((event_id, 0)..=(event_id, u64::MAX))?.count() as u32)
        })
    }
}

fn user_regs(tx: &WriteTransaction, user: &str) -> Result<Vec<Registration>> {
    let t = tx.open_table(USER_REGISTRATIONS)?;
    let mut codes = Vec::new();
    for row in t.range((user, "")..)? {
        let (k, _) = row?;
        let (u, code) = k.value();
        if u != user {
            break;
        }
        codes.push(code.to_string());
    }
    drop(t);
    let mut out = Vec::new();
    for c in codes {
        if let Some(r) = get_reg(tx, &c)? {
            out.push(r);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{knowledge_with, opts, sign_up};
    use crate::store::{ImportOptions, Session, StoreError};

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.redb")).unwrap();
        (dir, store)
    }

    fn notice() -> Text {
        Text::Localized(
            [
                ("zh".to_string(), "{event}：您的报名码 {code}".to_string()),
                ("en".to_string(), "{event}: your code {code}".to_string()),
            ]
            .into_iter()
            .collect(),
        )
    }

    fn code_of(o: &RegisterOutcome) -> String {
        match o {
            RegisterOutcome::Confirmed(r) | RegisterOutcome::Waitlisted(r, _) | RegisterOutcome::Existing(r) => {
                r.code.clone()
            }
            RegisterOutcome::EventGone => panic!("event gone"),
        }
    }

    /// Rewrites the stored event's capacity directly, as no import would
    /// (no promotion happens).
    fn set_capacity_raw(store: &Store, event_id: &str, capacity: Option<u32>) {
        let id = event_id.to_string();
        store
            .write(move |tx| {
                let mut ev = event(tx, &id)?.unwrap();
                ev.capacity = capacity;
                tx.open_table(EVENTS)?.insert(id.as_str(), encode(&ev).as_slice())?;
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn capacity_comes_from_the_stored_event() {
        let (_d, store) = store();
        store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        assert!(matches!(
            sign_up(&store, "e1", "console:a"),
            RegisterOutcome::Confirmed(_)
        ));
        assert!(matches!(
            sign_up(&store, "e1", "console:b"),
            RegisterOutcome::Waitlisted(_, 1)
        ));
        assert!(matches!(
            sign_up(&store, "e1", "console:a"),
            RegisterOutcome::Existing(_)
        ));
        assert_eq!(sign_up(&store, "nope", "console:a"), RegisterOutcome::EventGone);
        assert!(store.registrations(Some("nope")).unwrap().is_empty());
    }

    #[test]
    fn lowered_capacity_promotes_nobody() {
        let (_d, store) = store();
        store.import(&knowledge_with(&[("e1", Some(3))]), &opts(true)).unwrap();
        let a = code_of(&sign_up(&store, "e1", "console:a"));
        sign_up(&store, "e1", "console:b");
        sign_up(&store, "e1", "console:c");
        assert!(matches!(
            sign_up(&store, "e1", "console:d"),
            RegisterOutcome::Waitlisted(_, 1)
        ));
        // Capacity lowered to 1 below the 3 confirmed.
        let s = store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        assert_eq!(s.promoted, 0);
        let out = store.cancel_registration("console:a", &a, 10, notice(), None).unwrap();
        let CancelOutcome::Cancelled { promoted, .. } = out else {
            panic!()
        };
        assert!(promoted.is_empty(), "2 confirmed ≥ capacity 1: nobody moves up");
        assert_eq!(store.confirmed_count("e1").unwrap(), 2);
        assert!(matches!(
            sign_up(&store, "e1", "console:e"),
            RegisterOutcome::Waitlisted(_, 2)
        ));
        assert!(store.outbox().unwrap().is_empty());
    }

    #[test]
    fn cancelling_promotes_the_first_waiting_with_a_one_pass_notice() {
        let (_d, store) = store();
        store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        let a = code_of(&sign_up(&store, "e1", "console:a"));
        let b = code_of(&sign_up(&store, "e1", "console:b"));
        sign_up(&store, "e1", "console:c");
        let out = store
            .cancel_registration("console:a", &a, 10, notice(), Some(Session::default()))
            .unwrap();
        let CancelOutcome::Cancelled { promoted, cancelled } = out else {
            panic!()
        };
        assert_eq!(cancelled.status, Status::Cancelled);
        assert_eq!(promoted.len(), 1);
        assert_eq!(
            (promoted[0].code.as_str(), promoted[0].promoted_at),
            (b.as_str(), Some(10))
        );
        let outbox = store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].to, "console:b");
        assert_eq!(outbox[0].text.get(Lang::En), format!("e1 forum: your code {b}"));
        assert_eq!(outbox[0].text.get(Lang::Zh), format!("e1论坛：您的报名码 {b}"));
        assert!(store.session("console:a").unwrap().is_some());
        assert_eq!(store.confirmed_count("e1").unwrap(), 1);
        assert_eq!(store.waitlisted_count("e1").unwrap(), 1);
    }

    #[test]
    fn raised_capacity_by_import_promotes_in_order() {
        let (_d, store) = store();
        store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        let codes: Vec<String> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|u| code_of(&sign_up(&store, "e1", &format!("console:{u}"))))
            .collect();
        let raise = ImportOptions {
            replace: true,
            force: false,
            promotion_notice: notice(),
        };
        let s = store.import(&knowledge_with(&[("e1", Some(3))]), &raise).unwrap();
        assert_eq!(s.promoted, 2);
        let regs = store.registrations(Some("e1")).unwrap();
        let status: Vec<Status> = regs.iter().map(|r| r.status).collect();
        use Status::*;
        assert_eq!(status, [Confirmed, Confirmed, Confirmed, Waitlisted, Waitlisted]);
        assert!(regs[1].promoted_at.is_some() && regs[2].promoted_at.is_some() && regs[0].promoted_at.is_none());
        let outbox = store.outbox().unwrap();
        let to: Vec<&str> = outbox.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["console:b", "console:c"]);
        assert_eq!(outbox[0].kind, crate::store::DeliveryKind::Promotion);
        assert_eq!(
            outbox[1].text.get(Lang::En),
            format!("e1 forum: your code {}", codes[2])
        );
        // No limit any more: everyone waiting moves up.
        let s = store.import(&knowledge_with(&[("e1", None)]), &raise).unwrap();
        assert_eq!(s.promoted, 2);
        assert_eq!(store.confirmed_count("e1").unwrap(), 5);
        assert_eq!(store.waitlisted_count("e1").unwrap(), 0);
        assert_eq!(store.outbox().unwrap().len(), 4);
    }

    #[test]
    fn a_newcomer_never_takes_a_seat_while_someone_waits() {
        let (_d, store) = store();
        store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        sign_up(&store, "e1", "console:a");
        sign_up(&store, "e1", "console:b");
        // A seat is free (capacity raised behind the import's back) but b waits.
        set_capacity_raw(&store, "e1", Some(2));
        assert!(matches!(
            sign_up(&store, "e1", "console:c"),
            RegisterOutcome::Waitlisted(_, 2)
        ));
        assert_eq!(store.confirmed_count("e1").unwrap(), 1);
        // Cancelling the waiting newcomer frees no seat but fills the free
        // one with the first waiting (b), in order.
        let c = store.user_registrations("console:c").unwrap()[0].code.clone();
        let CancelOutcome::Cancelled { promoted, .. } =
            store.cancel_registration("console:c", &c, 3, notice(), None).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            promoted.iter().map(|r| r.user.as_str()).collect::<Vec<_>>(),
            ["console:b"]
        );
    }

    #[test]
    fn notices_are_filled_in_one_pass() {
        let mut ev = knowledge_with(&[("e1", None)]).event.remove(0);
        ev.title = Text::Plain("{code} Forum".into());
        let t = promotion_notice(&notice(), &ev, "K7M4QX");
        assert_eq!(t.get(Lang::En), "{code} Forum: your code K7M4QX");
    }

    #[test]
    fn a_damaged_event_record_fails_the_sign_up_alone() {
        let (_d, store) = store();
        store.import(&knowledge_with(&[("e1", Some(1))]), &opts(true)).unwrap();
        store
            .write(|tx| {
                tx.open_table(EVENTS)?.insert("e1", b"\x01{".as_slice())?;
                Ok(())
            })
            .unwrap();
        let new = NewRegistration {
            event_id: "e1".into(),
            user: "console:a".into(),
            name: "A".into(),
            organization: String::new(),
            phone: String::new(),
            now: 1,
        };
        let e = store.register(new, Some(Session::default())).unwrap_err();
        assert!(matches!(e, StoreError::BadRecord { what: "event", .. }), "{e}");
        assert!(
            store.session("console:a").unwrap().is_none(),
            "nothing of it was written"
        );
    }
}
