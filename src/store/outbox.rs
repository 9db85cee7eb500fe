//! The outbox: every message the bot sends on its own — announcement
//! deliveries, waiting-list promotions, event reminders, WeChat answers
//! that missed the deadline — as one record each, with its state.
//!
//! A record is `pending` until a channel's courier reports it `sent` or
//! `failed` (permanent failures and attempts used up), or an announcement
//! is stopped (`cancelled`). Push channels (Telegram, WeChat) find their
//! due records through the index `(channel, due at, id)`; pull channels
//! (the web page, the terminal) through `(identity, id)`, taken when the
//! person next opens the chat. Counts per channel and state, and each
//! announcement's counts, change in the same transaction as the record,
//! so they never drift.
//!
//! Crash safety: a record is marked sent (durably, through the group
//! commit) only after the platform accepted it. A crash between the two
//! sends it again after the restart: only messages in flight at the crash
//! can go twice, none is lost.

use std::collections::{BTreeMap, HashSet};

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::registrations::{get_reg, next_counter};
use super::{EVENT_REGISTRATIONS, OUTBOX, Pending, Result, SESSIONS, SUBSCRIBERS, Store, StoreError, decode, encode};
use crate::knowledge::{Event, Lang, Text};
use crate::message::{Channel, Identity};
use crate::store::{Registration, RegistrationStatus, Session, Subscriber};

/// (channel, due at (unix seconds), outbox id) → (): pending records of
/// push channels, soonest first.
pub(super) const OUTBOX_DUE: TableDefinition<(&str, u64, u64), ()> = TableDefinition::new("channel_dueat_outboxid");
/// (identity, outbox id) → (): pending records of pull channels.
pub(super) const OUTBOX_WAITING: TableDefinition<(&str, u64), ()> = TableDefinition::new("identity_outboxid_waiting");
/// (finished at, outbox id) → (): finished records, for pruning.
pub(super) const OUTBOX_DONE: TableDefinition<(u64, u64), ()> = TableDefinition::new("finishedat_outboxid");
/// (channel, state) → count.
pub(super) const OUTBOX_COUNTS: TableDefinition<(&str, &str), u64> = TableDefinition::new("channel_state_count");
/// announcement id → Announcement
pub(super) const ANNOUNCEMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("id_announcement");
/// (announcement id, outbox id) → ()
pub(super) const ANNOUNCEMENT_DELIVERIES: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("announcementid_outboxid");
/// event id → when its reminders were queued (unix seconds)
pub(super) const REMINDED: TableDefinition<&str, u64> = TableDefinition::new("eventid_remindedat");

/// The longest announcement text taken (Telegram's limit for one message;
/// longer texts would arrive in parts).
pub const MAX_ANNOUNCEMENT_CHARS: usize = 4000;

/// Creates the outbox's tables (at open).
pub(super) fn create_tables(w: &WriteTransaction) -> Result<()> {
    w.open_table(OUTBOX_DUE)?;
    w.open_table(OUTBOX_WAITING)?;
    w.open_table(OUTBOX_DONE)?;
    w.open_table(OUTBOX_COUNTS)?;
    w.open_table(ANNOUNCEMENTS)?;
    w.open_table(ANNOUNCEMENT_DELIVERIES)?;
    w.open_table(REMINDED)?;
    Ok(())
}

/// Why an announcement was not made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnounceRefusal {
    #[error("the text is empty")]
    EmptyText,
    #[error("the text is longer than {max} characters")]
    TooLong { max: usize },
    #[error("there is no event with id {0:?}")]
    UnknownEvent(String),
}

/// Why a record was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// Moved from the waiting list to a seat.
    Promotion,
    /// One recipient of an announcement.
    Announcement,
    /// An event is near.
    Reminder,
    /// An answer that missed the platform's reply deadline.
    Reply,
}

/// Where a record stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    #[default]
    Pending,
    Sent,
    Failed,
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 4] = [
        DeliveryState::Pending,
        DeliveryState::Sent,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Cancelled => "cancelled",
        }
    }
}

/// A message waiting to be delivered to one identity, or done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxMessage {
    pub id: u64,
    pub to: String,
    pub kind: DeliveryKind,
    /// The text in each language; delivery picks the recipient's.
    pub text: Text,
    pub created_at: i64,
    /// Sends tried so far.
    pub attempts: u32,
    #[serde(default)]
    pub state: DeliveryState,
    /// When it may be tried (next); unix seconds.
    #[serde(default)]
    pub due_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    /// Why the last try failed (kept when it is retried or given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The announcement it delivers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement: Option<u64>,
}

/// Who an announcement goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Every subscriber on every channel.
    All,
    /// The confirmed registrants of an event.
    Event(String),
    /// Every subscriber of one channel.
    Channel(Channel),
}

