//! The `demo` provider: a fake provider served by the Tether server itself under `/demo`
//! (enabled by `tether serve --demo`), so a newcomer can click through a whole connect flow —
//! consent page, callback, token, refresh, revoke — without any provider account.
//!
//! Its endpoints are relative to the server's `public_url`; the server configures the client
//! id and a random client secret when it starts in demo mode.

use tether_core::{ClientAuth, PkceMode, Provider, ProviderSpec};

/// The spec: every endpoint lives on the Tether server itself.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "{public_url}/demo/authorize",
    token_url: "{public_url}/demo/token",
    userinfo_url: Some("{public_url}/demo/userinfo"),
    revoke_url: Some("{public_url}/demo/revoke"),
    api_base_url: Some("{public_url}/demo/"),
    default_scopes: &["profile", "posts.write"],
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Basic,
    account_id_field: "sub",
    account_name_field: "preferred_username",
    ..ProviderSpec::oauth2("demo", "Demo provider")
};

/// The demo provider (standard OAuth 2.0 behaviour, nothing to override).
#[derive(Debug, Default)]
pub struct DemoProvider;

impl Provider for DemoProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

tether_core::register_provider!(DemoProvider);
