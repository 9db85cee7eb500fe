//! The dialog engine: state machines declared as data in `dialogs/*.toml`
//! (format: `dialogs/README.md`), run per identity with their state kept in
//! the identity's session.
//!
//! A message either continues the dialog in progress (cancel, back, expiry,
//! or an answer to the current state), or starts one (a trigger phrase, a
//! command, a `link:value` deep link), or is not the engine's business.
//! Completion runs the dialog's action ([`actions`]), implemented once in
//! Rust for any dialog that names it.

mod actions;
pub mod input;
pub mod spec;

use std::collections::BTreeMap;

use crate::bot::Ctx;
use crate::knowledge::{Lang, Text};
use crate::search::Query;
use crate::store::{DialogState, Session};
use input::Refusal;
use spec::{Choices, Input, Source, State};
pub use spec::{Dialog, parse};

/// The dialogs of a folder, checked.
#[derive(Debug, Clone, Default)]
pub struct Dialogs {
    pub list: Vec<Dialog>,
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
            Ok(Dialogs { list })
        } else {
            Err(problems)
        }
    }

    /// Whether `text` is a `link:value` message of one of the dialogs (a
    /// deep link or QR scene: no language of its own).
    pub fn is_link(&self, text: &str) -> bool {
        text.trim()
            .split_once(':')
            .is_some_and(|(l, _)| self.list.iter().any(|d| d.link.as_deref() == Some(l.trim())))
    }

    fn get(&self, id: &str) -> Option<&Dialog> {
        self.list.iter().find(|d| d.id == id)
    }
}

/// One message's view of the world.
pub struct Turn<'a> {
    pub ctx: &'a Ctx<'a>,
    pub identity: &'a str,
    /// Seconds of silence after which a dialog expires.
    pub timeout_secs: i64,
}

impl Turn<'_> {
    fn now(&self) -> i64 {
        self.ctx.now.unix_timestamp()
    }

    fn lang(&self) -> Lang {
        self.ctx.lang
    }
}

/// What the engine made of a message.
pub enum Outcome {
    /// Not a dialog message: answer it from the knowledge.
    NotMine,
    /// Replies; `saved` when an action already committed the session.
    Reply { replies: Vec<String>, saved: bool },
}

fn reply(text: String) -> Outcome {
    Outcome::Reply {
        replies: vec![text],
        saved: false,
    }
}

/// Handles `text` for the identity whose session is `session`.
pub fn handle(dialogs: &Dialogs, turn: &Turn, session: &mut Session, text: &str, q: &Query) -> Outcome {
    let intents = &turn.ctx.phrases.intents;
    if let Some(ds) = session.dialog.clone() {
        let Some(dialog) = dialogs.get(&ds.dialog) else {
            session.dialog = None; // the dialog file was removed
            return Outcome::NotMine;
        };
        if turn.now() - ds.updated_at > turn.timeout_secs {
            session.dialog = None;
            return reply(turn.ctx.t("dialog_expired", &[]));
        }
        if intents.cancel.is_whole(q) {
            session.dialog = None;
            return reply(turn.ctx.t("dialog_cancelled", &[]));
        }
        if intents.back.is_whole(q) {
            return back(dialog, turn, session, ds);
        }
        return answer(dialog, turn, session, ds, text);
    }
    match find_start(dialogs, q, text) {
        Some((dialog, preset)) => start(dialog, turn, session, preset.as_deref()),
        None if intents.cancel.is_whole(q) => reply(turn.ctx.t("dialog_nothing_to_cancel", &[])),
        None => Outcome::NotMine,
    }
}

