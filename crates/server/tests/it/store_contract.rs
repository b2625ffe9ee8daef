//! The store contract suite: each test is written once against [`Stores`] and runs on SQLite
//! (a fresh file per test) always, and on PostgreSQL (a fresh schema per test) when
//! `BACKCHANNEL_TEST_POSTGRES_URL` is set or `postgres://postgres@127.0.0.1:5432/test` answers.
//! `BACKCHANNEL_REQUIRE_POSTGRES=1` (CI) turns an unreachable PostgreSQL into a failure, as
//! does an explicit URL that does not answer.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use backchannel_protocol::device::PushRegistration;
use backchannel_protocol::jose::{Algorithm, Jwk, Jwks};
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode};
use backchannel_server::domain::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Client, Device, Enrolment, StoredKey,
    User, UserLookup, VerifiedDecision,
};
use backchannel_server::store::postgres::PgStore;
use backchannel_server::store::sqlite::SqliteStore;
use backchannel_server::store::{PollGate, StoreError, Stores};
use serde_json::json;

/// A fixed "now" (Unix ms); tests move time by passing other values, never by sleeping.
const T0: i64 = 1_700_000_000_000;
const SEC: i64 = 1_000;
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

// ---------------------------------------------------------------------------------------------
// Harness

/// Runs each named `async fn(Stores)` below once per backend: `sqlite::NAME`, `postgres::NAME`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::on_sqlite(stringify!($name), super::$name).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::on_postgres(super::$name).await;
                }
            )*
        }
    };
}

contract!(
    clients_round_trip_list_and_disable,
    users_round_trip_list_and_disable,
    user_identifiers_are_unique,
    find_user_by_each_hint_kind,
    enrolment_code_is_consumed_once,
    enrolment_is_not_consumed_when_the_device_insert_fails,
    devices_list_oldest_first_with_disabled_ones,
    disabling_a_device_closes_its_pending_challenges,
    auth_request_and_challenges_round_trip,
    auth_request_creation_is_atomic,
    polls_slow_down_with_growing_interval,
    redeem_succeeds_once_and_only_after_approval,
    concurrent_redeems_succeed_exactly_once,
    first_decision_wins,
    concurrent_decisions_on_one_request_have_one_winner,
    decisions_need_the_right_device_a_pending_challenge_and_time,
    pending_challenges_leave_out_expired_and_decided,
    replay_cache_detects_replays_per_scope,
    purge_removes_expired_requests_and_their_challenges,
    signing_keys_list_newest_first,
    health_ping_answers,
);

/// A database file under the temp dir, removed (with its WAL files) when dropped.
struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    fn new(name: &str) -> Self {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "backchannel-store-{}-{}-{name}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        TempDb { dir }
    }

    /// A file in a directory that does not exist yet: opening must create both.
    fn url(&self) -> String {
        format!(
            "sqlite://{}",
            self.dir.join("data").join("store.db").display()
        )
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn on_sqlite<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Stores) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TempDb::new(name);
    let store = Arc::new(SqliteStore::open(&db.url()).await.unwrap());
    test(Stores::from_backend(store.clone())).await;
    store.pool().close().await;
}

async fn on_postgres<F, Fut>(test: F)
where
    F: FnOnce(Stores) -> Fut,
    Fut: Future<Output = ()>,
{
    static UNREACHABLE: AtomicBool = AtomicBool::new(false);
    let explicit = std::env::var("BACKCHANNEL_TEST_POSTGRES_URL").ok();
    let required =
        explicit.is_some() || std::env::var("BACKCHANNEL_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let url = explicit.unwrap_or_else(|| DEFAULT_POSTGRES_URL.to_owned());
    if UNREACHABLE.load(Ordering::Relaxed) && !required {
        return;
    }
    let opened = tokio::time::timeout(Duration::from_secs(15), PgStore::open_isolated(&url)).await;
    let (store, schema) = match opened {
        Ok(Ok(opened)) => opened,
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "timed out".to_owned(),
            };
            assert!(!required, "PostgreSQL required but not usable: {why}");
            if !UNREACHABLE.swap(true, Ordering::Relaxed) {
                eprintln!("PostgreSQL not reachable ({why}): skipping its contract tests");
            }
            return;
        }
    };
    let store = Arc::new(store);
    test(Stores::from_backend(store.clone())).await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA \"{schema}\" CASCADE"
    )))
    .execute(store.pool())
    .await
    .unwrap();
    store.pool().close().await;
}

