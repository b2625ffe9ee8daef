//! JWE key management (RFC 7518 §4): ECDH-ES with the Concat KDF (§4.6, on P-256, P-384,
//! P-521 and, per RFC 8037 §3.2, X25519), directly or wrapping the CEK with AES Key Wrap
//! (§4.4), and RSAES-OAEP with SHA-256 (§4.3). The recipient's public key and our private
//! [`DecryptingKey`] are read from JWKs here; agreement, key wrap and RSA come from aws-lc-rs.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsBigEndian, AsDer, Curve25519SeedBin, EcPrivateKeyBin, Pkcs8V1Der};
use aws_lc_rs::key_wrap::{AES_128, AES_256, KeyEncryptionKey, KeyWrap as _};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey, PublicKeyComponents,
};
use aws_lc_rs::signature::RsaKeyPair;

use super::{ContentEncryptionAlg, KeyManagementAlg};
use crate::jose::jwk::{
    check_rsa_bits, fixed_member, invalid, rsa_key_pair, sec1_point, thumbprint, uint_member,
};
use crate::jose::keys::rsa_private_jwk;
use crate::jose::{JoseError, Jwk, Jwks, b64, random_bytes};

/// The curves ECDH-ES runs on, as JWKs name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
    P521,
    X25519,
}

impl Curve {
    fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        match (jwk.kty.as_str(), jwk.crv.as_deref()) {
            ("EC", Some("P-256")) => Ok(Curve::P256),
            ("EC", Some("P-384")) => Ok(Curve::P384),
            ("EC", Some("P-521")) => Ok(Curve::P521),
            ("OKP", Some("X25519")) => Ok(Curve::X25519),
            ("EC", _) => Err(invalid("unsupported EC curve")),
            ("OKP", _) => Err(invalid("unsupported OKP curve")),
            _ => Err(invalid("unsupported key type")),
        }
    }

    fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Curve::P256 => &agreement::ECDH_P256,
            Curve::P384 => &agreement::ECDH_P384,
            Curve::P521 => &agreement::ECDH_P521,
            Curve::X25519 => &agreement::X25519,
        }
    }

    fn crv(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::X25519 => "X25519",
        }
    }

    /// Bytes of a coordinate (and of the private scalar).
    fn len(self) -> usize {
        match self {
            Curve::P256 | Curve::X25519 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The public key bytes aws-lc-rs takes: `04 || x || y` for NIST curves, raw for X25519.
    fn public_bytes(self, jwk: &Jwk) -> Result<Vec<u8>, JoseError> {
        let x = fixed_member(&jwk.x, "x", self.len())?;
        if self == Curve::X25519 {
            return Ok(x);
        }
        let y = fixed_member(&jwk.y, "y", self.len())?;
        Ok(sec1_point(&x, &y))
    }

    /// The public JWK (`kty`, `crv`, `x`, `y`) of aws-lc-rs's public key bytes.
    fn public_jwk(self, bytes: &[u8]) -> Result<Jwk, JoseError> {
        if self == Curve::X25519 {
            if bytes.len() != self.len() {
                return Err(JoseError::Crypto);
            }
            return Ok(Jwk {
                kty: "OKP".into(),
                crv: Some(self.crv().into()),
                x: Some(b64::encode(bytes)),
                ..Jwk::default()
            });
        }
        let n = self.len();
        if bytes.len() != 1 + 2 * n || bytes[0] != 0x04 {
            return Err(JoseError::Crypto);
        }
        Ok(Jwk {
            kty: "EC".into(),
            crv: Some(self.crv().into()),
            x: Some(b64::encode(&bytes[1..=n])),
            y: Some(b64::encode(&bytes[1 + n..])),
            ..Jwk::default()
        })
    }
}

/// The key types a [`DecryptingKey`] can be generated as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncryptionKeyType {
    P256,
    P384,
    P521,
    X25519,
    /// RSA with a 2048-bit modulus.
    Rsa2048,
}

/// A recipient's public key, ready to encrypt to.
pub(super) enum RecipientKey {
    Ecdh(Curve, Vec<u8>),
    Rsa(OaepPublicEncryptingKey),
}

