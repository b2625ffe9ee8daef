//! Contract of request admission (`[limits]`): the windows, the undecided requests of one client
//! for one user, "not me" blocks; and the replacement of a client's undecided requests.

use backchannel_server::store::limits::{
    Admission, AdmissionLimits, AdmissionRequest, LimitKind, Window,
};

use super::*;

fn admission(id: &str, now: i64, limits: AdmissionLimits) -> AdmissionRequest {
    AdmissionRequest {
        request_id: id.to_owned(),
        user_sub: "user-1".to_owned(),
        client_id: "client-1".to_owned(),
        now,
        expires_at: now + 300 * SEC,
        limits,
    }
}

pub(super) async fn admissions_keep_windows_undecided_requests_and_blocks(s: Stores) {
    world(&s, 1).await;
    let a = &s.admissions;
    let per_user = AdmissionLimits {
        per_user: Some(Window {
            limit: 2,
            window_ms: 60 * SEC,
        }),
        ..AdmissionLimits::default()
    };
    assert_eq!(
        a.admit(&admission("w-1", T0, per_user)).await.unwrap(),
        Admission::Admitted
    );
    let second = admission("w-2", T0 + 10 * SEC, per_user);
    assert_eq!(a.admit(&second).await.unwrap(), Admission::Admitted);
    // Full: the slot frees when the first leaves the window.
    assert_eq!(
        a.admit(&admission("w-3", T0 + 20 * SEC, per_user))
            .await
            .unwrap(),
        Admission::Limited {
            kind: LimitKind::PerUser,
            retry_at: T0 + 60 * SEC
        }
    );
    assert_eq!(
        a.admit(&admission("w-3", T0 + 60 * SEC, per_user))
            .await
            .unwrap(),
        Admission::Admitted,
        "the refused one left no trace, the first left the window"
    );
    // A withdrawn admission frees its slot.
    a.withdraw_admission("w-3").await.unwrap();
    assert_eq!(
        a.admit(&admission("w-4", T0 + 61 * SEC, per_user))
            .await
            .unwrap(),
        Admission::Admitted
    );

    // Undecided: an admission counts while its request is unstored or pending and unexpired.
    let pending = AdmissionLimits {
        pending_per_user_client: Some(2),
        ..AdmissionLimits::default()
    };
    let t = T0 + HOUR;
    for id in ["p-1", "p-2"] {
        assert_eq!(
            a.admit(&admission(id, t, pending)).await.unwrap(),
            Admission::Admitted
        );
    }
    assert_eq!(
        a.admit(&admission("p-3", t, pending)).await.unwrap(),
        Admission::Limited {
            kind: LimitKind::PendingPerUserClient,
            retry_at: t + 300 * SEC
        }
    );
    // p-1 stored and decided: no longer undecided.
    start(&s, "p-1", &["device-1"], t).await;
    assert!(decide(&s, "p-1", "device-1", false, t + SEC).await);
    assert_eq!(
        a.admit(&admission("p-3", t + 2 * SEC, pending))
            .await
            .unwrap(),
        Admission::Admitted
    );

    // A block refuses the client until it ends, whatever the limits.
    let until = t + HOUR;
    a.block_client_for_user("user-1", "client-1", until, t)
        .await
        .unwrap();
    let none = AdmissionLimits::default();
    assert_eq!(
        a.admit(&admission("b-1", t + SEC, none)).await.unwrap(),
        Admission::Blocked { until }
    );
    let mut other = admission("b-2", t + SEC, none);
    other.client_id = "client-2".to_owned();
    assert_eq!(a.admit(&other).await.unwrap(), Admission::Admitted);
    assert_eq!(
        a.admit(&admission("b-3", until, none)).await.unwrap(),
        Admission::Admitted
    );
}

