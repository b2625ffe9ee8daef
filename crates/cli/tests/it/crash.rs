//! Killed, not stopped: what a `backchannel serve` process that dies by SIGKILL keeps. A push
//! answered but not yet delivered goes out after the restart; one in flight to APNs at the
//! kill goes out again without waiting for the dead process's lease to run out, and so does a
//! ping in flight to a client; every `/bc-authorize` it answered 200 is still there; and no
//! approval yields two tokens across the crash.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::stand_in::{First, Seen, StandIn, loopback_callbacks_env, settings};
use crate::support::{
    HANG_GUARD, Killed, Reply, Rp, admin, admin_with, authenticator_json, enrol, free_port,
    new_user, runtime, serve_with, temp_dir, unlimited,
};

const APNS_TOKEN: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
const PING_TOKEN: &str = "ping-token-crash-8e1f";

/// How long a delivery that must go out after a restart is waited for: only a guard against
/// hanging, as no test asserts how soon it goes out.
const AFTER_RESTART: Duration = HANG_GUARD;

/// Outbound timeouts so long that the lease of an attempt cut off by the kill (the send budget
/// plus a margin) would hold its row far longer than [`AFTER_RESTART`]: a delivery that goes
/// out again at all was released when the restarted process started.
fn long_leases_env() -> Vec<(String, String)> {
    settings(&[("BACKCHANNEL_OUTBOUND_TIMEOUT_MS", "600000")])
}

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
    settings(&[
        ("BACKCHANNEL_PUSH_APNS_BASE_URL", base_url),
        ("BACKCHANNEL_PUSH_APNS_TEAM_ID", "TEAM123456"),
        ("BACKCHANNEL_PUSH_APNS_KEY_ID", "KEY1234567"),
        ("BACKCHANNEL_PUSH_APNS_KEY_FILE", key_file),
        ("BACKCHANNEL_PUSH_APNS_TOPIC", "com.example.authenticator"),
        (
            "BACKCHANNEL_OUTBOUND_ALLOWED_PRIVATE_NETWORKS",
            "127.0.0.0/8",
        ),
        // The stand-in speaks h2c: plain HTTP, which outbound calls use only when allowed.
        ("BACKCHANNEL_OUTBOUND_ALLOW_HTTP", "true"),
    ])
}

impl StandIn {
    /// Request `n` (from 1), which must come after the restart (waited for up to
    /// [`AFTER_RESTART`]); prints, for the record only, how long after `ready`, when the
    /// restarted server had bound its listener, it came.
    fn after_restart(
        &self,
        rt: &tokio::runtime::Runtime,
        n: usize,
        ready: Instant,
        what: &str,
    ) -> Seen {
        let Some(seen) = rt.block_on(self.seen.wait_for(n, AFTER_RESTART)) else {
            let paths: Vec<String> = self.seen().into_iter().map(|s| s.path).collect();
            panic!(
                "{what} did not go out after the restart (waited {AFTER_RESTART:?}); \
                 requests so far: {paths:?}"
            )
        };
        let request = seen[n - 1].clone();
        eprintln!(
            "{what} went out {:?} after the restarted server was ready",
            request.at.saturating_duration_since(ready)
        );
        request
    }

    /// Kills `server` (SIGKILL) once this stand-in holds its first request, starts it again on
    /// `dir`, `port` and `env`, and waits for that request to come again. The restarted server,
    /// the first request and its repeat.
    fn held_across_a_kill(
        &self,
        rt: &tokio::runtime::Runtime,
        server: Killed,
        (dir, port, env): (&Path, u16, &[(String, String)]),
        what: &str,
    ) -> (Killed, Seen, Seen) {
        let held = rt.block_on(self.seen.wait(1));
        drop(server);
        let seen = self.seen();
        assert_eq!(
            seen.len(),
            1,
            "{what} was retried before the kill, so it was not in flight then: {seen:?}"
        );
        let (server, _) = start_with(dir, port, env);
        let again = self.after_restart(rt, 2, Instant::now(), what);
        (server, held[0].clone(), again)
    }
}

