//! Configuration: a TOML file (`deny_unknown_fields`) under defaults, then every key
//! overridable by `BACKCHANNEL_<SECTION>_<KEY>` (SPEC §3.3). List keys take comma-separated
//! values in the environment.

mod env;
mod push;
mod secret;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use env::{PUSH_ENV_PREFIX, apply_env, merge, reject_unknown_env};
pub use push::{ApnsConfig, FcmConfig, PushConfig, WebPushConfig};
pub use secret::Secret;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub outbound: OutboundConfig,
    pub ciba: CibaConfig,
    pub token: TokenConfig,
    pub authorization_details: AuthorizationDetailsConfig,
    pub enrolment: EnrolmentConfig,
    pub device: DeviceConfig,
    pub external: ExternalConfig,
    pub push: PushConfig,
    pub purge: PurgeConfig,
    pub keys: KeysConfig,
    pub limits: LimitsConfig,
    pub policies: PoliciesConfig,
}

/// `[limits]`: how often `/bc-authorize` may ask for one user, and what a "not me" denial
/// costs the client (`domain::limits`). A limit of 0 is no limit. Beyond a limit the request
/// is answered `429` with `Retry-After` and nothing is created; the token endpoint's polling is
/// governed by `slow_down`, not by these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Undecided requests one client may have for one user at once. It bites only for
    /// clients whose access policy allows parallel requests: for the others a new request
    /// replaces the undecided one.
    pub pending_per_user_client: u32,
    /// New requests for one user, from all clients together, within the window.
    pub requests_per_user: u32,
    pub requests_per_user_window_secs: i64,
    /// New requests from one client, for all users together, within the window.
    pub requests_per_client: u32,
    pub requests_per_client_window_secs: i64,
    /// How long a client is refused for a user after the user denied one of its requests as
    /// "I did not ask for this", in seconds (0: not at all).
    pub not_me_block_secs: i64,
    /// A client's new request for a user replaces its undecided one on the devices (the old
    /// one ends as expired), unless the client's access policy allows parallel requests.
    /// `false` lets every client have parallel requests.
    pub replace_undecided: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            pending_per_user_client: 3,
            requests_per_user: 10,
            requests_per_user_window_secs: 600,
            requests_per_client: 0,
            requests_per_client_window_secs: 60,
            not_me_block_secs: 24 * 3600,
            replace_undecided: true,
        }
    }
}

/// `[policies]`: access policies (`domain::policy`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoliciesConfig {
    /// What a client without an access policy may do: `"allow"` (every active user, every
    /// registered scope: the behaviour before policies) or `"deny"` (no request at all).
    /// `BACKCHANNEL_POLICIES_CLIENTS_WITHOUT_POLICY`.
    pub clients_without_policy: ClientsWithoutPolicy,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientsWithoutPolicy {
    #[default]
    Allow,
    Deny,
}

