//! The claim rules every Backchannel JWT is checked by (RFC 7519 §4.1): `aud` as a string or an
//! array, the time claims `exp`/`iat`/`nbf` under one named set of [`TimeRules`], and the
//! `jti` of single-use tokens. Each verifier (client assertions, request objects, device
//! tokens and decisions, ID tokens, challenges) states its rules as a `TimeRules` value and
//! calls [`check_times`]; none compares times itself.

use serde::{Deserialize, Serialize};

/// `aud` (RFC 7519 §4.1.3): one string, or an array of strings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    /// The audience values, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let values: &[String] = match self {
            Audience::One(a) => std::slice::from_ref(a),
            Audience::Many(v) => v,
        };
        values.iter().map(String::as_str)
    }

    /// Whether `value` is one of the audiences (exact, case-sensitive comparison, as
    /// RFC 7519 §4.1.3 compares StringOrURI values).
    pub fn contains(&self, value: &str) -> bool {
        self.iter().any(|a| a == value)
    }

    /// Whether any of the audiences is one of `accepted`.
    pub fn contains_any<S: AsRef<str>>(&self, accepted: &[S]) -> bool {
        self.iter()
            .any(|a| accepted.iter().any(|s| s.as_ref() == a))
    }

    /// How many audiences there are (an ID token with more than one needs `azp`).
    pub fn len(&self) -> usize {
        match self {
            Audience::One(_) => 1,
            Audience::Many(v) => v.len(),
        }
    }

    /// True for an empty array, which names nobody.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Audience {
    fn from(value: &str) -> Self {
        Audience::One(value.to_owned())
    }
}

/// The time claims of a JWT as NumericDate seconds (RFC 7519 §4.1.4–§4.1.6). Deserialises from
/// a claims object (other members ignored), or is built from a verifier's own claims type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

/// Where a token's lifetime is measured from, for [`TimeRules::max_lifetime_secs`]. The other
/// claim stands in when the preferred one is absent, and `now` when both are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifetimeStart {
    /// `exp − iat` (RFC 7523 assertions, device tokens).
    Iat,
    /// `exp − nbf` (FAPI 1.0 Advanced §5.2.2 request objects).
    Nbf,
}

/// How the time claims of one kind of JWT are checked: every rule in one value, so that a
/// verifier's whole policy reads in one place. All durations are seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// Clock difference tolerated at both ends: a token is accepted until `exp + skew`, and
    /// from `iat − skew` / `nbf − skew`. Also how long past `exp` a used `jti` is remembered
    /// ([`TimeRules::jti_kept_until`]).
    pub skew_secs: i64,
    /// Longest accepted lifetime, `exp` minus [`TimeRules::lifetime_from`]; `None`: unbounded.
    /// A bound needs an `exp`, so it makes `exp` required.
    pub max_lifetime_secs: Option<i64>,
    pub lifetime_from: LifetimeStart,
    /// For tokens without their own `exp`: how long after `iat` the token is still accepted
    /// (the skew comes on top); `None`: no bound.
    pub max_age_secs: Option<i64>,
    pub require_exp: bool,
    pub require_iat: bool,
    pub require_nbf: bool,
    /// Whether an `nbf`, when present, is enforced (RFC 7519 §4.1.5). Off only where the
    /// verifier's claims never carry one.
    pub honour_nbf: bool,
    /// How far ahead of now `exp` may lie (the skew comes on top); `None`: no bound.
    pub max_exp_ahead_secs: Option<i64>,
    /// How long before now `nbf` may lie (the skew comes on top); `None`: no bound.
    pub max_nbf_age_secs: Option<i64>,
}

impl TimeRules {
    /// Rules that require nothing and bound nothing: only the claims present are checked,
    /// with `skew_secs` of tolerance. The starting point of every named rule set.
    pub const fn lenient(skew_secs: i64) -> Self {
        TimeRules {
            skew_secs,
            max_lifetime_secs: None,
            lifetime_from: LifetimeStart::Iat,
            max_age_secs: None,
            require_exp: false,
            require_iat: false,
            require_nbf: false,
            honour_nbf: true,
            max_exp_ahead_secs: None,
            max_nbf_age_secs: None,
        }
    }

    /// Until when (Unix seconds) a used `jti` must be remembered: as long as [`check_times`]
    /// could still accept a token with this `exp`, that is `exp + skew`. A replay cache
    /// entry that lapsed sooner would let the same token be used twice.
    pub fn jti_kept_until(&self, exp: i64) -> i64 {
        exp.saturating_add(self.skew_secs)
    }
}

