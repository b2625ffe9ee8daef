//! Several `backchannel serve` nodes on one PostgreSQL database (SPEC §7): one key set however
//! many start at once, keys added (or rotated by `admin keys rotate`) while they run reach
//! every node, and what `admin` changes in the shared store holds on every node.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use backchannel_protocol::jose::{Algorithm, SigningKey};
use backchannel_server::domain::model::StoredKey;
use serde_json::Value;

use crate::cluster::{Cluster, Node};
use crate::stand_in::{First, StandIn, loopback_callbacks_env};
use crate::support::{HANG_GUARD, Reply, Rp, runtime};

#[test]
fn nodes_started_together_serve_one_stored_key_set() {
    let Some(cluster) = Cluster::start("jwks", 3) else {
        return;
    };
    runtime().block_on(async {
        let stored = cluster
            .db
            .stores()
            .await
            .keys
            .list_signing_keys()
            .await
            .unwrap();
        let mut algs: Vec<_> = stored.iter().map(|k| k.alg.as_str()).collect();
        let mut every_alg: Vec<_> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();
        algs.sort_unstable();
        every_alg.sort_unstable();
        assert_eq!(
            algs, every_alg,
            "one stored key per algorithm, whoever generated it"
        );
        let stored_kids: Vec<_> = stored.iter().map(|k| k.kid.clone()).collect();
        let first = cluster.nodes[0].jwks().await;
        for node in &cluster.nodes {
            let jwks = node.jwks().await;
            assert_eq!(jwks, first, "{} serves another key set", node.issuer);
            let mut kids: Vec<_> = jwks.keys().cloned().collect();
            let mut expected = stored_kids.clone();
            kids.sort();
            expected.sort();
            assert_eq!(
                kids, expected,
                "{} serves exactly the stored keys",
                node.issuer
            );
        }
    });
}

#[test]
fn a_key_stored_while_nodes_run_is_served_by_every_node() {
    let Some(cluster) = Cluster::start("key-added", 3) else {
        return;
    };
    runtime().block_on(async {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let kid = key.kid().to_owned();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let stores = cluster.db.stores().await;
        stores
            .keys
            .insert_signing_key(&StoredKey {
                kid: kid.clone(),
                alg: Algorithm::ES256,
                private_jwk: serde_json::to_string(&key.to_private_jwk()).unwrap(),
                sealed: false,
                created_at: now_ms,
            })
            .await
            .unwrap();
        for node in &cluster.nodes {
            let jwks = serves(node, &kid).await;
            assert_eq!(jwks[&kid], serde_json::to_value(key.public_jwk()).unwrap());
        }
    });
}

#[test]
fn admin_keys_rotate_reaches_every_node_and_keys_list_shows_the_states() {
    let Some(cluster) = Cluster::start("key-rotated", 2) else {
        return;
    };
    let listed = |cluster: &Cluster| -> Vec<(String, String, String)> {
        cluster.admin(&["keys", "list", "--json"])["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                assert!(k["created_at"].as_i64().is_some(), "{k}");
                let field = |f: &str| k[f].as_str().unwrap().to_owned();
                (field("kid"), field("alg"), field("state"))
            })
            .collect()
    };
    let before = listed(&cluster);
    assert!(
        before.iter().all(|(_, _, state)| state == "active"),
        "{before:?}"
    );
    let old = before
        .iter()
        .find(|(_, alg, _)| alg == "ES256")
        .map(|(kid, _, _)| kid.clone())
        .unwrap();
    let rotated = cluster.admin(&["keys", "rotate", "--alg", "ES256", "--json"]);
    let kid = rotated["kid"].as_str().unwrap().to_owned();
    assert_eq!(rotated.as_object().unwrap().len(), 1, "{rotated}");
    runtime().block_on(async {
        for node in &cluster.nodes {
            let jwks = serves(node, &kid).await;
            assert!(jwks.contains_key(&old), "the replaced key stays published");
        }
    });
    let after = listed(&cluster);
    assert_eq!(after[0], (kid, "ES256".to_owned(), "active".to_owned()));
    assert!(after.contains(&(old, "ES256".to_owned(), "retiring".to_owned())));
    assert_eq!(after.len(), before.len() + 1);

    // `client create` takes the ID-token encryption options.
    let dir = crate::support::temp_dir("enc-client");
    let key = backchannel_protocol::jose::jwe::DecryptingKey::generate(
        backchannel_protocol::jose::jwe::EncryptionKeyType::P256,
    )
    .unwrap();
    let jwks_file = dir.join("keys.json");
    std::fs::write(
        &jwks_file,
        serde_json::json!({"keys": [key.public_jwk()]}).to_string(),
    )
    .unwrap();
    let created = cluster.admin(&[
        "client",
        "create",
        "--name",
        "Sealed Bank",
        "--jwks-file",
        jwks_file.to_str().unwrap(),
        "--id-token-encryption-alg",
        "ECDH-ES+A128KW",
        "--json",
    ]);
    let id = created["client_id"].as_str().unwrap();
    let view = cluster.admin(&["client", "get", id]);
    assert_eq!(view["id_token_encrypted_response_alg"], "ECDH-ES+A128KW");
    assert_eq!(view["id_token_encrypted_response_enc"], "A128CBC-HS256");
}

