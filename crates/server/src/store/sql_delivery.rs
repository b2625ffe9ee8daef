//! The SQL of the delivery side — the client notification outbox, the device push queue and
//! the device event log — shared by both backends like [`super::sql`], and its sqlx trait
//! implementations for PostgreSQL.

pub(crate) const INSERT_PUSH_DELIVERY: &str = "INSERT INTO push_deliveries (challenge_id, \
    device_id, state, next_attempt_at, deadline, created_at) VALUES ($1, $2, 'pending', $3, $4, $3)";
pub(crate) const DUE_PUSH_DELIVERIES: &str = "SELECT * FROM push_deliveries \
    WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, challenge_id LIMIT $2";
pub(crate) const CLAIM_PUSH_DELIVERY: &str = "UPDATE push_deliveries \
    SET attempts = attempts + 1, next_attempt_at = $3, leased_until = $3 \
    WHERE challenge_id = $1 AND state = 'pending' AND next_attempt_at <= $2";
pub(crate) const FINISH_PUSH_DELIVERY: &str = "UPDATE push_deliveries \
    SET state = $2, delivered = $3, last_error = $4, leased_until = NULL WHERE challenge_id = $1 AND state = 'pending'";
pub(crate) const RETRY_PUSH_DELIVERY: &str = "UPDATE push_deliveries \
    SET next_attempt_at = $2, delivered = $3, last_error = $4, leased_until = NULL \
    WHERE challenge_id = $1 AND state = 'pending'";
/// A restart of the only node on a database: the leases its previous run held are dead, and
/// what they held is due again now.
pub(crate) const RELEASE_PUSH_LEASES: &str = "UPDATE push_deliveries \
    SET next_attempt_at = $1, leased_until = NULL \
    WHERE state = 'pending' AND leased_until IS NOT NULL";
pub(crate) const RELEASE_NOTIFICATION_LEASES: &str = "UPDATE notifications \
    SET next_attempt_at = $1, leased_until = NULL \
    WHERE state = 'pending' AND leased_until IS NOT NULL";
pub(crate) const GET_PUSH_DELIVERY: &str = "SELECT * FROM push_deliveries WHERE challenge_id = $1";
pub(crate) const NEXT_PUSH_DELIVERY_AT: &str =
    "SELECT MIN(next_attempt_at) AS next FROM push_deliveries WHERE state = 'pending'";
pub(crate) const PURGE_PUSH_DELIVERIES: &str = "DELETE FROM push_deliveries WHERE deadline < $1";

pub(crate) const INSERT_CHALLENGE_EVENT: &str = "INSERT INTO device_events (device_id, kind, \
    challenge_id, created_at) VALUES ($1, 'challenge', $2, $3)";
/// Every other device of the request learns that its challenge is closed.
pub(crate) const INSERT_CLOSED_EVENTS: &str = "INSERT INTO device_events (device_id, kind, \
    challenge_id, created_at) SELECT device_id, 'challenge_closed', id, $3 FROM challenges \
    WHERE auth_request_id = $1 AND id <> $2";
pub(crate) const DEVICE_EVENTS_SINCE: &str = "SELECT * FROM device_events \
    WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
pub(crate) const LATEST_DEVICE_EVENT: &str =
    "SELECT MAX(seq) AS latest FROM device_events WHERE device_id = $1";
pub(crate) const PURGE_DEVICE_EVENTS: &str = "DELETE FROM device_events WHERE created_at < $1";
pub(crate) const REQUEST_CHALLENGES: &str =
    "SELECT * FROM challenges WHERE auth_request_id = $1 ORDER BY created_at, id";

