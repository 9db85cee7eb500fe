//! What dialogs can do when they complete (`register`, `save_form`,
//! `cancel_registration`) and the data sources their choices draw from
//! (`open_events`, `my_registrations`, `fields`). Each is implemented once
//! here, for any dialog file that names it; the wording comes from the
//! dialog file's `[texts]`.

use std::collections::BTreeMap;

use super::input::{Refusal, name_match};
use super::spec::{Action, Dialog, Source};
use super::{Opt, Outcome, Turn};
use crate::knowledge::{Event, Lang, Text};
use crate::logging::mask_phone;
use crate::store::{CancelOutcome, DialogState, NewRegistration, RegisterOutcome, RegistrationStatus, Session};

/// Why an event cannot be signed up for now, as a refusal naming it.
pub fn closed_reason(ev: &Event, now: time::OffsetDateTime) -> Option<&'static str> {
    if !ev.signup {
        Some("event_closed_invite")
    } else if ev.starts_at.0 <= now {
        Some("event_closed_past")
    } else if ev.signup_closes_at.is_some_and(|c| c.0 <= now) {
        Some("event_closed_deadline")
    } else {
        None
    }
}

fn event_refusal(key: &'static str, ev: &Event, lang: Lang) -> Refusal {
    Refusal::new(key).with("event", ev.title.get(lang))
}

pub fn source_options(source: Source, turn: &Turn) -> Vec<Opt> {
    let k = &turn.ctx.brain.knowledge;
    let lang = turn.lang();
    match source {
        Source::OpenEvents => {
            let mut events: Vec<&Event> = k
                .event
                .iter()
                .filter(|e| closed_reason(e, turn.ctx.now).is_none())
                .collect();
            events.sort_by_key(|e| (e.starts_at, e.id.clone()));
            events
                .into_iter()
                .map(|e| {
                    let when = turn.ctx.phrases.datetime(e.starts_at.0, lang);
                    let detail = match e.signup_closes_at {
                        Some(c) => {
                            let closes = turn.ctx.phrases.datetime(c.0, lang);
                            format!(
                                "{when}{}",
                                turn.ctx.phrases.t("signup_until", lang, &[("closes", &closes)])
                            )
                        }
                        None => when,
                    };
                    Opt {
                        value: e.id.clone(),
                        label: e.title.clone(),
                        detail: Some(detail),
                    }
                })
                .collect()
        }
        Source::Fields => k
            .field
            .iter()
            .map(|f| Opt {
                value: f.id.clone(),
                label: f.name.clone(),
                detail: None,
            })
            .collect(),
        Source::MyRegistrations => {
            let regs = turn.ctx.store.user_registrations(turn.identity).unwrap_or_else(|e| {
                tracing::error!(error = %e, "cannot read registrations");
                Vec::new()
            });
            regs.into_iter()
                .filter(|r| r.status != RegistrationStatus::Cancelled)
                .map(|r| {
                    let title = k
                        .event(&r.event_id)
                        .map(|e| e.title.clone())
                        .unwrap_or(Text::Plain(r.event_id.clone()));
                    let label = Text::Localized(
                        [Lang::Zh, Lang::En]
                            .into_iter()
                            .map(|l| {
                                let status = turn.ctx.phrases.t(status_key(r.status), l, &[]);
                                (
                                    l.code().to_string(),
                                    format!("{} — {}（{}）", title.get(l), r.code, status),
                                )
                            })
                            .map(|(c, s)| {
                                if c == "en" {
                                    (c, s.replace('（', " (").replace('）', ")"))
                                } else {
                                    (c, s)
                                }
                            })
                            .collect(),
                    );
                    Opt {
                        value: r.code,
                        label,
                        detail: None,
                    }
                })
                .collect()
        }
    }
}

fn status_key(s: RegistrationStatus) -> &'static str {
    match s {
        RegistrationStatus::Confirmed => "status_confirmed",
        RegistrationStatus::Waitlisted => "status_waitlisted",
        RegistrationStatus::Cancelled => "status_cancelled",
    }
}

