//! Client authentication at the token and backchannel endpoints: `client_secret_basic`,
//! `client_secret_post` (RFC 6749 §2.3.1) and `private_key_jwt` (OIDC Core §9, RFC 7523).

use backchannel_protocol::jose::{self, Algorithm, Jwk, SigningKey};
use backchannel_protocol::oauth::CLIENT_ASSERTION_TYPE_JWT_BEARER;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::ClientError;

/// Lifetime of a client assertion. Short: it is made fresh for every request, the server
/// bounds `exp - iat` (five minutes by default here), and Singpass takes at most two minutes.
const ASSERTION_LIFETIME_SECS: i64 = 60;

/// How the client proves its identity.
#[derive(Clone)]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded client id and secret (RFC 6749 §2.3.1).
    SecretBasic(String),
    /// `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    SecretPost(String),
    /// A JWT signed with the client's private key (OIDC Core §9, RFC 7523 §2.2).
    PrivateKeyJwt(SigningKey),
}

impl std::fmt::Debug for ClientAuth {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::SecretBasic(_) => f.write_str("SecretBasic(..)"),
            ClientAuth::SecretPost(_) => f.write_str("SecretPost(..)"),
            ClientAuth::PrivateKeyJwt(key) => f.debug_tuple("PrivateKeyJwt").field(key).finish(),
        }
    }
}

impl ClientAuth {
    /// `private_key_jwt` with the key in `text`: a private JWK (JSON) or a PEM file (PKCS#8,
    /// SEC1 or PKCS#1). See [`load_signing_key`].
    pub fn private_key(
        text: &str,
        alg: Option<Algorithm>,
        kid: Option<&str>,
    ) -> Result<Self, ClientError> {
        load_signing_key(text, alg, kid).map(ClientAuth::PrivateKeyJwt)
    }