pub(crate) const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (id, auth_request_id, \
    client_id, kind, payload, state, attempts, next_attempt_at, deadline, last_error, \
    created_at, delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (auth_request_id) DO NOTHING";
pub(crate) const DUE_NOTIFICATIONS: &str = "SELECT * FROM notifications \
    WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2";
/// A lease: one worker takes the attempt; the others see `next_attempt_at` in the future.
pub(crate) const CLAIM_NOTIFICATION: &str = "UPDATE notifications \
    SET attempts = attempts + 1, next_attempt_at = $3, leased_until = $3 \
    WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $2";
pub(crate) const SET_NOTIFICATION_PAYLOAD: &str =
    "UPDATE notifications SET payload = $2 WHERE id = $1 AND payload IS NULL";
pub(crate) const FINISH_NOTIFICATION: &str = "UPDATE notifications \
    SET state = $2, delivered_at = $3, last_error = $4, leased_until = NULL WHERE id = $1 AND state = 'pending'";
pub(crate) const RETRY_NOTIFICATION: &str = "UPDATE notifications \
    SET next_attempt_at = $2, last_error = $3, leased_until = NULL WHERE id = $1 AND state = 'pending'";
/// Push requests that expired undecided and were never notified.
pub(crate) const EXPIRED_UNNOTIFIED_PUSH: &str = "SELECT r.* FROM auth_requests r \
    WHERE r.delivery_mode = 'push' AND r.state = 'pending' AND r.expires_at <= $1 \
    AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.auth_request_id = r.id) \
    ORDER BY r.expires_at LIMIT 100";
pub(crate) const GET_NOTIFICATION: &str = "SELECT * FROM notifications WHERE auth_request_id = $1";
pub(crate) const NEXT_NOTIFICATION_AT: &str =
    "SELECT MIN(next_attempt_at) AS next FROM notifications WHERE state = 'pending'";

/// Implements the outbox, push queue and device event traits for backend type `$store` over
/// database `$db`.
macro_rules! impl_delivery_stores {
    ($store:ty, $db:ty) => {
        const _: () = {
            use async_trait::async_trait;
            use sqlx::{Database, Executor};

            use $crate::domain::model::{
                AuthRequest, DeviceEvent, Notification, NotificationState, PushDelivery,
            };
            use $crate::store::rows::{self, RowExt as _, db_error, to_json};
            use $crate::store::sql_delivery as sql;
            use $crate::store::{DeviceEventStore, OutboxStore, PushQueueStore, StoreResult};

            $crate::store::sql::store_helpers!($db);

            #[async_trait]
            impl OutboxStore for $store {
                async fn due_notifications(
                    &self,
                    now: i64,
                    limit: i64,
                ) -> StoreResult<Vec<Notification>> {
                    let q = sqlx::query(sql::DUE_NOTIFICATIONS).bind(now).bind(limit);
                    all(&self.pool, q, rows::notification).await
                }

                async fn claim_notification(
                    &self,
                    id: &str,
                    now: i64,
                    lease_until: i64,
                ) -> StoreResult<bool> {
                    let q = sqlx::query(sql::CLAIM_NOTIFICATION)
                        .bind(id)
                        .bind(now)
                        .bind(lease_until);
                    Ok(affected(&self.pool, q).await? == 1)
                }

                async fn attach_push_tokens(
                    &self,
                    notification_id: &str,
                    auth_request_id: &str,
                    payload: &str,
                    now: i64,
                ) -> StoreResult<bool> {
                    let mut tx = self.begin_write().await?;
                    let redeem = sqlx::query($crate::store::sql::REDEEM)
                        .bind(auth_request_id)
                        .bind(now);
                    if affected(&mut *tx, redeem).await? != 1 {
                        tx.rollback().await.map_err(db_error)?;
                        return Ok(false);
                    }
                    let set = sqlx::query(sql::SET_NOTIFICATION_PAYLOAD)
                        .bind(notification_id)
                        .bind(payload);
                    if affected(&mut *tx, set).await? != 1 {
                        tx.rollback().await.map_err(db_error)?;
                        return Ok(false);
                    }
                    tx.commit().await.map_err(db_error)?;
                    Ok(true)
                }

                async fn finish_notification(
                    &self,
                    id: &str,
                    state: NotificationState,
                    now: i64,
                    error: Option<&str>,
                ) -> StoreResult<()> {
                    let q = sqlx::query(sql::FINISH_NOTIFICATION)
                        .bind(id)
                        .bind(state.as_str())
                        .bind(now)
                        .bind(error);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn retry_notification(
                    &self,
                    id: &str,
                    next_attempt_at: i64,
                    error: &str,
                ) -> StoreResult<()> {
                    let q = sqlx::query(sql::RETRY_NOTIFICATION)
                        .bind(id)
                        .bind(next_attempt_at)
                        .bind(error);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn expired_unnotified_push(&self, now: i64) -> StoreResult<Vec<AuthRequest>> {
                    all(
                        &self.pool,
                        sqlx::query(sql::EXPIRED_UNNOTIFIED_PUSH).bind(now),
                        rows::auth_request,
                    )
                    .await
                }

                async fn queue_notification(&self, n: &Notification) -> StoreResult<bool> {
                    Ok(affected(&self.pool, insert_notification(n)).await? == 1)
                }

                async fn get_notification(
                    &self,
                    auth_request_id: &str,
                ) -> StoreResult<Option<Notification>> {
                    one(
                        &self.pool,
                        sqlx::query(sql::GET_NOTIFICATION).bind(auth_request_id),
                        rows::notification,
                    )
                    .await
                }

                async fn release_notification_leases_at_start(
                    &self,
                    _now: i64,
                ) -> StoreResult<u64> {
                    Ok(0)
                }

                async fn next_notification_at(&self) -> StoreResult<Option<i64>> {
                    let next = one(&self.pool, sqlx::query(sql::NEXT_NOTIFICATION_AT), |r| {
                        r.opt_int("next")
                    })
                    .await?;
                    Ok(next.flatten())
                }
            }

            #[async_trait]
            impl PushQueueStore for $store {
                async fn due_push_deliveries(
                    &self,
                    now: i64,
                    limit: i64,
                ) -> StoreResult<Vec<PushDelivery>> {
                    all(
                        &self.pool,
                        sqlx::query(sql::DUE_PUSH_DELIVERIES).bind(now).bind(limit),
                        rows::push_delivery,
                    )
                    .await
                }

                async fn claim_push_delivery(
                    &self,
                    challenge_id: &str,
                    now: i64,
                    lease_until: i64,
                ) -> StoreResult<bool> {
                    let q = sqlx::query(sql::CLAIM_PUSH_DELIVERY)
                        .bind(challenge_id)
                        .bind(now)
                        .bind(lease_until);
                    Ok(affected(&self.pool, q).await? == 1)
                }

                async fn finish_push_delivery(
                    &self,
                    challenge_id: &str,
                    state: &str,
                    delivered: &[String],
                    error: Option<&str>,
                ) -> StoreResult<()> {
                    let q = sqlx::query(sql::FINISH_PUSH_DELIVERY)
                        .bind(challenge_id)
                        .bind(state)
                        .bind(to_json(&delivered)?)
                        .bind(error);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn retry_push_delivery(
                    &self,
                    challenge_id: &str,
                    next_attempt_at: i64,
                    delivered: &[String],
                    error: &str,
                ) -> StoreResult<()> {
                    let q = sqlx::query(sql::RETRY_PUSH_DELIVERY)
                        .bind(challenge_id)
                        .bind(next_attempt_at)
                        .bind(to_json(&delivered)?)
                        .bind(error);
                    affected(&self.pool, q).await.map(drop)
                }

                async fn get_push_delivery(
                    &self,
                    challenge_id: &str,
                ) -> StoreResult<Option<PushDelivery>> {
                    one(
                        &self.pool,
                        sqlx::query(sql::GET_PUSH_DELIVERY).bind(challenge_id),
                        rows::push_delivery,
                    )
                    .await
                }

                async fn release_push_leases_at_start(&self, _now: i64) -> StoreResult<u64> {
                    Ok(0)
                }

                async fn next_push_delivery_at(&self) -> StoreResult<Option<i64>> {
                    let next = one(&self.pool, sqlx::query(sql::NEXT_PUSH_DELIVERY_AT), |r| {
                        r.opt_int("next")
                    })
                    .await?;
                    Ok(next.flatten())
                }
            }

            #[async_trait]
            impl DeviceEventStore for $store {
                async fn device_events_since(
                    &self,
                    device_id: &str,
                    after: i64,
                    limit: i64,
                ) -> StoreResult<Vec<DeviceEvent>> {
                    let q = sqlx::query(sql::DEVICE_EVENTS_SINCE)
                        .bind(device_id)
                        .bind(after)
                        .bind(limit);
                    all(&self.pool, q, rows::device_event).await
                }

                async fn latest_device_event(&self, device_id: &str) -> StoreResult<i64> {
                    let latest = one(
                        &self.pool,
                        sqlx::query(sql::LATEST_DEVICE_EVENT).bind(device_id),
                        |r| r.opt_int("latest"),
                    )
                    .await?;
                    Ok(latest.flatten().unwrap_or(0))
                }

                async fn purge_device_events(&self, before: i64) -> StoreResult<u64> {
                    affected(
                        &self.pool,
                        sqlx::query(sql::PURGE_DEVICE_EVENTS).bind(before),
                    )
                    .await
                }
            }
        };
    };
}
pub(crate) use impl_delivery_stores;
