//! Contract of the auth-request store: atomic creation, poll gating with slow_down, single
//! redemption, first-decision-wins under concurrency and pending-challenge listing.

use super::*;

pub(super) async fn auth_request_and_challenges_round_trip(s: Stores) {
    world(&s, 2).await;
    let mut req = request("req-1", T0);
    req.acr_values = Some("urn:acr:high".to_owned());
    req.authorization_details = Some(json!([{"type": "payment_initiation", "amount": "10.00"}]));
    req.delivery_mode = DeliveryMode::Push;
    req.client_notification_token = Some("notify-me".to_owned());
    req.auth_req_id = Some("the-handle-a-push-client-is-sent".to_owned());
    let challenges = [
        challenge("req-1", "device-1", T0),
        challenge("req-1", "device-2", T0),
    ];
    let pushed = ["device-1".to_owned(), "device-2".to_owned()];
    let created = s
        .requests
        .create_auth_request(&req, &challenges, &pushed)
        .await;
    created.unwrap();

    assert_eq!(get_request(&s, "req-1").await, Some(req.clone()));
    assert_eq!(get_request(&s, "nope").await, None);
    for c in &challenges {
        let got = get_challenge(&s, "req-1", &c.device_id).await;
        assert_eq!(got, Some((c.clone(), req.clone())));
    }
    assert_eq!(get_challenge(&s, "nope", "device-1").await, None);
}

pub(super) async fn auth_request_creation_is_atomic(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    // The second challenge reuses an id: nothing of req-2 may remain.
    let req = request("req-2", T0);
    let clash = [
        challenge("req-2", "device-1", T0),
        challenge("req-1", "device-1", T0),
    ];
    let result = s.requests.create_auth_request(&req, &clash, &[]).await;
    assert!(result.is_err());
    assert_eq!(get_request(&s, "req-2").await, None);
    assert_eq!(get_challenge(&s, "req-2", "device-1").await, None);
}

pub(super) async fn polls_slow_down_with_growing_interval(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    let poll = |at: i64| {
        let s = s.clone();
        async move { s.requests.record_poll("req-1", at, 5).await.unwrap() }
    };
    let slow = |interval_secs| PollGate::SlowDown { interval_secs };
    let allowed = PollGate::Allowed;

    assert_eq!(poll(T0).await, allowed, "the first poll is always allowed");
    assert_eq!(poll(T0 + 5 * SEC).await, allowed, "one interval later");
    assert_eq!(poll(T0 + 6 * SEC).await, slow(10));
    // The interval now runs from the too-early poll, and is 10 s.
    assert_eq!(poll(T0 + 15 * SEC).await, slow(15));
    assert_eq!(poll(T0 + 30 * SEC - 1).await, slow(20));
    assert_eq!(poll(T0 + 50 * SEC - 1).await, allowed);
    assert_eq!(poll(T0 + 70 * SEC - 2).await, slow(25));

    let stored = get_request(&s, "req-1").await.unwrap();
    assert_eq!(stored.interval_secs, 25);
    assert_eq!(stored.last_polled_at, Some(T0 + 70 * SEC - 2));

    // A request that is no longer pending is not gated (the domain answers from its state).
    assert!(decide(&s, "req-1", "device-1", true, T0 + 71 * SEC).await);
    assert_eq!(poll(T0 + 71 * SEC).await, allowed);
    let unknown = s.requests.record_poll("nope", T0, 5).await;
    assert_eq!(unknown.unwrap(), allowed);
}

pub(super) async fn redeem_succeeds_once_and_only_after_approval(s: Stores) {
    world(&s, 1).await;
    for id in ["approved", "denied", "pending"] {
        start(&s, id, &["device-1"], T0).await;
    }
    assert!(decide(&s, "approved", "device-1", true, T0 + SEC).await);
    assert!(decide(&s, "denied", "device-1", false, T0 + SEC).await);
    let redeem = |id: &'static str| {
        let s = s.clone();
        async move { s.requests.redeem(id, T0 + 2 * SEC).await.unwrap() }
    };

    assert!(redeem("approved").await);
    assert!(!redeem("approved").await, "spent");
    let spent = get_request(&s, "approved").await.unwrap();
    assert_eq!(spent.state, AuthRequestState::Redeemed);
    assert_eq!(spent.redeemed_at, Some(T0 + 2 * SEC));

    assert!(!redeem("denied").await);
    assert!(!redeem("pending").await);
    assert!(!redeem("nope").await);
    assert_eq!(request_state(&s, "denied").await, AuthRequestState::Denied);
    let pending = request_state(&s, "pending").await;
    assert_eq!(pending, AuthRequestState::Pending);
}

pub(super) async fn concurrent_redeems_succeed_exactly_once(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    assert!(decide(&s, "req-1", "device-1", true, T0 + SEC).await);

    let polls: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.requests.redeem("req-1", T0 + 2 * SEC + i).await })
        })
        .collect();
    let mut winners = 0;
    for poll in polls {
        winners += usize::from(poll.await.unwrap().unwrap());
    }
    assert_eq!(winners, 1, "tokens are issued once per approval");
    assert_eq!(request_state(&s, "req-1").await, AuthRequestState::Redeemed);
}