impl RecipientKey {
    /// Reads the public members of `jwk` for `alg`: `use` must be `enc` when present, the
    /// JWK's own `alg`, when present, must be `alg` (RFC 7517 §4.4), and the key type must fit.
    pub(super) fn from_jwk(jwk: &Jwk, alg: KeyManagementAlg) -> Result<Self, JoseError> {
        check_use_and_alg(jwk, alg)?;
        if alg.is_ecdh() {
            if jwk.kty == "RSA" {
                return Err(JoseError::KeyMismatch);
            }
            let curve = Curve::from_jwk(jwk)?;
            return Ok(RecipientKey::Ecdh(curve, curve.public_bytes(jwk)?));
        }
        if jwk.kty != "RSA" {
            return Err(if matches!(jwk.kty.as_str(), "EC" | "OKP") {
                JoseError::KeyMismatch
            } else {
                invalid("unsupported key type")
            });
        }
        Ok(RecipientKey::Rsa(rsa_public(jwk)?))
    }
}

fn check_use_and_alg(jwk: &Jwk, alg: KeyManagementAlg) -> Result<(), JoseError> {
    if jwk.use_.as_deref().is_some_and(|u| u != "enc") {
        return Err(invalid("key is not for encryption"));
    }
    if jwk.alg.as_deref().is_some_and(|a| a != alg.as_str()) {
        return Err(JoseError::KeyMismatch);
    }
    Ok(())
}

fn rsa_public(jwk: &Jwk) -> Result<OaepPublicEncryptingKey, JoseError> {
    let components = PublicKeyComponents {
        n: uint_member(&jwk.n, "n")?,
        e: uint_member(&jwk.e, "e")?,
    };
    check_rsa_bits(&components.n)?;
    let public: PublicEncryptingKey = components
        .try_into()
        .map_err(|_| invalid("invalid RSA public key"))?;
    OaepPublicEncryptingKey::new(public).map_err(|_| invalid("invalid RSA public key"))
}

enum PrivateKey {
    Ecdh(Curve, agreement::PrivateKey),
    Rsa(OaepPrivateDecryptingKey),
}

struct DecryptingInner {
    key: PrivateKey,
    kid: Option<String>,
    jwk_alg: Option<String>,
    private_jwk: Jwk,
    public_jwk: Jwk,
}

/// A private key that decrypts JWEs: EC (P-256/384/521) or X25519 for ECDH-ES, RSA for
/// RSA-OAEP-256. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct DecryptingKey {
    inner: Arc<DecryptingInner>,
}

impl fmt::Debug for DecryptingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the private members.
        f.debug_struct("DecryptingKey")
            .field("kty", &self.inner.public_jwk.kty)
            .field("crv", &self.inner.public_jwk.crv)
            .field("kid", &self.inner.kid)
            .finish_non_exhaustive()
    }
}

