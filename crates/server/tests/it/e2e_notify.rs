//! Ping and push modes over HTTP, against a local receiver that records what the server sends
//! and answers as each test scripts it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use backchannel_protocol::device::Decision;
use backchannel_protocol::jose::{self, Algorithm};
use backchannel_protocol::oauth::DeliveryMode;
use backchannel_server::app::start;
use backchannel_server::domain::Domain;
use backchannel_server::domain::admin::NewClient;
use backchannel_server::domain::clock::Clock;
use backchannel_server::domain::model::{AuthRequestState, NotificationState};
use serde_json::{Value, json};

use crate::support::{Auth, Recorder, TestServer, eventually, temp_dir, test_config};

const HINT: &str = "nina@example.com";
const TOKEN: &str = "ping-token-8e1f.~+/";

#[derive(Debug, Clone)]
pub struct Call {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

/// A scripted answer: status and optional `Location`.
type Scripted = (u16, Option<&'static str>);

#[derive(Clone, Default)]
struct Shared {
    calls: Recorder<Call>,
    /// Scripted answers (status, Location); 200 once the script is used up.
    script: Arc<Mutex<VecDeque<Scripted>>>,
}

pub struct Receiver {
    pub base: String,
    shared: Shared,
}

async fn record(
    State(shared): State<Shared>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    shared.calls.record(Call {
        path: uri.path().to_owned(),
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: serde_json::from_str(&body).unwrap_or(Value::String(body)),
    });
    let (status, location) = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, None));
    let mut h = HeaderMap::new();
    if let Some(l) = location {
        h.insert("location", l.parse().unwrap());
    }
    (StatusCode::from_u16(status).unwrap(), h, "")
}

impl Receiver {
    pub async fn start(script: &[Scripted]) -> Receiver {
        let shared = Shared::default();
        shared.script.lock().unwrap().extend(script.iter().copied());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { base, shared }
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.calls.all()
    }

    pub fn answer_next(&self, status: u16) {
        self.shared.script.lock().unwrap().push_back((status, None));
    }

    pub fn clear_script(&self) {
        self.shared.script.lock().unwrap().clear();
    }

    /// Waits until `n` calls arrived.
    pub async fn wait_calls(&self, n: usize) -> Vec<Call> {
        self.shared.calls.wait(n).await
    }
}

async fn notified_client(s: &TestServer, mode: DeliveryMode, endpoint: String) -> Auth {
    let (id, secret) = s
        .client(NewClient {
            name: "Callback Bank".into(),
            delivery_mode: Some(mode),
            notification_endpoint: Some(endpoint),
            scope: Some("openid email".into()),
            ..Default::default()
        })
        .await;
    Auth::Basic(id, secret.unwrap())
}

async fn start_notified(s: &TestServer, auth: &Auth) -> String {
    s.start_request(
        auth,
        &[
            ("scope", "openid email"),
            ("login_hint", HINT),
            ("client_notification_token", TOKEN),
        ],
    )
    .await
}

async fn notification_state(s: &TestServer, auth_req_id: &str) -> (NotificationState, i64) {
    let id = Domain::auth_request_key(auth_req_id);
    let n = s
        .server
        .domain
        .stores
        .outbox
        .get_notification(&id)
        .await
        .unwrap()
        .unwrap();
    (n.state, n.attempts)
}

/// Waits until the request's notification is in `want`; its attempts then.
async fn wait_state(s: &TestServer, auth_req_id: &str, want: NotificationState) -> i64 {
    eventually(&format!("the notification reaches {want:?}"), || async {
        match notification_state(s, auth_req_id).await {
            (state, attempts) if state == want => Ok(attempts),
            other => Err(other),
        }
    })
    .await
}

/// Nothing is left to send: no notification is pending. Delivered and failed are final, and
/// a request never gets a second notification, so a receiver's count is then the last word.
async fn assert_outbox_drained(s: &TestServer) {
    let next = s
        .server
        .domain
        .stores
        .outbox
        .next_notification_at()
        .await
        .unwrap();
    assert_eq!(next, None, "a notification is still pending");
}

#[tokio::test]
async fn ping_mode_calls_back_then_the_client_polls() {
    let rx = Receiver::start(&[]).await;
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = notified_client(&s, DeliveryMode::Ping, format!("{}/cb", rx.base)).await;
    let id = start_notified(&s, &auth).await;
    assert!(rx.calls().is_empty(), "nothing is sent before the decision");
    assert_eq!(device.decide_only(&s, Decision::Approve).await.status, 200);
    let calls = rx.wait_calls(1).await;
    assert_eq!(calls[0].path, "/cb");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(calls[0].body, json!({ "auth_req_id": id }));
    let t = s.token(&auth, &id).await;
    assert_eq!(
        t.status, 200,
        "ping clients poll after the ping: {}",
        t.body
    );
    assert_eq!(wait_state(&s, &id, NotificationState::Delivered).await, 1);
}