pub(super) async fn replacing_keeps_only_the_newest_undecided_request(s: Stores) {
    world(&s, 2).await;
    let devices = ["device-1", "device-2"];
    start(&s, "r-1", &devices, T0).await;
    start(&s, "r-2", &devices, T0 + SEC).await;
    start(&s, "r-3", &devices, T0 + 2 * SEC).await;
    // A decided request is not replaced.
    assert!(decide(&s, "r-1", "device-1", true, T0 + 3 * SEC).await);
    start(&s, "r-4", &devices, T0 + 4 * SEC).await;
    let now = T0 + 5 * SEC;
    let mut replaced = s
        .requests
        .replace_undecided("user-1", "client-1", now)
        .await
        .unwrap();
    replaced.sort();
    let both = vec!["device-1".to_owned(), "device-2".to_owned()];
    assert_eq!(
        replaced,
        vec![("r-2".to_owned(), both.clone()), ("r-3".to_owned(), both)]
    );
    for id in ["r-2", "r-3"] {
        let r = get_request(&s, id).await.unwrap();
        assert_eq!((r.expires_at, r.replaced_at), (now, Some(now)));
        assert_eq!(r.state, AuthRequestState::Pending);
        assert_eq!(
            challenge_state(&s, id, "device-2").await,
            ChallengeState::Closed
        );
    }
    assert_eq!(get_request(&s, "r-4").await.unwrap().replaced_at, None);
    assert_eq!(request_state(&s, "r-1").await, AuthRequestState::Approved);
    let shown: Vec<String> = pending(&s, "device-2", now)
        .await
        .into_iter()
        .map(|(_, r)| r.id)
        .collect();
    assert_eq!(shown, ["r-4"]);
    // Nothing left to replace; a decision on a replaced request is refused.
    let again = s.requests.replace_undecided("user-1", "client-1", now);
    assert!(again.await.unwrap().is_empty());
    assert!(!decide(&s, "r-2", "device-1", true, now + SEC).await);

    let listed = s.requests.user_requests("user-1", 3).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["r-4", "r-3", "r-2"]);
}

/// Two nodes admitting for one user at once: the limit holds across them.
pub(super) async fn admissions_hold_across_nodes(a: Arc<PgStore>, url: String) {
    let b = Arc::new(PgStore::open(&url).await.unwrap());
    let (node_a, node_b) = (
        Stores::from_backend(a.clone()),
        Stores::from_backend(b.clone()),
    );
    world(&node_a, 1).await;
    let limits = AdmissionLimits {
        per_user: Some(Window {
            limit: 5,
            window_ms: HOUR,
        }),
        pending_per_user_client: Some(4),
        ..AdmissionLimits::default()
    };
    let mut racing = Vec::new();
    for i in 0..24 {
        let store = if i % 2 == 0 { &node_a } else { &node_b }
            .admissions
            .clone();
        let req = admission(&format!("race-{i}"), T0 + i, limits);
        racing.push(tokio::spawn(
            async move { store.admit(&req).await.unwrap() },
        ));
    }
    let mut answers = Vec::new();
    for r in racing {
        answers.push(r.await.unwrap());
    }
    let admitted = answers
        .iter()
        .filter(|a| **a == Admission::Admitted)
        .count();
    assert_eq!(admitted, 4, "{answers:?}");
    assert!(answers.iter().all(|a| matches!(
        a,
        Admission::Admitted
            | Admission::Limited {
                kind: LimitKind::PendingPerUserClient,
                ..
            }
    )));
    b.close().await;
}

pub(super) async fn purge_removes_old_admissions_and_ended_blocks(s: Stores) {
    world(&s, 1).await;
    let a = &s.admissions;
    // Some limit, so that admissions are recorded.
    let none = AdmissionLimits {
        pending_per_user_client: Some(100),
        ..AdmissionLimits::default()
    };
    assert_eq!(
        a.admit(&admission("old", T0, none)).await.unwrap(),
        Admission::Admitted
    );
    let recent = admission("recent", T0 + 2 * HOUR, none);
    assert_eq!(a.admit(&recent).await.unwrap(), Admission::Admitted);
    a.block_client_for_user("user-1", "client-1", T0 + HOUR, T0)
        .await
        .unwrap();
    let mut other = admission("x", T0, none);
    other.client_id = "client-2".to_owned();
    a.block_client_for_user("user-1", "client-2", T0 + 4 * HOUR, T0)
        .await
        .unwrap();

    let purged = purge_at(&s, T0 + 2 * HOUR, HOUR, 10).await;
    assert_eq!((purged.admissions, purged.blocks), (1, 1));
    // The recent admission still counts; the live block still refuses.
    let per_user = AdmissionLimits {
        per_user: Some(Window {
            limit: 1,
            window_ms: HOUR,
        }),
        ..none
    };
    let next = admission("next", T0 + 2 * HOUR + SEC, per_user);
    assert!(matches!(
        a.admit(&next).await.unwrap(),
        Admission::Limited { .. }
    ));
    other.now = T0 + 2 * HOUR;
    assert!(matches!(
        a.admit(&other).await.unwrap(),
        Admission::Blocked { .. }
    ));
}
