//! [`Resolver`]: handle → DID → DID document → PDS, over HTTP and DNS with strict limits.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tether_core::oauth2_http::describe_reqwest_error;
use tether_core::{Url, reqwest};

use crate::dns::{HickoryTxtLookup, TxtLookup};
use crate::error::{Error, excerpt};
use crate::identity::{AtIdentifier, Did, DidDocument, DidMethod, DocumentProblem, Handle};

/// How a [`Resolver`] reaches the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverConfig {
    /// Base URL of the PLC directory (default `https://plc.directory`); `did:plc` documents are at `{base}/{did}`.
    pub plc_directory: Url,
    /// Host name → base URL to use instead of `https://<host>` (e.g. `alice.example.com` →
    /// `http://127.0.0.1:8080`). Applies to handle well-known files, `did:web` documents, PDS and authorization
    /// server metadata; checks (such as the issuer) still use the real `https://<host>` origin. Meant for tests
    /// and local development; empty in production.
    pub host_overrides: BTreeMap<String, Url>,
    /// Name server for `_atproto` TXT lookups; `None` uses the system configuration.
    pub dns_nameserver: Option<SocketAddr>,
    /// Timeout of each HTTP request and DNS lookup.
    pub timeout: Duration,
    /// Largest response body accepted (DID documents, metadata); larger bodies are refused.
    pub max_body_bytes: usize,
    /// Accept plain `http` PDS and authorization servers on this machine (`127.0.0.1`, `[::1]`,
    /// `localhost`), for local development against a PDS on loopback and for tests. Off in
    /// production: atproto requires https.
    pub allow_insecure_loopback: bool,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        ResolverConfig {
            plc_directory: Url::parse("https://plc.directory").unwrap_or_else(|_| unreachable!("constant URL")),
            host_overrides: BTreeMap::new(),
            dns_nameserver: None,
            timeout: Duration::from_secs(10),
            max_body_bytes: 64 * 1024,
            allow_insecure_loopback: false,
        }
    }
}

/// A handle or DID resolved to its DID and PDS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedIdentity {
    /// The account DID: the stable account id.
    pub did: Did,
    /// The handle, only when verified both ways (handle → DID and the DID document claims the handle).
    pub handle: Option<Handle>,
    /// The account's PDS (an `https` origin).
    pub pds: Url,
}

/// The well-known `atproto-did` body is one DID; anything longer is not one.
const HANDLE_BODY_LIMIT: usize = 2048 + 64;

/// Resolves atproto identities and discovers their authorization servers.
///
/// Redirects are never followed, every response body is size-limited and every request has a timeout.
pub struct Resolver {
    pub(crate) config: ResolverConfig,
    http: reqwest::Client,
    dns: Arc<dyn TxtLookup>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver").field("config", &self.config).finish_non_exhaustive()
    }
}

impl Resolver {
    /// Builds a resolver with a hickory DNS client (the configured name server, else the system one).
    pub fn new(config: ResolverConfig) -> Result<Self, Error> {
        let dns = match config.dns_nameserver {
            Some(address) => HickoryTxtLookup::with_nameserver(address, config.timeout),
            None => HickoryTxtLookup::system(config.timeout),
        }
        .map_err(|e| Error::Config(format!("DNS resolver: {e}")))?;
        Self::with_txt_lookup(config, Arc::new(dns))
    }

