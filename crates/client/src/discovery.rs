//! The server's documents: its metadata (OpenID Connect Discovery 1.0, RFC 8414) and its JWKS,
//! each cached for its `Cache-Control: max-age`, the metadata checked against the issuer asked
//! for, the keys refreshed when a token names a `kid` they lack (at most every
//! [`MIN_KEY_REFRESH_SECS`]).

use std::sync::Arc;

use backchannel_protocol::jose::{Algorithm, Jwks, VerifyingKey};
use backchannel_protocol::metadata::ProviderMetadata;

use crate::http::{self, Answer, Outgoing};
use crate::{CibaClient, ClientError, Clock, SystemClock};

/// How long a document without `max-age` (or with `no-cache`) is used before it is fetched
/// again.
pub const DEFAULT_CACHE_SECS: u64 = 3600;
/// An unknown `kid` fetches the JWKS again, but not more often than this: a stream of tokens
/// naming keys the server never had must not turn into a stream of JWKS fetches.
pub const MIN_KEY_REFRESH_SECS: i64 = 10;

/// A fetched document and when to fetch it again (Unix ms).
#[derive(Debug, Clone)]
pub(crate) struct Cached<T> {
    pub value: Arc<T>,
    pub fetched_at_ms: i64,
    pub stale_at_ms: i64,
}

impl<T> Cached<T> {
    pub fn new(value: T, now_ms: i64, max_age: Option<u64>) -> Self {
        let secs = i64::try_from(max_age.unwrap_or(DEFAULT_CACHE_SECS)).unwrap_or(i64::MAX);
        Cached {
            value: Arc::new(value),
            fetched_at_ms: now_ms,
            stale_at_ms: now_ms.saturating_add(secs.saturating_mul(1000)),
        }
    }
}

/// Fetches and checks the server's metadata: `/.well-known/openid-configuration` under the
/// issuer, else the RFC 8414 `/.well-known/oauth-authorization-server` document.
///
/// ```no_run
/// # async fn f() -> Result<(), backchannel_client::ClientError> {
/// let metadata = backchannel_client::discover("https://id.example.com").await?;
/// println!("token endpoint: {}", metadata.token_endpoint);
/// # Ok(()) }
/// ```
pub async fn discover(issuer: &str) -> Result<ProviderMetadata, ClientError> {
    discover_with(&http::default_http(), issuer).await
}

/// [`discover`] with a caller-supplied HTTP client.
pub async fn discover_with(
    http: &reqwest::Client,
    issuer: &str,
) -> Result<ProviderMetadata, ClientError> {
    fetch_metadata(http, None, &SystemClock, issuer)
        .await
        .map(|(m, _)| m)
}

/// The two well-known locations of an issuer's metadata, in the order tried.
pub(crate) fn metadata_urls(issuer: &str) -> [String; 2] {
    let issuer = issuer.trim_end_matches('/');
    let oidc = format!("{issuer}/.well-known/openid-configuration");
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    let rfc8414 = match url::Url::parse(issuer) {
        Ok(u) if u.path() != "/" && !u.path().is_empty() => {
            let origin = u.origin().ascii_serialization();
            format!(
                "{origin}/.well-known/oauth-authorization-server{}",
                u.path().trim_end_matches('/')
            )
        }
        _ => format!("{issuer}/.well-known/oauth-authorization-server"),
    };
    [oidc, rfc8414]
}

