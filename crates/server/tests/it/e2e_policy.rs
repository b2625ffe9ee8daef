//! Access policies over HTTP: refusals (403 `access_denied`, no device touched, counted in
//! `/metrics`), `[policies] clients_without_policy = "deny"`, approvals that need a verified
//! user (from the policy or from `acr_values`), and `/admin/v1/policies`.

use backchannel_protocol::device::{ChallengeEnvelope, DECISION_JWT_TYP, Decision, DecisionClaims};
use backchannel_protocol::jose::{self, b64};
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::config::ClientsWithoutPolicy;
use backchannel_server::domain::admin::NewUser;
use reqwest::Method;
use serde_json::{Value, json};

use crate::e2e_external::{callback, org};
use crate::support::{Answer, Auth, TestDevice, TestServer, now_secs};

const HINT: &str = "pat@example.com";
const UV: &str = "urn:backchannel:acr:device:uv";
const PLAIN: &str = "urn:backchannel:acr:device";

async fn admin(s: &TestServer, method: Method, path: &str, body: Option<Value>) -> Answer {
    let mut req = s
        .http
        .request(method, s.url(path))
        .bearer_auth("test-admin-token");
    if let Some(b) = body {
        req = req.json(&b);
    }
    Answer::from(req.send().await.unwrap()).await
}

