//! The push sender sections (`[push.apns]`, `[push.fcm]`, `[push.webpush]`): their keys,
//! defaults, and the check that a switched-on section is complete.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// Authenticator push senders (`[push.apns]`, `[push.fcm]`, `[push.webpush]`). Every key
/// defaults to the empty string, which keeps the defaults table (and so the
/// `BACKCHANNEL_PUSH_<CHANNEL>_<KEY>` overrides) complete while meaning "not set": a section
/// with any key set switches its sender on, and then must be complete.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    pub apns: ApnsConfig,
    pub fcm: FcmConfig,
    pub webpush: WebPushConfig,
}

/// Apple Push Notification service with a token-based (`.p8`) provider key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApnsConfig {
    /// Scheme, host and port; empty means [`ApnsConfig::DEFAULT_BASE_URL`]
    /// (the sandbox is `https://api.sandbox.push.apple.com`).
    pub base_url: String,
    /// The Apple developer team id (the provider token's `iss`).
    pub team_id: String,
    /// The id of the signing key (the provider token's `kid`).
    pub key_id: String,
    /// The `.p8` file Apple issues (PKCS#8 PEM, P-256).
    pub key_file: String,
    /// The app's bundle id (`apns-topic`).
    pub topic: String,
}

/// Firebase Cloud Messaging HTTP v1 with a service account.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FcmConfig {
    /// Scheme, host and port; empty means [`FcmConfig::DEFAULT_BASE_URL`].
    pub base_url: String,
    /// The service-account JSON key file (`project_id`, `client_email`, `private_key`,
    /// `token_uri`).
    pub service_account_file: String,
}

/// Web Push (RFC 8030) with VAPID (RFC 8292).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebPushConfig {
    /// The VAPID key: a P-256 private key as PEM (PKCS#8 or SEC1).
    pub vapid_private_key_file: String,
    /// The VAPID `sub`: a `mailto:` or `https:` contact (RFC 8292 §2.1).
    pub subject: String,
}

impl ApnsConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://api.push.apple.com";

    /// Whether the section switches the APNs sender on (any key set).
    pub fn is_configured(&self) -> bool {
        [
            &self.base_url,
            &self.team_id,
            &self.key_id,
            &self.key_file,
            &self.topic,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }

    pub fn base_url(&self) -> &str {
        non_empty_or(&self.base_url, Self::DEFAULT_BASE_URL)
    }
}

impl FcmConfig {
    pub const DEFAULT_BASE_URL: &'static str = "https://fcm.googleapis.com";

    /// Whether the section switches the FCM sender on (any key set).
    pub fn is_configured(&self) -> bool {
        !self.base_url.is_empty() || !self.service_account_file.is_empty()
    }

    pub fn base_url(&self) -> &str {
        non_empty_or(&self.base_url, Self::DEFAULT_BASE_URL)
    }
}

impl WebPushConfig {
    /// Whether the section switches the Web Push sender on (any key set).
    pub fn is_configured(&self) -> bool {
        !self.vapid_private_key_file.is_empty() || !self.subject.is_empty()
    }
}

impl PushConfig {
    /// The configured sections, as options.
    pub fn apns(&self) -> Option<&ApnsConfig> {
        self.apns.is_configured().then_some(&self.apns)
    }

    pub fn fcm(&self) -> Option<&FcmConfig> {
        self.fcm.is_configured().then_some(&self.fcm)
    }

    pub fn webpush(&self) -> Option<&WebPushConfig> {
        self.webpush.is_configured().then_some(&self.webpush)
    }

    /// A switched-on section must be complete; base URLs are scheme, host and port only.
    /// Key files are read when the senders are built, so `admin` commands do not need them.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(a) = self.apns() {
            require(
                "push.apns",
                &[
                    ("team_id", &a.team_id),
                    ("key_id", &a.key_id),
                    ("key_file", &a.key_file),
                    ("topic", &a.topic),
                ],
            )?;
            check_base_url("push.apns.base_url", a.base_url())?;
        }
        if let Some(f) = self.fcm() {
            require(
                "push.fcm",
                &[("service_account_file", &f.service_account_file)],
            )?;
            check_base_url("push.fcm.base_url", f.base_url())?;
        }
        if let Some(w) = self.webpush() {
            require(
                "push.webpush",
                &[
                    ("vapid_private_key_file", &w.vapid_private_key_file),
                    ("subject", &w.subject),
                ],
            )?;
            let contact = w.subject.starts_with("mailto:") && w.subject.len() > "mailto:".len();
            let https = url::Url::parse(&w.subject)
                .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some());
            if !(contact || https) {
                return Err(ConfigError::Invalid(
                    "push.webpush.subject must be a mailto: or https: URL".into(),
                ));
            }
        }
        Ok(())
    }
}

fn non_empty_or<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() { default } else { value }
}

fn require(section: &str, keys: &[(&str, &String)]) -> Result<(), ConfigError> {
    let missing: Vec<&str> = keys
        .iter()
        .filter(|(_, v)| v.trim().is_empty())
        .map(|(k, _)| *k)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "[{section}] is switched on but lacks {}",
            missing.join(", ")
        )))
    }
}

/// A push service base URL: `http(s)://host[:port]`, nothing after it (the sender appends
/// the service's path). The outbound URL policy judges the rest (plain `http` only with
/// `outbound.allow_http`, and its addresses) when the sender is built.
fn check_base_url(key: &str, raw: &str) -> Result<(), ConfigError> {
    let bad = || {
        ConfigError::Invalid(format!(
            "{key} must be scheme, host and port only (https://host[:port])"
        ))
    };
    let url = crate::outbound::check_shape(raw, true).map_err(|_| bad())?;
    let origin_only = url.path() == "/" && url.query().is_none() && !raw.ends_with('/');
    if origin_only { Ok(()) } else { Err(bad()) }
}
