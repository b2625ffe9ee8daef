//! Killed, not stopped: a `backchannel serve` process that dies (SIGKILL) right after
//! answering `/bc-authorize`, before its push went out, delivers the push once it runs again.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use axum::extract::Path as UrlPath;
use axum::http::HeaderMap;
use base64::Engine;

use crate::serve_admin::{admin, bc_authorize, bin, free_port, serve_with, temp_dir};

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
