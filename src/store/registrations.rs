//! Registrations, saved forms and the outbox: every decision about seats
//! and waiting-list order is made inside one write transaction, together
//! with the identity's session, so that what a person is told is exactly
//! what is stored.

use std::collections::BTreeMap;

use redb::{ReadableDatabase, ReadableTable, WriteTransaction};

use super::{
    EVENT_COUNTS, EVENT_REGISTRATIONS, EVENT_WAITLIST, FORMS, META, OUTBOX, REGISTRATIONS, Result, SESSIONS, Store,
    USER_REGISTRATIONS, decode, encode,
};
use crate::knowledge::Text;
use crate::store::{EventCounts, FormEntry, OutboxMessage, Registration, RegistrationStatus as Status, Session};

/// Characters of registration codes: no 0/O, 1/I/L look-alikes.
const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 6;

/// A sign-up to record.
#[derive(Debug, Clone)]
pub struct NewRegistration {
    pub event_id: String,
    /// Seats; `None` is no limit.
    pub capacity: Option<u32>,
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
}

/// What a cancellation came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    Cancelled {
        cancelled: Box<Registration>,
        /// The first of the waiting list, now confirmed.
        promoted: Option<Box<Registration>>,
    },
    /// No such active registration of this identity.
    NotFound,
}

type TxResult<T> = std::result::Result<T, String>;

fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

fn get_reg(tx: &WriteTransaction, code: &str) -> TxResult<Option<Registration>> {
    let t = tx.open_table(REGISTRATIONS).map_err(s)?;
    let v = t.get(code).map_err(s)?;
    v.map(|v| decode(v.value())).transpose()
}

fn put_reg(tx: &WriteTransaction, reg: &Registration) -> TxResult<()> {
    let mut t = tx.open_table(REGISTRATIONS).map_err(s)?;
    t.insert(reg.code.as_str(), encode(reg).as_slice()).map_err(s)?;
    Ok(())
}

fn counts(tx: &WriteTransaction, event_id: &str) -> TxResult<EventCounts> {
    let t = tx.open_table(EVENT_COUNTS).map_err(s)?;
    let v = t.get(event_id).map_err(s)?;
    Ok(v.map(|v| decode(v.value())).transpose()?.unwrap_or_default())
}

fn put_counts(tx: &WriteTransaction, event_id: &str, c: &EventCounts) -> TxResult<()> {
    tx.open_table(EVENT_COUNTS)
        .map_err(s)?
        .insert(event_id, encode(c).as_slice())
        .map_err(s)?;
    Ok(())
}

/// The first on an event's waiting list, taken off it.
fn pop_waitlist(tx: &WriteTransaction, event_id: &str) -> TxResult<Option<Registration>> {
    let mut t = tx.open_table(EVENT_WAITLIST).map_err(s)?;
    let first = t
        .range((event_id, 0)..=(event_id, u64::MAX))
        .map_err(s)?
        .next()
        .transpose()
        .map_err(s)?
        .map(|(k, v)| (k.value().1, v.value().to_string()));
    let Some((seq, code)) = first else { return Ok(None) };
    t.remove((event_id, seq)).map_err(s)?;
    drop(t);
    get_reg(tx, &code)
}

fn write_session(tx: &WriteTransaction, identity: &str, session: Option<&Session>) -> TxResult<()> {
    let mut t = tx.open_table(SESSIONS).map_err(s)?;
    match session {
        Some(sess) => t.insert(identity, encode(sess).as_slice()).map(|_| ()),
        None => t.remove(identity).map(|_| ()),
    }
    .map_err(s)
}

/// The next value of a counter kept in `meta`.
fn next_counter(tx: &WriteTransaction, name: &str) -> TxResult<u64> {
    let mut meta = tx.open_table(META).map_err(s)?;
    let next = meta.get(name).map_err(s)?.map_or(1, |v| v.value() + 1);
    meta.insert(name, next).map_err(s)?;
    Ok(next)
}

fn new_code(tx: &WriteTransaction) -> TxResult<String> {
    let t = tx.open_table(REGISTRATIONS).map_err(s)?;
    loop {
        let code: String = (0..CODE_LEN)
            .map(|_| CODE_ALPHABET[fastrand::usize(..CODE_ALPHABET.len())] as char)
            .collect();
        if t.get(code.as_str()).map_err(s)?.is_none() {
            return Ok(code);
        }
    }
}

