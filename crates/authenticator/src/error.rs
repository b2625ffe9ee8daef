//! The authenticator library's one error type.

use backchannel_protocol::jose::JoseError;
use backchannel_protocol::oauth::ErrorResponse;

#[derive(Debug, thiserror::Error)]
pub enum AuthenticatorError {
    /// The enrolment code is unknown, already used or expired (`invalid_code`).
    #[error("the enrolment code is unknown, used or expired")]
    InvalidCode,
    /// Another device decided first, the challenge expired, or it was already decided
    /// (`challenge_closed`, SPEC §5: the first decision wins).
    #[error("challenge {0} is closed")]
    ChallengeClosed(String),
    /// No such challenge for this device (`not_found`).
    #[error("challenge {0} not found")]
    NotFound(String),
    /// The server refused the device's credentials (`invalid_token`): the device was removed,
    /// or its clock is far off.
    #[error("the server refused this device's credentials ({}){}", .0.error, .0.error_description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Unauthorized(ErrorResponse),
    /// Any other error answer of the device API.
    #[error("{} (HTTP {status}){}", .error.error, .error.error_description.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Api { status: u16, error: ErrorResponse },
    /// The request did not reach the server, or its answer could not be read.
    #[error("HTTP request to {url} failed: {detail}")]
    Http {
        url: String,
        /// The error and its causes, on one line.
        detail: String,
        #[source]
        source: reqwest::Error,
    },
    /// The event stream (or its answer) stayed silent this long: the connection is presumed
    /// lost. Reconnect with the last event id.
    #[error("no answer from {url} for {idle_secs} s")]
    Stalled { url: String, idle_secs: u64 },
    /// The server answered with something the device API does not say.
    #[error("invalid response from {url}: {reason}")]
    InvalidResponse { url: String, reason: String },
    /// A challenge failed verification (signature, `iss`, `aud`, `exp`, `typ` or id): it must
    /// not be shown to the user.
    #[error("rejected challenge: {0}")]
    InvalidChallenge(String),
    /// The state file could not be read or written.
    #[error("state file {path}: {source}")]
    StateIo {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The state file is not a device state.
    #[error("state file {path} is not valid: {reason}")]
    StateFormat { path: String, reason: String },
    /// A key or JOSE object could not be used.
    #[error(transparent)]
    Jose(#[from] JoseError),
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