impl DecryptingKey {
    /// Generates a fresh key; its `kid` is the RFC 7638 thumbprint and its `use` is `enc`.
    pub fn generate(kind: EncryptionKeyType) -> Result<Self, JoseError> {
        let (key, mut jwk) = match kind {
            EncryptionKeyType::Rsa2048 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| JoseError::Crypto)?;
                (rsa_private(&pair)?, rsa_private_jwk(&pair)?)
            }
            _ => {
                let curve = match kind {
                    EncryptionKeyType::P256 => Curve::P256,
                    EncryptionKeyType::P384 => Curve::P384,
                    EncryptionKeyType::P521 => Curve::P521,
                    _ => Curve::X25519,
                };
                let private = agreement::PrivateKey::generate(curve.agreement())
                    .map_err(|_| JoseError::Crypto)?;
                let jwk = ecdh_private_jwk(curve, &private)?;
                (PrivateKey::Ecdh(curve, private), jwk)
            }
        };
        jwk.use_ = Some("enc".into());
        jwk.kid = Some(thumbprint(&jwk)?);
        Self::assemble(key, jwk)
    }

    /// Loads a private JWK: EC with `d`, OKP X25519 with `d`, or RSA with every CRT member.
    /// A key whose `use` is other than `enc` is refused; `kid` and `alg` are kept (a key with
    /// an `alg` decrypts only that algorithm).
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, JoseError> {
        if jwk.use_.as_deref().is_some_and(|u| u != "enc") {
            return Err(invalid("key is not for encryption"));
        }
        if let Some(alg) = jwk.alg.as_deref() {
            KeyManagementAlg::parse(alg)
                .ok_or_else(|| JoseError::UnsupportedAlgorithm(crate::jose::echo(alg)))?;
        }
        let key = if jwk.kty == "RSA" {
            let pair = rsa_key_pair(jwk)?;
            rsa_private(&pair)?
        } else {
            let curve = Curve::from_jwk(jwk)?;
            let d = fixed_member(&jwk.d, "d", curve.len())?;
            let private = agreement::PrivateKey::from_private_key(curve.agreement(), &d)
                .map_err(|_| invalid("invalid private key"))?;
            let public = private
                .compute_public_key()
                .map_err(|_| JoseError::Crypto)?;
            if public.as_ref() != curve.public_bytes(jwk)?.as_slice() {
                return Err(invalid("private key does not match its public key"));
            }
            PrivateKey::Ecdh(curve, private)
        };
        Self::assemble(key, jwk.clone())
    }

    fn assemble(key: PrivateKey, private_jwk: Jwk) -> Result<Self, JoseError> {
        let public_jwk = Jwk {
            d: None,
            p: None,
            q: None,
            dp: None,
            dq: None,
            qi: None,
            ..private_jwk.clone()
        };
        Ok(Self {
            inner: Arc::new(DecryptingInner {
                key,
                kid: private_jwk.kid.clone(),
                jwk_alg: private_jwk.alg.clone(),
                private_jwk,
                public_jwk,
            }),
        })
    }

    pub fn kid(&self) -> Option<&str> {
        self.inner.kid.as_deref()
    }

    /// The public JWK to register with a sender (`use: "enc"` for generated keys).
    pub fn public_jwk(&self) -> Jwk {
        self.inner.public_jwk.clone()
    }

    /// The private JWK, which [`DecryptingKey::from_jwk`] reads back. Handle as a secret.
    pub fn to_private_jwk(&self) -> Jwk {
        self.inner.private_jwk.clone()
    }

    /// Whether this key can decrypt `alg`: by key type, and only the JWK's `alg` if it has one.
    pub fn supports(&self, alg: KeyManagementAlg) -> bool {
        let by_type = match &self.inner.key {
            PrivateKey::Ecdh(..) => alg.is_ecdh(),
            PrivateKey::Rsa(_) => alg == KeyManagementAlg::RsaOaep256,
        };
        by_type
            && self
                .inner
                .jwk_alg
                .as_deref()
                .is_none_or(|a| a == alg.as_str())
    }
}

fn rsa_private(pair: &RsaKeyPair) -> Result<PrivateKey, JoseError> {
    let pkcs8: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| JoseError::Crypto)?;
    let private =
        PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref()).map_err(|_| JoseError::Crypto)?;
    let oaep = OaepPrivateDecryptingKey::new(private).map_err(|_| JoseError::Crypto)?;
    Ok(PrivateKey::Rsa(oaep))
}

fn ecdh_private_jwk(curve: Curve, private: &agreement::PrivateKey) -> Result<Jwk, JoseError> {
    let public = private
        .compute_public_key()
        .map_err(|_| JoseError::Crypto)?;
    let mut jwk = curve.public_jwk(public.as_ref())?;
    let d = if curve == Curve::X25519 {
        let seed: Curve25519SeedBin<'static> =
            private.as_be_bytes().map_err(|_| JoseError::Crypto)?;
        b64::encode(seed.as_ref())
    } else {
        let scalar: EcPrivateKeyBin<'static> =
            private.as_be_bytes().map_err(|_| JoseError::Crypto)?;
        b64::encode(scalar.as_ref())
    };
    jwk.d = Some(d);
    Ok(jwk)
}

/// What the sender's side of key management produced: the CEK, the JWE Encrypted Key, and
/// the `epk` header for ECDH-ES.
pub(super) struct Wrapped {
    pub(super) cek: Vec<u8>,
    pub(super) encrypted_key: Vec<u8>,
    pub(super) epk: Option<Jwk>,
}

