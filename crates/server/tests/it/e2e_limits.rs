//! Push-bombing protection over HTTP (issue 13): each `[limits]` limit answers 429 with
//! `Retry-After` and an OAuth body without creating a request or touching a device; a new
//! request replaces the client's undecided one on the devices; a "not me" denial blocks the
//! client for the user; operators see it in `/metrics` and in the user's request list.

use std::time::Duration;

use backchannel_protocol::device::{DECISION_JWT_TYP, Decision, DecisionClaims};
use backchannel_protocol::jose::{self, b64};
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::config::{Config, LimitsConfig};
use serde_json::Value;

use crate::e2e_events::Events;
use crate::support::{Answer, Auth, TestDevice, TestServer, now_secs};

const HINT: &str = "bombed@example.com";
const WAIT: Duration = Duration::from_secs(5);

fn only(limits: LimitsConfig) -> impl FnOnce(&mut Config) {
    move |c| c.limits = limits
}

fn none() -> LimitsConfig {
    LimitsConfig {
        pending_per_user_client: 0,
        requests_per_user: 0,
        requests_per_client: 0,
        ..LimitsConfig::default()
    }
}

async fn setup(s: &TestServer) -> (Auth, TestDevice) {
    let (_, device) = s.user_with_device(HINT).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    (auth, device)
}

async fn ask(s: &TestServer, auth: &Auth, message: &str) -> Answer {
    s.bc_authorize(
        auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("binding_message", message),
        ],
    )
    .await
}

/// A 429 with `Retry-After` (seconds, at least 1) and an OAuth error body; its seconds.
#[track_caller]
fn limited(a: &Answer) -> i64 {
    a.expect_error(429, "slow_down");
    let secs: i64 = a.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(secs >= 1, "{secs}");
    secs
}

async fn metrics(s: &TestServer) -> String {
    let r = s.http.get(s.url("/metrics")).send().await.unwrap();
    r.text().await.unwrap()
}

