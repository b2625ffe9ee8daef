//! ID-token validation (OpenID Connect Core 1.0 §3.1.3.7, CIBA Core §10.3.1): signature against
//! the server's JWKS, `iss`, `aud`/`azp`, `exp`/`iat` with a configurable skew, and the hashes
//! that bind the token to the access and refresh tokens it came with (`at_hash`,
//! `urn:openid:params:jwt:claim:rt_hash`) and to its request
//! (`urn:openid:params:jwt:claim:auth_req_id`). CIBA has no `nonce`: the token is bound to the
//! request by the authenticated back channel instead. An encrypted ID token (a compact JWE
//! around the signed one, OIDC Core §10.2, as Singpass sends them) is decrypted first with the
//! client's key ([`CibaClient::with_id_token_decryption_key`]).

use backchannel_protocol::jose::jwe::{self, DecryptingKey};
use backchannel_protocol::jose::{
    self, Algorithm, Audience, Jwk, SigningKey, TimeClaims, TimeRules,
};
use backchannel_protocol::oauth::TokenResponse;
use serde::{Deserialize, Serialize};

use crate::{CibaClient, ClientError};

/// Clock skew tolerated on `exp` and `iat` unless [`CibaClient::with_id_token_leeway`] says
/// otherwise, in seconds.
pub const DEFAULT_LEEWAY_SECS: i64 = 60;

/// CIBA Core §10.3.1: the claim naming the request a pushed ID token answers.
pub const CLAIM_AUTH_REQ_ID: &str = "urn:openid:params:jwt:claim:auth_req_id";
/// CIBA Core §10.3.1: the hash of the refresh token pushed with the ID token.
pub const CLAIM_RT_HASH: &str = "urn:openid:params:jwt:claim:rt_hash";

#[derive(Debug, Clone)]
pub(crate) struct IdTokenOptions {
    pub leeway_secs: i64,
    /// The client's keys for encrypted ID tokens, tried by `kid` and algorithm.
    pub decryption_keys: Vec<DecryptingKey>,
}

impl Default for IdTokenOptions {
    fn default() -> Self {
        IdTokenOptions {
            leeway_secs: DEFAULT_LEEWAY_SECS,
            decryption_keys: Vec::new(),
        }
    }
}

/// Reads the client's ID-token decryption key from the text of a key file: a private JWK
/// (EC P-256/384/521 or X25519 for ECDH-ES, RSA for RSA-OAEP-256) or a PEM file (PKCS#8, SEC1 or
/// PKCS#1; EC or RSA). `kid` replaces the file's `kid` (a PEM key's default is its RFC 7638
/// thumbprint): it should be the `kid` of the public key the server encrypts to.
///
/// ```
/// use backchannel_client::load_decryption_key;
/// use backchannel_protocol::jose::jwe::{DecryptingKey, EncryptionKeyType};
///
/// let key = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
/// let file = serde_json::to_string(&key.to_private_jwk()).unwrap();
/// let loaded = load_decryption_key(&file, Some("enc-1")).unwrap();
/// assert_eq!(loaded.kid(), Some("enc-1"));
/// ```
pub fn load_decryption_key(text: &str, kid: Option<&str>) -> Result<DecryptingKey, ClientError> {
    let mut jwk: Jwk = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| ClientError::Config(format!("not a JWK: {e}")))?
    } else {
        // The PEM structures are the same for signing and key agreement: read the private key
        // with the signing reader, then use its members as an encryption key.
        let mut jwk = SigningKey::from_pem(text, None, kid)?.to_private_jwk();
        jwk.use_ = Some("enc".to_owned());
        jwk.alg = None;
        jwk
    };
    if let Some(kid) = kid {
        jwk.kid = Some(kid.to_owned());
    }
    if jwk.d.is_none() {
        return Err(ClientError::Config(
            "the JWK is a public key; decrypting needs the private one".into(),
        ));
    }
    Ok(DecryptingKey::from_jwk(&jwk)?)
}

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, serde_json::Value>,
}

impl IdTokenClaims {
    /// A claim not named by a field (`email`, `name`, `urn:...`).
    pub fn claim(&self, name: &str) -> Option<&serde_json::Value> {
        self.other.get(name)
    }
}

impl CibaClient {
    /// Tolerates `secs` of clock skew on the ID token's `exp` and `iat` (default 60).
    pub fn with_id_token_leeway(mut self, secs: i64) -> Self {
        self.id_token.leeway_secs = secs.max(0);
        self
    }

    /// Decrypts encrypted ID tokens with `key` (call once per key; during a key rotation give
    /// both). The key is chosen by the JWE's `kid`, else every key that fits its `alg` is tried.
    pub fn with_id_token_decryption_key(mut self, key: DecryptingKey) -> Self {
        self.id_token.decryption_keys.push(key);
        self
    }

    /// Validates an ID token this client received (signed, or encrypted around a signed one)
    /// and returns its claims.
    pub async fn validate_id_token(&self, id_token: &str) -> Result<IdTokenClaims, ClientError> {
        Ok(self.verify_id_token(id_token).await?.0)
    }

