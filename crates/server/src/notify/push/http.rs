//! The HTTP stack every push sender shares: the SSRF guard of `outbound` (a guarded resolver and
//! a literal-address check), plain `http://` only towards the configured private networks,
//! no redirects, no proxies, timeouts, a response size cap, and `Retry-After` (RFC 9110
//! §10.2.3) read from answers.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use url::Url;

use crate::config::OutboundConfig;
use crate::outbound::{AddressPolicy, GuardedResolver, without_url};

/// `Retry-After` values beyond this are clamped: the request expires long before.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A push service's answer, body capped.
pub(crate) struct Reply {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// Two guarded clients: `https` reaches any address the policy permits; plain `http` (h2c
/// test servers, development endpoints) reaches only the allowed private networks, so a
/// device cannot name a cleartext endpoint on the internet or an unlisted internal host.
pub(crate) struct PushHttp {
    https: reqwest::Client,
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    max_bytes: usize,
}

impl PushHttp {
    /// `http2_only` speaks HTTP/2 to every origin: by ALPN (`h2` only) over TLS, with prior
    /// knowledge (h2c) over plain HTTP. APNs accepts nothing else.
    pub(crate) fn new(cfg: &OutboundConfig, http2_only: bool) -> Result<Self, String> {
        let policy = Arc::new(AddressPolicy::from_config(cfg)?);
        let build = |resolver: GuardedResolver| {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                // A proxy would resolve names itself, past the guarded resolver.
                .no_proxy()
                .timeout(Duration::from_millis(cfg.timeout_ms))
                .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(3000)))
                .dns_resolver(Arc::new(resolver))
                .user_agent("backchannel");
            if http2_only {
                builder = builder.http2_prior_knowledge();
            }
            builder
                .build()
                .map_err(|e| format!("cannot build the push HTTP client: {e}"))
        };
        Ok(PushHttp {
            https: build(GuardedResolver::new(policy.clone()))?,
            http: build(GuardedResolver::allowed_networks_only(policy.clone()))?,
            policy,
            max_bytes: cfg.max_response_bytes,
        })
    }

    /// Parses and checks a URL before any connection: `https`, or `http` towards an allowed
    /// private network; a host; no credentials or fragment; a literal address the policy
    /// permits (literal addresses never reach the resolver).
    pub(crate) fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|_| "is not an absolute URL".to_owned())?;
        let plain = match url.scheme() {
            "https" => false,
            "http" => true,
            _ => return Err("must use https".into()),
        };
        if url.host_str().is_none()
            || !url.username().is_empty()
            || url.password().is_some()
            || url.fragment().is_some()
        {
            return Err("must have a host and no credentials or fragment".into());
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if plain && !self.policy.in_allowed_networks(ip) => {
                Err("plain http is accepted only towards the allowed private networks".into())
            }
            Some(ip) if !self.policy.permits(ip) => Err("targets a non-public address".into()),
            _ => Ok(url),
        }
    }

    /// A POST to a URL that passed [`PushHttp::check_url`].
    pub(crate) fn post(&self, url: Url) -> reqwest::RequestBuilder {
        let client = if url.scheme() == "http" {
            &self.http
        } else {
            &self.https
        };
        client.post(url)
    }

    /// Sends and reads the answer (any status). Messages never carry the URL.
    pub(crate) async fn execute(
        &self,
        request: reqwest::RequestBuilder,
        now_ms: i64,
    ) -> Result<Reply, SendError> {
        let mut response = request.send().await.map_err(|e| {
            if refused_by_policy(&e) {
                SendError::Refused
            } else if e.is_builder() {
                SendError::Invalid(without_url(&e))
            } else {
                SendError::Network(format!("request failed: {}", without_url(&e)))
            }
        })?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers(), now_ms);
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| SendError::Network(format!("read failed: {}", without_url(&e))))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(SendError::Network(format!(
                    "response exceeds {} bytes",
                    self.max_bytes
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }
}

/// `Retry-After` as delay-seconds or an HTTP-date (RFC 9110 §10.2.3), relative to `now_ms`.
pub(crate) fn retry_after(headers: &HeaderMap, now_ms: i64) -> Option<Duration> {
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

/// Why [`PushHttp::execute`] got no answer. Neither carries the URL (so no device token or
/// endpoint secret).
pub(crate) enum SendError {
    /// The guarded resolver refused every address of the host.
    Refused,
    /// The request could not be built (a header value that is not one): sending it again
    /// would not help.
    Invalid(String),
    /// Network trouble, a timeout, an oversized answer.
    Network(String),
}

impl SendError {
    /// A refused host fails the attempt for good (until the operator changes the allowed
    /// networks); network trouble is worth another attempt.
    pub(crate) fn outcome(self, channel: &'static str, what: &str) -> super::PushOutcome {
        match self {
            SendError::Refused => super::PushOutcome::Failed(format!(
                "{what}: the host resolves only to addresses outbound calls may not reach"
            )),
            SendError::Invalid(error) => {
                super::PushOutcome::Failed(format!("{what}: invalid request: {error}"))
            }
            SendError::Network(error) => {
                tracing::warn!(channel, what, error, "push request failed");
                super::PushOutcome::Retry { after: None }
            }
        }
    }
}

/// Whether the guarded resolver refused the host (its message is in the source chain).
fn refused_by_policy(e: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = source {
        if err.to_string().contains("outbound calls may not reach") {
            return true;
        }
        source = err.source();
    }
    false
}

/// A service's error code made fit for a log line: at most 64 characters of `[A-Za-z0-9_.-]`.
pub(crate) fn code(untrusted: &str) -> String {
    untrusted
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '?'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn cfg(allowed: &[&str]) -> OutboundConfig {
        OutboundConfig {
            allowed_private_networks: allowed.iter().map(|s| (*s).to_owned()).collect(),
            ..OutboundConfig::default()
        }
    }

    #[test]
    fn plain_http_only_towards_allowed_networks() {
        let open = PushHttp::new(&cfg(&["127.0.0.0/8"]), false).unwrap();
        assert!(open.check_url("http://127.0.0.1:8443/push").is_ok());
        assert!(open.check_url("https://127.0.0.1:8443/push").is_ok());
        assert!(open.check_url("http://93.184.216.34/push").is_err());
        assert!(open.check_url("http://10.0.0.1/push").is_err());
        assert!(open.check_url("https://push.example.com/x").is_ok());
        assert!(open.check_url("https://u:p@push.example.com/x").is_err());
        assert!(open.check_url("ftp://push.example.com/x").is_err());
        assert!(open.check_url("/relative").is_err());

        let strict = PushHttp::new(&cfg(&[]), true).unwrap();
        assert!(strict.check_url("http://127.0.0.1:8443/push").is_err());
        assert!(strict.check_url("https://127.0.0.1/push").is_err());
        assert!(strict.check_url("https://[::1]/push").is_err());
        assert!(
            strict
                .check_url("https://[::ffff:169.254.169.254]/")
                .is_err()
        );
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

    #[test]
    fn codes_are_log_safe() {
        assert_eq!(code("BadDeviceToken"), "BadDeviceToken");
        assert_eq!(code("a b\n\"c"), "a?b??c");
        assert_eq!(code(&"x".repeat(200)).len(), 64);
    }
}
