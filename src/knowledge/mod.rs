//! Park knowledge: fields, enterprises, events and FAQs, as the contract's
//! knowledge files describe them. `load` reads and checks files, `export`
//! writes them back; the store keeps the records.

mod load;

pub use crate::search::concepts::{Concept, ConceptKind};
pub use load::{KnowledgeError, ParsedFile, parse_file, parse_str, validate_references};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A language the bot speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    /// Chinese when the text holds a Han character, English otherwise.
    pub fn detect(text: &str) -> Lang {
        if text.chars().any(is_han) { Lang::Zh } else { Lang::En }
    }

    /// Like [`Lang::detect`], but a message with no letters at all (a
    /// number, a phone number, "👍") keeps the conversation's language.
    pub fn detect_or(text: &str, conversation: Option<Lang>) -> Lang {
        if text.chars().any(is_han) {
            Lang::Zh
        } else if text.chars().any(char::is_alphabetic) {
            Lang::En
        } else {
            conversation.unwrap_or(Lang::Zh)
        }
    }

    /// The language with this code (`zh`, `en`).
    pub fn parse(code: &str) -> Option<Lang> {
        match code {
            "zh" => Some(Lang::Zh),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Zh => Lang::En,
            Lang::En => Lang::Zh,
        }
    }
}

/// A CJK ideograph (the blocks Chinese text uses).
pub fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// A text that is either the same in every language or given per language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Text {
    Plain(String),
    Localized(BTreeMap<String, String>),
}

impl Default for Text {
    fn default() -> Self {
        Text::Plain(String::new())
    }
}

impl Text {
    /// The text in `lang`, else the default language (zh), else any.
    pub fn get(&self, lang: Lang) -> &str {
        match self {
            Text::Plain(s) => s,
            Text::Localized(m) => m
                .get(lang.code())
                .filter(|s| !s.is_empty())
                .or_else(|| m.get("zh").filter(|s| !s.is_empty()))
                .or_else(|| m.get(lang.other().code()))
                .or_else(|| m.values().next())
                .map(String::as_str)
                .unwrap_or(""),
        }
    }

    /// Every variant, for indexing.
    pub fn all(&self) -> Vec<&str> {
        match self {
            Text::Plain(s) => vec![s.as_str()],
            Text::Localized(m) => m.values().map(String::as_str).collect(),
        }
    }

    pub fn is_blank(&self) -> bool {
        self.all().iter().all(|s| s.trim().is_empty())
    }
}

/// An RFC 3339 instant that keeps the offset it was written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    pub fn parse(s: &str) -> Result<Timestamp, String> {
        OffsetDateTime::parse(s.trim(), &Rfc3339)
            .map(Timestamp)
            .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp like 2026-12-18T09:30:00+08:00 ({e})"))
    }

    pub fn unix(&self) -> i64 {
        self.0.unix_timestamp()
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0.format(&Rfc3339).map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse(&s).map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    pub id: String,
    pub name: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enterprise {
    pub id: String,
    pub name: Text,
    /// Other names: short forms, abbreviations, names in another language.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Words people use for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Text::is_blank")]
    pub summary: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Text>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub id: String,
    pub title: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
    pub starts_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Text::is_blank")]
    pub venue: Text,
    /// Seats; `None` is no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<u32>,
    /// Sign-up by chat is open (default true).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub signup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signup_closes_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Text::is_blank")]
    pub summary: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faq {
    pub id: String,
    pub questions: Vec<String>,
    pub answer: Text,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keywords: Vec<String>,
}

/// All knowledge, in the shape of a knowledge file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knowledge {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field: Vec<Field>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enterprise: Vec<Enterprise>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<Event>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faq: Vec<Faq>,
    /// The park's own concepts: new ones, or more words for a built-in one
    /// (`data/concepts.toml`) of the same id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub concept: Vec<Concept>,
}

impl Knowledge {
    pub fn len(&self) -> usize {
        self.field.len() + self.enterprise.len() + self.event.len() + self.faq.len() + self.concept.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sorts every kind by id, the order of exports and of the index.
    pub fn sort(&mut self) {
        self.field.sort_by(|a, b| a.id.cmp(&b.id));
        self.enterprise.sort_by(|a, b| a.id.cmp(&b.id));
        self.event.sort_by(|a, b| a.id.cmp(&b.id));
        self.faq.sort_by(|a, b| a.id.cmp(&b.id));
        self.concept.sort_by(|a, b| a.id.cmp(&b.id));
    }

    pub fn event(&self, id: &str) -> Option<&Event> {
        self.event.iter().find(|e| e.id == id)
    }

    pub fn field(&self, id: &str) -> Option<&Field> {
        self.field.iter().find(|f| f.id == id)
    }

    /// The knowledge as a TOML knowledge file (the import format), every
    /// kind sorted by id.
    ///
    /// Each item is serialized on its own (a one-element `[[kind]]` array)
    /// and the pieces are concatenated: the text is the same as serializing
    /// the whole document at once, but the time is linear. toml's document
    /// serializer writes a table's keys that follow a sub-table (a localized
    /// text is a sub-table) into side buffers and splices them into the
    /// output at the end with `String::insert_str`, each splice moving the
    /// rest of the document: quadratic on a large knowledge base.
    pub fn to_toml(&self) -> String {
        let mut out = format!(
            "# parkbot knowledge export: {} fields, {} enterprises, {} events, {} FAQs{}.\n# Import it with `parkbot import FILE`.\n\n",
            self.field.len(),
            self.enterprise.len(),
            self.event.len(),
            self.faq.len(),
            if self.concept.is_empty() {
                String::new()
            } else {
                format!(", {} concepts", self.concept.len())
            }
        );
        let mut first = true;
        append_kind(&mut out, &mut first, "field", &self.field, |f| &f.id);
        append_kind(&mut out, &mut first, "enterprise", &self.enterprise, |e| &e.id);
        append_kind(&mut out, &mut first, "event", &self.event, |e| &e.id);
        append_kind(&mut out, &mut first, "faq", &self.faq, |q| &q.id);
        append_kind(&mut out, &mut first, "concept", &self.concept, |c| &c.id);
        out
    }
}

/// A document of one `[[kind]]` element, borrowed.
struct Single<'a, T> {
    kind: &'static str,
    item: &'a T,
}

impl<T: Serialize> Serialize for Single<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(self.kind, std::slice::from_ref(self.item))?;
        m.end()
    }
}

