//! Authenticator push senders (SPEC §5): Apple APNs, Firebase Cloud Messaging HTTP v1 and
//! Web Push, each speaking its service's real protocol over the SSRF-guarded outbound stack,
//! with base URLs from configuration so tests run them against local servers.
//!
//! One [`PushSender::send`] is one delivery attempt, counted in
//! `backchannel_push_attempts_total{channel, outcome}` and logged (never a token: devices
//! appear as a short hash). Retry scheduling belongs to the caller, which knows the attempt
//! count and can persist it: [`next_attempt_at`] gives the next slot (backoff, `Retry-After`,
//! never at or past the request's expiry), and [`send_with_retries`] runs that schedule in
//! memory for callers without a durable queue.
//!
//! Payloads carry no personal data (SPEC §5): the challenge id and the issuer, so
//! the device knows which server to ask; the device fetches everything else over the device
//! API with its own key.

mod apns;
mod fcm;
mod http;
mod keys;
mod webpush;

use std::sync::Arc;
use std::time::{Duration, Instant};

use backchannel_protocol::device::{PushRegistration, WebPushSubscription};
use backchannel_protocol::jose;
use serde::Serialize;

use crate::config::PushConfig;
use crate::domain::clock::{Clock, SystemClock};
use crate::outbound::{Outbound, Refusal};

pub use apns::{ApnsSender, PROVIDER_TOKEN_REFRESH_SECS};
pub use fcm::{ACCESS_TOKEN_MARGIN_SECS, FCM_SCOPE, FcmSender};
pub use keys::KeyFileError;
pub use webpush::WebPushSender;

/// Why a `[push.*]` section cannot make its sender: the server refuses to start. `setting`
/// names the configuration value (and file) at fault.
#[derive(Debug, thiserror::Error)]
pub enum PushSetupError {
    #[error("cannot read {setting}: {source}")]
    Read {
        setting: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{setting}: {source}")]
    Key {
        setting: String,
        #[source]
        source: KeyFileError,
    },
    #[error("{setting} is not a service-account key: {source}")]
    ServiceAccount {
        setting: String,
        #[source]
        source: serde_json::Error,
    },
    /// The sender's HTTP stack could not be built.
    #[error(transparent)]
    Http(#[from] crate::outbound::BuildError),
    /// A URL the outbound policy refuses.
    #[error("{setting} {source}")]
    Url {
        setting: String,
        #[source]
        source: Refusal,
    },
    /// A value of the wrong shape (an APNs topic, an FCM project id).
    #[error("{0}")]
    Invalid(String),
    /// Any of the above, in the section it came from.
    #[error("[push.{section}]: {source}")]
    Section {
        section: &'static str,
        #[source]
        source: Box<PushSetupError>,
    },
}

/// The neutral text a device shows before it has fetched the details. It names no user,
/// client or transaction; apps replace it (APNs `mutable-content`, FCM data handling).
pub const NOTIFICATION_TITLE: &str = "Sign-in request";

/// What a push says: which challenge, and which server to fetch it from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMessage {
    pub challenge_id: String,
    pub issuer: String,
    /// The request's expiry (Unix seconds): push lifetimes end there, and no attempt is made
    /// at or after it.
    pub expires_at_secs: i64,
}

/// Where a push goes: a device's registration on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushTarget {
    Apns { token: String },
    Fcm { token: String },
    WebPush(WebPushSubscription),
}

impl PushTarget {
    /// Every channel a device registered and the server has not found dead
    /// (`PushRegistration::disabled`), in a fixed order (APNs, FCM, Web Push).
    pub fn from_registration(reg: &PushRegistration) -> Vec<PushTarget> {
        let mut targets = Vec::new();
        if let Some(token) = &reg.apns_token {
            targets.push(PushTarget::Apns {
                token: token.clone(),
            });
        }
        if let Some(token) = &reg.fcm_token {
            targets.push(PushTarget::Fcm {
                token: token.clone(),
            });
        }
        if let Some(sub) = &reg.webpush {
            targets.push(PushTarget::WebPush(sub.clone()));
        }
        targets.retain(|t| !reg.disabled.iter().any(|d| d == t.channel()));
        targets
    }

