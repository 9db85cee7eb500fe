//! Integration tests: the real binary, on real redb files in temp dirs.

mod util;

#[path = "../src/bin/parkbot-load/synthetic.rs"]
mod synthetic;

mod announce;
mod answers;
mod browser;
mod cli;
mod concurrency;
mod dialogs;
mod faults;
mod knowledge;
mod qa;
mod store;
mod telegram;
mod web;
mod wechat;
