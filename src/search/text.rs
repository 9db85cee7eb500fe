//! Text analysis shared by the index and the queries: Unicode NFKC and case
//! folding, Chinese character bigrams, English words with light stemming,
//! stop words, and a small edit distance for typos.
//!
//! Bigrams were chosen over a segmenter (jieba) after measuring both on the
//! eval sets: names and tags are short, bigrams never meet an out-of-
//! vocabulary word, and they cost nothing to build (docs/PERFORMANCE.md).

use unicode_normalization::UnicodeNormalization;

use crate::knowledge::is_han;

/// One analysed term and where it came from in the normalized text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub text: String,
    /// Char offsets [start, end) in the normalized text.
    pub span: (usize, usize),
    /// A Chinese bigram or single character (not an English word).
    pub han: bool,
    /// The concept this term stands for (see `concepts`; its `text` is the
    /// concept's id), or `None` for a word.
    pub concept: Option<u32>,
}

/// NFKC, lower case, and full-width punctuation folded.
pub fn normalize(s: &str) -> String {
    // Most text is already in NFKC, which the quick check tells cheaply.
    if s.is_ascii() {
        s.to_ascii_lowercase()
    } else if unicode_normalization::is_nfkc_quick(s.chars()) == unicode_normalization::IsNormalized::Yes {
        s.chars().flat_map(char::to_lowercase).collect()
    } else {
        s.nfkc().flat_map(char::to_lowercase).collect()
    }
}

/// English words that say nothing about what is asked (checked before
/// stemming). "park" is here because every question is about the park
/// ("parking" is not: it is checked before stemming).
#[rustfmt::skip]
const EN_STOP: &[&str] = &[
    "a", "about", "all", "am", "an", "and", "any", "anyone", "anything", "are", "as", "at", "be",
    "by", "can", "could", "do", "does", "for", "from", "get", "give", "got", "have", "has", "he",
    "her", "here", "hi", "how", "i", "if", "in", "into", "is", "it", "its", "know", "let", "like",
    "me", "my", "need", "of", "on", "or", "our", "please", "s", "she", "so", "some", "tell", "that",
    "the", "their", "them", "there", "these", "they", "this", "those", "to", "u", "us", "want",
    "was", "we", "what", "whats", "when", "where", "which", "who", "whom", "why", "will", "with",
    "would", "you", "your", "company", "companies", "enterprise", "enterprises", "firm", "firms", "park", "parks",
    "business", "businesses", "one", "ones", "thing", "things", "just", "should", "much", "many",
    "people", "around", "somewhere", "someone", "somebody", "anybody", "anywhere", "place",
    "places", "go", "come", "way", "re", "ve", "ll", "m", "t", "d", "while", "needs", "wants", "also",
    "still", "really", "actually", "maybe", "other", "something", "then", "than", "very", "too",
    "only", "even", "quite", "more", "after", "before", "during", "ok", "okay", "hello", "thanks",
    "everywhere", "everything", "everyone", "everybody", "stuff", "again", "already", "lot", "lots",
    "bit", "hey", "guys",
];

/// Characters that carry no meaning on their own in a question; a bigram
/// holding one of them is dropped.
const ZH_STOP_CHARS: &str = "的了吗呢吧啊呀嘛么哪谁是在和与或及这那个您你我他她它们请哦呗都也还就吗么";

const ZH_STOP_BIGRAMS: &[&str] = &[
    "什么", "怎么", "怎样", "多少", "有没", "没有", "可以", "一下", "请问", "公司", "企业", "哪些", "如何", "为什",
    "有什", "能不", "不能", "是否", "介绍", "知道", "告诉", "主要", "一些", "需要", "应该", "想要", "一个", "现在",
    "园区",
];

pub fn is_stop_en(word: &str) -> bool {
    EN_STOP.contains(&word)
}

fn is_stop_bigram(b: &str) -> bool {
    b.chars().any(|c| ZH_STOP_CHARS.contains(c)) || ZH_STOP_BIGRAMS.contains(&b)
}

/// The text at `span` (character offsets) of normalized text, as written.
pub fn said(norm: &str, span: (usize, usize)) -> String {
    norm.chars().skip(span.0).take(span.1 - span.0).collect()
}

/// A light English stemmer: plurals, -ing, -ed and a final e.
pub fn stem(word: &str) -> String {
    let mut w = word.to_string();
    let n = w.len();
    if n > 4 && w.ends_with("ies") {
        w.truncate(n - 3);
        w.push('y');
    } else if n > 4 && w.ends_with("sses") {
        w.truncate(n - 2);
    } else if n > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("sis") {
        w.truncate(n - 1);
    }
    let n = w.len();
    if n > 5 && w.ends_with("ing") {
        w.truncate(n - 3);
    } else if n > 4 && w.ends_with("ed") && !w.ends_with("eed") {
        w.truncate(n - 2);
    }
    let b = w.as_bytes();
    let n = b.len();
    // A doubled consonant ("shopp") or a final e ("make") goes.
    let doubled = n > 3
        && b[n - 1] == b[n - 2]
        && !matches!(b[n - 1], b'l' | b's' | b'z' | b'e' | b'o')
        && b[n - 1].is_ascii_alphabetic();
    // A final e goes ("make", "making"), except in four-letter words in
    // -re: "care" is not "car", "fire" not "fir".
    let final_e = n > 3 && b[n - 1] == b'e' && !(n == 4 && b[n - 2] == b'r');
    if doubled || final_e {
        w.truncate(n - 1);
    }
    w
}

