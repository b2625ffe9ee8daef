//! The errors of every protocol operation, named as the specs name them. The HTTP layer maps
//! each to its status code and headers (`http::error`).

/// An error a protocol operation reports to its caller. The description is safe to show the
/// client; internal faults carry detail for the log only.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// RFC 6749 §5.2, CIBA Core §13: malformed or missing parameter.
    #[error("{0}")]
    InvalidRequest(String),
    /// RFC 6749 §5.2: client authentication failed.
    #[error("{0}")]
    InvalidClient(String),
    /// RFC 6749 §5.2: a scope the client may not request, or no `openid`.
    #[error("{0}")]
    InvalidScope(String),
    /// CIBA Core §13: the hint names no active user with an enrolled device.
    #[error("{0}")]
    UnknownUserId(String),
    /// CIBA Core §13: the `login_hint_token` has expired.
    #[error("{0}")]
    ExpiredLoginHintToken(String),
    /// RFC 6749 §5.2, CIBA Core §13: the client may not use this grant or mode.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// CIBA Core §13: the client requires a `user_code` and sent none.
    #[error("{0}")]
    MissingUserCode(String),
    /// CIBA Core §13: the `user_code` is wrong.
    #[error("{0}")]
    InvalidUserCode(String),
    /// CIBA Core §13: the binding message is invalid or unacceptable.
    #[error("{0}")]
    InvalidBindingMessage(String),
    /// RFC 9396 §5: an `authorization_details` entry is malformed or of an unknown type.
    #[error("{0}")]
    InvalidAuthorizationDetails(String),
    /// CIBA Core §11: the end user denied the request.
    #[error("{0}")]
    AccessDenied(String),
    /// `/bc-authorize` beyond a `[limits]` rate limit (HTTP 429): nothing was created; the
    /// client may try again after `retry_after_secs`. The code is `slow_down`, the registered
    /// OAuth code for "you are asking too fast".
    #[error("{description}")]
    RateLimited {
        description: String,
        retry_after_secs: i64,
    },
    /// CIBA Core §11: no decision yet.
    #[error("the authorization request is still pending")]
    AuthorizationPending,
    /// CIBA Core §11: polled sooner than the interval; the interval grew by 5 seconds.
    #[error("polling too fast; wait at least {interval_secs} seconds between polls")]
    SlowDown { interval_secs: i64 },
    /// CIBA Core §11: the `auth_req_id` has expired.
    #[error("the auth_req_id has expired")]
    ExpiredToken,
    /// RFC 6749 §5.2: unknown, foreign or already redeemed grant.
    #[error("{0}")]
    InvalidGrant(String),
    /// RFC 6749 §5.2.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// RFC 6750 §3.1: a device or admin credential, or an access token, is missing or
    /// invalid (expired, revoked, malformed, not ours).
    #[error("{0}")]
    InvalidToken(String),
    /// RFC 6750 §3.1: a protected resource was asked without any Bearer token; the answer
    /// carries a challenge and no error information.
    #[error("a Bearer access token is required")]
    MissingBearerToken,
    /// RFC 6750 §3.1: the access token lacks a scope the resource needs.
    #[error("{0}")]
    InsufficientScope(String),
    /// Device API: the enrolment code is unknown, used or expired.
    #[error("the enrolment code is unknown, used or expired")]
    InvalidCode,
    /// Device/admin API: no such resource (for this caller).
    #[error("{0}")]
    NotFound(String),
    /// Device API: the challenge was already decided, closed or expired.
    #[error("the challenge is no longer pending")]
    ChallengeClosed,
    /// Device API: the decision JWS is invalid or does not match the challenge.
    #[error("{0}")]
    InvalidDecision(String),
    /// Admin API: a unique value is already taken.
    #[error("{0}")]
    Conflict(String),
    /// RFC 6749 §4.1.2.1: the server cannot handle the request now (its database is
    /// unreachable); nothing was done, and the client may try again.
    #[error("the service is temporarily unavailable; try again shortly")]
    TemporarilyUnavailable(String),
    /// A server fault; the detail is logged, never shown.
    #[error("internal server error")]
    Internal(String),
}

impl AuthError {
    /// The `error` code on the wire.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::InvalidRequest(_) => "invalid_request",
            AuthError::InvalidClient(_) => "invalid_client",
            AuthError::InvalidScope(_) => "invalid_scope",
            AuthError::UnknownUserId(_) => "unknown_user_id",
            AuthError::ExpiredLoginHintToken(_) => "expired_login_hint_token",
            AuthError::UnauthorizedClient(_) => "unauthorized_client",
            AuthError::MissingUserCode(_) => "missing_user_code",
            AuthError::InvalidUserCode(_) => "invalid_user_code",
            AuthError::InvalidBindingMessage(_) => "invalid_binding_message",
            AuthError::InvalidAuthorizationDetails(_) => "invalid_authorization_details",
            AuthError::AccessDenied(_) => "access_denied",
            AuthError::RateLimited { .. } => "slow_down",
            AuthError::AuthorizationPending => "authorization_pending",
            AuthError::SlowDown { .. } => "slow_down",
            AuthError::ExpiredToken => "expired_token",
            AuthError::InvalidGrant(_) => "invalid_grant",
            AuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::MissingBearerToken => "missing_token",
            AuthError::InsufficientScope(_) => "insufficient_scope",
            AuthError::InvalidCode => "invalid_code",
            AuthError::NotFound(_) => "not_found",
            AuthError::ChallengeClosed => "challenge_closed",
            AuthError::InvalidDecision(_) => "invalid_decision",
            AuthError::Conflict(_) => "conflict",
            AuthError::TemporarilyUnavailable(_) => "temporarily_unavailable",
            AuthError::Internal(_) => "server_error",
        }
    }

    pub fn invalid_request(msg: impl Into<String>) -> Self {
        AuthError::InvalidRequest(msg.into())
    }

    pub fn internal(msg: impl std::fmt::Display) -> Self {
        AuthError::Internal(msg.to_string())
    }
}

impl From<crate::store::StoreError> for AuthError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(what) => AuthError::Conflict(what),
            crate::store::StoreError::Unavailable(why) => AuthError::TemporarilyUnavailable(why),
            other => AuthError::Internal(other.to_string()),
        }
    }
}

pub type AuthResult<T> = Result<T, AuthError>;
