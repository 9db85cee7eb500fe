//! The concept layer: a bilingual lexicon that maps the many ways of saying
//! a thing ("车位", "leave my car", "parking") to one concept (`parking`).
//!
//! The lexicon is data: `data/concepts.toml`, built into the binary, plus
//! the `[[concept]]` tables of the park's knowledge files (more words for a
//! built-in concept of the same id, or new concepts). The index marks every
//! knowledge item with the concepts its texts mention and every question
//! with the concepts it mentions, as extra terms (with postings of their
//! own) that BM25 weighs like words: a concept that many items mention
//! counts little.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::text::{Term, edit_distance, is_stop_en, normalize, terms};
use crate::knowledge::is_han;

/// One concept of the lexicon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Concept {
    pub id: String,
    #[serde(default, skip_serializing_if = "ConceptKind::is_topic")]
    pub kind: ConceptKind,
    /// The ways of saying it, Chinese and English together.
    pub words: Vec<String>,
}

/// What a concept is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConceptKind {
    /// A service, a facility, a situation: what people ask a park about.
    #[default]
    Topic,
    /// A kind of company: what it makes, whom it serves, what it is called.
    Industry,
    /// A kind of event: the question asks about events.
    Event,
}

impl ConceptKind {
    fn is_topic(&self) -> bool {
        *self == ConceptKind::Topic
    }
}

/// How a word of a concept is looked for.
/// How many words may stand after the first word of an English phrase of
/// three words or more and the rest of it.
const MAX_PHRASE_GAP: usize = 3;

#[derive(Debug, Clone, PartialEq)]
enum Pattern {
    /// Chinese (or mixed) text, found anywhere in the normalized text.
    Han(Vec<char>),
    /// One English word (stemmed), among the content words.
    Word(String),
    /// English words in a row (stemmed, stop words kept).
    Words(Vec<String>),
}

impl Pattern {
    fn new(word: &str) -> Option<Pattern> {
        let norm = normalize(word.trim());
        if norm.chars().any(is_han) {
            return Some(Pattern::Han(norm.chars().filter(|c| !c.is_whitespace()).collect()));
        }
        let all: Vec<String> = terms(&norm, true).into_iter().map(|t| t.text).collect();
        match all.len() {
            0 => None,
            1 => {
                let content = terms(&norm, false);
                (content.len() == 1).then(|| Pattern::Word(content[0].text.clone()))
            }
            _ => Some(Pattern::Words(all)),
        }
    }
}