    /// The channel's name in metrics and logs.
    pub fn channel(&self) -> &'static str {
        match self {
            PushTarget::Apns { .. } => "apns",
            PushTarget::Fcm { .. } => "fcm",
            PushTarget::WebPush(_) => "webpush",
        }
    }

    /// A short, stable, non-reversible tag of the registration for logs (first 8 hex digits
    /// of the SHA-256 of the token or endpoint): enough to correlate, useless to send with.
    pub fn log_tag(&self) -> String {
        let secret = match self {
            PushTarget::Apns { token } | PushTarget::Fcm { token } => token.as_str(),
            PushTarget::WebPush(sub) => sub.endpoint.as_str(),
        };
        jose::sha256(secret.as_bytes())
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The push service accepted the message.
    Delivered,
    /// The registration is dead (APNs 410 / `BadDeviceToken`, FCM `UNREGISTERED`, Web Push
    /// 404/410, or a registration that cannot be valid): disable it.
    Unregistered,
    /// Transient (5xx, 429, network, a credential to refresh): try again, not before `after`
    /// if given.
    Retry { after: Option<Duration> },
    /// This attempt failed for good (other 4xx, bad configuration, expired request, no sender
    /// for the channel); the registration itself is not known to be dead.
    Failed(String),
}

impl PushOutcome {
    /// The `outcome` label of `backchannel_push_attempts_total`.
    pub fn label(&self) -> &'static str {
        match self {
            PushOutcome::Delivered => "delivered",
            PushOutcome::Unregistered => "unregistered",
            PushOutcome::Retry { .. } => "retry",
            PushOutcome::Failed(_) => "failed",
        }
    }
}

/// A channel's sender. `send` is one attempt and never panics or blocks past the outbound
/// timeout.
#[async_trait::async_trait]
pub trait PushSender: Send + Sync {
    async fn send(&self, target: &PushTarget, msg: &PushMessage) -> PushOutcome;
}

/// The configured senders; a channel without one fails its pushes with `Failed`.
#[derive(Clone, Default)]
pub struct PushSenders {
    pub apns: Option<Arc<ApnsSender>>,
    pub fcm: Option<Arc<FcmSender>>,
    pub webpush: Option<Arc<WebPushSender>>,
}

impl PushSenders {
    /// The senders of every configured `[push.*]` section, reading their key files now so a
    /// bad key stops the server at start rather than at the first push.
    pub fn from_config(cfg: &PushConfig, outbound: &Outbound) -> Result<Self, PushSetupError> {
        Self::from_config_with_clock(cfg, outbound, Arc::new(SystemClock))
    }

    /// As [`PushSenders::from_config`], with the clock that dates tokens and lifetimes.
    pub fn from_config_with_clock(
        cfg: &PushConfig,
        outbound: &Outbound,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PushSetupError> {
        fn section(section: &'static str) -> impl Fn(PushSetupError) -> PushSetupError {
            move |e| PushSetupError::Section {
                section,
                source: Box::new(e),
            }
        }
        Ok(PushSenders {
            apns: cfg
                .apns()
                .map(|c| ApnsSender::new(c, outbound, clock.clone()).map(Arc::new))
                .transpose()
                .map_err(section("apns"))?,
            fcm: cfg
                .fcm()
                .map(|c| FcmSender::new(c, outbound, clock.clone()).map(Arc::new))
                .transpose()
                .map_err(section("fcm"))?,
            webpush: cfg
                .webpush()
                .map(|c| WebPushSender::new(c, outbound, clock.clone()).map(Arc::new))
                .transpose()
                .map_err(section("webpush"))?,
        })
    }

    /// One attempt through the target's channel; `Failed` when that channel is not configured.
    pub async fn send(&self, target: &PushTarget, msg: &PushMessage) -> PushOutcome {
        let sender: Option<&dyn PushSender> = match target {
            PushTarget::Apns { .. } => self.apns.as_deref().map(|s| s as &dyn PushSender),
            PushTarget::Fcm { .. } => self.fcm.as_deref().map(|s| s as &dyn PushSender),
            PushTarget::WebPush(_) => self.webpush.as_deref().map(|s| s as &dyn PushSender),
        };
        match sender {
            Some(sender) => sender.send(target, msg).await,
            None => {
                let outcome = PushOutcome::Failed(format!(
                    "no {} sender is configured ([push.{}])",
                    target.channel(),
                    target.channel()
                ));
                observe(target, msg, &outcome, None, Instant::now());
                outcome
            }
        }
    }
}

#[async_trait::async_trait]
impl PushSender for PushSenders {
    async fn send(&self, target: &PushTarget, msg: &PushMessage) -> PushOutcome {
        PushSenders::send(self, target, msg).await
    }
}

/// The payload every channel carries, as JSON: `{"challenge_id", "issuer"}`.
#[derive(Debug, Serialize)]
pub(crate) struct Payload<'a> {
    pub challenge_id: &'a str,
    pub issuer: &'a str,
}

