//! Userinfo over HTTP (OIDC Core §5.3, RFC 6750): the claims each scope releases, `sub` equal
//! to the ID token's, the token in the header or a POST form body, and the challenges: none
//! sent is a bare `Bearer` challenge, an expired, revoked, malformed or foreign one is
//! `invalid_token`.

use backchannel_protocol::jose::{self, Algorithm, SigningKey};
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::admin::NewUser;
use serde_json::json;

use crate::support::{TestDevice, TestServer, now_secs};

const HINT: &str = "uma@example.com";

async fn user(s: &TestServer) -> TestDevice {
    let u = s
        .user(NewUser {
            email: Some(HINT.into()),
            phone: Some("+6591234567".into()),
            claims: [
                ("name".to_owned(), json!("Uma Lim")),
                ("address".to_owned(), json!({"country": "SG"})),
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        })
        .await;
    s.enrol(&u.sub).await
}

#[tokio::test]
async fn userinfo_releases_what_each_scope_releases() {
    let s = TestServer::start().await;
    let device = user(&s).await;
    let auth = s
        .client_with(
            ClientAuthMethod::ClientSecretBasic,
            "openid email profile phone",
            false,
        )
        .await;
    for (scope, expected) in [
        ("openid", vec!["sub"]),
        ("openid email", vec!["email", "email_verified", "sub"]),
        ("openid profile", vec!["name", "sub"]),
        ("openid phone", vec!["phone_number", "sub"]),
    ] {
        let t = s.tokens(&auth, &device, HINT, scope).await;
        let a = s.userinfo(Some(t.access_token())).await;
        assert_eq!(a.status, 200, "{scope}: {}", a.body);
        assert_eq!(a.body["sub"], t.sub.as_str(), "the ID token's sub");
        let mut names: Vec<&str> = a
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        assert_eq!(names, expected, "{scope}");
        if scope == "openid email" {
            assert_eq!(a.body["email"], HINT);
        }
    }
}

#[tokio::test]
async fn userinfo_takes_the_token_by_header_or_post_form_but_not_both() {
    let s = TestServer::start().await;
    let device = user(&s).await;
    let auth = s
        .client_with(ClientAuthMethod::ClientSecretBasic, "openid email", false)
        .await;
    let t = s.tokens(&auth, &device, HINT, "openid email").await;
    let at = t.access_token();
    let post = |form: Vec<(&'static str, String)>, header: bool| {
        let mut req = s.http.post(s.url("/userinfo")).form(&form);
        if header {
            req = req.bearer_auth(at);
        }
        async move { crate::support::Answer::from(req.send().await.unwrap()).await }
    };
    let by_form = post(vec![("access_token", at.to_owned())], false).await;
    assert_eq!(by_form.status, 200, "{}", by_form.body);
    assert_eq!(by_form.body["email"], HINT);
    let by_header = post(vec![], true).await;
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    post(vec![("access_token", at.to_owned())], true)
        .await
        .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn userinfo_challenges_missing_and_invalid_tokens() {
    let (s, clock) = TestServer::start_clocked().await;
    let device = user(&s).await;
    let auth = s
        .client_with(ClientAuthMethod::ClientSecretBasic, "openid", false)
        .await;

    // No token: a challenge with no error code, and no error body.
    let none = s.userinfo(None).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.headers["www-authenticate"],
        "Bearer realm=\"backchannel\""
    );
    assert_eq!(none.body, json!(""));

    let invalid = |a: crate::support::Answer| {
        a.expect_error(401, "invalid_token");
        assert_eq!(
            a.headers["www-authenticate"],
            "Bearer realm=\"backchannel\", error=\"invalid_token\""
        );
    };
    // Malformed.
    invalid(s.userinfo(Some("not-a-jwt")).await);
    // Foreign: shaped like ours, signed by a key that is not.
    let now = now_secs();
    let claims = json!({"iss": s.base, "aud": s.base, "sub": "x", "client_id": auth.client_id(),
        "iat": now, "exp": now + 600, "jti": "forged", "scope": "openid"});
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    invalid(
        s.userinfo(Some(
            &jose::sign_jwt(&key, Some("at+jwt"), &claims).unwrap(),
        ))
        .await,
    );
    // An ID token is not an access token.
    let t = s.tokens(&auth, &device, HINT, "openid").await;
    invalid(s.userinfo(t.body["id_token"].as_str()).await);
    // Revoked.
    assert_eq!(s.revoke(&auth, t.access_token()).await.status, 200);
    invalid(s.userinfo(Some(t.access_token())).await);
    // Expired.
    let t = s.tokens(&auth, &device, HINT, "openid").await;
    assert_eq!(s.userinfo(Some(t.access_token())).await.status, 200);
    clock.advance_secs(601);
    invalid(s.userinfo(Some(t.access_token())).await);
}
