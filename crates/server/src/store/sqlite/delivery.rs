//! The delivery side on SQLite: the client notification outbox, the device push queue and the
//! device event log, with the statements [`crate::store::sql_delivery`] shares with
//! PostgreSQL. Leases and state changes are single conditional statements on the writer.

use async_trait::async_trait;

use super::SqliteStore;
use super::read::{all, execute, one};
use super::requests::{all_or_nothing, insert_notification};
use crate::domain::model::{
    AuthRequest, DeviceEvent, Notification, NotificationState, PushDelivery, PushDeliveryState,
};
use crate::store::rows::{self, RowExt as _, to_json};
use crate::store::sql_delivery as sql;
use crate::store::{DeviceEventStore, OutboxStore, PushQueueStore, StoreResult};

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn due_notifications(&self, now: i64, limit: i64) -> StoreResult<Vec<Notification>> {
        self.readers.read(|conn| {
            all(conn, sql::DUE_NOTIFICATIONS, &[&now, &limit], |r| {
                rows::notification(r)
            })
        })
    }

    async fn claim_notification(&self, id: &str, now: i64, lease_until: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        let claimed = self
            .writer
            .write(move |conn| execute(conn, sql::CLAIM_NOTIFICATION, &[&id, &now, &lease_until]))
            .await?;
        Ok(claimed == 1)
    }

    async fn attach_push_tokens(
        &self,
        notification_id: &str,
        auth_request_id: &str,
        payload: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (n, r, p) = (
            notification_id.to_owned(),
            auth_request_id.to_owned(),
            payload.to_owned(),
        );
        let attached = self
            .writer
            .write(move |conn| {
                all_or_nothing(conn, |conn| {
                    if execute(conn, crate::store::sql::REDEEM, &[&r, &now])? != 1 {
                        return Ok(None);
                    }
                    if execute(conn, sql::SET_NOTIFICATION_PAYLOAD, &[&n, &p])? != 1 {
                        return Ok(None);
                    }
                    Ok(Some(()))
                })
            })
            .await?;
        self.request_changed(auth_request_id);
        Ok(attached.is_some())
    }

    async fn finish_notification(
        &self,
        id: &str,
        state: NotificationState,
        now: i64,
        error: Option<&str>,
    ) -> StoreResult<()> {
        let (id, error) = (id.to_owned(), error.map(str::to_owned));
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::FINISH_NOTIFICATION,
                    &[&id, &state.as_str(), &now, &error],
                )
                .map(drop)
            })
            .await
    }

    async fn retry_notification(
        &self,
        id: &str,
        next_attempt_at: i64,
        error: &str,
    ) -> StoreResult<()> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::RETRY_NOTIFICATION,
                    &[&id, &next_attempt_at, &error],
                )
                .map(drop)
            })
            .await
    }

    async fn expired_unnotified_push(&self, now: i64) -> StoreResult<Vec<AuthRequest>> {
        self.readers.read(|conn| {
            all(conn, sql::EXPIRED_UNNOTIFIED_PUSH, &[&now], |r| {
                rows::auth_request(r)
            })
        })
    }

    async fn queue_notification(&self, n: &Notification) -> StoreResult<bool> {
        let n = n.clone();
        let queued = self
            .writer
            .write(move |conn| insert_notification(conn, &n))
            .await?;
        Ok(queued == 1)
    }

    async fn get_notification(&self, auth_request_id: &str) -> StoreResult<Option<Notification>> {
        self.readers.read(|conn| {
            one(conn, sql::GET_NOTIFICATION, &[&auth_request_id], |r| {
                rows::notification(r)
            })
        })
    }

    async fn release_notification_leases_at_start(&self, now: i64) -> StoreResult<u64> {
        let released = self
            .writer
            .write(move |conn| execute(conn, sql::RELEASE_NOTIFICATION_LEASES, &[&now]))
            .await?;
        Ok(released as u64)
    }

    async fn next_notification_at(&self) -> StoreResult<Option<i64>> {
        let next = self
            .readers
            .read(|conn| one(conn, sql::NEXT_NOTIFICATION_AT, &[], |r| r.opt_int("next")))?;
        Ok(next.flatten())
    }
}

#[async_trait]
impl PushQueueStore for SqliteStore {
    async fn due_push_deliveries(&self, now: i64, limit: i64) -> StoreResult<Vec<PushDelivery>> {
        self.readers.read(|conn| {
            all(conn, sql::DUE_PUSH_DELIVERIES, &[&now, &limit], |r| {
                rows::push_delivery(r)
            })
        })
    }

    async fn claim_push_delivery(
        &self,
        challenge_id: &str,
        now: i64,
        lease_until: i64,
    ) -> StoreResult<bool> {
        let id = challenge_id.to_owned();
        let claimed = self
            .writer
            .write(move |conn| execute(conn, sql::CLAIM_PUSH_DELIVERY, &[&id, &now, &lease_until]))
            .await?;
        Ok(claimed == 1)
    }

    async fn finish_push_delivery(
        &self,
        challenge_id: &str,
        state: PushDeliveryState,
        delivered: &[String],
        error: Option<&str>,
    ) -> StoreResult<()> {
        let (id, state, error) = (
            challenge_id.to_owned(),
            state.as_str(),
            error.map(str::to_owned),
        );
        let delivered = to_json(&delivered)?;
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::FINISH_PUSH_DELIVERY,
                    &[&id, &state, &delivered, &error],
                )
                .map(drop)
            })
            .await
    }

    async fn retry_push_delivery(
        &self,
        challenge_id: &str,
        next_attempt_at: i64,
        delivered: &[String],
        error: &str,
    ) -> StoreResult<()> {
        let (id, error) = (challenge_id.to_owned(), error.to_owned());
        let delivered = to_json(&delivered)?;
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::RETRY_PUSH_DELIVERY,
                    &[&id, &next_attempt_at, &delivered, &error],
                )
                .map(drop)
            })
            .await
    }

    async fn get_push_delivery(&self, challenge_id: &str) -> StoreResult<Option<PushDelivery>> {
        self.readers.read(|conn| {
            one(conn, sql::GET_PUSH_DELIVERY, &[&challenge_id], |r| {
                rows::push_delivery(r)
            })
        })
    }

    async fn release_push_leases_at_start(&self, now: i64) -> StoreResult<u64> {
        let released = self
            .writer
            .write(move |conn| execute(conn, sql::RELEASE_PUSH_LEASES, &[&now]))
            .await?;
        Ok(released as u64)
    }

    async fn next_push_delivery_at(&self) -> StoreResult<Option<i64>> {
        let next = self
            .readers
            .read(|conn| one(conn, sql::NEXT_PUSH_DELIVERY_AT, &[], |r| r.opt_int("next")))?;
        Ok(next.flatten())
    }
}

#[async_trait]
impl DeviceEventStore for SqliteStore {
    async fn device_events_since(
        &self,
        device_id: &str,
        after: i64,
        limit: i64,
    ) -> StoreResult<Vec<DeviceEvent>> {
        self.readers.read(|conn| {
            all(
                conn,
                sql::DEVICE_EVENTS_SINCE,
                &[&device_id, &after, &limit],
                |r| rows::device_event(r),
            )
        })
    }

    async fn latest_device_event(&self, device_id: &str) -> StoreResult<i64> {
        let latest = self.readers.read(|conn| {
            one(conn, sql::LATEST_DEVICE_EVENT, &[&device_id], |r| {
                r.opt_int("latest")
            })
        })?;
        Ok(latest.flatten().unwrap_or(0))
    }
}
