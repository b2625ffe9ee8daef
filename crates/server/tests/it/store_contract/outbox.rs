//! Contract of the notification outbox: queued with the winning decision only, at most one per
//! request, leased to one worker at a time, retried and finished, push tokens attached once.

use super::*;

fn notification(request: &str, kind: NotificationKind, at: i64) -> Notification {
    Notification {
        id: format!("note-{request}"),
        auth_request_id: request.to_owned(),
        client_id: "client-1".to_owned(),
        kind,
        payload: None,
        state: NotificationState::Pending,
        attempts: 0,
        next_attempt_at: at,
        deadline: at + 300 * SEC,
        last_error: None,
        created_at: at,
        delivered_at: None,
    }
}

async fn decide_with(s: &Stores, request: &str, device: &str, at: i64) -> bool {
    let mut decision = decision(request, device, true, at);
    decision.notification = Some(notification(request, NotificationKind::PushTokens, at));
    decision.notification.as_mut().unwrap().id = format!("note-{request}-{device}");
    s.requests.record_decision(&decision).await.unwrap()
}

async fn get_note(s: &Stores, request: &str) -> Option<Notification> {
    s.outbox.get_notification(request).await.unwrap()
}

async fn due(s: &Stores, now: i64) -> Vec<String> {
    let due = s.outbox.due_notifications(now, 10).await.unwrap();
    due.into_iter().map(|n| n.id).collect()
}

pub(super) async fn only_the_winning_decision_queues_its_notification(s: Stores) {
    world(&s, 2).await;
    start(&s, "req-1", &["device-1", "device-2"], T0).await;

    assert!(decide_with(&s, "req-1", "device-2", T0 + SEC).await);
    assert!(!decide_with(&s, "req-1", "device-1", T0 + 2 * SEC).await);
    let queued = get_note(&s, "req-1").await.unwrap();
    assert_eq!(
        queued.id, "note-req-1-device-2",
        "the loser's is rolled back"
    );
    assert_eq!(queued.kind, NotificationKind::PushTokens);

    // At most one per request.
    let again = notification("req-1", NotificationKind::PushError, T0);
    assert!(!s.outbox.queue_notification(&again).await.unwrap());
    assert_eq!(get_note(&s, "req-1").await, Some(queued));
    assert_eq!(get_note(&s, "nope").await, None);
}

pub(super) async fn claims_lease_a_notification_to_one_worker(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    let note = notification("req-1", NotificationKind::Ping, T0 + SEC);
    assert!(s.outbox.queue_notification(&note).await.unwrap());
    assert_eq!(due(&s, T0).await, Vec::<String>::new(), "not yet due");
    assert_eq!(due(&s, T0 + SEC).await, ["note-req-1"]);

    let lease_until = T0 + 31 * SEC;
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let claim = s
                    .outbox
                    .claim_notification("note-req-1", T0 + SEC, lease_until);
                claim.await.unwrap()
            })
        })
        .collect();
    let mut claims = 0;
    for worker in workers {
        claims += usize::from(worker.await.unwrap());
    }
    assert_eq!(claims, 1, "one worker per attempt");
    assert!(due(&s, lease_until - 1).await.is_empty(), "leased");
    let leased = get_note(&s, "req-1").await.unwrap();
    assert_eq!((leased.attempts, leased.next_attempt_at), (1, lease_until));

    // A crashed worker's lease runs out; the next claim counts a second attempt.
    assert_eq!(due(&s, lease_until).await, ["note-req-1"]);
    let claim = s
        .outbox
        .claim_notification("note-req-1", lease_until, lease_until + SEC);
    assert!(claim.await.unwrap());
    assert_eq!(get_note(&s, "req-1").await.unwrap().attempts, 2);
}

