//! Channel adapters: each turns a platform's updates into
//! [`crate::message::Inbound`], awaits [`crate::bot::Bot::handle`], and
//! renders the [`crate::message::Reply`]s in the platform's form (choices as
//! numbered lines or buttons). No adapter holds dialog or answer logic.

pub mod console;
pub mod telegram;
pub mod web;
pub mod wechat;
