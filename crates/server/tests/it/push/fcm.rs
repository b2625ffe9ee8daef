//! FCM HTTP v1: a local OAuth token endpoint that verifies the service account's RS256
//! assertion, and a messages endpoint that checks the bearer token and the message and answers
//! with google.rpc.Status errors as FCM does.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use backchannel_server::config::FcmConfig;
use backchannel_server::domain::clock::{Clock, ManualClock};
use backchannel_server::notify::push::{
    ACCESS_TOKEN_MARGIN_SECS, FCM_SCOPE, FcmSender, PushOutcome, PushSender, PushTarget,
};
use serde_json::{Value, json};

use super::{bare_validation, clock, jwt_parts, message, outbound, pem, serve, write};
use crate::support::temp_dir;

const PROJECT: &str = "backchannel-test";
const CLIENT_EMAIL: &str = "push@backchannel-test.iam.gserviceaccount.com";
const KEY_ID: &str = "3f2a9c0d5e";
const EXPIRES_IN: i64 = 3599;

type Scripted = (u16, Value, Option<u64>);

struct Google {
    /// The service account's public key.
    key: jsonwebtoken::DecodingKey,
    token_uri: OnceLock<String>,
    clock: ManualClock,
    token_hits: AtomicUsize,
    assertions: Mutex<Vec<String>>,
    /// Access tokens issued, with their expiry.
    issued: Mutex<HashMap<String, i64>>,
    /// (bearer, body) of each message request.
    messages: Mutex<Vec<(String, Value)>>,
    script: Mutex<HashMap<String, VecDeque<Scripted>>>,
}

fn oauth_error(error: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "error": error, "error_description": "refused by the test server" })),
    )
        .into_response()
}

/// RFC 7523 §3 as Google applies it.
async fn token_post(
    State(g): State<Arc<Google>>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    g.token_hits.fetch_add(1, Ordering::SeqCst);
    if form.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error("unsupported_grant_type");
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error("invalid_request");
    };
    g.assertions.lock().unwrap().push(assertion.clone());
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        scope: String,
        aud: String,
        iat: i64,
        exp: i64,
    }
    let Ok(claims) = jsonwebtoken::decode::<Claims>(
        assertion,
        &g.key,
        &bare_validation(jsonwebtoken::Algorithm::RS256),
    ) else {
        return oauth_error("invalid_grant");
    };
    let c = claims.claims;
    let now = g.clock.now_secs();
    if c.iss != CLIENT_EMAIL
        || c.scope != FCM_SCOPE
        || Some(&c.aud) != g.token_uri.get()
        || (c.iat - now).abs() > 60
        || c.exp <= now
        || c.exp - c.iat > 3600
    {
        return oauth_error("invalid_grant");
    }
    let n = g.token_hits.load(Ordering::SeqCst);
    let token = format!("ya29.test-{n}");
    g.issued
        .lock()
        .unwrap()
        .insert(token.clone(), now + EXPIRES_IN);
    Json(json!({ "access_token": token, "expires_in": EXPIRES_IN, "token_type": "Bearer" }))
        .into_response()
}

fn rpc_error(status: u16, code: &str, details: Value) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        Json(json!({ "error": {
            "code": status,
            "message": "refused by the test server",
            "status": code,
            "details": details,
        }})),
    )
        .into_response()
}

async fn messages_send_post(
    State(g): State<Arc<Google>>,
    Path(project): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned();
    g.messages
        .lock()
        .unwrap()
        .push((bearer.clone(), body.clone()));
    let valid_until = g.issued.lock().unwrap().get(&bearer).copied();
    if valid_until.is_none_or(|t| t <= g.clock.now_secs()) {
        return rpc_error(401, "UNAUTHENTICATED", json!([]));
    }
    if project != PROJECT {
        return rpc_error(404, "NOT_FOUND", json!([]));
    }
    let Some(token) = body["message"]["token"].as_str() else {
        return rpc_error(400, "INVALID_ARGUMENT", json!([]));
    };
    // Data values must be strings (FCM v1 `map<string, string>`).
    if !body["message"]["data"]
        .as_object()
        .is_some_and(|d| d.values().all(Value::is_string))
    {
        return rpc_error(400, "INVALID_ARGUMENT", json!([]));
    }
    let scripted = g
        .script
        .lock()
        .unwrap()
        .get_mut(token)
        .and_then(VecDeque::pop_front);
    match scripted {
        Some((status, body, retry_after)) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
            if let Some(secs) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", secs.to_string().parse().unwrap());
            }
            response
        }
        None => Json(json!({ "name": format!("projects/{PROJECT}/messages/0:1") })).into_response(),
    }
}

