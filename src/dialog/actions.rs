//! What dialogs can do when they complete (`register`, `save_form`,
//! `cancel_registration`) and the data sources their choices draw from
//! (`open_events`, `my_registrations`, `fields`). Each is implemented once
//! here, for any dialog file that names it; the wording comes from the
//! dialog file's `[texts]`.
//!
//! Completion only decides: it returns the [`Effect`] for the core to carry
//! out and a [`Wording`] that words the effect's outcome afterwards.

use std::collections::{BTreeMap, HashMap};

use super::input::{Refusal, name_match};
use super::spec::{Action, Dialog, Source};
use super::{Decided, Finish, Opt, Outcome, Step, Turn};
use crate::knowledge::{Event, Lang, Text};
use crate::message::Reply;
use crate::store::{
    Audience, CancelOutcome, DialogState, Effect, EffectOutcome, NewRegistration, RegisterOutcome, RegistrationStatus,
    StoreError,
};

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

pub fn source_options(source: Source, turn: &Turn) -> Result<Vec<Opt>, StoreError> {
    let k = &turn.ctx.brain.knowledge;
    let lang = turn.lang();
    Ok(match source {
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
        Source::Audiences => audiences(turn)?,
        Source::MyRegistrations => {
            let regs = turn.ctx.store.user_registrations(turn.identity)?;
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
    })
}

/// Everyone, each push or pull channel with subscribers, and each
/// upcoming event with confirmed registrants — with how many people each is.
fn audiences(turn: &Turn) -> Result<Vec<Opt>, StoreError> {
    let phrases = turn.ctx.phrases;
    let both = |f: &dyn Fn(Lang) -> String| {
        Text::Localized(
            [Lang::Zh, Lang::En]
                .into_iter()
                .map(|l| (l.code().to_string(), f(l)))
                .collect(),
        )
    };
    let counts = turn.ctx.store.subscriber_counts()?;
    let all: u64 = counts.values().sum();
    let mut out = vec![Opt {
        value: Audience::All.to_string(),
        label: both(&|l| phrases.t("audience_all", l, &[("count", &all.to_string())])),
        detail: None,
    }];
    for (channel, n) in &counts {
        out.push(Opt {
            value: Audience::Channel(*channel).to_string(),
            label: both(&|l| {
                phrases.t(
                    "audience_channel",
                    l,
                    &[("channel", channel.name()), ("count", &n.to_string())],
                )
            }),
            detail: None,
        });
    }
    let mut events: Vec<&Event> = turn
        .ctx
        .brain
        .knowledge
        .event
        .iter()
        .filter(|e| e.starts_at.0 > turn.ctx.now)
        .collect();
    events.sort_by_key(|e| (e.starts_at, e.id.clone()));
    for e in events {
        let n = turn.ctx.store.confirmed_count(&e.id)?;
        if n == 0 {
            continue;
        }
        out.push(Opt {
            value: Audience::Event(e.id.clone()).to_string(),
            label: both(&|l| {
                phrases.t(
                    "audience_event",
                    l,
                    &[("event", e.title.get(l)), ("count", &n.to_string())],
                )
            }),
            detail: None,
        });
    }
    Ok(out)
}

fn status_key(s: RegistrationStatus) -> &'static str {
    match s {
        RegistrationStatus::Confirmed => "status_confirmed",
        RegistrationStatus::Waitlisted => "status_waitlisted",
        RegistrationStatus::Cancelled => "status_cancelled",
    }
}

/// Why the option `value` is not on offer any more.
pub fn why_not(source: Source, turn: &Turn, value: &str) -> Result<Refusal, StoreError> {
    if source == Source::OpenEvents
        && let Some(ev) = turn.ctx.brain.knowledge.event(value)
        && let Some(key) = closed_reason(ev, turn.ctx.now)
    {
        return Ok(event_refusal(key, ev, turn.lang()));
    }
    let count = source_options(source, turn)?.len().min(super::CHOICE_PAGE);
    Ok(Refusal::new("input_bad_choice").with("count", count))
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

/// Decides what the dialog's completion does with the collected values:
/// an effect for the core to carry out, or (an event closed meanwhile, a
/// cancellation not confirmed) a reply only. The session has already ended.
pub fn complete(dialog: &Dialog, turn: &Turn, ds: &DialogState) -> Decided {
    let wording = Wording::new(dialog, turn, ds);
    let finish = |effect: Effect, wording: Wording| {
        Ok(Outcome::Step(Box::new(Step {
            replies: Vec::new(),
            finish: Some(Finish { effect, wording }),
        })))
    };
    let now = turn.ctx.now.unix_timestamp();
    match dialog.action {
        Action::Register => {
            let Some(ev) = turn.ctx.brain.knowledge.event(value(ds, "event")) else {
                let reason = turn.ctx.t("event_gone", &[]);
                return Ok(wording.say_only("closed", &[("reason", &reason)]));
            };
            if let Some(key) = closed_reason(ev, turn.ctx.now) {
                let reason = turn.ctx.t(key, &[("event", ev.title.get(turn.lang()))]);
                return Ok(wording.say_only("closed", &[("reason", &reason)]));
            }
            let new = NewRegistration {
                event_id: ev.id.clone(),
                user: turn.identity.to_string(),
                name: value(ds, "name").to_string(),
                organization: value(ds, "organization").to_string(),
                phone: value(ds, "phone").to_string(),
                now,
            };
            finish(Effect::Register(new), wording)
        }
        Action::SaveForm => {
            let form = dialog.form.clone().unwrap_or_else(|| dialog.id.clone());
            let values: BTreeMap<String, String> = ds.values.clone();
            finish(Effect::SaveForm { form, values }, wording)
        }
        Action::Announce => {
            if value(ds, "ok") != "yes" {
                return Ok(wording.say_only("kept", &[]));
            }
            match Audience::parse(value(ds, "audience")) {
                Ok(audience) => finish(
                    Effect::Announce {
                        audience,
                        text: value(ds, "text").to_string(),
                    },
                    wording,
                ),
                Err(why) => Ok(wording.say_only("refused", &[("reason", why.as_str())])),
            }
        }
        Action::CancelRegistration => {
            let code = value(ds, "registration").to_string();
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
                .map(|e| e.title.get(turn.lang()).to_string())
                .unwrap_or(event_id);
            let wording = wording.with("event", title);
            if value(ds, "ok") != "yes" {
                return Ok(wording.say_only("kept", &[]));
            }
            // The promoted person's notice: the store fills in {event} and
            // {code} from its own records, in every language.
            let notice = dialog.text("promoted").clone();
            finish(Effect::CancelRegistration { code, notice }, wording)
        }
    }
}

fn value<'a>(ds: &'a DialogState, name: &str) -> &'a str {
    ds.values.get(name).map(String::as_str).unwrap_or("")
}

