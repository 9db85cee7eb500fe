//! Channel adapters: each turns a platform's messages into
//! [`crate::bot::Inbound`] and the bot's replies back into the platform's
//! form. No adapter holds dialog or answer logic.

pub mod console;
