//! Contract of the replay cache (single-use `jti`s per scope, purge), the signing-key store
//! (newest first, one first key per algorithm however many nodes store one, sealing at rest
//! once) and the health check.

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
        sealed: alg == Algorithm::EdDSA,
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
        sealed: false,
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

pub(super) async fn a_clear_signing_key_is_sealed_once(s: Stores) {
    let clear = StoredKey {
        kid: "k-1".into(),
        alg: Algorithm::ES256,
        private_jwk: "{\"kty\":\"EC\"}".into(),
        sealed: false,
        created_at: T0,
    };
    s.keys.insert_signing_key(&clear).await.unwrap();
    // Several nodes seal at once, each with its own sealing: one of them is stored.
    let sealings: Vec<_> = (0..6)
        .map(|node| {
            let keys = s.keys.clone();
            let clear = clear.private_jwk.clone();
            tokio::spawn(async move {
                let sealed = format!("v1.sealed-by-{node}");
                keys.seal_signing_key("k-1", &clear, &sealed)
                    .await
                    .map(|won| won.then_some(sealed))
            })
        })
        .collect();
    let mut winners = Vec::new();
    for sealing in sealings {
        winners.extend(sealing.await.unwrap().unwrap());
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let listed = s.keys.list_signing_keys().await.unwrap();
    assert_eq!(
        listed,
        [StoredKey {
            private_jwk: winners[0].clone(),
            sealed: true,
            ..clear.clone()
        }]
    );
    // Sealed rows are not sealed again, and unknown kids match nothing.
    assert!(
        !s.keys
            .seal_signing_key("k-1", &winners[0], "v1.again")
            .await
            .unwrap()
    );
    assert!(
        !s.keys
            .seal_signing_key("k-2", &clear.private_jwk, "v1.x")
            .await
            .unwrap()
    );
}

pub(super) async fn health_ping_answers(s: Stores) {
    s.health.ping().await.unwrap();
}
