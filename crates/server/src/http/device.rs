//! The authenticator device API (`/device/v1/...`): enrolment and device-signed calls.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use backchannel_protocol::device::{
    ChallengeList, DEVICE_AUTH_SCHEME, DecisionRequest, EnrolRequest,
};

use super::AppState;
use super::error::{AuthScheme, HttpError};
use super::extract::{TraceId, authorization_credential, read_json};
use crate::domain::error::AuthError;
use crate::domain::model::Device;

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
