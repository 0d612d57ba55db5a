//! Handles, DIDs and DID documents: syntax checks and parsing, no network.
//!
//! The network side (handle → DID, DID → document, the bidirectional check) lives on
//! [`Resolver`](crate::Resolver); this module decides what is valid.

use std::fmt;

use serde::Deserialize;
use tether_core::{Url, serde_json};

use crate::error::{Error, shown};

/// Top-level domains the atproto handle spec refuses.
const DISALLOWED_TLDS: &[&str] = &["alt", "arpa", "example", "internal", "invalid", "local", "localhost", "onion"];

/// A syntactically valid atproto handle, normalised to lower case (`alice.bsky.social`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Handle(String);

impl Handle {
    /// Parses a handle: a DNS name of at least two labels (letters, digits, hyphens; no leading or trailing
    /// hyphen; at most 63 characters each, 253 in all), whose last label does not start with a digit and is
    /// not a reserved TLD (`.local`, `.arpa`, `.invalid`, `.localhost`, ...). A leading `@` is accepted.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let trimmed = input.trim();
        let bad = |reason| Error::InvalidHandle { input: shown(trimmed), reason };
        let name = trimmed.strip_prefix('@').unwrap_or(trimmed).to_ascii_lowercase();
        check_hostname(&name).map_err(bad)?;
        let tld = name.rsplit('.').next().unwrap_or_default();
        if tld.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(bad("the last label must not start with a digit"));
        }
        if DISALLOWED_TLDS.contains(&tld) {
            return Err(bad("this top-level domain is reserved and cannot be a handle"));
        }
        Ok(Handle(name))
    }

    /// The normalised handle.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks DNS hostname syntax (lower-case input): labels of `[a-z0-9-]`, 1..=63 long, no hyphen at either end,
/// at least two labels, at most 253 characters.
fn check_hostname(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    if !name.is_ascii() {
        return Err("it must be ASCII (use the punycode form of an internationalised domain)");
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("it needs at least two dot-separated labels, like `alice.bsky.social`");
    }
    for label in labels {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading or trailing dot)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if !label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err("only letters, digits, hyphens and dots are allowed");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label must not start or end with a hyphen");
        }
    }
    Ok(())
}

/// The DID methods atproto supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DidMethod {
    /// `did:plc:<24 base32 characters>`, resolved through the PLC directory.
    Plc,
    /// `did:web:<hostname>`, resolved through `https://<hostname>/.well-known/did.json`.
    Web,
}

/// A syntactically valid `did:plc` or `did:web` identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Did {
    value: String,
    method: DidMethod,
}

impl Did {
    /// Parses a DID. Only `did:plc:` (exactly 24 characters of `a-z2-7`) and `did:web:` with a bare hostname
    /// (atproto supports no ports or paths) are accepted.
    pub fn parse(input: &str) -> Result<Self, Error> {
        let value = input.trim();
        let bad = |reason: &str| Error::InvalidDid { input: shown(value), reason: reason.to_owned() };
        if value.len() > 2048 {
            return Err(bad("it is longer than 2048 characters"));
        }
        let rest = value.strip_prefix("did:").ok_or_else(|| bad("it must start with `did:`"))?;
        let (method, id) = rest.split_once(':').ok_or_else(|| bad("it must look like `did:<method>:<identifier>`"))?;
        let method = match method {
            "plc" => DidMethod::Plc,
            "web" => DidMethod::Web,
            other if !other.is_empty() && other.bytes().all(|b| b.is_ascii_lowercase()) => {
                return Err(bad(&format!("method `{other}` is not supported (atproto uses did:plc and did:web)")));
            }
            _ => return Err(bad("the method must be lower-case letters")),
        };
        match method {
            DidMethod::Plc => {
                if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)) {
                    return Err(bad("a did:plc identifier is exactly 24 characters of a-z and 2-7"));
                }
            }
            DidMethod::Web => {
                if id.contains(':') || id.contains('%') {
                    return Err(bad("did:web with a port or path is not supported by atproto"));
                }
                check_hostname(id).map_err(|reason| bad(&format!("the did:web hostname is invalid: {reason}")))?;
            }
        }
        Ok(Did { value: value.to_owned(), method })
    }

    /// The DID as a string.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The DID method.
    pub fn method(&self) -> DidMethod {
        self.method
    }

    /// For `did:web`, the hostname that serves the document.
    pub fn web_host(&self) -> Option<&str> {
        match self.method {
            DidMethod::Web => self.value.strip_prefix("did:web:"),
            DidMethod::Plc => None,
        }
    }
}

impl fmt::Display for Did {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// What a user typed to identify their account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AtIdentifier {
    /// A handle such as `alice.bsky.social`.
    Handle(Handle),
    /// A DID such as `did:plc:ewvi7nxzyoun6zhxrhs64oiz`.
    Did(Did),
}