/// `[keys]`: how the server's signing keys are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeysConfig {
    /// A file holding 32 random bytes (64 hex digits or 43 base64url characters): when set,
    /// private signing keys are stored encrypted with it (AES-256-GCM). Empty: stored in the
    /// clear. `BACKCHANNEL_KEYS_ENCRYPTION_KEY_FILE`.
    pub encryption_key_file: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: String,
    /// The public URL; empty means `http://{listen}`.
    pub issuer: String,
    pub data_dir: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` or `postgres://...`; empty means `sqlite://{data_dir}/backchannel.db`.
    pub url: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token of the admin REST API; empty means generate one into the data dir.
    pub token: Secret,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// CIDRs that outbound calls (client `jwks_uri`, ...) may reach although private.
    pub allowed_private_networks: Vec<String>,
    /// Allow `http://` outbound URLs (development only).
    pub allow_http: bool,
    pub timeout_ms: u64,
    pub max_response_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CibaConfig {
    /// `expires_in` when the client asks for none (seconds).
    pub default_expires_in: i64,
    /// Bounds of `requested_expiry` (seconds).
    pub min_expires_in: i64,
    pub max_expires_in: i64,
    /// Minimum polling interval handed to clients (seconds).
    pub interval: i64,
    pub binding_message_min: usize,
    pub binding_message_max: usize,
    /// Longest accepted lifetime (`exp` − `iat`) of client assertions. Request objects share
    /// it but are allowed at least FAPI's 60 minutes of `exp` − `nbf`
    /// (`domain::jwt_rules::REQUEST_OBJECT_MIN_LIFETIME_BOUND_SECS`).
    pub assertion_max_lifetime_secs: i64,
    /// Clock skew tolerated at both ends (after `exp`, before `iat`/`nbf`) of the JWTs clients
    /// and devices send, in seconds. Decisions are allowed at least five minutes
    /// (`domain::jwt_rules::DECISION_MIN_SKEW_SECS`).
    pub clock_skew_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenConfig {
    pub access_token_lifetime_secs: i64,
    pub id_token_lifetime_secs: i64,
    /// How long a token poll of a pending request is held open for a decision (Singpass
    /// style long polling); 0 answers at once.
    pub long_poll_seconds: u64,
    /// A refresh token unused this long expires (RFC 9700 §4.14.2); each rotation starts the
    /// idle time again, never past the absolute lifetime.
    pub refresh_token_idle_secs: i64,
    /// A refresh-token family (the approval and every rotation of it) ends this long after the
    /// approval, however it is used; then it is purged.
    pub refresh_token_absolute_secs: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationDetailsConfig {
    pub types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrolmentConfig {
    pub code_ttl_secs: i64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            issuer: String::new(),
            data_dir: "backchannel-data".into(),
            max_body_bytes: 64 * 1024,
        }
    }
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            allowed_private_networks: Vec::new(),
            allow_http: false,
            timeout_ms: 5000,
            max_response_bytes: 256 * 1024,
        }
    }
}

impl Default for CibaConfig {
    fn default() -> Self {
        CibaConfig {
            default_expires_in: 300,
            min_expires_in: 10,
            max_expires_in: 1800,
            interval: 5,
            binding_message_min: 1,
            binding_message_max: 64,
            assertion_max_lifetime_secs: 300,
            clock_skew_secs: 60,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            access_token_lifetime_secs: 600,
            id_token_lifetime_secs: 600,
            long_poll_seconds: 0,
            refresh_token_idle_secs: 14 * 24 * 3600,
            refresh_token_absolute_secs: 30 * 24 * 3600,
        }
    }
}

