//! The push services' key files: PEM (RFC 7468) unwrapped to DER and loaded as jose signing
//! keys (Apple's `.p8` and a VAPID key as P-256 PKCS#8 or SEC1, a Google service account's RSA
//! PKCS#8). aws-lc-rs parses every key and the jose module signs every token; only the PEM
//! armour is taken off here.

use backchannel_protocol::jose::{Algorithm, JoseError, SigningKey, b64};
use base64::Engine as _;

/// Why a key file's text is not the key it should hold.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("no PEM block labelled {labels}")]
    NoPemBlock { labels: String },
    #[error("the {label} PEM block has no end line")]
    Unterminated { label: String },
    #[error("the {label} PEM block is not valid base64")]
    Base64 {
        label: String,
        #[source]
        source: base64::DecodeError,
    },
    /// The DER is not a key of the expected algorithm.
    #[error(transparent)]
    Key(#[from] JoseError),
    #[error("not a P-256 key")]
    NotP256,
}

/// Length of an uncompressed SEC1 P-256 point (`0x04 || x || y`).
const P256_POINT_LEN: usize = 65;

/// The DER inside the first PEM block whose label is one of `labels`.
pub(crate) fn pem_decode(text: &str, labels: &[&str]) -> Result<Vec<u8>, KeyFileError> {
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        if !labels.contains(&label) {
            continue;
        }
        let end = format!("-----END {label}-----");
        let mut body = String::new();
        for line in lines.by_ref() {
            if line == end {
                return base64::engine::general_purpose::STANDARD
                    .decode(body.as_bytes())
                    .map_err(|source| KeyFileError::Base64 {
                        label: label.to_owned(),
                        source,
                    });
            }
            body.push_str(line);
        }
        return Err(KeyFileError::Unterminated {
            label: label.to_owned(),
        });
    }
    Err(KeyFileError::NoPemBlock {
        labels: labels.join(" or "),
    })
}

/// A P-256 private key from PEM (PKCS#8 `PRIVATE KEY` or SEC1 `EC PRIVATE KEY`) as an ES256
/// jose key with `kid` (its RFC 7638 thumbprint when `None`).
pub(crate) fn p256_signing_key(pem: &str, kid: Option<&str>) -> Result<SigningKey, KeyFileError> {
    let der = pem_decode(pem, &["PRIVATE KEY", "EC PRIVATE KEY"])?;
    Ok(SigningKey::from_der(Algorithm::ES256, &der, kid)?)
}

/// An RSA private key from PKCS#8 PEM (`PRIVATE KEY`, as a service-account file holds it) as
/// an RS256 jose key (RFC 7518 §3.3).
pub(crate) fn rs256_signing_key(pem: &str) -> Result<SigningKey, KeyFileError> {
    let der = pem_decode(pem, &["PRIVATE KEY"])?;
    Ok(SigningKey::from_der(Algorithm::RS256, &der, None)?)
}

/// The uncompressed public point of a P-256 jose key, as VAPID's `k` wants it (RFC 8292 §3.2).
pub(crate) fn p256_public_point(key: &SigningKey) -> Result<Vec<u8>, KeyFileError> {
    let jwk = key.public_jwk();
    let coord = |c: &Option<String>| {
        c.as_deref()
            .and_then(|v| b64::decode(v).ok())
            .filter(|v| v.len() == 32)
            .ok_or(KeyFileError::NotP256)
    };
    let mut point = Vec::with_capacity(P256_POINT_LEN);
    point.push(0x04);
    point.extend(coord(&jwk.x)?);
    point.extend(coord(&jwk.y)?);
    Ok(point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RsaKeyPair,
    };
    use backchannel_protocol::jose::{self, Kid, decode_jws};

    fn pem(label: &str, der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let body: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            body.join("\n")
        )
    }

    #[test]
    fn p256_keys_load_from_pkcs8_and_sec1_and_sign_es256() {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let pkcs8 = pair.to_pkcs8v1().unwrap();
        let sec1 = pair.private_key().as_der().unwrap();
        for text in [
            pem("PRIVATE KEY", pkcs8.as_ref()),
            pem("EC PRIVATE KEY", sec1.as_ref()),
        ] {
            let key = p256_signing_key(&text, Some("KEY123")).unwrap();
            assert_eq!(key.alg(), Algorithm::ES256);
            assert_eq!(key.kid(), "KEY123");
            assert_eq!(p256_public_point(&key).unwrap(), pair.public_key().as_ref());
            let jwt = jose::sign_jwt(&key, None, &serde_json::json!({})).unwrap();
            decode_jws(&jwt)
                .unwrap()
                .verify(&key.verifying_key())
                .unwrap();
        }
    }

    #[test]
    fn pem_errors_are_reported() {
        assert!(pem_decode("nothing here", &["PRIVATE KEY"]).is_err());
        assert!(pem_decode("-----BEGIN PRIVATE KEY-----\nAAAA\n", &["PRIVATE KEY"]).is_err());
        assert!(
            pem_decode(
                "-----BEGIN PRIVATE KEY-----\n!!!\n-----END PRIVATE KEY-----",
                &["PRIVATE KEY"]
            )
            .is_err()
        );
        let rsa_pem = "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----";
        assert!(p256_signing_key(rsa_pem, None).is_err());
        assert!(p256_signing_key(&pem("PRIVATE KEY", b"junk"), None).is_err());
        assert!(rs256_signing_key(&pem("PRIVATE KEY", b"junk")).is_err());
        // An EC key is not a service account's RSA key.
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        let ec_pem = pem("PRIVATE KEY", ec.to_pkcs8v1().unwrap().as_ref());
        assert!(rs256_signing_key(&ec_pem).is_err());
    }

    #[test]
    fn rs256_jwts_verify_with_the_public_key() {
        let pair = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let pkcs8 = pair.as_der().unwrap();
        let key = rs256_signing_key(&pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
        assert_eq!(key.alg(), Algorithm::RS256);
        let claims = serde_json::json!({"iss": "sa"});
        let jwt = jose::sign_jwt_with(&key, Some("JWT"), Kid::Named("k1"), &claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&b64::decode(parts[0]).unwrap()).unwrap();
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "k1"})
        );
        // Checked by aws-lc-rs directly against the key file's public key, not by our verifier.
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            pair.public_key().as_ref(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(signed.as_bytes(), &b64::decode(parts[2]).unwrap())
            .unwrap();
    }
}
