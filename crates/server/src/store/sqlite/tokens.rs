//! Refresh tokens and revoked access tokens on SQLite: every write is one job on the writer
//! (a rotation's conditional UPDATE and its insert commit together); reads go to the read
//! connections, uncached (a revocation must be seen at once).

use async_trait::async_trait;
use rusqlite::Connection;

use super::SqliteStore;
use super::read::{execute, one};
use crate::domain::model::{RefreshFamily, RefreshToken};
use crate::store::rows::{self, RowExt as _, opt_json};
use crate::store::{StoreResult, TokenStore, sql_tokens as sql};

fn insert_token(conn: &Connection, t: &RefreshToken) -> StoreResult<()> {
    execute(
        conn,
        sql::INSERT_REFRESH_TOKEN,
        &[
            &t.hash,
            &t.family_id,
            &t.created_at,
            &t.expires_at,
            &t.rotated_at,
            &t.access_jti,
            &t.access_expires_at,
        ],
    )
    .map(drop)
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn insert_refresh_family(
        &self,
        family: &RefreshFamily,
        first: &RefreshToken,
    ) -> StoreResult<()> {
        let f = family.clone();
        let first = first.clone();
        self.writer
            .write(move |conn| {
                let details = opt_json(f.authorization_details.as_ref())?;
                execute(
                    conn,
                    sql::INSERT_REFRESH_FAMILY,
                    &[
                        &f.id,
                        &f.client_id,
                        &f.user_sub,
                        &f.device_id,
                        &f.scope,
                        &details,
                        &f.authenticated_at,
                        &f.user_verified,
                        &f.created_at,
                        &f.expires_at,
                        &f.revoked_at,
                    ],
                )?;
                insert_token(conn, &first)
            })
            .await
    }

    async fn get_refresh_token(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshToken, RefreshFamily)>> {
        self.readers.read(|conn| {
            one(conn, sql::GET_REFRESH_TOKEN, &[&hash], |r| {
                rows::refresh_token(r)
            })
        })
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: &RefreshToken,
        now: i64,
    ) -> StoreResult<bool> {
        let old = old_hash.to_owned();
        let next = next.clone();
        self.writer
            .write(move |conn| {
                if execute(conn, sql::ROTATE_REFRESH_TOKEN, &[&old, &now])? != 1 {
                    return Ok(false);
                }
                insert_token(conn, &next)?;
                Ok(true)
            })
            .await
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<bool> {
        let id = family_id.to_owned();
        self.writer
            .write(move |conn| {
                execute(conn, sql::REVOKE_FAMILY_ACCESS_TOKENS, &[&id, &now])?;
                Ok(execute(conn, sql::REVOKE_FAMILY, &[&id, &now])? == 1)
            })
            .await
    }

    async fn revoke_user_refresh_families(&self, user_sub: &str, now: i64) -> StoreResult<u64> {
        let sub = user_sub.to_owned();
        self.writer
            .write(move |conn| {
                execute(conn, sql::REVOKE_USER_ACCESS_TOKENS, &[&sub, &now])?;
                let n = execute(conn, sql::REVOKE_USER_FAMILIES, &[&sub, &now])?;
                Ok(u64::try_from(n).unwrap_or(u64::MAX))
            })
            .await
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
        let jti = jti.to_owned();
        self.writer
            .write(move |conn| {
                execute(conn, sql::REVOKE_ACCESS_TOKEN, &[&jti, &expires_at]).map(drop)
            })
            .await
    }

    async fn access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        self.readers.read(|conn| {
            Ok(one(conn, sql::ACCESS_TOKEN_REVOKED, &[&jti], |r| {
                r.flag("revoked")
            })?
            .unwrap_or(false))
        })
    }
}
