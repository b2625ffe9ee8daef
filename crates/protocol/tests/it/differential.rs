//! Differential tests against jsonwebtoken (over its aws-lc-rs backend): tokens we sign verify
//! there, tokens it signs verify here, and both compute the same JWK and thumbprint. ES512 is
//! not in jsonwebtoken; it is covered by the RFC 7520 vector and the round trips.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPairComponents, PublicKeyComponents};
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use backchannel_protocol::jose::{
    Algorithm, JoseError, Jwk, SigningKey, VerifyingKey, b64, decode_jws, sign_jwt,
};
use jsonwebtoken as jwt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: u64,
    note: String,
}

fn claims() -> Claims {
    Claims {
        iss: "https://as.example".into(),
        sub: "248289761001".into(),
        exp: 4_102_444_800,
        note: "caf\u{e9} \u{1F511}".into(),
    }
}

const SHARED: [(Algorithm, jwt::Algorithm); 5] = [
    (Algorithm::ES256, jwt::Algorithm::ES256),
    (Algorithm::ES384, jwt::Algorithm::ES384),
    (Algorithm::PS256, jwt::Algorithm::PS256),
    (Algorithm::RS256, jwt::Algorithm::RS256),
    (Algorithm::EdDSA, jwt::Algorithm::EdDSA),
];

fn their_jwk(ours: &Jwk) -> jwt::jwk::Jwk {
    serde_json::from_value(serde_json::to_value(ours).unwrap()).unwrap()
}

fn bytes(member: &Option<String>) -> Vec<u8> {
    b64::decode(member.as_deref().unwrap()).unwrap()
}

