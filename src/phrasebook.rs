//! The bot's own wording and intent words, read from `dialogs/bot.toml`.
//!
//! The Rust side only knows which texts exist and which placeholders each
//! may use ([`TEXTS`]); the words themselves are data. Loading checks that
//! every text is there in both languages with only known placeholders.

use std::collections::HashMap;

use serde::Deserialize;

use crate::knowledge::{Lang, Text};
use crate::search::PhraseSet;
pub use crate::template::{fill, placeholders};

/// Every text the bot uses, with the placeholders it may contain.
pub const TEXTS: &[(&str, &[&str])] = &[
    ("help", &[]),
    ("fallback", &[]),
    ("field_list", &["field", "count"]),
    ("field_empty", &["field"]),
    ("fields_list", &["count"]),
    ("fields_item", &["field", "count"]),
    ("fields_hint", &[]),
    ("events_list", &["count"]),
    ("events_none", &[]),
    ("events_hint", &[]),
    ("events_in_list", &["count"]),
    ("events_none_in", &[]),
    ("more_hint", &["rest"]),
    ("more_none", &[]),
    ("more_unlisted", &["rest"]),
    ("also_in_field", &["field"]),
    ("see_also", &[]),
    ("label_field", &[]),
    ("label_location", &[]),
    ("label_contact", &[]),
    ("label_website", &[]),
    ("label_time", &[]),
    ("label_venue", &[]),
    ("seats_left", &["left", "capacity"]),
    ("seats_full", &["capacity"]),
    ("seats_unlimited", &[]),
    ("signup_open", &[]),
    ("signup_open_until", &["closes"]),
    ("signup_closed", &[]),
    ("signup_none", &[]),
    ("event_past", &[]),
    ("dialog_cancelled", &[]),
    ("dialog_nothing_to_cancel", &[]),
    ("dialog_expired", &[]),
    ("dialog_back_first", &[]),
    ("dialog_failed", &[]),
    ("dialog_preset", &["value"]),
    ("signup_until", &["closes"]),
    ("input_too_short", &["min"]),
    ("input_too_long", &["max"]),
    ("input_bad_phone", &[]),
    ("input_bad_email", &[]),
    ("input_bad_number", &["min", "max"]),
    ("input_bad_choice", &["count"]),
    ("input_ambiguous_choice", &[]),
    ("input_bad_yes_no", &[]),
    ("event_closed_invite", &["event"]),
    ("event_closed_past", &["event"]),
    ("event_closed_deadline", &["event"]),
    ("event_gone", &[]),
    ("status_confirmed", &[]),
    ("status_waitlisted", &[]),
    ("status_cancelled", &[]),
    ("unavailable", &[]),
    ("message_too_long", &["max"]),
    ("choice_stale", &[]),
    ("choices_more", &["rest"]),
    ("too_fast", &[]),
    ("unsupported_message", &[]),
    ("choice_yes", &[]),
    ("choice_no", &[]),
    ("staff_only", &[]),
    ("subscribed", &[]),
    ("unsubscribed", &[]),
    ("reminder", &["event", "time", "venue", "code"]),
    ("audience_all", &["count"]),
    ("audience_channel", &["channel", "count"]),
    ("audience_event", &["event", "count"]),
    ("stats_heading", &[]),
    ("stats_subscribers", &["channel", "count"]),
    ("stats_registrations", &["event", "confirmed", "waitlisted"]),
    ("stats_outbox", &["channel", "pending", "sent", "failed"]),
    (
        "registrations_heading",
        &["event", "confirmed", "waitlisted", "cancelled"],
    ),
    (
        "registrations_line",
        &["code", "name", "organization", "status", "created"],
    ),
    ("registrations_usage", &[]),
    ("registrations_unknown", &["event"]),
    ("language_choose", &[]),
    ("language_set", &[]),
    ("language_zh", &[]),
    ("language_en", &[]),
    ("telegram_command_start", &[]),
    ("telegram_command_help", &[]),
    ("telegram_command_events", &[]),
    ("telegram_command_signup", &[]),
    ("telegram_command_my", &[]),
    ("telegram_command_cancel", &[]),
    ("telegram_command_lang", &[]),
];

const INTENTS: &[&str] = &[
    "greeting",
    "help",
    "more",
    "events",
    "fields",
    "cancel",
    "back",
    "yes",
    "no",
    "language",
    "subscribe",
    "unsubscribe",
    "stats",
    "staff_registrations",
    "list",
    "provider",
];

