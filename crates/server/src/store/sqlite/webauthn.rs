//! WebAuthn credentials on SQLite: writes on the writer thread, reads on the read connections
//! (a credential is read once per decision, so it is not cached).

use async_trait::async_trait;

use super::SqliteStore;
use super::read::{execute, one};
use crate::domain::webauthn::WebAuthnCredential;
use crate::store::StoreResult;
use crate::store::rows::to_json;
use crate::store::webauthn::{self as sql, WebAuthnStore};

#[async_trait]
impl WebAuthnStore for SqliteStore {
    async fn insert_webauthn_credential(&self, c: &WebAuthnCredential) -> StoreResult<bool> {
        let c = c.clone();
        let jwk = to_json(&c.public_jwk)?;
        let inserted = self
            .writer
            .write(move |conn| {
                execute(
                    conn,
                    sql::INSERT_CREDENTIAL,
                    &[
                        &c.device_id,
                        &c.credential_id,
                        &jwk,
                        &c.alg.as_str(),
                        &c.sign_count,
                        &c.created_at,
                    ],
                )
            })
            .await?;
        Ok(inserted == 1)
    }

    async fn get_webauthn_credential(
        &self,
        device_id: &str,
    ) -> StoreResult<Option<WebAuthnCredential>> {
        self.readers.read(|conn| {
            one(conn, sql::GET_CREDENTIAL, &[&device_id], |r| {
                sql::credential(r)
            })
        })
    }

    async fn advance_webauthn_sign_count(&self, device_id: &str, count: i64) -> StoreResult<bool> {
        let device_id = device_id.to_owned();
        let changed = self
            .writer
            .write(move |conn| execute(conn, sql::ADVANCE_SIGN_COUNT, &[&device_id, &count]))
            .await?;
        Ok(changed == 1)
    }
}
