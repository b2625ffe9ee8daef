//! The relying-party library against a CIBA server no one here wrote: panva's `oidc-provider`
//! (npm) with its CIBA feature, started by the test on loopback from
//! `tests/it/oidc_provider/server.mjs`: discovery, `client_secret_basic` and `private_key_jwt`,
//! polling to the tokens, a denial, typed errors, and validation of its ID tokens.
//!
//! The npm package is installed (once, under the target directory) if it is not there; with no
//! `node`/`npm`, or no way to install, the test says so and passes, as it cannot run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use backchannel_client::{
    Algorithm, CibaClient, ClientAuth, ErrorCode, InitiateRequest, PollOutcome, SigningKey,
};
use backchannel_protocol::jose::Jwks;
use tokio::runtime::Runtime;

use crate::support::{HANG_GUARD, Killed, free_port, runtime};

const PACKAGE: &str = "oidc-provider";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/oidc_provider")
}

fn works(cmd: &str, args: &[&str], dir: &Path) -> bool {
    Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A directory holding `server.mjs` next to an installed `oidc-provider`, or why there is
/// none. `BACKCHANNEL_TEST_OIDC_PROVIDER_DIR` names an existing install to use instead.
fn peer_dir() -> Result<PathBuf, String> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if !works("node", &["--version"], Path::new(".")) {
        return Err("node is not installed".into());
    }
    let dir = match std::env::var_os("BACKCHANNEL_TEST_OIDC_PROVIDER_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("oidc-provider-peer"),
    };
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    for file in ["server.mjs", "package.json", "package-lock.json"] {
        let from = fixture_dir().join(file);
        if from.exists() {
            std::fs::copy(&from, dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
        }
    }
    if dir.join("node_modules").join(PACKAGE).exists() {
        return Ok(dir);
    }
    let quiet = ["--no-audit", "--no-fund", "--silent"];
    let installed = (dir.join("package-lock.json").exists()
        && works("npm", &[&["ci"][..], &quiet[..]].concat(), &dir))
        || works("npm", &[&["install"][..], &quiet[..]].concat(), &dir);
    if installed && dir.join("node_modules").join(PACKAGE).exists() {
        Ok(dir)
    } else {
        Err(format!(
            "npm could not install {PACKAGE} into {}",
            dir.display()
        ))
    }
}

/// oidc-provider on loopback, with the test's device endpoint.
struct Peer {
    _process: Killed,
    issuer: String,
    device: String,
}

impl Peer {
    fn start(dir: &Path, client_jwks: &Jwks) -> Peer {
        let (port, device_port) = (free_port(), free_port());
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(dir)
            .env("PORT", port.to_string())
            .env("DEVICE_PORT", device_port.to_string())
            .env("CLIENT_JWKS", serde_json::to_string(client_jwks).unwrap())
            .env("NODE_ENV", "production")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let process = Killed(child);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(HANG_GUARD)
            .expect("oidc-provider did not start");
        let issuer = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected output: {line}"))
            .to_owned();
        Peer {
            _process: process,
            issuer,
            device: format!("http://127.0.0.1:{device_port}"),
        }
    }

    /// The user's decision, through the test's device endpoint.
    fn decide(&self, rt: &Runtime, action: &str, auth_req_id: &str) {
        let url = format!("{}/{action}/{auth_req_id}", self.device);
        let status = rt
            .block_on(reqwest::Client::new().post(&url).send())
            .unwrap()
            .status();
        assert_eq!(status, 200, "{action} {auth_req_id}");
    }
}

fn request(message: &str) -> InitiateRequest {
    InitiateRequest {
        scope: "openid email".into(),
        binding_message: Some(message.into()),
        ..InitiateRequest::for_login_hint("alice@example.com")
    }
}

#[test]
fn the_library_logs_in_at_oidc_provider_and_validates_its_id_tokens() {
    let dir = match peer_dir() {
        Ok(d) => d,
        Err(why) => {
            eprintln!("skipping the oidc-provider interop test: {why}");
            return;
        }
    };
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let peer = Peer::start(
        &dir,
        &Jwks {
            keys: vec![key.public_jwk()],
        },
    );
    let rt = runtime();

    // Discovery, and private_key_jwt at both endpoints.
    let client = rt
        .block_on(CibaClient::discover(
            &peer.issuer,
            "rp-pkjwt",
            ClientAuth::PrivateKeyJwt(key),
        ))
        .unwrap();
    let metadata = client.metadata();
    assert_eq!(metadata.issuer, peer.issuer);
    assert!(
        metadata
            .grant_types_supported
            .iter()
            .any(|g| g == "urn:openid:params:grant-type:ciba")
    );

    // Pending, then approved: the poll loop reaches the tokens (through slow_down if the peer
    // finds the next poll too early), and the ID token validates against the peer's JWKS.
    let started = rt
        .block_on(client.initiate(&request("Pay 42 to ACME")))
        .unwrap();
    assert_eq!(
        rt.block_on(client.poll_once(&started.auth_req_id)).unwrap(),
        PollOutcome::Pending { retry_after: None }
    );
    peer.decide(&rt, "approve", &started.auth_req_id);
    let tokens = rt
        .block_on(async {
            tokio::time::timeout(HANG_GUARD, client.poll_until_done(&started)).await
        })
        .unwrap()
        .unwrap();
    let claims = rt
        .block_on(client.validate_token_response(&tokens))
        .unwrap()
        .expect("an ID token");
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.iss, peer.issuer);
    assert!(claims.aud.contains("rp-pkjwt"));
    // The token is bound to this client: another client id rejects it.
    let other = rt
        .block_on(CibaClient::discover(
            &peer.issuer,
            "rp-basic",
            ClientAuth::SecretBasic("x".into()),
        ))
        .unwrap();
    assert!(
        rt.block_on(other.validate_id_token(tokens.id_token.as_deref().unwrap()))
            .is_err()
    );

    // Denied: the first poll ends it with access_denied.
    let started = rt
        .block_on(client.initiate(&request("Pay 1000 to EVIL")))
        .unwrap();
    peer.decide(&rt, "deny", &started.auth_req_id);
    let e = rt.block_on(client.poll_until_done(&started)).unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::AccessDenied), "{e}");

    // Its errors are typed like ours.
    let e = rt
        .block_on(client.initiate(&InitiateRequest::for_login_hint("nobody@example.com")))
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::UnknownUserId), "{e}");
    let e = rt
        .block_on(client.initiate(&request("<script>")))
        .unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::InvalidBindingMessage), "{e}");

    // client_secret_basic, right and wrong.
    let basic = rt
        .block_on(CibaClient::discover(
            &peer.issuer,
            "rp-basic",
            ClientAuth::SecretBasic("rp-basic-secret-0123456789abcdef0123".into()),
        ))
        .unwrap();
    let started = rt.block_on(basic.initiate(&request("basic"))).unwrap();
    peer.decide(&rt, "approve", &started.auth_req_id);
    let tokens = rt.block_on(basic.poll_until_done(&started)).unwrap();
    let claims = rt
        .block_on(basic.validate_token_response(&tokens))
        .unwrap()
        .unwrap();
    assert_eq!(claims.sub, "alice");
    let e = rt.block_on(other.initiate(&request("wrong"))).unwrap_err();
    assert_eq!(e.code(), Some(&ErrorCode::InvalidClient), "{e}");
}
