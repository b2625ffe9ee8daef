//! The outbox worker: delivers queued ping and push notifications to clients' endpoints
//! (CIBA Core §10.2, §10.3). A notification is written in the decision's transaction; this
//! worker leases it, sends it with the client's `client_notification_token`, and records the
//! outcome: 2xx delivered; redirects (never followed) and other 4xx final; 5xx and network
//! errors retried with backoff, never past the notification's deadline. Leases make several
//! workers (nodes) safe, and a crash mid-send only delays the next attempt until the lease ends.

use std::sync::Arc;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::domain::Domain;
use crate::domain::error::{AuthError, AuthResult};
use crate::domain::model::{Notification, NotificationKind, NotificationState};
use crate::outbound::Outbound;

/// Notifications taken per pass, and sent at once.
const BATCH: i64 = 64;

/// Delay before attempt `attempts + 1`: 1 s, 2 s, 4 s ... capped at 60 s.
pub fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(1, 7) - 1).unwrap_or(0);
    (1000_i64 << exp).min(60_000)
}

#[derive(Clone)]
pub struct OutboxWorker {
    domain: Domain,
    http: Outbound,
    permits: Arc<Semaphore>,
}

impl OutboxWorker {
    pub fn new(domain: Domain, http: Outbound) -> Self {
        OutboxWorker {
            domain,
            http,
            permits: Arc::new(Semaphore::new(super::IN_FLIGHT)),
        }
    }

