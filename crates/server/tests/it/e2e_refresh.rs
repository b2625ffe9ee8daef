//! Refresh tokens over HTTP (RFC 6749 §6, RFC 9700 §4.14.2): issued to clients registered
//! with the grant, rotated on every use, a reuse revokes the whole family (and the access
//! tokens minted from it), bound to their client, bounded by idle and absolute lifetimes; the
//! admin API's `grant_types`; push mode's `rt_hash`.

use std::sync::Arc;

use backchannel_protocol::device::Decision;
use backchannel_protocol::jose::{self, Algorithm};
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode, GRANT_TYPE_REFRESH_TOKEN};
use backchannel_server::domain::admin::NewClient;
use backchannel_server::domain::clock::{Clock, ManualClock, SystemClock};
use serde_json::json;

use crate::e2e_notify::Receiver;
use crate::support::{Auth, TestServer};

const HINT: &str = "rita@example.com";
const BASIC: ClientAuthMethod = ClientAuthMethod::ClientSecretBasic;

#[tokio::test]
async fn refresh_rotates_and_a_reused_token_revokes_the_family() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid email", true).await;
    let first = s.tokens(&auth, &device, HINT, "openid email").await;
    let rt1 = first.refresh_token().to_owned();
    assert_eq!(rt1.len(), 32, "160 random bits");
    assert!(rt1.bytes().all(|b| b.is_ascii_alphanumeric()));

    let second = s.refresh(&auth, &rt1).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert_eq!(second.headers["cache-control"], "no-store");
    assert_eq!(second.body["token_type"], "Bearer");
    assert_eq!(second.body["scope"], "openid email");
    let rt2 = second.body["refresh_token"].as_str().unwrap().to_owned();
    let at2 = second.body["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rt2, rt1, "rotated");
    assert_ne!(at2, first.access_token());
    let (header, claims) = s.verify_jwt(&at2).await;
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(claims["sub"], first.sub);
    assert_eq!(claims["client_id"], auth.client_id());
    assert_eq!(s.userinfo(Some(&at2)).await.status, 200);

    // The rotated token comes back: someone else holds it. The whole family ends, the
    // current refresh token with it, and the access tokens minted from the family.
    s.refresh(&auth, &rt1)
        .await
        .expect_error(400, "invalid_grant");
    s.refresh(&auth, &rt2)
        .await
        .expect_error(400, "invalid_grant");
    for at in [first.access_token(), at2.as_str()] {
        assert_eq!(s.introspect(&auth, at).await, json!({"active": false}));
        s.userinfo(Some(at))
            .await
            .expect_error(401, "invalid_token");
    }
}

#[tokio::test]
async fn refresh_tokens_are_bound_to_their_client_and_to_the_grant() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid", true).await;
    let other = s
        .client_with(ClientAuthMethod::ClientSecretPost, "openid", true)
        .await;
    let rt = s
        .tokens(&auth, &device, HINT, "openid")
        .await
        .refresh_token()
        .to_owned();
    // Another client cannot use it, and trying does not spend it.
    s.refresh(&other, &rt)
        .await
        .expect_error(400, "invalid_grant");
    assert_eq!(s.refresh(&auth, &rt).await.status, 200);
    s.refresh(&auth, "never-issued")
        .await
        .expect_error(400, "invalid_grant");
    s.post_form("/token", &auth, &[("grant_type", GRANT_TYPE_REFRESH_TOKEN)])
        .await
        .expect_error(400, "invalid_request");

    // A client without the grant gets no refresh token and may not use the grant.
    let plain = s.client_with(BASIC, "openid", false).await;
    let t = s.tokens(&plain, &device, HINT, "openid").await;
    assert!(t.body.get("refresh_token").is_none(), "{}", t.body);
    s.refresh(&plain, &rt)
        .await
        .expect_error(400, "unauthorized_client");
}

#[tokio::test]
async fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid email phone", true).await;
    let rt = s
        .tokens(&auth, &device, HINT, "openid email")
        .await
        .refresh_token()
        .to_owned();
    let wider = [
        ("grant_type", GRANT_TYPE_REFRESH_TOKEN),
        ("refresh_token", rt.as_str()),
        ("scope", "openid phone"),
    ];
    s.post_form("/token", &auth, &wider)
        .await
        .expect_error(400, "invalid_scope");
    let narrower = [
        ("grant_type", GRANT_TYPE_REFRESH_TOKEN),
        ("refresh_token", rt.as_str()),
        ("scope", "openid"),
    ];
    let a = s.post_form("/token", &auth, &narrower).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["scope"], "openid");
    // The family keeps what was granted.
    let next = a.body["refresh_token"].as_str().unwrap();
    assert_eq!(s.refresh(&auth, next).await.body["scope"], "openid email");
}

