//! Twitter / X, two providers in one crate:
//!
//! - `twitter`: OAuth 2.0 authorization code with PKCE S256, a confidential client
//!   authenticating with HTTP Basic, `offline.access` for a refresh token, 2-hour access
//!   tokens and **rotating** refresh tokens (single flight in the engine keeps them safe),
//!   RFC 7009 revocation, the account from `/2/users/me` (`data.id`, `data.username`).
//! - `twitter_oauth1`: OAuth 1.0a three-legged (request token → authorize → access token with
//!   the verifier), HMAC-SHA1, tokens that never expire; still needed for v1.1 media upload and
//!   apps on OAuth 1.0a. The access-token answer names the account (`user_id`,
//!   `screen_name`); revocation is the signed `POST /1.1/oauth/invalidate_token`.
//!
//! Setup: docs/providers/twitter.md.

use tether_core::{ClientAuth, PkceMode, Provider, ProviderSpec};

/// Twitter / X with OAuth 2.0.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://x.com/i/oauth2/authorize",
    token_url: "https://api.x.com/2/oauth2/token",
    userinfo_url: Some("https://api.x.com/2/users/me"),
    revoke_url: Some("https://api.x.com/2/oauth2/revoke"),
    api_base_url: Some("https://api.x.com/"),
    default_scopes: &["tweet.read", "tweet.write", "users.read", "offline.access"],
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Basic,
    account_id_field: "data.id",
    account_name_field: "data.username",
    ..ProviderSpec::oauth2("twitter", "X (Twitter)")
};

/// Twitter / X with OAuth 1.0a.
pub static OAUTH1_SPEC: ProviderSpec = ProviderSpec {
    request_token_url: Some("https://api.x.com/oauth/request_token"),
    authorize_url: "https://api.x.com/oauth/authorize",
    token_url: "https://api.x.com/oauth/access_token",
    revoke_url: Some("https://api.x.com/1.1/oauth/invalidate_token"),
    api_base_url: Some("https://api.x.com/"),
    account_id_field: "user_id",
    account_name_field: "screen_name",
    ..ProviderSpec::oauth1("twitter_oauth1", "X (Twitter) OAuth 1.0a")
};

/// The OAuth 2.0 provider (all behaviour is the RFC default driven by [`SPEC`]).
#[derive(Debug, Default)]
pub struct TwitterProvider;

impl Provider for TwitterProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

/// The OAuth 1.0a provider (the core's RFC 5849 defaults driven by [`OAUTH1_SPEC`]).
#[derive(Debug, Default)]
pub struct TwitterOAuth1Provider;

impl Provider for TwitterOAuth1Provider {
    fn spec(&self) -> &'static ProviderSpec {
        &OAUTH1_SPEC
    }
}

tether_core::register_provider!(TwitterProvider);
tether_core::register_provider!(TwitterOAuth1Provider);
