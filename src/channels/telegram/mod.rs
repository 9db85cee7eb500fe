//! The Telegram channel, through teloxide: long polling (the default) or a
//! webhook at `POST /telegram` on the server's own router, the command menu
//! in Chinese and English, `/start` deep links, inline keyboards for
//! choices, answers through teloxide's `Throttle` (messages that are not
//! answers go through the outbox, which paces them itself).
//!
//! An adapter only: [`update`] turns an update into an [`Inbound`],
//! [`render`] turns replies into messages; this module talks to the Bot
//! API. Updates are handed to the core in the order they arrive, and one
//! chat's answers are sent in that order too.
//!
//! Start-up never stops the server: until `getMe` succeeds (a Telegram
//! outage, a wrong token) the channel says why in the log and tries again
//! with a growing pause.

pub mod render;
pub mod update;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use subtle::ConstantTimeEq;
use teloxide::ApiError;
use teloxide::RequestError;
use teloxide::adaptors::Throttle;
use teloxide::adaptors::throttle::Limits;
use teloxide::payloads::{GetUpdatesSetters, SendMessageSetters, SetMyCommandsSetters, SetWebhookSetters};
use teloxide::requests::{Request, Requester};
use teloxide::types::{AllowedUpdate, BotCommand, ChatId, Update};
use tokio::sync::{oneshot, watch};

use crate::bot::Bot;
use crate::config::TelegramConfig;
use crate::knowledge::Lang;
use crate::message::{Channel, Identity, Reply};
use crate::metrics::Metrics;
use crate::server::Tasks;
use render::LongValues;
use update::{Incoming, Me};

/// How long one `getUpdates` waits for news (below the HTTP client's own
/// 17-second timeout).
const POLL_SECS: u32 = 10;
/// An empty `getUpdates` answer quicker than this is followed by as long a
/// pause (Telegram holds the request up to [`POLL_SECS`]; a proxy or a
/// mock may not).
const QUICK_EMPTY: Duration = Duration::from_millis(100);
/// The pause after a failed Bot API call grows from the first to the last.
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
const BACKOFF_LAST: Duration = Duration::from_secs(60);
/// The header Telegram sends the webhook secret in.
const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
/// The commands of the menu, with their phrasebook descriptions.
const COMMANDS: [(&str, &str); 7] = [
    ("start", "telegram_command_start"),
    ("help", "telegram_command_help"),
    ("events", "telegram_command_events"),
    ("signup", "telegram_command_signup"),
    ("my", "telegram_command_my"),
    ("cancel", "telegram_command_cancel"),
    ("lang", "telegram_command_lang"),
];

/// How updates arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Mode {
    Polling,
    Webhook { url: reqwest::Url, secret: String },
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The person blocked the bot (or deleted their account): recorded,
    /// never worth retrying.
    Blocked,
    /// Worth trying again later (network, Telegram's 5xx).
    Transient(String),
    /// Will fail again (a chat that does not exist, a bad request).
    Permanent(String),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Blocked => f.write_str("the person blocked the bot"),
            SendError::Transient(why) => write!(f, "temporary failure: {why}"),
            SendError::Permanent(why) => write!(f, "refused: {why}"),
        }
    }
}

type Worker = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The Telegram channel, ready to start.
pub struct Telegram {
    state: Arc<TelegramState>,
    /// Throttle's queue worker, spawned by [`Telegram::run`].
    worker: Mutex<Option<Worker>>,
}

struct TelegramState {
    bot: Arc<Bot>,
    /// Calls that are not sends (getMe, getUpdates, answers to presses).
    api: teloxide::Bot,
    /// Sends, within Telegram's limits; a 429 is waited out and retried.
    out: Throttle<teloxide::Bot>,
    mode: Mode,
    api_url: String,
    /// Set once `getMe` succeeded.
    me: OnceLock<Me>,
    long: LongValues,
    order: SendOrder,
    metrics: Arc<Metrics>,
    tasks: Tasks,
}

