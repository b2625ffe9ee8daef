//! The one rule for where outbound calls may go: the shape of a target URL (https, or plain
//! http where allowed; a host; no credentials or fragment) and the addresses it may reach
//! (public ones, plus the configured private networks; plain http only those networks).
//! Pure: no I/O, so the domain checks registrations with it and the client checks every call.

use std::net::IpAddr;

use url::Url;

use crate::config::OutboundConfig;

/// Why a target is refused. Final: sending again cannot help until the configuration changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("is not an absolute URL")]
    NotAbsolute,
    /// Another scheme, or plain `http` while `outbound.allow_http` is off.
    #[error("must use https")]
    NotHttps,
    #[error("must have a host and no credentials or fragment")]
    Shape,
    /// A literal address that is not public and not in the allowed networks.
    #[error("targets a non-public address")]
    NonPublicAddress,
    /// Plain `http` towards an address outside the allowed private networks: cleartext
    /// never crosses the internet.
    #[error("plain http is accepted only towards the allowed private networks")]
    CleartextOutsideAllowedNetworks,
    /// Every address the host resolves to is forbidden (found by the guarded resolver).
    #[error("the host resolves only to addresses outbound calls may not reach")]
    NoPermittedAddress,
}

/// Checks the shape of a URL the server will call, without looking at its addresses: for
/// registrations (a client's `jwks_uri` or notification endpoint, a Web Push endpoint) and
/// configured base URLs, whose addresses are judged when the call is made.
pub fn check_shape(raw: &str, allow_http: bool) -> Result<Url, Refusal> {
    let url = Url::parse(raw).map_err(|_| Refusal::NotAbsolute)?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err(Refusal::NotHttps),
    }
    if url.host_str().is_none()
        || !url.username().is_empty()
        || url.password().is_some()
        || url.fragment().is_some()
    {
        return Err(Refusal::Shape);
    }
    Ok(url)
}

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

/// An entry of `outbound.allowed_private_networks` that is not a CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CIDR in outbound.allowed_private_networks: {0}")]
pub struct InvalidCidr(pub String);

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

/// Where outbound calls may go, from `[outbound]`.
#[derive(Debug, Clone, Default)]
pub struct UrlPolicy {
    allowed: Vec<Cidr>,
    allow_http: bool,
}

impl UrlPolicy {
    pub fn from_config(cfg: &OutboundConfig) -> Result<Self, InvalidCidr> {
        let allowed = cfg
            .allowed_private_networks
            .iter()
            .map(|s| Cidr::parse(s).ok_or_else(|| InvalidCidr(s.clone())))
            .collect::<Result<_, _>>()?;
        Ok(UrlPolicy {
            allowed,
            allow_http: cfg.allow_http,
        })
    }

    /// Whether a call may connect to `ip`; `cleartext` for plain `http`, which may reach
    /// only the allowed private networks.
    pub fn permits(&self, ip: IpAddr, cleartext: bool) -> bool {
        let allowed = self.allowed.iter().any(|c| c.contains(ip));
        allowed || (!cleartext && !is_non_public(ip))
    }

    /// The shape rule, then the address rule for a literal address (which never reaches
    /// the resolver). Names are judged address by address when they are resolved.
    pub fn check(&self, raw: &str) -> Result<Url, Refusal> {
        let url = check_shape(raw, self.allow_http)?;
        let cleartext = url.scheme() == "http";
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        match literal {
            Some(ip) if !self.permits(ip, cleartext) => Err(if is_non_public(ip) {
                Refusal::NonPublicAddress
            } else {
                Refusal::CleartextOutsideAllowedNetworks
            }),
            _ => Ok(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy(allowed: &[&str], allow_http: bool) -> UrlPolicy {
        UrlPolicy::from_config(&OutboundConfig {
            allowed_private_networks: allowed.iter().map(|s| (*s).to_owned()).collect(),
            allow_http,
            ..OutboundConfig::default()
        })
        .unwrap()
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
        let p = policy(&["127.0.0.0/8"], false);
        assert!(p.permits(ip("127.0.0.1"), false));
        assert!(p.permits(ip("::ffff:127.0.0.2"), true));
        assert!(!p.permits(ip("10.0.0.1"), false));
        assert!(p.permits(ip("93.184.216.34"), false));
        assert!(
            !p.permits(ip("93.184.216.34"), true),
            "cleartext to the internet"
        );
        assert_eq!(
            UrlPolicy::from_config(&OutboundConfig {
                allowed_private_networks: vec!["nope".into()],
                ..OutboundConfig::default()
            })
            .unwrap_err(),
            InvalidCidr("nope".into())
        );
    }

    #[test]
    fn shapes() {
        assert_eq!(check_shape("/relative", true), Err(Refusal::NotAbsolute));
        assert_eq!(
            check_shape("ftp://rp.example/x", true),
            Err(Refusal::NotHttps)
        );
        assert_eq!(
            check_shape("http://rp.example/x", false),
            Err(Refusal::NotHttps)
        );
        assert!(check_shape("http://rp.example/x", true).is_ok());
        assert_eq!(
            check_shape("https://u:p@rp.example/", true),
            Err(Refusal::Shape)
        );
        assert_eq!(
            check_shape("https://rp.example/#f", true),
            Err(Refusal::Shape)
        );
        assert!(check_shape("https://rp.example/cb?x=1", false).is_ok());
    }

    #[test]
    fn literal_addresses_are_checked_before_any_request() {
        let open = policy(&["127.0.0.0/8"], true);
        assert!(open.check("http://127.0.0.1:8443/push").is_ok());
        assert!(open.check("https://127.0.0.1:8443/push").is_ok());
        assert_eq!(
            open.check("http://93.184.216.34/push"),
            Err(Refusal::CleartextOutsideAllowedNetworks)
        );
        assert_eq!(
            open.check("http://10.0.0.1/push"),
            Err(Refusal::NonPublicAddress)
        );
        assert!(open.check("https://93.184.216.34/jwks").is_ok());
        assert!(open.check("https://push.example.com/x").is_ok());

        let strict = policy(&[], false);
        assert_eq!(
            strict.check("http://127.0.0.1:8443/push"),
            Err(Refusal::NotHttps)
        );
        for target in [
            "https://127.0.0.1/push",
            "https://[::1]/push",
            "https://[::ffff:169.254.169.254]/",
        ] {
            assert_eq!(
                strict.check(target),
                Err(Refusal::NonPublicAddress),
                "{target}"
            );
        }
    }
}
