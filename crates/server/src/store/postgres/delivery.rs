//! The client notification outbox, the device push queue and the device event log on
//! PostgreSQL.

use async_trait::async_trait;

use super::{PgStore, affected, all, insert_notification, one};
use crate::domain::model::{
    AuthRequest, DeviceEvent, Notification, NotificationState, PushDelivery, PushDeliveryState,
};
use crate::store::rows::{self, RowExt as _, db_error, to_json};
use crate::store::sql_delivery as sql;
use crate::store::{DeviceEventStore, OutboxStore, PushQueueStore, StoreResult};

#[async_trait]
impl OutboxStore for PgStore {
    async fn due_notifications(&self, now: i64, limit: i64) -> StoreResult<Vec<Notification>> {
        let q = sqlx::query(sql::DUE_NOTIFICATIONS).bind(now).bind(limit);
        all(&self.pool, q, rows::notification).await
    }

    async fn claim_notification(&self, id: &str, now: i64, lease_until: i64) -> StoreResult<bool> {
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
        let redeem = sqlx::query(crate::store::sql::REDEEM)
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

    async fn get_notification(&self, auth_request_id: &str) -> StoreResult<Option<Notification>> {
        one(
            &self.pool,
            sqlx::query(sql::GET_NOTIFICATION).bind(auth_request_id),
            rows::notification,
        )
        .await
    }

    async fn release_notification_leases_at_start(&self, _now: i64) -> StoreResult<u64> {
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
impl PushQueueStore for PgStore {
    async fn due_push_deliveries(&self, now: i64, limit: i64) -> StoreResult<Vec<PushDelivery>> {
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
        state: PushDeliveryState,
        delivered: &[String],
        error: Option<&str>,
    ) -> StoreResult<()> {
        let q = sqlx::query(sql::FINISH_PUSH_DELIVERY)
            .bind(challenge_id)
            .bind(state.as_str())
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

    async fn get_push_delivery(&self, challenge_id: &str) -> StoreResult<Option<PushDelivery>> {
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
impl DeviceEventStore for PgStore {
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
}