/// Words a completed dialog's outcome: the dialog's texts with the saved
/// answers (a choice as its label) and the outcome's values, filled in one
/// pass. Owns what it needs, so it can run where the effect is committed.
pub struct Wording {
    texts: HashMap<String, Text>,
    lang: Lang,
    args: Vec<(String, String)>,
    /// "confirmed", "waitlisted", "cancelled" in the person's language.
    statuses: [String; 3],
    event_gone: String,
}

impl Wording {
    fn new(dialog: &Dialog, turn: &Turn, ds: &DialogState) -> Wording {
        let status = |s| turn.ctx.t(status_key(s), &[]);
        Wording {
            texts: dialog.texts.clone(),
            lang: turn.lang(),
            args: super::saved_args(ds, turn.lang()),
            statuses: [
                status(RegistrationStatus::Confirmed),
                status(RegistrationStatus::Waitlisted),
                status(RegistrationStatus::Cancelled),
            ],
            event_gone: turn.ctx.t("event_gone", &[]),
        }
    }

    fn with(mut self, name: &str, value: String) -> Wording {
        self.args.retain(|(k, _)| k != name);
        self.args.push((name.to_string(), value));
        self
    }

    /// The text `key` with the saved answers and `extra` (which win).
    fn say(&self, key: &str, extra: &[(&str, &str)]) -> Reply {
        let mut args: Vec<(&str, &str)> = extra.to_vec();
        args.extend(self.args.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let template = self.texts.get(key).map(|t| t.get(self.lang)).unwrap_or_default();
        Reply::text(crate::template::fill(template, &args))
    }

    fn say_only(&self, key: &str, extra: &[(&str, &str)]) -> Outcome {
        Outcome::Step(Box::new(Step {
            replies: vec![self.say(key, extra)],
            finish: None,
        }))
    }

    fn status(&self, s: RegistrationStatus) -> &str {
        match s {
            RegistrationStatus::Confirmed => &self.statuses[0],
            RegistrationStatus::Waitlisted => &self.statuses[1],
            RegistrationStatus::Cancelled => &self.statuses[2],
        }
    }

    /// The reply for what the effect came to.
    pub fn replies(&self, outcome: Option<&EffectOutcome>) -> Vec<Reply> {
        let Some(outcome) = outcome else {
            return Vec::new();
        };
        let reply = match outcome {
            EffectOutcome::Register(RegisterOutcome::Confirmed(r)) => self.say("registered", &[("code", &r.code)]),
            EffectOutcome::Register(RegisterOutcome::Waitlisted(r, pos)) => {
                self.say("waitlisted", &[("code", &r.code), ("position", &pos.to_string())])
            }
            EffectOutcome::Register(RegisterOutcome::Existing(r)) => {
                self.say("already", &[("code", &r.code), ("status", self.status(r.status))])
            }
            // Removed from the knowledge while the person was signing up.
            EffectOutcome::Register(RegisterOutcome::EventGone) => self.say("closed", &[("reason", &self.event_gone)]),
            EffectOutcome::SaveForm(seq) => {
                let reference = format!("{seq:06}");
                self.say("saved", &[("ref", &reference)])
            }
            EffectOutcome::CancelRegistration(CancelOutcome::Cancelled { cancelled, .. }) => {
                self.say("cancelled", &[("code", &cancelled.code)])
            }
            EffectOutcome::CancelRegistration(CancelOutcome::NotFound) => self.say("kept", &[]),
            EffectOutcome::Announce(Ok(a)) => self.say(
                "announced",
                &[("id", &a.id.to_string()), ("total", &a.total.to_string())],
            ),
            EffectOutcome::Announce(Err(why)) => self.say("refused", &[("reason", &why.to_string())]),
        };
        vec![reply]
    }
}