#[tokio::test]
async fn push_mode_delivers_the_tokens_once_with_the_hashes() {
    let rx = Receiver::start(&[]).await;
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = notified_client(&s, DeliveryMode::Push, format!("{}/push", rx.base)).await;
    let id = start_notified(&s, &auth).await;
    device.decide_only(&s, Decision::Approve).await;
    let calls = rx.wait_calls(1).await;
    let body = &calls[0].body;
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(body["auth_req_id"], id);
    assert_eq!(body["token_type"], "Bearer");
    let access_token = body["access_token"].as_str().unwrap();
    let claims = s.verify_jwt(body["id_token"].as_str().unwrap()).await.1;
    assert_eq!(claims["urn:openid:params:jwt:claim:auth_req_id"], id);
    assert_eq!(
        claims["at_hash"],
        jose::hash_half(Algorithm::ES256, access_token.as_bytes())
    );
    assert_eq!(claims["email"], HINT);
    assert!(
        body.get("refresh_token").is_none()
            && claims.get("urn:openid:params:jwt:claim:rt_hash").is_none()
    );
    // The request counts as redeemed: polling is refused, and nothing more is sent.
    s.token(&auth, &id)
        .await
        .expect_error(400, "unauthorized_client");
    assert_eq!(wait_state(&s, &id, NotificationState::Delivered).await, 1);
    assert_eq!(s.request_state(&id).await, AuthRequestState::Redeemed);
    assert_outbox_drained(&s).await;
    assert_eq!(rx.calls().len(), 1);
}

#[tokio::test]
async fn push_mode_reports_denial_and_expiry() {
    let rx = Receiver::start(&[]).await;
    let (s, clock) = TestServer::start_clocked().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = notified_client(&s, DeliveryMode::Push, format!("{}/push", rx.base)).await;
    let denied = start_notified(&s, &auth).await;
    device.decide_only(&s, Decision::Deny).await;
    let calls = rx.wait_calls(1).await;
    assert_eq!(
        calls[0].body,
        json!({ "error": "access_denied", "auth_req_id": denied })
    );

    let expiring = s
        .start_request(
            &auth,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("client_notification_token", TOKEN),
                ("requested_expiry", "30"),
            ],
        )
        .await;
    clock.advance_secs(31);
    let calls = rx.wait_calls(2).await;
    assert_eq!(
        calls[1].body,
        json!({ "error": "expired_token", "auth_req_id": expiring })
    );
    // Each was delivered in one attempt, and the expired request is not queued again.
    assert_eq!(
        wait_state(&s, &denied, NotificationState::Delivered).await,
        1
    );
    assert_eq!(
        wait_state(&s, &expiring, NotificationState::Delivered).await,
        1
    );
    let unnotified = s
        .server
        .domain
        .stores
        .outbox
        .expired_unnotified_push(clock.now_ms())
        .await
        .unwrap();
    assert!(unnotified.is_empty(), "{unnotified:?}");
    assert_outbox_drained(&s).await;
    assert_eq!(rx.calls().len(), 2, "the expiry is pushed once");
}

#[tokio::test]
async fn a_503_is_retried_until_it_succeeds() {
    let rx = Receiver::start(&[(503, None)]).await;
    let s = TestServer::start().await;
    let (_, device) = s.user_with_device(HINT).await;
    let auth = notified_client(&s, DeliveryMode::Ping, format!("{}/cb", rx.base)).await;
    let id = start_notified(&s, &auth).await;
    device.decide_only(&s, Decision::Approve).await;
    let calls = rx.wait_calls(2).await;
    assert_eq!(calls[0].body, calls[1].body);
    assert_eq!(wait_state(&s, &id, NotificationState::Delivered).await, 2);
}

#[tokio::test]
async fn a_401_is_final_and_a_redirect_is_not_followed() {
    for (status, location) in [(401, None), (302, Some("/elsewhere"))] {
        let rx = Receiver::start(&[(status, location)]).await;
        let s = TestServer::start().await;
        let (_, device) = s.user_with_device(HINT).await;
        let auth = notified_client(&s, DeliveryMode::Ping, format!("{}/cb", rx.base)).await;
        let id = start_notified(&s, &auth).await;
        device.decide_only(&s, Decision::Approve).await;
        rx.wait_calls(1).await;
        assert_eq!(
            wait_state(&s, &id, NotificationState::Failed).await,
            1,
            "HTTP {status} is final"
        );
        // Failed is final and nothing else is pending: no retry can come. A followed
        // redirect would have reached the receiver within the attempt, before its end was
        // recorded.
        assert_outbox_drained(&s).await;
        let calls = rx.calls();
        assert_eq!(
            calls.len(),
            1,
            "HTTP {status}: no retry, no redirect followed: {calls:?}"
        );
    }
}

