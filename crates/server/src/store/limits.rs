//! The admission of backchannel requests under `[limits]` ([`AdmissionStore`]): "not me"
//! blocks, the per-user and per-client windows and the undecided requests of one client for one
//! user, checked and recorded as one step so the limits hold on every node; and the SQL both
//! backends run for them.

use async_trait::async_trait;

use super::StoreResult;

/// What one request asks to be admitted under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdmissionRequest {
    /// The new request's key (`AuthRequest::id`); its admission row carries it.
    pub request_id: String,
    pub user_sub: String,
    pub client_id: String,
    pub now: i64,
    /// The new request's expiry: until then it counts as undecided unless decided or replaced.
    pub expires_at: i64,
    pub limits: AdmissionLimits,
}

/// The limits to apply; `None` is no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdmissionLimits {
    pub pending_per_user_client: Option<i64>,
    /// At most this many admissions for the user within the window (ms).
    pub per_user: Option<Window>,
    /// At most this many admissions for the client within the window (ms).
    pub per_client: Option<Window>,
}

impl AdmissionLimits {
    /// No limit at all: only a block can refuse, and nothing is recorded.
    pub fn is_none(&self) -> bool {
        self.pending_per_user_client.is_none()
            && self.per_user.is_none()
            && self.per_client.is_none()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub limit: i64,
    pub window_ms: i64,
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    PendingPerUserClient,
    PerUser,
    PerClient,
}

impl LimitKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::PendingPerUserClient => "pending_per_user_client",
            LimitKind::PerUser => "requests_per_user",
            LimitKind::PerClient => "requests_per_client",
        }
    }
}

/// The store's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Recorded: the request counts from now on.
    Admitted,
    /// The user denied a request of this client as "not me"; refused until `until` (ms).
    Blocked { until: i64 },
    /// A limit is reached; a slot frees at `retry_at` (ms) at the latest.
    Limited { kind: LimitKind, retry_at: i64 },
}

#[async_trait]
pub trait AdmissionStore: Send + Sync {
    /// In one step, serialised per user (and per client when `per_client` is set) across every
    /// node: refuses if the client is blocked for the user, then if any limit is reached, and
    /// otherwise records the admission. Without any limit it only looks for a block and records
    /// nothing (a limit switched on later counts from then on).
    async fn admit(&self, request: &AdmissionRequest) -> StoreResult<Admission>;
    /// Forgets an admission whose request could not be stored.
    async fn withdraw_admission(&self, request_id: &str) -> StoreResult<()>;
    /// Refuses `client_id` for `user_sub` until `until` (ms); a later block replaces an earlier
    /// one.
    async fn block_client_for_user(
        &self,
        user_sub: &str,
        client_id: &str,
        until: i64,
        now: i64,
    ) -> StoreResult<()>;
}

/// The first limit a request would break, from what the store counted: the undecided
/// requests of the client for the user (how many, and the first of their expiries), and the
/// admissions within each window (`None` when that window has no limit). Shared by both
/// backends so they refuse alike.
pub(crate) fn first_refusal(
    req: &AdmissionRequest,
    pending: (i64, Option<i64>),
    user_window: Option<i64>,
    client_window: Option<i64>,
) -> Option<Refusal> {
    let l = &req.limits;
    if let Some(limit) = l.pending_per_user_client
        && pending.0 >= limit
    {
        // A slot frees when the first of them expires, at the latest (sooner if decided).
        return Some(Refusal::Pending {
            retry_at: pending.1.unwrap_or(req.now + 1000),
        });
    }
    let full = |w: Option<Window>, n: Option<i64>| match (w, n) {
        (Some(w), Some(n)) if n >= w.limit => Some((w, n - w.limit)),
        _ => None,
    };
    if let Some((window, offset)) = full(l.per_user, user_window) {
        return Some(Refusal::Window {
            kind: LimitKind::PerUser,
            window,
            offset,
        });
    }
    full(l.per_client, client_window).map(|(window, offset)| Refusal::Window {
        kind: LimitKind::PerClient,
        window,
        offset,
    })
}

/// Why [`first_refusal`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Pending {
        retry_at: i64,
    },
    /// A window is full: a slot frees when the admission at `offset` (oldest first; 0 unless
    /// the limit was lowered) leaves the window, so the backend reads its time.
    Window {
        kind: LimitKind,
        window: Window,
        offset: i64,
    },
}

