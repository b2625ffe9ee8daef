//! Turning rows of either backend into domain records, and database errors into
//! [`StoreError`]s. A row that cannot be decoded (unknown enum text, bad JSON, wrong type) is
//! `Corrupt`; messages name columns and constraints, never stored values.

use backchannel_protocol::jose::Algorithm;
use backchannel_protocol::jose::jwe::{ContentEncryptionAlg, KeyManagementAlg};
use backchannel_protocol::oauth::{ClientAuthMethod, DeliveryMode};
use serde::de::DeserializeOwned;
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{StoreError, StoreResult};
use crate::domain::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, Client, Device, DeviceEvent,
    DeviceEventKind, IdTokenEncryption, Notification, NotificationKind, NotificationState,
    PushDelivery, PushDeliveryState, RefreshFamily, RefreshToken, StoredKey, User,
};
use crate::domain::policy::AccessPolicy;

/// Typed column access shared by `SqliteRow` and `PgRow`.
pub(crate) trait RowExt {
    fn text(&self, col: &str) -> StoreResult<String>;
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>>;
    fn int(&self, col: &str) -> StoreResult<i64>;
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>>;
    fn flag(&self, col: &str) -> StoreResult<bool>;
}

fn get<R, T>(row: &R, col: &str) -> StoreResult<T>
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    T: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get::<T, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

impl<R> RowExt for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    String: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    i64: for<'r> Decode<'r, R::Database> + Type<R::Database>,
    bool: for<'r> Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, col: &str) -> StoreResult<String> {
        get(self, col)
    }
    fn opt_text(&self, col: &str) -> StoreResult<Option<String>> {
        get(self, col)
    }
    fn int(&self, col: &str) -> StoreResult<i64> {
        get(self, col)
    }
    fn opt_int(&self, col: &str) -> StoreResult<Option<i64>> {
        get(self, col)
    }
    fn flag(&self, col: &str) -> StoreResult<bool> {
        get(self, col)
    }
}

/// Maps a database error: a unique violation is a `Conflict` naming what is taken (never the
/// value); anything else is a `Backend` fault.
pub(crate) fn db_error(e: sqlx::Error) -> StoreError {
    if unreachable(&e) {
        return StoreError::Unavailable(e.to_string());
    }
    if let Some(db) = e.as_database_error() {
        if db.is_unique_violation() {
            return StoreError::Conflict(format!("{} is taken", conflict_subject(db)));
        }
        if db.is_foreign_key_violation() {
            return StoreError::Backend("a referenced record does not exist".to_owned());
        }
    }
    StoreError::Backend(e.to_string())
}