pub(super) async fn retries_reschedule_and_finished_notifications_stay_finished(s: Stores) {
    world(&s, 1).await;
    for (id, at) in [("req-b", T0 + 2 * SEC), ("req-a", T0 + SEC)] {
        start(&s, id, &["device-1"], T0).await;
        let note = notification(id, NotificationKind::Ping, at);
        assert!(s.outbox.queue_notification(&note).await.unwrap());
    }
    assert_eq!(
        due(&s, T0 + 5 * SEC).await,
        ["note-req-a", "note-req-b"],
        "oldest first"
    );
    let first_only = s.outbox.due_notifications(T0 + 5 * SEC, 1).await.unwrap();
    assert_eq!(first_only.len(), 1, "limit");
    assert_eq!(
        s.outbox.next_notification_at().await.unwrap(),
        Some(T0 + SEC)
    );

    s.outbox
        .retry_notification("note-req-a", T0 + 60 * SEC, "HTTP 503")
        .await
        .unwrap();
    let retried = get_note(&s, "req-a").await.unwrap();
    assert_eq!(retried.next_attempt_at, T0 + 60 * SEC);
    assert_eq!(retried.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(
        s.outbox.next_notification_at().await.unwrap(),
        Some(T0 + 2 * SEC)
    );

    let delivered = NotificationState::Delivered;
    s.outbox
        .finish_notification("note-req-b", delivered, T0 + 3 * SEC, None)
        .await
        .unwrap();
    let done = get_note(&s, "req-b").await.unwrap();
    assert_eq!(
        (done.state, done.delivered_at),
        (delivered, Some(T0 + 3 * SEC))
    );
    let failed = NotificationState::Failed;
    s.outbox
        .finish_notification("note-req-b", failed, T0 + 4 * SEC, Some("late"))
        .await
        .unwrap();
    assert_eq!(
        get_note(&s, "req-b").await.unwrap().state,
        delivered,
        "final"
    );
    let claim = s
        .outbox
        .claim_notification("note-req-b", T0 + 5 * SEC, T0 + 9 * SEC);
    assert!(!claim.await.unwrap());

    assert_eq!(due(&s, T0 + 59 * SEC).await, Vec::<String>::new());
    assert_eq!(due(&s, T0 + 60 * SEC).await, ["note-req-a"]);
    s.outbox
        .finish_notification("note-req-a", failed, T0 + 61 * SEC, Some("gone"))
        .await
        .unwrap();
    assert_eq!(s.outbox.next_notification_at().await.unwrap(), None);
}

pub(super) async fn push_tokens_are_attached_once_and_redeem_the_request(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    assert!(decide_with(&s, "req-1", "device-1", T0 + SEC).await);
    let note_id = "note-req-1-device-1";

    let attach = |payload: &'static str| {
        let s = s.clone();
        async move {
            s.outbox
                .attach_push_tokens(note_id, "req-1", payload, T0 + 2 * SEC)
                .await
        }
    };
    assert!(attach("{\"access_token\":\"first\"}").await.unwrap());
    assert!(
        !attach("{\"access_token\":\"second\"}").await.unwrap(),
        "redeemed"
    );
    let note = get_note(&s, "req-1").await.unwrap();
    assert_eq!(
        note.payload.as_deref(),
        Some("{\"access_token\":\"first\"}")
    );
    assert_eq!(request_state(&s, "req-1").await, AuthRequestState::Redeemed);
    assert!(
        !s.requests.redeem("req-1", T0 + 3 * SEC).await.unwrap(),
        "tokens went out once"
    );
}

pub(super) async fn expired_push_requests_are_found_until_notified(s: Stores) {
    world(&s, 1).await;
    let mut push = request("push", T0);
    push.delivery_mode = DeliveryMode::Push;
    push.auth_req_id = Some("handle".to_owned());
    let created = s.requests.create_auth_request(&push, &[], &[]).await;
    created.unwrap();
    start(&s, "poll", &["device-1"], T0).await;
    let expired = |now: i64| {
        let s = s.clone();
        async move {
            let found = s.outbox.expired_unnotified_push(now).await.unwrap();
            found.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };

    assert!(expired(push.expires_at - 1).await.is_empty(), "still alive");
    assert_eq!(expired(push.expires_at).await, ["push"]);
    let notice = notification("push", NotificationKind::PushError, push.expires_at);
    assert!(s.outbox.queue_notification(&notice).await.unwrap());
    assert!(expired(push.expires_at).await.is_empty(), "told once");

    // The notice keeps its request while it may still be sent; then the purge takes both.
    let sending = purge_at(&s, push.expires_at + 1, 0, 1000).await;
    assert_eq!(
        (sending.requests, sending.notifications),
        (1, 0),
        "only the poll one"
    );
    assert!(get_note(&s, "push").await.is_some());
    let purged = purge_at(&s, notice.deadline + 1, 0, 1000).await;
    assert_eq!((purged.requests, purged.notifications), (1, 1));
    assert_eq!(get_note(&s, "push").await, None);
    assert_eq!(get_request(&s, "push").await, None);
}
