//! Contract of writes under load and of reads that follow them: concurrent writers (which the
//! embedded store commits together), a failing write that fails alone, every read seeing a
//! write once it was acknowledged (the embedded store answers hot reads from memory), and
//! push-queue rows only for devices that are pushed to.

use super::*;

pub(super) async fn a_failing_write_among_concurrent_ones_fails_alone(s: Stores) {
    // User 0 is stored first; then fifty users at once, of whom number 25 reuses user 0's
    // e-mail. (Stored first, so that the conflict cannot fall on another of the fifty: on
    // PostgreSQL the concurrent inserts commit in any order.) On SQLite the fifty share commits.
    s.users.insert_user(&user("user-0", 0)).await.unwrap();
    let writes = (1..=50u32).map(|n| {
        let s = s.clone();
        async move {
            let mut u = user(&format!("user-{n}"), n);
            if n == 25 {
                u.email = Some("user0@example.com".to_owned());
            }
            (n, s.users.insert_user(&u).await)
        }
    });
    let results = futures_util::future::join_all(writes).await;
    for (n, result) in &results {
        if *n == 25 {
            assert!(is_conflict(result), "user 25 must conflict: {result:?}");
        } else {
            assert!(result.is_ok(), "user {n} failed: {result:?}");
        }
    }
    let users = s.users.list_users().await.unwrap();
    assert_eq!(users.len(), 50);
    assert!(!users.iter().any(|u| u.sub == "user-25"));
}

pub(super) async fn concurrent_requests_are_all_stored(s: Stores) {
    world(&s, 2).await;
    let ids: Vec<String> = (0..200).map(|n| format!("req-{n}")).collect();
    let writes = ids.iter().map(|id| {
        let s = s.clone();
        async move { start(&s, id, &["device-1", "device-2"], T0).await }
    });
    futures_util::future::join_all(writes).await;
    for id in &ids {
        assert_eq!(get_request(&s, id).await, Some(request(id, T0)));
        assert_eq!(
            s.requests.request_challenges(id).await.unwrap().len(),
            2,
            "{id}"
        );
    }
    assert_eq!(pending(&s, "device-1", T0 + SEC).await.len(), 200);
}

pub(super) async fn reads_see_acknowledged_writes(s: Stores) {
    world(&s, 1).await;
    // Read everything once (the embedded store now holds it in memory), then change it.
    assert!(
        !s.clients
            .get_client("client-1")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    let by_email = UserLookup::Email("user1@example.com".to_owned());
    assert!(
        !s.users
            .find_user(&by_email)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(!s.users.get_user("user-1").await.unwrap().unwrap().disabled);
    assert_eq!(s.devices.list_devices("user-1").await.unwrap().len(), 1);
    assert!(
        !s.devices
            .get_device("device-1")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    start(&s, "req-1", &["device-1"], T0).await;
    assert_eq!(request_state(&s, "req-1").await, AuthRequestState::Pending);

    assert!(
        s.clients
            .set_client_disabled("client-1", true)
            .await
            .unwrap()
    );
    assert!(
        s.clients
            .get_client("client-1")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(s.users.set_user_disabled("user-1", true).await.unwrap());
    assert!(
        s.users
            .find_user(&by_email)
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(s.users.get_user("user-1").await.unwrap().unwrap().disabled);
    enrol(&s, "user-1", "device-2", T0 + 10).await;
    assert_eq!(s.devices.list_devices("user-1").await.unwrap().len(), 2);
    let push = PushRegistration {
        apns_token: Some("apns-token".to_owned()),
        ..PushRegistration::default()
    };
    assert!(s.devices.set_device_push("device-1", &push).await.unwrap());
    assert_eq!(
        s.devices
            .get_device("device-1")
            .await
            .unwrap()
            .unwrap()
            .push,
        push
    );
    assert!(
        s.devices
            .set_device_disabled("device-1", true, T0 + SEC)
            .await
            .unwrap()
    );
    assert!(
        s.devices
            .get_device("device-1")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(s.devices.list_devices("user-1").await.unwrap()[0].disabled);

    // A request read (and polled) before its decision answers with the decision after it.
    start(&s, "req-2", &["device-2"], T0).await;
    s.requests.record_poll("req-2", T0, 5).await.unwrap();
    assert!(decide(&s, "req-2", "device-2", true, T0 + SEC).await);
    let decided = get_request(&s, "req-2").await.unwrap();
    assert_eq!(decided.state, AuthRequestState::Approved);
    assert!(s.requests.redeem("req-2", T0 + 2 * SEC).await.unwrap());
    assert_eq!(request_state(&s, "req-2").await, AuthRequestState::Redeemed);
    assert!(!s.requests.redeem("req-2", T0 + 3 * SEC).await.unwrap());
}

pub(super) async fn push_rows_only_for_devices_that_are_pushed_to(s: Stores) {
    world(&s, 2).await;
    let req = request("req-1", T0);
    let challenges = [
        challenge("req-1", "device-1", T0),
        challenge("req-1", "device-2", T0),
    ];
    let pushed = ["device-2".to_owned()];
    s.requests
        .create_auth_request(&req, &challenges, &pushed)
        .await
        .unwrap();
    let one = challenge_id("req-1", "device-1");
    let two = challenge_id("req-1", "device-2");
    assert!(s.pushes.get_push_delivery(&one).await.unwrap().is_none());
    assert!(s.pushes.get_push_delivery(&two).await.unwrap().is_some());
    let due = s.pushes.due_push_deliveries(T0, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|d| d.challenge_id.as_str())
            .collect::<Vec<_>>(),
        [two.as_str()]
    );
    // Both devices still see their challenge and have it in their event log.
    assert_eq!(pending(&s, "device-1", T0).await.len(), 1);
    assert_eq!(
        s.events
            .device_events_since("device-1", 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}