/// Why the option `value` is not on offer any more.
pub fn why_not(source: Source, turn: &Turn, value: &str) -> Refusal {
    if source == Source::OpenEvents
        && let Some(ev) = turn.ctx.brain.knowledge.event(value)
        && let Some(key) = closed_reason(ev, turn.ctx.now)
    {
        return event_refusal(key, ev, turn.lang());
    }
    Refusal::new("input_bad_choice").with("count", source_options(source, turn).len())
}

/// The event a free-text answer most likely means, found by the search
/// index ("the rover-building workshop"): the best confident hit, if it is
/// an event.
pub fn event_by_search<'a>(turn: &'a Turn, text: &str) -> Option<&'a Event> {
    let hits = turn.ctx.brain.index.search(&crate::search::Query::new(text));
    match hits.first() {
        Some(h) if h.confident => match h.item {
            crate::search::Item::Event(i) => turn.ctx.brain.knowledge.event.get(i),
            _ => None,
        },
        _ => None,
    }
}

/// A closed event that `text` names clearly, with the reason.
pub fn closed_named(source: Source, turn: &Turn, text: &str) -> Option<Refusal> {
    if source != Source::OpenEvents {
        return None;
    }
    let k = &turn.ctx.brain.knowledge;
    let mut best: Option<(f32, &Event)> = None;
    for ev in &k.event {
        let score = ev.title.all().iter().map(|t| name_match(text, t)).fold(0f32, f32::max);
        if score >= 0.6 && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, ev));
        }
    }
    let (_, ev) = best?;
    closed_reason(ev, turn.ctx.now).map(|key| event_refusal(key, ev, turn.lang()))
}

/// Runs the dialog's action on the collected values; the ended session is
/// committed together with the action's data.
pub fn complete(dialog: &Dialog, turn: &Turn, ds: &DialogState, ended: Session) -> Outcome {
    let result = match dialog.action {
        Action::Register => register(dialog, turn, ds, ended),
        Action::SaveForm => save_form(dialog, turn, ds, ended),
        Action::CancelRegistration => cancel(dialog, turn, ds, ended),
    };
    match result {
        Ok(text) => Outcome::Reply {
            replies: vec![text],
            saved: true,
        },
        Err(e) => {
            tracing::error!(error = %e, dialog = %dialog.id, "dialog action failed");
            Outcome::Reply {
                replies: vec![turn.ctx.t("dialog_failed", &[])],
                saved: false,
            }
        }
    }
}

/// A dialog text with the saved values (labels where known) and `extra`.
fn say(dialog: &Dialog, key: &str, turn: &Turn, ds: &DialogState, extra: &[(&str, &str)]) -> String {
    let lang = turn.lang();
    let mut args = super::saved_args(ds, lang);
    args.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::bot::phrasebook::fill(dialog.text(key).get(lang), &args)
}

fn value<'a>(ds: &'a DialogState, name: &str) -> &'a str {
    ds.values.get(name).map(String::as_str).unwrap_or("")
}

