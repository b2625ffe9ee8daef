//! A small JOSE implementation over aws-lc-rs: JWK/JWKS, compact JWS sign and verify for
//! ES256/384/512, PS256, RS256 and EdDSA (Ed25519), key generation and RFC 7638 thumbprints,
//! the one set of JWT claim rules (`aud`, time claims, `jti`) every verifier applies, and
//! compact JWE (`jwe`: ECDH-ES, RSA-OAEP-256, AES-GCM, AES-CBC-HMAC).
//! No primitive is hand-rolled: every signature, cipher and digest comes from aws-lc-rs.

pub mod b64;
mod der;
pub mod jwe;
mod jwk;
mod jws;
mod jwt;
mod keys;
pub mod pem;
mod primitives;

pub use jwk::thumbprint;
pub use jws::{Kid, MAX_JWS_LEN, UnverifiedJws, decode_jws, sign_jws, sign_jwt, sign_jwt_with};
pub use jwt::{
    Audience, Claim, ClaimsError, LifetimeStart, MAX_JTI_LEN, TimeClaims, TimeRules, check_jti,
    check_times,
};
pub use keys::{SigningKey, VerifyingKey};
pub use primitives::{hash_half, random_bytes, random_token, sha256};

use serde::{Deserialize, Serialize};

/// An untrusted value (such as a header's `alg`) made fit to quote in an error message that a
/// client sees: at most 32 characters, each in the `error_description` set of RFC 6749 §5.2
/// (printable ASCII except `"` and `\`); anything else becomes `?`.
pub(crate) fn echo(untrusted: &str) -> String {
    untrusted
        .chars()
        .take(32)
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '?',
        })
        .collect()
}

/// Errors of the JOSE module. Every message is safe to show a client: none carries key
/// material or internal detail.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum JoseError {
    /// The input is not well-formed JOSE (RFC 7515 §5.2 validation failed).
    #[error("malformed JOSE object: {0}")]
    Malformed(String),
    /// The `alg` is not one Backchannel accepts (RFC 7515 §4.1.1).
    #[error("unsupported algorithm: {0}")]
    UnsupportedAlgorithm(String),
    /// The JWK is not a usable key (RFC 7517 §4, RFC 7518 §6).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The algorithm cannot be used with this key.
    #[error("algorithm does not match the key")]
    KeyMismatch,
    /// The signature did not verify.
    #[error("invalid signature")]
    BadSignature,
    /// A cryptographic operation failed.
    #[error("cryptographic operation failed")]
    Crypto,
    /// A JWE did not decrypt: wrong key, or an altered header, key, IV, ciphertext or tag
    /// (RFC 7516 §5.2 step 16; one error for all, RFC 7516 §11.5).
    #[error("decryption failed")]
    DecryptionFailed,
}

/// JWS algorithms Backchannel signs and verifies (RFC 7518 §3.1, RFC 8037 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    ES256,
    ES384,
    ES512,
    PS256,
    RS256,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] = [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::PS256,
        Algorithm::RS256,
        Algorithm::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::PS256 => "PS256",
            Algorithm::RS256 => "RS256",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A JSON Web Key (RFC 7517). Public and private members are both optional fields; a public
/// JWK is one whose private members (`d`, `p`, `q`, `dp`, `dq`, `qi`) are all `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub d: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qi: Option<String>,
}

/// A JWK Set (RFC 7517 §5).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// A JWS protected header (RFC 7515 §4). Unknown members are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Header {
    pub alg: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crit: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn echo_keeps_error_description_charset() {
        assert_eq!(echo("HS256"), "HS256");
        assert_eq!(echo("a\"b\\c\u{e9}\n"), "a?b?c??");
        assert_eq!(echo(&"x".repeat(100)).len(), 32);
    }

    #[test]
    fn error_messages_are_fit_for_error_description() {
        let jwk = Jwk {
            kty: "EC".into(),
            crv: Some("P-256".into()),
            ..Jwk::default()
        };
        let errors = [
            decode_jws("a.b").unwrap_err(),
            decode_jws(&format!("{}.e30.", b64::encode(br#"{"alg":"\"\u00e9"}"#))).unwrap_err(),
            VerifyingKey::from_jwk(&jwk).unwrap_err(),
            JoseError::KeyMismatch,
            JoseError::BadSignature,
            JoseError::Crypto,
            JoseError::DecryptionFailed,
        ];
        for e in errors {
            let text = e.to_string();
            assert!(
                text.chars()
                    .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'),
                "{text:?}"
            );
        }
    }
}
