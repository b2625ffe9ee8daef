//! The backchannel authentication endpoint over HTTP: every client authentication method and
//! algorithm, every error code, hints, signed request objects.

use std::sync::{Arc, Mutex};

use axum::routing::get;
use backchannel_protocol::jose::{self, Algorithm, Jwks, SigningKey};
use backchannel_protocol::oauth::{
    CLIENT_ASSERTION_TYPE_JWT_BEARER, ClientAuthMethod, DeliveryMode,
};
use backchannel_server::domain::admin::{NewClient, NewUser};
use serde_json::json;

use crate::support::{Auth, TestServer, assertion, now_secs};

const HINT: &str = "alice@example.com";

#[tokio::test]
async fn each_secret_method_starts_a_request_on_every_alias() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    for method in [
        ClientAuthMethod::ClientSecretBasic,
        ClientAuthMethod::ClientSecretPost,
    ] {
        let auth = s.secret_client(method, "openid").await;
        for path in ["/bc-authorize", "/bc-auth", "/oauth2/v1/bc/authorize"] {
            let a = s
                .post_form(path, &auth, &[("scope", "openid"), ("login_hint", HINT)])
                .await;
            assert_eq!(a.status, 200, "{path}: {}", a.body);
            let id = a.body["auth_req_id"].as_str().unwrap();
            assert!(id.len() >= 43, "auth_req_id carries at least 256 bits");
            assert_eq!(a.body["expires_in"], 300);
            assert_eq!(a.body["interval"], 5);
            assert_eq!(a.headers["cache-control"], "no-store");
        }
    }
}

#[tokio::test]
async fn private_key_jwt_works_with_every_algorithm() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    for alg in Algorithm::ALL {
        let auth = s.key_client(alg).await;
        let a = s
            .bc_authorize(&auth, &[("scope", "openid"), ("login_hint", HINT)])
            .await;
        assert_eq!(a.status, 200, "{}: {}", alg.as_str(), a.body);
    }
}

#[tokio::test]
async fn client_authentication_failures() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let params = [("scope", "openid"), ("login_hint", HINT)];
    let Auth::Basic(id, secret) = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await
    else {
        unreachable!()
    };

    let a = s
        .bc_authorize(&Auth::Basic(id.clone(), "wrong".into()), &params)
        .await;
    a.expect_error(401, "invalid_client");
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );

    let a = s
        .bc_authorize(&Auth::Basic("nobody".into(), "x".into()), &params)
        .await;
    a.expect_error(401, "invalid_client");

    // Registered for Basic, used the form: the method must match.
    let a = s
        .bc_authorize(&Auth::Post(id.clone(), secret.clone()), &params)
        .await;
    a.expect_error(401, "invalid_client");
    assert!(!a.headers.contains_key("www-authenticate"));

    let a = s.bc_authorize(&Auth::None, &params).await;
    a.expect_error(401, "invalid_client");

    // Two methods at once.
    let a = s
        .bc_authorize(
            &Auth::Basic(id.clone(), secret.clone()),
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("client_secret", "x"),
            ],
        )
        .await;
    a.expect_error(400, "invalid_request");

    assert!(
        s.server
            .domain
            .stores
            .clients
            .set_client_disabled(&id, true)
            .await
            .unwrap()
    );
    s.bc_authorize(&Auth::Basic(id, secret), &params)
        .await
        .expect_error(401, "invalid_client");
}

async fn with_assertion(s: &TestServer, id: &str, jwt: &str) -> crate::support::Answer {
    s.bc_authorize(
        &Auth::None,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("client_id", id),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE_JWT_BEARER),
            ("client_assertion", jwt),
        ],
    )
    .await
}

