//! Access policies on SQLite: written on the one writer, read through the cache (a client's
//! policy, or that it has none), which each write invalidates once committed and other
//! processes' commits clear (`PRAGMA data_version`).

use async_trait::async_trait;

use super::SqliteStore;
use super::read::{all, execute, one};
use crate::domain::policy::AccessPolicy;
use crate::store::rows::{self, to_json};
use crate::store::sql_policy as sql;
use crate::store::{PolicyStore, StoreResult};

#[async_trait]
impl PolicyStore for SqliteStore {
    async fn put_policy(&self, policy: &AccessPolicy) -> StoreResult<Option<AccessPolicy>> {
        let p = policy.clone();
        let rules = to_json(&p.rules)?;
        let stored = self
            .writer
            .write(move |conn| {
                one(
                    conn,
                    sql::PUT_POLICY,
                    &[&p.client_id, &rules, &p.created_at, &p.updated_at],
                    |r| rows::access_policy(r),
                )
            })
            .await?;
        self.cache.policies.invalidate(&policy.client_id);
        Ok(stored)
    }

    async fn get_policy(&self, client_id: &str) -> StoreResult<Option<AccessPolicy>> {
        // Cached as `Some(None)` when the client has none: most clients have none, and every
        // backchannel request asks.
        let cached = self.cache.policies.get_or_load(client_id, || {
            self.readers
                .read(|conn| {
                    one(conn, sql::GET_POLICY, &[&client_id], |r| {
                        rows::access_policy(r)
                    })
                })
                .map(Some)
        })?;
        Ok(cached.flatten())
    }

    async fn list_policies(&self) -> StoreResult<Vec<AccessPolicy>> {
        self.readers
            .read(|conn| all(conn, sql::LIST_POLICIES, &[], |r| rows::access_policy(r)))
    }

    async fn delete_policy(&self, client_id: &str) -> StoreResult<bool> {
        let owned = client_id.to_owned();
        let deleted = self
            .writer
            .write(move |conn| execute(conn, sql::DELETE_POLICY, &[&owned]))
            .await?;
        self.cache.policies.invalidate(client_id);
        Ok(deleted == 1)
    }
}