struct Harness {
    google: Arc<Google>,
    sender: FcmSender,
    clock: ManualClock,
}

fn rsa_key() -> RsaKeyPair {
    RsaKeyPair::generate(KeySize::Rsa2048).unwrap()
}

impl Harness {
    /// `signing` signs the assertions; the token endpoint knows `known`'s public key.
    async fn start_with(signing: &RsaKeyPair, known: &RsaKeyPair) -> Harness {
        let clock = clock();
        let google = Arc::new(Google {
            key: jsonwebtoken::DecodingKey::from_rsa_der(known.public_key().as_ref()),
            token_uri: OnceLock::new(),
            clock: clock.clone(),
            token_hits: AtomicUsize::new(0),
            assertions: Mutex::new(Vec::new()),
            issued: Mutex::new(HashMap::new()),
            messages: Mutex::new(Vec::new()),
            script: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/token", post(token_post))
            .route(
                "/v1/projects/{project}/messages:send",
                post(messages_send_post),
            )
            .with_state(google.clone());
        let addr = serve(router).await;
        let token_uri = format!("http://{addr}/token");
        google.token_uri.set(token_uri.clone()).unwrap();
        let account = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": KEY_ID,
            "private_key": pem("PRIVATE KEY", signing.as_der().unwrap().as_ref()),
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000001",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        });
        let dir = temp_dir("fcm");
        let cfg = FcmConfig {
            base_url: format!("http://{addr}"),
            service_account_file: write(&dir, "sa.json", &account.to_string()),
        };
        let sender = FcmSender::new(&cfg, &outbound(), Arc::new(clock.clone())).unwrap();
        Harness {
            google,
            sender,
            clock,
        }
    }

    async fn start() -> Harness {
        let key = rsa_key();
        Harness::start_with(&key, &key).await
    }

    fn hits(&self) -> usize {
        self.google.token_hits.load(Ordering::SeqCst)
    }

    fn messages(&self) -> Vec<(String, Value)> {
        self.google.messages.lock().unwrap().clone()
    }

    fn script(&self, token: &str, answer: Scripted) {
        self.google
            .script
            .lock()
            .unwrap()
            .insert(token.into(), VecDeque::from([answer]));
    }
}

fn target(token: &str) -> PushTarget {
    PushTarget::Fcm {
        token: token.into(),
    }
}

#[tokio::test]
async fn fcm_exchanges_a_verified_assertion_and_caches_the_access_token() {
    let h = Harness::start().await;
    let msg = message(h.clock.now_secs(), 300);

    // Concurrent first sends share one token request.
    let sends = (0..3).map(|i| {
        let t = target(&format!("device-{i}"));
        let (sender, msg) = (&h.sender, &msg);
        async move { sender.send(&t, msg).await }
    });
    let outcomes = futures_util::future::join_all(sends).await;
    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Delivered),
        "{outcomes:?}"
    );
    assert_eq!(h.hits(), 1);

    // The assertion: RS256 with the key id, the claims Google requires.
    let assertion = h.google.assertions.lock().unwrap()[0].clone();
    let (header, claims) = jwt_parts(&assertion);
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], KEY_ID);
    let now = h.clock.now_secs();
    assert_eq!(
        claims,
        json!({
            "iss": CLIENT_EMAIL,
            "scope": FCM_SCOPE,
            "aud": h.google.token_uri.get().unwrap(),
            "iat": now,
            "exp": now + 3600,
        })
    );

    // The message.
    let messages = h.messages();
    assert_eq!(messages.len(), 3);
    assert!(messages.iter().all(|(bearer, _)| bearer == "ya29.test-1"));
    let m = &messages[0].1["message"];
    assert!(m["token"].as_str().unwrap().starts_with("device-"));
    assert_eq!(
        m["data"],
        json!({ "challenge_id": msg.challenge_id, "issuer": msg.issuer })
    );
    assert_eq!(m["notification"], json!({ "title": "Sign-in request" }));
    assert_eq!(m["android"]["priority"], "high");
    assert_eq!(m["android"]["ttl"], "300s");
    assert_eq!(m["android"]["collapse_key"], msg.challenge_id.as_str());
    assert_eq!(
        m["apns"]["headers"]["apns-expiration"],
        msg.expires_at_secs.to_string()
    );

    // Reused until shortly before it expires, then replaced.
    h.clock
        .advance_secs(EXPIRES_IN - ACCESS_TOKEN_MARGIN_SECS - 1);
    let msg = message(h.clock.now_secs(), 300);
    assert_eq!(
        h.sender.send(&target("d"), &msg).await,
        PushOutcome::Delivered
    );
    assert_eq!(h.hits(), 1);
    h.clock.advance_secs(1);
    assert_eq!(
        h.sender.send(&target("d"), &msg).await,
        PushOutcome::Delivered
    );
    assert_eq!(h.hits(), 2);
    assert_eq!(h.messages().last().unwrap().0, "ya29.test-2");
}

