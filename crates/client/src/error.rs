//! The client library's one error type.

use backchannel_protocol::jose::JoseError;
use backchannel_protocol::oauth::ErrorResponse;

/// Everything that can go wrong talking to an authorization server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an OAuth error body (RFC 6749 §5.2, CIBA Core §13 and §11):
    /// `access_denied`, `expired_token`, `invalid_client`, `unknown_user_id`...
    #[error("{}", describe_oauth(*.status, .error))]
    OAuth { status: u16, error: ErrorResponse },
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
    /// The discovery document names another issuer (OpenID Connect Discovery 1.0 §4.3).
    #[error("discovery document names issuer {found}, expected {expected}")]
    IssuerMismatch { expected: String, found: String },
    /// The ID token failed validation (OpenID Connect Core 1.0 §3.1.3.7).
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
}

impl ClientError {
    /// The OAuth `error` code, when the server sent one.
    pub fn oauth_error(&self) -> Option<&ErrorResponse> {
        match self {
            ClientError::OAuth { error, .. } => Some(error),
            _ => None,
        }
    }
}

fn describe_oauth(status: u16, error: &ErrorResponse) -> String {
    let mut s = format!("{} (HTTP {status})", error.error);
    if let Some(d) = &error.error_description {
        s.push_str(": ");
        s.push_str(d);
    }
    if let Some(t) = &error.trace_id {
        s.push_str(&format!(" [trace_id {t}]"));
    }
    s
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
