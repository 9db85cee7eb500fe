//! Delivery of the outbox (`store::outbox` holds the records): one worker
//! per push channel sends due records through the channel's [`Courier`],
//! paced by a token bucket (`[announce] telegram_per_second`,
//! `wechat_per_second`), several on their way at once, and records each
//! result through the store's group commit before it forgets it.
//!
//! Transient failures (a 5xx, a timeout, WeChat's `-1` or `45009`, an
//! expired token) are tried again after a growing, jittered pause, up to
//! `[announce] max_attempts`; permanent ones (a person who blocked the bot,
//! WeChat's 48-hour window, not a follower) are recorded with the reason at
//! once. Telegram's 429 is waited out inside teloxide's `Throttle`.
//!
//! Beside the workers, housekeeping queues event reminders when they are
//! due and prunes finished records after `[announce] keep_days`.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, watch};

use crate::bot::{Bot, Clock};
use crate::message::{Channel, Identity};
use crate::store::{Delivered, Due, Store};

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth trying again later.
    Transient(String),
    /// Will fail again: recorded with the reason, never retried.
    Permanent(String),
    /// The platform asks for a pause (Telegram's 429 with `retry_after`):
    /// the channel pauses that long and the message is tried again then.
    RetryAfter(Duration),
}

pub type Sending<'a> = Pin<Box<dyn Future<Output = Result<(), Failure>> + Send + 'a>>;

/// A channel's way of sending a message on its own.
pub trait Courier: Send + Sync {
    fn channel(&self) -> Channel;
    fn send<'a>(&'a self, to: &'a Identity, text: &'a str) -> Sending<'a>;
}

/// How the workers go about it.
#[derive(Debug, Clone)]
pub struct Settings {
    pub max_attempts: u32,
    /// The most sends on their way at once, per channel: a channel allows
    /// half its per-second rate (at least 16), up to this. (teloxide's
    /// Throttle lets queued sends go four times a second, so a channel
    /// needs a quarter of its rate on the way to keep up.)
    pub concurrency: usize,
    /// Reminders this long before an event; zero: none.
    pub remind_before: Duration,
    /// Finished records are kept this long.
    pub keep: Duration,
    /// How often housekeeping runs.
    pub housekeeping_every: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            max_attempts: 5,
            concurrency: 4096,
            remind_before: Duration::from_secs(24 * 3600),
            keep: Duration::from_secs(30 * 86_400),
            housekeeping_every: Duration::from_secs(5),
        }
    }
}

/// The sends of the last seconds, for the achieved rate.
#[derive(Default)]
pub struct ChannelStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retried: AtomicU64,
    /// (unix second, sends in it) for the last [`RATE_WINDOW`] seconds.
    recent: Mutex<Vec<(u64, u64)>>,
}

/// Seconds over which the achieved rate is averaged.
const RATE_WINDOW: u64 = 10;

impl ChannelStats {
    fn count_send(&self, second: u64) {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        match recent.last_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => recent.push((second, 1)),
        }
        recent.retain(|(s, _)| *s + RATE_WINDOW * 2 > second);
    }

    /// Sends per second over the last full [`RATE_WINDOW`] seconds.
    pub fn rate(&self, now_second: u64) -> f64 {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let from = now_second.saturating_sub(RATE_WINDOW);
        let n: u64 = recent
            .iter()
            .filter(|(s, _)| *s >= from && *s < now_second)
            .map(|(_, n)| n)
            .sum();
        n as f64 / RATE_WINDOW as f64
    }
}

/// What the workers share with the server: a bell that wakes them when
/// something was queued, and their counts.
#[derive(Default)]
pub struct Outbox {
    pub wake: Notify,
    stats: Mutex<Vec<(Channel, Arc<ChannelStats>)>>,
}

impl Outbox {
    pub fn stats(&self) -> Vec<(Channel, Arc<ChannelStats>)> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn stats_for(&self, channel: Channel) -> Arc<ChannelStats> {
        let mut all = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, s)) = all.iter().find(|(c, _)| *c == channel) {
            return s.clone();
        }
        let s = Arc::new(ChannelStats::default());
        all.push((channel, s.clone()));
        s
    }
}