impl Concept {
    /// What is wrong with this concept (its id is checked by the caller).
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.words.is_empty() {
            out.push("field `words` needs at least one word".into());
        }
        let mut seen = std::collections::HashSet::new();
        for w in &self.words {
            if w.trim().is_empty() {
                out.push("field `words` has an empty entry".into());
            } else if Pattern::new(w).is_none() {
                out.push(format!(
                    "field `words`: {w:?} never matches (a stop word or a single letter: write a phrase instead)"
                ));
            } else if !seen.insert(normalize(w.trim())) {
                out.push(format!("field `words` lists {w:?} twice"));
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConceptFile {
    #[serde(default)]
    concept: Vec<toml::Spanned<Concept>>,
}

/// Parses and checks a concept file (`[[concept]]` tables); every problem
/// is named with the file, line and concept.
pub fn parse(name: &str, text: &str) -> Result<Vec<Concept>, Vec<String>> {
    let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let file: ConceptFile = toml::from_str(text).map_err(|e| {
        let at = e.span().map(|s| format!(":{}", line(s.start))).unwrap_or_default();
        vec![format!("{name}{at}: {}", e.message().trim())]
    })?;
    let mut problems = Vec::new();
    let mut ids = std::collections::HashSet::new();
    let mut out = Vec::new();
    for c in file.concept {
        let at = line(c.span().start);
        let c = c.into_inner();
        let valid = !c.id.is_empty()
            && c.id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid {
            problems.push(format!(
                "{name}:{at}: concept `{}`: field `id` must be lowercase letters, digits and '-'",
                c.id
            ));
        }
        if !ids.insert(c.id.clone()) {
            problems.push(format!("{name}:{at}: concept `{}`: duplicate id", c.id));
        }
        for p in c.problems() {
            problems.push(format!("{name}:{at}: concept `{}`: {p}", c.id));
        }
        out.push(c);
    }
    if problems.is_empty() { Ok(out) } else { Err(problems) }
}

/// The built-in lexicon (`data/concepts.toml`).
pub fn builtin() -> &'static Result<Vec<Concept>, Vec<String>> {
    static BUILTIN: std::sync::LazyLock<Result<Vec<Concept>, Vec<String>>> =
        std::sync::LazyLock::new(|| parse("(built-in) data/concepts.toml", crate::assets::CONCEPTS_TOML));
    &BUILTIN
}

/// A concept found in a text, and where (char offsets of the normalized
/// text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub concept: u32,
    pub span: (usize, usize),
}

/// The concepts, ready to be found in questions and knowledge.
#[derive(Debug, Default)]
pub struct Lexicon {
    ids: Vec<String>,
    kinds: Vec<ConceptKind>,
    /// First character → (Chinese pattern, concept).
    han: HashMap<char, Vec<(Vec<char>, u32)>>,
    /// First word → (English words, concept); one-word patterns have one.
    en: HashMap<String, Vec<(Vec<String>, u32)>>,
    /// One-word English patterns of five letters or more, by first letter
    /// (for typos).
    long_words: HashMap<char, Vec<String>>,
}

impl Lexicon {
    /// The built-in concepts, extended by the park's (same id: more words;
    /// a new id: a new concept).
    pub fn new(builtin: &[Concept], park: &[Concept]) -> Lexicon {
        let mut lex = Lexicon::default();
        let mut by_id: HashMap<String, u32> = HashMap::new();
        for c in builtin.iter().chain(park) {
            let n = *by_id.entry(c.id.clone()).or_insert_with(|| {
                lex.ids.push(c.id.clone());
                lex.kinds.push(c.kind);
                (lex.ids.len() - 1) as u32
            });
            for w in &c.words {
                match Pattern::new(w) {
                    Some(Pattern::Han(chars)) => {
                        if let Some(&first) = chars.first() {
                            lex.han.entry(first).or_default().push((chars, n));
                        }
                    }
                    Some(Pattern::Word(word)) => {
                        if word.chars().count() >= 5 && word.bytes().all(|b| b.is_ascii_alphabetic()) {
                            let first = word.chars().next().unwrap_or(' ');
                            lex.long_words.entry(first).or_default().push(word.clone());
                        }
                        lex.en.entry(word.clone()).or_default().push((vec![word], n));
                    }
                    Some(Pattern::Words(words)) => {
                        lex.en.entry(words[0].clone()).or_default().push((words, n));
                    }
                    None => {}
                }
            }
        }
        for list in lex.long_words.values_mut() {
            list.sort();
            list.dedup();
        }
        lex
    }