/// The sender's side (RFC 7516 §5.1 steps 1–4).
pub(super) fn wrap(
    recipient: &RecipientKey,
    alg: KeyManagementAlg,
    enc: ContentEncryptionAlg,
    apu: &[u8],
    apv: &[u8],
) -> Result<Wrapped, JoseError> {
    match recipient {
        RecipientKey::Ecdh(curve, public) => {
            let ephemeral = agreement::PrivateKey::generate(curve.agreement())
                .map_err(|_| JoseError::Crypto)?;
            let epk_bytes = ephemeral
                .compute_public_key()
                .map_err(|_| JoseError::Crypto)?;
            let epk = curve.public_jwk(epk_bytes.as_ref())?;
            let peer = UnparsedPublicKey::new(curve.agreement(), public.as_slice());
            let z = agreement::agree(&ephemeral, peer, invalid("invalid EC public key"), |z| {
                Ok(z.to_vec())
            })?;
            let (cek, encrypted_key) = match kw_len(alg) {
                None => (
                    concat_kdf(&z, enc.as_str(), apu, apv, enc.key_len())?,
                    vec![],
                ),
                Some(kek_len) => {
                    let kek = concat_kdf(&z, alg.as_str(), apu, apv, kek_len)?;
                    let cek = random_bytes(enc.key_len())?;
                    let wrapped = aes_kw_wrap(&kek, &cek)?;
                    (cek, wrapped)
                }
            };
            Ok(Wrapped {
                cek,
                encrypted_key,
                epk: Some(epk),
            })
        }
        RecipientKey::Rsa(public) => {
            let cek = random_bytes(enc.key_len())?;
            let mut out = vec![0u8; public.ciphertext_size()];
            let encrypted = public
                .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut out, None)
                .map_err(|_| JoseError::Crypto)?;
            let encrypted_key = encrypted.to_vec();
            Ok(Wrapped {
                cek,
                encrypted_key,
                epk: None,
            })
        }
    }
}

/// The recipient's side: the CEK from the Encrypted Key (and `epk`, `apu`, `apv`). A malformed
/// `epk` or Encrypted Key of the wrong size is `Malformed`; a key that fails to unwrap (AES-KW
/// integrity, OAEP padding) yields a random CEK instead, so that the failure surfaces only at
/// the authentication tag, like every other (RFC 7516 §11.5).
pub(super) fn unwrap(
    key: &DecryptingKey,
    alg: KeyManagementAlg,
    enc: ContentEncryptionAlg,
    epk: Option<&Jwk>,
    apu: &[u8],
    apv: &[u8],
    encrypted_key: &[u8],
) -> Result<Vec<u8>, JoseError> {
    if !key.supports(alg) {
        return Err(JoseError::KeyMismatch);
    }
    match &key.inner.key {
        PrivateKey::Ecdh(curve, private) => {
            let epk = epk.ok_or_else(|| malformed("ECDH-ES needs an epk header"))?;
            let epk_curve = Curve::from_jwk(epk).map_err(|_| malformed("unsupported epk"))?;
            if epk_curve != *curve {
                return Err(malformed("epk is not on the key's curve"));
            }
            let epk_bytes = curve
                .public_bytes(epk)
                .map_err(|_| malformed("invalid epk"))?;
            let peer = UnparsedPublicKey::new(curve.agreement(), epk_bytes.as_slice());
            // aws-lc-rs checks that the point is on the curve (no invalid-curve attack).
            let z = agreement::agree(private, peer, malformed("invalid epk"), |z| Ok(z.to_vec()))?;
            match kw_len(alg) {
                None => {
                    if !encrypted_key.is_empty() {
                        return Err(malformed("ECDH-ES has an empty encrypted key"));
                    }
                    concat_kdf(&z, enc.as_str(), apu, apv, enc.key_len())
                }
                Some(kek_len) => {
                    if encrypted_key.len() != enc.key_len() + 8 {
                        return Err(malformed("encrypted key has the wrong size"));
                    }
                    let kek = concat_kdf(&z, alg.as_str(), apu, apv, kek_len)?;
                    match aes_kw_unwrap(&kek, encrypted_key) {
                        Ok(cek) => Ok(cek),
                        Err(_) => random_bytes(enc.key_len()),
                    }
                }
            }
        }
        PrivateKey::Rsa(private) => {
            if encrypted_key.len() != private.key_size_bytes() {
                return Err(malformed("encrypted key has the wrong size"));
            }
            let mut out = vec![0u8; private.min_output_size()];
            let decrypted = private
                .decrypt(&OAEP_SHA256_MGF1SHA256, encrypted_key, &mut out, None)
                .ok()
                .map(|cek| cek.to_vec())
                .filter(|cek| cek.len() == enc.key_len());
            match decrypted {
                Some(cek) => Ok(cek),
                None => random_bytes(enc.key_len()),
            }
        }
    }
}

