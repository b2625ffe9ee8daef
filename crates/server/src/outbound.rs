//! Outbound HTTP on a client's behalf (today: `jwks_uri`): an SSRF guard that refuses
//! loopback, private, link-local, CGNAT, multicast and unspecified addresses (also behind DNS
//! names and IPv4-mapped IPv6) unless configuration allows them, no redirects, timeouts and a
//! response size cap; and the cached JWKS fetcher built on it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backchannel_protocol::jose::Jwks;

use crate::config::OutboundConfig;
use crate::domain::JwksFetcher;

/// A CIDR block (`10.0.0.0/8`, `::1/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, p.parse::<u8>().ok()?),
            None => {
                let a = s.parse::<IpAddr>().ok()?;
                (a, if a.is_ipv4() { 32 } else { 128 })
            }
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then_some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// True for addresses a server must not be tricked into calling.
pub fn is_non_public(ip: IpAddr) -> bool {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // CGNAT 100.64.0.0/10
                || o[0] >= 240
        }
        IpAddr::V6(v6) => {
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
        }
    }
}

/// Which addresses outbound calls may reach.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    allowed: Vec<Cidr>,
}

impl AddressPolicy {
    pub fn from_config(cfg: &OutboundConfig) -> Result<Self, String> {
        let allowed = cfg
            .allowed_private_networks
            .iter()
            .map(|s| {
                Cidr::parse(s).ok_or_else(|| {
                    format!("invalid CIDR in outbound.allowed_private_networks: {s}")
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(AddressPolicy { allowed })
    }

    pub fn permits(&self, ip: IpAddr) -> bool {
        !is_non_public(ip) || self.in_allowed_networks(ip)
    }

    /// Whether `ip` lies in one of the configured `allowed_private_networks`.
    pub fn in_allowed_networks(&self, ip: IpAddr) -> bool {
        self.allowed.iter().any(|c| c.contains(ip))
    }
}

/// A reqwest resolver that drops every address the policy forbids.
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
    /// Keep only addresses inside the allowed networks (for plain-HTTP targets, which are
    /// accepted for development and tests only).
    allowed_only: bool,
}

impl GuardedResolver {
    /// Keeps the addresses the policy permits.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver {
            policy,
            allowed_only: false,
        }
    }

    /// Keeps only addresses inside the configured `allowed_private_networks`.
    pub fn allowed_networks_only(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver {
            policy,
            allowed_only: true,
        }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let allowed_only = self.allowed_only;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| {
                    if allowed_only {
                        policy.in_allowed_networks(a.ip())
                    } else {
                        policy.permits(a.ip())
                    }
                })
                .collect();
            if permitted.is_empty() {
                return Err(format!(
                    "{host} resolves only to addresses outbound calls may not reach"
                )
                .into());
            }
            let iter: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(iter)
        })
    }
}

/// The HTTP client for calls made on a client's behalf.
#[derive(Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    policy: Arc<AddressPolicy>,
    allow_http: bool,
    max_bytes: usize,
}

