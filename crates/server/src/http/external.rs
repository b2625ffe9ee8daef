//! The external channel's callback: an organisation's system answers a challenge it was
//! handed, authenticated by the challenge's callback token.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{AuthScheme, HttpError};
use super::extract::{JsonBody, TraceId, authorization_credential};
use crate::domain::external::ExternalDecision;

pub async fn external_challenge_decision_post(
    State(state): State<AppState>,
    trace: TraceId,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(decision): JsonBody<ExternalDecision>,
) -> Result<Response, HttpError> {
    // The callback token is the challenge's own: the domain checks it with the decision.
    let token = authorization_credential(&headers, "Bearer");
    let answer = state
        .domain
        .decide_external(&id, token, &decision)
        .await
        .map_err(|e| trace.error(e).scheme(AuthScheme::Bearer))?;
    Ok(Json(answer).into_response())
}
