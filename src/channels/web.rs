//! The web chat channel: `GET /` serves the chat page (one embedded HTML
//! file) and `POST /api/chat` carries one message of a browser's session
//! to the bot core and its replies back as JSON. An adapter only: it
//! checks input, issues and checks session ids, limits new sessions per
//! address, and renders replies; the dialog logic is the bot's.
//!
//! Request: `{"session": "…"?, "text": "…"}` or `{"session": "…", "choice":
//! "value"}`. Response: `{"session": "…", "replies": ["…"], "choices":
//! [{"value", "label"}]}`, where `choices` are those of the last reply that
//! has any. Errors are `{"error": "…"}` with a 4xx/5xx status.
//!
//! Session ids are 128 random bits from the OS (32 lowercase hex
//! characters), issued by the server and recorded in the store before
//! they are handed out; an id the server did not issue is refused (401),
//! never adopted. The identity of a session is `web:<id>`.
//!
//! The per-address limit on new sessions needs the peer address: serve the
//! router with `into_make_service_with_connect_info::<SocketAddr>()`
//! (without it the limit is skipped, with a warning logged once). Behind a
//! reverse proxy every client has the proxy's address: list the proxy in
//! `[server] trusted_proxies`, and the last address of its
//! `X-Forwarded-For` counts instead (the header of anyone else is ignored).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::bot::Bot;
use crate::message::{Channel, Choice, Identity, Inbound, Input, Reply};

/// The chat page; `__NONCE__` is replaced by each response's CSP nonce.
const PAGE: &str = include_str!("web/page.html");

/// The largest request body read (a message is refused politely by the bot
/// past `max_message_chars`; this only bounds what is read at all).
const MAX_BODY: usize = 64 * 1024;

/// The longest choice value accepted, in bytes.
pub const MAX_CHOICE_BYTES: usize = 256;

/// The most client addresses the new-session limiter remembers.
const MAX_TRACKED_ADDRESSES: usize = 10_000;

/// How the web channel limits new sessions.
#[derive(Debug, Clone)]
pub struct Options {
    /// New sessions one client address may open per `window`; 0 = no limit.
    pub new_sessions_per_address: u32,
    pub window: Duration,
    /// Reverse proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            new_sessions_per_address: 30,
            window: Duration::from_secs(10 * 60),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The web channel's state behind the router.
struct Web {
    bot: Arc<Bot>,
    options: Options,
    limiter: Mutex<Limiter>,
    /// Whether the missing peer address was already reported.
    warned_no_address: AtomicBool,
}

/// The web chat routes (`GET /`, `POST /api/chat`) with the default
/// [`Options`]. Serve with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(bot: Arc<Bot>) -> Router {
    router_with(bot, Options::default())
}

/// [`router`] with explicit limits.
pub fn router_with(bot: Arc<Bot>, options: Options) -> Router {
    let web = Arc::new(Web {
        bot,
        options,
        limiter: Mutex::new(Limiter::default()),
        warned_no_address: AtomicBool::new(false),
    });
    Router::new()
        .route("/", get(page))
        .route("/api/chat", post(chat))
        .route("/api/messages", get(messages))
        .with_state(web)
}

/// The client's address: the peer's, or, when the peer is a trusted
/// proxy, the last address its `X-Forwarded-For` adds.
fn client_address(peer: IpAddr, headers: &axum::http::HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back()
        .unwrap_or(peer)
}

// ── the page ──────────────────────────────────────────────────────────

/// The page, with a fresh nonce that its Content-Security-Policy allows
/// for its one inline script and style (and nothing else).
async fn page() -> Response {
    let nonce = match random_hex() {
        Ok(n) => n,
        Err(_) => return Refused::Unavailable.into_response(),
    };
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    );
    let mut res = Response::new(Body::from(PAGE.replace("__NONCE__", &nonce)));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    secure(res)
}

// ── the chat API ──────────────────────────────────────────────────────

/// What a browser sends.
#[derive(Debug, Deserialize)]
struct ChatRequest {
    session: Option<String>,
    text: Option<String>,
    choice: Option<String>,
}