/// The name of a registered claim (RFC 7519 §4.1), for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Exp,
    Iat,
    Nbf,
    Jti,
}

impl Claim {
    pub fn as_str(self) -> &'static str {
        match self {
            Claim::Exp => "exp",
            Claim::Iat => "iat",
            Claim::Nbf => "nbf",
            Claim::Jti => "jti",
        }
    }
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a JWT's claims were refused. Each message is a predicate a caller prefixes with what
/// the token is ("client_assertion has expired"), safe for an `error_description`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimsError {
    /// A claim the rules require is absent (or, for `jti`, empty).
    #[error("has no {0}")]
    Missing(Claim),
    /// RFC 7519 §4.1.4: now is at or after `exp` (plus the skew).
    #[error("has expired (exp {exp}, now {now})")]
    Expired { exp: i64, now: i64 },
    /// `iat` is later than now (plus the skew): the token claims to come from the future.
    #[error("was issued in the future (iat {iat}, now {now})")]
    IssuedInFuture { iat: i64, now: i64 },
    /// RFC 7519 §4.1.5: now is before `nbf` (minus the skew).
    #[error("is not yet valid (nbf {nbf}, now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    /// `iat` is older than [`TimeRules::max_age_secs`] (plus the skew).
    #[error("was issued too long ago (iat {iat}, now {now})")]
    TooOld { iat: i64, now: i64 },
    /// `exp` comes before `iat`: no moment at which such a token was valid.
    #[error("expires before it was issued (iat {iat}, exp {exp})")]
    ExpiresBeforeIssued { iat: i64, exp: i64 },
    /// `exp` lies further ahead than [`TimeRules::max_exp_ahead_secs`].
    #[error("expires too far in the future (exp {exp}, now {now})")]
    ExpiresTooLate { exp: i64, now: i64 },
    /// `nbf` lies further back than [`TimeRules::max_nbf_age_secs`].
    #[error("has an nbf too far in the past (nbf {nbf}, now {now})")]
    NotBeforeTooOld { nbf: i64, now: i64 },
    /// The lifetime exceeds [`TimeRules::max_lifetime_secs`].
    #[error("lifetime of {lifetime} s is longer than the {max} s allowed")]
    LifetimeTooLong { lifetime: i64, max: i64 },
    /// The `jti` is longer than [`MAX_JTI_LEN`].
    #[error("has a jti longer than {MAX_JTI_LEN} bytes")]
    JtiTooLong,
}

/// Checks the time claims against `rules` at `now` (Unix seconds). In order: required claims
/// present; not expired; not issued in the future; not before `nbf`; `exp` not before `iat`;
/// not older than the maximum age; `exp` not too far ahead; `nbf` not too far back; lifetime
/// within bound. The first failure is returned.
/// Arithmetic saturates, so hostile values (`iat = i64::MIN`) cannot overflow.
pub fn check_times(claims: &TimeClaims, rules: &TimeRules, now: i64) -> Result<(), ClaimsError> {
    let skew = rules.skew_secs;
    let required = [
        (
            rules.require_exp || rules.max_lifetime_secs.is_some(),
            claims.exp,
            Claim::Exp,
        ),
        (rules.require_iat, claims.iat, Claim::Iat),
        (rules.require_nbf, claims.nbf, Claim::Nbf),
    ];
    if let Some((_, _, claim)) = required.iter().find(|(req, v, _)| *req && v.is_none()) {
        return Err(ClaimsError::Missing(*claim));
    }
    if let Some(exp) = claims.exp
        && now >= exp.saturating_add(skew)
    {
        return Err(ClaimsError::Expired { exp, now });
    }
    if let Some(iat) = claims.iat
        && iat > now.saturating_add(skew)
    {
        return Err(ClaimsError::IssuedInFuture { iat, now });
    }
    if rules.honour_nbf
        && let Some(nbf) = claims.nbf
        && nbf > now.saturating_add(skew)
    {
        return Err(ClaimsError::NotYetValid { nbf, now });
    }
    if let (Some(iat), Some(exp)) = (claims.iat, claims.exp)
        && iat > exp
    {
        return Err(ClaimsError::ExpiresBeforeIssued { iat, exp });
    }
    if let (Some(max_age), Some(iat)) = (rules.max_age_secs, claims.iat)
        && now.saturating_sub(iat) > max_age.saturating_add(skew)
    {
        return Err(ClaimsError::TooOld { iat, now });
    }
    if let (Some(ahead), Some(exp)) = (rules.max_exp_ahead_secs, claims.exp)
        && exp.saturating_sub(now) > ahead.saturating_add(skew)
    {
        return Err(ClaimsError::ExpiresTooLate { exp, now });
    }
    if let (Some(age), Some(nbf)) = (rules.max_nbf_age_secs, claims.nbf)
        && now.saturating_sub(nbf) > age.saturating_add(skew)
    {
        return Err(ClaimsError::NotBeforeTooOld { nbf, now });
    }
    if let (Some(max), Some(exp)) = (rules.max_lifetime_secs, claims.exp) {
        let start = match rules.lifetime_from {
            LifetimeStart::Iat => claims.iat.or(claims.nbf),
            LifetimeStart::Nbf => claims.nbf.or(claims.iat),
        }
        .unwrap_or(now);
        let lifetime = exp.saturating_sub(start);
        if lifetime > max {
            return Err(ClaimsError::LifetimeTooLong { lifetime, max });
        }
    }
    Ok(())
}