fn malformed(msg: &str) -> JoseError {
    JoseError::Malformed(msg.to_owned())
}

/// The key-encryption-key size of the `+A*KW` variants; `None` for direct ECDH-ES.
fn kw_len(alg: KeyManagementAlg) -> Option<usize> {
    match alg {
        KeyManagementAlg::EcdhEsA128Kw => Some(16),
        KeyManagementAlg::EcdhEsA256Kw => Some(32),
        KeyManagementAlg::EcdhEs | KeyManagementAlg::RsaOaep256 => None,
    }
}

fn be32(n: usize) -> Result<[u8; 4], JoseError> {
    u32::try_from(n)
        .map(u32::to_be_bytes)
        .map_err(|_| JoseError::Crypto)
}

/// The Concat KDF of NIST SP 800-56A §5.8.1 as RFC 7518 §4.6.2 instantiates it: SHA-256 over
/// `counter || Z || OtherInfo`, OtherInfo being the length-prefixed AlgorithmID (the `enc`
/// for direct agreement, else the `alg`), PartyUInfo (`apu`), PartyVInfo (`apv`), then
/// SuppPubInfo (the key length in bits).
pub(super) fn concat_kdf(
    z: &[u8],
    algorithm_id: &str,
    apu: &[u8],
    apv: &[u8],
    key_len: usize,
) -> Result<Vec<u8>, JoseError> {
    let key_bits = be32(key_len.checked_mul(8).ok_or(JoseError::Crypto)?)?;
    let mut out = Vec::with_capacity(key_len + 32);
    let mut counter: u32 = 1;
    while out.len() < key_len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(&be32(algorithm_id.len())?);
        ctx.update(algorithm_id.as_bytes());
        ctx.update(&be32(apu.len())?);
        ctx.update(apu);
        ctx.update(&be32(apv.len())?);
        ctx.update(apv);
        ctx.update(&key_bits);
        out.extend_from_slice(ctx.finish().as_ref());
        counter = counter.checked_add(1).ok_or(JoseError::Crypto)?;
    }
    out.truncate(key_len);
    Ok(out)
}

/// AES Key Wrap (RFC 3394) with a 128- or 256-bit KEK.
pub(super) fn aes_kw_wrap(kek: &[u8], cek: &[u8]) -> Result<Vec<u8>, JoseError> {
    let mut out = vec![0u8; cek.len() + 8];
    let n = kek_of(kek)?
        .wrap(cek, &mut out)
        .map_err(|_| JoseError::Crypto)?
        .len();
    out.truncate(n);
    Ok(out)
}

/// AES Key Unwrap (RFC 3394 §2.2.2), integrity check included.
pub(super) fn aes_kw_unwrap(kek: &[u8], wrapped: &[u8]) -> Result<Vec<u8>, JoseError> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(JoseError::DecryptionFailed);
    }
    let mut out = vec![0u8; wrapped.len() - 8];
    let n = kek_of(kek)?
        .unwrap(wrapped, &mut out)
        .map_err(|_| JoseError::DecryptionFailed)?
        .len();
    out.truncate(n);
    Ok(out)
}

fn kek_of(kek: &[u8]) -> Result<KeyEncryptionKey<aws_lc_rs::key_wrap::AesBlockCipher>, JoseError> {
    let cipher = match kek.len() {
        16 => &AES_128,
        32 => &AES_256,
        _ => return Err(JoseError::Crypto),
    };
    KeyEncryptionKey::new(cipher, kek).map_err(|_| JoseError::Crypto)
}