impl Default for AuthorizationDetailsConfig {
    fn default() -> Self {
        AuthorizationDetailsConfig {
            types: vec!["payment_initiation".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceConfig {
    /// Seconds between heartbeats on a device's event stream.
    pub sse_heartbeat_secs: u64,
}

/// The external HTTP channel: challenges handed to an organisation's own system, which
/// answers on an authenticated callback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExternalConfig {
    /// Where challenges are POSTed; empty switches the channel off.
    pub url: String,
    /// Bearer token sent to `url`.
    pub token: Secret,
    /// Client ids the channel serves; empty means every client.
    pub clients: Vec<String>,
}

impl ExternalConfig {
    /// Whether the channel handles requests of this client.
    pub fn serves(&self, client_id: &str) -> bool {
        !self.url.is_empty()
            && (self.clients.is_empty() || self.clients.iter().any(|c| c == client_id))
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        DeviceConfig {
            sse_heartbeat_secs: 15,
        }
    }
}

/// The background purge of what the server no longer needs (`app::housekeep`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PurgeConfig {
    /// How long an expired request (whatever its state) is kept, with its challenges,
    /// notification and push deliveries, before it is deleted, in seconds: meanwhile a poll
    /// of it is answered `expired_token`, afterwards `invalid_grant`. Device events are kept
    /// as long. At least the `expired_token` push window
    /// (`domain::notification::EXPIRY_NOTICE_GRACE_MS`).
    pub retention_secs: i64,
}

impl Default for PurgeConfig {
    fn default() -> Self {
        PurgeConfig {
            retention_secs: 24 * 3600,
        }
    }
}

impl PurgeConfig {
    /// The grace period in Unix ms.
    pub fn retention_ms(&self) -> i64 {
        self.retention_secs.saturating_mul(1000)
    }
}

impl Default for EnrolmentConfig {
    fn default() -> Self {
        EnrolmentConfig { code_ttl_secs: 900 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Defaults, then the file (if any), then the `BACKCHANNEL_*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut table = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            // Parse the file on its own first so unknown keys are reported against it.
            let _: Config =
                toml::from_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            let file_table: toml::Table =
                toml::from_str(&text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
            merge(&mut table, file_table);
        }
        let vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("BACKCHANNEL_"))
            .collect();
        apply_env(&mut table, "BACKCHANNEL", &vars)?;
        reject_unknown_env(&table, PUSH_ENV_PREFIX, &vars)?;
        let config: Config = table
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// From the process environment and an optional file.
    pub fn from_env(file: Option<&Path>) -> Result<Config, ConfigError> {
        Config::load(file, std::env::vars())
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let c = &self.ciba;
        if c.interval < 1 || c.min_expires_in < 1 || c.min_expires_in > c.max_expires_in {
            return Err(ConfigError::Invalid(
                "ciba intervals/expiry bounds are inconsistent".into(),
            ));
        }
        if !(c.min_expires_in..=c.max_expires_in).contains(&c.default_expires_in) {
            return Err(ConfigError::Invalid(
                "ciba.default_expires_in must lie within min_expires_in..=max_expires_in".into(),
            ));
        }
        if c.binding_message_min > c.binding_message_max {
            return Err(ConfigError::Invalid(
                "binding_message_min exceeds binding_message_max".into(),
            ));
        }
        let t = &self.token;
        if t.refresh_token_idle_secs < 1
            || t.refresh_token_absolute_secs < t.refresh_token_idle_secs
        {
            return Err(ConfigError::Invalid(
                "token.refresh_token_idle_secs must be positive and at most refresh_token_absolute_secs"
                    .into(),
            ));
        }
        self.push.validate()?;
        let l = &self.limits;
        // An admission is purged after the retention: every window must fit in it.
        if l.requests_per_user_window_secs
            .max(l.requests_per_client_window_secs)
            > self.purge.retention_secs
        {
            return Err(ConfigError::Invalid(
                "limits windows must not be longer than purge.retention_secs".into(),
            ));
        }
        if l.requests_per_user_window_secs < 1
            || l.requests_per_client_window_secs < 1
            || l.not_me_block_secs < 0
        {
            return Err(ConfigError::Invalid(
                "limits windows must be at least 1 second and not_me_block_secs not negative"
                    .into(),
            ));
        }
        // A request purged before its `expired_token` push was sent would never be notified.
        let min_retention = crate::domain::notification::EXPIRY_NOTICE_GRACE_MS / 1000;
        if self.purge.retention_secs < min_retention {
            return Err(ConfigError::Invalid(format!(
                "purge.retention_secs must be at least {min_retention}"
            )));
        }
        let issuer = self.issuer();
        if !(issuer.starts_with("http://") || issuer.starts_with("https://"))
            || issuer.ends_with('/')
        {
            return Err(ConfigError::Invalid(
                "server.issuer must be an http(s) URL without a trailing slash".into(),
            ));
        }
        Ok(())
    }

    /// The public URL of this server (`server.issuer`, or `http://{listen}`).
    pub fn issuer(&self) -> String {
        if self.server.issuer.is_empty() {
            format!("http://{}", self.server.listen)
        } else {
            self.server.issuer.clone()
        }
    }

    /// The database URL (`database.url`, or SQLite in the data dir).
    pub fn database_url(&self) -> String {
        if self.database.url.is_empty() {
            format!("sqlite://{}/backchannel.db", self.server.data_dir)
        } else {
            self.database.url.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_match_the_spec() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert_eq!(c.issuer(), "http://127.0.0.1:8080");
        assert_eq!(c.database_url(), "sqlite://backchannel-data/backchannel.db");
        assert_eq!(c.ciba.default_expires_in, 300);
        assert_eq!(c.ciba.interval, 5);
        assert_eq!(c.purge.retention_ms(), 24 * 3600 * 1000);
    }

    #[test]
    fn clients_without_policy_is_allow_deny_or_an_error() {
        let c = Config::load(None, env(&[])).unwrap();
        assert_eq!(
            c.policies.clients_without_policy,
            ClientsWithoutPolicy::Allow
        );
        let var = "BACKCHANNEL_POLICIES_CLIENTS_WITHOUT_POLICY";
        let c = Config::load(None, env(&[(var, "deny")])).unwrap();
        assert_eq!(
            c.policies.clients_without_policy,
            ClientsWithoutPolicy::Deny
        );
        assert!(Config::load(None, env(&[(var, "maybe")])).is_err());
    }

    #[test]
    fn purge_retention_is_configurable_down_to_the_expiry_notice_window() {
        let c = Config::load(None, env(&[("BACKCHANNEL_PURGE_RETENTION_SECS", "3600")]));
        assert_eq!(c.unwrap().purge.retention_ms(), 3600 * 1000);
        let short = Config::load(None, env(&[("BACKCHANNEL_PURGE_RETENTION_SECS", "599")]));
        match short {
            Err(ConfigError::Invalid(msg)) => assert!(msg.contains("retention_secs"), "{msg}"),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn env_overrides_file_and_parses_types() {
        let dir = std::env::temp_dir().join(format!("bc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[server]\nlisten = \"0.0.0.0:9000\"\n[ciba]\ninterval = 7\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("BACKCHANNEL_CIBA_INTERVAL", "3"),
                (
                    "BACKCHANNEL_OUTBOUND_ALLOWED_PRIVATE_NETWORKS",
                    "127.0.0.0/8, ::1/128",
                ),
                ("BACKCHANNEL_OUTBOUND_ALLOW_HTTP", "true"),
                ("BACKCHANNEL_SERVER_ISSUER", "https://id.example.com"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen, "0.0.0.0:9000");
        assert_eq!(c.ciba.interval, 3);
        assert_eq!(
            c.outbound.allowed_private_networks,
            vec!["127.0.0.0/8", "::1/128"]
        );
        assert!(c.outbound.allow_http);
        assert_eq!(c.issuer(), "https://id.example.com");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let dir = std::env::temp_dir().join(format!("bc-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, "[server]\nlisten = \"x\"\nlisen = \"typo\"\n").unwrap();
        assert!(Config::load(Some(&path), env(&[])).is_err());
        assert!(Config::load(None, env(&[("BACKCHANNEL_CIBA_INTERVAL", "soon")])).is_err());
        assert!(Config::load(None, env(&[("BACKCHANNEL_SERVER_ISSUER", "http://x/")])).is_err());
    }

    #[test]
    fn push_senders_are_off_by_default_and_switched_on_by_env_alone() {
        let c = Config::load(None, env(&[])).unwrap();
        assert!(c.push.apns().is_none() && c.push.fcm().is_none() && c.push.webpush().is_none());

        let c = Config::load(
            None,
            env(&[
                ("BACKCHANNEL_PUSH_APNS_BASE_URL", "http://127.0.0.1:9443"),
                ("BACKCHANNEL_PUSH_APNS_TEAM_ID", "TEAM123456"),
                ("BACKCHANNEL_PUSH_APNS_KEY_ID", "KEY1234567"),
                ("BACKCHANNEL_PUSH_APNS_KEY_FILE", "/keys/AuthKey.p8"),
                ("BACKCHANNEL_PUSH_APNS_TOPIC", "com.example.auth"),
                ("BACKCHANNEL_PUSH_FCM_SERVICE_ACCOUNT_FILE", "/keys/sa.json"),
                (
                    "BACKCHANNEL_PUSH_WEBPUSH_VAPID_PRIVATE_KEY_FILE",
                    "/keys/vapid.pem",
                ),
                ("BACKCHANNEL_PUSH_WEBPUSH_SUBJECT", "mailto:ops@example.com"),
            ]),
        )
        .unwrap();
        let apns = c.push.apns().unwrap();
        assert_eq!(apns.base_url(), "http://127.0.0.1:9443");
        assert_eq!(apns.team_id, "TEAM123456");
        assert_eq!(apns.key_file, "/keys/AuthKey.p8");
        assert_eq!(apns.topic, "com.example.auth");
        let fcm = c.push.fcm().unwrap();
        assert_eq!(fcm.base_url(), FcmConfig::DEFAULT_BASE_URL);
        assert_eq!(fcm.service_account_file, "/keys/sa.json");
        let web = c.push.webpush().unwrap();
        assert_eq!(web.vapid_private_key_file, "/keys/vapid.pem");
        assert_eq!(web.subject, "mailto:ops@example.com");
    }

    #[test]
    fn push_sections_from_a_file_and_env_overrides() {
        let dir = std::env::temp_dir().join(format!("bc-config-push-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(
            &path,
            "[push.apns]\nteam_id = \"T\"\nkey_id = \"K\"\nkey_file = \"a.p8\"\ntopic = \"app\"\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[("BACKCHANNEL_PUSH_APNS_TOPIC", "other.app")]),
        )
        .unwrap();
        let apns = c.push.apns().unwrap();
        assert_eq!(apns.base_url(), ApnsConfig::DEFAULT_BASE_URL);
        assert_eq!(apns.topic, "other.app");
        assert!(c.push.fcm().is_none());

        std::fs::write(&path, "[push.apns]\nteamid = \"T\"\n").unwrap();
        assert!(Config::load(Some(&path), env(&[])).is_err());
    }

    #[test]
    fn incomplete_or_malformed_push_sections_are_rejected() {
        let err = |vars: &[(&str, &str)]| match Config::load(None, env(vars)) {
            Err(ConfigError::Invalid(msg)) => msg,
            other => panic!("expected an error, got {other:?}"),
        };
        let msg = err(&[("BACKCHANNEL_PUSH_APNS_TEAM_ID", "T")]);
        assert!(msg.contains("key_id, key_file, topic"), "{msg}");
        assert!(
            err(&[("BACKCHANNEL_PUSH_FCM_BASE_URL", "https://fcm.example")])
                .contains("service_account_file")
        );
        for base in [
            "https://fcm.example/v1",
            "https://fcm.example/",
            "ftp://fcm.example",
            "fcm.example",
            "https://u:p@fcm.example",
        ] {
            let msg = err(&[
                ("BACKCHANNEL_PUSH_FCM_BASE_URL", base),
                ("BACKCHANNEL_PUSH_FCM_SERVICE_ACCOUNT_FILE", "sa.json"),
            ]);
            assert!(msg.contains("push.fcm.base_url"), "{base}: {msg}");
        }
        let msg = err(&[
            ("BACKCHANNEL_PUSH_WEBPUSH_VAPID_PRIVATE_KEY_FILE", "v.pem"),
            ("BACKCHANNEL_PUSH_WEBPUSH_SUBJECT", "ops@example.com"),
        ]);
        assert!(msg.contains("subject"), "{msg}");
        // A misspelt variable would leave the sender silently off.
        let msg = err(&[("BACKCHANNEL_PUSH_APN_TEAM_ID", "T")]);
        assert!(msg.contains("BACKCHANNEL_PUSH_APN_TEAM_ID"), "{msg}");
    }
}
