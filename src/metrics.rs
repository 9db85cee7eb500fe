//! What `GET /metrics` reports, in the Prometheus text format: messages
//! per channel, reply latency (a histogram per channel), WeChat deadline
//! fallbacks and late sends, access-token refreshes, retries recognised,
//! rate-limited messages and store failures. Counters are plain atomics
//! updated by the channels and read at scrape time; no dependency.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::message::Channel;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 4.0,
];

/// One channel's counters.
#[derive(Default)]
struct PerChannel {
    messages: AtomicU64,
    /// Cumulative counts per bucket, plus +Inf last.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// Sum of latencies in microseconds.
    sum_us: AtomicU64,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    channels: [PerChannel; Channel::ALL.len()],
    /// WeChat: replies that missed the budget and went out later.
    pub wechat_deadline_fallbacks: AtomicU64,
    /// WeChat: late replies (and long replies' rest) sent through the
    /// customer-service API, and those that failed.
    pub wechat_late_sent: AtomicU64,
    pub wechat_late_failed: AtomicU64,
    /// Requests refused: bad signature, broken body, too large…
    pub rejected_requests: AtomicU64,
    /// Telegram: messages sent, and sends that failed.
    pub telegram_sent: AtomicU64,
    pub telegram_failed: AtomicU64,
}

fn index(c: Channel) -> usize {
    Channel::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

impl Metrics {
    /// A message of `channel` answered after `took`.
    pub fn message(&self, channel: Channel, took: Duration) {
        let c = &self.channels[index(channel)];
        c.messages.fetch_add(1, Relaxed);
        let secs = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        c.buckets[bucket].fetch_add(1, Relaxed);
        c.sum_us.fetch_add(took.as_micros() as u64, Relaxed);
    }

    /// The text format, with the bot's own counts and the WeChat token
    /// refreshes passed in.
    pub fn render(&self, bot: &crate::bot::Stats, token_refreshes: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP parkbot_messages_total Messages handled, by channel.\n# TYPE parkbot_messages_total counter"
        );
        for ch in Channel::ALL {
            let v = self.channels[index(ch)].messages.load(Relaxed);
            let _ = writeln!(out, "parkbot_messages_total{{channel=\"{ch}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP parkbot_reply_seconds Time from a message's arrival to its replies.\n# TYPE parkbot_reply_seconds histogram"
        );
        for ch in Channel::ALL {
            let c = &self.channels[index(ch)];
            let mut cumulative = 0;
            for (i, b) in BUCKETS.iter().enumerate() {
                cumulative += c.buckets[i].load(Relaxed);
                let _ = writeln!(
                    out,
                    "parkbot_reply_seconds_bucket{{channel=\"{ch}\",le=\"{b}\"}} {cumulative}"
                );
            }
            cumulative += c.buckets[BUCKETS.len()].load(Relaxed);
            let _ = writeln!(
                out,
                "parkbot_reply_seconds_bucket{{channel=\"{ch}\",le=\"+Inf\"}} {cumulative}"
            );
            let sum = c.sum_us.load(Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "parkbot_reply_seconds_sum{{channel=\"{ch}\"}} {sum}");
            let _ = writeln!(out, "parkbot_reply_seconds_count{{channel=\"{ch}\"}} {cumulative}");
        }
        let counters: [(&str, &str, u64); 10] = [
            (
                "parkbot_wechat_deadline_fallbacks_total",
                "WeChat replies that missed the reply budget: \"success\" at once, the answer sent later.",
                self.wechat_deadline_fallbacks.load(Relaxed),
            ),
            (
                "parkbot_wechat_customer_service_queued_total",
                "Late replies and long replies' rest queued for the WeChat customer-service API (the outbox sends them).",
                self.wechat_late_sent.load(Relaxed),
            ),
            (
                "parkbot_wechat_customer_service_failed_total",
                "Late replies that could not be queued (no app secret, store failure).",
                self.wechat_late_failed.load(Relaxed),
            ),
            (
                "parkbot_wechat_token_refreshes_total",
                "WeChat access tokens fetched.",
                token_refreshes,
            ),
            (
                "parkbot_telegram_sent_total",
                "Messages sent to Telegram (answers, and announcements through the same path).",
                self.telegram_sent.load(Relaxed),
            ),
            (
                "parkbot_telegram_send_failed_total",
                "Telegram sends that failed (blocked by the person, bad chat, network…).",
                self.telegram_failed.load(Relaxed),
            ),
            (
                "parkbot_retries_recognised_total",
                "Messages recognised as platform retries and answered with the first replies.",
                bot.retries.load(Relaxed),
            ),
            (
                "parkbot_rate_limited_total",
                "Messages over the per-identity limit.",
                bot.limited.load(Relaxed),
            ),
            (
                "parkbot_store_errors_total",
                "Messages answered \"temporarily unavailable\" because the store failed.",
                bot.unavailable.load(Relaxed),
            ),
            (
                "parkbot_rejected_requests_total",
                "Requests refused: forged signature, broken or oversized body.",
                self.rejected_requests.load(Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        }
        out
    }
}

/// The outbox's records per channel and state (from the store) and each
/// channel's achieved send rate, appended to `out`.
pub fn render_outbox(
    out: &mut String,
    counts: &[(Channel, crate::store::DeliveryState, u64)],
    rates: &[(Channel, f64)],
) {
    let _ = writeln!(
        out,
        "# HELP parkbot_outbox_messages Outbox records by channel and state.\n# TYPE parkbot_outbox_messages gauge"
    );
    for (channel, state, n) in counts {
        let _ = writeln!(
            out,
            "parkbot_outbox_messages{{channel=\"{channel}\",state=\"{}\"}} {n}",
            state.name()
        );
    }
    let _ = writeln!(
        out,
        "# HELP parkbot_outbox_send_rate Messages sent per second by the outbox, over the last 10 seconds.\n# TYPE parkbot_outbox_send_rate gauge"
    );
    for (channel, rate) in rates {
        let _ = writeln!(out, "parkbot_outbox_send_rate{{channel=\"{channel}\"}} {rate}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.message(Channel::Wechat, Duration::from_micros(700));
        m.message(Channel::Wechat, Duration::from_millis(30));
        m.message(Channel::Web, Duration::from_secs(9));
        m.wechat_deadline_fallbacks.fetch_add(2, Relaxed);
        let text = m.render(&crate::bot::Stats::default(), 3);
        assert!(text.contains("parkbot_messages_total{channel=\"wechat\"} 2"), "{text}");
        assert!(text.contains("parkbot_reply_seconds_bucket{channel=\"wechat\",le=\"0.001\"} 1"));
        assert!(text.contains("parkbot_reply_seconds_bucket{channel=\"wechat\",le=\"0.05\"} 2"));
        assert!(text.contains("parkbot_reply_seconds_bucket{channel=\"web\",le=\"+Inf\"} 1"));
        assert!(text.contains("parkbot_reply_seconds_bucket{channel=\"web\",le=\"4\"} 0"));
        assert!(text.contains("parkbot_wechat_deadline_fallbacks_total 2"));
        assert!(text.contains("parkbot_wechat_token_refreshes_total 3"));
    }
}
