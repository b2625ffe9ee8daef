//! The rules every JWT the server receives is checked by, stated once: which time claims each
//! kind must carry, the clock skew and lifetime it is allowed, and how its `jti` is kept
//! single-use. The verifiers (`client_auth`, `backchannel`, `device`) take their
//! [`TimeRules`] from here and hand them to
//! [`check_times`](backchannel_protocol::jose::check_times); none compares times itself.

use backchannel_protocol::device::DEVICE_AUTH_MAX_LIFETIME_SECS;
use backchannel_protocol::jose::{LifetimeStart, TimeRules};

use super::Domain;
use super::error::AuthResult;

/// The floor of a request object's lifetime bound (`exp` − `nbf`). FAPI-CIBA takes FAPI 1.0
/// Advanced §5.2.2-13, which lets a request object live 60 minutes after its `nbf`; a relying
/// party built to that profile signs for that long. So request objects, which otherwise share
/// the configured assertion bound (five minutes by default), are allowed at least this much.
pub const REQUEST_OBJECT_MIN_LIFETIME_BOUND_SECS: i64 = 3600;

/// How far from now a request object's `exp` (ahead) and `nbf` (back) may lie: 60 minutes
/// (FAPI 1.0 Advanced §5.2.2-13, checked by the FAPI-CIBA test plan).
pub const REQUEST_OBJECT_WINDOW_SECS: i64 = 3600;

/// The least clock difference a decision's `iat` may show, either way. Decisions come from
/// phones and browsers, whose clocks drift further than a relying party's server; a decision
/// has no `exp` and needs no time window for replay protection (it is bound to one challenge
/// id, the first decision closes the challenge, and the challenge expires with its request),
/// so a wide window costs nothing. The configured skew applies when it is larger.
pub const DECISION_MIN_SKEW_SECS: i64 = 300;

impl Domain {
    /// Client assertions (RFC 7523 §3, CIBA §7.1, SPEC §4): `exp` required; `exp` − `iat`
    /// (else `nbf`, else now) at most `ciba.assertion_max_lifetime_secs`; `nbf` honoured; the
    /// configured skew at both ends.
    pub fn client_assertion_rules(&self) -> TimeRules {
        let c = &self.config.ciba;
        TimeRules {
            max_lifetime_secs: Some(c.assertion_max_lifetime_secs),
            lifetime_from: LifetimeStart::Iat,
            require_exp: true,
            ..TimeRules::lenient(c.clock_skew_secs)
        }
    }

    /// Signed request objects (CIBA Core §7.1.1): `exp`, `iat` and `nbf` all required;
    /// `exp` − `nbf` at most the assertion bound or [`REQUEST_OBJECT_MIN_LIFETIME_BOUND_SECS`],
    /// whichever is longer; as the FAPI-CIBA test plan checks (FAPI 1.0 Advanced §5.2.2-13),
    /// `exp` at most 60 minutes ahead and `nbf` at most 60 minutes back and not in the future;
    /// the configured skew at both ends.
    pub fn request_object_rules(&self) -> TimeRules {
        let c = &self.config.ciba;
        TimeRules {
            max_lifetime_secs: Some(
                c.assertion_max_lifetime_secs
                    .max(REQUEST_OBJECT_MIN_LIFETIME_BOUND_SECS),
            ),
            lifetime_from: LifetimeStart::Nbf,
            require_exp: true,
            require_iat: true,
            require_nbf: true,
            max_exp_ahead_secs: Some(REQUEST_OBJECT_WINDOW_SECS),
            max_nbf_age_secs: Some(REQUEST_OBJECT_WINDOW_SECS),
            ..TimeRules::lenient(c.clock_skew_secs)
        }
    }

    /// Device-request JWTs (SPEC §5, `docs/device-api.md` §2): `exp` and `iat` required,
    /// `exp` − `iat` at most [`DEVICE_AUTH_MAX_LIFETIME_SECS`], the configured skew at both
    /// ends (a device clock a few seconds behind must not lose its last seconds of `exp`).
    /// Their claims carry no `nbf`.
    pub fn device_auth_rules(&self) -> TimeRules {
        TimeRules {
            max_lifetime_secs: Some(DEVICE_AUTH_MAX_LIFETIME_SECS),
            lifetime_from: LifetimeStart::Iat,
            require_exp: true,
            require_iat: true,
            honour_nbf: false,
            ..TimeRules::lenient(self.config.ciba.clock_skew_secs)
        }
    }

