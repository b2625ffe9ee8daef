//! Contract of the replay cache (single-use `jti`s per scope, purge), the signing-key store
//! (newest first) and the health check.

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

pub(super) async fn health_ping_answers(s: Stores) {
    s.health.ping().await.unwrap();
}
