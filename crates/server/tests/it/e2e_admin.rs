//! The admin REST API behind its bearer token, discovery and JWKS, and what survives a restart.

use backchannel_server::app::start;
use serde_json::{Value, json};

use crate::support::{Answer, TestServer, temp_dir, test_config};

async fn admin(
    s: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Answer {
    let mut req = s.http.request(method, s.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    Answer::from(req.send().await.unwrap()).await
}

#[tokio::test]
async fn admin_api_needs_the_token_and_mirrors_the_cli() {
    let s = TestServer::start().await;
    let token = Some("test-admin-token");
    use reqwest::Method;
    let a = admin(&s, Method::GET, "/admin/v1/clients", None, None).await;
    a.expect_error(401, "invalid_token");
    assert!(
        a.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    admin(&s, Method::GET, "/admin/v1/clients", Some("wrong"), None)
        .await
        .expect_error(401, "invalid_token");

    let created = admin(
        &s,
        Method::POST,
        "/admin/v1/clients",
        token,
        Some(json!({"name": "Admin API app", "scope": "openid email"})),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let client_id = created.body["client_id"].as_str().unwrap().to_owned();
    assert!(created.body["client_secret"].as_str().unwrap().len() >= 43);

    let got = admin(
        &s,
        Method::GET,
        &format!("/admin/v1/clients/{client_id}"),
        token,
        None,
    )
    .await;
    assert_eq!(got.body["client_name"], "Admin API app");
    assert_eq!(got.body["backchannel_token_delivery_mode"], "poll");
    assert_eq!(
        got.body["token_endpoint_auth_method"],
        "client_secret_basic"
    );
    assert_eq!(got.body["scope"], "openid email");
    assert!(
        got.body.get("client_secret").is_none() && !got.body.to_string().contains("secret_hash")
    );
    let list = admin(&s, Method::GET, "/admin/v1/clients", token, None).await;
    assert_eq!(list.body["clients"].as_array().unwrap().len(), 1);

    admin(
        &s,
        Method::POST,
        "/admin/v1/clients",
        token,
        Some(json!({"name": "x", "auth_method": "private_key_jwt"})),
    )
    .await
    .expect_error(400, "invalid_request");
    admin(
        &s,
        Method::POST,
        "/admin/v1/clients",
        token,
        Some(json!({"name": "x", "unknown": 1})),
    )
    .await
    .expect_error(400, "invalid_request");

    let user = admin(
        &s,
        Method::POST,
        "/admin/v1/users",
        token,
        Some(json!({"email": "Erin@Example.com", "nric": "S8076606H"})),
    )
    .await;
    assert_eq!(user.status, 201, "{}", user.body);
    let sub = user.body["sub"].as_str().unwrap().to_owned();
    admin(
        &s,
        Method::POST,
        "/admin/v1/users",
        token,
        Some(json!({"email": "erin@example.com"})),
    )
    .await
    .expect_error(409, "conflict");
    admin(
        &s,
        Method::POST,
        "/admin/v1/users",
        token,
        Some(json!({"nric": "S8076606A"})),
    )
    .await
    .expect_error(400, "invalid_request");
    let got = admin(
        &s,
        Method::GET,
        &format!("/admin/v1/users/{sub}"),
        token,
        None,
    )
    .await;
    assert_eq!(got.body["email"], "erin@example.com");

    let enrolment = admin(
        &s,
        Method::POST,
        "/admin/v1/enrolments",
        token,
        Some(json!({"user": sub})),
    )
    .await;
    assert_eq!(enrolment.status, 201);
    assert_eq!(enrolment.body["enrol_url"], s.url("/device/v1/enrol"));
    assert!(
        crate::support::TestDevice::enrol(&s, enrolment.body["code"].as_str().unwrap())
            .await
            .is_ok()
    );
    admin(
        &s,
        Method::POST,
        "/admin/v1/enrolments",
        token,
        Some(json!({"user": "no-such-user"})),
    )
    .await
    .expect_error(404, "not_found");

    let disabled = admin(
        &s,
        Method::POST,
        &format!("/admin/v1/users/{sub}/disable"),
        token,
        None,
    )
    .await;
    assert_eq!(disabled.body["disabled"], true);
    let disabled = admin(
        &s,
        Method::POST,
        &format!("/admin/v1/clients/{client_id}/disable"),
        token,
        None,
    )
    .await;
    assert_eq!(disabled.body["disabled"], true);
    admin(&s, Method::GET, "/admin/v1/clients/nope", token, None)
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn discovery_lists_the_ciba_metadata() {
    let s = TestServer::start().await;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let m: Value = s
            .http
            .get(s.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(m["issuer"], s.base);
        assert_eq!(
            m["backchannel_authentication_endpoint"],
            s.url("/bc-authorize")
        );
        assert_eq!(m["token_endpoint"], s.url("/token"));
        assert_eq!(m["jwks_uri"], s.url("/jwks"));
        assert_eq!(
            m["backchannel_token_delivery_modes_supported"],
            json!(["poll", "ping", "push"])
        );
        assert_eq!(m["backchannel_user_code_parameter_supported"], true);
        assert_eq!(
            m["grant_types_supported"],
            json!(["urn:openid:params:grant-type:ciba", "refresh_token"])
        );
        assert_eq!(
            m["authorization_details_types_supported"],
            json!(["payment_initiation"])
        );
        for alg in ["ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA"] {
            assert!(
                m["backchannel_authentication_request_signing_alg_values_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(alg))
            );
            assert!(
                m["token_endpoint_auth_signing_alg_values_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(alg))
            );
        }
        for method in [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ] {
            assert!(
                m["token_endpoint_auth_methods_supported"]
                    .as_array()
                    .unwrap()
                    .contains(&json!(method))
            );
        }
    }
    let jwks = s.jwks().await;
    assert_eq!(jwks.keys.len(), 6);
    assert!(
        jwks.keys
            .iter()
            .all(|k| k.d.is_none() && k.p.is_none() && k.kid.is_some())
    );
    let r = s.http.get(s.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        s.http.get(s.url("/healthz")).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        s.http.get(s.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("backchannel_http_request_seconds"));
}

#[tokio::test]
async fn request_metrics_are_labelled_by_route_never_by_path() {
    let s = TestServer::start().await;
    let unknown = format!("/nowhere-{}", std::process::id());
    let challenge = "/device/v1/challenges/01JZ-some-challenge-id";
    for path in [
        unknown.as_str(),
        challenge,
        "/.well-known/openid-configuration",
    ] {
        s.http.get(s.url(path)).send().await.unwrap();
    }
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let labels: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("backchannel_http_request_seconds"))
        .filter_map(|l| l.split("path=\"").nth(1)?.split('"').next())
        .collect();
    assert!(labels.contains(&"unmatched"), "{labels:?}");
    assert!(labels.contains(&"/device/v1/challenges/{id}"), "{labels:?}");
    assert!(
        labels.contains(&"/.well-known/openid-configuration"),
        "{labels:?}"
    );
    assert!(
        !labels
            .iter()
            .any(|l| l.starts_with("/nowhere") || l.contains("01JZ")),
        "{labels:?}"
    );
}

#[tokio::test]
async fn keys_clients_and_pending_requests_survive_a_restart() {
    let dir = temp_dir("restart");
    let config = test_config(&dir);
    let first = start(config.clone()).await.unwrap();
    let s = TestServer {
        base: first.issuer.clone(),
        server: first,
        http: reqwest::Client::new(),
    };
    let (_, device) = s.user_with_device("frank@example.com").await;
    let auth = s
        .secret_client(
            backchannel_protocol::oauth::ClientAuthMethod::ClientSecretBasic,
            "openid",
        )
        .await;
    let id = s
        .start_request(
            &auth,
            &[("scope", "openid"), ("login_hint", "frank@example.com")],
        )
        .await;
    let jwks_before: Value = s
        .http
        .get(s.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let TestServer { server, .. } = s;
    server.shutdown().await;

    let second = start(config).await.unwrap();
    let s = TestServer {
        base: second.issuer.clone(),
        server: second,
        http: reqwest::Client::new(),
    };
    let device = crate::support::TestDevice {
        issuer: s.base.clone(),
        ..device
    };
    let jwks_after: Value = s
        .http
        .get(s.url("/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks_before, jwks_after, "signing keys are kept");
    assert_eq!(
        device
            .decide_only(&s, backchannel_protocol::device::Decision::Approve)
            .await
            .status,
        200
    );
    assert_eq!(
        s.token(&auth, &id).await.status,
        200,
        "the acknowledged request survived"
    );
}
