//! Mock platform servers for the tests, written here (axum on loopback):
//! the Telegram Bot API (what teloxide calls) and the WeChat API (token
//! and customer-service send). Every call is recorded for the test to read.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

pub const TOKEN: &str = "123456:TEST-token";
pub const BOT_ID: i64 = 999;

/// One call the bot made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub body: Value,
    pub at: Instant,
}

#[derive(Default)]
struct MockState {
    next_update: i64,
    updates: VecDeque<Value>,
    calls: Vec<Call>,
    /// Answers for the next `sendMessage` calls, instead of success.
    send_failures: VecDeque<Value>,
    /// Answers for every `sendMessage` to these chats.
    chat_failures: HashMap<i64, Value>,
    /// How many `getMe` calls fail (401) before it works.
    get_me_failures: u32,
    next_message: i64,
}

#[derive(Clone, Default)]
pub struct Mock {
    state: Arc<Mutex<MockState>>,
    changed: Arc<Notify>,
}

pub struct MockServer {
    pub url: String,
    pub mock: Mock,
}

impl Mock {
    pub async fn start() -> MockServer {
        let mock = Mock::default();
        let app = Router::new()
            .route("/{bot}/{method}", post(api))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        MockServer { url, mock }
    }

    fn push(&self, kind: &str, mut payload: Value) {
        let mut s = self.state.lock().unwrap();
        s.next_update += 1;
        let id = 1000 + s.next_update;
        let mut update = json!({ "update_id": id });
        if kind == "message" {
            payload["message_id"] = json!(id);
        }
        update[kind] = payload;
        s.updates.push_back(update);
        drop(s);
        self.changed.notify_waiters();
    }

    fn user(chat: i64, lang: Option<&str>) -> Value {
        let mut u = json!({"id": chat, "is_bot": false, "first_name": "Li"});
        if let Some(l) = lang {
            u["language_code"] = json!(l);
        }
        u
    }

    /// A private chat message from user `chat`.
    pub fn text(&self, chat: i64, text: &str, lang: Option<&str>) {
        self.push(
            "message",
            json!({"date": 1_764_300_000, "chat": {"id": chat, "type": "private", "first_name": "Li"},
                "from": Mock::user(chat, lang), "text": text}),
        );
    }

    /// A press of the button with `data` on the bot's message `message`.
    pub fn press(&self, chat: i64, message: &Value, data: &str) {
        let id = format!(
            "cb{}",
            data.len() + message["message_id"].as_i64().unwrap_or(0) as usize
        );
        self.push(
            "callback_query",
            json!({"id": id, "chat_instance": "ci", "from": Mock::user(chat, None), "data": data,
                "message": message}),
        );
    }

    pub fn fail_next_send(&self, answer: Value) {
        self.state.lock().unwrap().send_failures.push_back(answer);
    }

    /// Every send to `chat` gets `answer` (a 403 "blocked", say).
    pub fn fail_sends_to(&self, chat: i64, answer: Value) {
        self.state.lock().unwrap().chat_failures.insert(chat, answer);
    }

    /// How many `sendMessage` calls each chat got (failed ones included).
    pub fn sends_per_chat(&self) -> HashMap<i64, usize> {
        let mut out = HashMap::new();
        for c in self.calls("sendMessage") {
            *out.entry(c.body["chat_id"].as_i64().unwrap()).or_default() += 1;
        }
        out
    }

    pub fn fail_get_me(&self, times: u32) {
        self.state.lock().unwrap().get_me_failures = times;
    }

