//! Outbound HTTP: the one guarded client for every call the server makes on someone else's
//! behalf (a client's `jwks_uri`, ping and push callbacks, external channels, APNs, FCM, Web
//! Push). Built once at start from `[outbound]`: the URL policy of [`policy`] checked before
//! each call, the guarded resolver of [`resolver`] on every connection, never a proxy (an
//! implicit `HTTPS_PROXY` would resolve names past the guard), no redirects, timeouts, and
//! answers read up to a size cap.

pub mod jwks;
pub mod policy;
pub mod resolver;

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

pub use jwks::CachedJwksFetcher;
pub use policy::{Refusal, UrlPolicy, check_shape};

use crate::config::OutboundConfig;
use resolver::GuardedResolver;

/// `Retry-After` values beyond this are clamped: whatever waits for the answer is long gone.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Connecting takes at most this long, within the whole call's `outbound.timeout_ms`.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Why an outbound call got no usable answer. No variant carries the URL (which may hold a
/// device token or an endpoint's secret path).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// The target is forbidden by the URL policy: final, never retried.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The request could not be built (a header value that is not one): final.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Network trouble or a timeout: worth another attempt.
    #[error("request failed: {0}")]
    Network(String),
    /// The answer was larger than `outbound.max_response_bytes`.
    #[error("response exceeds {0} bytes")]
    TooLarge(usize),
    /// A document fetch answered with another status than 2xx.
    #[error("answered HTTP {0}")]
    Status(u16),
    /// A document fetch answered with something else than the expected JSON.
    #[error("response is not the expected JSON")]
    NotJson,
}

impl OutboundError {
    /// Whether another attempt may succeed (a refused or malformed request never will).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, OutboundError::Refused(_) | OutboundError::Invalid(_))
    }

    fn from_send(e: &reqwest::Error) -> Self {
        if resolver::is_refused(e) {
            OutboundError::Refused(Refusal::NoPermittedAddress)
        } else if e.is_builder() {
            OutboundError::Invalid(without_url(e))
        } else {
            OutboundError::Network(without_url(e))
        }
    }
}

/// The build of the HTTP stack failed (no TLS roots, an invalid allowed network).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Policy(#[from] policy::InvalidCidr),
    #[error("cannot build the outbound HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// An answer, its body read up to the cap.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` (RFC 9110 §10.2.3), as a delay from when the answer came.
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// Two reqwest clients with the same settings: `https` connects to any address the policy
/// permits, plain `http` only to the allowed private networks.
#[derive(Clone)]
struct Stack {
    https: reqwest::Client,
    http: reqwest::Client,
}

impl Stack {
    fn build(
        cfg: &OutboundConfig,
        policy: &Arc<UrlPolicy>,
        http2_only: bool,
    ) -> Result<Stack, BuildError> {
        let timeout = Duration::from_millis(cfg.timeout_ms);
        let build = |cleartext: bool| {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would resolve names itself, past the guarded resolver.
                .no_proxy()
                .timeout(timeout)
                .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
                .dns_resolver(Arc::new(GuardedResolver::new(policy.clone(), cleartext)))
                .user_agent("backchannel");
            if http2_only {
                builder = builder.http2_prior_knowledge();
            }
            builder.build().map_err(BuildError::Client)
        };
        Ok(Stack {
            https: build(false)?,
            http: build(true)?,
        })
    }

    fn client(&self, url: &Url) -> &reqwest::Client {
        if url.scheme() == "http" {
            &self.http
        } else {
            &self.https
        }
    }
}

/// The guarded outbound client. Cheap to clone (the connection pools are shared).
#[derive(Clone)]
pub struct Outbound {
    config: Arc<OutboundConfig>,
    policy: Arc<UrlPolicy>,
    /// HTTP/1.1 or HTTP/2 as the server offers, or HTTP/2 only ([`Outbound::http2_only`]).
    stack: Stack,
}

impl Outbound {
    pub fn new(cfg: &OutboundConfig) -> Result<Self, BuildError> {
        let policy = Arc::new(UrlPolicy::from_config(cfg)?);
        Ok(Outbound {
            stack: Stack::build(cfg, &policy, false)?,
            config: Arc::new(cfg.clone()),
            policy,
        })
    }

