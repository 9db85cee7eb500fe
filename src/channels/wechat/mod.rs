//! The WeChat Official Account channel: `GET /wechat` (URL verification)
//! and `POST /wechat` (messages and events, plain, compatible and safe
//! mode), following `../shared/docs/wechat-official-account.md`.
//!
//! An adapter only: it checks the signature (constant time), decrypts,
//! parses, turns the push into an [`Inbound`] (the de-duplication key as
//! its message id, so a retried push is applied once) and renders the
//! replies as one passive text reply (choices as numbered lines).
//!
//! The 5-second deadline: the core gets `[wechat] reply_budget_ms`; past
//! it, WeChat is answered `success` at once and the answer is sent through
//! the customer-service API when it is ready ([`api`]). A retry of a push
//! answered that way gets `success` again, never a second answer. A reply
//! over WeChat's text limit (2,048 bytes) goes out in parts: the first
//! passive, the rest through the customer-service API.

pub mod api;
pub mod crypto;
pub mod xml;

#[cfg(test)]
mod served_tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;

use crate::bot::Bot;
use crate::config::WechatConfig;
use crate::message::{Channel, Identity, Inbound, Input, Reply};
use crate::metrics::Metrics;
use crate::server::Tasks;
use api::Api;
use crypto::Cipher;
use xml::{Kind, Push};

/// WeChat's limit for one text message, in UTF-8 bytes.
pub const TEXT_LIMIT: usize = 2048;
/// How long a push answered late is remembered, so that its retries get
/// `success` instead of a second answer (WeChat retries over ~15 s).
const DEFERRED_FOR: Duration = Duration::from_secs(120);
/// How long the rest of a long answer waits after its passive first part.
const REST_AFTER: Duration = Duration::from_millis(500);

/// The WeChat channel, ready to serve.
pub struct Wechat {
    state: Arc<WechatState>,
}

struct WechatState {
    bot: Arc<Bot>,
    token: String,
    cipher: Option<Cipher>,
    api: Option<Arc<Api>>,
    budget: Duration,
    /// Refuse signed timestamps further than this from now (0 = off).
    max_skew: i64,
    /// Refuse plaintext pushes (only AES-encrypted ones are taken).
    require_safe: bool,
    metrics: Arc<Metrics>,
    tasks: Tasks,
    /// Late answers are queued here (see `send_later`).
    outbox: Arc<crate::outbox::Outbox>,
    /// Pushes whose answer went (in part) through the customer-service
    /// API: (identity, key) → when, and how. A retry of one is answered
    /// as the first time, never with a second copy of the answer.
    deferred: Mutex<HashMap<(String, String), (Instant, Sent)>>,
}

/// How a push's answer went out through the API.
#[derive(Clone)]
enum Sent {
    /// All of it, after the budget: retries get `success`.
    Later,
    /// The rest of a long answer: retries get the same first part.
    Rest { first: String },
}

impl Wechat {
    /// The channel when `[wechat]` is enabled with a token; an error names
    /// what is wrong with its configuration.
    pub fn from_config(
        c: &WechatConfig,
        bot: Arc<Bot>,
        metrics: Arc<Metrics>,
        tasks: Tasks,
        outbox: Arc<crate::outbox::Outbox>,
    ) -> Result<Option<Wechat>, String> {
        if !c.enabled || c.token.is_empty() {
            return Ok(None);
        }
        let cipher = if c.encoding_aes_key.is_empty() {
            None
        } else {
            Some(Cipher::new(&c.encoding_aes_key, &c.app_id).map_err(|e| format!("encoding_aes_key: {e}"))?)
        };
        let api = (!c.app_id.is_empty() && !c.app_secret.is_empty())
            .then(|| Arc::new(Api::new(&c.api_base, &c.app_id, &c.app_secret)));
        Ok(Some(Wechat {
            state: Arc::new(WechatState {
                bot,
                token: c.token.clone(),
                cipher,
                api,
                budget: Duration::from_millis(u64::from(c.reply_budget_ms)),
                max_skew: i64::from(c.max_timestamp_skew_secs),
                require_safe: c.require_safe_mode,
                metrics,
                tasks,
                outbox,
                deferred: Mutex::new(HashMap::new()),
            }),
        }))
    }

