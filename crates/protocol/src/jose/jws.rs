//! Compact JWS (RFC 7515 §7.1): signing, and strict decoding that refuses anything we would
//! not sign ourselves before a key is ever looked at.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Algorithm, Header, JoseError, SigningKey, VerifyingKey, b64, echo};

/// Tokens longer than this are refused before any parsing: request objects, client
/// assertions and ID tokens are far smaller, and a bound keeps hostile input cheap.
pub const MAX_JWS_LEN: usize = 16 * 1024;

fn malformed(msg: &str) -> JoseError {
    JoseError::Malformed(msg.to_owned())
}

/// Signs `payload` as a compact JWS. `header.alg` is overwritten with the key's algorithm and
/// `header.kid` filled from the key when absent. A `crit` header is refused, as our own
/// decoder would refuse the result.
pub fn sign_jws(header: &Header, payload: &[u8], key: &SigningKey) -> Result<String, JoseError> {
    let mut header = header.clone();
    if header.kid.is_none() {
        header.kid = Some(key.kid().to_owned());
    }
    frame(header, payload, key)
}

/// Which `kid` the header of a JWT signed by [`sign_jwt_with`] names (RFC 7515 §4.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kid<'a> {
    /// The signing key's own `kid` (its JWKS entry).
    #[default]
    OfKey,
    /// A `kid` the verifier knows the key by: a device id, Apple's key id, a Google service
    /// account's `private_key_id`.
    Named(&'a str),
    /// No `kid`: the verifier has one key for this issuer.
    Omitted,
}

/// Signs `claims` as a JWT (a compact JWS, RFC 7519 §7.1) with the header `{alg, kid?, typ?}`:
/// `alg` is the key's, `kid` as chosen, `typ` when given (RFC 8725 §3.11 explicit typing).
/// Every JWT Backchannel signs goes through here.
pub fn sign_jwt_with<T: Serialize>(
    key: &SigningKey,
    typ: Option<&str>,
    kid: Kid<'_>,
    claims: &T,
) -> Result<String, JoseError> {
    let payload = serde_json::to_vec(claims).map_err(|_| malformed("claims are not JSON"))?;
    let kid = match kid {
        Kid::OfKey => Some(key.kid().to_owned()),
        Kid::Named(kid) => Some(kid.to_owned()),
        Kid::Omitted => None,
    };
    let header = Header {
        kid,
        typ: typ.map(str::to_owned),
        ..Header::default()
    };
    frame(header, &payload, key)
}

/// [`sign_jwt_with`] naming the key's own `kid`.
pub fn sign_jwt<T: Serialize>(
    key: &SigningKey,
    typ: Option<&str>,
    claims: &T,
) -> Result<String, JoseError> {
    sign_jwt_with(key, typ, Kid::OfKey, claims)
}

/// `base64url(header) . base64url(payload) . base64url(signature)` (RFC 7515 §7.1) with the
/// header exactly as given but for `alg`, which is the key's.
fn frame(mut header: Header, payload: &[u8], key: &SigningKey) -> Result<String, JoseError> {
    if header.crit.is_some() || header.extra.contains_key("crit") {
        return Err(malformed("crit is not supported"));
    }
    header.alg = key.alg().as_str().to_owned();
    let header_json =
        serde_json::to_vec(&header).map_err(|_| malformed("header is not serialisable"))?;
    let mut token = b64::encode(&header_json);
    token.push('.');
    token.push_str(&b64::encode(payload));
    let signature = key.sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&b64::encode(&signature));
    Ok(token)
}

/// A compact JWS that parsed strictly but whose signature has not been checked yet. Nothing in
/// it may be trusted until [`UnverifiedJws::verify`] succeeds.
#[derive(Debug, Clone)]
pub struct UnverifiedJws {
    pub header: Header,
    pub payload: Vec<u8>,
    alg: Algorithm,
    signing_input: Vec<u8>,
    signature: Vec<u8>,
}

/// Parses a compact JWS (RFC 7515 §5.2) strictly: exactly three parts, each strict base64url;
/// the header a JSON object whose `alg` is one of ours (so `none` and HMAC are
/// `UnsupportedAlgorithm`); no `crit` (we implement no extensions, RFC 7515 §4.1.11); at most
/// [`MAX_JWS_LEN`] bytes. Header members such as `jwk`, `jku` and `x5u` are kept in `extra`
/// but never used to find a key.
pub fn decode_jws(token: &str) -> Result<UnverifiedJws, JoseError> {
    if token.len() > MAX_JWS_LEN {
        return Err(malformed("token is too large"));
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed("a compact JWS has exactly three parts"));
    };

    let header_json = b64::decode(header_b64).map_err(|_| malformed("header is not base64url"))?;
    let header_map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header_json)
            .map_err(|_| malformed("header is not a JSON object"))?;
    if header_map.contains_key("crit") {
        return Err(malformed("crit header parameters are not supported"));
    }
    let header: Header = serde_json::from_value(serde_json::Value::Object(header_map))
        .map_err(|_| malformed("invalid header"))?;
    let alg = Algorithm::parse(&header.alg)
        .ok_or_else(|| JoseError::UnsupportedAlgorithm(echo(&header.alg)))?;

    let payload = b64::decode(payload_b64).map_err(|_| malformed("payload is not base64url"))?;
    let signature =
        b64::decode(signature_b64).map_err(|_| malformed("signature is not base64url"))?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let signing_input = token.as_bytes()[..signing_input_len].to_vec();

    Ok(UnverifiedJws {
        header,
        payload,
        alg,
        signing_input,
        signature,
    })
}

