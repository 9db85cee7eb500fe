//! Announcements and the outbox, end to end: `serve` against mock Telegram
//! and WeChat APIs (tests/util/mocks.rs), the admin API, staff in chat,
//! retries, permanent failures, the rate limit, stopping, reminders, and a
//! `kill -9` in the middle of a 2,000-recipient announcement.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use parkbot::store::{Store, SubscriberChange, TurnWrite};

use crate::util::mocks::{Mock, TOKEN, WECHAT_APP_ID, WECHAT_SECRET, WechatMock};
use crate::util::server::{Served, serve};
use crate::util::{BIN, NOW, Sandbox};

const ADMIN: &str = "announce-admin-token";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Telegram (and WeChat, when given) on mocks, with the admin API on.
fn platforms(telegram: &str, wechat: Option<&str>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut e = env(&[
        ("PARKBOT_TELEGRAM__ENABLED", "true"),
        ("PARKBOT_TELEGRAM__TOKEN", TOKEN),
        ("PARKBOT_TELEGRAM__API_URL", telegram),
        ("PARKBOT_STAFF__ADMIN_TOKEN", ADMIN),
        ("PARKBOT_SERVER__MESSAGES_PER_MINUTE", "0"),
    ]);
    if let Some(w) = wechat {
        e.extend(env(&[
            ("PARKBOT_WECHAT__ENABLED", "true"),
            ("PARKBOT_WECHAT__TOKEN", "wechat-token"),
            ("PARKBOT_WECHAT__APP_ID", WECHAT_APP_ID),
            ("PARKBOT_WECHAT__APP_SECRET", WECHAT_SECRET),
            ("PARKBOT_WECHAT__API_BASE", w),
        ]));
    }
    for (k, v) in extra {
        e.retain(|(key, _)| key != k);
        e.push((k.to_string(), v.to_string()));
    }
    e
}

fn subscribe(store: &Store, who: &str, change: SubscriberChange) {
    let t = TurnWrite {
        identity: who.into(),
        now: 1_764_300_000,
        session: None,
        durable: true,
        effect: None,
        message_id: None,
        forget_before: 0,
        subscriber: Some(change),
    };
    store.commit_turn(t, |_| Vec::new()).unwrap();
}

