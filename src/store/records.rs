//! Records kept in the store besides knowledge: what the bot remembers of
//! each identity. Each is stored as versioned bytes (see the module above).

use serde::{Deserialize, Serialize};

use crate::knowledge::Lang;

/// What the bot keeps for one identity between messages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Session {
    /// The language of the identity's last message.
    #[serde(default)]
    pub lang: Option<Lang>,
    /// The rest of the last list shown, for "more" / "更多".
    #[serde(default)]
    pub more: Option<MoreList>,
    /// Unix seconds of the last message.
    #[serde(default)]
    pub updated_at: i64,
}

/// A list that was cut short: its heading and the items not yet shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoreList {
    /// Number of items already shown (the next item's number is this + 1).
    pub shown: usize,
    /// `kind:id` of each item not yet shown, in order.
    pub rest: Vec<String>,
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