/// The dialog a message starts, and what it may answer in advance: a
/// `link:value` message, or the rest of a message around a trigger phrase
/// (the longest trigger of any dialog wins).
fn find_start<'a>(dialogs: &'a Dialogs, q: &Query, text: &str) -> Option<(&'a Dialog, Option<String>)> {
    let t = text.trim();
    if let Some((link, value)) = t.split_once(':') {
        if let Some(d) = dialogs.list.iter().find(|d| d.link.as_deref() == Some(link.trim())) {
            return Some((d, Some(format!("={}", value.trim()))));
        }
    }
    let mut best: Option<(&Dialog, (usize, usize))> = None;
    for d in &dialogs.list {
        for span in d.triggers.find(q) {
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

fn start(dialog: &Dialog, turn: &Turn, session: &mut Session, preset: Option<&str>) -> Outcome {
    let mut ds = DialogState {
        dialog: dialog.id.clone(),
        state: dialog.states[dialog.start].id.clone(),
        values: BTreeMap::new(),
        labels: BTreeMap::new(),
        history: Vec::new(),
        shown: Vec::new(),
        updated_at: turn.now(),
    };
    let mut state = dialog.start;
    let mut note = None;
    if let (Some(p), Some(text)) = (dialog.preset, preset) {
        let st = &dialog.states[p];
        match read(st, turn, text, &[], true) {
            Read::Value(v, label) => {
                // Say what was understood, so that a wrong guess is seen at once.
                let shown = label.as_ref().map_or(v.clone(), |l| l.get(turn.lang()).to_string());
                note = Some(turn.ctx.t("dialog_preset", &[("value", &shown)]));
                save(&mut ds, st, v, label);
                ds.history.push(st.id.clone());
                state = next_state(dialog, st, &ds.values);
            }
            // A named event that cannot be signed up for: say why, start nothing.
            Read::Refused(r) if r.key.starts_with("event_") => return reply(refusal(turn, &r)),
            _ => {}
        }
    }
    enter(dialog, turn, session, ds, state, note)
}

/// Moves to `state`: prompts for it, or completes the dialog.
fn enter(
    dialog: &Dialog,
    turn: &Turn,
    session: &mut Session,
    mut ds: DialogState,
    state: usize,
    note: Option<String>,
) -> Outcome {
    let st = &dialog.states[state];
    if st.is_final {
        let ended = Session {
            dialog: None,
            ..session.clone()
        };
        let out = actions::complete(dialog, turn, &ds, ended.clone());
        *session = ended;
        return out;
    }
    ds.state = st.id.clone();
    ds.updated_at = turn.now();
    let options = options(st, turn);
    if let Some(opts) = &options {
        if opts.is_empty() {
            session.dialog = None;
            return reply(dialog.text("none").get(turn.lang()).to_string());
        }
        ds.shown = opts.iter().map(|o| o.value.clone()).collect();
    } else {
        ds.shown.clear();
    }
    let text = prompt(st, turn, &ds, options.as_deref());
    session.dialog = Some(ds);
    reply(match note {
        Some(n) => format!("{n}\n{text}"),
        None => text,
    })
}

fn back(dialog: &Dialog, turn: &Turn, session: &mut Session, mut ds: DialogState) -> Outcome {
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

fn answer(dialog: &Dialog, turn: &Turn, session: &mut Session, mut ds: DialogState, text: &str) -> Outcome {
    let Some(state) = dialog.state(&ds.state) else {
        session.dialog = None; // the state was removed from the file
        return Outcome::NotMine;
    };
    let st = &dialog.states[state];
    match read(st, turn, text, &ds.shown.clone(), false) {
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
    /// Shown after the label in the list (e.g. an event's date).
    pub detail: Option<String>,
}

fn options(st: &State, turn: &Turn) -> Option<Vec<Opt>> {
    let Some(Input::Choice(choices)) = &st.input else {
        return None;
    };
    Some(match choices {
        Choices::Fixed(list) => list
            .iter()
            .map(|(v, l)| Opt {
                value: v.clone(),
                label: l.clone(),
                detail: None,
            })
            .collect(),
        Choices::From { source, other } => {
            let mut opts = actions::source_options(*source, turn);
            if let Some(o) = other.as_ref().filter(|_| !opts.is_empty()) {
                opts.push(Opt {
                    value: "other".into(),
                    label: o.clone(),
                    detail: None,
                });
            }
            opts
        }
    })
}

/// The saved answers as placeholder values: a choice reads as its label.
fn saved_args(ds: &DialogState, lang: Lang) -> Vec<(String, String)> {
    let shown = |k: &String, v: &String| ds.labels.get(k).map_or(v.clone(), |l| l.get(lang).to_string());
    ds.values.iter().map(|(k, v)| (k.clone(), shown(k, v))).collect()
}

fn prompt(st: &State, turn: &Turn, ds: &DialogState, options: Option<&[Opt]>) -> String {
    let lang = turn.lang();
    let mut args = saved_args(ds, lang);
    if let Some(opts) = options {
        let lines: Vec<String> = opts
            .iter()
            .enumerate()
            .map(|(i, o)| match &o.detail {
                Some(d) => format!("{}. {} — {}", i + 1, o.label.get(lang), d),
                None => format!("{}. {}", i + 1, o.label.get(lang)),
            })
            .collect();
        args.push(("choices".into(), lines.join("\n")));
    }
    let args: Vec<(&str, &str)> = args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    crate::bot::phrasebook::fill(st.prompt.get(lang), &args)
}

/// The result of reading an answer.
enum Read {
    Value(String, Option<Text>),
    /// A clear answer that cannot be accepted (and why).
    Refused(Refusal),
    /// Not understood as an answer.
    Unclear(Refusal),
}

/// Reads `text` as the answer to `st`. `preset` is a trigger message's
/// rest: only a clear match counts there.
fn read(st: &State, turn: &Turn, text: &str, shown: &[String], preset: bool) -> Read {
    let Some(input) = &st.input else {
        return Read::Unclear(Refusal::new("input_bad_choice").with("count", 0));
    };
    let plain = |r: Result<String, Refusal>| match r {
        Ok(v) => Read::Value(v, None),
        Err(e) => Read::Unclear(e),
    };
    match input {
        Input::Text { min, max } => plain(input::text(text, *min, *max)),
        Input::Phone => plain(input::phone(text)),
        Input::Email => plain(input::email(text)),
        Input::Number { min, max } => plain(input::number(text, *min, *max)),
        Input::YesNo => {
            let q = Query::new(text);
            let intents = &turn.ctx.phrases.intents;
            if intents.yes.is_whole(&q) {
                Read::Value("yes".into(), None)
            } else if intents.no.is_whole(&q) {
                Read::Value("no".into(), None)
            } else {
                Read::Unclear(Refusal::new("input_bad_yes_no"))
            }
        }
        Input::Choice(choices) => read_choice(st, choices, turn, text, shown, preset),
    }
}

fn read_choice(st: &State, choices: &Choices, turn: &Turn, text: &str, shown: &[String], preset: bool) -> Read {
    let opts = options(st, turn).unwrap_or_default();
    // A number refers to the list as it was shown.
    if !preset && let Some(n) = input::option_number(text, shown.len().max(opts.len())) {
        return match n {
            Ok(i) => {
                let value = shown.get(i).cloned().unwrap_or_else(|| opts[i].value.clone());
                match opts.iter().find(|o| o.value == value) {
                    Some(o) => Read::Value(o.value.clone(), Some(o.label.clone())),
                    // Shown, but no longer on offer (an event closed meanwhile).
                    None => match choices {
                        Choices::From { source, .. } => Read::Refused(actions::why_not(*source, turn, &value)),
                        Choices::Fixed(_) => Read::Unclear(Refusal::new("input_bad_choice").with("count", opts.len())),
                    },
                }
            }
            Err(e) => Read::Unclear(e),
        };
    }
    if let Some(id) = text.strip_prefix('=') {
        return match opts.iter().find(|o| o.value == id) {
            Some(o) => Read::Value(o.value.clone(), Some(o.label.clone())),
            None => match choices {
                Choices::From { source, .. } => Read::Refused(actions::why_not(*source, turn, id)),
                Choices::Fixed(_) => Read::Unclear(Refusal::new("input_bad_choice").with("count", opts.len())),
            },
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
        return Read::Value(o.value.clone(), Some(o.label.clone()));
    }
    if let Choices::From { source, .. } = choices
        && let Some(r) = actions::closed_named(*source, turn, text)
    {
        return Read::Refused(r);
    }
    if let Choices::From {
        source: Source::OpenEvents,
        ..
    } = choices
        && let Some(ev) = actions::event_by_search(turn, text)
    {
        return match opts.iter().find(|o| o.value == ev.id) {
            Some(o) => Read::Value(o.value.clone(), Some(o.label.clone())),
            None => Read::Refused(actions::why_not(Source::OpenEvents, turn, &ev.id)),
        };
    }
    if best.len() > 1 {
        return Read::Unclear(Refusal::new("input_ambiguous_choice"));
    }
    Read::Unclear(Refusal::new("input_bad_choice").with("count", opts.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_dialogs_load_and_keep_their_invariants() {
        let files: Vec<(String, String)> = crate::assets::DIALOGS
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        let dialogs = Dialogs::load(&files).unwrap();
        let ids: Vec<&str> = dialogs.list.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["inquiry", "my_registrations", "signup"]);
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
