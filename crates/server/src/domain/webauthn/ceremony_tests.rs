#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use backchannel_protocol::jose::Algorithm;

use super::*;

#[path = "../../../../../test-support/webauthn.rs"]
mod soft;
use soft::{Assertion, SoftAuthenticator};

const ISSUER: &str = "http://localhost:8443";

fn rp() -> RelyingParty {
    RelyingParty::of_issuer(ISSUER).unwrap()
}

fn enrolled(alg: Algorithm) -> (SoftAuthenticator, NewCredential) {
    let mut a = SoftAuthenticator::new(alg, "localhost", ISSUER);
    let att = a.register(b"register-challenge");
    let cred = verify_registration(
        &rp(),
        b"register-challenge",
        &att.credential_id,
        &att.client_data_json,
        &att.attestation_object,
    )
    .unwrap();
    (a, cred)
}

fn check(cred: &NewCredential, challenge: &[u8], a: &Assertion) -> Checked<u32> {
    verify_assertion(
        &rp(),
        challenge,
        CredentialRef {
            credential_id: &cred.credential_id,
            public_jwk: &cred.public_jwk,
            alg: cred.alg,
            sign_count: cred.sign_count,
        },
        AssertionParts {
            credential_id: &a.credential_id,
            authenticator_data: &a.authenticator_data,
            client_data_json: &a.client_data_json,
            signature: &a.signature,
        },
    )
}

#[test]
fn the_relying_party_is_the_issuer_host_and_origin() {
    assert_eq!(
        rp(),
        RelyingParty {
            id: "localhost".into(),
            origin: "http://localhost:8443".into()
        }
    );
    let default_port = RelyingParty::of_issuer("https://id.example.com").unwrap();
    assert_eq!(default_port.origin, "https://id.example.com");
}

#[test]
fn es256_eddsa_and_rs256_credentials_register_and_assert() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let (mut a, cred) = enrolled(alg);
        assert_eq!(cred.alg, alg);
        assert_eq!(cred.sign_count, 0);
        let assertion = a.assert(b"decision");
        assert_eq!(check(&cred, b"decision", &assertion), Ok(1), "{alg:?}");
    }
}

#[test]
fn a_tampered_signature_or_signed_data_is_refused() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
        let (mut a, cred) = enrolled(alg);
        let mut bad = a.assert(b"decision");
        let last = bad.signature.len() - 1;
        bad.signature[last] ^= 1;
        assert_eq!(
            check(&cred, b"decision", &bad),
            Err(CeremonyError::BadSignature),
            "{alg:?}"
        );
        // The counter is signed: raising it without the key breaks the signature.
        let mut bad = a.assert(b"decision");
        bad.authenticator_data[36] = bad.authenticator_data[36].wrapping_add(7);
        assert_eq!(
            check(&cred, b"decision", &bad),
            Err(CeremonyError::BadSignature)
        );
    }
    // Another key signing for the registered credential id.
    let (a, cred) = enrolled(Algorithm::ES256);
    let mut other = SoftAuthenticator::new(Algorithm::ES256, "localhost", ISSUER);
    other.credential_id = a.credential_id.clone();
    let forged = other.assert(b"decision");
    assert_eq!(
        check(&cred, b"decision", &forged),
        Err(CeremonyError::BadSignature)
    );
}

#[test]
fn a_wrong_rp_id_origin_challenge_or_type_is_refused() {
    let (mut a, cred) = enrolled(Algorithm::ES256);
    a.rp_id = "evil.example".into();
    let wrong_rp = a.assert(b"decision");
    assert_eq!(
        check(&cred, b"decision", &wrong_rp),
        Err(CeremonyError::WrongRpId)
    );
    a.rp_id = "localhost".into();
    a.origin = "http://localhost:9999".into();
    let wrong_origin = a.assert(b"decision");
    assert_eq!(
        check(&cred, b"decision", &wrong_origin),
        Err(CeremonyError::WrongOrigin)
    );
    a.origin = ISSUER.into();
    let other_challenge = a.assert(b"another decision");
    assert_eq!(
        check(&cred, b"decision", &other_challenge),
        Err(CeremonyError::WrongChallenge)
    );
    // A registration's client data is not an assertion's.
    let att = a.register(b"decision");
    let mut as_get = a.assert(b"decision");
    as_get.client_data_json = att.client_data_json;
    assert_eq!(
        check(&cred, b"decision", &as_get),
        Err(CeremonyError::WrongType("webauthn.get"))
    );
}

#[test]
fn an_assertion_without_user_verification_is_refused() {
    let (mut a, cred) = enrolled(Algorithm::ES256);
    a.verifies_user = false;
    let assertion = a.assert(b"decision");
    assert_eq!(
        check(&cred, b"decision", &assertion),
        Err(CeremonyError::NoUserVerification)
    );
    // Nor is a registration without it.
    let att = a.register(b"r");
    let refused = verify_registration(
        &rp(),
        b"r",
        &att.credential_id,
        &att.client_data_json,
        &att.attestation_object,
    );
    assert_eq!(refused, Err(CeremonyError::NoUserVerification));
}

#[test]
fn the_counter_must_go_up_when_either_side_counts() {
    let (mut a, mut cred) = enrolled(Algorithm::ES256);
    let first = a.assert(b"d");
    cred.sign_count = check(&cred, b"d", &first).unwrap();
    // A replay of the same assertion, and a counter that went back (a clone).
    assert_eq!(
        check(&cred, b"d", &first),
        Err(CeremonyError::CounterNotIncreased)
    );
    a.counter = 0;
    let back = a.assert(b"d");
    assert_eq!(back.authenticator_data[36], 1);
    cred.sign_count = 5;
    assert_eq!(
        check(&cred, b"d", &back),
        Err(CeremonyError::CounterNotIncreased)
    );
    // An authenticator that never counts (always 0) is fine while the stored count is 0.
    let (mut never, cred) = enrolled(Algorithm::EdDSA);
    for _ in 0..2 {
        let mut zero = never.assert(b"d");
        zero.authenticator_data[33..37].copy_from_slice(&[0, 0, 0, 0]);
        let mut signed = zero.authenticator_data.clone();
        signed.extend_from_slice(&jose::sha256(&zero.client_data_json));
        zero.signature = never.key.sign(&signed).unwrap();
        assert_eq!(check(&cred, b"d", &zero), Ok(0));
    }
}

#[test]
fn registration_checks_the_credential_id_and_key() {
    let mut a = SoftAuthenticator::new(Algorithm::ES256, "localhost", ISSUER);
    let att = a.register(b"r");
    let refused = verify_registration(
        &rp(),
        b"r",
        b"another id",
        &att.client_data_json,
        &att.attestation_object,
    );
    assert_eq!(refused, Err(CeremonyError::WrongCredential));
    let refused = verify_registration(
        &rp(),
        b"r",
        &att.credential_id,
        &att.client_data_json,
        &att.attestation_object[..att.attestation_object.len() - 3],
    );
    assert!(
        matches!(refused, Err(CeremonyError::Malformed(_))),
        "{refused:?}"
    );
}
