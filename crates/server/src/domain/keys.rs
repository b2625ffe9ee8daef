//! The server's signing keys: loaded from the store, generated on first start (one per
//! supported algorithm, once however many nodes start together), re-read periodically so keys
//! another node or `backchannel admin keys rotate` added are served, published in the JWKS.
//!
//! Rotation only ever adds a key: the newest key of an algorithm signs (`active`). A key that
//! a newer one replaced is `retiring`: it still verifies and stays in the JWKS until every
//! token it can have signed has expired — [`KeyPolicy::retention_ms`] after its replacement
//! was created — and is then `retired`: kept in the store, published nowhere. The states
//! follow from the stored creation times alone, so every node computes the same ones.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use backchannel_protocol::jose::{Algorithm, Jwk, Jwks, SigningKey, VerifyingKey};
use serde::Serialize;

use super::Domain;
use super::clock::Clock;
use super::error::{AuthError, AuthResult};
use super::key_sealing::KeySealer;
use super::model::StoredKey;
use crate::config::Config;
use crate::store::KeyStore;

/// How the keyring treats keys: how long a replaced key stays published, and the sealer of
/// keys at rest, if any.
#[derive(Debug, Default)]
pub struct KeyPolicy {
    /// How long a replaced key stays published after its replacement was created.
    pub retention_ms: i64,
    /// Seals private keys in the store (`[keys] encryption_key_file`).
    pub sealer: Option<KeySealer>,
}

impl KeyPolicy {
    /// The longest a token signed by a key can stay valid after the key stopped signing: the
    /// longest lifetime of what is signed (access and ID tokens, challenges, which live as long
    /// as their request, and the external channel's callback tokens) plus the clock skew
    /// allowed to verifiers.
    pub fn retention_ms_for(config: &Config) -> i64 {
        let longest = config
            .token
            .access_token_lifetime_secs
            .max(config.token.id_token_lifetime_secs)
            .max(config.ciba.max_expires_in);
        longest
            .saturating_add(config.ciba.clock_skew_secs)
            .saturating_mul(1000)
    }
}

/// A stored key's place in its rotation (what `admin keys list` shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// The newest key of its algorithm: it signs.
    Active,
    /// Replaced, still published while tokens it signed may be valid.
    Retiring,
    /// Replaced long enough ago that nothing it signed is valid: no longer published.
    Retired,
}

/// One stored key as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: &'static str,
    pub state: KeyState,
    /// Unix seconds.
    #[serde(rename = "created_at")]
    pub created_at_secs: i64,
}

/// Until when each stored key (newest first) is published: `None` for the active key of its
/// algorithm, else its replacement's creation plus the retention.
fn publish_until(stored: &[StoredKey], retention_ms: i64) -> Vec<Option<i64>> {
    let mut replaced_at: HashMap<Algorithm, i64> = HashMap::new();
    stored
        .iter()
        .map(|k| {
            let until = replaced_at
                .get(&k.alg)
                .map(|replaced| replaced.saturating_add(retention_ms));
            replaced_at.insert(k.alg, k.created_at);
            until
        })
        .collect()
}

fn state_at(until: Option<i64>, now_ms: i64) -> KeyState {
    match until {
        None => KeyState::Active,
        Some(t) if now_ms < t => KeyState::Retiring,
        Some(_) => KeyState::Retired,
    }
}

struct Entry {
    key: SigningKey,
    public: Jwk,
    verifier: VerifyingKey,
    /// `None` while the key signs.
    publish_until: Option<i64>,
}

impl Entry {
    fn published(&self, now_ms: i64) -> bool {
        self.publish_until.is_none_or(|t| now_ms < t)
    }
}

#[derive(Default)]
struct Ring {
    /// The stored keys this ring was built from (kid, creation), newest first.
    stamp: Vec<(String, i64)>,
    /// The keys not yet retired when the ring was built, newest first.
    entries: Vec<Entry>,
}

/// The keyring every request reads; reloaded when keys are added.
#[derive(Clone)]
pub struct Keyring {
    ring: Arc<RwLock<Ring>>,
    policy: Arc<KeyPolicy>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").finish_non_exhaustive()
    }
}

