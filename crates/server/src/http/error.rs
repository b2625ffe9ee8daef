//! The one HTTP error type: renders every [`AuthError`] as an OAuth error body with the status
//! and headers RFC 6749 §5.2, RFC 6750 §3 and CIBA Core §13 give, and `Cache-Control: no-store`.
//! The body carries only `error` and `error_description` (the OpenID conformance suite fails any
//! other member); the request's id travels in the `X-Request-Id` header that the trace layer sets
//! on every response. Server faults are logged here, once, never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use backchannel_protocol::oauth::ErrorResponse;

use crate::domain::error::AuthError;

/// Which `WWW-Authenticate` challenge a 401 carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthScheme {
    /// The client authenticated with HTTP Basic (RFC 6749 §5.2).
    Basic,
    /// Device API (`Authorization: Device <jwt>`).
    Device,
    /// Admin API bearer token (RFC 6750 §3).
    Bearer,
    None,
}

/// What a 503 asks the client to wait before trying again.
const RETRY_AFTER_SECS: &str = "2";

#[derive(Debug)]
pub struct HttpError {
    pub error: AuthError,
    pub trace_id: String,
    pub scheme: AuthScheme,
    /// At the token endpoint every error but `invalid_client` is a 400 (RFC 6749 §5.2); at the
    /// backchannel endpoint `access_denied` is a 403 (CIBA Core §13).
    pub token_endpoint: bool,
}

impl HttpError {
    pub fn new(error: AuthError, trace_id: &str) -> Self {
        HttpError {
            error,
            trace_id: trace_id.to_owned(),
            scheme: AuthScheme::None,
            token_endpoint: false,
        }
    }

    pub fn scheme(mut self, scheme: AuthScheme) -> Self {
        self.scheme = scheme;
        self
    }

    pub fn at_token_endpoint(mut self) -> Self {
        self.token_endpoint = true;
        self
    }

    pub fn status(&self) -> StatusCode {
        match &self.error {
            AuthError::InvalidClient(_)
            | AuthError::InvalidToken(_)
            | AuthError::MissingBearerToken => StatusCode::UNAUTHORIZED,
            AuthError::InsufficientScope(_) => StatusCode::FORBIDDEN,
            AuthError::AccessDenied(_) if !self.token_endpoint => StatusCode::FORBIDDEN,
            AuthError::NotFound(_) => StatusCode::NOT_FOUND,
            AuthError::ChallengeClosed | AuthError::Conflict(_) => StatusCode::CONFLICT,
            AuthError::TemporarilyUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AuthError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AuthError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self.error {
            AuthError::Internal(detail) => {
                tracing::error!(trace_id = %self.trace_id, %detail, "internal error");
            }
            AuthError::TemporarilyUnavailable(detail) => {
                tracing::warn!(trace_id = %self.trace_id, %detail, "store unavailable");
            }
            // A poll of a pending request is the protocol working, not a refusal: the request
            // line (status 400) says enough, and polls are the most frequent request.
            AuthError::AuthorizationPending | AuthError::SlowDown { .. } => {
                tracing::debug!(trace_id = %self.trace_id, error = self.error.code(), "poll answered");
            }
            _ => {
                tracing::info!(trace_id = %self.trace_id, error = self.error.code(), "request refused");
            }
        }
        let mut response = if self.error == AuthError::MissingBearerToken {
            // RFC 6750 §3.1: a request with no credentials gets the challenge alone.
            status.into_response()
        } else {
            let body = ErrorResponse {
                error: self.error.code().to_owned(),
                error_description: Some(self.error.to_string()),
                trace_id: None,
            };
            (status, axum::Json(body)).into_response()
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if status == StatusCode::SERVICE_UNAVAILABLE {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
        }
        if let AuthError::RateLimited {
            retry_after_secs, ..
        } = &self.error
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        let bearer_forbidden = status == StatusCode::FORBIDDEN && self.scheme == AuthScheme::Bearer;
        if status == StatusCode::UNAUTHORIZED || bearer_forbidden {
            let challenge = match self.scheme {
                AuthScheme::Basic => Some("Basic realm=\"backchannel\"".to_owned()),
                AuthScheme::Device => Some(format!("Device error=\"{}\"", self.error.code())),
                AuthScheme::Bearer if self.error == AuthError::MissingBearerToken => {
                    Some("Bearer realm=\"backchannel\"".to_owned())
                }
                AuthScheme::Bearer => Some(format!(
                    "Bearer realm=\"backchannel\", error=\"{}\"",
                    self.error.code()
                )),
                AuthScheme::None => None,
            };
            if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(e: HttpError) -> (StatusCode, axum::http::HeaderMap) {
        let r = e.into_response();
        (r.status(), r.headers().clone())
    }

    #[test]
    fn invalid_client_over_basic_is_401_with_www_authenticate() {
        let (status, headers) = render(
            HttpError::new(AuthError::InvalidClient("x".into()), "t1").scheme(AuthScheme::Basic),
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(
            headers[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn bearer_challenges_carry_an_error_code_only_when_a_token_was_sent() {
        let (status, headers) =
            render(HttpError::new(AuthError::MissingBearerToken, "t").scheme(AuthScheme::Bearer));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"backchannel\""
        );
        let (status, headers) = render(
            HttpError::new(AuthError::InvalidToken("expired".into()), "t")
                .scheme(AuthScheme::Bearer),
        );
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"backchannel\", error=\"invalid_token\""
        );
        let (status, headers) = render(
            HttpError::new(AuthError::InsufficientScope("openid".into()), "t")
                .scheme(AuthScheme::Bearer),
        );
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"backchannel\", error=\"insufficient_scope\""
        );
    }

    #[test]
    fn invalid_client_without_basic_has_no_challenge() {
        let (status, headers) = render(HttpError::new(AuthError::InvalidClient("x".into()), "t"));
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn access_denied_is_403_at_backchannel_and_400_at_token() {
        let e = || AuthError::AccessDenied("no".into());
        assert_eq!(HttpError::new(e(), "t").status(), StatusCode::FORBIDDEN);
        assert_eq!(
            HttpError::new(e(), "t").at_token_endpoint().status(),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn ciba_errors_are_400_and_internal_is_500() {
        for e in [
            AuthError::AuthorizationPending,
            AuthError::SlowDown { interval_secs: 10 },
            AuthError::ExpiredToken,
            AuthError::UnknownUserId("u".into()),
            AuthError::InvalidBindingMessage("b".into()),
        ] {
            assert_eq!(HttpError::new(e, "t").status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(
            HttpError::new(AuthError::internal("db down"), "t").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn body_carries_only_code_and_description_and_no_internal_detail() {
        let r = HttpError::new(AuthError::internal("secret detail"), "trace-42").into_response();
        let bytes = axum::body::to_bytes(r.into_body(), 4096).await.unwrap();
        let body: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["error"], "server_error");
        let mut members: Vec<&str> = body.keys().map(String::as_str).collect();
        members.sort_unstable();
        assert_eq!(members, ["error", "error_description"]);
        assert!(!String::from_utf8_lossy(&bytes).contains("secret detail"));
    }
}
