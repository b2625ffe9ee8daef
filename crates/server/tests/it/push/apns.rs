//! APNs: a local h2c server that answers like Apple's ("Sending notification requests to
//! APNs", "Handling notification responses from APNs").

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use backchannel_server::config::ApnsConfig;
use backchannel_server::domain::clock::{Clock, ManualClock};
use backchannel_server::notify::push::{
    ApnsSender, PROVIDER_TOKEN_REFRESH_SECS, PushOutcome, PushSender, PushTarget, send_with_retries,
};
use serde_json::{Value, json};

use super::{
    Logs, P256, attempts, bare_validation, clock, jwt_parts, message, metrics, outbound, serve,
    write,
};
use crate::support::temp_dir;

const TEAM_ID: &str = "TEAM4EXMPL";
const KEY_ID: &str = "KEY8EXMPL1";
const TOPIC: &str = "com.example.authenticator";

/// One request as the server saw it.
#[derive(Clone)]
struct Seen {
    token: String,
    version: Version,
    headers: HeaderMap,
    jwt: String,
    payload: Value,
}

/// A scripted answer: status, `reason`, `Retry-After`.
type Scripted = (u16, &'static str, Option<u64>);

struct Apple {
    key: jsonwebtoken::DecodingKey,
    clock: ManualClock,
    seen: Mutex<Vec<Seen>>,
    script: Mutex<HashMap<String, VecDeque<Scripted>>>,
}

fn reason(status: u16, reason: &str, retry_after: Option<u64>) -> Response {
    let mut response = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({ "reason": reason })),
    )
        .into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.to_string().parse().unwrap());
    }
    response
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Checks what APNs checks, in its order, and answers as it would.
async fn device_post(
    State(apple): State<Arc<Apple>>,
    Path(token): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let jwt = header(&headers, "authorization")
        .and_then(|a| a.strip_prefix("bearer "))
        .unwrap_or_default()
        .to_owned();
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    apple.seen.lock().unwrap().push(Seen {
        token: token.clone(),
        version,
        headers: headers.clone(),
        jwt: jwt.clone(),
        payload: payload.clone(),
    });
    if version != Version::HTTP_2 {
        return reason(505, "HTTP2Required", None);
    }
    if jwt.is_empty() {
        return reason(403, "MissingProviderToken", None);
    }
    let Ok(jwt_header) = jsonwebtoken::decode_header(&jwt) else {
        return reason(403, "InvalidProviderToken", None);
    };
    if jwt_header.kid.as_deref() != Some(KEY_ID) {
        return reason(403, "InvalidProviderToken", None);
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        iss: String,
        iat: i64,
    }
    let Ok(claims) = jsonwebtoken::decode::<Claims>(
        &jwt,
        &apple.key,
        &bare_validation(jsonwebtoken::Algorithm::ES256),
    ) else {
        return reason(403, "InvalidProviderToken", None);
    };
    if claims.claims.iss != TEAM_ID {
        return reason(403, "InvalidProviderToken", None);
    }
    let now = apple.clock.now_secs();
    if claims.claims.iat < now - 3600 {
        return reason(403, "ExpiredProviderToken", None);
    }
    if claims.claims.iat > now + 60 {
        return reason(403, "InvalidProviderToken", None);
    }
    if header(&headers, "apns-topic") != Some(TOPIC) {
        return reason(400, "BadTopic", None);
    }
    if header(&headers, "apns-push-type") != Some("alert") {
        return reason(400, "InvalidPushType", None);
    }
    if !matches!(header(&headers, "apns-priority"), Some("5" | "10")) {
        return reason(400, "BadPriority", None);
    }
    if header(&headers, "apns-expiration")
        .and_then(|v| v.parse::<i64>().ok())
        .is_none()
    {
        return reason(400, "BadExpirationDate", None);
    }
    if header(&headers, "apns-collapse-id").is_none_or(|c| c.len() > 64) {
        return reason(400, "BadCollapseId", None);
    }
    if body.len() > 4096 {
        return reason(413, "PayloadTooLarge", None);
    }
    if !payload["aps"].is_object() {
        return reason(400, "PayloadEmpty", None);
    }
    if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return reason(400, "BadDeviceToken", None);
    }
    let scripted = apple
        .script
        .lock()
        .unwrap()
        .get_mut(&token)
        .and_then(VecDeque::pop_front);
    match scripted {
        Some((status, why, retry_after)) => reason(status, why, retry_after),
        None => (
            StatusCode::OK,
            [("apns-id", "7d1e6b1b-0000-4000-8000-000000000000")],
        )
            .into_response(),
    }
}

struct Harness {
    apple: Arc<Apple>,
    sender: ApnsSender,
    clock: ManualClock,
}

