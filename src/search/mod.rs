//! The retrieval engine: an in-memory index over fields, enterprises, events
//! and FAQs, ranked with BM25 over weighted zones (names and aliases above
//! tags, keywords and FAQ questions above summaries), with typo tolerance
//! for names and tags, phrase matching for field aliases and intent words,
//! and the concept lexicon (`concepts`): a question and an item that
//! mention the same concept match without sharing a word. An item's score
//! grows with the share of the question it covers. Dates in questions are
//! read by `when`.
//!
//! The index is rebuilt from the store's knowledge at start-up and after an
//! import; it holds positions into that `Knowledge`, never copies of it.

pub mod concepts;
pub mod text;
pub mod when;

use std::collections::HashMap;

use crate::knowledge::{Knowledge, Text};
use concepts::{ConceptKind, Found, Lexicon};
use text::{Term, edit_distance, normalize, terms};

/// A knowledge item, by kind and position in the `Knowledge` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Item {
    Field(usize),
    Enterprise(usize),
    Event(usize),
    Faq(usize),
}

const NAME: u8 = 1;
/// Tags and aliases.
const TAG: u8 = 2;
const BODY: u8 = 4;
/// FAQ questions.
const QUESTION: u8 = 8;
/// A concept only an FAQ's stored question mentions, beside tags about
/// something else: no rank bonus (see `incidental_question_concepts`).
const INCIDENTAL: u8 = 16;

/// Zone weights: how much one occurrence counts.
const W_NAME: f32 = 4.0;
const W_ALIAS: f32 = 2.0;
const W_BODY: f32 = 1.0;
const W_PLACE: f32 = 0.4;
/// Extra weight (times idf) for a term found in a name or title.
const NAME_BONUS: f32 = 1.5;
/// Extra score when the whole name or title stands in the question.
const FULL_NAME_BONUS: f32 = 6.0;
/// A Chinese question must have this share of its characters found in an
/// item that it names in part (else the name is a namesake).
const MIN_NAMESAKE_SHARE: f32 = 0.5;
/// Words that ask about an item rather than say what the question is about
/// ("where is X located", "X怎么联系"): they do not make a partial name a
/// namesake.
#[rustfmt::skip]
const ASK_ABOUT_EN: &[&str] = &[
    "located", "location", "address", "contact", "phone", "email", "website", "site", "info",
    "information", "detail", "details", "make", "makes", "made", "making", "doing", "work", "works",
    "working", "product", "products", "service", "services", "offer", "offers", "sell", "sells",
    "build", "builds", "building", "floor", "office", "find", "reach", "based", "call", "number",
    "name", "called", "mean", "say", "venue", "time", "date", "start", "starts", "begin", "held",
    "happen", "cost", "price", "open", "exactly", "kind", "type", "sort", "good", "best", "new",
    "team", "staff", "person", "talk", "speak", "up", "to", "go", "visit",
    "ceo", "founder", "founders", "founded", "boss", "owner", "manager", "employees", "history",
    "established", "since", "year", "years", "revenue", "customers", "clients", "partners",
    "review", "reviews", "rating", "reputation", "hours", "jobs", "job", "career", "careers",
    "wechat", "official", "account", "brochure", "catalogue", "catalog", "demo", "sample",
    "samples", "showroom", "offices", "branch", "headquarters", "hq", "near", "nearby", "far",
    "directions", "register", "join", "apply", "cooperate", "cooperation", "partner",
    "partnership", "collaborate", "invest", "tour", "appointment", "meeting", "meet", "quote",
    "pricing", "prices", "case", "cases", "reference", "references", "legit", "reliable",
];
#[rustfmt::skip]
const ASK_ABOUT_ZH: &[&str] = &[
    "在哪", "哪里", "哪儿", "位置", "地址", "几楼", "哪栋", "几号", "联系", "电话", "邮箱", "干嘛", "干啥",
    "做啥", "是做", "做的", "怎样", "靠谱", "介绍", "情况", "了解", "产品", "业务", "主营", "简介", "官网",
    "网站", "时候", "哪家", "那家", "这家", "找谁", "开始", "结束", "地点", "时间", "举办", "报名", "门票",
    "多大", "规模", "办公", "楼层", "厉害", "咋样", "怎么样", "老板", "创始人", "负责人", "员工", "成立", "历史",
    "客户", "合作", "公众号", "微信", "展厅", "怎么去", "附近", "口碑", "评价", "实力", "上市", "估值", "报价",
    "价格", "收费", "案例", "样品", "演示", "试用", "招人", "招聘", "参观", "拜访", "预约",
];
/// Characters that mostly make grammar, not content (for telling a word
/// from the edge of two words in a namesake's question).
const ZH_GRAMMAR_CHARS: &str = "一二三四五六七八九十几多少家公司主要做什么有没能会想去来到把被让给对从向往个些点样用可以得着过该就才再又很太最更比所为因而但如果不怎哪谁啥";
/// Characters that say nothing of a subject on their own: particles,
/// pronouns, and where-and-how words of asking about a company.
const ZH_LONE_STOP_CHARS: &str =
    "的了吗呢吧啊呀哦嘛是在和与及或也都还等请问您你我他她它们这那里边上下中楼栋层号座门址找";
/// A partial name is a namesake when the rest of the question says this
/// many times as much (in Chinese characters) as the name part, and the
/// item matches none of it.
const NAMESAKE_REST_RATIO: f32 = 1.0;
/// What a namesake keeps of its score.
const NAMESAKE_FACTOR: f32 = 0.25;
/// Extra score when a whole tag, alias or keyword stands in the question.
const WHOLE_TAG_BONUS: f32 = 1.5;
/// A fuzzy (typo) match counts this much of an exact one.
const FUZZY_FACTOR: f32 = 0.75;
const K1: f32 = 1.2;
const B: f32 = 0.3;
/// Terms rarer than this (inverse document frequency) are informative.
pub const MIN_IDF: f32 = 1.0;
const TOP_K: usize = 12;
/// Share of what the question says (by idf) that an answer must match.
const MIN_COVERAGE: f32 = 0.2;
/// The same for an answer that matched only a word of an FAQ question.
const MIN_COVERAGE_QUESTION: f32 = 0.35;
/// The same for an answer found through one concept of its name or tags.
const MIN_COVERAGE_CONCEPT: f32 = 0.4;
/// A best match that is strong (a concept or word of the question in its
/// name, tags or stored questions) and scores at least this many times the
/// next one is confident with less coverage: the rest of the question is
/// words the knowledge does not know ("my gran can't hear the tv properly").
const CLEAR_LEAD: f32 = 1.6;
/// The least coverage for a clear lead.
const MIN_COVERAGE_LEAD: f32 = 0.25;
/// Two informative terms (words or concepts, anywhere in the item) that
/// cover this much of the question make a match confident: the question
/// describes the item, though in other words than its name and tags.
const MIN_COVERAGE_DESCRIBED: f32 = 0.8;

#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    tf: f32,
    zones: u8,
}

#[derive(Debug)]
struct Doc {
    item: Item,
    len: f32,
    /// Normalized full names or titles (every language).
    names: Vec<String>,
    /// Tags and aliases, matched whole for confidence.
    tags: Vec<Phrase>,
    /// Each tag's terms, to tell whether it says something.
    tag_terms: Vec<Vec<String>>,
    /// Whether each tag holds an informative term (set once the index is
    /// complete).
    tag_informative: Vec<bool>,
    /// The Chinese characters of all its text, sorted (for telling a
    /// namesake by what the rest of a question says).
    han: Vec<char>,
}

/// A phrase to look for in questions (a field alias, an intent word).
#[derive(Debug, Clone)]
pub struct Phrase {
    /// Normalized text, for phrases with Chinese characters.
    norm: String,
    /// Stemmed words, for the others.
    words: Vec<String>,
    /// Whether it is matched as text, not words: it holds a Chinese
    /// character, or it is a command ("/my" is not the word "my").
    han: bool,
    /// Its length in characters.
    chars: usize,
    /// Letters, digits and `/` only, for whole-question matches.
    bare: String,
}

/// Letters, digits and `/` of `s`: what a whole-question match compares.
fn bare(s: &str) -> String {
    s.chars().filter(|c| c.is_alphanumeric() || *c == '/').collect()
}

impl Phrase {
    pub fn new(s: &str) -> Phrase {
        let norm = normalize(s.trim());
        let words = terms(&norm, true).into_iter().map(|t| t.text).collect();
        Phrase {
            han: norm.chars().any(crate::knowledge::is_han) || norm.starts_with('/'),
            chars: norm.chars().count(),
            bare: bare(&norm),
            norm,
            words,
        }
    }

    /// Whether `inner` stands in this phrase: as a whole when `more` is
    /// false, with more around it when `more` is true. Chinese by
    /// characters, English by whole words.
    fn contains_phrase(&self, inner: &Phrase, more: bool) -> bool {
        if self.has_han() || inner.has_han() {
            !inner.norm.is_empty()
                && (!more || self.norm.len() > inner.norm.len())
                && self.norm.contains(inner.norm.as_str())
        } else {
            let n = inner.words.len();
            n > 0 && (!more || self.words.len() > n) && self.words.windows(n).any(|w| w == inner.words.as_slice())
        }
    }

    /// Whether this phrase holds `inner` and more ("面料展" holds "面料",
    /// "fabric expo" holds "fabric").
    fn holds(&self, inner: &Phrase) -> bool {
        self.contains_phrase(inner, true)
    }

    fn has_han(&self) -> bool {
        self.han
    }

    /// Whether this phrase is `name` or a part of it ("火星" of 火星基地沉浸馆,
    /// "mars" of "mars base experience").
    fn within(&self, name: &Phrase) -> bool {
        name.contains_phrase(self, false)
    }

    /// Char spans where the phrase stands in `q`.
    pub fn find(&self, q: &Query) -> Vec<(usize, usize)> {
        let mut spans = Vec::new();
        if self.norm.is_empty() {
            return spans;
        }
        if self.has_han() || self.words.is_empty() {
            // Most phrases are not there: one quick search says so.
            if !q.norm.contains(self.norm.as_str()) {
                return spans;
            }
            for byte in occurrences(&q.norm, &self.norm) {
                // A command ends where its word ends ("/my", not "/mybook").
                let after = q.norm[byte + self.norm.len()..].chars().next();
                if self.norm.starts_with('/') && after.is_some_and(|c| c.is_ascii_alphanumeric()) {
                    continue;
                }
                let start = q.norm[..byte].chars().count();
                spans.push((start, start + self.chars));
            }
        } else {
            let n = self.words.len();
            for w in q.all_terms.windows(n) {
                if w.iter().zip(&self.words).all(|(t, p)| &t.text == p) {
                    spans.push((w[0].span.0, w[n - 1].span.1));
                }
            }
        }
        spans
    }
}

/// A list of phrases; matches when any stands in the question.
#[derive(Debug, Clone, Default)]
pub struct PhraseSet(Vec<Phrase>);

impl PhraseSet {
    pub fn new<S: AsRef<str>>(items: &[S]) -> PhraseSet {
        PhraseSet(items.iter().map(|s| Phrase::new(s.as_ref())).collect())
    }

