//! Clients, users, enrolments and devices on PostgreSQL. A client by id, a user by sub or
//! hint and a user's devices come from the store's short-lived cache
//! (`super::CACHE_MAX_AGE`); each write here invalidates what it changed.

use async_trait::async_trait;
use backchannel_protocol::device::PushRegistration;

use super::{PgStore, Query, affected, all, one};
use crate::domain::model::{Client, Device, Enrolment, User, UserLookup};
use crate::store::cache::hint_key;
use crate::store::rows::{self, RowExt as _, db_error, opt_json, to_json};
use crate::store::{ClientStore, DeviceStore, StoreResult, UserStore, sql};

#[async_trait]
impl ClientStore for PgStore {
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
            .bind(c.created_at)
            .bind(c.id_token_encryption.map(|e| e.alg.as_str()))
            .bind(c.id_token_encryption.map(|e| e.enc.as_str()))
            .bind(c.refresh_tokens);
        affected(&self.pool, q).await.map(drop)
    }

    async fn get_client(&self, id: &str) -> StoreResult<Option<Client>> {
        let load = one(
            &self.pool,
            sqlx::query(sql::GET_CLIENT).bind(id),
            rows::client,
        );
        self.cache.clients.get_or_load_async(id, load).await
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        all(&self.pool, sqlx::query(sql::LIST_CLIENTS), rows::client).await
    }

    async fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool> {
        let q = sqlx::query(sql::SET_CLIENT_DISABLED)
            .bind(id)
            .bind(disabled);
        let changed = affected(&self.pool, q).await? == 1;
        self.cache.clients.invalidate(id);
        Ok(changed)
    }
}

#[async_trait]
impl UserStore for PgStore {
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
        let load = one(&self.pool, sqlx::query(sql::GET_USER).bind(sub), rows::user);
        self.cache.users.get_or_load_async(sub, load).await
    }

    async fn find_user(&self, lookup: &UserLookup) -> StoreResult<Option<User>> {
        let (statement, value) = sql::find_user(lookup);
        let load = one(&self.pool, sqlx::query(statement).bind(value), rows::user);
        self.cache
            .hints
            .get_or_load_async(&hint_key(lookup), load)
            .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        all(&self.pool, sqlx::query(sql::LIST_USERS), rows::user).await
    }

    async fn set_user_disabled(&self, sub: &str, disabled: bool) -> StoreResult<bool> {
        let q = sqlx::query(sql::SET_USER_DISABLED).bind(sub).bind(disabled);
        let changed = affected(&self.pool, q).await? == 1;
        self.cache.users.invalidate(sub);
        // The hints naming the user are not known here.
        self.cache.hints.clear();
        Ok(changed)
    }
}

#[async_trait]
impl DeviceStore for PgStore {
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
        let Some(user_sub) = one(&mut *tx, consume, |r| r.text("user_sub")).await? else {
            tx.rollback().await.map_err(db_error)?;
            return Ok(None);
        };
        let device = Device {
            user_sub,
            ..device.clone()
        };
        affected(&mut *tx, insert_device(&device)?).await?;
        tx.commit().await.map_err(db_error)?;
        self.cache.user_devices.invalidate(&device.user_sub);
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
        let load = async { all(&self.pool, q, rows::device).await.map(Some) };
        let listed = self
            .cache
            .user_devices
            .get_or_load_async(user_sub, load)
            .await?;
        Ok(listed.unwrap_or_default())
    }

    async fn insert_device(&self, d: &Device) -> StoreResult<()> {
        affected(&self.pool, insert_device(d)?).await?;
        self.cache.user_devices.invalidate(&d.user_sub);
        Ok(())
    }

    async fn set_device_push(&self, id: &str, push: &PushRegistration) -> StoreResult<bool> {
        let q = sqlx::query(sql::SET_DEVICE_PUSH)
            .bind(id)
            .bind(to_json(push)?);
        let changed = affected(&self.pool, q).await? == 1;
        // The device's user is not known here.
        self.cache.user_devices.clear();
        Ok(changed)
    }

    async fn set_device_disabled(&self, id: &str, disabled: bool, now: i64) -> StoreResult<bool> {
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
        self.cache.user_devices.clear();
        Ok(true)
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
