//! parkbot — the chat bot of the Shougang Sci-Fi Industry Cluster
//! (首钢科幻产业集聚区).
//!
//! # Layout
//!
//! How a message flows:
//!
//! ```text
//!  platform ──▶ channels::*  ──Inbound──▶ bot::Bot::handle ──▶ replies ──▶ channels::*
//!               (translate only)            │
//!                                           ├─ dialog          (sign-up and other dialogs, as data)
//!                                           ├─ search::Index   (retrieval over knowledge)
//!                                           ├─ bot::phrasebook (wording from dialogs/bot.toml)
//!                                           └─ store::Store    (the only owner of redb)
//! ```
//!
//! - [`config`]: the typed configuration (embedded default, file, environment).
//! - [`assets`]: files built into the binary (default config, demo knowledge, dialogs).
//! - [`knowledge`]: the knowledge model and its files (parse, check, export).
//! - [`search`]: the bilingual retrieval engine.
//! - [`store`]: the redb file: knowledge, sessions, registrations, subscribers, outbox.
//! - [`bot`]: the platform-neutral core: an identity and a text in, replies out.
//! - [`dialog`]: the dialog engine: state machines declared in `dialogs/`.
//! - [`channels`]: thin adapters; today the terminal.
//! - [`app`]: wiring shared by the commands (open the store, seed, import).
//! - [`logging`]: tracing set-up and masking of personal data.

pub mod app;
pub mod assets;
pub mod bot;
pub mod channels;
pub mod config;
pub mod context;
pub mod dialog;
pub mod knowledge;
pub mod logging;
pub mod message;
pub mod phrasebook;
pub mod search;
pub mod store;
pub mod template;
