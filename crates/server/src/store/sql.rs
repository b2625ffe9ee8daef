//! The SQL both backends run for accounts, requests, replay and keys, written once: SQLite and
//! PostgreSQL agree on `$n` parameters, `RETURNING`, `ON CONFLICT DO NOTHING` and the schema's
//! column names, so one set of statements serves both. PostgreSQL runs them through sqlx
//! ([`super::postgres`]); SQLite through rusqlite on its single writer ([`super::sqlite`]),
//! binding `$n` by name. The delivery statements are in [`super::sql_delivery`], the purge's in
//! [`super::sql_purge`].

use crate::domain::model::UserLookup;

pub(crate) const INSERT_CLIENT: &str = "INSERT INTO clients (id, name, auth_method, \
    secret_hash, jwks, jwks_uri, scopes, delivery_mode, notification_endpoint, \
    request_signing_alg, user_code_required, id_token_signing_alg, disabled, created_at, \
    id_token_encrypted_response_alg, id_token_encrypted_response_enc, refresh_tokens) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
pub(crate) const GET_CLIENT: &str = "SELECT * FROM clients WHERE id = $1";
pub(crate) const LIST_CLIENTS: &str = "SELECT * FROM clients ORDER BY created_at, id";
pub(crate) const SET_CLIENT_DISABLED: &str = "UPDATE clients SET disabled = $2 WHERE id = $1";

pub(crate) const INSERT_USER: &str = "INSERT INTO users (sub, email, nric, username, phone, \
    claims, user_code_hash, disabled, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(crate) const GET_USER: &str = "SELECT * FROM users WHERE sub = $1";
pub(crate) const LIST_USERS: &str = "SELECT * FROM users ORDER BY created_at, sub";
pub(crate) const SET_USER_DISABLED: &str = "UPDATE users SET disabled = $2 WHERE sub = $1";

/// The statement that finds a user by one login-hint form, and the value to bind.
pub(crate) fn find_user(lookup: &UserLookup) -> (&'static str, &str) {
    match lookup {
        UserLookup::Sub(v) => (GET_USER, v),
        UserLookup::Nric(v) => ("SELECT * FROM users WHERE nric = $1", v),
        UserLookup::Email(v) => ("SELECT * FROM users WHERE email = $1", v),
        UserLookup::Username(v) => ("SELECT * FROM users WHERE username = $1", v),
        UserLookup::Phone(v) => ("SELECT * FROM users WHERE phone = $1", v),
    }
}

pub(crate) const INSERT_ENROLMENT: &str = "INSERT INTO enrolments (code_hash, user_sub, \
    created_at, expires_at, used_at) VALUES ($1, $2, $3, $4, $5)";
/// Consumes a code once: a second use, or a use after expiry, matches no row.
pub(crate) const CONSUME_ENROLMENT: &str = "UPDATE enrolments SET used_at = $2 \
    WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING user_sub";
pub(crate) const INSERT_DEVICE: &str = "INSERT INTO devices (id, user_sub, name, public_jwk, \
    push, disabled, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const GET_DEVICE: &str = "SELECT * FROM devices WHERE id = $1";
pub(crate) const LIST_DEVICES: &str =
    "SELECT * FROM devices WHERE user_sub = $1 ORDER BY created_at, id";
pub(crate) const SET_DEVICE_DISABLED: &str = "UPDATE devices SET disabled = $2 WHERE id = $1";
pub(crate) const SET_DEVICE_PUSH: &str = "UPDATE devices SET push = $2 WHERE id = $1";
/// A disabled device can no longer answer: its pending challenges close (at `$2`).
pub(crate) const CLOSE_DEVICE_CHALLENGES: &str = "UPDATE challenges \
    SET state = 'closed', decided_at = $2 WHERE device_id = $1 AND state = 'pending'";

pub(crate) const INSERT_AUTH_REQUEST: &str = "INSERT INTO auth_requests (id, client_id, \
    user_sub, scope, acr_values, binding_message, authorization_details, delivery_mode, \
    client_notification_token, created_at, expires_at, interval_secs, last_polled_at, state, \
    decided_at, user_verified, redeemed_at, auth_req_id, uv_required) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)";
pub(crate) const INSERT_CHALLENGE: &str = "INSERT INTO challenges (id, auth_request_id, \
    device_id, state, created_at, decided_at, decision_jws) \
    VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) const GET_AUTH_REQUEST: &str = "SELECT * FROM auth_requests WHERE id = $1";

/// A held poll answered pending at `$2` already spaced the client's polls: the next poll may
/// come at once, so the gate is set as if the last poll were a whole interval ago.
pub(crate) const TOUCH_POLL: &str = "UPDATE auth_requests \
    SET last_polled_at = $2 - interval_secs * 1000 WHERE id = $1 AND state = 'pending'";
pub(crate) const REDEEM: &str = "UPDATE auth_requests SET state = 'redeemed', redeemed_at = $2 \
    WHERE id = $1 AND state = 'approved'";