    /// The customer-service API client, when an app secret is set.
    pub fn api(&self) -> Option<Arc<Api>> {
        self.state.api.clone()
    }

    /// What `serve` prints about the channel.
    pub fn describe(&self) -> String {
        let s = &self.state;
        let modes = if s.cipher.is_some() {
            "POST /wechat, plain and safe mode"
        } else {
            "POST /wechat, plain mode only (no encoding_aes_key)"
        };
        let late = if s.api.is_some() {
            format!(
                "answers past {} ms go through the customer-service API",
                s.budget.as_millis()
            )
        } else {
            "no app_id/app_secret: answers past the budget and long answers' rest cannot be sent".into()
        };
        format!("{modes}; {late}")
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/wechat", get(verify_url).post(receive))
            .with_state(self.state.clone())
    }
}

#[derive(Deserialize)]
struct Params {
    #[serde(default)]
    signature: String,
    #[serde(default)]
    timestamp: String,
    #[serde(default)]
    nonce: String,
    #[serde(default)]
    echostr: Option<String>,
    #[serde(default)]
    encrypt_type: Option<String>,
    #[serde(default)]
    msg_signature: Option<String>,
}

fn refuse(s: &WechatState, status: StatusCode, why: &'static str) -> Response {
    s.metrics
        .rejected_requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    tracing::warn!(status = status.as_u16(), why, "wechat: request refused");
    (status, why).into_response()
}

/// The signature of every request: token, timestamp and nonce; with
/// `max_timestamp_skew_secs`, the timestamp must also be recent (so that a
/// signed query seen once, in a log say, cannot be replayed later).
fn signed(s: &WechatState, p: &Params) -> bool {
    let fresh = s.max_skew == 0
        || p.timestamp
            .parse::<i64>()
            .is_ok_and(|t| (time::OffsetDateTime::now_utc().unix_timestamp() - t).abs() <= s.max_skew);
    fresh && crypto::verify(&crypto::signature(&s.token, &p.timestamp, &p.nonce), &p.signature)
}

/// `GET /wechat`: the server URL check, answered with `echostr` exactly.
async fn verify_url(State(s): State<Arc<WechatState>>, Query(p): Query<Params>) -> Response {
    match (&p.echostr, signed(&s, &p)) {
        (Some(echo), true) => ([(header::CONTENT_TYPE, "text/plain")], echo.clone()).into_response(),
        (None, _) => refuse(&s, StatusCode::BAD_REQUEST, "missing echostr\n"),
        (_, false) => refuse(&s, StatusCode::FORBIDDEN, "bad signature\n"),
    }
}

fn success() -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], "success").into_response()
}

