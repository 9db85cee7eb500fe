//! Reading an answer for each input kind. A bad answer gives the reason,
//! as a phrasebook key with its arguments, so the person is told what is
//! wrong in their language.

use unicode_normalization::UnicodeNormalization;

use crate::search::text::{normalize, terms};

/// Why an answer was refused: a phrasebook text and its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub key: &'static str,
    pub args: Vec<(&'static str, String)>,
}

impl Refusal {
    pub fn new(key: &'static str) -> Refusal {
        Refusal { key, args: Vec::new() }
    }

    pub fn with(mut self, name: &'static str, value: impl ToString) -> Refusal {
        self.args.push((name, value.to_string()));
        self
    }
}

/// Free text between `min` and `max` characters (control characters removed).
pub fn text(answer: &str, min: usize, max: usize) -> Result<String, Refusal> {
    let clean: String = answer.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    let n = clean.chars().count();
    if n < min {
        return Err(Refusal::new("input_too_short").with("min", min));
    }
    if n > max {
        return Err(Refusal::new("input_too_long").with("max", max));
    }
    Ok(clean)
}

/// A mobile number: mainland China (11 digits, 1[3-9]…, optionally +86) or
/// international with a leading `+` (8 to 15 digits). Spaces, dashes and
/// brackets are ignored; full-width digits are accepted.
pub fn phone(answer: &str) -> Result<String, Refusal> {
    let s: String = answer
        .nfkc()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let (plus, digits) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s.as_str()),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::new("input_bad_phone"));
    }
    let mainland = |d: &str| d.len() == 11 && d.starts_with('1') && matches!(d.as_bytes()[1], b'3'..=b'9');
    if !plus {
        return if mainland(digits) {
            Ok(digits.to_string())
        } else {
            Err(Refusal::new("input_bad_phone"))
        };
    }
    if let Some(cn) = digits.strip_prefix("86") {
        return if mainland(cn) {
            Ok(format!("+{digits}"))
        } else {
            Err(Refusal::new("input_bad_phone"))
        };
    }
    if (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
        Ok(format!("+{digits}"))
    } else {
        Err(Refusal::new("input_bad_phone"))
    }
}

/// An email address of the usual shape (`name@domain.tld`).
pub fn email(answer: &str) -> Result<String, Refusal> {
    let s = answer.trim();
    let ok = s.len() <= 254
        && !s.chars().any(char::is_whitespace)
        && s.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !domain.contains("..")
        });
    if ok {
        Ok(s.to_string())
    } else {
        Err(Refusal::new("input_bad_email"))
    }
}

/// A whole number between `min` and `max`; the first number in the answer
/// counts ("约200平米" is 200).
pub fn number(answer: &str, min: i64, max: i64) -> Result<String, Refusal> {
    let norm: String = answer.nfkc().collect();
    let digits: String = norm
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(|c| *c != ',')
        .collect();
    let bad = || Refusal::new("input_bad_number").with("min", min).with("max", max);
    let n: i64 = digits.parse().map_err(|_| bad())?;
    if n < min || n > max {
        return Err(bad());
    }
    Ok(n.to_string())
}

/// An option's number in a list of `count` (1-based), if the answer is one.
pub fn option_number(answer: &str, count: usize) -> Option<Result<usize, Refusal>> {
    let norm: String = answer.nfkc().filter(|c| !c.is_whitespace()).collect();
    let norm = norm.trim_end_matches(['.', '。', '号']).trim_start_matches(['第', '#']);
    let n: usize = norm.parse().ok()?;
    Some(if (1..=count).contains(&n) {
        Ok(n - 1)
    } else {
        Err(Refusal::new("input_bad_choice").with("count", count))
    })
}

/// How well an answer names a label: the share of the answer's terms found
/// in the label (1.0 when one contains the other).
pub fn name_match(answer: &str, label: &str) -> f32 {
    let (a, l) = (compact(answer), compact(label));
    if a.is_empty() || l.is_empty() {
        return 0.0;
    }
    if l.contains(&a) || a.contains(&l) {
        return 1.0;
    }
    let label_terms: Vec<String> = terms(&normalize(label), false).into_iter().map(|t| t.text).collect();
    let answer_terms: Vec<String> = terms(&normalize(answer), false).into_iter().map(|t| t.text).collect();
    if answer_terms.is_empty() {
        return 0.0;
    }
    let hits = answer_terms.iter().filter(|t| label_terms.contains(t)).count();
    hits as f32 / answer_terms.len() as f32
}

fn compact(s: &str) -> String {
    normalize(s).chars().filter(|c| c.is_alphanumeric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones() {
        assert_eq!(phone("138 1234 5678").unwrap(), "13812345678");
        assert_eq!(phone("１３８１２３４５６７８").unwrap(), "13812345678");
        assert_eq!(phone("+86 138-1234-5678").unwrap(), "+8613812345678");
        assert_eq!(phone("+44 20 7946 0958").unwrap(), "+442079460958");
        for bad in [
            "12812345678",
            "1381234567",
            "138123456789",
            "abc",
            "+86 12345",
            "",
            "+0044123456",
            "138-1234-567x",
        ] {
            assert!(phone(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn texts_and_numbers() {
        assert_eq!(text("  张   三 ", 2, 30).unwrap(), "张 三");
        assert_eq!(text("张", 2, 30).unwrap_err().key, "input_too_short");
        assert_eq!(text(&"x".repeat(31), 2, 30).unwrap_err().key, "input_too_long");
        assert_eq!(number("约200平米", 10, 10000).unwrap(), "200");
        assert_eq!(number("1,500", 10, 10000).unwrap(), "1500");
        assert!(number("5", 10, 10000).is_err());
        assert!(number("many", 10, 10000).is_err());
    }

    #[test]
    fn emails() {
        assert!(email("a.b@example.com").is_ok());
        for bad in [
            "a@b",
            "@example.com",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
        ] {
            assert!(email(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn choices_by_number_and_name() {
        assert_eq!(option_number("2", 3), Some(Ok(1)));
        assert_eq!(option_number("第3", 3), Some(Ok(2)));
        assert!(matches!(option_number("4", 3), Some(Err(_))));
        assert_eq!(option_number("Web3.0", 3), None);
        assert!(name_match("Web3.0论坛", "首钢园Web3.0国际论坛") >= 0.99);
        assert!(name_match("awards night", "Harbor Innovation Awards Night") >= 0.99);
        assert!(name_match("论坛", "科幻剧本工作坊") < 0.5);
    }
}
