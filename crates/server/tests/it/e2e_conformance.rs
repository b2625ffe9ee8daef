//! Rules the OpenID Foundation FAPI-CIBA test plan checks: error bodies carry only `error`,
//! `error_description` and `error_uri`; every response names its log line in `X-Request-Id`;
//! a signed request object that fails a check is `invalid_request`, its `typ` compared
//! case-insensitively, `exp` at most 60 minutes ahead, `nbf` at most 60 minutes back and not
//! in the future, and `requested_expiry` accepted as a JSON string.

use std::collections::HashSet;

use backchannel_protocol::jose::{self, Algorithm, Jwks, SigningKey};
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::domain::admin::NewClient;
use serde_json::{Value, json};

use crate::support::{Answer, Auth, TestServer, assert_error_body_members, now_secs};

const HINT: &str = "cora@example.com";

#[tokio::test]
async fn every_response_carries_a_distinct_request_id_and_errors_only_spec_members() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let mut ids = HashSet::new();
    let mut seen = |a: &Answer| {
        let id = a.request_id().expect("X-Request-Id").to_owned();
        assert!(!id.is_empty());
        assert!(ids.insert(id), "request ids are distinct");
    };
    // Successes.
    for path in ["/.well-known/openid-configuration", "/jwks", "/healthz"] {
        let a = Answer::from(s.http.get(s.url(path)).send().await.unwrap()).await;
        assert_eq!(a.status, 200);
        seen(&a);
    }
    let started = s
        .bc_authorize(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    assert_eq!(started.status, 200);
    seen(&started);
    // Errors of every layer: OAuth, the poll, unknown paths and methods, the admin and
    // device APIs, userinfo.
    let errors = [
        s.bc_authorize(&auth, &[("scope", "openid")]).await,
        s.token(&auth, "unknown").await,
        s.post_form("/token", &Auth::None, &[("grant_type", "x")])
            .await,
        Answer::from(s.http.get(s.url("/nowhere")).send().await.unwrap()).await,
        Answer::from(s.http.get(s.url("/token")).send().await.unwrap()).await,
        Answer::from(s.http.get(s.url("/admin/v1/clients")).send().await.unwrap()).await,
        Answer::from(
            s.http
                .get(s.url("/device/v1/challenges"))
                .send()
                .await
                .unwrap(),
        )
        .await,
        s.userinfo(Some("garbage")).await,
    ];
    for a in &errors {
        assert!(a.status.is_client_error(), "{}", a.status);
        assert_error_body_members(&a.body);
        assert!(a.body["error"].is_string(), "{}", a.body);
        seen(a);
    }
}

struct Signer {
    auth: Auth,
    key: SigningKey,
    id: String,
}

async fn signer(s: &TestServer) -> Signer {
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let (id, _) = s
        .client(NewClient {
            name: "Signer".into(),
            auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
            jwks: Some(Jwks {
                keys: vec![key.public_jwk()],
            }),
            request_signing_alg: Some("ES256".into()),
            ..Default::default()
        })
        .await;
    Signer {
        auth: Auth::Jwt(id.clone(), key.clone()),
        key,
        id,
    }
}

impl Signer {
    fn claims(&self, s: &TestServer) -> Value {
        let now = now_secs();
        json!({"iss": self.id, "aud": s.base, "iat": now, "nbf": now, "exp": now + 300,
            "jti": jose::random_token(16).unwrap(), "scope": "openid", "login_hint": HINT})
    }

    async fn send(&self, s: &TestServer, typ: Option<&str>, claims: &Value) -> Answer {
        let request = jose::sign_jwt(&self.key, typ, claims).unwrap();
        s.bc_authorize(&self.auth, &[("request", &request)]).await
    }
}

#[tokio::test]
async fn request_object_typ_is_compared_case_insensitively() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let signer = signer(&s).await;
    for typ in [
        None,
        Some("JWT"),
        Some("jwt"),
        Some("oauth-authz-req+jwt"),
        Some("OAuth-Authz-Req+JWT"),
    ] {
        let a = signer.send(&s, typ, &signer.claims(&s)).await;
        assert_eq!(a.status, 200, "{typ:?}: {}", a.body);
    }
    for typ in ["at+jwt", "secevent+jwt"] {
        signer
            .send(&s, Some(typ), &signer.claims(&s))
            .await
            .expect_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn request_object_times_are_bounded_to_an_hour_and_failures_are_invalid_request() {
    // A lifetime bound of two hours, so that the 60-minute rules are what refuses.
    let s = TestServer::start_with(|c| c.ciba.assertion_max_lifetime_secs = 7200).await;
    s.user_with_device(HINT).await;
    let signer = signer(&s).await;
    let now = now_secs();
    let with = |changes: &[(&str, Value)]| {
        let mut c = signer.claims(&s);
        for (k, v) in changes {
            c[*k] = v.clone();
        }
        c
    };
    // Within the bounds (the configured 60 s skew on top).
    for ok in [
        with(&[("exp", json!(now + 3600))]),
        with(&[("nbf", json!(now - 3600)), ("iat", json!(now - 3600))]),
    ] {
        let a = signer.send(&s, None, &ok).await;
        assert_eq!(a.status, 200, "{ok}: {}", a.body);
    }
    for bad in [
        with(&[("exp", json!(now + 3600 + 61))]),
        with(&[
            ("nbf", json!(now - 3600 - 61)),
            ("iat", json!(now - 3600 - 61)),
        ]),
        with(&[("nbf", json!(now + 120))]),
        with(&[("aud", json!("https://elsewhere.example"))]),
    ] {
        let a = signer.send(&s, None, &bad).await;
        a.expect_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn requested_expiry_may_be_a_json_string_in_a_request_object() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let signer = signer(&s).await;
    for expiry in [json!("30"), json!(30)] {
        let mut c = signer.claims(&s);
        c["requested_expiry"] = expiry.clone();
        let a = signer.send(&s, None, &c).await;
        assert_eq!(a.status, 200, "{expiry}: {}", a.body);
        assert_eq!(a.body["expires_in"], 30);
    }
}