/// `POST /wechat`: a message or an event.
async fn receive(State(s): State<Arc<WechatState>>, Query(p): Query<Params>, body: Bytes) -> Response {
    let start = Instant::now();
    if !signed(&s, &p) {
        return refuse(&s, StatusCode::FORBIDDEN, "bad signature\n");
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        return refuse(&s, StatusCode::BAD_REQUEST, "the body is not UTF-8\n");
    };
    let safe = p.encrypt_type.as_deref() == Some("aes");
    if s.require_safe && !safe {
        return refuse(
            &s,
            StatusCode::FORBIDDEN,
            "plaintext pushes are refused (require_safe_mode)\n",
        );
    }
    let plain_xml;
    let xml_text = if safe {
        let Some(cipher) = &s.cipher else {
            return refuse(
                &s,
                StatusCode::BAD_REQUEST,
                "safe mode needs [wechat] encoding_aes_key\n",
            );
        };
        let Ok(envelope) = xml::parse_envelope(body) else {
            return refuse(&s, StatusCode::BAD_REQUEST, "broken XML envelope\n");
        };
        let expected = crypto::msg_signature(&s.token, &p.timestamp, &p.nonce, &envelope.encrypt);
        if !crypto::verify(&expected, p.msg_signature.as_deref().unwrap_or("")) {
            return refuse(&s, StatusCode::FORBIDDEN, "bad msg_signature\n");
        }
        match cipher.decrypt(&envelope.encrypt) {
            Ok(x) => {
                plain_xml = x;
                plain_xml.as_str()
            }
            Err(e) => {
                tracing::warn!(error = %e, "wechat: cannot decrypt");
                return refuse(&s, StatusCode::BAD_REQUEST, "cannot decrypt the message\n");
            }
        }
    } else {
        body
    };
    let push = match xml::parse(xml_text) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "wechat: cannot parse the push");
            return refuse(&s, StatusCode::BAD_REQUEST, "broken XML\n");
        }
    };
    let Some(identity) = Identity::new(Channel::Wechat, &push.from) else {
        return refuse(&s, StatusCode::BAD_REQUEST, "bad FromUserName\n");
    };
    let Some(input) = input(&push) else {
        return success(); // an event the bot has nothing to say to
    };
    let key = xml::dedup_key(&push);
    // A retry of a push answered (in part) through the API.
    if let Some(sent) = s.sent(identity.as_str(), &key) {
        return s.again(sent, &push, &p, safe);
    }
    let msg = Inbound {
        lang: None,
        identity: identity.clone(),
        message_id: Some(key.clone()),
        input,
    };
    // The core handles the message to the end even if this request is
    // answered before (see `Bot::handle`): past the budget, the rest is
    // awaited in the background.
    let mut work = Box::pin(s.bot.handle(msg));
    let replies = match tokio::time::timeout(s.budget, &mut work).await {
        Ok(replies) => replies,
        Err(_) => {
            s.mark(identity.as_str(), &key, Sent::Later);
            s.metrics
                .wechat_deadline_fallbacks
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                budget_ms = s.budget.as_millis() as u64,
                "wechat: past the reply budget, answering later"
            );
            let (state, openid) = (s.clone(), push.from.clone());
            s.tasks.spawn(async move {
                let replies = work.await;
                state.metrics.message(Channel::Wechat, start.elapsed());
                state.send_later(&openid, parts(&replies)).await;
            });
            return success();
        }
    };
    s.metrics.message(Channel::Wechat, start.elapsed());
    // This may itself be a retry that waited for the first handling, which
    // went past the budget meanwhile: answer as that one did.
    if let Some(sent) = s.sent(identity.as_str(), &key) {
        return s.again(sent, &push, &p, safe);
    }
    let mut parts = parts(&replies);
    if parts.is_empty() {
        return success();
    }
    let first = parts.remove(0);
    if !parts.is_empty() {
        s.mark(identity.as_str(), &key, Sent::Rest { first: first.clone() });
        let (state, openid) = (s.clone(), push.from.clone());
        s.tasks.spawn(async move {
            // After the passive part has reached WeChat, so the parts
            // arrive in order.
            tokio::time::sleep(REST_AFTER).await;
            state.send_later(&openid, parts).await
        });
    }
    s.passive(&first, &push, &p, safe)
}

impl WechatState {
    /// The passive text reply, encrypted in safe mode.
    fn passive(&self, text: &str, push: &Push, p: &Params, safe: bool) -> Response {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let reply = xml::text_reply(&push.from, &push.to, now, text);
        match (&self.cipher, safe) {
            (Some(cipher), true) => {
                let encrypt = cipher.encrypt(&reply);
                let timestamp = now.to_string();
                let signature = crypto::msg_signature(&self.token, &timestamp, &p.nonce, &encrypt);
                xml_response(xml::encrypted_reply(&encrypt, &signature, &timestamp, &p.nonce))
            }
            _ => xml_response(reply),
        }
    }

