//! Randomness and digests, all from aws-lc-rs: the system CSPRNG, SHA-256 and the OIDC
//! left-half hash (`at_hash`, `c_hash`, OIDC Core §3.1.3.6 and §3.3.2.11).

use aws_lc_rs::digest;

use super::{Algorithm, JoseError, b64};

/// `n` bytes from the system CSPRNG.
pub fn random_bytes(n: usize) -> Result<Vec<u8>, JoseError> {
    let mut buf = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut buf).map_err(|_| JoseError::Crypto)?;
    Ok(buf)
}

/// A base64url string of `n_bytes` random bytes: for handles, nonces and `jti`s.
pub fn random_token(n_bytes: usize) -> Result<String, JoseError> {
    random_bytes(n_bytes).map(|bytes| b64::encode(&bytes))
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// OIDC `at_hash`/`c_hash`: base64url of the left half of the hash that `alg` uses. EdDSA
/// (Ed25519) uses SHA-512, as Ed25519 hashes with SHA-512 internally (OpenID Connect practice).
pub fn hash_half(alg: Algorithm, data: &[u8]) -> String {
    let algorithm = match alg {
        Algorithm::ES256 | Algorithm::PS256 | Algorithm::RS256 => &digest::SHA256,
        Algorithm::ES384 => &digest::SHA384,
        Algorithm::ES512 | Algorithm::EdDSA => &digest::SHA512,
    };
    let d = digest::digest(algorithm, data);
    let bytes = d.as_ref();
    b64::encode(&bytes[..bytes.len() / 2])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn random_is_random_and_sized() {
        let a = random_bytes(32).unwrap();
        let b = random_bytes(32).unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(random_bytes(0).unwrap().is_empty());
        let t = random_token(32).unwrap();
        assert_eq!(t.len(), 43);
        assert_eq!(b64::decode(&t).unwrap().len(), 32);
    }

    #[test]
    fn sha256_known_answer() {
        // FIPS 180-2 appendix B.1
        assert_eq!(
            b64::encode(&sha256(b"abc")),
            "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
        );
    }

    #[test]
    fn hash_half_known_answers() {
        // OIDC Core §A.3: id_token with at_hash for access token "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
        assert_eq!(
            hash_half(
                Algorithm::RS256,
                b"jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(hash_half(Algorithm::ES256, b"x").len(), 22);
        assert_eq!(hash_half(Algorithm::ES384, b"x").len(), 32);
        assert_eq!(hash_half(Algorithm::ES512, b"x").len(), 43);
        assert_eq!(
            hash_half(Algorithm::EdDSA, b"x"),
            hash_half(Algorithm::ES512, b"x")
        );
    }
}
