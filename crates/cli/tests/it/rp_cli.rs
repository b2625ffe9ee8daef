//! `backchannel client login|initiate|poll` and `backchannel demo` through the real binary:
//! a PEM key file, `--json` output, and an exit status per outcome (approved 0, denied 3,
//! expired 4); the demo runs a whole flow to the end and leaves nothing behind.

use std::process::{Command, Output, Stdio};

use backchannel_client::{Algorithm, SigningKey};
use backchannel_protocol::jose::{Jwks, pem};
use serde_json::Value;

use crate::support::{
    Killed, admin, authenticator_json, bin, enrol, free_port, new_user, serve_with, temp_dir,
};

fn client_cmd(args: &[&str]) -> Output {
    Command::new(bin())
        .arg("client")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn login_with_a_pem_key_exits_by_outcome() {
    let dir = temp_dir("rp-cli");
    // Requests may be as short as 2 s, so that one can expire during the test.
    let served = serve_with(
        &dir,
        free_port(),
        &[("BACKCHANNEL_CIBA_MIN_EXPIRES_IN".into(), "2".into())],
    );
    let issuer = served.issuer.clone();
    let _server = Killed(served.child);
    let sub = new_user(&dir, "bob@example.com");
    let (state, _) = enrol(&dir, &issuer, &sub, "phone", &[]);
    let key = SigningKey::generate(Algorithm::PS256).unwrap();
    let jwks = dir.join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::to_string(&Jwks {
            keys: vec![key.public_jwk()],
        })
        .unwrap(),
    )
    .unwrap();
    let client = admin(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "CLI RP",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks.to_str().unwrap(),
            "--json",
        ],
    );
    let client_id = client["client_id"].as_str().unwrap();
    let pem_file = dir.join("key.pem");
    std::fs::write(
        &pem_file,
        pem::encode(pem::LABEL_PKCS8, &key.to_pkcs8_der().unwrap()),
    )
    .unwrap();
    let base = |message: &'static str| -> Vec<String> {
        [
            "login",
            "--issuer",
            &issuer,
            "--client-id",
            client_id,
            "--private-key",
            pem_file.to_str().unwrap(),
            "--key-alg",
            "PS256",
            "--kid",
            key.kid(),
            "--login-hint",
            "bob@example.com",
            "--binding-message",
            message,
            "--json",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let decide = |verb: &str, message: &str| {
        let out = authenticator_json(&[
            verb,
            "--state",
            state.to_str().unwrap(),
            "--binding-message",
            message,
            "--wait",
            "20",
            "--json",
        ]);
        assert_eq!(out["decided"].as_array().unwrap().len(), 1);
    };
    let run = |args: Vec<String>, decision: Option<(&str, &str)>| -> Output {
        let child = Command::new(bin())
            .arg("client")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some((verb, message)) = decision {
            decide(verb, message);
        }
        child.wait_with_output().unwrap()
    };

    let approved = run(base("cli approve"), Some(("approve", "cli approve")));
    assert_eq!(
        approved.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&approved.stderr)
    );
    let tokens: Value = serde_json::from_slice(&approved.stdout).unwrap();
    assert!(tokens["access_token"].is_string(), "{tokens}");
    assert!(tokens["id_token"].is_string());

    let denied = run(base("cli deny"), Some(("deny", "cli deny")));
    assert_eq!(denied.status.code(), Some(3));
    let error: Value = serde_json::from_slice(&denied.stderr).unwrap();
    assert_eq!(error["error"], "access_denied");
    assert!(error["request_id"].is_string(), "{error}");

    let mut expiring = base("cli expire");
    expiring.extend(["--requested-expiry".into(), "2".into()]);
    let expired = run(expiring, None);
    assert_eq!(
        expired.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&expired.stderr)
    );

    // An unknown user is another error: 1, with the typed error on stderr.
    let mut unknown = base("cli unknown");
    let hint = unknown.iter().position(|a| a == "bob@example.com").unwrap();
    unknown[hint] = "nobody@example.com".into();
    let out = run(unknown, None);
    assert_eq!(out.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(error["error"], "unknown_user_id");

    // initiate prints the acknowledgement; poll takes it from there.
    let mut initiate = base("cli split");
    initiate[0] = "initiate".into();
    let out = client_cmd(&initiate.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ack: Value = serde_json::from_slice(&out.stdout).unwrap();
    let auth_req_id = ack["auth_req_id"].as_str().unwrap();
    decide("approve", "cli split");
    let out = client_cmd(&[
        "poll",
        "--issuer",
        &issuer,
        "--client-id",
        client_id,
        "--private-key",
        pem_file.to_str().unwrap(),
        "--key-alg",
        "PS256",
        "--kid",
        key.kid(),
        "--auth-req-id",
        auth_req_id,
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(tokens["id_token"].is_string());
}

#[test]
fn the_demo_runs_a_whole_flow_and_cleans_up() {
    let child = Command::new(bin())
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each part of the flow, as an exchange on the wire.
    for expected in [
        "POST http://127.0.0.1:",
        "/bc-authorize",
        "client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "auth_req_id:",
        "authorization_pending",
        "/device/v1/challenges",
        "binding_message: Transfer SGD 120 to ACME? W4SCT",
        "state: approved",
        "id_token:",
        "/jwks",
        "Authenticated.",
        "Done:",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // Its temporary directory is gone.
    let prefix = format!("backchannel-demo-{pid}-");
    let left: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