impl Telegram {
    /// The channel when `[telegram]` is enabled with a token; an error
    /// names what is wrong with its configuration.
    pub fn from_config(
        c: &TelegramConfig,
        per_second: u32,
        bot: Arc<Bot>,
        metrics: Arc<Metrics>,
        tasks: Tasks,
    ) -> Result<Option<Telegram>, String> {
        if !c.enabled || c.token.is_empty() {
            return Ok(None);
        }
        let api_url = reqwest::Url::parse(&c.api_url).map_err(|e| format!("api_url {:?}: {e}", c.api_url))?;
        let mode = match c.mode.as_str() {
            "webhook" => Mode::Webhook {
                url: reqwest::Url::parse(&c.webhook_url)
                    .map_err(|e| format!("webhook_url {:?}: {e}", c.webhook_url))?,
                secret: c.webhook_secret.clone(),
            },
            _ => Mode::Polling,
        };
        let api = teloxide::Bot::new(&c.token).set_api_url(api_url);
        let limits = Limits {
            messages_per_sec_overall: per_second.max(1),
            ..Limits::default()
        };
        let (out, worker) = Throttle::new(api.clone(), limits);
        Ok(Some(Telegram {
            state: Arc::new(TelegramState {
                bot,
                api,
                out,
                mode,
                api_url: c.api_url.clone(),
                me: OnceLock::new(),
                long: LongValues::default(),
                order: SendOrder::default(),
                metrics,
                tasks,
            }),
            worker: Mutex::new(Some(Box::pin(worker))),
        }))
    }

    /// What `serve` prints about the channel.
    pub fn describe(&self) -> String {
        match &self.state.mode {
            Mode::Polling => format!("long polling {}", self.state.api_url),
            Mode::Webhook { url, .. } => format!("webhook POST /telegram, registered as {url}"),
        }
    }

    /// `POST /telegram` in webhook mode; nothing in polling mode.
    pub fn router(&self) -> Router {
        match self.state.mode {
            Mode::Webhook { .. } => Router::new()
                .route("/telegram", post(webhook))
                .with_state(self.state.clone()),
            Mode::Polling => Router::new(),
        }
    }

    /// Connects (retrying with backoff until it can), registers the
    /// command menu and the webhook, or polls for updates until `stop`.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        if let Some(worker) = self.worker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            tokio::spawn(worker);
        }
        let s = &self.state;
        let Some(me) = s.connect(&mut stop).await else { return };
        tracing::info!(username = %me.username, "telegram: connected");
        s.register_commands().await;
        match &s.mode {
            Mode::Webhook { url, secret } => s.register_webhook(url, secret, &mut stop).await,
            Mode::Polling => s.poll(&me, &mut stop).await,
        }
    }
}

/// Messages that are not answers (announcements, promotions, reminders) go
/// out through the outbox's courier: paced by the outbox, a person who
/// blocked the bot recorded as such.
impl crate::outbox::Courier for Telegram {
    fn channel(&self) -> Channel {
        Channel::Telegram
    }

    fn send<'a>(&'a self, to: &'a Identity, text: &'a str) -> crate::outbox::Sending<'a> {
        // Not through Throttle: the outbox paces its sends itself, evenly
        // (Throttle lets queued sends go in bursts four times a second);
        // a 429 pauses the outbox's channel for its retry_after.
        Box::pin(async move {
            let chat = chat_of(to).ok_or(crate::outbox::Failure::Permanent("not a Telegram identity".into()))?;
            let s = &self.state;
            let parts = render::render(&[Reply::text(text)], &s.long);
            let sent = send_parts(&s.api, chat, parts).await;
            if let Err((_, RequestError::RetryAfter(after))) = &sent {
                return Err(crate::outbox::Failure::RetryAfter(after.duration()));
            }
            s.count(to, sent).await.map_err(|e| match e {
                SendError::Transient(why) => crate::outbox::Failure::Transient(why),
                other => crate::outbox::Failure::Permanent(other.to_string()),
            })
        })
    }
}

/// The chat of a `telegram:<chat id>` identity.
fn chat_of(identity: &Identity) -> Option<ChatId> {
    (identity.channel() == Channel::Telegram)
        .then(|| identity.id().parse().ok().map(ChatId))
        .flatten()
}

