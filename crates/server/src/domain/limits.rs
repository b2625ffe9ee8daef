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
    pub(crate) async fn check_limits(
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

#[cfg(test)]
mod tests {
    use backchannel_protocol::device::Decision;

    use super::super::admin::NewClient;
    use super::super::error::AuthError;
    use super::super::testing::{Fixture, HINT, fixture_with, params};
    use crate::config::{Config, LimitsConfig};

    async fn with_limits(limits: LimitsConfig) -> Fixture {
        let config = Config {
            limits,
            ..Config::default()
        };
        fixture_with(config, NewClient::default()).await
    }

    fn no_limits() -> LimitsConfig {
        LimitsConfig {
            pending_per_user_client: 0,
            requests_per_user: 0,
            requests_per_client: 0,
            ..LimitsConfig::default()
        }
    }

    async fn try_start(f: &Fixture) -> Result<String, AuthError> {
        let p = params(&[("scope", "openid"), ("login_hint", HINT)]);
        f.domain
            .start_backchannel_auth(&f.client, &p)
            .await
            .map(|r| r.auth_req_id)
    }

    fn retry_after(r: Result<String, AuthError>) -> (String, i64) {
        match r {
            Err(AuthError::RateLimited {
                description,
                retry_after_secs,
            }) => (description, retry_after_secs),
            other => panic!("expected a rate limit, got {other:?}"),
        }
    }

    async fn recorded(f: &Fixture) -> usize {
        let sub = &f.device.user_sub;
        f.domain
            .stores
            .requests
            .user_requests(sub, 100)
            .await
            .unwrap()
            .len()
    }

    #[tokio::test]
    async fn the_user_window_refuses_the_next_request_until_the_oldest_leaves_it() {
        let f = with_limits(LimitsConfig {
            requests_per_user: 3,
            requests_per_user_window_secs: 60,
            ..no_limits()
        })
        .await;
        for _ in 0..3 {
            try_start(&f).await.unwrap();
            f.clock.advance_secs(10);
        }
        // The first was admitted 30 s ago: a slot frees in 30 s.
        let (description, secs) = retry_after(try_start(&f).await);
        assert_eq!(secs, 30);
        assert!(
            description.contains("at most 3 in 60 seconds"),
            "{description}"
        );
        assert_eq!(recorded(&f).await, 3, "a refused request is not stored");
        f.clock.advance_secs(29);
        assert_eq!(retry_after(try_start(&f).await).1, 1);
        f.clock.advance_secs(1);
        try_start(&f).await.unwrap();
    }

    #[tokio::test]
    async fn undecided_requests_per_user_and_client_free_a_slot_when_one_is_decided() {
        let f = with_limits(LimitsConfig {
            pending_per_user_client: 2,
            replace_undecided: false,
            ..no_limits()
        })
        .await;
        try_start(&f).await.unwrap();
        f.clock.advance_secs(5);
        try_start(&f).await.unwrap();
        let (description, secs) = retry_after(try_start(&f).await);
        assert!(
            description.contains("2 undecided requests"),
            "{description}"
        );
        // The first expires 300 s after it was made, 295 s from now.
        assert_eq!(secs, 295);
        let shown = f.domain.list_device_challenges(&f.device).await.unwrap();
        assert_eq!(shown.len(), 2, "the refused request reached no device");
        f.decide_on(&shown[0], Decision::Deny).await.unwrap();
        try_start(&f).await.unwrap();
    }

    #[tokio::test]
    async fn the_client_window_counts_every_user() {
        let f = with_limits(LimitsConfig {
            requests_per_client: 2,
            requests_per_client_window_secs: 60,
            ..no_limits()
        })
        .await;
        try_start(&f).await.unwrap();
        try_start(&f).await.unwrap();
        let (description, secs) = retry_after(try_start(&f).await);
        assert!(description.contains("from this client"), "{description}");
        assert_eq!(secs, 60);
        f.clock.advance_secs(60);
        try_start(&f).await.unwrap();
    }

    #[tokio::test]
    async fn a_new_request_replaces_the_clients_undecided_one() {
        let f = with_limits(LimitsConfig::default()).await;
        let first = try_start(&f).await.unwrap();
        f.clock.advance_secs(6);
        let second = try_start(&f).await.unwrap();
        // Its poller learns it ended; the device shows only the new one.
        let polled = f.domain.redeem_auth_req_id(&f.client, &first).await;
        assert_eq!(polled.map_err(|e| e.code()), Err("expired_token"));
        let shown = f.challenge().await;
        f.decide_on(&shown, Decision::Approve).await.unwrap();
        f.clock.advance_secs(6);
        assert!(
            f.domain
                .redeem_auth_req_id(&f.client, &second)
                .await
                .is_ok()
        );
        let list = f
            .domain
            .user_requests(&f.device.user_sub, None)
            .await
            .unwrap();
        let outcomes: Vec<_> = list.requests.iter().map(|r| r.outcome).collect();
        assert_eq!(outcomes, ["redeemed", "replaced"]);
    }

    #[tokio::test]
    async fn without_replacement_both_requests_stay_open() {
        let f = with_limits(LimitsConfig {
            replace_undecided: false,
            ..LimitsConfig::default()
        })
        .await;
        try_start(&f).await.unwrap();
        try_start(&f).await.unwrap();
        let shown = f.domain.list_device_challenges(&f.device).await.unwrap();
        assert_eq!(shown.len(), 2);
    }

    #[tokio::test]
    async fn a_not_me_denial_blocks_the_client_for_the_configured_time() {
        let f = with_limits(LimitsConfig {
            not_me_block_secs: 600,
            ..no_limits()
        })
        .await;
        let id = try_start(&f).await.unwrap();
        let c = f.challenge().await;
        let now = f.domain.now_secs();
        // "Not me" goes with a denial only.
        let approve = f.decide_marked(&c, Decision::Approve, now, true).await;
        assert_eq!(approve.map_err(|e| e.code()), Err("invalid_decision"));
        f.decide_marked(&c, Decision::Deny, now, true)
            .await
            .unwrap();
        let polled = f.domain.redeem_auth_req_id(&f.client, &id).await;
        assert_eq!(polled.map_err(|e| e.code()), Err("access_denied"));
        let list = f
            .domain
            .user_requests(&f.device.user_sub, None)
            .await
            .unwrap();
        assert_eq!(list.requests[0].outcome, "denied_not_me");

        f.clock.advance_secs(300);
        match try_start(&f).await {
            Err(AuthError::AccessDenied(d)) => assert!(d.contains("300 seconds"), "{d}"),
            other => panic!("expected access_denied, got {other:?}"),
        }
        assert_eq!(recorded(&f).await, 1, "a blocked request is not stored");
        f.clock.advance_secs(300);
        try_start(&f).await.unwrap();
    }

    #[tokio::test]
    async fn a_plain_denial_blocks_nothing() {
        let f = with_limits(no_limits()).await;
        try_start(&f).await.unwrap();
        f.decide(Decision::Deny).await.unwrap();
        try_start(&f).await.unwrap();
    }
}