#[tokio::test]
async fn idle_and_absolute_lifetimes_end_refresh_tokens() {
    let clock = ManualClock::new(SystemClock.now_ms());
    let s = TestServer::start_on(
        |c| {
            c.token.refresh_token_idle_secs = 60;
            c.token.refresh_token_absolute_secs = 150;
        },
        Arc::new(clock.clone()),
    )
    .await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid", true).await;

    let idle = s
        .tokens(&auth, &device, HINT, "openid")
        .await
        .refresh_token()
        .to_owned();
    clock.advance_secs(60);
    s.refresh(&auth, &idle)
        .await
        .expect_error(400, "invalid_grant");

    // Used within the idle time, a family lives until its absolute end, however used.
    let mut rt = s
        .tokens(&auth, &device, HINT, "openid")
        .await
        .refresh_token()
        .to_owned();
    for _ in 0..2 {
        clock.advance_secs(59);
        let a = s.refresh(&auth, &rt).await;
        assert_eq!(a.status, 200, "{}", a.body);
        rt = a.body["refresh_token"].as_str().unwrap().to_owned();
    }
    assert_eq!(s.introspect(&auth, &rt).await["active"], true);
    clock.advance_secs(32);
    assert_eq!(s.introspect(&auth, &rt).await, json!({"active": false}));
    s.refresh(&auth, &rt)
        .await
        .expect_error(400, "invalid_grant");
}

#[tokio::test]
async fn discovery_lists_the_grant_and_the_token_endpoints() {
    let s = TestServer::start().await;
    let meta: serde_json::Value = reqwest::get(s.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants = meta["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!("refresh_token")));
    assert!(grants.contains(&json!("urn:openid:params:grant-type:ciba")));
    assert_eq!(meta["userinfo_endpoint"], s.url("/userinfo"));
    assert_eq!(meta["introspection_endpoint"], s.url("/introspect"));
    assert_eq!(meta["revocation_endpoint"], s.url("/revoke"));
    assert_eq!(
        meta["introspection_endpoint_auth_methods_supported"],
        meta["token_endpoint_auth_methods_supported"]
    );
    assert_eq!(
        meta["revocation_endpoint_auth_methods_supported"],
        meta["token_endpoint_auth_methods_supported"]
    );
}

#[tokio::test]
async fn the_admin_api_takes_rfc_7591_grant_types() {
    let s = TestServer::start().await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value| {
        http.post(s.url("/admin/v1/clients"))
            .bearer_auth("test-admin-token")
            .json(&body)
            .send()
    };
    let created = post(json!({
        "client_name": "Refreshing Bank",
        "grant_types": ["urn:openid:params:grant-type:ciba", "refresh_token"],
    }))
    .await
    .unwrap();
    assert_eq!(created.status(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let view: serde_json::Value = http
        .get(s.url(&format!(
            "/admin/v1/clients/{}",
            created["client_id"].as_str().unwrap()
        )))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        view["grant_types"],
        json!(["urn:openid:params:grant-type:ciba", "refresh_token"])
    );
    let refused = post(json!({"client_name": "X", "grant_types": ["authorization_code"]}))
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn push_mode_id_tokens_carry_the_rt_hash() {
    let rx = Receiver::start(&[]).await;
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let (id, secret) = s
        .client(NewClient {
            name: "Push Bank".into(),
            delivery_mode: Some(DeliveryMode::Push),
            notification_endpoint: Some(format!("{}/push", rx.base)),
            grant_types: Some(vec![
                "urn:openid:params:grant-type:ciba".into(),
                "refresh_token".into(),
            ]),
            ..Default::default()
        })
        .await;
    let auth = Auth::Basic(id, secret.unwrap());
    s.start_request(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("client_notification_token", "push-token"),
        ],
    )
    .await;
    device.decide_only(&s, Decision::Approve).await;
    let body = rx.wait_calls(1).await[0].body.clone();
    let rt = body["refresh_token"].as_str().unwrap();
    let claims = s.verify_jwt(body["id_token"].as_str().unwrap()).await.1;
    assert_eq!(
        claims["urn:openid:params:jwt:claim:rt_hash"],
        jose::hash_half(Algorithm::ES256, rt.as_bytes())
    );
    // The pushed refresh token works like a polled one.
    assert_eq!(s.refresh(&auth, rt).await.status, 200);
}
