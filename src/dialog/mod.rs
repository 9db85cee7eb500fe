//! The dialog engine: state machines declared as data in `dialogs/*.toml`
//! (format: `dialogs/README.md`), run per identity with their state kept in
//! the identity's session.
//!
//! The engine decides; it never writes. Given what the person said
//! ([`Said`]) and their session, it changes the session in memory and
//! returns the replies and, when a dialog completes, the [`Effect`] to
//! carry out with a [`Wording`] that turns the effect's outcome into the
//! final reply. The bot core carries the decision out and saves the session
//! in one place, in one transaction.
//!
//! A message either continues the dialog in progress (cancel, back, expiry,
//! an answer typed or a button pressed), or starts one (a trigger phrase, or
//! a deep link `link:value` that arrives as [`Said::Link`], never from typed
//! text), or is not the engine's business.

mod actions;
pub mod input;
pub mod spec;

use std::collections::BTreeMap;

use crate::context::{Ctx, Memo};
use crate::knowledge::{Lang, Text};
use crate::message::{Choice, Reply};
use crate::search::Query;
use crate::store::{DialogState, Effect, Session, StoreError};
pub use actions::Wording;
use input::Refusal;
use spec::{Choices, Input, Source, State};
pub use spec::{Dialog, parse};

/// Options shown at once; a longer list is paged with a last "more" choice.
pub const CHOICE_PAGE: usize = 9;
/// The value of the "more" choice. Option values from dialog files cannot
/// start with `+` (checked at load), event ids and codes never do.
pub const MORE_VALUE: &str = "+more";

/// The dialogs of a folder, checked.
#[derive(Debug, Clone, Default)]
pub struct Dialogs {
    list: Vec<Dialog>,
    /// Which dialog texts start, for texts sent again and again.
    starts: Starts,
}

/// Which dialog a text starts (its index, and the rest of the text) by
/// the text's normalized form: every message without a dialog in progress
/// is looked for triggers, and menu keys and popular questions come again
/// and again. A [`Memo`] (bounded); a copy of the dialogs starts empty.
struct Starts(Memo<Option<Start>>);

impl Default for Starts {
    fn default() -> Starts {
        Starts(Memo::new())
    }
}

/// A dialog's index and the rest of the text around its trigger.
type Start = (usize, Option<String>);

impl Clone for Starts {
    fn clone(&self) -> Starts {
        Starts::default()
    }
}

impl std::fmt::Debug for Starts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Starts")
    }
}

impl Dialogs {
    /// Parses every dialog file (`bot.toml`, the phrasebook, is not one).
    pub fn load(files: &[(String, String)]) -> Result<Dialogs, Vec<String>> {
        let mut list: Vec<Dialog> = Vec::new();
        let mut problems = Vec::new();
        for (name, text) in files.iter().filter(|(n, _)| !n.ends_with("bot.toml")) {
            match parse(name, text) {
                Ok(d) => {
                    if let Some(other) = list.iter().find(|o| o.id == d.id) {
                        problems.push(format!("{name}: dialog id `{}` is also used by {}", d.id, other.file));
                    }
                    let norm = |w: &str| crate::search::text::normalize(w.trim());
                    for w in &d.trigger_words {
                        if let Some(other) = list.iter().find(|o| o.trigger_words.iter().any(|x| norm(x) == norm(w))) {
                            problems.push(format!(
                                "{name}: trigger {w:?} also starts the dialog in {}",
                                other.file
                            ));
                        }
                    }
                    if let (Some(link), Some(other)) =
                        (&d.link, list.iter().find(|o| o.link.is_some() && o.link == d.link))
                    {
                        problems.push(format!("{name}: link `{link}` is also used by {}", other.file));
                    }
                    list.push(d);
                }
                Err(p) => problems.extend(p),
            }
        }
        if problems.is_empty() {
            Ok(Dialogs {
                list,
                starts: Starts::default(),
            })
        } else {
            Err(problems)
        }
    }

    /// The notice for a person a freed seat moves up (`promoted` of the
    /// dialog that cancels registrations), with `{event}` and `{code}`.
    pub fn promotion_notice(&self) -> Option<Text> {
        self.list
            .iter()
            .find(|d| d.action == spec::Action::CancelRegistration)
            .map(|d| d.text("promoted").clone())
    }