#[tokio::test]
async fn a_pending_notification_survives_a_restart() {
    let rx = Receiver::start(&[(503, None)]).await;
    let dir = temp_dir("outbox-restart");
    let config = test_config(&dir);
    let first = start(config.clone()).await.unwrap();
    let s = TestServer {
        base: first.issuer.clone(),
        server: first,
        http: reqwest::Client::new(),
    };
    let (_, device) = s.user_with_device(HINT).await;
    let auth = notified_client(&s, DeliveryMode::Ping, format!("{}/cb", rx.base)).await;
    let id = start_notified(&s, &auth).await;
    // Keep failing until the server is gone.
    for _ in 0..20 {
        rx.answer_next(503);
    }
    device.decide_only(&s, Decision::Approve).await;
    rx.wait_calls(1).await;
    let TestServer { server, .. } = s;
    server.shutdown().await;
    let before = rx.calls().len();
    rx.clear_script();

    let second = start(config).await.unwrap();
    let s = TestServer {
        base: second.issuer.clone(),
        server: second,
        http: reqwest::Client::new(),
    };
    let calls = rx.wait_calls(before + 1).await;
    assert_eq!(calls.last().unwrap().body, json!({ "auth_req_id": id }));
    wait_state(&s, &id, NotificationState::Delivered).await;
}

#[tokio::test]
async fn an_endpoint_resolving_to_loopback_is_refused_unless_allowed() {
    let rx = Receiver::start(&[]).await;
    let s = TestServer::start_with(|c| c.outbound.allowed_private_networks.clear()).await;
    let (_, device) = s.user_with_device(HINT).await;
    let endpoint = format!("{}/cb", rx.base.replace("127.0.0.1", "localhost"));
    let auth = notified_client(&s, DeliveryMode::Ping, endpoint).await;
    let id = start_notified(&s, &auth).await;
    device.decide_only(&s, Decision::Approve).await;
    wait_state(&s, &id, NotificationState::Failed).await;
    assert!(rx.calls().is_empty());
    // A literal loopback address is refused the same way.
    let (literal_id, literal_secret) = s
        .client(NewClient {
            name: "Literal".into(),
            delivery_mode: Some(DeliveryMode::Ping),
            notification_endpoint: Some(format!("{}/cb", rx.base)),
            ..Default::default()
        })
        .await;
    let literal = Auth::Basic(literal_id, literal_secret.unwrap());
    let id = s
        .start_request(
            &literal,
            &[
                ("scope", "openid"),
                ("login_hint", HINT),
                ("client_notification_token", TOKEN),
            ],
        )
        .await;
    device.decide_only(&s, Decision::Approve).await;
    wait_state(&s, &id, NotificationState::Failed).await;
    assert!(rx.calls().is_empty());
}

#[tokio::test]
async fn the_admin_api_registers_ping_clients_by_their_ciba_metadata_names() {
    let s = TestServer::start().await;
    let r = s
        .http
        .post(s.url("/admin/v1/clients"))
        .bearer_auth("test-admin-token")
        .json(&json!({
            "client_name": "Metadata Bank",
            "token_endpoint_auth_method": "client_secret_post",
            "backchannel_token_delivery_mode": "ping",
            "backchannel_client_notification_endpoint": "https://rp.example/cb",
        }))
        .send()
        .await
        .unwrap();
    let created = crate::support::Answer::from(r).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["client_id"].as_str().unwrap();
    let client = s
        .server
        .domain
        .stores
        .clients
        .get_client(id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.delivery_mode, DeliveryMode::Ping);
    assert_eq!(
        client.notification_endpoint.as_deref(),
        Some("https://rp.example/cb")
    );
}

#[tokio::test]
async fn http_endpoints_need_allow_http() {
    let s = TestServer::start_with(|c| c.outbound.allow_http = false).await;
    let refused = s
        .server
        .domain
        .create_client(NewClient {
            name: "Plain".into(),
            delivery_mode: Some(DeliveryMode::Ping),
            notification_endpoint: Some("http://rp.example/cb".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.code()),
        Err("invalid_request")
    );
}
