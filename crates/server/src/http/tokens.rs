//! What a client does with its tokens after the flow: userinfo (OIDC Core §5.3, Bearer as
//! RFC 6750 §2), introspection (RFC 7662) and revocation (RFC 7009). Thin: extract, call the
//! domain, render.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::HttpError;
use super::extract::{BearerToken, ClientRequest};

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /userinfo` and `POST /userinfo`.
pub async fn userinfo_get(
    State(state): State<AppState>,
    bearer: BearerToken,
) -> Result<Response, HttpError> {
    let claims = state
        .domain
        .userinfo(&bearer.token)
        .await
        .map_err(|e| bearer.error(e))?;
    Ok(no_store(Json(claims).into_response()))
}

pub async fn introspect_post(
    State(state): State<AppState>,
    req: ClientRequest,
) -> Result<Response, HttpError> {
    let answer = state
        .domain
        .introspection_request(&req.credentials, &req.endpoint, &req.params)
        .await
        .map_err(|e| req.error(e))?;
    Ok(no_store(Json(answer).into_response()))
}

pub async fn revoke_post(
    State(state): State<AppState>,
    req: ClientRequest,
) -> Result<Response, HttpError> {
    state
        .domain
        .revocation_request(&req.credentials, &req.endpoint, &req.params)
        .await
        .map_err(|e| req.error(e))?;
    Ok(no_store(StatusCode::OK.into_response()))
}