    pub fn find(&self, q: &Query) -> Vec<(usize, usize)> {
        self.0.iter().flat_map(|p| p.find(q)).collect()
    }

    /// Whether the whole question is one of the phrases (give or take
    /// punctuation and spaces).
    pub fn is_whole(&self, q: &Query) -> bool {
        self.0.iter().any(|p| !p.bare.is_empty() && p.bare == q.bare)
    }
}

/// An analysed question.
#[derive(Debug, Clone)]
pub struct Query {
    pub norm: String,
    /// Letters, digits and `/` of `norm` (for whole-question phrases).
    pub bare: String,
    /// Content terms (stop words removed), made when first asked for: a
    /// message that is a command, a dialog's answer or a question already
    /// understood needs only the phrases.
    terms: std::sync::OnceLock<Vec<Term>>,
    /// Every term, stop words included (for phrases).
    pub all_terms: Vec<Term>,
}

/// A word that is part of a concept's phrase counts this much.
const PHRASE_WORD_FACTOR: f32 = 0.5;
/// A concept's match counts this much of a shared word's (below the fuzzy
/// factor: a concept in a name does not make the name "named").
const CONCEPT_FACTOR: f32 = 1.0;
/// A concept found in a name or title weighs as much as in a tag.
const W_CONCEPT_MAX: f32 = W_ALIAS;
/// The part of an item's score that does not depend on how much of the
/// question it covers (the rest grows with the share covered).
const COORD_BASE: f32 = 0.4;
/// Extra weight (times idf) for a concept found in a name, tag or FAQ
/// question: what the item is about, not a word in passing.
const CONCEPT_TAG_BONUS: f32 = 1.5;

impl Query {
    /// The question's words; [`Index::expand`] adds the concepts it
    /// mentions.
    pub fn new(text: &str) -> Query {
        let norm = normalize(text);
        Query {
            terms: std::sync::OnceLock::new(),
            all_terms: terms(&norm, true),
            bare: bare(&norm),
            norm,
        }
    }

    /// The content terms (stop words removed), and the concepts
    /// [`Index::expand`] found.
    pub fn terms(&self) -> &[Term] {
        self.terms.get_or_init(|| terms(&self.norm, false))
    }

    fn terms_mut(&mut self) -> &mut Vec<Term> {
        self.terms();
        self.terms.get_mut().expect("made just now")
    }

    /// Whether the question has no words at all (only punctuation, emoji…).
    pub fn is_blank(&self) -> bool {
        self.all_terms.is_empty()
    }

    /// The concept terms of the question.
    pub fn concepts(&self) -> impl Iterator<Item = &Term> {
        self.terms().iter().filter(|t| t.concept.is_some())
    }

    /// The same question without the terms inside `spans`.
    pub fn without(&self, spans: &[(usize, usize)]) -> Query {
        Query {
            norm: self.norm.clone(),
            bare: self.bare.clone(),
            terms: self
                .terms()
                .iter()
                .filter(|t| !inside(t.span, spans))
                .cloned()
                .collect::<Vec<_>>()
                .into(),
            all_terms: self.all_terms.clone(),
        }
    }
}

/// One ranked result.
#[derive(Debug, Clone)]
pub struct Hit {
    pub item: Item,
    pub score: f32,
    /// The match is good enough to answer with: an informative word in the
    /// name, a whole tag, or two informative words anywhere, and together
    /// they cover enough of what the question says; or a concept of the
    /// question is in the name, a tag or an FAQ question and covers more.
    pub confident: bool,
    /// The whole name, title or an alias stands in the question.
    pub full_name: bool,
    /// Informative terms (words and concepts) of the question found in this item.
    pub terms: usize,
    /// An informative word is in the name, a whole tag is in the question,
    /// or a concept of the question is in the name, a tag or an FAQ question.
    pub strong: bool,
    /// An informative word (not a concept) is in the name or title.
    pub named: bool,
    /// Share (by idf) of what the question says that this item matched.
    pub coverage: f32,
}

/// What a question's terms found in one doc.
#[derive(Debug, Default)]
struct Evidence {
    /// Informative terms matched.
    terms: usize,
    /// Of them, words (not concepts).
    words: usize,
    /// One of them is in the name or title.
    named: bool,
    /// One of them is in an FAQ question.
    asked: bool,
    /// An informative concept is in a name, tag or FAQ question.
    concept_strong: bool,
    /// Sum of the idf of all matched terms.
    found: f32,
    /// Matched terms (words or concepts) found outside the name.
    outside_name: usize,
    /// Where the matched terms stand in the question.
    spans: Vec<(usize, usize)>,
}

/// A question term with its postings.
struct Resolved<'a> {
    postings: &'a [Posting],
    factor: f32,
    /// How many items the term tells apart (see `Index::concept_df`).
    df: usize,
    idf: f32,
    concept: bool,
    /// An English word that asks about an item ("make", "located"), not
    /// what the question is about.
    ask: bool,
    /// Where the term is said (a concept may be said in several places).
    spans: Vec<(usize, usize)>,
}

impl Resolved<'_> {
    /// Whether `span` lies inside one of the places this term is said.
    fn covers(&self, span: (usize, usize)) -> bool {
        inside(span, &self.spans)
    }
}

/// The index over one `Knowledge`.
#[derive(Debug, Default)]
pub struct Index {
    docs: Vec<Doc>,
    postings: HashMap<String, Vec<Posting>>,
    avg_len: f32,
    /// Name, alias, tag and keyword words by first character, for typo
    /// tolerance.
    fuzzy: HashMap<char, Vec<String>>,
    /// For each field (same order as `Knowledge::field`): its name, aliases
    /// and keywords.
    fields: Vec<PhraseSet>,
    /// Event tags and aliases that hold a field's phrase and more (面料展
    /// holds 面料): an event's short name, not the field, when said whole.
    event_short_names: Vec<Phrase>,
    /// For each field: the concepts its name, aliases and keywords mention.
    field_concepts: Vec<Vec<u32>>,
    /// For each concept of the lexicon: the items that mention it.
    concept_postings: Vec<Vec<Posting>>,
    /// For each concept: how many items it tells apart, for its idf. A
    /// service or situation (a topic) said only in a company's description
    /// ("为医院提供…" in a health park) does not make it common.
    concept_df: Vec<usize>,
    /// The concept lexicon: built-in concepts and the park's.
    pub lexicon: Lexicon,
    /// Two neighbouring words of a name, alias or tag written as one
    /// ("timerift" for Time Rift, "gamejam"), by that one word (stemmed),
    /// when the knowledge does not have it as a word of its own: the two
    /// words, stemmed.
    joined: HashMap<String, [String; 2]>,
    /// Places of `data/places.txt` that the knowledge never mentions: a
    /// question that names one asks about somewhere else.
    elsewhere: PhraseSet,
    /// Words that hold a place's name and are no place ("东西安全" holds
    /// 西安, "复合肥" 合肥): `!` lines of `data/places.txt`.
    not_places: PhraseSet,
}

struct DocBuilder<'a> {
    tf: HashMap<String, (f32, u8)>,
    len: f32,
    tags: Vec<Phrase>,
    names: Vec<String>,
    lexicon: &'a Lexicon,
    concepts: HashMap<u32, (f32, u8)>,
    /// Only industry concepts (a field is a kind of company, not a service).
    industries_only: bool,
    /// A company: a service or situation word in its name is part of the
    /// name, not what it is about ("HeartPath Medical" is no clinic).
    company: bool,
    han: Vec<char>,
}

impl DocBuilder<'_> {
    fn tag(&mut self, text: &str) {
        self.tags.push(Phrase::new(text));
        self.add(text, TAG, W_ALIAS);
    }

    /// Another name (an alias): a name, weighed as a tag.
    fn alias(&mut self, text: &str) {
        self.tags.push(Phrase::new(text));
        self.names.push(normalize(text.trim()));
        self.add(text, NAME, W_ALIAS);
    }

    /// Where an item is (a location, a venue): its words, but no
    /// concepts. An address says where, not what the item is about:
    /// "Block A" is not a blocked pipe, 停车场旁 not parking.
    fn add_place(&mut self, t: &Text) {
        for s in t.all() {
            self.add_words(s, BODY, W_PLACE, false);
        }
    }

    fn add(&mut self, text: &str, zone: u8, weight: f32) {
        self.add_words(text, zone, weight, true);
    }

    fn add_words(&mut self, text: &str, zone: u8, weight: f32, concepts: bool) {
        let norm = normalize(text);
        self.han.extend(norm.chars().filter(|&c| crate::knowledge::is_han(c)));
        let content = terms(&norm, false);
        if concepts && !self.lexicon.is_empty() {
            let all = terms(&norm, true);
            let mut found: Vec<u32> = self
                .lexicon
                .find(&norm, &content, &all)
                .into_iter()
                .map(|f| f.concept)
                .collect();
            found.sort_unstable();
            found.dedup();
            if self.industries_only {
                found.retain(|&c| self.lexicon.kind(c) == ConceptKind::Industry);
            }
            for c in found {
                let (zone, weight) = if self.company && zone & NAME != 0 && self.lexicon.kind(c) == ConceptKind::Topic {
                    (BODY, W_BODY)
                } else {
                    (zone, weight)
                };
                // Once is enough: a concept said often is not more relevant.
                let e = self.concepts.entry(c).or_insert((0.0, 0));
                e.0 = e.0.max(weight.min(W_CONCEPT_MAX));
                e.1 |= zone;
            }
        }
        for t in content {
            let e = self.tf.entry(t.text).or_insert((0.0, 0));
            e.0 += weight;
            e.1 |= zone;
            self.len += weight;
        }
    }

    fn add_text(&mut self, t: &Text, zone: u8, weight: f32) {
        for s in t.all() {
            self.add(s, zone, weight);
        }
    }

    /// A company's name. A word for a kind of company that ends it
    /// ("赛博猫工作室", "CyberCat Studio") is what the company is, said by
    /// many other names and questions ("我们工作室想搬过来"): it counts as
    /// a word of the description, not of the name.
    fn add_name(&mut self, t: &Text) {
        for s in t.all() {
            let norm = normalize(s.trim());
            let kind = COMPANY_KINDS.iter().find(|k| {
                norm.strip_suffix(**k).is_some_and(|stem| {
                    let stem = stem.trim_end();
                    stem.chars().count() >= 2
                        && (k.chars().next().is_some_and(crate::knowledge::is_han) || stem.len() < norm.len() - k.len())
                })
            });
            match kind {
                Some(k) => {
                    self.add(norm[..norm.len() - k.len()].trim_end(), NAME, W_NAME);
                    self.add(k, BODY, W_BODY);
                }
                None => self.add(s, NAME, W_NAME),
            }
        }
    }

    /// Aliases (names) and keywords (tags) of an item.
    fn aliases_keywords(&mut self, aliases: &[String], keywords: &[String]) {
        aliases.iter().for_each(|a| self.alias(a));
        keywords.iter().for_each(|k| self.tag(k));
    }
}

