//! The core's language: who speaks ([`Identity`]), what arrives
//! ([`Inbound`] with its [`Input`]) and what goes back ([`Reply`] with its
//! [`Choice`]s). Every channel translates its platform's updates into these
//! types and renders replies from them; nothing here knows a platform's
//! wire format.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::knowledge::Lang;

/// The chat platforms parkbot speaks on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Console,
    Telegram,
    Wechat,
    Web,
}

impl Channel {
    pub const ALL: [Channel; 4] = [Channel::Console, Channel::Telegram, Channel::Wechat, Channel::Web];

    pub fn name(self) -> &'static str {
        match self {
            Channel::Console => "console",
            Channel::Telegram => "telegram",
            Channel::Wechat => "wechat",
            Channel::Web => "web",
        }
    }

    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.name() == name)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who sent a message: a channel and the platform's id of the person
/// there. Written `channel:id` (`console:local`, `telegram:42`,
/// `wechat:oAbC…`, `web:…`), which is also its key in the store.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    channel: Channel,
    /// `channel:id`, kept whole: it is the store key and the log field.
    full: String,
}

/// The longest platform id accepted (WeChat openids are 28 characters,
/// Telegram chat ids at most 20).
const MAX_ID_LEN: usize = 128;

impl Identity {
    /// An identity on `channel`; `None` when `id` is empty, too long or
    /// holds control characters.
    pub fn new(channel: Channel, id: &str) -> Option<Identity> {
        let ok = !id.is_empty() && id.len() <= MAX_ID_LEN && !id.chars().any(char::is_control);
        ok.then(|| Identity {
            channel,
            full: format!("{}:{id}", channel.name()),
        })
    }

    /// Parses `channel:id` where channel is one of [`Channel`].
    pub fn parse(s: &str) -> Option<Identity> {
        let (channel, id) = s.split_once(':')?;
        Identity::new(Channel::parse(channel)?, id)
    }

    /// The terminal user `name` (`console:NAME`).
    pub fn console(name: &str) -> Identity {
        Identity::new(Channel::Console, name).unwrap_or_else(|| Identity {
            channel: Channel::Console,
            full: "console:local".into(),
        })
    }

    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The platform's id, without the channel.
    pub fn id(&self) -> &str {
        &self.full[self.channel.name().len() + 1..]
    }

    /// `channel:id`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

/// What a person did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Input {
    /// A typed (or recognised spoken) message.
    Text(String),
    /// The conversation was opened, possibly through a deep link or a QR
    /// code carrying `payload` (`signup:web3-forum`).
    Start { payload: Option<String> },
    /// Followed the bot (a WeChat `subscribe`), possibly by scanning a
    /// code with `scene`.
    Subscribe { scene: Option<String> },
    /// Stopped following the bot. Nothing is sent back.
    Unsubscribe,
    /// Pressed a button: the value of the [`Choice`] it showed.
    Choice(String),
    /// Pressed a menu entry with this key.
    Click(String),
    /// Something the bot cannot read (an image, a location, a voice
    /// message without recognised text…): the kind, as the platform names it.
    Unsupported(String),
}

/// A message from a person, as every channel hands it over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub identity: Identity,
    /// The platform's id of this message (WeChat MsgId, Telegram
    /// update id…): a message seen again with the same id is a retry.
    pub message_id: Option<String>,
    pub input: Input,
    /// The language the person's platform reports (Telegram's
    /// `language_code`), if any: it sets a new conversation's language
    /// until the person's own words say otherwise.
    pub lang: Option<Lang>,
}

impl Inbound {
    /// A typed message without a platform id.
    pub fn text(identity: Identity, text: impl Into<String>) -> Inbound {
        Inbound {
            lang: None,
            identity,
            message_id: None,
            input: Input::Text(text.into()),
        }
    }
}

/// One option the person may pick: a button on platforms that have them,
/// a numbered line elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    /// What comes back in [`Input::Choice`] when it is pressed.
    pub value: String,
    /// What the person sees, in their language.
    pub label: String,
}

/// One message of the bot's answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    /// Plain text, readable on a phone. When `choices` is not empty the
    /// text does not list them: a channel renders them its own way.
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<Choice>,
}

impl Reply {
    pub fn text(text: impl Into<String>) -> Reply {
        Reply {
            text: text.into(),
            choices: Vec::new(),
        }
    }

    /// The reply as plain text with its choices as numbered lines (the
    /// console's and WeChat's form: typing the number picks the choice).
    pub fn numbered(&self) -> String {
        let mut out = self.text.clone();
        for (i, c) in self.choices.iter().enumerate() {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&format!("{}. {}", i + 1, c.label));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_typed_and_round_trip() {
        let i = Identity::parse("wechat:oAbC-123").unwrap();
        assert_eq!(i.channel(), Channel::Wechat);
        assert_eq!(i.id(), "oAbC-123");
        assert_eq!(i.to_string(), "wechat:oAbC-123");
        assert_eq!(Identity::parse(i.as_str()), Some(i));
        assert!(Identity::parse("fax:1").is_none());
        assert!(Identity::parse("web:").is_none());
        assert!(Identity::parse("web:a\nb").is_none());
        assert!(Identity::parse(&format!("web:{}", "x".repeat(200))).is_none());
        assert_eq!(Identity::console("alice").as_str(), "console:alice");
    }

    #[test]
    fn numbered_lists_choices_after_the_text() {
        let r = Reply {
            text: "Pick one:".into(),
            choices: vec![
                Choice {
                    value: "a".into(),
                    label: "Alpha".into(),
                },
                Choice {
                    value: "b".into(),
                    label: "Beta".into(),
                },
            ],
        };
        assert_eq!(r.numbered(), "Pick one:\n1. Alpha\n2. Beta");
        assert_eq!(Reply::text("hi").numbered(), "hi");
    }
}
