//! Storage behind narrow async traits, one per capability, each implemented for SQLite
//! ([`sqlite`]) and PostgreSQL ([`postgres`]) and checked by one shared contract suite.
//!
//! Transitions that must happen once (consume an enrolment code, record the first decision,
//! redeem an approval) are single conditional statements checked by affected rows, so they hold
//! across nodes sharing one database. What is no longer needed is deleted by [`PurgeStore`].

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::model::{
    AuthRequest, Challenge, Client, Device, DeviceEvent, Enrolment, Notification,
    NotificationState, PushDelivery, PushDeliveryState, RefreshFamily, RefreshToken, StoredKey,
    User, UserLookup, VerifiedDecision,
};
use crate::domain::policy::AccessPolicy;

mod cache;
pub mod limits;
pub mod postgres;
pub mod purge;
mod rows;
mod sql;
mod sql_delivery;
mod sql_policy;
mod sql_purge;
mod sql_tokens;
pub mod sqlite;
pub mod webauthn;

pub use limits::AdmissionStore;
pub use purge::{PurgeCutoffs, PurgeOutcome, PurgeStore, Purged};
pub use webauthn::WebAuthnStore;

/// Storage failures. `Conflict` is the only one a caller is expected to handle (a duplicate
/// unique value); `Backend` is a server fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("storage backend error: {0}")]
    Backend(String),
    /// The database cannot be reached now (refused, cut, pool exhausted past its wait): the
    /// operation did not happen and may be tried again.
    #[error("storage backend unavailable: {0}")]
    Unavailable(String),
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[async_trait]
pub trait ClientStore: Send + Sync {
    /// `Conflict` if the id exists.
    async fn insert_client(&self, client: &Client) -> StoreResult<()>;
    async fn get_client(&self, id: &str) -> StoreResult<Option<Client>>;
    async fn list_clients(&self) -> StoreResult<Vec<Client>>;
    /// Returns false if no such client.
    async fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool>;
}

