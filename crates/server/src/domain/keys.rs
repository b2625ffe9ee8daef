//! The server's signing keys: loaded from the store, generated on first start (one per
//! supported algorithm, once however many nodes start together), re-read periodically so keys
//! another node added are served, published in the JWKS. The newest key of an algorithm signs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use backchannel_protocol::jose::{Algorithm, Jwks, SigningKey, VerifyingKey};

use super::error::{AuthError, AuthResult};
use super::model::StoredKey;
use crate::store::KeyStore;

#[derive(Default)]
struct Ring {
    /// The stored keys this ring was built from, newest first.
    kids: Vec<String>,
    signers: HashMap<Algorithm, SigningKey>,
    verifiers: Vec<VerifyingKey>,
    jwks: Jwks,
}

/// The keyring every request reads; reloaded when another node adds keys.
#[derive(Clone, Default)]
pub struct Keyring {
    ring: Arc<RwLock<Ring>>,
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
    /// what was stored, so all of them publish one JWKS.
    pub async fn load_or_generate(store: &dyn KeyStore, now_ms: i64) -> AuthResult<Keyring> {
        let stored = store.list_signing_keys().await?;
        let mut candidates = Vec::new();
        for alg in Algorithm::ALL {
            if !stored.iter().any(|k| k.alg == alg) {
                let key = SigningKey::generate(alg).map_err(AuthError::internal)?;
                let private_jwk =
                    serde_json::to_string(&key.to_private_jwk()).map_err(AuthError::internal)?;
                candidates.push(StoredKey {
                    kid: key.kid().to_owned(),
                    alg,
                    private_jwk,
                    created_at: now_ms,
                });
            }
        }
        if !candidates.is_empty() {
            store.insert_first_signing_keys(&candidates).await?;
        }
        let keyring = Keyring::default();
        keyring.reload(store).await?;
        Ok(keyring)
    }

    /// Re-reads the stored keys (newest first). Cheap when nothing changed (keys are only
    /// ever added): the keys are parsed again only when the stored `kid`s differ from the
    /// served ones.
    pub async fn reload(&self, store: &dyn KeyStore) -> AuthResult<()> {
        let stored = store.list_signing_keys().await?;
        let kids: Vec<String> = stored.iter().map(|k| k.kid.clone()).collect();
        if self.ring.read().is_ok_and(|r| r.kids == kids) {
            return Ok(());
        }
        let mut ring = Ring {
            kids,
            ..Ring::default()
        };
        for k in stored {
            let jwk = serde_json::from_str(&k.private_jwk).map_err(AuthError::internal)?;
            let key = SigningKey::from_jwk(&jwk).map_err(AuthError::internal)?;
            let public = key.public_jwk();
            let verifier = VerifyingKey::from_jwk(&public).map_err(AuthError::internal)?;
            ring.verifiers.push(verifier);
            ring.jwks.keys.push(public);
            ring.signers.entry(key.alg()).or_insert(key);
        }
        if let Ok(mut guard) = self.ring.write() {
            *guard = ring;
        }
        Ok(())
    }

    /// The key that signs with `alg`.
    pub fn signer(&self, alg: Algorithm) -> AuthResult<SigningKey> {
        self.ring
            .read()
            .ok()
            .and_then(|r| r.signers.get(&alg).cloned())
            .ok_or_else(|| AuthError::internal(format!("no signing key for {}", alg.as_str())))
    }

    /// Every key, for verifying tokens this server issued (`id_token_hint`).
    pub fn verifiers(&self) -> Vec<VerifyingKey> {
        self.ring
            .read()
            .map(|r| r.verifiers.clone())
            .unwrap_or_default()
    }

    /// The public JWKS.
    pub fn jwks(&self) -> Jwks {
        self.ring.read().map(|r| r.jwks.clone()).unwrap_or_default()
    }
}