impl Keyring {
    /// Loads every stored key, first storing a generated one for each algorithm that has none.
    /// Nodes starting together may each generate candidates, but the store keeps one first
    /// key per algorithm (`KeyStore::insert_first_signing_keys`) and every node then serves
    /// what was stored, so all of them publish one JWKS. With a sealer, keys stored in the
    /// clear are sealed in place first; without one, a sealed key is an error.
    pub async fn load_or_generate(
        store: &dyn KeyStore,
        clock: Arc<dyn Clock>,
        policy: KeyPolicy,
    ) -> AuthResult<Keyring> {
        let keyring = Keyring {
            ring: Arc::default(),
            policy: Arc::new(policy),
            clock,
        };
        let stored = store.list_signing_keys().await?;
        let mut candidates = Vec::new();
        for alg in Algorithm::ALL {
            if !stored.iter().any(|k| k.alg == alg) {
                let key = SigningKey::generate(alg).map_err(AuthError::internal)?;
                candidates.push(keyring.to_stored(&key, keyring.clock.now_ms())?);
            }
        }
        if !candidates.is_empty() {
            store.insert_first_signing_keys(&candidates).await?;
        }
        if let Some(sealer) = &keyring.policy.sealer {
            for k in stored.iter().filter(|k| !k.sealed) {
                let sealed = sealer.seal(&k.kid, k.alg, &k.private_jwk)?;
                // Conditional on the row still holding the clear text: another node may
                // have sealed it meanwhile.
                store
                    .seal_signing_key(&k.kid, &k.private_jwk, &sealed)
                    .await?;
            }
        }
        keyring.reload(store).await?;
        Ok(keyring)
    }

    fn to_stored(&self, key: &SigningKey, created_at: i64) -> AuthResult<StoredKey> {
        let text = serde_json::to_string(&key.to_private_jwk()).map_err(AuthError::internal)?;
        let (private_jwk, sealed) = match &self.policy.sealer {
            Some(sealer) => (sealer.seal(key.kid(), key.alg(), &text)?, true),
            None => (text, false),
        };
        Ok(StoredKey {
            kid: key.kid().to_owned(),
            alg: key.alg(),
            private_jwk,
            sealed,
            created_at,
        })
    }

    fn open(&self, k: &StoredKey) -> AuthResult<SigningKey> {
        let text = match (k.sealed, &self.policy.sealer) {
            (false, _) => k.private_jwk.clone(),
            (true, Some(sealer)) => sealer.open(&k.kid, k.alg, &k.private_jwk)?,
            (true, None) => {
                return Err(AuthError::internal(format!(
                    "signing key {} is stored encrypted, but no [keys] encryption_key_file \
                     (BACKCHANNEL_KEYS_ENCRYPTION_KEY_FILE) is configured",
                    k.kid
                )));
            }
        };
        let jwk = serde_json::from_str(&text).map_err(AuthError::internal)?;
        SigningKey::from_jwk(&jwk).map_err(AuthError::internal)
    }

    /// Re-reads the stored keys (newest first). Cheap when nothing changed: the keys are
    /// opened again only when the stored set differs from the served one. Keys already
    /// retired are not opened at all.
    pub async fn reload(&self, store: &dyn KeyStore) -> AuthResult<()> {
        let stored = store.list_signing_keys().await?;
        let stamp: Vec<(String, i64)> = stored
            .iter()
            .map(|k| (k.kid.clone(), k.created_at))
            .collect();
        if self.ring.read().is_ok_and(|r| r.stamp == stamp) {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let until = publish_until(&stored, self.policy.retention_ms);
        let mut entries = Vec::new();
        for (k, publish_until) in stored.iter().zip(until) {
            if state_at(publish_until, now) == KeyState::Retired {
                continue;
            }
            let key = self.open(k)?;
            let public = key.public_jwk();
            let verifier = VerifyingKey::from_jwk(&public).map_err(AuthError::internal)?;
            entries.push(Entry {
                key,
                public,
                verifier,
                publish_until,
            });
        }
        if let Ok(mut guard) = self.ring.write() {
            *guard = Ring { stamp, entries };
        }
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Ring, i64) -> T) -> Option<T> {
        let now = self.clock.now_ms();
        self.ring.read().ok().map(|r| f(&r, now))
    }

    /// The key that signs with `alg`: the newest one.
    pub fn signer(&self, alg: Algorithm) -> AuthResult<SigningKey> {
        self.read(|r, _| {
            r.entries
                .iter()
                .find(|e| e.publish_until.is_none() && e.key.alg() == alg)
                .map(|e| e.key.clone())
        })
        .flatten()
        .ok_or_else(|| AuthError::internal(format!("no signing key for {}", alg.as_str())))
    }

    /// Every published key of `alg`, the signing one first: what may have signed something
    /// still valid (a challenge, an external callback token).
    pub fn signers_of(&self, alg: Algorithm) -> Vec<SigningKey> {
        self.read(|r, now| {
            r.entries
                .iter()
                .filter(|e| e.key.alg() == alg && e.published(now))
                .map(|e| e.key.clone())
                .collect()
        })
        .unwrap_or_default()
    }