/// What it gets back.
#[derive(Debug, Serialize)]
struct ChatResponse {
    session: String,
    replies: Vec<String>,
    choices: Vec<Choice>,
}

async fn chat(State(web): State<Arc<Web>>, req: Request) -> Response {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let peer = peer.map(|ip| client_address(ip, req.headers(), &web.options.trusted_proxies));
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
    };
    let (session, input) = match parse(&body) {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let session = match session {
        Some(id) => web.known(id).await,
        None => web.issue(peer).await,
    };
    let session = match session {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let Some(identity) = Identity::new(Channel::Web, &session) else {
        return error(StatusCode::UNAUTHORIZED, "unknown session");
    };
    let replies = web.bot.handle(Inbound {
        lang: None,
        identity,
        message_id: None,
        input,
    });
    let body = render(session, &replies.await);
    secure(axum::Json(body).into_response())
}

#[derive(Deserialize)]
struct MessagesQuery {
    #[serde(default)]
    session: String,
}

/// `GET /api/messages?session=…`: messages the park sent this session
/// while the page was closed (announcements, reminders, promotions),
/// handed over once: `{"replies": ["…"]}`. The page asks on load and then
/// every half minute.
async fn messages(State(web): State<Arc<Web>>, Query(q): Query<MessagesQuery>) -> Response {
    let session = match web.known(q.session).await {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    let Some(identity) = Identity::new(Channel::Web, &session) else {
        return error(StatusCode::UNAUTHORIZED, "unknown session");
    };
    let bot = web.bot.clone();
    match tokio::task::spawn_blocking(move || bot.waiting(&identity)).await {
        Ok(Ok(replies)) => {
            let texts: Vec<String> = replies.into_iter().map(|r| r.text).collect();
            secure(axum::Json(serde_json::json!({ "replies": texts })).into_response())
        }
        _ => Refused::Unavailable.into_response(),
    }
}

/// The session id given (if any) and the input, or why the request is bad.
fn parse(body: &Bytes) -> Result<(Option<String>, Input), &'static str> {
    let req: ChatRequest = serde_json::from_slice(body)
        .map_err(|_| "the body must be JSON: {\"session\"?, \"text\"} or {\"session\", \"choice\"}")?;
    let input = match (req.text, req.choice) {
        (Some(_), Some(_)) => return Err("send either text or choice, not both"),
        (None, None) => return Err("text or choice is required"),
        (Some(t), None) if t.trim().is_empty() => return Err("text is empty"),
        (Some(t), None) => Input::Text(t),
        (None, Some(c)) if c.is_empty() => return Err("choice is empty"),
        (None, Some(c)) if c.len() > MAX_CHOICE_BYTES => return Err("choice is too long"),
        (None, Some(c)) => Input::Choice(c),
    };
    Ok((req.session, input))
}

/// The replies as the page shows them: texts (choices are never listed in
/// them) and the choices of the last reply that has any.
fn render(session: String, replies: &[Reply]) -> ChatResponse {
    ChatResponse {
        session,
        replies: replies
            .iter()
            .filter(|r| !r.text.is_empty())
            .map(|r| r.text.clone())
            .collect(),
        choices: replies
            .iter()
            .rev()
            .find(|r| !r.choices.is_empty())
            .map(|r| r.choices.clone())
            .unwrap_or_default(),
    }
}

impl Web {
    /// `id` if the server issued it; else 401, or 503 if the store fails.
    async fn known(&self, id: String) -> Result<String, Refused> {
        if !is_session_id(&id) {
            return Err(Refused::UnknownSession);
        }
        let store = self.bot.store().clone();
        let lookup = id.clone();
        match tokio::task::spawn_blocking(move || store.web_session_known(&lookup)).await {
            Ok(Ok(true)) => Ok(id),
            Ok(Ok(false)) => Err(Refused::UnknownSession),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "web: looking up a session failed");
                Err(Refused::Unavailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "web: looking up a session panicked");
                Err(Refused::Unavailable)
            }
        }
    }

    /// A new session id, recorded in the store, unless `peer` opened too
    /// many lately (429) or the store fails (503).
    async fn issue(&self, peer: Option<IpAddr>) -> Result<String, Refused> {
        self.admit(peer)?;
        let id = random_hex().map_err(|e| {
            tracing::error!(error = %e, "web: the OS random source failed");
            Refused::Unavailable
        })?;
        let store = self.bot.store().clone();
        let issued = id.clone();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        match tokio::task::spawn_blocking(move || store.issue_web_session(&issued, now)).await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "web: recording a new session failed");
                Err(Refused::Unavailable)
            }
            Err(e) => {
                tracing::error!(error = %e, "web: recording a new session panicked");
                Err(Refused::Unavailable)
            }
        }
    }

    /// Counts a new session against `peer`'s allowance.
    fn admit(&self, peer: Option<IpAddr>) -> Result<(), Refused> {
        let limit = self.options.new_sessions_per_address;
        if limit == 0 {
            return Ok(());
        }
        let Some(peer) = peer else {
            if !self.warned_no_address.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "web: no client address (serve with into_make_service_with_connect_info): \
                     new sessions are not limited per address"
                );
            }
            return Ok(());
        };
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        if limiter.admit(address_key(peer), limit, self.options.window, Instant::now()) {
            Ok(())
        } else {
            Err(Refused::TooManySessions)
        }
    }
}

