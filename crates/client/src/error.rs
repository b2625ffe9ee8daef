//! The client library's errors: [`ClientError`], and [`OAuthError`] with one [`ErrorCode`] per
//! error code of RFC 6749 and CIBA Core, carrying the server's description and request id.

use backchannel_protocol::jose::JoseError;
use serde::{Deserialize, Serialize};

/// Everything that can go wrong talking to an authorization server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The server answered with an OAuth error (RFC 6749 §5.2, CIBA Core §11 and §13).
    /// Match on [`OAuthError::code`].
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    /// The request did not reach the server, or its answer could not be read.
    #[error("HTTP request to {url} failed: {detail}")]
    Http {
        url: String,
        /// The error and its causes, on one line.
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered, but not with what the protocol says it must.
    #[error("invalid response from {url}: {reason}")]
    InvalidResponse { url: String, reason: String },
    /// The discovery document names another issuer (OpenID Connect Discovery 1.0 §4.3,
    /// RFC 8414 §3.3).
    #[error("discovery document names issuer {found}, expected {expected}")]
    IssuerMismatch { expected: String, found: String },
    /// The ID token failed validation (OpenID Connect Core 1.0 §3.1.3.7, CIBA Core §10.3.1).
    #[error("invalid ID token: {0}")]
    InvalidIdToken(String),
    /// The client's key or a JOSE object could not be used.
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// The caller asked for something this client cannot do (for example a signed request
    /// without a private key).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The request's lifetime (`expires_in`) ran out with no outcome from the server.
    #[error("the authentication request expired with no decision")]
    Expired,
    /// Polling was cancelled by the caller.
    #[error("polling was cancelled")]
    Cancelled,
}

impl ClientError {
    /// The OAuth error, when the server sent one.
    pub fn oauth(&self) -> Option<&OAuthError> {
        match self {
            ClientError::OAuth(e) => Some(e),
            _ => None,
        }
    }

    /// The OAuth error code, when the server sent one.
    pub fn code(&self) -> Option<&ErrorCode> {
        self.oauth().map(|e| &e.code)
    }
}

/// An OAuth error answer: its code, the server's description and URI, the HTTP status and the
/// id the server logged the request under (`X-Request-Id`, else a `trace_id` member of the body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct OAuthError {
    pub code: ErrorCode,
    pub description: Option<String>,
    pub uri: Option<String>,
    /// The HTTP status; 0 for an error delivered in a push notification.
    pub status: u16,
    /// The server's id for the request, to quote when asking its operator.
    pub request_id: Option<String>,
    /// The `Retry-After` of the answer in seconds, if it had one (a `429` from a rate limit, a
    /// `503`): when trying again makes sense.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    /// An error with only a code.
    pub fn new(code: ErrorCode, status: u16) -> Self {
        OAuthError {
            code,
            description: None,
            uri: None,
            status,
            request_id: None,
            retry_after: None,
        }
    }

    pub(crate) fn from_body(body: ErrorBody, status: u16, request_id: Option<String>) -> Self {
        OAuthError {
            code: ErrorCode::parse(&body.error),
            description: body.error_description,
            uri: body.error_uri,
            status,
            request_id: request_id.or(body.trace_id),
            retry_after: None,
        }
    }

    fn describe(&self) -> String {
        let mut s = self.code.as_str().to_owned();
        if self.status != 0 {
            s.push_str(&format!(" (HTTP {})", self.status));
        }
        if let Some(d) = &self.description {
            s.push_str(": ");
            s.push_str(d);
        }
        if let Some(id) = &self.request_id {
            s.push_str(&format!(" [request id {id}]"));
        }
        s
    }

    /// The error as the JSON object of RFC 6749 §5.2 (`error`, `error_description`,
    /// `error_uri`), plus `request_id` when known.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("error".into(), self.code.as_str().into());
        if let Some(d) = &self.description {
            m.insert("error_description".into(), d.clone().into());
        }
        if let Some(u) = &self.uri {
            m.insert("error_uri".into(), u.clone().into());
        }
        if let Some(id) = &self.request_id {
            m.insert("request_id".into(), id.clone().into());
        }
        serde_json::Value::Object(m)
    }
}

