//! Web Push sender: the payload encrypted for the subscription (RFC 8291 `aes128gcm`, by
//! `web-push-native`), the application server identified by VAPID (RFC 8292), and the
//! message POSTed to the subscription's endpoint (RFC 8030 §5) with `TTL`, `Urgency` and
//! `Topic`. The endpoint comes from a device, so it is untrusted: it passes the SSRF guard.
//!
//! VAPID is signed with our jose module rather than `web-push-native`'s `vapid` feature:
//! that feature drops the port from `aud` (RFC 8292 §2 wants the origin, RFC 6454 §6.1, port
//! included when it is not the default) and brings a second JWT stack.

use std::sync::Arc;

use backchannel_protocol::device::WebPushSubscription;
use backchannel_protocol::jose::{self, JoseError, Kid, SigningKey, b64};
use base64::Engine as _;
use serde::Serialize;
use web_push_native::Auth;
use web_push_native::p256::PublicKey;

use super::http::failed;
use super::{
    Payload, PushMessage, PushOutcome, PushSender, PushSetupError, PushTarget, expired, keys,
    observed, seconds_left, wrong_channel,
};
use crate::config::WebPushConfig;
use crate::domain::clock::Clock;
use crate::outbound::Outbound;

/// Lifetime of a VAPID token: RFC 8292 §2 caps it at 24 hours.
const VAPID_LIFETIME_SECS: i64 = 12 * 3600;
/// Push services limit endpoint URLs; a longer one is not a real subscription.
const MAX_ENDPOINT_LEN: usize = 2048;

#[derive(Serialize)]
struct VapidClaims<'a> {
    aud: &'a str,
    exp: i64,
    sub: &'a str,
}

/// Sends to browsers (and anything else speaking RFC 8030) through their push service.
pub struct WebPushSender {
    http: Outbound,
    key: SigningKey,
    /// The VAPID public key, uncompressed point in base64url (the `k` parameter).
    public_key: String,
    subject: String,
    clock: Arc<dyn Clock>,
}

impl WebPushSender {
    /// Reads the VAPID key now.
    pub fn new(
        cfg: &WebPushConfig,
        outbound: &Outbound,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PushSetupError> {
        let setting = || format!("vapid_private_key_file {}", cfg.vapid_private_key_file);
        let pem = std::fs::read_to_string(&cfg.vapid_private_key_file).map_err(|source| {
            PushSetupError::Read {
                setting: setting(),
                source,
            }
        })?;
        let key_error = |source| PushSetupError::Key {
            setting: setting(),
            source,
        };
        let key = keys::p256_signing_key(&pem, None).map_err(key_error)?;
        let public_key = b64::encode(&keys::p256_public_point(&key).map_err(key_error)?);
        Ok(WebPushSender {
            http: outbound.clone(),
            key,
            public_key,
            subject: cfg.subject.clone(),
            clock,
        })
    }

    /// The VAPID public key (base64url, uncompressed point): what a browser passes as
    /// `applicationServerKey` to `pushManager.subscribe`.
    pub fn application_server_key(&self) -> &str {
        &self.public_key
    }

    /// `vapid t=<JWT>, k=<public key>` (RFC 8292 §3): `aud` is the endpoint's origin.
    fn authorization(&self, origin: &str) -> Result<String, JoseError> {
        let claims = VapidClaims {
            aud: origin,
            exp: self.clock.now_secs() + VAPID_LIFETIME_SECS,
            sub: &self.subject,
        };
        // RFC 8292 §2: `typ` JWT; the key's thumbprint as `kid`, which push services ignore.
        let jwt = jose::sign_jwt_with(&self.key, Some("JWT"), Kid::OfKey, &claims)?;
        Ok(format!("vapid t={jwt}, k={}", self.public_key))
    }

    async fn attempt(
        &self,
        sub: &WebPushSubscription,
        msg: &PushMessage,
    ) -> (PushOutcome, Option<u16>) {
        let Some(ttl) = seconds_left(msg, self.clock.as_ref()) else {
            return (expired(), None);
        };
        if sub.endpoint.len() > MAX_ENDPOINT_LEN {
            return (PushOutcome::Unregistered, None);
        }
        // A refused endpoint may become reachable when the operator changes the allowed
        // networks, so it fails the attempt without disabling the subscription.
        let url = match self.http.check_url(&sub.endpoint) {
            Ok(url) => url,
            Err(e) => return (PushOutcome::Failed(format!("endpoint {e}")), None),
        };
        // Keys that do not decode can never be encrypted to: the subscription is dead.
        let Some((ua_public, ua_auth)) = subscription_keys(sub) else {
            return (PushOutcome::Unregistered, None);
        };
        let plaintext = match serde_json::to_vec(&Payload::of(msg)) {
            Ok(p) => p,
            Err(e) => return (PushOutcome::Failed(format!("payload: {e}")), None),
        };
        let body = match web_push_native::encrypt(plaintext, &ua_public, &ua_auth) {
            Ok(body) => body,
            Err(e) => return (PushOutcome::Failed(format!("encryption failed: {e}")), None),
        };
        let authorization = match self.authorization(&url.origin().ascii_serialization()) {
            Ok(a) => a,
            Err(e) => {
                return (
                    PushOutcome::Failed(format!("cannot sign the VAPID token: {e}")),
                    None,
                );
            }
        };
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, authorization)
            .header("TTL", ttl.to_string())
            // RFC 8030 §5.3: someone is waiting to sign in.
            .header("Urgency", "high")
            .header(reqwest::header::CONTENT_ENCODING, "aes128gcm")
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        // RFC 8030 §5.4: a re-sent push for the same challenge replaces the undelivered one.
        if valid_topic(&msg.challenge_id) {
            request = request.header("Topic", &msg.challenge_id);
        }
        match self.http.execute(request, self.clock.now_ms()).await {
            Err(e) => (failed(e, "webpush", "endpoint"), None),
            Ok(reply) => {
                let outcome = match reply.status {
                    200..=299 => PushOutcome::Delivered,
                    // RFC 8030 §7.3: the subscription has expired or been removed.
                    404 | 410 => PushOutcome::Unregistered,
                    429 | 500..=599 => PushOutcome::Retry {
                        after: reply.retry_after,
                    },
                    status => PushOutcome::Failed(format!("push service answered {status}")),
                };
                (outcome, Some(reply.status))
            }
        }
    }
}