/// Words before a place that make it where the asker comes from.
const ORIGIN_WORDS: &[&str] = &[
    "之前在",
    "以前在",
    "原来在",
    "现在在",
    "目前在",
    "我们在",
    "从",
    "来自",
    "from",
    "based in",
    "currently in",
];

/// Words for a kind of company that end many companies' names
/// (normalized: lower case).
const COMPANY_KINDS: &[&str] = &[
    "有限公司",
    "工作室",
    "公司",
    "集团",
    "studios",
    "studio",
    "company",
    "ltd",
    "ltd.",
    "inc",
    "inc.",
    "group",
];

/// Kinds of places that end a place's name: after part of an item's name,
/// they name another place (a namesake).
const PLACE_KINDS_ZH: &[&str] = &[
    "公园",
    "景区",
    "风景区",
    "动物园",
    "植物园",
    "海洋馆",
    "水族馆",
    "博物馆",
    "保护区",
    "湿地",
    "古镇",
    "寺庙",
    "森林公园",
];

/// Days a question may name to say when ("a room on thursday"), not what
/// about; unknown to the knowledge, they do not count as unmatched words.
const DAY_WORDS: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "today",
    "tonight",
    "tomorrow",
    "yesterday",
];

/// Whether the word starting at char `at` of `norm` follows a number
/// ("20 person", "30-people"): the unit of a quantity, which says how many,
/// not what about.
fn after_number(norm: &str, at: usize) -> bool {
    norm.chars()
        .take(at)
        .filter(|c| !matches!(c, ' ' | '-'))
        .last()
        .is_some_and(|c| c.is_ascii_digit())
}

/// A word that only an FAQ's stored questions have (not its tags, not its
/// answer) is how that question happened to be put (来上班 in "可以带宠物来上班吗"):
/// it still matches, weighed as the answer's words are, not as the tags'.
fn incidental_question_words(tf: &mut HashMap<String, (f32, u8)>) {
    for (w, zones) in tf.values_mut() {
        if *zones == QUESTION {
            *w *= W_BODY / W_ALIAS;
        }
    }
}

/// An FAQ is about what its tags say: a concept that only its stored
/// questions mention, beside tags that mention others, is an incidental
/// word of that wording ("get in" in "How do visitors get in?", 上班 in
/// "can I bring my dog to work"), weighed as the answer's words are and not
/// as what the FAQ is about (it still shows that the FAQ is asked about
/// it, for confidence; only its rank bonus goes). An FAQ whose tags mention no concept keeps its
/// questions' concepts whole.
fn incidental_question_concepts(concepts: &mut HashMap<u32, (f32, u8)>) {
    if !concepts.values().any(|&(_, z)| z & TAG != 0) {
        return;
    }
    for (_, zones) in concepts.values_mut() {
        if *zones & QUESTION != 0 && *zones & (TAG | NAME) == 0 {
            *zones |= INCIDENTAL;
        }
    }
}

/// The share of the characters `han` that `spans` cover (1 when there are
/// none).
fn han_share(han: &[usize], spans: &[(usize, usize)]) -> f32 {
    if han.is_empty() {
        return 1.0;
    }
    let covered = han
        .iter()
        .filter(|&&c| spans.iter().any(|&(a, b)| a <= c && c < b))
        .count();
    covered as f32 / han.len() as f32
}

/// Byte offsets where `needle` stands in `hay`. Needles here are short
/// (a name, a tag, a phrase) and mostly absent: finding their first
/// character, then comparing, is cheaper than setting up a substring
/// searcher for each.
/// Like `str::match_indices`, the matches do not overlap.
fn occurrences<'a>(hay: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    let first = needle.chars().next();
    let mut free_from = 0;
    hay.match_indices(move |c| Some(c) == first)
        .map(|(at, _)| at)
        .filter(move |&at| {
            let found = at >= free_from && !needle.is_empty() && hay[at..].starts_with(needle);
            if found {
                free_from = at + needle.len();
            }
            found
        })
}

/// What a question says besides names, computed once per search when a
/// partial name needs judging: its characters and the spans that only ask
/// about an item (asking words, concepts other than industries).
struct Asking<'a> {
    chars: &'a [char],
    neutral: Vec<(usize, usize)>,
}

impl<'a> Asking<'a> {
    fn new(q: &Query, chars: &'a [char], lexicon: &Lexicon) -> Asking<'a> {
        let mut neutral: Vec<(usize, usize)> = q
            .concepts()
            .filter(|t| t.concept.is_some_and(|c| lexicon.kind(c) != ConceptKind::Industry))
            .map(|t| t.span)
            .collect();
        for w in ASK_ABOUT_ZH {
            for at in occurrences(&q.norm, w) {
                let start = q.norm[..at].chars().count();
                neutral.push((start, start + w.chars().count()));
            }
        }
        Asking { chars, neutral }
    }
}

/// The asking words, stemmed as question terms are.
fn ask_about_en() -> &'static [String] {
    static STEMMED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    STEMMED.get_or_init(|| ASK_ABOUT_EN.iter().map(|w| text::stem(w)).collect())
}

/// Whether character `c` lies in one of `spans`.
fn at(c: usize, spans: &[(usize, usize)]) -> bool {
    spans.iter().any(|&(a, b)| a <= c && c < b)
}

/// Whether `s` lies inside one of `spans`.
pub fn inside(s: (usize, usize), spans: &[(usize, usize)]) -> bool {
    spans.iter().any(|&(a, b)| a <= s.0 && s.1 <= b)
}

/// Whether `s` lies within one of `spans` (or is covered by adjacent ones).
fn in_spans(s: (usize, usize), spans: &[(usize, usize)]) -> bool {
    (s.0..s.1).all(|c| at(c, spans))
}

/// Whether a Chinese name of four or more characters stands in `text` with
/// one character written wrong ("慧眼只检" for 慧眼质检).
fn han_name_typo(text: &[char], name: &str) -> bool {
    let Some(first) = name.chars().next() else {
        return false;
    };
    let n = name.chars().count();
    if n < 4 || !text.contains(&first) || !name.chars().all(crate::knowledge::is_han) {
        return false;
    }
    text.windows(n)
        .any(|w| w[0] == first && w.iter().zip(name.chars()).filter(|(a, b)| **a != *b).count() == 1)
}

/// Whether `name` stands in `text` (both normalized); a name that begins
/// or ends with a Latin letter or digit must not be part of a longer word.
fn name_in(text: &str, name: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    occurrences(text, name).any(|at| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        let first = name.chars().next();
        let last = name.chars().next_back();
        let glued = (word(first) && word(before)) || (word(last) && word(after));
        !glued
    })
}

impl Index {
    pub fn build(k: &Knowledge) -> Index {
        let lexicon = Lexicon::with_park(&k.concept);
        let mut index = Index {
            concept_postings: vec![Vec::new(); lexicon.len()],
            lexicon,
            ..Default::default()
        };
        for (i, f) in k.field.iter().enumerate() {
            index.add(Item::Field(i), &f.name, |d| {
                d.add_text(&f.name, NAME, W_NAME);
                f.aliases.iter().for_each(|a| d.tag(a));
                f.keywords.iter().for_each(|a| d.tag(a));
            });
            let mut phrases: Vec<&str> = f.name.all();
            phrases.extend(f.aliases.iter().map(String::as_str));
            phrases.extend(f.keywords.iter().map(String::as_str));
            let mut concepts: Vec<u32> = phrases
                .iter()
                .flat_map(|p| index.lexicon.concepts_of(p))
                .filter(|&c| index.lexicon.kind(c) == ConceptKind::Industry)
                .collect();
            concepts.sort_unstable();
            concepts.dedup();
            index.field_concepts.push(concepts);
            index.fields.push(PhraseSet::new(&phrases));
        }
        for (i, e) in k.enterprise.iter().enumerate() {
            index.add(Item::Enterprise(i), &e.name, |d| {
                d.add_name(&e.name);
                d.aliases_keywords(&e.aliases, &e.keywords);
                e.tags.iter().for_each(|t| d.tag(t));
                d.add_text(&e.summary, BODY, W_BODY);
                if let Some(l) = &e.location {
                    d.add_place(l);
                }
            });
        }
        for (i, e) in k.event.iter().enumerate() {
            index.add(Item::Event(i), &e.title, |d| {
                d.add_text(&e.title, NAME, W_NAME);
                d.aliases_keywords(&e.aliases, &e.keywords);
                e.tags.iter().for_each(|t| d.tag(t));
                d.add_text(&e.summary, BODY, W_BODY);
                d.add_place(&e.venue);
            });
        }
        for (i, f) in k.faq.iter().enumerate() {
            index.add(Item::Faq(i), &Text::default(), |d| {
                f.questions.iter().for_each(|q| d.add(q, QUESTION, W_ALIAS));
                d.aliases_keywords(&f.aliases, &f.keywords);
                f.tags.iter().for_each(|t| d.tag(t));
                d.add_text(&f.answer, BODY, W_BODY);
            });
        }
        index.settle_incidental();
        index.event_short_names = index
            .docs
            .iter()
            .filter(|d| matches!(d.item, Item::Event(_)))
            .flat_map(|d| d.tags.iter())
            .filter(|t| index.fields.iter().any(|f| f.0.iter().any(|p| t.holds(p))))
            .cloned()
            .collect();
        index.concept_df = index
            .concept_postings
            .iter()
            .enumerate()
            .map(|(c, postings)| {
                if index.lexicon.kind(c as u32) != ConceptKind::Topic {
                    return postings.len();
                }
                let incidental = |p: &&Posting| {
                    matches!(index.docs[p.doc as usize].item, Item::Enterprise(_)) && p.zones & !BODY == 0
                };
                let df = postings.iter().filter(|p| !incidental(p)).count();
                if df == 0 { postings.len() } else { df }
            })
            .collect();
        let total: f32 = index.docs.iter().map(|d| d.len).sum();
        index.avg_len = if index.docs.is_empty() {
            1.0
        } else {
            total / index.docs.len() as f32
        };
        for list in index.fuzzy.values_mut() {
            list.sort();
            list.dedup();
        }
        // A tag that is the name or a part of it ("火星" of 火星基地沉浸馆) says
        // nothing the name does not: said whole it is the name again, and
        // a namesake ("火星离地球有多远") stays one.
        let informative: Vec<Vec<bool>> = index
            .docs
            .iter()
            .map(|d| {
                let names: Vec<Phrase> = d.names.iter().map(|n| Phrase::new(n)).collect();
                d.tag_terms
                    .iter()
                    .zip(&d.tags)
                    .map(|(ts, tag)| {
                        !names.iter().any(|n| tag.within(n))
                            && ts
                                .iter()
                                .any(|t| index.postings.get(t).is_some_and(|p| index.informative(p.len())))
                    })
                    .collect()
            })
            .collect();
        for (d, inf) in index.docs.iter_mut().zip(informative) {
            d.tag_informative = inf;
        }
        index.joined = index.joined_words();
        (index.elsewhere, index.not_places) = index.places_elsewhere();
        index
    }