/// Access policies, one per client (`domain::policy`). `/bc-authorize` reads a client's
/// policy on every request: both stores cache it, its absence included.
#[async_trait]
pub trait PolicyStore: Send + Sync {
    /// Creates or replaces the policy of `policy.client_id` (a replacement keeps the first
    /// `created_at`) and returns it as stored; `None` (nothing stored) if no such client.
    async fn put_policy(&self, policy: &AccessPolicy) -> StoreResult<Option<AccessPolicy>>;
    async fn get_policy(&self, client_id: &str) -> StoreResult<Option<AccessPolicy>>;
    /// Oldest first.
    async fn list_policies(&self) -> StoreResult<Vec<AccessPolicy>>;
    /// False if the client had none.
    async fn delete_policy(&self, client_id: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait UserStore: Send + Sync {
    /// `Conflict` if the sub, e-mail, NRIC, username or phone is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    async fn get_user(&self, sub: &str) -> StoreResult<Option<User>>;
    /// Exact match on the normalised value (the domain lower-cases e-mails before asking).
    async fn find_user(&self, lookup: &UserLookup) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn set_user_disabled(&self, sub: &str, disabled: bool) -> StoreResult<bool>;
}

#[async_trait]
pub trait DeviceStore: Send + Sync {
    async fn insert_enrolment(&self, enrolment: &Enrolment) -> StoreResult<()>;
    /// In one transaction: consume the enrolment code (`used_at IS NULL AND expires_at > now`)
    /// and insert the device with that code's user as `user_sub` (the given `device.user_sub`
    /// is ignored). `None` if the code is unknown, used or expired.
    async fn enrol_device(
        &self,
        code_hash: &str,
        device: &Device,
        now: i64,
    ) -> StoreResult<Option<Device>>;
    /// Inserts a device directly (the external channel's stand-in); `Conflict` if it exists.
    async fn insert_device(&self, device: &Device) -> StoreResult<()>;
    async fn get_device(&self, id: &str) -> StoreResult<Option<Device>>;
    /// Every device of the user, disabled ones included, oldest first.
    async fn list_devices(&self, user_sub: &str) -> StoreResult<Vec<Device>>;
    /// Replaces the device's push registration. False if no such device.
    async fn set_device_push(
        &self,
        id: &str,
        push: &backchannel_protocol::device::PushRegistration,
    ) -> StoreResult<bool>;
    /// Disabling also closes the device's pending challenges. False if no such device.
    async fn set_device_disabled(&self, id: &str, disabled: bool, now: i64) -> StoreResult<bool>;
}

/// Outcome of recording a poll of a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollGate {
    /// The poll came at least `interval` after the previous one (or is the first).
    Allowed,
    /// Too soon: the interval was raised to `interval_secs`.
    SlowDown { interval_secs: i64 },
}

#[async_trait]
pub trait AuthRequestStore: Send + Sync {
    /// Stores the request and its challenges in one transaction, with a `challenge` event in
    /// each device's event log and a pending push delivery (deadline: the request's expiry)
    /// for each challenge whose device is in `push_devices` (it has a live push channel or is
    /// the external channel): a device that is never pushed to costs no queue row.
    async fn create_auth_request(
        &self,
        request: &AuthRequest,
        challenges: &[Challenge],
        push_devices: &[String],
    ) -> StoreResult<()>;
    async fn get_auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>>;
    /// Records a poll of request `id` at `now`: `Allowed` (and `last_polled_at = now`) when
    /// `last_polled_at` is NULL or at least `interval_secs` seconds before `now`; otherwise
    /// adds `slow_down_increment_secs` to the interval, sets `last_polled_at = now` and returns
    /// the new interval. PostgreSQL does it as one conditional UPDATE, so nodes agree; the
    /// embedded store (one node) keeps it in memory and writes nothing per poll.
    async fn record_poll(
        &self,
        id: &str,
        now: i64,
        slow_down_increment_secs: i64,
    ) -> StoreResult<PollGate>;
    /// A poll of request `id` by client `client_id` that this store already knows came too
    /// soon after the previous one (it saw that poll, the request was pending and not expired
    /// then): the interval grows as [`AuthRequestStore::record_poll`] would and the new one is
    /// returned, without reading the request. `None` when it does not know; then the caller
    /// reads the request and calls `record_poll`. The default knows nothing.
    async fn early_poll(
        &self,
        _id: &str,
        _client_id: &str,
        _now: i64,
        _slow_down_increment_secs: i64,
    ) -> StoreResult<Option<i64>> {
        Ok(None)
    }
    /// A held (long) poll of a pending request was answered at `now`: it spaced the client's
    /// polls by itself, so the next poll is allowed at once (`last_polled_at` becomes `now`
    /// minus the interval). The natural long-poll loop never earns `slow_down`.
    async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()>;
    /// `approved` → `redeemed` as one conditional UPDATE; true for exactly one caller.
    async fn redeem(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Pending challenges of the device whose request is still pending and not expired at
    /// `now`, oldest first, each with its request.
    async fn list_pending_challenges(
        &self,
        device_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(Challenge, AuthRequest)>>;
    async fn get_challenge(&self, id: &str) -> StoreResult<Option<(Challenge, AuthRequest)>>;
    /// In one transaction: the challenge (of `decision.device_id`, still pending) takes the
    /// decision and evidence; its request (still pending, `expires_at > decided_at`) becomes
    /// approved or denied with `decided_at` and `user_verified`; the request's other pending
    /// challenges become closed, and every other challenge's device gets a `challenge_closed`
    /// event; and `decision.notification`, if any, is queued. Returns false
    /// (and changes nothing) if either conditional update matched no row: the first decision
    /// wins.
    async fn record_decision(&self, decision: &VerifiedDecision) -> StoreResult<bool>;
    /// Every challenge of a request.
    async fn request_challenges(&self, auth_request_id: &str) -> StoreResult<Vec<Challenge>>;
    /// Ends, as replaced at `now` (`expires_at = replaced_at = now`), every pending unexpired
    /// request of `client_id` for `user_sub` but the newest, closes their challenges and puts a
    /// `challenge_closed` event in each of their devices' logs, in one transaction. Returns
    /// each replaced request's id with its challenges' device ids.
    async fn replace_undecided(
        &self,
        user_sub: &str,
        client_id: &str,
        now: i64,
    ) -> StoreResult<Vec<(String, Vec<String>)>>;
    /// The user's `limit` most recent requests, newest first.
    async fn user_requests(&self, user_sub: &str, limit: i64) -> StoreResult<Vec<AuthRequest>>;
}

/// The durable push fan-out: a row per challenge, inserted with the request.
#[async_trait]
pub trait PushQueueStore: Send + Sync {
    async fn due_push_deliveries(&self, now: i64, limit: i64) -> StoreResult<Vec<PushDelivery>>;
    /// Leases one delivery attempt (one conditional UPDATE; true for exactly one caller).
    async fn claim_push_delivery(
        &self,
        challenge_id: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<bool>;
    /// Ends the delivery (`done` or `failed`) with the channels delivered.
    async fn finish_push_delivery(
        &self,
        challenge_id: &str,
        state: PushDeliveryState,
        delivered: &[String],
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Schedules another attempt for the channels not yet delivered.
    async fn retry_push_delivery(
        &self,
        challenge_id: &str,
        next_attempt_at: i64,
        delivered: &[String],
        error: &str,
    ) -> StoreResult<()>;
    async fn get_push_delivery(&self, challenge_id: &str) -> StoreResult<Option<PushDelivery>>;
    async fn next_push_delivery_at(&self) -> StoreResult<Option<i64>>;
    /// Called once as a node starts, before its workers run. On a database that only this
    /// node uses (SQLite), every lease left is its previous run's, whose sends died with it:
    /// they are released and due at `now`. PostgreSQL, shared by nodes that may be running,
    /// releases none; a lease there ends after the send timeout plus a margin.
    async fn release_push_leases_at_start(&self, now: i64) -> StoreResult<u64>;
}

/// Each device's event log, read by its live event stream.
#[async_trait]
pub trait DeviceEventStore: Send + Sync {
    /// Events of the device with `seq > after`, in order, at most `limit`.
    async fn device_events_since(
        &self,
        device_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<DeviceEvent>>;
    /// The device's newest `seq` (0 if none).
    async fn latest_device_event(&self, device_id: &str) -> StoreResult<i64>;
}

/// The durable outbox of client notifications (ping and push modes).
#[async_trait]
pub trait OutboxStore: Send + Sync {
    /// Pending notifications with `next_attempt_at <= now`, oldest first.
    async fn due_notifications(&self, now: i64, limit: i64) -> StoreResult<Vec<Notification>>;
    /// Takes a due notification for one attempt: counts the attempt and moves
    /// `next_attempt_at` to `lease_until` so no other worker takes it meanwhile (a crashed
    /// worker's lease simply runs out). One conditional UPDATE; true for exactly one caller.
    async fn claim_notification(&self, id: &str, now: i64, lease_until: i64) -> StoreResult<bool>;
    /// Push mode: in one transaction, redeems the approved request (`approved` → `redeemed`)
    /// and stores the minted token response as the notification's payload. False (nothing
    /// changed) if the request was no longer approved.
    async fn attach_push_tokens(
        &self,
        notification_id: &str,
        auth_request_id: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Records the end of a notification: delivered or failed (final).
    async fn finish_notification(
        &self,
        id: &str,
        state: NotificationState,
        now: i64,
        error: Option<&str>,
    ) -> StoreResult<()>;
    /// Schedules another attempt at `next_attempt_at`.
    async fn retry_notification(
        &self,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()>;
    /// Push requests that expired undecided by `now` and have no notification yet.
    async fn expired_unnotified_push(&self, now: i64) -> StoreResult<Vec<AuthRequest>>;
    /// Queues a notification unless its request already has one; true if queued.
    async fn queue_notification(&self, notification: &Notification) -> StoreResult<bool>;
    async fn get_notification(&self, auth_request_id: &str) -> StoreResult<Option<Notification>>;
    /// The earliest `next_attempt_at` of a pending notification, to sleep until.
    async fn next_notification_at(&self) -> StoreResult<Option<i64>>;
    /// Called once as a node starts, before its workers run. On a database that only this
    /// node uses (SQLite), every notification lease left is its previous run's, whose sends died with it:
    /// they are released and due at `now`. PostgreSQL, shared by nodes that may be running,
    /// releases none; a lease there ends after the send timeout plus a margin.
    async fn release_notification_leases_at_start(&self, now: i64) -> StoreResult<u64>;
}

#[async_trait]
pub trait ReplayCache: Send + Sync {
    /// Remembers `(scope, jti)` until `expires_at`. True if it was new; false if already seen
    /// (a replay). Must be atomic across nodes (insert with a unique key).
    async fn remember_jti(&self, scope: &str, jti: &str, expires_at: i64) -> StoreResult<bool>;
}

#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Every signing key, newest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>>;
    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()>;
    /// Inserts each of `keys` whose algorithm has no stored key yet, checking and inserting
    /// as one step across nodes, so that nodes starting together store one first key per
    /// algorithm between them. How many of `keys` were stored.
    async fn insert_first_signing_keys(&self, keys: &[StoredKey]) -> StoreResult<u64>;
    /// Replaces key `kid`'s clear private JWK `clear` by its sealing `sealed` (and marks it
    /// sealed), only if the row still holds `clear`: one conditional statement, so nodes
    /// sealing at once store one sealing. Whether this call replaced it.
    async fn seal_signing_key(&self, kid: &str, clear: &str, sealed: &str) -> StoreResult<bool>;
}

/// Refresh tokens (RFC 6749 §6, rotated as RFC 9700 §4.14.2 asks) and access tokens revoked
/// before their expiry (RFC 7009).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Stores a new family with its first token, in one transaction.
    async fn insert_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshToken,
    ) -> StoreResult<()>;
    /// A token by the hash of its value, with its family.
    async fn get_refresh_token(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshToken, RefreshFamily)>>;
    /// The one use of token `old_hash` at `now`: in one transaction, marks it rotated (only if
    /// it was not, it has not expired, and its family is in force and unexpired) and stores
    /// `next` in its family. True for exactly one caller; false changes nothing.
    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: &RefreshToken,
        now: i64,
    ) -> StoreResult<bool>;
    /// Revokes a family at `now` and, until their expiry, the access tokens minted with its
    /// tokens. True if it was in force.
    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<bool>;
    /// [`TokenStore::revoke_refresh_family`] for every family of the user; how many.
    async fn revoke_user_refresh_families(&self, user_sub: &str, now: i64) -> StoreResult<u64>;
    /// Revokes an access token by `jti` until `expires_at` (when it is refused anyway).
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()>;
    async fn access_token_revoked(&self, jti: &str) -> StoreResult<bool>;
}

#[async_trait]
pub trait Health: Send + Sync {
    /// A cheap round trip to the database (readiness).
    async fn ping(&self) -> StoreResult<()>;
}

/// Every store capability, as the application holds them.
#[derive(Clone)]
pub struct Stores {
    pub clients: Arc<dyn ClientStore>,
    pub policies: Arc<dyn PolicyStore>,
    pub users: Arc<dyn UserStore>,
    pub devices: Arc<dyn DeviceStore>,
    pub requests: Arc<dyn AuthRequestStore>,
    pub outbox: Arc<dyn OutboxStore>,
    pub events: Arc<dyn DeviceEventStore>,
    pub pushes: Arc<dyn PushQueueStore>,
    pub replay: Arc<dyn ReplayCache>,
    pub keys: Arc<dyn KeyStore>,
    pub tokens: Arc<dyn TokenStore>,
    pub purge: Arc<dyn PurgeStore>,
    pub webauthn: Arc<dyn WebAuthnStore>,
    pub admissions: Arc<dyn AdmissionStore>,
    pub health: Arc<dyn Health>,
    /// The PostgreSQL pool when the backend is PostgreSQL: several nodes may share it, and
    /// the cluster notifier LISTENs on it.
    pub shared_pool: Option<sqlx::PgPool>,
}

impl Stores {
    /// One backend that implements every capability.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: ClientStore
            + PolicyStore
            + UserStore
            + DeviceStore
            + AuthRequestStore
            + OutboxStore
            + DeviceEventStore
            + PushQueueStore
            + ReplayCache
            + KeyStore
            + TokenStore
            + PurgeStore
            + WebAuthnStore
            + AdmissionStore
            + Health
            + 'static,
    {
        Stores {
            clients: backend.clone(),
            policies: backend.clone(),
            users: backend.clone(),
            devices: backend.clone(),
            requests: backend.clone(),
            outbox: backend.clone(),
            events: backend.clone(),
            pushes: backend.clone(),
            replay: backend.clone(),
            keys: backend.clone(),
            tokens: backend.clone(),
            purge: backend.clone(),
            webauthn: backend.clone(),
            admissions: backend.clone(),
            health: backend,
            shared_pool: None,
        }
    }

    /// Opens the backend the URL names (`sqlite://PATH` or `postgres://...`), creating the
    /// SQLite file if needed, and runs its migrations.
    pub async fn open(url: &str) -> StoreResult<Self> {
        if url.starts_with("sqlite:") {
            Ok(Stores::from_backend(Arc::new(
                sqlite::SqliteStore::open(url).await?,
            )))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let store = postgres::PgStore::open(url).await?;
            let pool = store.pool().clone();
            Ok(Stores {
                shared_pool: Some(pool),
                ..Stores::from_backend(Arc::new(store))
            })
        } else {
            Err(StoreError::Backend(format!(
                "unsupported database URL (expected sqlite:// or postgres://): {}",
                url.split(':').next().unwrap_or("")
            )))
        }
    }
}
