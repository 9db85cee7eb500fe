//! Staff commands in chat: `/stats` (subscribers per channel,
//! registrations per event, the outbox by channel) and `/registrations
//! <event id>` (the count and the latest ten). The core checks that the
//! person is staff before asking for an answer here; anyone else is told
//! "this is for park staff" and nothing happens.

use crate::context::Ctx;
use crate::phrasebook::Phrasebook;
use crate::search::Query;
use crate::store::{DeliveryState, RegistrationStatus, StoreError};

/// A staff command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Command {
    Stats,
    /// `/registrations` and what followed it (an event id, or nothing).
    Registrations(Option<String>),
}

/// The staff command `text` is, if any.
pub(super) fn command(phrases: &Phrasebook, q: &Query, text: &str) -> Option<Command> {
    let intents = &phrases.intents;
    if intents.stats.is_whole(q) {
        return Some(Command::Stats);
    }
    if intents.staff_registrations.is_whole(q) {
        return Some(Command::Registrations(None));
    }
    let (first, rest) = text.trim().split_once(char::is_whitespace)?;
    intents
        .staff_registrations
        .is_whole(&Query::new(first))
        .then(|| Command::Registrations(Some(rest.trim().to_string())))
}

/// The answer to a staff command, in the person's language.
pub(super) fn answer(ctx: &Ctx, command: Command) -> Result<String, StoreError> {
    match command {
        Command::Stats => stats(ctx),
        Command::Registrations(None) => Ok(ctx.t("registrations_usage", &[])),
        Command::Registrations(Some(id)) => registrations(ctx, &id),
    }
}

fn stats(ctx: &Ctx) -> Result<String, StoreError> {
    let mut lines = vec![ctx.t("stats_heading", &[])];
    for (channel, n) in ctx.store.subscriber_counts()? {
        lines.push(ctx.t(
            "stats_subscribers",
            &[("channel", channel.name()), ("count", &n.to_string())],
        ));
    }
    let mut events: Vec<_> = ctx.brain.knowledge.event.iter().collect();
    events.sort_by_key(|e| (e.starts_at, e.id.clone()));
    for e in events {
        let c = ctx.store.event_counts(&e.id)?;
        if c.confirmed + c.waitlisted == 0 {
            continue;
        }
        lines.push(ctx.t(
            "stats_registrations",
            &[
                ("event", e.title.get(ctx.lang)),
                ("confirmed", &c.confirmed.to_string()),
                ("waitlisted", &c.waitlisted.to_string()),
            ],
        ));
    }
    let counts = ctx.store.outbox_counts()?;
    let mut channels: Vec<_> = counts.iter().map(|(c, _, _)| *c).collect();
    channels.dedup();
    for channel in channels {
        let n = |state: DeliveryState| {
            counts
                .iter()
                .filter(|(c, s, _)| *c == channel && *s == state)
                .map(|(_, _, n)| *n)
                .sum::<u64>()
                .to_string()
        };
        lines.push(ctx.t(
            "stats_outbox",
            &[
                ("channel", channel.name()),
                ("pending", &n(DeliveryState::Pending)),
                ("sent", &n(DeliveryState::Sent)),
                ("failed", &n(DeliveryState::Failed)),
            ],
        ));
    }
    Ok(lines.join("\n"))
}

fn registrations(ctx: &Ctx, id: &str) -> Result<String, StoreError> {
    let Some(event) = ctx.brain.knowledge.event(id) else {
        return Ok(ctx.t("registrations_unknown", &[("event", id)]));
    };
    let mut regs = ctx.store.registrations(Some(id))?;
    let count = |s: RegistrationStatus| regs.iter().filter(|r| r.status == s).count().to_string();
    let mut lines = vec![ctx.t(
        "registrations_heading",
        &[
            ("event", event.title.get(ctx.lang)),
            ("confirmed", &count(RegistrationStatus::Confirmed)),
            ("waitlisted", &count(RegistrationStatus::Waitlisted)),
            ("cancelled", &count(RegistrationStatus::Cancelled)),
        ],
    )];
    regs.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.seq)));
    for (i, r) in regs.iter().take(10).enumerate() {
        let status = ctx.t(
            match r.status {
                RegistrationStatus::Confirmed => "status_confirmed",
                RegistrationStatus::Waitlisted => "status_waitlisted",
                RegistrationStatus::Cancelled => "status_cancelled",
            },
            &[],
        );
        let created = time::OffsetDateTime::from_unix_timestamp(r.created_at)
            .map(|t| ctx.phrases.datetime(t.to_offset(ctx.now.offset()), ctx.lang))
            .unwrap_or_default();
        let line = ctx.t(
            "registrations_line",
            &[
                ("code", &r.code),
                ("name", &r.name),
                ("organization", &r.organization),
                ("status", &status),
                ("created", &created),
            ],
        );
        lines.push(format!("{}. {line}", i + 1));
    }
    Ok(lines.join("\n"))
}
