//! Integration tests: the real binary, on real redb files in temp dirs.

mod util;

mod cli;
mod concurrency;
mod dialogs;
mod knowledge;
mod qa;
mod store;