impl Audience {
    /// `all`, `event:ID` or `channel:NAME`.
    pub fn parse(s: &str) -> std::result::Result<Audience, String> {
        let s = s.trim();
        match s.split_once(':') {
            None if s == "all" => Ok(Audience::All),
            Some(("event", id)) if !id.trim().is_empty() => Ok(Audience::Event(id.trim().to_string())),
            Some(("channel", name)) => Channel::parse(name.trim()).map(Audience::Channel).ok_or_else(|| {
                format!(
                    "unknown channel {name:?} (one of {})",
                    Channel::ALL.map(Channel::name).join(", ")
                )
            }),
            _ => Err(format!("{s:?} is not an audience: use all, event:ID or channel:NAME")),
        }
    }
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Audience::All => f.write_str("all"),
            Audience::Event(id) => write!(f, "event:{id}"),
            Audience::Channel(c) => write!(f, "channel:{c}"),
        }
    }
}

/// An announcement and how its deliveries stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub id: u64,
    pub audience: String,
    pub text: String,
    /// Who made it (an identity, `admin-api` or `cli`).
    pub created_by: String,
    pub created_at: i64,
    pub total: u64,
    pub sent: u64,
    pub failed: u64,
    pub cancelled: u64,
    /// Failure reasons with their counts.
    #[serde(default)]
    pub reasons: BTreeMap<String, u64>,
    /// Set when it was stopped.
    #[serde(default)]
    pub stopped_at: Option<i64>,
}

impl Announcement {
    pub fn pending(&self) -> u64 {
        self.total.saturating_sub(self.sent + self.failed + self.cancelled)
    }
}

/// A record due for sending, with the language to send it in.
#[derive(Debug, Clone)]
pub struct Due {
    pub message: OutboxMessage,
    pub lang: Lang,
}

impl Due {
    pub fn text(&self) -> &str {
        self.message.text.get(self.lang)
    }
}

/// What a try came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    /// Failed for now; try again at `at` (unix seconds).
    Retry {
        at: i64,
        reason: String,
    },
    /// Will not be tried again.
    Failed {
        reason: String,
    },
}

/// Whether a channel's records are pushed by a courier or taken by the
/// person (the web page, the terminal).
fn pushed(channel: Channel) -> bool {
    matches!(channel, Channel::Telegram | Channel::Wechat)
}

fn channel_of(identity: &str) -> Channel {
    Identity::parse(identity).map_or(Channel::Console, |i| i.channel())
}

fn bump(tx: &WriteTransaction, channel: Channel, state: DeliveryState, by: i64) -> Result<()> {
    let mut t = tx.open_table(OUTBOX_COUNTS)?;
    let key = (channel.name(), state.name());
    let now = t.get(key)?.map_or(0, |v| v.value());
    t.insert(key, now.saturating_add_signed(by))?;
    Ok(())
}

fn put(tx: &WriteTransaction, m: &OutboxMessage) -> Result<()> {
    tx.open_table(OUTBOX)?.insert(m.id, encode(m).as_slice())?;
    Ok(())
}

fn get(tx: &WriteTransaction, id: u64) -> Result<Option<OutboxMessage>> {
    tx.open_table(OUTBOX)?
        .get(id)?
        .map(|v| decode(v.value(), "outbox message"))
        .transpose()
}

/// Queues a message for `to`, inside `tx`; returns its id.
pub(super) fn enqueue(
    tx: &WriteTransaction,
    to: &str,
    kind: DeliveryKind,
    text: Text,
    now: i64,
    announcement: Option<u64>,
) -> Result<u64> {
    let id = next_counter(tx, "outbox_seq")?;
    let m = OutboxMessage {
        id,
        to: to.to_string(),
        kind,
        text,
        created_at: now,
        attempts: 0,
        state: DeliveryState::Pending,
        due_at: now,
        updated_at: now,
        reason: None,
        announcement,
    };
    put(tx, &m)?;
    index_pending(tx, &m)?;
    bump(tx, channel_of(to), DeliveryState::Pending, 1)?;
    Ok(id)
}

fn index_pending(tx: &WriteTransaction, m: &OutboxMessage) -> Result<()> {
    let channel = channel_of(&m.to);
    if pushed(channel) {
        tx.open_table(OUTBOX_DUE)?
            .insert((channel.name(), m.due_at.max(0) as u64, m.id), ())?;
    } else {
        tx.open_table(OUTBOX_WAITING)?.insert((m.to.as_str(), m.id), ())?;
    }
    Ok(())
}

fn unindex_pending(tx: &WriteTransaction, m: &OutboxMessage) -> Result<()> {
    let channel = channel_of(&m.to);
    if pushed(channel) {
        tx.open_table(OUTBOX_DUE)?
            .remove((channel.name(), m.due_at.max(0) as u64, m.id))?;
    } else {
        tx.open_table(OUTBOX_WAITING)?.remove((m.to.as_str(), m.id))?;
    }
    Ok(())
}

