//! The web channel end to end: the real router served by axum on a
//! loopback port, a real bot with the demo knowledge over a temp redb file,
//! and HTTP requests from reqwest. Also the helpers the browser test uses.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use parkbot::app::App;
use parkbot::bot::Bot;
use parkbot::channels::web;
use parkbot::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A bot over the store at `db`, seeded with the demo knowledge, at the
/// tests' fixed time (before every demo event).
pub fn demo_bot(db: &Path) -> Arc<Bot> {
    let config = Config::default_with_env(Vec::<(String, String)>::new()).unwrap();
    // A bot that served this file a moment ago may not have let go of it
    // yet (its last spawned message task drops its handle after answering).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let app = loop {
        match App::open(config.clone(), Some(db)) {
            Ok(app) => break app,
            Err(e)
                if std::time::Instant::now() < deadline
                    && e.chain().any(|c| {
                        matches!(
                            c.downcast_ref::<parkbot::store::StoreError>(),
                            Some(parkbot::store::StoreError::Locked { .. })
                        )
                    }) =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("{e:#}"),
        }
    };
    let now = time::macros::datetime!(2026-11-28 12:00 +08:00);
    Arc::new(app.bot(Arc::new(move || now)).unwrap())
}

/// The web router served on 127.0.0.1 with the peer address available,
/// stopped (gracefully) by [`Server::stop`].
pub struct Server {
    pub addr: SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(bot: Arc<Bot>, options: web::Options) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = web::router_with(bot, options);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        Server { addr, stop, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops serving; the router (and its bot) are dropped when this returns.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .unwrap();
    }
}

/// A test client talking to one server.
struct Chat {
    server: Server,
    http: reqwest::Client,
}

