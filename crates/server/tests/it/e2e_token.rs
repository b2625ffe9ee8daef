//! The token endpoint over HTTP: the CIBA grant's every outcome, the tokens themselves, and
//! redemption exactly once under racing polls.

use backchannel_protocol::device::Decision;
use backchannel_protocol::jose::{self, Algorithm};
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode, GRANT_TYPE_CIBA};
use backchannel_server::domain::admin::{NewClient, NewUser};
use serde_json::json;

use crate::support::{Auth, TestServer};

const HINT: &str = "carol@example.com";

#[tokio::test]
async fn approve_then_poll_returns_tokens_once() {
    let s = TestServer::start().await;
    let u = s
        .user(NewUser {
            email: Some(HINT.into()),
            claims: [("name".to_owned(), json!("Carol Tan"))]
                .into_iter()
                .collect(),
            ..Default::default()
        })
        .await;
    let device = s.enrol(&u.sub).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid email profile")
        .await;
    let details = json!([{"type": "payment_initiation", "instructedAmount": {"currency": "SGD", "amount": "42.00"}}]);
    let id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid email profile"),
                ("login_hint", HINT),
                ("binding_message", "Pay 42"),
                ("authorization_details", &details.to_string()),
            ],
        )
        .await;

    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");

    let list = device.challenges(&s).await;
    let shown = device.verify(&s, &list[0]).await;
    assert_eq!(shown.binding_message.as_deref(), Some("Pay 42"));
    assert_eq!(shown.client_name, "Test Bank");
    assert_eq!(shown.scope, "openid email profile");
    assert_eq!(shown.authorization_details, Some(details.clone()));
    let jws = device.decision_jws(&list[0], Decision::Approve, &list[0].challenge);
    let a = device.send_decision(&s, &list[0].id, &jws).await;
    assert_eq!(
        (a.status.as_u16(), a.body["state"].as_str()),
        (200, Some("approved")),
        "{}",
        a.body
    );

    let t = s.token(&auth, &id).await;
    assert_eq!(t.status, 200, "{}", t.body);
    assert_eq!(t.headers["cache-control"], "no-store");
    assert_eq!(t.body["token_type"], "Bearer");
    assert_eq!(t.body["scope"], "openid email profile");
    assert!(t.body["expires_in"].as_u64().unwrap() > 0);
    assert_eq!(t.body["authorization_details"], details);

    let (header, id_token) = s.verify_jwt(t.body["id_token"].as_str().unwrap()).await;
    assert_eq!(header.alg, "ES256");
    assert_eq!(id_token["iss"], s.base);
    assert_eq!(id_token["sub"], u.sub);
    assert_eq!(id_token["aud"], auth.client_id());
    assert_eq!(id_token["email"], HINT);
    assert_eq!(id_token["name"], "Carol Tan");
    assert_eq!(id_token["acr"], "urn:backchannel:acr:device:uv");
    assert_eq!(id_token["amr"], json!(["pop", "user", "mfa"]));
    for claim in ["iat", "exp", "auth_time"] {
        assert!(id_token[claim].as_i64().is_some(), "{claim}");
    }
    let access_token = t.body["access_token"].as_str().unwrap();
    assert_eq!(
        id_token["at_hash"],
        jose::hash_half(Algorithm::ES256, access_token.as_bytes())
    );

    let (header, at) = s.verify_jwt(access_token).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(at["client_id"], auth.client_id());
    assert_eq!(at["sub"], u.sub);
    assert_eq!(at["authorization_details"], details);
    assert!(at["jti"].is_string());

    s.token(&auth, &id).await.expect_error(400, "invalid_grant");
}

#[tokio::test]
async fn denial_is_access_denied() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.key_client(Algorithm::EdDSA).await;
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    assert_eq!(
        device.decide_only(&s, Decision::Deny).await.body["state"],
        "denied"
    );
    s.token(&auth, &id).await.expect_error(400, "access_denied");
}