#[tokio::test]
async fn client_assertion_rules() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let Auth::Jwt(id, key) = s.key_client(Algorithm::ES256).await else {
        unreachable!()
    };
    let now = now_secs();
    let sign = |claims: serde_json::Value| jose::sign_jwt(&key, None, &claims).unwrap();
    let good = |aud: &str| json!({"iss": id, "sub": id, "aud": aud, "iat": now, "exp": now + 60, "jti": jose::random_token(12).unwrap()});

    // Accepted audiences: issuer, token endpoint, backchannel endpoint.
    for aud in [s.base.clone(), s.url("/token"), s.url("/bc-authorize")] {
        assert_eq!(
            with_assertion(&s, &id, &sign(good(&aud))).await.status,
            200,
            "aud {aud}"
        );
    }
    // Replay of the same assertion.
    let once = sign(good(&s.base));
    assert_eq!(with_assertion(&s, &id, &once).await.status, 200);
    with_assertion(&s, &id, &once)
        .await
        .expect_error(401, "invalid_client");

    let cases = [
        json!({"iss": id, "sub": id, "aud": "https://elsewhere.example", "iat": now, "exp": now + 60, "jti": "a1"}),
        json!({"iss": id, "sub": id, "aud": s.base, "iat": now - 600, "exp": now - 300, "jti": "a2"}),
        json!({"iss": id, "sub": id, "aud": s.base, "iat": now, "exp": now + 3600, "jti": "a3"}),
        json!({"iss": id, "sub": id, "aud": s.base, "iat": now, "exp": now + 60}),
        json!({"iss": id, "sub": id, "aud": s.base, "iat": now, "jti": "a5"}),
        json!({"iss": id, "sub": "someone-else", "aud": s.base, "iat": now, "exp": now + 60, "jti": "a6"}),
        json!({"iss": id, "sub": id, "aud": s.base, "iat": now + 3600, "exp": now + 3660, "jti": "a7"}),
    ];
    for claims in cases {
        with_assertion(&s, &id, &sign(claims.clone()))
            .await
            .expect_error(401, "invalid_client");
    }
    // Signed by a key the client never registered.
    let stranger = SigningKey::generate(Algorithm::ES256).unwrap();
    with_assertion(&s, &id, &assertion(&id, &stranger, &s.base))
        .await
        .expect_error(401, "invalid_client");
    // alg "none" and garbage.
    let none = format!(
        "{}.{}.",
        jose::b64::encode(br#"{"alg":"none"}"#),
        jose::b64::encode(good(&s.base).to_string().as_bytes())
    );
    with_assertion(&s, &id, &none)
        .await
        .expect_error(401, "invalid_client");
    with_assertion(&s, &id, "not-a-jwt")
        .await
        .expect_error(401, "invalid_client");
    // Wrong assertion type.
    let a = s
        .bc_authorize(
            &Auth::None,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("client_assertion_type", "urn:x"),
                ("client_assertion", &sign(good(&s.base))),
            ],
        )
        .await;
    a.expect_error(400, "invalid_request");
}