impl Harness {
    async fn start() -> Harness {
        let key = P256::generate();
        let clock = clock();
        let apple = Arc::new(Apple {
            key: key.decoding_key(),
            clock: clock.clone(),
            seen: Mutex::new(Vec::new()),
            script: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/3/device/{token}", post(device_post))
            .with_state(apple.clone());
        let addr = serve(router).await;
        let dir = temp_dir("apns");
        let cfg = ApnsConfig {
            base_url: format!("http://{addr}"),
            team_id: TEAM_ID.into(),
            key_id: KEY_ID.into(),
            // The `.p8` file Apple issues is PKCS#8 PEM.
            key_file: write(&dir, "AuthKey_KEY8EXMPL1.p8", &key.pkcs8_pem),
            topic: TOPIC.into(),
        };
        let sender = ApnsSender::new(&cfg, &outbound(), Arc::new(clock.clone())).unwrap();
        Harness {
            apple,
            sender,
            clock,
        }
    }

    fn script(&self, token: &str, answers: &[Scripted]) {
        self.apple
            .script
            .lock()
            .unwrap()
            .insert(token.into(), answers.iter().copied().collect());
    }

    fn seen(&self) -> Vec<Seen> {
        self.apple.seen.lock().unwrap().clone()
    }
}

fn device_token() -> String {
    backchannel_protocol::jose::random_bytes(32)
        .unwrap()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test]
async fn apns_delivers_over_h2c_with_a_verified_provider_token() {
    let h = Harness::start().await;
    let (logs, _log_guard) = Logs::capture();
    let (prometheus, _metrics_guard) = metrics();
    let token = device_token();
    let msg = message(h.clock.now_secs(), 300);

    let outcome = h
        .sender
        .send(
            &PushTarget::Apns {
                token: token.clone(),
            },
            &msg,
        )
        .await;
    assert_eq!(outcome, PushOutcome::Delivered);

    let seen = h.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.version, Version::HTTP_2);
    assert_eq!(s.token, token);
    let get = |name: &str| header(&s.headers, name).unwrap_or_default();
    assert_eq!(get("apns-topic"), TOPIC);
    assert_eq!(get("apns-push-type"), "alert");
    assert_eq!(get("apns-priority"), "10");
    assert_eq!(get("apns-expiration"), msg.expires_at_secs.to_string());
    assert_eq!(get("apns-collapse-id"), msg.challenge_id);
    assert_eq!(get("content-type"), "application/json");

    // The provider token: {alg: ES256, kid} / {iss, iat} and nothing else.
    let (jwt_header, claims) = jwt_parts(&s.jwt);
    assert_eq!(jwt_header["alg"], "ES256");
    assert_eq!(jwt_header["kid"], KEY_ID);
    assert_eq!(claims, json!({ "iss": TEAM_ID, "iat": h.clock.now_secs() }));

    // The payload: a neutral alert, and only the challenge id and issuer.
    let mut keys: Vec<&String> = s.payload.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, vec!["aps", "challenge_id", "issuer"]);
    assert_eq!(s.payload["challenge_id"], msg.challenge_id.as_str());
    assert_eq!(s.payload["issuer"], msg.issuer.as_str());
    assert_eq!(s.payload["aps"]["mutable-content"], 1);
    assert_eq!(s.payload["aps"]["alert"]["title"], "Sign-in request");

    // Visible in metrics and logs, without the device token or the provider token.
    assert_eq!(attempts(&prometheus.render(), "apns", "delivered"), 1);
    let logged = logs.text();
    assert!(logged.contains("push attempt"), "{logged}");
    assert!(logged.contains(&msg.challenge_id), "{logged}");
    assert!(!logged.contains(&token), "{logged}");
    assert!(!logged.contains(&token[..16]), "{logged}");
    assert!(!logged.contains(&s.jwt), "{logged}");
}

#[tokio::test]
async fn apns_reuses_the_provider_token_and_refreshes_it_before_an_hour() {
    let h = Harness::start().await;
    let target = PushTarget::Apns {
        token: device_token(),
    };
    for _ in 0..3 {
        let msg = message(h.clock.now_secs(), 300);
        assert_eq!(h.sender.send(&target, &msg).await, PushOutcome::Delivered);
    }
    h.clock.advance_secs(PROVIDER_TOKEN_REFRESH_SECS - 60);
    let msg = message(h.clock.now_secs(), 300);
    assert_eq!(h.sender.send(&target, &msg).await, PushOutcome::Delivered);
    let first: Vec<String> = h.seen().iter().map(|s| s.jwt.clone()).collect();
    assert_eq!(first.len(), 4);
    assert!(first.iter().all(|j| *j == first[0]), "one token, reused");

    // Past 50 minutes a new token is signed (Apple refuses them after 60).
    h.clock.advance_secs(120);
    let msg = message(h.clock.now_secs(), 300);
    assert_eq!(h.sender.send(&target, &msg).await, PushOutcome::Delivered);
    let seen = h.seen();
    let fresh = &seen.last().unwrap().jwt;
    assert_ne!(fresh, &first[0]);
    assert_eq!(jwt_parts(fresh).1["iat"], h.clock.now_secs());

    // Apple says the token expired (a clock jump): it is dropped and the next try re-signs.
    let token = device_token();
    h.script(&token, &[(403, "ExpiredProviderToken", None)]);
    let target = PushTarget::Apns { token };
    let msg = message(h.clock.now_secs(), 300);
    assert_eq!(
        h.sender.send(&target, &msg).await,
        PushOutcome::Retry { after: None }
    );
    assert_eq!(h.sender.send(&target, &msg).await, PushOutcome::Delivered);
    let seen = h.seen();
    let (expired, retried) = (&seen[seen.len() - 2].jwt, &seen[seen.len() - 1].jwt);
    assert_eq!(expired, fresh);
    assert_ne!(retried, fresh);
}

