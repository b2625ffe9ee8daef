//! Property test: random forms, headers and bodies thrown at both OAuth endpoints always get
//! a spec-shaped answer (a JSON error with a known code, or success), never a 500 or a panic.

use backchannel_protocol::oauth::ClientAuthMethod;
use proptest::prelude::*;
use proptest::test_runner::{Config as PropConfig, TestRunner};

use crate::support::{Auth, TestServer};

const NAMES: &[&str] = &[
    "scope",
    "login_hint",
    "id_token_hint",
    "login_hint_token",
    "binding_message",
    "user_code",
    "requested_expiry",
    "request_expiry",
    "acr_values",
    "authorization_details",
    "request",
    "client_id",
    "client_secret",
    "client_assertion",
    "client_assertion_type",
    "grant_type",
    "auth_req_id",
    "client_notification_token",
];

const KNOWN_ERRORS: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_scope",
    "unknown_user_id",
    "expired_login_hint_token",
    "unauthorized_client",
    "missing_user_code",
    "invalid_user_code",
    "invalid_binding_message",
    "invalid_request_object",
    "invalid_authorization_details",
    "access_denied",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "invalid_grant",
    "unsupported_grant_type",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("openid".to_owned()),
        Just("alice@example.com".to_owned()),
        Just("S1234567D".to_owned()),
        Just("urn:openid:params:grant-type:ciba".to_owned()),
        Just("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned()),
        Just("eyJhbGciOiJFUzI1NiJ9.e30.AAAA".to_owned()),
        Just("[{\"type\":\"payment_initiation\"}]".to_owned()),
        "[a-zA-Z0-9._~+/=-]{0,40}",
        any::<String>(),
        "\\PC{0,300}",
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn form() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        proptest::sample::select(NAMES).prop_map(str::to_owned),
        "[a-z_]{1,12}",
        any::<String>()
    ];
    proptest::collection::vec((name, value()), 0..8)
}

#[derive(Debug, Clone)]
enum Body {
    Form(Vec<(String, String)>),
    Raw(Vec<u8>),
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        4 => form().prop_map(Body::Form),
        1 => proptest::collection::vec(any::<u8>(), 0..400).prop_map(Body::Raw),
    ]
}

fn content_type() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        6 => Just(Some("application/x-www-form-urlencoded".to_owned())),
        1 => Just(Some("application/x-www-form-urlencoded; charset=ISO-8859-1".to_owned())),
        1 => Just(Some("application/json".to_owned())),
        1 => Just(None),
        1 => "[ -~]{0,40}".prop_map(Some),
    ]
}

fn authorization() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some("Basic".to_owned())),
        1 => "[A-Za-z0-9+/=]{0,40}".prop_map(|s| Some(format!("Basic {s}"))),
        1 => "[ -~]{0,60}".prop_map(Some),
    ]
}

#[test]
fn random_input_never_breaks_either_endpoint() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (s, auth) = rt.block_on(async {
        let s = TestServer::start().await;
        s.user_with_device("alice@example.com").await;
        let auth = s
            .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
            .await;
        (s, auth)
    });
    let Auth::Basic(id, secret) = auth else {
        unreachable!()
    };
    let mut runner = TestRunner::new(PropConfig {
        cases: 400,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let strategy = (
        prop_oneof![Just("/bc-authorize"), Just("/token")],
        body(),
        content_type(),
        authorization(),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(path, body, ctype, authz, real_client)| {
            rt.block_on(async {
                let mut req = s.http.post(s.url(path));
                if real_client {
                    req = req.basic_auth(&id, Some(&secret));
                } else if let Some(a) = &authz {
                    req = req.header("authorization", a.as_str());
                }
                if let Some(ct) = &ctype {
                    req = req.header("content-type", ct.as_str());
                }
                let bytes = match &body {
                    Body::Form(pairs) => serde_urlencoded::to_string(pairs).unwrap().into_bytes(),
                    Body::Raw(b) => b.clone(),
                };
                let r = match req.body(bytes).send().await {
                    Ok(r) => r,
                    // An Authorization value that is not a valid header never leaves the client.
                    Err(e) if e.is_builder() => return Ok(()),
                    Err(e) => panic!("transport error: {e}"),
                };
                let status = r.status().as_u16();
                let request_id = r.headers().get("x-request-id").is_some();
                let text = r.text().await.unwrap();
                prop_assert!(status < 500, "{path} answered {status}: {text}");
                if status != 200 {
                    let v: serde_json::Value = serde_json::from_str(&text)
                        .map_err(|_| TestCaseError::fail(format!("not JSON: {text}")))?;
                    let code = v["error"].as_str().unwrap_or("");
                    prop_assert!(KNOWN_ERRORS.contains(&code), "unknown error code in {text}");
                    prop_assert!(request_id, "no X-Request-Id on {path}");
                    prop_assert!(
                        v.as_object().is_some_and(|m| m.keys().all(|k| [
                            "error",
                            "error_description",
                            "error_uri"
                        ]
                        .contains(&k.as_str()))),
                        "error body has other members: {text}"
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}
