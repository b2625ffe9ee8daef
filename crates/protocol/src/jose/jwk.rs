//! JWK member handling (RFC 7517, RFC 7518 §6, RFC 8037 §2): the curves and key types we
//! accept, strict decoding of members, algorithm inference and RFC 7638 thumbprints.

use aws_lc_rs::signature::{self as sig, EcdsaSigningAlgorithm, EcdsaVerificationAlgorithm};

use super::{Algorithm, JoseError, Jwk, b64, echo, sha256};

/// RSA moduli below this are refused (RFC 7518 §3.3: "2048 bits or larger MUST be used").
pub(super) const RSA_MIN_BITS: usize = 2048;
/// aws-lc-rs verifies RSA signatures for moduli up to 8192 bits.
pub(super) const RSA_MAX_BITS: usize = 8192;

/// The parameters of one NIST curve as JOSE names it (RFC 7518 §3.4, §6.2.1.1).
pub(super) struct Curve {
    pub(super) alg: Algorithm,
    pub(super) crv: &'static str,
    /// Length of a coordinate and of the private scalar, in bytes.
    pub(super) len: usize,
    pub(super) signing: &'static EcdsaSigningAlgorithm,
    pub(super) verification: &'static EcdsaVerificationAlgorithm,
}

pub(super) const CURVES: [Curve; 3] = [
    Curve {
        alg: Algorithm::ES256,
        crv: "P-256",
        len: 32,
        signing: &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
        verification: &sig::ECDSA_P256_SHA256_FIXED,
    },
    Curve {
        alg: Algorithm::ES384,
        crv: "P-384",
        len: 48,
        signing: &sig::ECDSA_P384_SHA384_FIXED_SIGNING,
        verification: &sig::ECDSA_P384_SHA384_FIXED,
    },
    Curve {
        alg: Algorithm::ES512,
        crv: "P-521",
        len: 66,
        signing: &sig::ECDSA_P521_SHA512_FIXED_SIGNING,
        verification: &sig::ECDSA_P521_SHA512_FIXED,
    },
];

pub(super) fn curve_by_alg(alg: Algorithm) -> Option<&'static Curve> {
    CURVES.iter().find(|c| c.alg == alg)
}

pub(super) fn curve_by_crv(crv: &str) -> Result<&'static Curve, JoseError> {
    CURVES
        .iter()
        .find(|c| c.crv == crv)
        .ok_or_else(|| invalid("unsupported EC curve"))
}

pub(super) const ED25519: &str = "Ed25519";
pub(super) const ED25519_LEN: usize = 32;

pub(super) fn invalid(msg: &str) -> JoseError {
    JoseError::InvalidKey(msg.to_owned())
}

/// A required JWK member, base64url-decoded.
pub(super) fn member(value: &Option<String>, name: &str) -> Result<Vec<u8>, JoseError> {
    let s = value
        .as_deref()
        .ok_or_else(|| JoseError::InvalidKey(format!("JWK member {name} is missing")))?;
    b64::decode(s).map_err(|_| JoseError::InvalidKey(format!("JWK member {name} is not base64url")))
}

/// A member that RFC 7518 §6.2 requires to have exactly `len` bytes.
pub(super) fn fixed_member(
    value: &Option<String>,
    name: &str,
    len: usize,
) -> Result<Vec<u8>, JoseError> {
    let bytes = member(value, name)?;
    if bytes.len() != len {
        return Err(JoseError::InvalidKey(format!(
            "JWK member {name} has the wrong length"
        )));
    }
    Ok(bytes)
}

/// A Base64urlUInt member (RFC 7518 §2): leading zero octets are tolerated on input, as some
/// producers emit them (RFC 7518 §6.3.1.1), and stripped.
pub(super) fn uint_member(value: &Option<String>, name: &str) -> Result<Vec<u8>, JoseError> {
    let bytes = member(value, name)?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    if start == bytes.len() {
        return Err(JoseError::InvalidKey(format!("JWK member {name} is zero")));
    }
    Ok(bytes[start..].to_vec())
}

/// The RSA modulus `n` (big-endian) is within [`RSA_MIN_BITS`]..=[`RSA_MAX_BITS`].
pub(super) fn check_rsa_bits(n: &[u8]) -> Result<(), JoseError> {
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bit_len(n)) {
        return Err(invalid("RSA modulus must be 2048 to 8192 bits"));
    }
    Ok(())
}

/// The RSA key pair of a private RSA JWK (every CRT member required), of an accepted size.
pub(super) fn rsa_key_pair(jwk: &Jwk) -> Result<sig::RsaKeyPair, JoseError> {
    use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
    let components = KeyPairComponents {
        public_key: PublicKeyComponents {
            n: uint_member(&jwk.n, "n")?,
            e: uint_member(&jwk.e, "e")?,
        },
        d: member(&jwk.d, "d")?,
        p: member(&jwk.p, "p")?,
        q: member(&jwk.q, "q")?,
        dP: member(&jwk.dp, "dp")?,
        dQ: member(&jwk.dq, "dq")?,
        qInv: member(&jwk.qi, "qi")?,
    };
    check_rsa_bits(&components.public_key.n)?;
    sig::RsaKeyPair::from_components(&components)
        .map_err(|_| invalid("inconsistent RSA private key"))
}

