//! Reading knowledge files in two phases: parse (TOML or JSON, by
//! extension) into records with their line numbers, then check ids,
//! duplicates, references and times. Every problem names the file, the line
//! where the parser knows it, and the field.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Concept, Enterprise, Event, Faq, Field, Knowledge, Text};

/// One problem in one knowledge file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnowledgeError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for KnowledgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for KnowledgeError {}

/// A parsed file: its records, with the line each starts on where known.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub name: String,
    pub knowledge: Knowledge,
    /// kind → the line of each record, in file order
    pub lines: HashMap<&'static str, Vec<Option<usize>>>,
}

impl ParsedFile {
    fn line(&self, kind: &'static str, index: usize) -> Option<usize> {
        self.lines.get(kind).and_then(|l| l.get(index).copied().flatten())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    field: Vec<Spanned<Field>>,
    #[serde(default)]
    enterprise: Vec<Spanned<Enterprise>>,
    #[serde(default)]
    event: Vec<Spanned<Event>>,
    #[serde(default)]
    faq: Vec<Spanned<Faq>>,
    #[serde(default)]
    concept: Vec<Spanned<Concept>>,
}

/// Line numbers of byte offsets, found by binary search over line starts.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Lines {
        Lines(
            text.bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        )
    }

    /// The 1-based line holding byte `offset`.
    fn at(&self, offset: usize) -> usize {
        self.0.partition_point(|&nl| nl < offset) + 1
    }
}

/// Reads and parses one file; the format follows the extension.
pub fn parse_file(path: &Path) -> Result<ParsedFile, KnowledgeError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| KnowledgeError {
        file: name.clone(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    parse_str(&name, &text, json)
}

/// Parses knowledge text named `name` (TOML, or JSON when `json`).
pub fn parse_str(name: &str, text: &str, json: bool) -> Result<ParsedFile, KnowledgeError> {
    let err = |line, message| KnowledgeError {
        file: name.to_string(),
        line,
        message,
    };
    let mut parsed = ParsedFile {
        name: name.to_string(),
        ..Default::default()
    };
    if json {
        let k: Knowledge =
            serde_json::from_str(text).map_err(|e| err(Some(e.line()), strip_position(&e.to_string())))?;
        // JSON gives no spans: find where each record's id is written.
        let lines = Lines::new(text);
        let mut positions = json_id_positions(text);
        let kinds = [
            ("field", k.field.iter().map(|x| x.id.as_str()).collect::<Vec<_>>()),
            ("enterprise", k.enterprise.iter().map(|x| x.id.as_str()).collect()),
            ("event", k.event.iter().map(|x| x.id.as_str()).collect()),
            ("faq", k.faq.iter().map(|x| x.id.as_str()).collect()),
            ("concept", k.concept.iter().map(|x| x.id.as_str()).collect()),
        ];
        for (kind, ids) in kinds {
            let found = ids
                .into_iter()
                .map(|id| {
                    let queue = positions.get_mut(id)?;
                    (!queue.is_empty()).then(|| lines.at(queue.remove(0)))
                })
                .collect();
            parsed.lines.insert(kind, found);
        }
        parsed.knowledge = k;
    } else {
        let lines = Lines::new(text);
        let file: TomlFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| lines.at(s.start));
            err(line, e.message().trim().to_string())
        })?;
        macro_rules! take {
            ($kind:literal, $list:expr, $out:expr) => {
                let mut found = Vec::new();
                for s in $list {
                    found.push(Some(lines.at(s.span().start)));
                    $out.push(s.into_inner());
                }
                parsed.lines.insert($kind, found);
            };
        }
        take!("field", file.field, parsed.knowledge.field);
        take!("enterprise", file.enterprise, parsed.knowledge.enterprise);
        take!("event", file.event, parsed.knowledge.event);
        take!("faq", file.faq, parsed.knowledge.faq);
        take!("concept", file.concept, parsed.knowledge.concept);
    }
    Ok(parsed)
}

fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Where each `"id": "<value>"` is written, by value, in file order.
/// (Ids of kinds other than the four are harmless extra entries.)
fn json_id_positions(text: &str) -> HashMap<&str, Vec<usize>> {
    let mut out: HashMap<&str, Vec<usize>> = HashMap::new();
    for (at, _) in text.match_indices("\"id\"") {
        let rest = text[at + 4..].trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(value) = rest.strip_prefix('"') else {
            continue;
        };
        if let Some(end) = value.find('"') {
            let start = text.len() - value.len();
            out.entry(&value[..end]).or_default().push(start - 1);
        }
    }
    out
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Collects the problems of one file; a record is (kind, index, id).
struct Checker<'a> {
    file: &'a ParsedFile,
    seen: &'a mut HashMap<(&'static str, String), String>,
    errors: &'a mut Vec<KnowledgeError>,
}

impl Checker<'_> {
    fn problem(&mut self, (kind, index, id): (&'static str, usize, &str), message: String) {
        self.errors.push(KnowledgeError {
            file: self.file.name.clone(),
            line: self.file.line(kind, index),
            message: format!("{kind} `{id}`: {message}"),
        });
    }

    /// Aliases and keywords: no empty entry, none twice.
    fn words(&mut self, at: (&'static str, usize, &str), key: &str, words: &[String]) {
        let mut seen = HashSet::new();
        for w in words {
            if w.trim().is_empty() {
                self.problem(at, format!("field `{key}` has an empty entry"));
            } else if !seen.insert(crate::search::text::normalize(w.trim())) {
                self.problem(at, format!("field `{key}` lists {w:?} twice"));
            }
        }
    }

    /// Aliases and keywords of one item.
    fn aliases_keywords(&mut self, at: (&'static str, usize, &str), aliases: &[String], keywords: &[String]) {
        self.words(at, "aliases", aliases);
        self.words(at, "keywords", keywords);
    }

    fn id(&mut self, at: (&'static str, usize, &str)) {
        if !valid_id(at.2) {
            self.problem(at, "field `id` must be lowercase letters, digits and '-'".into());
        }
        let previous = self.seen.insert((at.0, at.2.to_string()), self.file.name.clone());
        if let Some(first) = previous {
            self.problem(at, format!("duplicate id (also defined in {first})"));
        }
    }
}

/// Checks every file and merges them; `known_fields` are the field ids
/// already in the store that enterprises may also point to. Returns every
/// problem found, or the merged knowledge.
pub fn validate_references(
    files: Vec<ParsedFile>,
    known_fields: &HashSet<String>,
) -> Result<Knowledge, Vec<KnowledgeError>> {
    let mut errors = Vec::new();
    let mut merged = Knowledge::default();
    let mut seen: HashMap<(&'static str, String), String> = HashMap::new();
    let mut field_ids: HashSet<String> = known_fields.clone();
    for f in &files {
        field_ids.extend(f.knowledge.field.iter().map(|x| x.id.clone()));
    }
    for file in files {
        let mut check = Checker {
            file: &file,
            seen: &mut seen,
            errors: &mut errors,
        };
        let blank = |t: &Text| t.is_blank();
        for (i, x) in file.knowledge.field.iter().enumerate() {
            let at = ("field", i, x.id.as_str());
            check.id(at);
            if blank(&x.name) {
                check.problem(at, "field `name` is empty".into());
            }
            check.aliases_keywords(at, &x.aliases, &x.keywords);
        }
        for (i, x) in file.knowledge.enterprise.iter().enumerate() {
            let at = ("enterprise", i, x.id.as_str());
            check.id(at);
            check.aliases_keywords(at, &x.aliases, &x.keywords);
            if blank(&x.name) {
                check.problem(at, "field `name` is empty".into());
            }
            for f in &x.fields {
                if !field_ids.contains(f) {
                    check.problem(at, format!("field `fields` names unknown field id `{f}`"));
                }
            }
        }
        for (i, x) in file.knowledge.event.iter().enumerate() {
            let at = ("event", i, x.id.as_str());
            check.id(at);
            check.aliases_keywords(at, &x.aliases, &x.keywords);
            if blank(&x.title) {
                check.problem(at, "field `title` is empty".into());
            }
            if x.ends_at.is_some_and(|end| end < x.starts_at) {
                check.problem(at, "field `ends_at` is before `starts_at`".into());
            }
            if x.capacity == Some(0) {
                check.problem(
                    at,
                    "field `capacity` must be at least 1 (leave it out for no limit)".into(),
                );
            }
        }
        for (i, x) in file.knowledge.faq.iter().enumerate() {
            let at = ("faq", i, x.id.as_str());
            check.id(at);
            check.aliases_keywords(at, &x.aliases, &x.keywords);
            if x.questions.iter().all(|q| q.trim().is_empty()) {
                check.problem(at, "field `questions` needs at least one question".into());
            }
            if blank(&x.answer) {
                check.problem(at, "field `answer` is empty".into());
            }
        }
        for (i, x) in file.knowledge.concept.iter().enumerate() {
            let at = ("concept", i, x.id.as_str());
            check.id(at);
            for why in x.problems() {
                check.problem(at, why);
            }
        }
        let k = file.knowledge;
        merged.concept.extend(k.concept);
        merged.field.extend(k.field);
        merged.enterprise.extend(k.enterprise);
        merged.event.extend(k.event);
        merged.faq.extend(k.faq);
    }
    if errors.is_empty() { Ok(merged) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[field]]
id = "vfx"
name = { zh = "视频特效", en = "video special effects" }

[[enterprise]]
id = "star"
name = "Star"
fields = ["vfx"]

[[event]]
id = "forum"
title = "Forum"
starts_at = "2026-12-18T09:30:00+08:00"
"#;

    fn check(text: &str, json: bool) -> Result<Knowledge, Vec<KnowledgeError>> {
        let parsed = parse_str("k.toml", text, json).map_err(|e| vec![e])?;
        validate_references(vec![parsed], &HashSet::new())
    }

    fn first_error(text: &str) -> String {
        check(text, false).unwrap_err()[0].to_string()
    }

    #[test]
    fn good_file_loads() {
        let k = check(GOOD, false).unwrap();
        assert_eq!((k.field.len(), k.enterprise.len(), k.event.len()), (1, 1, 1));
        assert!(k.event[0].signup);
    }

    #[test]
    fn missing_id_names_line_and_field() {
        let e = first_error("\n[[field]]\nname = \"x\"\n");
        assert!(e.starts_with("k.toml:2: "), "{e}");
        assert!(e.contains("missing field `id`"), "{e}");
    }

    #[test]
    fn duplicate_id_is_found() {
        let e = first_error(&format!("{GOOD}\n[[field]]\nid = \"vfx\"\nname = \"again\"\n"));
        assert!(e.contains("field `vfx`: duplicate id"), "{e}");
        assert!(e.starts_with("k.toml:16:"), "{e}");
    }

    #[test]
    fn unknown_field_reference_is_found() {
        let e = first_error(&GOOD.replace("fields = [\"vfx\"]", "fields = [\"nope\"]"));
        assert!(
            e.contains("k.toml:6: enterprise `star`: field `fields` names unknown field id `nope`"),
            "{e}"
        );
    }

    #[test]
    fn bad_timestamp_names_line() {
        let e = first_error(&GOOD.replace("2026-12-18T09:30:00+08:00", "next friday"));
        assert!(e.starts_with("k.toml:14:"), "{e}");
        assert!(e.contains("RFC 3339"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_ids_are_errors() {
        let e = first_error("[[field]]\nid = \"a\"\nname = \"x\"\nnmae = \"y\"\n");
        assert!(e.contains("unknown field `nmae`"), "{e}");
        let e = first_error("[[field]]\nid = \"Bad Id\"\nname = \"x\"\n");
        assert!(e.contains("lowercase letters"), "{e}");
    }

    #[test]
    fn json_is_read_with_lines() {
        let json = "{\n \"field\": [\n  {\"id\": \"a\", \"name\": \"A\"},\n  {\"id\": \"a\", \"name\": \"B\"}\n ]\n}";
        let errs = check(json, true).unwrap_err();
        assert!(errs[0].to_string().contains("duplicate id"), "{}", errs[0]);
        let e = check("{\"field\": [{\"name\": \"A\"}]}", true).unwrap_err()[0].to_string();
        assert!(e.contains("k.toml:1: missing field `id`"), "{e}");
    }
}
