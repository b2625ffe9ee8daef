//! Contract of refresh tokens and revoked access tokens: a token rotates once (also under
//! concurrent uses), a revoked family takes its access tokens' `jti`s with it, a user's
//! families are revoked together, and the purge removes families past their absolute lifetime
//! and revoked access tokens past their expiry.

use super::*;

fn family(id: &str, user_sub: &str, expires_at: i64) -> RefreshFamily {
    RefreshFamily {
        id: id.to_owned(),
        client_id: "client-1".to_owned(),
        user_sub: user_sub.to_owned(),
        device_id: Some("device-1".to_owned()),
        scope: "openid email".to_owned(),
        authorization_details: Some(json!([{"type": "payment_initiation"}])),
        authenticated_at: T0,
        user_verified: true,
        created_at: T0,
        expires_at,
        revoked_at: None,
    }
}

fn token(hash: &str, family_id: &str, access_expires_at: i64) -> RefreshToken {
    RefreshToken {
        hash: hash.to_owned(),
        family_id: family_id.to_owned(),
        created_at: T0,
        expires_at: T0 + HOUR,
        rotated_at: None,
        access_jti: format!("jti-{hash}"),
        access_expires_at,
    }
}

async fn revoked(s: &Stores, jti: &str) -> bool {
    s.tokens.access_token_revoked(jti).await.unwrap()
}

pub(super) async fn refresh_tokens_rotate_once_and_revoke_with_their_family(s: Stores) {
    world(&s, 1).await;
    let f = family("fam-1", "user-1", T0 + 24 * HOUR);
    let first = token("rt-1", "fam-1", T0 + 600 * SEC);
    s.tokens.insert_refresh_family(&f, &first).await.unwrap();
    assert_eq!(
        s.tokens.get_refresh_token("rt-1").await.unwrap(),
        Some((first.clone(), f.clone()))
    );
    assert_eq!(s.tokens.get_refresh_token("rt-x").await.unwrap(), None);

    let second = token("rt-2", "fam-1", T0 + 660 * SEC);
    let now = T0 + 60 * SEC;
    assert!(
        s.tokens
            .rotate_refresh_token("rt-1", &second, now)
            .await
            .unwrap()
    );
    // The same token again rotates nothing and stores nothing.
    let third = token("rt-3", "fam-1", T0 + 700 * SEC);
    assert!(
        !s.tokens
            .rotate_refresh_token("rt-1", &third, now)
            .await
            .unwrap()
    );
    assert_eq!(s.tokens.get_refresh_token("rt-3").await.unwrap(), None);
    let (used, _) = s.tokens.get_refresh_token("rt-1").await.unwrap().unwrap();
    assert_eq!(used.rotated_at, Some(now));
    // An idle-expired token does not rotate either.
    let late = T0 + HOUR;
    assert!(
        !s.tokens
            .rotate_refresh_token("rt-2", &third, late)
            .await
            .unwrap()
    );

    // Revoking at T0 + 630 s: rt-1's access token has expired (not copied), rt-2's has not.
    let at = T0 + 630 * SEC;
    assert!(s.tokens.revoke_refresh_family("fam-1", at).await.unwrap());
    assert!(!s.tokens.revoke_refresh_family("fam-1", at).await.unwrap());
    assert!(revoked(&s, "jti-rt-2").await);
    assert!(!revoked(&s, "jti-rt-1").await);
    let (_, fam) = s.tokens.get_refresh_token("rt-2").await.unwrap().unwrap();
    assert_eq!(fam.revoked_at, Some(at));
    // A revoked family's tokens never rotate.
    assert!(
        !s.tokens
            .rotate_refresh_token("rt-2", &third, at)
            .await
            .unwrap()
    );

    s.tokens
        .revoke_access_token("solo", T0 + HOUR)
        .await
        .unwrap();
    s.tokens
        .revoke_access_token("solo", T0 + HOUR)
        .await
        .unwrap();
    assert!(revoked(&s, "solo").await);
    assert!(!revoked(&s, "other").await);
}

