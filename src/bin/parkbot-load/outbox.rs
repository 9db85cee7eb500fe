//! `parkbot-load outbox`: the outbox's own throughput (10,000 recipients
//! with durable state updates, rate limits raised) and the rate it keeps
//! under a configured limit, both against a mock Telegram Bot API in this
//! process (the real Telegram channel and teloxide's Throttle send to it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Json;
use axum::Router;
use axum::extract::Path;
use axum::routing::post;
use serde_json::{Value, json};

use parkbot::bot::Bot;
use parkbot::channels::telegram::Telegram;
use parkbot::config::Config;
use parkbot::outbox::{Courier, Outbox, OutboxClock, Settings};
use parkbot::store::{Audience, SubscriberChange, TurnWrite};

use crate::TempDir;

/// When each send reached the mock.
#[derive(Default)]
struct Received {
    at: Mutex<Vec<Instant>>,
    count: AtomicU64,
}

async fn mock_api(received: Arc<Received>) -> Result<String> {
    let app = Router::new().route(
        "/{bot}/{method}",
        post(move |Path((_, method)): Path<(String, String)>, body: String| {
            let received = received.clone();
            async move {
                let m = method.to_ascii_lowercase();
                let result = match m.as_str() {
                    "getme" => json!({"id": 1, "is_bot": true, "first_name": "Load", "username": "load_bot",
                        "can_join_groups": false, "can_read_all_group_messages": false,
                        "supports_inline_queries": false, "can_connect_to_business": false,
                        "has_main_web_app": false}),
                    "sendmessage" => {
                        received.at.lock().unwrap().push(Instant::now());
                        let n = received.count.fetch_add(1, Ordering::Relaxed);
                        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        json!({"message_id": n, "date": 1_764_300_000,
                            "chat": {"id": v["chat_id"], "type": "private", "first_name": "x"}, "text": v["text"]})
                    }
                    "getupdates" => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        json!([])
                    }
                    _ => json!(true),
                };
                Json(json!({"ok": true, "result": result}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// A bot over a new store with `n` Telegram subscribers.
fn bot_with_subscribers(dir: &TempDir, n: usize) -> Result<Arc<Bot>> {
    let now = time::macros::datetime!(2026-11-28 12:00 +08:00);
    let bot = crate::synthetic::bot(&dir.path().join("outbox.redb"), "", Arc::new(move || now))?;
    for i in 0..n {
        let t = TurnWrite {
            identity: format!("telegram:{}", 1_000_000 + i),
            now: now.unix_timestamp(),
            session: None,
            durable: i + 1 == n,
            effect: None,
            message_id: None,
            forget_before: 0,
            subscriber: Some(SubscriberChange::FirstContact),
        };
        bot.store().commit_turn(t, |_| Vec::new())?;
    }
    Ok(Arc::new(bot))
}

struct Run {
    took: Duration,
    received: Arc<Received>,
    sent: u64,
    pending: u64,
}

/// Announces to `n` subscribers and delivers at `per_second` until done
/// (or `limit`), returning what the mock saw.
async fn deliver(n: usize, per_second: u32, limit: Duration) -> Result<Run> {
    let dir = TempDir::new()?;
    let bot = bot_with_subscribers(&dir, n)?;
    let received = Arc::new(Received::default());
    let url = mock_api(received.clone()).await?;
    let mut config = Config::default_with_env(Vec::new())?;
    config.telegram.enabled = true;
    config.telegram.token = "1:LOAD".into();
    config.telegram.api_url = url;
    let metrics = Arc::new(parkbot::metrics::Metrics::default());
    let telegram = Arc::new(
        Telegram::from_config(&config.telegram, per_second, bot.clone(), metrics, Default::default())
            .map_err(anyhow::Error::msg)?
            .expect("enabled"),
    );
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let t = telegram.clone();
    let s = stopping.clone();
    tokio::spawn(async move { t.run(s).await });
    let announcement = bot.store().announce(
        &Audience::Channel(parkbot::message::Channel::Telegram),
        "Load test",
        "load",
        0,
    )?;
    let couriers: Vec<(Arc<dyn Courier>, u32)> = vec![(telegram, per_second)];
    let start = Instant::now();
    let worker = tokio::spawn(parkbot::outbox::run(
        Arc::new(Outbox::default()),
        bot.clone(),
        couriers,
        Settings {
            remind_before: Duration::ZERO,
            ..Settings::default()
        },
        OutboxClock::new(bot.clock()),
        stopping,
    ));
    let a = loop {
        let a = bot.store().announcement(announcement.id)?.expect("made");
        if a.pending() == 0 || start.elapsed() >= limit {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let took = start.elapsed();
    let _ = stop.send(true);
    let _ = worker.await;
    Ok(Run {
        took,
        received,
        sent: a.sent,
        pending: a.pending(),
    })
}

pub async fn bench(recipients: usize, limit: u32, seconds: u64) -> Result<()> {
    println!("== throughput: {recipients} recipients, limits raised, durable state updates");
    let r = deliver(recipients, 100_000, Duration::from_secs(600)).await?;
    let got = r.received.count.load(Ordering::Relaxed);
    println!(
        "recipients  sent  at_mock  seconds  deliveries/s\n{recipients:>10}  {:>4}  {got:>7}  {:>7.2}  {:>12.0}",
        r.sent,
        r.took.as_secs_f64(),
        r.sent as f64 / r.took.as_secs_f64()
    );

    println!("== rate: limit {limit}/s for {seconds} s");
    let n = limit as usize * seconds as usize * 2;
    let r = deliver(n, limit, Duration::from_secs(seconds)).await?;
    let at = r.received.at.lock().unwrap().clone();
    // The busiest one-second window, and the rate over the whole run.
    let mut busiest = 0;
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        busiest = busiest.max(within);
    }
    let span = at
        .last()
        .zip(at.first())
        .map_or(0.0, |(l, f)| l.duration_since(*f).as_secs_f64());
    let achieved = (at.len().saturating_sub(1)) as f64 / span.max(1e-9);
    println!(
        "limit/s  sent  seconds  achieved/s  of_limit  busiest_1s_window\n{limit:>7}  {:>4}  {span:>7.1}  {achieved:>10.2}  {:>7.1}%  {busiest:>17}",
        at.len(),
        achieved / f64::from(limit) * 100.0
    );
    let _ = (r.sent, r.pending);
    Ok(())
}
