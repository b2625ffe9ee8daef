//! The SQL both backends run, written once: SQLite and PostgreSQL agree on `$n` parameters,
//! `RETURNING`, `ON CONFLICT DO NOTHING` and the schema's column names, so one set of
//! statements serves both. PostgreSQL runs them through sqlx with the trait implementations
//! below ([`impl_stores!`]); SQLite runs the same text through rusqlite on its single writer
//! ([`super::sqlite`]), binding `$n` by name.

use crate::domain::model::UserLookup;

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (id, name, auth_method, \
    secret_hash, jwks, jwks_uri, scopes, delivery_mode, notification_endpoint, \
    request_signing_alg, user_code_required, id_token_signing_alg, disabled, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub(crate) const GET_CLIENT: &str = "SELECT * FROM clients WHERE id = $1";
pub(crate) const LIST_CLIENTS: &str = "SELECT * FROM clients ORDER BY created_at, id";
pub(crate) const SET_CLIENT_DISABLED: &str = "UPDATE clients SET disabled = $2 WHERE id = $1";

pub(crate) const INSERT_USER: &str = "INSERT INTO users (sub, email, nric, username, phone, \
    claims, user_code_hash, disabled, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const GET_USER: &str = "SELECT * FROM users WHERE sub = $1";
pub(crate) const LIST_USERS: &str = "SELECT * FROM users ORDER BY created_at, sub";
pub(crate) const SET_USER_DISABLED: &str = "UPDATE users SET disabled = $2 WHERE sub = $1";

/// The statement that finds a user by one login-hint form, and the value to bind.
pub(crate) fn find_user(lookup: &UserLookup) -> (&'static str, &str) {
    match lookup {
        UserLookup::Sub(v) => (GET_USER, v),
        UserLookup::Nric(v) => ("SELECT * FROM users WHERE nric = $1", v),
        UserLookup::Email(v) => ("SELECT * FROM users WHERE email = $1", v),
        UserLookup::Username(v) => ("SELECT * FROM users WHERE username = $1", v),
        UserLookup::Phone(v) => ("SELECT * FROM users WHERE phone = $1", v),
    }
}

pub(crate) const INSERT_ENROLMENT: &str = "INSERT INTO enrolments (code_hash, user_sub, \
    created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)";
/// Consumes a code once: a second use, or a use after expiry, matches no row.
pub(crate) const CONSUME_ENROLMENT: &str = "UPDATE enrolments SET used_at = $2 \
    WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_sub";
pub(crate) const INSERT_DEVICE: &str = "INSERT INTO devices (id, user_sub, name, public_jwk, \
    push, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const GET_DEVICE: &str = "SELECT * FROM devices WHERE id = $1";
pub(crate) const LIST_DEVICES: &str =
    "SELECT * FROM devices WHERE user_sub = $1 ORDER BY created_at, id";
pub(crate) const SET_DEVICE_DISABLED: &str = "UPDATE devices SET disabled = $2 WHERE id = $1";
pub(crate) const SET_DEVICE_PUSH: &str = "UPDATE devices SET push = $2 WHERE id = $1";
/// A disabled device can no longer answer: its pending challenges close (at `$2`).
pub(crate) const CLOSE_DEVICE_CHALLENGES: &str = "UPDATE challenges \
    SET state = 'closed', decided_at = $2 WHERE device_id = $1 AND state = 'pending'";

pub(crate) const INSERT_AUTH_REQUEST: &str = "INSERT INTO auth_requests (id, client_id, \
    user_sub, scope, acr_values, binding_message, authorization_details, delivery_mode, \
    client_notification_token, created_at, expires_at, interval_secs, last_polled_at, state, \
    decided_at, user_verified, redeemed_at, auth_req_id) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
pub(crate) const INSERT_CHALLENGE: &str = "INSERT INTO challenges (id, auth_request_id, \
    device_id, state, created_at, decided_at, decision_jws) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const GET_AUTH_REQUEST: &str = "SELECT * FROM auth_requests WHERE id = $1";

/// The poll that keeps the interval (CIBA Core §7.3): the first poll, or one at least
/// `interval_secs` after the previous. One statement, so concurrent polls on several nodes
/// cannot both pass.
pub(crate) const POLL_ALLOWED: &str = "UPDATE auth_requests SET last_polled_at = $2 \
    WHERE id = $1 AND state = 'pending' \
    AND (last_polled_at IS NULL OR last_polled_at + interval_secs * 1000 <= $2)";
/// A poll that came too soon: `slow_down` raises the interval for the rest of the request's
/// life (CIBA Core §11) and the next interval runs from this poll.
pub(crate) const POLL_SLOW_DOWN: &str = "UPDATE auth_requests \
    SET interval_secs = interval_secs + $3, last_polled_at = $2 \
    WHERE id = $1 AND state = 'pending' RETURNING interval_secs";
pub(crate) const TOUCH_POLL: &str =
    "UPDATE auth_requests SET last_polled_at = $2 WHERE id = $1 AND state = 'pending'";
pub(crate) const REDEEM: &str = "UPDATE auth_requests SET state = 'redeemed', redeemed_at = $2 \
    WHERE id = $1 AND state = 'approved'";

/// A challenge (columns prefixed `ch_`) with its request (columns as named).
macro_rules! challenge_join {
    ($tail:literal) => {
        concat!(
            "SELECT c.id AS ch_id, c.auth_request_id AS ch_auth_request_id, \
             c.device_id AS ch_device_id, c.state AS ch_state, c.created_at AS ch_created_at, \
             c.decided_at AS ch_decided_at, c.decision_jws AS ch_decision_jws, r.* \
             FROM challenges c JOIN auth_requests r ON r.id = c.auth_request_id ",
            $tail
        )
    };
}
pub(crate) const GET_CHALLENGE: &str = challenge_join!("WHERE c.id = $1");
pub(crate) const LIST_PENDING_CHALLENGES: &str = challenge_join!(
    "WHERE c.device_id = $1 AND c.state = 'pending' AND r.state = 'pending' \
     AND r.expires_at > $2 ORDER BY c.created_at, c.id"
);

/// First step of a decision: the request of challenge `$1` (of device `$2`, still pending)
/// takes the outcome if it is still pending and unexpired at `$4`. Updating the request row
/// first makes every decider of one request queue on that row (PostgreSQL row lock), so the
/// losers see `state <> 'pending'` and match nothing, and no two deciders lock challenge rows
/// in opposite orders.
pub(crate) const DECIDE_REQUEST: &str = "UPDATE auth_requests \
    SET state = $3, decided_at = $4, user_verified = $5 \
    WHERE id = (SELECT auth_request_id FROM challenges \
                WHERE id = $1 AND device_id = $2 AND state = 'pending') \
    AND state = 'pending' AND expires_at > $4 RETURNING id";
pub(crate) const DECIDE_CHALLENGE: &str = "UPDATE challenges \
    SET state = $3, decided_at = $4, decision_jws = $5 \
    WHERE id = $1 AND device_id = $2 AND state = 'pending'";
pub(crate) const CLOSE_OTHER_CHALLENGES: &str = "UPDATE challenges \
    SET state = 'closed', decided_at = $3 \
    WHERE auth_request_id = $1 AND id <> $2 AND state = 'pending'";

pub(crate) const PURGE_CHALLENGES: &str = "DELETE FROM challenges WHERE auth_request_id IN \
    (SELECT id FROM auth_requests WHERE expires_at < $1)";
pub(crate) const PURGE_NOTIFICATIONS: &str = "DELETE FROM notifications WHERE auth_request_id \
    IN (SELECT id FROM auth_requests WHERE expires_at < $1)";
pub(crate) const PURGE_REQUESTS: &str = "DELETE FROM auth_requests WHERE expires_at < $1";

pub(crate) const REMEMBER_JTI: &str = "INSERT INTO replay_jtis (scope, jti, expires_at) \
    VALUES ($1, $2, $3) ON CONFLICT (scope, jti) DO NOTHING";
pub(crate) const PURGE_JTIS: &str = "DELETE FROM replay_jtis WHERE expires_at <= $1";

pub(crate) const INSERT_KEY: &str =
    "INSERT INTO signing_keys (kid, alg, private_jwk, created_at) VALUES ($1, $2, $3, $4)";
pub(crate) const LIST_KEYS: &str = "SELECT * FROM signing_keys ORDER BY created_at DESC, kid DESC";

pub(crate) const PING: &str = "SELECT 1";

/// The pieces both implementation macros need inside their scope, for database `$db`: row
/// and query types, execution helpers, and the notification insert (a decision queues one).
macro_rules! store_helpers {
    ($db:ty) => {
        type DbRow = <$db as Database>::Row;
        type Query<'q> = sqlx::query::Query<'q, $db, <$db as Database>::Arguments>;
        type Decode<T> = fn(&DbRow) -> StoreResult<T>;

        /// How many rows the statement changed.
        async fn affected<'c>(
            ex: impl Executor<'c, Database = $db>,
            q: Query<'_>,
        ) -> StoreResult<u64> {
            Ok(q.execute(ex).await.map_err(db_error)?.rows_affected())
        }

        async fn one<'c, T>(
            ex: impl Executor<'c, Database = $db>,
            q: Query<'_>,
            decode: Decode<T>,
        ) -> StoreResult<Option<T>> {
            let row = q.fetch_optional(ex).await.map_err(db_error)?;
            row.as_ref().map(decode).transpose()
        }

        async fn all<'c, T>(
            ex: impl Executor<'c, Database = $db>,
            q: Query<'_>,
            decode: Decode<T>,
        ) -> StoreResult<Vec<T>> {
            let rows = q.fetch_all(ex).await.map_err(db_error)?;
            rows.iter().map(decode).collect()
        }

        fn insert_notification(n: &Notification) -> Query<'_> {
            sqlx::query($crate::store::sql_delivery::INSERT_NOTIFICATION)
                .bind(&n.id)
                .bind(&n.auth_request_id)
                .bind(&n.client_id)
                .bind(n.kind.as_str())
                .bind(&n.payload)
                .bind(n.state.as_str())
                .bind(n.attempts)
                .bind(n.next_attempt_at)
                .bind(n.deadline)
                .bind(&n.last_error)
                .bind(n.created_at)
                .bind(n.delivered_at)
        }
    };
}
pub(crate) use store_helpers;

