//! The replay cache, the signing keys and the health check on PostgreSQL.

use async_trait::async_trait;
use sqlx::Executor;

use super::{PgStore, affected, all};
use crate::domain::model::StoredKey;
use crate::store::rows::{self, db_error};
use crate::store::{Health, KeyStore, ReplayCache, StoreResult, sql};

#[async_trait]
impl ReplayCache for PgStore {
    async fn remember_jti(&self, scope: &str, jti: &str, expires_at: i64) -> StoreResult<bool> {
        let q = sqlx::query(sql::REMEMBER_JTI)
            .bind(scope)
            .bind(jti)
            .bind(expires_at);
        Ok(affected(&self.pool, q).await? == 1)
    }
}

#[async_trait]
impl KeyStore for PgStore {
    async fn list_signing_keys(&self) -> StoreResult<Vec<StoredKey>> {
        all(&self.pool, sqlx::query(sql::LIST_KEYS), rows::stored_key).await
    }

    async fn insert_signing_key(&self, key: &StoredKey) -> StoreResult<()> {
        let q = sqlx::query(sql::INSERT_KEY)
            .bind(&key.kid)
            .bind(key.alg.as_str())
            .bind(&key.private_jwk)
            .bind(key.created_at)
            .bind(key.sealed);
        affected(&self.pool, q).await.map(drop)
    }

    /// Under a table lock that only one node's transaction holds at a time: the next node
    /// waits, then sees the keys the first one stored and stores none of its own.
    async fn insert_first_signing_keys(&self, keys: &[StoredKey]) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        (&mut *tx).execute(sql::LOCK_KEYS).await.map_err(db_error)?;
        let mut stored = 0;
        for key in keys {
            let q = sqlx::query(sql::INSERT_KEY_IF_ALG_ABSENT)
                .bind(&key.kid)
                .bind(key.alg.as_str())
                .bind(&key.private_jwk)
                .bind(key.created_at)
                .bind(key.sealed);
            stored += affected(&mut *tx, q).await?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(stored)
    }

    async fn seal_signing_key(&self, kid: &str, clear: &str, sealed: &str) -> StoreResult<bool> {
        let q = sqlx::query(sql::SEAL_KEY)
            .bind(kid)
            .bind(clear)
            .bind(sealed);
        Ok(affected(&self.pool, q).await? == 1)
    }
}

#[async_trait]
impl Health for PgStore {
    async fn ping(&self) -> StoreResult<()> {
        (&self.pool)
            .execute(sql::PING)
            .await
            .map_err(db_error)
            .map(drop)
    }
}
