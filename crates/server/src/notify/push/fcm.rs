//! Firebase Cloud Messaging HTTP v1 sender: a service account's RS256 assertion exchanged at
//! its `token_uri` for an access token (RFC 7523 §2.1, Google's "OAuth 2.0 for server to
//! server applications"), cached until shortly before it expires, then
//! `POST /v1/projects/<project>/messages:send` with that bearer token.

use std::sync::Arc;

use backchannel_protocol::jose::{self, Kid, SigningKey};
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use super::http::{code, failed};
use super::{
    NOTIFICATION_TITLE, Payload, PushMessage, PushOutcome, PushSender, PushSetupError, PushTarget,
    expired, keys, observed, seconds_left, wrong_channel,
};
use crate::config::FcmConfig;
use crate::domain::clock::Clock;
use crate::outbound::{Outbound, Reply};

/// The scope that lets a service account send messages.
pub const FCM_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
const GRANT_TYPE_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// An access token is replaced this long before Google says it expires.
pub const ACCESS_TOKEN_MARGIN_SECS: i64 = 60;
/// Lifetime of the assertion (Google accepts at most an hour).
const ASSERTION_LIFETIME_SECS: i64 = 3600;
/// FCM registration tokens are a few hundred characters; anything far longer is not one.
const MAX_TOKEN_LEN: usize = 4096;

/// The members of a service-account key file that matter here.
#[derive(Deserialize)]
struct ServiceAccount {
    project_id: String,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: i64,
    exp: i64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<i64>,
}

struct AccessToken {
    token: String,
    /// When to stop using it (Unix seconds), margin already taken off.
    use_until: i64,
}

/// `{"error": {"code", "message", "status", "details": [...]}}` (google.rpc.Status).
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: RpcStatus,
}

#[derive(Deserialize, Default)]
struct RpcStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<ErrorDetail>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ErrorDetail {
    /// `google.firebase.fcm.v1.FcmError`
    #[serde(default)]
    error_code: Option<String>,
    /// `google.rpc.BadRequest`
    #[serde(default)]
    field_violations: Vec<FieldViolation>,
}

#[derive(Deserialize, Default)]
struct FieldViolation {
    #[serde(default)]
    field: String,
}

/// Sends to Android, iOS and web apps through Firebase Cloud Messaging.
pub struct FcmSender {
    http: Outbound,
    send_url: Url,
    token_url: Url,
    /// `token_uri` exactly as the key file gives it: the assertion's `aud`.
    token_uri: String,
    client_email: String,
    /// The service account's RSA key, which signs the RS256 assertion.
    key: SigningKey,
    /// The key file's `private_key_id`: the assertion's `kid`, by which Google finds the
    /// public key; without one the header names no `kid`.
    key_id: Option<String>,
    clock: Arc<dyn Clock>,
    /// An async lock: one token request at a time, the others wait for its result.
    access: tokio::sync::Mutex<Option<AccessToken>>,
}