impl AtIdentifier {
    /// Parses user input: surrounding whitespace and an `at://` prefix are ignored; input starting with `did:`
    /// is a DID, anything else a handle (a leading `@` is accepted).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        let input = input.strip_prefix("at://").unwrap_or(input);
        if input.starts_with("did:") {
            Did::parse(input).map(Self::Did)
        } else {
            Handle::parse(input).map(Self::Handle)
        }
    }
}

/// The parts of a DID document that atproto sign-in needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DidDocument {
    /// The document's subject (equal to the DID that was resolved).
    pub did: Did,
    /// The handle the document claims (first valid `at://` entry of `alsoKnownAs`); not verified by itself.
    pub claimed_handle: Option<Handle>,
    /// The PDS endpoint (service `#atproto_pds` of type `AtprotoPersonalDataServer`): an `https` origin.
    pub pds: Url,
}

#[derive(Deserialize)]
struct RawDocument {
    id: String,
    #[serde(default, rename = "alsoKnownAs")]
    also_known_as: Vec<serde_json::Value>,
    #[serde(default)]
    service: Vec<RawService>,
}

#[derive(Deserialize)]
struct RawService {
    #[serde(default)]
    id: String,
    #[serde(default, rename = "type")]
    kind: serde_json::Value,
    #[serde(default, rename = "serviceEndpoint")]
    endpoint: serde_json::Value,
}

/// Why a DID document was refused (turned into [`Error::Invalid`] or [`Error::NoPds`] by the caller).
#[derive(Debug)]
pub(crate) enum DocumentProblem {
    /// Not JSON of the expected shape, or about another DID.
    Malformed(String),
    /// No usable PDS entry.
    NoPds(String),
}

impl DidDocument {
    /// Parses a DID document fetched for `did`. The document's `id` must equal `did`.
    pub(crate) fn parse(did: &Did, body: &[u8], loopback_http: bool) -> Result<Self, DocumentProblem> {
        let raw: RawDocument = serde_json::from_slice(body)
            .map_err(|e| DocumentProblem::Malformed(format!("not a DID document ({e})")))?;
        if raw.id != did.as_str() {
            return Err(DocumentProblem::Malformed(format!("the document is about `{}`, not {did}", shown(&raw.id))));
        }
        let claimed_handle = raw
            .also_known_as
            .iter()
            .filter_map(|v| v.as_str()?.strip_prefix("at://"))
            .find_map(|h| Handle::parse(h).ok());
        let pds = pds_endpoint(did, &raw.service, loopback_http).map_err(DocumentProblem::NoPds)?;
        Ok(DidDocument { did: did.clone(), claimed_handle, pds })
    }
}

fn pds_endpoint(did: &Did, services: &[RawService], loopback_http: bool) -> Result<Url, String> {
    let full_id = format!("{did}#atproto_pds");
    let service = services
        .iter()
        .find(|s| s.id == "#atproto_pds" || s.id == full_id)
        .ok_or_else(|| "no service with id `#atproto_pds`".to_owned())?;
    if service.kind.as_str() != Some("AtprotoPersonalDataServer") {
        return Err("the `#atproto_pds` service is not of type `AtprotoPersonalDataServer`".to_owned());
    }
    let endpoint = service.endpoint.as_str().ok_or_else(|| "the PDS serviceEndpoint is not a string".to_owned())?;
    https_origin(endpoint, loopback_http).map_err(|reason| format!("the PDS serviceEndpoint {reason}"))
}

/// Parses `input` as an `https` URL that is a bare origin (no credentials, query or fragment; path `/` only).
///
/// With `loopback_http` (development and tests only: [`ResolverConfig::allow_insecure_loopback`](crate::ResolverConfig)),
/// `http://127.0.0.1`, `http://[::1]` and `http://localhost` origins are accepted too.
pub(crate) fn https_origin(input: &str, loopback_http: bool) -> Result<Url, String> {
    let url = Url::parse(input).map_err(|e| format!("is not a URL ({e})"))?;
    if url.scheme() != "https" && !(loopback_http && is_loopback_http(&url)) {
        return Err("must use https".to_owned());
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err("must name a host and carry no credentials".to_owned());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("must be an origin (no path, query or fragment)".to_owned());
    }
    Ok(url)
}

