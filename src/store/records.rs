//! Records kept in the store besides knowledge: what the bot remembers of
//! each identity. Each is stored as versioned bytes (see the module above).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::knowledge::{Lang, Text};

/// What the bot keeps for one identity between messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The language of the identity's last message.
    #[serde(default)]
    pub lang: Option<Lang>,
    /// The rest of the last list shown, for "more" / "更多".
    #[serde(default)]
    pub more: Option<MoreList>,
    /// The dialog in progress, if any.
    #[serde(default)]
    pub dialog: Option<DialogState>,
    /// Unix seconds of the last message.
    #[serde(default)]
    pub updated_at: i64,
}

/// Where an identity stands in a dialog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DialogState {
    /// The dialog's id (from its file).
    pub dialog: String,
    /// The state waiting for an answer.
    pub state: String,
    /// Answers saved so far, by name.
    pub values: BTreeMap<String, String>,
    /// How a saved choice reads (an event's title), by name.
    #[serde(default)]
    pub labels: BTreeMap<String, Text>,
    /// States answered, in order, for "back".
    #[serde(default)]
    pub history: Vec<String>,
    /// The option values of the last choice shown, so that "2" means what
    /// the person saw even if the list changed since.
    #[serde(default)]
    pub shown: Vec<String>,
    /// The page of a long choice list being shown (0 = the first).
    #[serde(default)]
    pub page: usize,
    /// Unix seconds of the last step, for expiry.
    pub updated_at: i64,
}

/// A list that was cut short: its heading and the items not yet shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoreList {
    /// Number of items already shown (the next item's number is this + 1).
    pub shown: usize,
    /// Each item not yet shown, in order (at most a few pages); shared,
    /// as it is copied with the session on every message. A reference this
    /// version cannot read (a kind added later, then rolled back) is left
    /// out, as a removed item is, rather than making the session unreadable.
    #[serde(deserialize_with = "readable_refs")]
    pub rest: Arc<[ItemRef]>,
    /// Items after `rest` that are not kept (a very long list).
    #[serde(default)]
    pub unlisted: usize,
}

/// The kinds of knowledge item a kept reference can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemKind {
    Field,
    Enterprise,
    Event,
    Faq,
}

impl ItemKind {
    pub const ALL: [ItemKind; 4] = [ItemKind::Field, ItemKind::Enterprise, ItemKind::Event, ItemKind::Faq];

    /// The kind's name, as stored (the knowledge file's table name).
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Field => "field",
            ItemKind::Enterprise => "enterprise",
            ItemKind::Event => "event",
            ItemKind::Faq => "faq",
        }
    }
}

/// A knowledge item named by kind and id, kept between messages (a list's
/// rest): it still names the same item after the knowledge is imported
/// again, or nothing if the item was removed. Stored as `kind:id`, the
/// form every earlier version wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ItemRef {
    pub kind: ItemKind,
    pub id: Arc<str>,
}

impl ItemRef {
    pub fn new(kind: ItemKind, id: &str) -> ItemRef {
        ItemRef {
            kind,
            id: Arc::from(id),
        }
    }
}

impl std::fmt::Display for ItemRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

impl std::str::FromStr for ItemRef {
    type Err = String;

    fn from_str(s: &str) -> Result<ItemRef, String> {
        let (kind, id) = s.split_once(':').ok_or_else(|| format!("{s:?} is not kind:id"))?;
        let kind = ItemKind::ALL
            .into_iter()
            .find(|k| k.as_str() == kind)
            .ok_or_else(|| format!("{kind:?} is not a kind of item"))?;
        if id.is_empty() {
            return Err(format!("{s:?} has no id"));
        }
        Ok(ItemRef::new(kind, id))
    }
}

impl Serialize for ItemRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ItemRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ItemRef, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn readable_refs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Arc<[ItemRef]>, D::Error> {
    let stored = Vec::<std::borrow::Cow<'de, str>>::deserialize(d)?;
    Ok(stored.iter().filter_map(|s| s.parse().ok()).collect())
}

