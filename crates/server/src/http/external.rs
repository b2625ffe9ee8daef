//! The external channel's callback: an organisation's system answers a challenge it was
//! handed, authenticated by the challenge's callback token.

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{AuthScheme, HttpError};
use super::extract::{TraceId, authorization_credential, read_json};
use crate::domain::external::ExternalDecision;

pub async fn external_challenge_decision_post(
    State(state): State<AppState>,
    Extension(TraceId(trace)): Extension<TraceId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let token = authorization_credential(&headers, "Bearer");
    let decision: ExternalDecision = read_json(&headers, body, state.max_body, &trace).await?;
    let answer = state
        .domain
        .decide_external(&id, token, &decision)
        .await
        .map_err(|e| HttpError::new(e, &trace).scheme(AuthScheme::Bearer))?;
    Ok(Json(answer).into_response())
}
