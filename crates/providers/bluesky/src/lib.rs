//! Bluesky / AT Protocol: identity resolution and OAuth server discovery. **In progress (issue #11).**
//!
//! Signing in with Bluesky starts from what the user types, a handle (`alice.bsky.social`) or a DID, and
//! nothing is hard-coded: every account may live on its own PDS behind its own authorization server. This crate
//! does that first half:
//!
//! - [`identity`]: handle and DID syntax ([`Handle`], [`Did`], [`AtIdentifier`]) and DID documents
//!   ([`DidDocument`]: PDS endpoint and claimed handle).
//! - [`Resolver`]: handle → DID by DNS TXT `_atproto.<handle>` and `https://<handle>/.well-known/atproto-did`
//!   (both tried; disagreement is an error), DID → document (`did:plc` via the PLC directory, `did:web` via
//!   `/.well-known/did.json`), and the bidirectional handle check. No redirects, timeouts, body size limits;
//!   base URLs and the DNS server are configurable ([`ResolverConfig`]) so tests run on loopback.
//! - [`discovery`]: PDS → protected-resource metadata → authorization server metadata (RFC 8414), validated
//!   against the atproto OAuth profile into an [`AuthorizationServer`].
//! - [`Error`]: one error enum, convertible to [`tether_core::Error`].
//!
//! Still to come for #11: the provider itself (PAR with DPoP and server nonces, `private_key_jwt` client
//! assertions from the tether-core crypto, the client metadata document and JWKS served under `public_url`,
//! `iss` and `sub` checks on the callback and token response, single-use refresh tokens, revocation), its
//! registration and facade feature, a testkit mock and e2e tests. Until then this crate is not a registered
//! provider.

pub mod discovery;
pub mod dns;
mod error;
pub mod identity;
mod resolver;

pub use discovery::AuthorizationServer;
pub use dns::{HickoryTxtLookup, TxtLookup};
pub use error::{Error, PROVIDER_ID};
pub use identity::{AtIdentifier, Did, DidDocument, DidMethod, Handle};
pub use resolver::{ResolvedIdentity, Resolver, ResolverConfig};