    /// Every published key, for verifying tokens this server issued (`id_token_hint`).
    pub fn verifiers(&self) -> Vec<VerifyingKey> {
        self.read(|r, now| {
            r.entries
                .iter()
                .filter(|e| e.published(now))
                .map(|e| e.verifier.clone())
                .collect()
        })
        .unwrap_or_default()
    }

    /// The public JWKS: the signing keys and the retiring ones.
    pub fn jwks(&self) -> Jwks {
        let keys = self.read(|r, now| {
            r.entries
                .iter()
                .filter(|e| e.published(now))
                .map(|e| e.public.clone())
                .collect()
        });
        Jwks {
            keys: keys.unwrap_or_default(),
        }
    }
}

/// What `admin keys list` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// What `admin keys rotate` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RotatedKey {
    pub kid: String,
}

impl Domain {
    /// Every stored key with its state, newest first.
    pub async fn list_signing_keys(&self) -> AuthResult<KeyList> {
        let stored = self.stores.keys.list_signing_keys().await?;
        let until = publish_until(&stored, self.keys.policy.retention_ms);
        let now = self.now_ms();
        let keys = stored
            .iter()
            .zip(until)
            .map(|(k, until)| KeyInfo {
                kid: k.kid.clone(),
                alg: k.alg.as_str(),
                state: state_at(until, now),
                created_at_secs: k.created_at.div_euclid(1000),
            })
            .collect();
        Ok(KeyList { keys })
    }

    /// Adds a new key for `alg` (default ES256), which signs from now on (here at once, on
    /// other nodes from their next reload); the key it replaces stays published until the
    /// tokens it signed expired.
    pub async fn rotate_signing_key(&self, alg: Option<&str>) -> AuthResult<RotatedKey> {
        let alg = match alg {
            None => Algorithm::ES256,
            Some(name) => Algorithm::parse(name).ok_or_else(|| {
                AuthError::invalid_request(format!("alg: unsupported algorithm {name:?}"))
            })?,
        };
        let stored = self.stores.keys.list_signing_keys().await?;
        // Strictly newer than the key it replaces, whatever this process's clock says.
        let created_at = stored
            .iter()
            .filter(|k| k.alg == alg)
            .map(|k| k.created_at.saturating_add(1))
            .fold(self.now_ms(), i64::max);
        let key = SigningKey::generate(alg).map_err(AuthError::internal)?;
        let row = self.keys.to_stored(&key, created_at)?;
        self.stores.keys.insert_signing_key(&row).await?;
        self.keys.reload(self.stores.keys.as_ref()).await?;
        tracing::info!(kid = %key.kid(), alg = alg.as_str(), "signing key rotated");
        Ok(RotatedKey {
            kid: key.kid().to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(kid: &str, alg: Algorithm, created_at: i64) -> StoredKey {
        StoredKey {
            kid: kid.into(),
            alg,
            private_jwk: String::new(),
            sealed: false,
            created_at,
        }
    }

    #[test]
    fn states_follow_from_creation_times() {
        // Newest first, as the store lists them.
        let keys = [
            stored("es-3", Algorithm::ES256, 3_000),
            stored("ed-1", Algorithm::EdDSA, 2_500),
            stored("es-2", Algorithm::ES256, 2_000),
            stored("es-1", Algorithm::ES256, 1_000),
        ];
        let until = publish_until(&keys, 10_000);
        assert_eq!(until, [None, None, Some(13_000), Some(12_000)]);
        let states = |now| until.iter().map(|u| state_at(*u, now)).collect::<Vec<_>>();
        use KeyState::*;
        assert_eq!(states(11_999), [Active, Active, Retiring, Retiring]);
        assert_eq!(states(12_000), [Active, Active, Retiring, Retired]);
        assert_eq!(states(13_000), [Active, Active, Retired, Retired]);
    }

    #[test]
    fn retention_covers_the_longest_lifetime_and_the_skew() {
        let mut config = Config::default();
        config.token.access_token_lifetime_secs = 600;
        config.token.id_token_lifetime_secs = 3600;
        config.ciba.max_expires_in = 1800;
        config.ciba.clock_skew_secs = 30;
        assert_eq!(KeyPolicy::retention_ms_for(&config), 3_630_000);
        config.ciba.max_expires_in = 7200;
        assert_eq!(KeyPolicy::retention_ms_for(&config), 7_230_000);
    }
}