impl<'a> Payload<'a> {
    pub(crate) fn of(msg: &'a PushMessage) -> Self {
        Payload {
            challenge_id: &msg.challenge_id,
            issuer: &msg.issuer,
        }
    }
}

/// Seconds the message may still live, or `None` once the request has expired (an expired
/// challenge is not worth waking a device for).
pub(crate) fn seconds_left(msg: &PushMessage, clock: &dyn Clock) -> Option<i64> {
    let left = msg.expires_at_secs.saturating_sub(clock.now_secs());
    (left > 0).then_some(left)
}

pub(crate) fn expired() -> PushOutcome {
    PushOutcome::Failed("the request expired before delivery".into())
}

/// Counts and logs one attempt. `status` is the push service's HTTP status, if it answered.
/// Runs one sender's attempt and records it (metric, log line); `attempt` gives the outcome
/// and the service's HTTP status, if it answered.
pub(crate) async fn observed(
    target: &PushTarget,
    msg: &PushMessage,
    attempt: impl std::future::Future<Output = (PushOutcome, Option<u16>)>,
) -> PushOutcome {
    let started = Instant::now();
    let (outcome, status) = attempt.await;
    observe(target, msg, &outcome, status, started);
    outcome
}

/// A sender handed a target of another channel: a bug in the caller, failed for good.
pub(crate) fn wrong_channel(sender: &str, target: &PushTarget) -> (PushOutcome, Option<u16>) {
    let error = format!("the {sender} sender cannot send to {}", target.channel());
    (PushOutcome::Failed(error), None)
}

fn observe(
    target: &PushTarget,
    msg: &PushMessage,
    outcome: &PushOutcome,
    status: Option<u16>,
    started: Instant,
) {
    let channel = target.channel();
    metrics::counter!(
        "backchannel_push_attempts_total",
        "channel" => channel,
        "outcome" => outcome.label()
    )
    .increment(1);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let device = target.log_tag();
    let status = status.unwrap_or(0);
    match outcome {
        PushOutcome::Delivered | PushOutcome::Unregistered => tracing::info!(
            channel,
            device,
            challenge_id = %msg.challenge_id,
            status,
            elapsed_ms,
            outcome = outcome.label(),
            "push attempt"
        ),
        PushOutcome::Retry { after } => tracing::warn!(
            channel,
            device,
            challenge_id = %msg.challenge_id,
            status,
            elapsed_ms,
            retry_after_ms = after.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            outcome = outcome.label(),
            "push attempt"
        ),
        PushOutcome::Failed(reason) => tracing::warn!(
            channel,
            device,
            challenge_id = %msg.challenge_id,
            status,
            elapsed_ms,
            reason = %reason,
            outcome = outcome.label(),
            "push attempt"
        ),
    }
}

/// First retry delay; each further one doubles, up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The backoff before the attempt after `attempt` failed ones (`attempt` ≥ 1): 1 s, 2 s,
/// 4 s ... capped at 60 s. Deterministic; [`next_attempt_at`] adds jitter.
pub fn backoff(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(16);
    BACKOFF_BASE
        .saturating_mul(1u32 << doublings)
        .min(BACKOFF_MAX)
}

