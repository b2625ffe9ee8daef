//! The SQL of the delivery side — the client notification outbox, the device push queue and
//! the device event log — shared by both backends like [`super::sql`].

pub(crate) const INSERT_PUSH_DELIVERY: &str = "INSERT INTO push_deliveries (challenge_id, \
    device_id, state, next_attempt_at, deadline, created_at) VALUES ($1, $2, 'pending', $3, $4, $3)";
pub(crate) const DUE_PUSH_DELIVERIES: &str = "SELECT * FROM push_deliveries \
    WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, challenge_id LIMIT $2";
pub(crate) const CLAIM_PUSH_DELIVERY: &str = "UPDATE push_deliveries \
    SET attempts = attempts + 1, next_attempt_at = $3, leased_until = $3 \
    WHERE challenge_id = $1 AND state = 'pending' AND next_attempt_at <= $2";
pub(crate) const FINISH_PUSH_DELIVERY: &str = "UPDATE push_deliveries \
    SET state = $2, delivered = $3, last_error = $4, leased_until = NULL WHERE challenge_id = $1 AND state = 'pending'";
pub(crate) const RETRY_PUSH_DELIVERY: &str = "UPDATE push_deliveries \
    SET next_attempt_at = $2, delivered = $3, last_error = $4, leased_until = NULL \
    WHERE challenge_id = $1 AND state = 'pending'";
/// A restart of the only node on a database: the leases its previous run held are dead, and
/// what they held is due again now.
pub(crate) const RELEASE_PUSH_LEASES: &str = "UPDATE push_deliveries \
    SET next_attempt_at = $1, leased_until = NULL \
    WHERE state = 'pending' AND leased_until IS NOT NULL";
pub(crate) const RELEASE_NOTIFICATION_LEASES: &str = "UPDATE notifications \
    SET next_attempt_at = $1, leased_until = NULL \
    WHERE state = 'pending' AND leased_until IS NOT NULL";
pub(crate) const GET_PUSH_DELIVERY: &str = "SELECT * FROM push_deliveries WHERE challenge_id = $1";
pub(crate) const NEXT_PUSH_DELIVERY_AT: &str =
    "SELECT MIN(next_attempt_at) AS next FROM push_deliveries WHERE state = 'pending'";

pub(crate) const INSERT_CHALLENGE_EVENT: &str = "INSERT INTO device_events (device_id, kind, \
    challenge_id, created_at) VALUES ($1, 'challenge', $2, $3)";
/// Every other device of the request learns that its challenge is closed.
pub(crate) const INSERT_CLOSED_EVENTS: &str = "INSERT INTO device_events (device_id, kind, \
    challenge_id, created_at) SELECT device_id, 'challenge_closed', id, $3 FROM challenges \
    WHERE auth_request_id = $1 AND id <> $2";
pub(crate) const DEVICE_EVENTS_SINCE: &str = "SELECT * FROM device_events \
    WHERE device_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
pub(crate) const LATEST_DEVICE_EVENT: &str =
    "SELECT MAX(seq) AS latest FROM device_events WHERE device_id = $1";
pub(crate) const REQUEST_CHALLENGES: &str =
    "SELECT * FROM challenges WHERE auth_request_id = $1 ORDER BY created_at, id";

pub(crate) const INSERT_NOTIFICATION: &str = "INSERT INTO notifications (id, auth_request_id, \
    client_id, kind, payload, state, attempts, next_attempt_at, deadline, last_error, \
    created_at, delivered_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
    ON CONFLICT (auth_request_id) DO NOTHING";
pub(crate) const DUE_NOTIFICATIONS: &str = "SELECT * FROM notifications \
    WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2";
/// A lease: one worker takes the attempt; the others see `next_attempt_at` in the future.
pub(crate) const CLAIM_NOTIFICATION: &str = "UPDATE notifications \
    SET attempts = attempts + 1, next_attempt_at = $3, leased_until = $3 \
    WHERE id = $1 AND state = 'pending' AND next_attempt_at <= $2";
pub(crate) const SET_NOTIFICATION_PAYLOAD: &str =
    "UPDATE notifications SET payload = $2 WHERE id = $1 AND payload IS NULL";
pub(crate) const FINISH_NOTIFICATION: &str = "UPDATE notifications \
    SET state = $2, delivered_at = $3, last_error = $4, leased_until = NULL WHERE id = $1 AND state = 'pending'";
pub(crate) const RETRY_NOTIFICATION: &str = "UPDATE notifications \
    SET next_attempt_at = $2, last_error = $3, leased_until = NULL WHERE id = $1 AND state = 'pending'";
/// Push requests that expired undecided and were never notified.
pub(crate) const EXPIRED_UNNOTIFIED_PUSH: &str = "SELECT r.* FROM auth_requests r \
    WHERE r.delivery_mode = 'push' AND r.state = 'pending' AND r.expires_at <= $1 \
    AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.auth_request_id = r.id) \
    ORDER BY r.expires_at LIMIT 100";
pub(crate) const GET_NOTIFICATION: &str = "SELECT * FROM notifications WHERE auth_request_id = $1";
pub(crate) const NEXT_NOTIFICATION_AT: &str =
    "SELECT MIN(next_attempt_at) AS next FROM notifications WHERE state = 'pending'";