/// Ends a pending record in `state`, inside `tx`.
fn finish(tx: &WriteTransaction, m: &mut OutboxMessage, state: DeliveryState, now: i64) -> Result<()> {
    unindex_pending(tx, m)?;
    m.state = state;
    m.updated_at = now;
    put(tx, m)?;
    tx.open_table(OUTBOX_DONE)?.insert((now.max(0) as u64, m.id), ())?;
    let channel = channel_of(&m.to);
    bump(tx, channel, DeliveryState::Pending, -1)?;
    bump(tx, channel, state, 1)?;
    if let Some(a) = m.announcement {
        update_announcement(tx, a, |ann| match state {
            DeliveryState::Sent => ann.sent += 1,
            DeliveryState::Failed => {
                ann.failed += 1;
                let reason = m.reason.clone().unwrap_or_else(|| "unknown".into());
                *ann.reasons.entry(reason).or_default() += 1;
            }
            DeliveryState::Cancelled => ann.cancelled += 1,
            DeliveryState::Pending => {}
        })?;
    }
    Ok(())
}

fn get_announcement(tx: &WriteTransaction, id: u64) -> Result<Option<Announcement>> {
    tx.open_table(ANNOUNCEMENTS)?
        .get(id)?
        .map(|v| decode(v.value(), "announcement"))
        .transpose()
}

/// Changes announcement `id` with `change` and saves it; the announcement
/// after the change (`None`: there is no such announcement).
fn update_announcement(
    tx: &WriteTransaction,
    id: u64,
    change: impl FnOnce(&mut Announcement),
) -> Result<Option<Announcement>> {
    let Some(mut ann) = get_announcement(tx, id)? else {
        return Ok(None);
    };
    change(&mut ann);
    tx.open_table(ANNOUNCEMENTS)?.insert(id, encode(&ann).as_slice())?;
    Ok(Some(ann))
}

/// The language of `identity`'s conversation, else Chinese.
fn lang_of(r: &redb::ReadTransaction, identity: &str) -> Result<Lang> {
    let t = r.open_table(SESSIONS)?;
    let session: Option<Session> = t.get(identity)?.map(|v| decode(v.value(), "session")).transpose()?;
    Ok(session.and_then(|s| s.lang).unwrap_or(Lang::Zh))
}

/// Active subscribers (not opted out, not blocking the bot), optionally of
/// one channel.
fn subscribers_in(tx: &WriteTransaction, channel: Option<Channel>) -> Result<Vec<String>> {
    let t = tx.open_table(SUBSCRIBERS)?;
    let mut out = Vec::new();
    for row in t.iter()? {
        let (k, v) = row?;
        let s: Subscriber = decode(v.value(), "subscriber")?;
        let who = k.value();
        if s.subscribed && !s.blocked && channel.is_none_or(|c| channel_of(who) == c) {
            out.push(who.to_string());
        }
    }
    Ok(out)
}

/// Whether `who` opted out (or blocks the bot).
fn opted_out(tx: &WriteTransaction, who: &str) -> Result<bool> {
    let t = tx.open_table(SUBSCRIBERS)?;
    let s: Option<Subscriber> = t.get(who)?.map(|v| decode(v.value(), "subscriber")).transpose()?;
    Ok(s.is_some_and(|s| !s.subscribed || s.blocked))
}

/// An event's confirmed registrations, in sign-up order (through the
/// event's index, not a scan of every registration).
fn confirmed_of(tx: &WriteTransaction, event_id: &str) -> Result<Vec<Registration>> {
    let codes: Vec<String> = {
        let t = tx.open_table(EVENT_REGISTRATIONS)?;
        t.range((event_id, 0)..=(event_id, u64::MAX))?
            .map(|row| row.map(|(_, code)| code.value().to_string()))
            .collect::<std::result::Result<_, _>>()?
    };
    let mut out = Vec::new();
    for code in codes {
        if let Some(r) = get_reg(tx, &code)?.filter(|r| r.status == RegistrationStatus::Confirmed) {
            out.push(r);
        }
    }
    Ok(out)
}

/// Creates an announcement inside `tx`: its recipients are the audience as
/// it is now (a snapshot); an opted-out person is never among them.
pub(super) fn announce_in(
    tx: &WriteTransaction,
    audience: &Audience,
    text: &str,
    by: &str,
    now: i64,
    event_known: impl Fn(&WriteTransaction, &str) -> Result<bool>,
) -> Result<Announcement> {
    let text = text.trim();
    let refuse = |r| Err(StoreError::AnnouncementRefused(r));
    if text.is_empty() {
        return refuse(AnnounceRefusal::EmptyText);
    }
    if text.chars().count() > MAX_ANNOUNCEMENT_CHARS {
        return refuse(AnnounceRefusal::TooLong {
            max: MAX_ANNOUNCEMENT_CHARS,
        });
    }
    let mut recipients = match audience {
        Audience::All => subscribers_in(tx, None)?,
        Audience::Channel(c) => subscribers_in(tx, Some(*c))?,
        Audience::Event(id) => {
            if !event_known(tx, id)? {
                return refuse(AnnounceRefusal::UnknownEvent(id.clone()));
            }
            let mut who = Vec::new();
            for r in confirmed_of(tx, id)? {
                if !opted_out(tx, &r.user)? {
                    who.push(r.user);
                }
            }
            who
        }
    };
    let mut seen = HashSet::new();
    recipients.retain(|r| seen.insert(r.clone()));
    let id = next_counter(tx, "announcement_seq")?;
    let ann = Announcement {
        id,
        audience: audience.to_string(),
        text: text.to_string(),
        created_by: by.to_string(),
        created_at: now,
        total: recipients.len() as u64,
        sent: 0,
        failed: 0,
        cancelled: 0,
        reasons: BTreeMap::new(),
        stopped_at: None,
    };
    tx.open_table(ANNOUNCEMENTS)?.insert(id, encode(&ann).as_slice())?;
    let mut links = Vec::with_capacity(recipients.len());
    for who in &recipients {
        links.push(enqueue(
            tx,
            who,
            DeliveryKind::Announcement,
            Text::Plain(text.to_string()),
            now,
            Some(id),
        )?);
    }
    let mut t = tx.open_table(ANNOUNCEMENT_DELIVERIES)?;
    for d in links {
        t.insert((id, d), ())?;
    }
    Ok(ann)
}

