//! The OpenID Provider endpoints: discovery, JWKS, the backchannel authentication endpoint
//! and the token endpoint. Thin: extract, call the domain, render.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::HttpError;
use super::extract::ClientRequest;

/// Documents every client may cache for a while.
const PUBLIC_CACHE: &str = "public, max-age=300";

fn cached(mut response: Response, cache_control: &'static str) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control),
    );
    response
}

/// Token-bearing answers (RFC 6749 §5.1).
fn no_store(response: Response) -> Response {
    let mut response = cached(response, "no-store");
    response
        .headers_mut()
        .insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

pub async fn discovery_get(State(state): State<AppState>) -> Response {
    cached(
        Json(state.domain.provider_metadata()).into_response(),
        PUBLIC_CACHE,
    )
}

pub async fn jwks_get(State(state): State<AppState>) -> Response {
    cached(Json(state.domain.keys.jwks()).into_response(), PUBLIC_CACHE)
}

pub async fn bc_authorize_post(
    State(state): State<AppState>,
    req: ClientRequest,
) -> Result<Response, HttpError> {
    let started = state
        .domain
        .backchannel_request(&req.credentials, &req.endpoint, &req.params)
        .await
        .map_err(|e| req.error(e))?;
    metrics::counter!("backchannel_requests_started_total").increment(1);
    tracing::info!(trace_id = %req.trace.0, client_id = %started.client.id, "backchannel request started");
    Ok(no_store(Json(started.response).into_response()))
}

pub async fn token_post(
    State(state): State<AppState>,
    req: ClientRequest,
) -> Result<Response, HttpError> {
    let tokens = state
        .domain
        .token_request(&req.credentials, &req.endpoint, &req.params)
        .await
        .map_err(|e| req.error(e).at_token_endpoint())?;
    Ok(no_store(Json(tokens).into_response()))
}
