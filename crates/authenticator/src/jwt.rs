//! The JWTs of the device API (SPEC §5): the device-request JWT bound to method and URL and
//! the decision JWS bound to what was shown, both signed by the device key, and the checks a
//! server-signed challenge must pass before it is shown. Signing and the time rule come from
//! the protocol crate's `jose` module.

use backchannel_protocol::device::{
    CHALLENGE_JWT_TYP, ChallengeClaims, ChallengeEnvelope, DECISION_JWT_TYP, DEVICE_AUTH_JWT_TYP,
    Decision, DecisionClaims, DeviceAuthClaims,
};
use backchannel_protocol::jose::{self, Jwks, Kid, SigningKey, TimeClaims, TimeRules};

use crate::AuthenticatorError;

/// Lifetime of a device-request JWT: one call, so one minute is plenty, and well under the
/// server's bound (`DEVICE_AUTH_MAX_LIFETIME_SECS`).
const DEVICE_AUTH_LIFETIME_SECS: i64 = 60;

/// A challenge is shown until its `exp`, with no skew: the server closes the challenge at that
/// moment by its own clock, so a tolerance would only show the user a challenge whose decision
/// the server refuses. `iat` is not read: the server stamped it, and a device clock running
/// behind must not hide a fresh challenge.
const CHALLENGE_RULES: TimeRules = TimeRules {
    require_exp: true,
    honour_nbf: false,
    ..TimeRules::lenient(0)
};

/// A challenge whose signature, issuer, audience, expiry and id were checked: safe to show.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedChallenge {
    pub id: String,
    /// The challenge JWT exactly as received: the decision's `shown_hash` is over these bytes.
    pub raw: String,
    pub claims: ChallengeClaims,
}

/// A listed challenge with the result of its verification.
pub type CheckedChallenge = (
    ChallengeEnvelope,
    Result<VerifiedChallenge, AuthenticatorError>,
);

/// The claims of a device-request JWT for `method` on `path` (a path under the issuer, no
/// query string), valid for 60 seconds from `now`.
pub fn device_auth_claims(
    device_id: &str,
    issuer: &str,
    method: &str,
    path: &str,
    now: i64,
    jti: String,
) -> DeviceAuthClaims {
    DeviceAuthClaims {
        iss: device_id.to_owned(),
        htm: method.to_ascii_uppercase(),
        // The public URL, whichever node serves the call (SPEC §5).
        htu: format!("{}{path}", issuer.trim_end_matches('/')),
        iat: now,
        exp: now + DEVICE_AUTH_LIFETIME_SECS,
        jti,
    }
}

/// Signs a device-request JWT (`typ` device-auth+jwt, `kid` = the device id).
pub fn sign_device_auth(
    key: &SigningKey,
    device_id: &str,
    issuer: &str,
    method: &str,
    path: &str,
    now: i64,
) -> Result<String, AuthenticatorError> {
    let claims = device_auth_claims(
        device_id,
        issuer,
        method,
        path,
        now,
        jose::random_token(16)?,
    );
    sign_with_device_key(key, device_id, DEVICE_AUTH_JWT_TYP, &claims)
}

/// Signs the decision JWS over a challenge: `shown_hash` is base64url(SHA-256) of the challenge
/// JWT exactly as received.
pub fn sign_decision(
    key: &SigningKey,
    device_id: &str,
    challenge: &VerifiedChallenge,
    decision: Decision,
    user_verified: bool,
    now: i64,
) -> Result<String, AuthenticatorError> {
    sign_decision_as(
        key,
        device_id,
        challenge,
        decision,
        user_verified,
        false,
        now,
    )
}

/// [`sign_decision`] with the "I did not ask for this" flag (`not_me`, with a denial only).
pub fn sign_decision_as(
    key: &SigningKey,
    device_id: &str,
    challenge: &VerifiedChallenge,
    decision: Decision,
    user_verified: bool,
    not_me: bool,
    now: i64,
) -> Result<String, AuthenticatorError> {
    let claims = DecisionClaims {
        iss: device_id.to_owned(),
        challenge_id: challenge.id.clone(),
        decision,
        user_verified,
        shown_hash: jose::b64::encode(&jose::sha256(challenge.raw.as_bytes())),
        iat: now,
        jti: jose::random_token(16)?,
        webauthn: None,
        not_me,
    };
    sign_with_device_key(key, device_id, DECISION_JWT_TYP, &claims)
}

