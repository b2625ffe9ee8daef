//! Compact JWE (RFC 7516 §7.1): [`encrypt`] to a recipient's public JWK and [`decrypt`] with
//! a [`DecryptingKey`], for the key management algorithms ECDH-ES (direct, `+A128KW`,
//! `+A256KW`) and RSA-OAEP-256 and the content encryptions A128GCM, A256GCM, A128CBC-HS256
//! and A256CBC-HS512 (RFC 7518 §4, §5). Decoding is strict in the manner of our JWS decoder:
//! five strict base64url parts, a bounded size, known `alg` and `enc`, no `crit`, no `zip`, and
//! lengths checked before any key is used. Every cryptographic primitive is aws-lc-rs's.

mod content;
mod key_mgmt;
#[cfg(test)]
mod tests;

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use key_mgmt::{DecryptingKey, EncryptionKeyType};

use super::{JoseError, Jwk, Jwks, b64, echo, random_bytes};
use key_mgmt::RecipientKey;

/// Compact JWEs longer than this are refused before any parsing: a nested ID token is a
/// few kilobytes, and a bound keeps hostile input cheap.
pub const MAX_JWE_LEN: usize = 64 * 1024;

/// JWE key management algorithms (RFC 7518 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyManagementAlg {
    /// ECDH-ES direct key agreement (RFC 7518 §4.6): the Concat KDF output is the CEK.
    EcdhEs,
    /// ECDH-ES, the derived key wrapping the CEK with AES-128 Key Wrap.
    EcdhEsA128Kw,
    /// ECDH-ES, the derived key wrapping the CEK with AES-256 Key Wrap.
    EcdhEsA256Kw,
    /// RSAES-OAEP with SHA-256 and MGF1 with SHA-256 (RFC 7518 §4.3).
    RsaOaep256,
}

impl KeyManagementAlg {
    pub const ALL: [KeyManagementAlg; 4] = [
        KeyManagementAlg::EcdhEs,
        KeyManagementAlg::EcdhEsA128Kw,
        KeyManagementAlg::EcdhEsA256Kw,
        KeyManagementAlg::RsaOaep256,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyManagementAlg::EcdhEs => "ECDH-ES",
            KeyManagementAlg::EcdhEsA128Kw => "ECDH-ES+A128KW",
            KeyManagementAlg::EcdhEsA256Kw => "ECDH-ES+A256KW",
            KeyManagementAlg::RsaOaep256 => "RSA-OAEP-256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the algorithm is one of the ECDH-ES family (EC or X25519 recipient keys).
    pub fn is_ecdh(self) -> bool {
        self != KeyManagementAlg::RsaOaep256
    }
}

/// JWE content encryption algorithms (RFC 7518 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentEncryptionAlg {
    A128Gcm,
    A256Gcm,
    /// AES-128-CBC with HMAC-SHA-256 truncated to 128 bits (RFC 7518 §5.2.3).
    A128CbcHs256,
    /// AES-256-CBC with HMAC-SHA-512 truncated to 256 bits (RFC 7518 §5.2.5).
    A256CbcHs512,
}

impl ContentEncryptionAlg {
    pub const ALL: [ContentEncryptionAlg; 4] = [
        ContentEncryptionAlg::A128Gcm,
        ContentEncryptionAlg::A256Gcm,
        ContentEncryptionAlg::A128CbcHs256,
        ContentEncryptionAlg::A256CbcHs512,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ContentEncryptionAlg::A128Gcm => "A128GCM",
            ContentEncryptionAlg::A256Gcm => "A256GCM",
            ContentEncryptionAlg::A128CbcHs256 => "A128CBC-HS256",
            ContentEncryptionAlg::A256CbcHs512 => "A256CBC-HS512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Length of the content encryption key in bytes (for CBC-HMAC, MAC key and AES key).
    pub fn key_len(self) -> usize {
        match self {
            ContentEncryptionAlg::A128Gcm => 16,
            ContentEncryptionAlg::A256Gcm | ContentEncryptionAlg::A128CbcHs256 => 32,
            ContentEncryptionAlg::A256CbcHs512 => 64,
        }
    }

    /// Length of the initialization vector in bytes.
    pub fn iv_len(self) -> usize {
        match self {
            ContentEncryptionAlg::A128Gcm | ContentEncryptionAlg::A256Gcm => 12,
            ContentEncryptionAlg::A128CbcHs256 | ContentEncryptionAlg::A256CbcHs512 => 16,
        }
    }

    /// Length of the authentication tag in bytes.
    pub fn tag_len(self) -> usize {
        match self {
            ContentEncryptionAlg::A256CbcHs512 => 32,
            _ => 16,
        }
    }
}

macro_rules! string_enum_serde {
    ($ty:ident, $what:literal) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $ty::parse(&s).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        concat!("unsupported ", $what, " {}"),
                        echo(&s)
                    ))
                })
            }
        }
    };
}