/// Why a request does not reach the bot, as far as its session goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// An id this server did not issue (401).
    UnknownSession,
    /// Too many new sessions from the address lately (429).
    TooManySessions,
    /// The store or the random source failed (503; the cause is logged).
    Unavailable,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::UnknownSession => error(StatusCode::UNAUTHORIZED, "unknown session"),
            Refused::TooManySessions => error(
                StatusCode::TOO_MANY_REQUESTS,
                "too many new sessions from this address; try again later",
            ),
            Refused::Unavailable => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily unavailable, please try again",
            ),
        }
    }
}

// ── the new-session limiter ───────────────────────────────────────────

/// New sessions per address in fixed windows, in memory, bounded to
/// [`MAX_TRACKED_ADDRESSES`] addresses.
#[derive(Default)]
struct Limiter {
    /// address → (window start, sessions opened in it)
    windows: HashMap<IpAddr, (Instant, u32)>,
}

impl Limiter {
    fn admit(&mut self, addr: IpAddr, limit: u32, window: Duration, now: Instant) -> bool {
        if !self.windows.contains_key(&addr) && self.windows.len() >= MAX_TRACKED_ADDRESSES {
            self.windows.retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.windows.len() >= MAX_TRACKED_ADDRESSES {
                let oldest = self
                    .windows
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(a, _)| *a);
                if let Some(a) = oldest {
                    self.windows.remove(&a);
                }
            }
        }
        let (start, count) = self.windows.entry(addr).or_insert((now, 0));
        if now.duration_since(*start) >= window {
            (*start, *count) = (now, 0);
        }
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }
}

/// The key an address is limited under: IPv6 clients by their /64 (one
/// subscriber's network), IPv4 by address.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

// ── helpers ───────────────────────────────────────────────────────────

/// 128 bits from the OS random source as 32 lowercase hex characters.
fn random_hex() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether `id` has the form of an issued session id.
fn is_session_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({ "error": message });
    secure((status, axum::Json(body)).into_response())
}