    fn get(&self, id: &str) -> Option<&Dialog> {
        self.list.iter().find(|d| d.id == id)
    }

    /// The dialogs, in file order (read-only: what a text starts is kept
    /// by index).
    pub fn list(&self) -> &[Dialog] {
        &self.list
    }
}

/// One message's view of the world.
pub struct Turn<'a> {
    pub ctx: &'a Ctx<'a>,
    /// `channel:id` of the person.
    pub identity: &'a str,
    /// Seconds of silence after which a dialog expires.
    pub timeout_secs: i64,
    /// Whether the person is park staff (`[staff] members`).
    pub staff: bool,
}

impl Turn<'_> {
    fn now(&self) -> i64 {
        self.ctx.now.unix_timestamp()
    }

    fn lang(&self) -> Lang {
        self.ctx.lang
    }
}

/// What the person said, as the engine sees it.
#[derive(Debug, Clone, Copy)]
pub enum Said<'a> {
    /// Typed text, and its analysis.
    Text(&'a str, &'a Query),
    /// A pressed button: the value of the choice it showed.
    Choice(&'a str),
    /// A deep link or QR scene, `link:value` (`signup:web3-forum`).
    Link(&'a str),
}

/// What the engine made of a message.
pub enum Outcome {
    /// Not a dialog message: answer it from the knowledge.
    NotMine,
    /// The dialog's answer; the session was changed in memory.
    Step(Box<Step>),
}

/// Replies now, and the effect of a completed dialog if there is one.
pub struct Step {
    pub replies: Vec<Reply>,
    pub finish: Option<Finish>,
}

/// A completed dialog: what to do, and how to word what came of it.
pub struct Finish {
    pub effect: Effect,
    pub wording: Wording,
}

fn step(text: String) -> Outcome {
    Outcome::Step(Box::new(Step {
        replies: vec![Reply::text(text)],
        finish: None,
    }))
}

type Decided = Result<Outcome, StoreError>;

/// Decides what `said` means for the identity whose session is `session`.
/// A store error (a failed read) is returned as is: the caller says so and
/// keeps the session as it was.
pub fn handle(dialogs: &Dialogs, turn: &Turn, session: &mut Session, said: Said) -> Decided {
    if let Some(ds) = session.dialog.clone() {
        let Some(dialog) = dialogs.get(&ds.dialog) else {
            session.dialog = None; // the dialog file was removed
            return Ok(Outcome::NotMine);
        };
        let intents = &turn.ctx.phrases.intents;
        match said {
            // A new link starts over, whatever was in progress.
            Said::Link(_) => {}
            _ if turn.now() - ds.updated_at > turn.timeout_secs => {
                session.dialog = None;
                return Ok(step(turn.ctx.t("dialog_expired", &[])));
            }
            Said::Text(_, q) if intents.cancel.is_whole(q) => {
                session.dialog = None;
                return Ok(step(turn.ctx.t("dialog_cancelled", &[])));
            }
            Said::Text(_, q) if intents.back.is_whole(q) => return back(dialog, turn, session, ds),
            Said::Text(text, q) => return answer(dialog, turn, session, ds, Answer::Text(text, q)),
            Said::Choice(value) => return answer(dialog, turn, session, ds, Answer::Choice(value)),
        }
    }
    match said {
        Said::Link(link) => {
            let (name, value) = link.split_once(':').unwrap_or((link, ""));
            match dialogs.list.iter().find(|d| d.link.as_deref() == Some(name.trim())) {
                Some(d) => {
                    let value = value.trim();
                    let preset = (!value.is_empty()).then_some(Preset::Value(value));
                    start(d, turn, session, preset)
                }
                None => Ok(Outcome::NotMine),
            }
        }
        Said::Text(_, q) => match find_start(dialogs, q) {
            Some((dialog, preset)) => start(dialog, turn, session, preset.as_deref().map(Preset::Text)),
            None if turn.ctx.phrases.intents.cancel.is_whole(q) => {
                Ok(step(turn.ctx.t("dialog_nothing_to_cancel", &[])))
            }
            None => Ok(Outcome::NotMine),
        },
        // A button of a dialog that is over.
        Said::Choice(_) => Ok(step(turn.ctx.t("choice_stale", &[]))),
    }
}

/// The dialog a message starts, and the rest of the message around the
/// trigger phrase, which may answer the first question in advance (the
/// longest trigger of any dialog wins).
fn find_start<'a>(dialogs: &'a Dialogs, q: &Query) -> Option<(&'a Dialog, Option<String>)> {
    // Not a question of the day: one day serves for all.
    let found = dialogs
        .starts
        .0
        .get_or(&q.norm, time::Date::MIN, || look_for_start(dialogs, q));
    found
        .as_ref()
        .as_ref()
        .map(|(i, rest)| (&dialogs.list[*i], rest.clone()))
}

