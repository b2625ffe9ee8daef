//! Contract of the policy store: create-or-replace keeping the first `created_at`, refusal
//! for an unknown client, list oldest first, delete, and reads (cached, absence included)
//! that always see this store's own writes.

use super::*;
use backchannel_server::domain::policy::{AccessPolicy, PolicyRules, UserRule};

fn policy(client_id: &str, rules: PolicyRules, at: i64) -> AccessPolicy {
    AccessPolicy {
        client_id: client_id.to_owned(),
        rules,
        created_at: at,
        updated_at: at,
    }
}

pub(super) async fn policies_are_put_replaced_listed_and_deleted(s: Stores) {
    let p = &s.policies;
    s.clients
        .insert_client(&client("client-a", T0))
        .await
        .unwrap();
    s.clients
        .insert_client(&client("client-b", T0))
        .await
        .unwrap();
    // Absent first (and the absence is what a cache would keep).
    assert_eq!(p.get_policy("client-a").await.unwrap(), None);
    assert_eq!(
        p.put_policy(&policy("nope", PolicyRules::default(), T0))
            .await
            .unwrap(),
        None
    );
    assert_eq!(p.get_policy("nope").await.unwrap(), None);

    let full = PolicyRules {
        users: UserRule::Claim {
            name: "tier".into(),
            value: "gold".into(),
        },
        scopes: Some(vec!["openid".into(), "email".into()]),
        authorization_details_types: Some(vec!["payment_initiation".into()]),
        require_user_verification: true,
        max_requested_expiry: Some(120),
        allow_parallel: true,
    };
    let stored = p
        .put_policy(&policy("client-a", full.clone(), T0 + SEC))
        .await
        .unwrap();
    assert_eq!(stored, Some(policy("client-a", full.clone(), T0 + SEC)));
    // The absence read before is not served any more.
    assert_eq!(p.get_policy("client-a").await.unwrap(), stored);

    let narrower = PolicyRules {
        users: UserRule::Subjects(vec!["user-1".into()]),
        ..PolicyRules::default()
    };
    let mut replacement = policy("client-a", narrower.clone(), T0 + 9 * SEC);
    let replaced = p.put_policy(&replacement).await.unwrap().unwrap();
    replacement.created_at = T0 + SEC;
    assert_eq!(
        replaced, replacement,
        "a replacement keeps the first created_at"
    );
    assert_eq!(
        p.get_policy("client-a").await.unwrap(),
        Some(replacement.clone())
    );

    let group = policy(
        "client-b",
        PolicyRules {
            users: UserRule::Group("staff".into()),
            ..PolicyRules::default()
        },
        T0,
    );
    p.put_policy(&group).await.unwrap().unwrap();
    assert_eq!(
        p.list_policies().await.unwrap(),
        [group.clone(), replacement]
    );

    assert!(p.delete_policy("client-a").await.unwrap());
    assert_eq!(p.get_policy("client-a").await.unwrap(), None);
    assert!(!p.delete_policy("client-a").await.unwrap());
    assert!(!p.delete_policy("nope").await.unwrap());
    assert_eq!(p.list_policies().await.unwrap(), [group]);
}