/// Whether the database could not be reached (no connection, a connection lost, the server
/// shutting down or not accepting connections), as opposed to a statement that failed.
fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // Class 08: connection exception; 57P01-57P03: shutdown, crash, not yet up.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// `table.column` on both backends: SQLite says "UNIQUE constraint failed: users.email";
/// PostgreSQL names the index, which the migrations call `users_email_key`.
fn conflict_subject(db: &dyn sqlx::error::DatabaseError) -> String {
    match (db.constraint(), db.table()) {
        (Some(index), Some(table)) => index
            .strip_prefix(table)
            .and_then(|rest| rest.strip_prefix('_'))
            .and_then(|rest| rest.strip_suffix("_key"))
            .map_or_else(
                || format!("{table} id"),
                |column| format!("{table}.{column}"),
            ),
        (Some(index), None) => index.to_owned(),
        _ => db
            .message()
            .rsplit(": ")
            .next()
            .unwrap_or("a unique value")
            .to_owned(),
    }
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

pub(crate) fn opt_json<T: serde::Serialize>(value: Option<&T>) -> StoreResult<Option<String>> {
    value.map(to_json).transpose()
}

fn from_json<T: DeserializeOwned>(col: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {col}: {e}")))
}

fn json_col<T: DeserializeOwned>(row: &impl RowExt, col: &str) -> StoreResult<T> {
    from_json(col, &row.text(col)?)
}

fn opt_json_col<T: DeserializeOwned>(row: &impl RowExt, col: &str) -> StoreResult<Option<T>> {
    row.opt_text(col)?.map(|t| from_json(col, &t)).transpose()
}

/// Parses an enum stored as its `as_str()` text.
fn enum_col<T>(row: &impl RowExt, col: &str, parse: fn(&str) -> Option<T>) -> StoreResult<T> {
    let text = row.text(col)?;
    parse(&text).ok_or_else(|| StoreError::Corrupt(format!("column {col}: unknown value")))
}

pub(crate) fn client(row: &impl RowExt) -> StoreResult<Client> {
    Ok(Client {
        id: row.text("id")?,
        name: row.text("name")?,
        auth_method: enum_col(row, "auth_method", ClientAuthMethod::parse)?,
        secret_hash: row.opt_text("secret_hash")?,
        jwks: opt_json_col(row, "jwks")?,
        jwks_uri: row.opt_text("jwks_uri")?,
        scopes: json_col(row, "scopes")?,
        delivery_mode: enum_col(row, "delivery_mode", DeliveryMode::parse)?,
        notification_endpoint: row.opt_text("notification_endpoint")?,
        request_signing_alg: match row.opt_text("request_signing_alg")? {
            None => None,
            Some(alg) => Some(Algorithm::parse(&alg).ok_or_else(|| {
                StoreError::Corrupt("column request_signing_alg: unknown value".to_owned())
            })?),
        },
        user_code_required: row.flag("user_code_required")?,
        id_token_signing_alg: enum_col(row, "id_token_signing_alg", Algorithm::parse)?,
        id_token_encryption: id_token_encryption(row)?,
        disabled: row.flag("disabled")?,
        created_at: row.int("created_at")?,
        refresh_tokens: row.flag("refresh_tokens")?,
    })
}

/// Both `id_token_encrypted_response_*` columns, or neither.
fn id_token_encryption(row: &impl RowExt) -> StoreResult<Option<IdTokenEncryption>> {
    let alg = row.opt_text("id_token_encrypted_response_alg")?;
    let enc = row.opt_text("id_token_encrypted_response_enc")?;
    let corrupt = || StoreError::Corrupt("columns id_token_encrypted_response_*".to_owned());
    match (alg, enc) {
        (None, None) => Ok(None),
        (Some(alg), Some(enc)) => Ok(Some(IdTokenEncryption {
            alg: KeyManagementAlg::parse(&alg).ok_or_else(corrupt)?,
            enc: ContentEncryptionAlg::parse(&enc).ok_or_else(corrupt)?,
        })),
        _ => Err(corrupt()),
    }
}

pub(crate) fn refresh_family(row: &impl RowExt) -> StoreResult<RefreshFamily> {
    Ok(RefreshFamily {
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        user_sub: row.text("user_sub")?,
        device_id: row.opt_text("device_id")?,
        scope: row.text("scope")?,
        authorization_details: opt_json_col(row, "authorization_details")?,
        authenticated_at: row.int("authenticated_at")?,
        user_verified: row.flag("user_verified")?,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
        revoked_at: row.opt_int("revoked_at")?,
    })
}

/// A refresh token (columns prefixed `rt_`) joined with its family (columns as named).
pub(crate) fn refresh_token(row: &impl RowExt) -> StoreResult<(RefreshToken, RefreshFamily)> {
    let token = RefreshToken {
        hash: row.text("rt_hash")?,
        family_id: row.text("rt_family_id")?,
        created_at: row.int("rt_created_at")?,
        expires_at: row.int("rt_expires_at")?,
        rotated_at: row.opt_int("rt_rotated_at")?,
        access_jti: row.text("rt_access_jti")?,
        access_expires_at: row.int("rt_access_expires_at")?,
    };
    Ok((token, refresh_family(row)?))
}

pub(crate) fn user(row: &impl RowExt) -> StoreResult<User> {
    Ok(User {
        sub: row.text("sub")?,
        email: row.opt_text("email")?,
        nric: row.opt_text("nric")?,
        username: row.opt_text("username")?,
        phone: row.opt_text("phone")?,
        claims: json_col(row, "claims")?,
        user_code_hash: row.opt_text("user_code_hash")?,
        disabled: row.flag("disabled")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn device(row: &impl RowExt) -> StoreResult<Device> {
    Ok(Device {
        id: row.text("id")?,
        user_sub: row.text("user_sub")?,
        name: row.text("name")?,
        public_jwk: json_col(row, "public_jwk")?,
        push: json_col(row, "push")?,
        disabled: row.flag("disabled")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn auth_request(row: &impl RowExt) -> StoreResult<AuthRequest> {
    Ok(AuthRequest {
        id: row.text("id")?,
        client_id: row.text("client_id")?,
        user_sub: row.text("user_sub")?,
        scope: row.text("scope")?,
        acr_values: row.opt_text("acr_values")?,
        binding_message: row.opt_text("binding_message")?,
        authorization_details: opt_json_col(row, "authorization_details")?,
        delivery_mode: enum_col(row, "delivery_mode", DeliveryMode::parse)?,
        client_notification_token: row.opt_text("client_notification_token")?,
        created_at: row.int("created_at")?,
        expires_at: row.int("expires_at")?,
        interval_secs: row.int("interval_secs")?,
        last_polled_at: row.opt_int("last_polled_at")?,
        state: enum_col(row, "state", AuthRequestState::parse)?,
        decided_at: row.opt_int("decided_at")?,
        user_verified: row.flag("user_verified")?,
        redeemed_at: row.opt_int("redeemed_at")?,
        auth_req_id: row.opt_text("auth_req_id")?,
        uv_required: row.flag("uv_required")?,
        replaced_at: row.opt_int("replaced_at")?,
        not_me: row.flag("not_me")?,
    })
}

pub(crate) fn push_delivery(row: &impl RowExt) -> StoreResult<PushDelivery> {
    Ok(PushDelivery {
        challenge_id: row.text("challenge_id")?,
        device_id: row.text("device_id")?,
        state: enum_col(row, "state", PushDeliveryState::parse)?,
        delivered: json_col(row, "delivered")?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.int("next_attempt_at")?,
        deadline: row.int("deadline")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn device_event(row: &impl RowExt) -> StoreResult<DeviceEvent> {
    Ok(DeviceEvent {
        seq: row.int("seq")?,
        device_id: row.text("device_id")?,
        kind: enum_col(row, "kind", DeviceEventKind::parse)?,
        challenge_id: row.text("challenge_id")?,
        created_at: row.int("created_at")?,
    })
}

pub(crate) fn notification(row: &impl RowExt) -> StoreResult<Notification> {
    Ok(Notification {
        id: row.text("id")?,
        auth_request_id: row.text("auth_request_id")?,
        client_id: row.text("client_id")?,
        kind: enum_col(row, "kind", NotificationKind::parse)?,
        payload: row.opt_text("payload")?,
        state: enum_col(row, "state", NotificationState::parse)?,
        attempts: row.int("attempts")?,
        next_attempt_at: row.int("next_attempt_at")?,
        deadline: row.int("deadline")?,
        last_error: row.opt_text("last_error")?,
        created_at: row.int("created_at")?,
        delivered_at: row.opt_int("delivered_at")?,
    })
}

/// A challenge joined with its request: the challenge's columns carry a `ch_` prefix (see
/// `sql::CHALLENGE_JOIN`), the request's keep their names.
/// A challenge whose columns carry `prefix` (empty, or `ch_` in a join).
fn challenge_prefixed(row: &impl RowExt, prefix: &str) -> StoreResult<Challenge> {
    let col = |name: &str| format!("{prefix}{name}");
    Ok(Challenge {
        id: row.text(&col("id"))?,
        auth_request_id: row.text(&col("auth_request_id"))?,
        device_id: row.text(&col("device_id"))?,
        state: enum_col(row, &col("state"), ChallengeState::parse)?,
        created_at: row.int(&col("created_at"))?,
        decided_at: row.opt_int(&col("decided_at"))?,
        decision_jws: row.opt_text(&col("decision_jws"))?,
    })
}

pub(crate) fn challenge(row: &impl RowExt) -> StoreResult<Challenge> {
    challenge_prefixed(row, "")
}

pub(crate) fn challenge_with_request(row: &impl RowExt) -> StoreResult<(Challenge, AuthRequest)> {
    Ok((challenge_prefixed(row, "ch_")?, auth_request(row)?))
}

pub(crate) fn access_policy(row: &impl RowExt) -> StoreResult<AccessPolicy> {
    Ok(AccessPolicy {
        client_id: row.text("client_id")?,
        rules: json_col(row, "rules")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
    })
}

pub(crate) fn stored_key(row: &impl RowExt) -> StoreResult<StoredKey> {
    Ok(StoredKey {
        kid: row.text("kid")?,
        alg: enum_col(row, "alg", Algorithm::parse)?,
        private_jwk: row.text("private_jwk")?,
        sealed: row.flag("sealed")?,
        created_at: row.int("created_at")?,
    })
}
