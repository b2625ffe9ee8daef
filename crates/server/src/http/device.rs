//! The authenticator device API (`/device/v1/...`): enrolment and device-signed calls.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use backchannel_protocol::device::{
    ChallengeList, DEVICE_AUTH_SCHEME, DecisionRequest, EnrolRequest, PushRegistration,
};

use super::AppState;
use super::error::{AuthScheme, HttpError};
use super::extract::{TraceId, authorization_credential, read_json};
use crate::domain::device_admin::device_info;
use crate::domain::error::AuthError;
use crate::domain::events::StreamEvent;
use crate::domain::model::Device;
use crate::domain::wake::device_key;

pub async fn device_enrol_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let req: EnrolRequest = read_json(&headers, body, state.max_body, &trace).await?;
    let answer = state
        .domain
        .enrol_device(req)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

async fn authenticate(
    state: &AppState,
    trace: &str,
    headers: &HeaderMap,
    method: &Method,
    uri: &Uri,
) -> Result<Device, HttpError> {
    let fail = |e: AuthError| HttpError::new(e, trace).scheme(AuthScheme::Device);
    let jwt = authorization_credential(headers, DEVICE_AUTH_SCHEME).ok_or_else(|| {
        fail(AuthError::InvalidToken(
            "Authorization: Device <jwt> is required".into(),
        ))
    })?;
    state
        .domain
        .authenticate_device(jwt, method.as_str(), uri.path())
        .await
        .map_err(fail)
}

pub async fn device_challenges_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    let challenges = state
        .domain
        .list_device_challenges(&device)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
    Ok(Json(ChallengeList { challenges }).into_response())
}

pub async fn device_challenge_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    let challenge = state
        .domain
        .get_device_challenge(&device, &id)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
    Ok(Json(challenge).into_response())
}

pub async fn device_challenge_decision_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    let req: DecisionRequest = read_json(&headers, body, state.max_body, &trace).await?;
    let answer = state
        .domain
        .decide_challenge(&device, &id, &req.decision)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
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
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    let fail = |e: AuthError| HttpError::new(e, &trace);
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
    let wake = state.domain.waiters.handle(&device_key(&device.id));
    tracing::info!(trace_id = %trace, device_id = %device.id, resume_after = last, "device event stream opened");
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

pub async fn device_self_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    Ok(Json(device_info(&device)).into_response())
}

pub async fn device_push_put(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    let push: PushRegistration = read_json(&headers, body, state.max_body, &trace).await?;
    let info = state
        .domain
        .update_device_push(&device, &push)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
    Ok(Json(info).into_response())
}

pub async fn device_self_delete(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    uri: Uri,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    let device = authenticate(&state, &trace, &headers, &method, &uri).await?;
    state
        .domain
        .disable_device(&device.id)
        .await
        .map_err(|e| HttpError::new(e, &trace))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