/// Where a registration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegistrationStatus {
    Confirmed,
    Waitlisted,
    Cancelled,
}

impl RegistrationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationStatus::Confirmed => "confirmed",
            RegistrationStatus::Waitlisted => "waitlisted",
            RegistrationStatus::Cancelled => "cancelled",
        }
    }
}

/// One person's registration for one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// Short code shown to the person (no look-alike characters).
    pub code: String,
    pub event_id: String,
    /// The identity that registered, e.g. `wechat:oAbC…`.
    pub user: String,
    pub name: String,
    pub organization: String,
    pub phone: String,
    pub status: RegistrationStatus,
    /// Unix seconds.
    pub created_at: i64,
    /// Order of sign-up within the event (decides the waiting list).
    pub seq: u64,
    /// Set when the person moved from the waiting list to confirmed
    /// (unix seconds), so that they can be told.
    #[serde(default)]
    pub promoted_at: Option<i64>,
}

/// A form filled in through a dialog (`save_form`), e.g. a settle-in inquiry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FormEntry {
    pub seq: u64,
    /// The form's name, from the dialog file (`form = "inquiries"`).
    pub form: String,
    pub user: String,
    pub values: BTreeMap<String, String>,
    pub created_at: i64,
}

/// Running counts of one event's registrations, kept with every change so
/// that a sign-up never scans the event's list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCounts {
    pub confirmed: u64,
    pub waitlisted: u64,
    /// The last sign-up sequence number given.
    pub last_seq: u64,
}

/// Someone who can be sent announcements: they started the bot (a first
/// message, a deep link, a WeChat follow) and have not opted out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscriber {
    /// False once they unfollowed or opted out (kept, with the date).
    pub subscribed: bool,
    /// The QR scene or deep-link payload they came through, if any.
    #[serde(default)]
    pub scene: Option<String>,
    /// Unix seconds when they first subscribed.
    pub since: i64,
    /// Unix seconds of the last change.
    pub updated_at: i64,
    /// The platform refused a message because the person blocked the bot
    /// (Telegram's 403); cleared when they start it again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A list's rest is shared in memory but written as before: sessions
    /// saved by earlier versions read back, and the same JSON is written.
    #[test]
    fn a_list_rest_keeps_its_stored_form() {
        let stored = r#"{"lang":null,"more":{"shown":5,"rest":["event:e1","faq:f2"],"unlisted":3},"dialog":null,"updated_at":7}"#;
        let s: Session = serde_json::from_str(stored).unwrap();
        let more = s.more.as_ref().unwrap();
        assert_eq!(
            *more.rest,
            [ItemRef::new(ItemKind::Event, "e1"), ItemRef::new(ItemKind::Faq, "f2")]
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), stored);
    }

    /// Every kind reads back as written; a reference no version writes is
    /// an error, not an item of some other kind.
    #[test]
    fn item_refs_read_back_and_refuse_what_no_version_wrote() {
        for kind in ItemKind::ALL {
            let r = ItemRef::new(kind, "a:b");
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}:a:b\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<ItemRef>(&json).unwrap(), r);
        }
        for bad in ["\"e1\"", "\"events:e1\"", "\"event:\"", "\":e1\"", "7"] {
            assert!(serde_json::from_str::<ItemRef>(bad).is_err(), "{bad}");
        }
        // In a session, such a reference names nothing, like a removed
        // item: the session still reads, with the references it can.
        let stored = r#"{"more":{"shown":5,"rest":["event:e1","service:s1","faq:f2"]},"updated_at":7}"#;
        let s: Session = serde_json::from_str(stored).unwrap();
        assert_eq!(
            *s.more.unwrap().rest,
            [ItemRef::new(ItemKind::Event, "e1"), ItemRef::new(ItemKind::Faq, "f2")]
        );
    }
}