    /// The places of `data/places.txt` whose words the knowledge lacks, and
    /// its look-alike words (`!` lines).
    fn places_elsewhere(&self) -> (PhraseSet, PhraseSet) {
        let mentioned = |names: &[&str]| {
            names.iter().any(|n| {
                let ts = terms(&normalize(n), false);
                !ts.is_empty() && ts.iter().all(|t| self.postings.contains_key(&t.text))
            })
        };
        let (mut away, mut look_alikes) = (Vec::new(), Vec::new());
        for line in crate::assets::PLACES_TXT.lines().filter(|l| !l.starts_with('#')) {
            if let Some(word) = line.strip_prefix('!') {
                look_alikes.push(word.trim());
                continue;
            }
            let both: Vec<&str> = line.split('\t').map(str::trim).filter(|n| !n.is_empty()).collect();
            // Known in either language, the place is the park's own.
            if !mentioned(&both) {
                away.extend(both);
            }
        }
        (PhraseSet::new(&away), PhraseSet::new(&look_alikes))
    }

    /// Whether the question names a place the knowledge never mentions
    /// ("杭州哪家店能配助听器", "a bigger uniform in Hangzhou"): it asks
    /// about somewhere else.
    /// A place said as where the asker comes from ("之前在广州做外贸",
    /// "moving from Shanghai"), inside `ignore` (what the asker says about
    /// themselves) or inside a look-alike word ("这东西安全吗") is no
    /// question about it.
    pub fn elsewhere(&self, q: &Query, ignore: &[(usize, usize)]) -> bool {
        let found = self.elsewhere.find(q);
        if found.is_empty() {
            return false;
        }
        let look_alikes = self.not_places.find(q);
        let chars: Vec<char> = q.norm.chars().collect();
        found.into_iter().any(|(from, to)| {
            if inside((from, to), ignore) || inside((from, to), &look_alikes) {
                return false;
            }
            let before: String = chars[from.saturating_sub(12)..from].iter().collect();
            let before = before.trim_end();
            !ORIGIN_WORDS.iter().any(|w| {
                before.ends_with(w)
                    && (w.chars().next().is_some_and(crate::knowledge::is_han) || {
                        let rest = &before[..before.len() - w.len()];
                        rest.is_empty() || rest.ends_with(' ')
                    })
            })
        })
    }

    /// Neighbouring words of names, aliases and tags written as one word
    /// (see `Index::joined`).
    fn joined_words(&self) -> HashMap<String, [String; 2]> {
        let mut joined = HashMap::new();
        let texts = self.docs.iter().flat_map(|d| {
            d.names
                .iter()
                .map(String::as_str)
                .chain(d.tags.iter().map(|t| t.norm.as_str()))
        });
        for norm in texts {
            let words: Vec<(String, (usize, usize), String)> = terms(norm, true)
                .into_iter()
                .filter(|t| !t.han)
                .map(|t| (text::said(norm, t.span), t.span, t.text))
                .collect();
            for pair in words.windows(2) {
                let [(raw_a, span_a, a), (raw_b, span_b, b)] = pair else {
                    continue;
                };
                let word = |raw: &str| {
                    raw.len() >= 2 && raw.bytes().all(|c| c.is_ascii_alphabetic()) && !text::is_stop_en(raw)
                };
                if span_b.0 != span_a.1 + 1 || !word(raw_a) || !word(raw_b) {
                    continue;
                }
                let one = text::stem(&format!("{raw_a}{raw_b}"));
                if !self.postings.contains_key(&one) {
                    joined.entry(one).or_insert_with(|| [a.clone(), b.clone()]);
                }
            }
        }
        joined
    }

    /// A concept an FAQ's stored question mentions beside tags about
    /// something else is incidental there only when it is what another
    /// item is about (in that item's name or tags): "get in" in "How do
    /// visitors get in?" is the opening hours' topic, while 丢 in
    /// "工牌丢了怎么办" (no item's tag) stays what that FAQ is about.
    fn settle_incidental(&mut self) {
        for postings in &mut self.concept_postings {
            let topic_elsewhere = postings.iter().any(|p| p.zones & (NAME | TAG) != 0);
            if !topic_elsewhere {
                for p in postings.iter_mut() {
                    p.zones &= !INCIDENTAL;
                }
            }
        }
    }

