//! Tracing set up once, to stderr: readable text by default, JSON with
//! `[log] format = "json"`; the level comes from `RUST_LOG`. Personal data
//! is masked before it reaches a log line ([`mask_phone`]); secrets are
//! never logged (the configuration's `Debug` hides them).

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `default_level` applies when `RUST_LOG`
/// is unset (`warn` for one-shot commands, so their output stays clean).
pub fn init(json: bool, rust_log: Option<&str>, default_level: &str) {
    let filter = rust_log
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

/// A phone number with its middle digits hidden: `138****5678`,
/// `+44******789`.
pub fn mask_phone(phone: &str) -> String {
    let chars: Vec<char> = phone.chars().collect();
    let n = chars.len();
    if n <= 4 {
        return "*".repeat(n);
    }
    let keep_head = if chars[0] == '+' { 3 } else { 3.min(n - 4) };
    let keep_tail = if n >= 11 { 4 } else { 2 };
    chars
        .iter()
        .enumerate()
        .map(|(i, c)| if i < keep_head || i >= n - keep_tail { *c } else { '*' })
        .collect()
}

/// A text with every phone number in it masked (a run of seven or more
/// digits, with an optional leading `+` and spaces or dashes between):
/// for texts people typed, kept for staff.
pub fn mask_phones_in(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let plus = chars[i] == '+' && chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if !(plus || chars[i].is_ascii_digit()) {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        if plus {
            digits.push('+');
            i += 1;
        }
        let mut end = i;
        while i < chars.len() && (chars[i].is_ascii_digit() || matches!(chars[i], ' ' | '-')) {
            if chars[i].is_ascii_digit() {
                digits.push(chars[i]);
                end = i + 1;
            }
            i += 1;
        }
        i = end;
        if digits.trim_start_matches('+').len() >= 7 {
            out.push_str(&mask_phone(&digits));
        } else {
            out.extend(&chars[start..end]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{mask_phone, mask_phones_in};

    #[test]
    fn phones_in_a_text_are_masked() {
        assert_eq!(
            mask_phones_in("我的电话13812345678，请回电"),
            "我的电话138****5678，请回电"
        );
        assert_eq!(mask_phones_in("call +44 20 7946 0958 now"), "call +44******0958 now");
        assert_eq!(mask_phones_in("room 301 at 9:30, 2027"), "room 301 at 9:30, 2027");
    }

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+4420794601"), "+44****4601");
        assert_eq!(mask_phone("123"), "***");
        assert!(!mask_phone("+8613812345678").contains("1234"));
    }
}