/// Headers every response of the channel carries.
fn secure(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(v: &str) -> Choice {
        Choice {
            value: v.into(),
            label: v.to_uppercase(),
        }
    }

    #[test]
    fn requests_are_checked_before_the_bot() {
        let ok = |s: &str| parse(&Bytes::from(s.to_string()));
        assert_eq!(ok(r#"{"text":"hi"}"#).unwrap(), (None, Input::Text("hi".into())));
        assert_eq!(
            ok(r#"{"session":"x","choice":"1"}"#).unwrap(),
            (Some("x".into()), Input::Choice("1".into()))
        );
        for bad in [
            "nope",
            "{}",
            r#"{"text":"  "}"#,
            r#"{"text":"a","choice":"b"}"#,
            r#"{"choice":""}"#,
            r#"{"text":5}"#,
        ] {
            assert!(ok(bad).is_err(), "{bad}");
        }
        let long = format!(r#"{{"choice":"{}"}}"#, "x".repeat(MAX_CHOICE_BYTES + 1));
        assert_eq!(ok(&long).unwrap_err(), "choice is too long");
    }

    #[test]
    fn choices_come_from_the_last_reply_that_has_any() {
        let replies = [
            Reply {
                text: "pick".into(),
                choices: vec![choice("a")],
            },
            Reply {
                text: "or".into(),
                choices: vec![choice("b"), choice("c")],
            },
            Reply::text("note"),
        ];
        let r = render("s".into(), &replies);
        assert_eq!(r.replies, ["pick", "or", "note"]);
        assert_eq!(r.choices, [choice("b"), choice("c")]);
        assert!(render("s".into(), &[Reply::text("x")]).choices.is_empty());
    }

    #[test]
    fn session_ids_are_128_random_bits_in_hex() {
        let a = random_hex().unwrap();
        assert!(is_session_id(&a), "{a}");
        assert_ne!(a, random_hex().unwrap());
        assert!(!is_session_id(&a.to_uppercase()));
        assert!(!is_session_id("abc"));
    }

    #[test]
    fn the_limiter_counts_per_address_and_window_and_stays_bounded() {
        let mut l = Limiter::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(600);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(l.admit(a, 2, w, t0));
        assert!(l.admit(a, 2, w, t0));
        assert!(!l.admit(a, 2, w, t0));
        assert!(l.admit("10.0.0.2".parse().unwrap(), 2, w, t0));
        assert!(l.admit(a, 2, w, t0 + w), "a new window");
        for i in 0..(MAX_TRACKED_ADDRESSES as u32 + 10) {
            l.admit(IpAddr::V4(i.into()), 2, w, t0);
        }
        assert!(l.windows.len() <= MAX_TRACKED_ADDRESSES);
        let v6 = |s: &str| address_key(s.parse().unwrap());
        assert_eq!(v6("2001:db8::1"), v6("2001:db8::ffff:1"));
        assert_ne!(v6("2001:db8::1"), v6("2001:db8:0:1::1"));
        assert_eq!(v6("::ffff:10.0.0.1"), a);
    }

    /// A bot over an empty store, and the router served on loopback
    /// without the peer address (plain `into_make_service`).
    async fn serve(dir: &std::path::Path, options: Options) -> (Arc<Bot>, String) {
        let store = Arc::new(crate::store::Store::open(&dir.join("w.redb")).unwrap());
        let builtin = &crate::config::DialogsConfig::builtin();
        let phrases = crate::app::load_phrasebook(builtin).unwrap();
        let dialogs = crate::app::load_dialogs(builtin).unwrap();
        let bot = Bot::new(store, phrases, dialogs, Default::default(), crate::bot::system_clock());
        let bot = Arc::new(bot.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/api/chat", listener.local_addr().unwrap());
        let app = router_with(bot.clone(), options);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (bot, url)
    }

    async fn post(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let res = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_store_is_503_and_no_address_means_no_limit() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            new_sessions_per_address: 1,
            ..Options::default()
        };
        let (bot, url) = serve(dir.path(), options).await;
        let (status, first) = post(&url, serde_json::json!({"text": "hello"})).await;
        assert_eq!(status, 200, "{first}");
        let (status, _) = post(&url, serde_json::json!({"text": "hello"})).await;
        assert_eq!(status, 200, "without the peer address the limit is skipped");

        bot.store().inject_faults(true, false);
        let known = serde_json::json!({"session": first["session"], "text": "hello"});
        let (status, v) = post(&url, known).await;
        assert_eq!(status, 503, "{v}");
        assert!(v["error"].is_string());
        bot.store().inject_faults(false, true);
        let (status, v) = post(&url, serde_json::json!({"text": "hello"})).await;
        assert_eq!(status, 503, "a session that cannot be recorded is not handed out: {v}");
        assert!(v.get("session").is_none());
    }
}