    /// Validates the ID token of a token response and its `at_hash` (required by CIBA Core
    /// §10.3.1 in push mode, checked whenever present) and, when a refresh token came with it
    /// and the token carries one, its `rt_hash`. `None` when the response has no ID token.
    pub async fn validate_token_response(
        &self,
        tokens: &TokenResponse,
    ) -> Result<Option<IdTokenClaims>, ClientError> {
        let Some(id_token) = &tokens.id_token else {
            return Ok(None);
        };
        let (claims, alg) = self.verify_id_token(id_token).await?;
        check_hashes(&claims, alg, tokens, false)?;
        Ok(Some(claims))
    }

    /// Validates tokens pushed to the client (CIBA Core §10.3.1): the ID token as
    /// [`CibaClient::validate_id_token`], plus `at_hash` (required), the `auth_req_id` claim
    /// (must name `auth_req_id`), and `rt_hash` when a refresh token was pushed.
    pub async fn validate_pushed_tokens(
        &self,
        auth_req_id: &str,
        tokens: &TokenResponse,
    ) -> Result<IdTokenClaims, ClientError> {
        let invalid = |m: &str| ClientError::InvalidIdToken(m.to_owned());
        let id_token = tokens
            .id_token
            .as_deref()
            .ok_or_else(|| invalid("a push token response must carry an ID token"))?;
        let (claims, alg) = self.verify_id_token(id_token).await?;
        if claims.claim(CLAIM_AUTH_REQ_ID).and_then(|v| v.as_str()) != Some(auth_req_id) {
            return Err(invalid(&format!(
                "the {CLAIM_AUTH_REQ_ID} claim does not name this request"
            )));
        }
        check_hashes(&claims, alg, tokens, true)?;
        Ok(claims)
    }

    /// Signature and claims; returns the claims and the algorithm that signed them.
    async fn verify_id_token(
        &self,
        id_token: &str,
    ) -> Result<(IdTokenClaims, Algorithm), ClientError> {
        let invalid = |m: &str| ClientError::InvalidIdToken(m.to_owned());
        let decrypted;
        let id_token = if jwe::is_compact_jwe(id_token) {
            decrypted = self.decrypt_id_token(id_token)?;
            decrypted.as_str()
        } else {
            id_token
        };
        let jws =
            jose::decode_jws(id_token).map_err(|e| ClientError::InvalidIdToken(e.to_string()))?;
        let alg = jws.alg();
        let kid = jws.header.kid.clone();
        let keys = self.verifying_keys(kid.as_deref(), alg).await?;
        if keys.is_empty() {
            return Err(invalid(
                "no key in the server's JWKS matches the token's kid and alg",
            ));
        }
        jws.verify_any(&keys)
            .map_err(|_| invalid("signature does not verify"))?;
        let claims: IdTokenClaims = jws
            .claims()
            .map_err(|_| invalid("claims are not a valid ID token"))?;
        check_claims(
            &claims,
            &self.issuer,
            &self.client_id,
            self.clock.now_secs(),
            self.id_token.leeway_secs,
        )?;
        Ok((claims, alg))
    }
}

impl CibaClient {
    /// The signed ID token inside an encrypted one (OIDC Core §10.2: a nested JWT).
    fn decrypt_id_token(&self, token: &str) -> Result<String, ClientError> {
        let invalid = |m: String| ClientError::InvalidIdToken(m);
        let keys = &self.id_token.decryption_keys;
        if keys.is_empty() {
            return Err(invalid(
                "the ID token is encrypted and this client has no decryption key".into(),
            ));
        }
        let header = jwe::decode_header(token)
            .map_err(|e| invalid(format!("unreadable encrypted ID token: {e}")))?;
        let named: Vec<&DecryptingKey> = keys
            .iter()
            .filter(|k| {
                header.kid.is_none() || k.kid().is_none() || k.kid() == header.kid.as_deref()
            })
            .filter(|k| k.supports(header.alg))
            .collect();
        if named.is_empty() {
            return Err(invalid(format!(
                "no decryption key for {} with kid {:?}",
                header.alg.as_str(),
                header.kid.as_deref().unwrap_or("(none)")
            )));
        }
        let plaintext = named
            .iter()
            .find_map(|k| jwe::decrypt(token, k).ok())
            .map(|(_, p)| p)
            .ok_or_else(|| {
                invalid("the encrypted ID token does not decrypt with this client's key".into())
            })?;
        String::from_utf8(plaintext)
            .map_err(|_| invalid("the decrypted ID token is not text".into()))
    }
}

