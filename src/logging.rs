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

#[cfg(test)]
mod tests {
    use super::mask_phone;

    #[test]
    fn phones_are_masked() {
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_phone("+4420794601"), "+44****4601");
        assert_eq!(mask_phone("123"), "***");
        assert!(!mask_phone("+8613812345678").contains("1234"));
    }
}
