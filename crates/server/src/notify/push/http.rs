//! What the push senders share on top of the guarded outbound client: a failed call as a
//! push outcome, and untrusted service error codes made fit for a log line.

use crate::outbound::OutboundError;

/// A call that got no answer: a refused target or a request that cannot be built fails the
/// attempt for good (until the operator changes the configuration); network trouble is worth
/// another attempt.
pub(crate) fn failed(
    error: OutboundError,
    channel: &'static str,
    what: &str,
) -> super::PushOutcome {
    if error.is_retryable() {
        tracing::warn!(channel, what, error = %error, "push request failed");
        super::PushOutcome::Retry { after: None }
    } else {
        super::PushOutcome::Failed(format!("{what}: {error}"))
    }
}

/// A service's error code made fit for a log line: at most 64 characters of `[A-Za-z0-9_.-]`.
pub(crate) fn code(untrusted: &str) -> String {
    untrusted
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_log_safe() {
        assert_eq!(code("BadDeviceToken"), "BadDeviceToken");
        assert_eq!(code("a b\n\"c"), "a?b??c");
        assert_eq!(code(&"x".repeat(200)).len(), 64);
    }
}
