//! DNS TXT lookups behind a small trait, with a hickory-resolver implementation.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig as DnsConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use tether_core::async_trait;

/// Looks up TXT records.
///
/// Implement it to resolve `_atproto.<handle>` some other way (DNS over HTTPS, a cache, a test double).
#[async_trait]
pub trait TxtLookup: Send + Sync {
    /// The TXT records at `name` (a fully qualified name), each record's character-strings joined.
    /// No record or no such name is `Ok(vec![])`; `Err` is a failed lookup, described in one line.
    async fn txt(&self, name: &str) -> Result<Vec<String>, String>;
}

/// [`TxtLookup`] over hickory-resolver (plain UDP with TCP fallback; no DNSSEC, no encrypted transports).
pub struct HickoryTxtLookup {
    resolver: TokioResolver,
}

impl HickoryTxtLookup {
    /// Uses the system configuration (`/etc/resolv.conf` on Unix).
    pub fn system(timeout: Duration) -> Result<Self, String> {
        let mut builder =
            TokioResolver::builder_tokio().map_err(|e| format!("reading the system DNS configuration: {e}"))?;
        builder.options_mut().timeout = timeout;
        builder.build().map(|resolver| Self { resolver }).map_err(|e| e.to_string())
    }

    /// Uses one name server at `address` (any port; tests point it at a loopback server).
    pub fn with_nameserver(address: SocketAddr, timeout: Duration) -> Result<Self, String> {
        let connection = |mut c: ConnectionConfig| {
            c.port = address.port();
            c
        };
        let server = NameServerConfig::new(
            address.ip(),
            true,
            vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())],
        );
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.attempts = 1;
        TokioResolver::builder_with_config(DnsConfig::from_name_servers(vec![server]), TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map(|resolver| Self { resolver })
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl TxtLookup for HickoryTxtLookup {
    async fn txt(&self, name: &str) -> Result<Vec<String>, String> {
        match self.resolver.txt_lookup(name).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::TXT(txt) => Some(txt.txt_data.iter().map(|part| String::from_utf8_lossy(part)).collect()),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}