impl OutboundClient {
    pub fn new(cfg: &OutboundConfig) -> Result<Self, String> {
        let policy = Arc::new(AddressPolicy::from_config(cfg)?);
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_millis(cfg.timeout_ms))
            .connect_timeout(Duration::from_millis(cfg.timeout_ms.min(3000)))
            .dns_resolver(Arc::new(GuardedResolver::new(policy.clone())))
            .user_agent("backchannel")
            .build()
            .map_err(|e| format!("cannot build the outbound HTTP client: {e}"))?;
        Ok(OutboundClient {
            http,
            policy,
            allow_http: cfg.allow_http,
            max_bytes: cfg.max_response_bytes,
        })
    }

    /// Refuses URLs whose scheme or literal address the policy forbids (a literal IP never
    /// reaches the resolver).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        let url = crate::domain::admin::check_url(raw, self.allow_http)?;
        match url.host() {
            Some(url::Host::Ipv4(ip)) if !self.policy.permits(IpAddr::V4(ip)) => {
                Err("targets a non-public address".into())
            }
            Some(url::Host::Ipv6(ip)) if !self.policy.permits(IpAddr::V6(ip)) => {
                Err("targets a non-public address".into())
            }
            _ => Ok(url),
        }
    }

    /// GET a JSON document, refusing redirects, non-2xx answers and bodies over the cap.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, raw: &str) -> Result<T, String> {
        let url = self.check_url(raw)?;
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("request failed: {}", without_url(&e)))?;
        if !response.status().is_success() {
            return Err(format!("answered HTTP {}", response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("read failed: {}", without_url(&e)))?
        {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(format!("response exceeds {} bytes", self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| "response is not the expected JSON".into())
    }
}

/// Why a POST to a client endpoint did not get an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    /// The URL or every address it resolves to is forbidden: final, never retried.
    Refused(String),
    /// Network trouble or a timeout: worth another attempt.
    Network(String),
}

impl OutboundClient {
    /// POSTs a JSON body with a bearer token and returns the status. Redirects are returned,
    /// never followed. The address check runs before the request (and again in the resolver,
    /// so a DNS answer that changes in between is still refused).
    pub async fn post_json(
        &self,
        raw: &str,
        bearer: Option<&str>,
        body: String,
    ) -> Result<u16, PostError> {
        let url = self.check_url(raw).map_err(PostError::Refused)?;
        if let Some(url::Host::Domain(host)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| PostError::Network(format!("cannot resolve the host: {e}")))?
                .collect();
            if !addrs.iter().any(|a| self.policy.permits(a.ip())) {
                return Err(PostError::Refused(
                    "the host resolves only to addresses outbound calls may not reach".into(),
                ));
            }
        }
        let mut req = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token);
        }
        let response = req
            .send()
            .await
            .map_err(|e| PostError::Network(without_url(&e)))?;
        let status = response.status().as_u16();
        // Read (a capped amount of) the answer so the connection can be reused.
        let mut response = response;
        let mut read = 0usize;
        while let Ok(Some(chunk)) = response.chunk().await {
            read += chunk.len();
            if read > self.max_bytes {
                break;
            }
        }
        Ok(status)
    }
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
    client: OutboundClient,
    cache: Mutex<HashMap<String, CachedSet>>,
}

impl CachedJwksFetcher {
    pub fn new(client: OutboundClient) -> Self {
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
    async fn fetch(&self, uri: &str, refresh: bool) -> Result<Jwks, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_public_ranges() {
        for s in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_non_public(ip(s)), "{s}");
        }
        for s in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "100.128.0.1"] {
            assert!(!is_non_public(ip(s)), "{s}");
        }
    }

    #[test]
    fn allow_list_opens_a_private_range() {
        let cfg = OutboundConfig {
            allowed_private_networks: vec!["127.0.0.0/8".into()],
            ..OutboundConfig::default()
        };
        let p = AddressPolicy::from_config(&cfg).unwrap();
        assert!(p.permits(ip("127.0.0.1")));
        assert!(p.permits(ip("::ffff:127.0.0.2")));
        assert!(!p.permits(ip("10.0.0.1")));
        assert!(
            AddressPolicy::from_config(&OutboundConfig {
                allowed_private_networks: vec!["nope".into()],
                ..OutboundConfig::default()
            })
            .is_err()
        );
    }

    #[test]
    fn literal_addresses_are_checked_before_any_request() {
        let client = OutboundClient::new(&OutboundConfig {
            allow_http: true,
            ..OutboundConfig::default()
        })
        .unwrap();
        assert!(client.check_url("http://127.0.0.1:8080/jwks").is_err());
        assert!(client.check_url("http://[::1]/jwks").is_err());
        assert!(client.check_url("https://93.184.216.34/jwks").is_ok());
        let strict = OutboundClient::new(&OutboundConfig::default()).unwrap();
        assert!(strict.check_url("http://93.184.216.34/jwks").is_err());
    }
}
