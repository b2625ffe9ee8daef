//! WebAuthn user verification over HTTP, with a software authenticator written from the
//! specifications (`test-support/webauthn.rs`): registration bound to the device, approvals
//! whose assertion binds the challenge, decision and shown hash, and the refusals — a replayed
//! or forged assertion, a missing one, one without user verification.

use backchannel_protocol::device::{
    ChallengeEnvelope, DECISION_JWT_TYP, Decision, DecisionClaims, WebAuthnAssertion,
    webauthn_decision_challenge, webauthn_registration_challenge,
};
use backchannel_protocol::jose::{self, Algorithm, b64};
use backchannel_protocol::oauth::ClientAuthMethod;
use serde_json::json;

use crate::support::{Answer, Auth, TestDevice, TestServer, now_secs};

#[path = "../../../../test-support/webauthn.rs"]
mod soft;
use soft::SoftAuthenticator;

const HINT: &str = "uv@example.com";

fn authenticator(s: &TestServer, alg: Algorithm) -> SoftAuthenticator {
    let host = url::Url::parse(&s.base)
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    SoftAuthenticator::new(alg, &host, &s.base)
}

async fn register(s: &TestServer, device: &TestDevice, a: &mut SoftAuthenticator) -> Answer {
    let challenge = jose::sha256(webauthn_registration_challenge(&device.id).as_bytes());
    let att = a.register(&challenge);
    let path = "/device/v1/device/webauthn";
    let r = s
        .http
        .post(s.url(path))
        .header("authorization", device.auth("POST", path))
        .json(&json!({
            "credential_id": b64::encode(&att.credential_id),
            "client_data_json": b64::encode(&att.client_data_json),
            "attestation_object": b64::encode(&att.attestation_object),
        }))
        .send()
        .await
        .unwrap();
    Answer::from(r).await
}

fn shown_hash(envelope: &ChallengeEnvelope) -> String {
    b64::encode(&jose::sha256(envelope.challenge.as_bytes()))
}

/// An assertion for `decision` on `envelope`, as the page makes it.
fn assertion(
    a: &mut SoftAuthenticator,
    envelope: &ChallengeEnvelope,
    decision: Decision,
) -> WebAuthnAssertion {
    let text = webauthn_decision_challenge(&envelope.id, decision, &shown_hash(envelope));
    let got = a.assert(&jose::sha256(text.as_bytes()));
    WebAuthnAssertion {
        credential_id: b64::encode(&got.credential_id),
        authenticator_data: b64::encode(&got.authenticator_data),
        client_data_json: b64::encode(&got.client_data_json),
        signature: b64::encode(&got.signature),
    }
}

fn decision(
    device: &TestDevice,
    envelope: &ChallengeEnvelope,
    decision: Decision,
    user_verified: bool,
    webauthn: Option<WebAuthnAssertion>,
) -> String {
    let claims = DecisionClaims {
        iss: device.id.clone(),
        challenge_id: envelope.id.clone(),
        decision,
        user_verified,
        shown_hash: shown_hash(envelope),
        iat: now_secs(),
        jti: jose::random_token(16).unwrap(),
        webauthn,
        not_me: false,
    };
    jose::sign_jwt_with(
        &device.key,
        Some(DECISION_JWT_TYP),
        jose::Kid::Named(&device.id),
        &claims,
    )
    .unwrap()
}

