//! Signing keys sealed at rest (`[keys] encryption_key_file`): each stored private JWK is
//! AES-256-GCM-encrypted under a 32-byte key that lives in a file outside the database, with
//! the key's `kid` and `alg` as additional data, so a sealed row cannot be moved onto another
//! key's row. The sealing is `v1.` followed by base64url of `nonce (12) || ciphertext || tag`.

use std::fmt;
use std::path::Path;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use backchannel_protocol::jose::{Algorithm, b64, random_bytes};

use super::error::{AuthError, AuthResult};

const PREFIX: &str = "v1.";

/// The key that seals stored signing keys. Its `Debug` shows nothing of it.
pub struct KeySealer {
    key: LessSafeKey,
}

impl fmt::Debug for KeySealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySealer").finish_non_exhaustive()
    }
}

impl KeySealer {
    /// Reads the key file: 32 bytes written as 64 hex digits or as 43 base64url characters
    /// (no padding), surrounding whitespace ignored. Generate one with
    /// `openssl rand -hex 32` or `head -c 32 /dev/urandom | basenc --base64url`.
    pub fn from_file(path: &Path) -> Result<KeySealer, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read [keys] encryption_key_file {}: {e}",
                path.display()
            )
        })?;
        KeySealer::parse(&text)
            .map_err(|e| format!("[keys] encryption_key_file {}: {e}", path.display()))
    }

    /// The key from its text form (see [`KeySealer::from_file`]).
    pub fn parse(text: &str) -> Result<KeySealer, String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| "is not hex".to_owned())?
        } else {
            b64::decode(text).map_err(|_| {
                "must hold 32 random bytes as 64 hex digits or 43 base64url characters".to_owned()
            })?
        };
        if bytes.len() != 32 {
            return Err(format!(
                "must hold 32 random bytes (it holds {}) as 64 hex digits or 43 base64url characters",
                bytes.len()
            ));
        }
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| "unusable key".to_owned())?;
        Ok(KeySealer {
            key: LessSafeKey::new(key),
        })
    }

    fn aad(kid: &str, alg: Algorithm) -> Vec<u8> {
        format!("backchannel signing key v1\n{kid}\n{}", alg.as_str()).into_bytes()
    }

    /// Seals the private JWK text of key `kid`.
    pub fn seal(&self, kid: &str, alg: Algorithm, plaintext: &str) -> AuthResult<String> {
        let nonce_bytes = random_bytes(NONCE_LEN).map_err(AuthError::internal)?;
        let nonce = Nonce::try_assume_unique_for_key(&nonce_bytes).map_err(AuthError::internal)?;
        let mut buf = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(nonce, Aad::from(Self::aad(kid, alg)), &mut buf)
            .map_err(|_| AuthError::internal("sealing a signing key failed"))?;
        let mut out = nonce_bytes;
        out.extend_from_slice(&buf);
        Ok(format!("{PREFIX}{}", b64::encode(&out)))
    }

    /// Opens what [`KeySealer::seal`] made for `kid`; an error names the key, never its bytes.
    pub fn open(&self, kid: &str, alg: Algorithm, sealed: &str) -> AuthResult<String> {
        let fail = || {
            AuthError::internal(format!(
                "signing key {kid} does not open with [keys] encryption_key_file \
                 (was it sealed with another key file?)"
            ))
        };
        let bytes = sealed
            .strip_prefix(PREFIX)
            .and_then(|s| b64::decode(s).ok())
            .ok_or_else(fail)?;
        if bytes.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| fail())?;
        let mut buf = ciphertext.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(Self::aad(kid, alg)), &mut buf)
            .map_err(|_| fail())?;
        String::from_utf8(plain.to_vec()).map_err(|_| fail())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    #[test]
    fn key_files_take_hex_or_base64url() {
        let a = KeySealer::parse(&format!("  {HEX}\n")).unwrap();
        let b64_form = b64::encode(&(0u8..32).collect::<Vec<_>>());
        let b = KeySealer::parse(&b64_form).unwrap();
        let sealed = a.seal("k1", Algorithm::ES256, "{\"kty\":\"EC\"}").unwrap();
        assert_eq!(
            b.open("k1", Algorithm::ES256, &sealed).unwrap(),
            "{\"kty\":\"EC\"}"
        );
        for bad in ["", "abc", &HEX[..62], &format!("{HEX}00"), "zz"] {
            assert!(KeySealer::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_sealing_opens_only_for_its_key_kid_and_alg() {
        let sealer = KeySealer::parse(HEX).unwrap();
        let sealed = sealer.seal("k1", Algorithm::ES256, "secret jwk").unwrap();
        assert!(!sealed.contains("secret"));
        assert_ne!(
            sealed,
            sealer.seal("k1", Algorithm::ES256, "secret jwk").unwrap()
        );
        assert!(sealer.open("k2", Algorithm::ES256, &sealed).is_err());
        assert!(sealer.open("k1", Algorithm::EdDSA, &sealed).is_err());
        let other = KeySealer::parse(&HEX.replace("1f", "ff")).unwrap();
        let Err(AuthError::Internal(detail)) = other.open("k1", Algorithm::ES256, &sealed) else {
            panic!("opened with another key")
        };
        assert!(
            detail.contains("k1") && detail.contains("encryption_key_file"),
            "{detail}"
        );
        assert!(sealer.open("k1", Algorithm::ES256, "v1.AAAA").is_err());
        assert!(
            sealer
                .open("k1", Algorithm::ES256, "{\"kty\":\"EC\"}")
                .is_err()
        );
        assert!(format!("{sealer:?}").len() < 40);
    }
}
