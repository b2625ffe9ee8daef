//! Contract of the background purge: what expired before the grace period goes, with its
//! challenges, notification, push deliveries and device events, and used `jti`s past their
//! expiry; nothing alive, in its grace period or in flight; in bounded rounds to the end.

use super::*;

/// The purge's "now": ten hours after the fixtures' requests, which live five minutes.
const NOW: i64 = T0 + 10 * HOUR;

fn note(request: &str, at: i64, deadline: i64) -> Notification {
    Notification {
        id: format!("note-{request}"),
        auth_request_id: request.to_owned(),
        client_id: "client-1".to_owned(),
        kind: NotificationKind::Ping,
        payload: Some("{}".to_owned()),
        state: NotificationState::Pending,
        attempts: 0,
        next_attempt_at: at,
        deadline,
        last_error: None,
        created_at: at,
        delivered_at: None,
    }
}

async fn finish_push(s: &Stores, request: &str, device: &str, state: PushDeliveryState, at: i64) {
    let id = challenge_id(request, device);
    assert!(
        s.pushes
            .claim_push_delivery(&id, at, at + SEC)
            .await
            .unwrap()
    );
    let delivered = ["fcm".to_owned()];
    let finished = s.pushes.finish_push_delivery(&id, state, &delivered, None);
    finished.await.unwrap();
}

async fn push_row(s: &Stores, request: &str, device: &str) -> Option<PushDeliveryState> {
    let id = challenge_id(request, device);
    let row = s.pushes.get_push_delivery(&id).await.unwrap();
    row.map(|p| p.state)
}

async fn note_of(s: &Stores, request: &str) -> Option<NotificationState> {
    let n = s.outbox.get_notification(request).await.unwrap();
    n.map(|n| n.state)
}

async fn log_len(s: &Stores, device: &str) -> usize {
    let log = s.events.device_events_since(device, 0, 1000).await.unwrap();
    log.len()
}

pub(super) async fn purge_removes_what_expired_and_nothing_in_flight(s: Stores) {
    world(&s, 2).await;
    let both = ["device-1", "device-2"];
    // Expired hours before the grace period ends: undecided, redeemed (its pushes finished,
    // one done, one failed) and notified (its ping delivered).
    start(&s, "undecided", &both, T0).await;
    start(&s, "redeemed", &both, T0).await;
    finish_push(&s, "redeemed", "device-1", PushDeliveryState::Done, T0).await;
    finish_push(&s, "redeemed", "device-2", PushDeliveryState::Failed, T0).await;
    assert!(decide(&s, "redeemed", "device-1", true, T0 + SEC).await);
    assert!(s.requests.redeem("redeemed", T0 + 2 * SEC).await.unwrap());
    start(&s, "notified", &["device-1"], T0).await;
    let mut approval = decision("notified", "device-1", true, T0 + SEC);
    approval.notification = Some(note("notified", T0 + SEC, T0 + 300 * SEC));
    assert!(s.requests.record_decision(&approval).await.unwrap());
    let o = &s.outbox;
    assert!(
        o.claim_notification("note-notified", T0 + SEC, T0 + 2 * SEC)
            .await
            .unwrap()
    );
    let delivered = o.finish_notification(
        "note-notified",
        NotificationState::Delivered,
        T0 + 2 * SEC,
        None,
    );
    delivered.await.unwrap();
    // Expired as long ago, but its notification is still being retried: in flight.
    start(&s, "retrying", &["device-1"], T0).await;
    assert!(
        o.queue_notification(&note("retrying", T0, NOW + HOUR))
            .await
            .unwrap()
    );
    for (jti, expires_at) in [("spent", NOW - 1), ("at-exp", NOW), ("live", NOW + 1)] {
        assert!(
            s.replay
                .remember_jti("device", jti, expires_at)
                .await
                .unwrap()
        );
    }
    // Read once, so that the embedded store holds them in memory.
    for id in ["undecided", "redeemed", "notified", "retrying"] {
        assert!(get_request(&s, id).await.is_some());
    }

    let purged = purge_at(&s, NOW, HOUR, 1000).await;
    let expected = Purged {
        requests: 3,
        challenges: 5,
        notifications: 1,
        push_deliveries: 5,
        // 2 + 2 challenges, 1 closed, 1 + 1 challenges: all older than the grace period.
        device_events: 7,
        jtis: 2,
        // Requests, jtis, device events, refresh families, revoked access tokens, admissions,
        // blocks.
        rounds: 7,
        ..Purged::default()
    };
    assert_eq!(purged, expected);
    for id in ["undecided", "redeemed", "notified"] {
        assert_eq!(
            get_request(&s, id).await,
            None,
            "{id} is forgotten, cached or not"
        );
        assert_eq!(get_challenge(&s, id, "device-1").await, None);
        assert_eq!(push_row(&s, id, "device-1").await, None);
    }
    assert_eq!(get_challenge(&s, "redeemed", "device-2").await, None);
    assert_eq!(push_row(&s, "redeemed", "device-2").await, None);
    assert_eq!(note_of(&s, "notified").await, None);
    assert_eq!(
        (log_len(&s, "device-1").await, log_len(&s, "device-2").await),
        (0, 0)
    );

    assert_eq!(
        request_state(&s, "retrying").await,
        AuthRequestState::Pending
    );
    assert!(get_challenge(&s, "retrying", "device-1").await.is_some());
    assert_eq!(
        note_of(&s, "retrying").await,
        Some(NotificationState::Pending)
    );
    assert!(push_row(&s, "retrying", "device-1").await.is_some());
    assert!(
        s.replay
            .remember_jti("device", "spent", NOW + 60 * SEC)
            .await
            .unwrap()
    );
    assert!(
        s.replay
            .remember_jti("device", "at-exp", NOW + 60 * SEC)
            .await
            .unwrap()
    );
    assert!(
        !s.replay
            .remember_jti("device", "live", NOW + 60 * SEC)
            .await
            .unwrap(),
        "still used"
    );

    // Once its notification is given up, the retrying request goes too.
    let o = &s.outbox;
    let failed =
        o.finish_notification("note-retrying", NotificationState::Failed, NOW, Some("5xx"));
    failed.await.unwrap();
    let later = purge_at(&s, NOW + 1, HOUR, 1000).await;
    assert_eq!(
        (later.requests, later.notifications, later.push_deliveries),
        (1, 1, 1)
    );
    assert_eq!(get_request(&s, "retrying").await, None);
}

