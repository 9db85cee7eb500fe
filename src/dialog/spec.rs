//! Dialog files, loaded in two phases: parse into raw serde structs (with
//! line numbers), then build a checked graph where every target exists,
//! every state is reachable, every text has both languages and only known
//! placeholders, and every action and data source is one parkbot has.
//! Every problem is reported with its file and line.

use std::collections::{BTreeSet, HashMap};

use serde::Deserialize;
use toml::Spanned;

use crate::knowledge::Text;
use crate::phrasebook::{check_text, placeholders};
use crate::search::PhraseSet;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    dialog: Spanned<RawDialog>,
    #[serde(default)]
    texts: HashMap<String, Spanned<Text>>,
    #[serde(rename = "state", default)]
    states: Vec<Spanned<RawState>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDialog {
    id: String,
    #[serde(default)]
    triggers: Vec<String>,
    start: String,
    action: String,
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    form: Option<String>,
    /// Only park staff (`[staff] members`) may start it.
    #[serde(default)]
    staff_only: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawState {
    id: String,
    #[serde(default)]
    prompt: Option<Text>,
    #[serde(default)]
    input: Option<RawInput>,
    #[serde(default)]
    save: Option<String>,
    #[serde(default)]
    next: Option<RawNext>,
    #[serde(rename = "final", default)]
    is_final: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawNext {
    One(String),
    Branches(Vec<RawBranch>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBranch {
    #[serde(rename = "if", default)]
    cond: Option<String>,
    goto: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    kind: String,
    #[serde(default)]
    min: Option<i64>,
    #[serde(default)]
    max: Option<i64>,
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    options: Option<Vec<RawOption>>,
    #[serde(default)]
    other: Option<Text>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    value: String,
    label: Text,
}

/// Where a choice's options come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Events open for sign-up now.
    OpenEvents,
    /// The identity's active registrations.
    MyRegistrations,
    /// The park's fields.
    Fields,
    /// Who an announcement may go to, with how many people each is.
    Audiences,
}

impl Source {
    const ALL: &[(&str, Source)] = &[
        ("open_events", Source::OpenEvents),
        ("my_registrations", Source::MyRegistrations),
        ("fields", Source::Fields),
        ("audiences", Source::Audiences),
    ];
}

#[derive(Debug, Clone)]
pub enum Choices {
    Fixed(Vec<(String, Text)>),
    From { source: Source, other: Option<Text> },
}

/// What a state accepts.
#[derive(Debug, Clone)]
pub enum Input {
    Text { min: usize, max: usize },
    Choice(Choices),
    Phone,
    Email,
    YesNo,
    Number { min: i64, max: i64 },
}

/// `name = value` or `name != value`.
#[derive(Debug, Clone)]
pub struct Cond {
    pub name: String,
    pub value: String,
    pub negated: bool,
}

#[derive(Debug, Clone)]
pub struct Branch {
    pub cond: Option<Cond>,
    pub goto: usize,
}

#[derive(Debug, Clone)]
pub struct State {
    pub id: String,
    pub prompt: Text,
    pub input: Option<Input>,
    pub save: Option<String>,
    pub next: Vec<Branch>,
    pub is_final: bool,
}

/// The completion actions parkbot implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Register,
    SaveForm,
    CancelRegistration,
    /// Queue an announcement (staff dialogs).
    Announce,
}

/// What an action needs of its dialog: saved names, and texts with the
/// placeholders (besides saved names) they may use.
struct Needs {
    values: &'static [&'static str],
    texts: &'static [(&'static str, &'static [&'static str])],
}

impl Action {
    const ALL: &[(&str, Action)] = &[
        ("register", Action::Register),
        ("save_form", Action::SaveForm),
        ("cancel_registration", Action::CancelRegistration),
        ("announce", Action::Announce),
    ];

    fn needs(self) -> Needs {
        match self {
            Action::Register => Needs {
                values: &["event", "name", "organization", "phone"],
                texts: &[
                    ("registered", &["code"]),
                    ("waitlisted", &["code", "position"]),
                    ("already", &["code", "status"]),
                    ("closed", &["reason"]),
                ],
            },
            Action::SaveForm => Needs {
                values: &[],
                texts: &[("saved", &["ref"])],
            },
            Action::Announce => Needs {
                values: &["audience", "text", "ok"],
                texts: &[("announced", &["id", "total"]), ("refused", &["reason"]), ("kept", &[])],
            },
            Action::CancelRegistration => Needs {
                values: &["registration", "ok"],
                texts: &[
                    ("cancelled", &["event", "code"]),
                    ("kept", &["event"]),
                    ("promoted", &["event", "code"]),
                ],
            },
        }
    }
}

