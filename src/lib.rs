//! parkbot — the chat bot of the Shougang Sci-Fi Industry Cluster
//! (首钢科幻产业集聚区).
//!
//! # Layout
//!
//! How a message flows:
//!
//! ```text
//!  platform ──▶ channels::*  ──Inbound──▶ bot::Bot::handle (async) ──▶ Vec<Reply> ──▶ channels::*
//!               (translate only)            │  per-identity lane, retries, errors said
//!                                           ├─ dialog::handle  decides: replies, next state, effect
//!                                           ├─ search::Index   retrieval over knowledge
//!                                           └─ store::Store    the one place that writes:
//!                                                              session + effect + retry record,
//!                                                              one group-committed transaction
//! ```
//!
//! - [`message`]: the core's language: `Identity`, `Inbound`/`Input`, `Reply`/`Choice`.
//! - [`config`]: the typed configuration (embedded default, file, environment).
//! - [`assets`]: files built into the binary (default config, demo knowledge, dialogs).
//! - [`knowledge`]: the knowledge model and its files (parse, check, export).
//! - [`search`]: the bilingual retrieval engine.
//! - [`context`]: what one message's handling sees (knowledge and index, wording, time).
//! - [`phrasebook`] and [`template`]: the bot's wording, filled in one pass.
//! - [`store`]: the redb file: knowledge, sessions, registrations, forms, outbox.
//! - [`dialog`]: the dialog engine: state machines declared in `dialogs/`.
//! - [`bot`]: the platform-neutral core: one async entry point for every channel.
//! - [`channels`]: thin adapters: the terminal, the web page (`/api/chat`), WeChat (`/wechat`).
//! - [`server`]: `parkbot serve`: the axum router, admin API, metrics, shutdown.
//! - [`metrics`]: the counters behind `/metrics`.
//! - [`app`]: wiring shared by the commands (open the store, seed, import, export).
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
pub mod metrics;
pub mod outbox;
pub mod phrasebook;
pub mod search;
pub mod server;
pub mod store;
pub mod template;
