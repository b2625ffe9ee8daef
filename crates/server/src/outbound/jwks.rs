//! Client key sets fetched from `jwks_uri` through the guarded client: cached, refreshed when
//! an unknown `kid` appears, at most so often per URI.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use backchannel_protocol::jose::Jwks;

use super::{Outbound, OutboundError};
use crate::domain::JwksFetcher;

/// Key sets are kept this long before a normal fetch goes out again.
const JWKS_TTL: Duration = Duration::from_secs(300);
/// A forced refresh (unknown `kid`) goes out at most this often per URI, so unknown `kid`s
/// cannot turn the server into a request amplifier.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct CachedSet {
    jwks: Jwks,
    fetched: Instant,
    last_forced: Option<Instant>,
}

/// Client key sets from `jwks_uri`, cached, refreshed when a new `kid` appears.
pub struct CachedJwksFetcher {
    client: Outbound,
    cache: Mutex<HashMap<String, CachedSet>>,
}

impl CachedJwksFetcher {
    pub fn new(client: Outbound) -> Self {
        CachedJwksFetcher {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, uri: &str) -> Option<CachedSet> {
        self.cache.lock().ok()?.get(uri).cloned()
    }
}

#[async_trait::async_trait]
impl JwksFetcher for CachedJwksFetcher {
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<Jwks, OutboundError> {
        let cached = self.cached(uri);
        if let Some(c) = &cached {
            let usable = if refresh {
                c.last_forced
                    .is_some_and(|t| t.elapsed() < JWKS_REFRESH_MIN)
            } else {
                c.fetched.elapsed() < JWKS_TTL
            };
            if usable {
                return Ok(c.jwks.clone());
            }
        }
        let jwks: Jwks = self.client.get_json(uri).await?;
        metrics::counter!("backchannel_jwks_fetches_total").increment(1);
        let now = Instant::now();
        let last_forced = if refresh {
            Some(now)
        } else {
            cached.and_then(|c| c.last_forced)
        };
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(
                uri.to_owned(),
                CachedSet {
                    jwks: jwks.clone(),
                    fetched: now,
                    last_forced,
                },
            );
        }
        Ok(jwks)
    }
}