/// A device-signed JWT: `typ` as given, `kid` the device id (the server looks the key up by it).
fn sign_with_device_key<T: serde::Serialize>(
    key: &SigningKey,
    device_id: &str,
    typ: &str,
    claims: &T,
) -> Result<String, AuthenticatorError> {
    Ok(jose::sign_jwt_with(
        key,
        Some(typ),
        Kid::Named(device_id),
        claims,
    )?)
}

/// Why a challenge was rejected; `key_problem` when no server key verified it, which a fresh
/// JWKS might fix.
#[derive(Debug)]
pub(crate) struct Rejection {
    pub reason: String,
    pub key_problem: bool,
}

/// Checks a challenge before anything of it is shown: `typ`, the server's signature, `iss` (the
/// issuer), `aud` (this device), `exp`, and that its `jti` is the id it was listed under.
pub(crate) fn verify_challenge(
    envelope: &ChallengeEnvelope,
    jwks: &Jwks,
    issuer: &str,
    device_id: &str,
    now: i64,
) -> Result<VerifiedChallenge, Rejection> {
    let bad = |reason: String| Rejection {
        reason,
        key_problem: false,
    };
    let jws = jose::decode_jws(&envelope.challenge).map_err(|e| bad(e.to_string()))?;
    if jws.header.typ.as_deref() != Some(CHALLENGE_JWT_TYP) {
        return Err(bad(format!(
            "typ {:?} is not {CHALLENGE_JWT_TYP}",
            jws.header.typ
        )));
    }
    let keys = jwks.candidates(jws.header.kid.as_deref(), jws.alg());
    if keys.is_empty() || jws.verify_any(&keys).is_err() {
        return Err(Rejection {
            reason: "signature does not verify with the server's keys".into(),
            key_problem: true,
        });
    }
    let claims: ChallengeClaims = jws.claims().map_err(|e| bad(e.to_string()))?;
    if claims.iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(bad(format!(
            "iss {:?} is not the issuer {issuer:?}",
            claims.iss
        )));
    }
    if claims.aud != device_id {
        return Err(bad(format!("aud {:?} is not this device", claims.aud)));
    }
    let times = TimeClaims {
        exp: Some(claims.exp),
        ..TimeClaims::default()
    };
    jose::check_times(&times, &CHALLENGE_RULES, now).map_err(|e| bad(format!("challenge {e}")))?;
    if claims.jti != envelope.id {
        return Err(bad(format!(
            "jti {:?} is not the listed id {:?}",
            claims.jti, envelope.id
        )));
    }
    Ok(VerifiedChallenge {
        id: envelope.id.clone(),
        raw: envelope.challenge.clone(),
        claims,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_protocol::jose::{Algorithm, VerifyingKey, decode_jws, sign_jwt};

    const ISSUER: &str = "https://id.example";

    fn server_key() -> (SigningKey, Jwks) {
        let k = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwks = Jwks {
            keys: vec![k.public_jwk()],
        };
        (k, jwks)
    }

    fn challenge_claims(now: i64) -> ChallengeClaims {
        ChallengeClaims {
            iss: ISSUER.into(),
            aud: "dev-1".into(),
            jti: "ch-1".into(),
            iat: now,
            exp: now + 120,
            client_id: "c1".into(),
            client_name: "Bank".into(),
            binding_message: Some("W4SCT".into()),
            scope: "openid".into(),
            acr_values: None,
            authorization_details: None,
            uv_required: false,
        }
    }

    fn envelope(key: &SigningKey, claims: &ChallengeClaims) -> ChallengeEnvelope {
        ChallengeEnvelope {
            id: claims.jti.clone(),
            challenge: sign_jwt(key, Some(CHALLENGE_JWT_TYP), claims).unwrap(),
        }
    }

    #[test]
    fn device_auth_jwt_is_bound_to_method_url_and_device() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let jwt = sign_device_auth(
            &key,
            "dev-1",
            "https://id.example/",
            "get",
            "/device/v1/challenges",
            1000,
        )
        .unwrap();
        let jws = decode_jws(&jwt).unwrap();
        assert_eq!(jws.header.typ.as_deref(), Some(DEVICE_AUTH_JWT_TYP));
        assert_eq!(jws.header.kid.as_deref(), Some("dev-1"));
        assert_eq!(jws.header.alg, "ES256");
        jws.verify(&VerifyingKey::from_jwk(&key.public_jwk()).unwrap())
            .unwrap();
        let c: DeviceAuthClaims = jws.claims().unwrap();
        assert_eq!(c.iss, "dev-1");
        assert_eq!(c.htm, "GET");
        assert_eq!(c.htu, "https://id.example/device/v1/challenges");
        assert_eq!((c.iat, c.exp), (1000, 1060));
        let again: DeviceAuthClaims =
            decode_jws(&sign_device_auth(&key, "dev-1", ISSUER, "GET", "/x", 1000).unwrap())
                .unwrap()
                .claims()
                .unwrap();
        assert_ne!(again.jti, c.jti, "a fresh jti per call");
    }

    #[test]
    fn eddsa_device_keys_sign_too() {
        let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
        let jwt = sign_device_auth(&key, "dev-1", ISSUER, "POST", "/p", 1).unwrap();
        let jws = decode_jws(&jwt).unwrap();
        assert_eq!(jws.header.alg, "EdDSA");
        jws.verify(&VerifyingKey::from_jwk(&key.public_jwk()).unwrap())
            .unwrap();
    }

    #[test]
    fn decision_is_signed_and_bound_to_the_challenge_as_shown() {
        let (server, jwks) = server_key();
        let env = envelope(&server, &challenge_claims(1000));
        let ch = verify_challenge(&env, &jwks, ISSUER, "dev-1", 1000).unwrap();
        let device = SigningKey::generate(Algorithm::ES256).unwrap();
        let jws = sign_decision(&device, "dev-1", &ch, Decision::Approve, true, 1001).unwrap();
        let d = decode_jws(&jws).unwrap();
        assert_eq!(d.header.typ.as_deref(), Some(DECISION_JWT_TYP));
        assert_eq!(d.header.kid.as_deref(), Some("dev-1"));
        d.verify(&VerifyingKey::from_jwk(&device.public_jwk()).unwrap())
            .unwrap();
        let c: DecisionClaims = d.claims().unwrap();
        assert_eq!(c.iss, "dev-1");
        assert_eq!(c.challenge_id, "ch-1");
        assert_eq!(c.decision, Decision::Approve);
        assert!(c.user_verified);
        assert_eq!(c.iat, 1001);
        assert_eq!(
            c.shown_hash,
            jose::b64::encode(&jose::sha256(env.challenge.as_bytes()))
        );
        assert_eq!(c.shown_hash.len(), 43);
    }

    #[test]
    fn a_genuine_challenge_verifies() {
        let (server, jwks) = server_key();
        let ch = verify_challenge(
            &envelope(&server, &challenge_claims(1000)),
            &jwks,
            ISSUER,
            "dev-1",
            1000,
        )
        .unwrap();
        assert_eq!(ch.claims.client_name, "Bank");
        assert_eq!(ch.id, "ch-1");
    }

    #[test]
    fn forged_or_misdirected_challenges_are_rejected() {
        let (server, jwks) = server_key();
        let (forger, _) = server_key();
        let reject = |env: ChallengeEnvelope, now: i64| {
            let r = verify_challenge(&env, &jwks, ISSUER, "dev-1", now).unwrap_err();
            assert!(!r.key_problem, "{}", r.reason);
        };
        // Signed by another key: a fresh JWKS might know it, so the caller refreshes once.
        let forged = verify_challenge(
            &envelope(&forger, &challenge_claims(1000)),
            &jwks,
            ISSUER,
            "dev-1",
            1000,
        );
        assert!(forged.unwrap_err().key_problem);
        // Another issuer, another device, expired.
        reject(
            envelope(
                &server,
                &ChallengeClaims {
                    iss: "https://evil".into(),
                    ..challenge_claims(1000)
                },
            ),
            1000,
        );
        reject(
            envelope(
                &server,
                &ChallengeClaims {
                    aud: "dev-2".into(),
                    ..challenge_claims(1000)
                },
            ),
            1000,
        );
        reject(envelope(&server, &challenge_claims(1000)), 1120);
        // Shown up to its last second; a challenge stamped ahead of the device's clock too.
        verify_challenge(
            &envelope(&server, &challenge_claims(1000)),
            &jwks,
            ISSUER,
            "dev-1",
            1119,
        )
        .unwrap();
        verify_challenge(
            &envelope(&server, &challenge_claims(1000)),
            &jwks,
            ISSUER,
            "dev-1",
            900,
        )
        .unwrap();
        // Listed under another id.
        let mut env = envelope(&server, &challenge_claims(1000));
        env.id = "ch-2".into();
        reject(env, 1000);
        // A server-signed JWT of another type (an ID token, say) is not a challenge.
        let env = ChallengeEnvelope {
            id: "ch-1".into(),
            challenge: sign_jwt(&server, Some("JWT"), &challenge_claims(1000)).unwrap(),
        };
        reject(env, 1000);
    }
}
