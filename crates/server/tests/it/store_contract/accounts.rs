//! Contract of the client, user and device stores: round trips, unique identifiers, lookups
//! by login hint, single-use enrolment codes, and disabling.

use super::*;

pub(super) async fn clients_round_trip_list_and_disable(s: Stores) {
    let plain = client("client-b", T0 + 2);
    let mut full = client("client-a", T0 + 1);
    full.auth_method = ClientAuthMethod::PrivateKeyJwt;
    full.secret_hash = None;
    full.jwks = Some(Jwks {
        keys: vec![ec_jwk("client-key")],
    });
    full.jwks_uri = Some("https://rp.example/jwks".to_owned());
    full.delivery_mode = DeliveryMode::Ping;
    full.notification_endpoint = Some("https://rp.example/cb".to_owned());
    full.request_signing_alg = Some(Algorithm::PS256);
    full.user_code_required = true;
    full.id_token_signing_alg = Algorithm::EdDSA;
    full.id_token_encryption = Some(IdTokenEncryption {
        alg: KeyManagementAlg::EcdhEsA256Kw,
        enc: ContentEncryptionAlg::A256CbcHs512,
    });
    let c = &s.clients;
    c.insert_client(&plain).await.unwrap();
    c.insert_client(&full).await.unwrap();

    assert_eq!(
        c.get_client("client-a").await.unwrap().as_ref(),
        Some(&full)
    );
    assert_eq!(
        c.get_client("client-b").await.unwrap().as_ref(),
        Some(&plain)
    );
    assert_eq!(c.get_client("nope").await.unwrap(), None);
    let duplicate = client("client-a", T0);
    assert!(is_conflict(&c.insert_client(&duplicate).await));
    // Oldest first.
    let all = c.list_clients().await.unwrap();
    assert_eq!(all, [full.clone(), plain]);

    assert!(c.set_client_disabled("client-a", true).await.unwrap());
    assert!(c.get_client("client-a").await.unwrap().unwrap().disabled);
    assert!(c.set_client_disabled("client-a", false).await.unwrap());
    assert_eq!(c.get_client("client-a").await.unwrap(), Some(full));
    assert!(!c.set_client_disabled("nope", true).await.unwrap());
}

fn without_identifiers(mut user: User) -> User {
    user.email = None;
    user.nric = None;
    user.username = None;
    user.phone = None;
    user
}

pub(super) async fn users_round_trip_list_and_disable(s: Stores) {
    let first = user("user-1", 1);
    let mut bare = without_identifiers(user("user-2", 2));
    bare.claims = serde_json::Map::new();
    bare.user_code_hash = Some("cd".repeat(32));
    let u = &s.users;
    u.insert_user(&bare).await.unwrap();
    u.insert_user(&first).await.unwrap();

    assert_eq!(u.get_user("user-1").await.unwrap().as_ref(), Some(&first));
    assert_eq!(u.get_user("user-2").await.unwrap().as_ref(), Some(&bare));
    assert_eq!(u.get_user("nope").await.unwrap(), None);
    assert_eq!(u.list_users().await.unwrap(), [first, bare]);

    assert!(u.set_user_disabled("user-2", true).await.unwrap());
    assert!(u.get_user("user-2").await.unwrap().unwrap().disabled);
    assert!(!u.set_user_disabled("nope", true).await.unwrap());
}

pub(super) async fn user_identifiers_are_unique(s: Stores) {
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    let taken = user("user-1", 1);
    for what in ["sub", "email", "nric", "username", "phone"] {
        let mut other = user("user-2", 2);
        match what {
            "sub" => other.sub.clone_from(&taken.sub),
            "email" => other.email.clone_from(&taken.email),
            "nric" => other.nric.clone_from(&taken.nric),
            "username" => other.username.clone_from(&taken.username),
            _ => other.phone.clone_from(&taken.phone),
        }
        let result = s.users.insert_user(&other).await;
        let Err(StoreError::Conflict(message)) = result else {
            panic!("duplicate {what} must be a Conflict: {result:?}");
        };
        // Names the field on both backends, never the value.
        if what != "sub" {
            assert_eq!(message, format!("users.{what} is taken"));
        }
    }
    assert_eq!(s.users.list_users().await.unwrap().len(), 1);

    // Absent identifiers do not collide with each other.
    for (n, sub) in [(3, "user-3"), (4, "user-4")] {
        let bare = without_identifiers(user(sub, n));
        s.users.insert_user(&bare).await.unwrap();
    }
    assert_eq!(s.users.list_users().await.unwrap().len(), 3);
}

pub(super) async fn find_user_by_each_hint_kind(s: Stores) {
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    let two = user("user-2", 2);
    s.users.insert_user(&two).await.unwrap();
    let found = |lookup: UserLookup| {
        let s = s.clone();
        async move { s.users.find_user(&lookup).await.unwrap().map(|u| u.sub) }
    };
    let field = |value: &Option<String>| value.clone().unwrap();
    let two_sub = Some("user-2".to_owned());

    assert_eq!(found(UserLookup::Sub("user-2".into())).await, two_sub);
    assert_eq!(found(UserLookup::Nric(field(&two.nric))).await, two_sub);
    assert_eq!(found(UserLookup::Email(field(&two.email))).await, two_sub);
    let username = UserLookup::Username(field(&two.username));
    assert_eq!(found(username).await, two_sub);
    assert_eq!(found(UserLookup::Phone(field(&two.phone))).await, two_sub);
    let one = found(UserLookup::Email("user1@example.com".into())).await;
    assert_eq!(one.as_deref(), Some("user-1"));
    // Exact matches only: the domain normalises before asking.
    let shouted = UserLookup::Email("USER2@EXAMPLE.COM".into());
    assert_eq!(found(shouted).await, None);
    assert_eq!(found(UserLookup::Username("user-2".into())).await, None);
    assert_eq!(found(UserLookup::Nric("S9999999Z".into())).await, None);
}