#[tokio::test]
async fn fcm_dead_and_foreign_tokens_disable_the_registration() {
    let h = Harness::start().await;
    let msg = message(h.clock.now_secs(), 120);
    let fcm_error = |code: &str| {
        json!([{
            "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
            "errorCode": code,
        }])
    };
    let cases = [
        ("gone", 404, "NOT_FOUND", fcm_error("UNREGISTERED")),
        (
            "foreign",
            403,
            "PERMISSION_DENIED",
            fcm_error("SENDER_ID_MISMATCH"),
        ),
        (
            "garbled",
            400,
            "INVALID_ARGUMENT",
            json!([
                {
                    "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                    "errorCode": "INVALID_ARGUMENT",
                },
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{
                        "field": "message.token",
                        "description": "Invalid registration token",
                    }],
                },
            ]),
        ),
    ];
    for (token, status, code, details) in cases {
        h.script(
            token,
            (
                status,
                json!({ "error": {
                    "code": status, "message": "x", "status": code, "details": details,
                }}),
                None,
            ),
        );
        assert_eq!(
            h.sender.send(&target(token), &msg).await,
            PushOutcome::Unregistered,
            "{token}"
        );
    }

    // An invalid argument that is not the token fails the attempt only.
    h.script(
        "fine",
        (
            400,
            json!({ "error": { "code": 400, "message": "Invalid value at 'message.android.ttl'",
                "status": "INVALID_ARGUMENT", "details": fcm_error("INVALID_ARGUMENT") } }),
            None,
        ),
    );
    let outcome = h.sender.send(&target("fine"), &msg).await;
    assert!(
        matches!(&outcome, PushOutcome::Failed(r) if r.contains("INVALID_ARGUMENT")),
        "{outcome:?}"
    );

    // Quota and outages are retried, after Retry-After.
    h.script(
        "busy",
        (
            429,
            json!({ "error": {
                "code": 429, "status": "RESOURCE_EXHAUSTED", "details": fcm_error("QUOTA_EXCEEDED"),
            }}),
            Some(5),
        ),
    );
    assert_eq!(
        h.sender.send(&target("busy"), &msg).await,
        PushOutcome::Retry {
            after: Some(Duration::from_secs(5))
        }
    );
    h.script(
        "down",
        (
            503,
            json!({ "error": { "code": 503, "status": "UNAVAILABLE" } }),
            None,
        ),
    );
    assert_eq!(
        h.sender.send(&target("down"), &msg).await,
        PushOutcome::Retry { after: None }
    );
    assert_eq!(h.hits(), 1);
}

#[tokio::test]
async fn fcm_a_rejected_access_token_is_replaced() {
    let h = Harness::start().await;
    let msg = message(h.clock.now_secs(), 120);
    assert_eq!(
        h.sender.send(&target("d"), &msg).await,
        PushOutcome::Delivered
    );
    // The token is revoked behind the sender's back.
    h.google.issued.lock().unwrap().clear();
    assert_eq!(
        h.sender.send(&target("d"), &msg).await,
        PushOutcome::Retry { after: None }
    );
    assert_eq!(
        h.sender.send(&target("d"), &msg).await,
        PushOutcome::Delivered
    );
    assert_eq!(h.hits(), 2);
}

#[tokio::test]
async fn fcm_an_assertion_signed_with_another_key_is_refused() {
    let (ours, theirs) = (rsa_key(), rsa_key());
    let h = Harness::start_with(&ours, &theirs).await;
    let msg = message(h.clock.now_secs(), 120);
    let outcome = h.sender.send(&target("d"), &msg).await;
    assert!(
        matches!(&outcome, PushOutcome::Failed(r) if r.contains("invalid_grant")),
        "{outcome:?}"
    );
    assert!(h.messages().is_empty());
}
