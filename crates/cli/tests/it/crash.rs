//! Killed, not stopped: what a `backchannel serve` process that dies by SIGKILL keeps. A push
//! answered but not yet delivered goes out once it runs again; every `/bc-authorize` it
//! answered 200 is still there; and no approval yields two tokens across the crash.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::Path as UrlPath;
use axum::http::HeaderMap;
use base64::Engine;
use serde_json::Value;
use tokio::sync::watch;

use crate::authenticator_device::{Killed, authenticator_json, enrol, new_user};
use crate::serve_admin::{admin, bc_authorize, bin, free_port, serve_on, serve_with, temp_dir};

const APNS_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn p8(dir: &std::path::Path) -> String {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let der = pair.to_pkcs8v1().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let body: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let path = dir.join("AuthKey.p8");
    std::fs::write(
        &path,
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            body.join("\n")
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn push_env(base_url: &str, key_file: &str) -> Vec<(String, String)> {
    [
        ("BACKCHANNEL_PUSH_APNS_BASE_URL", base_url),
        ("BACKCHANNEL_PUSH_APNS_TEAM_ID", "TEAM123456"),
        ("BACKCHANNEL_PUSH_APNS_KEY_ID", "KEY1234567"),
        ("BACKCHANNEL_PUSH_APNS_KEY_FILE", key_file),
        ("BACKCHANNEL_PUSH_APNS_TOPIC", "com.example.authenticator"),
        (
            "BACKCHANNEL_OUTBOUND_ALLOWED_PRIVATE_NETWORKS",
            "127.0.0.0/8",
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

#[test]
fn a_push_survives_a_kill_between_the_answer_and_the_delivery() {
    let dir = temp_dir("crash");
    let key_file = p8(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    // A stand-in for Apple (HTTP/2 with prior knowledge) recording the collapse ids it gets.
    let received: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let apple = {
        let received = received.clone();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let app = axum::Router::new().route(
                "/3/device/{token}",
                axum::routing::post(move |UrlPath(token): UrlPath<String>, headers: HeaderMap| {
                    let received = received.clone();
                    async move {
                        let collapse = headers
                            .get("apns-collapse-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        received.lock().unwrap().push((token, collapse));
                        ""
                    }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            format!("http://{addr}")
        })
    };

    // First life: Apple cannot be reached, so the push is still queued when the process dies.
    let port = free_port();
    let dead_apple = format!("http://127.0.0.1:{}", free_port());
    let mut first = serve_with(&dir, port, &push_env(&dead_apple, &key_file));
    let client = admin(
        &dir,
        &["client", "create", "--name", "Crash Bank", "--json"],
    );
    let user = admin(
        &dir,
        &["user", "create", "--email", "crash@example.com", "--json"],
    );
    let code = admin(
        &dir,
        &[
            "enrolment",
            "create",
            "--user",
            user["sub"].as_str().unwrap(),
            "--json",
        ],
    );
    let state = dir.join("phone.json");
    let enrolled = Command::new(bin())
        .args([
            "authenticator",
            "enrol",
            "--server",
            &first.issuer,
            "--code",
            code["code"].as_str().unwrap(),
            "--apns-token",
            APNS_TOKEN,
            "--json",
            "--state",
        ])
        .arg(&state)
        .output()
        .unwrap();
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );

    let answer = bc_authorize(&rt, &first.issuer, &client, "crash@example.com");
    assert!(answer["auth_req_id"].is_string(), "{answer}");
    first.child.kill().unwrap(); // SIGKILL: no graceful anything
    first.child.wait().unwrap();
    assert!(received.lock().unwrap().is_empty());

    // Second life, Apple reachable: the queued push goes out.
    let mut second = serve_with(&dir, port, &push_env(&apple, &key_file));
    let deadline = Instant::now() + Duration::from_secs(45);
    let pushed = loop {
        if let Some(p) = received.lock().unwrap().first().cloned() {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the queued push never went out after the restart"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let listed = Command::new(bin())
        .args(["authenticator", "list", "--json", "--state"])
        .arg(&state)
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(pushed.0, APNS_TOKEN);
    assert_eq!(pushed.1, listed["challenges"][0]["id"].as_str().unwrap());
    second.child.kill().unwrap();
    second.child.wait().unwrap();
}

/// What one HTTP call came to, as the client saw it.
#[derive(Debug)]
enum Reply {
    /// A complete answer.
    Answered(u16, Value),
    /// No connection: the request reached no server.
    Refused,
    /// Connected, but no complete answer: the server may or may not have acted on it.
    Lost,
}

/// A relying party with `client_secret_basic` credentials, shareable across tasks.
#[derive(Clone)]
struct Rp {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    secret: String,
}

impl Rp {
    fn new(issuer: &str, client: &Value) -> Rp {
        Rp {
            // A hung server fails the test instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            issuer: issuer.to_owned(),
            client_id: client["client_id"].as_str().unwrap().to_owned(),
            secret: client["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
        let sent = self
            .http
            .post(format!("{}{path}", self.issuer))
            .basic_auth(&self.client_id, Some(&self.secret))
            .form(form)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Reply::Refused,
            Err(_) => return Reply::Lost,
        };
        let status = response.status().as_u16();
        match response.bytes().await {
            Ok(body) => Reply::Answered(
                status,
                serde_json::from_slice(&body)
                    .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
            ),
            Err(_) => Reply::Lost,
        }
    }

    async fn bc_authorize(&self, hint: &str) -> Reply {
        self.post(
            "/bc-authorize",
            &[("scope", "openid"), ("login_hint", hint)],
        )
        .await
    }

    async fn token(&self, auth_req_id: &str) -> Reply {
        self.post(
            "/token",
            &[
                ("grant_type", "urn:openid:params:grant-type:ciba"),
                ("auth_req_id", auth_req_id),
            ],
        )
        .await
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// `serve` on `port`, ready (its banner printed after the listener is bound), killed by SIGKILL
/// when the guard drops.
fn start(dir: &Path, port: u16) -> (Killed, String) {
    let served = serve_on(dir, port);
    assert!(
        served.banner.iter().any(|l| l.starts_with("Next,")),
        "serve did not start: {:?}",
        served.banner
    );
    (Killed(served.child), served.issuer)
}

/// A client and a user with one enrolled device; the device's state file.
fn client_and_user(dir: &Path, issuer: &str, email: &str) -> (Value, String) {
    let client = admin(dir, &["client", "create", "--name", "Crash Bank", "--json"]);
    let sub = new_user(dir, email);
    let (state, _) = enrol(dir, issuer, &sub, "phone", &[]);
    (client, state.to_str().unwrap().to_owned())
}

#[test]
fn every_acknowledged_backchannel_request_survives_a_kill_under_load() {
    const TASKS: usize = 16;
    const ACKED_BEFORE_KILL: usize = 300;
    let dir = temp_dir("crash-acked");
    let port = free_port();
    let rt = runtime();
    let (server, issuer) = start(&dir, port);
    let (client, _) = client_and_user(&dir, &issuer, "acked@example.com");
    let rp = Rp::new(&issuer, &client);

    // Every auth_req_id answered 200, in the order the answers arrived.
    let (acked, mut acked_rx) = watch::channel(Vec::<String>::new());
    let acked = Arc::new(acked);
    let stop = Arc::new(AtomicBool::new(false));
    let other: Arc<Mutex<Vec<(u16, Value)>>> = Arc::default();
    let (lost, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..TASKS)
        .map(|_| {
            let (rp, acked, stop) = (rp.clone(), acked.clone(), stop.clone());
            let (other, lost, refused) = (other.clone(), lost.clone(), refused.clone());
            rt.spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    match rp.bc_authorize("acked@example.com").await {
                        Reply::Answered(200, body) => {
                            let id = body["auth_req_id"].as_str().unwrap().to_owned();
                            acked.send_modify(|ids| ids.push(id));
                        }
                        Reply::Answered(status, body) => other.lock().unwrap().push((status, body)),
                        Reply::Lost => _ = lost.fetch_add(1, Ordering::SeqCst),
                        Reply::Refused => _ = refused.fetch_add(1, Ordering::SeqCst),
                    }
                }
            })
        })
        .collect();
    rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(20),
            acked_rx.wait_for(|ids| ids.len() >= ACKED_BEFORE_KILL),
        )
        .await
        .expect("the server did not answer enough requests in time")
        .map(|_| ())
        .unwrap();
    });
    // The load is still running: `stop` is only set once the process is gone.
    drop(server);
    stop.store(true, Ordering::SeqCst);
    for task in load {
        rt.block_on(task).unwrap();
    }
    let acked = acked.borrow().clone();
    let other = std::mem::take(&mut *other.lock().unwrap());
    assert!(other.is_empty(), "answers other than 200: {other:?}");

    let restarted = Instant::now();
    let (_server, _) = start(&dir, port);
    let restart = restarted.elapsed();
    // The first poll of a request never polled before: authorization_pending (CIBA Core §11),
    // never slow_down, and never invalid_grant, which would mean the request was lost.
    let acked = Arc::new(acked);
    let next = Arc::new(AtomicUsize::new(0));
    let checkers: Vec<_> = (0..TASKS)
        .map(|_| {
            let (rp, acked, next) = (rp.clone(), acked.clone(), next.clone());
            rt.spawn(async move {
                let mut wrong = Vec::new();
                loop {
                    let Some(id) = acked.get(next.fetch_add(1, Ordering::SeqCst)) else {
                        break wrong;
                    };
                    match rp.token(id).await {
                        Reply::Answered(400, body) if body["error"] == "authorization_pending" => {}
                        reply => wrong.push(reply),
                    }
                }
            })
        })
        .collect();
    let wrong: Vec<Reply> = checkers
        .into_iter()
        .flat_map(|t| rt.block_on(t).unwrap())
        .collect();
    eprintln!(
        "acked before the kill: {}, checked after the restart: {}, wrong: {}; \
         lost at the kill: {}, refused after it: {}; restart took {restart:?}",
        acked.len(),
        acked.len() - wrong.len(),
        wrong.len(),
        lost.load(Ordering::SeqCst),
        refused.load(Ordering::SeqCst),
    );
    assert!(
        wrong.is_empty(),
        "{} of {} acknowledged requests did not survive the kill; first: {:?}",
        wrong.len(),
        acked.len(),
        wrong.first()
    );
}

/// One poll's result, as far as redemption is concerned.
#[derive(Debug, PartialEq)]
enum Polled {
    Token,
    InvalidGrant,
    Other(String),
    Lost,
    Refused,
}

impl From<Reply> for Polled {
    fn from(reply: Reply) -> Polled {
        match reply {
            Reply::Answered(200, body) if body["access_token"].is_string() => Polled::Token,
            Reply::Answered(400, body) if body["error"] == "invalid_grant" => Polled::InvalidGrant,
            Reply::Answered(status, body) => Polled::Other(format!("{status} {body}")),
            Reply::Lost => Polled::Lost,
            Reply::Refused => Polled::Refused,
        }
    }
}

#[test]
fn an_approval_yields_at_most_one_token_across_a_kill() {
    const IDS: usize = 20;
    const POLLERS: usize = 4;
    // Ids 0..8 are redeemed in the first life and then polled on (invalid_grant) until the
    // kill; 8..16 are first polled just before the kill and race it; 16..20 are first polled
    // after the restart.
    const RACING: std::ops::Range<usize> = 8..16;
    const AFTER: std::ops::Range<usize> = 16..20;
    let dir = temp_dir("crash-redeem");
    let port = free_port();
    let rt = runtime();
    let (server, issuer) = start(&dir, port);
    let (client, state) = client_and_user(&dir, &issuer, "redeem@example.com");
    let rp = Rp::new(&issuer, &client);
    let ids: Vec<String> = (0..IDS)
        .map(|_| {
            let answer = bc_authorize(&rt, &issuer, &client, "redeem@example.com");
            answer["auth_req_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let approved = authenticator_json(&[
        "approve", "--state", &state, "--all", "--wait", "10", "--json",
    ]);
    assert_eq!(
        approved["decided"].as_array().unwrap().len(),
        IDS,
        "{approved}"
    );

    // (id index, server life, result) of every poll; tokens per id, to wait on.
    let log: Arc<Mutex<Vec<(usize, u8, Polled)>>> = Arc::default();
    let (tokens, mut tokens_rx) = watch::channel(vec![0usize; IDS]);
    let tokens = Arc::new(tokens);
    let stop = Arc::new(AtomicBool::new(false));
    let hammer = |range: std::ops::Range<usize>| -> Vec<tokio::task::JoinHandle<()>> {
        range
            .flat_map(|i| std::iter::repeat_n(i, POLLERS))
            .map(|i| {
                let (rp, id) = (rp.clone(), ids[i].clone());
                let (log, tokens, stop) = (log.clone(), tokens.clone(), stop.clone());
                rt.spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let polled = Polled::from(rp.token(&id).await);
                        if polled == Polled::Token {
                            tokens.send_modify(|t| t[i] += 1);
                        }
                        log.lock().unwrap().push((i, 1, polled));
                    }
                })
            })
            .collect()
    };
    let wait_tokens = |rx: &mut watch::Receiver<Vec<usize>>, done: fn(&[usize]) -> bool| {
        rt.block_on(async {
            tokio::time::timeout(Duration::from_secs(15), rx.wait_for(|t| done(t)))
                .await
                .expect("no token in time")
                .map(|_| ())
                .unwrap();
        });
    };
    let mut pollers = hammer(0..RACING.start);
    wait_tokens(&mut tokens_rx, |t| t[..RACING.start].iter().all(|&n| n > 0));
    pollers.extend(hammer(RACING));
    wait_tokens(&mut tokens_rx, |t| t[RACING].iter().any(|&n| n > 0));
    drop(server); // SIGKILL, while all of those pollers are at it
    stop.store(true, Ordering::SeqCst);
    for task in pollers {
        rt.block_on(task).unwrap();
    }

    let (_server, _) = start(&dir, port);
    // Second life: several pollers per id at once, then one more poll each, which must find
    // every id spent.
    let polls: Vec<_> = (0..IDS)
        .flat_map(|i| std::iter::repeat_n(i, POLLERS))
        .map(|i| {
            let (rp, id) = (rp.clone(), ids[i].clone());
            rt.spawn(async move { (i, Polled::from(rp.token(&id).await)) })
        })
        .collect();
    for poll in polls {
        let (i, polled) = rt.block_on(poll).unwrap();
        log.lock().unwrap().push((i, 2, polled));
    }
    for (i, id) in ids.iter().enumerate() {
        let polled = Polled::from(rt.block_on(rp.token(id)));
        assert_eq!(
            polled,
            Polled::InvalidGrant,
            "id {i} is not spent after the restart"
        );
    }

    let log = log.lock().unwrap();
    let count = |f: &dyn Fn(&(usize, u8, Polled)) -> bool| log.iter().filter(|e| f(e)).count();
    let odd: Vec<_> = log
        .iter()
        .filter(|(_, life, p)| {
            matches!(p, Polled::Other(_))
                || (*life == 2 && *p != Polled::Token && *p != Polled::InvalidGrant)
        })
        .collect();
    assert!(
        odd.is_empty(),
        "polls answered neither a token nor invalid_grant: {odd:?}"
    );
    let mut unanswered = Vec::new();
    for i in 0..IDS {
        let lives: Vec<u8> = log
            .iter()
            .filter(|(j, _, p)| *j == i && *p == Polled::Token)
            .map(|(_, life, _)| *life)
            .collect();
        assert!(
            lives.len() <= 1,
            "id {i} was redeemed {} times: lives {lives:?}",
            lives.len()
        );
        if i < RACING.start {
            assert_eq!(lives, [1], "id {i}");
        } else if AFTER.contains(&i) {
            assert_eq!(lives, [2], "id {i}: approved, never polled before the kill");
        } else if lives.is_empty() {
            // At most once, not exactly once: the server committed the redemption
            // (`UPDATE ... WHERE state = 'approved'`) and was killed before the token
            // reached the client. That is only possible for an id with a poll in flight at
            // the kill, one that connected and got no complete answer.
            assert!(
                count(&|(j, life, p)| *j == i && *life == 1 && *p == Polled::Lost) > 0,
                "id {i} never got a token although no poll of it was cut off by the kill"
            );
            unanswered.push(i);
        }
    }
    eprintln!(
        "polls: {} ({} in the first life); tokens: {} before the kill, {} after; \
         invalid_grant: {}; cut off by the kill: {}; refused: {}; \
         redeemed but the token lost at the kill: {unanswered:?}",
        log.len(),
        count(&|(_, life, _)| *life == 1),
        count(&|(_, life, p)| *life == 1 && *p == Polled::Token),
        count(&|(_, life, p)| *life == 2 && *p == Polled::Token),
        count(&|(_, _, p)| *p == Polled::InvalidGrant),
        count(&|(_, _, p)| *p == Polled::Lost),
        count(&|(_, _, p)| *p == Polled::Refused),
    );
}
