//! The HTTP server of `parkbot serve`: one axum router with every enabled
//! channel (`/` and `/api/chat` for the web page, `/wechat`), the admin API
//! (`/admin/*`), `/metrics` and `/healthz`, and Telegram (polling, or its
//! webhook at `/telegram`). It knows the channels only by
//! their routers, nothing of their protocols.
//!
//! [`run`] takes its listener and a shutdown future, so tests pass port 0
//! and a oneshot: on shutdown it stops accepting, finishes the requests in
//! flight, waits (bounded) for background sends, and returns; the caller
//! then drops the bot, which closes the store last.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use subtle::ConstantTimeEq;
use tokio::sync::Notify;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::bot::Bot;
use crate::channels;
use crate::config::Config;
use crate::message::Channel;
use crate::metrics::Metrics;
use crate::outbox::{Courier, Outbox};

mod admin;

/// The largest request body any endpoint takes (WeChat pushes are a few
/// KiB; a web message is at most `max_message_chars`).
pub const MAX_BODY: usize = 64 * 1024;
/// A request that takes longer is answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The most header bytes (names and values) and headers a request may
/// carry; past either, 431. (hyper's own limits are far higher.)
const MAX_HEADER_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// How long shutdown waits for background sends (late WeChat replies).
const DRAIN: Duration = Duration::from_secs(10);

/// Background work that shutdown waits for (bounded): late replies.
#[derive(Clone, Default)]
pub struct Tasks {
    running: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Tasks {
    /// Runs `fut` in the background, counted until it ends.
    pub fn spawn(&self, fut: impl Future<Output = ()> + Send + 'static) {
        self.running.fetch_add(1, Ordering::SeqCst);
        let (running, idle) = (self.running.clone(), self.idle.clone());
        tokio::spawn(async move {
            fut.await;
            if running.fetch_sub(1, Ordering::SeqCst) == 1 {
                idle.notify_waiters();
            }
        });
    }

    /// Waits until nothing runs, at most `limit`; returns what still runs.
    pub async fn drain(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            let n = self.running.load(Ordering::SeqCst);
            if n == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.running.load(Ordering::SeqCst);
            }
        }
    }
}

/// What the server's handlers share.
pub struct Shared {
    pub bot: Arc<Bot>,
    pub config: Config,
    pub metrics: Arc<Metrics>,
    pub tasks: Tasks,
    /// The WeChat API client, whose token refreshes `/metrics` reports.
    pub wechat_api: Option<Arc<channels::wechat::api::Api>>,
    /// The Telegram channel, started by [`run`] (it polls or registers
    /// its webhook in the background).
    pub telegram: Option<Arc<channels::telegram::Telegram>>,
    /// The outbox's workers' bell and counts.
    pub outbox: Arc<Outbox>,
}

/// Whether a channel is on, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStatus {
    pub name: &'static str,
    pub on: bool,
    pub detail: String,
}

impl ChannelStatus {
    fn on(name: &'static str, detail: String) -> ChannelStatus {
        ChannelStatus { name, on: true, detail }
    }

    fn off(name: &'static str, detail: String) -> ChannelStatus {
        ChannelStatus {
            name,
            on: false,
            detail,
        }
    }

    /// Off because its section has no token, or is not enabled.
    fn unconfigured(name: &'static str, token: &str) -> ChannelStatus {
        let upper = name.to_uppercase();
        ChannelStatus::off(
            name,
            if token.is_empty() {
                format!("no token ([{name}] token / PARKBOT_{upper}__TOKEN)")
            } else {
                format!("not enabled ([{name}] enabled = false)")
            },
        )
    }
}

impl std::fmt::Display for ChannelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.on { "on" } else { "off" };
        if self.detail.is_empty() {
            write!(f, "{}: {state}", self.name)
        } else {
            write!(f, "{}: {state} — {}", self.name, self.detail)
        }
    }
}

/// The router with every enabled channel, and each channel's status.
pub fn router(bot: Arc<Bot>, config: Config) -> (Router, Vec<ChannelStatus>, Arc<Shared>) {
    let metrics = Arc::new(Metrics::default());
    let tasks = Tasks::default();
    let mut statuses = Vec::new();
    let mut app = Router::new();

    // The web page: always on (it needs no platform account).
    let web =
        channels::web::router(bot.clone()).layer(middleware::from_fn_with_state(metrics.clone(), count_web_messages));
    app = app.merge(web);
    statuses.push(ChannelStatus::on("web", "the chat page at /".into()));

    let mut wechat_api = None;
    let outbox = Arc::new(Outbox::default());
    match channels::wechat::Wechat::from_config(
        &config.wechat,
        bot.clone(),
        metrics.clone(),
        tasks.clone(),
        outbox.clone(),
    ) {
        Ok(Some(wechat)) => {
            wechat_api = wechat.api();
            statuses.push(ChannelStatus::on("wechat", wechat.describe()));
            app = app.merge(wechat.router());
        }
        Ok(None) => statuses.push(ChannelStatus::unconfigured("wechat", &config.wechat.token)),
        Err(why) => statuses.push(ChannelStatus::off("wechat", why)),
    }
    let mut telegram = None;
    match channels::telegram::Telegram::from_config(
        &config.telegram,
        config.announce.telegram_per_second,
        bot.clone(),
        metrics.clone(),
        tasks.clone(),
    ) {
        Ok(Some(t)) => {
            statuses.push(ChannelStatus::on("telegram", t.describe()));
            app = app.merge(t.router());
            telegram = Some(Arc::new(t));
        }
        Ok(None) => statuses.push(ChannelStatus::unconfigured("telegram", &config.telegram.token)),
        Err(why) => statuses.push(ChannelStatus::off("telegram", why)),
    }

    let shared = Arc::new(Shared {
        bot,
        config,
        metrics,
        tasks,
        wechat_api,
        telegram,
        outbox,
    });
    let ops = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics_text))
        .route("/admin/registrations", get(admin_registrations))
        .route("/admin/announcements", get(admin::list).post(admin::create))
        .route("/admin/announcements/{id}", get(admin::show).delete(admin::stop))
        .with_state(shared.clone());
    let app = app
        .merge(ops)
        .layer(middleware::from_fn(limit_headers))
        .layer(RequestBodyLimitLayer::new(MAX_BODY))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ));
    (app, statuses, shared)
}