fn register(dialog: &Dialog, turn: &Turn, ds: &DialogState, ended: Session) -> crate::store::Result<String> {
    let lang = turn.lang();
    let Some(ev) = turn.ctx.brain.knowledge.event(value(ds, "event")) else {
        turn.ctx.store.put_session(turn.identity, Some(&ended))?;
        return Ok(say(
            dialog,
            "closed",
            turn,
            ds,
            &[("reason", &turn.ctx.t("event_gone", &[]))],
        ));
    };
    if let Some(key) = closed_reason(ev, turn.ctx.now) {
        turn.ctx.store.put_session(turn.identity, Some(&ended))?;
        let reason = turn.ctx.t(key, &[("event", ev.title.get(lang))]);
        return Ok(say(dialog, "closed", turn, ds, &[("reason", &reason)]));
    }
    let new = NewRegistration {
        event_id: ev.id.clone(),
        user: turn.identity.to_string(),
        name: value(ds, "name").to_string(),
        organization: value(ds, "organization").to_string(),
        phone: value(ds, "phone").to_string(),
        now: turn.ctx.now.unix_timestamp(),
    };
    let outcome = turn.ctx.store.register(new, Some(ended))?;
    Ok(match outcome {
        RegisterOutcome::Confirmed(r) => {
            tracing::info!(event = %r.event_id, code = %r.code, phone = %mask_phone(&r.phone), "registered");
            say(dialog, "registered", turn, ds, &[("code", &r.code)])
        }
        RegisterOutcome::Waitlisted(r, pos) => {
            tracing::info!(event = %r.event_id, code = %r.code, position = pos, phone = %mask_phone(&r.phone), "waitlisted");
            say(
                dialog,
                "waitlisted",
                turn,
                ds,
                &[("code", &r.code), ("position", &pos.to_string())],
            )
        }
        RegisterOutcome::Existing(r) => {
            let status = turn.ctx.phrases.t(status_key(r.status), lang, &[]);
            say(dialog, "already", turn, ds, &[("code", &r.code), ("status", &status)])
        }
        RegisterOutcome::EventGone => say(
            dialog,
            "closed",
            turn,
            ds,
            &[("reason", &turn.ctx.t("event_gone", &[]))],
        ),
    })
}

fn save_form(dialog: &Dialog, turn: &Turn, ds: &DialogState, ended: Session) -> crate::store::Result<String> {
    let form = dialog.form.as_deref().unwrap_or(&dialog.id);
    let values: BTreeMap<String, String> = ds.values.clone();
    let seq = turn
        .ctx
        .store
        .save_form(form, turn.identity, values, turn.ctx.now.unix_timestamp(), Some(ended))?;
    let reference = format!("{seq:06}");
    tracing::info!(form, reference = %reference, "form saved");
    Ok(say(dialog, "saved", turn, ds, &[("ref", &reference)]))
}

fn cancel(dialog: &Dialog, turn: &Turn, ds: &DialogState, ended: Session) -> crate::store::Result<String> {
    let code = value(ds, "registration");
    let regs = turn.ctx.store.user_registrations(turn.identity)?;
    let event_id = regs
        .iter()
        .find(|r| r.code == code)
        .map(|r| r.event_id.clone())
        .unwrap_or_default();
    let title = turn
        .ctx
        .brain
        .knowledge
        .event(&event_id)
        .map(|e| e.title.clone())
        .unwrap_or(Text::Plain(event_id.clone()));
    let event_args = |l: Lang| [("event", title.get(l).to_string())];
    if value(ds, "ok") != "yes" {
        turn.ctx.store.put_session(turn.identity, Some(&ended))?;
        let e = event_args(turn.lang());
        return Ok(say(dialog, "kept", turn, ds, &[("event", &e[0].1)]));
    }
    // The promoted person's notice, in both languages (delivery picks theirs).
    let promoted = Text::Localized(
        [Lang::Zh, Lang::En]
            .into_iter()
            .map(|l| {
                let args: Vec<(&str, &str)> = vec![("event", title.get(l))];
                (
                    l.code().to_string(),
                    crate::bot::phrasebook::fill(dialog.text("promoted").get(l), &args),
                )
            })
            .collect(),
    );
    let now = turn.ctx.now.unix_timestamp();
    let e = event_args(turn.lang());
    match turn
        .ctx
        .store
        .cancel_registration(turn.identity, code, now, promoted, Some(ended))?
    {
        CancelOutcome::Cancelled { cancelled, promoted } => {
            tracing::info!(event = %cancelled.event_id, code = %cancelled.code, promoted = ?promoted.iter().map(|p| &p.code).collect::<Vec<_>>(), "registration cancelled");
            Ok(say(
                dialog,
                "cancelled",
                turn,
                ds,
                &[("event", &e[0].1), ("code", &cancelled.code)],
            ))
        }
        CancelOutcome::NotFound => Ok(say(dialog, "kept", turn, ds, &[("event", &e[0].1)])),
    }
}