string_enum_serde!(KeyManagementAlg, "alg");
string_enum_serde!(ContentEncryptionAlg, "enc");

/// The protected header of a decoded JWE (RFC 7516 §4). Members we do not interpret are kept
/// in `extra`; none of them (`jku`, `jwk`, `x5u`...) is ever used to find a key.
#[derive(Debug, Clone, PartialEq)]
pub struct JweHeader {
    pub alg: KeyManagementAlg,
    pub enc: ContentEncryptionAlg,
    pub kid: Option<String>,
    /// `JWT` for a nested JWT (RFC 7519 §5.2).
    pub cty: Option<String>,
    pub typ: Option<String>,
    /// The sender's ephemeral public key (ECDH-ES, RFC 7518 §4.6.1.1).
    pub epk: Option<Jwk>,
    /// Agreement PartyUInfo / PartyVInfo, base64url as sent (RFC 7518 §4.6.1.2–3).
    pub apu: Option<String>,
    pub apv: Option<String>,
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Optional header members [`encrypt`] writes besides `alg`, `enc` and `epk`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderParams {
    /// The recipient key's `kid`; when `None`, the recipient JWK's own `kid`, if it has one.
    pub kid: Option<String>,
    /// `JWT` for a nested JWT (RFC 7519 §5.2, OIDC Core §10.2).
    pub cty: Option<String>,
    pub typ: Option<String>,
    /// ECDH-ES PartyUInfo and PartyVInfo (raw bytes; written base64url). Not for RSA.
    pub apu: Option<Vec<u8>>,
    pub apv: Option<Vec<u8>>,
}

/// The header as [`encrypt`] writes it, members in a fixed order.
#[derive(Serialize)]
struct ProtectedOut<'a> {
    alg: &'static str,
    enc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cty: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    typ: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epk: Option<&'a Jwk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apv: Option<String>,
}

/// Encrypts `plaintext` to `recipient` (a public JWK; private members are ignored) as a
/// compact JWE with `alg` and `enc`. The recipient must fit `alg` (EC P-256/384/521 or OKP
/// X25519 for ECDH-ES, RSA of 2048 bits or more for RSA-OAEP-256), its `use`, if any, must be
/// `enc`, and its `alg`, if any, must be `alg`. For a nested JWT pass `cty: Some("JWT")`.
pub fn encrypt(
    plaintext: &[u8],
    recipient: &Jwk,
    alg: KeyManagementAlg,
    enc: ContentEncryptionAlg,
    params: &HeaderParams,
) -> Result<String, JoseError> {
    let key = RecipientKey::from_jwk(recipient, alg)?;
    if !alg.is_ecdh() && (params.apu.is_some() || params.apv.is_some()) {
        return Err(malformed("apu and apv belong to ECDH-ES"));
    }
    let apu = params.apu.as_deref().unwrap_or_default();
    let apv = params.apv.as_deref().unwrap_or_default();
    let wrapped = key_mgmt::wrap(&key, alg, enc, apu, apv)?;
    let header = ProtectedOut {
        alg: alg.as_str(),
        enc: enc.as_str(),
        kid: params.kid.as_deref().or(recipient.kid.as_deref()),
        cty: params.cty.as_deref(),
        typ: params.typ.as_deref(),
        epk: wrapped.epk.as_ref(),
        apu: params.apu.as_deref().map(b64::encode),
        apv: params.apv.as_deref().map(b64::encode),
    };
    let header_json =
        serde_json::to_vec(&header).map_err(|_| malformed("header is not serialisable"))?;
    let protected = b64::encode(&header_json);
    let iv = random_bytes(enc.iv_len())?;
    let sealed = content::seal(enc, &wrapped.cek, &iv, protected.as_bytes(), plaintext)?;
    Ok([
        protected,
        b64::encode(&wrapped.encrypted_key),
        b64::encode(&iv),
        b64::encode(&sealed.ciphertext),
        b64::encode(&sealed.tag),
    ]
    .join("."))
}

/// Decrypts a compact JWE with `key`, returning its protected header and the plaintext.
/// `Malformed` for anything that is not a well-formed JWE of ours, `UnsupportedAlgorithm` for
/// an unknown `alg` or `enc`, `KeyMismatch` when `key` cannot decrypt `alg`, and
/// `DecryptionFailed` for every failure of the cryptography itself (wrong key, altered
/// header, encrypted key, IV, ciphertext or tag), so that no failure tells more than another.
pub fn decrypt(compact: &str, key: &DecryptingKey) -> Result<(JweHeader, Vec<u8>), JoseError> {
    let parts = split(compact)?;
    let header = parse_header(parts[0])?;
    if !key.supports(header.alg) {
        return Err(JoseError::KeyMismatch);
    }
    let part = |i: usize, name: &str| {
        b64::decode(parts[i]).map_err(|_| JoseError::Malformed(format!("{name} is not base64url")))
    };
    let encrypted_key = part(1, "encrypted key")?;
    let iv = part(2, "iv")?;
    let ciphertext = part(3, "ciphertext")?;
    let tag = part(4, "tag")?;
    if iv.len() != header.enc.iv_len() {
        return Err(malformed("iv has the wrong size"));
    }
    if tag.len() != header.enc.tag_len() {
        return Err(malformed("tag has the wrong size"));
    }
    let apu = optional_b64(header.apu.as_deref(), "apu")?;
    let apv = optional_b64(header.apv.as_deref(), "apv")?;
    let cek = key_mgmt::unwrap(
        key,
        header.alg,
        header.enc,
        header.epk.as_ref(),
        &apu,
        &apv,
        &encrypted_key,
    )?;
    let plaintext = content::open(
        header.enc,
        &cek,
        &iv,
        parts[0].as_bytes(),
        &ciphertext,
        &tag,
    )?;
    Ok((header, plaintext))
}