/// The outbox's clock: the bot's, moving on from it when it is pinned
/// (`PARKBOT_NOW`), so that pauses between tries pass.
#[derive(Clone)]
pub struct OutboxClock {
    clock: Clock,
    start: Instant,
    at_start: i64,
}

impl OutboxClock {
    pub fn new(clock: Clock) -> OutboxClock {
        let at_start = clock().unix_timestamp();
        OutboxClock {
            clock,
            start: Instant::now(),
            at_start,
        }
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        let moved_on = self.at_start + self.start.elapsed().as_secs() as i64;
        (self.clock)().unix_timestamp().max(moved_on)
    }
}

/// Sends evenly spaced at a hair under `per_second` (a token bucket of
/// one token, on an absolute schedule: a late wake-up does not slow the
/// rate, and an idle spell earns no burst), so that no one-second window
/// at the platform holds more than the limit. Catching up after a late
/// wake-up (a busy machine) is bounded the same way: the last
/// `per_second` sends are remembered, and a send waits until the oldest of
/// them is a (padded) second old.
struct Pacer {
    interval: Duration,
    next: tokio::time::Instant,
    /// The latest sends, at most `per_second` of them, oldest first.
    recent: std::collections::VecDeque<tokio::time::Instant>,
    per_second: usize,
}

/// The timer's step: a send due sooner than this goes at once.
const TIMER_STEP: Duration = Duration::from_millis(1);

/// 4 % under the limit: room for the timer's steps and the network.
const PADDING: f64 = 1.04;

impl Pacer {
    fn new(per_second: u32) -> Pacer {
        let per_second = per_second.max(1);
        Pacer {
            interval: Duration::from_secs_f64(PADDING / f64::from(per_second)),
            next: tokio::time::Instant::now(),
            recent: std::collections::VecDeque::new(),
            per_second: per_second as usize,
        }
    }

    /// Waits for the next send's slot; the send then either goes
    /// ([`Pacer::went`]) or gives its slot to the next one
    /// ([`Pacer::skip`]).
    async fn wait(&mut self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let at = self.schedule(now);
        if at > now + TIMER_STEP {
            tokio::time::sleep_until(at).await;
        }
        at
    }

    /// The send of slot `at` did not go: the next send may take it.
    fn skip(&mut self, at: tokio::time::Instant) {
        self.next = at;
    }

    /// When the next send may go, asked at `now`; the one after is
    /// scheduled an interval later.
    fn schedule(&mut self, now: tokio::time::Instant) -> tokio::time::Instant {
        let mut at = self.next.max(now);
        if self.recent.len() >= self.per_second
            && let Some(&oldest) = self.recent.front()
        {
            at = at.max(oldest + Duration::from_secs_f64(PADDING));
        }
        self.next = at + self.interval;
        at
    }

    /// Records a send that went at `at`.
    fn went(&mut self, at: tokio::time::Instant) {
        self.recent.push_back(at);
        if self.recent.len() > self.per_second {
            self.recent.pop_front();
        }
    }
}

/// How many sends a channel at `per_second` has on their way at once.
pub fn in_flight(per_second: u32, most: usize) -> usize {
    (per_second as usize / 2).clamp(16, most.max(16))
}

/// The pause before try `attempt + 1` (1 s, 2 s, 4 s … up to 5 minutes),
/// jittered by ±50 % so that a burst of failures does not come back as one.
fn pause_after(attempt: u32) -> i64 {
    let base = 1i64 << attempt.saturating_sub(1).min(8);
    let base = base.min(300) as f64;
    (base * (0.5 + fastrand::f64())).round().max(1.0) as i64
}

