//! Contract of the device side of delivery: the event log a request and its decision write,
//! and the push queue (one row per challenge, leased, retried, finished).

use super::*;

async fn events(s: &Stores, device: &str, after: i64) -> Vec<(i64, DeviceEventKind, String)> {
    let log = s
        .events
        .device_events_since(device, after, 100)
        .await
        .unwrap();
    log.into_iter()
        .map(|e| (e.seq, e.kind, e.challenge_id))
        .collect()
}

pub(super) async fn a_request_and_its_decision_write_each_devices_log(s: Stores) {
    world(&s, 2).await;
    assert_eq!(s.events.latest_device_event("device-1").await.unwrap(), 0);
    start(&s, "req-1", &["device-1", "device-2"], T0).await;
    let on_1 = events(&s, "device-1", 0).await;
    assert_eq!(on_1.len(), 1);
    assert_eq!(
        (on_1[0].1, on_1[0].2.as_str()),
        (
            DeviceEventKind::Challenge,
            challenge_id("req-1", "device-1").as_str()
        )
    );
    let first_seq = on_1[0].0;
    assert_eq!(
        s.events.latest_device_event("device-1").await.unwrap(),
        first_seq
    );

    // Device 2 decides: only device 1 is told its challenge closed.
    assert!(
        s.requests
            .record_decision(&decision("req-1", "device-2", true, T0 + SEC))
            .await
            .unwrap()
    );
    let after = events(&s, "device-1", first_seq).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].1, DeviceEventKind::ChallengeClosed);
    assert!(after[0].0 > first_seq, "sequence numbers grow");
    let on_2 = events(&s, "device-2", 0).await;
    assert_eq!(
        on_2.iter().map(|e| e.1).collect::<Vec<_>>(),
        [DeviceEventKind::Challenge]
    );

    // A losing decision writes nothing.
    assert!(
        !s.requests
            .record_decision(&decision("req-1", "device-1", false, T0 + 2 * SEC))
            .await
            .unwrap()
    );
    assert_eq!(events(&s, "device-1", 0).await.len(), 2);

    let challenges = s.requests.request_challenges("req-1").await.unwrap();
    assert_eq!(challenges.len(), 2);
    let purged = purge_at(&s, T0 + 10 * SEC, 0, 1000).await;
    assert_eq!((purged.device_events, purged.requests), (3, 0));
    assert!(events(&s, "device-1", 0).await.is_empty());
}

pub(super) async fn the_push_queue_leases_retries_and_finishes(s: Stores) {
    world(&s, 2).await;
    let req = start(&s, "req-1", &["device-1", "device-2"], T0).await;
    let q = &s.pushes;
    let due = q.due_push_deliveries(T0, 10).await.unwrap();
    assert_eq!(due.len(), 2, "one delivery per challenge, due at once");
    let c1 = challenge_id("req-1", "device-1");
    let c2 = challenge_id("req-1", "device-2");
    let row = q.get_push_delivery(&c1).await.unwrap().unwrap();
    assert_eq!(
        (row.state.as_str(), row.deadline, row.attempts),
        ("pending", req.expires_at, 0)
    );

    // One worker wins the lease; the row is not due until it runs out.
    assert!(q.claim_push_delivery(&c1, T0, T0 + 30 * SEC).await.unwrap());
    assert!(!q.claim_push_delivery(&c1, T0, T0 + 30 * SEC).await.unwrap());
    assert_eq!(q.due_push_deliveries(T0 + SEC, 10).await.unwrap().len(), 1);

    q.retry_push_delivery(&c1, T0 + 2 * SEC, &["fcm".to_owned()], "apns: 503")
        .await
        .unwrap();
    let row = q.get_push_delivery(&c1).await.unwrap().unwrap();
    assert_eq!(
        (
            row.attempts,
            row.delivered.clone(),
            row.last_error.as_deref()
        ),
        (1, vec!["fcm".to_owned()], Some("apns: 503"))
    );
    assert_eq!(q.next_push_delivery_at().await.unwrap(), Some(T0));
    assert!(q.claim_push_delivery(&c2, T0, T0 + 30 * SEC).await.unwrap());
    q.finish_push_delivery(&c2, PushDeliveryState::Done, &[], None)
        .await
        .unwrap();
    assert_eq!(q.next_push_delivery_at().await.unwrap(), Some(T0 + 2 * SEC));

    assert!(
        q.claim_push_delivery(&c1, T0 + 2 * SEC, T0 + 40 * SEC)
            .await
            .unwrap()
    );
    q.finish_push_delivery(
        &c1,
        PushDeliveryState::Done,
        &["fcm".to_owned(), "apns".to_owned()],
        None,
    )
    .await
    .unwrap();
    // Finished rows stay finished.
    q.retry_push_delivery(&c1, T0, &[], "late").await.unwrap();
    let row = q.get_push_delivery(&c1).await.unwrap().unwrap();
    assert_eq!((row.state.as_str(), row.attempts), ("done", 2));
    assert_eq!(q.next_push_delivery_at().await.unwrap(), None);
    assert!(
        q.due_push_deliveries(T0 + 60 * SEC, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
