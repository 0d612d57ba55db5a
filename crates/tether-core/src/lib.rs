//! Tether core: the provider plugin point, the token engine and everything that must
//! not know about SQL or HTTP frameworks.
//!
//! - [`Provider`] and [`ProviderSpec`] describe an OAuth provider; crates register
//!   implementations with [`register_provider!`] and the [`ProviderRegistry`] finds them.
//! - [`Tether`] is the engine: connect sessions, the authorization-code flow with PKCE,
//!   and fresh access tokens.
//! - [`KeyRing`] seals every secret with authenticated encryption before it is stored.
//! - The store traits ([`ConnectionStore`], [`FlowStore`], [`EventStore`],
//!   [`WebhookStore`], [`ClientRegistrationStore`]) are implemented by `tether-store`.
//! - Per-instance providers (Mastodon: one provider, many servers) are described in
//!   [`InstanceMode`]; the user's server is an [`InstanceOrigin`].
//! - ES256 keys ([`EsKey`], [`PublicJwk`], [`JwkSet`]), DPoP proofs ([`dpop_proof`],
//!   [`verify_dpop_proof`], [`DpopNonces`]) and `private_key_jwt` client assertions
//!   ([`client_assertion`], [`verify_client_assertion`]): the base of AT Protocol OAuth.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod connection;
mod dpop;
mod engine;
mod error;
mod event;
mod flow;
mod ids;
mod instance;
mod jwk;
mod jwt;
pub mod oauth1;
pub mod oauth2_http;
mod provider;
mod random;
mod seal;
mod store;
mod token;
pub mod webhook;

pub use connection::{AccountIdentity, Connection, ConnectionFilter, ConnectionStatus, NewConnection};
pub use dpop::{
    DPOP_JWT_TYPE, DPOP_MAX_AGE_SECS, DPOP_MAX_FUTURE_SECS, DPOP_NONCE_HEADER, DpopNonces, VerifiedDpopProof, dpop_ath,
    dpop_htu, dpop_proof, is_use_dpop_nonce, verify_dpop_proof,
};
pub use engine::{
    ApiRequest, AuthorizationRedirect, CallbackParams, CompletedFlow, ConnectSessionRequest, ConnectStep,
    CreatedConnectSession, DisconnectOutcome, DispatchReport, EngineSettings, FreshToken, LOGIN_HINT_MAX,
    RefresherSettings, Tether, api_url,
};
pub use error::{Error, FlowError, ProviderErrorKind, Result};
pub use event::{Event, EventKind, NewEvent};
pub use flow::{AuthFlow, FlowStart, NewConnectSession, PendingConnectSession};
pub use ids::{ConnectionId, OwnerId, ProviderId};
pub use instance::{
    ClientRegistration, ClientRegistrationStore, INSTANCE_MAX, InstanceOrigin, InstancePolicy, RegisteredClient,
};
pub use jwk::{ES256, EsKey, JwkSet, PublicJwk};
pub use jwt::{
    CLIENT_ASSERTION_LIFETIME_SECS, CLIENT_ASSERTION_TYPE, CLOCK_SKEW_SECS, JoseError, VerifiedClientAssertion,
    client_assertion, verify_client_assertion,
};
pub use provider::{
    ApiAnswer, AuthorizationHeaders, AuthorizationRequest, AuthorizationResponse, AuthorizationStart, ClientAuth,
    ConfiguredProvider, InstanceMode, PkceMode, Protocol, Provider, ProviderConfig, ProviderContext,
    ProviderRegistration, ProviderRegistry, ProviderSettings, ProviderSpec, RevokeOutcome, get_json, parse_account,
};
pub use provider::{
    ProviderAnswer, REVOKE_RENEWAL_MARGIN, is_temporary_status, json_error_code, lenient_u64, printable,
    renew_if_expiring, send_request, send_revocation, userinfo_url,
};
pub use provider::{TokenErrorClassifier, authorization_code_form, current_refresh_token, request_tokens};
pub use random::{hash_secret, random_token, secure_eq};
pub use seal::{EncryptionKey, KeyRing, SealContext, SealedSecret};
pub use store::{ConnectionChange, ConnectionStore, EventStore, FlowStore, LeaseOutcome, Store, StoredTokens};
pub use token::TokenSet;
pub use webhook::{
    ClaimedDelivery, DeliveryFilter, DeliveryOutcome, DeliveryStatus, WebhookDelivery, WebhookEndpoint, WebhookPayload,
    WebhookSettings, WebhookStore,
};

/// Re-exported so provider crates need no direct dependency.
pub use async_trait::async_trait;
/// Re-exported for provider crates and library users that build requests and headers.
pub use http;
/// Re-exported for provider crates that make their own HTTP calls.
pub use reqwest;
/// Re-exported so configuration and provider crates use the same secret type.
pub use secrecy::{ExposeSecret, SecretString};
/// Re-exported for provider crates that parse provider JSON.
pub use serde_json;
pub use url::Url;

#[doc(hidden)]
pub use inventory as __inventory;

/// Registers a provider with the global [`ProviderRegistry`].
///
/// The argument is an expression that builds the provider; it is evaluated each time the
/// registry is built.
///
/// ```ignore
/// tether_core::register_provider!(GithubProvider);
/// ```
///
/// inventory only sees crates that are linked into the final binary: a crate that is a
/// dependency but never referenced is dropped by the linker, so the `tether` facade (or your
/// own binary) must reference each provider crate (`use tether_provider_x as _;`).
#[macro_export]
macro_rules! register_provider {
    ($provider:expr) => {
        $crate::__inventory::submit! {
            $crate::ProviderRegistration::new(|| ::std::sync::Arc::new($provider))
        }
    };
}
