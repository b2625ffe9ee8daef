//! The guarded DNS resolver: every name an outbound call connects to is resolved here, and
//! the addresses the policy forbids are dropped, so a name cannot smuggle a call to a private
//! address (also when its DNS answer changes between the URL check and the connection).

use std::net::SocketAddr;
use std::sync::Arc;

use super::policy::UrlPolicy;

/// Every address of the host is forbidden. Found again in a `reqwest::Error`'s source chain
/// by its type, so a refusal is told apart from network trouble without reading messages.
#[derive(Debug, thiserror::Error)]
#[error("the host resolves only to addresses outbound calls may not reach")]
pub struct AddressRefused;

/// A reqwest resolver that keeps only the addresses the policy permits.
pub struct GuardedResolver {
    policy: Arc<UrlPolicy>,
    /// Judge addresses for plain `http` (only the allowed private networks).
    cleartext: bool,
}

impl GuardedResolver {
    pub fn new(policy: Arc<UrlPolicy>, cleartext: bool) -> Self {
        GuardedResolver { policy, cleartext }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let cleartext = self.cleartext;
        Box::pin(async move {
            let permitted: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.permits(a.ip(), cleartext))
                .collect();
            if permitted.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether `error` (or an error it wraps) is the resolver's refusal.
pub fn is_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.is::<AddressRefused>() {
            return true;
        }
        source = e.source();
    }
    false
}