/// The statement that reads the admission time a full window's slot frees with, and its
/// parameters (`$1` the user or client, `$2` the window's start, `$3` the offset).
pub(crate) struct NthAdmission<'a> {
    pub sql: &'static str,
    pub key: &'a str,
    pub since: i64,
    pub offset: i64,
}

impl Refusal {
    /// What to read for the answer: nothing for the undecided-requests limit.
    pub(crate) fn nth_admission<'a>(&self, req: &'a AdmissionRequest) -> Option<NthAdmission<'a>> {
        let Refusal::Window {
            kind,
            window,
            offset,
        } = *self
        else {
            return None;
        };
        let (sql, key) = match kind {
            LimitKind::PerClient => (NTH_CLIENT_ADMISSION, req.client_id.as_str()),
            _ => (NTH_USER_ADMISSION, req.user_sub.as_str()),
        };
        Some(NthAdmission {
            sql,
            key,
            since: req.now - window.window_ms,
            offset,
        })
    }

    /// The answer, given the time of the admission at `offset` for a full window.
    pub(crate) fn admission(self, nth_admitted_at: Option<i64>, now: i64) -> Admission {
        match self {
            Refusal::Pending { retry_at } => Admission::Limited {
                kind: LimitKind::PendingPerUserClient,
                retry_at,
            },
            Refusal::Window { kind, window, .. } => Admission::Limited {
                kind,
                retry_at: nth_admitted_at.map_or(now + window.window_ms, |t| t + window.window_ms),
            },
        }
    }
}

/// `$1` user, `$2` client, `$3` now: the block in force, if any.
pub(crate) const BLOCKED_UNTIL: &str = "SELECT blocked_until FROM client_user_blocks \
    WHERE user_sub = $1 AND client_id = $2 AND blocked_until > $3";
/// `$1` user, `$2` client: the block's end, whether or not it is in force (cached as it is).
pub(crate) const BLOCK_OF: &str =
    "SELECT blocked_until FROM client_user_blocks WHERE user_sub = $1 AND client_id = $2";
/// Admissions of `$1` (user) and `$2` (client) still undecided at `$3`: their request is not
/// stored yet, or is pending and unexpired (a replaced request expired when it was replaced).
pub(crate) const PENDING_FOR_USER_CLIENT: &str = "SELECT COUNT(*) AS n, \
    MIN(a.expires_at) AS first_end FROM request_admissions a \
    LEFT JOIN auth_requests r ON r.id = a.request_id \
    WHERE a.user_sub = $1 AND a.client_id = $2 AND a.expires_at > $3 \
    AND (r.id IS NULL OR (r.state = 'pending' AND r.expires_at > $3))";
pub(crate) const COUNT_USER_ADMISSIONS: &str = "SELECT COUNT(*) AS n FROM request_admissions \
    WHERE user_sub = $1 AND admitted_at > $2";
pub(crate) const NTH_USER_ADMISSION: &str = "SELECT admitted_at FROM request_admissions \
    WHERE user_sub = $1 AND admitted_at > $2 ORDER BY admitted_at LIMIT 1 OFFSET $3";
pub(crate) const COUNT_CLIENT_ADMISSIONS: &str = "SELECT COUNT(*) AS n FROM request_admissions \
    WHERE client_id = $1 AND admitted_at > $2";
pub(crate) const NTH_CLIENT_ADMISSION: &str = "SELECT admitted_at FROM request_admissions \
    WHERE client_id = $1 AND admitted_at > $2 ORDER BY admitted_at LIMIT 1 OFFSET $3";
pub(crate) const INSERT_ADMISSION: &str = "INSERT INTO request_admissions \
    (request_id, user_sub, client_id, admitted_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
pub(crate) const DELETE_ADMISSION: &str = "DELETE FROM request_admissions WHERE request_id = $1";
pub(crate) const BLOCK_CLIENT: &str = "INSERT INTO client_user_blocks \
    (user_sub, client_id, blocked_until, created_at) VALUES ($1, $2, $3, $4) \
    ON CONFLICT (user_sub, client_id) DO UPDATE \
    SET blocked_until = excluded.blocked_until, created_at = excluded.created_at";
