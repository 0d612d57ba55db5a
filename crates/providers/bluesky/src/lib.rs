//! Bluesky / AT Protocol OAuth as a Tether provider.
//!
//! atproto differs from every other provider: there is no central server. A user's account lives on a PDS
//! (personal data server) that names its own authorization server, so a flow starts from what the user types,
//! a handle (`alice.bsky.social`) or a DID, and discovers everything else. The pieces:
//!
//! - [`identity`]: handle and DID syntax ([`Handle`], [`Did`], [`AtIdentifier`]) and DID documents
//!   ([`DidDocument`]: PDS endpoint and claimed handle).
//! - [`Resolver`]: handle → DID by DNS TXT `_atproto.<handle>` and `https://<handle>/.well-known/atproto-did`
//!   (both tried; disagreement is an error), DID → document (`did:plc` via the PLC directory, `did:web` via
//!   `/.well-known/did.json`), and the bidirectional handle check. No redirects, timeouts, body size limits;
//!   base URLs and the DNS server are configurable ([`ResolverConfig`]) so tests run on loopback.
//! - [`discovery`]: PDS → protected-resource metadata → authorization server metadata (RFC 8414), validated
//!   against the atproto OAuth profile into an [`AuthorizationServer`].
//! - [`BlueskyProvider`] (registered as `bluesky`): Tether is a confidential client whose `client_id` is the
//!   URL of the client metadata document it serves under `public_url` (`/providers/bluesky/client-metadata.json`,
//!   with its JWKS next to it), authenticating with `private_key_jwt` (ES256) from the configured key ring; or,
//!   on `http://127.0.0.1`, the atproto development client `http://localhost?…`. Every authorization request is
//!   pushed (PAR) with PKCE S256 and a DPoP proof; the callback's `iss` must be the server the flow started at,
//!   the token answer's `sub` the account the user named (or, without a hint, an account whose PDS names that
//!   server). Each connection gets its own DPoP key, sealed with its tokens; refresh tokens rotate; revocation
//!   ends the session. Tokens are DPoP-bound: the token API refuses to hand them out (`token_bound`) and the
//!   proxy signs a proof for each request to the user's PDS, retrying once when the PDS asks for a new nonce.
//! - [`Error`]: one error enum, convertible to [`tether_core::Error`].
//!
//! Setup: see docs/providers/bluesky.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod client;
pub mod discovery;
pub mod dns;
mod error;
pub mod identity;
mod oauth;
mod provider;
mod resolver;

pub use client::{CLIENT_METADATA_DOCUMENT, DEFAULT_SERVER, JWKS_DOCUMENT, generate_client_key};
pub use discovery::AuthorizationServer;
pub use dns::{HickoryTxtLookup, TxtLookup};
pub use error::{Error, PROVIDER_ID};
pub use identity::{AtIdentifier, Did, DidDocument, DidMethod, Handle};
pub use provider::{BlueskyProvider, SPEC};
pub use resolver::{ResolvedIdentity, Resolver, ResolverConfig};

tether_core::register_provider!(BlueskyProvider::default());
