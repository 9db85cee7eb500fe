//! The WeChat active API client: the access token (one fetch at a time,
//! refreshed ahead of expiry, refetched once when a call reports it
//! invalid) and the customer-service text message, the channel for answers
//! that miss the 5-second passive-reply deadline.
//!
//! The AppSecret travels only in the token request's query string; neither
//! it nor the token is logged or shown (`<set>` in `Debug`), and transport
//! errors are stripped of their URL, which holds one or the other.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Connect plus request time allowed for one API call.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A token is refreshed when less than this much of its life remains.
const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);
/// Error codes meaning "this token is no longer valid": refetch, retry once.
const TOKEN_ERRORS: [i64; 3] = [40001, 40014, 42001];

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request did not complete (connection, timeout, HTTP status).
    #[error("WeChat API request failed: {0}")]
    Http(reqwest::Error),
    /// WeChat answered with a non-zero `errcode`.
    #[error("WeChat API error {code}: {} (errmsg: {message})", explain(*code))]
    Wechat { code: i64, message: String },
    /// The answer was not the JSON expected.
    #[error("unexpected answer from the WeChat API: {0}")]
    BadResponse(String),
}

impl ApiError {
    /// Whether retrying the same call later cannot succeed (window closed,
    /// not a follower, message too long, configuration errors); transport
    /// errors, `-1` (busy), quota limits and 40164 (IP whitelist, fixable by
    /// the operator) are worth retrying.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            ApiError::Wechat {
                code: 40013 | 40033 | 40125 | 43004 | 45002 | 45015 | 45047 | 48001,
                ..
            }
        )
    }

    fn from_http(e: reqwest::Error) -> ApiError {
        ApiError::Http(e.without_url())
    }
}

/// What an error code means for parkbot.
fn explain(code: i64) -> &'static str {
    match code {
        -1 => "WeChat is busy, retry later",
        40001 => "access token invalid or superseded by another fetch (or wrong AppSecret)",
        40013 => "invalid AppID",
        40014 => "invalid access token",
        40033 => "the body contained \\uXXXX escapes instead of raw UTF-8",
        40125 => "invalid AppSecret",
        40164 => "this server's IP is not on the account's API IP whitelist",
        41001 => "access token missing",
        42001 => "access token expired",
        43004 => "the user does not follow the account",
        45002 => "message too long, split it",
        45009 => "daily quota of this API used up",
        45011 => "per-minute quota of this API reached",
        45015 => "the 48-hour customer-service window is closed or the user unfollowed",
        45047 => "customer-service message count for the window used up",
        48001 => "the account type lacks this API",
        _ => "see WeChat's global error codes",
    }
}

/// A cached access token.
struct Token {
    value: String,
    /// When to fetch a new one: `expires_in` minus the refresh margin.
    refresh_at: Instant,
}

/// The client of one account's active API.
pub struct Api {
    http: reqwest::Client,
    /// `https://api.weixin.qq.com` in production; a mock in tests.
    base: String,
    app_id: String,
    app_secret: String,
    /// The one token of this process; held across a fetch so concurrent
    /// callers wait for that fetch instead of invalidating each other's.
    token: Mutex<Option<Token>>,
    refreshes: AtomicU64,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base", &self.base)
            .field("app_id", &self.app_id)
            .field("app_secret", &"<set>")
            .field("refreshes", &self.token_refreshes())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
    expires_in: Option<u64>,
    #[serde(default)]
    errcode: i64,
    #[serde(default)]
    errmsg: String,
}

impl Api {
    /// A client for `api_base` (no trailing slash needed) with its own
    /// HTTP connection pool and a 10 s timeout per call.
    ///
    /// # Panics
    /// When the TLS backend cannot be initialised, as `reqwest::Client::new`.
    pub fn new(api_base: &str, app_id: &str, app_secret: &str) -> Api {
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .timeout(TIMEOUT)
            .build()
            .expect("the HTTP client (rustls) initialises");
        Api {
            http,
            base: api_base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            app_secret: app_secret.to_owned(),
            token: Mutex::new(None),
            refreshes: AtomicU64::new(0),
        }
    }

    /// How many tokens this client has fetched (for `/metrics`).
    pub fn token_refreshes(&self) -> u64 {
        self.refreshes.load(Ordering::Relaxed)
    }

