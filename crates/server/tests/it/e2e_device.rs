//! The device API over HTTP: enrolment codes, device-signed calls, challenge signatures,
//! decisions bound to what was shown, first decision wins, evidence kept.

use backchannel_protocol::device::{DEVICE_AUTH_JWT_TYP, Decision};
use backchannel_protocol::jose::{self, Algorithm, SigningKey};
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::admin::NewUser;
use backchannel_server::domain::model::ChallengeState;
use serde_json::json;

use crate::support::{Answer, TestDevice, TestServer, now_secs};

const HINT: &str = "dev@example.com";

#[tokio::test]
async fn enrolment_codes_are_single_use_and_expire() {
    let (s, clock) = TestServer::start_clocked().await;
    let u = s
        .user(NewUser {
            email: Some(HINT.into()),
            ..Default::default()
        })
        .await;
    let code = s.server.domain.create_enrolment(&u.sub).await.unwrap().code;
    assert!(TestDevice::enrol(&s, &code).await.is_ok());
    let again = TestDevice::enrol(&s, &code).await.err().unwrap();
    again.expect_error(400, "invalid_code");
    TestDevice::enrol(&s, "made-up")
        .await
        .err()
        .unwrap()
        .expect_error(400, "invalid_code");

    let late = s.server.domain.create_enrolment(&u.sub).await.unwrap().code;
    clock.advance_secs(3600);
    TestDevice::enrol(&s, &late)
        .await
        .err()
        .unwrap()
        .expect_error(400, "invalid_code");

    // A private key must never be sent.
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let fresh = s.server.domain.create_enrolment(&u.sub).await.unwrap().code;
    let r = s
        .http
        .post(s.url("/device/v1/enrol"))
        .json(&json!({"code": fresh, "public_jwk": key.to_private_jwk()}))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_request");
    let r = s
        .http
        .post(s.url("/device/v1/enrol"))
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_request");
}

#[tokio::test]
async fn device_calls_must_carry_a_fresh_token_bound_to_method_and_url() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let path = "/device/v1/challenges";
    let get = |auth: Option<String>| {
        let mut req = s.http.get(s.url(path));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        async move { Answer::from(req.send().await.unwrap()).await }
    };
    let a = get(None).await;
    a.expect_error(401, "invalid_token");
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Device")
    );

    let token = device.auth("GET", path);
    assert_eq!(get(Some(token.clone())).await.status, 200);
    get(Some(token)).await.expect_error(401, "invalid_token"); // replayed jti
    get(Some(device.auth("POST", path)))
        .await
        .expect_error(401, "invalid_token");
    get(Some(device.auth("GET", "/device/v1/other")))
        .await
        .expect_error(401, "invalid_token");

    let signed = |claims: serde_json::Value, key: &SigningKey| {
        let mut header = jose::Header {
            typ: Some(DEVICE_AUTH_JWT_TYP.into()),
            kid: Some(device.id.clone()),
            ..Default::default()
        };
        header.alg = key.alg().as_str().into();
        format!(
            "Device {}",
            jose::sign_jws(&header, claims.to_string().as_bytes(), key).unwrap()
        )
    };
    let now = now_secs();
    let base = |iat: i64, exp: i64| json!({"iss": device.id, "htm": "GET", "htu": s.url(path), "iat": iat, "exp": exp, "jti": jose::random_token(8).unwrap()});
    get(Some(signed(base(now - 300, now - 200), &device.key)))
        .await
        .expect_error(401, "invalid_token");
    get(Some(signed(base(now, now + 3600), &device.key)))
        .await
        .expect_error(401, "invalid_token");
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    get(Some(signed(base(now, now + 60), &stranger)))
        .await
        .expect_error(401, "invalid_token");
    get(Some("Device not.a.jwt".into()))
        .await
        .expect_error(401, "invalid_token");

    assert!(
        s.server
            .domain
            .stores
            .devices
            .set_device_disabled(&device.id, true, 0)
            .await
            .unwrap()
    );
    get(Some(device.auth("GET", path)))
        .await
        .expect_error(401, "invalid_token");
}