    /// Runs until `shutdown` turns true; in-flight sends finish first.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        super::run_worker(self, shutdown)
    }

    /// One pass: queue `expired_token` pushes, then lease and send what is due.
    async fn pass_now(&self) -> AuthResult<()> {
        let now = self.domain.now_ms();
        let (budget, lease_ms) = super::attempt_budget(self.domain.config.outbound.timeout_ms, 1);
        let outbox = &self.domain.stores.outbox;
        for request in outbox.expired_unnotified_push(now).await? {
            let n = self.domain.expiry_notification(&request, now)?;
            if outbox.queue_notification(&n).await? {
                tracing::info!(client_id = %request.client_id, "push request expired undecided; queued expired_token");
            }
        }
        for n in outbox.due_notifications(now, BATCH).await? {
            if !outbox
                .claim_notification(&n.id, now, now + lease_ms)
                .await?
            {
                continue; // another worker has it
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let worker = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let id = n.id.clone();
                if let Err(e) = super::within_budget(budget, worker.deliver(n)).await {
                    tracing::warn!(notification_id = %id, error = %e, "notification attempt failed");
                }
            });
        }
        Ok(())
    }

    async fn finish(
        &self,
        n: &Notification,
        state: NotificationState,
        error: Option<&str>,
    ) -> AuthResult<()> {
        let now = self.domain.now_ms();
        self.domain
            .stores
            .outbox
            .finish_notification(&n.id, state, now, error)
            .await?;
        let outcome = state.as_str();
        metrics::counter!("backchannel_client_notifications_total", "kind" => n.kind.as_str(), "outcome" => outcome).increment(1);
        tracing::info!(notification_id = %n.id, client_id = %n.client_id, kind = n.kind.as_str(), attempts = n.attempts + 1, outcome, error = error.unwrap_or(""), "client notification finished");
        Ok(())
    }

    async fn deliver(&self, n: Notification) -> AuthResult<()> {
        let d = &self.domain;
        let now = d.now_ms();
        if now > n.deadline {
            return self
                .finish(&n, NotificationState::Failed, Some("deadline passed"))
                .await;
        }
        let (Some(client), Some(request)) = (
            d.stores.clients.get_client(&n.client_id).await?,
            d.stores
                .requests
                .get_auth_request(&n.auth_request_id)
                .await?,
        ) else {
            return self
                .finish(
                    &n,
                    NotificationState::Failed,
                    Some("client or request is gone"),
                )
                .await;
        };
        let Some(endpoint) = client.notification_endpoint.as_deref() else {
            return self
                .finish(
                    &n,
                    NotificationState::Failed,
                    Some("client has no notification endpoint"),
                )
                .await;
        };
        let payload = match &n.payload {
            Some(p) => p.clone(),
            None => match self.mint_once(&n, &client, &request).await? {
                Some(p) => p,
                None => {
                    return self
                        .finish(
                            &n,
                            NotificationState::Failed,
                            Some("the request is no longer approved"),
                        )
                        .await;
                }
            },
        };
        let result = self
            .http
            .post_json(
                endpoint,
                request.client_notification_token.as_deref(),
                payload,
            )
            .await;
        let decided = request.decided_at.unwrap_or(request.expires_at);
        match result {
            Ok(status) if (200..300).contains(&status) => {
                let latency = (d.now_ms() - decided).max(0) as f64 / 1000.0;
                metrics::histogram!("backchannel_decision_to_notification_seconds", "kind" => n.kind.as_str()).record(latency);
                self.finish(&n, NotificationState::Delivered, None).await
            }
            Ok(status) if (300..400).contains(&status) => {
                self.finish(
                    &n,
                    NotificationState::Failed,
                    Some(&format!("HTTP {status}: redirects are not followed")),
                )
                .await
            }
            Ok(status) if (400..500).contains(&status) => {
                self.finish(
                    &n,
                    NotificationState::Failed,
                    Some(&format!("HTTP {status}")),
                )
                .await
            }
            Ok(status) => self.retry(&n, &format!("HTTP {status}")).await,
            Err(e) if e.is_retryable() => self.retry(&n, &e.to_string()).await,
            Err(e) => {
                self.finish(&n, NotificationState::Failed, Some(&e.to_string()))
                    .await
            }
        }
    }

    /// Push mode: mints the token response once (redeeming the request in the same
    /// transaction that stores it), or reads what a previous attempt stored.
    async fn mint_once(
        &self,
        n: &Notification,
        client: &crate::domain::model::Client,
        request: &crate::domain::model::AuthRequest,
    ) -> AuthResult<Option<String>> {
        if n.kind != NotificationKind::PushTokens {
            return Err(AuthError::internal(
                "a notification without payload must be push_tokens",
            ));
        }
        let d = &self.domain;
        let payload = d.push_payload(client, request).await?;
        if d.stores
            .outbox
            .attach_push_tokens(&n.id, &request.id, &payload, d.now_ms())
            .await?
        {
            return Ok(Some(payload));
        }
        // An earlier attempt redeemed and stored its tokens: send those, never new ones.
        Ok(d.stores
            .outbox
            .get_notification(&n.auth_request_id)
            .await?
            .and_then(|stored| stored.payload))
    }

    async fn retry(&self, n: &Notification, error: &str) -> AuthResult<()> {
        let next = self.domain.now_ms() + backoff_ms(n.attempts + 1);
        if next > n.deadline {
            return self
                .finish(
                    n,
                    NotificationState::Failed,
                    Some(&format!("{error}; no time left before the deadline")),
                )
                .await;
        }
        metrics::counter!("backchannel_client_notifications_total", "kind" => n.kind.as_str(), "outcome" => "retry").increment(1);
        tracing::info!(notification_id = %n.id, client_id = %n.client_id, attempts = n.attempts + 1, error, "client notification will be retried");
        self.domain
            .stores
            .outbox
            .retry_notification(&n.id, next, error)
            .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::LeasedWorker for OutboxWorker {
    const NAME: &'static str = "outbox";

    fn now_ms(&self) -> i64 {
        self.domain.now_ms()
    }

    fn wake(&self) -> &tokio::sync::Notify {
        self.domain.notifier.outbox_waiter()
    }

    fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    async fn pass(&self) -> AuthResult<()> {
        self.pass_now().await
    }

    async fn next_due(&self) -> Option<i64> {
        self.domain
            .stores
            .outbox
            .next_notification_at()
            .await
            .ok()
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::backoff_ms;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(
            [1, 2, 3, 4, 7, 20].map(backoff_ms),
            [1000, 2000, 4000, 8000, 60_000, 60_000]
        );
    }
}