impl UnverifiedJws {
    /// The header's `alg`, already known to be one we support.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Checks the signature with `key`: `KeyMismatch` if the key cannot verify this `alg`,
    /// `BadSignature` if it does not verify.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), JoseError> {
        key.verify(self.alg, &self.signing_input, &self.signature)
    }

    /// Ok if any of `keys` verifies the signature. Otherwise `BadSignature` if at least one
    /// key could have (it supported the `alg`), else `KeyMismatch`.
    pub fn verify_any(&self, keys: &[VerifyingKey]) -> Result<(), JoseError> {
        let mut result = Err(JoseError::KeyMismatch);
        for key in keys {
            match self.verify(key) {
                Ok(()) => return Ok(()),
                Err(JoseError::KeyMismatch) => {}
                Err(e) => result = Err(e),
            }
        }
        result
    }

    /// The payload as JSON claims; `Malformed` if it does not deserialise into `T`.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JoseError> {
        serde_json::from_slice(&self.payload).map_err(|_| malformed("payload is not valid claims"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn token(header: &str, payload: &str, sig: &str) -> String {
        format!(
            "{}.{}.{}",
            b64::encode(header.as_bytes()),
            b64::encode(payload.as_bytes()),
            b64::encode(sig.as_bytes())
        )
    }

    #[test]
    fn signing_input_is_the_first_two_parts() {
        let t = token(r#"{"alg":"ES256"}"#, "{}", "sig");
        let jws = decode_jws(&t).unwrap();
        let dot = t.rfind('.').unwrap();
        assert_eq!(jws.signing_input, &t.as_bytes()[..dot]);
        assert_eq!(jws.signature, b"sig");
        assert_eq!(jws.alg(), Algorithm::ES256);
    }

    #[test]
    fn unknown_header_members_are_kept() {
        let jws = decode_jws(&token(r#"{"alg":"EdDSA","typ":"JWT","x":1}"#, "{}", "s")).unwrap();
        assert_eq!(jws.header.typ.as_deref(), Some("JWT"));
        assert_eq!(jws.header.extra.get("x"), Some(&serde_json::json!(1)));
    }

    #[test]
    fn crit_is_refused_even_when_null() {
        for h in [
            r#"{"alg":"ES256","crit":["exp"],"exp":1}"#,
            r#"{"alg":"ES256","crit":[]}"#,
            r#"{"alg":"ES256","crit":null}"#,
        ] {
            assert!(matches!(
                decode_jws(&token(h, "{}", "s")),
                Err(JoseError::Malformed(_))
            ));
        }
    }

    #[test]
    fn size_limit_applies_to_the_whole_token() {
        let big = "a".repeat(MAX_JWS_LEN);
        let t = token(r#"{"alg":"ES256"}"#, &big, "s");
        assert!(matches!(decode_jws(&t), Err(JoseError::Malformed(_))));
    }

    #[test]
    fn verify_any_reports_the_most_useful_error() {
        let jws = decode_jws(&token(r#"{"alg":"ES256"}"#, "{}", "s")).unwrap();
        assert_eq!(jws.verify_any(&[]), Err(JoseError::KeyMismatch));
        let ed = SigningKey::generate(Algorithm::EdDSA)
            .unwrap()
            .verifying_key();
        let es = SigningKey::generate(Algorithm::ES256)
            .unwrap()
            .verifying_key();
        assert_eq!(
            jws.verify_any(std::slice::from_ref(&ed)),
            Err(JoseError::KeyMismatch)
        );
        assert_eq!(jws.verify_any(&[ed, es]), Err(JoseError::BadSignature));
    }

    #[test]
    fn sign_jws_sets_alg_and_kid_and_refuses_crit() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let header = Header {
            alg: "none".into(),
            ..Header::default()
        };
        let jws = decode_jws(&sign_jws(&header, b"hi", &key).unwrap()).unwrap();
        assert_eq!(jws.header.alg, "ES256");
        assert_eq!(jws.header.kid.as_deref(), Some(key.kid()));
        let header = Header {
            kid: Some("mine".into()),
            ..Header::default()
        };
        let jws = decode_jws(&sign_jws(&header, b"hi", &key).unwrap()).unwrap();
        assert_eq!(jws.header.kid.as_deref(), Some("mine"));
        let header = Header {
            crit: Some(vec!["b64".into()]),
            ..Header::default()
        };
        assert!(sign_jws(&header, b"hi", &key).is_err());
    }

    #[test]
    fn sign_jwt_with_sets_the_chosen_typ_and_kid() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let claims = serde_json::json!({"iss": "me"});
        let header_of = |typ, kid| {
            let jws = decode_jws(&sign_jwt_with(&key, typ, kid, &claims).unwrap()).unwrap();
            jws.verify(&key.verifying_key()).unwrap();
            assert_eq!(jws.claims::<serde_json::Value>().unwrap(), claims);
            serde_json::to_value(&jws.header).unwrap()
        };
        assert_eq!(
            header_of(Some("device-auth+jwt"), Kid::Named("dev-1")),
            serde_json::json!({"alg": "ES256", "kid": "dev-1", "typ": "device-auth+jwt"})
        );
        assert_eq!(
            header_of(None, Kid::OfKey),
            serde_json::json!({"alg": "ES256", "kid": key.kid()})
        );
        assert_eq!(
            header_of(Some("JWT"), Kid::Omitted),
            serde_json::json!({"alg": "ES256", "typ": "JWT"})
        );
        assert_eq!(
            sign_jwt(&key, Some("JWT"), &claims)
                .unwrap()
                .split('.')
                .next(),
            sign_jwt_with(&key, Some("JWT"), Kid::OfKey, &claims)
                .unwrap()
                .split('.')
                .next()
        );
    }
}