    /// The answer to a retry of a push whose answer went through the API.
    fn again(&self, sent: Sent, push: &Push, p: &Params, safe: bool) -> Response {
        match sent {
            Sent::Later => success(),
            Sent::Rest { first } => self.passive(&first, push, p, safe),
        }
    }
}

fn xml_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/xml; charset=utf-8")], body).into_response()
}

/// What a push means for the core; `None` for events it has no use for
/// (menu links, location reports, send reports…).
fn input(push: &Push) -> Option<Input> {
    Some(match &push.kind {
        Kind::Text { content, .. } => Input::Text(content.clone()),
        Kind::Voice {
            recognition: Some(text),
            ..
        } => Input::Text(text.clone()),
        Kind::Voice { recognition: None, .. } => Input::Unsupported("voice".into()),
        Kind::Media { msg_type, .. } => Input::Unsupported(msg_type.clone()),
        Kind::Event { event, key } => match event.to_ascii_lowercase().as_str() {
            "subscribe" => Input::Subscribe {
                scene: key
                    .as_deref()
                    .and_then(|k| k.strip_prefix("qrscene_"))
                    .filter(|k| !k.is_empty())
                    .map(str::to_string),
            },
            "unsubscribe" => Input::Unsubscribe,
            "scan" => Input::Start {
                payload: key.clone().filter(|k| !k.is_empty()),
            },
            "click" => Input::Click(key.clone()?),
            _ => return None,
        },
    })
}

/// The replies as WeChat text messages: each reply's text with its
/// choices as numbered lines, joined, then cut into parts of at most
/// [`TEXT_LIMIT`] bytes (at line ends where possible).
pub fn parts(replies: &[Reply]) -> Vec<String> {
    let mut texts = replies.iter().map(Reply::numbered).filter(|t| !t.is_empty());
    let text = match (texts.next(), texts.next()) {
        (None, _) => return Vec::new(),
        // One short reply (most are) goes as it is.
        (Some(one), None) if one.len() <= TEXT_LIMIT && one.trim().len() == one.len() => return vec![one],
        (Some(one), None) => one,
        (Some(one), Some(two)) => [one, two].into_iter().chain(texts).collect::<Vec<_>>().join("\n\n"),
    };
    split(&text, TEXT_LIMIT)
}

/// Proactive messages (announcements, promotions, reminders, late
/// answers) through the customer-service API, in parts of at most 2,048
/// bytes. Errors WeChat will repeat (45015: the 48-hour window, 43004: not
/// a follower, …) are permanent; the rest (-1, 45009, a token refetched,
/// the network) are worth another try.
pub struct WechatCourier {
    pub api: Arc<Api>,
}

impl crate::outbox::Courier for WechatCourier {
    fn channel(&self) -> Channel {
        Channel::Wechat
    }

    fn send<'a>(&'a self, to: &'a Identity, text: &'a str) -> crate::outbox::Sending<'a> {
        Box::pin(async move {
            for part in split(text, TEXT_LIMIT) {
                self.api.send_text(to.id(), &part).await.map_err(|e| {
                    if e.is_permanent() {
                        crate::outbox::Failure::Permanent(e.to_string())
                    } else {
                        crate::outbox::Failure::Transient(e.to_string())
                    }
                })?;
            }
            Ok(())
        })
    }
}

/// Cuts `text` into parts of at most `max` UTF-8 bytes, at line ends where
/// possible, else at character boundaries.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while !rest.is_empty() {
        if rest.len() <= max {
            parts.push(rest.to_string());
            break;
        }
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(nl) = rest[..cut].rfind('\n').filter(|&i| i > 0) {
            cut = nl;
        }
        parts.push(rest[..cut].trim_end().to_string());
        rest = rest[cut..].trim_start();
    }
    parts
}

