//! The authenticator device API (`/device/v1/...`): enrolment and device-signed calls.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use backchannel_protocol::device::{
    ChallengeList, DecisionRequest, EnrolRequest, PushRegistration,
};

use super::AppState;
use super::error::HttpError;
use super::extract::{AuthenticatedDevice, JsonBody, TraceId};
use crate::domain::device_admin::device_info;
use crate::domain::error::AuthError;
use crate::domain::events::StreamEvent;
use crate::domain::model::Device;

pub async fn device_enrol_post(
    State(state): State<AppState>,
    trace: TraceId,
    JsonBody(req): JsonBody<EnrolRequest>,
) -> Result<Response, HttpError> {
    let answer = state
        .domain
        .enrol_device(req)
        .await
        .map_err(|e| trace.error(e))?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

pub async fn device_challenges_get(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
) -> Result<Response, HttpError> {
    let challenges = state
        .domain
        .list_device_challenges(&device)
        .await
        .map_err(|e| trace.error(e))?;
    Ok(Json(ChallengeList { challenges }).into_response())
}

pub async fn device_challenge_get(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let challenge = state
        .domain
        .get_device_challenge(&device, &id)
        .await
        .map_err(|e| trace.error(e))?;
    Ok(Json(challenge).into_response())
}

pub async fn device_challenge_decision_post(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<DecisionRequest>,
) -> Result<Response, HttpError> {
    let answer = state
        .domain
        .decide_challenge(&device, &id, &req.decision)
        .await
        .map_err(|e| trace.error(e))?;
    Ok(Json(answer).into_response())
}

/// State of one device's event stream.
struct Stream {
    state: AppState,
    device: Device,
    last: i64,
    queue: std::collections::VecDeque<StreamEvent>,
    wake: std::sync::Arc<tokio::sync::Notify>,
}

/// A stream re-reads its device's log at least this often (decisions made on other nodes,
/// a device disabled meanwhile).
const STREAM_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl Stream {
    /// The next event, waiting for one; `None` ends the stream (device disabled, store gone).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Some(
                    Event::default()
                        .id(e.id.to_string())
                        .event(e.kind.as_str())
                        .data(e.data),
                );
            }
            let wake = self.wake.clone();
            let notified = wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (events, last) = self
                .state
                .domain
                .device_events_after(&self.device, self.last)
                .await
                .ok()?;
            self.last = last;
            if !events.is_empty() {
                self.queue.extend(events);
                continue;
            }
            let mut shutdown = self.state.shutdown.clone();
            if *shutdown.borrow_and_update() {
                return None;
            }
            tokio::select! {
                _ = shutdown.changed() => return None,
                () = &mut notified => {}
                () = tokio::time::sleep(STREAM_RECHECK) => {
                    if !self.state.domain.device_still_active(&self.device.id).await.ok()? {
                        return None;
                    }
                }
            }
        }
    }
}

/// `GET /device/v1/events`: Server-Sent Events with `challenge` and `challenge_closed`,
/// heartbeats, and replay from `Last-Event-ID`.
pub async fn device_events_get(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let fail = |e: AuthError| trace.error(e);
    let resume = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    fail(AuthError::invalid_request(
                        "Last-Event-ID must be an event id from this stream",
                    ))
                })?,
        ),
    };
    let (queue, last) = match resume {
        Some(after) => (Vec::new(), after),
        None => state
            .domain
            .device_stream_start(&device)
            .await
            .map_err(fail)?,
    };
    let heartbeat =
        std::time::Duration::from_secs(state.domain.config.device.sse_heartbeat_secs.max(1));
    let wake = state.domain.notifier.device_waiter(&device.id);
    tracing::info!(trace_id = %trace.0, device_id = %device.id, resume_after = last, "device event stream opened");
    let stream = Stream {
        state,
        device,
        last,
        queue: queue.into(),
        wake,
    };
    let events = futures_util::stream::unfold(stream, |mut s| async move {
        s.next()
            .await
            .map(|e| (Ok::<Event, std::convert::Infallible>(e), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response())
}

pub async fn device_self_get(AuthenticatedDevice(device): AuthenticatedDevice) -> Response {
    Json(device_info(&device)).into_response()
}

pub async fn device_push_put(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
    JsonBody(push): JsonBody<PushRegistration>,
) -> Result<Response, HttpError> {
    let info = state
        .domain
        .update_device_push(&device, &push)
        .await
        .map_err(|e| trace.error(e))?;
    Ok(Json(info).into_response())
}

pub async fn device_self_delete(
    State(state): State<AppState>,
    trace: TraceId,
    AuthenticatedDevice(device): AuthenticatedDevice,
) -> Result<Response, HttpError> {
    state
        .domain
        .disable_device(&device.id)
        .await
        .map_err(|e| trace.error(e))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
