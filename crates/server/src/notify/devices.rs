//! The device push worker: takes each challenge's queued delivery, pushes it to every live
//! channel of the device (APNs, FCM, Web Push via [`super::push`]), disables registrations the
//! push service reports dead, and retries transient failures with backoff (honouring
//! `Retry-After`), never past the request's expiry. Rows are leased like the client outbox, so
//! several nodes may run it and a crash only delays the next attempt; the payload carries the
//! challenge id only, and collapse ids make a repeated push harmless.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use super::push::{PushMessage, PushOutcome, PushSenders, PushTarget, next_attempt_at};
use crate::domain::Domain;
use crate::domain::error::AuthResult;
use crate::domain::model::{
    AuthRequest, AuthRequestState, Challenge, ChallengeState, PushDelivery, PushDeliveryState,
};
use crate::outbound::Outbound;

const BATCH: i64 = 64;
/// A push attempt may make an outbound call per channel (APNs, FCM, Web Push) and fetch an FCM
/// access token.
const SENDS_PER_ATTEMPT: u64 = 4;

/// The channel name the external system's deliveries are recorded and counted under.
const EXTERNAL_CHANNEL: &str = "external";

/// Whether a failed attempt is worth repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// A 5xx or a network error: try again with backoff while the request lives.
    Transient,
    /// Any other answer: the delivery fails now.
    Final,
}

/// A failed external attempt: whether to retry, and what to record.
#[derive(Debug)]
struct ExternalFailure {
    retry: Retry,
    error: String,
}

impl ExternalFailure {
    fn transient(error: String) -> Self {
        ExternalFailure {
            retry: Retry::Transient,
            error,
        }
    }

    fn refused(error: String) -> Self {
        ExternalFailure {
            retry: Retry::Final,
            error,
        }
    }
}

#[derive(Clone)]
pub struct PushWorker {
    domain: Domain,
    senders: Arc<PushSenders>,
    /// For the external channel's POSTs (SSRF-guarded like every call on a client's behalf).
    http: Outbound,
    permits: Arc<Semaphore>,
}

impl PushWorker {
    pub fn new(domain: Domain, senders: PushSenders, http: Outbound) -> Self {
        PushWorker {
            domain,
            senders: Arc::new(senders),
            http,
            permits: Arc::new(Semaphore::new(super::IN_FLIGHT)),
        }
    }

