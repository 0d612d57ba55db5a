//! The one error type of this crate, and its conversion to [`tether_core::Error`].

use tether_core::ProviderErrorKind;

use crate::identity::{Did, Handle};

/// Provider id used when converting to [`tether_core::Error`].
pub const PROVIDER_ID: &str = "bluesky";

/// Everything that can go wrong while resolving an identity or discovering its authorization server.
///
/// Messages name the step and the origin that failed; response bodies appear only as a short, cleaned excerpt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input is not a syntactically valid handle.
    #[error("`{input}` is not a valid handle: {reason}")]
    InvalidHandle {
        /// The input as given (trimmed, at most 100 characters).
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The input is not a syntactically valid (or not a supported) DID.
    #[error("`{input}` is not a valid atproto DID: {reason}")]
    InvalidDid {
        /// The input as given (trimmed, at most 100 characters).
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Neither the DNS TXT record nor the HTTPS well-known file resolved the handle.
    #[error("handle `{handle}` could not be resolved to a DID (DNS: {dns}; HTTPS: {https})")]
    HandleNotFound {
        /// The handle.
        handle: Handle,
        /// Why the DNS TXT method gave nothing.
        dns: String,
        /// Why the HTTPS well-known method gave nothing.
        https: String,
    },
    /// The DNS TXT record and the HTTPS well-known file name different DIDs.
    #[error("handle `{handle}` resolves to {dns} via DNS but to {https} via HTTPS; refusing an ambiguous handle")]
    HandleDisagreement {
        /// The handle.
        handle: Handle,
        /// DID from `_atproto.<handle>` TXT.
        dns: Did,
        /// DID from `https://<handle>/.well-known/atproto-did`.
        https: Did,
    },
    /// The DID document does not list the handle that resolved to it, so the handle is not verified.
    #[error(
        "the DID document of {did} does not claim handle `{handle}` (it claims {claimed}); the handle is unverified"
    )]
    HandleNotClaimed {
        /// The handle the user gave.
        handle: Handle,
        /// The DID the handle resolved to.
        did: Did,
        /// What the document claims instead (`no handle` when none).
        claimed: String,
    },
    /// The DID document has no usable atproto PDS service entry.
    #[error("the DID document of {did} names no atproto PDS: {reason}")]
    NoPds {
        /// The DID.
        did: Did,
        /// What is missing or wrong.
        reason: String,
    },
    /// A DNS lookup failed (not the same as "no record").
    #[error("DNS lookup of `{name}` failed: {message}")]
    Dns {
        /// The queried name.
        name: String,
        /// The resolver's description.
        message: String,
    },
    /// An HTTP request could not be made or its response not read (connection, timeout).
    #[error("{what} at {origin}: {message}")]
    Unreachable {
        /// What was being fetched.
        what: &'static str,
        /// Origin of the logical URL.
        origin: String,
        /// Transport-level description.
        message: String,
    },
    /// The server answered with a non-success status (redirects are not followed and land here too).
    #[error("{what} at {origin} answered HTTP {status}{excerpt}")]
    Status {
        /// What was being fetched.
        what: &'static str,
        /// Origin of the logical URL.
        origin: String,
        /// The status code.
        status: u16,
        /// `: <short cleaned excerpt>` of the body, or empty.
        excerpt: String,
    },
    /// The response body exceeds the configured size limit.
    #[error("{what} at {origin} is larger than the {limit}-byte limit; refused")]
    TooLarge {
        /// What was being fetched.
        what: &'static str,
        /// Origin of the logical URL.
        origin: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// The response could be read but is not what the protocol requires.
    #[error("{what} at {origin} is invalid: {reason}")]
    Invalid {
        /// What was being fetched.
        what: &'static str,
        /// Origin of the logical URL.
        origin: String,
        /// What is wrong (may end with a short cleaned excerpt).
        reason: String,
    },
    /// The resolver could not be built from its configuration.
    #[error("Bluesky resolver configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether retrying later may succeed (network failure, timeout, 5xx or 429).
    pub fn is_temporary(&self) -> bool {
        match self {
            Error::Unreachable { .. } | Error::Dns { .. } => true,
            Error::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

impl From<Error> for tether_core::Error {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::InvalidHandle { .. } | Error::InvalidDid { .. } | Error::HandleNotFound { .. } => {
                return tether_core::Error::InvalidInput(e.to_string());
            }
            Error::Config(_) => return tether_core::Error::Config(e.to_string()),
            _ if e.is_temporary() => ProviderErrorKind::Temporary { retry_after: None },
            Error::HandleDisagreement { .. } | Error::HandleNotClaimed { .. } => ProviderErrorKind::Rejected,
            _ => ProviderErrorKind::Protocol,
        };
        tether_core::Error::provider(PROVIDER_ID, kind, e.to_string())
    }
}

/// `: <excerpt>` from a body: at most 80 characters, control characters and runs of whitespace folded to one space.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
        if out.chars().count() > 80 {
            break;
        }
    }
    if out.is_empty() {
        return out;
    }
    let mut short: String = out.chars().take(80).collect();
    if short.len() < out.len() {
        short.push('…');
    }
    format!(": {short}")
}

/// The input shortened for an error message.
pub(crate) fn shown(input: &str) -> String {
    let mut s: String = input.chars().filter(|c| !c.is_control()).take(100).collect();
    if input.chars().count() > 100 {
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_folds_whitespace_and_truncates() {
        assert_eq!(excerpt(b""), "");
        assert_eq!(excerpt(b"  not\n\tfound \r\n"), ": not found");
        let long = "x".repeat(500);
        let e = excerpt(long.as_bytes());
        assert_eq!(e.chars().count(), 2 + 80 + 1);
        assert!(e.ends_with('…'));
    }

    #[test]
    fn conversion_classifies_errors() {
        let e: tether_core::Error =
            Error::InvalidHandle { input: "x".into(), reason: "needs at least two labels" }.into();
        assert_eq!(e.code(), "invalid_request");
        let e: tether_core::Error =
            Error::Status { what: "DID document", origin: "https://a.example".into(), status: 503, excerpt: "".into() }
                .into();
        assert_eq!(e.code(), "provider_unavailable");
        let e: tether_core::Error =
            Error::Status { what: "DID document", origin: "https://a.example".into(), status: 404, excerpt: "".into() }
                .into();
        assert_eq!(e.code(), "provider_protocol_error");
        let e: tether_core::Error = Error::Config("bad".into()).into();
        assert_eq!(e.code(), "configuration_error");
    }
}
