//! Contract of the replay cache (single-use `jti`s per scope, purge), the signing-key store
//! (newest first, one first key per algorithm however many nodes store one) and the health
//! check.

use super::*;

pub(super) async fn replay_cache_detects_replays_per_scope(s: Stores) {
    let remember = |scope: &'static str, jti: &'static str, expires_at: i64| {
        let s = s.clone();
        async move { s.replay.remember_jti(scope, jti, expires_at).await.unwrap() }
    };
    let assertion = "client-assertion";
    assert!(remember(assertion, "jti-1", T0 + 60 * SEC).await, "fresh");
    assert!(!remember(assertion, "jti-1", T0 + 60 * SEC).await, "replay");
    assert!(
        remember("device", "jti-1", T0 + 60 * SEC).await,
        "scopes are separate"
    );
    assert!(remember(assertion, "jti-2", T0 + 120 * SEC).await);

    let purged_jtis = |now: i64| {
        let s = s.clone();
        async move { purge_at(&s, now, 0, 1000).await.jtis }
    };
    assert_eq!(purged_jtis(T0 + 60 * SEC - 1).await, 0);
    assert_eq!(purged_jtis(T0 + 60 * SEC).await, 2, "expired at their exp");
    assert!(
        !remember(assertion, "jti-2", T0 + 120 * SEC).await,
        "still remembered"
    );
    assert!(
        remember(assertion, "jti-1", T0 + 180 * SEC).await,
        "forgotten once purged"
    );
}

pub(super) async fn signing_keys_list_newest_first(s: Stores) {
    let key = |kid: &str, alg, created_at| StoredKey {
        kid: kid.to_owned(),
        alg,
        private_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        created_at,
    };
    let k = &s.keys;
    assert!(k.list_signing_keys().await.unwrap().is_empty());
    let old = key("k-old", Algorithm::ES256, T0);
    let new = key("k-new", Algorithm::RS256, T0 + 2 * SEC);
    let mid = key("k-mid", Algorithm::EdDSA, T0 + SEC);
    for key in [&old, &new, &mid] {
        k.insert_signing_key(key).await.unwrap();
    }
    assert_eq!(
        k.list_signing_keys().await.unwrap(),
        [new, mid, old.clone()]
    );
    assert!(is_conflict(&k.insert_signing_key(&old).await));
}

pub(super) async fn first_signing_keys_are_stored_once_per_algorithm(s: Stores) {
    let key = |kid: String, alg| StoredKey {
        private_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        kid,
        alg,
        created_at: T0,
    };
    let existing = key("k-ed".into(), Algorithm::EdDSA);
    s.keys.insert_signing_key(&existing).await.unwrap();
    // Eight "nodes" at once, each with its own candidates for two missing algorithms and one
    // that already has a key.
    let starts: Vec<_> = (0..8)
        .map(|node| {
            let candidates = [Algorithm::ES256, Algorithm::RS256, Algorithm::EdDSA]
                .map(|alg| key(format!("k-{node}-{}", alg.as_str()), alg));
            let keys = s.keys.clone();
            tokio::spawn(async move { keys.insert_first_signing_keys(&candidates).await })
        })
        .collect();
    let mut stored = 0;
    for start in starts {
        stored += start.await.unwrap().unwrap();
    }
    assert_eq!(stored, 2, "one first key for each algorithm that had none");
    let listed = s.keys.list_signing_keys().await.unwrap();
    let mut algs: Vec<_> = listed.iter().map(|k| k.alg.as_str()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"], "{listed:?}");
    assert!(listed.contains(&existing));
}

pub(super) async fn health_ping_answers(s: Stores) {
    s.health.ping().await.unwrap();
}