/// The value of the counter line naming `name` with every label in `labels`.
fn counter(text: &str, name: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn not_me_denial(device: &TestDevice, id: &str, challenge: &str) -> String {
    let claims = DecisionClaims {
        iss: device.id.clone(),
        challenge_id: id.to_owned(),
        decision: Decision::Deny,
        user_verified: false,
        shown_hash: b64::encode(&jose::sha256(challenge.as_bytes())),
        iat: now_secs(),
        jti: jose::random_token(16).unwrap(),
        webauthn: None,
        not_me: true,
    };
    jose::sign_jwt(&device.key, Some(DECISION_JWT_TYP), &claims).unwrap()
}

async fn admin_requests(s: &TestServer, sub: &str) -> Value {
    let r = s
        .http
        .get(s.url(&format!("/admin/v1/users/{sub}/requests")))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    let a = Answer::from(r).await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body
}

#[tokio::test]
async fn the_per_user_limit_answers_429_and_touches_no_device() {
    let s = TestServer::start_with(only(LimitsConfig {
        requests_per_user: 2,
        requests_per_user_window_secs: 600,
        ..none()
    }))
    .await;
    let (auth, device) = setup(&s).await;
    // Another client counts towards the same user.
    let other = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    assert_eq!(ask(&s, &auth, "one").await.status, 200);
    assert_eq!(ask(&s, &other, "two").await.status, 200);
    let before = device.challenges(&s).await.len();

    let refused = ask(&s, &auth, "three").await;
    let secs = limited(&refused);
    assert!((599..=600).contains(&secs), "{secs}");
    let description = refused.body["error_description"].as_str().unwrap();
    assert!(
        description.contains("at most 2 in 600 seconds"),
        "{description}"
    );
    assert_eq!(
        device.challenges(&s).await.len(),
        before,
        "no device touched"
    );
    let text = metrics(&s).await;
    let id = format!("client_id=\"{}\"", auth.client_id());
    assert_eq!(
        counter(
            &text,
            "backchannel_rate_limited_total",
            &[&id, "limit=\"requests_per_user\""]
        ),
        1,
        "{text}"
    );
}

#[tokio::test]
async fn the_undecided_limit_of_a_client_with_parallel_requests_answers_429() {
    let s = TestServer::start_with(only(LimitsConfig {
        pending_per_user_client: 2,
        replace_undecided: false,
        ..none()
    }))
    .await;
    let (auth, device) = setup(&s).await;
    for m in ["one", "two"] {
        assert_eq!(ask(&s, &auth, m).await.status, 200);
    }
    let refused = ask(&s, &auth, "three").await;
    limited(&refused);
    assert!(
        refused.body["error_description"]
            .as_str()
            .unwrap()
            .contains("2 undecided requests")
    );
    let shown = device.challenges(&s).await;
    assert_eq!(shown.len(), 2, "the refused request reached no device");
    // A decision frees a slot.
    let jws = device.decision_jws(&shown[0], Decision::Deny, &shown[0].challenge);
    assert_eq!(
        device.send_decision(&s, &shown[0].id, &jws).await.status,
        200
    );
    assert_eq!(ask(&s, &auth, "three").await.status, 200);
}

#[tokio::test]
async fn the_per_client_limit_answers_429() {
    let s = TestServer::start_with(only(LimitsConfig {
        requests_per_client: 1,
        requests_per_client_window_secs: 60,
        ..none()
    }))
    .await;
    let (auth, device) = setup(&s).await;
    assert_eq!(ask(&s, &auth, "one").await.status, 200);
    let secs = limited(&ask(&s, &auth, "two").await);
    assert!((59..=60).contains(&secs), "{secs}");
    assert_eq!(device.challenges(&s).await.len(), 1);
}

#[tokio::test]
async fn a_new_request_replaces_the_undecided_one_on_the_devices() {
    let s = TestServer::start_with(only(none())).await;
    let (auth, device) = setup(&s).await;
    let mut events = Events::open(&s, &device, None).await;
    let first = ask(&s, &auth, "first").await;
    let first_id = first.body["auth_req_id"].as_str().unwrap().to_owned();
    let shown = events.next_event(WAIT).await.unwrap();
    assert_eq!(shown.event, "challenge");
    let first_challenge = shown.data["challenge_id"].as_str().unwrap().to_owned();

    let second = ask(&s, &auth, "second").await;
    assert_eq!(second.status, 200);
    // The device is told of the new one and that the old one closed.
    let mut seen = Vec::new();
    for _ in 0..2 {
        let e = events.next_event(WAIT).await.unwrap();
        seen.push((
            e.event.clone(),
            e.data["challenge_id"].as_str().unwrap().to_owned(),
        ));
    }
    assert!(
        seen.contains(&("challenge_closed".into(), first_challenge.clone())),
        "{seen:?}"
    );
    let pending = device.challenges(&s).await;
    assert_eq!(pending.len(), 1);
    let claims = device.verify(&s, &pending[0]).await;
    assert_eq!(claims.binding_message.as_deref(), Some("second"));
    // The old request's poller learns it ended; a decision on it is refused.
    s.token(&auth, &first_id)
        .await
        .expect_error(400, "expired_token");
    let stale = device.decision_jws(&pending[0], Decision::Approve, &pending[0].challenge);
    let late = device.send_decision(&s, &first_challenge, &stale).await;
    assert_eq!(late.status, 409, "{}", late.body);

    let sub = s.server.domain.stores.devices.get_device(&device.id).await;
    let sub = sub.unwrap().unwrap().user_sub;
    let list = admin_requests(&s, &sub).await;
    let outcomes: Vec<&str> = list["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["pending", "replaced"]);
}

#[tokio::test]
async fn a_not_me_denial_blocks_the_client_and_is_counted() {
    let s = TestServer::start_with(only(LimitsConfig {
        not_me_block_secs: 3600,
        ..none()
    }))
    .await;
    let (auth, device) = setup(&s).await;
    let other = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let asked = ask(&s, &auth, "not me").await;
    let id = asked.body["auth_req_id"].as_str().unwrap().to_owned();
    let shown = device.challenges(&s).await;
    let jws = not_me_denial(&device, &shown[0].id, &shown[0].challenge);
    let decided = device.send_decision(&s, &shown[0].id, &jws).await;
    assert_eq!(decided.status, 200, "{}", decided.body);
    s.token(&auth, &id).await.expect_error(400, "access_denied");

    // That client is refused for this user, with nothing stored or shown; another is not.
    let blocked = ask(&s, &auth, "again").await;
    blocked.expect_error(403, "access_denied");
    let description = blocked.body["error_description"].as_str().unwrap();
    assert!(description.contains("not theirs"), "{description}");
    assert!(device.challenges(&s).await.is_empty());
    assert_eq!(ask(&s, &other, "someone else").await.status, 200);

    let text = metrics(&s).await;
    let label = format!("client_id=\"{}\"", auth.client_id());
    assert_eq!(
        counter(&text, "backchannel_not_me_denials_total", &[&label]),
        1,
        "{text}"
    );
    assert_eq!(
        counter(
            &text,
            "backchannel_policy_refusals_total",
            &[&label, "rule=\"not_me_block\""]
        ),
        1,
        "{text}"
    );
    let sub = s.server.domain.stores.devices.get_device(&device.id).await;
    let sub = sub.unwrap().unwrap().user_sub;
    let list = admin_requests(&s, &sub).await;
    let requests = list["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 2, "{list}");
    assert_eq!(requests[1]["outcome"], "denied_not_me");
    assert_eq!(requests[1]["binding_message"], "not me");
}

#[tokio::test]
async fn the_request_list_refuses_an_unknown_user_and_a_bad_limit() {
    let s = TestServer::start().await;
    let get = |path: String| {
        let req = s.http.get(s.url(&path)).bearer_auth("test-admin-token");
        async move { Answer::from(req.send().await.unwrap()).await }
    };
    get("/admin/v1/users/nobody/requests".into())
        .await
        .expect_error(404, "not_found");
    let (user, _) = s.user_with_device(HINT).await;
    for bad in ["0", "x", "501"] {
        let a = get(format!("/admin/v1/users/{}/requests?limit={bad}", user.sub)).await;
        a.expect_error(400, "invalid_request");
    }
    let a = get(format!("/admin/v1/users/{}/requests?limit=5", user.sub)).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["requests"], serde_json::json!([]));
}

/// A client whose policy allows parallel requests keeps them side by side on the devices, up
/// to `[limits] pending_per_user_client`; another client's new request still replaces its own.
#[tokio::test]
async fn a_policy_allowing_parallel_requests_keeps_them_up_to_the_undecided_limit() {
    let s = TestServer::start_with(only(LimitsConfig {
        pending_per_user_client: 3,
        ..none()
    }))
    .await;
    let (auth, device) = setup(&s).await;
    let path = format!("/admin/v1/policies/{}", auth.client_id());
    let put = s
        .http
        .put(s.url(&path))
        .bearer_auth("test-admin-token")
        .json(&serde_json::json!({"allow_parallel": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    for m in ["one", "two", "three"] {
        assert_eq!(ask(&s, &auth, m).await.status, 200);
    }
    assert_eq!(device.challenges(&s).await.len(), 3);
    limited(&ask(&s, &auth, "four").await);

    let other = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    assert_eq!(ask(&s, &other, "a").await.status, 200);
    assert_eq!(ask(&s, &other, "b").await.status, 200);
    let shown = device.challenges(&s).await;
    let mut messages = Vec::new();
    for c in &shown {
        messages.push(device.verify(&s, c).await.binding_message.unwrap());
    }
    messages.sort();
    assert_eq!(messages, ["b", "one", "three", "two"]);
}