pub(super) async fn concurrent_uses_of_one_refresh_token_rotate_it_once(s: Stores) {
    world(&s, 1).await;
    let f = family("fam-1", "user-1", T0 + 24 * HOUR);
    s.tokens
        .insert_refresh_family(&f, &token("rt-0", "fam-1", T0 + HOUR))
        .await
        .unwrap();
    let uses = (0..8).map(|i| {
        let s = s.clone();
        tokio::spawn(async move {
            let next = token(&format!("next-{i}"), "fam-1", T0 + HOUR);
            s.tokens
                .rotate_refresh_token("rt-0", &next, T0 + SEC)
                .await
                .unwrap()
        })
    });
    let mut wins = 0;
    for handle in uses.collect::<Vec<_>>() {
        if handle.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

pub(super) async fn a_users_refresh_families_are_revoked_together(s: Stores) {
    world(&s, 1).await;
    s.users.insert_user(&user("user-2", 2)).await.unwrap();
    for (id, sub) in [("a", "user-1"), ("b", "user-1"), ("c", "user-2")] {
        let f = family(id, sub, T0 + 24 * HOUR);
        let t = token(&format!("rt-{id}"), id, T0 + HOUR);
        s.tokens.insert_refresh_family(&f, &t).await.unwrap();
    }
    let revoked_now = s.tokens.revoke_user_refresh_families("user-1", T0).await;
    assert_eq!(revoked_now.unwrap(), 2);
    assert_eq!(
        s.tokens
            .revoke_user_refresh_families("user-1", T0)
            .await
            .unwrap(),
        0
    );
    assert!(revoked(&s, "jti-rt-a").await && revoked(&s, "jti-rt-b").await);
    assert!(!revoked(&s, "jti-rt-c").await);
    let (_, c) = s.tokens.get_refresh_token("rt-c").await.unwrap().unwrap();
    assert_eq!(c.revoked_at, None);
}

pub(super) async fn purge_removes_ended_refresh_families_and_expired_revocations(s: Stores) {
    world(&s, 1).await;
    let now = T0 + 10 * HOUR;
    for (id, expires_at) in [("ended", now), ("alive", now + SEC)] {
        let f = family(id, "user-1", expires_at);
        let t = token(&format!("rt-{id}"), id, T0 + HOUR);
        s.tokens.insert_refresh_family(&f, &t).await.unwrap();
        let next = token(&format!("rt-{id}-2"), id, T0 + HOUR);
        assert!(
            s.tokens
                .rotate_refresh_token(&format!("rt-{id}"), &next, T0)
                .await
                .unwrap()
        );
    }
    s.tokens.revoke_access_token("old", now).await.unwrap();
    s.tokens
        .revoke_access_token("young", now + SEC)
        .await
        .unwrap();

    let purged = purge_at(&s, now, HOUR, 1000).await;
    assert_eq!(
        (
            purged.refresh_families,
            purged.refresh_tokens,
            purged.revoked_access_tokens
        ),
        (1, 2, 1)
    );
    assert_eq!(
        s.tokens.get_refresh_token("rt-ended-2").await.unwrap(),
        None
    );
    assert!(
        s.tokens
            .get_refresh_token("rt-alive-2")
            .await
            .unwrap()
            .is_some()
    );
    assert!(!revoked(&s, "old").await);
    assert!(revoked(&s, "young").await);
    // Bounded: one family per round.
    let later = now + 2 * SEC;
    for id in ["x", "y", "z"] {
        let f = family(id, "user-1", now + SEC);
        let t = token(&format!("rt-{id}"), id, T0 + HOUR);
        s.tokens.insert_refresh_family(&f, &t).await.unwrap();
    }
    let purged = purge_at(&s, later, HOUR, 1).await;
    assert_eq!(purged.refresh_families, 4);
    assert_eq!(purged.refresh_tokens, 5);
}