/// Waits `pause`, or less if `stop` comes first: true when stopped.
async fn stopped_during(stop: &mut watch::Receiver<bool>, pause: Duration) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(pause) => *stop.borrow(),
    }
}

/// The pause after failed Bot API calls: from 1 s, doubling, up to 60 s.
struct Backoff {
    pause: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { pause: BACKOFF_FIRST }
    }
}

impl Backoff {
    /// Says plainly why `call` failed, then waits: true when `stop` came.
    async fn after(&mut self, call: &str, e: &RequestError, stop: &mut watch::Receiver<bool>) -> bool {
        tracing::warn!(
            retry_in_secs = self.pause.as_secs(),
            "telegram: {call} failed: {}",
            plainly(e)
        );
        let stopped = stopped_during(stop, self.pause).await;
        self.pause = (self.pause * 2).min(BACKOFF_LAST);
        stopped
    }
}

/// What a failed call means for a send.
fn classify(e: &RequestError) -> SendError {
    match e {
        RequestError::Api(
            ApiError::BotBlocked | ApiError::UserDeactivated | ApiError::BotKicked | ApiError::BotKickedFromSupergroup,
        ) => SendError::Blocked,
        RequestError::Api(other) => SendError::Permanent(other.to_string()),
        RequestError::MigrateToChatId(to) => SendError::Permanent(format!("the group moved to chat {to}")),
        other => SendError::Transient(other.to_string()),
    }
}

/// Why the Bot API cannot be used, as an operator reads it.
fn plainly(e: &RequestError) -> String {
    match e {
        RequestError::Api(ApiError::InvalidToken) => {
            "the Bot API refused the token: check [telegram] token (PARKBOT_TELEGRAM__TOKEN)".into()
        }
        RequestError::Api(ApiError::Unknown(why)) if why.contains("Unauthorized") || why.contains("Not Found") => {
            format!("the Bot API refused the token ({why}): check [telegram] token (PARKBOT_TELEGRAM__TOKEN)")
        }
        RequestError::Network(_) | RequestError::Io(_) => format!("cannot reach the Bot API: {e}"),
        other => format!("the Bot API failed: {other}"),
    }
}

impl TelegramState {
    /// `getMe` until it works (or `stop`).
    async fn connect(&self, stop: &mut watch::Receiver<bool>) -> Option<Me> {
        let mut backoff = Backoff::default();
        loop {
            let attempt = tokio::select! {
                _ = stop.changed() => return None,
                r = self.api.get_me().send() => r,
            };
            match attempt {
                Ok(me) => {
                    let me = Me {
                        id: me.user.id,
                        username: me.user.username.clone().unwrap_or_default(),
                    };
                    let _ = self.me.set(me.clone());
                    return Some(me);
                }
                Err(e) => {
                    if backoff
                        .after("getMe (not started; the other channels go on)", &e, stop)
                        .await
                    {
                        return None;
                    }
                }
            }
        }
    }

    /// The command menu, in English (the default) and Chinese.
    async fn register_commands(&self) {
        let phrases = self.bot.phrases();
        for lang in [Lang::En, Lang::Zh] {
            let commands: Vec<BotCommand> = COMMANDS
                .iter()
                .map(|(command, key)| BotCommand::new(*command, phrases.t(key, lang, &[])))
                .collect();
            let mut request = self.api.set_my_commands(commands);
            if lang == Lang::Zh {
                request = request.language_code("zh");
            }
            if let Err(e) = request.send().await {
                tracing::warn!(lang = lang.code(), error = %e, "telegram: cannot set the command menu");
            }
        }
    }