/// `at_hash` and `rt_hash`: the left half of the signing algorithm's hash of each token
/// (OIDC Core §3.1.3.6, CIBA Core §10.3.1). `push` makes `at_hash`, and `rt_hash` with a
/// refresh token, required.
pub(crate) fn check_hashes(
    claims: &IdTokenClaims,
    alg: Algorithm,
    tokens: &TokenResponse,
    push: bool,
) -> Result<(), ClientError> {
    let invalid = |m: String| Err(ClientError::InvalidIdToken(m));
    match &claims.at_hash {
        Some(h) if *h != jose::hash_half(alg, tokens.access_token.as_bytes()) => {
            return invalid("at_hash does not match the access token".into());
        }
        None if push => return invalid("a pushed ID token must carry at_hash".into()),
        _ => {}
    }
    if let Some(rt) = &tokens.refresh_token {
        match claims.claim(CLAIM_RT_HASH).and_then(|v| v.as_str()) {
            Some(h) if h != jose::hash_half(alg, rt.as_bytes()) => {
                return invalid(format!("{CLAIM_RT_HASH} does not match the refresh token"));
            }
            None if push => {
                return invalid(format!(
                    "a pushed ID token with a refresh token must carry {CLAIM_RT_HASH}"
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// OpenID Connect Core 1.0 §3.1.3.7 steps 2–4 and 9–10 on already-verified claims.
pub(crate) fn check_claims(
    claims: &IdTokenClaims,
    issuer: &str,
    client_id: &str,
    now: i64,
    leeway_secs: i64,
) -> Result<(), ClientError> {
    let invalid = |m: String| Err(ClientError::InvalidIdToken(m));
    if claims.iss.trim_end_matches('/') != issuer.trim_end_matches('/') {
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
    // Steps 9–10: `exp` and `iat` required, the token not expired and not issued in the
    // future, each with the leeway. The lifetime is the server's to choose, so it is not
    // bounded here; ID tokens carry no `nbf`.
    let rules = TimeRules {
        require_exp: true,
        require_iat: true,
        honour_nbf: false,
        ..TimeRules::lenient(leeway_secs)
    };
    let times = TimeClaims {
        exp: Some(claims.exp),
        iat: Some(claims.iat),
        nbf: None,
    };
    if let Err(e) = jose::check_times(&times, &rules, now) {
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

    const LEEWAY: i64 = DEFAULT_LEEWAY_SECS;

    fn claims() -> IdTokenClaims {
        serde_json::from_value(serde_json::json!({
            "iss": "https://id.example", "sub": "u1", "aud": "c1",
            "exp": 1300, "iat": 1000, "auth_time": 990, "email": "a@example.com"
        }))
        .unwrap()
    }

    fn check(c: &IdTokenClaims, now: i64) -> Result<(), ClientError> {
        check_claims(c, "https://id.example", "c1", now, LEEWAY)
    }

    #[test]
    fn accepts_a_good_token_and_keeps_other_claims() {
        let c = claims();
        check(&c, 1001).unwrap();
        assert_eq!(c.claim("email").unwrap(), "a@example.com");
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
        c.azp = Some("c2".into());
        assert!(check(&c, 1001).is_err(), "azp names another client");

        assert!(check(&claims(), 1300 + LEEWAY).is_err(), "expired");
        assert!(
            check(&claims(), 1000 - LEEWAY - 1).is_err(),
            "issued in the future"
        );
        check(&claims(), 1300 + LEEWAY - 1).unwrap();
        check(&claims(), 1000 - LEEWAY).unwrap();

        let mut c = claims();
        c.exp = c.iat - 1;
        let err = check(&c, 1001).unwrap_err().to_string();
        assert!(err.contains("expires before it was issued"), "{err}");
    }

    #[test]
    fn leeway_is_configurable() {
        let strict = |now| check_claims(&claims(), "https://id.example", "c1", now, 0);
        assert!(strict(1300).is_err());
        strict(1299).unwrap();
        assert!(strict(999).is_err());
        let lax = |now| check_claims(&claims(), "https://id.example", "c1", now, 600);
        lax(1899).unwrap();
    }

    #[test]
    fn hashes_bind_the_access_and_refresh_tokens() {
        let alg = Algorithm::ES256;
        let tokens = TokenResponse {
            access_token: "AT".into(),
            token_type: "Bearer".into(),
            expires_in: 60,
            id_token: Some("x".into()),
            refresh_token: Some("RT".into()),
            scope: None,
            authorization_details: None,
        };
        let mut c = claims();
        // Poll mode: absent hashes are fine, wrong ones are not.
        check_hashes(&c, alg, &tokens, false).unwrap();
        assert!(
            check_hashes(&c, alg, &tokens, true).is_err(),
            "push needs at_hash"
        );
        c.at_hash = Some(jose::hash_half(alg, b"AT"));
        check_hashes(&c, alg, &tokens, false).unwrap();
        assert!(
            check_hashes(&c, alg, &tokens, true).is_err(),
            "push needs rt_hash"
        );
        c.other
            .insert(CLAIM_RT_HASH.into(), jose::hash_half(alg, b"RT").into());
        check_hashes(&c, alg, &tokens, true).unwrap();
        c.other
            .insert(CLAIM_RT_HASH.into(), jose::hash_half(alg, b"other").into());
        assert!(check_hashes(&c, alg, &tokens, false).is_err());
        c.at_hash = Some(jose::hash_half(Algorithm::ES384, b"AT"));
        assert!(check_hashes(&c, alg, &tokens, false).is_err());
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