    /// Builds a resolver with another TXT lookup.
    pub fn with_txt_lookup(config: ResolverConfig, dns: Arc<dyn TxtLookup>) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {}", describe_reqwest_error(&e))))?;
        Ok(Resolver { config, http, dns })
    }

    /// Resolves what a user typed (handle or DID) to the account's DID, verified handle and PDS.
    ///
    /// For a handle, the DID document must claim it back ([`Error::HandleNotClaimed`] otherwise). For a DID,
    /// the handle the document claims is checked the other way and left out (`None`) when it does not resolve
    /// to this DID.
    pub async fn resolve_identity(&self, input: &str) -> Result<ResolvedIdentity, Error> {
        match AtIdentifier::parse(input)? {
            AtIdentifier::Handle(handle) => {
                let did = self.resolve_handle(&handle).await?;
                let doc = self.resolve_did(&did).await?;
                if doc.claimed_handle.as_ref() != Some(&handle) {
                    let claimed = doc.claimed_handle.map_or_else(|| "no handle".to_owned(), |h| format!("`{h}`"));
                    return Err(Error::HandleNotClaimed { handle, did, claimed });
                }
                Ok(ResolvedIdentity { did, handle: Some(handle), pds: doc.pds })
            }
            AtIdentifier::Did(did) => {
                let doc = self.resolve_did(&did).await?;
                let handle = match doc.claimed_handle {
                    Some(h) if self.resolve_handle(&h).await.is_ok_and(|d| d == did) => Some(h),
                    _ => None,
                };
                Ok(ResolvedIdentity { did, handle, pds: doc.pds })
            }
        }
    }

    /// Resolves a handle to a DID with both methods of the spec, run together: DNS TXT `_atproto.<handle>`
    /// (`did=<DID>`) and `https://<handle>/.well-known/atproto-did`. One answer suffices; two different answers
    /// are [`Error::HandleDisagreement`]. Several different `did=` TXT records count as no DNS answer.
    pub async fn resolve_handle(&self, handle: &Handle) -> Result<Did, Error> {
        let (dns, https) = tokio::join!(self.handle_via_dns(handle), self.handle_via_https(handle));
        match (dns, https) {
            (Ok(dns), Ok(https)) if dns != https => {
                Err(Error::HandleDisagreement { handle: handle.clone(), dns, https })
            }
            (Ok(did), _) | (_, Ok(did)) => Ok(did),
            (Err(dns), Err(https)) => Err(Error::HandleNotFound { handle: handle.clone(), dns, https }),
        }
    }

    async fn handle_via_dns(&self, handle: &Handle) -> Result<Did, String> {
        let name = format!("_atproto.{handle}.");
        let records = self.dns.txt(&name).await.map_err(|e| format!("lookup failed ({e})"))?;
        let mut dids: Vec<&str> = records.iter().filter_map(|r| r.trim().strip_prefix("did=")).collect();
        dids.sort_unstable();
        dids.dedup();
        match dids.as_slice() {
            [] => Err("no `did=` TXT record".to_owned()),
            [one] => Did::parse(one).map_err(|e| format!("TXT record: {e}")),
            _ => Err("several different `did=` TXT records".to_owned()),
        }
    }

    async fn handle_via_https(&self, handle: &Handle) -> Result<Did, String> {
        let url = Url::parse(&format!("https://{handle}/.well-known/atproto-did")).map_err(|e| e.to_string())?;
        let limit = HANDLE_BODY_LIMIT.min(self.config.max_body_bytes);
        let body = self.get("handle well-known file", &url, "text/plain", limit).await.map_err(|e| e.to_string())?;
        let text = std::str::from_utf8(&body).map_err(|_| "the well-known file is not UTF-8 text".to_owned())?;
        Did::parse(text).map_err(|e| format!("the well-known file {e}"))
    }

    /// Fetches and parses the DID document: `did:plc` from the PLC directory, `did:web` from
    /// `https://<host>/.well-known/did.json`.
    pub async fn resolve_did(&self, did: &Did) -> Result<DidDocument, Error> {
        let url = match (did.method(), did.web_host()) {
            (DidMethod::Web, Some(host)) => Url::parse(&format!("https://{host}/.well-known/did.json")),
            // Not `Url::join`: a DID parses as an absolute URL with scheme `did`.
            _ => Url::parse(&format!("{}/{did}", self.config.plc_directory.as_str().trim_end_matches('/'))),
        }
        .map_err(|e| Error::Config(format!("DID document URL for {did}: {e}")))?;
        let what = "DID document";
        let body =
            self.get(what, &url, "application/did+ld+json, application/json", self.config.max_body_bytes).await?;
        DidDocument::parse(did, &body, self.config.allow_insecure_loopback).map_err(|problem| match problem {
            DocumentProblem::Malformed(reason) => Error::Invalid { what, origin: origin(&url), reason },
            DocumentProblem::NoPds(reason) => Error::NoPds { did: did.clone(), reason },
        })
    }

    /// GETs `url` (through [`ResolverConfig::host_overrides`]), requiring a 2xx status and at most `limit` bytes.
    pub(crate) async fn get(
        &self,
        what: &'static str,
        url: &Url,
        accept: &str,
        limit: usize,
    ) -> Result<Vec<u8>, Error> {
        let target = self.transport_url(url);
        let origin = origin(url);
        let unreachable = |e: reqwest::Error| Error::Unreachable {
            what,
            origin: origin.clone(),
            message: describe_reqwest_error(&e),
        };
        let mut response =
            self.http.get(target).header(reqwest::header::ACCEPT, accept).send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let head = read_limited(&mut response, 512).await.unwrap_or_default();
            return Err(Error::Status { what, origin, status: status.as_u16(), excerpt: excerpt(&head) });
        }
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Error::TooLarge { what, origin, limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            if body.len() + chunk.len() > limit {
                return Err(Error::TooLarge { what, origin, limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_url(&self, url: &Url) -> Url {
        let Some(base) = url.host_str().and_then(|host| self.config.host_overrides.get(host)) else {
            return url.clone();
        };
        let mut target = base.clone();
        target.set_path(url.path());
        target.set_query(url.query());
        target
    }
}

/// Reads at most `limit` bytes of a body (for error excerpts); stops quietly at the limit.
async fn read_limited(response: &mut reqwest::Response, limit: usize) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    while out.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => out.extend_from_slice(&chunk[..chunk.len().min(limit - out.len())]),
            Ok(None) => break,
            Err(_) if out.is_empty() => return None,
            Err(_) => break,
        }
    }
    Some(out)
}

/// The origin of a URL as text (`https://host[:port]`).
pub(crate) fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}