fn enqueue(tx: &WriteTransaction, to: &str, kind: &str, text: Text, now: i64) -> TxResult<u64> {
    let id = next_counter(tx, "outbox_seq")?;
    let msg = OutboxMessage {
        id,
        to: to.to_string(),
        kind: kind.to_string(),
        text,
        created_at: now,
        attempts: 0,
    };
    let mut t = tx.open_table(OUTBOX).map_err(s)?;
    t.insert(id, encode(&msg).as_slice()).map_err(s)?;
    Ok(id)
}

impl Store {
    /// Records a sign-up and saves `session` for its identity, in one
    /// durable transaction. Seats are given in sign-up order; when none is
    /// left the sign-up joins the waiting list.
    pub fn register(&self, new: NewRegistration, session: Option<Session>) -> Result<RegisterOutcome> {
        self.write(move |tx| {
            let existing = user_regs(tx, &new.user)?
                .into_iter()
                .find(|r| r.event_id == new.event_id && r.status != Status::Cancelled);
            let outcome = match existing {
                Some(r) => RegisterOutcome::Existing(r),
                None => {
                    let mut c = counts(tx, &new.event_id)?;
                    let seq = c.last_seq + 1;
                    let full = new.capacity.is_some_and(|cap| c.confirmed >= u64::from(cap));
                    let reg = Registration {
                        code: new_code(tx)?,
                        event_id: new.event_id.clone(),
                        user: new.user.clone(),
                        name: new.name.clone(),
                        organization: new.organization.clone(),
                        phone: new.phone.clone(),
                        status: if full { Status::Waitlisted } else { Status::Confirmed },
                        created_at: new.now,
                        seq,
                        promoted_at: None,
                    };
                    put_reg(tx, &reg)?;
                    tx.open_table(EVENT_REGISTRATIONS)
                        .map_err(s)?
                        .insert((reg.event_id.as_str(), seq), reg.code.as_str())
                        .map_err(s)?;
                    tx.open_table(USER_REGISTRATIONS)
                        .map_err(s)?
                        .insert((reg.user.as_str(), reg.code.as_str()), ())
                        .map_err(s)?;
                    c.last_seq = seq;
                    let outcome = if full {
                        tx.open_table(EVENT_WAITLIST)
                            .map_err(s)?
                            .insert((reg.event_id.as_str(), seq), reg.code.as_str())
                            .map_err(s)?;
                        c.waitlisted += 1;
                        RegisterOutcome::Waitlisted(reg, c.waitlisted as usize)
                    } else {
                        c.confirmed += 1;
                        RegisterOutcome::Confirmed(reg)
                    };
                    put_counts(tx, &new.event_id, &c)?;
                    outcome
                }
            };
            write_session(tx, &new.user, session.as_ref())?;
            Ok(outcome)
        })
    }

    /// Cancels `user`'s registration `code` and saves `session`, in one
    /// durable transaction. A freed seat goes to the first on the waiting
    /// list, who is told through the outbox with `promoted_text` (where
    /// `{code}` is filled in).
    pub fn cancel_registration(
        &self,
        user: &str,
        code: &str,
        now: i64,
        promoted_text: Text,
        session: Option<Session>,
    ) -> Result<CancelOutcome> {
        let (user, code) = (user.to_string(), code.to_string());
        self.write(move |tx| {
            write_session(tx, &user, session.as_ref())?;
            let Some(mut reg) = get_reg(tx, &code)?.filter(|r| r.user == user && r.status != Status::Cancelled) else {
                return Ok(CancelOutcome::NotFound);
            };
            let freed_seat = reg.status == Status::Confirmed;
            let mut c = counts(tx, &reg.event_id)?;
            if freed_seat {
                c.confirmed = c.confirmed.saturating_sub(1);
            } else {
                tx.open_table(EVENT_WAITLIST)
                    .map_err(s)?
                    .remove((reg.event_id.as_str(), reg.seq))
                    .map_err(s)?;
                c.waitlisted = c.waitlisted.saturating_sub(1);
            }
            reg.status = Status::Cancelled;
            put_reg(tx, &reg)?;
            let mut promoted = None;
            if freed_seat && let Some(mut next) = pop_waitlist(tx, &reg.event_id)? {
                c.confirmed += 1;
                c.waitlisted = c.waitlisted.saturating_sub(1);
                next.status = Status::Confirmed;
                next.promoted_at = Some(now);
                put_reg(tx, &next)?;
                let text = fill_text(&promoted_text, &next.code);
                enqueue(tx, &next.user, "promotion", text, now)?;
                promoted = Some(Box::new(next));
            }
            put_counts(tx, &reg.event_id, &c)?;
            Ok(CancelOutcome::Cancelled {
                cancelled: Box::new(reg),
                promoted,
            })
        })
    }

