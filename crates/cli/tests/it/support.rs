//! What the CLI's tests share: the `backchannel` binary run as `serve`, `admin` and
//! `authenticator`, child processes that die with the test, and a relying party speaking HTTP
//! to a running server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../../../../test-support/common.rs"]
mod common;
pub use common::{HANG_GUARD, Recorder, eventually, python_module, temp_dir};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_backchannel")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A multi-threaded runtime for a test that drives async clients and stand-in servers from
/// blocking code.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A child process killed when the test ends, passed or not.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `backchannel serve` child process on a free port, configured by environment only.
pub struct Served {
    pub child: Child,
    pub issuer: String,
    pub banner: Vec<String>,
}

pub fn envs(dir: &Path, port: u16) -> Vec<(String, String)> {
    vec![
        (
            "BACKCHANNEL_SERVER_LISTEN".into(),
            format!("127.0.0.1:{port}"),
        ),
        (
            "BACKCHANNEL_SERVER_DATA_DIR".into(),
            dir.display().to_string(),
        ),
        (
            "BACKCHANNEL_DATABASE_URL".into(),
            format!("sqlite://{}/db.sqlite", dir.display()),
        ),
    ]
}

/// Settings that lift the `[limits]` on `/bc-authorize`, for tests that start many requests
/// for one user, or several at once from one client.
pub fn unlimited() -> Vec<(String, String)> {
    [
        ("BACKCHANNEL_LIMITS_REQUESTS_PER_USER", "0"),
        ("BACKCHANNEL_LIMITS_PENDING_PER_USER_CLIENT", "0"),
        ("BACKCHANNEL_LIMITS_REPLACE_UNDECIDED", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

pub fn serve(dir: &Path) -> Served {
    serve_on(dir, free_port())
}

/// `serve` on a given port: a restart on the same address.
pub fn serve_on(dir: &Path, port: u16) -> Served {
    serve_with(dir, port, &[])
}

/// `serve` with further `BACKCHANNEL_*` settings.
pub fn serve_with(dir: &Path, port: u16, extra: &[(String, String)]) -> Served {
    let mut child = Command::new(bin())
        .arg("serve")
        .envs(envs(dir, port))
        .envs(extra.iter().cloned())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        let done = line.starts_with("Next,");
        banner.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Served {
        child,
        issuer: format!("http://127.0.0.1:{port}"),
        banner,
    }
}

/// `admin` that is expected to fail: its stderr.
pub fn admin_fails(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(bin())
        .arg("admin")
        .args(args)
        .envs(envs(dir, 0))
        .output()
        .unwrap();
    assert!(!out.status.success(), "admin {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn admin(dir: &Path, args: &[&str]) -> Value {
    admin_with(dir, &[], args)
}

/// `admin` with further `BACKCHANNEL_*` settings (those its checks read, such as
/// `BACKCHANNEL_OUTBOUND_ALLOW_HTTP`).
pub fn admin_with(dir: &Path, extra: &[(String, String)], args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("admin")
        .args(args)
        .envs(envs(dir, 0))
        .envs(extra.iter().cloned())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not one JSON object: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn authenticator(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("authenticator")
        .args(args)
        .output()
        .unwrap()
}

/// Runs an `authenticator` command that must succeed and print one JSON object.
pub fn authenticator_json(args: &[&str]) -> Value {
    let out = authenticator(args);
    assert!(
        out.status.success(),
        "authenticator {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not one JSON object: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

pub fn new_user(dir: &Path, email: &str) -> String {
    admin(dir, &["user", "create", "--email", email, "--json"])["sub"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Enrols a device for `sub` through the CLI; returns its state file and id.
pub fn enrol(dir: &Path, issuer: &str, sub: &str, name: &str, extra: &[&str]) -> (PathBuf, String) {
    let code = admin(dir, &["enrolment", "create", "--user", sub, "--json"])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = dir.join(format!("{name}.json"));
    let mut args = vec![
        "enrol",
        "--server",
        issuer,
        "--code",
        &code,
        "--state",
        state.to_str().unwrap(),
        "--name",
        name,
        "--json",
    ];
    args.extend_from_slice(extra);
    let id = authenticator_json(&args)["device_id"]
        .as_str()
        .unwrap()
        .to_owned();
    (state, id)
}

/// What one HTTP call came to, as the client saw it.
#[derive(Debug)]
pub enum Reply {
    /// A complete answer.
    Answered(u16, Value),
    /// No connection: the request reached no server.
    Refused,
    /// Connected, but no complete answer: the server may or may not have acted on it.
    Lost,
}

impl Reply {
    /// The status and JSON body of a call that must have been answered.
    #[track_caller]
    pub fn answered(self) -> (u16, Value) {
        match self {
            Reply::Answered(status, body) => (status, body),
            other => panic!("no answer: {other:?}"),
        }
    }
}

/// A relying party with `client_secret_basic` credentials (a client made by `admin client
/// create --json`), shareable across tasks.
#[derive(Clone)]
pub struct Rp {
    http: reqwest::Client,
    issuer: String,
    client_id: String,
    secret: String,
}

impl Rp {
    pub fn new(issuer: &str, client: &Value) -> Rp {
        Rp {
            // A hung server fails the test instead of hanging it.
            http: reqwest::Client::builder()
                .timeout(HANG_GUARD)
                .build()
                .unwrap(),
            issuer: issuer.to_owned(),
            client_id: client["client_id"].as_str().unwrap().to_owned(),
            secret: client["client_secret"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Reply {
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

    /// `POST /bc-authorize` for scope `openid` and `login_hint`, with `extra` parameters.
    pub async fn bc_authorize(&self, hint: &str, extra: &[(&str, &str)]) -> Reply {
        let mut form = vec![("scope", "openid"), ("login_hint", hint)];
        form.extend_from_slice(extra);
        self.post("/bc-authorize", &form).await
    }

    pub async fn token(&self, auth_req_id: &str) -> Reply {
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
