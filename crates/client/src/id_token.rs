//! ID-token validation (OpenID Connect Core 1.0 §3.1.3.7, CIBA Core §10.3): signature against
//! the server's JWKS, `iss`, `aud`/`azp`, and `exp`/`iat` under [`ID_TOKEN_RULES`].

use std::sync::Arc;

use backchannel_protocol::jose::{self, Algorithm, Audience, Jwks, TimeClaims, TimeRules};
use serde::{Deserialize, Serialize};

use crate::ciba::{http_err, read_json};
use crate::{CibaClient, ClientError};

/// Clock skew tolerated on `exp` and `iat`, in seconds.
const LEEWAY_SECS: i64 = 60;

/// OIDC Core §3.1.3.7 steps 9–10: `exp` and `iat` required, the token not expired and not
/// issued in the future, each with [`LEEWAY_SECS`]. The lifetime is the server's to choose, so
/// it is not bounded here; ID tokens carry no `nbf`.
const ID_TOKEN_RULES: TimeRules = TimeRules {
    require_exp: true,
    require_iat: true,
    honour_nbf: false,
    ..TimeRules::lenient(LEEWAY_SECS)
};

/// The claims of a validated ID token. Claims not named here are kept in `other`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl CibaClient {
    /// Validates an ID token this client received and returns its claims.
    pub async fn validate_id_token(&self, id_token: &str) -> Result<IdTokenClaims, ClientError> {
        let invalid = |m: &str| ClientError::InvalidIdToken(m.to_owned());
        let jws =
            jose::decode_jws(id_token).map_err(|e| ClientError::InvalidIdToken(e.to_string()))?;
        let alg = jws.alg();
        let kid = jws.header.kid.clone();
        let mut keys = self.jwks(false).await?.candidates(kid.as_deref(), alg);
        if keys.is_empty() || jws.verify_any(&keys).is_err() {
            // The server may have rotated its keys since we cached them.
            keys = self.jwks(true).await?.candidates(kid.as_deref(), alg);
            if keys.is_empty() {
                return Err(invalid(
                    "no key in the server's JWKS matches the token's kid and alg",
                ));
            }
            jws.verify_any(&keys)
                .map_err(|_| invalid("signature does not verify"))?;
        }
        let claims: IdTokenClaims = jws
            .claims()
            .map_err(|_| invalid("claims are not a valid ID token"))?;
        check_claims(
            &claims,
            &self.metadata.issuer,
            &self.client_id,
            self.clock.now_secs(),
            alg,
        )?;
        Ok(claims)
    }

    /// The server's JWKS, from cache unless `refresh`.
    async fn jwks(&self, refresh: bool) -> Result<Arc<Jwks>, ClientError> {
        if !refresh {
            let cached = self.jwks.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(j) = cached {
                return Ok(j);
            }
        }
        let url = self.metadata.jwks_uri.clone();
        let resp = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|source| http_err(&url, source))?;
        let jwks: Arc<Jwks> = Arc::new(read_json(resp, &url).await?);
        *self.jwks.lock().unwrap_or_else(|p| p.into_inner()) = Some(jwks.clone());
        Ok(jwks)
    }
}

/// OpenID Connect Core 1.0 §3.1.3.7 steps 2–4 and 9–10 on already-verified claims.
pub(crate) fn check_claims(
    claims: &IdTokenClaims,
    issuer: &str,
    client_id: &str,
    now: i64,
    _alg: Algorithm,
) -> Result<(), ClientError> {
    let invalid = |m: String| Err(ClientError::InvalidIdToken(m));
    if claims.iss != issuer {
        return invalid(format!("iss {:?} is not the issuer {issuer:?}", claims.iss));
    }
    if !claims.aud.contains(client_id) {
        return invalid(format!("aud does not contain this client ({client_id})"));
    }
    // With several audiences, `azp` must name this client.
    if claims.aud.len() > 1 && claims.azp.as_deref() != Some(client_id) {
        return invalid("several audiences and azp is not this client".into());
    }
    if let Some(azp) = claims.azp.as_deref().filter(|azp| *azp != client_id) {
        return invalid(format!("azp {azp:?} is not this client"));
    }
    let times = TimeClaims {
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: None,
    };
    if let Err(e) = jose::check_times(&times, &ID_TOKEN_RULES, now) {
        return invalid(format!("the token {e}"));
    }
    if claims.sub.is_empty() {
        return invalid("empty sub".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> IdTokenClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://id.example", "sub": "u1", "aud": "c1",
            "exp": 1300, "iat": 1000, "auth_time": 990, "email": "a@example.com"
        }))
        .unwrap()
    }

    fn check(c: &IdTokenClaims, now: i64) -> Result<(), ClientError> {
        check_claims(c, "https://id.example", "c1", now, Algorithm::ES256)
    }

    #[test]
    fn accepts_a_good_token_and_keeps_other_claims() {
        let c = claims();
        check(&c, 1001).unwrap();
        assert_eq!(c.other["email"], "a@example.com");
    }

    #[test]
    fn rejects_wrong_issuer_audience_and_times() {
        let mut c = claims();
        c.iss = "https://evil.example".into();
        assert!(check(&c, 1001).is_err());

        let mut c = claims();
        c.aud = Audience::One("c2".into());
        assert!(check(&c, 1001).is_err());

        let mut c = claims();
        c.aud = Audience::Many(vec!["c1".into(), "c2".into()]);
        assert!(check(&c, 1001).is_err(), "several audiences need azp");
        c.azp = Some("c1".into());
        check(&c, 1001).unwrap();

        assert!(check(&claims(), 1300 + LEEWAY_SECS).is_err(), "expired");
        assert!(
            check(&claims(), 1000 - LEEWAY_SECS - 1).is_err(),
            "issued in the future"
        );
        check(&claims(), 1300 + LEEWAY_SECS - 1).unwrap();
        check(&claims(), 1000 - LEEWAY_SECS).unwrap();

        let mut c = claims();
        c.exp = c.iat - 1;
        let err = check(&c, 1001).unwrap_err().to_string();
        assert!(err.contains("expires before it was issued"), "{err}");
    }

    #[test]
    fn audience_array_form_parses() {
        let c: IdTokenClaims = serde_json::from_value(serde_json::json!({
            "iss": "i", "sub": "s", "aud": ["c1"], "exp": 2, "iat": 1
        }))
        .unwrap();
        assert!(c.aud.contains("c1"));
    }
}