pub(super) async fn first_decision_wins(s: Stores) {
    world(&s, 2).await;
    start(&s, "req-1", &["device-1", "device-2"], T0).await;

    assert!(decide(&s, "req-1", "device-2", false, T0 + 10 * SEC).await);
    let approve = decide(&s, "req-1", "device-1", true, T0 + 11 * SEC);
    assert!(!approve.await, "the other device lost");
    let again = decide(&s, "req-1", "device-2", false, T0 + 12 * SEC);
    assert!(!again.await, "a challenge decides once");

    let (winner, req) = get_challenge(&s, "req-1", "device-2").await.unwrap();
    assert_eq!(winner.state, ChallengeState::Denied);
    assert_eq!(winner.decided_at, Some(T0 + 10 * SEC));
    assert_eq!(winner.decision_jws.as_deref(), Some("jws-of-device-2"));
    assert_eq!(req.state, AuthRequestState::Denied);
    assert_eq!(req.decided_at, Some(T0 + 10 * SEC));
    assert!(req.user_verified);
    let (loser, _) = get_challenge(&s, "req-1", "device-1").await.unwrap();
    assert_eq!(loser.state, ChallengeState::Closed);
    assert_eq!(loser.decision_jws, None);
}

pub(super) async fn concurrent_decisions_on_one_request_have_one_winner(s: Stores) {
    const DEVICES: [&str; 4] = ["device-1", "device-2", "device-3", "device-4"];
    // Even-numbered racers approve, odd ones deny.
    let approves = |device: &str| DEVICES.iter().position(|d| *d == device).unwrap() % 2 == 0;
    world(&s, 4).await;
    for round in 0..5 {
        let id = format!("req-{round}");
        start(&s, &id, &DEVICES, T0).await;
        let racers: Vec<_> = DEVICES
            .iter()
            .map(|device| {
                let (s, id) = (s.clone(), id.clone());
                let won = async move { decide(&s, &id, device, approves(device), T0 + SEC).await };
                tokio::spawn(async move { (*device, won.await) })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (device, won) = racer.await.unwrap();
            if won {
                winners.push(device);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let winner = winners[0];
        let (request, challenge) = match approves(winner) {
            true => (AuthRequestState::Approved, ChallengeState::Approved),
            false => (AuthRequestState::Denied, ChallengeState::Denied),
        };
        assert_eq!(request_state(&s, &id).await, request);
        for device in DEVICES {
            let expected = if device == winner {
                challenge
            } else {
                ChallengeState::Closed
            };
            let state = challenge_state(&s, &id, device).await;
            assert_eq!(state, expected, "round {round}, {device}");
        }
    }
}

pub(super) async fn decisions_need_the_right_device_a_pending_challenge_and_time(s: Stores) {
    world(&s, 2).await;
    let req = start(&s, "req-1", &["device-1"], T0).await;

    // device-2 signs for device-1's challenge.
    let mut forged = decision("req-1", "device-1", true, T0 + SEC);
    forged.device_id = "device-2".to_owned();
    assert!(!s.requests.record_decision(&forged).await.unwrap());
    // No such challenge.
    assert!(!decide(&s, "req-1", "device-2", true, T0 + SEC).await);
    // At the expiry instant the request is expired (CIBA Core §11 `expired_token`).
    assert!(!decide(&s, "req-1", "device-1", true, req.expires_at).await);

    assert_eq!(get_request(&s, "req-1").await, Some(req.clone()));
    let state = challenge_state(&s, "req-1", "device-1").await;
    assert_eq!(state, ChallengeState::Pending);
    assert!(decide(&s, "req-1", "device-1", true, req.expires_at - 1).await);
}

pub(super) async fn pending_challenges_leave_out_expired_and_decided(s: Stores) {
    world(&s, 2).await;
    let now = T0 + 400 * SEC;
    let both = ["device-1", "device-2"];
    let stale = start(&s, "stale", &["device-1"], T0).await; // expires at T0 + 300 s
    let second = start(&s, "second", &both, now - 10 * SEC).await;
    let first = start(&s, "first", &["device-1"], now - 20 * SEC).await;
    start(&s, "decided", &both, now - 30 * SEC).await;
    start(&s, "elsewhere", &["device-2"], now - 40 * SEC).await;
    assert!(decide(&s, "decided", "device-2", true, now - SEC).await);

    let listed = pending(&s, "device-1", now).await;
    let ids: Vec<_> = listed.iter().map(|(c, _)| c.id.as_str()).collect();
    assert_eq!(ids, ["first/device-1", "second/device-1"], "oldest first");
    let first_challenge = challenge("first", "device-1", first.created_at);
    assert_eq!(listed[0], (first_challenge, first));
    assert_eq!(listed[1].1, second);

    let earlier = pending(&s, "device-1", stale.expires_at - 1).await;
    assert_eq!(earlier.len(), 3, "the stale request counts while it lives");
    assert!(pending(&s, "device-9", now).await.is_empty());
}