    pub fn calls(&self, method: &str) -> Vec<Call> {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Waits until at least `n` calls of `method` were made.
    pub async fn wait_calls(&self, method: &str, n: usize) -> Vec<Call> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.changed.notified();
            let calls = self.calls(method);
            if calls.len() >= n {
                return calls;
            }
            assert!(
                Instant::now() < deadline,
                "waited for {n} {method} calls, got {}: {calls:#?}",
                calls.len()
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
    }

    /// The texts sent to `chat` so far.
    pub fn sent_to(&self, chat: i64) -> Vec<Value> {
        self.calls("sendMessage")
            .into_iter()
            .filter(|c| c.body["chat_id"].as_i64() == Some(chat))
            .map(|c| c.body)
            .collect()
    }

    /// Waits for the `n`th message sent to `chat` (counting from 1) and
    /// returns it as the Message Telegram would (with its keyboard).
    pub async fn nth_to(&self, chat: i64, n: usize) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.changed.notified();
            let sent = self.sent_to(chat);
            if sent.len() >= n {
                let body = &sent[n - 1];
                let mut m = json!({"message_id": 5000 + n as i64, "date": 1_764_300_000,
                    "chat": {"id": chat, "type": "private", "first_name": "Li"},
                    "from": {"id": BOT_ID, "is_bot": true, "first_name": "Park", "username": "park_bot"},
                    "text": body["text"]});
                if !body["reply_markup"].is_null() {
                    m["reply_markup"] = body["reply_markup"].clone();
                }
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "waited for message {n} to {chat}, got {sent:#?}"
            );
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
    }
}

fn ok(result: Value) -> Json<Value> {
    Json(json!({"ok": true, "result": result}))
}

/// A multipart form (teloxide sends `setWebhook` so) as a JSON object of
/// its text fields.
fn form_fields(content_type: &str, body: &[u8]) -> Option<Value> {
    let boundary = content_type.split("boundary=").nth(1)?.trim_matches('"');
    let text = String::from_utf8_lossy(body);
    let mut fields = serde_json::Map::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let Some(name) = head.split("name=\"").nth(1).and_then(|n| n.split('"').next()) else {
            continue;
        };
        let value = value.strip_suffix("\r\n").unwrap_or(value);
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        fields.insert(name.to_string(), value);
    }
    Some(Value::Object(fields))
}