impl WechatState {
    fn sent(&self, identity: &str, key: &str) -> Option<Sent> {
        let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        if d.is_empty() {
            return None;
        }
        d.retain(|_, (at, _)| at.elapsed() < DEFERRED_FOR);
        d.get(&(identity.to_string(), key.to_string())).map(|(_, s)| s.clone())
    }

    fn mark(&self, identity: &str, key: &str, sent: Sent) {
        let mut d = self.deferred.lock().unwrap_or_else(|e| e.into_inner());
        d.insert((identity.to_string(), key.to_string()), (Instant::now(), sent));
    }

    /// Sends `parts` through the customer-service API, in order; a failure
    /// is logged with WeChat's reason and stops the rest.
    /// Queues an answer (or its rest) in the outbox, whose WeChat courier
    /// sends it through the customer-service API at the configured rate,
    /// retrying what is worth retrying; a failure is logged with WeChat's
    /// reason (45015: the 48-hour window, …) and counted.
    async fn send_later(&self, openid: &str, parts: Vec<String>) {
        if parts.is_empty() {
            return;
        }
        if self.api.is_none() {
            tracing::error!(
                parts = parts.len(),
                "wechat: an answer could not be sent: no app_id/app_secret for the customer-service API"
            );
            self.metrics
                .wechat_late_failed
                .fetch_add(parts.len() as u64, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        let Some(who) = Identity::new(Channel::Wechat, openid) else {
            return;
        };
        // One record: the courier sends its parts in order.
        let text = parts.join("\n");
        let store = self.bot.store().clone();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let queued = tokio::task::spawn_blocking(move || store.enqueue_reply(who.as_str(), vec![text], now)).await;
        match queued {
            Ok(Ok(_)) => {
                self.metrics
                    .wechat_late_sent
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                self.outbox.wake.notify_waiters();
            }
            Ok(Err(e)) => {
                self.metrics
                    .wechat_late_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(error = %e, "wechat: a late answer could not be queued");
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_line_ends_within_the_limit() {
        let line = "一二三四五六七八九十".repeat(10); // 300 bytes
        let text = vec![line.as_str(); 20].join("\n");
        let parts = split(&text, TEXT_LIMIT);
        assert!(parts.len() >= 3);
        assert!(parts.iter().all(|p| p.len() <= TEXT_LIMIT));
        assert!(parts.iter().all(|p| p.lines().all(|l| l == line)), "cut at line ends");
        assert_eq!(parts.join("\n"), text);
        let one_line = "字".repeat(1000);
        let parts = split(&one_line, TEXT_LIMIT);
        assert!(parts.iter().all(|p| p.len() <= TEXT_LIMIT));
        assert_eq!(parts.concat(), one_line);
    }

    #[test]
    fn pushes_become_typed_input() {
        let push = |kind| Push {
            to: "gh_1".into(),
            from: "o1".into(),
            create_time: 1,
            kind,
        };
        let ev = |e: &str, k: Option<&str>| {
            input(&push(Kind::Event {
                event: e.into(),
                key: k.map(String::from),
            }))
        };
        assert_eq!(
            ev("subscribe", Some("qrscene_signup:web3-forum")),
            Some(Input::Subscribe {
                scene: Some("signup:web3-forum".into())
            })
        );
        assert_eq!(ev("subscribe", None), Some(Input::Subscribe { scene: None }));
        assert_eq!(
            ev("SCAN", Some("signup:web3-forum")),
            Some(Input::Start {
                payload: Some("signup:web3-forum".into())
            })
        );
        assert_eq!(ev("unsubscribe", None), Some(Input::Unsubscribe));
        assert_eq!(ev("CLICK", Some("EVENTS")), Some(Input::Click("EVENTS".into())));
        assert_eq!(ev("VIEW", Some("https://x")), None);
        assert_eq!(
            input(&push(Kind::Voice {
                recognition: None,
                msg_id: "1".into()
            })),
            Some(Input::Unsupported("voice".into()))
        );
    }
}