    /// Saves a filled-in form and `session`, in one durable transaction.
    /// Returns the entry's sequence number.
    pub fn save_form(
        &self,
        form: &str,
        user: &str,
        values: BTreeMap<String, String>,
        now: i64,
        session: Option<Session>,
    ) -> Result<u64> {
        let (form, user) = (form.to_string(), user.to_string());
        self.write(move |tx| {
            let seq = next_counter(tx, "form_seq")?;
            let entry = FormEntry {
                seq,
                form,
                user: user.clone(),
                values,
                created_at: now,
            };
            tx.open_table(FORMS)
                .map_err(s)?
                .insert(seq, encode(&entry).as_slice())
                .map_err(s)?;
            write_session(tx, &user, session.as_ref())?;
            Ok(seq)
        })
    }

    /// Registrations, by event then sign-up order; of one event if given.
    pub fn registrations(&self, event: Option<&str>) -> Result<Vec<Registration>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let by_event = r.open_table(EVENT_REGISTRATIONS).map_err(|e| self.err(e))?;
        let regs = r.open_table(REGISTRATIONS).map_err(|e| self.err(e))?;
        let rows = match event {
            Some(ev) => by_event.range((ev, 0)..=(ev, u64::MAX)),
            None => by_event.range::<(&str, u64)>(..),
        }
        .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (_, code) = row.map_err(|e| self.err(e))?;
            if let Some(v) = regs.get(code.value()).map_err(|e| self.err(e))? {
                out.push(self.decode(v.value(), "registration")?);
            }
        }
        Ok(out)
    }

    /// The registrations of one identity, oldest first.
    pub fn user_registrations(&self, user: &str) -> Result<Vec<Registration>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let by_user = r.open_table(USER_REGISTRATIONS).map_err(|e| self.err(e))?;
        let regs = r.open_table(REGISTRATIONS).map_err(|e| self.err(e))?;
        let mut out: Vec<Registration> = Vec::new();
        for row in by_user.range((user, "")..).map_err(|e| self.err(e))? {
            let (k, _) = row.map_err(|e| self.err(e))?;
            let (u, code) = k.value();
            if u != user {
                break;
            }
            if let Some(v) = regs.get(code).map_err(|e| self.err(e))? {
                out.push(self.decode(v.value(), "registration")?);
            }
        }
        out.sort_by_key(|r| (r.created_at, r.seq));
        Ok(out)
    }

    /// Saved entries of one form, oldest first.
    pub fn forms(&self, form: &str) -> Result<Vec<FormEntry>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        let entries: Vec<FormEntry> = self.all(&r, FORMS, "form")?;
        Ok(entries.into_iter().filter(|e| e.form == form).collect())
    }

    /// Messages waiting in the outbox, oldest first.
    pub fn outbox(&self) -> Result<Vec<OutboxMessage>> {
        let r = self.db.begin_read().map_err(|e| self.err(e))?;
        self.all(&r, OUTBOX, "outbox message")
    }
}

fn user_regs(tx: &WriteTransaction, user: &str) -> TxResult<Vec<Registration>> {
    let t = tx.open_table(USER_REGISTRATIONS).map_err(s)?;
    let mut codes = Vec::new();
    for row in t.range((user, "")..).map_err(s)? {
        let (k, _) = row.map_err(s)?;
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

fn fill_text(t: &Text, code: &str) -> Text {
    match t {
        Text::Plain(p) => Text::Plain(p.replace("{code}", code)),
        Text::Localized(m) => Text::Localized(m.iter().map(|(k, v)| (k.clone(), v.replace("{code}", code))).collect()),
    }
}
