//! The SQL of the background purge, shared by both backends like [`super::sql`]. Every
//! statement deletes a bounded batch: `$3` (or `$2`) rows of its driving table at most, chosen
//! by key in a subquery, so that a large backlog is deleted in many short transactions.
//!
//! The requests of a round are chosen by [`purgeable_requests!`], evaluated again by each
//! statement of the round: it is ordered by a unique key, and nothing a round deletes changes
//! which requests it picks (they have no in-flight row before or after), so within the
//! round's transaction every statement sees the same requests.

/// The ids of at most `$3` requests that expired before `$1` (the grace period is already
/// taken off) and have nothing in flight at `$2`: no pending notification and no pending push
/// delivery whose deadline is still ahead.
macro_rules! purgeable_requests {
    () => {
        "SELECT r.id FROM auth_requests r WHERE r.expires_at < $1 \
         AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.auth_request_id = r.id \
             AND n.state = 'pending' AND n.deadline >= $2) \
         AND NOT EXISTS (SELECT 1 FROM challenges c \
             JOIN push_deliveries p ON p.challenge_id = c.id \
             WHERE c.auth_request_id = r.id AND p.state = 'pending' AND p.deadline >= $2) \
         ORDER BY r.expires_at, r.id LIMIT $3"
    };
}

/// A round, child rows first (the foreign keys point at the request and its challenges): the
/// push deliveries of the requests' challenges, ...
pub(crate) const PURGE_PUSH_DELIVERIES: &str = concat!(
    "DELETE FROM push_deliveries WHERE challenge_id IN (SELECT c.id FROM challenges c \
     WHERE c.auth_request_id IN (",
    purgeable_requests!(),
    "))"
);
/// ... their notification (at most one each: it goes with its request because it is what
/// keeps a second one from being queued), ...
pub(crate) const PURGE_NOTIFICATIONS: &str = concat!(
    "DELETE FROM notifications WHERE auth_request_id IN (",
    purgeable_requests!(),
    ")"
);
/// ... their challenges, whatever their state, ...
pub(crate) const PURGE_CHALLENGES: &str = concat!(
    "DELETE FROM challenges WHERE auth_request_id IN (",
    purgeable_requests!(),
    ")"
);
/// ... and the requests themselves, whose ids the embedded store's caches forget.
pub(crate) const PURGE_REQUESTS: &str = concat!(
    "DELETE FROM auth_requests WHERE id IN (",
    purgeable_requests!(),
    ") RETURNING id"
);

/// At most `$2` used `jti`s that expired by `$1`: a replay of one is refused by its `exp`.
pub(crate) const PURGE_JTIS: &str = "DELETE FROM replay_jtis WHERE (scope, jti) IN \
    (SELECT scope, jti FROM replay_jtis WHERE expires_at <= $1 LIMIT $2)";

/// Device events written before `$1`, among the `$2` oldest: the log is appended in `seq`
/// order, so its head is where the old events are, and a round reads no more rows than a
/// batch (an event younger than `$1` at the head ends the pass until it ages too).
pub(crate) const PURGE_DEVICE_EVENTS: &str = "DELETE FROM device_events WHERE seq IN \
    (SELECT seq FROM (SELECT seq, created_at FROM device_events ORDER BY seq LIMIT $2) AS head \
     WHERE created_at < $1)";

/// Refresh families whose absolute lifetime ended by `$1`, at most `$2` a round: their tokens
/// first, ...
macro_rules! purgeable_families {
    () => {
        "SELECT id FROM refresh_families WHERE expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
    };
}
pub(crate) const PURGE_REFRESH_TOKENS: &str = concat!(
    "DELETE FROM refresh_tokens WHERE family_id IN (",
    purgeable_families!(),
    ")"
);
/// ... then the families (a revoked one is kept until then, so a reuse is still recognised).
pub(crate) const PURGE_REFRESH_FAMILIES: &str = concat!(
    "DELETE FROM refresh_families WHERE id IN (",
    purgeable_families!(),
    ")"
);

/// At most `$2` revoked access tokens that expired by `$1`: past its `exp` a token is refused
/// anyway.
pub(crate) const PURGE_REVOKED_ACCESS_TOKENS: &str = "DELETE FROM revoked_access_tokens \
    WHERE jti IN (SELECT jti FROM revoked_access_tokens WHERE expires_at <= $1 LIMIT $2)";

/// At most `$2` request admissions made and expired before `$1` (the retention cutoff, which
/// configuration keeps at least as long as every `[limits]` window).
pub(crate) const PURGE_ADMISSIONS: &str = "DELETE FROM request_admissions WHERE request_id IN \
    (SELECT request_id FROM request_admissions WHERE admitted_at < $1 AND expires_at < $1 LIMIT $2)";

/// At most `$2` "not me" blocks that ended by `$1`.
pub(crate) const PURGE_BLOCKS: &str = "DELETE FROM client_user_blocks \
    WHERE (user_sub, client_id) IN \
    (SELECT user_sub, client_id FROM client_user_blocks WHERE blocked_until <= $1 LIMIT $2)";
