//! Telegram updates as the core's [`Inbound`]: texts, commands (`/start`
//! with its deep-link payload), button presses, and what a group chat
//! leaves for others. Pure translation, no I/O.

use teloxide::types::{CallbackQuery, CallbackQueryId, ChatId, Message, MessageId, Update, UpdateKind, User, UserId};

use super::render::LongValues;
use crate::knowledge::Lang;
use crate::message::{Channel, Identity, Inbound, Input};

/// Who the bot is on Telegram (from `getMe`).
#[derive(Debug, Clone)]
pub struct Me {
    pub id: UserId,
    /// Without the `@`.
    pub username: String,
}

/// An update for the core, with what the adapter must do besides
/// answering.
#[derive(Debug)]
pub struct Incoming {
    pub chat: ChatId,
    pub inbound: Inbound,
    pub pressed: Option<Pressed>,
}

/// A button press: its query must be answered, and the keyboard it was
/// pressed on is removed so it cannot be pressed into a later step.
#[derive(Debug)]
pub struct Pressed {
    pub query: CallbackQueryId,
    pub message: Option<MessageId>,
}

/// The deep-link payload of `/start` as the core's link: Telegram allows
/// only `A-Za-z0-9_-` (at most 64), so `signup-<event id>` stands for
/// `signup:<event id>` (the first `-` for the `:`).
pub fn link_from_payload(payload: &str) -> String {
    match payload.split_once('-') {
        Some((kind, rest)) if !kind.is_empty() => format!("{kind}:{rest}"),
        _ => payload.to_string(),
    }
}

/// The `/start` payload that carries the core's `link` (`signup:<id>` →
/// `signup-<id>`), or why it cannot be carried.
pub fn payload_for_link(link: &str) -> Result<String, String> {
    let payload = link.replacen(':', "-", 1);
    if payload.is_empty() || payload.len() > 64 {
        return Err(format!(
            "{link:?} makes a payload of {} characters (Telegram allows 1 to 64)",
            payload.len()
        ));
    }
    if let Some(c) = payload
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "{link:?} holds {c:?}; a Telegram deep link allows only A-Z, a-z, 0-9, _ and -"
        ));
    }
    Ok(payload)
}

/// A platform language code as the bot's language: Chinese for `zh…`,
/// English for any other (the bot speaks only these two).
pub fn lang_of(user: Option<&User>) -> Option<Lang> {
    let code = user?.language_code.as_deref()?;
    Some(if code.to_ascii_lowercase().starts_with("zh") {
        Lang::Zh
    } else {
        Lang::En
    })
}

/// The update as an [`Incoming`], or `None` for what the bot leaves alone
/// (edits, channel posts, group chatter not addressed to it, commands for
/// another bot).
pub fn translate(update: &Update, me: &Me, long: &LongValues) -> Option<Incoming> {
    let message_id = Some(update.id.0.to_string());
    match &update.kind {
        UpdateKind::Message(m) => message(m, me, message_id),
        UpdateKind::CallbackQuery(q) => pressed(q, long, message_id),
        _ => None,
    }
}

fn message(m: &Message, me: &Me, message_id: Option<String>) -> Option<Incoming> {
    let identity = Identity::new(Channel::Telegram, &m.chat.id.0.to_string())?;
    let private = m.chat.is_private();
    let input = match m.text() {
        Some(text) => {
            let text = if private {
                text.trim().to_string()
            } else {
                addressed(m, text, me)?
            };
            match command(&text, me) {
                Some(Command::Other) => return None,
                Some(Command::Start(payload)) => Input::Start {
                    payload: payload.map(|p| link_from_payload(&p)),
                },
                Some(Command::Text(t)) => Input::Text(t),
                None => Input::Text(text),
            }
        }
        // A photo, a sticker, a location…: said only to a private chat.
        None if private => Input::Unsupported(kind_of(m).to_string()),
        None => return None,
    };
    Some(Incoming {
        chat: m.chat.id,
        inbound: Inbound {
            lang: lang_of(m.from.as_ref()),
            identity,
            message_id,
            input,
        },
        pressed: None,
    })
}

