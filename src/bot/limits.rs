//! The per-identity message limit: a fixed one-minute window per identity.
//! Past the limit the first message is told "too fast" and the rest of the
//! minute is silent. Memory is bounded: windows that are over are dropped
//! whenever the map grows past a size.

use std::collections::HashMap;

use crate::message::Identity;

/// Windows kept before the ones that are over are swept.
const SWEEP_AT: usize = 10_000;

#[derive(Default)]
pub(super) struct Limiter {
    windows: HashMap<Identity, Window>,
    /// The map's size after the last sweep: the next sweep waits until it
    /// has doubled, so a busy minute does not sweep on every message.
    swept_at: usize,
}

struct Window {
    /// Unix seconds the window began.
    start: i64,
    count: u32,
    warned: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) enum Verdict {
    Go,
    /// The first message over the limit: say so.
    Warn,
    /// Later ones in the same minute: say nothing.
    Silent,
}

impl Limiter {
    pub(super) fn check(&mut self, who: &Identity, now: i64, per_minute: u32) -> Verdict {
        if self.windows.len() >= SWEEP_AT.max(2 * self.swept_at) {
            self.windows.retain(|_, w| now - w.start < 60);
            self.swept_at = self.windows.len();
        }
        let w = self.windows.entry(who.clone()).or_insert(Window {
            start: now,
            count: 0,
            warned: false,
        });
        if now - w.start >= 60 {
            *w = Window {
                start: now,
                count: 0,
                warned: false,
            };
        }
        w.count += 1;
        if w.count <= per_minute {
            Verdict::Go
        } else if !w.warned {
            w.warned = true;
            Verdict::Warn
        } else {
            Verdict::Silent
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_limit_warns_once_then_stays_silent_until_the_minute_is_over() {
        let mut l = Limiter::default();
        let a = Identity::console("a");
        for _ in 0..3 {
            assert_eq!(l.check(&a, 100, 3), Verdict::Go);
        }
        assert_eq!(l.check(&a, 110, 3), Verdict::Warn);
        assert_eq!(l.check(&a, 120, 3), Verdict::Silent);
        assert_eq!(l.check(&Identity::console("b"), 120, 3), Verdict::Go, "per identity");
        assert_eq!(l.check(&a, 160, 3), Verdict::Go, "a new minute");
    }
}