/// What a send's result means for its record.
fn outcome(result: Result<(), Failure>, attempts_before: u32, max_attempts: u32, now: i64) -> Delivered {
    match result {
        Ok(()) => Delivered::Sent,
        Err(Failure::Permanent(reason)) => Delivered::Failed { reason },
        Err(Failure::RetryAfter(after)) => Delivered::Retry {
            at: now + after.as_secs_f64().ceil() as i64,
            reason: format!("rate limited: retry after {} s", after.as_secs_f64().ceil()),
        },
        Err(Failure::Transient(reason)) => {
            let attempt = attempts_before + 1;
            if attempt >= max_attempts.max(1) {
                Delivered::Failed {
                    reason: format!("gave up after {attempt} attempts: {reason}"),
                }
            } else {
                Delivered::Retry {
                    at: now + pause_after(attempt),
                    reason,
                }
            }
        }
    }
}

/// Runs one worker per courier, and housekeeping, until `stop`; then
/// lets the sends on their way finish (and be recorded).
pub async fn run(
    outbox: Arc<Outbox>,
    bot: Arc<Bot>,
    couriers: Vec<(Arc<dyn Courier>, u32)>,
    settings: Settings,
    clock: OutboxClock,
    stop: watch::Receiver<bool>,
) {
    let mut tasks = Vec::new();
    for (courier, per_second) in couriers {
        let stats = outbox.stats_for(courier.channel());
        let worker = Worker {
            paused_until: Mutex::new(None),
            store: bot.store().clone(),
            courier,
            settings: settings.clone(),
            clock: clock.clone(),
            stats,
            outbox: outbox.clone(),
        };
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move { worker.run(per_second, stop).await }));
    }
    tasks.push(tokio::spawn(housekeeping(bot, settings, clock, outbox.clone(), stop)));
    for t in tasks {
        let _ = t.await;
    }
}

struct Worker {
    /// Until when the platform asked the channel to pause.
    paused_until: Mutex<Option<tokio::time::Instant>>,
    store: Arc<Store>,
    courier: Arc<dyn Courier>,
    settings: Settings,
    clock: OutboxClock,
    stats: Arc<ChannelStats>,
    outbox: Arc<Outbox>,
}

/// The most records read at once.
const BATCH: usize = 256;
/// The longest a worker sleeps without looking (it is also woken).
const IDLE: Duration = Duration::from_secs(1);

