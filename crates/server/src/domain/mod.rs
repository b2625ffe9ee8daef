//! Every protocol rule, with no HTTP and no SQL: validation of backchannel requests, the
//! auth-request state machine, polling and slow_down, token minting, device decisions.
//!
//! [`Domain`] bundles what the rules need (stores, clock, keys, configuration, the outbound
//! JWKS fetcher and the notifier seam); each operation lives in its own module as an `impl
//! Domain` block.

use std::sync::Arc;

use backchannel_protocol::jose::{self, Jwks};

pub mod admin;
pub mod backchannel;
pub mod client_auth;
pub mod clock;
pub mod device;
pub mod device_admin;
pub mod error;
pub mod events;
pub mod external;
pub mod hint;
pub mod keys;
pub mod model;
pub mod notification;
#[cfg(test)]
pub mod testing;
pub mod token;
pub mod wake;

use crate::config::Config;
use crate::store::Stores;
use clock::Clock;
use error::AuthResult;
use keys::Keyring;
use model::Challenge;

/// Fetches a client's `jwks_uri` (the HTTP side lives outside the domain).
#[async_trait::async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The client's key set; `refresh` bypasses any cache (an unknown `kid` was seen).
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<Jwks, String>;
}

/// Where the domain announces events that something outside the request must act on. Live
/// device delivery and client notifications (later issues) plug in here.
pub trait Notifier: Send + Sync {
    /// A backchannel request was stored with these challenges; `pushed`: some of them were
    /// queued for a push.
    fn challenges_created(&self, challenges: &[Challenge], pushed: bool);
    /// A request was approved or denied; `devices` hold its other (now closed) challenges.
    fn request_decided(&self, auth_request_id: &str, devices: &[String]);
    /// A device was disabled or changed: its event streams re-check.
    fn device_changed(&self, device_id: &str);
}

/// The protocol core shared by every handler.
#[derive(Clone)]
pub struct Domain {
    pub stores: Stores,
    pub clock: Arc<dyn Clock>,
    pub keys: Keyring,
    pub config: Arc<Config>,
    pub issuer: String,
    pub jwks_fetcher: Arc<dyn JwksFetcher>,
    pub notifier: Arc<dyn Notifier>,
    /// Where held polls wait for their request's decision.
    pub waiters: Arc<wake::Waiters>,
    /// Wakes the outbox worker when a notification was queued.
    pub outbox_wake: Arc<tokio::sync::Notify>,
    /// Wakes the device push worker when challenges were created.
    pub push_wake: Arc<tokio::sync::Notify>,
}

impl Domain {
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn now_secs(&self) -> i64 {
        self.clock.now_secs()
    }

    /// A random identifier or secret of `chars` characters in lower-case base32 (RFC 4648
    /// alphabet): 5 bits of entropy each, safe in URLs, forms and on a command line (it never
    /// starts with `-`).
    pub fn random_id(chars: usize) -> AuthResult<String> {
        const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
        let bytes = jose::random_bytes(chars).map_err(error::AuthError::internal)?;
        Ok(bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect())
    }

    /// A code a person may type: Crockford base32 (no I, L, O, U) in upper case, in groups of
    /// four joined by `-`.
    pub fn random_code(groups: usize) -> AuthResult<String> {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let bytes = jose::random_bytes(groups * 4).map_err(error::AuthError::internal)?;
        let chars: Vec<char> = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
            .collect();
        Ok(chars
            .chunks(4)
            .map(|g| g.iter().collect::<String>())
            .collect::<Vec<_>>()
            .join("-"))
    }

    /// Lower-case hex SHA-256, the form in which handles and secrets are stored.
    pub fn hash_hex(value: &str) -> String {
        jose::sha256(value.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `{issuer}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}