/// [`find_start`] without the memory: the index of the dialog.
fn look_for_start(dialogs: &Dialogs, q: &Query) -> Option<Start> {
    let mut best: Option<(usize, (usize, usize))> = None;
    for (d, dialog) in dialogs.list.iter().enumerate() {
        for span in dialog.triggers.find(q) {
            if best.is_none_or(|(_, b)| span.1 - span.0 > b.1 - b.0) {
                best = Some((d, span));
            }
        }
    }
    let (d, (a, b)) = best?;
    let rest: String = q.norm.chars().take(a).chain(q.norm.chars().skip(b)).collect();
    let rest = rest.trim().to_string();
    Some((d, (!rest.is_empty()).then_some(rest)))
}

/// An answer given in advance: the rest of a trigger message (read like
/// typed text, but only a clear match counts) or a link's value (an
/// option's value, exactly).
#[derive(Clone, Copy)]
enum Preset<'a> {
    Text(&'a str),
    Value(&'a str),
}

/// An answer to the state waiting for one.
#[derive(Clone, Copy)]
enum Answer<'a> {
    Text(&'a str, &'a Query),
    Choice(&'a str),
}

fn start(dialog: &Dialog, turn: &Turn, session: &mut Session, preset: Option<Preset>) -> Decided {
    if dialog.staff_only && !turn.staff {
        // Said, and nothing else: no dialog state.
        return Ok(step(turn.ctx.t("staff_only", &[])));
    }
    let mut ds = DialogState {
        dialog: dialog.id.clone(),
        state: dialog.states[dialog.start].id.clone(),
        values: BTreeMap::new(),
        labels: BTreeMap::new(),
        history: Vec::new(),
        shown: Vec::new(),
        page: 0,
        updated_at: turn.now(),
    };
    let mut state = dialog.start;
    let mut note = None;
    if let (Some(p), Some(preset)) = (dialog.preset, preset) {
        let st = &dialog.states[p];
        let read = match preset {
            Preset::Text(text) => read(st, turn, Answer::Text(text, &Query::new(text)), &[], true)?,
            Preset::Value(value) => read(st, turn, Answer::Choice(value), &[], true)?,
        };
        match read {
            Read::Value(v, label) => {
                // Say what was understood, so that a wrong guess is seen at once.
                let shown = label.as_ref().map_or(v.clone(), |l| l.get(turn.lang()).to_string());
                note = Some(turn.ctx.t("dialog_preset", &[("value", &shown)]));
                save(&mut ds, st, v, label);
                ds.history.push(st.id.clone());
                state = next_state(dialog, st, &ds.values);
            }
            // A named event that cannot be signed up for: say why, start nothing.
            Read::Refused(r) if r.key.starts_with("event_") => return Ok(step(refusal(turn, &r))),
            // "register our trademark overseas", "VAT registration in
            // Germany": the trigger word is about something the knowledge
            // answers, not an event.
            _ if matches!(preset, Preset::Text(t) if about_other_than_events(turn, t)) => {
                return Ok(Outcome::NotMine);
            }
            _ => {}
        }
    }
    enter(dialog, turn, session, ds, state, note)
}

/// Whether the rest of a trigger message is, by itself, confidently about
/// an enterprise, field or FAQ rather than an event.
fn about_other_than_events(turn: &Turn, rest: &str) -> bool {
    let index = &turn.ctx.brain.index;
    let hits = index.search(&index.expand(&Query::new(rest)));
    hits.first()
        .is_some_and(|h| h.confident && h.strong && !matches!(h.item, crate::search::Item::Event(_)))
}

/// Moves to `state`: prompts for it, or completes the dialog.
fn enter(
    dialog: &Dialog,
    turn: &Turn,
    session: &mut Session,
    mut ds: DialogState,
    state: usize,
    note: Option<String>,
) -> Decided {
    let st = &dialog.states[state];
    if st.is_final {
        session.dialog = None;
        return actions::complete(dialog, turn, &ds);
    }
    if ds.state != st.id {
        ds.page = 0;
    }
    ds.state = st.id.clone();
    ds.updated_at = turn.now();
    let mut choices = Vec::new();
    match options(st, turn)? {
        Some(opts) if opts.is_empty() => {
            session.dialog = None;
            return Ok(step(dialog.text("none").get(turn.lang()).to_string()));
        }
        Some(opts) => {
            let pages = opts.len().div_ceil(CHOICE_PAGE);
            ds.page %= pages;
            let first = ds.page * CHOICE_PAGE;
            let page = &opts[first..opts.len().min(first + CHOICE_PAGE)];
            choices = page.iter().map(|o| o.choice(turn.lang())).collect();
            let rest = opts.len() - first - page.len();
            if pages > 1 {
                // The last page's "more" goes back to the first.
                let rest = if rest == 0 { opts.len() - page.len() } else { rest };
                choices.push(Choice {
                    value: MORE_VALUE.into(),
                    label: turn.ctx.t("choices_more", &[("rest", &rest.to_string())]),
                });
            }
            ds.shown = choices.iter().map(|c| c.value.clone()).collect();
        }
        None if matches!(st.input, Some(Input::YesNo)) => {
            // Yes and no as buttons too (numbered lines where there are none).
            choices = [(YES, "choice_yes"), (NO, "choice_no")]
                .into_iter()
                .map(|(value, key)| Choice {
                    value: value.into(),
                    label: turn.ctx.t(key, &[]),
                })
                .collect();
            ds.shown = vec![YES.into(), NO.into()];
        }
        None => ds.shown.clear(),
    }
    let text = prompt(st, turn, &ds);
    session.dialog = Some(ds);
    let text = match note {
        Some(n) => format!("{n}\n{text}"),
        None => text,
    };
    Ok(Outcome::Step(Box::new(Step {
        replies: vec![Reply { text, choices }],
        finish: None,
    })))
}

fn back(dialog: &Dialog, turn: &Turn, session: &mut Session, mut ds: DialogState) -> Decided {
    let Some(prev) = ds.history.pop() else {
        let note = turn.ctx.t("dialog_back_first", &[]);
        let state = dialog.state(&ds.state).unwrap_or(dialog.start);
        return enter(dialog, turn, session, ds, state, Some(note));
    };
    let state = dialog.state(&prev).unwrap_or(dialog.start);
    if let Some(name) = &dialog.states[state].save {
        ds.values.remove(name);
        ds.labels.remove(name);
    }
    enter(dialog, turn, session, ds, state, None)
}

fn answer(dialog: &Dialog, turn: &Turn, session: &mut Session, mut ds: DialogState, said: Answer) -> Decided {
    let Some(state) = dialog.state(&ds.state) else {
        session.dialog = None; // the state was removed from the file
        return Ok(Outcome::NotMine);
    };
    let st = &dialog.states[state];
    let is_choice = matches!(st.input, Some(Input::Choice(_)));
    // A step that shows buttons takes their presses (a choice, yes/no).
    let takes_presses = is_choice || matches!(st.input, Some(Input::YesNo));
    let more = match said {
        Answer::Choice(v) => v == MORE_VALUE,
        Answer::Text(text, q) => {
            is_choice
                && (turn.ctx.phrases.intents.more.is_whole(q)
                    || input::option_number(text, ds.shown.len())
                        .and_then(Result::ok)
                        .is_some_and(|i| ds.shown[i] == MORE_VALUE))
        }
    };
    if more && is_choice {
        ds.page += 1;
        return enter(dialog, turn, session, ds, state, None);
    }
    if let (Answer::Choice(_), false) = (said, takes_presses) {
        let note = turn.ctx.t("choice_stale", &[]);
        return enter(dialog, turn, session, ds, state, Some(note));
    }
    match read(st, turn, said, &ds.shown.clone(), false)? {
        Read::Value(v, label) => {
            save(&mut ds, st, v, label);
            ds.history.push(st.id.clone());
            let next = next_state(dialog, st, &ds.values);
            enter(dialog, turn, session, ds, next, None)
        }
        Read::Refused(r) | Read::Unclear(r) => {
            let note = refusal(turn, &r);
            enter(dialog, turn, session, ds, state, Some(note))
        }
    }
}

fn save(ds: &mut DialogState, st: &State, value: String, label: Option<Text>) {
    if let Some(name) = &st.save {
        ds.values.insert(name.clone(), value);
        match label {
            Some(l) => ds.labels.insert(name.clone(), l),
            None => ds.labels.remove(name),
        };
    }
}

/// The first branch whose condition holds.
fn next_state(dialog: &Dialog, st: &State, values: &BTreeMap<String, String>) -> usize {
    st.next
        .iter()
        .find(|b| {
            b.cond.as_ref().is_none_or(|c| {
                let v = values.get(&c.name).map(String::as_str).unwrap_or("");
                (v == c.value) != c.negated
            })
        })
        .map_or(dialog.start, |b| b.goto)
}

fn refusal(turn: &Turn, r: &Refusal) -> String {
    let args: Vec<(&str, &str)> = r.args.iter().map(|(k, v)| (*k, v.as_str())).collect();
    turn.ctx.t(r.key, &args)
}

/// One option of a choice.
pub struct Opt {
    pub value: String,
    pub label: Text,
    /// Shown after the label (e.g. an event's date).
    pub detail: Option<String>,
}

impl Opt {
    fn choice(&self, lang: Lang) -> Choice {
        let label = match &self.detail {
            Some(d) => format!("{} — {d}", self.label.get(lang)),
            None => self.label.get(lang).to_string(),
        };
        Choice {
            value: self.value.clone(),
            label,
        }
    }
}

fn options(st: &State, turn: &Turn) -> Result<Option<Vec<Opt>>, StoreError> {
    let Some(Input::Choice(choices)) = &st.input else {
        return Ok(None);
    };
    Ok(Some(match choices {
        Choices::Fixed(list) => list
            .iter()
            .map(|(v, l)| Opt {
                value: v.clone(),
                label: l.clone(),
                detail: None,
            })
            .collect(),
        Choices::From { source, other } => {
            let mut opts = actions::source_options(*source, turn)?;
            if let Some(o) = other.as_ref().filter(|_| !opts.is_empty()) {
                opts.push(Opt {
                    value: "other".into(),
                    label: o.clone(),
                    detail: None,
                });
            }
            opts
        }
    }))
}

/// The saved answers as placeholder values: a choice reads as its label.
fn saved_args(ds: &DialogState, lang: Lang) -> Vec<(String, String)> {
    let shown = |k: &String, v: &String| ds.labels.get(k).map_or(v.clone(), |l| l.get(lang).to_string());
    ds.values.iter().map(|(k, v)| (k.clone(), shown(k, v))).collect()
}

/// The state's prompt with the saved answers filled in (one pass). The
/// `{choices}` line is dropped: the choices travel in the reply, and each
/// channel shows them its own way.
fn prompt(st: &State, turn: &Turn, ds: &DialogState) -> String {
    let template: String = st
        .prompt
        .get(turn.lang())
        .lines()
        .filter(|l| l.trim() != "{choices}")
        .collect::<Vec<_>>()
        .join("\n");
    let mut args = saved_args(ds, turn.lang());
    args.push(("choices".into(), String::new()));
    crate::template::fill(&template, &args).trim().to_string()
}

/// The result of reading an answer.
enum Read {
    Value(String, Option<Text>),
    /// A clear answer that cannot be accepted (and why).
    Refused(Refusal),
    /// Not understood as an answer.
    Unclear(Refusal),
}

/// Reads an answer to `st`. `preset` is an answer given in advance: only a
/// clear match counts there, and never a number.
/// The values of a yes/no answer (what `if = "ok = yes"` compares).
const YES: &str = "yes";
const NO: &str = "no";

fn read(st: &State, turn: &Turn, said: Answer, shown: &[String], preset: bool) -> Result<Read, StoreError> {
    let Some(input) = &st.input else {
        return Ok(Read::Unclear(Refusal::new("input_bad_choice").with("count", 0)));
    };
    let (text, query) = match said {
        Answer::Text(text, q) => (text, Some(q)),
        // A yes or no button of this step.
        Answer::Choice(v) if matches!(input, Input::YesNo) && shown.iter().any(|s| s == v) => {
            return Ok(Read::Value(v.to_string(), None));
        }
        Answer::Choice(_) if !matches!(input, Input::Choice(_)) => {
            return Ok(Read::Unclear(Refusal::new("choice_stale")));
        }
        Answer::Choice(_) => ("", None),
    };
    let plain = |r: Result<String, Refusal>| match r {
        Ok(v) => Read::Value(v, None),
        Err(e) => Read::Unclear(e),
    };
    Ok(match input {
        Input::Text { min, max } => plain(input::text(text, *min, *max)),
        Input::Phone => plain(input::phone(text)),
        Input::Email => plain(input::email(text)),
        Input::Number { min, max } => plain(input::number(text, *min, *max)),
        Input::YesNo => {
            let intents = &turn.ctx.phrases.intents;
            // The number of a yes/no line, as shown.
            let numbered = text
                .trim()
                .parse::<usize>()
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| shown.get(i));
            if let Some(v) = numbered {
                Read::Value(v.clone(), None)
            } else if query.is_some_and(|q| intents.yes.is_whole(q)) {
                Read::Value(YES.into(), None)
            } else if query.is_some_and(|q| intents.no.is_whole(q)) {
                Read::Value(NO.into(), None)
            } else {
                Read::Unclear(Refusal::new("input_bad_yes_no"))
            }
        }
        Input::Choice(choices) => read_choice(st, choices, turn, said, shown, preset)?,
    })
}