/// A challenge (columns prefixed `ch_`) with its request (columns as named).
macro_rules! challenge_join {
    ($tail:literal) => {
        concat!(
            "SELECT c.id AS ch_id, c.auth_request_id AS ch_auth_request_id, \
             c.device_id AS ch_device_id, c.state AS ch_state, c.created_at AS ch_created_at, \
             c.decided_at AS ch_decided_at, c.decision_jws AS ch_decision_jws, r.* \
             FROM challenges c JOIN auth_requests r ON r.id = c.auth_request_id ",
            $tail
        )
    };
}
pub(crate) const GET_CHALLENGE: &str = challenge_join!("WHERE c.id = $1");
pub(crate) const LIST_PENDING_CHALLENGES: &str = challenge_join!(
    "WHERE c.device_id = $1 AND c.state = 'pending' AND r.state = 'pending' \
     AND r.expires_at > $2 ORDER BY c.created_at, c.id"
);

/// First step of a decision: the request of challenge `$1` (of device `$2`, still pending)
/// takes the outcome if it is still pending and unexpired at `$4`. Updating the request row
/// first makes every decider of one request queue on that row (PostgreSQL row lock), so the
/// losers see `state <> 'pending'` and match nothing, and no two deciders lock challenge rows
/// in opposite orders.
pub(crate) const DECIDE_REQUEST: &str = "UPDATE auth_requests \
    SET state = $3, decided_at = $4, user_verified = $5, not_me = $6 \
    WHERE id = (SELECT auth_request_id FROM challenges \
                WHERE id = $1 AND device_id = $2 AND state = 'pending') \
    AND state = 'pending' AND expires_at > $4 RETURNING id";
pub(crate) const DECIDE_CHALLENGE: &str = "UPDATE challenges \
    SET state = $3, decided_at = $4, decision_jws = $5 \
    WHERE id = $1 AND device_id = $2 AND state = 'pending'";
pub(crate) const CLOSE_OTHER_CHALLENGES: &str = "UPDATE challenges \
    SET state = 'closed', decided_at = $3 \
    WHERE auth_request_id = $1 AND id <> $2 AND state = 'pending'";

/// Push-bombing protection: every undecided request of client `$2` for user `$1` at `$3` but
/// the newest (by creation, then key) ends now, replaced. Each new request runs it after it is
/// stored, so whichever runs last sees every stored request and leaves one.
pub(crate) const REPLACE_UNDECIDED: &str = "UPDATE auth_requests \
    SET expires_at = $3, replaced_at = $3 \
    WHERE user_sub = $1 AND client_id = $2 AND state = 'pending' AND expires_at > $3 \
    AND id <> (SELECT id FROM auth_requests \
               WHERE user_sub = $1 AND client_id = $2 AND state = 'pending' AND expires_at > $3 \
               ORDER BY created_at DESC, id DESC LIMIT 1) \
    RETURNING id";
/// The challenges of a replaced request close at `$2`, and their devices are told.
pub(crate) const CLOSE_REQUEST_CHALLENGES: &str = "UPDATE challenges \
    SET state = 'closed', decided_at = $2 WHERE auth_request_id = $1 AND state = 'pending'";
pub(crate) const INSERT_REQUEST_CLOSED_EVENTS: &str = "INSERT INTO device_events (device_id, \
    kind, challenge_id, created_at) SELECT device_id, 'challenge_closed', id, $2 FROM challenges \
    WHERE auth_request_id = $1";
/// A user's most recent requests, newest first (`admin user requests`).
pub(crate) const USER_REQUESTS: &str = "SELECT * FROM auth_requests WHERE user_sub = $1 \
    ORDER BY created_at DESC, id DESC LIMIT $2";

pub(crate) const REMEMBER_JTI: &str = "INSERT INTO replay_jtis (scope, jti, expires_at) \
    VALUES ($1, $2, $3) ON CONFLICT (scope, jti) DO NOTHING";

pub(crate) const INSERT_KEY: &str = "INSERT INTO signing_keys (kid, alg, private_jwk, created_at, sealed) \
    VALUES ($1, $2, $3, $4, $5)";
pub(crate) const LIST_KEYS: &str = "SELECT * FROM signing_keys ORDER BY created_at DESC, kid DESC";
/// Inserts a key only if its algorithm has none yet; atomic only where the caller holds off
/// other writers of `signing_keys` (SQLite's one writer; PostgreSQL's table lock).
pub(crate) const INSERT_KEY_IF_ALG_ABSENT: &str = "INSERT INTO signing_keys (kid, alg, private_jwk, created_at, sealed) \
    SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS (SELECT 1 FROM signing_keys WHERE alg = $2)";
pub(crate) const SEAL_KEY: &str = "UPDATE signing_keys SET private_jwk = $3, sealed = TRUE \
    WHERE kid = $1 AND private_jwk = $2 AND NOT sealed";
/// Keeps other nodes' first-key inserts (and any key insert) out until the transaction ends,
/// while readers go on: SHARE ROW EXCLUSIVE conflicts with itself and with inserts only.
pub(crate) const LOCK_KEYS: &str = "LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE";

pub(crate) const PING: &str = "SELECT 1";