// ---------------------------------------------------------------------------------------------
// Fixtures

fn client(id: &str, created_at: i64) -> Client {
    Client {
        id: id.to_owned(),
        name: format!("Client {id}"),
        auth_method: ClientAuthMethod::ClientSecretBasic,
        secret_hash: Some("ab".repeat(32)),
        jwks: None,
        jwks_uri: None,
        scopes: vec!["openid".to_owned(), "email".to_owned()],
        delivery_mode: DeliveryMode::Poll,
        notification_endpoint: None,
        request_signing_alg: None,
        user_code_required: false,
        id_token_signing_alg: Algorithm::ES256,
        disabled: false,
        created_at,
    }
}

fn ec_jwk(x: &str) -> Jwk {
    Jwk {
        kty: "EC".to_owned(),
        crv: Some("P-256".to_owned()),
        x: Some(x.to_owned()),
        y: Some("y-coordinate".to_owned()),
        ..Jwk::default()
    }
}

fn user(sub: &str, n: u32) -> User {
    let mut claims = serde_json::Map::new();
    claims.insert("name".to_owned(), json!(format!("User {n}")));
    claims.insert("address".to_owned(), json!({"country": "SG"}));
    User {
        sub: sub.to_owned(),
        email: Some(format!("user{n}@example.com")),
        nric: Some(format!("S{n:07}D")),
        username: Some(format!("user{n}")),
        phone: Some(format!("+659000{n:04}")),
        claims,
        user_code_hash: None,
        disabled: false,
        created_at: T0 + i64::from(n),
    }
}

fn new_device(id: &str, created_at: i64) -> Device {
    Device {
        id: id.to_owned(),
        user_sub: "ignored-the-code-names-the-user".to_owned(),
        name: format!("Phone {id}"),
        public_jwk: ec_jwk(id),
        push: PushRegistration {
            fcm_token: Some(format!("fcm-{id}")),
            ..PushRegistration::default()
        },
        disabled: false,
        created_at,
    }
}

fn enrolment(code_hash: &str, user_sub: &str, expires_at: i64) -> Enrolment {
    Enrolment {
        code_hash: code_hash.to_owned(),
        user_sub: user_sub.to_owned(),
        created_at: T0,
        expires_at,
        used_at: None,
    }
}

fn request(id: &str, created_at: i64) -> AuthRequest {
    AuthRequest {
        id: id.to_owned(),
        client_id: "client-1".to_owned(),
        user_sub: "user-1".to_owned(),
        scope: "openid email".to_owned(),
        acr_values: None,
        binding_message: Some("Pay 10 SGD".to_owned()),
        authorization_details: None,
        delivery_mode: DeliveryMode::Poll,
        client_notification_token: None,
        created_at,
        expires_at: created_at + 300 * SEC,
        interval_secs: 5,
        last_polled_at: None,
        state: AuthRequestState::Pending,
        decided_at: None,
        user_verified: false,
        redeemed_at: None,
    }
}

fn challenge_id(request_id: &str, device_id: &str) -> String {
    format!("{request_id}/{device_id}")
}

fn challenge(request_id: &str, device_id: &str, created_at: i64) -> Challenge {
    Challenge {
        id: challenge_id(request_id, device_id),
        auth_request_id: request_id.to_owned(),
        device_id: device_id.to_owned(),
        state: ChallengeState::Pending,
        created_at,
        decided_at: None,
        decision_jws: None,
    }
}

fn decision(request_id: &str, device_id: &str, approved: bool, at: i64) -> VerifiedDecision {
    VerifiedDecision {
        challenge_id: challenge_id(request_id, device_id),
        device_id: device_id.to_owned(),
        approved,
        user_verified: true,
        decision_jws: format!("jws-of-{device_id}"),
        decided_at: at,
    }
}

/// Enrols a device for `user_sub` through a fresh enrolment code.
async fn enrol(s: &Stores, user_sub: &str, device_id: &str, at: i64) -> Device {
    let code = format!("code-{device_id}");
    s.devices
        .insert_enrolment(&enrolment(&code, user_sub, at + 600 * SEC))
        .await
        .unwrap();
    s.devices
        .enrol_device(&code, &new_device(device_id, at), at)
        .await
        .unwrap()
        .unwrap()
}