/// A checked dialog.
#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: String,
    pub file: String,
    pub triggers: PhraseSet,
    /// The trigger phrases as written (to find clashes between dialogs).
    pub trigger_words: Vec<String>,
    pub start: usize,
    pub action: Action,
    /// The state a trigger message or a link may answer in advance.
    pub preset: Option<usize>,
    /// `link:<value>` messages (deep links, QR scenes) start this dialog.
    pub link: Option<String>,
    /// The form name for `save_form`.
    pub form: Option<String>,
    /// Only park staff may start it.
    pub staff_only: bool,
    pub texts: HashMap<String, Text>,
    pub states: Vec<State>,
}

impl Dialog {
    pub fn state(&self, id: &str) -> Option<usize> {
        self.states.iter().position(|s| s.id == id)
    }

    /// A text of the dialog file (checked at load to exist).
    pub fn text(&self, key: &str) -> &Text {
        static EMPTY: std::sync::OnceLock<Text> = std::sync::OnceLock::new();
        self.texts.get(key).unwrap_or_else(|| EMPTY.get_or_init(Text::default))
    }

    /// Saved names in state order.
    pub fn saved_names(&self) -> Vec<&str> {
        self.states.iter().filter_map(|s| s.save.as_deref()).collect()
    }
}

/// Looks up a state by id, reporting an unknown one (returns `usize::MAX`).
type FindState<'f> = dyn Fn(&mut Problems, Option<usize>, &str, &str) -> usize + 'f;

/// Collects problems of one file.
struct Problems<'a> {
    file: &'a str,
    text: &'a str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn at(&mut self, offset: Option<usize>, msg: String) {
        let line = offset.map(|o| self.text[..o.min(self.text.len())].matches('\n').count() + 1);
        match line {
            Some(l) => self.list.push(format!("{}:{}: {}", self.file, l, msg)),
            None => self.list.push(format!("{}: {}", self.file, msg)),
        }
    }
}

/// Parses and checks one dialog file.
pub fn parse(file: &str, text: &str) -> Result<Dialog, Vec<String>> {
    let mut p = Problems {
        file,
        text,
        list: Vec::new(),
    };
    let raw: RawFile = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            p.at(e.span().map(|s| s.start), e.message().trim().to_string());
            return Err(p.list);
        }
    };
    let dialog_at = Some(raw.dialog.span().start);
    let d = raw.dialog.into_inner();
    let ids: HashMap<&str, usize> = raw
        .states
        .iter()
        .enumerate()
        .map(|(i, s)| (s.get_ref().id.as_str(), i))
        .collect();
    let find = |p: &mut Problems, at: Option<usize>, id: &str, what: &str| -> usize {
        match ids.get(id) {
            Some(&i) => i,
            None => {
                let known: Vec<&str> = raw.states.iter().map(|s| s.get_ref().id.as_str()).collect();
                p.at(
                    at,
                    format!("{what} names unknown state `{id}` (states: {})", known.join(", ")),
                );
                usize::MAX
            }
        }
    };
    if d.id.is_empty() || !d.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        p.at(
            dialog_at,
            format!("dialog id `{}` must be letters, digits, '_' or '-'", d.id),
        );
    }
    let start = find(&mut p, dialog_at, &d.start, "`start`");
    let preset = d.preset.as_deref().map(|s| find(&mut p, dialog_at, s, "`preset`"));
    let action = match Action::ALL.iter().find(|(n, _)| *n == d.action) {
        Some((_, a)) => *a,
        None => {
            let known: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
            p.at(
                dialog_at,
                format!("unknown action `{}` (parkbot has: {})", d.action, known.join(", ")),
            );
            return Err(p.list);
        }
    };
    if action == Action::SaveForm && d.form.as_deref().is_none_or(str::is_empty) {
        p.at(
            dialog_at,
            "action `save_form` needs `form = \"NAME\"` in [dialog]".into(),
        );
    }
    if d.triggers.is_empty() && d.link.is_none() {
        p.at(
            dialog_at,
            "the dialog has no `triggers` and no `link`: nothing can start it".into(),
        );
    }
    let mut seen = BTreeSet::new();
    for s in &raw.states {
        if !seen.insert(s.get_ref().id.as_str()) {
            p.at(Some(s.span().start), format!("duplicate state id `{}`", s.get_ref().id));
        }
    }
    let saved: BTreeSet<String> = raw.states.iter().filter_map(|s| s.get_ref().save.clone()).collect();
    let mut states = Vec::new();
    for s in &raw.states {
        states.push(build_state(&mut p, s, &find, &saved));
    }
    if !p.list.is_empty() {
        return Err(p.list);
    }
    let needs = action.needs();
    let extra: Vec<&str> = needs
        .texts
        .iter()
        .flat_map(|(_, ph)| ph.iter().copied())
        .chain(["ref"])
        .collect();
    for (key, t) in &raw.texts {
        let mut allowed: Vec<&str> = saved.iter().map(String::as_str).collect();
        allowed.extend(&extra);
        let mut found = Vec::new();
        check_text(&format!("text `{key}`"), t.get_ref(), &allowed, &mut found);
        for f in found {
            p.at(Some(t.span().start), f);
        }
    }
    for v in needs.values {
        if !saved.contains(*v) {
            p.at(
                dialog_at,
                format!("action `{}` needs a state that saves `{v}`", d.action),
            );
        }
    }
    for (key, _) in needs.texts {
        if !raw.texts.contains_key(*key) {
            p.at(
                dialog_at,
                format!("action `{}` needs the text `{key}` in [texts]", d.action),
            );
        }
    }
    let uses_source = states
        .iter()
        .any(|s| matches!(s.input, Some(Input::Choice(Choices::From { .. }))));
    if uses_source && !raw.texts.contains_key("none") {
        p.at(
            dialog_at,
            "a choice from a data source needs the text `none` (said when there is nothing to choose)".into(),
        );
    }
    check_graph(&mut p, &raw.states, &states, start);
    if !p.list.is_empty() {
        return Err(p.list);
    }
    Ok(Dialog {
        id: d.id,
        file: file.to_string(),
        triggers: PhraseSet::new(&d.triggers),
        trigger_words: d.triggers.clone(),
        start,
        action,
        preset,
        link: d.link,
        form: d.form,
        staff_only: d.staff_only,
        texts: raw.texts.into_iter().map(|(k, v)| (k, v.into_inner())).collect(),
        states,
    })
}