/// Records what a try of `id` came to, inside `tx`. A record no longer
/// pending (stopped meanwhile) keeps its state, except that a send that
/// happened is recorded as sent.
fn record_in(tx: &WriteTransaction, id: u64, outcome: &Delivered, now: i64) -> Result<()> {
    let Some(mut m) = get(tx, id)? else { return Ok(()) };
    m.attempts += 1;
    match (m.state, outcome) {
        (DeliveryState::Pending, Delivered::Sent) => {
            m.reason = None;
            finish(tx, &mut m, DeliveryState::Sent, now)
        }
        (DeliveryState::Pending, Delivered::Failed { reason }) => {
            m.reason = Some(reason.clone());
            finish(tx, &mut m, DeliveryState::Failed, now)
        }
        (DeliveryState::Pending, Delivered::Retry { at, reason }) => {
            unindex_pending(tx, &m)?;
            m.due_at = *at;
            m.reason = Some(reason.clone());
            m.updated_at = now;
            put(tx, &m)?;
            index_pending(tx, &m)
        }
        (DeliveryState::Cancelled, Delivered::Sent) => {
            // Stopped while it was on its way: it went all the same.
            let channel = channel_of(&m.to);
            bump(tx, channel, DeliveryState::Cancelled, -1)?;
            bump(tx, channel, DeliveryState::Sent, 1)?;
            if let Some(a) = m.announcement {
                update_announcement(tx, a, |ann| {
                    ann.cancelled = ann.cancelled.saturating_sub(1);
                    ann.sent += 1;
                })?;
            }
            m.state = DeliveryState::Sent;
            m.updated_at = now;
            put(tx, &m)
        }
        _ => {
            m.updated_at = now;
            put(tx, &m)
        }
    }
}

/// Rewrites records queued before the outbox had states: pending, indexed
/// and counted (schema 1 → 2).
pub(super) fn index_old_records(tx: &WriteTransaction) -> Result<()> {
    let mut old = Vec::new();
    {
        let t = tx.open_table(OUTBOX)?;
        for row in t.iter()? {
            let (_, v) = row?;
            let m: OutboxMessage = decode(v.value(), "outbox message")?;
            old.push(m);
        }
    }
    for mut m in old {
        if m.state == DeliveryState::Pending {
            m.due_at = m.due_at.max(m.created_at);
            put(tx, &m)?;
            index_pending(tx, &m)?;
            bump(tx, channel_of(&m.to), DeliveryState::Pending, 1)?;
        }
    }
    Ok(())
}

impl Store {
    /// Creates an announcement to `audience` (durable when it returns).
    pub fn announce(&self, audience: &Audience, text: &str, by: &str, now: i64) -> Result<Announcement> {
        let (audience, text, by) = (audience.clone(), text.to_string(), by.to_string());
        self.write(move |tx| announce_in(tx, &audience, &text, &by, now, super::registrations::event_exists))
    }

