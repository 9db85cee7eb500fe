//! The Telegram channel against a mock Bot API written here (axum on
//! loopback): what teloxide calls (`getMe`, `getUpdates`, `sendMessage`,
//! `answerCallbackQuery`, `editMessageReplyMarkup`, `setMyCommands`,
//! `setWebhook`, `deleteWebhook`) is answered as Telegram answers it, and
//! every call is recorded for the test to read.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::mocks::{Mock, TOKEN};
use crate::util::server::{Served, serve};
use crate::util::{BIN, NOW};

const ADMIN: &str = "admin-token-for-tests";

fn env(api: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut e: Vec<(String, String)> = [
        ("PARKBOT_TELEGRAM__ENABLED", "true"),
        ("PARKBOT_TELEGRAM__TOKEN", TOKEN),
        ("PARKBOT_TELEGRAM__API_URL", api),
        ("PARKBOT_STAFF__ADMIN_TOKEN", ADMIN),
        ("PARKBOT_SERVER__MESSAGES_PER_MINUTE", "0"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        e.retain(|(key, _)| key != k);
        e.push((k.to_string(), v.to_string()));
    }
    e
}

fn text_of(m: &Value) -> &str {
    m["text"].as_str().unwrap_or("")
}

/// The callback data of the button whose label contains `label`.
fn button(m: &Value, label: &str) -> String {
    let rows = m["reply_markup"]["inline_keyboard"].as_array().expect("a keyboard");
    rows.iter()
        .flat_map(|r| r.as_array().unwrap())
        .find(|b| b["text"].as_str().unwrap().contains(label))
        .unwrap_or_else(|| panic!("no button {label:?} in {m:#}"))["callback_data"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn registrations(s: &Served) -> String {
    let url = format!("{}/admin/registrations?event=web3-forum", s.base);
    s.client
        .get(url)
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn polling_greets_answers_and_signs_up_with_buttons() {
    let api = Mock::start().await;
    let m = &api.mock;
    let s = serve(env(&api.url, &[])).await;

    // Start-up: the command menu in both languages, no webhook left over.
    let commands = m.wait_calls("setMyCommands", 2).await;
    let zh = commands
        .iter()
        .find(|c| c.body["language_code"] == "zh")
        .expect("a zh menu");
    let en = commands
        .iter()
        .find(|c| c.body["language_code"].is_null())
        .expect("a default menu");
    let names: Vec<&str> = en.body["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["start", "help", "events", "signup", "my", "cancel", "lang"]);
    assert!(zh.body["commands"][2]["description"].as_str().unwrap().contains("活动"));
    assert!(
        en.body["commands"][2]["description"]
            .as_str()
            .unwrap()
            .contains("events")
    );
    m.wait_calls("deleteWebhook", 1).await;

    // /start is greeted in the user's language.
    m.text(1, "/start", Some("en"));
    assert!(text_of(&m.nth_to(1, 1).await).contains("Hello"), "English greeting");
    m.text(2, "/start", Some("zh-hans"));
    assert!(text_of(&m.nth_to(2, 1).await).contains("您好"));

    // A question gets the knowledge's answer, as plain text.
    m.text(1, "停车费多少？", Some("en"));
    let answer = m.nth_to(1, 2).await;
    assert!(text_of(&answer).contains("每小时5元"), "{answer}");
    assert!(m.sent_to(1)[1]["parse_mode"].is_null(), "no parse mode");

    // A sign-up: the event by button, name and organization typed, the
    // phone typed, confirmed by typing.
    m.text(1, "/signup", Some("en"));
    let pick = m.nth_to(1, 3).await;
    let forum = button(&pick, "Web 3.0");
    assert!(forum.len() <= 64);
    m.press(1, &pick, &forum);
    let name_prompt = m.nth_to(1, 4).await;
    assert!(text_of(&name_prompt).to_lowercase().contains("name"), "{name_prompt}");
    // The press was answered and its keyboard taken away.
    let answered = m.wait_calls("answerCallbackQuery", 1).await;
    assert!(answered[0].body["callback_query_id"].is_string());
    let edited = m.wait_calls("editMessageReplyMarkup", 1).await;
    assert_eq!(edited[0].body["message_id"], pick["message_id"]);
    assert!(edited[0].body["reply_markup"].is_null(), "the keyboard is removed");

    m.text(1, "Li Lei", Some("en"));
    m.nth_to(1, 5).await;
    m.text(1, "Shougang Lab", Some("en"));
    m.nth_to(1, 6).await;
    m.text(1, "13812345678", Some("en"));
    let confirm = m.nth_to(1, 7).await;
    assert!(text_of(&confirm).contains("Li Lei"), "{confirm}");
    // Yes and no are buttons too.
    assert_eq!(button(&confirm, "Yes"), "yes");
    m.press(1, &confirm, "yes");
    let done = m.nth_to(1, 8).await;
    assert!(text_of(&done).contains("Web 3.0"), "{done}");

    // Pressing the old button again starts nothing new.
    m.press(1, &pick, &forum);
    let stale = m.nth_to(1, 9).await;
    assert!(text_of(&stale).contains("no longer active"), "{stale}");
    let csv = registrations(&s).await;
    let rows: Vec<&str> = csv.lines().filter(|l| l.contains("telegram:1")).collect();
    assert_eq!(rows.len(), 1, "{csv}");
    assert!(rows[0].contains(",confirmed,Li Lei,Shougang Lab,"), "{csv}");

    // /lang offers both languages as buttons; a press switches.
    m.text(2, "/lang", None);
    let offer = m.nth_to(2, 2).await;
    m.press(2, &offer, &button(&offer, "English"));
    assert!(text_of(&m.nth_to(2, 3).await).contains("English"));
    // A deep link now speaks English (no words of its own to go by).
    m.text(2, "/start signup-web3-forum", None);
    let linked = m.nth_to(2, 4).await;
    assert!(text_of(&linked).contains("Web 3.0"), "{linked}");
    assert!(text_of(&linked).contains("Your full name"), "in English: {linked}");
    s.stop().await;
}

#[tokio::test]
async fn a_429_is_waited_out_and_the_answer_still_arrives() {
    let api = Mock::start().await;
    let m = &api.mock;
    let s = serve(env(&api.url, &[])).await;
    m.wait_calls("setMyCommands", 2).await;
    m.fail_next_send(json!({"ok": false, "error_code": 429,
        "description": "Too Many Requests: retry after 2", "parameters": {"retry_after": 2}}));
    m.text(7, "/start", Some("en"));
    let sends = m.wait_calls("sendMessage", 2).await;
    let gap = sends[1].at.duration_since(sends[0].at);
    assert!(
        gap >= Duration::from_secs(2),
        "retried after {gap:?}, before retry_after"
    );
    assert_eq!(sends[1].body["text"], sends[0].body["text"], "the same message again");
    assert!(m.sent_to(7).len() == 2);
    s.stop().await;
}

#[tokio::test]
async fn a_person_who_blocked_the_bot_is_recorded() {
    let api = Mock::start().await;
    let m = &api.mock;
    let s = serve(env(&api.url, &[])).await;
    m.wait_calls("setMyCommands", 2).await;
    m.fail_next_send(json!({"ok": false, "error_code": 403,
        "description": "Forbidden: bot was blocked by the user"}));
    m.text(8, "/start", Some("en"));
    m.wait_calls("sendMessage", 1).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let sub = s.store().subscriber("telegram:8").unwrap();
        if sub.as_ref().is_some_and(|x| x.blocked && !x.subscribed) {
            break;
        }
        assert!(Instant::now() < deadline, "not recorded as blocked: {sub:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Starting the bot again makes them a subscriber again.
    m.text(8, "/start", Some("en"));
    m.nth_to(8, 2).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sub = s.store().subscriber("telegram:8").unwrap().unwrap();
    assert!(sub.subscribed && !sub.blocked, "{sub:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_reply_over_4096_characters_is_split_on_line_boundaries() {
    let api = Mock::start().await;
    let m = &api.mock;
    let s = serve(env(&api.url, &[])).await;
    // A FAQ whose answer is about 6,000 characters, in lines.
    let line = "园区服务说明：访客请在北门登记，出示有效证件后领取临时通行证。";
    let answer: Vec<String> = (0..200).map(|i| format!("{i}. {line}")).collect();
    let answer = answer.join("\n");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.toml");
    std::fs::write(
        &file,
        format!(
            "[[faq]]\nid = \"visitor-rules\"\nquestions = [\"访客须知全文\"]\nanswer = {}\n",
            toml::Value::String(answer.clone())
        ),
    )
    .unwrap();
    let k = parkbot::app::load_knowledge_files(&[file], &s.store().field_ids().unwrap()).unwrap();
    s.store().import(&k, &Default::default()).unwrap();
    s.bot.reload_knowledge().unwrap();
    m.wait_calls("setMyCommands", 2).await;

    m.text(9, "访客须知全文", None);
    let first = m.nth_to(9, 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.sent_to(9).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parts: Vec<String> = m
        .sent_to(9)
        .iter()
        .map(|b| b["text"].as_str().unwrap().to_string())
        .collect();
    assert!(parts.len() >= 2, "{} part(s), first: {first}", parts.len());
    for p in &parts {
        assert!(p.encode_utf16().count() <= 4096, "{} units", p.encode_utf16().count());
    }
    let all = parts.join("\n");
    for i in [0, 77, 199] {
        let whole = format!("{i}. {line}");
        assert!(all.lines().any(|l| l == whole), "line {i} arrived whole");
    }
    s.stop().await;
}

#[tokio::test]
async fn webhook_mode_takes_updates_with_the_secret_only() {
    let api = Mock::start().await;
    let m = &api.mock;
    let s = serve(env(
        &api.url,
        &[
            ("PARKBOT_TELEGRAM__MODE", "webhook"),
            ("PARKBOT_TELEGRAM__WEBHOOK_URL", "https://bot.example.org/telegram"),
            ("PARKBOT_TELEGRAM__WEBHOOK_SECRET", "s3cret-Token_1"),
        ],
    ))
    .await;
    let hook = m.wait_calls("setWebhook", 1).await;
    assert_eq!(hook[0].body["url"], "https://bot.example.org/telegram");
    assert_eq!(hook[0].body["secret_token"], "s3cret-Token_1");
    assert!(m.calls("getUpdates").is_empty(), "no polling in webhook mode");

    let update = |id: i64, text: &str| {
        json!({"update_id": id, "message": {"message_id": id, "date": 1_764_300_000,
            "chat": {"id": 11, "type": "private", "first_name": "Li"},
            "from": {"id": 11, "is_bot": false, "first_name": "Li", "language_code": "en"}, "text": text}})
    };
    let post = |secret: Option<&str>, body: Value| {
        let mut r = s.client.post(format!("{}/telegram", s.base)).json(&body);
        if let Some(sec) = secret {
            r = r.header("X-Telegram-Bot-Api-Secret-Token", sec);
        }
        r.send()
    };
    assert_eq!(post(None, update(1, "/start")).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong"), update(2, "/start")).await.unwrap().status(), 401);
    assert_eq!(
        post(Some("s3cret-Token_"), update(3, "/start")).await.unwrap().status(),
        401
    );
    let bad = s
        .client
        .post(format!("{}/telegram", s.base))
        .header("X-Telegram-Bot-Api-Secret-Token", "s3cret-Token_1")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        post(Some("s3cret-Token_1"), update(4, "/start"))
            .await
            .unwrap()
            .status(),
        200
    );
    let greeting = m.nth_to(11, 1).await;
    assert!(text_of(&greeting).contains("Hello"));
    // The refused ones never reached the core: one message, one answer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(m.sent_to(11).len(), 1);
    let metrics = s.metrics().await;
    assert!(
        metrics.contains("parkbot_messages_total{channel=\"telegram\"} 1"),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn an_unreachable_api_at_start_is_retried_while_the_web_chat_works() {
    let api = Mock::start().await;
    let m = &api.mock;
    m.fail_get_me(2);
    let s = serve(env(&api.url, &[])).await;
    // Meanwhile the server is up.
    let health = s.client.get(format!("{}/healthz", s.base)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let tries = m.wait_calls("getMe", 3).await;
    // Backoff: about 1 s, then about 2 s.
    assert!(tries[1].at.duration_since(tries[0].at) >= Duration::from_millis(900));
    assert!(tries[2].at.duration_since(tries[1].at) >= Duration::from_millis(1900));
    m.text(12, "/start", Some("en"));
    assert!(text_of(&m.nth_to(12, 1).await).contains("Hello"));
    s.stop().await;
}

/// The real binary: `parkbot serve` polls the mock, greets, answers, and
/// says on stdout that Telegram is on; the token never appears in its
/// output or log.
#[tokio::test]
async fn the_binary_serves_telegram_by_polling() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let api = Mock::start().await;
    let m = &api.mock;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PARKBOT_NOW", NOW)
        .env("RUST_LOG", "debug")
        .envs(env(&api.url, &[]))
        .args(["--db", "tg.redb", "serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    while let Some(line) = out.next_line().await.unwrap() {
        banner.push_str(&line);
        banner.push('\n');
        if line.starts_with("Ctrl-C") {
            break;
        }
    }
    assert!(banner.contains("telegram: on — long polling"), "{banner}");
    m.text(21, "/start", Some("zh"));
    assert!(text_of(&m.nth_to(21, 1).await).contains("您好"));
    m.text(21, "停车费多少？", None);
    assert!(text_of(&m.nth_to(21, 2).await).contains("每小时5元"));
    // SIGTERM: a clean stop.
    let pid = child.id().unwrap() as i32;
    unsafe_kill(pid);
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut child.stderr.take().unwrap(), &mut err)
        .await
        .unwrap();
    assert!(
        !err.contains(TOKEN) && !banner.contains(TOKEN),
        "the token leaked:\n{err}"
    );
}

fn unsafe_kill(pid: i32) {
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
}