/// Waits (up to the hang guard) until `node` serves `kid`; its JWKS then.
async fn serves(node: &Node, kid: &str) -> BTreeMap<String, Value> {
    let deadline = Instant::now() + HANG_GUARD;
    loop {
        let jwks = node.jwks().await;
        if jwks.contains_key(kid) {
            return jwks;
        }
        assert!(
            Instant::now() < deadline,
            "{} never served {kid}",
            node.issuer
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_client_disabled_by_admin_is_refused_by_a_node_that_served_it() {
    let Some(cluster) = Cluster::start("client-disabled", 2) else {
        return;
    };
    let client = cluster.admin(&["client", "create", "--name", "Shared Bank", "--json"]);
    let id = client["client_id"].as_str().unwrap();
    let rps: Vec<_> = cluster
        .nodes
        .iter()
        .map(|node| Rp::new(&node.issuer, &client))
        .collect();
    runtime().block_on(async {
        // Served: the secret is accepted (unknown_user_id comes after client authentication).
        for rp in &rps {
            let (status, body) = rp.bc_authorize("nobody@example.com", &[]).await.answered();
            assert_eq!(
                (status, body["error"].as_str()),
                (400, Some("unknown_user_id")),
                "{body}"
            );
        }
    });
    let disabled = cluster.admin(&["client", "disable", id, "--json"]);
    assert!(disabled.is_object(), "{disabled}");
    runtime().block_on(async {
        for rp in &rps {
            // A node serves a client it read less than a second ago from its cache (the
            // store contract suite bounds how long: postgres_nodes_see_each_others_disables).
            crate::support::eventually("the disabled client is refused", || async {
                let (status, body) = rp.bc_authorize("nobody@example.com", &[]).await.answered();
                match (status, body["error"].as_str()) {
                    (401, Some("invalid_client")) => Ok(()),
                    (400, Some("unknown_user_id")) => Err("still served"),
                    _ => panic!("{status} {body}"),
                }
            })
            .await;
        }
    });
}

/// A user with one device enrolled through `node`, in the cluster's shared store; the device's
/// state file.
fn user_with_device_on(cluster: &Cluster, node: &Node, email: &str) -> String {
    let sub = cluster.admin(&["user", "create", "--email", email, "--json"])["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let code = cluster.admin(&["enrolment", "create", "--user", &sub, "--json"])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = crate::support::temp_dir("cluster-device").join("phone.json");
    let state = state.to_str().unwrap().to_owned();
    crate::support::authenticator_json(&[
        "enrol",
        "--server",
        &node.issuer,
        "--code",
        &code,
        "--state",
        &state,
        "--name",
        "phone",
        "--json",
    ]);
    state
}

/// A flow started and approved on node A is finished on node B after A is killed (SIGKILL):
/// B redeems it, once, and A's death loses nothing that was acknowledged.
#[test]
fn a_flow_started_on_a_killed_node_finishes_on_another() {
    let Some(mut cluster) = Cluster::start("kill-a", 2) else {
        return;
    };
    let client = cluster.admin(&["client", "create", "--name", "Failover Bank", "--json"]);
    let state = user_with_device_on(&cluster, &cluster.nodes[0], "failover@example.com");
    let rt = runtime();
    let on_a = Rp::new(&cluster.nodes[0].issuer, &client);
    let on_b = Rp::new(&cluster.nodes[1].issuer, &client);
    let started = rt.block_on(on_a.bc_authorize("failover@example.com", &[]));
    let Reply::Answered(200, answer) = started else {
        panic!("/bc-authorize on A: {started:?}")
    };
    let id = answer["auth_req_id"].as_str().unwrap().to_owned();
    let approved = crate::support::authenticator_json(&[
        "approve", "--state", &state, "--all", "--wait", "10", "--json",
    ]);
    assert_eq!(
        approved["decided"].as_array().unwrap().len(),
        1,
        "{approved}"
    );

    drop(cluster.nodes.remove(0)); // kill -9 node A
    let polls: Vec<Reply> = rt.block_on(async {
        let racing: Vec<_> = (0..10)
            .map(|_| {
                let (rp, id) = (on_b.clone(), id.clone());
                tokio::spawn(async move { rp.token(&id).await })
            })
            .collect();
        let mut polls = Vec::new();
        for poll in racing {
            polls.push(poll.await.unwrap());
        }
        polls
    });
    let tokens: Vec<&Value> = polls
        .iter()
        .filter_map(|p| match p {
            Reply::Answered(200, body) => Some(body),
            _ => None,
        })
        .collect();
    assert_eq!(tokens.len(), 1, "exactly one token response: {polls:?}");
    assert!(tokens[0]["id_token"].is_string());
    assert!(tokens[0]["access_token"].is_string());
}

/// Both nodes run the outbox and push workers and both are woken by a decision (one locally,
/// the other by NOTIFY): a ping and a push-mode token callback still go out once each, by
/// whichever node leased the notification first.
#[test]
fn ping_and_push_callbacks_are_sent_once_by_one_of_two_nodes() {
    let rt = runtime();
    let endpoint = StandIn::start(&rt, First::Answered);
    let Some(cluster) = Cluster::start_with("callbacks-once", 2, &loopback_callbacks_env()) else {
        return;
    };
    let client = |name: &str, mode: &str| {
        let endpoint = format!("{}/{mode}", endpoint.base);
        cluster.admin(&[
            "client",
            "create",
            "--name",
            name,
            "--delivery-mode",
            mode,
            "--notification-endpoint",
            &endpoint,
            "--json",
        ])
    };
    let (ping, push) = (client("Ping Bank", "ping"), client("Push Bank", "push"));
    let state = user_with_device_on(&cluster, &cluster.nodes[0], "callbacks@example.com");
    let started: Vec<String> = [(&ping, "ping-token-5d1c"), (&push, "push-token-77ae")]
        .iter()
        .map(|(client, token)| {
            let rp = Rp::new(&cluster.nodes[1].issuer, client);
            let answer = rt.block_on(rp.bc_authorize(
                "callbacks@example.com",
                &[("client_notification_token", token)],
            ));
            let Reply::Answered(200, body) = answer else {
                panic!("/bc-authorize: {answer:?}")
            };
            body["auth_req_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let approved = crate::support::authenticator_json(&[
        "approve", "--state", &state, "--all", "--wait", "10", "--json",
    ]);
    assert_eq!(
        approved["decided"].as_array().unwrap().len(),
        2,
        "{approved}"
    );

    let sent = rt.block_on(endpoint.seen.wait(2));
    // Well past every re-check and retry period of both nodes' workers: a second sender
    // would have sent by now.
    std::thread::sleep(Duration::from_secs(3));
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 2, "one callback per request: {seen:?}");
    let by_path = |path: &str| {
        let sent: Vec<_> = sent.iter().filter(|s| s.path == path).collect();
        assert_eq!(sent.len(), 1, "{path}: {seen:?}");
        sent[0].clone()
    };
    let (pinged, pushed) = (by_path("/ping"), by_path("/push"));
    assert_eq!(
        pinged.authorization.as_deref(),
        Some("Bearer ping-token-5d1c")
    );
    assert_eq!(
        pinged.body["auth_req_id"].as_str(),
        Some(started[0].as_str())
    );
    assert_eq!(
        pushed.authorization.as_deref(),
        Some("Bearer push-token-77ae")
    );
    assert_eq!(
        pushed.body["auth_req_id"].as_str(),
        Some(started[1].as_str())
    );
    assert!(pushed.body["id_token"].is_string(), "{}", pushed.body);

    // The pinged client collects its tokens, once, from either node.
    let on_a = Rp::new(&cluster.nodes[0].issuer, &ping);
    let on_b = Rp::new(&cluster.nodes[1].issuer, &ping);
    let first = rt.block_on(on_a.token(&started[0]));
    assert!(
        matches!(&first, Reply::Answered(200, body) if body["id_token"].is_string()),
        "{first:?}"
    );
    let again = rt.block_on(on_b.token(&started[0]));
    assert!(
        matches!(&again, Reply::Answered(400, body) if body["error"] == "invalid_grant"),
        "{again:?}"
    );
}

/// Push-bombing protection on two nodes (issue 13): requests for one user raced on both nodes
/// are admitted up to the per-user limit and no further; the nodes' replacements leave the
/// device one challenge; a "not me" denial (`authenticator deny --not-me`) blocks the client
/// on both nodes at once; `admin user requests` tells the story.
#[test]
fn limits_replacement_and_the_not_me_block_hold_across_two_nodes() {
    let settings = [
        ("BACKCHANNEL_LIMITS_REQUESTS_PER_USER", "4"),
        ("BACKCHANNEL_LIMITS_REQUESTS_PER_USER_WINDOW_SECS", "600"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    let Some(cluster) = Cluster::start_with("limits", 2, &settings) else {
        return;
    };
    let client = cluster.admin(&["client", "create", "--name", "Loud Bank", "--json"]);
    let state = user_with_device_on(&cluster, &cluster.nodes[0], "bombed@example.com");
    let rps: Vec<Rp> = cluster
        .nodes
        .iter()
        .map(|node| Rp::new(&node.issuer, &client))
        .collect();
    let answers: Vec<(u16, Value)> = runtime().block_on(async {
        let racing: Vec<_> = (0..10)
            .map(|i| {
                let rp = rps[i % 2].clone();
                tokio::spawn(async move { rp.bc_authorize("bombed@example.com", &[]).await })
            })
            .collect();
        let mut answers = Vec::new();
        for r in racing {
            answers.push(r.await.unwrap().answered());
        }
        answers
    });
    let admitted = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(admitted, 4, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(
            (*status, body["error"].as_str()),
            (429, Some("slow_down")),
            "{body}"
        );
    }

    // Of the four, only the newest is still on the device.
    let shown = crate::support::authenticator_json(&["list", "--state", &state, "--json"]);
    assert_eq!(shown["challenges"].as_array().unwrap().len(), 1, "{shown}");
    let denied = crate::support::authenticator_json(&[
        "deny", "--state", &state, "--all", "--not-me", "--json",
    ]);
    assert_eq!(denied["decided"].as_array().unwrap().len(), 1, "{denied}");
    runtime().block_on(async {
        for rp in &rps {
            let (status, body) = rp.bc_authorize("bombed@example.com", &[]).await.answered();
            assert_eq!(
                (status, body["error"].as_str()),
                (403, Some("access_denied")),
                "{body}"
            );
        }
    });

    let sub = cluster.admin(&["user", "list", "--json"])["users"][0]["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = cluster.admin(&["user", "requests", &sub, "--json"]);
    let mut outcomes: Vec<&str> = listed["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    outcomes.sort_unstable();
    assert_eq!(
        outcomes,
        ["denied_not_me", "replaced", "replaced", "replaced"],
        "{listed}"
    );
}