    /// Up to `limit` pending records of a push `channel` due at `now`,
    /// soonest first, leaving out `skip` (those already on their way).
    pub fn due(&self, channel: Channel, now: i64, limit: usize, skip: &HashSet<u64>) -> Result<Vec<Due>> {
        self.read(|r| {
            let due = r.open_table(OUTBOX_DUE)?;
            let outbox = r.open_table(OUTBOX)?;
            let mut out = Vec::new();
            let range = (channel.name(), 0u64, 0u64)..=(channel.name(), now.max(0) as u64, u64::MAX);
            for row in due.range(range)? {
                let (k, _) = row?;
                let id = k.value().2;
                if skip.contains(&id) {
                    continue;
                }
                let Some(v) = outbox.get(id)? else { continue };
                let message: OutboxMessage = decode(v.value(), "outbox message")?;
                let lang = lang_of(r, &message.to)?;
                out.push(Due { message, lang });
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Whether record `id` is still pending (not stopped meanwhile).
    pub fn is_pending(&self, id: u64) -> Result<bool> {
        self.read(|r| {
            let t = r.open_table(OUTBOX)?;
            let Some(v) = t.get(id)? else { return Ok(false) };
            let m: OutboxMessage = decode(v.value(), "outbox message")?;
            Ok(m.state == DeliveryState::Pending)
        })
    }

    /// When the next pending record of `channel` is due, if any.
    pub fn next_due(&self, channel: Channel) -> Result<Option<i64>> {
        self.read(|r| {
            let due = r.open_table(OUTBOX_DUE)?;
            let range = (channel.name(), 0u64, 0u64)..=(channel.name(), u64::MAX, u64::MAX);
            Ok(due.range(range)?.next().transpose()?.map(|(k, _)| k.value().1 as i64))
        })
    }

    /// Records what a try came to, durably, through the group commit (many
    /// couriers' results share one fsync).
    pub fn record_delivery(&self, id: u64, outcome: Delivered, now: i64) -> Result<Pending<()>> {
        self.submit_with(true, move |tx| record_in(tx, id, &outcome, now))
    }

    /// Stops an announcement: its pending deliveries are cancelled. `None`
    /// when there is no such announcement.
    pub fn stop_announcement(&self, id: u64, now: i64) -> Result<Option<Announcement>> {
        self.write(move |tx| {
            if get_announcement(tx, id)?.is_none() {
                return Ok(None);
            }
            let mut ids = Vec::new();
            {
                let t = tx.open_table(ANNOUNCEMENT_DELIVERIES)?;
                for row in t.range((id, 0)..=(id, u64::MAX))? {
                    ids.push(row?.0.value().1);
                }
            }
            for d in ids {
                if let Some(mut m) = get(tx, d)?.filter(|m| m.state == DeliveryState::Pending) {
                    finish(tx, &mut m, DeliveryState::Cancelled, now)?;
                }
            }
            // The counts as the cancellations left them.
            update_announcement(tx, id, |ann| {
                ann.stopped_at.get_or_insert(now);
            })
        })
    }

    pub fn announcement(&self, id: u64) -> Result<Option<Announcement>> {
        self.read(|r| {
            r.open_table(ANNOUNCEMENTS)?
                .get(id)?
                .map(|v| decode(v.value(), "announcement"))
                .transpose()
        })
    }

    /// The latest `limit` announcements, newest first.
    pub fn announcements(&self, limit: usize) -> Result<Vec<Announcement>> {
        self.read(|r| {
            let t = r.open_table(ANNOUNCEMENTS)?;
            let mut out = Vec::new();
            for row in t.iter()?.rev().take(limit) {
                out.push(decode(row?.1.value(), "announcement")?);
            }
            Ok(out)
        })
    }

    /// Every delivery of an announcement, in queue order.
    pub fn deliveries(&self, announcement: u64) -> Result<Vec<OutboxMessage>> {
        self.read(|r| {
            let links = r.open_table(ANNOUNCEMENT_DELIVERIES)?;
            let outbox = r.open_table(OUTBOX)?;
            let mut out = Vec::new();
            for row in links.range((announcement, 0)..=(announcement, u64::MAX))? {
                let id = row?.0.value().1;
                if let Some(v) = outbox.get(id)? {
                    out.push(decode(v.value(), "outbox message")?);
                }
            }
            Ok(out)
        })
    }

    /// Queues an answer that missed a platform's deadline (durable).
    pub fn enqueue_reply(&self, to: &str, parts: Vec<String>, now: i64) -> Result<Vec<u64>> {
        let to = to.to_string();
        self.write(move |tx| {
            parts
                .iter()
                .map(|p| enqueue(tx, &to, DeliveryKind::Reply, Text::Plain(p.clone()), now, None))
                .collect()
        })
    }

    /// The pending records of a pull channel's identity, marked sent
    /// (durably) as they are handed over, oldest first.
    pub fn take_waiting(&self, identity: &str, now: i64) -> Result<Vec<Due>> {
        let lang = self.read(|r| lang_of(r, identity))?;
        let who = identity.to_string();
        let taken = self.write(move |tx| {
            let ids: Vec<u64> = {
                let t = tx.open_table(OUTBOX_WAITING)?;
                t.range((who.as_str(), 0)..=(who.as_str(), u64::MAX))?
                    .map(|row| row.map(|(k, _)| k.value().1))
                    .collect::<std::result::Result<_, _>>()?
            };
            let mut out = Vec::new();
            for id in ids {
                if let Some(mut m) = get(tx, id)?.filter(|m| m.state == DeliveryState::Pending) {
                    m.attempts += 1;
                    finish(tx, &mut m, DeliveryState::Sent, now)?;
                    out.push(m);
                }
            }
            Ok(out)
        })?;
        Ok(taken.into_iter().map(|message| Due { message, lang }).collect())
    }

    /// Whether `identity` has records waiting (a cheap check before
    /// [`Store::take_waiting`]).
    pub fn has_waiting(&self, identity: &str) -> Result<bool> {
        self.read(|r| {
            let t = r.open_table(OUTBOX_WAITING)?;
            Ok(t.range((identity, 0)..=(identity, u64::MAX))?.next().is_some())
        })
    }

    /// Queues reminders for events starting within `before` seconds of
    /// `now`, once per event: to each confirmed registrant (who has not
    /// opted out) registered or promoted before the reminder time, worded
    /// by `wording`. Returns how many were queued.
    pub fn queue_reminders<W>(&self, now: i64, before: i64, wording: W) -> Result<usize>
    where
        W: Fn(&Event, &Registration) -> Text + Send + Sync + 'static,
    {
        // Most of the time no event is due: say so without a write.
        let any_due = self.read(|r| {
            let reminded = r.open_table(REMINDED)?;
            for row in r.open_table(super::EVENTS)?.iter()? {
                let ev: Event = decode(row?.1.value(), "event")?;
                let starts = ev.starts_at.unix();
                if now >= starts - before && now < starts && reminded.get(ev.id.as_str())?.is_none() {
                    return Ok(true);
                }
            }
            Ok(false)
        })?;
        if !any_due {
            return Ok(0);
        }
        self.write(move |tx| {
            let mut queued = 0;
            for ev in super::registrations::all_events(tx)? {
                let starts = ev.starts_at.unix();
                let remind_at = starts - before;
                if now < remind_at || now >= starts {
                    continue;
                }
                if tx.open_table(REMINDED)?.get(ev.id.as_str())?.is_some() {
                    continue;
                }
                for r in confirmed_of(tx, &ev.id)? {
                    let since = r.promoted_at.unwrap_or(r.created_at);
                    if since > remind_at || opted_out(tx, &r.user)? {
                        continue;
                    }
                    enqueue(tx, &r.user, DeliveryKind::Reminder, wording(&ev, &r), now, None)?;
                    queued += 1;
                }
                tx.open_table(REMINDED)?.insert(ev.id.as_str(), now.max(0) as u64)?;
            }
            Ok(queued)
        })
    }

    /// Active subscribers per channel (not opted out, not blocking).
    pub fn subscriber_counts(&self) -> Result<BTreeMap<Channel, u64>> {
        self.read(|r| {
            let t = r.open_table(SUBSCRIBERS)?;
            let mut out = BTreeMap::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let s: Subscriber = decode(v.value(), "subscriber")?;
                if s.subscribed && !s.blocked {
                    *out.entry(channel_of(k.value())).or_default() += 1;
                }
            }
            Ok(out)
        })
    }

    /// Records per channel and state.
    pub fn outbox_counts(&self) -> Result<Vec<(Channel, DeliveryState, u64)>> {
        self.read(|r| {
            let t = r.open_table(OUTBOX_COUNTS)?;
            let mut out = Vec::new();
            for row in t.iter()? {
                let (k, v) = row?;
                let (channel, state) = k.value();
                let (Some(c), Some(s)) = (
                    Channel::parse(channel),
                    DeliveryState::ALL.into_iter().find(|s| s.name() == state),
                ) else {
                    continue;
                };
                out.push((c, s, v.value()));
            }
            Ok(out)
        })
    }

    /// Removes finished records older than `before` (unix seconds), at most
    /// `limit`; returns how many went.
    pub fn prune_outbox(&self, before: i64, limit: usize) -> Result<usize> {
        let any = self.read(|r| {
            let t = r.open_table(OUTBOX_DONE)?;
            Ok(t.range((0, 0)..(before.max(0) as u64, 0))?.next().is_some())
        })?;
        if !any {
            return Ok(0);
        }
        self.write(move |tx| {
            let old: Vec<(u64, u64)> = {
                let t = tx.open_table(OUTBOX_DONE)?;
                t.range((0, 0)..(before.max(0) as u64, 0))?
                    .take(limit)
                    .map(|row| row.map(|(k, _)| k.value()))
                    .collect::<std::result::Result<_, _>>()?
            };
            for (at, id) in &old {
                tx.open_table(OUTBOX_DONE)?.remove((*at, *id))?;
                if let Some(m) = tx.open_table(OUTBOX)?.remove(*id)?.map(|v| v.value().to_vec()) {
                    let m: OutboxMessage = decode(&m, "outbox message")?;
                    if let Some(a) = m.announcement {
                        tx.open_table(ANNOUNCEMENT_DELIVERIES)?.remove((a, *id))?;
                    }
                }
            }
            Ok(old.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::{parse_str, validate_references};
    use crate::store::{
        ImportOptions, NewRegistration, SCHEMA_VERSION as SCHEMA_VERSION_NOW, SubscriberChange, TurnWrite,
    };

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("o.redb")).unwrap();
        let k = "[[event]]\nid = \"e1\"\ntitle = { zh = \"论坛\", en = \"Forum\" }\n\
                 starts_at = \"2027-01-02T10:00:00+08:00\"\ncapacity = 10\n";
        let k = validate_references(vec![parse_str("k.toml", k, false).unwrap()], &Default::default()).unwrap();
        store.import(&k, &ImportOptions::default()).unwrap();
        (dir, store)
    }

    fn subscribe(store: &Store, who: &str, change: SubscriberChange) {
        let t = TurnWrite {
            identity: who.into(),
            now: 100,
            session: None,
            durable: true,
            effect: None,
            message_id: None,
            forget_before: 0,
            subscriber: Some(change),
        };
        store.commit_turn(t, |_| Vec::new()).unwrap();
    }

    fn counts(store: &Store) -> BTreeMap<String, u64> {
        store
            .outbox_counts()
            .unwrap()
            .into_iter()
            .map(|(c, s, n)| (format!("{c}/{}", s.name()), n))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    #[test]
    fn an_announcement_is_a_snapshot_of_active_subscribers() {
        let (_d, s) = store();
        for who in ["telegram:1", "telegram:2", "wechat:a", "web:w"] {
            subscribe(&s, who, SubscriberChange::FirstContact);
        }
        subscribe(&s, "telegram:2", SubscriberChange::Unsubscribe);
        let a = s.announce(&Audience::All, " Hello park ", "cli", 200).unwrap();
        assert_eq!((a.total, a.pending(), a.text.as_str()), (3, 3, "Hello park"));
        let tg = s
            .announce(&Audience::Channel(Channel::Telegram), "tg only", "cli", 200)
            .unwrap();
        assert_eq!(tg.total, 1);
        // Someone who subscribes later is not in the earlier snapshot.
        subscribe(&s, "telegram:3", SubscriberChange::FirstContact);
        assert_eq!(s.deliveries(a.id).unwrap().len(), 3);
        assert_eq!(
            counts(&s),
            BTreeMap::from([
                ("telegram/pending".into(), 2),
                ("wechat/pending".into(), 1),
                ("web/pending".into(), 1)
            ])
        );
        let refused = |a: &Audience, t: &str| match s.announce(a, t, "cli", 1) {
            Err(StoreError::AnnouncementRefused(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(refused(&Audience::All, "  "), AnnounceRefusal::EmptyText);
        assert_eq!(
            refused(&Audience::Event("nope".into()), "x"),
            AnnounceRefusal::UnknownEvent("nope".into())
        );
        assert!(matches!(
            refused(&Audience::All, &"x".repeat(5000)),
            AnnounceRefusal::TooLong { .. }
        ));
    }

    #[test]
    fn event_audiences_are_confirmed_registrants_who_did_not_opt_out() {
        let (_d, s) = store();
        for who in ["telegram:1", "telegram:2", "wechat:c"] {
            let r = NewRegistration {
                event_id: "e1".into(),
                user: who.into(),
                name: "N".into(),
                organization: "O".into(),
                phone: "13812345678".into(),
                now: 100,
            };
            s.register(r, None).unwrap();
        }
        subscribe(&s, "wechat:c", SubscriberChange::Unsubscribe);
        let a = s
            .announce(&Audience::Event("e1".into()), "Room changed", "cli", 200)
            .unwrap();
        let to: Vec<String> = s.deliveries(a.id).unwrap().into_iter().map(|d| d.to).collect();
        assert_eq!(to, ["telegram:1", "telegram:2"]);
    }

    #[tokio::test]
    async fn deliveries_are_sent_retried_failed_or_stopped_and_counted() {
        let (_d, s) = store();
        for who in ["telegram:1", "telegram:2", "telegram:3", "telegram:4"] {
            subscribe(&s, who, SubscriberChange::FirstContact);
        }
        let a = s.announce(&Audience::All, "hi", "cli", 200).unwrap();
        let due = s.due(Channel::Telegram, 200, 10, &HashSet::new()).unwrap();
        assert_eq!(due.len(), 4);
        assert_eq!(due[0].text(), "hi");
        let skip: HashSet<u64> = [due[0].message.id].into();
        assert_eq!(s.due(Channel::Telegram, 200, 10, &skip).unwrap().len(), 3);
        assert!(s.due(Channel::Wechat, 200, 10, &HashSet::new()).unwrap().is_empty());

        let id = |i: usize| due[i].message.id;
        s.record_delivery(id(0), Delivered::Sent, 201).unwrap().await.unwrap();
        s.record_delivery(
            id(1),
            Delivered::Retry {
                at: 260,
                reason: "429".into(),
            },
            201,
        )
        .unwrap()
        .await
        .unwrap();
        s.record_delivery(
            id(2),
            Delivered::Failed {
                reason: "blocked".into(),
            },
            201,
        )
        .unwrap()
        .await
        .unwrap();
        // The retried one is not due before its time.
        let later: Vec<u64> = s
            .due(Channel::Telegram, 230, 10, &HashSet::new())
            .unwrap()
            .iter()
            .map(|d| d.message.id)
            .collect();
        assert_eq!(later, [id(3)]);
        assert_eq!(s.next_due(Channel::Telegram).unwrap(), Some(200));
        // Sent again (a duplicate report) changes nothing.
        s.record_delivery(id(0), Delivered::Sent, 202).unwrap().await.unwrap();
        let ann = s.stop_announcement(a.id, 210).unwrap().unwrap();
        assert_eq!(
            (ann.total, ann.sent, ann.failed, ann.cancelled, ann.pending()),
            (4, 1, 1, 2, 0)
        );
        assert_eq!(ann.reasons, BTreeMap::from([("blocked".into(), 1)]));
        assert!(
            s.due(Channel::Telegram, 10_000, 10, &HashSet::new())
                .unwrap()
                .is_empty()
        );
        // One that was on its way when stopped, and went: sent.
        s.record_delivery(id(3), Delivered::Sent, 211).unwrap().await.unwrap();
        let ann = s.announcement(a.id).unwrap().unwrap();
        assert_eq!((ann.sent, ann.cancelled), (2, 1));
        assert_eq!(
            counts(&s),
            BTreeMap::from([
                ("telegram/sent".into(), 2),
                ("telegram/failed".into(), 1),
                ("telegram/cancelled".into(), 1)
            ])
        );
        assert_eq!(s.announcements(10).unwrap()[0].id, a.id);
        // Finished records are pruned by age.
        assert_eq!(s.prune_outbox(205, 100).unwrap(), 2);
        assert_eq!(s.deliveries(a.id).unwrap().len(), 2);
        assert_eq!(s.prune_outbox(205, 100).unwrap(), 0);
    }

    #[test]
    fn pull_channels_take_their_messages_once_in_their_language() {
        let (_d, s) = store();
        subscribe(&s, "web:w", SubscriberChange::FirstContact);
        s.put_session(
            "web:w",
            Some(&Session {
                lang: Some(Lang::En),
                ..Session::default()
            }),
        )
        .unwrap();
        s.announce(&Audience::All, "one", "cli", 200).unwrap();
        s.announce(&Audience::All, "two", "cli", 201).unwrap();
        assert!(s.has_waiting("web:w").unwrap());
        let got: Vec<(String, Lang)> = s
            .take_waiting("web:w", 300)
            .unwrap()
            .iter()
            .map(|d| (d.text().to_string(), d.lang))
            .collect();
        assert_eq!(got, [("one".into(), Lang::En), ("two".into(), Lang::En)]);
        assert!(s.take_waiting("web:w", 301).unwrap().is_empty());
        assert!(!s.has_waiting("web:w").unwrap());
    }

    #[test]
    fn reminders_are_queued_once_for_those_registered_before_the_reminder_time() {
        let (_d, s) = store();
        // e1 starts 2027-01-02 10:00 +08:00; a day before:
        let starts = 1_798_855_200;
        let remind_at = starts - 86_400;
        let reg = |who: &str, now: i64| {
            let r = NewRegistration {
                event_id: "e1".into(),
                user: who.into(),
                name: "N".into(),
                organization: "O".into(),
                phone: "13812345678".into(),
                now,
            };
            s.register(r, None).unwrap();
        };
        reg("telegram:early", remind_at - 10);
        reg("telegram:late", remind_at + 10);
        let wording = |ev: &Event, r: &Registration| Text::Plain(format!("{} {}", ev.id, r.code));
        assert_eq!(s.queue_reminders(remind_at - 1, 86_400, wording).unwrap(), 0, "not yet");
        assert_eq!(s.queue_reminders(remind_at + 20, 86_400, wording).unwrap(), 1);
        assert_eq!(s.queue_reminders(remind_at + 30, 86_400, wording).unwrap(), 0, "once");
        let due = s.due(Channel::Telegram, remind_at + 30, 10, &HashSet::new()).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].message.to, "telegram:early");
        assert_eq!(due[0].message.kind, DeliveryKind::Reminder);
        assert!(due[0].text().starts_with("e1 "));
    }

    #[test]
    fn records_queued_by_schema_1_are_delivered_after_the_upgrade() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.redb");
        drop(Store::open(&path).unwrap());
        {
            // What version 1 wrote: no state, no due time, no index.
            let db = redb::Database::open(&path).unwrap();
            let w = db.begin_write().unwrap();
            let old = serde_json::json!({"id": 7, "to": "telegram:9", "kind": "promotion",
                "text": {"zh": "递补成功", "en": "You moved up"}, "created_at": 50, "attempts": 0});
            let mut bytes = vec![super::super::RECORD_FORMAT];
            bytes.extend(serde_json::to_vec(&old).unwrap());
            w.open_table(OUTBOX).unwrap().insert(7, bytes.as_slice()).unwrap();
            w.delete_table(OUTBOX_DUE).unwrap();
            w.delete_table(OUTBOX_COUNTS).unwrap();
            w.open_table(super::super::META)
                .unwrap()
                .insert("schema_version", 1)
                .unwrap();
            w.commit().unwrap();
        }
        let s = Store::open(&path).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION_NOW);
        let due = s.due(Channel::Telegram, 60, 10, &HashSet::new()).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].message.kind, DeliveryKind::Promotion);
        assert_eq!(due[0].text(), "递补成功");
        assert_eq!(counts(&s), BTreeMap::from([("telegram/pending".into(), 1)]));
    }
}