#[tokio::test]
async fn slow_down_grows_the_interval_and_expiry_ends_the_request() {
    let (s, clock) = TestServer::start_clocked().await;
    s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretPost, "openid")
        .await;
    let id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("requested_expiry", "60"),
            ],
        )
        .await;

    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");
    let a = s.token(&auth, &id).await;
    a.expect_error(400, "slow_down");
    clock.advance_secs(9);
    s.token(&auth, &id).await.expect_error(400, "slow_down"); // the interval is now 10, then 15
    clock.advance_secs(15);
    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");
    clock.advance_secs(14);
    s.token(&auth, &id).await.expect_error(400, "slow_down");
    clock.advance_secs(60);
    s.token(&auth, &id).await.expect_error(400, "expired_token");
}

#[tokio::test]
async fn unknown_foreign_and_bad_grants() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let mine = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let theirs = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let id = s
        .start_request(&mine, &[("scope", "openid"), ("login_hint", HINT)])
        .await;

    s.token(&theirs, &id)
        .await
        .expect_error(400, "invalid_grant");
    s.token(&mine, "no-such-request")
        .await
        .expect_error(400, "invalid_grant");
    s.token(&mine, "")
        .await
        .expect_error(400, "invalid_request");
    s.post_form(
        "/token",
        &mine,
        &[("grant_type", "authorization_code"), ("code", "x")],
    )
    .await
    .expect_error(400, "unsupported_grant_type");
    s.post_form("/token", &mine, &[("auth_req_id", &id)])
        .await
        .expect_error(400, "invalid_request");
    let bad = Auth::Basic(mine.client_id().into(), "nope".into());
    let a = s.token(&bad, &id).await;
    a.expect_error(401, "invalid_client");
    assert!(a.headers.contains_key("www-authenticate"));
    // The Okta alias answers the same.
    s.post_form(
        "/oauth2/v1/token",
        &mine,
        &[("grant_type", GRANT_TYPE_CIBA), ("auth_req_id", &id)],
    )
    .await
    .expect_error(400, "authorization_pending");
}

#[tokio::test]
async fn push_clients_may_not_poll() {
    let s = TestServer::start().await;
    let (id, secret) = s
        .client(NewClient {
            name: "Pusher".into(),
            delivery_mode: Some(DeliveryMode::Push),
            notification_endpoint: Some("https://rp.example/cb".into()),
            ..Default::default()
        })
        .await;
    s.token(&Auth::Basic(id, secret.unwrap()), "anything")
        .await
        .expect_error(400, "unauthorized_client");
}

#[tokio::test]
async fn twenty_racing_polls_get_exactly_one_token_response() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.key_client(Algorithm::ES256).await;
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    assert_eq!(device.decide_only(&s, Decision::Approve).await.status, 200);
    let polls = (0..20).map(|_| s.token(&auth, &id));
    let answers = futures_util::future::join_all(polls).await;
    let ok = answers.iter().filter(|a| a.status == 200).count();
    assert_eq!(ok, 1, "exactly one poll gets tokens");
    for a in answers.iter().filter(|a| a.status != 200) {
        a.expect_error(400, "invalid_grant");
    }
}

#[tokio::test]
async fn id_token_algorithm_follows_the_client() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let (client_id, secret) = s
        .client(NewClient {
            name: "RSA shop".into(),
            id_token_signing_alg: Some("RS256".into()),
            ..Default::default()
        })
        .await;
    let auth = Auth::Basic(client_id, secret.unwrap());
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    device.decide_only(&s, Decision::Approve).await;
    let t = s.token(&auth, &id).await;
    let (header, claims) = s.verify_jwt(t.body["id_token"].as_str().unwrap()).await;
    assert_eq!(header.alg, "RS256");
    // And it works as an id_token_hint for the same client.
    let again = s
        .bc_authorize(
            &auth,
            &[
                ("scope", "openid"),
                ("id_token_hint", t.body["id_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(claims["sub"].is_string());
    // Not for another client, and not when tampered with.
    let other = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    s.bc_authorize(
        &other,
        &[
            ("scope", "openid"),
            ("id_token_hint", t.body["id_token"].as_str().unwrap()),
        ],
    )
    .await
    .expect_error(400, "invalid_request");
    let mut forged = t.body["id_token"].as_str().unwrap().to_owned();
    forged.insert(forged.len() - 5, 'A');
    s.bc_authorize(&auth, &[("scope", "openid"), ("id_token_hint", &forged)])
        .await
        .expect_error(400, "invalid_request");
}