impl Worker {
    async fn run(self, per_second: u32, mut stop: watch::Receiver<bool>) {
        let channel = self.courier.channel();
        let me = Arc::new(self);
        let mut pacer = Pacer::new(per_second);
        let on_the_way = Arc::new(Mutex::new(HashSet::<u64>::new()));
        let at_once = in_flight(per_second, me.settings.concurrency);
        let slots = Arc::new(Semaphore::new(at_once));
        'work: loop {
            if *stop.borrow() {
                break;
            }
            let now = me.clock.now();
            let skip = on_the_way.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let store = me.store.clone();
            // About a second of work at a time, so that a record queued
            // meanwhile (a late answer) does not wait behind a long batch.
            let batch = (per_second as usize).clamp(16, BATCH);
            let due = tokio::task::spawn_blocking(move || store.due(channel, now, batch, &skip)).await;
            let due = match due {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    tracing::error!(%channel, error = %e, "outbox: cannot read due messages");
                    Vec::new()
                }
                Err(_) => Vec::new(),
            };
            if due.is_empty() {
                let wake = me.outbox.wake.notified();
                tokio::select! {
                    _ = stop.changed() => break,
                    _ = wake => {}
                    _ = tokio::time::sleep(IDLE) => {}
                }
                continue;
            }
            for d in due {
                let permit = tokio::select! {
                    _ = stop.changed() => break 'work,
                    p = slots.clone().acquire_owned() => p.expect("never closed"),
                };
                let paused = *me.paused_until.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(until) = paused.filter(|u| *u > tokio::time::Instant::now()) {
                    tokio::select! {
                        _ = stop.changed() => break 'work,
                        _ = tokio::time::sleep_until(until) => {}
                    }
                }
                let slot = tokio::select! {
                    _ = stop.changed() => break 'work,
                    at = pacer.wait() => at,
                };
                // Read in a batch a moment ago: not if it was stopped
                // since (asked right before the send). A record that does
                // not go gives its slot back, so that the pacer's window
                // holds only sends that go, at the time they go.
                let pending = tokio::select! {
                    _ = stop.changed() => break 'work,
                    p = me.still_pending(d.message.id) => p,
                };
                if !pending {
                    pacer.skip(slot);
                    continue;
                }
                pacer.went(tokio::time::Instant::now().max(slot));
                on_the_way
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(d.message.id);
                let (me, on_the_way) = (me.clone(), on_the_way.clone());
                tokio::spawn(async move {
                    me.deliver(d, &on_the_way).await;
                    drop(permit);
                });
            }
        }
        // Let the sends on their way finish and be recorded.
        let all = u32::try_from(at_once).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(Duration::from_secs(10), slots.acquire_many(all)).await;
    }

    /// Whether record `id` is still to be sent (a store that cannot be
    /// read says yes: the send's record will tell).
    async fn still_pending(&self, id: u64) -> bool {
        let store = self.store.clone();
        !matches!(
            tokio::task::spawn_blocking(move || store.is_pending(id)).await,
            Ok(Ok(false))
        )
    }

    async fn deliver(&self, d: Due, on_the_way: &Mutex<HashSet<u64>>) {
        let id = d.message.id;
        let result = match Identity::parse(&d.message.to) {
            Some(to) => self.courier.send(&to, d.text()).await,
            None => Err(Failure::Permanent(format!("{:?} is not an identity", d.message.to))),
        };
        if let Err(Failure::RetryAfter(after)) = &result {
            let until = tokio::time::Instant::now() + *after;
            let mut paused = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            *paused = Some(paused.map_or(until, |p| p.max(until)));
            tracing::warn!(channel = %self.courier.channel(), after_secs = after.as_secs_f64(), "outbox: the platform asks for a pause");
        }
        let now = self.clock.now();
        let outcome = outcome(result, d.message.attempts, self.settings.max_attempts, now);
        match &outcome {
            Delivered::Sent => {
                self.stats.sent.fetch_add(1, Ordering::Relaxed);
                self.stats.count_send(now.max(0) as u64);
            }
            Delivered::Failed { reason } => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(channel = %self.courier.channel(), id, reason = %reason, "outbox: not delivered");
            }
            Delivered::Retry { reason, .. } => {
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(channel = %self.courier.channel(), id, reason = %reason, "outbox: will try again");
            }
        }
        let recorded = match self.store.record_delivery(id, outcome, now) {
            Ok(pending) => pending.await,
            Err(e) => Err(e),
        };
        if let Err(e) = recorded {
            // Still pending in the store: it will be tried again (a send
            // that went may go twice; none is lost).
            tracing::error!(id, error = %e, "outbox: cannot record a delivery");
        }
        on_the_way.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
}