/// The subscription's `p256dh` (an uncompressed P-256 point) and `auth` (16 bytes), both
/// base64url; browsers omit the padding, some libraries keep it.
fn subscription_keys(sub: &WebPushSubscription) -> Option<(PublicKey, Auth)> {
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()
    };
    let point = decode(&sub.keys.p256dh)?;
    let auth = decode(&sub.keys.auth)?;
    let public = PublicKey::from_sec1_bytes(&point).ok()?;
    let auth: [u8; 16] = auth.try_into().ok()?;
    let auth = Auth::from(auth);
    Some((public, auth))
}

/// RFC 8030 §5.4: at most 32 characters of the URL-safe base64 alphabet.
fn valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 32
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[async_trait::async_trait]
impl PushSender for WebPushSender {
    async fn send(&self, target: &PushTarget, msg: &PushMessage) -> PushOutcome {
        observed(target, msg, async {
            match target {
                PushTarget::WebPush(sub) => self.attempt(sub, msg).await,
                other => wrong_channel("Web Push", other),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backchannel_protocol::device::WebPushKeys;

    #[test]
    fn topics_follow_rfc_8030() {
        assert!(valid_topic("abcdefghijklmnopqrstuvwxyz234567"));
        assert!(!valid_topic(&"a".repeat(33)));
        assert!(!valid_topic("has space"));
        assert!(!valid_topic(""));
    }

    #[test]
    fn subscription_keys_are_checked() {
        let sub = |p256dh: &str, auth: &str| WebPushSubscription {
            endpoint: "https://push.example.com/x".into(),
            keys: WebPushKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
        };
        // RFC 8291 §5 example keys.
        let p256dh = "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
        let auth = "BTBZMqHH6r4Tts7J_aSIgg";
        assert!(subscription_keys(&sub(p256dh, auth)).is_some());
        assert!(subscription_keys(&sub(p256dh, &format!("{auth}=="))).is_some());
        assert!(subscription_keys(&sub(p256dh, "short")).is_none());
        assert!(subscription_keys(&sub("BAAA", auth)).is_none());
        assert!(subscription_keys(&sub("not base64!", auth)).is_none());
    }
}