    /// Runs until `shutdown` turns true; in-flight sends finish first.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
        super::run_worker(self, shutdown)
    }

    async fn pass_now(&self) -> AuthResult<()> {
        let now = self.domain.now_ms();
        let (budget, lease_ms) =
            super::attempt_budget(self.domain.config.outbound.timeout_ms, SENDS_PER_ATTEMPT);
        let store = &self.domain.stores.pushes;
        for delivery in store.due_push_deliveries(now, BATCH).await? {
            if !store
                .claim_push_delivery(&delivery.challenge_id, now, now + lease_ms)
                .await?
            {
                continue;
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                break;
            };
            let worker = self.clone();
            tokio::spawn(async move {
                let _permit = permit;
                let id = delivery.challenge_id.clone();
                if let Err(e) = super::within_budget(budget, worker.deliver(delivery)).await {
                    tracing::warn!(challenge_id = %id, error = %e, "push attempt failed");
                }
            });
        }
        Ok(())
    }

    async fn deliver(&self, delivery: PushDelivery) -> AuthResult<()> {
        let d = &self.domain;
        let store = &d.stores.pushes;
        let id = delivery.challenge_id.clone();
        let done = |state: PushDeliveryState, error: Option<String>, delivered: Vec<String>| {
            let id = id.clone();
            async move {
                store
                    .finish_push_delivery(&id, state, &delivered, error.as_deref())
                    .await
            }
        };
        let now = d.now_ms();
        let Some((challenge, request)) = d
            .stores
            .requests
            .get_challenge(&delivery.challenge_id)
            .await?
        else {
            return done(
                PushDeliveryState::Failed,
                Some("the challenge is gone".into()),
                delivery.delivered.clone(),
            )
            .await
            .map_err(Into::into);
        };
        let live = challenge.state == ChallengeState::Pending
            && request.state == AuthRequestState::Pending
            && now < request.expires_at;
        let device = d.stores.devices.get_device(&delivery.device_id).await?;
        let Some(device) = device.filter(|dev| live && !dev.disabled) else {
            return done(PushDeliveryState::Done, None, delivery.delivered.clone())
                .await
                .map_err(Into::into);
        };
        if device.is_external() {
            return self.deliver_external(&delivery, &challenge, &request).await;
        }
        let targets: Vec<PushTarget> = PushTarget::from_registration(&device.push)
            .into_iter()
            .filter(|t| !delivery.delivered.iter().any(|c| c == t.channel()))
            .collect();
        let msg = PushMessage {
            challenge_id: challenge.id.clone(),
            issuer: d.issuer.clone(),
            expires_at_secs: request.expires_at.div_euclid(1000),
        };
        let mut delivered = delivery.delivered.clone();
        let mut retry_after: Option<Option<Duration>> = None;
        let mut errors = Vec::new();
        for target in &targets {
            match self.senders.send(target, &msg).await {
                PushOutcome::Delivered => delivered.push(target.channel().to_owned()),
                PushOutcome::Unregistered => {
                    d.disable_push_channel(&device.id, target.channel()).await?
                }
                PushOutcome::Retry { after } => {
                    errors.push(format!("{}: transient failure", target.channel()));
                    retry_after = Some(retry_after.flatten().max(after));
                }
                PushOutcome::Failed(e) => errors.push(format!("{}: {e}", target.channel())),
            }
        }
        let error = (!errors.is_empty()).then(|| errors.join("; "));
        let Some(after) = retry_after else {
            return done(
                if errors.is_empty() {
                    PushDeliveryState::Done
                } else {
                    PushDeliveryState::Failed
                },
                error,
                delivered,
            )
            .await
            .map_err(Into::into);
        };
        let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
        match next_attempt_at(
            attempts,
            &PushOutcome::Retry { after },
            d.now_ms(),
            msg.expires_at_secs,
        ) {
            Some(at) => {
                store
                    .retry_push_delivery(
                        &delivery.challenge_id,
                        at,
                        &delivered,
                        error.as_deref().unwrap_or(""),
                    )
                    .await?;
                Ok(())
            }
            None => done(
                PushDeliveryState::Failed,
                Some(format!(
                    "{}; no time left before expiry",
                    error.unwrap_or_default()
                )),
                delivered,
            )
            .await
            .map_err(Into::into),
        }
    }

    /// The external channel: POST the challenge to the organisation's system. 2xx delivered,
    /// 5xx and network errors retried until the request expires, anything else final.
    async fn deliver_external(
        &self,
        delivery: &PushDelivery,
        challenge: &Challenge,
        request: &AuthRequest,
    ) -> AuthResult<()> {
        let d = &self.domain;
        let store = &d.stores.pushes;
        let cfg = &d.config.external;
        let body = serde_json::to_string(&d.external_challenge(challenge, request).await?)
            .map_err(crate::domain::error::AuthError::internal)?;
        let token = (!cfg.token.is_empty()).then_some(cfg.token.expose());
        let outcome = match self.http.post_json(&cfg.url, token, body).await {
            Ok(status) if (200..300).contains(&status) => Ok(()),
            Ok(status) if status >= 500 => Err(ExternalFailure::transient(format!(
                "external: HTTP {status}"
            ))),
            Ok(status) => Err(ExternalFailure::refused(format!("external: HTTP {status}"))),
            Err(e) => Err(ExternalFailure {
                retry: if e.is_retryable() {
                    Retry::Transient
                } else {
                    Retry::Final
                },
                error: format!("external: {e}"),
            }),
        };
        let channel = vec![EXTERNAL_CHANNEL.to_owned()];
        metrics::counter!("backchannel_push_attempts_total", "channel" => EXTERNAL_CHANNEL, "outcome" => if outcome.is_ok() { "delivered" } else { "failed" }).increment(1);
        let failure = match outcome {
            Ok(()) => {
                store
                    .finish_push_delivery(
                        &delivery.challenge_id,
                        PushDeliveryState::Done,
                        &channel,
                        None,
                    )
                    .await?;
                None
            }
            Err(ExternalFailure {
                retry: Retry::Transient,
                error,
            }) => {
                let attempts = u32::try_from(delivery.attempts + 1).unwrap_or(u32::MAX);
                match next_attempt_at(
                    attempts,
                    &PushOutcome::Retry { after: None },
                    d.now_ms(),
                    request.expires_at.div_euclid(1000),
                ) {
                    Some(at) => {
                        store
                            .retry_push_delivery(&delivery.challenge_id, at, &[], &error)
                            .await?;
                        None
                    }
                    None => Some(error),
                }
            }
            Err(ExternalFailure {
                retry: Retry::Final,
                error,
            }) => Some(error),
        };
        if let Some(error) = failure {
            store
                .finish_push_delivery(
                    &delivery.challenge_id,
                    PushDeliveryState::Failed,
                    &[],
                    Some(&error),
                )
                .await?;
        }
        tracing::info!(challenge_id = %challenge.id, "external channel attempt");
        Ok(())
    }
}

#[async_trait::async_trait]
impl super::LeasedWorker for PushWorker {
    const NAME: &'static str = "device pushes";

    fn now_ms(&self) -> i64 {
        self.domain.now_ms()
    }

    fn wake(&self) -> &tokio::sync::Notify {
        self.domain.notifier.push_waiter()
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
            .pushes
            .next_push_delivery_at()
            .await
            .ok()
            .flatten()
    }
}
