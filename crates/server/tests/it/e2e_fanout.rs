//! Fan-out to devices' push channels over real HTTP/2: a new request pushes to every device's
//! APNs registration (a local h2c server standing in for Apple), retries a 503, disables a
//! registration Apple reports gone, and still delivers after a restart that follows the
//! `/bc-authorize` answer.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::IntoResponse;
use backchannel_protocol::device::PushRegistration;
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::app::start;
use backchannel_server::config::Config;
use backchannel_server::domain::admin::NewUser;
use serde_json::Value;

use crate::push::{P256, write};
use crate::support::{Auth, Recorder, TestServer, eventually, temp_dir, test_config};

const HINT: &str = "pia@example.com";
const TOKEN: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

#[derive(Debug, Clone)]
struct Pushed {
    token: String,
    collapse_id: String,
    payload: Value,
}

#[derive(Clone, Default)]
struct Apple {
    pushes: Recorder<Pushed>,
    script: Arc<Mutex<VecDeque<(u16, &'static str)>>>,
}

async fn apns_post(
    State(apple): State<Apple>,
    Path(token): Path<String>,
    version: Version,
    headers: HeaderMap,
    body: String,
) -> impl IntoResponse {
    assert_eq!(version, Version::HTTP_2, "APNs speaks HTTP/2 only");
    apple.pushes.record(Pushed {
        token,
        collapse_id: headers
            .get("apns-collapse-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .into(),
        payload: serde_json::from_str(&body).unwrap(),
    });
    let (status, reason) = apple
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((200, ""));
    let body = if reason.is_empty() {
        String::new()
    } else {
        format!("{{\"reason\":\"{reason}\"}}")
    };
    (StatusCode::from_u16(status).unwrap(), body)
}

struct Push {
    apple: Apple,
    configure: Box<dyn Fn(&mut Config) + Send + Sync>,
}

impl Push {
    async fn start(script: &[(u16, &'static str)]) -> Push {
        let apple = Apple::default();
        apple.script.lock().unwrap().extend(script.iter().copied());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/3/device/{token}", axum::routing::post(apns_post))
            .with_state(apple.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let key_file = write(
            &temp_dir("apns-key"),
            "AuthKey.p8",
            &P256::generate().pkcs8_pem,
        );
        let configure = Box::new(move |c: &mut Config| {
            c.push.apns.base_url = format!("http://{addr}");
            c.push.apns.team_id = "TEAM123456".into();
            c.push.apns.key_id = "KEY1234567".into();
            c.push.apns.key_file = key_file.clone();
            c.push.apns.topic = "com.example.authenticator".into();
        });
        Push { apple, configure }
    }

    fn pushes(&self) -> Vec<Pushed> {
        self.apple.pushes.all()
    }

    async fn wait(&self, n: usize) -> Vec<Pushed> {
        self.apple.pushes.wait(n).await
    }
}

fn apns(token: &str) -> Option<PushRegistration> {
    Some(PushRegistration {
        apns_token: Some(token.into()),
        ..Default::default()
    })
}

async fn setup(s: &TestServer) -> (crate::support::TestDevice, Auth) {
    let user = s
        .user(NewUser {
            email: Some(HINT.into()),
            ..Default::default()
        })
        .await;
    let device = s.enrol_with_push(&user.sub, apns(TOKEN)).await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    (device, auth)
}

#[tokio::test]
async fn a_new_request_is_pushed_with_no_personal_data() {
    let push = Push::start(&[]).await;
    let s = TestServer::start_with(|c| (push.configure)(c)).await;
    let (device, auth) = setup(&s).await;
    s.start_request(
        &auth,
        &[
            ("scope", "openid"),
            ("login_hint", HINT),
            ("binding_message", "Secret 42"),
        ],
    )
    .await;
    let pushed = push.wait(1).await;
    let challenge = &device.challenges(&s).await[0];
    assert_eq!(pushed[0].token, TOKEN);
    assert_eq!(pushed[0].collapse_id, challenge.id);
    assert_eq!(pushed[0].payload["challenge_id"], challenge.id);
    assert_eq!(pushed[0].payload["issuer"], s.base);
    let text = pushed[0].payload.to_string();
    for private in ["Secret 42", HINT, "Test Bank"] {
        assert!(
            !text.contains(private),
            "the push must not carry {private}: {text}"
        );
    }
}

#[tokio::test]
async fn a_503_is_retried_and_an_unregistered_token_is_disabled() {
    let push = Push::start(&[(503, "ServiceUnavailable")]).await;
    // Three requests of one client stay open side by side.
    let s = TestServer::start_with(|c| {
        (push.configure)(c);
        c.limits.replace_undecided = false;
    })
    .await;
    let (device, auth) = setup(&s).await;
    s.start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let pushed = push.wait(2).await;
    assert_eq!(
        pushed[0].collapse_id, pushed[1].collapse_id,
        "the same challenge, retried"
    );

    // Apple now says the token is gone: the registration is disabled, the device stays.
    push.apple
        .script
        .lock()
        .unwrap()
        .push_back((410, "Unregistered"));
    s.start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    push.wait(3).await;
    let stores = &s.server.domain.stores;
    let d = eventually("the registration is disabled", || async {
        let d = stores
            .devices
            .get_device(&device.id)
            .await
            .unwrap()
            .unwrap();
        match d.push.disabled == ["apns"] {
            true => Ok(d),
            false => Err(d.push),
        }
    })
    .await;
    assert!(!d.disabled, "the device stays");
    // Still reachable (live or when it asks), so not unknown_user_id; but no push is queued
    // for it, so none can go out.
    let before = device.challenges(&s).await;
    s.start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let challenges = device.challenges(&s).await;
    assert_eq!(challenges.len(), 3);
    let new = challenges
        .iter()
        .find(|c| before.iter().all(|b| b.id != c.id));
    let new = &new.unwrap().id;
    assert_eq!(stores.pushes.get_push_delivery(new).await.unwrap(), None);
    assert_eq!(stores.pushes.next_push_delivery_at().await.unwrap(), None);
    assert_eq!(push.pushes().len(), 3);
}

#[tokio::test]
async fn a_push_still_goes_out_after_a_restart_that_followed_the_answer() {
    // Apple is unreachable at first: every attempt fails.
    let push = Push::start(&[]).await;
    let dir = temp_dir("fanout-restart");
    let mut config = test_config(&dir);
    (push.configure)(&mut config);
    let real_base = config.push.apns.base_url.clone();
    config.push.apns.base_url = "http://127.0.0.1:9".into();
    let first = start(config.clone()).await.unwrap();
    let s = TestServer {
        base: first.issuer.clone(),
        server: first,
        http: reqwest::Client::new(),
    };
    let (device, auth) = setup(&s).await;
    s.start_request(&auth, &[("scope", "openid"), ("login_hint", HINT)])
        .await;
    let TestServer { server, .. } = s;
    server.shutdown().await;
    assert!(push.pushes().is_empty());

    config.push.apns.base_url = real_base;
    let second = start(config).await.unwrap();
    let s = TestServer {
        base: second.issuer.clone(),
        server: second,
        http: reqwest::Client::new(),
    };
    let pushed = push.wait(1).await;
    let device = crate::support::TestDevice {
        issuer: s.base.clone(),
        ..device
    };
    assert_eq!(pushed[0].collapse_id, device.challenges(&s).await[0].id);
}