impl FcmSender {
    /// Reads the service-account file now; its `token_uri` (default Google's) and the base
    /// URL must pass the outbound policy.
    pub fn new(
        cfg: &FcmConfig,
        outbound: &Outbound,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, PushSetupError> {
        let file = &cfg.service_account_file;
        let setting = || format!("service_account_file {file}");
        let text = std::fs::read_to_string(file).map_err(|source| PushSetupError::Read {
            setting: setting(),
            source,
        })?;
        let account: ServiceAccount =
            serde_json::from_str(&text).map_err(|source| PushSetupError::ServiceAccount {
                setting: setting(),
                source,
            })?;
        let key = keys::rs256_signing_key(&account.private_key).map_err(|source| {
            PushSetupError::Key {
                setting: format!("service_account_file {file}: private_key"),
                source,
            }
        })?;
        let http = outbound.clone();
        let token_uri = account
            .token_uri
            .clone()
            .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
        let token_url = http
            .check_url(&token_uri)
            .map_err(|source| PushSetupError::Url {
                setting: format!("service_account_file {file}: token_uri"),
                source,
            })?;
        let project = &account.project_id;
        if project.is_empty()
            || !project
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PushSetupError::Invalid(format!(
                "service_account_file {file}: project_id is not a project id"
            )));
        }
        let mut send_url =
            http.check_url(cfg.base_url())
                .map_err(|source| PushSetupError::Url {
                    setting: "base_url".into(),
                    source,
                })?;
        send_url.set_path(&format!("/v1/projects/{project}/messages:send"));
        Ok(FcmSender {
            http,
            send_url,
            token_url,
            token_uri,
            client_email: account.client_email,
            key,
            key_id: account.private_key_id,
            clock,
            access: tokio::sync::Mutex::new(None),
        })
    }

    /// A cached access token, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, PushOutcome> {
        let mut cached = self.access.lock().await;
        let now = self.clock.now_secs();
        if let Some(t) = cached.as_ref()
            && now < t.use_until
        {
            return Ok(t.token.clone());
        }
        let claims = AssertionClaims {
            iss: &self.client_email,
            scope: FCM_SCOPE,
            aud: &self.token_uri,
            iat: now,
            exp: now + ASSERTION_LIFETIME_SECS,
        };
        let kid = self.key_id.as_deref().map_or(Kid::Omitted, Kid::Named);
        let assertion = jose::sign_jwt_with(&self.key, Some("JWT"), kid, &claims)
            .map_err(|e| PushOutcome::Failed(format!("cannot sign the assertion: {e}")))?;
        let request = self.http.post(self.token_url.clone()).form(&[
            ("grant_type", GRANT_TYPE_JWT_BEARER),
            ("assertion", assertion.as_str()),
        ]);
        let reply = self
            .http
            .execute(request, self.clock.now_ms())
            .await
            .map_err(|e| failed(e, "fcm", "token endpoint"))?;
        match reply.status {
            200 => {}
            429 | 500..=599 => {
                return Err(PushOutcome::Retry {
                    after: reply.retry_after,
                });
            }
            status => {
                // invalid_grant & co: a revoked key, a wrong clock, a wrong token_uri.
                let error = serde_json::from_slice::<serde_json::Value>(&reply.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(code))
                    .unwrap_or_default();
                return Err(PushOutcome::Failed(format!(
                    "the token endpoint refused the service account: {status} {error}"
                )));
            }
        }
        let token: TokenResponse = serde_json::from_slice(&reply.body).map_err(|_| {
            PushOutcome::Failed("the token endpoint answered no access_token".into())
        })?;
        // Google says 3599 s; without expires_in, assume the assertion's hour.
        let lifetime = token.expires_in.unwrap_or(ASSERTION_LIFETIME_SECS);
        *cached = Some(AccessToken {
            token: token.access_token.clone(),
            use_until: now + lifetime - ACCESS_TOKEN_MARGIN_SECS,
        });
        Ok(token.access_token)
    }

    async fn forget_access_token(&self, token: &str) {
        let mut cached = self.access.lock().await;
        if cached.as_ref().is_some_and(|t| t.token == token) {
            *cached = None;
        }
    }

    /// The message. `data` carries the two fields for the app; the neutral `notification`
    /// makes the system show something even when the app is not running (Android stops
    /// delivering data-only messages to force-stopped apps, and iOS treats them as silent
    /// background pushes it may throttle or drop). High priority and a lifetime up to the
    /// request's expiry; the challenge id collapses a re-sent push (after a crash) on the
    /// server (`collapse_key`, `apns-collapse-id`) and on the device (Android `tag`).
    fn message(token: &str, msg: &PushMessage, ttl_secs: i64) -> serde_json::Value {
        let Payload {
            challenge_id,
            issuer,
        } = Payload::of(msg);
        json!({
            "message": {
                "token": token,
                "data": { "challenge_id": challenge_id, "issuer": issuer },
                "notification": { "title": NOTIFICATION_TITLE },
                "android": {
                    "priority": "high",
                    "ttl": format!("{ttl_secs}s"),
                    "collapse_key": challenge_id,
                    "notification": { "tag": challenge_id },
                },
                "apns": {
                    "headers": {
                        "apns-push-type": "alert",
                        "apns-priority": "10",
                        "apns-expiration": msg.expires_at_secs.to_string(),
                        "apns-collapse-id": challenge_id,
                    },
                    "payload": { "aps": { "mutable-content": 1 } },
                },
            }
        })
    }

    async fn attempt(&self, token: &str, msg: &PushMessage) -> (PushOutcome, Option<u16>) {
        let Some(ttl) = seconds_left(msg, self.clock.as_ref()) else {
            return (expired(), None);
        };
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return (PushOutcome::Unregistered, None);
        }
        let access = match self.access_token().await {
            Ok(access) => access,
            Err(outcome) => return (outcome, None),
        };
        let request = self
            .http
            .post(self.send_url.clone())
            .bearer_auth(&access)
            .json(&Self::message(token, msg, ttl));
        match self.http.execute(request, self.clock.now_ms()).await {
            Err(e) => (failed(e, "fcm", "push service"), None),
            Ok(reply) => {
                let status = reply.status;
                (self.outcome(reply, &access).await, Some(status))
            }
        }
    }

    /// Maps an answer (FCM v1 `ErrorCode`): a dead or foreign token disables the
    /// registration; 401 drops the access token and tries again.
    async fn outcome(&self, reply: Reply, access: &str) -> PushOutcome {
        if (200..300).contains(&reply.status) {
            return PushOutcome::Delivered;
        }
        let body: ErrorBody = serde_json::from_slice(&reply.body).unwrap_or_default();
        let error = body.error;
        let codes: Vec<&str> = error
            .details
            .iter()
            .filter_map(|d| d.error_code.as_deref())
            .collect();
        let has = |c: &str| codes.contains(&c) || error.status == c;
        let about_the_token = error
            .details
            .iter()
            .flat_map(|d| &d.field_violations)
            .any(|v| v.field == "message.token")
            || error.message.contains("registration token");
        if has("UNREGISTERED")
            || has("SENDER_ID_MISMATCH")
            || (has("INVALID_ARGUMENT") && about_the_token)
        {
            return PushOutcome::Unregistered;
        }
        match reply.status {
            401 if !has("THIRD_PARTY_AUTH_ERROR") => {
                self.forget_access_token(access).await;
                PushOutcome::Retry { after: None }
            }
            429 | 500..=599 => PushOutcome::Retry {
                after: reply.retry_after,
            },
            status => {
                let detail = codes.first().copied().unwrap_or(&error.status);
                PushOutcome::Failed(format!("FCM {status} {}", code(detail)))
            }
        }
    }
}

#[async_trait::async_trait]
impl PushSender for FcmSender {
    async fn send(&self, target: &PushTarget, msg: &PushMessage) -> PushOutcome {
        observed(target, msg, async {
            match target {
                PushTarget::Fcm { token } => self.attempt(token, msg).await,
                other => wrong_channel("FCM", other),
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_carries_only_the_challenge_and_issuer() {
        let msg = PushMessage {
            challenge_id: "c".repeat(26),
            issuer: "https://id.example.com".into(),
            expires_at_secs: 1_700_000_300,
        };
        let m = FcmSender::message("tok", &msg, 120);
        let data = m["message"]["data"].as_object().unwrap();
        assert_eq!(data.len(), 2);
        assert_eq!(data["challenge_id"], msg.challenge_id.as_str());
        assert_eq!(m["message"]["android"]["ttl"], "120s");
        assert_eq!(
            m["message"]["android"]["collapse_key"],
            msg.challenge_id.as_str()
        );
        assert_eq!(
            m["message"]["apns"]["headers"]["apns-expiration"],
            "1700000300"
        );
    }
}