/// Sets the client's policy through the admin API.
async fn put_policy(s: &TestServer, auth: &Auth, rules: Value) -> Value {
    let path = format!("/admin/v1/policies/{}", auth.client_id());
    let a = admin(s, Method::PUT, &path, Some(rules)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

/// A server, a client allowed openid and email, and a user (in group `staff`, tier `gold`)
/// with one device.
async fn world(s: &TestServer) -> (Auth, String, TestDevice) {
    let mut claims = serde_json::Map::new();
    claims.insert("groups".into(), json!(["staff"]));
    claims.insert("tier".into(), json!("gold"));
    let user = s
        .user(NewUser {
            email: Some(HINT.into()),
            claims,
            ..Default::default()
        })
        .await;
    let device = s.enrol(&user.sub).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid email")
        .await;
    (auth, user.sub, device)
}

async fn metrics(s: &TestServer) -> String {
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

/// The refusal count of one client and rule, as `/metrics` shows it.
async fn refusals(s: &TestServer, client_id: &str, rule: &str) -> u64 {
    let text = metrics(s).await;
    text.lines()
        .filter(|l| l.starts_with("backchannel_policy_refusals_total{"))
        .filter(|l| l.contains(&format!("client_id=\"{client_id}\"")))
        .filter(|l| l.contains(&format!("rule=\"{rule}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A decision on a challenge, stating whether the user was verified.
fn decision(device: &TestDevice, c: &ChallengeEnvelope, d: Decision, verified: bool) -> String {
    let claims = DecisionClaims {
        iss: device.id.clone(),
        challenge_id: c.id.clone(),
        decision: d,
        user_verified: verified,
        shown_hash: b64::encode(&jose::sha256(c.challenge.as_bytes())),
        iat: now_secs(),
        jti: jose::random_token(16).unwrap(),
        webauthn: None,
        not_me: false,
    };
    jose::sign_jwt(&device.key, Some(DECISION_JWT_TYP), &claims).unwrap()
}

async fn id_token_acr(s: &TestServer, auth: &Auth, auth_req_id: &str) -> String {
    let t = s.token(auth, auth_req_id).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let (_, claims) = s.verify_jwt(t.body["id_token"].as_str().unwrap()).await;
    claims["acr"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_user_outside_the_policy_is_refused_before_any_device_is_touched() {
    let s = TestServer::start().await;
    let (auth, sub, device) = world(&s).await;
    let params = [("scope", "openid"), ("login_hint", HINT)];
    put_policy(&s, &auth, json!({"users": {"subjects": ["someone-else"]}})).await;
    let a = s.bc_authorize(&auth, &params).await;
    a.expect_error(403, "access_denied");
    let description = a.body["error_description"].as_str().unwrap();
    assert_eq!(
        description,
        "the access policy of this client does not allow requests for this user"
    );
    assert!(!description.contains(HINT) && !description.contains(&sub));
    assert!(device.challenges(&s).await.is_empty(), "no device touched");
    put_policy(
        &s,
        &auth,
        json!({"users": {"claim": {"name": "tier", "value": "silver"}}}),
    )
    .await;
    s.bc_authorize(&auth, &params)
        .await
        .expect_error(403, "access_denied");
    assert!(device.challenges(&s).await.is_empty());
    assert_eq!(refusals(&s, auth.client_id(), "user").await, 2);

    // Users the policy names get through.
    for rules in [
        json!({"users": {"group": "staff"}}),
        json!({"users": {"claim": {"name": "tier", "value": "gold"}}}),
        json!({"users": {"subjects": [sub]}}),
    ] {
        put_policy(&s, &auth, rules.clone()).await;
        let a = s.bc_authorize(&auth, &params).await;
        assert_eq!(a.status, 200, "{rules}: {}", a.body);
    }
    // Each replaced the one before on the device (none of these policies allows parallel
    // requests).
    assert_eq!(device.challenges(&s).await.len(), 1);
    // Deleting the policy restores the old behaviour.
    let path = format!("/admin/v1/policies/{}", auth.client_id());
    put_policy(&s, &auth, json!({"users": {"subjects": ["someone-else"]}})).await;
    assert_eq!(admin(&s, Method::DELETE, &path, None).await.status, 200);
    assert_eq!(s.bc_authorize(&auth, &params).await.status, 200);
}

#[tokio::test]
async fn scopes_types_and_expiry_outside_the_policy_are_refused() {
    let s = TestServer::start_with(|c| {
        c.authorization_details.types = vec!["payment_initiation".into(), "account_access".into()];
    })
    .await;
    let (auth, _, device) = world(&s).await;
    put_policy(
        &s,
        &auth,
        json!({
            "scopes": ["openid"],
            "authorization_details_types": ["account_access"],
            "max_requested_expiry": 120
        }),
    )
    .await;
    let ask = |extra: &'static [(&'static str, &'static str)]| {
        let (s, auth) = (&s, &auth);
        async move {
            let mut p = vec![("login_hint", HINT)];
            if !extra.iter().any(|(k, _)| *k == "scope") {
                p.push(("scope", "openid"));
            }
            p.extend_from_slice(extra);
            s.bc_authorize(auth, &p).await
        }
    };
    let a = ask(&[("scope", "openid email")]).await;
    a.expect_error(403, "access_denied");
    assert_eq!(
        a.body["error_description"],
        "the access policy of this client does not allow scope email"
    );
    // A scope the client was never registered for stays invalid_scope.
    ask(&[("scope", "openid phone")])
        .await
        .expect_error(400, "invalid_scope");

    let a = ask(&[(
        "authorization_details",
        r#"[{"type":"payment_initiation","instructedAmount":{"currency":"SGD","amount":"5"}}]"#,
    )])
    .await;
    a.expect_error(403, "access_denied");
    assert_eq!(
        a.body["error_description"],
        "the access policy of this client does not allow authorization_details type payment_initiation"
    );

    let a = ask(&[("requested_expiry", "300")]).await;
    a.expect_error(403, "access_denied");
    assert_eq!(
        a.body["error_description"],
        "requested_expiry 300 exceeds this client's policy maximum of 120 seconds"
    );
    assert!(device.challenges(&s).await.is_empty(), "no device touched");
    for rule in ["scope", "authorization_details", "requested_expiry"] {
        assert_eq!(refusals(&s, auth.client_id(), rule).await, 1, "{rule}");
    }

    // Within the policy: allowed, and without requested_expiry the request lives the
    // policy's maximum (shorter than the default 300 s).
    let a = ask(&[("authorization_details", r#"[{"type":"account_access"}]"#)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["expires_in"], 120);
    let a = ask(&[("requested_expiry", "60")]).await;
    assert_eq!(a.body["expires_in"], 60, "{}", a.body);
}

#[tokio::test]
async fn clients_without_a_policy_may_be_denied_by_configuration() {
    let s = TestServer::start_with(|c| {
        c.policies.clients_without_policy = ClientsWithoutPolicy::Deny;
    })
    .await;
    let (auth, _, device) = world(&s).await;
    let params = [("scope", "openid"), ("login_hint", HINT)];
    let a = s.bc_authorize(&auth, &params).await;
    a.expect_error(403, "access_denied");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("no access policy"),
        "{}",
        a.body
    );
    // Refused before the user is looked up: an unknown user looks the same.
    s.bc_authorize(
        &auth,
        &[("scope", "openid"), ("login_hint", "nobody@example.com")],
    )
    .await
    .expect_error(403, "access_denied");
    assert!(device.challenges(&s).await.is_empty());
    assert_eq!(refusals(&s, auth.client_id(), "no_policy").await, 2);
    put_policy(&s, &auth, json!({})).await;
    assert_eq!(s.bc_authorize(&auth, &params).await.status, 200);
}

#[tokio::test]
async fn a_policy_requiring_a_verified_user_refuses_unverified_approvals() {
    let s = TestServer::start().await;
    let (auth, _, device) = world(&s).await;
    put_policy(&s, &auth, json!({"require_user_verification": true})).await;
    // acr_values preferring the plain class do not lower what the policy requires.
    let id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("acr_values", PLAIN),
            ],
        )
        .await;
    let list = device.challenges(&s).await;
    assert_eq!(list.len(), 1);
    let claims = device.verify(&s, &list[0]).await;
    assert!(claims.uv_required, "the device is told");

    let unverified = decision(&device, &list[0], Decision::Approve, false);
    let a = device.send_decision(&s, &list[0].id, &unverified).await;
    a.expect_error(400, "invalid_decision");
    assert!(
        a.body["error_description"]
            .as_str()
            .unwrap()
            .contains("requires user verification"),
        "{}",
        a.body
    );
    // Still pending: the poller waits, and the device may try again with verification.
    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");
    assert_eq!(device.challenges(&s).await.len(), 1);
    let verified = decision(&device, &list[0], Decision::Approve, true);
    let a = device.send_decision(&s, &list[0].id, &verified).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(id_token_acr(&s, &auth, &id).await, UV);

    // A denial needs no verification.
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let list = device.challenges(&s).await;
    let deny = decision(&device, &list[0], Decision::Deny, false);
    assert_eq!(
        device.send_decision(&s, &list[0].id, &deny).await.status,
        200
    );
    s.token(&auth, &id).await.expect_error(400, "access_denied");
}

#[tokio::test]
async fn acr_values_preferring_user_verification_require_it() {
    let s = TestServer::start().await;
    let (auth, _, device) = world(&s).await;
    // Unknown values are skipped; the first supported one decides.
    let prefers_uv = format!("urn:example:loa:3 {UV} {PLAIN}");
    let id = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("acr_values", &prefers_uv),
            ],
        )
        .await;
    let list = device.challenges(&s).await;
    assert!(device.verify(&s, &list[0]).await.uv_required);
    let a = device
        .send_decision(
            &s,
            &list[0].id,
            &decision(&device, &list[0], Decision::Approve, false),
        )
        .await;
    a.expect_error(400, "invalid_decision");
    let a = device
        .send_decision(
            &s,
            &list[0].id,
            &decision(&device, &list[0], Decision::Approve, true),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(id_token_acr(&s, &auth, &id).await, UV);

    // The plain class first (or nothing supported): no verification needed, and the ID
    // token says which class was reached.
    for acr in [format!("{PLAIN} {UV}"), "urn:example:loa:3".to_owned()] {
        let id = s
            .start_request(
                &auth,
                &[
                    ("scope", "openid"),
                    ("login_hint", HINT),
                    ("acr_values", &acr),
                ],
            )
            .await;
        let list = device.challenges(&s).await;
        assert!(!device.verify(&s, &list[0]).await.uv_required, "{acr}");
        let a = device
            .send_decision(
                &s,
                &list[0].id,
                &decision(&device, &list[0], Decision::Approve, false),
            )
            .await;
        assert_eq!(a.status, 200, "{acr}: {}", a.body);
        assert_eq!(id_token_acr(&s, &auth, &id).await, PLAIN);
    }
}

#[tokio::test]
async fn the_external_channel_must_verify_the_user_when_the_request_requires_it() {
    let (org, url) = org().await;
    let s = TestServer::start_with(|c| {
        c.external.url = url.clone();
        c.external.token = "org-secret".into();
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
    put_policy(&s, &auth, json!({"require_user_verification": true})).await;
    let id = s
        .start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let got = org.received.wait(1).await;
    let msg = &got[0].1;
    assert_eq!(msg["uv_required"], true);
    let token = msg["callback_token"].as_str().unwrap();
    let r = s
        .http
        .post(msg["callback_url"].as_str().unwrap())
        .bearer_auth(token)
        .json(&json!({"decision": "approve", "user_verified": false}))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_decision");
    s.token(&auth, &id)
        .await
        .expect_error(400, "authorization_pending");
    // The helper's callback says the user was verified.
    assert_eq!(callback(&s, msg, token, "approve").await.status, 200);
    assert_eq!(id_token_acr(&s, &auth, &id).await, UV);
}

#[tokio::test]
async fn the_admin_api_sets_shows_lists_and_deletes_policies() {
    let s = TestServer::start().await;
    let (auth, _, _) = world(&s).await;
    let id = auth.client_id().to_owned();
    let path = format!("/admin/v1/policies/{id}");
    // Behind the admin token.
    let r = s
        .http
        .get(s.url("/admin/v1/policies"))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(401, "invalid_token");

    let empty = admin(&s, Method::GET, "/admin/v1/policies", None).await;
    assert_eq!(empty.body, json!({"policies": []}));
    admin(&s, Method::GET, &path, None)
        .await
        .expect_error(404, "not_found");

    let body = put_policy(
        &s,
        &auth,
        json!({
            "users": {"group": "staff"},
            "scopes": ["email"],
            "require_user_verification": true,
            "max_requested_expiry": 600,
            "allow_parallel": true
        }),
    )
    .await;
    assert_eq!(body["client_id"], id.as_str());
    assert_eq!(body["users"], json!({"group": "staff"}));
    assert_eq!(body["scopes"], json!(["openid", "email"]));
    assert_eq!(body["authorization_details_types"], Value::Null);
    assert_eq!(body["require_user_verification"], true);
    assert_eq!(body["max_requested_expiry"], 600);
    assert_eq!(body["allow_parallel"], true);
    let shown = admin(&s, Method::GET, &path, None).await;
    assert_eq!(shown.status, 200);
    assert_eq!(shown.body, body);
    let list = admin(&s, Method::GET, "/admin/v1/policies", None).await;
    assert_eq!(list.body, json!({"policies": [body]}));

    // Replacing keeps created_at; the body is the whole policy.
    let replaced = put_policy(&s, &auth, json!({"users": "all"})).await;
    assert_eq!(replaced["created_at"], body["created_at"]);
    assert_eq!(replaced["require_user_verification"], false);

    // Bad bodies and unknown clients.
    for bad in [
        json!({"users": "some"}),
        json!({"user": "all"}),
        json!({"scopes": ["phone"]}),
        json!({"authorization_details_types": ["other"]}),
        json!({"max_requested_expiry": 5}),
        json!({"max_requested_expiry": "long"}),
        json!({"users": {"subjects": []}}),
        json!([]),
    ] {
        admin(&s, Method::PUT, &path, Some(bad.clone()))
            .await
            .expect_error(400, "invalid_request");
    }
    let r = s
        .http
        .put(s.url(&path))
        .bearer_auth("test-admin-token")
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_request");
    let unknown = "/admin/v1/policies/no-such-client";
    admin(&s, Method::PUT, unknown, Some(json!({})))
        .await
        .expect_error(404, "not_found");
    admin(&s, Method::GET, unknown, None)
        .await
        .expect_error(404, "not_found");
    admin(&s, Method::DELETE, unknown, None)
        .await
        .expect_error(404, "not_found");

    let deleted = admin(&s, Method::DELETE, &path, None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.body, json!({"client_id": id, "deleted": true}));
    admin(&s, Method::DELETE, &path, None)
        .await
        .expect_error(404, "not_found");
    let empty = admin(&s, Method::GET, "/admin/v1/policies", None).await;
    assert_eq!(empty.body, json!({"policies": []}));
}
