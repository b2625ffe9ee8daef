//! The external HTTP channel round trip: a challenge handed to an organisation's system with
//! its bearer token, the decision posted back to the authenticated callback; forged, repeated
//! and late callbacks refused.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::admin::NewUser;
use backchannel_server::domain::clock::{Clock, ManualClock, SystemClock};
use serde_json::{Value, json};

use crate::support::{Answer, Recorder, TestServer};

const HINT: &str = "quinn@example.com";

/// What the organisation's system received: the Authorization header and the body.
type Received = (Option<String>, Value);

#[derive(Clone, Default)]
pub(crate) struct Org {
    pub(crate) received: Recorder<Received>,
}

async fn org_post(State(org): State<Org>, headers: HeaderMap, body: String) -> &'static str {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    org.received
        .record((bearer, serde_json::from_str(&body).unwrap()));
    "ok"
}

pub(crate) async fn org() -> (Org, String) {
    let org = Org::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/challenges", listener.local_addr().unwrap());
    let app = axum::Router::new()
        .route("/challenges", axum::routing::post(org_post))
        .with_state(org.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (org, url)
}

pub(crate) async fn callback(s: &TestServer, msg: &Value, token: &str, decision: &str) -> Answer {
    let r = s
        .http
        .post(msg["callback_url"].as_str().unwrap())
        .bearer_auth(token)
        .json(&json!({ "decision": decision, "user_verified": true }))
        .send()
        .await
        .unwrap();
    Answer::from(r).await
}

#[tokio::test]
async fn the_external_channel_round_trip() {
    let (org, url) = org().await;
    let (s, clock) = {
        let clock = ManualClock::new(SystemClock.now_ms());
        let s = TestServer::start_on(
            |c| {
                c.external.url = url.clone();
                c.external.token = "org-secret".into();
            },
            Arc::new(clock.clone()),
        )
        .await;
        (s, clock)
    };
    // No device at all: the organisation's own app reaches the user.
    s.user(NewUser {
        email: Some(HINT.into()),
        nric: Some("S8076606H".into()),
        ..Default::default()
    })
    .await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("binding_message", "Org 77"),
            ],
        )
        .await;
    let got = org.received.wait(1).await;
    let (bearer, msg) = &got[0];
    assert_eq!(bearer.as_deref(), Some("Bearer org-secret"));
    assert_eq!(msg["user"]["email"], HINT);
    assert_eq!(msg["user"]["nric"], "S8076606H");
    assert_eq!(msg["client"]["name"], "Test Bank");
    assert_eq!(msg["binding_message"], "Org 77");
    assert_eq!(msg["scope"], "openid");
    assert!(msg["expires_at"].as_i64().unwrap() > 0);
    let token = msg["callback_token"].as_str().unwrap();

    // Forged: a made-up token, or none.
    callback(&s, msg, "forged-token", "approve")
        .await
        .expect_error(401, "invalid_token");
    let r = s
        .http
        .post(msg["callback_url"].as_str().unwrap())
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(401, "invalid_token");
    // Neither approve nor deny: refused, and the challenge stays open.
    callback(&s, msg, token, "maybe")
        .await
        .expect_error(400, "invalid_request");
    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");

    let a = callback(&s, msg, token, "approve").await;
    assert_eq!(
        (a.status.as_u16(), a.body["state"].as_str()),
        (200, Some("approved")),
        "{}",
        a.body
    );
    assert_eq!(s.token(&auth, &id).await.status, 200);
    // Repeated: the challenge is closed.
    callback(&s, msg, token, "deny")
        .await
        .expect_error(409, "challenge_closed");

    // Late: after the request expired.
    let id2 = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("requested_expiry", "30"),
            ],
        )
        .await;
    let got = org.received.wait(2).await;
    let (_, msg2) = &got[1];
    // A token for one challenge does not open another.
    callback(&s, msg2, token, "approve")
        .await
        .expect_error(401, "invalid_token");
    clock.advance_secs(31);
    callback(
        &s,
        msg2,
        msg2["callback_token"].as_str().unwrap(),
        "approve",
    )
    .await
    .expect_error(409, "challenge_closed");
    s.token(&auth, &id2)
        .await
        .expect_error(400, "expired_token");
}

#[tokio::test]
async fn the_channel_serves_only_its_clients() {
    let (_org, url) = org().await;
    let s = TestServer::start_with(|c| {
        c.external.url = url;
        c.external.clients = vec!["someone-else".into()];
    })
    .await;
    s.user(NewUser {
        email: Some(HINT.into()),
        ..Default::default()
    })
    .await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await
        .expect_error(400, "unknown_user_id");
}
