//! `backchannel authenticator` and `backchannel admin device` through the real binary against a
//! real `backchannel serve`: push channels at enrolment and later, a device showing and
//! removing itself, operators listing and disabling devices, and `watch` over the live event
//! stream (approving on `y`, withdrawing a prompt decided elsewhere, reconnecting after the
//! server restarts).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{
    Killed, Rp, Served, admin, admin_fails, authenticator, authenticator_json, bin, enrol,
    free_port, new_user, runtime, serve, serve_on, temp_dir,
};

fn started(served: Served) -> (Killed, String) {
    (Killed(served.child), served.issuer)
}

/// Runs an `authenticator` command that must fail; returns its stderr.
fn authenticator_fails(args: &[&str]) -> String {
    let out = authenticator(args);
    assert!(!out.status.success(), "authenticator {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

// RFC 8291 §5's example subscription keys.
const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";

#[test]
fn push_channels_are_registered_at_enrolment_changed_later_and_a_removed_device_is_refused() {
    let dir = temp_dir("auth-push");
    let (_server, issuer) = started(serve(&dir));
    let sub = new_user(&dir, "push@example.com");
    let subscription = dir.join("subscription.json");
    // As a browser's JSON.stringify(PushSubscription) writes it.
    std::fs::write(
        &subscription,
        format!(
            r#"{{"endpoint":"https://push.example.net/wp/abc123","expirationTime":null,"keys":{{"p256dh":"{P256DH}","auth":"{AUTH}"}}}}"#
        ),
    )
    .unwrap();
    let (state, id) = enrol(
        &dir,
        &issuer,
        &sub,
        "phone",
        &[
            "--fcm-token",
            "fcm:token-1",
            "--webpush-subscription",
            subscription.to_str().unwrap(),
        ],
    );
    let state = state.to_str().unwrap();

    let shown = authenticator_json(&["show", "--state", state, "--json"]);
    assert_eq!(shown["device_id"], id.as_str());
    assert_eq!(shown["name"], "phone");
    assert_eq!(shown["disabled"], false);
    assert_eq!(shown["push"]["fcm_token"], "fcm:token-1");
    assert_eq!(
        shown["push"]["webpush"]["endpoint"],
        "https://push.example.net/wp/abc123"
    );
    assert_eq!(shown["push"]["webpush"]["keys"]["p256dh"], P256DH);
    assert_eq!(shown["push"]["webpush"]["keys"]["auth"], AUTH);
    assert!(shown["push"].get("apns_token").is_none(), "{shown}");

    // push-update replaces the registration with exactly the channels given.
    let updated = authenticator_json(&[
        "push-update",
        "--state",
        state,
        "--apns-token",
        "a1b2c3d4",
        "--json",
    ]);
    assert_eq!(updated["push"]["apns_token"], "a1b2c3d4");
    assert!(updated["push"].get("fcm_token").is_none(), "{updated}");
    assert!(updated["push"].get("webpush").is_none(), "{updated}");
    let shown = authenticator_json(&["show", "--state", state, "--json"]);
    assert_eq!(shown["push"], updated["push"], "the update was stored");
    // The server's checks reach the user as a message, and change nothing.
    let err = authenticator_fails(&["push-update", "--state", state, "--apns-token", "not hex"]);
    assert!(err.contains("apns_token"), "{err}");
    let err = authenticator_fails(&["push-update", "--state", state]);
    assert!(
        err.contains("--clear"),
        "no flags is refused, not a silent clear: {err}"
    );
    assert_eq!(
        authenticator_json(&["show", "--state", state, "--json"])["push"]["apns_token"],
        "a1b2c3d4"
    );

    // Operators see the same record.
    let listed = admin(&dir, &["device", "list", "--user", &sub, "--json"]);
    let devices = listed["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0]["device_id"], id.as_str());
    assert_eq!(devices[0]["push"]["apns_token"], "a1b2c3d4");
    assert_eq!(devices[0]["disabled"], false);

    // The device removes itself: every later call with its key is refused.
    let removed = authenticator_json(&["remove", "--state", state, "--json"]);
    assert_eq!(removed["device_id"], id.as_str());
    assert_eq!(removed["removed"], true);
    for cmd in ["show", "list", "remove"] {
        let err = authenticator_fails(&[cmd, "--state", state]);
        assert!(err.contains("invalid_token"), "{cmd}: {err}");
    }
    let listed = admin(&dir, &["device", "list", "--user", &sub, "--json"]);
    assert_eq!(listed["devices"][0]["disabled"], true);
}

#[test]
fn operators_list_and_disable_a_users_devices() {
    let dir = temp_dir("auth-admin-device");
    let (_server, issuer) = started(serve(&dir));
    let sub = new_user(&dir, "devices@example.com");
    let (phone, phone_id) = enrol(&dir, &issuer, &sub, "phone", &[]);
    let (tablet, tablet_id) = enrol(&dir, &issuer, &sub, "tablet", &["--fcm-token", "t-1"]);
    let listed = admin(&dir, &["device", "list", "--user", &sub, "--json"]);
    let mut ids: Vec<&str> = listed["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let mut expected = [phone_id.as_str(), tablet_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);

    let disabled = admin(
        &dir,
        &["device", "disable", "--device", &phone_id, "--json"],
    );
    assert_eq!(disabled["device_id"], phone_id.as_str());
    assert_eq!(disabled["disabled"], true);
    // The running server refuses the disabled device's key, and only that one.
    let err = authenticator_fails(&["list", "--state", phone.to_str().unwrap()]);
    assert!(err.contains("invalid_token"), "{err}");
    authenticator_json(&["list", "--state", tablet.to_str().unwrap(), "--json"]);
    let listed = admin(&dir, &["device", "list", "--user", &sub, "--json"]);
    for d in listed["devices"].as_array().unwrap() {
        assert_eq!(d["disabled"], d["device_id"] == phone_id.as_str(), "{d}");
    }

    assert!(
        admin_fails(&dir, &["device", "disable", "--device", "nosuchdevice"])
            .contains("no such device")
    );
    assert!(
        admin_fails(&dir, &["device", "list", "--user", "nosuchuser"]).contains("no such user")
    );
}

/// A running `authenticator watch` with its output collected as it comes.
struct Watcher {
    _child: Killed,
    stdin: ChildStdin,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn collect(mut from: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let to = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = from.read(&mut chunk) {
            if n == 0 {
                break;
            }
            to.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

impl Watcher {
    fn start(state: &Path) -> Watcher {
        let mut child = Command::new(bin())
            .args(["authenticator", "watch", "--state"])
            .arg(state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = collect(child.stdout.take().unwrap());
        let stderr = collect(child.stderr.take().unwrap());
        Watcher {
            _child: Killed(child),
            stdin,
            stdout,
            stderr,
        }
    }

    /// Waits (up to 20 s: a broken watch fails the test instead of hanging it) until stdout
    /// has `n` occurrences of `text`.
    fn wait_stdout(&self, text: &str, n: usize) {
        self.wait(&self.stdout, text, n);
    }

    fn wait_stderr(&self, text: &str) {
        self.wait(&self.stderr, text, 1);
    }

    fn wait(&self, buf: &Mutex<String>, text: &str, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while buf.lock().unwrap().matches(text).count() < n {
            assert!(
                Instant::now() < deadline,
                "watch did not print {text:?} ({n}x).\nstdout:\n{}\nstderr:\n{}",
                self.stdout.lock().unwrap(),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn answer(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).unwrap();
        self.stdin.flush().unwrap();
    }
}

/// The relying party of the watch tests: a poll client, driven from blocking test code.
struct Bank {
    rp: Rp,
    rt: tokio::runtime::Runtime,
}

impl Bank {
    fn new(dir: &Path, issuer: &str) -> Bank {
        let client = admin(dir, &["client", "create", "--name", "Watch Bank", "--json"]);
        Bank {
            rp: Rp::new(issuer, &client),
            rt: runtime(),
        }
    }

    /// Starts a backchannel request; returns its auth_req_id.
    fn initiate(&self, hint: &str, message: &str) -> String {
        let extra = [("binding_message", message)];
        let started = self.rp.bc_authorize(hint, &extra);
        let (status, body) = self.rt.block_on(started).answered();
        assert_eq!(status, 200, "{body}");
        body["auth_req_id"].as_str().unwrap().to_owned()
    }

    fn token(&self, auth_req_id: &str) -> (u16, Value) {
        self.rt.block_on(self.rp.token(auth_req_id)).answered()
    }
}

#[test]
fn watch_approves_a_live_challenge_on_y_and_withdraws_one_decided_elsewhere() {
    let dir = temp_dir("auth-watch");
    let (_server, issuer) = started(serve(&dir));
    let rp = Bank::new(&dir, &issuer);
    let sub = new_user(&dir, "watch@example.com");
    let (phone, _) = enrol(&dir, &issuer, &sub, "phone", &[]);
    let (tablet, _) = enrol(&dir, &issuer, &sub, "tablet", &[]);
    let mut watch = Watcher::start(&phone);
    watch.wait_stdout("Watching for challenges", 1);

    let first = rp.initiate("watch@example.com", "Pay SGD 12 #A1");
    watch.wait_stdout("Pay SGD 12 #A1", 1);
    watch.wait_stdout("Approve? [y/n]", 1);
    {
        let out = watch.stdout.lock().unwrap();
        assert!(out.contains("Watch Bank"), "the client is named: {out}");
        assert!(out.contains("scope:    openid"), "{out}");
    }
    watch.answer("y\n");
    watch.wait_stdout("-> approved", 1);
    let (status, tokens) = rp.token(&first);
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["id_token"].is_string() && tokens["access_token"].is_string());

    // The tablet decides the next one first: watch withdraws its prompt, and the answer typed
    // afterwards does not go to anything else.
    let second = rp.initiate("watch@example.com", "Pay SGD 34 #B2");
    watch.wait_stdout("Pay SGD 34 #B2", 1);
    watch.wait_stdout("Approve? [y/n]", 2);
    let out = authenticator(&[
        "deny",
        "--state",
        tablet.to_str().unwrap(),
        "--binding-message",
        "Pay SGD 34 #B2",
        "--wait",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    watch.wait_stdout("no answer needed", 1);
    let (status, body) = rp.token(&second);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("access_denied")),
        "{body}"
    );
    assert_eq!(watch.stdout.lock().unwrap().matches("-> ").count(), 1);
}

#[test]
fn watch_reconnects_after_the_server_restarts_and_still_gets_challenges() {
    let dir = temp_dir("auth-watch-restart");
    let port = free_port();
    let (server, issuer) = started(serve_on(&dir, port));
    let rp = Bank::new(&dir, &issuer);
    let sub = new_user(&dir, "restart@example.com");
    let (phone, _) = enrol(&dir, &issuer, &sub, "phone", &[]);
    let mut watch = Watcher::start(&phone);
    watch.wait_stdout("Watching for challenges", 1);
    let before = rp.initiate("restart@example.com", "Before #1");
    watch.wait_stdout("Before #1", 1);
    watch.answer("n\n");
    watch.wait_stdout("-> denied", 1);
    assert_eq!(rp.token(&before).1["error"], "access_denied");

    // A crash: the stream breaks, watch keeps trying, and picks up where it left off.
    drop(server);
    watch.wait_stderr("reconnecting");
    let (_server, _) = started(serve_on(&dir, port));
    watch.wait_stderr("reconnected");
    let after = rp.initiate("restart@example.com", "After #2");
    watch.wait_stdout("After #2", 1);
    watch.answer("y\n");
    watch.wait_stdout("-> approved", 1);
    assert_eq!(rp.token(&after).0, 200);
    // Nothing from before the restart was asked about again.
    assert_eq!(watch.stdout.lock().unwrap().matches("Before #1").count(), 1);
}

#[test]
fn approve_explains_a_request_that_requires_user_verification() {
    let dir = temp_dir("auth-uv");
    let (_server, issuer) = started(serve(&dir));
    let bank = Bank::new(&dir, &issuer);
    let sub = new_user(&dir, "uv@example.com");
    let (phone, _) = enrol(&dir, &issuer, &sub, "phone", &[]);
    let phone = phone.to_str().unwrap();
    let started = bank.rp.bc_authorize(
        "uv@example.com",
        &[
            ("binding_message", "Pay SGD 99 #UV"),
            ("acr_values", "urn:backchannel:acr:device:uv"),
        ],
    );
    let (status, body) = bank.rt.block_on(started).answered();
    assert_eq!(status, 200, "{body}");
    let id = body["auth_req_id"].as_str().unwrap();

    let listed = authenticator_json(&["list", "--state", phone, "--json"]);
    assert_eq!(listed["challenges"][0]["uv_required"], true, "{listed}");
    let out = authenticator(&["list", "--state", phone]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("requires you to verify it's you"), "{text}");

    // Without --user-verified: refused before anything is sent, and the request stays pending.
    let stderr = authenticator_fails(&["approve", "--state", phone, "--all"]);
    assert!(stderr.contains("requires user verification"), "{stderr}");
    assert!(stderr.contains("--user-verified"), "{stderr}");
    let (status, body) = bank.token(id);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("authorization_pending"))
    );

    let decided = authenticator_json(&[
        "approve",
        "--state",
        phone,
        "--all",
        "--user-verified",
        "--json",
    ]);
    assert_eq!(decided["decided"].as_array().unwrap().len(), 1);
    let (status, tokens) = bank.token(id);
    assert_eq!(status, 200, "{tokens}");
}