    /// `setWebhook` with the secret, retried until it works (or `stop`).
    async fn register_webhook(&self, url: &reqwest::Url, secret: &str, stop: &mut watch::Receiver<bool>) {
        let mut backoff = Backoff::default();
        loop {
            let attempt = self
                .api
                .set_webhook(url.clone())
                .secret_token(secret)
                .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
                .send()
                .await;
            match attempt {
                Ok(_) => {
                    tracing::info!(%url, "telegram: webhook registered");
                    return;
                }
                Err(e) => {
                    if backoff.after("setWebhook", &e, stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Long polling until `stop`; a webhook left from an earlier run is
    /// removed first (Telegram refuses `getUpdates` while one is set).
    async fn poll(self: &Arc<Self>, me: &Me, stop: &mut watch::Receiver<bool>) {
        if let Err(e) = self.api.delete_webhook().send().await {
            tracing::warn!(error = %e, "telegram: deleteWebhook failed");
        }
        let mut offset: i32 = 0;
        let mut backoff = Backoff::default();
        loop {
            let request = self
                .api
                .get_updates()
                .offset(offset)
                .timeout(POLL_SECS)
                .allowed_updates(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
            let asked = Instant::now();
            let got = tokio::select! {
                _ = stop.changed() => return,
                r = request.send() => r,
            };
            match got {
                Ok(updates) if updates.is_empty() && asked.elapsed() < QUICK_EMPTY => {
                    // A server that does not hold the request (Telegram
                    // does): do not ask in a tight loop.
                    if stopped_during(stop, QUICK_EMPTY).await {
                        return;
                    }
                }
                Ok(updates) => {
                    backoff = Backoff::default();
                    for u in updates {
                        offset = offset.max(u.id.0 as i32 + 1);
                        self.take(&u, me);
                    }
                }
                Err(e) => {
                    if backoff.after("getUpdates", &e, stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Hands an update to the core now (so that arrival order is the
    /// core's order) and answers in the background.
    fn take(self: &Arc<Self>, u: &Update, me: &Me) {
        let Some(Incoming { chat, inbound, pressed }) = update::translate(u, me, &self.long) else {
            return;
        };
        let start = Instant::now();
        let identity = inbound.identity.clone();
        let work = self.bot.handle(inbound);
        let turn = self.order.ticket(chat);
        let state = self.clone();
        self.tasks.spawn(async move {
            if let Some(p) = pressed {
                // Stop the spinner, and take the keyboard away so that it
                // cannot be pressed into a later step.
                if let Err(e) = state.api.answer_callback_query(p.query).send().await {
                    tracing::debug!(error = %e, "telegram: answerCallbackQuery failed");
                }
                if let Some(m) = p.message
                    && let Err(e) = state.api.edit_message_reply_markup(chat, m).send().await
                {
                    tracing::debug!(error = %e, "telegram: cannot remove a pressed keyboard");
                }
            }
            let replies = work.await;
            state.metrics.message(Channel::Telegram, start.elapsed());
            let mut turn = turn;
            turn.wait().await;
            if let Err(e) = state.deliver(&identity, chat, &replies).await {
                tracing::warn!(identity = %identity, "telegram: answer not sent: {e}");
            }
            state.order.done(turn);
        });
    }

    /// Sends replies to a chat, in order; stops at the first failure.
    async fn deliver(&self, identity: &Identity, chat: ChatId, replies: &[Reply]) -> Result<(), SendError> {
        let sent = send_parts(&self.out, chat, render::render(replies, &self.long)).await;
        self.count(identity, sent).await
    }

    /// Counts a send's result, and records a person who blocked the bot.
    async fn count(&self, identity: &Identity, sent: Result<usize, (usize, RequestError)>) -> Result<(), SendError> {
        match sent {
            Ok(n) => {
                self.metrics.telegram_sent.fetch_add(n as u64, Ordering::Relaxed);
                Ok(())
            }
            Err((n, e)) => {
                self.metrics.telegram_sent.fetch_add(n as u64, Ordering::Relaxed);
                let why = classify(&e);
                self.metrics.telegram_failed.fetch_add(1, Ordering::Relaxed);
                if why == SendError::Blocked {
                    tracing::info!(identity = %identity, "telegram: blocked by the person; recorded");
                    if let Err(e) = self.bot.record_blocked(identity).await {
                        tracing::error!(error = %e, "telegram: cannot record a blocked person");
                    }
                }
                Err(why)
            }
        }
    }
}

/// Sends the parts in order through `bot`: how many went, or how many went
/// before the one that failed, and why.
async fn send_parts<R>(bot: &R, chat: ChatId, parts: Vec<render::Part>) -> Result<usize, (usize, RequestError)>
where
    R: Requester<Err = RequestError>,
{
    let mut sent = 0;
    for part in parts {
        let mut request = bot.send_message(chat, part.text);
        if let Some(kb) = part.keyboard {
            request = request.reply_markup(kb);
        }
        request.send().await.map_err(|e| (sent, e))?;
        sent += 1;
    }
    Ok(sent)
}

/// `POST /telegram`: an update, if it carries the webhook secret.
async fn webhook(State(s): State<Arc<TelegramState>>, headers: HeaderMap, body: Bytes) -> Response {
    let Mode::Webhook { secret, .. } = &s.mode else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers.get(SECRET_HEADER).map_or(&b""[..], |v| v.as_bytes());
    if !bool::from(given.ct_eq(secret.as_bytes())) {
        s.metrics.rejected_requests.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("telegram: webhook request without the right secret refused");
        return (StatusCode::UNAUTHORIZED, "wrong or missing secret token\n").into_response();
    }
    let Some(me) = s.me.get() else {
        // Not connected yet: Telegram tries again later.
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    };
    let update: Update = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => {
            s.metrics.rejected_requests.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, "telegram: webhook body is not an update");
            return (StatusCode::BAD_REQUEST, "not a Telegram update\n").into_response();
        }
    };
    s.take(&update, me);
    StatusCode::OK.into_response()
}

/// One chat's answers go out in the order its messages arrived: each
/// message takes a turn when it arrives and waits for the one before.
#[derive(Default)]
struct SendOrder {
    /// Per chat: the last turn's number, and what its end signals.
    last: Mutex<HashMap<i64, (u64, oneshot::Receiver<()>)>>,
    seq: AtomicU64,
}

struct Turn {
    chat: i64,
    seq: u64,
    before: Option<oneshot::Receiver<()>>,
    done: Option<oneshot::Sender<()>>,
}

impl Turn {
    /// Until the chat's previous turn is over (or was abandoned).
    async fn wait(&mut self) {
        if let Some(before) = self.before.take() {
            let _ = before.await;
        }
    }
}

impl SendOrder {
    fn ticket(&self, chat: ChatId) -> Turn {
        let (done, next) = oneshot::channel();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let before = last.insert(chat.0, (seq, next)).map(|(_, r)| r);
        Turn {
            chat: chat.0,
            seq,
            before,
            done: Some(done),
        }
    }

    fn done(&self, mut turn: Turn) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.get(&turn.chat).is_some_and(|(seq, _)| *seq == turn.seq) {
            last.remove(&turn.chat);
        }
        drop(last);
        if let Some(done) = turn.done.take() {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chats_turns_end_in_the_order_they_were_taken() {
        let order = Arc::new(SendOrder::default());
        let (first, mut second, mut other) = (
            order.ticket(ChatId(1)),
            order.ticket(ChatId(1)),
            order.ticket(ChatId(2)),
        );
        // Another chat does not wait.
        tokio::time::timeout(Duration::from_millis(100), other.wait())
            .await
            .unwrap();
        // The second waits for the first.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), second.wait())
                .await
                .is_err()
        );
        order.done(first);
        tokio::time::timeout(Duration::from_millis(100), second.wait())
            .await
            .unwrap();
        order.done(second);
        order.done(other);
        assert!(order.last.lock().unwrap().is_empty(), "idle chats leave nothing behind");
    }

    #[test]
    fn failures_are_sorted_into_blocked_permanent_and_transient() {
        assert_eq!(classify(&RequestError::Api(ApiError::BotBlocked)), SendError::Blocked);
        assert!(matches!(
            classify(&RequestError::Api(ApiError::ChatNotFound)),
            SendError::Permanent(_)
        ));
        let io = RequestError::Io(Arc::new(std::io::Error::other("reset")));
        assert!(matches!(classify(&io), SendError::Transient(_)));
    }
}