/// The recipient key in `jwks` to encrypt to with `alg` (OIDC Core §10.2): a key marked
/// `use: "enc"` is preferred to one without `use`; keys of another `use`, another `alg`, a
/// type that does not fit `alg`, or that do not parse are skipped.
pub(super) fn select_recipient(jwks: &Jwks, alg: KeyManagementAlg) -> Option<&Jwk> {
    let fits = |jwk: &&Jwk| RecipientKey::from_jwk(jwk, alg).is_ok();
    jwks.keys
        .iter()
        .filter(|jwk| jwk.use_.as_deref() == Some("enc"))
        .find(fits)
        .or_else(|| jwks.keys.iter().filter(|jwk| jwk.use_.is_none()).find(fits))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn jwk(v: serde_json::Value) -> Jwk {
        serde_json::from_value(v).unwrap()
    }

    /// RFC 7518 Appendix C: Alice's ephemeral key, Bob's static key, apu "Alice", apv "Bob",
    /// direct ECDH-ES for A128GCM.
    #[test]
    fn rfc7518_appendix_c_ecdh_es_computation() {
        let bob = DecryptingKey::from_jwk(&jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "weNJy2HscCSM6AEDTDg04biOvhFhyyWvOHQfeF_PxMQ",
            "y": "e8lnCO-AlStT-NJVX-crhB7QRYhiix03illJOVAOyck",
            "d": "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw"
        })))
        .unwrap();
        let alice_epk = jwk(serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0",
            "y": "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps"
        }));
        let cek = unwrap(
            &bob,
            KeyManagementAlg::EcdhEs,
            ContentEncryptionAlg::A128Gcm,
            Some(&alice_epk),
            b"Alice",
            b"Bob",
            &[],
        )
        .unwrap();
        assert_eq!(b64::encode(&cek), "VqqN6vgjbSBcIijNcacQGg");
        // The KDF alone, from the appendix's Z.
        let z = [
            158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49,
            110, 163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
        ];
        let derived = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 16).unwrap();
        assert_eq!(b64::encode(&derived), "VqqN6vgjbSBcIijNcacQGg");
        // Longer outputs take more rounds; the key length is part of OtherInfo, so a longer
        // key does not start with the shorter one.
        let long = concat_kdf(&z, "A128GCM", b"Alice", b"Bob", 64).unwrap();
        assert_eq!(long.len(), 64);
        assert_ne!(&long[..16], derived.as_slice());
    }

    /// RFC 8037 Appendix A.6: X25519 agreement with Bob's key (RFC 7748 §6.1 values).
    #[test]
    fn rfc8037_x25519_agreement() {
        let bob = DecryptingKey::from_jwk(&jwk(serde_json::json!({
            "kty": "OKP", "crv": "X25519", "kid": "Bob",
            "x": "3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08",
            "d": b64::encode(&[
                0x5d, 0xab, 0x08, 0x7e, 0x62, 0x4a, 0x8a, 0x4b, 0x79, 0xe1, 0x7f, 0x8b, 0x83, 0x80,
                0x0e, 0xe6, 0x6f, 0x3b, 0xb1, 0x29, 0x26, 0x18, 0xb6, 0xfd, 0x1c, 0x2f, 0x8b, 0x27,
                0xff, 0x88, 0xe0, 0xeb,
            ]),
        })))
        .unwrap();
        let PrivateKey::Ecdh(curve, private) = &bob.inner.key else {
            panic!("not ECDH")
        };
        let epk = jwk(serde_json::json!({
            "kty": "OKP", "crv": "X25519",
            "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"
        }));
        let bytes = curve.public_bytes(&epk).unwrap();
        let z = agreement::agree(
            private,
            UnparsedPublicKey::new(curve.agreement(), bytes.as_slice()),
            (),
            |z| Ok(z.to_vec()),
        )
        .unwrap();
        assert_eq!(
            z,
            [
                0x4a, 0x5d, 0x9d, 0x5b, 0xa4, 0xce, 0x2d, 0xe1, 0x72, 0x8e, 0x3b, 0xf4, 0x80, 0x35,
                0x0f, 0x25, 0xe0, 0x7e, 0x21, 0xc9, 0x47, 0xd1, 0x9e, 0x33, 0x76, 0xf0, 0x9b, 0x3c,
                0x1e, 0x16, 0x17, 0x42
            ]
        );
    }

    /// RFC 3394 §4.1 (128-bit KEK) and §4.6 (256-bit KEK, 256-bit data).
    #[test]
    fn rfc3394_key_wrap() {
        let kek: Vec<u8> = (0..16).collect();
        let data: Vec<u8> = (0..16).map(|i| i * 0x11).collect();
        let wrapped = aes_kw_wrap(&kek, &data).unwrap();
        assert_eq!(
            wrapped,
            [
                0x1f, 0xa6, 0x8b, 0x0a, 0x81, 0x12, 0xb4, 0x47, 0xae, 0xf3, 0x4b, 0xd8, 0xfb, 0x5a,
                0x7b, 0x82, 0x9d, 0x3e, 0x86, 0x23, 0x71, 0xd2, 0xcf, 0xe5
            ]
        );
        assert_eq!(aes_kw_unwrap(&kek, &wrapped).unwrap(), data);
        let mut bad = wrapped.clone();
        bad[3] ^= 1;
        assert_eq!(aes_kw_unwrap(&kek, &bad), Err(JoseError::DecryptionFailed));
        assert_eq!(
            aes_kw_unwrap(&kek, &wrapped[..16]),
            Err(JoseError::DecryptionFailed)
        );
    }

    #[test]
    fn generated_keys_round_trip_through_jwk() {
        for kind in [
            EncryptionKeyType::P256,
            EncryptionKeyType::P384,
            EncryptionKeyType::P521,
            EncryptionKeyType::X25519,
            EncryptionKeyType::Rsa2048,
        ] {
            let key = DecryptingKey::generate(kind).unwrap();
            let public = key.public_jwk();
            assert!(!public.has_private_members(), "{kind:?}");
            assert_eq!(public.use_.as_deref(), Some("enc"));
            assert_eq!(key.kid(), Some(thumbprint(&public).unwrap().as_str()));
            let again = DecryptingKey::from_jwk(&key.to_private_jwk()).unwrap();
            assert_eq!(again.public_jwk(), public);
            let debug = format!("{key:?}");
            assert!(!debug.contains(key.to_private_jwk().d.as_deref().unwrap()));
        }
    }

    #[test]
    fn mismatched_private_keys_are_refused() {
        let a = DecryptingKey::generate(EncryptionKeyType::P256)
            .unwrap()
            .to_private_jwk();
        let b = DecryptingKey::generate(EncryptionKeyType::P256)
            .unwrap()
            .to_private_jwk();
        let mixed = Jwk {
            d: b.d.clone(),
            ..a.clone()
        };
        assert!(matches!(
            DecryptingKey::from_jwk(&mixed),
            Err(JoseError::InvalidKey(_))
        ));
        let sig = Jwk {
            use_: Some("sig".into()),
            ..a.clone()
        };
        assert!(matches!(
            DecryptingKey::from_jwk(&sig),
            Err(JoseError::InvalidKey(_))
        ));
        let hs = Jwk {
            alg: Some("HS256".into()),
            ..a
        };
        assert!(matches!(
            DecryptingKey::from_jwk(&hs),
            Err(JoseError::UnsupportedAlgorithm(_))
        ));
    }

    #[test]
    fn recipient_selection_prefers_enc_keys_that_fit() {
        let ec = DecryptingKey::generate(EncryptionKeyType::P256).unwrap();
        let rsa = DecryptingKey::generate(EncryptionKeyType::Rsa2048).unwrap();
        let sig = Jwk {
            use_: Some("sig".into()),
            kid: Some("sig".into()),
            ..ec.public_jwk()
        };
        let no_use = Jwk {
            use_: None,
            kid: Some("no-use".into()),
            ..ec.public_jwk()
        };
        let jwks = Jwks {
            keys: vec![sig, no_use.clone(), rsa.public_jwk(), ec.public_jwk()],
        };
        let pick = |alg| select_recipient(&jwks, alg).and_then(|k| k.kid.clone());
        assert_eq!(
            pick(KeyManagementAlg::EcdhEsA256Kw),
            ec.kid().map(String::from)
        );
        assert_eq!(
            pick(KeyManagementAlg::RsaOaep256),
            rsa.kid().map(String::from)
        );
        let only_no_use = Jwks { keys: vec![no_use] };
        assert_eq!(
            select_recipient(&only_no_use, KeyManagementAlg::EcdhEsA128Kw)
                .and_then(|k| k.kid.clone())
                .as_deref(),
            Some("no-use")
        );
        assert!(select_recipient(&only_no_use, KeyManagementAlg::RsaOaep256).is_none());
        let pinned = Jwks {
            keys: vec![Jwk {
                alg: Some("ECDH-ES+A128KW".into()),
                ..ec.public_jwk()
            }],
        };
        assert!(select_recipient(&pinned, KeyManagementAlg::EcdhEsA256Kw).is_none());
        assert!(select_recipient(&pinned, KeyManagementAlg::EcdhEsA128Kw).is_some());
    }
}
