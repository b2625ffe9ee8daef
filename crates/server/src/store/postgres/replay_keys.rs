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
            .bind(key.created_at);
        affected(&self.pool, q).await.map(drop)
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