async fn try_enrol(s: &Stores, code: &str, device_id: &str, at: i64) -> Option<Device> {
    let device = new_device(device_id, at);
    s.devices.enrol_device(code, &device, at).await.unwrap()
}

/// Client `client-1`, user `user-1` and its devices `device-1..=n`.
async fn world(s: &Stores, devices: u32) {
    s.clients
        .insert_client(&client("client-1", T0))
        .await
        .unwrap();
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    for n in 1..=devices {
        enrol(s, "user-1", &format!("device-{n}"), T0 + i64::from(n)).await;
    }
}

/// Creates request `id` at `at` with a challenge for each device.
async fn start(s: &Stores, id: &str, devices: &[&str], at: i64) -> AuthRequest {
    let req = request(id, at);
    let challenges: Vec<_> = devices.iter().map(|d| challenge(id, d, at)).collect();
    s.requests
        .create_auth_request(&req, &challenges)
        .await
        .unwrap();
    req
}

async fn request_state(s: &Stores, id: &str) -> AuthRequestState {
    s.requests
        .get_auth_request(id)
        .await
        .unwrap()
        .unwrap()
        .state
}

async fn challenge_state(s: &Stores, request_id: &str, device_id: &str) -> ChallengeState {
    let id = challenge_id(request_id, device_id);
    s.requests
        .get_challenge(&id)
        .await
        .unwrap()
        .unwrap()
        .0
        .state
}

fn is_conflict<T>(result: &Result<T, StoreError>) -> bool {
    matches!(result, Err(StoreError::Conflict(_)))
}

// ---------------------------------------------------------------------------------------------
// Clients, users, devices