impl Chat {
    async fn new(bot: Arc<Bot>, options: web::Options) -> Chat {
        Chat {
            server: Server::start(bot, options).await,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs `body` as JSON to /api/chat.
    async fn post(&self, body: Value) -> (StatusCode, Value) {
        self.raw(body.to_string()).await
    }

    async fn raw(&self, body: String) -> (StatusCode, Value) {
        let res = self
            .http
            .post(self.server.url("/api/chat"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let value = res.json::<Value>().await.unwrap_or(Value::Null);
        (status, value)
    }

    /// POSTs and insists on 200.
    async fn ok(&self, body: Value) -> Value {
        let (status, value) = self.post(body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body} → {value}");
        value
    }

    async fn stop(self) {
        drop(self.http);
        self.server.stop().await;
    }
}

fn replies(v: &Value) -> String {
    v["replies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect::<Vec<_>>()
        .join("\n")
}

fn session(v: &Value) -> String {
    v["session"].as_str().unwrap().to_string()
}

fn is_session_id(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The value of the choice whose label contains `label`.
fn choice(v: &Value, label: &str) -> String {
    let choices = v["choices"].as_array().unwrap();
    let c = choices
        .iter()
        .find(|c| c["label"].as_str().unwrap().contains(label))
        .unwrap_or_else(|| panic!("no choice {label:?} in {v}"));
    c["value"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_question_gets_an_answer_and_a_new_session() {
    let dir = tempfile::tempdir().unwrap();
    let chat = Chat::new(demo_bot(&dir.path().join("w.redb")), Default::default()).await;
    let v = chat.ok(json!({"text": "园区有多大面积？"})).await;
    assert!(is_session_id(&session(&v)), "{v}");
    assert!(replies(&v).contains("10万平方米"), "{v}");
    assert_eq!(v["choices"], json!([]));
    let again = chat.ok(json!({"text": "How much space does the cluster have?"})).await;
    assert_ne!(
        session(&again),
        session(&v),
        "each request without a session gets a new one"
    );
    assert!(
        replies(&again).contains("100,000") || replies(&again).contains("square"),
        "{again}"
    );
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_signs_up_pressing_a_choice_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let bot = demo_bot(&dir.path().join("w.redb"));
    let chat = Chat::new(bot.clone(), Default::default()).await;
    let v = chat.ok(json!({"text": "报名"})).await;
    let id = session(&v);
    let choices = v["choices"].as_array().unwrap();
    assert!(choices.len() >= 2, "{v}");
    for c in choices {
        assert!(c["value"].is_string() && c["label"].is_string(), "{c}");
    }
    assert!(!replies(&v).contains("1. "), "choices are not listed in the text: {v}");
    let forum = choice(&v, "Web3.0");
    let v = chat.ok(json!({"session": id, "choice": forum})).await;
    assert_eq!(session(&v), id);
    assert!(replies(&v).contains("姓名"), "{v}");
    for step in ["张三", "首钢", "13812345678"] {
        chat.ok(json!({"session": id, "text": step})).await;
    }
    let v = chat.ok(json!({"session": id, "text": "是"})).await;
    assert!(replies(&v).contains("报名编号"), "{v}");
    let regs = bot.store().registrations(Some("web3-forum")).unwrap();
    assert_eq!(regs.len(), 1);
    assert_eq!(regs[0].user, format!("web:{id}"));
    assert_eq!(regs[0].name, "张三");
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_the_server_did_not_issue_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bot = demo_bot(&dir.path().join("w.redb"));
    let chat = Chat::new(bot.clone(), Default::default()).await;
    for made_up in ["0123456789abcdef0123456789abcdef", "not-a-session", "", "ABCDEF"] {
        let (status, v) = chat.post(json!({"session": made_up, "text": "你好"})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{made_up:?}: {v}");
        assert_eq!(v, json!({"error": "unknown session"}));
    }
    assert!(
        bot.store()
            .session("web:0123456789abcdef0123456789abcdef")
            .unwrap()
            .is_none(),
        "never adopted"
    );
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_json_4xx_and_long_text_a_polite_answer() {
    let dir = tempfile::tempdir().unwrap();
    let chat = Chat::new(demo_bot(&dir.path().join("w.redb")), Default::default()).await;
    let long_choice = json!({"choice": "x".repeat(257)}).to_string();
    for body in [
        "not json".to_string(),
        "{}".into(),
        r#"{"text": ""}"#.into(),
        r#"{"text": "   "}"#.into(),
        r#"{"text": "hi", "choice": "1"}"#.into(),
        r#"{"text": 42}"#.into(),
        long_choice,
    ] {
        let (status, v) = chat.raw(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert!(v["error"].is_string(), "{body}: {v}");
    }
    let (status, _) = chat.raw(format!(r#"{{"text": "{}"}}"#, "x".repeat(100_000))).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let v = chat.ok(json!({"text": "字".repeat(1500)})).await;
    assert!(is_session_id(&session(&v)));
    assert!(!replies(&v).is_empty(), "the bot refuses it itself: {v}");
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_with_strict_headers() {
    let dir = tempfile::tempdir().unwrap();
    let chat = Chat::new(demo_bot(&dir.path().join("w.redb")), Default::default()).await;
    let res = chat.http.get(chat.server.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers().clone();
    assert_eq!(h["content-type"], "text/html; charset=utf-8");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    let csp = h["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    let body = res.text().await.unwrap();
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert_eq!(nonce.len(), 32);
    assert!(
        body.contains(&format!(r#"<script nonce="{nonce}">"#)),
        "the script carries the nonce"
    );
    assert!(!body.contains("__NONCE__"));
    for needle in [
        r#"id="input""#,
        r#"id="send""#,
        r#"id="lang""#,
        r#"role="log""#,
        r#"aria-live="polite""#,
        r#"name="viewport""#,
        "首钢科幻产业集聚区",
        "Shougang Sci-Fi Industry Cluster",
    ] {
        assert!(body.contains(needle), "{needle}");
    }
    assert!(!body.contains("innerHTML"), "bot and user text go through textContent");
    let again = chat.http.get(chat.server.url("/")).send().await.unwrap();
    assert_ne!(again.headers()["content-security-policy"], h["content-security-policy"]);
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_sessions_per_address_are_limited() {
    let dir = tempfile::tempdir().unwrap();
    let options = web::Options {
        new_sessions_per_address: 3,
        window: Duration::from_secs(600),
        trusted_proxies: Vec::new(),
    };
    let chat = Chat::new(demo_bot(&dir.path().join("w.redb")), options).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(session(&chat.ok(json!({"text": "hello"})).await));
    }
    let (status, v) = chat.post(json!({"text": "hello"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert!(v["error"].is_string());
    let v = chat.ok(json!({"session": ids[0], "text": "hello"})).await;
    assert_eq!(session(&v), ids[0], "existing sessions go on");
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_address_counts() {
    let dir = tempfile::tempdir().unwrap();
    let options = web::Options {
        new_sessions_per_address: 2,
        window: Duration::from_secs(600),
        trusted_proxies: vec!["127.0.0.1".parse().unwrap()],
    };
    let chat = Chat::new(demo_bot(&dir.path().join("p.redb")), options).await;
    let from = |client: &str| {
        chat.http
            .post(chat.server.url("/api/chat"))
            .header("content-type", "application/json")
            .header("x-forwarded-for", format!("203.0.113.9, {client}"))
            .body(json!({"text": "hello"}).to_string())
            .send()
    };
    // Ten clients behind the proxy: each has its own allowance.
    for i in 0..10 {
        assert_eq!(from(&format!("198.51.100.{i}")).await.unwrap().status(), StatusCode::OK);
    }
    // One client, three new sessions: the third is over its limit.
    assert_eq!(from("198.51.100.200").await.unwrap().status(), StatusCode::OK);
    assert_eq!(from("198.51.100.200").await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        from("198.51.100.200").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    chat.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_its_dialog_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("w.redb");
    let chat = Chat::new(demo_bot(&db), Default::default()).await;
    let v = chat.ok(json!({"text": "报名"})).await;
    let (id, forum) = (session(&v), choice(&v, "Web3.0"));
    chat.stop().await;

    let chat = Chat::new(demo_bot(&db), Default::default()).await;
    let v = chat.ok(json!({"session": id, "choice": forum})).await;
    assert_eq!(session(&v), id);
    assert!(replies(&v).contains("姓名"), "the sign-up goes on: {v}");
    chat.stop().await;
}
