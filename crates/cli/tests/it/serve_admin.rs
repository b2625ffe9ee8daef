//! `backchannel serve` and `backchannel admin` through the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_backchannel")
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bc-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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

/// `POST /bc-authorize` with `client_secret_basic` for a client made by `admin client create
/// --json`; the answer's JSON body.
pub fn bc_authorize(
    rt: &tokio::runtime::Runtime,
    issuer: &str,
    client: &serde_json::Value,
    hint: &str,
) -> serde_json::Value {
    rt.block_on(async {
        reqwest::Client::new()
            .post(format!("{issuer}/bc-authorize"))
            .basic_auth(
                client["client_id"].as_str().unwrap(),
                client["client_secret"].as_str(),
            )
            .form(&[("scope", "openid"), ("login_hint", hint)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    })
}

pub fn admin(dir: &Path, args: &[&str]) -> serde_json::Value {
    admin_with(dir, &[], args)
}

/// `admin` with further `BACKCHANNEL_*` settings (those its checks read, such as
/// `BACKCHANNEL_OUTBOUND_ALLOW_HTTP`).
pub fn admin_with(dir: &Path, extra: &[(String, String)], args: &[&str]) -> serde_json::Value {
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

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_prints_the_issuer_admin_works_on_the_store_and_sigterm_stops_cleanly() {
    let dir = temp_dir("serve");
    let mut served = serve(&dir);
    let text = served.banner.join("\n");
    assert!(
        text.contains(&format!("issuer:    {}", served.issuer)),
        "{text}"
    );
    assert!(text.contains("admin API: bearer token"), "{text}");
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap();
    assert!(text.contains(token.trim()));

    // admin works on the same store while the server runs...
    let client = admin(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "CLI Bank",
            "--scope",
            "openid email",
            "--json",
        ],
    );
    assert!(client["client_id"].is_string() && client["client_secret"].is_string());
    let user = admin(
        &dir,
        &[
            "user",
            "create",
            "--email",
            "cli@example.com",
            "--nric",
            "S1234567D",
            "--claim",
            "name=Cli User",
            "--json",
        ],
    );
    let sub = user["sub"].as_str().unwrap();
    let enrolment = admin(&dir, &["enrolment", "create", "--user", sub, "--json"]);
    assert!(enrolment["code"].is_string() && enrolment["expires_at"].is_i64());
    assert_eq!(
        enrolment["enrol_url"],
        format!("{}/device/v1/enrol", "http://127.0.0.1:0")
    );

    // ...and the server sees it at once: the client authenticates (unknown_user_id, since the
    // user has no device yet, proves the secret was accepted).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = bc_authorize(&rt, &served.issuer, &client, "S1234567D");
    assert_eq!(body["error"], "unknown_user_id", "{body}");

    sigterm(&served.child);
    let status = wait_exit(&mut served.child);
    assert!(
        status.success(),
        "graceful shutdown exits 0, got {status:?}"
    );

    // Keys and data survive: a second start serves the same JWKS and knows the client.
    let listed = admin(&dir, &["client", "list", "--json"]);
    assert_eq!(listed["clients"].as_array().unwrap().len(), 1);
    let mut again = serve(&dir);
    assert!(
        !again.banner.join("\n").contains(token.trim()),
        "the token is printed only when generated"
    );
    sigterm(&again.child);
    assert!(wait_exit(&mut again.child).success());
}

#[test]
fn admin_refuses_bad_input_with_a_message_and_non_zero_exit() {
    let dir = temp_dir("bad");
    let out = Command::new(bin())
        .args(["admin", "user", "create", "--nric", "S1234567A", "--json"])
        .envs(envs(&dir, 0))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NRIC"));
    let out = Command::new(bin())
        .args([
            "admin",
            "client",
            "create",
            "--name",
            "x",
            "--auth-method",
            "private_key_jwt",
            "--json",
        ])
        .envs(envs(&dir, 0))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\nnot_a_key = 1\n").unwrap();
    let out = Command::new(bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not_a_key"));
}
