//! WebAuthn credentials on PostgreSQL.

use async_trait::async_trait;

use super::{PgStore, affected, one};
use crate::domain::webauthn::WebAuthnCredential;
use crate::store::StoreResult;
use crate::store::rows::to_json;
use crate::store::webauthn::{self as sql, WebAuthnStore};

#[async_trait]
impl WebAuthnStore for PgStore {
    async fn insert_webauthn_credential(&self, c: &WebAuthnCredential) -> StoreResult<bool> {
        let q = sqlx::query(sql::INSERT_CREDENTIAL)
            .bind(&c.device_id)
            .bind(&c.credential_id)
            .bind(to_json(&c.public_jwk)?)
            .bind(c.alg.as_str())
            .bind(c.sign_count)
            .bind(c.created_at);
        Ok(affected(&self.pool, q).await? == 1)
    }

    async fn get_webauthn_credential(
        &self,
        device_id: &str,
    ) -> StoreResult<Option<WebAuthnCredential>> {
        one(
            &self.pool,
            sqlx::query(sql::GET_CREDENTIAL).bind(device_id),
            sql::credential,
        )
        .await
    }

    async fn advance_webauthn_sign_count(&self, device_id: &str, count: i64) -> StoreResult<bool> {
        let q = sqlx::query(sql::ADVANCE_SIGN_COUNT)
            .bind(device_id)
            .bind(count);
        Ok(affected(&self.pool, q).await? == 1)
    }
}