async fn pending(s: &TestServer, auth: &Auth, device: &TestDevice) -> (String, ChallengeEnvelope) {
    let id = s
        .start_request(auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let mut list = device.challenges(s).await;
    assert_eq!(list.len(), 1);
    (id, list.remove(0))
}

async fn acr_of(s: &TestServer, auth: &Auth, id: &str) -> String {
    let answer = s.token(auth, id).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let (_, claims) = s
        .verify_jwt(answer.body["id_token"].as_str().unwrap())
        .await;
    claims["acr"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_verified_assertion_approves_with_the_user_verified_acr_and_replays_are_refused() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let mut a = authenticator(&s, Algorithm::ES256);
    let registered = register(&s, &device, &mut a).await;
    assert_eq!(registered.status, 201, "{}", registered.body);
    assert_eq!(registered.body["alg"], "ES256");
    // One credential per device.
    let mut other = authenticator(&s, Algorithm::EdDSA);
    register(&s, &device, &mut other)
        .await
        .expect_error(409, "conflict");

    let (first_id, first) = pending(&s, &auth, &device).await;
    // user_verified without an assertion, from a device that has a credential.
    let bare = decision(&device, &first, Decision::Approve, true, None);
    device
        .send_decision(&s, &first.id, &bare)
        .await
        .expect_error(400, "invalid_decision");
    // An assertion made for the other decision does not approve.
    let for_deny = assertion(&mut a, &first, Decision::Deny);
    let jws = decision(&device, &first, Decision::Approve, true, Some(for_deny));
    device
        .send_decision(&s, &first.id, &jws)
        .await
        .expect_error(400, "invalid_decision");
    // A forged signature.
    let mut forged = assertion(&mut a, &first, Decision::Approve);
    forged.signature = b64::encode(&[0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01]);
    let jws = decision(&device, &first, Decision::Approve, true, Some(forged));
    device
        .send_decision(&s, &first.id, &jws)
        .await
        .expect_error(400, "invalid_decision");

    let good = assertion(&mut a, &first, Decision::Approve);
    let jws = decision(&device, &first, Decision::Approve, true, Some(good.clone()));
    let answer = device.send_decision(&s, &first.id, &jws).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        acr_of(&s, &auth, &first_id).await,
        "urn:backchannel:acr:device:uv"
    );

    // The same assertion replayed for the next challenge: bound to the first one.
    let (_, second) = pending(&s, &auth, &device).await;
    let replay = decision(&device, &second, Decision::Approve, true, Some(good));
    device
        .send_decision(&s, &second.id, &replay)
        .await
        .expect_error(400, "invalid_decision");
    // A fresh assertion whose counter went back (a cloned authenticator).
    a.counter = 0;
    let cloned = assertion(&mut a, &second, Decision::Approve);
    let jws = decision(&device, &second, Decision::Approve, true, Some(cloned));
    device
        .send_decision(&s, &second.id, &jws)
        .await
        .expect_error(400, "invalid_decision");
    a.counter = 10;
    let fresh = assertion(&mut a, &second, Decision::Approve);
    let jws = decision(&device, &second, Decision::Approve, true, Some(fresh));
    assert_eq!(device.send_decision(&s, &second.id, &jws).await.status, 200);
}

#[tokio::test]
async fn without_an_assertion_the_decision_is_not_user_verified() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let mut a = authenticator(&s, Algorithm::RS256);
    assert_eq!(register(&s, &device, &mut a).await.status, 201);
    let (id, envelope) = pending(&s, &auth, &device).await;
    let jws = decision(&device, &envelope, Decision::Approve, false, None);
    assert_eq!(
        device.send_decision(&s, &envelope.id, &jws).await.status,
        200
    );
    assert_eq!(acr_of(&s, &auth, &id).await, "urn:backchannel:acr:device");
}

#[tokio::test]
async fn registrations_are_checked_and_assertions_need_a_credential() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    // No user verification, another origin, another device's challenge.
    let mut a = authenticator(&s, Algorithm::ES256);
    a.verifies_user = false;
    register(&s, &device, &mut a)
        .await
        .expect_error(400, "invalid_request");
    let mut a = authenticator(&s, Algorithm::ES256);
    a.origin = "http://evil.example".into();
    register(&s, &device, &mut a)
        .await
        .expect_error(400, "invalid_request");
    let (_, other_device) = s.user_with_device("other@example.com").await;
    let mut a = authenticator(&s, Algorithm::ES256);
    let challenge = jose::sha256(webauthn_registration_challenge(&other_device.id).as_bytes());
    let att = a.register(&challenge);
    let path = "/device/v1/device/webauthn";
    let r = s
        .http
        .post(s.url(path))
        .header("authorization", device.auth("POST", path))
        .json(&json!({
            "credential_id": b64::encode(&att.credential_id),
            "client_data_json": b64::encode(&att.client_data_json),
            "attestation_object": b64::encode(&att.attestation_object),
        }))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_request");

    // An assertion from a device that registered none.
    let (_, envelope) = pending(&s, &auth, &device).await;
    let stray = assertion(&mut a, &envelope, Decision::Approve);
    let jws = decision(&device, &envelope, Decision::Approve, true, Some(stray));
    device
        .send_decision(&s, &envelope.id, &jws)
        .await
        .expect_error(400, "invalid_decision");
}

#[tokio::test]
async fn the_page_is_served_under_a_strict_csp_and_the_vapid_key_is_published() {
    let s = TestServer::start().await;
    for (path, kind) in [
        ("/authenticator", "text/html"),
        ("/authenticator/app.js", "text/javascript"),
        ("/authenticator/device.js", "text/javascript"),
        ("/authenticator/sw.js", "text/javascript"),
        ("/authenticator/style.css", "text/css"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert!(
            h["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    let sw = s
        .http
        .get(s.url("/authenticator/sw.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(sw.headers()["service-worker-allowed"], "/authenticator");
    let missing = s
        .http
        .get(s.url("/authenticator/secret.txt"))
        .send()
        .await
        .unwrap();
    Answer::from(missing).await.expect_error(404, "not_found");
    let none = s
        .http
        .get(s.url("/device/v1/webpush"))
        .send()
        .await
        .unwrap();
    Answer::from(none).await.expect_error(404, "not_found");

    let vapid = crate::push::P256::generate();
    let file = crate::push::write(
        &crate::support::temp_dir("vapid"),
        "vapid.pem",
        &vapid.pkcs8_pem,
    );
    let s = TestServer::start_with(|c| {
        c.push.webpush.vapid_private_key_file = file;
        c.push.webpush.subject = "mailto:ops@example.com".into();
    })
    .await;
    let key: serde_json::Value = s
        .http
        .get(s.url("/device/v1/webpush"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(key["application_server_key"], b64::encode(&vapid.point));
}
