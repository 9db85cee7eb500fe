//! Replies in Telegram's form: plain text (no parse mode, so nothing needs
//! escaping) split under the 4,096-character limit on line boundaries, and
//! a reply's choices as an inline keyboard whose buttons carry the choice's
//! value as callback data (at most 64 bytes; a longer value travels as a
//! short digest, see [`LongValues`]).

use std::collections::HashMap;
use std::sync::Mutex;

use sha1::{Digest, Sha1};
use teloxide::types::{InlineKeyboardButton, InlineKeyboardMarkup};

use crate::message::Reply;

/// Telegram's limit for one text message, in UTF-16 code units (what it
/// counts as characters).
pub const TEXT_LIMIT: usize = 4096;
/// Telegram's limit for a button's callback data, in bytes.
pub const CALLBACK_LIMIT: usize = 64;
/// The mark of callback data that is a digest of a longer value.
const DIGEST_MARK: char = '#';
/// How many long values are remembered (a press after they were forgotten
/// is taken as the typed label instead).
const LONG_VALUES_KEPT: usize = 10_000;

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub text: String,
    pub keyboard: Option<InlineKeyboardMarkup>,
}

/// Choice values too long for callback data, by their digest.
#[derive(Default)]
pub struct LongValues {
    values: Mutex<HashMap<String, String>>,
}

impl LongValues {
    /// The callback data for `value`: the value itself when it fits (and
    /// does not start with the digest mark), else its digest.
    pub fn data(&self, value: &str) -> String {
        if value.len() <= CALLBACK_LIMIT && !value.starts_with(DIGEST_MARK) {
            return value.to_string();
        }
        let digest: String = Sha1::digest(value.as_bytes())
            .iter()
            .take(12)
            .map(|b| format!("{b:02x}"))
            .collect();
        let data = format!("{DIGEST_MARK}{digest}");
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        if values.len() >= LONG_VALUES_KEPT {
            values.clear();
        }
        values.insert(data.clone(), value.to_string());
        data
    }

    /// The value pressed: `Some` for plain data and remembered digests,
    /// `None` for a digest no longer known.
    pub fn value(&self, data: &str) -> Option<String> {
        if !data.starts_with(DIGEST_MARK) {
            return Some(data.to_string());
        }
        self.values.lock().unwrap_or_else(|e| e.into_inner()).get(data).cloned()
    }
}

/// The messages for `replies`, in order: each reply's text in parts, its
/// keyboard on the last part.
pub fn render(replies: &[Reply], long: &LongValues) -> Vec<Part> {
    let mut parts = Vec::new();
    for reply in replies {
        let keyboard = keyboard(reply, long);
        let mut texts = split(&reply.text, TEXT_LIMIT);
        if texts.is_empty() {
            if keyboard.is_none() {
                continue;
            }
            // Telegram sends no empty text; buttons need one.
            texts.push("⬇".to_string());
        }
        let last = texts.len() - 1;
        for (i, text) in texts.into_iter().enumerate() {
            parts.push(Part {
                text,
                keyboard: if i == last { keyboard.clone() } else { None },
            });
        }
    }
    parts
}

/// One button a row, numbered as the console and WeChat number them, so
/// typing the number works the same.
fn keyboard(reply: &Reply, long: &LongValues) -> Option<InlineKeyboardMarkup> {
    if reply.choices.is_empty() {
        return None;
    }
    let rows = reply
        .choices
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![InlineKeyboardButton::callback(
                format!("{}. {}", i + 1, c.label),
                long.data(&c.value),
            )]
        })
        .collect::<Vec<_>>();
    Some(InlineKeyboardMarkup::new(rows))
}

fn units(s: &str) -> usize {
    s.encode_utf16().count()
}