    /// The lexicon of the built-in concepts and `park`'s.
    pub fn with_park(park: &[Concept]) -> Lexicon {
        match builtin() {
            Ok(b) => Lexicon::new(b, park),
            Err(problems) => {
                tracing::error!(problems = ?problems, "the built-in concept lexicon is invalid; using only the park's");
                Lexicon::new(&[], park)
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn id(&self, c: u32) -> &str {
        &self.ids[c as usize]
    }

    pub fn kind(&self, c: u32) -> ConceptKind {
        self.kinds[c as usize]
    }

    /// The concepts in a normalized text, given its content terms and all
    /// its terms (stop words kept).
    pub fn find(&self, norm: &str, content: &[Term], all: &[Term]) -> Vec<Found> {
        let mut out = Vec::new();
        if !self.han.is_empty() && norm.chars().any(is_han) {
            let chars: Vec<char> = norm.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                let Some(list) = self.han.get(c) else { continue };
                for (pattern, concept) in list {
                    if chars[i..].starts_with(pattern) {
                        out.push(Found {
                            concept: *concept,
                            span: (i, i + pattern.len()),
                        });
                    }
                }
            }
        }
        for t in content.iter().filter(|t| !t.han) {
            for (words, concept) in self.en.get(&t.text).into_iter().flatten() {
                if words.len() == 1 {
                    out.push(Found {
                        concept: *concept,
                        span: t.span,
                    });
                }
            }
        }
        for (j, t) in all.iter().enumerate().filter(|(_, t)| !t.han) {
            for (words, concept) in self.en.get(&t.text).into_iter().flatten() {
                let n = words.len();
                if n < 2 {
                    continue;
                }
                // The rest of the phrase at `k`.
                let rest_at = |k: usize| {
                    all.len() >= k + n - 1 && all[k..k + n - 1].iter().zip(&words[1..]).all(|(a, w)| &a.text == w)
                };
                // In a row, or (three words or more) with a few English words
                // after the first: "lights in our office went out",
                // "somewhere cheap to live".
                let gap = if n >= 3 { MAX_PHRASE_GAP } else { 0 };
                let at = (j + 1..=j + 1 + gap)
                    .take_while(|&k| k == j + 1 || all.get(k - 1).is_some_and(|x| !x.han))
                    .find(|&k| rest_at(k));
                if let Some(k) = at {
                    out.push(Found {
                        concept: *concept,
                        span: (t.span.0, all[k + n - 2].span.1),
                    });
                }
            }
        }
        // A word inside a longer phrase of another concept means the
        // phrase ("storage" in "cloud storage", "快递" in "快递配送").
        let inner = |f: &Found| {
            out.iter().any(|g| {
                g.concept != f.concept
                    && g.span.0 <= f.span.0
                    && f.span.1 <= g.span.1
                    && g.span.1 - g.span.0 > f.span.1 - f.span.0
            })
        };
        let keep: Vec<bool> = out.iter().map(|f| !inner(f)).collect();
        let mut keep = keep.into_iter();
        out.retain(|_| keep.next().unwrap_or(true));
        out
    }

    /// The concepts of one text (normalized here), each once.
    pub fn concepts_of(&self, text: &str) -> Vec<u32> {
        let norm = normalize(text);
        let mut found: Vec<u32> = self
            .find(&norm, &terms(&norm, false), &terms(&norm, true))
            .into_iter()
            .map(|f| f.concept)
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }

    /// A one-word English pattern one or two letters from `word` (a typo),
    /// with its concepts. Only for words of six letters or more.
    pub fn fuzzy(&self, word: &str) -> Option<(&str, Vec<u32>)> {
        let n = word.chars().count();
        if n < 6 || !word.bytes().all(|b| b.is_ascii_alphabetic()) || is_stop_en(word) {
            return None;
        }
        let max = if n >= 9 { 2 } else { 1 };
        let first = word.chars().next()?;
        let (_, best) = self
            .long_words
            .get(&first)?
            .iter()
            .filter(|w| w.len().abs_diff(word.len()) <= max)
            .filter_map(|w| edit_distance(word, w, max).map(|d| (d, w)))
            .min_by_key(|(d, _)| *d)?;
        let concepts = self
            .en
            .get(best)?
            .iter()
            .filter(|(w, _)| w.len() == 1)
            .map(|(_, c)| *c)
            .collect();
        Some((best.as_str(), concepts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lex() -> Lexicon {
        Lexicon::new(builtin().as_ref().expect("the built-in lexicon is valid"), &[])
    }

    fn ids(l: &Lexicon, text: &str) -> Vec<String> {
        l.concepts_of(text).into_iter().map(|c| l.id(c).to_string()).collect()
    }

    #[test]
    fn the_built_in_lexicon_is_valid_and_broad() {
        let l = lex();
        assert!(l.len() >= 60, "{}", l.len());
        for id in [
            "parking",
            "opening-hours",
            "repairs",
            "health",
            "pets",
            "parcels",
            "events",
            "drones",
        ] {
            assert!(l.ids.iter().any(|x| x == id), "{id}");
        }
    }

    #[test]
    fn both_languages_reach_one_concept() {
        let l = lex();
        assert!(ids(&l, "车位紧张吗").contains(&"parking".to_string()));
        assert!(ids(&l, "where can I leave my car?").contains(&"parking".to_string()));
        assert!(ids(&l, "Parking fees").contains(&"parking".to_string()));
        // "park" alone is the park, not parking.
        assert!(!ids(&l, "is the park nice").contains(&"parking".to_string()));
        assert!(ids(&l, "the tap is leaking").contains(&"repairs".to_string()));
        assert!(ids(&l, "空调坏了").contains(&"repairs".to_string()));
    }

    /// Words that read as another concept by accident: a game jam is no
    /// jammed door, a stiff hand (手不灵活) is not a broken one (不灵).
    #[test]
    fn look_alike_words_keep_their_own_meaning() {
        let l = lex();
        let has = |text: &str, id: &str| ids(&l, text).iter().any(|x| x == id);
        assert!(!has("the 48-hour game jam", "repairs"));
        assert!(has("the door is jammed", "repairs"));
        assert!(has("paper jam in the printer", "repairs"));
        assert!(!has("我爸中风了手不灵活", "repairs"));
        assert!(has("我爸中风了手不灵活", "rehab-mobility"));
        assert!(has("门禁不灵了", "repairs"));
        assert!(has("能牵狗进来逛吗", "pets"));
        assert!(has("想租个近点的房子", "housing"));
        // Mice in the kitchen are pests; MICE as a trade is said with it.
        assert!(has("there are mice in the kitchen", "pest-control"));
        assert!(!has("there are mice in the kitchen", "events-exhibition-services"));
        assert!(has("a mice industry agency", "events-exhibition-services"));
    }

    #[test]
    fn the_lexicon_covers_common_industries_and_services() {
        let l = lex();
        assert!(l.len() >= 180, "{}", l.len());
        for (text, id) in [
            ("做汽车零部件的公司", "automotive"),
            ("wastewater treatment companies", "water-treatment"),
            ("有做光模块的吗", "photonics-lasers"),
            ("合同到期想搬走", "move-out"),
            ("园区有ATM吗", "shops-banks"),
            ("外籍员工怎么办工作签证", "foreign-staff"),
        ] {
            assert!(ids(&l, text).contains(&id.to_string()), "{text}: {:?}", ids(&l, text));
        }
        // Words with an everyday second meaning are left out.
        for (text, id) in [
            ("安全出口在哪", "import-export-trade"),
            ("原产地产品", "real-estate-property"),
            ("who led the event", "displays-optoelectronics"),
        ] {
            assert!(!ids(&l, text).contains(&id.to_string()), "{text}: {:?}", ids(&l, text));
        }
    }

    #[test]
    fn a_park_extends_a_concept_and_adds_new_ones() {
        let park = vec![
            Concept {
                id: "parking".into(),
                kind: ConceptKind::Topic,
                words: vec!["P2楼".into()],
            },
            Concept {
                id: "tea-house".into(),
                kind: ConceptKind::Topic,
                words: vec!["茶室".into(), "tea room".into()],
            },
        ];
        let l = Lexicon::new(builtin().as_ref().unwrap(), &park);
        assert_eq!(ids(&l, "p2楼怎么走"), vec!["parking"]);
        assert!(ids(&l, "is there a tea room").contains(&"tea-house".to_string()));
        assert_eq!(l.len(), lex().len() + 1);
    }

    #[test]
    fn a_long_phrase_may_have_a_few_words_after_its_first() {
        let l = lex();
        assert!(ids(&l, "the lights in our office went out").contains(&"repairs".to_string()));
        assert!(ids(&l, "looking for somewhere cheap to live").contains(&"housing".to_string()));
        // Not more than a few, and two-word phrases only in a row.
        assert!(!ids(&l, "the lights were fine but then everybody just went out").contains(&"repairs".to_string()));
        assert!(!ids(&l, "set the printer up").contains(&"settle-in".to_string()));
    }

    #[test]
    fn typos_in_longer_words_find_the_concept() {
        let l = lex();
        let (word, concepts) = l.fuzzy("kindergarden").unwrap();
        assert_eq!(word, "kindergarten");
        assert!(concepts.iter().any(|&c| l.id(c) == "family-children"));
        assert!(l.fuzzy("house").is_none());
    }

    #[test]
    fn broken_concepts_are_refused_with_their_line() {
        let e = parse("c.toml", "[[concept]]\nid = \"A b\"\nwords = []\n").unwrap_err();
        assert!(
            e.iter().any(|p| p.starts_with("c.toml:1: concept `A b`: field `id`")),
            "{e:?}"
        );
        assert!(e.iter().any(|p| p.contains("at least one word")), "{e:?}");
        let e = parse(
            "c.toml",
            "[[concept]]\nid = \"x\"\nwords = [\"the\", \"停车\", \"停车\"]\n",
        )
        .unwrap_err();
        assert!(e.iter().any(|p| p.contains("\"the\" never matches")), "{e:?}");
        assert!(e.iter().any(|p| p.contains("twice")), "{e:?}");
        let e = parse(
            "c.toml",
            "[[concept]]\nid = \"x\"\nkind = \"place\"\nwords = [\"a b\"]\n",
        )
        .unwrap_err();
        assert!(e[0].contains("c.toml:3"), "{e:?}");
    }
}