#[tokio::test]
async fn apns_dead_tokens_disable_the_registration() {
    let h = Harness::start().await;
    let (prometheus, _metrics_guard) = metrics();
    let msg = message(h.clock.now_secs(), 300);

    let gone = device_token();
    h.script(&gone, &[(410, "Unregistered", None)]);
    let bad = device_token();
    h.script(&bad, &[(400, "BadDeviceToken", None)]);
    for token in [gone, bad] {
        let outcome = h.sender.send(&PushTarget::Apns { token }, &msg).await;
        assert_eq!(outcome, PushOutcome::Unregistered);
    }
    // A token that cannot be one never reaches the request path.
    for token in ["not-hex", "../../admin", ""] {
        let outcome = h
            .sender
            .send(
                &PushTarget::Apns {
                    token: token.into(),
                },
                &msg,
            )
            .await;
        assert_eq!(outcome, PushOutcome::Unregistered, "{token}");
    }
    assert_eq!(h.seen().len(), 2);
    assert_eq!(attempts(&prometheus.render(), "apns", "unregistered"), 5);

    // Other refusals fail the attempt without condemning the device.
    let odd = device_token();
    h.script(&odd, &[(400, "BadMessageId", None)]);
    let outcome = h.sender.send(&PushTarget::Apns { token: odd }, &msg).await;
    assert!(
        matches!(&outcome, PushOutcome::Failed(r) if r.contains("400") && r.contains("BadMessageId")),
        "{outcome:?}"
    );
}

/// How long the loop waits between attempts is `send_with_retries`' own test (on a paused
/// clock, in `retries`); here, that APNs' answers and `Retry-After` reach it.
#[tokio::test]
async fn apns_retries_a_503_and_gives_up_when_retry_after_passes_the_expiry() {
    let h = Harness::start().await;
    let token = device_token();
    h.script(&token, &[(503, "ServiceUnavailable", Some(1))]);
    let target = PushTarget::Apns {
        token: token.clone(),
    };
    let msg = message(h.clock.now_secs(), 300);
    let outcome = send_with_retries(&h.sender, &target, &msg, &h.clock, 3).await;
    assert_eq!(outcome, PushOutcome::Delivered);
    let seen = h.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].payload, seen[1].payload);
    assert_eq!(
        header(&seen[1].headers, "apns-collapse-id"),
        Some(msg.challenge_id.as_str())
    );

    // A Retry-After past the request's expiry ends the attempts after this one: APNs' header
    // is passed on, and no further request is made.
    h.script(&token, &[(429, "TooManyRequests", Some(30))]);
    let short = message(h.clock.now_secs(), 5);
    let outcome = send_with_retries(&h.sender, &target, &short, &h.clock, 10).await;
    assert_eq!(
        outcome,
        PushOutcome::Retry {
            after: Some(Duration::from_secs(30))
        }
    );
    assert_eq!(h.seen().len(), 3);

    // Nothing is sent for a request that has already expired.
    let late = message(h.clock.now_secs(), 0);
    assert!(matches!(
        h.sender.send(&target, &late).await,
        PushOutcome::Failed(_)
    ));
    assert_eq!(h.seen().len(), 3);
}

#[tokio::test]
async fn apns_base_url_must_pass_the_outbound_policy() {
    let key = P256::generate();
    let dir = temp_dir("apns-policy");
    let cfg = ApnsConfig {
        base_url: "http://127.0.0.1:1".into(),
        team_id: TEAM_ID.into(),
        key_id: KEY_ID.into(),
        key_file: write(&dir, "k.p8", &key.pkcs8_pem),
        topic: TOPIC.into(),
    };
    let closed = backchannel_server::outbound::Outbound::new(
        &backchannel_server::config::OutboundConfig::default(),
    )
    .unwrap();
    let err = ApnsSender::new(&cfg, &closed, Arc::new(clock()))
        .err()
        .unwrap();
    assert!(err.to_string().contains("base_url"), "{err}");
    let missing = ApnsConfig {
        key_file: dir.join("absent.p8").to_string_lossy().into_owned(),
        ..cfg.clone()
    };
    assert!(ApnsSender::new(&missing, &outbound(), Arc::new(clock())).is_err());
    let not_p256 = ApnsConfig {
        key_file: write(
            &dir,
            "bad.p8",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        ),
        ..cfg
    };
    assert!(ApnsSender::new(&not_p256, &outbound(), Arc::new(clock())).is_err());
}
