//! The relying party's checks of the two WebAuthn ceremonies (W3C WebAuthn Level 3 §7.1
//! registration, §7.2 authentication), as pure functions over bytes: client data, authenticator
//! data, the `none` attestation object, COSE keys (RFC 9053) and the assertion signature.
//! CBOR is read with `minicbor`; every signature is checked by `protocol::jose` (aws-lc-rs).

use backchannel_protocol::jose::{self, Algorithm, Jwk, VerifyingKey, b64};
use minicbor::Decoder;
use minicbor::data::Type;
use serde::Deserialize;

/// Authenticator data flags (WebAuthn §6.1).
const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// COSE algorithm identifiers (IANA COSE Algorithms) of the keys accepted.
const COSE_ES256: i64 = -7;
const COSE_EDDSA: i64 = -8;
const COSE_RS256: i64 = -257;

/// Why a ceremony was refused; each names the check of WebAuthn §7.1/§7.2 that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyError {
    #[error("malformed WebAuthn data: {0}")]
    Malformed(&'static str),
    #[error("clientDataJSON.type is not {0}")]
    WrongType(&'static str),
    #[error("clientDataJSON.challenge is not the expected challenge")]
    WrongChallenge,
    #[error("clientDataJSON.origin is not the issuer's origin")]
    WrongOrigin,
    #[error("the authenticator data is for another relying party ID")]
    WrongRpId,
    #[error("the authenticator did not report user presence")]
    NoUserPresence,
    #[error("the authenticator did not verify the user")]
    NoUserVerification,
    #[error("unsupported credential key: {0}")]
    UnsupportedKey(&'static str),
    #[error("the assertion is for another credential")]
    WrongCredential,
    #[error("the assertion signature is invalid")]
    BadSignature,
    #[error("the signature counter did not increase (a cloned authenticator or a replay)")]
    CounterNotIncreased,
}

type Checked<T> = Result<T, CeremonyError>;

/// Who the credentials are for: the relying-party ID is the issuer's host name, the origin
/// the issuer's origin (the page is served by the issuer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    pub id: String,
    pub origin: String,
}

impl RelyingParty {
    /// The relying party of an issuer URL; `None` for an issuer without a host name.
    pub fn of_issuer(issuer: &str) -> Option<RelyingParty> {
        let url = url::Url::parse(issuer).ok()?;
        let id = url.host_str()?.to_owned();
        Some(RelyingParty {
            id,
            origin: url.origin().ascii_serialization(),
        })
    }
}

/// A credential as registered: what later assertions are checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCredential {
    /// base64url of the raw credential id.
    pub credential_id: String,
    /// The credential's public key as a JWK (with `alg`).
    pub public_jwk: Jwk,
    pub alg: Algorithm,
    pub sign_count: u32,
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "crossOrigin", default)]
    cross_origin: bool,
}

/// WebAuthn §7.1 steps 7–12 / §7.2 steps 10–15: the type, challenge and origin, from the
/// exact bytes the browser hashed.
fn check_client_data(
    client_data_json: &[u8],
    kind: &'static str,
    challenge: &[u8],
    rp: &RelyingParty,
) -> Checked<()> {
    let data: ClientData = serde_json::from_slice(client_data_json)
        .map_err(|_| CeremonyError::Malformed("clientDataJSON"))?;
    if data.kind != kind {
        return Err(CeremonyError::WrongType(kind));
    }
    let sent = b64::decode(&data.challenge).map_err(|_| CeremonyError::WrongChallenge)?;
    if sent != challenge {
        return Err(CeremonyError::WrongChallenge);
    }
    if data.origin != rp.origin || data.cross_origin {
        return Err(CeremonyError::WrongOrigin);
    }
    Ok(())
}

/// The fixed head of authenticator data (WebAuthn §6.1): flags and counter, after checking the
/// RP ID hash, user presence and user verification (both required here).
fn check_auth_data_head(auth_data: &[u8], rp: &RelyingParty) -> Checked<(u8, u32)> {
    if auth_data.len() < 37 {
        return Err(CeremonyError::Malformed("authenticator data too short"));
    }
    if auth_data[..32] != jose::sha256(rp.id.as_bytes()) {
        return Err(CeremonyError::WrongRpId);
    }
    let flags = auth_data[32];
    if flags & FLAG_UP == 0 {
        return Err(CeremonyError::NoUserPresence);
    }
    if flags & FLAG_UV == 0 {
        return Err(CeremonyError::NoUserVerification);
    }
    let count = u32::from_be_bytes([auth_data[33], auth_data[34], auth_data[35], auth_data[36]]);
    Ok((flags, count))
}