/// The option `value`, if it is on offer; else why not.
fn by_value(choices: &Choices, opts: &[Opt], turn: &Turn, value: &str) -> Result<Read, StoreError> {
    Ok(match opts.iter().find(|o| o.value == value) {
        Some(o) => Read::Value(o.value.clone(), Some(o.label.clone())),
        // Shown, but no longer on offer (an event closed meanwhile).
        None => match choices {
            Choices::From { source, .. } => Read::Refused(actions::why_not(*source, turn, value)?),
            Choices::Fixed(_) => Read::Unclear(Refusal::new("input_bad_choice").with("count", opts.len())),
        },
    })
}

fn read_choice(
    st: &State,
    choices: &Choices,
    turn: &Turn,
    said: Answer,
    shown: &[String],
    preset: bool,
) -> Result<Read, StoreError> {
    let opts = options(st, turn)?.unwrap_or_default();
    let text = match said {
        Answer::Choice(value) => return by_value(choices, &opts, turn, value),
        Answer::Text(text, _) => text,
    };
    // A number refers to the list as it was shown.
    if !preset && let Some(n) = input::option_number(text, shown.len().max(opts.len().min(CHOICE_PAGE))) {
        return match n {
            Ok(i) => match shown.get(i).or(opts.get(i).map(|o| &o.value)) {
                Some(value) => by_value(choices, &opts, turn, &value.clone()),
                None => Ok(Read::Unclear(
                    Refusal::new("input_bad_choice").with("count", shown.len()),
                )),
            },
            Err(e) => Ok(Read::Unclear(e)),
        };
    }
    // By name, in either language; a closed event named clearly says why.
    let scored = |label: &Text| {
        label
            .all()
            .iter()
            .map(|l| input::name_match(text, l))
            .fold(0f32, f32::max)
    };
    let mut best: Vec<(f32, &Opt)> = opts
        .iter()
        .map(|o| (scored(&o.label), o))
        .filter(|(s, _)| *s >= 0.6)
        .collect();
    best.sort_by(|a, b| b.0.total_cmp(&a.0));
    if let Some(&(score, o)) = best.first()
        && best.get(1).is_none_or(|(s2, _)| *s2 < score)
    {
        return Ok(Read::Value(o.value.clone(), Some(o.label.clone())));
    }
    if let Choices::From { source, .. } = choices
        && let Some(r) = actions::closed_named(*source, turn, text)
    {
        return Ok(Read::Refused(r));
    }
    if let Choices::From {
        source: Source::OpenEvents,
        ..
    } = choices
        && let Some(ev) = actions::event_by_search(turn, text)
    {
        let id = ev.id.clone();
        return by_value(choices, &opts, turn, &id);
    }
    if best.len() > 1 {
        return Ok(Read::Unclear(Refusal::new("input_ambiguous_choice")));
    }
    Ok(Read::Unclear(
        Refusal::new("input_bad_choice").with("count", opts.len().min(CHOICE_PAGE)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::Brain;
    use crate::knowledge::{parse_str, validate_references};
    use crate::phrasebook::Phrasebook;
    use crate::store::Store;

    const EVENT: &str = "[[event]]\nid = \"e1\"\ntitle = { zh = \"沙龙\", en = \"Salon\" }\n\
                         starts_at = \"2027-01-10T14:00:00+08:00\"\ncapacity = 5\n";

    struct World {
        _dir: tempfile::TempDir,
        store: Store,
        brain: Brain,
        phrases: Phrasebook,
        dialogs: Dialogs,
    }

    fn world() -> World {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("d.redb")).unwrap();
        let k = validate_references(vec![parse_str("e.toml", EVENT, false).unwrap()], &Default::default()).unwrap();
        let files: Vec<(String, String)> = crate::assets::DIALOGS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        World {
            _dir: dir,
            store,
            brain: Brain::new(k),
            phrases: Phrasebook::parse("bot.toml", crate::assets::BOT_TOML).unwrap(),
            dialogs: Dialogs::load(&files).unwrap(),
        }
    }

    /// Runs `texts` through the engine at `now` (unix seconds from the
    /// first step), keeping the session in memory as the core would.
    fn run(w: &World, session: &mut Session, texts: &[(&str, i64)]) -> Vec<Outcome> {
        texts
            .iter()
            .map(|(text, at)| {
                let ctx = Ctx {
                    brain: &w.brain,
                    phrases: &w.phrases,
                    store: &w.store,
                    now: time::macros::datetime!(2026-11-28 12:00 +08:00) + time::Duration::seconds(*at),
                    lang: Lang::En,
                };
                let turn = Turn {
                    ctx: &ctx,
                    identity: "console:x",
                    timeout_secs: 600,
                    staff: false,
                };
                let q = Query::new(text);
                handle(&w.dialogs, &turn, session, Said::Text(text, &q)).unwrap()
            })
            .collect()
    }

    fn replies(o: &Outcome) -> String {
        match o {
            Outcome::Step(s) => s.replies.iter().map(Reply::numbered).collect::<Vec<_>>().join("\n"),
            Outcome::NotMine => "<not mine>".into(),
        }
    }

    #[test]
    fn completion_decides_an_effect_and_writes_nothing() {
        let w = world();
        let mut session = Session::default();
        let steps = ["sign up", "1", "Jane", "Acme", "13812345678", "yes"];
        let out = run(&w, &mut session, &steps.map(|s| (s, 0)));
        assert!(replies(&out[4]).starts_with("Please confirm"), "{}", replies(&out[4]));
        let Outcome::Step(step) = &out[5] else {
            panic!("the last step completes the dialog")
        };
        let Step {
            finish: Some(Finish { effect, wording }),
            replies,
        } = step.as_ref()
        else {
            panic!("the last step completes the dialog")
        };
        assert!(replies.is_empty(), "the reply words the outcome");
        match effect {
            Effect::Register(new) => {
                assert_eq!(
                    (new.event_id.as_str(), new.name.as_str(), new.phone.as_str()),
                    ("e1", "Jane", "13812345678")
                );
                assert_eq!(new.user, "console:x");
            }
            _ => panic!("a registration"),
        }
        assert!(session.dialog.is_none(), "the dialog ended in memory");
        assert!(
            w.store.registrations(None).unwrap().is_empty(),
            "the engine writes nothing"
        );
        assert!(w.store.session("console:x").unwrap().is_none());
        assert!(wording.replies(None).is_empty());
    }

    #[test]
    fn registrations_that_cannot_be_read_are_an_error_not_none() {
        let w = world();
        w.store.inject_faults(true, false);
        let ctx = Ctx {
            brain: &w.brain,
            phrases: &w.phrases,
            store: &w.store,
            now: time::macros::datetime!(2026-11-28 12:00 +08:00),
            lang: Lang::En,
        };
        let turn = Turn {
            ctx: &ctx,
            identity: "console:x",
            timeout_secs: 600,
            staff: false,
        };
        let mut session = Session::default();
        let q = Query::new("my registrations");
        let r = handle(&w.dialogs, &turn, &mut session, Said::Text("my registrations", &q));
        assert!(r.is_err(), "not \"you have no registrations\"");
        assert_eq!(session, Session::default(), "and no dialog was started or ended");
    }

    #[test]
    fn expiry_cancel_and_back() {
        let w = world();
        let mut session = Session::default();
        let out = run(&w, &mut session, &[("sign up", 0), ("1", 10), ("back", 20), ("1", 30)]);
        assert!(replies(&out[2]).starts_with("Which event"), "{}", replies(&out[2]));
        let ds = session.dialog.clone().unwrap();
        assert_eq!(ds.state, "name");
        let out = run(&w, &mut session, &[("Jane", 30 + 601)]);
        assert!(replies(&out[0]).contains("timed out"), "{}", replies(&out[0]));
        assert!(session.dialog.is_none());
        let out = run(&w, &mut session, &[("cancel", 700)]);
        assert!(
            replies(&out[0]).contains("nothing in progress to cancel"),
            "{}",
            replies(&out[0])
        );
        let out = run(&w, &mut session, &[("what is VFX?", 700)]);
        assert!(matches!(out[0], Outcome::NotMine));
    }

    #[test]
    fn shipped_dialogs_load_and_keep_their_invariants() {
        let files: Vec<(String, String)> = crate::assets::DIALOGS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let dialogs = Dialogs::load(&files).unwrap();
        let ids: Vec<&str> = dialogs.list.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["announce", "inquiry", "my_registrations", "signup"]);
        for d in &dialogs.list {
            assert!(
                d.states[d.start].input.is_some(),
                "{}: the start state asks something",
                d.id
            );
            assert!(d.states.iter().any(|s| s.is_final), "{}: has a final state", d.id);
            for s in d.states.iter().filter(|s| !s.is_final) {
                for lang in [Lang::Zh, Lang::En] {
                    assert!(
                        !s.prompt.get(lang).trim().is_empty(),
                        "{}/{}: prompt in {lang:?}",
                        d.id,
                        s.id
                    );
                }
            }
        }
    }

    #[test]
    fn a_text_s_dialog_is_found_once_and_kept() {
        let files: Vec<(String, String)> = crate::assets::DIALOGS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let dialogs = Dialogs::load(&files).unwrap();
        let kept = || dialogs.starts.0.len();
        for text in [
            "我要入驻 光梭科技",
            "show my registrations please",
            "停车收费吗",
            "我要入驻 光梭科技",
        ] {
            let q = Query::new(text);
            let fresh = look_for_start(&dialogs, &q);
            let found = find_start(&dialogs, &q).map(|(d, rest)| (d.id.clone(), rest));
            let again = find_start(&dialogs, &q).map(|(d, rest)| (d.id.clone(), rest));
            assert_eq!(
                found,
                fresh.map(|(i, rest)| (dialogs.list[i].id.clone(), rest)),
                "{text}"
            );
            assert_eq!(again, found, "{text}");
        }
        assert_eq!(kept(), 3, "one entry per text, a miss included");
        let q = Query::new("我要入驻 光梭科技");
        let (d, rest) = find_start(&dialogs, &q).unwrap();
        assert_eq!((d.id.as_str(), rest.as_deref()), ("inquiry", Some("光梭科技")));
        assert_eq!(dialogs.clone().starts.0.len(), 0, "a copy starts empty");
    }

    #[test]
    fn clashing_triggers_and_ids_are_reported() {
        let signup = crate::assets::SIGNUP_TOML;
        let copy = signup.replace("id = \"signup\"", "id = \"signup2\"");
        let files = vec![("a.toml".to_string(), signup.to_string()), ("b.toml".to_string(), copy)];
        let problems = Dialogs::load(&files).unwrap_err().join("\n");
        assert!(
            problems.contains("b.toml: trigger \"报名\" also starts the dialog in a.toml"),
            "{problems}"
        );
        assert!(
            problems.contains("b.toml: link `signup` is also used by a.toml"),
            "{problems}"
        );
    }
}