/// Longest `jti` accepted, in bytes. Our own are 16 random bytes in base64url; a bound keeps a
/// hostile client from filling the replay cache with large keys.
pub const MAX_JTI_LEN: usize = 256;

/// The `jti` rule of every single-use JWT (client assertions, request objects, device tokens):
/// present, non-empty and at most [`MAX_JTI_LEN`] bytes. The caller then remembers it in its
/// replay cache until [`TimeRules::jti_kept_until`] of the token's `exp`, so a second use
/// within the token's (skew-extended) life is refused.
pub fn check_jti(jti: Option<&str>) -> Result<&str, ClaimsError> {
    match jti {
        None | Some("") => Err(ClaimsError::Missing(Claim::Jti)),
        Some(j) if j.len() > MAX_JTI_LEN => Err(ClaimsError::JtiTooLong),
        Some(j) => Ok(j),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;
    const SKEW: i64 = 60;

    fn times(exp: Option<i64>, iat: Option<i64>, nbf: Option<i64>) -> TimeClaims {
        TimeClaims { exp, iat, nbf }
    }

    fn check(c: TimeClaims, rules: TimeRules) -> Result<(), ClaimsError> {
        check_times(&c, &rules, NOW)
    }

    #[test]
    fn exp_is_accepted_up_to_the_skew_and_not_at_it() {
        let rules = TimeRules::lenient(SKEW);
        check(times(Some(NOW + 1), None, None), rules).unwrap();
        check(times(Some(NOW), None, None), rules).unwrap();
        check(times(Some(NOW - SKEW + 1), None, None), rules).unwrap();
        assert_eq!(
            check(times(Some(NOW - SKEW), None, None), rules),
            Err(ClaimsError::Expired {
                exp: NOW - SKEW,
                now: NOW
            })
        );
        // Without skew, exp itself is already too late (RFC 7519 §4.1.4: "on or after").
        assert!(matches!(
            check(times(Some(NOW), None, None), TimeRules::lenient(0)),
            Err(ClaimsError::Expired { .. })
        ));
    }

    #[test]
    fn iat_and_nbf_are_accepted_up_to_the_skew_ahead() {
        let rules = TimeRules::lenient(SKEW);
        check(times(None, Some(NOW + SKEW), None), rules).unwrap();
        check(times(None, None, Some(NOW + SKEW)), rules).unwrap();
        assert_eq!(
            check(times(None, Some(NOW + SKEW + 1), None), rules),
            Err(ClaimsError::IssuedInFuture {
                iat: NOW + SKEW + 1,
                now: NOW
            })
        );
        assert_eq!(
            check(times(None, None, Some(NOW + SKEW + 1)), rules),
            Err(ClaimsError::NotYetValid {
                nbf: NOW + SKEW + 1,
                now: NOW
            })
        );
    }

    #[test]
    fn nbf_in_the_future_is_refused_only_when_honoured() {
        let future = times(Some(NOW + 300), Some(NOW), Some(NOW + 120));
        assert!(matches!(
            check(future, TimeRules::lenient(SKEW)),
            Err(ClaimsError::NotYetValid { .. })
        ));
        let ignoring = TimeRules {
            honour_nbf: false,
            ..TimeRules::lenient(SKEW)
        };
        check(future, ignoring).unwrap();
    }

    #[test]
    fn missing_required_claims_are_named_in_order() {
        let all = TimeRules {
            require_exp: true,
            require_iat: true,
            require_nbf: true,
            ..TimeRules::lenient(SKEW)
        };
        let cases = [
            (times(None, None, None), Claim::Exp),
            (times(Some(NOW + 60), None, Some(NOW)), Claim::Iat),
            (times(Some(NOW + 60), Some(NOW), None), Claim::Nbf),
        ];
        for (c, claim) in cases {
            assert_eq!(check(c, all), Err(ClaimsError::Missing(claim)), "{c:?}");
        }
        check(times(Some(NOW + 60), Some(NOW), Some(NOW)), all).unwrap();
        // Nothing required: an empty claim set passes.
        check(TimeClaims::default(), TimeRules::lenient(SKEW)).unwrap();
        // A lifetime bound cannot be kept without exp.
        let bounded = TimeRules {
            max_lifetime_secs: Some(300),
            ..TimeRules::lenient(SKEW)
        };
        assert_eq!(
            check(times(None, Some(NOW), None), bounded),
            Err(ClaimsError::Missing(Claim::Exp))
        );
    }

    #[test]
    fn lifetime_too_long_is_measured_from_the_chosen_start() {
        let from_iat = TimeRules {
            max_lifetime_secs: Some(300),
            ..TimeRules::lenient(SKEW)
        };
        check(times(Some(NOW + 300), Some(NOW), None), from_iat).unwrap();
        assert_eq!(
            check(times(Some(NOW + 301), Some(NOW), None), from_iat),
            Err(ClaimsError::LifetimeTooLong {
                lifetime: 301,
                max: 300
            })
        );
        // No iat: nbf stands in; neither: now does, so exp itself is bounded.
        assert!(check(times(Some(NOW + 301), None, Some(NOW)), from_iat).is_err());
        check(times(Some(NOW + 300), None, None), from_iat).unwrap();
        assert!(check(times(Some(NOW + 301), None, None), from_iat).is_err());

        let from_nbf = TimeRules {
            lifetime_from: LifetimeStart::Nbf,
            ..from_iat
        };
        // Issued long ago, valid from a recent nbf: the window counts from nbf.
        let c = times(Some(NOW + 250), Some(NOW - 100), Some(NOW - 50));
        check(c, from_nbf).unwrap();
        assert!(check(c, from_iat).is_err());
    }

    #[test]
    fn max_age_bounds_tokens_without_exp_at_both_ends_with_the_skew() {
        let rules = TimeRules {
            require_iat: true,
            max_age_secs: Some(0),
            ..TimeRules::lenient(300)
        };
        check(times(None, Some(NOW - 300), None), rules).unwrap();
        check(times(None, Some(NOW + 300), None), rules).unwrap();
        assert_eq!(
            check(times(None, Some(NOW - 301), None), rules),
            Err(ClaimsError::TooOld {
                iat: NOW - 301,
                now: NOW
            })
        );
        assert!(matches!(
            check(times(None, Some(NOW + 301), None), rules),
            Err(ClaimsError::IssuedInFuture { .. })
        ));
    }

    #[test]
    fn exp_ahead_and_nbf_age_are_bounded_with_the_skew() {
        let rules = TimeRules {
            max_exp_ahead_secs: Some(3600),
            max_nbf_age_secs: Some(3600),
            ..TimeRules::lenient(SKEW)
        };
        check(
            times(Some(NOW + 3600 + SKEW), None, Some(NOW - 3600 - SKEW)),
            rules,
        )
        .unwrap();
        assert_eq!(
            check(times(Some(NOW + 3601 + SKEW), None, None), rules),
            Err(ClaimsError::ExpiresTooLate {
                exp: NOW + 3601 + SKEW,
                now: NOW
            })
        );
        assert_eq!(
            check(times(Some(NOW + 60), None, Some(NOW - 3601 - SKEW)), rules),
            Err(ClaimsError::NotBeforeTooOld {
                nbf: NOW - 3601 - SKEW,
                now: NOW
            })
        );
    }

    #[test]
    fn exp_before_iat_is_refused() {
        assert_eq!(
            check(
                times(Some(NOW + 10), Some(NOW + 30), None),
                TimeRules::lenient(SKEW)
            ),
            Err(ClaimsError::ExpiresBeforeIssued {
                iat: NOW + 30,
                exp: NOW + 10
            })
        );
    }

    #[test]
    fn hostile_extremes_do_not_overflow() {
        let rules = TimeRules {
            max_lifetime_secs: Some(300),
            max_age_secs: Some(10),
            max_exp_ahead_secs: Some(10),
            max_nbf_age_secs: Some(10),
            ..TimeRules::lenient(i64::MAX)
        };
        for c in [
            times(Some(i64::MAX), Some(i64::MIN), Some(i64::MIN)),
            times(Some(i64::MIN), Some(i64::MAX), None),
            times(Some(i64::MAX), None, None),
        ] {
            assert!(check(c, rules).is_err(), "{c:?}");
        }
        assert_eq!(rules.jti_kept_until(i64::MAX), i64::MAX);
    }

    #[test]
    fn time_claims_parse_from_any_claims_object() {
        let c: TimeClaims =
            serde_json::from_str(r#"{"iss":"x","exp":2,"iat":1,"aud":["a"]}"#).unwrap();
        assert_eq!(c, times(Some(2), Some(1), None));
        assert!(serde_json::from_str::<TimeClaims>(r#"{"exp":"soon"}"#).is_err());
    }

    #[test]
    fn jti_is_required_bounded_and_kept_until_exp_plus_skew() {
        assert_eq!(check_jti(None), Err(ClaimsError::Missing(Claim::Jti)));
        assert_eq!(check_jti(Some("")), Err(ClaimsError::Missing(Claim::Jti)));
        let longest = "j".repeat(MAX_JTI_LEN);
        assert_eq!(check_jti(Some(&longest)), Ok(longest.as_str()));
        let too_long = "j".repeat(MAX_JTI_LEN + 1);
        assert_eq!(check_jti(Some(&too_long)), Err(ClaimsError::JtiTooLong));
        let rules = TimeRules::lenient(SKEW);
        let exp = NOW + 30;
        assert_eq!(rules.jti_kept_until(exp), exp + SKEW);
        // The last second check_times accepts is before the replay entry lapses.
        let last = rules.jti_kept_until(exp) - 1;
        check_times(&times(Some(exp), None, None), &rules, last).unwrap();
        assert!(check_times(&times(Some(exp), None, None), &rules, last + 1).is_err());
    }

    #[test]
    fn audience_is_a_string_or_an_array() {
        let one: Audience = serde_json::from_str(r#""https://id.example""#).unwrap();
        assert_eq!(one, Audience::from("https://id.example"));
        assert!(one.contains("https://id.example"));
        assert!(!one.contains("https://id.example/"), "exact comparison");
        assert_eq!(one.len(), 1);

        let many: Audience = serde_json::from_str(r#"["c1","c2"]"#).unwrap();
        assert!(many.contains("c2") && !many.contains("c3"));
        assert_eq!(many.iter().collect::<Vec<_>>(), ["c1", "c2"]);
        assert!(many.contains_any(&["x", "c1"]));
        assert!(!many.contains_any(&["x".to_owned()]));
        assert!(!many.contains_any::<&str>(&[]));
        assert_eq!(serde_json::to_string(&many).unwrap(), r#"["c1","c2"]"#);
        assert_eq!(
            serde_json::to_string(&one).unwrap(),
            r#""https://id.example""#
        );

        let none: Audience = serde_json::from_str("[]").unwrap();
        assert!(none.is_empty() && !none.contains(""));
        assert!(serde_json::from_str::<Audience>("42").is_err());
        assert!(serde_json::from_str::<Audience>(r#"["a",1]"#).is_err());
    }

    #[test]
    fn messages_are_fit_for_error_description() {
        let errors = [
            ClaimsError::Missing(Claim::Nbf),
            ClaimsError::Expired { exp: 1, now: 2 },
            ClaimsError::IssuedInFuture { iat: 1, now: 2 },
            ClaimsError::NotYetValid { nbf: 1, now: 2 },
            ClaimsError::TooOld { iat: 1, now: 2 },
            ClaimsError::ExpiresBeforeIssued { iat: 2, exp: 1 },
            ClaimsError::LifetimeTooLong {
                lifetime: 9,
                max: 3,
            },
            ClaimsError::JtiTooLong,
        ];
        for e in errors {
            let text = format!("client_assertion {e}");
            assert!(
                text.chars()
                    .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'),
                "{text:?}"
            );
        }
        assert_eq!(
            ClaimsError::Missing(Claim::Jti).to_string(),
            "has no jti",
            "the claim is named"
        );
    }
}