fn build_state(p: &mut Problems, s: &Spanned<RawState>, find: &FindState, saved: &BTreeSet<String>) -> State {
    let at = Some(s.span().start);
    let r = s.get_ref();
    let what = format!("state `{}`", r.id);
    let input = r.input.as_ref().and_then(|i| build_input(p, at, &what, i));
    let next: Vec<Branch> = match &r.next {
        None => Vec::new(),
        Some(RawNext::One(goto)) => vec![Branch {
            cond: None,
            goto: find(p, at, goto, &format!("{what}: `next`")),
        }],
        Some(RawNext::Branches(list)) => list
            .iter()
            .map(|b| Branch {
                cond: b.cond.as_deref().and_then(|c| parse_cond(p, at, &what, c, saved)),
                goto: find(p, at, &b.goto, &format!("{what}: `goto`")),
            })
            .collect(),
    };
    if r.is_final {
        if r.input.is_some() || r.next.is_some() {
            p.at(at, format!("{what} is final: it takes no `input` and no `next`"));
        }
    } else {
        if r.input.is_none() {
            p.at(at, format!("{what} needs an `input` (or `final = true`)"));
        }
        if r.prompt.is_none() {
            p.at(at, format!("{what} needs a `prompt`"));
        }
        if next.is_empty() {
            p.at(at, format!("{what} needs a `next` state"));
        } else if next.last().is_some_and(|b| b.cond.is_some()) {
            p.at(
                at,
                format!("{what}: the last branch of `next` must have no `if` (the default)"),
            );
        }
        if r.save.is_none() {
            p.at(at, format!("{what} needs `save = \"NAME\"` for its answer"));
        }
    }
    let prompt = r.prompt.clone().unwrap_or_default();
    let is_choice = matches!(input, Some(Input::Choice(_)));
    let mut allowed: Vec<&str> = saved.iter().map(String::as_str).collect();
    if is_choice {
        allowed.push("choices");
        if !prompt.all().iter().all(|t| placeholders(t).contains(&"choices")) {
            p.at(at, format!("{what}: the prompt of a choice must show {{choices}}"));
        }
    }
    let mut found = Vec::new();
    check_text(&format!("{what}: prompt"), &prompt, &allowed, &mut found);
    for f in found {
        p.at(at, f);
    }
    State {
        id: r.id.clone(),
        prompt,
        input,
        save: r.save.clone(),
        next,
        is_final: r.is_final,
    }
}

