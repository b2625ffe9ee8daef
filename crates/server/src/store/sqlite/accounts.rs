//! Clients, users, devices, the replay cache, signing keys and health on SQLite. Records that
//! every request reads (a client by id, a user by hint, a user's devices, a device by id) come
//! from memory when they can; each write here invalidates what it changed once it committed.

use async_trait::async_trait;
use backchannel_protocol::device::PushRegistration;

use super::SqliteStore;
use super::read::{all, execute, one};
use crate::domain::model::{Client, Device, Enrolment, StoredKey, User, UserLookup};
use crate::store::cache::hint_key;
use crate::store::rows::{self, RowExt as _, opt_json, to_json};
use crate::store::sql;
use crate::store::{
    ClientStore, DeviceStore, Health, KeyStore, ReplayCache, StoreResult, UserStore,
};

#[async_trait]
impl ClientStore for SqliteStore {
    async fn insert_client(&self, c: &Client) -> StoreResult<()> {
        let c = c.clone();
        self.writer
            .write(move |conn| {
                let jwks = opt_json(c.jwks.as_ref())?;
                let scopes = to_json(&c.scopes)?;
                execute(
                    conn,
                    sql::INSERT_CLIENT,
                    &[
                        &c.id,
                        &c.name,
                        &c.auth_method.as_str(),
                        &c.secret_hash,
                        &jwks,
                        &c.jwks_uri,
                        &scopes,
                        &c.delivery_mode.as_str(),
                        &c.notification_endpoint,
                        &c.request_signing_alg.map(|a| a.as_str()),
                        &c.user_code_required,
                        &c.id_token_signing_alg.as_str(),
                        &c.disabled,
                        &c.created_at,
                        &c.id_token_encryption.map(|e| e.alg.as_str()),
                        &c.id_token_encryption.map(|e| e.enc.as_str()),
                        &c.refresh_tokens,
                    ],
                )
                .map(drop)
            })
            .await?;
        Ok(())
    }

    async fn get_client(&self, id: &str) -> StoreResult<Option<Client>> {
        self.cache.clients.get_or_load(id, || {
            self.readers
                .read(|conn| one(conn, sql::GET_CLIENT, &[&id], |r| rows::client(r)))
        })
    }

    async fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.readers
            .read(|conn| all(conn, sql::LIST_CLIENTS, &[], |r| rows::client(r)))
    }

    async fn set_client_disabled(&self, id: &str, disabled: bool) -> StoreResult<bool> {
        let owned = id.to_owned();
        let changed = self
            .writer
            .write(move |conn| execute(conn, sql::SET_CLIENT_DISABLED, &[&owned, &disabled]))
            .await?;
        self.cache.clients.invalidate(id);
        Ok(changed == 1)
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn insert_user(&self, u: &User) -> StoreResult<()> {
        let u = u.clone();
        self.writer
            .write(move |conn| {
                let claims = to_json(&u.claims)?;
                execute(
                    conn,
                    sql::INSERT_USER,
                    &[
                        &u.sub,
                        &u.email,
                        &u.nric,
                        &u.username,
                        &u.phone,
                        &claims,
                        &u.user_code_hash,
                        &u.disabled,
                        &u.created_at,
                    ],
                )
                .map(drop)
            })
            .await?;
        // No cached lookup can name the new user, but a hint may now find it.
        self.cache.clear_users();
        Ok(())
    }

    async fn get_user(&self, sub: &str) -> StoreResult<Option<User>> {
        self.cache.users.get_or_load(sub, || {
            self.readers
                .read(|conn| one(conn, sql::GET_USER, &[&sub], |r| rows::user(r)))
        })
    }

    async fn find_user(&self, lookup: &UserLookup) -> StoreResult<Option<User>> {
        self.cache.hints.get_or_load(&hint_key(lookup), || {
            let (statement, value) = sql::find_user(lookup);
            self.readers
                .read(|conn| one(conn, statement, &[&value], |r| rows::user(r)))
        })
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.readers
            .read(|conn| all(conn, sql::LIST_USERS, &[], |r| rows::user(r)))
    }

    async fn set_user_disabled(&self, sub: &str, disabled: bool) -> StoreResult<bool> {
        let owned = sub.to_owned();
        let changed = self
            .writer
            .write(move |conn| execute(conn, sql::SET_USER_DISABLED, &[&owned, &disabled]))
            .await?;
        self.cache.clear_users();
        Ok(changed == 1)
    }
}

fn insert_device(conn: &rusqlite::Connection, d: &Device) -> StoreResult<()> {
    let jwk = to_json(&d.public_jwk)?;
    let push = to_json(&d.push)?;
    execute(
        conn,
        sql::INSERT_DEVICE,
        &[
            &d.id,
            &d.user_sub,
            &d.name,
            &jwk,
            &push,
            &d.disabled,
            &d.created_at,
        ],
    )
    .map(drop)
}

