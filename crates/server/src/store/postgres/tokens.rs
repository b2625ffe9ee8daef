//! Refresh tokens and revoked access tokens on PostgreSQL: a rotation is its conditional
//! UPDATE and its insert in one transaction (the UPDATE's row lock makes a concurrent second
//! use wait, then match nothing); a revocation copies the family's access-token `jti`s and
//! marks it in one transaction.

use async_trait::async_trait;

use super::{PgStore, affected, one};
use crate::domain::model::{RefreshFamily, RefreshToken};
use crate::store::rows::{self, RowExt as _, db_error, opt_json};
use crate::store::{StoreResult, TokenStore, sql_tokens as sql};

fn insert_token(t: &RefreshToken) -> super::Query<'_> {
    sqlx::query(sql::INSERT_REFRESH_TOKEN)
        .bind(&t.hash)
        .bind(&t.family_id)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.rotated_at)
        .bind(&t.access_jti)
        .bind(t.access_expires_at)
}

#[async_trait]
impl TokenStore for PgStore {
    async fn insert_refresh_family(
        &self,
        f: &RefreshFamily,
        first: &RefreshToken,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let q = sqlx::query(sql::INSERT_REFRESH_FAMILY)
            .bind(&f.id)
            .bind(&f.client_id)
            .bind(&f.user_sub)
            .bind(&f.device_id)
            .bind(&f.scope)
            .bind(opt_json(f.authorization_details.as_ref())?)
            .bind(f.authenticated_at)
            .bind(f.user_verified)
            .bind(f.created_at)
            .bind(f.expires_at)
            .bind(f.revoked_at);
        affected(&mut *tx, q).await?;
        affected(&mut *tx, insert_token(first)).await?;
        tx.commit().await.map_err(db_error)
    }

    async fn get_refresh_token(
        &self,
        hash: &str,
    ) -> StoreResult<Option<(RefreshToken, RefreshFamily)>> {
        one(
            &self.pool,
            sqlx::query(sql::GET_REFRESH_TOKEN).bind(hash),
            rows::refresh_token,
        )
        .await
    }

    async fn rotate_refresh_token(
        &self,
        old_hash: &str,
        next: &RefreshToken,
        now: i64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let q = sqlx::query(sql::ROTATE_REFRESH_TOKEN)
            .bind(old_hash)
            .bind(now);
        if affected(&mut *tx, q).await? != 1 {
            tx.rollback().await.map_err(db_error)?;
            return Ok(false);
        }
        affected(&mut *tx, insert_token(next)).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(true)
    }

    async fn revoke_refresh_family(&self, family_id: &str, now: i64) -> StoreResult<bool> {
        let mut tx = self.begin_write().await?;
        let copy = sqlx::query(sql::REVOKE_FAMILY_ACCESS_TOKENS)
            .bind(family_id)
            .bind(now);
        affected(&mut *tx, copy).await?;
        let q = sqlx::query(sql::REVOKE_FAMILY).bind(family_id).bind(now);
        let revoked = affected(&mut *tx, q).await? == 1;
        tx.commit().await.map_err(db_error)?;
        Ok(revoked)
    }

    async fn revoke_user_refresh_families(&self, user_sub: &str, now: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let copy = sqlx::query(sql::REVOKE_USER_ACCESS_TOKENS)
            .bind(user_sub)
            .bind(now);
        affected(&mut *tx, copy).await?;
        let q = sqlx::query(sql::REVOKE_USER_FAMILIES)
            .bind(user_sub)
            .bind(now);
        let revoked = affected(&mut *tx, q).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(revoked)
    }

    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> StoreResult<()> {
        let q = sqlx::query(sql::REVOKE_ACCESS_TOKEN)
            .bind(jti)
            .bind(expires_at);
        affected(&self.pool, q).await.map(drop)
    }

    async fn access_token_revoked(&self, jti: &str) -> StoreResult<bool> {
        let q = sqlx::query(sql::ACCESS_TOKEN_REVOKED).bind(jti);
        Ok(one(&self.pool, q, |r| r.flag("revoked"))
            .await?
            .unwrap_or(false))
    }
}