    fn add(&mut self, item: Item, name: &Text, fill: impl FnOnce(&mut DocBuilder)) {
        let doc = self.docs.len() as u32;
        let mut b = DocBuilder {
            tf: HashMap::new(),
            len: 0.0,
            tags: Vec::new(),
            names: Vec::new(),
            lexicon: &self.lexicon,
            concepts: HashMap::new(),
            industries_only: matches!(item, Item::Field(_)),
            company: matches!(item, Item::Enterprise(_)),
            han: Vec::new(),
        };
        fill(&mut b);
        if matches!(item, Item::Faq(_)) {
            incidental_question_concepts(&mut b.concepts);
            incidental_question_words(&mut b.tf);
        }
        for (term, (tf, zones)) in b.tf {
            if zones & (NAME | TAG) != 0 && term.len() >= 4 && term.bytes().all(|c| c.is_ascii_alphabetic()) {
                let first = term.chars().next().unwrap_or(' ');
                self.fuzzy.entry(first).or_default().push(term.clone());
            }
            self.postings.entry(term).or_default().push(Posting { doc, tf, zones });
        }
        for (c, (tf, zones)) in b.concepts {
            self.concept_postings[c as usize].push(Posting { doc, tf, zones });
        }
        let mut names: Vec<String> = name.all().into_iter().map(normalize).collect();
        names.extend(b.names);
        let mut han = b.han;
        han.sort_unstable();
        han.dedup();
        names.retain(|n| n.chars().count() >= 2);
        self.docs.push(Doc {
            item,
            len: b.len.max(1.0),
            names,
            tag_terms: b
                .tags
                .iter()
                .map(|t| terms(&t.norm, false).into_iter().map(|t| t.text).collect())
                .collect(),
            tag_informative: Vec::new(),
            tags: b.tags,
            han,
        });
    }

    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    fn idf(&self, df: usize) -> f32 {
        let n = self.docs.len() as f32;
        let df = df as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// A term in `df` documents tells them apart: it is in one only, or
    /// rare enough.
    fn informative(&self, df: usize) -> bool {
        df <= 1 || self.idf(df) >= MIN_IDF
    }

    /// What one term adds to one item's score (BM25 with zone bonuses).
    fn gain(&self, r: &Resolved, p: &Posting) -> f32 {
        let d = &self.docs[p.doc as usize];
        let norm = 1.0 - B + B * d.len / self.avg_len;
        let sat = p.tf * (K1 + 1.0) / (p.tf + K1 * norm);
        let bonus = if r.concept {
            if p.zones & INCIDENTAL != 0 {
                0.0
            } else if p.zones & (NAME | TAG | QUESTION) != 0 {
                CONCEPT_TAG_BONUS
            } else {
                0.0
            }
        } else if p.zones & NAME != 0 {
            NAME_BONUS
        } else {
            0.0
        };
        r.idf * r.factor * (sat + bonus)
    }

    /// How many items mention concept `c`.
    pub fn concept_items(&self, c: u32) -> usize {
        self.concept_postings.get(c as usize).map_or(0, Vec::len)
    }

    /// The question with the concepts it mentions added as terms (spanning
    /// the words that said them). An English word the index does not know
    /// that is one or two letters from a concept's word counts as that word.
    pub fn expand(&self, q: &Query) -> Query {
        let mut out = q.clone();
        // Two words of a name written as one ("timerift"): the two words.
        if out.terms().iter().any(|t| self.joined.contains_key(&t.text)) {
            let split: Vec<Term> = out
                .terms()
                .iter()
                .flat_map(
                    |t| match self.joined.get(&t.text).filter(|_| !t.han && t.concept.is_none()) {
                        Some(parts) => parts
                            .iter()
                            .map(|p| Term {
                                text: p.clone(),
                                ..t.clone()
                            })
                            .collect(),
                        None => vec![t.clone()],
                    },
                )
                .collect();
            *out.terms_mut() = split;
        }
        if self.lexicon.is_empty() {
            return out;
        }
        let mut found = self.lexicon.find(&q.norm, q.terms(), &q.all_terms);
        for t in q.terms().iter().filter(|t| !t.han && t.concept.is_none()) {
            if self.postings.contains_key(&t.text) || found.iter().any(|f| f.span == t.span) {
                continue;
            }
            let raw = text::said(&q.norm, t.span);
            if let Some((_, concepts)) = self.lexicon.fuzzy(&raw) {
                found.extend(concepts.into_iter().map(|concept| Found { concept, span: t.span }));
            }
        }
        // Every place a concept is said: the words there are explained.
        let mut seen = std::collections::HashSet::new();
        for f in found {
            if seen.insert((f.concept, f.span)) {
                out.terms_mut().push(Term {
                    text: self.lexicon.id(f.concept).to_string(),
                    span: f.span,
                    han: false,
                    concept: Some(f.concept),
                });
            }
        }
        out
    }

    /// Fields whose name, an alias or a keyword stands in the question, with
    /// the spans.
    /// Whether the words at `span` stand inside a longer tag or alias of an
    /// event that the question says whole: "面料" in 面料展 is that fair's
    /// short name, not the fabrics field.
    pub fn in_event_tag(&self, q: &Query, span: (usize, usize)) -> bool {
        self.event_short_names.iter().any(|t| {
            t.find(q)
                .into_iter()
                .any(|(a, b)| a <= span.0 && span.1 <= b && b - a > span.1 - span.0)
        })
    }

    pub fn fields_in(&self, q: &Query) -> Vec<(usize, Vec<(usize, usize)>)> {
        self.fields
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let spans = p.find(q);
                (!spans.is_empty()).then_some((i, spans))
            })
            .collect()
    }

    /// Fields whose names have informative words of the question that
    /// other fields' names lack ("ceramics companies" for "advanced ceramics
    /// and special glass"): a field said in part. A word in more fields'
    /// names counts less; nothing when more than two fields tie.
    pub fn fields_by_name_words(&self, q: &Query) -> Vec<(usize, Vec<(usize, usize)>)> {
        let mut per_field: HashMap<usize, (f32, Vec<(usize, usize)>)> = HashMap::new();
        for t in q.terms().iter().filter(|t| t.concept.is_none()) {
            let Some(postings) = self.postings.get(&t.text).filter(|p| self.informative(p.len())) else {
                continue;
            };
            let named: Vec<usize> = postings
                .iter()
                .filter(|p| p.zones & NAME != 0)
                .filter_map(|p| match self.docs[p.doc as usize].item {
                    Item::Field(f) => Some(f),
                    _ => None,
                })
                .collect();
            // A word every field's name has ("materials" in a materials
            // park) tells none apart.
            if named.is_empty() || named.len() == self.fields.len() {
                continue;
            }
            for &f in &named {
                let e = per_field.entry(f).or_default();
                e.0 += 1.0 / named.len() as f32;
                e.1.push(t.span);
            }
        }
        let best = per_field.values().map(|(s, _)| *s).fold(0.0, f32::max);
        if best <= 0.0 {
            return Vec::new();
        }
        let mut top: Vec<(usize, Vec<(usize, usize)>)> = per_field
            .into_iter()
            .filter(|(_, (s, _))| *s >= best - 1e-6)
            .map(|(f, (_, spans))| (f, spans))
            .collect();
        if top.len() > 2 {
            return Vec::new();
        }
        top.sort_by_key(|(f, _)| *f);
        top
    }

    /// Fields that the question's industry concepts point to: the fields
    /// whose concepts it matches best, a concept shared by fewer fields
    /// counting more. Nothing when more than two fields tie (too vague to
    /// list).
    pub fn fields_by_concept(&self, q: &Query) -> Vec<(usize, Vec<(usize, usize)>)> {
        let asked: Vec<(u32, (usize, usize))> = q
            .concepts()
            .filter_map(|t| t.concept.map(|c| (c, t.span)))
            .filter(|(c, _)| self.lexicon.kind(*c) == ConceptKind::Industry)
            .collect();
        if asked.is_empty() {
            return Vec::new();
        }
        let holders = |c: u32| self.field_concepts.iter().filter(|fc| fc.contains(&c)).count();
        let scores: Vec<f32> = self
            .field_concepts
            .iter()
            .map(|fc| {
                asked
                    .iter()
                    .filter(|(c, _)| fc.contains(c))
                    .map(|(c, _)| 1.0 / holders(*c) as f32)
                    .sum()
            })
            .collect();
        let best = scores.iter().copied().fold(0.0, f32::max);
        if best <= 0.0 {
            return Vec::new();
        }
        let top: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] >= best - 1e-6).collect();
        if top.len() > 2 {
            return Vec::new();
        }
        top.into_iter()
            .map(|f| {
                let spans = asked
                    .iter()
                    .filter(|(c, _)| self.field_concepts[f].contains(c))
                    .map(|(_, s)| *s)
                    .collect();
                (f, spans)
            })
            .collect()
    }

    /// The postings of a query term: exact, else a close name word.
    fn resolve(&self, t: &Term, norm: &str) -> Option<(&Vec<Posting>, f32)> {
        if let Some(c) = t.concept {
            return self
                .concept_postings
                .get(c as usize)
                .filter(|p| !p.is_empty())
                .map(|p| (p, CONCEPT_FACTOR));
        }
        if let Some(p) = self.postings.get(&t.text) {
            return Some((p, 1.0));
        }
        if t.han {
            return None;
        }
        // The typo may be in the stemmed form or in the word as written
        // ("molcompas" is stemmed to "molcompa", far from "molcompass").
        let raw = text::said(norm, t.span);
        [t.text.as_str(), raw.as_str()]
            .into_iter()
            .filter_map(|w| self.fuzzy_match(w))
            .min_by_key(|(d, w)| (*d, std::cmp::Reverse(self.postings[*w].len())))
            .map(|(_, w)| (&self.postings[w], FUZZY_FACTOR))
    }

    /// The closest name or tag word to `word` (edit distance, then the
    /// commoner word). Typos are looked for in words of five letters or
    /// more: shorter ones are too close to too many others ("whol" ~ "whal").
    fn fuzzy_match(&self, word: &str) -> Option<(usize, &String)> {
        let n = word.chars().count();
        if n < 5 || !word.bytes().all(|c| c.is_ascii_alphabetic()) {
            return None;
        }
        let max = if n >= 9 { 2 } else { 1 };
        let first = word.chars().next()?;
        self.fuzzy
            .get(&first)?
            .iter()
            .filter(|w| w.len().abs_diff(word.len()) <= 1)
            .filter_map(|w| edit_distance(word, w, max).map(|d| (d, w)))
            .min_by_key(|(d, w)| (*d, std::cmp::Reverse(self.postings[*w].len())))
    }

    /// Ranks the items for `q` (expanded with [`Index::expand`] for concept
    /// matches); at most `TOP_K` hits, best first.
    pub fn search(&self, q: &Query) -> Vec<Hit> {
        if self.docs.is_empty() {
            return Vec::new();
        }
        // How much the question says, by idf: English words count even when
        // unknown (they are real words); Chinese bigrams only when known
        // (an unknown bigram is often two words' edges). Words that a known
        // concept stands for count as that concept.
        let unknown_idf = self.idf(0);
        let concept_spans: Vec<(usize, usize)> = q
            .concepts()
            .filter(|t| t.concept.is_some_and(|c| self.concept_items(c) > 0))
            .map(|t| t.span)
            .collect();
        let explained = |t: &Term| inside(t.span, &concept_spans);
        let mut said = 0.0;
        let mut seen = std::collections::HashSet::new();
        let mut resolved: Vec<Resolved> = Vec::new();
        for t in q.terms().iter().filter(|t| seen.insert((t.concept, t.text.as_str()))) {
            let found = self.resolve(t, &q.norm);
            let df = |p: &Vec<Posting>| {
                t.concept
                    .and_then(|c| self.concept_df.get(c as usize).copied())
                    .unwrap_or(p.len())
            };
            if t.concept.is_some() || !explained(t) {
                said += match found {
                    Some((p, _)) => self.idf(df(p)),
                    // A number unknown to the knowledge ("a room for 20")
                    // is a quantity, not a subject.
                    None if t.concept.is_some()
                        || t.han
                        || t.text.bytes().all(|b| b.is_ascii_digit())
                        || after_number(&q.norm, t.span.0)
                        || DAY_WORDS.contains(&t.text.as_str()) =>
                    {
                        0.0
                    }
                    None => unknown_idf,
                };
            }
            let Some((p, mut factor)) = found else { continue };
            let df = df(p);
            // A word inside a longer phrase of a concept ("online" in
            // "online order", "个头" in "碰个头") means the phrase, not
            // itself.
            let in_phrase = q
                .concepts()
                .any(|c| c.span.0 <= t.span.0 && t.span.1 <= c.span.1 && c.span != t.span);
            if t.concept.is_none() && in_phrase {
                factor *= PHRASE_WORD_FACTOR;
            }
            resolved.push(Resolved {
                postings: p,
                factor,
                df,
                idf: self.idf(df),
                concept: t.concept.is_some(),
                ask: !t.han && t.concept.is_none() && ask_about_en().contains(&t.text),
                spans: q
                    .terms()
                    .iter()
                    .filter(|x| x.concept == t.concept && x.text == t.text)
                    .map(|x| x.span)
                    .collect(),
            });
        }
        let mut scores = vec![0f32; self.docs.len()];
        // Sum of the idf of the terms each item matched: the share of the
        // question it covers weighs its score (an item that matches one
        // word of five ranks below one that matches four).
        let mut found = vec![0f32; self.docs.len()];
        for r in &resolved {
            // An item that has the very words a concept was said with
            // counts the better of the two, not both.
            let words: Vec<&Resolved> = if r.concept {
                resolved
                    .iter()
                    .filter(|w| !w.concept && w.spans.iter().any(|&s| r.covers(s)))
                    .collect()
            } else {
                Vec::new()
            };
            for p in r.postings.iter() {
                let mut gain = self.gain(r, p);
                for w in &words {
                    if let Ok(i) = w.postings.binary_search_by_key(&p.doc, |x| x.doc) {
                        gain -= self.gain(w, &w.postings[i]);
                    }
                }
                if gain > 0.0 {
                    scores[p.doc as usize] += gain;
                }
                found[p.doc as usize] += r.idf;
            }
        }
        let coord = |f: f32| {
            if said > 0.0 {
                COORD_BASE + (1.0 - COORD_BASE) * (f / said).min(1.0)
            } else {
                1.0
            }
        };
        let mut top: Vec<(u32, f32)> = scores
            .iter()
            .enumerate()
            .filter(|(_, s)| **s > 0.0)
            .map(|(i, s)| (i as u32, *s * coord(found[i])))
            .collect();
        let k = (TOP_K * 2).min(top.len());
        if k == 0 {
            return Vec::new();
        }
        top.select_nth_unstable_by(k - 1, |a, b| b.1.total_cmp(&a.1));
        top.truncate(k);
        // The Chinese characters of the question's words that the
        // knowledge knows (an unknown bigram is often two words' edges).
        let mut han: Vec<usize> = q
            .terms()
            .iter()
            .filter(|t| t.han && t.concept.is_none() && (self.postings.contains_key(&t.text) || explained(t)))
            .flat_map(|t| t.span.0..t.span.1)
            .collect();
        han.sort_unstable();
        han.dedup();
        let qchars: Vec<char> = q.norm.chars().collect();
        let asking = std::cell::OnceCell::new();
        let mut hits: Vec<Hit> = top
            .into_iter()
            .map(|(doc, score)| {
                let d = &self.docs[doc as usize];
                let full_name = d.names.iter().any(|n| name_in(&q.norm, n) || han_name_typo(&qchars, n));
                let e = self.evidence(doc, &resolved);
                let tag = self.tag_in(doc, q);
                // Part of a name in a Chinese question whose other words
                // this item does not have ("熊猫基地门票" is not about 熊猫旋翼),
                // or in a question that says more about something else than
                // the name ("how long do blue whales live"): a namesake,
                // not the item.
                let only_name = e.named
                    && !full_name
                    && !tag
                    && e.outside_name == 0
                    && self.says_other(
                        q,
                        asking.get_or_init(|| Asking::new(q, &qchars, &self.lexicon)),
                        d,
                        &e.spans,
                    );
                let namesake = only_name || (e.named && !full_name && han_share(&han, &e.spans) < MIN_NAMESAKE_SHARE);
                let named = e.named && !namesake;
                // A namesake found only through its name: a concept of the
                // name part does not make it strong either.
                let strong = named || (e.concept_strong && !only_name) || tag;
                let coverage = if said > 0.0 { (e.found / said).min(1.0) } else { 0.0 };
                let terms = e.terms;
                let bonus = if full_name {
                    FULL_NAME_BONUS
                } else if tag {
                    WHOLE_TAG_BONUS
                } else {
                    0.0
                };
                // A namesake ranks below what the rest of the question finds.
                let score = if only_name { score * NAMESAKE_FACTOR } else { score };
                Hit {
                    item: d.item,
                    score: score + bonus,
                    confident: full_name
                        || ((named || (e.words >= 2 && !only_name) || tag) && coverage >= MIN_COVERAGE)
                        || (e.concept_strong && !only_name && coverage >= MIN_COVERAGE_CONCEPT)
                        || (e.terms >= 2 && !only_name && !namesake && coverage >= MIN_COVERAGE_DESCRIBED)
                        || (e.asked && coverage >= MIN_COVERAGE_QUESTION),
                    full_name,
                    terms,
                    strong,
                    named,
                    coverage,
                }
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.item.cmp(&b.item)));
        hits.truncate(TOP_K);
        let next = hits.get(1).map_or(0.0, |h| h.score);
        if let Some(first) = hits.first_mut()
            && !first.confident
            && first.strong
            && first.coverage >= MIN_COVERAGE_LEAD
            && first.score >= next * CLEAR_LEAD
        {
            first.confident = true;
        }
        hits
    }

    /// Whether `item` mentions an industry concept of the question that no
    /// field's name, aliases or keywords mention: a detail finer than any
    /// field ("老年痴呆的药" beside 老人, which finds the eldercare field).
    pub fn fits_unfielded(&self, q: &Query, item: Item) -> bool {
        q.concepts()
            .filter_map(|t| t.concept)
            .filter(|&c| {
                self.lexicon.kind(c) == ConceptKind::Industry && !self.field_concepts.iter().any(|fc| fc.contains(&c))
            })
            .any(|c| {
                self.concept_postings
                    .get(c as usize)
                    .is_some_and(|p| p.iter().any(|p| self.docs[p.doc as usize].item == item))
            })
    }

    /// Whether the question says something besides the name part at
    /// `name`, that the item does not match: an English content word that
    /// is not a way of asking about an item, or Chinese characters (not
    /// stop words, asking words or general service words) at least as many
    /// as the name part's. Industry concepts the item lacks count, and event concepts for an item that is not an event; other
    /// concepts (contact, fees, tickets…) ask about the item.
    fn says_other(&self, q: &Query, asking: &Asking, d: &Doc, name: &[(usize, usize)]) -> bool {
        let chars = asking.chars;
        let neutral = &asking.neutral;
        let ask_en = ask_about_en();
        // A name part followed by a kind of place the item's names do not
        // go on with ("红树林公园" beside 红树林保税仓储) names that place.
        let place_after = name.iter().any(|&(a, b)| {
            let part: String = chars.get(a..b).unwrap_or_default().iter().collect();
            let after: String = chars.get(b..).unwrap_or_default().iter().collect();
            PLACE_KINDS_ZH
                .iter()
                .any(|k| after.starts_with(k) && !d.names.iter().any(|n| n.contains(&format!("{part}{k}"))))
        });
        if place_after {
            return true;
        }
        let mut rest_chars: Vec<usize> = Vec::new();
        for t in q.terms().iter().filter(|t| t.concept.is_none()) {
            if inside(t.span, name) || inside(t.span, neutral) {
                continue;
            }
            if t.han {
                // Two characters that hold a grammar word are the edge of
                // two words, not a word ("这家公司主要做什么").
                let word = (t.span.0..t.span.1).all(|c| chars.get(c).is_some_and(|ch| !ZH_GRAMMAR_CHARS.contains(*ch)));
                if word || self.postings.contains_key(&t.text) {
                    rest_chars.extend((t.span.0..t.span.1).filter(|&c| {
                        !at(c, name) && !at(c, neutral) && chars.get(c).is_some_and(|&ch| crate::knowledge::is_han(ch))
                    }));
                }
            } else if t.text.len() >= 3
                && !t.text.bytes().all(|b| b.is_ascii_digit())
                && !ask_en.iter().any(|w| w == &t.text)
                && !self.near_name_word(q, t, d)
            {
                return true;
            }
        }
        // Single characters that carry meaning and that the item's text
        // lacks ("白鲸能活多少年": 活, 年; "蜂巢蜜怎么吃": 蜜, 吃), beside grammar
        // characters that keep them out of any word.
        for (c, ch) in chars.iter().enumerate() {
            if crate::knowledge::is_han(*ch)
                && !at(c, name)
                && !at(c, neutral)
                && !ZH_GRAMMAR_CHARS.contains(*ch)
                && !ZH_LONE_STOP_CHARS.contains(*ch)
                && d.han.binary_search(ch).is_err()
            {
                rest_chars.push(c);
            }
        }
        for t in q.concepts() {
            let other = t.concept.is_some_and(|c| match self.lexicon.kind(c) {
                ConceptKind::Industry => true,
                // What one does at an event ("哪里能看海豚表演") does not ask
                // about a company or a service.
                ConceptKind::Event => !matches!(d.item, Item::Event(_)),
                ConceptKind::Topic => false,
            });
            if other && !inside(t.span, name) {
                rest_chars.extend(t.span.0..t.span.1);
            }
        }
        rest_chars.sort_unstable();
        rest_chars.dedup();
        let named: usize = {
            let mut v: Vec<usize> = name
                .iter()
                .flat_map(|&(a, b)| a..b)
                .filter(|&c| chars.get(c).is_some_and(|&ch| crate::knowledge::is_han(ch)))
                .collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        named > 0 && rest_chars.len() >= 2 && rest_chars.len() as f32 >= named as f32 * NAMESAKE_REST_RATIO
    }

    /// Whether the English word `t` is one or two letters from a word of
    /// the doc's names (a typo of the name: "e-drvie").
    fn near_name_word(&self, q: &Query, t: &Term, d: &Doc) -> bool {
        let raw = text::said(&q.norm, t.span);
        let max = if raw.len() >= 5 { 2 } else { 1 };
        d.names.iter().any(|n| {
            n.split(|c: char| !c.is_ascii_alphanumeric())
                .filter(|w| w.len() >= 4)
                .any(|w| edit_distance(&raw, w, max).is_some())
        })
    }

    /// Whether one of the doc's tags stands whole in the question and says
    /// something (holds an informative term). A tag said only inside a
    /// longer phrase of a concept the doc does not mention means that
    /// phrase ("pick" in "pick up my order" is not the tag "picking").
    fn tag_in(&self, doc: u32, q: &Query) -> bool {
        let d = &self.docs[doc as usize];
        let other_phrase = |s: (usize, usize)| {
            q.concepts().any(|t| {
                t.span.0 <= s.0
                    && s.1 <= t.span.1
                    && t.span.1 - t.span.0 > s.1 - s.0
                    && t.concept.is_some_and(|c| {
                        self.concept_postings[c as usize]
                            .binary_search_by_key(&doc, |p| p.doc)
                            .is_err()
                    })
            })
        };
        d.tags
            .iter()
            .enumerate()
            .any(|(i, tag)| d.tag_informative[i] && tag.find(q).into_iter().any(|s| !other_phrase(s)))
    }

    /// What the question's terms found in one doc.
    fn evidence(&self, doc: u32, resolved: &[Resolved]) -> Evidence {
        let mut e = Evidence::default();
        // Words come before concepts: a concept said by words that matched
        // already is not one more term.
        let mut matched: Vec<(usize, usize)> = Vec::new();
        let mut name_spans: Vec<(usize, usize)> = Vec::new();
        for r in resolved {
            let Ok(i) = r.postings.binary_search_by_key(&doc, |p| p.doc) else {
                continue;
            };
            e.found += r.idf;
            // A concept said by the very words that matched the name
            // ("电车" in 驿电车联) is the name again, not more evidence.
            let by_name = r.concept && r.spans.iter().all(|&s| in_spans(s, &name_spans));
            // A concept said by other words is evidence even when it is
            // the name's meaning ("son" for a family camp), if the item is
            // about it (in its name, a tag or an FAQ question: "冬天" is not
            // evidence for 白鹭羊乳 because its summary says 低温); a word
            // that only asks about an item ("make") is none.
            let zones = r.postings[i].zones;
            if if r.concept {
                !by_name && zones & (NAME | TAG | QUESTION) != 0
            } else {
                zones & NAME == 0 && !r.ask
            } {
                e.outside_name += 1;
            }
            if !r.concept && r.postings[i].zones & NAME != 0 {
                name_spans.extend(&r.spans);
            }
            let again = r.concept && matched.iter().any(|&s| r.covers(s));
            matched.extend(&r.spans);
            if self.informative(r.df) {
                if !again {
                    e.terms += 1;
                }
                if !r.concept {
                    e.words += 1;
                }
                let zones = r.postings[i].zones;
                if r.concept {
                    e.concept_strong |= zones & (NAME | TAG | QUESTION) != 0;
                } else {
                    e.named |= zones & NAME != 0 && r.factor >= FUZZY_FACTOR;
                }
                e.asked |= zones & QUESTION != 0;
            }
        }
        e.spans = matched;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::{parse_str, validate_references};

    fn kb() -> Knowledge {
        let text = r#"
[[field]]
id = "uav"
name = { zh = "无人机", en = "drones" }
aliases = ["UAV", "低空经济"]
[[enterprise]]
id = "guangsuo"
name = { zh = "光梭激光雷达", en = "Guangsuo Lidar" }
fields = ["uav"]
summary = { zh = "量产固态激光雷达", en = "Mass-produces solid-state lidar" }
tags = ["激光雷达", "lidar"]
[[enterprise]]
id = "dengyu"
name = { zh = "灯语编队", en = "Dengyu Light Shows" }
fields = ["uav"]
summary = { zh = "策划无人机编队灯光秀", en = "Stages drone light shows" }
tags = ["灯光秀", "drone shows"]
[[faq]]
id = "parking"
questions = ["停车收费吗？", "How much is parking?"]
answer = { zh = "每次10元", en = "10 yuan per entry" }
tags = ["停车", "parking"]
[[faq]]
id = "shuttle"
questions = ["有通勤班车吗？", "How do I get here by metro?"]
answer = { zh = "班车往返地铁站", en = "The shuttle runs to the metro station" }
tags = ["班车", "shuttle", "metro"]
"#;
        knowledge(text)
    }

    fn knowledge(text: &str) -> Knowledge {
        validate_references(vec![parse_str("t.toml", text, false).unwrap()], &Default::default()).unwrap()
    }

    fn top(index: &Index, q: &str) -> Option<Hit> {
        index.search(&index.expand(&Query::new(q))).into_iter().next()
    }

    #[test]
    fn occurrences_are_those_of_match_indices() {
        for (hay, needle) in [
            ("哈哈哈哈", "哈哈"),
            ("abcabc", "bc"),
            ("停车场停车", "停车"),
            ("x", "xy"),
            ("", "a"),
        ] {
            let want: Vec<usize> = hay.match_indices(needle).map(|(i, _)| i).collect();
            assert_eq!(occurrences(hay, needle).collect::<Vec<_>>(), want, "{hay} / {needle}");
        }
    }

    #[test]
    fn names_rank_first_in_both_languages() {
        let idx = Index::build(&kb());
        assert_eq!(top(&idx, "光梭怎么样").unwrap().item, Item::Enterprise(0));
        assert_eq!(top(&idx, "tell me about dengyu").unwrap().item, Item::Enterprise(1));
        assert_eq!(top(&idx, "停车贵吗").unwrap().item, Item::Faq(0));
    }

    #[test]
    fn concepts_bridge_the_words_people_use() {
        let idx = Index::build(&kb());
        let hit = top(&idx, "is there a bus from the subway?").unwrap();
        assert_eq!(hit.item, Item::Faq(1));
        assert!(hit.confident);
        let hit = top(&idx, "地铁站有接驳车吗").unwrap();
        assert_eq!(hit.item, Item::Faq(1));
        let q = idx.expand(&Query::new("is parking free"));
        assert!(q.terms().iter().any(|t| t.concept.is_some() && t.text == "parking"));
        // Meaning without a shared word: the parking FAQ for a car left.
        let hit = top(&idx, "where can I leave my car").unwrap();
        assert_eq!(hit.item, Item::Faq(0));
        assert!(hit.confident);
    }

    #[test]
    fn mixed_letters_and_digits_stay_together() {
        let q = Query::new("3D models for ROS2");
        let texts: Vec<&str> = q.terms().iter().map(|t| t.text.as_str()).collect();
        assert!(
            texts.contains(&"3d") && texts.contains(&"ros2") && texts.contains(&"ros"),
            "{texts:?}"
        );
        assert!(!texts.contains(&"3") && !texts.contains(&"d"), "{texts:?}");
    }

    #[test]
    fn a_tag_that_is_part_of_the_name_is_the_name_again() {
        let idx = Index::build(&knowledge(
            r#"
[[field]]
id = "fun"
name = { zh = "沉浸式体验", en = "immersive experiences" }
[[enterprise]]
id = "mars"
name = { zh = "火星基地沉浸馆", en = "Mars Base Experience" }
fields = ["fun"]
summary = { zh = "模拟基地，游客穿上宇航服完成任务。", en = "A simulated base where visitors put on spacesuits for a mission." }
tags = ["火星", "宇航服", "Mars", "spacesuit"]
"#,
        ));
        // The tag 火星 / Mars is the name's part: a question about the
        // planet is a namesake, as it would be without the tag.
        assert!(top(&idx, "火星离地球有多远").is_none_or(|h| !h.confident && !h.named));
        assert!(top(&idx, "how far is Mars from Earth").is_none_or(|h| !h.confident && !h.named));
        // Asked about, it is still found by its name.
        assert!(top(&idx, "火星基地在哪").is_some_and(|h| h.confident && h.named));
        assert!(top(&idx, "where is Mars Base").is_some_and(|h| h.confident && h.named));
        assert!(top(&idx, "火星基地沉浸馆").is_some_and(|h| h.full_name));
    }

    #[test]
    fn a_kind_of_company_ending_a_name_is_not_the_name() {
        let idx = Index::build(&knowledge(
            r#"
[[field]]
id = "games"
name = { zh = "游戏", en = "games" }
[[enterprise]]
id = "cybercat"
name = { zh = "赛博猫工作室", en = "CyberCat Studio" }
fields = ["games"]
summary = { zh = "做赛博朋克风格的手机解谜游戏", en = "Makes cyberpunk puzzle games for phones" }
[[faq]]
id = "settle-in"
questions = ["怎么入驻？", "How do we move in?"]
answer = { zh = "填写入驻申请表", en = "Fill in the application form" }
tags = ["入驻", "move in"]
"#,
        ));
        // 工作室 / studio is what the asker's company is, not this name.
        assert_eq!(top(&idx, "我们工作室想搬过来办公").unwrap().item, Item::Faq(0));
        assert_eq!(top(&idx, "our studio wants to move in").unwrap().item, Item::Faq(0));
        // The rest of the name, or all of it, still names it.
        assert!(top(&idx, "赛博猫在哪").is_some_and(|h| h.item == Item::Enterprise(0) && h.named));
        assert!(top(&idx, "赛博猫工作室在哪").is_some_and(|h| h.full_name));
        assert!(top(&idx, "where is CyberCat").is_some_and(|h| h.item == Item::Enterprise(0) && h.named));
    }

    #[test]
    fn two_terms_that_cover_the_question_describe_the_item() {
        let idx = Index::build(&knowledge(
            r#"
[[field]]
id = "robots"
name = { zh = "机器人", en = "robots" }
[[enterprise]]
id = "exo"
name = { zh = "助行外骨骼", en = "StrideAssist" }
fields = ["robots"]
summary = { zh = "可穿戴设备，帮仓库工人搬重物。", en = "Wearable kit that helps warehouse workers with heavy lifting." }
"#,
        ));
        // No name, no tag: a word (仓库) and a concept (扛货, 腰疼: heavy
        // lifting) that the summary has, and nothing else, make it sure.
        let hit = top(&idx, "仓库扛货腰疼").unwrap();
        assert_eq!(hit.item, Item::Enterprise(0));
        assert!(hit.confident, "{hit:?}");
        // One of them alone, beside words the item lacks, does not.
        assert!(top(&idx, "仓库租金怎么算").is_none_or(|h| !h.confident));
    }

    #[test]
    fn an_address_carries_no_concepts() {
        let idx = Index::build(&knowledge(
            r#"
[[field]]
id = "robots"
name = { zh = "机器人", en = "robots" }
[[enterprise]]
id = "ironshell"
name = { zh = "铁甲机器人", en = "IronShell Robotics" }
fields = ["robots"]
summary = { zh = "造迎宾机器人", en = "Builds greeter robots" }
location = { zh = "硬科技中心停车场旁", en = "Hard Tech Center, Block A" }
[[faq]]
id = "repairs"
questions = ["报修找谁？", "Who do I call for repairs?"]
answer = { zh = "物业报修电话0110", en = "Call maintenance on 0110" }
tags = ["报修", "repairs"]
"#,
        ));
        // "Block A" is where the company is, not a blocked pipe; 停车场旁
        // is not a question about parking.
        let hits = idx.search(&idx.expand(&Query::new("the drain is clogged")));
        assert_eq!(hits.first().map(|h| h.item), Some(Item::Faq(0)));
        assert!(hits.iter().all(|h| h.item != Item::Enterprise(0)), "{hits:?}");
        let hits = idx.search(&idx.expand(&Query::new("where do I leave my car")));
        assert!(hits.iter().all(|h| h.item != Item::Enterprise(0)), "{hits:?}");
        // Its words are still there: asked by the address, it is found.
        assert!(top(&idx, "who is in Hard Tech Center Block A").is_some_and(|h| h.item == Item::Enterprise(0)));
    }

    #[test]
    fn small_typos_in_names_are_tolerated() {
        let idx = Index::build(&kb());
        let hit = top(&idx, "what does guangsou make").unwrap();
        assert_eq!(hit.item, Item::Enterprise(0));
        assert!(hit.confident);
    }

    #[test]
    fn a_field_said_in_part_is_found_by_the_words_only_its_name_has() {
        let idx = Index::build(&knowledge(
            r#"
[[field]]
id = "ceramics"
name = { zh = "先进陶瓷与特种玻璃", en = "advanced ceramics and special glass" }
[[field]]
id = "printing"
name = { zh = "金属3D打印与粉末冶金", en = "metal 3D printing and powder metallurgy" }
[[field]]
id = "coatings"
name = { zh = "特种涂料", en = "special coatings" }
"#,
        ));
        let fields = |q: &str| -> Vec<usize> {
            idx.fields_by_name_words(&Query::new(q))
                .into_iter()
                .map(|(f, _)| f)
                .collect()
        };
        assert_eq!(fields("ceramics companies"), [0]);
        assert_eq!(fields("粉末冶金有哪些公司"), [1]);
        // "special" is in two names: the other word decides.
        assert_eq!(fields("special glass makers"), [0]);
        // A word most of the knowledge has tells nothing.
        assert!(fields("who makes special things").is_empty());
        assert!(fields("drone companies").is_empty());
    }

    #[test]
    fn a_city_the_knowledge_never_mentions_is_elsewhere() {
        let idx = Index::build(&knowledge(
            r#"
[[faq]]
id = "shuttle"
questions = ["怎么从成都东站过来？", "How do I get here from Chengdu East?"]
answer = { zh = "成都东站有班车。", en = "A shuttle runs from Chengdu East station." }
"#,
        ));
        let away = |q: &str| idx.elsewhere(&Query::new(q), &[]);
        assert!(away("杭州哪家店能配助听器"));
        assert!(away("where can I buy a bigger school uniform in Hangzhou"));
        // The park's own city, in either language.
        assert!(!away("成都哪里好玩"));
        assert!(!away("things to do in Chengdu"));
        // Where the asker comes from.
        assert!(!away("我们之前在广州做外贸，想搬过来"));
        assert!(!away("we are moving from Shanghai"));
        // A word that only holds a city's name.
        assert!(away("西安有什么好吃的"));
        assert!(!away("这东西安全吗"));
        // What the asker says about themselves is passed in to be ignored.
        let q = Query::new("我们是杭州的助听器公司");
        assert!(idx.elsewhere(&q, &[]));
        assert!(!idx.elsewhere(&q, &[(0, q.norm.chars().count())]));
    }

    #[test]
    fn two_words_of_a_name_written_as_one_are_the_name() {
        let idx = Index::build(&kb());
        // "Dengyu Light Shows" and the tag "drone shows", each written as one word.
        for q in ["dengyulight contact", "droneshows for a wedding"] {
            let hit = top(&idx, q).unwrap();
            assert_eq!(hit.item, Item::Enterprise(1), "{q}");
            assert!(hit.confident, "{q}");
        }
        // Only neighbours.
        assert!(top(&idx, "dengyushows").is_none());
        // Never a word the knowledge has of its own.
        let idx = Index::build(&knowledge(
            r#"
[[enterprise]]
id = "skyport"
name = { zh = "天港", en = "Sky Port Drones" }
fields = []
summary = { zh = "无人机", en = "Drones" }
[[faq]]
id = "shuttle"
questions = ["班车？", "Is there a skyport shuttle?"]
answer = { zh = "有", en = "Yes" }
"#,
        ));
        let terms = |q: &str| -> Vec<String> {
            idx.expand(&Query::new(q))
                .terms()
                .iter()
                .map(|t| t.text.clone())
                .collect()
        };
        assert_eq!(terms("skyport"), ["skyport"]);
        assert_eq!(terms("portdrones"), ["port", "dron"]);
    }

    #[test]
    fn a_partial_name_in_a_question_about_something_else_is_a_namesake() {
        let idx = Index::build(&kb());
        // Asking about the company: its name part and asking words only.
        let hit = top(&idx, "where is Dengyu located").unwrap();
        assert_eq!(hit.item, Item::Enterprise(1));
        assert!(hit.confident && hit.named);
        // The same word in a question about something else.
        assert!(top(&idx, "how do I cook dengyu dumplings at home").is_none_or(|h| !h.confident && !h.named));
        assert!(top(&idx, "灯语花园的花什么季节开放").is_none_or(|h| !h.confident));
        // Part of the name, then a kind of place: another place's name.
        assert!(
            top(&idx, "光梭公园门票多少钱").is_none_or(|h| h.item != Item::Enterprise(0) || (!h.confident && !h.named))
        );
        assert!(top(&idx, "光梭激光雷达多少钱").is_some_and(|h| h.confident));
        // What one does at an event is not about a company of that name.
        assert!(top(&idx, "哪里能看光梭表演").is_none_or(|h| !h.confident && !h.named));
        // A Chinese name with one character written wrong is still named.
        let hit = top(&idx, "光梭激光雷大在哪").unwrap();
        assert_eq!(hit.item, Item::Enterprise(0));
        assert!(hit.full_name);
    }

    #[test]
    fn a_service_said_in_company_descriptions_stays_telling() {
        let companies: String = (0..5)
            .map(|i| {
                format!(
                    "[[enterprise]]\nid = \"c{i}\"\nname = \"Company {i}\"\nsummary = \"Sells devices to every hospital\"\n"
                )
            })
            .collect();
        let k = knowledge(
            &(companies
                + r#"
[[faq]]
id = "clinic"
questions = ["Is there a clinic?"]
answer = "The clinic is on the ground floor"
tags = ["clinic", "first aid"]
"#),
        );
        let idx = Index::build(&k);
        let health = (0..idx.lexicon.len() as u32)
            .find(|&c| idx.lexicon.id(c) == "health")
            .unwrap();
        // Six items mention it; one is about it (the FAQ's tags).
        assert_eq!(idx.concept_items(health), 6);
        assert_eq!(idx.concept_df[health as usize], 1);
        let hit = top(&idx, "my colleague cut his hand and is bleeding").unwrap();
        assert_eq!(hit.item, Item::Faq(0));
        assert!(hit.confident, "{hit:?}");
    }

    #[test]
    fn lone_characters_the_item_lacks_make_a_namesake() {
        let k = knowledge(
            r#"
[[enterprise]]
id = "beluga"
name = { zh = "白鲸细胞", en = "Beluga Cell Therapeutics" }
summary = { zh = "把病人自己的T细胞改造后回输，治疗白血病", en = "Engineers patients' own T cells to treat leukaemia" }
tags = ["细胞治疗", "cell therapy"]
location = { zh = "细胞治疗中心2层", en = "Cell Therapy Center, 2F" }
[[enterprise]]
id = "hive"
name = { zh = "蜂巢数据", en = "HiveData" }
summary = { zh = "整理医院的病历数据", en = "Cleans hospital records" }
tags = ["医疗数据"]
"#,
        );
        let idx = Index::build(&k);
        // Every two characters hold a grammar character (能活, 多少, 少年),
        // but 活 and 年 say what the question is about: not the company.
        for q in ["白鲸能活多少年", "蜂巢蜜怎么吃才对"] {
            let hit = top(&idx, q);
            assert!(hit.as_ref().is_none_or(|h| !h.confident && !h.named), "{q}: {hit:?}");
        }
        // Asking where it is: the company, by its short name.
        let hit = top(&idx, "白鲸在哪栋楼").unwrap();
        assert_eq!(hit.item, Item::Enterprise(0));
        assert!(hit.named && hit.confident, "{hit:?}");
    }

    #[test]
    fn a_service_word_in_a_company_name_is_no_service() {
        let k = knowledge(
            r#"
[[enterprise]]
id = "heartpath"
name = { zh = "心途医疗", en = "HeartPath Medical" }
summary = { zh = "研发可降解心脏支架", en = "Develops bioresorbable heart stents" }
tags = ["心脏支架", "stents"]
[[faq]]
id = "clinic"
questions = ["园区有医务室吗？", "Is there a clinic?"]
answer = { zh = "医务室在一层", en = "The clinic is on the ground floor" }
tags = ["医务室", "clinic"]
"#,
        );
        let idx = Index::build(&k);
        let hits = idx.search(&idx.expand(&Query::new("my colleague is bleeding, we need medical help")));
        // "Medical" in the name still matches, but is not what the company
        // is about: no strong match, so no answer by it alone.
        assert!(
            hits.iter().all(|h| h.item != Item::Enterprise(0) || !h.strong),
            "{hits:?}"
        );
    }

    #[test]
    fn a_clear_lead_through_a_concept_is_confident_beside_unknown_words() {
        // Enough other items for a word in one item to be telling.
        let others: String = (0..18)
            .map(|i| format!("[[faq]]\nid = \"f{i}\"\nquestions = [\"q{i}\"]\nanswer = \"a{i}\"\ntags = [\"t{i}\"]\n"))
            .collect();
        let k = knowledge(
            &(others
                + r#"
[[enterprise]]
id = "echo"
name = { zh = "声语听力", en = "EchoEar" }
summary = { zh = "生产隐形助听器", en = "Makes invisible hearing aids" }
tags = ["助听器", "hearing aids"]
[[enterprise]]
id = "stride"
name = { zh = "步康机器人", en = "StrideBot" }
summary = { zh = "生产下肢外骨骼", en = "Makes lower-limb exoskeletons" }
tags = ["外骨骼", "exoskeleton"]
[[faq]]
id = "parking"
questions = ["停车收费吗？", "How much is parking?"]
answer = { zh = "每次10元", en = "10 yuan per entry" }
tags = ["停车", "parking"]
"#),
        );
        let idx = Index::build(&k);
        // Most of the question is words the knowledge lacks; the one
        // concept it has (hearing) is in one item's tags, far ahead.
        let hit = top(&idx, "can't hear the tv properly, everything sounds muffled").unwrap();
        assert_eq!(hit.item, Item::Enterprise(0));
        assert!(hit.coverage < MIN_COVERAGE_CONCEPT && hit.confident, "{hit:?}");
        // No lead without a concept or word in a name or tag.
        let none = top(&idx, "watching the tv properly");
        assert!(none.as_ref().is_none_or(|h| !h.confident), "{none:?}");
    }

    #[test]
    fn a_number_the_knowledge_lacks_is_no_subject() {
        let idx = Index::build(&kb());
        let with = top(&idx, "parking for 20 cars").unwrap();
        let without = top(&idx, "parking for cars").unwrap();
        assert_eq!(with.item, Item::Faq(0));
        // The number does not lower the coverage (and the word counted
        // after it is a unit: see `after_number`).
        assert!(
            with.coverage >= without.coverage - 1e-6,
            "{} {}",
            with.coverage,
            without.coverage
        );
    }

    #[test]
    fn unrelated_questions_are_not_confident() {
        let idx = Index::build(&kb());
        assert!(top(&idx, "what is the weather tomorrow").is_none_or(|h| !h.confident));
    }

    #[test]
    fn a_command_phrase_is_not_its_word() {
        let mine = PhraseSet::new(&["/my", "my registrations"]);
        assert!(mine.find(&Query::new("where do I leave my car")).is_empty());
        assert_eq!(mine.find(&Query::new("/my")).len(), 1);
        assert!(mine.find(&Query::new("/mybook")).is_empty());
        assert_eq!(mine.find(&Query::new("show my registrations")).len(), 1);
    }

    #[test]
    fn field_aliases_are_found_as_phrases() {
        let idx = Index::build(&kb());
        let q = Query::new("有做低空经济的公司吗");
        let found = idx.fields_in(&q);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].1, vec![(2, 6)]);
        let rest = q.without(&found[0].1);
        assert!(rest.terms().iter().all(|t| t.text != "低空"));
        assert_eq!(idx.fields_in(&Query::new("any UAV makers")).len(), 1);
        assert_eq!(idx.fields_in(&Query::new("Which drones")).len(), 1);
    }

    #[test]
    fn a_unit_or_a_day_beside_the_subject_is_no_subject() {
        let idx = Index::build(&kb());
        let plain = top(&idx, "parking").unwrap();
        for q in [
            "parking for 20 people on thursday",
            "parking for a 30-person team tomorrow",
        ] {
            let hit = top(&idx, q).unwrap();
            assert_eq!(hit.item, Item::Faq(0), "{q}");
            assert!(hit.confident, "{q}");
        }
        let hit = top(&idx, "parking for 20 people on thursday").unwrap();
        assert!((hit.coverage - plain.coverage).abs() < 1e-6, "{}", hit.coverage);
        assert!(after_number("a room for 20 person", 12));
        assert!(after_number("a 30-people room", 5));
        assert!(!after_number("a room for people", 11));
    }

    #[test]
    fn an_faq_is_about_its_tags_not_the_wording_of_its_question() {
        let text = r#"
[[faq]]
id = "visitors"
questions = ["How do visitors get in?", "可以带宠物来上班吗？"]
answer = { zh = "访客登记", en = "Register visitors in the app" }
tags = ["visitors"]
[[faq]]
id = "hours"
questions = ["When does the gate open?"]
answer = { zh = "七点开门", en = "7:00 to 23:00" }
tags = ["opening hours", "access"]
[[faq]]
id = "lost-card"
questions = ["What if I lose my staff card?"]
answer = { zh = "补办工卡", en = "Get a new one at the desk" }
tags = ["staff card"]
"#;
        let idx = Index::build(&knowledge(text));
        let concept = |id: &str| {
            (0..idx.lexicon.len() as u32)
                .find(|&c| idx.lexicon.id(c) == id)
                .unwrap()
        };
        let zones = |c: u32, doc: u32| {
            idx.concept_postings[c as usize]
                .iter()
                .find(|p| p.doc == doc)
                .map(|p| p.zones)
                .unwrap()
        };
        // "get in" is the opening hours' topic (their tag): incidental in
        // the visitors' question, no rank bonus there.
        let access = concept("access");
        assert!(zones(access, 0) & INCIDENTAL != 0);
        assert!(zones(access, 1) & INCIDENTAL == 0);
        let r = Resolved {
            postings: &idx.concept_postings[access as usize],
            factor: 1.0,
            df: idx.concept_df[access as usize],
            idf: 1.0,
            concept: true,
            ask: false,
            spans: Vec::new(),
        };
        let gain = |doc: u32| {
            let p = r.postings.iter().find(|p| p.doc == doc).unwrap();
            idx.gain(&r, p)
        };
        assert!(gain(1) > gain(0));
        // "lose" is no other item's tag: it stays what its FAQ is about.
        let lost = concept("lost-found");
        assert!(zones(lost, 2) & INCIDENTAL == 0);
        // A word only the stored question has weighs as the answer's words.
        let p = idx.postings["上班"].iter().find(|p| p.doc == 0).unwrap();
        assert_eq!(p.zones, QUESTION);
        assert!((p.tf - W_BODY).abs() < 1e-6, "{}", p.tf);
        let p = idx.postings["visitor"].iter().find(|p| p.doc == 0).unwrap();
        assert!(p.tf > W_BODY, "{}", p.tf);
    }

    #[test]
    fn a_field_word_inside_an_event_short_name_is_the_event() {
        let text = r#"
[[field]]
id = "fabrics"
name = { zh = "面料与纺织", en = "fabrics and textiles" }
aliases = ["面料", "fabric"]
[[event]]
id = "expo"
title = { zh = "国际面料博览会", en = "International Fabric Expo" }
starts_at = "2027-03-18T09:00:00+08:00"
venue = { zh = "会展中心", en = "Expo Center" }
summary = { zh = "三天展会", en = "A three-day show" }
tags = ["面料展", "fabric expo"]
"#;
        let idx = Index::build(&knowledge(text));
        let q = idx.expand(&Query::new("面料展几号开幕"));
        let (_, spans) = idx.fields_in(&q).pop().unwrap();
        assert!(spans.iter().all(|&s| idx.in_event_tag(&q, s)));
        let q = idx.expand(&Query::new("when is the fabric expo"));
        let (_, spans) = idx.fields_in(&q).pop().unwrap();
        assert!(spans.iter().all(|&s| idx.in_event_tag(&q, s)));
        // The field's word alone is the field.
        let q = idx.expand(&Query::new("做面料的公司"));
        let (_, spans) = idx.fields_in(&q).pop().unwrap();
        assert!(!spans.iter().any(|&s| idx.in_event_tag(&q, s)));
    }
}