/// A tiny JWKS host for `jwks_uri` clients.
async fn jwks_host(keys: Arc<Mutex<Jwks>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/jwks.json",
        get(move || {
            let keys = keys.clone();
            async move { axum::Json(keys.lock().unwrap().clone()) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/jwks.json")
}

#[tokio::test]
async fn jwks_uri_is_fetched_and_refreshed_on_an_unknown_kid() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let first = SigningKey::generate(Algorithm::ES256).unwrap();
    let published = Arc::new(Mutex::new(Jwks {
        keys: vec![first.public_jwk()],
    }));
    let uri = jwks_host(published.clone()).await;
    let (id, _) = s
        .client(NewClient {
            name: "Rotating".into(),
            auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
            jwks_uri: Some(uri),
            ..Default::default()
        })
        .await;
    let params = [("scope", "openid"), ("login_hint", HINT)];
    assert_eq!(
        s.bc_authorize(&Auth::Jwt(id.clone(), first), &params)
            .await
            .status,
        200
    );
    // The client rotates: a new kid appears at the URI.
    let second = SigningKey::generate(Algorithm::EdDSA).unwrap();
    published.lock().unwrap().keys = vec![second.public_jwk()];
    let a = s
        .bc_authorize(&Auth::Jwt(id.clone(), second), &params)
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // A key that is nowhere fails even after the refresh.
    let never = SigningKey::generate(Algorithm::ES256).unwrap();
    s.bc_authorize(&Auth::Jwt(id, never), &params)
        .await
        .expect_error(401, "invalid_client");
}

#[tokio::test]
async fn jwks_uri_on_loopback_is_refused_without_an_allow_list() {
    let s = TestServer::start_with(|c| c.outbound.allowed_private_networks.clear()).await;
    s.user_with_device(HINT).await;
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let uri = jwks_host(Arc::new(Mutex::new(Jwks {
        keys: vec![key.public_jwk()],
    })))
    .await;
    let uri = uri.replace("127.0.0.1", "localhost");
    let (id, _) = s
        .client(NewClient {
            name: "Sneaky".into(),
            auth_method: Some(ClientAuthMethod::PrivateKeyJwt),
            jwks_uri: Some(uri),
            ..Default::default()
        })
        .await;
    s.bc_authorize(
        &Auth::Jwt(id, key),
        &[("scope", "openid"), ("login_hint", HINT)],
    )
    .await
    .expect_error(401, "invalid_client");
}

#[tokio::test]
async fn hints_and_users() {
    let s = TestServer::start().await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let valid = [
        "S1234567D",
        "T1234567J",
        "F1234567N",
        "G1234567X",
        "M1234567K",
        "S8076606H",
        "S1728872E",
        "G4549883U",
        "M3960741N",
    ];
    for nric in valid {
        let u = s
            .user(NewUser {
                nric: Some(nric.into()),
                ..Default::default()
            })
            .await;
        s.enrol(&u.sub).await;
        let a = s
            .bc_authorize(&auth, &[("scope", "openid"), ("login_hint", nric)])
            .await;
        assert_eq!(a.status, 200, "{nric}: {}", a.body);
    }
    for bad in ["S1234567A", "s1234567d", "M1234567N", "X1234567D"] {
        s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", bad)])
            .await
            .expect_error(400, "invalid_request");
    }
    // Well-formed but unknown.
    s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", "S0000001I")])
        .await
        .expect_error(400, "unknown_user_id");

    let (alice, _) = s.user_with_device(HINT).await;
    for hint in [alice.sub.as_str(), "ALICE@example.COM"] {
        assert_eq!(
            s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", hint)])
                .await
                .status,
            200,
            "{hint}"
        );
    }
    s.bc_authorize(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", &alice.sub.to_uppercase()),
        ],
    )
    .await
    .expect_error(400, "invalid_request");

    let bob = s
        .user(NewUser {
            username: Some("bob.lim".into()),
            phone: Some("+6591234567".into()),
            ..Default::default()
        })
        .await;
    // No device yet: unknown_user_id.
    s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", "bob.lim")])
        .await
        .expect_error(400, "unknown_user_id");
    s.enrol(&bob.sub).await;
    for hint in ["bob.lim", "+6591234567"] {
        assert_eq!(
            s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", hint)])
                .await
                .status,
            200,
            "{hint}"
        );
    }
    assert!(
        s.server
            .domain
            .stores
            .users
            .set_user_disabled(&bob.sub, true)
            .await
            .unwrap()
    );
    s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", "bob.lim")])
        .await
        .expect_error(400, "unknown_user_id");

    // Exactly one hint.
    s.bc_authorize(&auth, &[("scope", "openid")])
        .await
        .expect_error(400, "invalid_request");
    s.bc_authorize(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("login_hint_token", "x.y.z"),
        ],
    )
    .await
    .expect_error(400, "invalid_request");
}

#[tokio::test]
async fn login_hint_token_signed_by_the_client() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let auth = s.key_client(Algorithm::ES256).await;
    let Auth::Jwt(_, key) = &auth else {
        unreachable!()
    };
    let token = |exp: i64| {
        jose::sign_jwt(
            key,
            None,
            &json!({"sub_id": {"format": "email", "email": HINT}, "exp": exp}),
        )
        .unwrap()
    };
    let a = s
        .bc_authorize(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint_token", &token(now_secs() + 60)),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    s.bc_authorize(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint_token", &token(now_secs() - 1)),
        ],
    )
    .await
    .expect_error(400, "expired_login_hint_token");
}

