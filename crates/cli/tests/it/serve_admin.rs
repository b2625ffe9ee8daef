//! `backchannel serve` and `backchannel admin` through the real binary.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::support::{Rp, admin, admin_fails, bin, envs, runtime, serve, temp_dir};

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
    let rp = Rp::new(&served.issuer, &client);
    let (_, body) = runtime()
        .block_on(rp.bc_authorize("S1234567D", &[]))
        .answered();
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

#[test]
fn admin_client_create_with_refresh_tokens_registers_the_grant() {
    let dir = temp_dir("refresh-grant");
    let grants = |extra: &[&str]| {
        let mut args = vec!["client", "create", "--name", "Refreshing Bank", "--json"];
        args.extend_from_slice(extra);
        let created = admin(&dir, &args);
        let id = created["client_id"].as_str().unwrap().to_owned();
        admin(&dir, &["client", "get", &id, "--json"])["grant_types"].clone()
    };
    assert_eq!(
        grants(&["--refresh-tokens"]),
        serde_json::json!(["urn:openid:params:grant-type:ciba", "refresh_token"])
    );
    assert_eq!(
        grants(&[]),
        serde_json::json!(["urn:openid:params:grant-type:ciba"])
    );
}

#[test]
fn admin_policy_sets_shows_lists_deletes_and_a_running_server_enforces_it() {
    let dir = temp_dir("policy");
    let mut served = serve(&dir);
    let client = admin(
        &dir,
        &[
            "client",
            "create",
            "--name",
            "Policy Bank",
            "--scope",
            "openid email",
            "--json",
        ],
    );
    let id = client["client_id"].as_str().unwrap();
    let rp = Rp::new(&served.issuer, &client);
    let ask = || {
        runtime()
            .block_on(rp.bc_authorize("pol@example.com", &[("requested_expiry", "300")]))
            .answered()
    };
    // No policy: the request gets as far as the (unknown) user.
    assert_eq!(ask().1["error"], "unknown_user_id");

    let set = admin(
        &dir,
        &[
            "policy",
            "set",
            id,
            "--users",
            "group:staff",
            "--scopes",
            "openid email",
            "--authorization-details-types",
            "payment_initiation",
            "--require-user-verification",
            "--max-requested-expiry",
            "120",
            "--allow-parallel",
            "--json",
        ],
    );
    assert_eq!(set["client_id"], id);
    assert_eq!(set["users"], serde_json::json!({"group": "staff"}));
    assert_eq!(set["scopes"], serde_json::json!(["openid", "email"]));
    assert_eq!(
        set["authorization_details_types"],
        serde_json::json!(["payment_initiation"])
    );
    assert_eq!(set["require_user_verification"], true);
    assert_eq!(set["max_requested_expiry"], 120);
    assert_eq!(set["allow_parallel"], true);
    assert_eq!(admin(&dir, &["policy", "show", id, "--json"]), set);
    let list = admin(&dir, &["policy", "list", "--json"]);
    assert_eq!(list, serde_json::json!({"policies": [set]}));
    let text = Command::new(bin())
        .args(["admin", "policy", "show", id])
        .envs(envs(&dir, 0))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("users:                     group staff"),
        "{text}"
    );
    assert!(text.contains("max requested_expiry:      120 s"), "{text}");

    // The running server sees the policy within a few seconds, without a restart.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = ask();
        if status == 403 {
            assert_eq!(body["error"], "access_denied");
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("policy maximum of 120 seconds"),
                "{body}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "still {status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // Bad input: a message and a non-zero exit, never a panic.
    for (args, message) in [
        (vec!["--users", "role:x"], "--users role:x"),
        (
            vec!["--scopes", "openid phone"],
            "scope phone is not registered",
        ),
        (
            vec!["--authorization-details-types", "other"],
            "type other is not configured",
        ),
        (
            vec!["--max-requested-expiry", "99999"],
            "max_requested_expiry",
        ),
    ] {
        let mut all = vec!["policy", "set", id];
        all.extend(args);
        let stderr = admin_fails(&dir, &all);
        assert!(stderr.contains(message), "{all:?}: {stderr}");
    }
    let stderr = admin_fails(&dir, &["policy", "set", "no-such-client", "--json"]);
    assert!(stderr.contains("no such client"), "{stderr}");

    let deleted = admin(&dir, &["policy", "delete", id, "--json"]);
    assert_eq!(
        deleted,
        serde_json::json!({"client_id": id, "deleted": true})
    );
    assert!(admin_fails(&dir, &["policy", "show", id, "--json"]).contains("no access policy"));
    assert_eq!(
        admin(&dir, &["policy", "list", "--json"]),
        serde_json::json!({"policies": []})
    );
    sigterm(&served.child);
    assert!(wait_exit(&mut served.child).success());
}