/// Appends the items of one kind, sorted by id, each as its own `[[kind]]`
/// table, a blank line between tables.
fn append_kind<T: Serialize>(
    out: &mut String,
    first: &mut bool,
    kind: &'static str,
    items: &[T],
    id: impl Fn(&T) -> &String,
) {
    let mut sorted: Vec<&T> = items.iter().collect();
    sorted.sort_by(|a, b| id(a).cmp(id(b)));
    for item in sorted {
        if !std::mem::take(first) {
            out.push('\n');
        }
        let text = toml::to_string(&Single { kind, item }).expect("knowledge serializes to TOML");
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_follows_han_characters() {
        assert_eq!(Lang::detect("有做drone的公司吗"), Lang::Zh);
        assert_eq!(Lang::detect("drones?"), Lang::En);
        assert_eq!(Lang::detect("１２３"), Lang::En);
    }

    #[test]
    fn localized_text_falls_back() {
        let t: Text = toml::from_str::<toml::Table>("t = { en = \"hi\" }").unwrap()["t"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(t.get(Lang::Zh), "hi");
        let t = Text::Plain("同".into());
        assert_eq!(t.get(Lang::En), "同");
    }

    #[test]
    fn timestamps_keep_their_offset() {
        let t = Timestamp::parse("2026-12-18T09:30:00+08:00").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2026-12-18T09:30:00+08:00\"");
        assert!(Timestamp::parse("2026-12-18 09:30").is_err());
    }

    fn demo() -> Knowledge {
        let parsed = parse_str("park.toml", crate::assets::PARK_TOML, false).unwrap();
        validate_references(vec![parsed], &Default::default()).unwrap()
    }

    #[test]
    fn export_is_the_whole_document_serializer_text() {
        let k = demo();
        assert!(!k.field.is_empty() && !k.enterprise.is_empty() && !k.event.is_empty() && !k.faq.is_empty());
        let mut sorted = k.clone();
        sorted.sort();
        let whole = toml::to_string(&sorted).unwrap();
        let out = k.to_toml();
        let body = out.split_once("\n\n").unwrap().1;
        assert_eq!(body, whole);
    }

    #[test]
    fn export_parses_back_to_the_same_knowledge() {
        let k = demo();
        let parsed = parse_str("export.toml", &k.to_toml(), false).unwrap();
        let mut back = validate_references(vec![parsed], &Default::default()).unwrap();
        back.sort();
        let mut k = k;
        k.sort();
        assert_eq!(back, k);
    }

    #[test]
    fn export_of_empty_knowledge_is_only_the_header() {
        let out = Knowledge::default().to_toml();
        assert!(out.starts_with("# parkbot knowledge export: 0 fields"));
        assert!(parse_str("empty.toml", &out, false).is_ok());
    }
}