    /// A valid access token: the cached one, or a new one when it is
    /// missing or within 5 minutes of expiry. One fetch at a time.
    pub async fn access_token(&self) -> Result<String, ApiError> {
        let mut slot = self.token.lock().await;
        if let Some(t) = slot.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(t.value.clone());
        }
        let fresh = self.fetch_token().await?;
        let value = fresh.value.clone();
        *slot = Some(fresh);
        Ok(value)
    }

    /// Forgets `stale` if it is still the cached token (several callers
    /// may report the same stale token: only the first forgets it).
    async fn invalidate(&self, stale: &str) {
        let mut slot = self.token.lock().await;
        if slot.as_ref().is_some_and(|t| t.value == stale) {
            *slot = None;
        }
    }

    async fn fetch_token(&self) -> Result<Token, ApiError> {
        let answer: TokenAnswer = self
            .http
            .get(format!("{}/cgi-bin/token", self.base))
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", &self.app_id),
                ("secret", &self.app_secret),
            ])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(ApiError::from_http)?
            .json()
            .await
            .map_err(|e| ApiError::BadResponse(format!("token answer: {}", e.without_url())))?;
        if answer.errcode != 0 {
            return Err(ApiError::Wechat {
                code: answer.errcode,
                message: answer.errmsg,
            });
        }
        let (Some(value), Some(expires_in)) = (answer.access_token, answer.expires_in) else {
            return Err(ApiError::BadResponse(
                "token answer without access_token/expires_in".into(),
            ));
        };
        let life = Duration::from_secs(expires_in).saturating_sub(REFRESH_MARGIN);
        self.refreshes.fetch_add(1, Ordering::Relaxed);
        tracing::info!(expires_in, access_token = "<set>", "WeChat access token fetched");
        Ok(Token {
            value,
            refresh_at: Instant::now() + life,
        })
    }

    /// Sends a customer-service text message (§5.3) to `openid`; works
    /// while the user's 48-hour window is open.
    pub async fn send_text(&self, openid: &str, content: &str) -> Result<(), ApiError> {
        let body = json!({"touser": openid, "msgtype": "text", "text": {"content": content}});
        self.post("/cgi-bin/message/custom/send", &body).await.map(drop)
    }

    /// POSTs `body` with the current token; on a token error, fetches a new
    /// token once and retries once.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, ApiError> {
        let token = self.access_token().await?;
        match self.post_once(path, &token, body).await {
            Err(ApiError::Wechat { code, .. }) if TOKEN_ERRORS.contains(&code) => {
                tracing::warn!(code, path, "WeChat refused the access token; fetching a new one");
                self.invalidate(&token).await;
                let token = self.access_token().await?;
                self.post_once(path, &token, body).await
            }
            other => other,
        }
    }

    async fn post_once(&self, path: &str, token: &str, body: &Value) -> Result<Value, ApiError> {
        // serde_json writes non-ASCII as raw UTF-8, never as \uXXXX (40033).
        let answer: Value = self
            .http
            .post(format!("{}{path}", self.base))
            .query(&[("access_token", token)])
            .json(body)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(ApiError::from_http)?
            .json()
            .await
            .map_err(|e| ApiError::BadResponse(format!("{path}: {}", e.without_url())))?;
        match answer.get("errcode").and_then(Value::as_i64).unwrap_or(0) {
            0 => Ok(answer),
            code => Err(ApiError::Wechat {
                code,
                message: answer.get("errmsg").and_then(Value::as_str).unwrap_or("").to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, VecDeque};
    use std::sync::Arc;

    use axum::Json;
    use axum::Router;
    use axum::extract::{Query, State};
    use axum::routing::{get, post};

    use super::*;

    const SECRET: &str = "s3cr3t-app-secret";

    /// A mock WeChat API: issues TOKEN1, TOKEN2, … and accepts only the
    /// latest one, like the real platform.
    #[derive(Default)]
    struct Mock {
        token_calls: AtomicU64,
        send_calls: AtomicU64,
        expires_in: u64,
        /// errcodes for the next sends, 0 once empty.
        script: std::sync::Mutex<VecDeque<i64>>,
        bodies: std::sync::Mutex<Vec<String>>,
    }

    async fn token(State(m): State<Arc<Mock>>, Query(q): Query<HashMap<String, String>>) -> Json<Value> {
        let ok = q.get("grant_type").map(String::as_str) == Some("client_credential")
            && q.get("appid").map(String::as_str) == Some("wxAPP")
            && q.get("secret").map(String::as_str) == Some(SECRET);
        if !ok {
            return Json(json!({"errcode": 40125, "errmsg": "invalid appsecret"}));
        }
        tokio::time::sleep(Duration::from_millis(50)).await; // let callers pile up
        let n = m.token_calls.fetch_add(1, Ordering::SeqCst) + 1;
        Json(json!({"access_token": format!("TOKEN{n}"), "expires_in": m.expires_in}))
    }

    async fn send(State(m): State<Arc<Mock>>, Query(q): Query<HashMap<String, String>>, body: String) -> Json<Value> {
        m.send_calls.fetch_add(1, Ordering::SeqCst);
        let latest = format!("TOKEN{}", m.token_calls.load(Ordering::SeqCst));
        let scripted = m.script.lock().unwrap().pop_front().unwrap_or(0);
        let code = if body.contains("\\u") {
            40033
        } else if q.get("access_token") != Some(&latest) {
            40001
        } else {
            scripted
        };
        m.bodies.lock().unwrap().push(body);
        Json(json!({"errcode": code, "errmsg": if code == 0 { "ok" } else { "mock error rid: 1" }}))
    }

    async fn serve(expires_in: u64, script: &[i64]) -> (Api, Arc<Mock>) {
        let mock = Arc::new(Mock {
            expires_in,
            script: std::sync::Mutex::new(script.iter().copied().collect()),
            ..Mock::default()
        });
        let app = Router::new()
            .route("/cgi-bin/token", get(token))
            .route("/cgi-bin/message/custom/send", post(send))
            .with_state(mock.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (Api::new(&base, "wxAPP", SECRET), mock)
    }

    fn calls(m: &Mock) -> (u64, u64) {
        (
            m.token_calls.load(Ordering::SeqCst),
            m.send_calls.load(Ordering::SeqCst),
        )
    }

    #[tokio::test]
    async fn one_token_serves_several_sends() {
        let (api, mock) = serve(7200, &[]).await;
        for i in 0..3 {
            api.send_text("oUSER", &format!("hello {i}")).await.unwrap();
        }
        assert_eq!(calls(&mock), (1, 3));
        assert_eq!(api.token_refreshes(), 1);
        assert_eq!(api.access_token().await.unwrap(), "TOKEN1");
    }

    #[tokio::test]
    async fn concurrent_sends_share_one_fetch() {
        let (api, mock) = serve(7200, &[]).await;
        let api = Arc::new(api);
        let mut set = tokio::task::JoinSet::new();
        for i in 0..8 {
            let api = api.clone();
            set.spawn(async move { api.send_text("oUSER", &format!("n{i}")).await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap().unwrap();
        }
        assert_eq!(calls(&mock), (1, 8));
    }

    #[tokio::test]
    async fn an_invalid_token_is_refetched_once_and_the_call_retried_once() {
        let (api, mock) = serve(7200, &[40001]).await;
        api.send_text("oUSER", "hi").await.unwrap();
        assert_eq!(calls(&mock), (2, 2));
        assert_eq!(api.token_refreshes(), 2);

        // Refused twice: one retry only, then the error.
        let (api, mock) = serve(7200, &[42001, 40014]).await;
        let err = api.send_text("oUSER", "hi").await.unwrap_err();
        assert!(matches!(err, ApiError::Wechat { code: 40014, .. }), "{err}");
        assert_eq!(calls(&mock), (2, 2));
    }

    #[tokio::test]
    async fn a_closed_window_is_a_permanent_error_explained() {
        let (api, mock) = serve(7200, &[45015]).await;
        let err = api.send_text("oUSER", "late answer").await.unwrap_err();
        assert!(matches!(err, ApiError::Wechat { code: 45015, .. }));
        assert!(err.is_permanent());
        assert!(err.to_string().contains("48-hour"), "{err}");
        assert_eq!(calls(&mock), (1, 1), "no retry");
        let busy = ApiError::Wechat {
            code: -1,
            message: "system error".into(),
        };
        assert!(!busy.is_permanent() && busy.to_string().contains("busy"));
    }

    #[tokio::test]
    async fn a_token_near_expiry_is_refreshed_before_use() {
        let (api, mock) = serve(200, &[]).await; // 200 s < the 5-minute margin
        api.send_text("oUSER", "one").await.unwrap();
        api.send_text("oUSER", "two").await.unwrap();
        assert_eq!(calls(&mock), (2, 2));
    }

    #[tokio::test]
    async fn bodies_carry_raw_utf8() {
        let (api, mock) = serve(7200, &[]).await;
        api.send_text("oUSER", "报名成功 🎉").await.unwrap();
        let body = mock.bodies.lock().unwrap()[0].clone();
        assert!(body.contains("报名") && !body.contains("\\u62a5"), "{body}");
        let sent: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            sent,
            json!({"touser": "oUSER", "msgtype": "text", "text": {"content": "报名成功 🎉"}})
        );
    }

    #[tokio::test]
    async fn errors_and_debug_never_show_the_secret_or_the_token() {
        let (good, _mock) = serve(7200, &[]).await;
        good.access_token().await.unwrap();
        let shown = format!("{good:?}");
        assert!(!shown.contains(SECRET) && !shown.contains("TOKEN1"), "{shown}");

        let wrong = Api::new(&good.base, "wxAPP", "wrong-secret");
        let err = wrong.access_token().await.unwrap_err();
        assert!(matches!(err, ApiError::Wechat { code: 40125, .. }) && err.is_permanent());

        // Nothing listens on port 1: a transport error without the URL.
        let down = Api::new("http://127.0.0.1:1", "wxAPP", SECRET);
        let err = down.send_text("oUSER", "hi").await.unwrap_err();
        assert!(matches!(err, ApiError::Http(_)));
        let text = format!("{err} {err:?}");
        assert!(!text.contains(SECRET) && !text.contains("secret="), "{text}");
        assert!(!err.is_permanent());
    }
}