/// Reminders when due; finished records pruned when old.
async fn housekeeping(
    bot: Arc<Bot>,
    settings: Settings,
    clock: OutboxClock,
    outbox: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let now = clock.now();
        let (b, s) = (bot.clone(), settings.clone());
        let done = tokio::task::spawn_blocking(move || {
            let reminded = if s.remind_before.is_zero() {
                Ok(0)
            } else {
                b.queue_reminders(now, s.remind_before.as_secs() as i64)
            };
            let pruned = b.store().prune_outbox(now - s.keep.as_secs() as i64, 10_000);
            (reminded, pruned)
        })
        .await;
        if let Ok((reminded, pruned)) = done {
            match reminded {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(reminders = n, "outbox: event reminders queued");
                    outbox.wake.notify_waiters();
                }
                Err(e) => tracing::error!(error = %e, "outbox: cannot queue reminders"),
            }
            if let Err(e) = pruned {
                tracing::error!(error = %e, "outbox: cannot prune old records");
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(settings.housekeeping_every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_failures_are_retried_with_growing_pauses_until_the_last_attempt() {
        let t = |r: &str| Err(Failure::Transient(r.into()));
        match outcome(t("busy"), 0, 5, 1000) {
            Delivered::Retry { at, reason } => {
                assert!((1001..=1002).contains(&at), "{at}");
                assert_eq!(reason, "busy");
            }
            other => panic!("{other:?}"),
        }
        match outcome(t("busy"), 3, 5, 1000) {
            Delivered::Retry { at, .. } => assert!((1004..=1012).contains(&at), "{at}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            outcome(t("busy"), 4, 5, 1000),
            Delivered::Failed {
                reason: "gave up after 5 attempts: busy".into()
            }
        );
        assert_eq!(
            outcome(Err(Failure::Permanent("blocked".into())), 0, 5, 1000),
            Delivered::Failed {
                reason: "blocked".into()
            }
        );
        assert_eq!(outcome(Ok(()), 2, 5, 1000), Delivered::Sent);
        for a in 1..40 {
            assert!(pause_after(a) <= 450);
        }
    }

    #[tokio::test]
    async fn the_pacer_spaces_sends_evenly_at_the_rate() {
        let mut p = Pacer::new(100);
        let start = tokio::time::Instant::now();
        let mut at = Vec::new();
        for _ in 0..21 {
            let slot = p.wait().await;
            p.went(tokio::time::Instant::now().max(slot));
            at.push(start.elapsed());
        }
        // 20 intervals of 1/100 s (and 4 %), never two at once.
        assert!(at[20] >= Duration::from_millis(207), "{:?}", at[20]);
        for w in at.windows(2) {
            assert!(w[1] > w[0]);
        }
    }

    #[test]
    fn a_skipped_slot_goes_to_the_next_send_and_is_not_counted() {
        let mut p = Pacer::new(10);
        let start = tokio::time::Instant::now();
        let first = p.schedule(start);
        p.went(first);
        let second = p.schedule(start);
        assert!(second > first);
        // Its record was stopped meanwhile: nothing went.
        p.skip(second);
        let third = p.schedule(start);
        assert_eq!(third, second, "the next send takes the slot");
        p.went(third);
        assert_eq!(p.recent, [first, third], "the window holds only sends that went");
    }

    /// A sender that wakes late catches up, but never puts more than the
    /// limit into one second.
    #[test]
    fn a_late_wake_up_catches_up_without_a_burst() {
        let rate = 20;
        let mut p = Pacer::new(rate);
        let start = tokio::time::Instant::now();
        let mut now = start;
        let mut at = Vec::new();
        for i in 0..200 {
            let due = p.schedule(now);
            // Now and then the machine is busy: the wake-up comes late
            // (300 ms); otherwise by up to 2 ms (the timer's steps).
            let late = Duration::from_millis(if i % 25 == 10 { 300 } else { i % 3 });
            now = due.max(now) + late;
            p.went(now);
            at.push(now);
        }
        for (i, a) in at.iter().enumerate() {
            let within = at[i..]
                .iter()
                .take_while(|t| t.duration_since(*a) < Duration::from_secs(1))
                .count();
            assert!(within <= rate as usize, "{within} sends within a second from send {i}");
        }
        // The rate holds, less the time lost late: 200 sends at 20/s (4 %
        // under) take 10.4 s, and the eight late wake-ups 2.4 s more. With
        // the last second's sends already at the limit, that time cannot
        // be made up without a burst.
        let per_second = 199.0 / at[199].duration_since(start).as_secs_f64();
        assert!(per_second >= 15.0, "{per_second:.1}/s");
    }

    #[test]
    fn the_rate_is_averaged_over_full_seconds() {
        let s = ChannelStats::default();
        for sec in 100..110 {
            for _ in 0..5 {
                s.count_send(sec);
            }
        }
        s.count_send(110);
        assert_eq!(s.rate(110), 5.0);
    }

    #[test]
    fn a_pinned_clock_moves_on() {
        let pinned = time::macros::datetime!(2026-11-28 12:00 +08:00);
        let c = OutboxClock::new(Arc::new(move || pinned));
        assert!(c.now() >= pinned.unix_timestamp());
    }
}