/// Implements the account, request, replay, key and health traits for backend type `$store`
/// over sqlx database `$db` (the delivery traits are in [`super::sql_delivery`]). The type has
/// a `pool` field and an inherent `async fn begin_write(&self) -> StoreResult<Transaction>`.
macro_rules! impl_stores {
    ($store:ty, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use backchannel_protocol::device::PushRegistration;
            use sqlx::{Database, Executor};

            use $crate::domain::model::{
                AuthRequest, Challenge, ChallengeState, Client, Device, Enrolment, Notification,
                StoredKey, User, UserLookup, VerifiedDecision,
            };
            use $crate::store::rows::{self, RowExt as _, db_error, opt_json, to_json};
            use $crate::store::{
                AuthRequestStore, ClientStore, DeviceStore, Health, KeyStore, PollGate,
                ReplayCache, StoreResult, UserStore,
            };
            use $crate::store::{sql, sql_delivery};

            $crate::store::sql::store_helpers!($db);

            #[async_trait]
            impl ClientStore for $store {
                async fn insert_client(&self, c: &Client) -> StoreResult<()> {
                    let q = sqlx::query(sql::INSERT_CLIENT)
                        .bind(&c.id)
                        .bind(&c.name)
                        .bind(c.auth_method.as_str())
                        .bind(&c.secret_hash)
                        .bind(opt_json(c.jwks.as_ref())?)
                        .bind(&c.jwks_uri)
                        .bind(to_json(&c.scopes)?)
                        .bind(c.delivery_mode.as_str())
                        .bind(&c.notification_endpoint)
                        .bind(c.request_signing_alg.map(|a| a.as_str()))
                        .bind(c.user_code_required)
                        .bind(c.id_token_signing_alg.as_str())
                        .bind(c.disabled)
                        .bind(c.created_at);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn get_client(&self, id: &str) -> StoreResult<Option<Client>> {
                    one(
                        &self.pool,
                        sqlx::query(sql::GET_CLIENT).bind(id),
                        rows::client,
                    )
                    .await
                }

                async fn list_clients(&self) -> StoreResult<Vec<Client>> {
                    all(&self.pool, sqlx::query(sql::LIST_CLIENTS), rows::client).await
                }

                async fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool> {
                    let q = sqlx::query(sql::SET_CLIENT_DISABLED)
                        .bind(id)
                        .bind(disabled);
                    Ok(affected(&self.pool, q).await? == 1)
                }
            }

            #[async_trait]
            impl UserStore for $store {
                async fn insert_user(&self, u: &User) -> StoreResult<()> {
                    let q = sqlx::query(sql::INSERT_USER)
                        .bind(&u.sub)
                        .bind(&u.email)
                        .bind(&u.nric)
                        .bind(&u.username)
                        .bind(&u.phone)
                        .bind(to_json(&u.claims)?)
                        .bind(&u.user_code_hash)
                        .bind(u.disabled)
                        .bind(u.created_at);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn get_user(&self, sub: &str) -> StoreResult<Option<User>> {
                    one(&self.pool, sqlx::query(sql::GET_USER).bind(sub), rows::user).await
                }

                async fn find_user(&self, lookup: &UserLookup) -> StoreResult<Option<User>> {
                    let (statement, value) = sql::find_user(lookup);
                    one(&self.pool, sqlx::query(statement).bind(value), rows::user).await
                }

                async fn list_users(&self) -> StoreResult<Vec<User>> {
                    all(&self.pool, sqlx::query(sql::LIST_USERS), rows::user).await
                }

                async fn set_user_disabled(&self, sub: &str, disabled: bool) -> StoreResult<bool> {
                    let q = sqlx::query(sql::SET_USER_DISABLED).bind(sub).bind(disabled);
                    Ok(affected(&self.pool, q).await? == 1)
                }
            }

            #[async_trait]
            impl DeviceStore for $store {
                async fn insert_enrolment(&self, e: &Enrolment) -> StoreResult<()> {
                    let q = sqlx::query(sql::INSERT_ENROLMENT)
                        .bind(&e.code_hash)
                        .bind(&e.user_sub)
                        .bind(e.created_at)
                        .bind(e.expires_at)
                        .bind(e.used_at);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn enrol_device(
                    &self,
                    code_hash: &str,
                    device: &Device,
                    now: i64,
                ) -> StoreResult<Option<Device>> {
                    let mut tx = self.begin_write().await?;
                    let consume = sqlx::query(sql::CONSUME_ENROLMENT)
                        .bind(code_hash)
                        .bind(now);
                    let Some(user_sub) = one(&mut *tx, consume, |r| r.text("user_sub")).await?
                    else {
                        tx.rollback().await.map_err(db_error)?;
                        return Ok(None);
                    };
                    let device = Device {
                        user_sub,
                        ..device.clone()
                    };
                    affected(&mut *tx, insert_device(&device)?).await?;
                    tx.commit().await.map_err(db_error)?;
                    Ok(Some(device))
                }

                async fn get_device(&self, id: &str) -> StoreResult<Option<Device>> {
                    one(
                        &self.pool,
                        sqlx::query(sql::GET_DEVICE).bind(id),
                        rows::device,
                    )
                    .await
                }

                async fn list_devices(&self, user_sub: &str) -> StoreResult<Vec<Device>> {
                    let q = sqlx::query(sql::LIST_DEVICES).bind(user_sub);
                    all(&self.pool, q, rows::device).await
                }

                async fn insert_device(&self, d: &Device) -> StoreResult<()> {
                    affected(&self.pool, insert_device(d)?).await.map(drop)
                }

                async fn set_device_push(
                    &self,
                    id: &str,
                    push: &PushRegistration,
                ) -> StoreResult<bool> {
                    let q = sqlx::query(sql::SET_DEVICE_PUSH)
                        .bind(id)
                        .bind(to_json(push)?);
                    Ok(affected(&self.pool, q).await? == 1)
                }

                async fn set_device_disabled(
                    &self,
                    id: &str,
                    disabled: bool,
                    now: i64,
                ) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let set = sqlx::query(sql::SET_DEVICE_DISABLED)
                        .bind(id)
                        .bind(disabled);
                    if affected(&mut *tx, set).await? != 1 {
                        tx.rollback().await.map_err(db_error)?;
                        return Ok(false);
                    }
                    if disabled {
                        let close = sqlx::query(sql::CLOSE_DEVICE_CHALLENGES).bind(id).bind(now);
                        affected(&mut *tx, close).await?;
                    }
                    tx.commit().await.map_err(db_error)?;
                    Ok(true)
                }
            }

            #[async_trait]
            impl AuthRequestStore for $store {
                async fn create_auth_request(
                    &self,
                    r: &AuthRequest,
                    challenges: &[Challenge],
                    push_devices: &[String],
                ) -> StoreResult<()> {
                    let mut tx = self.begin_write().await?;
                    let insert = sqlx::query(sql::INSERT_AUTH_REQUEST)
                        .bind(&r.id)
                        .bind(&r.client_id)
                        .bind(&r.user_sub)
                        .bind(&r.scope)
                        .bind(&r.acr_values)
                        .bind(&r.binding_message)
                        .bind(opt_json(r.authorization_details.as_ref())?)
                        .bind(r.delivery_mode.as_str())
                        .bind(&r.client_notification_token)
                        .bind(r.created_at)
                        .bind(r.expires_at)
                        .bind(r.interval_secs)
                        .bind(r.last_polled_at)
                        .bind(r.state.as_str())
                        .bind(r.decided_at)
                        .bind(r.user_verified)
                        .bind(r.redeemed_at)
                        .bind(&r.auth_req_id);
                    affected(&mut *tx, insert).await?;
                    for c in challenges {
                        let insert = sqlx::query(sql::INSERT_CHALLENGE)
                            .bind(&c.id)
                            .bind(&c.auth_request_id)
                            .bind(&c.device_id)
                            .bind(c.state.as_str())
                            .bind(c.created_at)
                            .bind(c.decided_at)
                            .bind(&c.decision_jws);
                        affected(&mut *tx, insert).await?;
                        let event = sqlx::query(sql_delivery::INSERT_CHALLENGE_EVENT)
                            .bind(&c.device_id)
                            .bind(&c.id)
                            .bind(c.created_at);
                        affected(&mut *tx, event).await?;
                        if !push_devices.contains(&c.device_id) {
                            continue;
                        }
                        let push = sqlx::query(sql_delivery::INSERT_PUSH_DELIVERY)
                            .bind(&c.id)
                            .bind(&c.device_id)
                            .bind(c.created_at)
                            .bind(r.expires_at);
                        affected(&mut *tx, push).await?;
                    }
                    tx.commit().await.map_err(db_error)
                }

                async fn get_auth_request(&self, id: &str) -> StoreResult<Option<AuthRequest>> {
                    let q = sqlx::query(sql::GET_AUTH_REQUEST).bind(id);
                    one(&self.pool, q, rows::auth_request).await
                }

                async fn record_poll(
                    &self,
                    id: &str,
                    now: i64,
                    slow_down_increment_secs: i64,
                ) -> StoreResult<PollGate> {
                    let allowed = sqlx::query(sql::POLL_ALLOWED).bind(id).bind(now);
                    if affected(&self.pool, allowed).await? == 1 {
                        return Ok(PollGate::Allowed);
                    }
                    let slow = sqlx::query(sql::POLL_SLOW_DOWN)
                        .bind(id)
                        .bind(now)
                        .bind(slow_down_increment_secs);
                    // No row: the request is gone or no longer pending; the domain, which
                    // checked its state first, answers from the state.
                    Ok(
                        match one(&self.pool, slow, |r| r.int("interval_secs")).await? {
                            None => PollGate::Allowed,
                            Some(interval_secs) => PollGate::SlowDown { interval_secs },
                        },
                    )
                }

                async fn touch_poll(&self, id: &str, now: i64) -> StoreResult<()> {
                    affected(&self.pool, sqlx::query(sql::TOUCH_POLL).bind(id).bind(now)).await?;
                    Ok(())
                }

                async fn redeem(&self, id: &str, now: i64) -> StoreResult<bool> {
                    let q = sqlx::query(sql::REDEEM).bind(id).bind(now);
                    Ok(affected(&self.pool, q).await? == 1)
                }

                async fn list_pending_challenges(
                    &self,
                    device_id: &str,
                    now: i64,
                ) -> StoreResult<Vec<(Challenge, AuthRequest)>> {
                    let q = sqlx::query(sql::LIST_PENDING_CHALLENGES)
                        .bind(device_id)
                        .bind(now);
                    all(&self.pool, q, rows::challenge_with_request).await
                }

                async fn get_challenge(
                    &self,
                    id: &str,
                ) -> StoreResult<Option<(Challenge, AuthRequest)>> {
                    let q = sqlx::query(sql::GET_CHALLENGE).bind(id);
                    one(&self.pool, q, rows::challenge_with_request).await
                }

                async fn record_decision(&self, d: &VerifiedDecision) -> StoreResult<bool> {
                    let (request_state, challenge_state) = if d.approved {
                        ("approved", ChallengeState::Approved)
                    } else {
                        ("denied", ChallengeState::Denied)
                    };
                    let mut tx = self.begin_write().await?;
                    let decide_request = sqlx::query(sql::DECIDE_REQUEST)
                        .bind(&d.challenge_id)
                        .bind(&d.device_id)
                        .bind(request_state)
                        .bind(d.decided_at)
                        .bind(d.user_verified);
                    let Some(request_id) = one(&mut *tx, decide_request, |r| r.text("id")).await?
                    else {
                        tx.rollback().await.map_err(db_error)?;
                        return Ok(false);
                    };
                    let decide_challenge = sqlx::query(sql::DECIDE_CHALLENGE)
                        .bind(&d.challenge_id)
                        .bind(&d.device_id)
                        .bind(challenge_state.as_str())
                        .bind(d.decided_at)
                        .bind(&d.decision_jws);
                    if affected(&mut *tx, decide_challenge).await? != 1 {
                        // Closed meanwhile (its device was disabled): nothing changes.
                        tx.rollback().await.map_err(db_error)?;
                        return Ok(false);
                    }
                    let close_others = sqlx::query(sql::CLOSE_OTHER_CHALLENGES)
                        .bind(&request_id)
                        .bind(&d.challenge_id)
                        .bind(d.decided_at);
                    affected(&mut *tx, close_others).await?;
                    let closed_events = sqlx::query(sql_delivery::INSERT_CLOSED_EVENTS)
                        .bind(&request_id)
                        .bind(&d.challenge_id)
                        .bind(d.decided_at);
                    affected(&mut *tx, closed_events).await?;
                    if let Some(n) = &d.notification {
                        affected(&mut *tx, insert_notification(n)).await?;
                    }
                    tx.commit().await.map_err(db_error)?;
                    Ok(true)
                }

                async fn request_challenges(
                    &self,
                    auth_request_id: &str,
                ) -> StoreResult<Vec<Challenge>> {
                    all(
                        &self.pool,
                        sqlx::query(sql_delivery::REQUEST_CHALLENGES).bind(auth_request_id),
                        rows::challenge,
                    )
                    .await
                }

                async fn purge_expired_requests(&self, before: i64) -> StoreResult<u64> {
                    let mut tx = self.begin_write().await?;
                    affected(&mut *tx, sqlx::query(sql::PURGE_CHALLENGES).bind(before)).await?;
                    affected(&mut *tx, sqlx::query(sql::PURGE_NOTIFICATIONS).bind(before)).await?;
                    affected(
                        &mut *tx,
                        sqlx::query(sql_delivery::PURGE_PUSH_DELIVERIES).bind(before),
                    )
                    .await?;
                    let purged =
                        affected(&mut *tx, sqlx::query(sql::PURGE_REQUESTS).bind(before)).await?;
                    tx.commit().await.map_err(db_error)?;
                    Ok(purged)
                }
            }

            #[async_trait]
            impl ReplayCache for $store {
                async fn remember_jti(
                    &self,
                    scope: &str,
                    jti: &str,
                    expires_at: i64,
                ) -> StoreResult<bool> {
                    let q = sqlx::query(sql::REMEMBER_JTI)
                        .bind(scope)
                        .bind(jti)
                        .bind(expires_at);
                    Ok(affected(&self.pool, q).await? == 1)
                }

                async fn purge_expired_jtis(&self, now: i64) -> StoreResult<u64> {
                    affected(&self.pool, sqlx::query(sql::PURGE_JTIS).bind(now)).await
                }
            }

            #[async_trait]
            impl KeyStore for $store {
                async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
                    all(&self.pool, sqlx::query(sql::LIST_KEYS), rows::stored_key).await
                }

                async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
                    let q = sqlx::query(sql::INSERT_KEY)
                        .bind(&key.kid)
                        .bind(key.alg.as_str())
                        .bind(&key.private_jwk)
                        .bind(key.created_at);
                    affected(&self.pool, q).await.map(drop)
                }
            }

            fn insert_device(d: &Device) -> StoreResult<Query<'_>> {
                Ok(sqlx::query(sql::INSERT_DEVICE)
                    .bind(&d.id)
                    .bind(&d.user_sub)
                    .bind(&d.name)
                    .bind(to_json(&d.public_jwk)?)
                    .bind(to_json(&d.push)?)
                    .bind(d.disabled)
                    .bind(d.created_at))
            }

            #[async_trait]
            impl Health for $store {
                async fn ping(&self) -> StoreResult<()> {
                    (&self.pool)
                        .execute(sql::PING)
                        .await
                        .map_err(db_error)
                        .map(drop)
                }
            }
        };
    };
}
pub(crate) use impl_stores;

/// The migrations of one backend, embedded in the binary, as sqlx runs them: in order, each
/// once, recorded in `_sqlx_migrations` (with a checksum that refuses an edited migration).
pub(crate) fn migrator(scripts: &[(i64, &'static str, &'static str)]) -> sqlx::migrate::Migrator {
    use sqlx::SqlSafeStr;
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        scripts
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}