/// When to try again (Unix ms) after `attempt` attempts (≥ 1) ended in `outcome`: `None`
/// unless the outcome is `Retry`, or when the next slot would fall at or after the request's
/// expiry. The delay is the backoff plus up to 20 % jitter (so a queue drained after an
/// outage does not retry in lockstep), and never less than the service's `Retry-After`.
pub fn next_attempt_at(
    attempt: u32,
    outcome: &PushOutcome,
    now_ms: i64,
    expires_at_secs: i64,
) -> Option<i64> {
    let PushOutcome::Retry { after } = outcome else {
        return None;
    };
    let base = backoff(attempt);
    let jitter = jose::random_bytes(1)
        .ok()
        .and_then(|b| b.first().copied())
        .map_or(Duration::ZERO, |b| base.mul_f64(f64::from(b) / 255.0 * 0.2));
    let delay = (base + jitter).max(after.unwrap_or(Duration::ZERO));
    let at = now_ms.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
    (at < expires_at_secs.saturating_mul(1000)).then_some(at)
}

/// Up to `max_attempts` attempts in memory, sleeping between them as [`next_attempt_at`]
/// says. Returns the last outcome: `Retry` means it gave up (attempts spent, or the next slot
/// would pass the request's expiry). A caller with a durable queue should instead store
/// `next_attempt_at` and call `send` once per slot, so retries survive a restart.
pub async fn send_with_retries<S: PushSender + ?Sized>(
    sender: &S,
    target: &PushTarget,
    msg: &PushMessage,
    clock: &dyn Clock,
    max_attempts: u32,
) -> PushOutcome {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = sender.send(target, msg).await;
        if attempt >= max_attempts {
            return outcome;
        }
        let now = clock.now_ms();
        let Some(at) = next_attempt_at(attempt, &outcome, now, msg.expires_at_secs) else {
            return outcome;
        };
        tokio::time::sleep(Duration::from_millis(
            u64::try_from(at.saturating_sub(now)).unwrap_or(0),
        ))
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let secs: Vec<u64> = (1..=9).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(0), BACKOFF_BASE);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn next_attempt_honours_retry_after_and_expiry() {
        let retry = PushOutcome::Retry { after: None };
        let now = 1_000_000_000;
        let expires = now / 1000 + 300;
        for attempt in 1..=5 {
            let at = next_attempt_at(attempt, &retry, now, expires).unwrap();
            let delay = at - now;
            let base = i64::try_from(backoff(attempt).as_millis()).unwrap();
            assert!((base..=base + base / 5 + 1).contains(&delay), "{delay}");
        }
        let later = PushOutcome::Retry {
            after: Some(Duration::from_secs(30)),
        };
        assert!(next_attempt_at(1, &later, now, expires).unwrap() >= now + 30_000);
        // Never at or past the request's expiry.
        assert_eq!(next_attempt_at(1, &later, now, now / 1000 + 30), None);
        assert_eq!(next_attempt_at(1, &retry, now, now / 1000), None);
        for done in [
            PushOutcome::Delivered,
            PushOutcome::Unregistered,
            PushOutcome::Failed("x".into()),
        ] {
            assert_eq!(next_attempt_at(1, &done, now, expires), None);
        }
    }

    #[test]
    fn targets_from_a_registration_and_log_tags() {
        let mut reg = PushRegistration {
            apns_token: Some("ab".repeat(32)),
            fcm_token: Some("fcm-token".into()),
            ..PushRegistration::default()
        };
        let targets = PushTarget::from_registration(&reg);
        let channels: Vec<_> = targets.iter().map(PushTarget::channel).collect();
        assert_eq!(channels, vec!["apns", "fcm"]);
        let tag = targets[0].log_tag();
        assert_eq!(tag.len(), 8);
        assert!(!"ab".repeat(32).contains(&tag));
        assert_eq!(tag, targets[0].log_tag());
        assert_ne!(tag, targets[1].log_tag());

        reg.disabled = vec!["apns".into()];
        let channels: Vec<_> = PushTarget::from_registration(&reg)
            .iter()
            .map(PushTarget::channel)
            .collect();
        assert_eq!(channels, vec!["fcm"]);
    }
}