/// Intents a dialog folder may leave out (they were added later): an
/// absent one matches nothing.
const OPTIONAL_INTENTS: &[&str] = &["about_us"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhrasebook {
    text: HashMap<String, Text>,
    calendar: RawCalendar,
    intents: HashMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    datetime: Text,
    weekdays_zh: Vec<String>,
    weekdays_en: Vec<String>,
    months_en: Vec<String>,
}

/// Intent words, ready to match.
#[derive(Debug, Clone, Default)]
pub struct Intents {
    pub greeting: PhraseSet,
    pub help: PhraseSet,
    pub more: PhraseSet,
    pub events: PhraseSet,
    pub fields: PhraseSet,
    /// Words that ask for a list of companies ("哪些", "which companies").
    pub list: PhraseSet,
    /// Words that ask who does something ("谁能", "who can"): a company is
    /// wanted rather than an event about the same thing.
    pub provider: PhraseSet,
    /// Words that begin what the asker says about themselves ("我们是做",
    /// "we're a"): the industry and company words that follow describe
    /// the asker, not what is asked for.
    pub about_us: PhraseSet,
    pub cancel: PhraseSet,
    pub back: PhraseSet,
    pub yes: PhraseSet,
    pub no: PhraseSet,
    pub language: PhraseSet,
    pub subscribe: PhraseSet,
    pub unsubscribe: PhraseSet,
    pub stats: PhraseSet,
    pub staff_registrations: PhraseSet,
}

/// The checked phrasebook.
#[derive(Debug, Clone)]
pub struct Phrasebook {
    texts: HashMap<String, Text>,
    datetime: Text,
    weekdays: [Vec<String>; 2],
    months_en: Vec<String>,
    pub intents: Intents,
}

/// Checks one localized text: both languages, known placeholders.
pub fn check_text(what: &str, t: &Text, allowed: &[&str], problems: &mut Vec<String>) {
    if let Text::Localized(m) = t {
        for lang in ["zh", "en"] {
            if m.get(lang).is_none_or(|s| s.trim().is_empty()) {
                problems.push(format!("{what}: missing the `{lang}` translation"));
            }
        }
    }
    for s in t.all() {
        for p in placeholders(s) {
            if !allowed.contains(&p) {
                let hint = if allowed.is_empty() {
                    "it takes no placeholders".to_string()
                } else {
                    format!(
                        "it may use {}",
                        allowed
                            .iter()
                            .map(|a| format!("{{{a}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                problems.push(format!("{what}: unknown placeholder {{{p}}} ({hint})"));
            }
        }
    }
}

impl Phrasebook {
    /// Parses and checks `bot.toml`; `name` is used in messages.
    pub fn parse(name: &str, text: &str) -> Result<Phrasebook, Vec<String>> {
        let raw: RawPhrasebook = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start].matches('\n').count() + 1)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            vec![format!("{name}{line}: {}", e.message().trim())]
        })?;
        let mut problems = Vec::new();
        for (key, allowed) in TEXTS {
            match raw.text.get(*key) {
                Some(t) => check_text(&format!("{name}: text `{key}`"), t, allowed, &mut problems),
                None => problems.push(format!("{name}: text `{key}` is missing")),
            }
        }
        for key in raw.text.keys() {
            if !TEXTS.iter().any(|(k, _)| k == key) {
                problems.push(format!("{name}: text `{key}` is not used by parkbot (a typo?)"));
            }
        }
        let cal = &raw.calendar;
        check_text(
            &format!("{name}: calendar `datetime`"),
            &cal.datetime,
            &["year", "month", "day", "weekday", "time"],
            &mut problems,
        );
        for (key, list, n) in [
            ("weekdays_zh", &cal.weekdays_zh, 7),
            ("weekdays_en", &cal.weekdays_en, 7),
            ("months_en", &cal.months_en, 12),
        ] {
            if list.len() != n {
                problems.push(format!(
                    "{name}: calendar `{key}` needs {n} entries, found {}",
                    list.len()
                ));
            }
        }
        for key in INTENTS {
            if raw.intents.get(*key).is_none_or(|v| v.is_empty()) {
                problems.push(format!("{name}: intents `{key}` is missing or empty"));
            }
        }
        for key in raw.intents.keys() {
            if !INTENTS.contains(&key.as_str()) && !OPTIONAL_INTENTS.contains(&key.as_str()) {
                problems.push(format!("{name}: intents `{key}` is not used by parkbot (a typo?)"));
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let set = |k: &str| PhraseSet::new(&raw.intents[k]);
        Ok(Phrasebook {
            intents: Intents {
                greeting: set("greeting"),
                help: set("help"),
                more: set("more"),
                events: set("events"),
                fields: set("fields"),
                list: set("list"),
                provider: set("provider"),
                about_us: raw
                    .intents
                    .get("about_us")
                    .map(|v| PhraseSet::new(v))
                    .unwrap_or_default(),
                cancel: set("cancel"),
                back: set("back"),
                yes: set("yes"),
                no: set("no"),
                language: set("language"),
                subscribe: set("subscribe"),
                unsubscribe: set("unsubscribe"),
                stats: set("stats"),
                staff_registrations: set("staff_registrations"),
            },
            texts: raw.text,
            datetime: raw.calendar.datetime,
            weekdays: [raw.calendar.weekdays_zh, raw.calendar.weekdays_en],
            months_en: raw.calendar.months_en,
        })
    }

    /// The text `key` in `lang` with `{placeholders}` filled from `args`.
    /// A key the code uses but the phrasebook lacks is a bug (a test
    /// checks every key in the code against [`TEXTS`]); it is logged and the
    /// person gets the help text rather than a key.
    pub fn t(&self, key: &str, lang: Lang, args: &[(&str, &str)]) -> String {
        match self.texts.get(key) {
            Some(t) => fill(t.get(lang), args),
            None => {
                tracing::error!(key, "the phrasebook has no such text");
                self.texts
                    .get("help")
                    .map(|t| t.get(lang).to_string())
                    .unwrap_or_default()
            }
        }
    }

    /// A date and time in the offset it was written with.
    pub fn datetime(&self, at: time::OffsetDateTime, lang: Lang) -> String {
        let wd = at.weekday().number_days_from_monday() as usize;
        let month = at.month() as usize;
        let weekday = match lang {
            Lang::Zh => &self.weekdays[0][wd],
            Lang::En => &self.weekdays[1][wd],
        };
        let month = match lang {
            Lang::Zh => month.to_string(),
            Lang::En => self.months_en[month - 1].clone(),
        };
        let time = format!("{:02}:{:02}", at.hour(), at.minute());
        fill(
            self.datetime.get(lang),
            &[
                ("year", &at.year().to_string()),
                ("month", &month),
                ("day", &at.day().to_string()),
                ("weekday", weekday),
                ("time", &time),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_phrasebook_is_valid() {
        let pb = Phrasebook::parse("bot.toml", crate::assets::BOT_TOML).unwrap();
        assert!(pb.t("help", Lang::En, &[]).starts_with("Hello"));
        assert_eq!(
            pb.t("more_hint", Lang::En, &[("rest", "3")]),
            "…and 3 more: reply \"more\" to see them."
        );
    }

    /// Every key the code asks the phrasebook for exists: literals passed
    /// to `t(…)` or `Refusal::new(…)`, and the keys chosen by match arms
    /// (`status_…`, `event_closed_…`).
    #[test]
    fn every_key_used_in_the_code_exists() {
        fn rs_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    rs_files(&p, out);
                } else if p.extension().is_some_and(|x| x == "rs") {
                    out.push(p);
                }
            }
        }
        let mut files = Vec::new();
        rs_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let known: Vec<&str> = TEXTS.iter().map(|(k, _)| *k).collect();
        let mut used = 0;
        for f in files {
            let code = std::fs::read_to_string(&f).unwrap();
            for marker in [".t(\"", "Refusal::new(\"", "Some(\"event_closed_", "=> \"status_"] {
                for (i, _) in code.match_indices(marker) {
                    let start = i + marker.find('"').unwrap() + 1;
                    let key: String = code[start..].chars().take_while(|c| *c != '"').collect();
                    if key.is_empty() || !key.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                        continue;
                    }
                    used += 1;
                    assert!(
                        known.contains(&key.as_str()),
                        "{}: phrasebook key `{key}` does not exist",
                        f.display()
                    );
                }
            }
        }
        assert!(used > 40, "the scan found the keys ({used})");
    }

    #[test]
    fn problems_are_named() {
        let bad = crate::assets::BOT_TOML
            .replace("{field}领域的企业（共{count}家）", "{feild}领域的企业")
            .replace("en = \"\"\"Sorry, I don't know", "fr = \"\"\"Sorry, I don't know");
        let problems = Phrasebook::parse("bot.toml", &bad).unwrap_err().join("\n");
        assert!(
            problems.contains("text `field_list`: unknown placeholder {feild}"),
            "{problems}"
        );
        assert!(
            problems.contains("text `fallback`: missing the `en` translation"),
            "{problems}"
        );
    }
}