/// In a group: the text of a command, a message that mentions the bot
/// (without the mention) or one that replies to it; else `None`.
fn addressed(m: &Message, text: &str, me: &Me) -> Option<String> {
    let text = text.trim();
    if text.starts_with('/') {
        return Some(text.to_string());
    }
    let mention = format!("@{}", me.username.to_lowercase());
    let lower = text.to_lowercase();
    if let Some(at) = lower.find(&mention) {
        // Lowercasing ASCII keeps byte offsets; a name is ASCII.
        let end = at + mention.len();
        if text.is_char_boundary(at) && text.is_char_boundary(end) {
            let rest = format!("{} {}", &text[..at], &text[end..]);
            return Some(rest.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    let to_me = m
        .reply_to_message()
        .and_then(|r| r.from.as_ref())
        .is_some_and(|u| u.id == me.id);
    to_me.then(|| text.to_string())
}

enum Command {
    /// `/start` with its payload.
    Start(Option<String>),
    /// Another command, as text for the core (`/events`, `/lang en`).
    Text(String),
    /// A command addressed to another bot (`/help@other_bot`).
    Other,
}

fn command(text: &str, me: &Me) -> Option<Command> {
    let rest = text.strip_prefix('/')?;
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    let (name, target) = match word.split_once('@') {
        Some((n, t)) => (n, Some(t)),
        None => (word, None),
    };
    if target.is_some_and(|t| !t.eq_ignore_ascii_case(&me.username)) {
        return Some(Command::Other);
    }
    let name = name.to_ascii_lowercase();
    if name == "start" {
        return Some(Command::Start((!args.is_empty()).then(|| args.to_string())));
    }
    Some(Command::Text(if args.is_empty() {
        format!("/{name}")
    } else {
        format!("/{name} {args}")
    }))
}

fn pressed(q: &CallbackQuery, long: &LongValues, message_id: Option<String>) -> Option<Incoming> {
    let on = q.message.as_ref()?;
    let chat = on.chat().id;
    let identity = Identity::new(Channel::Telegram, &chat.0.to_string())?;
    let data = q.data.as_deref()?;
    let input = match long.value(data) {
        Some(value) => Input::Choice(value),
        // A long value forgotten since (a restart): the label, as typed.
        None => Input::Text(label_of(on.regular_message(), data)?),
    };
    Some(Incoming {
        chat,
        inbound: Inbound {
            lang: lang_of(Some(&q.from)),
            identity,
            message_id,
            input,
        },
        pressed: Some(Pressed {
            query: q.id.clone(),
            message: Some(on.id()),
        }),
    })
}

/// The label of the button with callback `data`, without its number.
fn label_of(m: Option<&Message>, data: &str) -> Option<String> {
    let kb = m?.reply_markup()?;
    let button = kb
        .inline_keyboard
        .iter()
        .flatten()
        .find(|b| matches!(&b.kind, teloxide::types::InlineKeyboardButtonKind::CallbackData(d) if d == data))?;
    let label = button.text.split_once(". ").map_or(button.text.as_str(), |(_, l)| l);
    Some(label.to_string())
}

/// What kind of message a non-text message is, as the core logs it.
fn kind_of(m: &Message) -> &'static str {
    if m.photo().is_some() {
        "photo"
    } else if m.sticker().is_some() {
        "sticker"
    } else if m.voice().is_some() {
        "voice"
    } else if m.video().is_some() {
        "video"
    } else if m.document().is_some() {
        "document"
    } else if m.location().is_some() {
        "location"
    } else if m.contact().is_some() {
        "contact"
    } else {
        "other"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn me() -> Me {
        Me {
            id: UserId(999),
            username: "park_bot".into(),
        }
    }

    fn update(v: serde_json::Value) -> Update {
        // From text, as Telegram sends it: teloxide reads an update from a
        // `serde_json::Value` as `UpdateKind::Error`.
        let u: Update = serde_json::from_str(&v.to_string()).unwrap();
        if let UpdateKind::Error(e) = &u.kind {
            panic!("not an update teloxide reads: {e}");
        }
        u
    }

    fn text_update(chat: serde_json::Value, text: &str, lang: Option<&str>) -> Update {
        let mut from = json!({"id": 42, "is_bot": false, "first_name": "Li"});
        if let Some(l) = lang {
            from["language_code"] = json!(l);
        }
        update(json!({
            "update_id": 7,
            "message": {"message_id": 1, "date": 1_700_000_000, "chat": chat, "from": from, "text": text}
        }))
    }

    fn private() -> serde_json::Value {
        json!({"id": 42, "type": "private", "first_name": "Li"})
    }

    fn group() -> serde_json::Value {
        json!({"id": -100123, "type": "supergroup", "title": "Park"})
    }

    fn input(u: &Update) -> Option<Input> {
        translate(u, &me(), &LongValues::default()).map(|i| i.inbound.input)
    }

    #[test]
    fn deep_links_map_to_the_cores_links_and_back() {
        assert_eq!(link_from_payload("signup-web3-forum"), "signup:web3-forum");
        assert_eq!(link_from_payload("plain"), "plain");
        assert_eq!(payload_for_link("signup:web3-forum").unwrap(), "signup-web3-forum");
        assert!(payload_for_link(&format!("signup:{}", "a".repeat(60))).is_err());
        assert!(payload_for_link("signup:论坛").is_err());
        let u = text_update(private(), "/start signup-web3-forum", Some("en"));
        assert_eq!(
            input(&u),
            Some(Input::Start {
                payload: Some("signup:web3-forum".into())
            })
        );
        assert_eq!(
            input(&text_update(private(), "/start", None)),
            Some(Input::Start { payload: None })
        );
    }

    #[test]
    fn a_private_text_becomes_the_chats_identitys_message() {
        let u = text_update(private(), "  有哪些活动？ ", Some("zh-hans"));
        let i = translate(&u, &me(), &LongValues::default()).unwrap();
        assert_eq!(i.inbound.identity.as_str(), "telegram:42");
        assert_eq!(i.inbound.input, Input::Text("有哪些活动？".into()));
        assert_eq!(i.inbound.lang, Some(Lang::Zh));
        assert_eq!(i.inbound.message_id.as_deref(), Some("7"));
        let en = translate(
            &text_update(private(), "hi", Some("en-GB")),
            &me(),
            &LongValues::default(),
        );
        assert_eq!(en.unwrap().inbound.lang, Some(Lang::En));
        let none = translate(&text_update(private(), "hi", None), &me(), &LongValues::default());
        assert_eq!(none.unwrap().inbound.lang, None);
    }

    #[test]
    fn commands_reach_the_core_as_their_words() {
        assert_eq!(
            input(&text_update(private(), "/events", None)),
            Some(Input::Text("/events".into()))
        );
        assert_eq!(
            input(&text_update(private(), "/Lang@park_bot en", None)),
            Some(Input::Text("/lang en".into()))
        );
        assert_eq!(input(&text_update(private(), "/help@other_bot", None)), None);
    }

    #[test]
    fn in_groups_only_commands_mentions_and_replies_to_the_bot() {
        assert_eq!(input(&text_update(group(), "lunch anyone?", None)), None);
        assert_eq!(
            input(&text_update(group(), "/events", None)),
            Some(Input::Text("/events".into()))
        );
        assert_eq!(
            input(&text_update(group(), "@Park_Bot 停车收费吗", None)),
            Some(Input::Text("停车收费吗".into()))
        );
        let reply = update(json!({
            "update_id": 8,
            "message": {"message_id": 3, "date": 1_700_000_000, "chat": group(),
                "from": {"id": 42, "is_bot": false, "first_name": "Li"}, "text": "and parking?",
                "reply_to_message": {"message_id": 2, "date": 1_700_000_000, "chat": group(),
                    "from": {"id": 999, "is_bot": true, "first_name": "Park", "username": "park_bot"}, "text": "Hello"}}
        }));
        assert_eq!(input(&reply), Some(Input::Text("and parking?".into())));
        let to_other = update(json!({
            "update_id": 9,
            "message": {"message_id": 4, "date": 1_700_000_000, "chat": group(),
                "from": {"id": 42, "is_bot": false, "first_name": "Li"}, "text": "sure",
                "reply_to_message": {"message_id": 2, "date": 1_700_000_000, "chat": group(),
                    "from": {"id": 43, "is_bot": false, "first_name": "Wang"}, "text": "lunch?"}}
        }));
        assert_eq!(input(&to_other), None);
    }

    #[test]
    fn a_photo_is_unsupported_in_private_and_ignored_in_groups() {
        let photo = |chat| {
            update(json!({
                "update_id": 10,
                "message": {"message_id": 5, "date": 1_700_000_000, "chat": chat,
                    "from": {"id": 42, "is_bot": false, "first_name": "Li"},
                    "photo": [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]}
            }))
        };
        assert_eq!(input(&photo(private())), Some(Input::Unsupported("photo".into())));
        assert_eq!(input(&photo(group())), None);
    }

    #[test]
    fn a_button_press_is_a_choice_with_its_query_and_message() {
        let long = LongValues::default();
        let value = "x".repeat(100);
        let data = long.data(&value);
        let press = |data: &str| {
            update(json!({
                "update_id": 11,
                "callback_query": {"id": "q1", "chat_instance": "c",
                    "from": {"id": 42, "is_bot": false, "first_name": "Li", "language_code": "en"},
                    "data": data,
                    "message": {"message_id": 6, "date": 1_700_000_000, "chat": private(),
                        "from": {"id": 999, "is_bot": true, "first_name": "Park"}, "text": "Pick",
                        "reply_markup": {"inline_keyboard": [[{"text": "1. Web3.0 Forum", "callback_data": data}]]}}}
            }))
        };
        let i = translate(&press("web3-forum"), &me(), &long).unwrap();
        assert_eq!(i.inbound.input, Input::Choice("web3-forum".into()));
        let p = i.pressed.unwrap();
        assert_eq!(p.query.0, "q1");
        assert_eq!(p.message, Some(MessageId(6)));
        let i = translate(&press(&data), &me(), &long).unwrap();
        assert_eq!(i.inbound.input, Input::Choice(value));
        // Forgotten since: the label, as if typed.
        let i = translate(&press(&data), &me(), &LongValues::default()).unwrap();
        assert_eq!(i.inbound.input, Input::Text("Web3.0 Forum".into()));
    }
}
