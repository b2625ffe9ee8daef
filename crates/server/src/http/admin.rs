//! The admin REST API (`/admin/v1/...`), behind the admin bearer token: the same operations
//! as `backchannel admin`.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{AuthScheme, HttpError};
use super::extract::{TraceId, authorization_credential, read_json};
use crate::domain::Domain;
use crate::domain::admin::{ClientView, NewClient, NewUser, UserView};
use crate::domain::error::AuthError;

fn authorize(state: &AppState, headers: &HeaderMap, trace: &str) -> Result<(), HttpError> {
    let presented = authorization_credential(headers, "Bearer").map(Domain::hash_hex);
    let ok = match (&state.admin_token_hash, presented) {
        (Some(expected), Some(p)) => bool::from(expected.as_bytes().ct_eq(p.as_bytes())),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(HttpError::new(
            AuthError::InvalidToken("a valid admin bearer token is required".into()),
            trace,
        )
        .scheme(AuthScheme::Bearer))
    }
}

fn fail(trace: &str) -> impl Fn(AuthError) -> HttpError + '_ {
    move |e| HttpError::new(e, trace)
}

pub async fn admin_clients_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let new: NewClient = read_json(&headers, body, state.max_body, &trace).await?;
    let created = state
        .domain
        .create_client(new)
        .await
        .map_err(fail(&trace))?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn admin_clients_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let clients = state
        .domain
        .stores
        .clients
        .list_clients()
        .await
        .map_err(|e| fail(&trace)(e.into()))?;
    let views: Vec<ClientView> = clients.iter().map(ClientView::from).collect();
    Ok(Json(serde_json::json!({ "clients": views })).into_response())
}

pub async fn admin_client_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let client = state
        .domain
        .stores
        .clients
        .get_client(&id)
        .await
        .map_err(|e| fail(&trace)(e.into()))?;
    let client =
        client.ok_or_else(|| fail(&trace)(AuthError::NotFound("no such client".into())))?;
    Ok(Json(ClientView::from(&client)).into_response())
}

pub async fn admin_client_disable_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let found = state
        .domain
        .stores
        .clients
        .set_client_disabled(&id, true)
        .await
        .map_err(|e| fail(&trace)(e.into()))?;
    if !found {
        return Err(fail(&trace)(AuthError::NotFound("no such client".into())));
    }
    Ok(Json(serde_json::json!({ "client_id": id, "disabled": true })).into_response())
}

pub async fn admin_users_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let new: NewUser = read_json(&headers, body, state.max_body, &trace).await?;
    let user = state.domain.create_user(new).await.map_err(fail(&trace))?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "sub": user.sub })),
    )
        .into_response())
}

pub async fn admin_users_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let users = state
        .domain
        .stores
        .users
        .list_users()
        .await
        .map_err(|e| fail(&trace)(e.into()))?;
    let views: Vec<UserView> = users.iter().map(UserView::from).collect();
    Ok(Json(serde_json::json!({ "users": views })).into_response())
}

pub async fn admin_user_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(sub): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let user = state
        .domain
        .stores
        .users
        .get_user(&sub)
        .await
        .map_err(|e| fail(&trace)(e.into()))?;
    let user = user.ok_or_else(|| fail(&trace)(AuthError::NotFound("no such user".into())))?;
    Ok(Json(UserView::from(&user)).into_response())
}

pub async fn admin_user_disable_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(sub): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let found = state
        .domain
        .stores
        .users
        .set_user_disabled(&sub, true)
        .await
        .map_err(|e| fail(&trace)(e.into()))?;
    if !found {
        return Err(fail(&trace)(AuthError::NotFound("no such user".into())));
    }
    Ok(Json(serde_json::json!({ "sub": sub, "disabled": true })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolment {
    user: String,
}

pub async fn admin_enrolments_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let req: NewEnrolment = read_json(&headers, body, state.max_body, &trace).await?;
    let created = state
        .domain
        .create_enrolment(&req.user)
        .await
        .map_err(fail(&trace))?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub async fn admin_user_devices_get(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(sub): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    let devices = state
        .domain
        .list_user_devices(&sub)
        .await
        .map_err(fail(&trace))?;
    Ok(Json(serde_json::json!({ "devices": devices })).into_response())
}

pub async fn admin_device_disable_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, HttpError> {
    authorize(&state, &headers, &trace)?;
    state
        .domain
        .disable_device(&id)
        .await
        .map_err(fail(&trace))?;
    Ok(Json(serde_json::json!({ "device_id": id, "disabled": true })).into_response())
}