/// The id of the one challenge waiting on the device of `state`.
fn challenge_id(state: &str) -> String {
    let listed = authenticator_json(&["list", "--state", state, "--json"]);
    listed["challenges"][0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_push_survives_a_kill_between_the_answer_and_the_delivery() {
    let dir = temp_dir("crash");
    let key_file = p8(&dir);
    let rt = runtime();
    let apple = StandIn::start(&rt, First::Answered);

    // First life: Apple cannot be reached, so the push is still queued when the process dies.
    let port = free_port();
    let dead_apple = format!("http://127.0.0.1:{}", free_port());
    let (server, issuer) = start_with(&dir, port, &push_env(&dead_apple, &key_file));
    let (client, state) = client_and_user(
        &dir,
        &issuer,
        "crash@example.com",
        &["--apns-token", APNS_TOKEN],
    );
    let rp = Rp::new(&issuer, &client);
    let (_, answer) = rt
        .block_on(rp.bc_authorize("crash@example.com", &[]))
        .answered();
    assert!(answer["auth_req_id"].is_string(), "{answer}");
    drop(server); // SIGKILL: no graceful anything
    assert!(apple.seen().is_empty());

    // Second life, Apple reachable: the queued push goes out.
    let (_server, _) = start_with(&dir, port, &push_env(&apple.base, &key_file));
    let pushed = apple.after_restart(&rt, 1, Instant::now(), "the queued push");
    assert_eq!(pushed.path, format!("/3/device/{APNS_TOKEN}"));
    assert_eq!(pushed.collapse_id, Some(challenge_id(&state)));
}

#[test]
fn a_push_in_flight_at_a_kill_goes_out_again_without_waiting_out_its_lease() {
    let dir = temp_dir("crash-push-held");
    let key_file = p8(&dir);
    let rt = runtime();
    let apple = StandIn::start(&rt, First::Held);
    let env = [push_env(&apple.base, &key_file), long_leases_env()].concat();
    let port = free_port();
    let (server, issuer) = start_with(&dir, port, &env);
    let (client, state) = client_and_user(
        &dir,
        &issuer,
        "held@example.com",
        &["--apns-token", APNS_TOKEN],
    );
    let rp = Rp::new(&issuer, &client);
    let (_, answer) = rt
        .block_on(rp.bc_authorize("held@example.com", &[]))
        .answered();
    assert!(answer["auth_req_id"].is_string(), "{answer}");

    let (_server, held, again) =
        apple.held_across_a_kill(&rt, server, (&dir, port, &env), "the push in flight");
    let challenge = challenge_id(&state);
    for push in [&held, &again] {
        assert_eq!(push.path, format!("/3/device/{APNS_TOKEN}"));
        assert_eq!(push.collapse_id.as_deref(), Some(challenge.as_str()));
    }
}

#[test]
fn a_ping_in_flight_at_a_kill_goes_out_again_without_waiting_out_its_lease() {
    let dir = temp_dir("crash-ping-held");
    let rt = runtime();
    let endpoint = StandIn::start(&rt, First::Held);
    let env = [loopback_callbacks_env(), long_leases_env()].concat();
    let port = free_port();
    let (server, issuer) = start_with(&dir, port, &env);
    let client = admin_with(
        &dir,
        &env,
        &[
            "client",
            "create",
            "--name",
            "Ping Bank",
            "--delivery-mode",
            "ping",
            "--notification-endpoint",
            &format!("{}/ciba/ping", endpoint.base),
            "--json",
        ],
    );
    let state = user_with_device(&dir, &issuer, "ping@example.com", &[]);
    let rp = Rp::new(&issuer, &client);
    let started = rt.block_on(rp.bc_authorize(
        "ping@example.com",
        &[("client_notification_token", PING_TOKEN)],
    ));
    let Reply::Answered(200, answer) = started else {
        panic!("/bc-authorize: {started:?}")
    };
    let approved = authenticator_json(&[
        "approve", "--state", &state, "--all", "--wait", "10", "--json",
    ]);
    assert_eq!(
        approved["decided"].as_array().unwrap().len(),
        1,
        "{approved}"
    );

    let (_server, held, again) =
        endpoint.held_across_a_kill(&rt, server, (&dir, port, &env), "the ping in flight");
    let bearer = format!("Bearer {PING_TOKEN}");
    for ping in [&held, &again] {
        assert_eq!(ping.path, "/ciba/ping");
        assert_eq!(ping.authorization.as_deref(), Some(bearer.as_str()));
        // CIBA Core §10.2: the ping carries the auth_req_id only.
        assert_eq!(ping.body, json!({ "auth_req_id": answer["auth_req_id"] }));
    }
}

/// `serve` on `port`, ready (its banner printed after the listener is bound), killed by SIGKILL
/// when the guard drops.
fn start(dir: &Path, port: u16) -> (Killed, String) {
    start_with(dir, port, &[])
}

/// [`start`] with further `BACKCHANNEL_*` settings.
/// Every test here starts many requests for one user, so the `[limits]` are lifted.
fn start_with(dir: &Path, port: u16, env: &[(String, String)]) -> (Killed, String) {
    let mut env = env.to_vec();
    env.extend(unlimited());
    let served = serve_with(dir, port, &env);
    assert!(
        served.banner.iter().any(|l| l.starts_with("Next,")),
        "serve did not start: {:?}",
        served.banner
    );
    (Killed(served.child), served.issuer)
}

/// A user with one device, enrolled with `enrol_args` (its push channels); the device's state
/// file.
fn user_with_device(dir: &Path, issuer: &str, email: &str, enrol_args: &[&str]) -> String {
    let sub = new_user(dir, email);
    let (state, _) = enrol(dir, issuer, &sub, "phone", enrol_args);
    state.to_str().unwrap().to_owned()
}

/// A poll client and a user with one enrolled device; the device's state file.
fn client_and_user(dir: &Path, issuer: &str, email: &str, enrol_args: &[&str]) -> (Value, String) {
    let client = admin(dir, &["client", "create", "--name", "Crash Bank", "--json"]);
    (client, user_with_device(dir, issuer, email, enrol_args))
}

#[test]
fn every_acknowledged_backchannel_request_survives_a_kill_under_load() {
    const TASKS: usize = 16;
    const ACKED_BEFORE_KILL: usize = 300;
    let dir = temp_dir("crash-acked");
    let port = free_port();
    let rt = runtime();
    let (server, issuer) = start(&dir, port);
    let (client, _) = client_and_user(&dir, &issuer, "acked@example.com", &[]);
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
                    match rp.bc_authorize("acked@example.com", &[]).await {
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
    let (client, state) = client_and_user(&dir, &issuer, "redeem@example.com", &[]);
    let rp = Rp::new(&issuer, &client);
    let ids: Vec<String> = (0..IDS)
        .map(|_| {
            let started = rp.bc_authorize("redeem@example.com", &[]);
            let (_, answer) = rt.block_on(started).answered();
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