#[tokio::test]
async fn decisions_are_bound_to_what_was_shown_and_the_first_wins() {
    let s = TestServer::start().await;
    let (user, phone) = s.user_with_device(HINT).await;
    let laptop = s.enrol(&user.sub).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("binding_message", "Login 7F3A"),
            ],
        )
        .await;

    let on_phone = phone.challenges(&s).await;
    let on_laptop = laptop.challenges(&s).await;
    assert_eq!((on_phone.len(), on_laptop.len()), (1, 1));
    assert_ne!(on_phone[0].id, on_laptop[0].id, "one challenge per device");
    let claims = phone.verify(&s, &on_phone[0]).await;
    assert_eq!(claims.binding_message.as_deref(), Some("Login 7F3A"));
    assert_eq!(claims.iss, s.base);

    // A hash of anything but the challenge as signed is refused.
    let tampered = on_phone[0].challenge.replace('.', ".x");
    let bad = phone.decision_jws(&on_phone[0], Decision::Approve, &tampered);
    phone
        .send_decision(&s, &on_phone[0].id, &bad)
        .await
        .expect_error(400, "invalid_decision");
    // A decision signed by another device's key.
    let forged = laptop.decision_jws(&on_phone[0], Decision::Approve, &on_phone[0].challenge);
    phone
        .send_decision(&s, &on_phone[0].id, &forged)
        .await
        .expect_error(400, "invalid_decision");
    // Another device's challenge is not found.
    let cross = laptop.decision_jws(&on_phone[0], Decision::Approve, &on_phone[0].challenge);
    laptop
        .send_decision(&s, &on_phone[0].id, &cross)
        .await
        .expect_error(404, "not_found");

    let good = phone.decision_jws(&on_phone[0], Decision::Approve, &on_phone[0].challenge);
    assert_eq!(
        phone.send_decision(&s, &on_phone[0].id, &good).await.status,
        200
    );
    // The laptop was too late; its challenge is closed and no longer listed.
    let late = laptop.decision_jws(&on_laptop[0], Decision::Deny, &on_laptop[0].challenge);
    laptop
        .send_decision(&s, &on_laptop[0].id, &late)
        .await
        .expect_error(409, "challenge_closed");
    assert!(laptop.challenges(&s).await.is_empty());
    phone
        .send_decision(&s, &on_phone[0].id, &good)
        .await
        .expect_error(409, "challenge_closed");

    // The signed decision is kept as evidence; the other challenge is closed.
    let (kept, _) = s
        .server
        .domain
        .stores
        .requests
        .get_challenge(&on_phone[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.state, ChallengeState::Approved);
    assert_eq!(kept.decision_jws.as_deref(), Some(good.as_str()));
    let (closed, _) = s
        .server
        .domain
        .stores
        .requests
        .get_challenge(&on_laptop[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.state, ChallengeState::Closed);
    assert_eq!(s.token(&auth, &id).await.status, 200);
}

#[tokio::test]
async fn racing_devices_yield_exactly_one_decision() {
    let s = TestServer::start().await;
    let (user, first) = s.user_with_device(HINT).await;
    let mut devices = vec![first];
    for _ in 0..4 {
        devices.push(s.enrol(&user.sub).await);
    }
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    s.start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let mut pending = Vec::new();
    for d in &devices {
        let c = d.challenges(&s).await.remove(0);
        let jws = d.decision_jws(&c, Decision::Approve, &c.challenge);
        pending.push((d, c.id, jws));
    }
    let answers = futures_util::future::join_all(
        pending
            .iter()
            .map(|(d, id, jws)| d.send_decision(&s, id, jws)),
    )
    .await;
    assert_eq!(answers.iter().filter(|a| a.status == 200).count(), 1);
    assert_eq!(answers.iter().filter(|a| a.status == 409).count(), 4);
}
