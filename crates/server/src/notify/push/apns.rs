//! Apple Push Notification service sender: token-based provider authentication (an ES256 JWT
//! `{alg, kid}` / `{iss: team id, iat}` signed with the `.p8` key, reused and refreshed before
//! Apple's 60-minute limit) and `POST /3/device/<token>` over HTTP/2 ("Sending notification
//! requests to APNs", "Establishing a token-based connection to APNs").

use std::sync::{Arc, Mutex};

use backchannel_protocol::jose::{self, JoseError, Kid, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use super::http::{code, failed};
use super::{
    NOTIFICATION_TITLE, Payload, PushMessage, PushOutcome, PushSender, PushSetupError, PushTarget,
    expired, keys, observed, seconds_left, wrong_channel,
};
use crate::config::ApnsConfig;
use crate::domain::clock::Clock;
use crate::outbound::{Outbound, Reply};

/// A provider token is replaced after this long. Apple refuses tokens older than an hour
/// (`ExpiredProviderToken`) and updates more often than every 20 minutes
/// (`TooManyProviderTokenUpdates`).
pub const PROVIDER_TOKEN_REFRESH_SECS: i64 = 50 * 60;

const MAX_COLLAPSE_ID_LEN: usize = 64;

/// APNs device tokens are hex; Apple warns their length may grow, so allow room.
const MAX_DEVICE_TOKEN_LEN: usize = 200;

struct ProviderToken {
    jwt: String,
    issued_at: i64,
}

/// Why no provider token could be had: the attempt fails.
#[derive(Debug, thiserror::Error)]
enum ProviderTokenError {
    #[error("provider token cache poisoned")]
    Poisoned,
    #[error("cannot sign the provider token: {0}")]
    Sign(#[from] JoseError),
}

#[derive(Serialize)]
struct ProviderClaims<'a> {
    iss: &'a str,
    iat: i64,
}

#[derive(Deserialize)]
struct ApnsError {
    #[serde(default)]
    reason: String,
}

/// Sends alert pushes to iOS/macOS devices through APNs.
pub struct ApnsSender {
    http: Outbound,
    base: Url,
    topic: String,
    team_id: String,
    key: SigningKey,
    clock: Arc<dyn Clock>,
    token: Mutex<Option<ProviderToken>>,
}

impl ApnsSender {
    /// Reads the `.p8` key now; the base URL must pass the outbound policy.
    pub fn new(
        cfg: &ApnsConfig,
        outbound: &Outbound,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PushSetupError> {
        let setting = || format!("key_file {}", cfg.key_file);
        let pem =
            std::fs::read_to_string(&cfg.key_file).map_err(|source| PushSetupError::Read {
                setting: setting(),
                source,
            })?;
        let key = keys::p256_signing_key(&pem, Some(&cfg.key_id)).map_err(|source| {
            PushSetupError::Key {
                setting: setting(),
                source,
            }
        })?;
        if cfg.topic.is_empty() || !cfg.topic.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(PushSetupError::Invalid(
                "topic must be the app's bundle id".into(),
            ));
        }
        let http = outbound.http2_only()?;
        let base = http
            .check_url(cfg.base_url())
            .map_err(|source| PushSetupError::Url {
                setting: "base_url".into(),
                source,
            })?;
        Ok(ApnsSender {
            http,
            base,
            topic: cfg.topic.clone(),
            team_id: cfg.team_id.clone(),
            key,
            clock,
            token: Mutex::new(None),
        })
    }

    /// The cached provider token, or a fresh one once the cached one is
    /// [`PROVIDER_TOKEN_REFRESH_SECS`] old (or dated in the future: the clock moved back).
    fn provider_token(&self) -> Result<String, ProviderTokenError> {
        let now = self.clock.now_secs();
        let mut cached = self
            .token
            .lock()
            .map_err(|_| ProviderTokenError::Poisoned)?;
        if let Some(t) = cached.as_ref() {
            let age = now - t.issued_at;
            if (0..PROVIDER_TOKEN_REFRESH_SECS).contains(&age) {
                return Ok(t.jwt.clone());
            }
        }
        let claims = ProviderClaims {
            iss: &self.team_id,
            iat: now,
        };
        // Header {alg: ES256, kid: key id} and no typ, as Apple documents it: the key was
        // loaded under the key id, so it is the key's own kid.
        let jwt = jose::sign_jwt_with(&self.key, None, Kid::OfKey, &claims)?;
        *cached = Some(ProviderToken {
            jwt: jwt.clone(),
            issued_at: now,
        });
        Ok(jwt)
    }

    /// Drops `jwt` from the cache (unless another task already replaced it).
    fn forget_token(&self, jwt: &str) {
        if let Ok(mut cached) = self.token.lock()
            && cached.as_ref().is_some_and(|t| t.jwt == jwt)
        {
            *cached = None;
        }
    }

    /// The notification: a neutral alert any app can show before it knows more, and
    /// `mutable-content` so the app's notification service extension can fetch the challenge
    /// over the device API and rewrite the text (localised, with the binding message) before
    /// it is displayed. The challenge id and issuer sit at the top level, beside `aps`, where
    /// Apple puts custom keys.
    fn payload(msg: &PushMessage) -> serde_json::Value {
        let Payload {
            challenge_id,
            issuer,
        } = Payload::of(msg);
        json!({
            "aps": {
                "alert": { "title": NOTIFICATION_TITLE },
                "sound": "default",
                "mutable-content": 1,
            },
            "challenge_id": challenge_id,
            "issuer": issuer,
        })
    }

    async fn attempt(&self, device_token: &str, msg: &PushMessage) -> (PushOutcome, Option<u16>) {
        if seconds_left(msg, self.clock.as_ref()).is_none() {
            return (expired(), None);
        }
        if !valid_device_token(device_token) {
            // APNs would answer 400 BadDeviceToken; no need to ask.
            return (PushOutcome::Unregistered, None);
        }
        let jwt = match self.provider_token() {
            Ok(jwt) => jwt,
            Err(e) => return (PushOutcome::Failed(e.to_string()), None),
        };
        let mut url = self.base.clone();
        url.set_path(&format!("/3/device/{device_token}"));
        let body = match serde_json::to_vec(&Self::payload(msg)) {
            Ok(body) => body,
            Err(e) => return (PushOutcome::Failed(format!("payload: {e}")), None),
        };
        let mut request = self
            .http
            .post(url)
            // Written as Apple documents it.
            .header(reqwest::header::AUTHORIZATION, format!("bearer {jwt}"))
            .header("apns-topic", &self.topic)
            .header("apns-push-type", "alert")
            .header("apns-priority", "10")
            .header("apns-expiration", msg.expires_at_secs.to_string())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        // A re-sent push for the same challenge replaces the one shown; Apple allows 64 bytes.
        if msg.challenge_id.len() <= MAX_COLLAPSE_ID_LEN {
            request = request.header("apns-collapse-id", &msg.challenge_id);
        }
        match self.http.execute(request, self.clock.now_ms()).await {
            Err(e) => (failed(e, "apns", "push service"), None),
            Ok(reply) => {
                let status = reply.status;
                (self.outcome(reply, &jwt), Some(status))
            }
        }
    }

    /// Maps an answer ("Handling notification responses from APNs").
    fn outcome(&self, reply: Reply, jwt: &str) -> PushOutcome {
        let reason = serde_json::from_slice::<ApnsError>(&reply.body)
            .map(|e| e.reason)
            .unwrap_or_default();
        match (reply.status, reason.as_str()) {
            (200, _) => PushOutcome::Delivered,
            (410, _) | (400, "BadDeviceToken" | "DeviceTokenNotForTopic") => {
                PushOutcome::Unregistered
            }
            (403, "ExpiredProviderToken") => {
                self.forget_token(jwt);
                PushOutcome::Retry { after: None }
            }
            (429, _) | (500..=599, _) => PushOutcome::Retry {
                after: reply.retry_after,
            },
            (status, reason) => PushOutcome::Failed(format!("APNs {status} {}", code(reason))),
        }
    }
}

/// Hex, even length, bounded: anything else cannot be a device token and must not reach the
/// request path.
fn valid_device_token(token: &str) -> bool {
    (16..=MAX_DEVICE_TOKEN_LEN).contains(&token.len())
        && token.len().is_multiple_of(2)
        && token.bytes().all(|b| b.is_ascii_hexdigit())
}

#[async_trait::async_trait]
impl PushSender for ApnsSender {
    async fn send(&self, target: &PushTarget, msg: &PushMessage) -> PushOutcome {
        observed(target, msg, async {
            match target {
                PushTarget::Apns { token } => self.attempt(token, msg).await,
                other => wrong_channel("APNs", other),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_tokens_are_hex_and_bounded() {
        assert!(valid_device_token(&"0f".repeat(32)));
        assert!(valid_device_token(&"AB".repeat(50)));
        assert!(!valid_device_token(""));
        assert!(!valid_device_token("abc"));
        assert!(!valid_device_token(&format!("{}/../x", "ab".repeat(16))));
        assert!(!valid_device_token(&"ab".repeat(101)));
    }

    #[test]
    fn the_payload_names_nobody() {
        let msg = PushMessage {
            challenge_id: "c".repeat(26),
            issuer: "https://id.example.com".into(),
            expires_at_secs: 0,
        };
        let p = ApnsSender::payload(&msg);
        let keys: Vec<&String> = p.as_object().unwrap().keys().collect();
        assert_eq!(keys, vec!["aps", "challenge_id", "issuer"]);
        assert_eq!(p["aps"]["mutable-content"], 1);
        assert_eq!(p["aps"]["alert"]["title"], NOTIFICATION_TITLE);
    }
}