async fn add_enrolment(s: &Stores, code: &str, user_sub: &str, expires_at: i64) {
    let enrolment = enrolment(code, user_sub, expires_at);
    s.devices.insert_enrolment(&enrolment).await.unwrap();
}

pub(super) async fn enrolment_code_is_consumed_once(s: Stores) {
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    s.users.insert_user(&user("user-2", 2)).await.unwrap();
    add_enrolment(&s, "code-a", "user-2", T0 + 60 * SEC).await;
    add_enrolment(&s, "code-old", "user-1", T0 + 60 * SEC).await;

    let enrolled = try_enrol(&s, "code-a", "device-1", T0 + SEC).await.unwrap();
    // The code, not the caller, names the user.
    let expected = Device {
        user_sub: "user-2".into(),
        ..new_device("device-1", T0 + SEC)
    };
    assert_eq!(enrolled, expected);
    assert_eq!(
        s.devices.get_device("device-1").await.unwrap(),
        Some(expected)
    );

    let again = try_enrol(&s, "code-a", "device-2", T0 + 2 * SEC).await;
    assert_eq!(again, None, "a code is single-use");
    let late = try_enrol(&s, "code-old", "device-3", T0 + 60 * SEC).await;
    assert_eq!(late, None, "a code is dead at its expires_at");
    assert_eq!(try_enrol(&s, "code-x", "device-4", T0).await, None);

    for id in ["device-2", "device-3", "device-4"] {
        assert_eq!(s.devices.get_device(id).await.unwrap(), None);
    }
    assert!(s.devices.list_devices("user-1").await.unwrap().is_empty());
}

pub(super) async fn enrolment_is_not_consumed_when_the_device_insert_fails(s: Stores) {
    world(&s, 1).await;
    add_enrolment(&s, "code-b", "user-1", T0 + 60 * SEC).await;
    // device-1 exists: the insert fails, and the whole enrolment with it.
    let device = new_device("device-1", T0);
    let clash = s.devices.enrol_device("code-b", &device, T0 + SEC).await;
    assert!(is_conflict(&clash), "{clash:?}");
    let retry = try_enrol(&s, "code-b", "device-9", T0 + SEC).await;
    assert_eq!(retry.unwrap().id, "device-9");
}

pub(super) async fn devices_list_oldest_first_with_disabled_ones(s: Stores) {
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    s.users.insert_user(&user("user-2", 2)).await.unwrap();
    let late = enrol(&s, "user-1", "device-late", T0 + 30 * SEC).await;
    let early = enrol(&s, "user-1", "device-early", T0 + 10 * SEC).await;
    enrol(&s, "user-2", "device-other", T0).await;
    let d = &s.devices;
    assert!(
        d.set_device_disabled("device-late", true, T0 + 40 * SEC)
            .await
            .unwrap()
    );
    let late = Device {
        disabled: true,
        ..late
    };

    assert_eq!(d.list_devices("user-1").await.unwrap(), [early, late]);
    assert!(d.list_devices("nobody").await.unwrap().is_empty());
    assert!(!d.set_device_disabled("nope", true, T0).await.unwrap());
}

pub(super) async fn disabling_a_device_closes_its_pending_challenges(s: Stores) {
    world(&s, 2).await;
    start(&s, "req-1", &["device-1", "device-2"], T0 + 10 * SEC).await;
    start(&s, "req-2", &["device-1"], T0 + 11 * SEC).await;
    let d = &s.devices;

    assert!(
        d.set_device_disabled("device-1", true, T0 + 20 * SEC)
            .await
            .unwrap()
    );
    let (closed, _) = get_challenge(&s, "req-1", "device-1").await.unwrap();
    assert_eq!(closed.state, ChallengeState::Closed);
    assert_eq!(closed.decided_at, Some(T0 + 20 * SEC));
    let other_request = challenge_state(&s, "req-2", "device-1").await;
    assert_eq!(other_request, ChallengeState::Closed);
    let other_device = challenge_state(&s, "req-1", "device-2").await;
    assert_eq!(other_device, ChallengeState::Pending);
    assert_eq!(request_state(&s, "req-1").await, AuthRequestState::Pending);
    assert!(pending(&s, "device-1", T0 + 21 * SEC).await.is_empty());
    // Its closed challenge can no longer be decided.
    assert!(!decide(&s, "req-1", "device-1", true, T0 + 22 * SEC).await);

    // Enabling again does not reopen anything.
    assert!(
        d.set_device_disabled("device-1", false, T0 + 30 * SEC)
            .await
            .unwrap()
    );
    assert!(!d.get_device("device-1").await.unwrap().unwrap().disabled);
    let still = challenge_state(&s, "req-1", "device-1").await;
    assert_eq!(still, ChallengeState::Closed);
}
