//! The WebAuthn credentials of browser authenticators ([`WebAuthnStore`]), and the SQL both
//! backends run for them.

use async_trait::async_trait;
use backchannel_protocol::jose::Algorithm;

use super::StoreError;
use super::StoreResult;
use super::rows::RowExt;
use crate::domain::webauthn::WebAuthnCredential;

#[async_trait]
pub trait WebAuthnStore: Send + Sync {
    /// Stores a device's credential unless the device already has one (then `false`).
    async fn insert_webauthn_credential(&self, c: &WebAuthnCredential) -> StoreResult<bool>;
    async fn get_webauthn_credential(
        &self,
        device_id: &str,
    ) -> StoreResult<Option<WebAuthnCredential>>;
    /// Raises the device's signature counter to `count` if it is below it, as one conditional
    /// statement (so two assertions with one counter value cannot both pass, on any node);
    /// `false` when it was not below (a replayed assertion or a cloned authenticator).
    async fn advance_webauthn_sign_count(&self, device_id: &str, count: i64) -> StoreResult<bool>;
}

pub(crate) const INSERT_CREDENTIAL: &str = "INSERT INTO webauthn_credentials \
    (device_id, credential_id, public_jwk, alg, sign_count, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (device_id) DO NOTHING";

pub(crate) const GET_CREDENTIAL: &str = "SELECT device_id, credential_id, public_jwk, alg, \
    sign_count, created_at FROM webauthn_credentials WHERE device_id = $1";

pub(crate) const ADVANCE_SIGN_COUNT: &str = "UPDATE webauthn_credentials SET sign_count = $2 \
    WHERE device_id = $1 AND sign_count < $2";

pub(crate) fn credential(row: &impl RowExt) -> StoreResult<WebAuthnCredential> {
    let alg = row.text("alg")?;
    Ok(WebAuthnCredential {
        device_id: row.text("device_id")?,
        credential_id: row.text("credential_id")?,
        public_jwk: serde_json::from_str(&row.text("public_jwk")?)
            .map_err(|e| StoreError::Corrupt(format!("column public_jwk: {e}")))?,
        alg: Algorithm::parse(&alg)
            .ok_or_else(|| StoreError::Corrupt("column alg: unknown value".into()))?,
        sign_count: row.int("sign_count")?,
        created_at: row.int("created_at")?,
    })
}
