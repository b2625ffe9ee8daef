//! "Disabled means disabled": a user, client or device disabled (or a user's last device
//! removed) after an approval and before its redemption gets no tokens; a push client is not
//! sent them; a disabled user's refresh tokens are revoked and refused; userinfo and
//! introspection treat the tokens of a disabled user or client as inactive.

use backchannel_protocol::device::Decision;
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode};
use backchannel_server::domain::Domain;
use backchannel_server::domain::admin::NewClient;
use serde_json::json;

use crate::e2e_notify::Receiver;
use crate::support::{Auth, TestServer};

const HINT: &str = "dora@example.com";
const BASIC: ClientAuthMethod = ClientAuthMethod::ClientSecretBasic;

#[tokio::test]
async fn a_user_disabled_after_approval_gets_nothing_and_loses_refresh_tokens() {
    let s = TestServer::start().await;
    let (user, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid", true).await;
    let earlier = s.tokens(&auth, &device, HINT, "openid").await;
    let id = s.approved_request(&auth, &device, HINT, "openid").await;

    s.server.domain.disable_user(&user.sub).await.unwrap();
    for _ in 0..2 {
        s.token(&auth, &id).await.expect_error(400, "access_denied");
    }
    s.refresh(&auth, earlier.refresh_token())
        .await
        .expect_error(400, "invalid_grant");
    let hash = Domain::hash_hex(earlier.refresh_token());
    let (_, family) = s
        .server
        .domain
        .stores
        .tokens
        .get_refresh_token(&hash)
        .await
        .unwrap()
        .unwrap();
    assert!(
        family.revoked_at.is_some(),
        "revoked when the user was disabled"
    );
    s.userinfo(Some(earlier.access_token()))
        .await
        .expect_error(401, "invalid_token");
    assert_eq!(
        s.introspect(&auth, earlier.access_token()).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn a_refresh_is_refused_once_the_user_is_disabled_even_if_not_revoked() {
    let s = TestServer::start().await;
    let (user, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid", true).await;
    let t = s.tokens(&auth, &device, HINT, "openid").await;
    // Disabled in the store alone (as another process might): the refresh still checks.
    let users = &s.server.domain.stores.users;
    assert!(users.set_user_disabled(&user.sub, true).await.unwrap());
    assert_eq!(
        s.introspect(&auth, t.refresh_token()).await["active"],
        false
    );
    s.refresh(&auth, t.refresh_token())
        .await
        .expect_error(400, "invalid_grant");
}

#[tokio::test]
async fn a_client_disabled_after_approval_gets_nothing_and_its_tokens_go_inactive() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid", true).await;
    let earlier = s.tokens(&auth, &device, HINT, "openid").await;
    let id = s.approved_request(&auth, &device, HINT, "openid").await;
    s.server
        .domain
        .disable_client(auth.client_id())
        .await
        .unwrap();
    // A disabled client cannot authenticate: no tokens, and no refresh.
    s.token(&auth, &id)
        .await
        .expect_error(401, "invalid_client");
    s.refresh(&auth, earlier.refresh_token())
        .await
        .expect_error(401, "invalid_client");
    s.userinfo(Some(earlier.access_token()))
        .await
        .expect_error(401, "invalid_token");
}

#[tokio::test]
async fn a_device_disabled_or_removed_after_approval_yields_no_tokens() {
    let s = TestServer::start().await;
    let (user, device) = s.user_with_device(HINT).await;
    let auth = s.client_with(BASIC, "openid", true).await;
    let earlier = s.tokens(&auth, &device, HINT, "openid").await;
    let id = s.approved_request(&auth, &device, HINT, "openid").await;
    s.server
        .domain
        .disable_device_by_operator(&device.id)
        .await
        .unwrap();
    s.token(&auth, &id).await.expect_error(400, "access_denied");
    // The refresh grant rested on that device's approval.
    s.refresh(&auth, earlier.refresh_token())
        .await
        .expect_error(400, "invalid_grant");

    // The user's last device removes itself after approving.
    let second = s.enrol(&user.sub).await;
    let id = s.approved_request(&auth, &second, HINT, "openid").await;
    let path = "/device/v1/device";
    let removed = s
        .http
        .delete(s.url(path))
        .header("authorization", second.auth("DELETE", path))
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{}", removed.status());
    s.token(&auth, &id).await.expect_error(400, "access_denied");
}

#[tokio::test]
async fn a_push_client_is_not_sent_tokens_for_a_disabled_user() {
    let rx = Receiver::start(&[]).await;
    let s = TestServer::start().await;
    let (user, device) = s.user_with_device(HINT).await;
    let (id, secret) = s
        .client(NewClient {
            name: "Push Bank".into(),
            delivery_mode: Some(DeliveryMode::Push),
            notification_endpoint: Some(format!("{}/push", rx.base)),
            ..Default::default()
        })
        .await;
    let auth = Auth::Basic(id, secret.unwrap());
    let auth_req_id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("client_notification_token", "push-token"),
            ],
        )
        .await;
    // Disabled before the decision reaches the outbox: the push is minted after it.
    s.server.domain.disable_user(&user.sub).await.unwrap();
    assert_eq!(device.decide_only(&s, Decision::Approve).await.status, 200);
    let calls = rx.wait_calls(1).await;
    assert_eq!(
        calls[0].body,
        json!({"error": "access_denied", "auth_req_id": auth_req_id})
    );
}
