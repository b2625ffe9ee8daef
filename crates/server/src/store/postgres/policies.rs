//! Access policies on PostgreSQL. A client's policy (or that it has none) is cached for
//! `super::CACHE_MAX_AGE` like the client itself: this node's writes invalidate it at once,
//! other nodes' are seen when the entry ages out.

use async_trait::async_trait;

use super::{PgStore, affected, all, one};
use crate::domain::policy::AccessPolicy;
use crate::store::rows::{self, to_json};
use crate::store::sql_policy as sql;
use crate::store::{PolicyStore, StoreResult};

#[async_trait]
impl PolicyStore for PgStore {
    async fn put_policy(&self, policy: &AccessPolicy) -> StoreResult<Option<AccessPolicy>> {
        let q = sqlx::query(sql::PUT_POLICY)
            .bind(&policy.client_id)
            .bind(to_json(&policy.rules)?)
            .bind(policy.created_at)
            .bind(policy.updated_at);
        let stored = one(&self.pool, q, rows::access_policy).await;
        self.cache.policies.invalidate(&policy.client_id);
        stored
    }

    async fn get_policy(&self, client_id: &str) -> StoreResult<Option<AccessPolicy>> {
        let load = async {
            let q = sqlx::query(sql::GET_POLICY).bind(client_id);
            one(&self.pool, q, rows::access_policy).await.map(Some)
        };
        let cached = self
            .cache
            .policies
            .get_or_load_async(client_id, load)
            .await?;
        Ok(cached.flatten())
    }

    async fn list_policies(&self) -> StoreResult<Vec<AccessPolicy>> {
        all(
            &self.pool,
            sqlx::query(sql::LIST_POLICIES),
            rows::access_policy,
        )
        .await
    }

    async fn delete_policy(&self, client_id: &str) -> StoreResult<bool> {
        let q = sqlx::query(sql::DELETE_POLICY).bind(client_id);
        let deleted = affected(&self.pool, q).await;
        self.cache.policies.invalidate(client_id);
        Ok(deleted? == 1)
    }
}