async fn api(
    State(m): State<Mock>,
    Path((bot, method)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Json<Value> {
    if bot != format!("bot{TOKEN}") {
        return Json(json!({"ok": false, "error_code": 401, "description": "Unauthorized"}));
    }
    // Method names are case-insensitive (teloxide writes `GetMe`).
    let method = {
        let mut c = method.chars();
        c.next()
            .map(|f| f.to_ascii_lowercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let body: Value = if content_type.starts_with("multipart/form-data") {
        form_fields(content_type, &body).unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    {
        let mut s = m.state.lock().unwrap();
        s.calls.push(Call {
            method: method.clone(),
            body: body.clone(),
            at: Instant::now(),
        });
    }
    m.changed.notify_waiters();
    match method.as_str() {
        "getMe" => {
            let mut s = m.state.lock().unwrap();
            if s.get_me_failures > 0 {
                s.get_me_failures -= 1;
                return Json(json!({"ok": false, "error_code": 502, "description": "Bad Gateway"}));
            }
            ok(
                json!({"id": BOT_ID, "is_bot": true, "first_name": "Park", "username": "park_bot",
                "can_join_groups": true, "can_read_all_group_messages": false,
                "supports_inline_queries": false, "can_connect_to_business": false,
                "has_main_web_app": false}),
            )
        }
        "getUpdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let deadline = Instant::now() + Duration::from_millis(500);
            loop {
                let changed = m.changed.notified();
                {
                    let mut s = m.state.lock().unwrap();
                    s.updates.retain(|u| u["update_id"].as_i64().unwrap() >= offset);
                    if !s.updates.is_empty() {
                        return ok(Value::Array(s.updates.iter().cloned().collect()));
                    }
                }
                if Instant::now() >= deadline {
                    return ok(json!([]));
                }
                let _ = tokio::time::timeout(Duration::from_millis(100), changed).await;
            }
        }
        "sendMessage" => {
            let mut s = m.state.lock().unwrap();
            if let Some(failure) = s.send_failures.pop_front() {
                return Json(failure);
            }
            if let Some(failure) = body["chat_id"].as_i64().and_then(|c| s.chat_failures.get(&c)) {
                return Json(failure.clone());
            }
            s.next_message += 1;
            let chat = body["chat_id"].clone();
            ok(json!({"message_id": s.next_message, "date": 1_764_300_000,
                "chat": {"id": chat, "type": "private", "first_name": "Li"},
                "from": {"id": BOT_ID, "is_bot": true, "first_name": "Park"},
                "text": body["text"]}))
        }
        "editMessageReplyMarkup" => ok(json!({"message_id": body["message_id"], "date": 1_764_300_000,
            "chat": {"id": body["chat_id"], "type": "private", "first_name": "Li"},
            "from": {"id": BOT_ID, "is_bot": true, "first_name": "Park"}, "text": "…"})),
        "answerCallbackQuery" | "setMyCommands" | "setWebhook" | "deleteWebhook" => ok(json!(true)),
        _ => Json(json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"})),
    }
}

/// One customer-service message the WeChat mock received.
#[derive(Debug, Clone)]
pub struct WechatSend {
    pub to: String,
    pub text: String,
    pub errcode: i64,
    pub at: Instant,
}

#[derive(Default)]
struct WechatState {
    sends: Vec<WechatSend>,
    /// errcodes for the next sends (any recipient), then 0.
    script: VecDeque<i64>,
    /// errcodes for every send to these openids.
    per_user: HashMap<String, i64>,
    token_calls: u32,
}

/// The WeChat API: `GET /cgi-bin/token` and `POST
/// /cgi-bin/message/custom/send` (app id `wxTEST`, secret below).
#[derive(Clone, Default)]
pub struct WechatMock {
    state: Arc<Mutex<WechatState>>,
    changed: Arc<Notify>,
}

pub const WECHAT_APP_ID: &str = "wxTEST";
pub const WECHAT_SECRET: &str = "wechat-test-secret";

impl WechatMock {
    /// The mock on loopback, and its base URL.
    pub async fn start() -> (String, WechatMock) {
        let mock = WechatMock::default();
        let app = Router::new()
            .route("/cgi-bin/token", get(wechat_token))
            .route("/cgi-bin/message/custom/send", post(wechat_send))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (url, mock)
    }

    /// The next sends get these error codes, in order.
    pub fn script(&self, codes: &[i64]) {
        self.state.lock().unwrap().script.extend(codes);
    }

    /// Every send to `openid` gets `code`.
    pub fn fail_user(&self, openid: &str, code: i64) {
        self.state.lock().unwrap().per_user.insert(openid.to_string(), code);
    }

    pub fn sends(&self) -> Vec<WechatSend> {
        self.state.lock().unwrap().sends.clone()
    }

    /// Successful sends per openid.
    pub fn delivered(&self) -> HashMap<String, usize> {
        let mut out = HashMap::new();
        for s in self.sends().into_iter().filter(|s| s.errcode == 0) {
            *out.entry(s.to).or_default() += 1;
        }
        out
    }

    /// Waits until `done` holds of the sends (at most 30 s).
    pub async fn wait_until(&self, what: &str, done: impl Fn(&[WechatSend]) -> bool) -> Vec<WechatSend> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let changed = self.changed.notified();
            let sends = self.sends();
            if done(&sends) {
                return sends;
            }
            assert!(Instant::now() < deadline, "waited for {what}; sends: {sends:#?}");
            let _ = tokio::time::timeout(Duration::from_millis(200), changed).await;
        }
    }
}

async fn wechat_token(State(m): State<WechatMock>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
    if q.get("appid").map(String::as_str) != Some(WECHAT_APP_ID)
        || q.get("secret").map(String::as_str) != Some(WECHAT_SECRET)
    {
        return Json(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
    }
    let n = {
        let mut s = m.state.lock().unwrap();
        s.token_calls += 1;
        s.token_calls
    };
    Json(json!({"access_token": format!("TOKEN{n}"), "expires_in": 7200}))
}

async fn wechat_send(State(m): State<WechatMock>, body: String) -> Json<Value> {
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let to = v["touser"].as_str().unwrap_or("").to_string();
    let text = v["text"]["content"].as_str().unwrap_or("").to_string();
    let errcode = {
        let mut s = m.state.lock().unwrap();
        let code = match s.per_user.get(&to) {
            Some(c) => *c,
            None => s.script.pop_front().unwrap_or(0),
        };
        s.sends.push(WechatSend {
            to,
            text,
            errcode: code,
            at: Instant::now(),
        });
        code
    };
    m.changed.notify_waiters();
    Json(json!({"errcode": errcode, "errmsg": if errcode == 0 { "ok" } else { "scripted" }}))
}
