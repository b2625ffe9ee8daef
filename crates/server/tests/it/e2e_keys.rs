//! Signing-key rotation end to end: `admin keys` over the admin API and as another process
//! would do it, tokens from both keys verifying under load, the replaced key leaving the JWKS
//! once its tokens expired (on the server's clock), challenges and external callback tokens
//! made before a rotation still decidable after it, and keys sealed at rest.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use backchannel_protocol::device::Decision;
use backchannel_protocol::jose::{self, Algorithm};
use backchannel_protocol::oauth::ClientAuthMethod;
use backchannel_server::app::open_domain;
use backchannel_server::config::Config;
use backchannel_server::domain::admin::NewUser;
use backchannel_server::domain::clock::{Clock, ManualClock, SystemClock};
use backchannel_server::domain::keys::KeyPolicy;
use serde_json::{Value, json};

use crate::e2e_external::{callback, org};
use crate::support::{Answer, Auth, TestServer, eventually, temp_dir, test_config};

async fn admin_get(s: &TestServer, path: &str) -> Answer {
    let r = s
        .http
        .get(s.url(path))
        .bearer_auth("test-admin-token")
        .send()
        .await
        .unwrap();
    Answer::from(r).await
}

async fn rotate(s: &TestServer, body: Value) -> String {
    let r = s
        .http
        .post(s.url("/admin/v1/keys/rotate"))
        .bearer_auth("test-admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    let a = Answer::from(r).await;
    assert_eq!(a.status, 201, "{}", a.body);
    a.body["kid"].as_str().unwrap().to_owned()
}

/// The `state` of each key the admin API lists, by kid.
async fn states(s: &TestServer) -> Vec<(String, String, String)> {
    let a = admin_get(s, "/admin/v1/keys").await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k["created_at"].as_i64().unwrap() > 1_600_000_000);
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["alg"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn state_of(states: &[(String, String, String)], kid: &str) -> String {
    states
        .iter()
        .find(|(k, _, _)| k == kid)
        .map(|(_, _, st)| st.clone())
        .unwrap_or_else(|| panic!("{kid} not listed: {states:?}"))
}

async fn signing_kid(s: &TestServer, alg: Algorithm) -> String {
    states(s)
        .await
        .into_iter()
        .find(|(_, a, st)| a == alg.as_str() && st == "active")
        .map(|(kid, _, _)| kid)
        .unwrap()
}

fn kid_of(token: &str) -> String {
    jose::decode_jws(token).unwrap().header.kid.unwrap()
}

/// One whole poll flow for `hint`'s only device; the ID token and the access token.
async fn flow(
    s: &TestServer,
    auth: &Auth,
    device: &crate::support::TestDevice,
    hint: &str,
) -> (String, String) {
    let id = s
        .start_request(auth, &[("scope", "openid"), ("login_hint", hint)])
        .await;
    assert_eq!(device.decide_only(s, Decision::Approve).await.status, 200);
    let t = s.token(auth, &id).await;
    assert_eq!(t.status, 200, "{}", t.body);
    (
        t.body["id_token"].as_str().unwrap().to_owned(),
        t.body["access_token"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_rotation_under_load_keeps_every_token_verifiable() {
    // Many requests for one user: no per-user limit.
    let s = Arc::new(TestServer::start_with(|c| c.limits.requests_per_user = 0).await);
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let old = signing_kid(&s, Algorithm::ES256).await;
    let tokens: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for n in 0..3 {
        let hint = format!("load{n}@example.com");
        let (_, device) = s.user_with_device(&hint).await;
        let (s, auth, stop, tokens) = (s.clone(), auth.clone(), stop.clone(), tokens.clone());
        loops.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let (id_token, access_token) = flow(&s, &auth, &device, &hint).await;
                tokens.lock().unwrap().extend([id_token, access_token]);
            }
        }));
    }
    let signed_by = |kid: &str| {
        let tokens = tokens.clone();
        let kid = kid.to_owned();
        move || {
            let n = tokens
                .lock()
                .unwrap()
                .iter()
                .filter(|t| kid_of(t) == kid)
                .count();
            std::future::ready(if n >= 6 { Ok(()) } else { Err(n) })
        }
    };
    eventually("tokens signed by the first key", signed_by(&old)).await;
    // Rotated as `backchannel admin keys rotate` does it: from another domain on the same
    // store, which the running server learns of only by its periodic reload.
    let config: Config = (*s.server.domain.config).clone();
    let other_process = open_domain(&config, Arc::new(SystemClock), s.base.clone())
        .await
        .unwrap();
    let new = other_process
        .rotate_signing_key(Some("ES256"))
        .await
        .unwrap()
        .kid;
    assert_ne!(new, old);
    eventually("tokens signed by the rotated key", signed_by(&new)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    // Every token, from either key, verifies against the JWKS served now.
    let tokens = tokens.lock().unwrap().clone();
    let mut kids = HashSet::new();
    for t in &tokens {
        let (header, _) = s.verify_jwt(t).await;
        kids.insert(header.kid.unwrap());
    }
    assert!(kids.contains(&old) && kids.contains(&new), "{kids:?}");
    let listed = states(&s).await;
    assert_eq!(state_of(&listed, &new), "active");
    assert_eq!(state_of(&listed, &old), "retiring");
}

#[tokio::test]
async fn a_replaced_key_leaves_the_jwks_once_its_tokens_expired() {
    let (s, clock) = TestServer::start_clocked().await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let (_, device) = s.user_with_device("ivy@example.com").await;
    let old = signing_kid(&s, Algorithm::ES256).await;
    let (before, _) = flow(&s, &auth, &device, "ivy@example.com").await;
    assert_eq!(kid_of(&before), old);
    // The rotation happens a second after the first key was made, at the server's "now".
    clock.advance_ms(1000);
    let new = rotate(&s, json!({"alg": "ES256"})).await;
    let (after, access_token) = flow(&s, &auth, &device, "ivy@example.com").await;
    assert_eq!(kid_of(&after), new, "the new key signs at once");
    assert_eq!(kid_of(&access_token), new);
    let published = |jwks: backchannel_protocol::jose::Jwks| -> Vec<String> {
        jwks.keys.into_iter().filter_map(|k| k.kid).collect()
    };
    assert!(published(s.jwks().await).contains(&old));
    s.verify_jwt(&before).await;

    let retention = KeyPolicy::retention_ms_for(&s.server.domain.config);
    clock.advance_ms(retention - 1);
    assert!(
        published(s.jwks().await).contains(&old),
        "kept while its tokens may be valid"
    );
    assert_eq!(state_of(&states(&s).await, &old), "retiring");
    clock.advance_ms(1);
    let now = published(s.jwks().await);
    assert!(!now.contains(&old) && now.contains(&new), "{now:?}");
    assert_eq!(state_of(&states(&s).await, &old), "retired");
    // The other algorithms' keys were never rotated and stay.
    assert_eq!(now.len(), Algorithm::ALL.len(), "{now:?}");
}

#[tokio::test]
async fn rotation_requests_are_checked() {
    let s = TestServer::start().await;
    let before = states(&s).await;
    let r = s
        .http
        .post(s.url("/admin/v1/keys/rotate"))
        .bearer_auth("test-admin-token")
        .json(&json!({"alg": "HS256"}))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.expect_error(400, "invalid_request");
    let r = s
        .http
        .post(s.url("/admin/v1/keys/rotate"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(states(&s).await, before);
    // `{}` rotates ES256.
    let kid = rotate(&s, json!({})).await;
    let listed = states(&s).await;
    assert_eq!(listed[0].0, kid, "newest first");
    assert_eq!(listed[0].1, "ES256");
    assert_eq!(listed.len(), before.len() + 1);
}

#[tokio::test]
async fn a_challenge_made_before_a_rotation_is_decided_after_it() {
    let s = TestServer::start().await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let (_, device) = s.user_with_device("otto@example.com").await;
    let id = s
        .start_request(
            &auth,
            &[("scope", "openid"), ("login_hint", "otto@example.com")],
        )
        .await;
    let shown = device.challenges(&s).await.remove(0);
    let old = kid_of(&shown.challenge);
    let new = rotate(&s, json!({"alg": "EdDSA"})).await;
    // A device listing now is shown the challenge signed by the new key...
    let relisted = device.challenges(&s).await.remove(0);
    assert_eq!(kid_of(&relisted.challenge), new);
    // ...but the one shown before still verifies with the JWKS and is decidable.
    assert_ne!(old, new);
    device.verify(&s, &shown).await;
    let jws = device.decision_jws(&shown, Decision::Approve, &shown.challenge);
    let a = device.send_decision(&s, &shown.id, &jws).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(s.token(&auth, &id).await.status, 200);
}

#[tokio::test]
async fn an_external_callback_token_from_before_a_rotation_still_decides() {
    let (org, url) = org().await;
    let s = TestServer::start_with(|c| {
        c.external.url = url.clone();
        c.external.token = "org-secret".into();
    })
    .await;
    s.user(NewUser {
        email: Some("pia@example.com".into()),
        ..Default::default()
    })
    .await;
    let auth = s
        .secret_client(ClientAuthMethod::ClientSecretBasic, "openid")
        .await;
    let id = s
        .start_request(
            &auth,
            &[("scope", "openid"), ("login_hint", "pia@example.com")],
        )
        .await;
    let got = org.received.wait(1).await;
    let msg = &got[0].1;
    rotate(&s, json!({"alg": "EdDSA"})).await;
    let a = callback(&s, msg, msg["callback_token"].as_str().unwrap(), "approve").await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(s.token(&auth, &id).await.status, 200);
}

const KEY_FILE_HEX: &str = "8f1c2e3d4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[tokio::test]
async fn signing_keys_are_sealed_at_rest_with_the_key_file() {
    let dir = temp_dir("sealed");
    let key_file = dir.join("keys.key");
    std::fs::write(&key_file, format!("{KEY_FILE_HEX}\n")).unwrap();
    let clock = || -> Arc<dyn Clock> { Arc::new(ManualClock::new(SystemClock.now_ms())) };
    let issuer = "http://127.0.0.1:9".to_owned();
    let plain = test_config(&dir);
    let mut sealed = plain.clone();
    sealed.keys.encryption_key_file = key_file.to_string_lossy().into_owned();

    // First start without the file: keys in the clear, as before this feature.
    let first = open_domain(&plain, clock(), issuer.clone()).await.unwrap();
    let kids: Vec<String> = first
        .keys
        .jwks()
        .keys
        .into_iter()
        .filter_map(|k| k.kid)
        .collect();
    let rows = first.stores.keys.list_signing_keys().await.unwrap();
    assert!(
        rows.iter()
            .all(|r| !r.sealed && r.private_jwk.contains("\"d\""))
    );
    drop(first);

    // With the file: every stored key is sealed in place, and the same keys are served.
    let second = open_domain(&sealed, clock(), issuer.clone()).await.unwrap();
    let rows = second.stores.keys.list_signing_keys().await.unwrap();
    assert_eq!(rows.len(), kids.len());
    for r in &rows {
        assert!(r.sealed, "{} not sealed", r.kid);
        assert!(r.private_jwk.starts_with("v1."), "{}", r.kid);
        assert!(serde_json::from_str::<Value>(&r.private_jwk).is_err());
        // Base64url after the prefix: no JSON text (its quotes) is left in the row. (Random
        // base64url may well spell "kty", so the letters themselves prove nothing.)
        assert!(!r.private_jwk.contains('"'), "{}", r.kid);
    }
    let served: Vec<String> = second
        .keys
        .jwks()
        .keys
        .into_iter()
        .filter_map(|k| k.kid)
        .collect();
    assert_eq!(served, kids);
    // A key rotated now is stored sealed too.
    let rotated = second.rotate_signing_key(Some("ES384")).await.unwrap().kid;
    let rows = second.stores.keys.list_signing_keys().await.unwrap();
    assert!(rows.iter().any(|r| r.kid == rotated && r.sealed));
    drop(second);

    // A restart with the file works and serves the rotated key.
    let third = open_domain(&sealed, clock(), issuer.clone()).await.unwrap();
    assert_eq!(third.keys.signer(Algorithm::ES384).unwrap().kid(), rotated);
    drop(third);

    // Without the file, or with another key in it, start-up fails and says why.
    let Err(e) = open_domain(&plain, clock(), issuer.clone()).await else {
        panic!("started without the key file")
    };
    assert!(
        e.to_string().contains("encryption_key_file") && e.to_string().contains("encrypted"),
        "{e}"
    );
    let wrong = dir.join("wrong.key");
    std::fs::write(&wrong, KEY_FILE_HEX.replace('8', "9")).unwrap();
    let mut wrong_config = plain.clone();
    wrong_config.keys.encryption_key_file = wrong.to_string_lossy().into_owned();
    let Err(e) = open_domain(&wrong_config, clock(), issuer.clone()).await else {
        panic!("started with the wrong key file")
    };
    assert!(e.to_string().contains("does not open"), "{e}");
    // A key file that is not 32 bytes is refused as such.
    std::fs::write(&wrong, "too short").unwrap();
    let Err(e) = open_domain(&wrong_config, clock(), issuer).await else {
        panic!("started with a malformed key file")
    };
    assert!(e.to_string().contains("32 random bytes"), "{e}");
}