pub(crate) async fn fetch_metadata(
    http: &reqwest::Client,
    observer: Option<&http::Observer>,
    clock: &dyn Clock,
    issuer: &str,
) -> Result<(ProviderMetadata, Option<u64>), ClientError> {
    let issuer = issuer.trim_end_matches('/');
    let [oidc, rfc8414] = metadata_urls(issuer);
    let get = |url: String| async move {
        http::send(
            http,
            observer,
            clock,
            Outgoing {
                method: reqwest::Method::GET,
                url: &url,
                authorization: None,
                form: Vec::new(),
            },
        )
        .await
    };
    let mut answer: Answer = get(oidc).await?;
    if answer.status == 404 {
        answer = get(rfc8414).await?;
    }
    let metadata: ProviderMetadata = answer.json()?;
    // OpenID Connect Discovery 1.0 §4.3, RFC 8414 §3.3: the document must name the issuer it
    // was fetched for, or it could be another server's.
    if metadata.issuer.trim_end_matches('/') != issuer {
        return Err(ClientError::IssuerMismatch {
            expected: issuer.to_owned(),
            found: metadata.issuer,
        });
    }
    Ok((metadata, answer.max_age))
}

impl CibaClient {
    /// The server's metadata, fetched again once its cache lifetime has passed. If that fetch
    /// fails, the document in hand is used.
    pub(crate) async fn provider(&self) -> Arc<ProviderMetadata> {
        let now = self.clock.now_ms();
        let current = self.locked_provider().clone();
        if now < current.stale_at_ms {
            return current.value;
        }
        match fetch_metadata(
            &self.http,
            self.observer.as_ref(),
            self.clock.as_ref(),
            &self.issuer,
        )
        .await
        {
            Ok((m, max_age)) => {
                let fresh = Cached::new(m, now, max_age);
                let value = fresh.value.clone();
                *self.locked_provider() = fresh;
                value
            }
            Err(_) => {
                // Try again in a minute, not on every request.
                let mut guard = self.locked_provider();
                guard.stale_at_ms = now.saturating_add(60_000);
                guard.value.clone()
            }
        }
    }

    fn locked_provider(&self) -> std::sync::MutexGuard<'_, Cached<ProviderMetadata>> {
        self.provider.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The keys that may have signed a JWS with `kid` and `alg`: from the cached JWKS, fetched
    /// again when it is stale, or when it has no such key and was fetched more than
    /// [`MIN_KEY_REFRESH_SECS`] ago (the server may have rotated its keys).
    pub(crate) async fn verifying_keys(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<VerifyingKey>, ClientError> {
        let now = self.clock.now_ms();
        let cached = self.keys.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(c) = &cached {
            let keys = c.value.candidates(kid, alg);
            let fresh = now < c.stale_at_ms;
            let may_refresh = now - c.fetched_at_ms >= MIN_KEY_REFRESH_SECS * 1000;
            if (fresh && !keys.is_empty()) || !may_refresh {
                return Ok(keys);
            }
        }
        let url = self.provider().await.jwks_uri.clone();
        let answer = http::send(
            &self.http,
            self.observer.as_ref(),
            self.clock.as_ref(),
            Outgoing {
                method: reqwest::Method::GET,
                url: &url,
                authorization: None,
                form: Vec::new(),
            },
        )
        .await?;
        let jwks: Jwks = answer.json()?;
        let fresh = Cached::new(jwks, now, answer.max_age);
        let keys = fresh.value.candidates(kid, alg);
        *self.keys.lock().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_puts_the_well_known_segment_before_the_path() {
        assert_eq!(
            metadata_urls("https://id.example.com/"),
            [
                "https://id.example.com/.well-known/openid-configuration".to_owned(),
                "https://id.example.com/.well-known/oauth-authorization-server".to_owned()
            ]
        );
        assert_eq!(
            metadata_urls("https://id.example.com/tenant/1")[1],
            "https://id.example.com/.well-known/oauth-authorization-server/tenant/1"
        );
        assert_eq!(
            metadata_urls("https://id.example.com/tenant/1")[0],
            "https://id.example.com/tenant/1/.well-known/openid-configuration"
        );
    }

    #[test]
    fn cache_lifetime_follows_max_age() {
        let c = Cached::new((), 1_000, Some(300));
        assert_eq!(c.stale_at_ms, 301_000);
        let c = Cached::new((), 0, None);
        assert_eq!(c.stale_at_ms, 3_600_000);
    }
}
