//! Catching what redb may raise on a damaged file, quietly: the panic
//! becomes a typed error that the caller reports once (with the panic's
//! message), instead of Rust's default "thread panicked at …" text on
//! stderr next to it. Panics anywhere else still go to the previous hook.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;

thread_local! {
    /// How many `caught` calls this thread is inside.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, returning its panic as an error (`std::thread::Result`).
pub(super) fn caught<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) == 0 {
                previous(info);
            }
        }));
    });
    QUIET.with(|q| q.set(q.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(q.get() - 1));
    result
}