/// Whether `url` is plain http to this machine (`127.0.0.1`, `[::1]`, `localhost`).
pub(crate) fn is_loopback_http(url: &Url) -> bool {
    url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_normalised_and_validated() {
        assert_eq!(
            Handle::parse(" @Alice.Bsky.Social ").map(|h| h.to_string()).ok().as_deref(),
            Some("alice.bsky.social")
        );
        assert!(Handle::parse("john.test").is_ok());
        assert!(Handle::parse("xn--ls8h.example.com").is_ok());
        assert!(Handle::parse("a.co").is_ok());
        for bad in [
            "",
            "alice",
            "alice..bsky.social",
            ".alice.bsky.social",
            "alice.bsky.social.",
            "-alice.bsky.social",
            "alice-.bsky.social",
            "al_ice.bsky.social",
            "alice@bsky.social",
            "alice.bsky.123",
            "alice.local",
            "printer.localhost",
            "x.onion",
            "alice.bsky.sоcial", // Cyrillic о
        ] {
            assert!(Handle::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(Handle::parse(&format!("{}.com", "a".repeat(64))).is_err());
        let long = format!("{}com", "abcdefghi.".repeat(26));
        assert!(long.len() > 253 && Handle::parse(&long).is_err());
    }

    #[test]
    fn handle_errors_say_what_is_wrong() {
        let e = Handle::parse("alice").err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(
            e,
            "`alice` is not a valid handle: it needs at least two dot-separated labels, like `alice.bsky.social`"
        );
    }

    #[test]
    fn dids_are_validated() {
        let plc = Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").ok();
        assert_eq!(plc.as_ref().map(Did::method), Some(DidMethod::Plc));
        let web = Did::parse("did:web:alice.example.com").ok();
        assert_eq!(web.as_ref().and_then(Did::web_host), Some("alice.example.com"));
        for bad in [
            "did:plc:ewvi7nxzyoun6zhxrhs64oi",   // 23 characters
            "did:plc:ewvi7nxzyoun6zhxrhs64oiz1", // 25
            "did:plc:EWVI7NXZYOUN6ZHXRHS64OIZ",
            "did:plc:ewvi7nxzyoun6zhxrhs64oi1", // 1 is not base32
            "did:web:localhost%3A8080",
            "did:web:example.com:user:alice",
            "did:web:nodot",
            "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            "did:PLC:ewvi7nxzyoun6zhxrhs64oiz",
            "did:plc",
            "plc:ewvi7nxzyoun6zhxrhs64oiz",
        ] {
            assert!(Did::parse(bad).is_err(), "{bad:?} must be refused");
        }
        let e = Did::parse("did:key:z6Mk").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("method `key` is not supported"), "{e}");
    }

    #[test]
    fn identifiers_are_told_apart() {
        assert!(matches!(AtIdentifier::parse("at://did:plc:ewvi7nxzyoun6zhxrhs64oiz"), Ok(AtIdentifier::Did(_))));
        assert!(matches!(AtIdentifier::parse("@alice.bsky.social"), Ok(AtIdentifier::Handle(_))));
        assert!(matches!(AtIdentifier::parse("did:foo"), Err(Error::InvalidDid { .. })));
        assert!(matches!(AtIdentifier::parse("https://bsky.app/profile/alice"), Err(Error::InvalidHandle { .. })));
    }

    fn plc() -> Did {
        Did::parse("did:plc:ewvi7nxzyoun6zhxrhs64oiz").unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn document_gives_pds_and_claimed_handle() {
        let body = br##"{"@context":["https://www.w3.org/ns/did/v1"],"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz",
            "alsoKnownAs":["https://elsewhere.example","at://Atproto.com"],
            "verificationMethod":[],
            "service":[{"id":"#bsky_notif","type":"BskyNotificationService","serviceEndpoint":"https://api.bsky.app"},
                       {"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz#atproto_pds","type":"AtprotoPersonalDataServer",
                        "serviceEndpoint":"https://enoki.us-east.host.bsky.network"}]}"##;
        let doc = DidDocument::parse(&plc(), body, false).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(doc.claimed_handle.map(|h| h.to_string()).as_deref(), Some("atproto.com"));
        assert_eq!(doc.pds.as_str(), "https://enoki.us-east.host.bsky.network/");
    }

    #[test]
    fn document_problems_are_refused() {
        let other = br##"{"id":"did:plc:aaaaaaaaaaaaaaaaaaaaaaaa","service":[]}"##;
        assert!(matches!(DidDocument::parse(&plc(), other, false), Err(DocumentProblem::Malformed(_))));
        let no_pds = br##"{"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","service":[]}"##;
        assert!(matches!(DidDocument::parse(&plc(), no_pds, false), Err(DocumentProblem::NoPds(_))));
        let http_pds = br##"{"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","service":[{"id":"#atproto_pds",
            "type":"AtprotoPersonalDataServer","serviceEndpoint":"http://pds.example.com"}]}"##;
        assert!(
            matches!(DidDocument::parse(&plc(), http_pds, false), Err(DocumentProblem::NoPds(m)) if m.contains("https"))
        );
        let wrong_type = br##"{"id":"did:plc:ewvi7nxzyoun6zhxrhs64oiz","service":[{"id":"#atproto_pds",
            "type":"Other","serviceEndpoint":"https://pds.example.com"}]}"##;
        assert!(matches!(DidDocument::parse(&plc(), wrong_type, false), Err(DocumentProblem::NoPds(_))));
        assert!(matches!(DidDocument::parse(&plc(), b"<html>", false), Err(DocumentProblem::Malformed(_))));
    }
}