    /// The same guard and limits, speaking HTTP/2 only: by ALPN over TLS, with prior
    /// knowledge (h2c) over plain HTTP. APNs accepts nothing else; built by its sender, so
    /// a server without APNs never builds it.
    pub fn http2_only(&self) -> Result<Self, BuildError> {
        Ok(Outbound {
            stack: Stack::build(&self.config, &self.policy, true)?,
            ..self.clone()
        })
    }

    /// The URL policy: refuses what may not be called before any connection.
    pub fn check_url(&self, raw: &str) -> Result<Url, Refusal> {
        self.policy.check(raw)
    }

    /// A POST to a URL that passed [`Outbound::check_url`].
    pub fn post(&self, url: Url) -> reqwest::RequestBuilder {
        self.stack.client(&url).post(url)
    }

    /// Sends and reads the answer, whatever its status; `now_ms` dates `Retry-After`.
    pub async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        now_ms: i64,
    ) -> Result<Reply, OutboundError> {
        let mut response = request
            .send()
            .await
            .map_err(|e| OutboundError::from_send(&e))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), now_ms);
        let body = self.read_capped(&mut response).await?;
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }

    /// GETs a JSON document: 2xx only, no redirects, body capped.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        raw: &str,
    ) -> Result<T, OutboundError> {
        let url = self.check_url(raw)?;
        let mut response = self
            .stack
            .client(&url)
            .get(url)
            .send()
            .await
            .map_err(|e| OutboundError::from_send(&e))?;
        if !response.status().is_success() {
            return Err(OutboundError::Status(response.status().as_u16()));
        }
        let body = self.read_capped(&mut response).await?;
        serde_json::from_slice(&body).map_err(|_| OutboundError::NotJson)
    }

    /// POSTs a JSON body, with a bearer token if given, and returns the status (redirects
    /// are returned, never followed). The answer's body is read, up to the cap, so that the
    /// connection can be reused.
    pub async fn post_json(
        &self,
        raw: &str,
        bearer: Option<&str>,
        body: String,
    ) -> Result<u16, OutboundError> {
        let url = self.check_url(raw)?;
        let mut request = self
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| OutboundError::from_send(&e))?;
        let status = response.status().as_u16();
        // The status is the answer; a body over the cap only costs the connection.
        let _ = self.read_capped(&mut response).await;
        Ok(status)
    }

    /// The body, refused beyond `outbound.max_response_bytes`.
    async fn read_capped(
        &self,
        response: &mut reqwest::Response,
    ) -> Result<Vec<u8>, OutboundError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| OutboundError::Network(format!("read failed: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > self.config.max_response_bytes {
                return Err(OutboundError::TooLarge(self.config.max_response_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now_ms`.
pub fn retry_after(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
    let raw = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(secs) = raw.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(raw).ok()?;
        let at_ms = at
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())?;
        Duration::from_millis(u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0))
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// A reqwest error's text without its URL (which may carry a device token or a push
/// endpoint's secret path).
pub fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    if let Some(url) = e.url() {
        s = s.replace(url.as_str(), "<url>");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn outbound(allowed: &[&str]) -> Outbound {
        Outbound::new(&OutboundConfig {
            allowed_private_networks: allowed.iter().map(|s| (*s).to_owned()).collect(),
            allow_http: true,
            ..OutboundConfig::default()
        })
        .unwrap()
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, 0), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, 0), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, 10_000), Some(Duration::from_secs(20)));
        assert_eq!(retry_after(&h, 60_000), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("999999999"));
        assert_eq!(retry_after(&h, 0), Some(MAX_RETRY_AFTER));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, 0), None);
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_forbidden_addresses_is_a_typed_refusal() {
        // `localhost` resolves to loopback, which only an allowed network opens.
        let closed = outbound(&["10.0.0.0/8"]);
        let refused = closed
            .post_json("https://localhost:9/cb", None, "{}".into())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, OutboundError::Refused(Refusal::NoPermittedAddress)),
            "{refused:?}"
        );
        assert!(!refused.is_retryable());
        // Allowed, the same name is reached (nothing listens on port 9: network trouble).
        let open = outbound(&["127.0.0.0/8", "::1/128"]);
        let failed = open
            .post_json("http://localhost:9/cb", None, "{}".into())
            .await
            .unwrap_err();
        assert!(matches!(failed, OutboundError::Network(_)), "{failed:?}");
        assert!(failed.is_retryable());
    }
}