/// Serves `app` on `listener` until `shutdown` completes, then finishes the
/// requests in flight and waits (at most 10 s) for background sends.
pub async fn run(
    listener: tokio::net::TcpListener,
    app: Router,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // Channels that run beside the server (Telegram's polling) stop when
    // the server starts shutting down.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut background = Vec::new();
    if let Some(t) = shared.telegram.clone() {
        let stopping = stopping.clone();
        background.push(tokio::spawn(async move { t.run(stopping).await }));
    }
    background.push(tokio::spawn(crate::outbox::run(
        shared.outbox.clone(),
        shared.bot.clone(),
        couriers(&shared),
        outbox_settings(&shared.config),
        crate::outbox::OutboxClock::new(shared.bot.clock()),
        stopping,
    )));
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await?;
    for b in background {
        let _ = b.await;
    }
    let left = shared.tasks.drain(DRAIN).await;
    if left > 0 {
        tracing::warn!(left, "shutdown: background sends still running were abandoned");
    }
    Ok(())
}

/// The channels that push proactive messages, with their rates.
fn couriers(s: &Shared) -> Vec<(Arc<dyn Courier>, u32)> {
    let mut out: Vec<(Arc<dyn Courier>, u32)> = Vec::new();
    if let Some(t) = &s.telegram {
        out.push((t.clone(), s.config.announce.telegram_per_second));
    }
    if let Some(api) = &s.wechat_api {
        let courier = channels::wechat::WechatCourier { api: api.clone() };
        out.push((Arc::new(courier), s.config.announce.wechat_per_second));
    }
    out
}

fn outbox_settings(c: &Config) -> crate::outbox::Settings {
    crate::outbox::Settings {
        max_attempts: c.announce.max_attempts,
        remind_before: Duration::from_secs(u64::from(c.announce.remind_before_hours) * 3600),
        keep: Duration::from_secs(u64::from(c.announce.keep_days) * 86_400),
        ..Default::default()
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Refuses requests with too many or too large headers.
async fn limit_headers(req: Request, next: Next) -> Response {
    let headers = req.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request headers too large\n",
        )
            .into_response();
    }
    next.run(req).await
}

/// Counts web chat messages and their latency (successful ones).
async fn count_web_messages(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let chat = req.uri().path() == "/api/chat";
    let start = Instant::now();
    let response = next.run(req).await;
    if chat && response.status().is_success() {
        metrics.message(Channel::Web, start.elapsed());
    }
    response
}

async fn metrics_text(State(s): State<Arc<Shared>>) -> Response {
    let mut body = s
        .metrics
        .render(s.bot.stats(), s.wechat_api.as_ref().map_or(0, |a| a.token_refreshes()));
    let store = s.bot.store().clone();
    let counts = tokio::task::spawn_blocking(move || store.outbox_counts()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let rates: Vec<(Channel, f64)> = s.outbox.stats().iter().map(|(c, st)| (*c, st.rate(now))).collect();
    match counts {
        Ok(Ok(counts)) => crate::metrics::render_outbox(&mut body, &counts, &rates),
        _ => tracing::error!("metrics: cannot read the outbox counts"),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Whether the request carries the admin token. `None`: the admin API is
/// off (no token configured).
fn admin_allowed(s: &Shared, headers: &HeaderMap) -> Option<bool> {
    let token = &s.config.staff.admin_token;
    if token.is_empty() {
        return None;
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    Some(given.as_bytes().ct_eq(token.as_bytes()).into())
}

/// Why the admin API turned a request away.
enum Denied {
    /// No token configured: the admin API is off (404).
    Off,
    /// No token, or the wrong one (401).
    Unauthorized,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Off => StatusCode::NOT_FOUND.into_response(),
            Denied::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid Authorization: Bearer <staff.admin_token> is required\n",
            )
                .into_response(),
        }
    }
}

/// The admin API's door: off without a configured token, closed without
/// the right one.
fn admin_gate(s: &Shared, headers: &HeaderMap) -> Result<(), Denied> {
    match admin_allowed(s, headers) {
        None => Err(Denied::Off),
        Some(false) => Err(Denied::Unauthorized),
        Some(true) => Ok(()),
    }
}

#[derive(serde::Deserialize)]
struct RegistrationsQuery {
    event: Option<String>,
}

async fn admin_registrations(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Query(q): Query<RegistrationsQuery>,
) -> Response {
    if let Err(denied) = admin_gate(&s, &headers) {
        return denied.into_response();
    }
    let store = s.bot.store().clone();
    let regs = tokio::task::spawn_blocking(move || store.registrations(q.event.as_deref())).await;
    match regs {
        Ok(Ok(regs)) => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::app::export::registrations_csv(&regs),
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admin: cannot read registrations");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is temporarily unavailable\n",
            )
                .into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