/// The protected header of a compact JWE, without decrypting: to choose the key by `kid`.
/// Nothing in it is authenticated until [`decrypt`] succeeds.
pub fn decode_header(compact: &str) -> Result<JweHeader, JoseError> {
    parse_header(split(compact)?[0])
}

/// Whether `token` has the five parts of a compact JWE (a JWS has three): to tell an
/// encrypted ID token from a signed one.
pub fn is_compact_jwe(token: &str) -> bool {
    token.split('.').count() == 5
}

/// The key in `jwks` to encrypt to with `alg` (OIDC Core §10.2, RFC 7517 §4.2): a key with
/// `use: "enc"` that fits `alg` is preferred, else one without `use`; keys for another `use`
/// or `alg` and keys that do not parse are skipped.
pub fn select_recipient(jwks: &Jwks, alg: KeyManagementAlg) -> Option<&Jwk> {
    key_mgmt::select_recipient(jwks, alg)
}

fn malformed(msg: &str) -> JoseError {
    JoseError::Malformed(msg.to_owned())
}

fn split(compact: &str) -> Result<[&str; 5], JoseError> {
    if compact.len() > MAX_JWE_LEN {
        return Err(malformed("token is too large"));
    }
    let mut it = compact.split('.');
    match (
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
        it.next(),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e), None) => Ok([a, b, c, d, e]),
        _ => Err(malformed("a compact JWE has exactly five parts")),
    }
}

fn optional_b64(value: Option<&str>, name: &str) -> Result<Vec<u8>, JoseError> {
    match value {
        None => Ok(Vec::new()),
        Some(s) => {
            b64::decode(s).map_err(|_| JoseError::Malformed(format!("{name} is not base64url")))
        }
    }
}

fn take_string(
    map: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<String>, JoseError> {
    match map.remove(name) {
        None => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(JoseError::Malformed(format!("{name} is not a string"))),
    }
}

/// Parses the protected header (RFC 7516 §5.2 steps 2–5): a JSON object with a known `alg`
/// and `enc`; `crit` is refused (we implement no extension, RFC 7516 §4.1.13) and so is `zip`
/// (no compression, RFC 8725 §3.6).
fn parse_header(protected_b64: &str) -> Result<JweHeader, JoseError> {
    let json = b64::decode(protected_b64).map_err(|_| malformed("header is not base64url"))?;
    let mut map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&json).map_err(|_| malformed("header is not a JSON object"))?;
    if map.contains_key("crit") {
        return Err(malformed("crit header parameters are not supported"));
    }
    if map.contains_key("zip") {
        return Err(malformed("compressed JWEs (zip) are not supported"));
    }
    let alg_name = take_string(&mut map, "alg")?.ok_or_else(|| malformed("alg is missing"))?;
    let alg = KeyManagementAlg::parse(&alg_name)
        .ok_or_else(|| JoseError::UnsupportedAlgorithm(echo(&alg_name)))?;
    let enc_name = take_string(&mut map, "enc")?.ok_or_else(|| malformed("enc is missing"))?;
    let enc = ContentEncryptionAlg::parse(&enc_name)
        .ok_or_else(|| JoseError::UnsupportedAlgorithm(echo(&enc_name)))?;
    let epk = match map.remove("epk") {
        None => None,
        Some(value @ serde_json::Value::Object(_)) => {
            Some(serde_json::from_value::<Jwk>(value).map_err(|_| malformed("epk is not a JWK"))?)
        }
        Some(_) => return Err(malformed("epk is not a JWK")),
    };
    if epk.as_ref().is_some_and(Jwk::has_private_members) {
        return Err(malformed("epk carries private members"));
    }
    Ok(JweHeader {
        alg,
        enc,
        kid: take_string(&mut map, "kid")?,
        cty: take_string(&mut map, "cty")?,
        typ: take_string(&mut map, "typ")?,
        epk,
        apu: take_string(&mut map, "apu")?,
        apv: take_string(&mut map, "apv")?,
        extra: map,
    })
}