/// Analyses normalized text into terms. `keep_stops` keeps stop words (for
/// matching phrases), otherwise they are dropped.
pub fn terms(norm: &str, keep_stops: bool) -> Vec<Term> {
    let chars: Vec<char> = norm.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_han(c) {
            let start = i;
            while i < chars.len() && is_han(chars[i]) {
                i += 1;
            }
            han_run(&chars[start..i], start, keep_stops, &mut out);
        } else if c.is_alphanumeric() {
            let start = i;
            while i < chars.len() && chars[i].is_alphanumeric() && !is_han(chars[i]) {
                i += 1;
            }
            latin_run(&chars[start..i], start, keep_stops, &mut out);
        } else {
            i += 1;
        }
    }
    out
}

/// A run of letters and digits: words are stemmed; letters and digits are
/// split apart ("web3" → web, 3). For scoring, a mixed token is also kept
/// whole ("3d", "l4"), and lone single characters, which mean nothing on
/// their own, are dropped.
fn latin_run(run: &[char], offset: usize, keep_stops: bool, out: &mut Vec<Term>) {
    let mixed = run.iter().any(|c| c.is_numeric()) && run.iter().any(|c| !c.is_numeric());
    if mixed && !keep_stops {
        out.push(Term {
            text: run.iter().collect(),
            span: (offset, offset + run.len()),
            han: false,
            concept: None,
        });
    }
    let mut i = 0;
    while i < run.len() {
        let start = i;
        let digit = run[i].is_numeric();
        while i < run.len() && run[i].is_numeric() == digit {
            i += 1;
        }
        let word: String = run[start..i].iter().collect();
        if !keep_stops && (is_stop_en(&word) || i - start == 1) {
            continue;
        }
        let text = if digit { word } else { stem(&word) };
        out.push(Term {
            text,
            span: (offset + start, offset + i),
            han: false,
            concept: None,
        });
    }
}

fn han_run(run: &[char], offset: usize, keep_stops: bool, out: &mut Vec<Term>) {
    if run.len() == 1 {
        if keep_stops || !ZH_STOP_CHARS.contains(run[0]) {
            out.push(Term {
                text: run[0].to_string(),
                span: (offset, offset + 1),
                han: true,
                concept: None,
            });
        }
        return;
    }
    for k in 0..run.len() - 1 {
        let b: String = run[k..k + 2].iter().collect();
        if keep_stops || !is_stop_bigram(&b) {
            out.push(Term {
                text: b,
                span: (offset + k, offset + k + 2),
                han: true,
                concept: None,
            });
        }
    }
}

/// Optimal-string-alignment distance (edits and swaps of neighbours), or
/// `None` when it exceeds `max`.
pub fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(w).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        let mut row_min = usize::MAX;
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
            row_min = row_min.min(v);
        }
        if row_min > max {
            return None;
        }
    }
    let v = d[a.len() * w + b.len()];
    (v <= max).then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(s: &str) -> Vec<String> {
        terms(&normalize(s), false).into_iter().map(|t| t.text).collect()
    }

    #[test]
    fn chinese_becomes_bigrams_without_particles() {
        assert_eq!(texts("伴伴在哪栋楼？"), vec!["伴伴", "栋楼"]);
        assert_eq!(
            texts("做工业机器人的企业"),
            vec!["做工", "工业", "业机", "机器", "器人"]
        );
    }

    #[test]
    fn english_is_folded_stemmed_and_split_from_digits() {
        assert_eq!(texts("Which Drones?"), vec!["dron"]);
        assert_eq!(texts("companies making robots"), vec!["mak", "robot"]);
        assert_eq!(texts("parking in the park"), vec!["park"]);
        assert_eq!(texts("Web3.0"), vec!["web3", "web"]);
        assert_eq!(texts("3D models, ROS 2"), vec!["3d", "model", "ros"]);
        assert_eq!(texts("ＶＦＸ"), vec!["vfx"]);
        assert_eq!(stem("machined"), stem("machining"));
        assert_eq!(stem("shopping"), "shop");
        assert_eq!(stem("services"), stem("service"));
        assert_ne!(stem("care"), stem("cars"));
    }

    #[test]
    fn normalizing_skips_nothing_it_must_do() {
        for s in [
            "Hello WORLD",
            "首钢园ＶＦＸ",
            "ﬁle Ⅻ ㎏",
            "Café",
            "cafe\u{301}",
            "ÀÉÎ 中文",
            "İstanbul",
        ] {
            let full: String = s.nfkc().flat_map(char::to_lowercase).collect();
            assert_eq!(normalize(s), full, "{s}");
        }
    }

    #[test]
    fn mixed_language_keeps_both() {
        assert_eq!(texts("有做drone的吗"), vec!["有做", "dron"]);
    }

    #[test]
    fn edit_distance_counts_swaps_once() {
        assert_eq!(edit_distance("guangsou", "guangsuo", 1), Some(1));
        assert_eq!(edit_distance("kitten", "sitting", 2), None);
        assert_eq!(edit_distance("abc", "abc", 0), Some(0));
    }
}