pub(super) fn bit_len(be: &[u8]) -> usize {
    match be.first() {
        Some(&first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

/// The uncompressed SEC1 point `04 || x || y` that aws-lc-rs takes.
pub(super) fn sec1_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(0x04);
    point.extend_from_slice(x);
    point.extend_from_slice(y);
    point
}

/// The key family of a JWK, checked against an algorithm.
fn alg_fits_jwk(alg: Algorithm, jwk: &Jwk) -> bool {
    match jwk.kty.as_str() {
        "EC" => curve_by_alg(alg).is_some_and(|c| jwk.crv.as_deref() == Some(c.crv)),
        "RSA" => matches!(alg, Algorithm::PS256 | Algorithm::RS256),
        "OKP" => alg == Algorithm::EdDSA && jwk.crv.as_deref() == Some(ED25519),
        _ => false,
    }
}

/// The algorithm a private JWK signs with: its `alg` member, else the natural one for its
/// key type (RS256 for RSA, as the most widely accepted).
pub(super) fn signing_alg_for(jwk: &Jwk) -> Result<Algorithm, JoseError> {
    let alg = match jwk.alg.as_deref() {
        Some(name) => {
            Algorithm::parse(name).ok_or_else(|| JoseError::UnsupportedAlgorithm(echo(name)))?
        }
        None => match jwk.kty.as_str() {
            "EC" => curve_by_crv(jwk.crv.as_deref().unwrap_or_default())?.alg,
            "RSA" => Algorithm::RS256,
            "OKP" => Algorithm::EdDSA,
            _ => return Err(invalid("unsupported key type")),
        },
    };
    if !matches!(jwk.kty.as_str(), "EC" | "RSA" | "OKP") {
        return Err(invalid("unsupported key type"));
    }
    if jwk.kty == "OKP" && jwk.crv.as_deref() != Some(ED25519) {
        return Err(invalid("unsupported OKP curve"));
    }
    if jwk.kty == "EC" {
        curve_by_crv(jwk.crv.as_deref().unwrap_or_default())?;
    }
    if !alg_fits_jwk(alg, jwk) {
        return Err(JoseError::KeyMismatch);
    }
    Ok(alg)
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order, with no
/// whitespace, base64url-encoded.
pub fn thumbprint(jwk: &Jwk) -> Result<String, JoseError> {
    fn req<'a>(value: &'a Option<String>, name: &str) -> Result<String, JoseError> {
        let v: &'a str = value
            .as_deref()
            .ok_or_else(|| JoseError::InvalidKey(format!("JWK member {name} is missing")))?;
        serde_json::to_string(v).map_err(|_| JoseError::Crypto)
    }
    let canonical = match jwk.kty.as_str() {
        "EC" => format!(
            r#"{{"crv":{},"kty":"EC","x":{},"y":{}}}"#,
            req(&jwk.crv, "crv")?,
            req(&jwk.x, "x")?,
            req(&jwk.y, "y")?
        ),
        "RSA" => format!(
            r#"{{"e":{},"kty":"RSA","n":{}}}"#,
            req(&jwk.e, "e")?,
            req(&jwk.n, "n")?
        ),
        "OKP" => format!(
            r#"{{"crv":{},"kty":"OKP","x":{}}}"#,
            req(&jwk.crv, "crv")?,
            req(&jwk.x, "x")?
        ),
        _ => return Err(invalid("unsupported key type")),
    };
    Ok(b64::encode(&sha256(canonical.as_bytes())))
}

impl Jwk {
    /// Whether any private member (`d`, `p`, `q`, `dp`, `dq`, `qi`) is present.
    pub fn has_private_members(&self) -> bool {
        [&self.d, &self.p, &self.q, &self.dp, &self.dq, &self.qi]
            .iter()
            .any(|m| m.is_some())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::jose::SigningKey;

    #[test]
    fn bit_len_counts_from_the_top_bit() {
        assert_eq!(bit_len(&[]), 0);
        assert_eq!(bit_len(&[1]), 1);
        assert_eq!(bit_len(&[0x80, 0]), 16);
        assert_eq!(bit_len(&[0x7f, 0]), 15);
    }

    #[test]
    fn alg_inference_and_mismatch() {
        let ec = SigningKey::generate(Algorithm::ES384).unwrap();
        let mut jwk = ec.to_private_jwk();
        jwk.alg = None;
        assert_eq!(signing_alg_for(&jwk), Ok(Algorithm::ES384));
        jwk.alg = Some("ES256".into());
        assert_eq!(signing_alg_for(&jwk), Err(JoseError::KeyMismatch));
        jwk.alg = Some("HS256".into());
        assert!(matches!(
            signing_alg_for(&jwk),
            Err(JoseError::UnsupportedAlgorithm(_))
        ));
        jwk.alg = None;
        jwk.kty = "oct".into();
        assert!(matches!(
            signing_alg_for(&jwk),
            Err(JoseError::InvalidKey(_))
        ));
    }
}
