//! The admin REST API (`/admin/v1/...`), behind the admin bearer token: the same operations
//! as `backchannel admin`, through the same domain functions and answers.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::HttpError;
use super::extract::{Admin, JsonBody, TraceId};
use crate::domain::admin::{NewClient, NewUser};
use crate::domain::directory::UserCreated;
use crate::domain::error::{AuthError, AuthResult};

/// A domain answer as JSON with `status`, or the request's error.
fn answer<T: Serialize>(
    trace: &TraceId,
    status: StatusCode,
    result: AuthResult<T>,
) -> Result<Response, HttpError> {
    result
        .map(|value| (status, Json(value)).into_response())
        .map_err(|e| trace.error(e))
}

pub async fn admin_clients_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    JsonBody(new): JsonBody<NewClient>,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::CREATED,
        state.domain.create_client(new).await,
    )
}

pub async fn admin_clients_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
) -> Result<Response, HttpError> {
    answer(&trace, StatusCode::OK, state.domain.list_clients().await)
}

pub async fn admin_client_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    answer(&trace, StatusCode::OK, state.domain.client_view(&id).await)
}

pub async fn admin_client_disable_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::OK,
        state.domain.disable_client(&id).await,
    )
}

pub async fn admin_users_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    JsonBody(new): JsonBody<NewUser>,
) -> Result<Response, HttpError> {
    let created = state
        .domain
        .create_user(new)
        .await
        .map(|user| UserCreated { sub: user.sub });
    answer(&trace, StatusCode::CREATED, created)
}

pub async fn admin_users_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
) -> Result<Response, HttpError> {
    answer(&trace, StatusCode::OK, state.domain.list_users().await)
}

pub async fn admin_user_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(sub): Path<String>,
) -> Result<Response, HttpError> {
    answer(&trace, StatusCode::OK, state.domain.user_view(&sub).await)
}

pub async fn admin_user_disable_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(sub): Path<String>,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::OK,
        state.domain.disable_user(&sub).await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolment {
    user: String,
}

pub async fn admin_enrolments_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    JsonBody(req): JsonBody<NewEnrolment>,
) -> Result<Response, HttpError> {
    let created = state.domain.create_enrolment(&req.user).await;
    answer(&trace, StatusCode::CREATED, created)
}

pub async fn admin_user_devices_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(sub): Path<String>,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::OK,
        state.domain.user_devices(&sub).await,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsQuery {
    #[serde(default)]
    limit: Option<i64>,
}

pub async fn admin_user_requests_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(sub): Path<String>,
    query: Result<Query<RequestsQuery>, QueryRejection>,
) -> Result<Response, HttpError> {
    let limit = match query {
        Ok(Query(q)) => q.limit,
        Err(_) => {
            let e = AuthError::invalid_request("limit must be a positive integer");
            return Err(HttpError::new(e, &trace.0));
        }
    };
    answer(
        &trace,
        StatusCode::OK,
        state.domain.user_requests(&sub, limit).await,
    )
}

pub async fn admin_device_disable_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(id): Path<String>,
) -> Result<Response, HttpError> {
    let disabled = state.domain.disable_device_by_operator(&id).await;
    answer(&trace, StatusCode::OK, disabled)
}

pub async fn admin_keys_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::OK,
        state.domain.list_signing_keys().await,
    )
}

/// `{"alg": "ES256"}`, or `{}` for ES256.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    #[serde(default)]
    alg: Option<String>,
}

pub async fn admin_keys_rotate_post(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    JsonBody(req): JsonBody<RotateKey>,
) -> Result<Response, HttpError> {
    let rotated = state.domain.rotate_signing_key(req.alg.as_deref()).await;
    answer(&trace, StatusCode::CREATED, rotated)
}

pub async fn admin_policies_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
) -> Result<Response, HttpError> {
    answer(&trace, StatusCode::OK, state.domain.list_policies().await)
}

/// Creates or replaces the client's policy: the body is the whole policy (absent members
/// take their most permissive value).
pub async fn admin_policy_put(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(client_id): Path<String>,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Result<Response, HttpError> {
    let set = state.domain.set_policy_from_json(&client_id, body).await;
    answer(&trace, StatusCode::OK, set)
}

pub async fn admin_policy_get(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(client_id): Path<String>,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::OK,
        state.domain.policy_view(&client_id).await,
    )
}

pub async fn admin_policy_delete(
    State(state): State<AppState>,
    _: Admin,
    trace: TraceId,
    Path(client_id): Path<String>,
) -> Result<Response, HttpError> {
    answer(
        &trace,
        StatusCode::OK,
        state.domain.delete_policy(&client_id).await,
    )
}