    /// The `token_endpoint_auth_method` name of this method.
    pub fn method_name(&self) -> &'static str {
        match self {
            ClientAuth::SecretBasic(_) => "client_secret_basic",
            ClientAuth::SecretPost(_) => "client_secret_post",
            ClientAuth::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

/// Reads the client's private key from the text of a key file: a private JWK (JSON, as
/// `backchannel` and most JOSE tools write it) or PEM (`PRIVATE KEY`, `EC PRIVATE KEY`,
/// `RSA PRIVATE KEY`, as OpenSSL writes it). `alg` names the algorithm where the file does not
/// (needed for PS256 from an RSA PEM key, which otherwise signs RS256); `kid` replaces the
/// file's `kid` (a PEM key's default is its RFC 7638 thumbprint): it must be the `kid` under
/// which the server knows the public key, as Singpass requires.
///
/// ```
/// use backchannel_client::load_signing_key;
/// use backchannel_protocol::jose::{Algorithm, SigningKey, pem};
///
/// # let key = SigningKey::generate(Algorithm::ES256).unwrap();
/// # let pem_file = pem::encode(pem::LABEL_PKCS8, &key.to_pkcs8_der().unwrap());
/// let loaded = load_signing_key(&pem_file, None, Some("my-key-1")).unwrap();
/// assert_eq!((loaded.alg(), loaded.kid()), (Algorithm::ES256, "my-key-1"));
/// ```
pub fn load_signing_key(
    text: &str,
    alg: Option<Algorithm>,
    kid: Option<&str>,
) -> Result<SigningKey, ClientError> {
    if text.trim_start().starts_with('{') {
        let mut jwk: Jwk = serde_json::from_str(text)
            .map_err(|e| ClientError::Config(format!("not a JWK: {e}")))?;
        if let Some(alg) = alg {
            match jwk.alg.as_deref() {
                Some(a) if a != alg.as_str() => {
                    return Err(ClientError::Config(format!(
                        "the JWK is for {a}, not {}",
                        alg.as_str()
                    )));
                }
                _ => jwk.alg = Some(alg.as_str().to_owned()),
            }
        }
        if let Some(kid) = kid {
            jwk.kid = Some(kid.to_owned());
        }
        if jwk.d.is_none() {
            return Err(ClientError::Config(
                "the JWK is a public key; private_key_jwt needs the private one".into(),
            ));
        }
        return Ok(SigningKey::from_jwk(&jwk)?);
    }
    Ok(SigningKey::from_pem(text, alg, kid)?)
}

/// What a request must carry to authenticate: an `Authorization` header and/or form fields.
#[derive(Debug, Default)]
pub(crate) struct Credentials {
    pub authorization: Option<String>,
    pub params: Vec<(&'static str, String)>,
}

/// The claims of a `private_key_jwt` client assertion (RFC 7523 §3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
}

/// The claims of a client assertion for `client_id`, addressed to `audience` (the issuer, which
/// CIBA Core §7.1 lets every endpoint accept and Singpass requires), valid for 60 seconds
/// from `now`.
pub fn client_assertion_claims(
    client_id: &str,
    audience: &str,
    now: i64,
    jti: String,
) -> AssertionClaims {
    AssertionClaims {
        iss: client_id.to_owned(),
        sub: client_id.to_owned(),
        aud: audience.to_owned(),
        iat: now,
        exp: now + ASSERTION_LIFETIME_SECS,
        jti,
    }
}

/// The `Authorization` header value for `client_secret_basic`: both parts are
/// form-urlencoded before they are joined and base64-encoded (RFC 6749 §2.3.1), so a `:` or a
/// non-ASCII character in either survives.
pub fn client_secret_basic_header(client_id: &str, secret: &str) -> String {
    let id: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let raw = format!("{id}:{secret}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Signs a client assertion with `key` (header `alg` and `kid` from the key).
pub(crate) fn sign_client_assertion(
    key: &SigningKey,
    client_id: &str,
    audience: &str,
    now: i64,
) -> Result<String, ClientError> {
    let claims = client_assertion_claims(client_id, audience, now, jose::random_token(16)?);
    Ok(jose::sign_jwt(key, None, &claims)?)
}

pub(crate) fn credentials(
    auth: &ClientAuth,
    client_id: &str,
    audience: &str,
    now: i64,
) -> Result<Credentials, ClientError> {
    Ok(match auth {
        ClientAuth::SecretBasic(secret) => Credentials {
            authorization: Some(client_secret_basic_header(client_id, secret)),
            params: Vec::new(),
        },
        ClientAuth::SecretPost(secret) => Credentials {
            authorization: None,
            params: vec![
                ("client_id", client_id.to_owned()),
                ("client_secret", secret.clone()),
            ],
        },
        ClientAuth::PrivateKeyJwt(key) => Credentials {
            authorization: None,
            params: vec![
                ("client_id", client_id.to_owned()),
                (
                    "client_assertion_type",
                    CLIENT_ASSERTION_TYPE_JWT_BEARER.to_owned(),
                ),
                (
                    "client_assertion",
                    sign_client_assertion(key, client_id, audience, now)?,
                ),
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_protocol::jose::{Algorithm, decode_jws};

    #[test]
    fn basic_header_form_encodes_before_base64() {
        // RFC 6749 §2.3.1: a ':' in the id and a space/'%' in the secret are encoded first.
        let h = client_secret_basic_header("my:client", "s3 cr%t");
        let b64 = h.strip_prefix("Basic ").unwrap();
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(String::from_utf8(raw).unwrap(), "my%3Aclient:s3+cr%25t");
    }

    #[test]
    fn basic_header_plain_ascii() {
        assert_eq!(
            client_secret_basic_header("client", "secret"),
            "Basic Y2xpZW50OnNlY3JldA=="
        );
    }

    #[test]
    fn assertion_claims_bind_client_and_audience() {
        let c = client_assertion_claims("c1", "https://id.example", 1_700_000_000, "j".into());
        assert_eq!(c.iss, "c1");
        assert_eq!(c.sub, "c1");
        assert_eq!(c.aud, "https://id.example");
        assert_eq!(c.exp - c.iat, 60);
        assert_eq!(c.iat, 1_700_000_000);
    }

    #[test]
    fn secret_post_sends_id_and_secret_in_the_body() {
        let c = credentials(&ClientAuth::SecretPost("pw".into()), "c1", "https://i", 0).unwrap();
        assert!(c.authorization.is_none());
        assert_eq!(
            c.params,
            vec![("client_id", "c1".into()), ("client_secret", "pw".into())]
        );
    }

    #[test]
    fn private_key_jwt_assertion_verifies_with_the_public_key() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let c = credentials(
            &ClientAuth::PrivateKeyJwt(key.clone()),
            "c1",
            "https://i",
            1000,
        )
        .unwrap();
        assert!(c.authorization.is_none());
        assert_eq!(c.params[0], ("client_id", "c1".to_owned()));
        assert_eq!(c.params[1].1, CLIENT_ASSERTION_TYPE_JWT_BEARER);
        let jws = decode_jws(&c.params[2].1).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.kid.as_deref(), Some(key.kid()));
        let vk = backchannel_protocol::jose::VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
        jws.verify(&vk).unwrap();
        let claims: AssertionClaims = jws.claims().unwrap();
        assert_eq!(claims.aud, "https://i");
        assert_eq!(claims.exp, 1060);
        assert!(claims.jti.len() >= 16);
        // A fresh jti every time: the server treats them as single-use.
        let again = credentials(&ClientAuth::PrivateKeyJwt(key), "c1", "https://i", 1000).unwrap();
        let again: AssertionClaims = decode_jws(&again.params[2].1).unwrap().claims().unwrap();
        assert_ne!(again.jti, claims.jti);
    }
}
