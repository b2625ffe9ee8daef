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
pub mod directory;
pub mod discovery;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod external;
pub mod hint;
pub mod id_token_encryption;
pub mod introspection;
pub mod jwt_rules;
pub mod key_sealing;
pub mod keys;
pub mod limits;
pub mod model;
pub mod notification;
pub mod policy;
pub mod refresh;
mod request_object;
#[cfg(test)]
pub mod testing;
pub mod token;
pub mod wake;
pub mod webauthn;

use crate::config::Config;
use crate::outbound::OutboundError;
use crate::store::Stores;
use clock::Clock;
use error::AuthResult;
use keys::Keyring;
use model::Challenge;

/// Fetches a client's `jwks_uri` (the HTTP side lives outside the domain).
#[async_trait::async_trait]
pub trait JwksFetcher: Send + Sync {
    /// The client's key set; `refresh` bypasses any cache (an unknown `kid` was seen).
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<Jwks, OutboundError>;
}

/// The one seam for waking and waiting: the domain announces here what something outside the
/// request must act on, and held polls, device event streams, the push worker and the
/// client-notification outbox wait here. [`wake::LocalNotifier`] serves one node;
/// `notify::cluster::PgNotifier` carries the same signals to every node over PostgreSQL
/// LISTEN/NOTIFY. A wake-up only shortens a wait: every waiter also re-checks the store on a
/// timer, so a lost signal costs latency, never correctness.
pub trait Notifier: Send + Sync {
    /// A backchannel request was stored with these challenges; `pushed`: some of them were
    /// queued for a push.
    fn challenges_created(&self, challenges: &[Challenge], pushed: bool);
    /// A request was approved or denied; `devices` hold its other (now closed) challenges.
    fn request_decided(&self, auth_request_id: &str, devices: &[String]);
    /// A device was disabled or changed: its event streams re-check.
    fn device_changed(&self, device_id: &str);
    /// What a held poll of `auth_request_id` waits on.
    fn request_waiter(&self, auth_request_id: &str) -> Arc<tokio::sync::Notify>;
    /// What the event streams of `device_id` wait on.
    fn device_waiter(&self, device_id: &str) -> Arc<tokio::sync::Notify>;
    /// What the outbox worker waits on (a notification was queued).
    fn outbox_waiter(&self) -> &tokio::sync::Notify;
    /// What the device push worker waits on (pushes were queued).
    fn push_waiter(&self) -> &tokio::sync::Notify;
}

/// Characters of the time-ordered head of [`Domain::ordered_id`]: 50 bits of Unix
/// milliseconds.
pub const ORDERED_HEAD: usize = 10;
/// Characters of an `auth_req_id`.
pub const AUTH_REQ_ID_CHARS: usize = 56;

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

    /// An identifier that sorts by creation time: a head of [`ORDERED_HEAD`] characters
    /// encoding `now_ms` in an order-preserving base32, then `random_chars` random ones.
    /// Rows keyed by such ids are appended to the end of their index instead of landing on a
    /// random page, so a batch of new requests writes a few pages rather than one per request.
    pub fn ordered_id(now_ms: i64, random_chars: usize) -> AuthResult<String> {
        const ORDERED: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
        let t = u64::try_from(now_ms).unwrap_or(0);
        let mut id: String = (0..ORDERED_HEAD)
            .rev()
            .map(|i| char::from(ORDERED[usize::try_from((t >> (5 * i)) & 31).unwrap_or(0)]))
            .collect();
        id.push_str(&Domain::random_id(random_chars)?);
        Ok(id)
    }

    /// A new `auth_req_id` (CIBA Core §7.3): a time-ordered head and 230 random bits.
    pub fn new_auth_req_id(now_ms: i64) -> AuthResult<String> {
        Domain::ordered_id(now_ms, AUTH_REQ_ID_CHARS - ORDERED_HEAD)
    }

    /// The key an `auth_req_id` is stored under: its time-ordered head and the SHA-256 of the
    /// whole handle, so the store never holds the handle itself yet keeps requests in creation
    /// order. Handles made before they had a head (52 random characters) are keyed by their
    /// hash alone.
    pub fn auth_request_key(auth_req_id: &str) -> String {
        match auth_req_id.get(..ORDERED_HEAD) {
            Some(head) if auth_req_id.len() == AUTH_REQ_ID_CHARS => {
                format!("{head}{}", Domain::hash_hex(auth_req_id))
            }
            _ => Domain::hash_hex(auth_req_id),
        }
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
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digest = jose::sha256(value.as_bytes());
        let mut out = String::with_capacity(digest.len() * 2);
        for b in digest.iter() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// `{issuer}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.issuer, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_ids_sort_by_time_and_keys_keep_the_head() {
        let early = Domain::ordered_id(1_700_000_000_000, 26).unwrap();
        let later = Domain::ordered_id(1_700_000_000_001, 26).unwrap();
        let much_later = Domain::ordered_id(1_800_000_000_000, 26).unwrap();
        assert!(early < later && later < much_later);
        assert_eq!(early.len(), ORDERED_HEAD + 26);

        let handle = Domain::new_auth_req_id(1_700_000_000_000).unwrap();
        assert_eq!(handle.len(), AUTH_REQ_ID_CHARS);
        let key = Domain::auth_request_key(&handle);
        assert_eq!(&key[..ORDERED_HEAD], &handle[..ORDERED_HEAD]);
        assert_eq!(&key[ORDERED_HEAD..], Domain::hash_hex(&handle));
        assert!(
            !key.contains(&handle[ORDERED_HEAD..]),
            "the secret part is not stored"
        );
        // Handles of any other shape (older releases, garbage) are keyed by their hash.
        let old = Domain::random_id(52).unwrap();
        assert_eq!(Domain::auth_request_key(&old), Domain::hash_hex(&old));
        assert_eq!(Domain::auth_request_key("é"), Domain::hash_hex("é"));
    }
}