    /// Decision JWSs (SPEC §5): no `exp`, so `iat` is required and may differ from now by the
    /// skew, at least [`DECISION_MIN_SKEW_SECS`], either way: a decision is sent the moment it
    /// is signed (maximum age 0), so only clock difference separates its `iat` from now.
    pub fn decision_rules(&self) -> TimeRules {
        TimeRules {
            max_age_secs: Some(0),
            require_iat: true,
            honour_nbf: false,
            ..TimeRules::lenient(self.config.ciba.clock_skew_secs.max(DECISION_MIN_SKEW_SECS))
        }
    }

    /// `login_hint_token` (CIBA Core §7.1): only `exp` is read, when present, and past it the
    /// token is `expired_login_hint_token` (§13). No skew, as this server always had it (an
    /// end-to-end test pins `exp = now - 1` as expired): the token is only a hint, and an
    /// expired one costs the client nothing but a fresh one.
    pub fn login_hint_token_rules(&self) -> TimeRules {
        TimeRules {
            honour_nbf: false,
            ..TimeRules::lenient(0)
        }
    }

    /// Records the `jti` of a single-use token (client assertion, request object, device
    /// token) in the replay cache under `scope`, for as long as `rules` could still accept a
    /// token with this `exp`. True if it was new, false if it is a replay. The `jti` itself
    /// was checked by [`check_jti`](backchannel_protocol::jose::check_jti).
    pub(crate) async fn remember_jti(
        &self,
        scope: &str,
        jti: &str,
        exp: i64,
        rules: &TimeRules,
    ) -> AuthResult<bool> {
        let until_ms = rules.jti_kept_until(exp).saturating_mul(1000);
        Ok(self
            .stores
            .replay
            .remember_jti(scope, jti, until_ms)
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use backchannel_protocol::jose::{ClaimsError, TimeClaims, check_times};

    use super::super::testing::domain_with;
    use crate::config::Config;

    const NOW: i64 = 1_700_000_000;

    fn at(exp: Option<i64>, iat: Option<i64>, nbf: Option<i64>) -> TimeClaims {
        TimeClaims { exp, iat, nbf }
    }

    #[tokio::test]
    async fn the_hidden_bounds_are_these_named_ones() {
        let mut config = Config::default();
        config.ciba.assertion_max_lifetime_secs = 120;
        config.ciba.clock_skew_secs = 30;
        let (d, _) = domain_with(config).await;

        // Request objects: the FAPI hour although assertions get two minutes.
        let ro = d.request_object_rules();
        assert_eq!(ro.max_lifetime_secs, Some(3600));
        let hour = at(Some(NOW + 3600), Some(NOW), Some(NOW));
        check_times(&hour, &ro, NOW).unwrap();
        assert!(check_times(&hour, &d.client_assertion_rules(), NOW).is_err());

        // Decisions: five minutes either way, although the skew is 30 s.
        let dr = d.decision_rules();
        check_times(&at(None, Some(NOW - 300), None), &dr, NOW).unwrap();
        check_times(&at(None, Some(NOW + 300), None), &dr, NOW).unwrap();
        assert!(matches!(
            check_times(&at(None, Some(NOW - 301), None), &dr, NOW),
            Err(ClaimsError::TooOld { .. })
        ));
        assert!(matches!(
            check_times(&at(None, Some(NOW + 301), None), &dr, NOW),
            Err(ClaimsError::IssuedInFuture { .. })
        ));
    }

    #[tokio::test]
    async fn device_tokens_get_the_skew_on_exp() {
        let (d, _) = domain_with(Config::default()).await;
        let rules = d.device_auth_rules();
        let token = at(Some(NOW - 10), Some(NOW - 70), None);
        check_times(&token, &rules, NOW).unwrap();
        let skew = Config::default().ciba.clock_skew_secs;
        assert!(matches!(
            check_times(&token, &rules, NOW - 10 + skew),
            Err(ClaimsError::Expired { .. })
        ));
        assert!(matches!(
            check_times(&at(Some(NOW + 121), Some(NOW), None), &rules, NOW),
            Err(ClaimsError::LifetimeTooLong { .. })
        ));
    }

    #[tokio::test]
    async fn login_hint_tokens_expire_at_exp() {
        let (d, _) = domain_with(Config::default()).await;
        let rules = d.login_hint_token_rules();
        check_times(&at(Some(NOW + 1), None, None), &rules, NOW).unwrap();
        check_times(&TimeClaims::default(), &rules, NOW).unwrap();
        assert!(check_times(&at(Some(NOW), None, None), &rules, NOW).is_err());
    }
}