fn cbor(_: minicbor::decode::Error) -> CeremonyError {
    CeremonyError::Malformed("CBOR")
}

/// Registration (WebAuthn §7.1) with `none` attestation: the attestation statement is not
/// evaluated (the page asks for `attestation: "none"`; no authenticator model is trusted or
/// refused), everything else is.
pub fn verify_registration(
    rp: &RelyingParty,
    challenge: &[u8],
    credential_id: &[u8],
    client_data_json: &[u8],
    attestation_object: &[u8],
) -> Checked<NewCredential> {
    check_client_data(client_data_json, "webauthn.create", challenge, rp)?;
    let auth_data = attestation_auth_data(attestation_object)?;
    let (flags, sign_count) = check_auth_data_head(auth_data, rp)?;
    if flags & FLAG_AT == 0 {
        return Err(CeremonyError::Malformed("no attested credential data"));
    }
    // aaguid (16), credential id length (2), credential id, COSE key.
    let rest = &auth_data[37..];
    if rest.len() < 18 {
        return Err(CeremonyError::Malformed(
            "attested credential data too short",
        ));
    }
    let id_len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
    let rest = &rest[18..];
    if rest.len() < id_len || id_len == 0 || id_len > 1023 {
        return Err(CeremonyError::Malformed("credential id"));
    }
    let (id, key_bytes) = rest.split_at(id_len);
    if id != credential_id {
        return Err(CeremonyError::WrongCredential);
    }
    let mut d = Decoder::new(key_bytes);
    let (public_jwk, alg) = cose_key(&mut d)?;
    if flags & FLAG_ED == 0 && d.position() != key_bytes.len() {
        return Err(CeremonyError::Malformed(
            "trailing bytes after the credential key",
        ));
    }
    Ok(NewCredential {
        credential_id: b64::encode(id),
        public_jwk,
        alg,
        sign_count,
    })
}

/// `authData` of an attestation object (`{"fmt", "attStmt", "authData"}`, WebAuthn §6.5).
fn attestation_auth_data(attestation_object: &[u8]) -> Checked<&[u8]> {
    let mut d = Decoder::new(attestation_object);
    let entries = d
        .map()
        .map_err(cbor)?
        .ok_or(CeremonyError::Malformed("indefinite map"))?;
    let mut auth_data = None;
    for _ in 0..entries {
        match d.str().map_err(cbor)? {
            "authData" => auth_data = Some(d.bytes().map_err(cbor)?),
            _ => d.skip().map_err(cbor)?,
        }
    }
    auth_data.ok_or(CeremonyError::Malformed("no authData"))
}

enum CoseValue<'b> {
    Int(i64),
    Bytes(&'b [u8]),
}

/// A COSE_Key (RFC 9052 §7, RFC 9053 §7) as a JWK: EC2 P-256 with ES256, OKP Ed25519 with
/// EdDSA, RSA with RS256.
fn cose_key(d: &mut Decoder<'_>) -> Checked<(Jwk, Algorithm)> {
    let entries = d
        .map()
        .map_err(cbor)?
        .ok_or(CeremonyError::Malformed("indefinite map"))?;
    let mut params = std::collections::BTreeMap::new();
    for _ in 0..entries {
        let label = d.i64().map_err(cbor)?;
        let value = match d.datatype().map_err(cbor)? {
            Type::Bytes => CoseValue::Bytes(d.bytes().map_err(cbor)?),
            Type::U8
            | Type::U16
            | Type::U32
            | Type::U64
            | Type::I8
            | Type::I16
            | Type::I32
            | Type::I64 => CoseValue::Int(d.i64().map_err(cbor)?),
            _ => {
                d.skip().map_err(cbor)?;
                continue;
            }
        };
        params.insert(label, value);
    }
    let int = |label| match params.get(&label) {
        Some(CoseValue::Int(v)) => Some(*v),
        _ => None,
    };
    let bytes = |label| match params.get(&label) {
        Some(CoseValue::Bytes(v)) => Some(b64::encode(v)),
        _ => None,
    };
    let missing = CeremonyError::UnsupportedKey("missing key parameters");
    let (jwk, alg) = match (int(1), int(3)) {
        // kty EC2, crv P-256 (1), x (-2), y (-3).
        (Some(2), Some(COSE_ES256)) if int(-1) == Some(1) => (
            Jwk {
                kty: "EC".into(),
                crv: Some("P-256".into()),
                x: Some(bytes(-2).ok_or(missing.clone())?),
                y: Some(bytes(-3).ok_or(missing)?),
                ..Jwk::default()
            },
            Algorithm::ES256,
        ),
        // kty OKP, crv Ed25519 (6), x (-2).
        (Some(1), Some(COSE_EDDSA)) if int(-1) == Some(6) => (
            Jwk {
                kty: "OKP".into(),
                crv: Some("Ed25519".into()),
                x: Some(bytes(-2).ok_or(missing)?),
                ..Jwk::default()
            },
            Algorithm::EdDSA,
        ),
        // kty RSA, n (-1), e (-2).
        (Some(3), Some(COSE_RS256)) => (
            Jwk {
                kty: "RSA".into(),
                n: Some(bytes(-1).ok_or(missing.clone())?),
                e: Some(bytes(-2).ok_or(missing)?),
                ..Jwk::default()
            },
            Algorithm::RS256,
        ),
        _ => {
            return Err(CeremonyError::UnsupportedKey(
                "only ES256 (P-256), EdDSA (Ed25519) and RS256 credentials",
            ));
        }
    };
    let jwk = Jwk {
        alg: Some(alg.as_str().into()),
        ..jwk
    };
    VerifyingKey::from_jwk(&jwk).map_err(|_| CeremonyError::UnsupportedKey("invalid key"))?;
    Ok((jwk, alg))
}

