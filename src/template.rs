//! `{placeholder}` templates, filled in one pass.
//!
//! The template is read once from left to right; each `{name}` found in the
//! *template* is replaced by its value. Values are copied as they are and
//! never scanned again, so a person whose name is `{phone}` is shown as
//! `{phone}`, not as their phone number. Braces that do not form a known
//! placeholder are kept as written.

use crate::knowledge::{Lang, Text};

/// Whether `name` can be a placeholder name (`[A-Za-z0-9_]+`).
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Placeholders `{name}` used in `s`, in order.
pub fn placeholders(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) if is_name(&after[..j]) => {
                out.push(&after[..j]);
                rest = &after[j + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// Replaces each `{name}` of `template` with its value from `args`, in one
/// pass. A placeholder without a value is left as written.
pub fn fill<K: AsRef<str>, V: AsRef<str>>(template: &str, args: &[(K, V)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let value = after.find('}').filter(|&j| is_name(&after[..j])).and_then(|j| {
            args.iter()
                .find(|(k, _)| k.as_ref() == &after[..j])
                .map(|(_, v)| (j, v))
        });
        match value {
            Some((j, v)) => {
                out.push_str(v.as_ref());
                rest = &after[j + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A localized template filled in every language it has; `args` gives each
/// placeholder's value per language.
pub fn fill_text(template: &Text, args: &[(&str, &dyn Fn(Lang) -> String)]) -> Text {
    let for_lang = |s: &str, lang: Lang| {
        let values: Vec<(&str, String)> = args.iter().map(|(k, f)| (*k, f(lang))).collect();
        fill(s, &values)
    };
    match template {
        Text::Plain(s) => Text::Localized(
            [Lang::Zh, Lang::En]
                .into_iter()
                .map(|l| (l.code().to_string(), for_lang(s, l)))
                .collect(),
        ),
        Text::Localized(m) => Text::Localized(
            m.iter()
                .map(|(code, s)| {
                    let lang = if code == "en" { Lang::En } else { Lang::Zh };
                    (code.clone(), for_lang(s, lang))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_never_expanded_again() {
        let t = "Name: {name}\nPhone: {phone}\nCode: {code}";
        let out = fill(t, &[("name", "{phone}"), ("phone", "13812345678"), ("code", "{name}")]);
        assert_eq!(out, "Name: {phone}\nPhone: 13812345678\nCode: {name}");
    }

    #[test]
    fn unknown_and_broken_braces_stay() {
        assert_eq!(fill("{a} {b} { c } {} {", &[("a", "1")]), "1 {b} { c } {} {");
        assert_eq!(fill("中文{a}字", &[("a", "值")]), "中文值字");
    }

    #[test]
    fn placeholders_are_found() {
        assert_eq!(placeholders("{a} and {b_c} but not { x } or {}"), vec!["a", "b_c"]);
    }

    #[test]
    fn localized_templates_fill_each_language() {
        let t = Text::Localized(
            [
                ("zh".to_string(), "{event}：{code}".to_string()),
                ("en".to_string(), "{event}: {code}".to_string()),
            ]
            .into_iter()
            .collect(),
        );
        let title = |l: Lang| {
            if l == Lang::Zh {
                "论坛".to_string()
            } else {
                "Forum {code}".to_string()
            }
        };
        let code = |_: Lang| "K7M4QX".to_string();
        let out = fill_text(&t, &[("event", &title), ("code", &code)]);
        assert_eq!(out.get(Lang::Zh), "论坛：K7M4QX");
        assert_eq!(out.get(Lang::En), "Forum {code}: K7M4QX");
    }
}