/// The private key as the DER that jsonwebtoken takes, built by aws-lc-rs from our private JWK:
/// PKCS#8 for EC and Ed25519, PKCS#1 `RSAPrivateKey` for RSA.
fn their_encoding_key(key: &SigningKey) -> jwt::EncodingKey {
    let jwk = key.to_private_jwk();
    match key.alg() {
        Algorithm::ES256 | Algorithm::ES384 => {
            let signing = if key.alg() == Algorithm::ES256 {
                &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let mut point = vec![4u8];
            point.extend(bytes(&jwk.x));
            point.extend(bytes(&jwk.y));
            let pair =
                EcdsaKeyPair::from_private_key_and_public_key(signing, &bytes(&jwk.d), &point)
                    .unwrap();
            jwt::EncodingKey::from_ec_der(pair.to_pkcs8v1().unwrap().as_ref())
        }
        Algorithm::EdDSA => {
            let pair =
                Ed25519KeyPair::from_seed_and_public_key(&bytes(&jwk.d), &bytes(&jwk.x)).unwrap();
            jwt::EncodingKey::from_ed_der(pair.to_pkcs8().unwrap().as_ref())
        }
        Algorithm::PS256 | Algorithm::RS256 => {
            let pair = RsaKeyPair::from_components(&KeyPairComponents {
                public_key: PublicKeyComponents {
                    n: bytes(&jwk.n),
                    e: bytes(&jwk.e),
                },
                d: bytes(&jwk.d),
                p: bytes(&jwk.p),
                q: bytes(&jwk.q),
                dP: bytes(&jwk.dp),
                dQ: bytes(&jwk.dq),
                qInv: bytes(&jwk.qi),
            })
            .unwrap();
            let pkcs8: Pkcs8V1Der<'static> = pair.as_der().unwrap();
            jwt::EncodingKey::from_rsa_der(&pkcs1_from_pkcs8(pkcs8.as_ref()))
        }
        Algorithm::ES512 => unreachable!("jsonwebtoken has no ES512"),
    }
}

/// PKCS#8 `PrivateKeyInfo` → the `RSAPrivateKey` inside its privateKey OCTET STRING.
fn pkcs1_from_pkcs8(der: &[u8]) -> Vec<u8> {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let (len, header) = if input[1] < 0x80 {
            (usize::from(input[1]), 2)
        } else {
            let n = usize::from(input[1] & 0x7f);
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |a, &b| (a << 8) | usize::from(b));
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let (_, info, _) = tlv(der);
    let (_, _version, rest) = tlv(info);
    let (_, _algorithm, rest) = tlv(rest);
    let (tag, key, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    key.to_vec()
}

fn validation(alg: jwt::Algorithm) -> jwt::Validation {
    let mut v = jwt::Validation::new(alg);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    v
}

#[test]
fn ours_sign_jsonwebtoken_verifies() {
    for (ours, theirs) in SHARED {
        let key = SigningKey::generate(ours).unwrap();
        let token = sign_jwt(&key, Some("JWT"), &claims()).unwrap();
        let decoding = jwt::DecodingKey::from_jwk(&their_jwk(&key.public_jwk())).unwrap();
        let data = jwt::decode::<Claims>(&token, &decoding, &validation(theirs))
            .unwrap_or_else(|e| panic!("{ours:?}: {e}"));
        assert_eq!(data.claims, claims());
        assert_eq!(data.header.kid.as_deref(), Some(key.kid()));
        assert_eq!(data.header.alg, theirs);

        // And a token signed by another key of the same kind must not verify there.
        let other = SigningKey::generate(ours).unwrap();
        let forged = sign_jwt(&other, Some("JWT"), &claims()).unwrap();
        assert!(jwt::decode::<Claims>(&forged, &decoding, &validation(theirs)).is_err());
    }
}

#[test]
fn jsonwebtoken_signs_ours_verifies() {
    for (ours, theirs) in SHARED {
        let key = SigningKey::generate(ours).unwrap();
        let mut header = jwt::Header::new(theirs);
        header.kid = Some(key.kid().to_owned());
        let token = jwt::encode(&header, &claims(), &their_encoding_key(&key))
            .unwrap_or_else(|e| panic!("{ours:?}: {e}"));

        let jws = decode_jws(&token).unwrap();
        assert_eq!(jws.alg(), ours);
        assert_eq!(jws.header.kid.as_deref(), Some(key.kid()));
        let public = VerifyingKey::from_jwk(&key.public_jwk()).unwrap();
        jws.verify(&public)
            .unwrap_or_else(|e| panic!("{ours:?}: {e}"));
        assert_eq!(jws.claims::<Claims>().unwrap(), claims());

        let stranger = SigningKey::generate(ours).unwrap().verifying_key();
        assert_eq!(jws.verify(&stranger), Err(JoseError::BadSignature));
    }
}

/// PS256 and RS256 share RSA keys; a token's padding must match its `alg` in both libraries.
#[test]
fn rsa_padding_follows_alg_across_libraries() {
    let rs = SigningKey::generate(Algorithm::RS256).unwrap();
    let mut ps_jwk = rs.to_private_jwk();
    ps_jwk.alg = Some("PS256".into());
    let ps = SigningKey::from_jwk(&ps_jwk).unwrap();

    let token = sign_jwt(&ps, None, &claims()).unwrap();
    let mut public = rs.public_jwk();
    public.alg = None;
    let decoding = jwt::DecodingKey::from_jwk(&their_jwk(&public)).unwrap();
    assert!(jwt::decode::<Claims>(&token, &decoding, &validation(jwt::Algorithm::PS256)).is_ok());
    // The same signature relabelled RS256 verifies in neither library.
    let (_, rest) = token.split_once('.').unwrap();
    let relabelled = format!("{}.{rest}", b64::encode(br#"{"alg":"RS256"}"#));
    assert!(
        jwt::decode::<Claims>(&relabelled, &decoding, &validation(jwt::Algorithm::RS256)).is_err()
    );
    let ours = VerifyingKey::from_jwk(&public).unwrap();
    assert_eq!(
        decode_jws(&relabelled).unwrap().verify(&ours),
        Err(JoseError::BadSignature)
    );
}

#[test]
fn thumbprints_agree_with_jsonwebtoken() {
    for alg in Algorithm::ALL {
        let key = SigningKey::generate(alg).unwrap();
        let theirs = their_jwk(&key.public_jwk()).thumbprint(jwt::jwk::ThumbprintHash::SHA256);
        assert_eq!(theirs, key.kid(), "{alg:?}");
    }
}

#[test]
fn public_jwks_agree_with_jsonwebtoken() {
    for (ours, theirs) in SHARED {
        if ours == Algorithm::EdDSA {
            continue; // jsonwebtoken cannot derive a JWK from an Ed25519 key
        }
        let key = SigningKey::generate(ours).unwrap();
        let derived = jwt::jwk::Jwk::from_encoding_key(&their_encoding_key(&key), theirs).unwrap();
        let derived: serde_json::Value = serde_json::to_value(derived).unwrap();
        let public: serde_json::Value = serde_json::to_value(key.public_jwk()).unwrap();
        for member in ["kty", "crv", "x", "y", "n", "e"] {
            assert_eq!(derived.get(member), public.get(member), "{ours:?} {member}");
        }
    }
}