#[tokio::test]
async fn scope_binding_message_expiry_and_details() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid email")
        .await;
    let go = |extra: Vec<(&'static str, String)>| {
        let mut p: Vec<(&str, String)> = vec![("login_hint", HINT.into())];
        p.extend(extra);
        p
    };
    let call = |p: Vec<(&'static str, String)>| {
        let s = &s;
        let auth = auth.clone();
        async move {
            let borrowed: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.bc_authorize(&auth, &borrowed).await
        }
    };
    call(go(vec![])).await.expect_error(400, "invalid_request");
    call(go(vec![("scope", "email".into())]))
        .await
        .expect_error(400, "invalid_scope");
    call(go(vec![("scope", "openid profile".into())]))
        .await
        .expect_error(400, "invalid_scope");
    assert_eq!(
        call(go(vec![("scope", "openid email".into())]))
            .await
            .status,
        200
    );

    let with = |k: &'static str, v: String| go(vec![("scope", "openid".into()), (k, v)]);
    assert_eq!(
        call(with("binding_message", "x".repeat(64))).await.status,
        200
    );
    call(with("binding_message", "x".repeat(65)))
        .await
        .expect_error(400, "invalid_binding_message");
    call(with("binding_message", "pay\u{7}now".into()))
        .await
        .expect_error(400, "invalid_binding_message");

    let a = call(with("requested_expiry", "120".into())).await;
    assert_eq!(a.body["expires_in"], 120);
    let a = call(with("request_expiry", "90".into())).await;
    assert_eq!(a.body["expires_in"], 90);
    for bad in ["0", "-5", "abc", "1.5", "99999"] {
        call(with("requested_expiry", bad.into()))
            .await
            .expect_error(400, "invalid_request");
    }

    let details = json!([{"type": "payment_initiation", "instructedAmount": {"currency": "SGD", "amount": "120.00"}}]).to_string();
    assert_eq!(
        call(with("authorization_details", details)).await.status,
        200
    );
    for bad in [
        json!([{"type": "account_closure"}]).to_string(),
        "{not json".into(),
        json!({"type": "payment_initiation"}).to_string(),
        "[]".into(),
    ] {
        call(with("authorization_details", bad))
            .await
            .expect_error(400, "invalid_authorization_details");
    }
}

#[tokio::test]
async fn binding_message_limits_are_configurable() {
    let s = TestServer::start_with(|c| c.ciba.binding_message_max = 10).await;
    s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let p = |m: &'static str| {
        [
            ("scope", "openid"),
            ("login_hint", HINT),
            ("binding_message", m),
        ]
    };
    assert_eq!(s.bc_authorize(&auth, &p("0123456789")).await.status, 200);
    s.bc_authorize(&auth, &p("0123456789A"))
        .await
        .expect_error(400, "invalid_binding_message");
}

#[tokio::test]
async fn user_code_when_the_client_requires_it() {
    let s = TestServer::start().await;
    let u = s
        .user(NewUser {
            email: Some(HINT.into()),
            user_code: Some("4321".into()),
            ..Default::default()
        })
        .await;
    s.enrol(&u.sub).await;
    let (id, secret) = s
        .client(NewClient {
            name: "Coded".into(),
            user_code_required: true,
            ..Default::default()
        })
        .await;
    let auth = Auth::Basic(id, secret.unwrap());
    s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await
        .expect_error(400, "missing_user_code");
    s.bc_authorize(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("user_code", "1234"),
        ],
    )
    .await
    .expect_error(400, "invalid_user_code");
    assert_eq!(
        s.bc_authorize(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("user_code", "4321")
            ]
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn ping_and_push_clients_must_send_a_valid_notification_token() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
    for mode in [DeliveryMode::Ping, DeliveryMode::Push] {
        let (id, secret) = s
            .client(NewClient {
                name: "Notified".into(),
                delivery_mode: Some(mode),
                notification_endpoint: Some("https://rp.example/cb".into()),
                ..Default::default()
            })
            .await;
        let auth = Auth::Basic(id, secret.unwrap());
        let with = |token: Option<String>| {
            let mut p = vec![
                ("scope", "openid".to_owned()),
                ("login_hint", HINT.to_owned()),
            ];
            if let Some(t) = token {
                p.push(("client_notification_token", t));
            }
            p
        };
        for bad in [
            None,
            Some("x".repeat(1025)),
            Some("has space".into()),
            Some("=abc".into()),
        ] {
            let p = with(bad);
            let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
            s.bc_authorize(&auth, &p)
                .await
                .expect_error(400, "invalid_request");
        }
        let p = with(Some(format!("{}~+/=", "a".repeat(1019))));
        let p: Vec<(&str, &str)> = p.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(s.bc_authorize(&auth, &p).await.status, 200, "{mode:?}");
    }
}