/// A stored credential, as an assertion is checked against it.
#[derive(Debug, Clone, Copy)]
pub struct CredentialRef<'a> {
    pub credential_id: &'a str,
    pub public_jwk: &'a Jwk,
    pub alg: Algorithm,
    pub sign_count: u32,
}

/// The raw parts of an assertion (decoded from base64url).
#[derive(Debug, Clone, Copy)]
pub struct AssertionParts<'a> {
    pub credential_id: &'a [u8],
    pub authenticator_data: &'a [u8],
    pub client_data_json: &'a [u8],
    pub signature: &'a [u8],
}

/// Authentication (WebAuthn §7.2): the credential, client data, RP ID hash, UP and UV flags,
/// the signature over `authenticatorData ‖ SHA-256(clientDataJSON)`, and the signature
/// counter (§6.1.1: if either counter is non-zero the new one must be greater). Returns the
/// new counter, which the caller stores with a conditional update.
pub fn verify_assertion(
    rp: &RelyingParty,
    challenge: &[u8],
    credential: CredentialRef<'_>,
    assertion: AssertionParts<'_>,
) -> Checked<u32> {
    if b64::encode(assertion.credential_id) != credential.credential_id {
        return Err(CeremonyError::WrongCredential);
    }
    check_client_data(assertion.client_data_json, "webauthn.get", challenge, rp)?;
    let (_, count) = check_auth_data_head(assertion.authenticator_data, rp)?;
    let key = VerifyingKey::from_jwk(credential.public_jwk)
        .map_err(|_| CeremonyError::UnsupportedKey("invalid stored key"))?;
    let mut signed = assertion.authenticator_data.to_vec();
    signed.extend_from_slice(&jose::sha256(assertion.client_data_json));
    let signature = match credential.alg {
        // WebAuthn ES256 signatures are ASN.1 DER (§6.5.6); JOSE's are r ‖ s.
        Algorithm::ES256 => ecdsa_der_to_fixed(assertion.signature, 32)?,
        _ => assertion.signature.to_vec(),
    };
    key.verify(credential.alg, &signed, &signature)
        .map_err(|_| CeremonyError::BadSignature)?;
    if (count != 0 || credential.sign_count != 0) && count <= credential.sign_count {
        return Err(CeremonyError::CounterNotIncreased);
    }
    Ok(count)
}

/// `Ecdsa-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` (RFC 3279 §2.2.3) as the fixed-width
/// `r ‖ s` that JOSE verifies. Only structure is read; the signature check stays in aws-lc-rs.
fn ecdsa_der_to_fixed(der: &[u8], width: usize) -> Checked<Vec<u8>> {
    let bad = || CeremonyError::BadSignature;
    let (seq, rest) = der_tlv(der, 0x30).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let (r, rest) = der_tlv(seq, 0x02).ok_or_else(bad)?;
    let (s, rest) = der_tlv(rest, 0x02).ok_or_else(bad)?;
    if !rest.is_empty() {
        return Err(bad());
    }
    let mut out = Vec::with_capacity(2 * width);
    for int in [r, s] {
        let int = match int {
            [0, tail @ ..] => tail,
            _ => int,
        };
        if int.len() > width {
            return Err(bad());
        }
        out.extend(std::iter::repeat_n(0, width - int.len()));
        out.extend_from_slice(int);
    }
    Ok(out)
}

/// One short-form DER TLV with the given tag: (contents, rest).
fn der_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    let (&len, rest) = rest.split_first()?;
    let len = usize::from(len);
    if t != tag || len >= 0x80 || rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

#[cfg(test)]
#[path = "ceremony_tests.rs"]
mod tests;