async fn clients_round_trip_list_and_disable(s: Stores) {
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
    s.clients.insert_client(&plain).await.unwrap();
    s.clients.insert_client(&full).await.unwrap();

    assert_eq!(
        s.clients.get_client("client-a").await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(
        s.clients.get_client("client-b").await.unwrap(),
        Some(plain.clone())
    );
    assert_eq!(s.clients.get_client("nope").await.unwrap(), None);
    assert!(is_conflict(
        &s.clients.insert_client(&client("client-a", T0)).await
    ));
    // Oldest first.
    assert_eq!(
        s.clients.list_clients().await.unwrap(),
        vec![full.clone(), plain]
    );

    assert!(
        s.clients
            .set_client_disabled("client-a", true)
            .await
            .unwrap()
    );
    assert!(
        s.clients
            .get_client("client-a")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        s.clients
            .set_client_disabled("client-a", false)
            .await
            .unwrap()
    );
    assert_eq!(s.clients.get_client("client-a").await.unwrap(), Some(full));
    assert!(!s.clients.set_client_disabled("nope", true).await.unwrap());
}

async fn users_round_trip_list_and_disable(s: Stores) {
    let first = user("user-1", 1);
    let mut bare = user("user-2", 2);
    bare.email = None;
    bare.nric = None;
    bare.username = None;
    bare.phone = None;
    bare.claims = serde_json::Map::new();
    bare.user_code_hash = Some("cd".repeat(32));
    s.users.insert_user(&bare).await.unwrap();
    s.users.insert_user(&first).await.unwrap();

    assert_eq!(
        s.users.get_user("user-1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        s.users.get_user("user-2").await.unwrap(),
        Some(bare.clone())
    );
    assert_eq!(s.users.get_user("nope").await.unwrap(), None);
    assert_eq!(s.users.list_users().await.unwrap(), vec![first, bare]);

    assert!(s.users.set_user_disabled("user-2", true).await.unwrap());
    assert!(s.users.get_user("user-2").await.unwrap().unwrap().disabled);
    assert!(!s.users.set_user_disabled("nope", true).await.unwrap());
}

async fn user_identifiers_are_unique(s: Stores) {
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
        assert!(is_conflict(&result), "duplicate {what} must be a Conflict");
    }
    assert_eq!(s.users.list_users().await.unwrap().len(), 1);

    // Absent identifiers do not collide with each other.
    for (n, sub) in [(3, "user-3"), (4, "user-4")] {
        let mut u = user(sub, n);
        u.email = None;
        u.nric = None;
        u.username = None;
        u.phone = None;
        s.users.insert_user(&u).await.unwrap();
    }
    assert_eq!(s.users.list_users().await.unwrap().len(), 3);
}

async fn find_user_by_each_hint_kind(s: Stores) {
    let one = user("user-1", 1);
    let two = user("user-2", 2);
    s.users.insert_user(&one).await.unwrap();
    s.users.insert_user(&two).await.unwrap();
    let found = |lookup: UserLookup| {
        let s = s.clone();
        async move { s.users.find_user(&lookup).await.unwrap().map(|u| u.sub) }
    };
    let two_sub = Some("user-2".to_owned());
    assert_eq!(found(UserLookup::Sub("user-2".into())).await, two_sub);
    assert_eq!(
        found(UserLookup::Nric(two.nric.clone().unwrap())).await,
        two_sub
    );
    assert_eq!(
        found(UserLookup::Email(two.email.clone().unwrap())).await,
        two_sub
    );
    assert_eq!(
        found(UserLookup::Username(two.username.clone().unwrap())).await,
        two_sub
    );
    assert_eq!(
        found(UserLookup::Phone(two.phone.clone().unwrap())).await,
        two_sub
    );
    assert_eq!(
        found(UserLookup::Email(one.email.clone().unwrap())).await,
        Some("user-1".into())
    );
    // Exact matches only: the domain normalises before asking.
    assert_eq!(
        found(UserLookup::Email("USER2@EXAMPLE.COM".into())).await,
        None
    );
    assert_eq!(found(UserLookup::Username("user-2".into())).await, None);
    assert_eq!(found(UserLookup::Nric("S9999999Z".into())).await, None);
}

async fn enrolment_code_is_consumed_once(s: Stores) {
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    s.users.insert_user(&user("user-2", 2)).await.unwrap();
    s.devices
        .insert_enrolment(&enrolment("code-a", "user-2", T0 + 60 * SEC))
        .await
        .unwrap();
    s.devices
        .insert_enrolment(&enrolment("code-old", "user-1", T0 + 60 * SEC))
        .await
        .unwrap();

    let enrolled = s
        .devices
        .enrol_device("code-a", &new_device("device-1", T0), T0 + SEC)
        .await
        .unwrap()
        .unwrap();
    // The code, not the caller, names the user.
    assert_eq!(enrolled.user_sub, "user-2");
    assert_eq!(
        enrolled,
        Device {
            user_sub: "user-2".into(),
            ..new_device("device-1", T0)
        }
    );
    assert_eq!(
        s.devices.get_device("device-1").await.unwrap(),
        Some(enrolled)
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

async fn enrolment_is_not_consumed_when_the_device_insert_fails(s: Stores) {
    world(&s, 1).await;
    s.devices
        .insert_enrolment(&enrolment("code-b", "user-1", T0 + 60 * SEC))
        .await
        .unwrap();
    // device-1 exists: the insert fails, and the whole enrolment with it.
    let clash = s
        .devices
        .enrol_device("code-b", &new_device("device-1", T0), T0 + SEC)
        .await;
    assert!(is_conflict(&clash), "{clash:?}");
    let retry = s
        .devices
        .enrol_device("code-b", &new_device("device-9", T0), T0 + SEC)
        .await;
    assert_eq!(retry.unwrap().unwrap().id, "device-9");
}

async fn devices_list_oldest_first_with_disabled_ones(s: Stores) {
    s.users.insert_user(&user("user-1", 1)).await.unwrap();
    s.users.insert_user(&user("user-2", 2)).await.unwrap();
    let late = enrol(&s, "user-1", "device-late", T0 + 30 * SEC).await;
    let early = enrol(&s, "user-1", "device-early", T0 + 10 * SEC).await;
    enrol(&s, "user-2", "device-other", T0).await;
    assert!(
        s.devices
            .set_device_disabled("device-late", true, T0 + 40 * SEC)
            .await
            .unwrap()
    );
    let late = Device {
        disabled: true,
        ..late
    };

    assert_eq!(
        s.devices.list_devices("user-1").await.unwrap(),
        vec![early, late]
    );
    assert!(s.devices.list_devices("nobody").await.unwrap().is_empty());
    assert!(
        !s.devices
            .set_device_disabled("nope", true, T0)
            .await
            .unwrap()
    );
}

async fn disabling_a_device_closes_its_pending_challenges(s: Stores) {
    world(&s, 2).await;
    start(&s, "req-1", &["device-1", "device-2"], T0 + 10 * SEC).await;
    start(&s, "req-2", &["device-1"], T0 + 11 * SEC).await;

    assert!(
        s.devices
            .set_device_disabled("device-1", true, T0 + 20 * SEC)
            .await
            .unwrap()
    );
    let (closed, _) = s
        .requests
        .get_challenge("req-1/device-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(closed.state, ChallengeState::Closed);
    assert_eq!(closed.decided_at, Some(T0 + 20 * SEC));
    assert_eq!(
        challenge_state(&s, "req-2", "device-1").await,
        ChallengeState::Closed
    );
    assert_eq!(
        challenge_state(&s, "req-1", "device-2").await,
        ChallengeState::Pending
    );
    assert_eq!(request_state(&s, "req-1").await, AuthRequestState::Pending);
    assert!(
        s.requests
            .list_pending_challenges("device-1", T0 + 21 * SEC)
            .await
            .unwrap()
            .is_empty()
    );
    // Its closed challenge can no longer be decided.
    let late = decision("req-1", "device-1", true, T0 + 22 * SEC);
    assert!(!s.requests.record_decision(&late).await.unwrap());

    // Enabling again does not reopen anything.
    assert!(
        s.devices
            .set_device_disabled("device-1", false, T0 + 30 * SEC)
            .await
            .unwrap()
    );
    assert!(
        !s.devices
            .get_device("device-1")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert_eq!(
        challenge_state(&s, "req-1", "device-1").await,
        ChallengeState::Closed
    );
}

// ---------------------------------------------------------------------------------------------
// Backchannel requests

async fn auth_request_and_challenges_round_trip(s: Stores) {
    world(&s, 2).await;
    let mut req = request("req-1", T0);
    req.acr_values = Some("urn:acr:high".to_owned());
    req.authorization_details = Some(json!([{"type": "payment_initiation", "amount": "10.00"}]));
    req.delivery_mode = DeliveryMode::Push;
    req.client_notification_token = Some("notify-me".to_owned());
    let challenges = vec![
        challenge("req-1", "device-1", T0),
        challenge("req-1", "device-2", T0),
    ];
    s.requests
        .create_auth_request(&req, &challenges)
        .await
        .unwrap();

    assert_eq!(
        s.requests.get_auth_request("req-1").await.unwrap(),
        Some(req.clone())
    );
    assert_eq!(s.requests.get_auth_request("nope").await.unwrap(), None);
    for c in &challenges {
        let got = s.requests.get_challenge(&c.id).await.unwrap();
        assert_eq!(got, Some((c.clone(), req.clone())));
    }
    assert_eq!(s.requests.get_challenge("nope").await.unwrap(), None);
}

async fn auth_request_creation_is_atomic(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    // The second challenge reuses an id: nothing of req-2 may remain.
    let req = request("req-2", T0);
    let clash = vec![
        challenge("req-2", "device-1", T0),
        challenge("req-1", "device-1", T0),
    ];
    let result = s.requests.create_auth_request(&req, &clash).await;
    assert!(result.is_err());
    assert_eq!(s.requests.get_auth_request("req-2").await.unwrap(), None);
    assert_eq!(
        s.requests.get_challenge("req-2/device-1").await.unwrap(),
        None
    );
}

async fn polls_slow_down_with_growing_interval(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    let poll = |at: i64| {
        let s = s.clone();
        async move { s.requests.record_poll("req-1", at, 5).await.unwrap() }
    };
    let slow = |interval_secs| PollGate::SlowDown { interval_secs };

    assert_eq!(
        poll(T0).await,
        PollGate::Allowed,
        "the first poll is always allowed"
    );
    assert_eq!(
        poll(T0 + 5 * SEC).await,
        PollGate::Allowed,
        "exactly one interval later"
    );
    assert_eq!(poll(T0 + 6 * SEC).await, slow(10));
    // The interval now runs from the too-early poll, and is 10 s.
    assert_eq!(poll(T0 + 15 * SEC).await, slow(15));
    assert_eq!(poll(T0 + 30 * SEC - 1).await, slow(20));
    assert_eq!(poll(T0 + 50 * SEC - 1).await, PollGate::Allowed);
    assert_eq!(poll(T0 + 70 * SEC - 2).await, slow(25));

    let stored = s.requests.get_auth_request("req-1").await.unwrap().unwrap();
    assert_eq!(stored.interval_secs, 25);
    assert_eq!(stored.last_polled_at, Some(T0 + 70 * SEC - 2));

    // A request that is no longer pending is not gated (the domain answers from its state).
    let won = decision("req-1", "device-1", true, T0 + 71 * SEC);
    assert!(s.requests.record_decision(&won).await.unwrap());
    assert_eq!(poll(T0 + 71 * SEC).await, PollGate::Allowed);
    assert_eq!(
        s.requests.record_poll("nope", T0, 5).await.unwrap(),
        PollGate::Allowed
    );
}

async fn redeem_succeeds_once_and_only_after_approval(s: Stores) {
    world(&s, 1).await;
    for id in ["approved", "denied", "pending"] {
        start(&s, id, &["device-1"], T0).await;
    }
    assert!(
        s.requests
            .record_decision(&decision("approved", "device-1", true, T0 + SEC))
            .await
            .unwrap()
    );
    assert!(
        s.requests
            .record_decision(&decision("denied", "device-1", false, T0 + SEC))
            .await
            .unwrap()
    );

    assert!(s.requests.redeem("approved", T0 + 2 * SEC).await.unwrap());
    assert!(
        !s.requests.redeem("approved", T0 + 3 * SEC).await.unwrap(),
        "spent"
    );
    let spent = s
        .requests
        .get_auth_request("approved")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(spent.state, AuthRequestState::Redeemed);
    assert_eq!(spent.redeemed_at, Some(T0 + 2 * SEC));

    assert!(!s.requests.redeem("denied", T0 + 2 * SEC).await.unwrap());
    assert!(!s.requests.redeem("pending", T0 + 2 * SEC).await.unwrap());
    assert!(!s.requests.redeem("nope", T0 + 2 * SEC).await.unwrap());
    assert_eq!(request_state(&s, "denied").await, AuthRequestState::Denied);
    assert_eq!(
        request_state(&s, "pending").await,
        AuthRequestState::Pending
    );
}

async fn concurrent_redeems_succeed_exactly_once(s: Stores) {
    world(&s, 1).await;
    start(&s, "req-1", &["device-1"], T0).await;
    assert!(
        s.requests
            .record_decision(&decision("req-1", "device-1", true, T0 + SEC))
            .await
            .unwrap()
    );

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

async fn first_decision_wins(s: Stores) {
    world(&s, 2).await;
    start(&s, "req-1", &["device-1", "device-2"], T0).await;

    let deny = decision("req-1", "device-2", false, T0 + 10 * SEC);
    assert!(s.requests.record_decision(&deny).await.unwrap());
    let approve = decision("req-1", "device-1", true, T0 + 11 * SEC);
    assert!(
        !s.requests.record_decision(&approve).await.unwrap(),
        "the other device lost"
    );
    assert!(
        !s.requests.record_decision(&deny).await.unwrap(),
        "a challenge decides once"
    );

    let (winner, req) = s
        .requests
        .get_challenge("req-1/device-2")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(winner.state, ChallengeState::Denied);
    assert_eq!(winner.decided_at, Some(T0 + 10 * SEC));
    assert_eq!(winner.decision_jws.as_deref(), Some("jws-of-device-2"));
    assert_eq!(req.state, AuthRequestState::Denied);
    assert_eq!(req.decided_at, Some(T0 + 10 * SEC));
    assert!(req.user_verified);
    let (loser, _) = s
        .requests
        .get_challenge("req-1/device-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(loser.state, ChallengeState::Closed);
    assert_eq!(loser.decision_jws, None);
}

async fn concurrent_decisions_on_one_request_have_one_winner(s: Stores) {
    const DEVICES: [&str; 4] = ["device-1", "device-2", "device-3", "device-4"];
    world(&s, 4).await;
    for round in 0..5 {
        let id = format!("req-{round}");
        start(&s, &id, &DEVICES, T0).await;
        let racers: Vec<_> = DEVICES
            .iter()
            .enumerate()
            .map(|(i, device)| {
                let s = s.clone();
                let d = decision(&id, device, i % 2 == 0, T0 + SEC);
                tokio::spawn(
                    async move { (d.device_id.clone(), s.requests.record_decision(&d).await) },
                )
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            let (device, won) = racer.await.unwrap();
            if won.unwrap() {
                winners.push(device);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let winner = winners[0].as_str();
        let approved = DEVICES.iter().position(|d| *d == winner).unwrap() % 2 == 0;
        let expected = if approved {
            AuthRequestState::Approved
        } else {
            AuthRequestState::Denied
        };
        assert_eq!(request_state(&s, &id).await, expected);
        for device in DEVICES {
            let state = challenge_state(&s, &id, device).await;
            let expected = match (device == winner, approved) {
                (false, _) => ChallengeState::Closed,
                (true, true) => ChallengeState::Approved,
                (true, false) => ChallengeState::Denied,
            };
            assert_eq!(state, expected, "round {round}, {device}");
        }
    }
}

async fn decisions_need_the_right_device_a_pending_challenge_and_time(s: Stores) {
    world(&s, 2).await;
    let req = start(&s, "req-1", &["device-1"], T0).await;

    // device-2 signs for device-1's challenge.
    let mut forged = decision("req-1", "device-1", true, T0 + SEC);
    forged.device_id = "device-2".to_owned();
    assert!(!s.requests.record_decision(&forged).await.unwrap());
    // No such challenge.
    assert!(
        !s.requests
            .record_decision(&decision("req-1", "device-2", true, T0 + SEC))
            .await
            .unwrap()
    );
    // At the expiry instant the request is expired (CIBA Core §11 `expired_token`).
    let late = decision("req-1", "device-1", true, req.expires_at);
    assert!(!s.requests.record_decision(&late).await.unwrap());

    assert_eq!(
        s.requests.get_auth_request("req-1").await.unwrap(),
        Some(req.clone())
    );
    assert_eq!(
        challenge_state(&s, "req-1", "device-1").await,
        ChallengeState::Pending
    );
    let in_time = decision("req-1", "device-1", true, req.expires_at - 1);
    assert!(s.requests.record_decision(&in_time).await.unwrap());
}

async fn pending_challenges_leave_out_expired_and_decided(s: Stores) {
    world(&s, 2).await;
    let now = T0 + 400 * SEC;
    let stale = start(&s, "stale", &["device-1"], T0).await; // expires at T0 + 300 s
    let second = start(&s, "second", &["device-1", "device-2"], now - 10 * SEC).await;
    let first = start(&s, "first", &["device-1"], now - 20 * SEC).await;
    start(&s, "decided", &["device-1", "device-2"], now - 30 * SEC).await;
    start(&s, "elsewhere", &["device-2"], now - 40 * SEC).await;
    assert!(
        s.requests
            .record_decision(&decision("decided", "device-2", true, now - SEC))
            .await
            .unwrap()
    );

    let pending = s
        .requests
        .list_pending_challenges("device-1", now)
        .await
        .unwrap();
    let ids: Vec<_> = pending.iter().map(|(c, _)| c.id.as_str()).collect();
    assert_eq!(ids, ["first/device-1", "second/device-1"], "oldest first");
    assert_eq!(
        pending[0],
        (challenge("first", "device-1", first.created_at), first)
    );
    assert_eq!(pending[1].1, second);

    let earlier = s
        .requests
        .list_pending_challenges("device-1", stale.expires_at - 1)
        .await
        .unwrap();
    assert_eq!(earlier.len(), 3, "the stale request counts while it lives");
    assert!(
        s.requests
            .list_pending_challenges("device-9", now)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn purge_removes_expired_requests_and_their_challenges(s: Stores) {
    world(&s, 1).await;
    let old = start(&s, "old", &["device-1"], T0).await;
    let young = start(&s, "young", &["device-1"], T0 + 100 * SEC).await;

    assert_eq!(
        s.requests
            .purge_expired_requests(old.expires_at)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.requests
            .purge_expired_requests(old.expires_at + 1)
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.requests.get_auth_request("old").await.unwrap(), None);
    assert_eq!(
        s.requests.get_challenge("old/device-1").await.unwrap(),
        None
    );
    assert_eq!(
        s.requests.get_auth_request("young").await.unwrap(),
        Some(young)
    );
    assert!(
        s.requests
            .get_challenge("young/device-1")
            .await
            .unwrap()
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// Replay cache, keys, health

async fn replay_cache_detects_replays_per_scope(s: Stores) {
    let r = &s.replay;
    assert!(
        r.remember_jti("client-assertion", "jti-1", T0 + 60 * SEC)
            .await
            .unwrap()
    );
    assert!(
        !r.remember_jti("client-assertion", "jti-1", T0 + 60 * SEC)
            .await
            .unwrap()
    );
    assert!(
        r.remember_jti("device", "jti-1", T0 + 60 * SEC)
            .await
            .unwrap(),
        "scopes are separate"
    );
    assert!(
        r.remember_jti("client-assertion", "jti-2", T0 + 120 * SEC)
            .await
            .unwrap()
    );

    assert_eq!(r.purge_expired_jtis(T0 + 60 * SEC - 1).await.unwrap(), 0);
    assert_eq!(r.purge_expired_jtis(T0 + 60 * SEC).await.unwrap(), 2);
    assert!(
        !r.remember_jti("client-assertion", "jti-2", T0 + 120 * SEC)
            .await
            .unwrap()
    );
    assert!(
        r.remember_jti("client-assertion", "jti-1", T0 + 180 * SEC)
            .await
            .unwrap()
    );
}

async fn signing_keys_list_newest_first(s: Stores) {
    let key = |kid: &str, alg, created_at| StoredKey {
        kid: kid.to_owned(),
        alg,
        private_jwk: format!("{{\"kid\":\"{kid}\"}}"),
        created_at,
    };
    assert!(s.keys.list_signing_keys().await.unwrap().is_empty());
    let old = key("k-old", Algorithm::ES256, T0);
    let new = key("k-new", Algorithm::RS256, T0 + 2 * SEC);
    let mid = key("k-mid", Algorithm::EdDSA, T0 + SEC);
    for k in [&old, &new, &mid] {
        s.keys.insert_signing_key(k).await.unwrap();
    }
    assert_eq!(
        s.keys.list_signing_keys().await.unwrap(),
        vec![new, mid, old.clone()]
    );
    assert!(is_conflict(&s.keys.insert_signing_key(&old).await));
}

async fn health_ping_answers(s: Stores) {
    s.health.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// SQLite specifics

#[tokio::test]
async fn sqlite_file_survives_restart() {
    let db = TempDb::new("restart");
    {
        let store = Arc::new(SqliteStore::open(&db.url()).await.unwrap());
        let s = Stores::from_backend(store.clone());
        world(&s, 1).await;
        start(&s, "req-1", &["device-1"], T0).await;
        store.pool().close().await;
    }
    // Reopening runs no migration twice and finds everything.
    let store = Arc::new(SqliteStore::open(&db.url()).await.unwrap());
    let s = Stores::from_backend(store.clone());
    assert_eq!(
        s.requests.get_auth_request("req-1").await.unwrap(),
        Some(request("req-1", T0))
    );
    assert_eq!(
        challenge_state(&s, "req-1", "device-1").await,
        ChallengeState::Pending
    );
    assert_eq!(s.clients.list_clients().await.unwrap().len(), 1);
    store.pool().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_processes_starting_together_migrate_once() {
    let db = TempDb::new("together");
    let url = db.url();
    let (a, b) = tokio::join!(SqliteStore::open(&url), SqliteStore::open(&url));
    let (a, b) = (a.unwrap(), b.unwrap());
    let a = Stores::from_backend(Arc::new(a));
    a.users.insert_user(&user("user-1", 1)).await.unwrap();
    let b = Stores::from_backend(Arc::new(b));
    assert!(b.users.get_user("user-1").await.unwrap().is_some());
}

#[tokio::test]
async fn sqlite_in_memory_database_works() {
    let store = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
    let s = Stores::from_backend(store);
    world(&s, 2).await;
    start(&s, "req-1", &["device-1", "device-2"], T0).await;
    assert!(
        s.requests
            .record_decision(&decision("req-1", "device-1", true, T0 + SEC))
            .await
            .unwrap()
    );
    assert!(s.requests.redeem("req-1", T0 + 2 * SEC).await.unwrap());
    // Each in-memory store is its own database.
    let other = SqliteStore::open("sqlite::memory:").await.unwrap();
    assert_eq!(
        Stores::from_backend(Arc::new(other))
            .users
            .list_users()
            .await
            .unwrap(),
        vec![]
    );
}