#[tokio::test]
async fn signed_request_objects() {
    let s = TestServer::start().await;
    s.user_with_device(HINT).await;
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
    let auth = Auth::Jwt(id.clone(), key.clone());
    let now = now_secs();
    let claims = |jti: &str| json!({"iss": id, "aud": s.base, "iat": now, "nbf": now, "exp": now + 300, "jti": jti, "scope": "openid", "login_hint": HINT, "binding_message": "Signed 42", "requested_expiry": 200});
    let sign = |c: serde_json::Value| jose::sign_jwt(&key, None, &c).unwrap();

    // Plain parameters are refused for a client that registered a signing alg.
    s.bc_authorize(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await
        .expect_error(400, "invalid_request");

    let request = sign(claims("r1"));
    let a = s.bc_authorize(&auth, &[("request", &request)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["expires_in"], 200);
    // Replay.
    s.bc_authorize(&auth, &[("request", &request)])
        .await
        .expect_error(400, "invalid_request");
    // Parameters beside the object.
    s.bc_authorize(
        &auth,
        &[("request", &sign(claims("r2"))), ("login_hint", HINT)],
    )
    .await
    .expect_error(400, "invalid_request");

    let mut broken = Vec::new();
    for (field, value) in [
        ("aud", json!("https://other.example")),
        ("iss", json!("someone")),
        ("exp", json!(now - 120)),
        ("nbf", json!(now + 600)),
        ("iat", json!(now + 600)),
        ("exp", json!(now + 7200)),
    ] {
        let mut c = claims(&format!("bad-{field}-{value}"));
        c[field] = value;
        broken.push(sign(c));
    }
    for field in ["exp", "iat", "nbf", "jti"] {
        let mut c = claims(&format!("missing-{field}"));
        c.as_object_mut().unwrap().remove(field);
        broken.push(sign(c));
    }
    // Signed with the right key but another algorithm family is impossible for an EC key, so
    // sign with a stranger's PS256 key, and with an unregistered ES256 key.
    broken.push(
        jose::sign_jwt(
            &SigningKey::generate(Algorithm::PS256).unwrap(),
            None,
            &claims("ps"),
        )
        .unwrap(),
    );
    broken.push(
        jose::sign_jwt(
            &SigningKey::generate(Algorithm::ES256).unwrap(),
            None,
            &claims("stranger"),
        )
        .unwrap(),
    );
    broken.push("garbage".into());
    for request in broken {
        s.bc_authorize(&auth, &[("request", &request)])
            .await
            .expect_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn malformed_requests_get_oauth_errors() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/bc-authorize"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    crate::support::Answer::from(r)
        .await
        .expect_error(400, "invalid_request");
    let r = s
        .http
        .post(s.url("/bc-authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("scope=openid&scope=openid&login_hint=a")
        .send()
        .await
        .unwrap();
    crate::support::Answer::from(r)
        .await
        .expect_error(400, "invalid_request");
    let r = s.http.get(s.url("/bc-authorize")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = s
        .http
        .post(s.url("/bc-authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 200_000])
        .send()
        .await
        .unwrap();
    crate::support::Answer::from(r)
        .await
        .expect_error(400, "invalid_request");
}