fn build_input(p: &mut Problems, at: Option<usize>, what: &str, i: &RawInput) -> Option<Input> {
    let bounds = |p: &mut Problems, lo: i64, hi: i64| {
        let (min, max) = (i.min.unwrap_or(lo), i.max.unwrap_or(hi));
        if min > max || min < 0 {
            p.at(
                at,
                format!("{what}: input bounds min = {min}, max = {max} are impossible"),
            );
        }
        (min, max)
    };
    Some(match i.kind.as_str() {
        "text" => {
            let (min, max) = bounds(p, 1, 200);
            Input::Text {
                min: min.max(0) as usize,
                max: max.max(0) as usize,
            }
        }
        "number" => {
            let (min, max) = bounds(p, 0, i64::MAX);
            Input::Number { min, max }
        }
        "phone" => Input::Phone,
        "email" => Input::Email,
        "yes_no" => Input::YesNo,
        "choice" => {
            let mut found = Vec::new();
            if let Some(o) = &i.other {
                check_text(&format!("{what}: `other`"), o, &[], &mut found);
            }
            let choice = match (&i.source, &i.options) {
                (Some(src), None) => match Source::ALL.iter().find(|(n, _)| n == src) {
                    Some((_, s)) => Input::Choice(Choices::From {
                        source: *s,
                        other: i.other.clone(),
                    }),
                    None => {
                        let known: Vec<&str> = Source::ALL.iter().map(|(n, _)| *n).collect();
                        p.at(
                            at,
                            format!(
                                "{what}: unknown data source `{src}` (parkbot has: {})",
                                known.join(", ")
                            ),
                        );
                        return None;
                    }
                },
                (None, Some(opts)) if !opts.is_empty() => {
                    for o in opts {
                        check_text(&format!("{what}: option `{}`", o.value), &o.label, &[], &mut found);
                        if o.value.is_empty() || o.value.starts_with('+') {
                            found.push(format!(
                                "{what}: option value `{}` must not be empty or start with `+` (kept for \"more\")",
                                o.value
                            ));
                        }
                    }
                    Input::Choice(Choices::Fixed(
                        opts.iter().map(|o| (o.value.clone(), o.label.clone())).collect(),
                    ))
                }
                _ => {
                    p.at(
                        at,
                        format!("{what}: a choice needs either `source` or a non-empty `options` list"),
                    );
                    return None;
                }
            };
            for f in found {
                p.at(at, f);
            }
            choice
        }
        other => {
            p.at(
                at,
                format!("{what}: unknown input kind `{other}` (use text, choice, phone, email, yes_no or number)"),
            );
            return None;
        }
    })
}

fn parse_cond(p: &mut Problems, at: Option<usize>, what: &str, c: &str, saved: &BTreeSet<String>) -> Option<Cond> {
    let (name, value, negated) = if let Some((n, v)) = c.split_once("!=") {
        (n, v, true)
    } else if let Some((n, v)) = c.split_once('=') {
        (n, v, false)
    } else {
        p.at(
            at,
            format!("{what}: condition `{c}` must look like `name = value` or `name != value`"),
        );
        return None;
    };
    let name = name.trim().to_string();
    if !saved.contains(&name) {
        p.at(
            at,
            format!("{what}: condition `{c}` uses `{name}`, which no state saves"),
        );
        return None;
    }
    Some(Cond {
        name,
        value: value.trim().to_string(),
        negated,
    })
}

/// Every state is reachable from the start, and a final state is reachable.
fn check_graph(p: &mut Problems, raw: &[Spanned<RawState>], states: &[State], start: usize) {
    if start >= states.len() {
        return;
    }
    let mut reached = vec![false; states.len()];
    let mut todo = vec![start];
    while let Some(i) = todo.pop() {
        if i >= states.len() || reached[i] {
            continue;
        }
        reached[i] = true;
        todo.extend(states[i].next.iter().map(|b| b.goto));
    }
    for (i, s) in states.iter().enumerate() {
        if !reached[i] {
            p.at(
                Some(raw[i].span().start),
                format!("state `{}` cannot be reached from the start state", s.id),
            );
        }
    }
    if !states.iter().enumerate().any(|(i, s)| s.is_final && reached[i]) {
        p.at(
            None,
            "no final state (`final = true`) can be reached: the dialog never completes".into(),
        );
    }
}