/// `text` in pieces of at most `limit` UTF-16 units, cut after a line
/// break where there is one (a single line longer than `limit` is cut
/// between characters). Pieces are trimmed of the line breaks they were
/// cut at; blank pieces are dropped.
pub fn split(text: &str, limit: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut current_units = 0;
    for line in text.split_inclusive('\n') {
        let n = units(line);
        if current_units + n <= limit {
            current.push_str(line);
            current_units += n;
            continue;
        }
        if !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
            current_units = 0;
        }
        if n <= limit {
            current.push_str(line);
            current_units = n;
            continue;
        }
        // A line longer than a whole message: cut between characters.
        for ch in line.chars() {
            let w = ch.len_utf16();
            if current_units + w > limit {
                pieces.push(std::mem::take(&mut current));
                current_units = 0;
            }
            current.push(ch);
            current_units += w;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
        .into_iter()
        .map(|p| p.trim_end_matches(['\n', '\r']).to_string())
        .filter(|p| !p.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Choice;

    #[test]
    fn short_text_is_one_part() {
        assert_eq!(split("hello\nworld", 4096), vec!["hello\nworld"]);
        assert!(split("", 4096).is_empty());
    }

    #[test]
    fn long_text_is_cut_on_line_boundaries_within_the_limit() {
        let line = "活动：首钢园Web3.0国际论坛，地点：三高炉".repeat(3);
        let text = (0..400).map(|i| format!("{i}. {line}")).collect::<Vec<_>>().join("\n");
        let pieces = split(&text, TEXT_LIMIT);
        assert!(pieces.len() > 1);
        for p in &pieces {
            assert!(units(p) <= TEXT_LIMIT, "{} units", units(p));
            assert!(!p.starts_with('\n') && !p.ends_with('\n'));
        }
        // Nothing lost, nothing cut inside a line.
        assert_eq!(pieces.join("\n"), text);
    }

    #[test]
    fn a_line_longer_than_the_limit_is_cut_between_characters() {
        // Astral characters count two units each.
        let text = "😀".repeat(3000);
        let pieces = split(&text, TEXT_LIMIT);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| units(p) <= TEXT_LIMIT));
        assert_eq!(pieces.concat(), text);
    }

    fn choice(value: &str, label: &str) -> Choice {
        Choice {
            value: value.into(),
            label: label.into(),
        }
    }

    #[test]
    fn choices_become_numbered_buttons_on_the_last_part() {
        let long = LongValues::default();
        let reply = Reply {
            text: format!("{}\nPick one", "x".repeat(5000)),
            choices: vec![choice("web3-forum", "Web3.0 Forum"), choice("+more", "More (3 left)")],
        };
        let parts = render(&[reply], &long);
        assert_eq!(parts.len(), 2);
        assert!(parts[0].keyboard.is_none());
        let kb = parts[1].keyboard.as_ref().unwrap();
        let buttons: Vec<_> = kb.inline_keyboard.iter().flatten().collect();
        assert_eq!(buttons.len(), 2);
        assert_eq!(buttons[0].text, "1. Web3.0 Forum");
        let json = serde_json::to_value(buttons[1]).unwrap();
        assert_eq!(json["callback_data"], "+more");
    }

    #[test]
    fn callback_data_stays_within_64_bytes() {
        let long = LongValues::default();
        assert_eq!(long.data("web3-forum"), "web3-forum");
        let value = "选项".repeat(30); // 180 bytes
        let data = long.data(&value);
        assert!(data.len() <= CALLBACK_LIMIT, "{data}");
        assert_eq!(long.value(&data).as_deref(), Some(value.as_str()));
        // A value that looks like a digest is itself sent as one.
        let tricky = "#abc";
        let data = long.data(tricky);
        assert_ne!(data, tricky);
        assert_eq!(long.value(&data).as_deref(), Some(tricky));
        // A digest no longer known (after a restart) is not guessed.
        assert_eq!(LongValues::default().value(&data), None);
    }

    #[test]
    fn an_empty_text_with_buttons_still_sends() {
        let parts = render(
            &[Reply {
                text: String::new(),
                choices: vec![choice("a", "A")],
            }],
            &LongValues::default(),
        );
        assert_eq!(parts.len(), 1);
        assert!(!parts[0].text.is_empty());
        assert!(render(&[Reply::text("")], &LongValues::default()).is_empty());
    }
}