/// An OAuth error body as servers send it. `trace_id` is read for servers that put their
/// request id there rather than in a header.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub error_description: Option<String>,
    #[serde(default)]
    pub error_uri: Option<String>,
    #[serde(default)]
    pub trace_id: Option<String>,
}

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, )*) => {
        /// The `error` code of an OAuth error answer: one variant per code of RFC 6749 §5.2,
        /// CIBA Core §11 (token endpoint) and §13 (backchannel endpoint), RFC 9396 §5 and the
        /// RFC 6749 §4.1.2.1 server codes; any other code is kept in [`ErrorCode::Other`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code this library does not name.
            Other(String),
        }

        impl ErrorCode {
            /// The code as sent on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$variant => $code, )*
                    ErrorCode::Other(s) => s,
                }
            }

            /// The variant for a wire code.
            pub fn parse(code: &str) -> Self {
                match code {
                    $( $code => ErrorCode::$variant, )*
                    other => ErrorCode::Other(other.to_owned()),
                }
            }
        }
    };
}

error_codes! {
    /// RFC 6749 §5.2, CIBA Core §13: a missing, repeated or malformed parameter.
    InvalidRequest = "invalid_request",
    /// RFC 6749 §5.2: client authentication failed.
    InvalidClient = "invalid_client",
    /// RFC 6749 §5.2, CIBA Core §11: the `auth_req_id` is unknown, another client's or used.
    InvalidGrant = "invalid_grant",
    /// RFC 6749 §5.2, CIBA Core §11/§13: the client may not use this grant or delivery mode.
    UnauthorizedClient = "unauthorized_client",
    /// RFC 6749 §5.2: the server does not support the grant type.
    UnsupportedGrantType = "unsupported_grant_type",
    /// RFC 6749 §5.2, CIBA Core §13: a scope the client may not ask for.
    InvalidScope = "invalid_scope",
    /// CIBA Core §11 and §13: the user denied the request, or the server refused it.
    AccessDenied = "access_denied",
    /// CIBA Core §11: the user has not decided yet; poll again after the interval.
    AuthorizationPending = "authorization_pending",
    /// CIBA Core §11: polled too soon; add five seconds to the interval.
    SlowDown = "slow_down",
    /// CIBA Core §11: the request expired undecided.
    ExpiredToken = "expired_token",
    /// CIBA Core §10.3.1: a push-mode error notification for a failed transaction.
    TransactionFailed = "transaction_failed",
    /// CIBA Core §13: the `login_hint_token` has expired.
    ExpiredLoginHintToken = "expired_login_hint_token",
    /// CIBA Core §13: no user matches the hint.
    UnknownUserId = "unknown_user_id",
    /// CIBA Core §13: the client must send a `user_code`.
    MissingUserCode = "missing_user_code",
    /// CIBA Core §13: the `user_code` is wrong.
    InvalidUserCode = "invalid_user_code",
    /// CIBA Core §13: the `binding_message` is unacceptable.
    InvalidBindingMessage = "invalid_binding_message",
    /// RFC 9396 §5: the `authorization_details` are unacceptable.
    InvalidAuthorizationDetails = "invalid_authorization_details",
    /// RFC 6749 §4.1.2.1: the server failed.
    ServerError = "server_error",
    /// RFC 6749 §4.1.2.1: the server is overloaded or down for maintenance.
    TemporarilyUnavailable = "temporarily_unavailable",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error and its chain of causes on one line ("error sending request: connection refused").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_code_round_trips_and_others_are_kept() {
        for code in [
            "invalid_request",
            "invalid_client",
            "invalid_grant",
            "unauthorized_client",
            "unsupported_grant_type",
            "invalid_scope",
            "access_denied",
            "authorization_pending",
            "slow_down",
            "expired_token",
            "transaction_failed",
            "expired_login_hint_token",
            "unknown_user_id",
            "missing_user_code",
            "invalid_user_code",
            "invalid_binding_message",
            "invalid_authorization_details",
            "server_error",
            "temporarily_unavailable",
        ] {
            let parsed = ErrorCode::parse(code);
            assert!(!matches!(parsed, ErrorCode::Other(_)), "{code}");
            assert_eq!(parsed.as_str(), code);
        }
        assert_eq!(
            ErrorCode::parse("invalid_dpop_proof"),
            ErrorCode::Other("invalid_dpop_proof".into())
        );
    }

    #[test]
    fn the_header_request_id_wins_over_a_body_trace_id() {
        let body = || ErrorBody {
            error: "unknown_user_id".into(),
            error_description: Some("no such user".into()),
            error_uri: None,
            trace_id: Some("from-body".into()),
        };
        let e = OAuthError::from_body(body(), 400, Some("from-header".into()));
        assert_eq!(e.request_id.as_deref(), Some("from-header"));
        assert_eq!(e.code, ErrorCode::UnknownUserId);
        assert_eq!(
            e.to_string(),
            "unknown_user_id (HTTP 400): no such user [request id from-header]"
        );
        let e = OAuthError::from_body(body(), 400, None);
        assert_eq!(e.request_id.as_deref(), Some("from-body"));
        assert_eq!(e.to_json()["request_id"], "from-body");
    }
}
