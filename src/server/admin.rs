//! `/admin/announcements`: create (201 with the id), read one (its counts
//! and failure reasons), list the latest, and stop one (DELETE: what is
//! still pending is cancelled). Behind the same bearer token as the rest
//! of `/admin`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, admin_gate};
use crate::store::{Announcement, Audience, StoreError};

#[derive(Deserialize)]
pub(super) struct NewAnnouncement {
    audience: String,
    text: String,
}

/// An error answer: its status and a JSON `{"error": …}`.
struct ApiError {
    status: StatusCode,
    message: String,
}

fn error(status: StatusCode, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// An announcement as the API shows it.
pub fn view(a: &Announcement) -> Value {
    json!({
        "id": a.id.to_string(),
        "audience": a.audience,
        "text": a.text,
        "created_by": a.created_by,
        "created_at": crate::app::export::rfc3339(a.created_at),
        "total": a.total,
        "sent": a.sent,
        "failed": a.failed,
        "pending": a.pending(),
        "cancelled": a.cancelled,
        "reasons": a.reasons,
        "stopped": a.stopped_at.is_some(),
    })
}

/// Runs a store call off the async workers; a failure is a 503.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(StoreError::AnnouncementRefused(why))) => Err(error(StatusCode::BAD_REQUEST, why.to_string())),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admin: the store failed");
            Err(error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store is temporarily unavailable",
            ))
        }
        Err(_) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")),
    }
}

fn parse_id(id: &str) -> Result<u64, ApiError> {
    id.parse()
        .map_err(|_| error(StatusCode::NOT_FOUND, format!("no announcement {id:?}")))
}

pub(super) async fn create(State(s): State<Arc<Shared>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    if let Err(denied) = admin_gate(&s, &headers) {
        return denied.into_response();
    }
    let new: NewAnnouncement = match serde_json::from_slice(&body) {
        Ok(n) => n,
        Err(e) => {
            let why = format!("expected {{\"audience\", \"text\"}}: {e}");
            return error(StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let audience = match Audience::parse(&new.audience) {
        Ok(a) => a,
        Err(why) => return error(StatusCode::BAD_REQUEST, why).into_response(),
    };
    let (store, now) = (s.bot.store().clone(), (s.bot.clock())().unix_timestamp());
    match blocking(move || store.announce(&audience, &new.text, "admin-api", now)).await {
        Ok(a) => {
            tracing::info!(id = a.id, audience = %a.audience, total = a.total, "announcement queued (admin API)");
            s.outbox.wake.notify_waiters();
            (StatusCode::CREATED, Json(view(&a))).into_response()
        }
        Err(r) => r.into_response(),
    }
}

/// Behind the gate, the announcement named in the path after `act`
/// (read it, stop it…): 404 for an id that is not one.
async fn one<F>(s: &Shared, headers: &HeaderMap, id: &str, act: F) -> Result<Announcement, Response>
where
    F: FnOnce(&crate::store::Store, u64) -> Result<Option<Announcement>, StoreError> + Send + 'static,
{
    admin_gate(s, headers).map_err(IntoResponse::into_response)?;
    let id = parse_id(id).map_err(IntoResponse::into_response)?;
    let store = s.bot.store().clone();
    match blocking(move || act(&store, id)).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(error(StatusCode::NOT_FOUND, format!("no announcement {id}")).into_response()),
        Err(r) => Err(r.into_response()),
    }
}

pub(super) async fn show(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match one(&s, &headers, &id, |store, id| store.announcement(id)).await {
        Ok(a) => Json(view(&a)).into_response(),
        Err(r) => r,
    }
}

pub(super) async fn list(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Err(denied) = admin_gate(&s, &headers) {
        return denied.into_response();
    }
    let store = s.bot.store().clone();
    match blocking(move || store.announcements(50)).await {
        Ok(all) => Json(Value::Array(all.iter().map(view).collect())).into_response(),
        Err(r) => r.into_response(),
    }
}

pub(super) async fn stop(State(s): State<Arc<Shared>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let now = (s.bot.clock())().unix_timestamp();
    match one(&s, &headers, &id, move |store, id| store.stop_announcement(id, now)).await {
        Ok(a) => {
            tracing::info!(id = a.id, cancelled = a.cancelled, "announcement stopped (admin API)");
            Json(view(&a)).into_response()
        }
        Err(r) => r,
    }
}