#[async_trait]
impl DeviceStore for SqliteStore {
    async fn insert_enrolment(&self, e: &Enrolment) -> StoreResult<()> {
        let e = e.clone();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::INSERT_ENROLMENT,
                    &[
                        &e.code_hash,
                        &e.user_sub,
                        &e.created_at,
                        &e.expires_at,
                        &e.used_at,
                    ],
                )
                .map(drop)
            })
            .await
    }

    async fn enrol_device(
        &self,
        code_hash: &str,
        device: &Device,
        now: i64,
    ) -> StoreResult<Option<Device>> {
        let code_hash = code_hash.to_owned();
        let device = device.clone();
        let enrolled = self
            .writer
            .write(move |conn| {
                let consumed = one(conn, sql::CONSUME_ENROLMENT, &[&code_hash, &now], |r| {
                    r.text("user_sub")
                })?;
                let Some(user_sub) = consumed else {
                    return Ok(None);
                };
                let device = Device {
                    user_sub,
                    ..device.clone()
                };
                // A failed insert fails the job, and its savepoint un-consumes the code.
                insert_device(conn, &device)?;
                Ok(Some(device))
            })
            .await?;
        self.cache.clear_devices();
        Ok(enrolled)
    }

    async fn insert_device(&self, d: &Device) -> StoreResult<()> {
        let d = d.clone();
        self.writer
            .write(move |conn| insert_device(conn, &d))
            .await?;
        self.cache.clear_devices();
        Ok(())
    }

    async fn get_device(&self, id: &str) -> StoreResult<Option<Device>> {
        self.cache.devices.get_or_load(id, || {
            self.readers
                .read(|conn| one(conn, sql::GET_DEVICE, &[&id], |r| rows::device(r)))
        })
    }

    async fn list_devices(&self, user_sub: &str) -> StoreResult<Vec<Device>> {
        let listed = self.cache.user_devices.get_or_load(user_sub, || {
            self.readers
                .read(|conn| all(conn, sql::LIST_DEVICES, &[&user_sub], |r| rows::device(r)))
                .map(Some)
        })?;
        Ok(listed.unwrap_or_default())
    }

    async fn set_device_push(&self, id: &str, push: &PushRegistration) -> StoreResult<bool> {
        let id = id.to_owned();
        let push = to_json(push)?;
        let changed = self
            .writer
            .write(move |conn| execute(conn, sql::SET_DEVICE_PUSH, &[&id, &push]))
            .await?;
        self.cache.clear_devices();
        Ok(changed == 1)
    }

    async fn set_device_disabled(&self, id: &str, disabled: bool, now: i64) -> StoreResult<bool> {
        let id = id.to_owned();
        let changed = self
            .writer
            .write(move |conn| {
                if execute(conn, sql::SET_DEVICE_DISABLED, &[&id, &disabled])? != 1 {
                    return Ok(false);
                }
                if disabled {
                    execute(conn, sql::CLOSE_DEVICE_CHALLENGES, &[&id, &now])?;
                }
                Ok(true)
            })
            .await?;
        self.cache.clear_devices();
        Ok(changed)
    }
}

#[async_trait]
impl ReplayCache for SqliteStore {
    async fn remember_jti(&self, scope: &str, jti: &str, expires_at: i64) -> StoreResult<bool> {
        let (scope, jti) = (scope.to_owned(), jti.to_owned());
        let inserted = self
            .writer
            .write(move |conn| execute(conn, sql::REMEMBER_JTI, &[&scope, &jti, &expires_at]))
            .await?;
        Ok(inserted == 1)
    }
}

#[async_trait]
impl KeyStore for SqliteStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        self.readers
            .read(|conn| all(conn, sql::LIST_KEYS, &[], |r| rows::stored_key(r)))
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let key = key.clone();
        self.writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::INSERT_KEY,
                    &[
                        &key.kid,
                        &key.alg.as_str(),
                        &key.private_jwk,
                        &key.created_at,
                        &key.sealed,
                    ],
                )
                .map(drop)
            })
            .await
    }

    /// The one writer (and `BEGIN IMMEDIATE` against other processes) makes check and insert
    /// one step.
    async fn insert_first_signing_keys(&self, keys: &[StoredKey]) -> StoreResult<u64> {
        let keys = keys.to_vec();
        self.writer
            .write(move |conn| {
                let mut stored = 0;
                for key in &keys {
                    stored += execute(
                        conn,
                        sql::INSERT_KEY_IF_ALG_ABSENT,
                        &[
                            &key.kid,
                            &key.alg.as_str(),
                            &key.private_jwk,
                            &key.created_at,
                            &key.sealed,
                        ],
                    )? as u64;
                }
                Ok(stored)
            })
            .await
    }

    async fn seal_signing_key(&self, kid: &str, clear: &str, sealed: &str) -> StoreResult<bool> {
        let (kid, clear, sealed) = (kid.to_owned(), clear.to_owned(), sealed.to_owned());
        self.writer
            .write(move |conn| Ok(execute(conn, sql::SEAL_KEY, &[&kid, &clear, &sealed])? == 1))
            .await
    }
}

#[async_trait]
impl Health for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.readers
            .read(|conn| one(conn, sql::PING, &[], |_| Ok(())).map(drop))
    }
}