pub(super) async fn purge_keeps_what_is_in_grace_or_alive(s: Stores) {
    world(&s, 1).await;
    let device = ["device-1"];
    // Expired within the grace period, and at its very start (kept: "before", not "at").
    let in_grace = start(&s, "in-grace", &device, NOW - HOUR / 2 - 300 * SEC).await;
    start(&s, "at-edge", &device, NOW - HOUR - 300 * SEC).await;
    // Alive: pending, and approved but not yet redeemed.
    let live = start(&s, "live", &device, NOW - 10 * SEC).await;
    start(&s, "approved", &device, NOW - 10 * SEC).await;
    assert!(decide(&s, "approved", "device-1", true, NOW - 5 * SEC).await);

    // Only the oldest event goes: the log keeps what was written in the grace period.
    let purged = purge_at(&s, NOW, HOUR, 1000).await;
    assert_eq!((purged.rows(), purged.device_events), (1, 1), "{purged:?}");
    assert_eq!(get_request(&s, "in-grace").await, Some(in_grace.clone()));
    assert_eq!(
        request_state(&s, "at-edge").await,
        AuthRequestState::Pending
    );
    assert_eq!(request_state(&s, "live").await, AuthRequestState::Pending);
    assert_eq!(
        request_state(&s, "approved").await,
        AuthRequestState::Approved
    );
    assert_eq!(
        push_row(&s, "live", "device-1").await,
        Some(PushDeliveryState::Pending)
    );
    assert_eq!(
        pending(&s, "device-1", NOW).await.len(),
        1,
        "live's challenge"
    );
    assert_eq!(log_len(&s, "device-1").await, 3);

    // A grace period after the last expiry, nothing is left.
    let later = live.expires_at + HOUR + 1;
    let purged = purge_at(&s, later, HOUR, 1000).await;
    assert_eq!(
        (purged.requests, purged.challenges, purged.push_deliveries),
        (4, 4, 4)
    );
    assert_eq!(purged.device_events, 3);
    for id in ["in-grace", "at-edge", "live", "approved"] {
        assert_eq!(get_request(&s, id).await, None, "{id}");
    }
}

pub(super) async fn purge_runs_in_bounded_rounds_to_completion(s: Stores) {
    world(&s, 1).await;
    const BULK: i64 = 25;
    for i in 0..BULK {
        start(&s, &format!("bulk-{i:02}"), &["device-1"], T0 + i).await;
        let jti = format!("jti-{i:02}");
        assert!(s.replay.remember_jti("device", &jti, T0 + i).await.unwrap());
    }
    // Rounds of 7 rows: 7, 7, 7 and 4 of each kind.
    let purged = purge_at(&s, NOW, HOUR, 7).await;
    let all = u64::try_from(BULK).unwrap();
    let expected = Purged {
        requests: all,
        challenges: all,
        notifications: 0,
        push_deliveries: all,
        device_events: all,
        jtis: all,
        // Four rounds for each of three kinds; one (empty) each for refresh families, revoked
        // access tokens, admissions and blocks.
        rounds: 3 * 4 + 4,
        ..Purged::default()
    };
    assert_eq!(purged, expected);
    for i in 0..BULK {
        assert_eq!(get_request(&s, &format!("bulk-{i:02}")).await, None);
    }
    let again = purge_at(&s, NOW, HOUR, 7).await;
    assert_eq!(
        (again.rows(), again.rounds),
        (0, 7),
        "one short round of each"
    );
}
