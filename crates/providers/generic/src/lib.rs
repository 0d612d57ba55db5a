//! The `generic` provider: any OAuth 2.0 / OpenID Connect server, configured entirely from the
//! configuration file, with no code.
//!
//! ```toml
//! [providers.keycloak]
//! kind = "generic"
//! display_name = "Company SSO"
//! client_id = "tether"
//! client_secret = "..."
//! authorize_url = "https://sso.example.com/realms/main/protocol/openid-connect/auth"
//! token_url = "https://sso.example.com/realms/main/protocol/openid-connect/token"
//! userinfo_url = "https://sso.example.com/realms/main/protocol/openid-connect/userinfo"
//! revoke_url = "https://sso.example.com/realms/main/protocol/openid-connect/revoke"
//! scopes = ["openid", "profile", "offline_access"]
//! client_auth = "basic"        # or "post"
//! pkce = true
//! account_id_field = "sub"
//! account_name_field = "preferred_username"
//! ```
//!
//! Every behaviour is the default of [`tether_core::Provider`]: authorization code with PKCE
//! S256, RFC 6749 token and refresh requests, RFC 7009 revocation, and the account read from the
//! userinfo endpoint.

use tether_core::{Provider, ProviderSpec};

/// The spec: no endpoints (configuration must give them), RFC defaults otherwise.
pub static SPEC: ProviderSpec = ProviderSpec {
    default_scopes: &["openid", "profile"],
    account_id_field: "sub",
    account_name_field: "preferred_username",
    ..ProviderSpec::oauth2("generic", "Generic OAuth 2.0 / OIDC")
};

/// A provider defined by configuration.
#[derive(Debug, Default)]
pub struct GenericProvider;

impl Provider for GenericProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

tether_core::register_provider!(GenericProvider);
