//! Protection against push bombing ("MFA fatigue"), issue 13: the `[limits]` on
//! `/bc-authorize` (undecided requests per user and client, new requests per user and per
//! client within a window), the block a "not me" denial puts on the client for that user, and
//! the replacement of a client's undecided request by its newer one. Admission is checked and
//! recorded by the store in one step ([`AdmissionStore`](crate::store::AdmissionStore)), so
//! the limits hold across nodes; a refused request creates nothing and reaches no device.

use super::Domain;
use super::error::{AuthError, AuthResult};
use super::model::{AuthRequest, Client};
use crate::config::LimitsConfig;
use crate::store::limits::{Admission, AdmissionLimits, AdmissionRequest, LimitKind, Window};

impl LimitsConfig {
    /// The limits as the store applies them (0 is no limit).
    pub fn admission_limits(&self) -> AdmissionLimits {
        let window = |limit: u32, secs: i64| {
            (limit > 0).then(|| Window {
                limit: i64::from(limit),
                window_ms: secs.saturating_mul(1000),
            })
        };
        AdmissionLimits {
            pending_per_user_client: (self.pending_per_user_client > 0)
                .then(|| i64::from(self.pending_per_user_client)),
            per_user: window(self.requests_per_user, self.requests_per_user_window_secs),
            per_client: window(
                self.requests_per_client,
                self.requests_per_client_window_secs,
            ),
        }
    }
}

/// Seconds until `at`, rounded up, at least 1: what `Retry-After` says.
fn secs_until(at: i64, now: i64) -> i64 {
    ((at - now).max(1) + 999) / 1000
}

impl Domain {
    /// Admits the request about to be stored, or refuses it: `access_denied` while the client
    /// is blocked for the user, `slow_down` (HTTP 429, `Retry-After`) beyond a limit.
    pub(crate) async fn admit_request(
        &self,
        client: &Client,
        request: &AuthRequest,
    ) -> AuthResult<()> {
        let now = request.created_at;
        let admission = self
            .stores
            .admissions
            .admit(&AdmissionRequest {
                request_id: request.id.clone(),
                user_sub: request.user_sub.clone(),
                client_id: client.id.clone(),
                now,
                expires_at: request.expires_at,
                limits: self.config.limits.admission_limits(),
            })
            .await?;
        let l = &self.config.limits;
        match admission {
            Admission::Admitted => Ok(()),
            Admission::Blocked { until } => {
                metrics::counter!("backchannel_policy_refusals_total",
                    "client_id" => client.id.clone(), "rule" => "not_me_block")
                .increment(1);
                Err(AuthError::AccessDenied(format!(
                    "the user reported a request from this client as not theirs; \
                     this client may ask for them again in {} seconds",
                    secs_until(until, now)
                )))
            }
            Admission::Limited { kind, retry_at } => {
                metrics::counter!("backchannel_rate_limited_total",
                    "client_id" => client.id.clone(), "limit" => kind.as_str())
                .increment(1);
                let retry_after_secs = secs_until(retry_at, now);
                let description = match kind {
                    LimitKind::PendingPerUserClient => format!(
                        "this client already has {} undecided requests for this user; \
                         wait for one to be decided or to expire",
                        l.pending_per_user_client
                    ),
                    LimitKind::PerUser => format!(
                        "too many requests for this user: at most {} in {} seconds",
                        l.requests_per_user, l.requests_per_user_window_secs
                    ),
                    LimitKind::PerClient => format!(
                        "too many requests from this client: at most {} in {} seconds",
                        l.requests_per_client, l.requests_per_client_window_secs
                    ),
                };
                Err(AuthError::RateLimited {
                    description: format!("{description}; retry after {retry_after_secs} seconds"),
                    retry_after_secs,
                })
            }
        }
    }

    /// After a new request of `client` for its user is stored: the client's other undecided
    /// requests for the user end (their pollers get `expired_token`, push clients an
    /// `expired_token` callback), and their devices close them.
    pub(crate) async fn replace_undecided(&self, request: &AuthRequest) -> AuthResult<()> {
        let replaced = self
            .stores
            .requests
            .replace_undecided(&request.user_sub, &request.client_id, request.created_at)
            .await?;
        for (id, devices) in &replaced {
            self.notifier.request_decided(id, devices);
            metrics::counter!("backchannel_requests_replaced_total",
                "client_id" => request.client_id.clone())
            .increment(1);
        }
        if !replaced.is_empty() {
            tracing::info!(client_id = %request.client_id, replaced = replaced.len(),
                "undecided requests replaced by a newer one");
        }
        Ok(())
    }

    /// A "not me" denial was recorded: counted, logged, and the client is refused for the user
    /// for `[limits] not_me_block_secs`. A failure to store the block is logged; the decision
    /// itself stands.
    pub(crate) async fn block_after_not_me(&self, request: &AuthRequest, now: i64) {
        metrics::counter!("backchannel_not_me_denials_total",
            "client_id" => request.client_id.clone())
        .increment(1);
        tracing::warn!(client_id = %request.client_id, "a user denied a request as not theirs");
        let secs = self.config.limits.not_me_block_secs;
        if secs == 0 {
            return;
        }
        let until = now.saturating_add(secs.saturating_mul(1000));
        if let Err(e) = self
            .stores
            .admissions
            .block_client_for_user(&request.user_sub, &request.client_id, until, now)
            .await
        {
            tracing::error!(client_id = %request.client_id, error = %e,
                "could not store the block after a not-me denial");
        }
    }
}
