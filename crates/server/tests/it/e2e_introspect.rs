//! Introspection (RFC 7662) and revocation (RFC 7009) over HTTP, with every client
//! authentication method of the token endpoint: active tokens described, anything unknown,
//! revoked or another client's `{"active": false}`; revoking a refresh token ends its family
//! and the access tokens minted from it; revoked access tokens stay refused until they expire.

use backchannel_protocol::oauth::ClientAuthMethod;
use serde_json::json;

use crate::support::{Auth, TestServer};

const HINT: &str = "ivan@example.com";
const METHODS: [ClientAuthMethod; 3] = [
    ClientAuthMethod::ClientSecretBasic,
    ClientAuthMethod::ClientSecretPost,
    ClientAuthMethod::PrivateKeyJwt,
];

#[tokio::test]
async fn introspection_describes_a_clients_own_tokens_by_every_auth_method() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let stranger = s
        .client_with(ClientAuthMethod::ClientSecretBasic, "openid", true)
        .await;
    let details = json!([{"type": "payment_initiation", "instructedAmount": {"currency": "SGD", "amount": "9.00"}}]);
    for method in METHODS {
        let auth = s.client_with(method, "openid email", true).await;
        let id = s
            .start_request(
                &auth,
                &[
                    ("scope", "openid email"),
                    ("login_hint", HINT),
                    ("authorization_details", &details.to_string()),
                ],
            )
            .await;
        device
            .decide_only(&s, backchannel_protocol::device::Decision::Approve)
            .await;
        let t = s.token(&auth, &id).await;
        assert_eq!(t.status, 200, "{}", t.body);
        let at = t.body["access_token"].as_str().unwrap();
        let rt = t.body["refresh_token"].as_str().unwrap();

        let v = s.introspect(&auth, at).await;
        assert_eq!(v["active"], true, "{method:?}: {v}");
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["scope"], "openid email");
        assert_eq!(v["client_id"], auth.client_id());
        assert_eq!(v["authorization_details"], details);
        let (_, claims) = s.verify_jwt(at).await;
        for member in ["sub", "exp", "iat"] {
            assert_eq!(v[member], claims[member], "{member}");
        }
        let r = s.introspect(&auth, rt).await;
        assert_eq!(r["active"], true, "{r}");
        assert_eq!(r["token_type"], "refresh_token");
        assert_eq!(r["sub"], claims["sub"]);
        // The hint orders the search; it is never required and never wrong.
        for (token, hint) in [(at, "refresh_token"), (rt, "access_token"), (at, "bogus")] {
            let a = s
                .post_form(
                    "/introspect",
                    &auth,
                    &[("token", token), ("token_type_hint", hint)],
                )
                .await;
            assert_eq!(a.body["active"], true, "{hint}: {}", a.body);
        }
        // Another client learns nothing.
        assert_eq!(s.introspect(&stranger, at).await, json!({"active": false}));
        assert_eq!(s.introspect(&stranger, rt).await, json!({"active": false}));
        assert_eq!(
            s.introspect(&auth, "unknown").await,
            json!({"active": false})
        );
    }
    s.post_form("/introspect", &Auth::None, &[("token", "x")])
        .await
        .expect_error(401, "invalid_client");
    s.post_form("/introspect", &stranger, &[])
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn revocation_by_every_auth_method_ends_tokens_and_families() {
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    for method in METHODS {
        let auth = s.client_with(method, "openid", true).await;
        let stranger = s
            .client_with(ClientAuthMethod::ClientSecretPost, "openid", true)
            .await;

        // A refresh token: its family ends, with the access tokens minted from it.
        let t = s.tokens(&auth, &device, HINT, "openid").await;
        let refreshed = s.refresh(&auth, t.refresh_token()).await;
        let rt = refreshed.body["refresh_token"].as_str().unwrap();
        let at = refreshed.body["access_token"].as_str().unwrap();
        let a = s.revoke(&auth, rt).await;
        assert_eq!(
            (a.status.as_u16(), &a.body),
            (200, &json!("")),
            "{method:?}"
        );
        assert_eq!(s.introspect(&auth, rt).await, json!({"active": false}));
        for token in [at, t.access_token()] {
            assert_eq!(s.introspect(&auth, token).await, json!({"active": false}));
            s.userinfo(Some(token))
                .await
                .expect_error(401, "invalid_token");
        }
        s.refresh(&auth, rt)
            .await
            .expect_error(400, "invalid_grant");

        // An access token alone.
        let t = s.tokens(&auth, &device, HINT, "openid").await;
        let with_hint = s
            .post_form(
                "/revoke",
                &auth,
                &[
                    ("token", t.access_token()),
                    ("token_type_hint", "refresh_token"),
                ],
            )
            .await;
        assert_eq!(with_hint.status, 200);
        assert_eq!(s.introspect(&auth, t.access_token()).await["active"], false);
        s.userinfo(Some(t.access_token()))
            .await
            .expect_error(401, "invalid_token");
        // Its refresh token was not revoked with it.
        assert_eq!(s.introspect(&auth, t.refresh_token()).await["active"], true);

        // Another client's tokens: answered the same, revoked not at all.
        for token in [t.refresh_token(), "unknown-token"] {
            assert_eq!(s.revoke(&stranger, token).await.status, 200);
        }
        assert_eq!(s.introspect(&auth, t.refresh_token()).await["active"], true);
        s.post_form("/revoke", &auth, &[])
            .await
            .expect_error(400, "invalid_request");
    }
    s.post_form("/revoke", &Auth::None, &[("token", "x")])
        .await
        .expect_error(401, "invalid_client");
}