async fn create(s: &Served, audience: &str, text: &str) -> Value {
    let r = s
        .client
        .post(format!("{}/admin/announcements", s.base))
        .bearer_auth(ADMIN)
        .json(&json!({"audience": audience, "text": text}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn status(s: &Served, id: &str) -> Value {
    let r = s
        .client
        .get(format!("{}/admin/announcements/{id}", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Waits until nothing of announcement `id` is pending.
async fn finished(s: &Served, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = status(s, id).await;
        if st["pending"] == 0 {
            return st;
        }
        assert!(Instant::now() < deadline, "still pending: {st}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn telegram_sends(m: &Mock) -> HashMap<i64, usize> {
    m.sends_per_chat()
}

#[tokio::test]
async fn an_announcement_reaches_each_active_subscriber_once_on_both_platforms() {
    let tg = Mock::start().await;
    let (wechat_url, wx) = WechatMock::start().await;
    let s = serve(platforms(&tg.url, Some(&wechat_url), &[])).await;
    for who in ["telegram:101", "telegram:102", "telegram:103", "wechat:oA", "wechat:oB"] {
        subscribe(s.store(), who, SubscriberChange::FirstContact);
    }
    subscribe(s.store(), "telegram:103", SubscriberChange::Unsubscribe);

    // The admin API refuses without the token.
    let url = format!("{}/admin/announcements", s.base);
    let body = json!({"audience": "all", "text": "x"});
    let r = s.client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = s
        .client
        .post(&url)
        .bearer_auth("wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = s.client.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    // Bad requests are said.
    let bad = s
        .client
        .post(&url)
        .bearer_auth(ADMIN)
        .json(&json!({"audience": "everyone", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = s
        .client
        .post(&url)
        .bearer_auth(ADMIN)
        .json(&json!({"audience": "event:nope", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);

    let made = create(&s, "all", "园区今晚8点闭园 / The park closes at 8 pm tonight.").await;
    assert_eq!(made["total"], 4, "{made}");
    let id = made["id"].as_str().unwrap().to_string();
    let st = finished(&s, &id).await;
    assert_eq!((st["sent"].as_u64(), st["failed"].as_u64()), (Some(4), Some(0)), "{st}");
    // Each once, the opted-out none, and nothing more a moment later.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sends = telegram_sends(&tg.mock);
    assert_eq!(sends.get(&101), Some(&1));
    assert_eq!(sends.get(&102), Some(&1));
    assert_eq!(sends.get(&103), None, "opted out");
    assert_eq!(wx.delivered(), HashMap::from([("oA".into(), 1), ("oB".into(), 1)]));
    assert!(wx.sends().iter().all(|x| x.text.contains("园区今晚8点闭园")));

    // The list, newest first.
    create(&s, "channel:wechat", "second").await;
    let list: Value = s
        .client
        .get(&url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[0]["text"], "second");
    assert_eq!(list[1]["id"], id.as_str());
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("parkbot_outbox_messages{channel=\"telegram\",state=\"sent\"} 2"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn someone_not_on_the_staff_cannot_announce_in_chat() {
    let tg = Mock::start().await;
    let s = serve(platforms(&tg.url, None, &[("PARKBOT_STAFF__MEMBERS", "telegram:1")])).await;
    tg.mock.wait_calls("setMyCommands", 2).await;
    tg.mock.text(2, "/announce", Some("en"));
    let r = tg.mock.nth_to(2, 1).await;
    assert!(r["text"].as_str().unwrap().contains("park staff"), "{r}");
    tg.mock.text(2, "/stats", Some("en"));
    assert!(
        tg.mock.nth_to(2, 2).await["text"]
            .as_str()
            .unwrap()
            .contains("park staff")
    );
    assert!(s.store().announcements(10).unwrap().is_empty());
    assert!(s.store().session("telegram:2").unwrap().unwrap().dialog.is_none());

    // Staff: the dialog, a preview exactly as sent, and the announcement.
    tg.mock.text(1, "/announce", Some("en"));
    let pick = tg.mock.nth_to(1, 1).await;
    let all = pick["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(all, "all");
    tg.mock.press(1, &pick, &all);
    tg.mock.nth_to(1, 2).await;
    tg.mock.text(1, "Lift B is out of order today.", Some("en"));
    let preview = tg.mock.nth_to(1, 3).await;
    assert!(
        preview["text"]
            .as_str()
            .unwrap()
            .contains("\n\nLift B is out of order today.\n\n"),
        "{preview}"
    );
    tg.mock.press(1, &preview, "yes");
    // The confirmation, and the staff member's own copy (in either order:
    // answers and the outbox are paced separately).
    tg.mock.nth_to(1, 5).await;
    let texts: Vec<String> = tg.mock.sent_to(1)[3..5]
        .iter()
        .map(|m| m["text"].as_str().unwrap().to_string())
        .collect();
    assert!(texts.iter().any(|t| t.contains("#1")), "{texts:?}");
    assert!(texts.iter().any(|t| t == "Lift B is out of order today."), "{texts:?}");
    // Both subscribers (the staff member and the refused one) get it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while tg.mock.sent_to(2).len() < 3 {
        assert!(Instant::now() < deadline, "{:#?}", tg.mock.sent_to(2));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tg.mock.sent_to(2)[2]["text"], "Lift B is out of order today.");
    s.stop().await;
}

#[tokio::test]
async fn transient_failures_are_retried_and_permanent_ones_recorded_once() {
    let tg = Mock::start().await;
    let (wechat_url, wx) = WechatMock::start().await;
    let s = serve(platforms(&tg.url, Some(&wechat_url), &[])).await;
    let openids: Vec<String> = (0..6).map(|i| format!("o{i}")).collect();
    for o in &openids {
        subscribe(s.store(), &format!("wechat:{o}"), SubscriberChange::FirstContact);
    }
    for chat in [201, 202, 203] {
        subscribe(s.store(), &format!("telegram:{chat}"), SubscriberChange::FirstContact);
    }
    // A burst of "quota reached" and "busy", one outside the 48-hour window.
    wx.script(&[45009, 45009, 45009, -1]);
    wx.fail_user("o5", 45015);
    // Telegram: one 429 (waited out), one person who blocked the bot.
    tg.mock.fail_next_send(json!({"ok": false, "error_code": 429,
        "description": "Too Many Requests: retry after 1", "parameters": {"retry_after": 1}}));
    tg.mock.fail_sends_to(
        202,
        json!({"ok": false, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}),
    );
    let made = create(&s, "all", "Tomorrow: free shuttle from Gucheng station.").await;
    let id = made["id"].as_str().unwrap().to_string();
    let st = finished(&s, &id).await;
    assert_eq!((st["sent"].as_u64(), st["failed"].as_u64()), (Some(7), Some(2)), "{st}");
    let reasons = st["reasons"].as_object().unwrap();
    assert!(reasons.keys().any(|r| r.contains("45015")), "{st}");
    assert!(reasons.keys().any(|r| r.contains("blocked")), "{st}");

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let delivered = wx.delivered();
    for o in &openids[..5] {
        assert_eq!(delivered.get(o), Some(&1), "{o}: {delivered:?}");
    }
    // The permanent failure was tried once, never again.
    assert_eq!(wx.sends().iter().filter(|x| x.to == "o5").count(), 1);
    // The burst was retried: 4 failed calls, then each once.
    assert_eq!(wx.sends().iter().filter(|x| x.errcode != 0 && x.to != "o5").count(), 4);
    let tg_sends = telegram_sends(&tg.mock);
    assert_eq!(tg_sends.get(&202), Some(&1), "blocked: tried once");
    let ok: usize = [201, 203].iter().map(|c| tg.mock.sent_to(*c).len()).sum();
    assert_eq!(ok, 3, "one 429 and two deliveries: {tg_sends:?}");
    assert!(s.store().subscriber("telegram:202").unwrap().unwrap().blocked);
    s.stop().await;
}

#[tokio::test]
async fn the_rate_limit_is_kept_at_the_platform() {
    let tg = Mock::start().await;
    let (wechat_url, wx) = WechatMock::start().await;
    let rate = 20;
    let s = serve(platforms(
        &tg.url,
        Some(&wechat_url),
        &[("PARKBOT_ANNOUNCE__WECHAT_PER_SECOND", "20")],
    ))
    .await;
    for i in 0..60 {
        subscribe(s.store(), &format!("wechat:r{i}"), SubscriberChange::FirstContact);
    }
    let made = create(&s, "channel:wechat", "Rate test").await;
    finished(&s, made["id"].as_str().unwrap()).await;
    let mut at: Vec<Instant> = wx.sends().iter().map(|x| x.at).collect();
    at.sort();
    assert_eq!(at.len(), 60);
    // Never more than the limit in any one-second window…
    for (i, start) in at.iter().enumerate() {
        let within = at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(within <= rate, "{within} sends within a second from send {i}");
    }
    // …and at least 95 % of it overall.
    let span = at[59].duration_since(at[0]).as_secs_f64();
    let achieved = 59.0 / span;
    assert!(achieved >= 0.95 * rate as f64, "achieved {achieved:.2}/s");
    s.stop().await;
}

#[tokio::test]
async fn stopping_an_announcement_cancels_what_is_still_pending() {
    let tg = Mock::start().await;
    let s = serve(platforms(
        &tg.url,
        None,
        &[("PARKBOT_ANNOUNCE__TELEGRAM_PER_SECOND", "4")],
    ))
    .await;
    for chat in 300..320 {
        subscribe(s.store(), &format!("telegram:{chat}"), SubscriberChange::FirstContact);
    }
    let made = create(&s, "channel:telegram", "Typo: the forum is on Friday, not Thursday.").await;
    let id = made["id"].as_str().unwrap().to_string();
    tg.mock.wait_calls("sendMessage", 2).await;
    let r = s
        .client
        .delete(format!("{}/admin/announcements/{id}", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let stopped: Value = r.json().await.unwrap();
    assert!(stopped["cancelled"].as_u64().unwrap() >= 15, "{stopped}");
    assert_eq!(stopped["pending"], 0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = status(&s, &id).await;
    let sent = tg.mock.calls("sendMessage").len() as u64;
    assert_eq!(st["sent"].as_u64(), Some(sent), "every send that went is counted: {st}");
    assert!(sent <= 5, "{sent} sent after the stop");
    assert_eq!(st["sent"].as_u64().unwrap() + st["cancelled"].as_u64().unwrap(), 20);
    let missing = s
        .client
        .delete(format!("{}/admin/announcements/999", s.base))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn a_confirmed_registrant_is_reminded_once_before_the_event() {
    let tg = Mock::start().await;
    // The clock is pinned at 2026-11-28 12:00 +08:00: an event 24 h and a
    // few seconds later is reminded a few seconds from now.
    let s = serve(platforms(&tg.url, None, &[])).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("soon.toml");
    std::fs::write(
        &file,
        "[[event]]\nid = \"soon\"\ntitle = { zh = \"明日沙龙\", en = \"Salon tomorrow\" }\n\
         starts_at = \"2026-11-29T12:00:04+08:00\"\nvenue = { zh = \"三高炉\", en = \"Blast Furnace No. 3\" }\n\
         capacity = 10\n",
    )
    .unwrap();
    let k = parkbot::app::load_knowledge_files(&[file], &s.store().field_ids().unwrap()).unwrap();
    s.store().import(&k, &Default::default()).unwrap();
    s.bot.reload_knowledge().unwrap();
    tg.mock.wait_calls("setMyCommands", 2).await;

    // Signed up through Telegram, now (before the reminder time).
    tg.mock.text(401, "/start signup-soon", Some("en"));
    for (n, text) in [(2, "Li Lei"), (3, "Shougang Lab"), (4, "13812345678")] {
        tg.mock.nth_to(401, n - 1).await;
        tg.mock.text(401, text, Some("en"));
    }
    let confirm = tg.mock.nth_to(401, 4).await;
    tg.mock.press(401, &confirm, "yes");
    let done = tg.mock.nth_to(401, 5).await;
    let code = s.store().registrations(Some("soon")).unwrap()[0].code.clone();
    assert!(done["text"].as_str().unwrap().contains(&code), "{done}");

    let reminder = tg.mock.nth_to(401, 6).await;
    let text = reminder["text"].as_str().unwrap();
    assert!(text.starts_with("Reminder: Salon tomorrow"), "{text}");
    assert!(text.contains("Blast Furnace No. 3") && text.contains(&code), "{text}");
    // Once.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(tg.mock.sent_to(401).len(), 6);
    s.stop().await;
}

/// `kill -9` of `serve` in the middle of a 2,000-recipient announcement:
/// after a restart every recipient has it, and only messages that were on
/// their way at the kill may have gone twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_and_loses_no_delivery() {
    let tg = Mock::start().await;
    let sb = Sandbox::new();
    {
        let store = Store::open(&sb.db()).unwrap();
        for chat in 10_000..12_000 {
            let t = TurnWrite {
                identity: format!("telegram:{chat}"),
                now: 1_764_300_000,
                session: None,
                durable: chat == 11_999,
                effect: None,
                message_id: None,
                forget_before: 0,
                subscriber: Some(SubscriberChange::FirstContact),
            };
            store.commit_turn(t, |_| Vec::new()).unwrap();
        }
    }
    let queued = sb.ok(&["announce", "--audience", "channel:telegram", "--text", "Resume test"]);
    assert!(queued.stdout.contains("2000 recipient(s) queued"), "{}", queued.stdout);

    let start = |sb: &Sandbox| {
        let mut c = tokio::process::Command::new(BIN);
        c.current_dir(sb.dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PARKBOT_NOW", NOW)
            .envs(platforms(
                &tg.url,
                None,
                &[("PARKBOT_ANNOUNCE__TELEGRAM_PER_SECOND", "400")],
            ))
            .arg("--db")
            .arg(sb.db())
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        c.spawn().unwrap()
    };
    let mut first = start(&sb);
    tg.mock.wait_calls("sendMessage", 600).await;
    first.start_kill().unwrap(); // SIGKILL
    first.wait().await.unwrap();
    let at_kill = tg.mock.calls("sendMessage").len();
    assert!(at_kill < 2000, "the kill came too late to test anything ({at_kill})");

    let mut second = start(&sb);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let per_chat = tg.mock.sends_per_chat();
        if per_chat.len() == 2000 {
            break;
        }
        assert!(Instant::now() < deadline, "{} of 2000 reached", per_chat.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    second.start_kill().unwrap();
    second.wait().await.unwrap();
    let per_chat = tg.mock.sends_per_chat();
    let twice: usize = per_chat.values().map(|n| n - 1).sum();
    assert!(per_chat.values().all(|n| *n >= 1));
    // At most what was on its way at the kill.
    let on_the_way = parkbot::outbox::in_flight(400, parkbot::outbox::Settings::default().concurrency);
    assert!(
        twice <= on_the_way,
        "{twice} sent twice (kill at {at_kill}), more than {on_the_way}"
    );
    eprintln!("kill -9 at {at_kill} of 2000: {twice} sent twice (bound {on_the_way})");
    // The store agrees: everyone sent, nothing pending.
    let store = Store::open(&sb.db()).unwrap();
    let a = store.announcement(1).unwrap().unwrap();
    assert_eq!((a.sent, a.pending()), (2000, 0), "{a:?}");
}

#[test]
fn announce_and_export_deliveries_on_the_command_line() {
    let sb = Sandbox::new();
    let r = sb.run(&["announce", "--audience", "everyone", "--text", "x"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("not an audience"), "{}", r.stderr);
    let r = sb.run(&["announce", "--audience", "all"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("text is missing"), "{}", r.stderr);
    sb.ask("a", "hello");
    sb.ask("b", "hello");
    let r = sb.ok(&["announce", "--audience", "all", "Gate", "B", "closes", "early"]);
    assert!(
        r.stdout.contains("announcement 1 to all: 2 recipient(s) queued"),
        "{}",
        r.stdout
    );
    let csv = sb.ok(&["export", "deliveries", "--announcement", "1"]).stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "announcement,recipient,channel,state,attempts,reason,updated_at"
    );
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[1].starts_with("1,console:a,console,pending,0,,"), "{csv}");
    // The terminal has no push: the next message shows it, once.
    let next = sb.ask("a", "hi");
    assert!(next.starts_with("Gate B closes early\n"), "{next}");
    assert!(!sb.ask("a", "hi").contains("Gate B"));
    let csv = sb.ok(&["export", "deliveries", "--announcement", "1"]).stdout;
    assert!(csv.contains("1,console:a,console,sent,1,,"), "{csv}");
    let r = sb.run(&["export", "deliveries", "--announcement", "7"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no announcement 7"), "{}", r.stderr);
}
