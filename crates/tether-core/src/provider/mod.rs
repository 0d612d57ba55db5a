//! The provider plugin point: [`ProviderSpec`], the [`Provider`] trait and the registry.

mod config;
mod defaults;
mod http_helpers;
mod registry;
mod token_request;

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use url::Url;

pub use config::{ProviderConfig, ProviderSettings};
pub use http_helpers::{
    ProviderAnswer, REVOKE_RENEWAL_MARGIN, is_temporary_status, json_error_code, lenient_u64, printable,
    renew_if_expiring, send_request, send_revocation, userinfo_url,
};
pub use registry::{ConfiguredProvider, ProviderRegistration, ProviderRegistry};
pub use token_request::{TokenErrorClassifier, authorization_code_form, current_refresh_token, request_tokens};

use crate::{AccountIdentity, ProviderId, Result, TokenSet};

/// Whether and how a provider does PKCE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PkceMode {
    /// S256 challenge on every flow.
    S256,
    /// The provider does not support PKCE; none is sent.
    None,
}

/// The authorization protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Protocol {
    /// OAuth 2.0 authorization code (with PKCE where supported).
    OAuth2,
    /// OAuth 1.0a three-legged (request token, authorize, access token), HMAC-SHA1.
    OAuth1,
}

/// How the client authenticates at the token (and revoke) endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic `client_id:client_secret` (RFC 6749 `client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` in the form body (`client_secret_post`).
    Post,
    /// A signed client assertion (RFC 7523 `private_key_jwt`) made by the provider itself from
    /// its own key ring (Bluesky). Only providers that implement it can use it; the default
    /// token requests cannot.
    PrivateKeyJwt,
}

/// Whether a provider is one service or software that many independent servers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InstanceMode {
    /// One service at fixed endpoints (GitHub, LinkedIn, ...), or one self-hosted server set
    /// in configuration.
    Single,
    /// Every connection names its server (instance), e.g. Mastodon. Endpoint URLs start with
    /// `{instance}` and are rebased on the connection's server; the OAuth client is registered
    /// on each server dynamically ([`Provider::register_client`]) and stored, so no client id
    /// is configured. Each account id is qualified with the server host (`{id}@{host}`).
    PerInstance,
}

/// The static description of a provider. Every URL can be overridden from configuration;
/// `{public_url}` in a URL is replaced by the server's public URL.
#[derive(Debug, Clone, Copy)]
pub struct ProviderSpec {
    /// Stable id (`github`), also the configuration table name.
    pub id: &'static str,
    /// Name for people (`GitHub`).
    pub display_name: &'static str,
    /// OAuth 2.0 or OAuth 1.0a.
    pub protocol: Protocol,
    /// OAuth 1.0a temporary-credentials (request token) endpoint.
    pub request_token_url: Option<&'static str>,
    /// Authorization endpoint (empty when configuration must supply it).
    pub authorize_url: &'static str,
    /// Token endpoint (empty when configuration must supply it).
    pub token_url: &'static str,
    /// Endpoint that returns the account of the token's user.
    pub userinfo_url: Option<&'static str>,
    /// RFC 7009 (or provider-specific) revocation endpoint.
    pub revoke_url: Option<&'static str>,
    /// Base URL of the provider's API (for the proxy and helpers).
    pub api_base_url: Option<&'static str>,
    /// Scopes requested when neither the session nor configuration names any.
    pub default_scopes: &'static [&'static str],
    /// How scopes are joined in the authorization request (`" "` or `","`).
    pub scope_separator: &'static str,
    /// PKCE support.
    pub pkce: PkceMode,
    /// Client authentication at the token endpoint.
    pub client_auth: ClientAuth,
    /// Extra query parameters of the authorization request.
    pub extra_authorize_params: &'static [(&'static str, &'static str)],
    /// Extra form parameters of token requests.
    pub extra_token_params: &'static [(&'static str, &'static str)],
    /// Field of the userinfo JSON holding the stable account id (dots walk into objects: `data.id`).
    pub account_id_field: &'static str,
    /// Field of the userinfo JSON holding the display name.
    pub account_name_field: &'static str,
    /// Whether a client secret is required.
    pub requires_client_secret: bool,
    /// Whether a client id must be configured. `false` for providers that derive their client
    /// id (Bluesky: the URL of the client metadata document under `public_url`).
    pub requires_client_id: bool,
    /// What the connect page asks the user for when the connect session carries no
    /// `login_hint` (e.g. `Your Bluesky handle`); `None`: never asks. The user may leave it
    /// empty. The hint reaches the provider as [`AuthorizationRequest::login_hint`].
    pub login_hint_prompt: Option<&'static str>,
    /// One service, or many servers each registered dynamically.
    pub instances: InstanceMode,
}

impl ProviderSpec {
    /// A spec with the common RFC defaults; override fields with struct update syntax.
    pub const fn oauth2(id: &'static str, display_name: &'static str) -> Self {
        Self {
            id,
            display_name,
            protocol: Protocol::OAuth2,
            request_token_url: None,
            authorize_url: "",
            token_url: "",
            userinfo_url: None,
            revoke_url: None,
            api_base_url: None,
            default_scopes: &[],
            scope_separator: " ",
            pkce: PkceMode::S256,
            client_auth: ClientAuth::Basic,
            extra_authorize_params: &[],
            extra_token_params: &[],
            account_id_field: "sub",
            account_name_field: "name",
            requires_client_secret: true,
            requires_client_id: true,
            login_hint_prompt: None,
            instances: InstanceMode::Single,
        }
    }
}

impl ProviderSpec {
    /// A spec for an OAuth 1.0a provider: `token_url` is the access-token endpoint,
    /// `authorize_url` the page the user is sent to, `revoke_url` an optional signed
    /// invalidation endpoint.
    pub const fn oauth1(id: &'static str, display_name: &'static str) -> Self {
        Self { protocol: Protocol::OAuth1, pkce: PkceMode::None, default_scopes: &[], ..Self::oauth2(id, display_name) }
    }
}

/// Everything a provider method needs at run time.
#[derive(Clone, Copy)]
pub struct ProviderContext<'a> {
    /// The configured provider id (for a generic provider, its table name).
    pub id: &'a ProviderId,
    /// Resolved settings (endpoints, credentials, modes).
    pub settings: &'a ProviderSettings,
    /// HTTP client (no redirects followed, timeouts set).
    pub http: &'a reqwest::Client,
    /// The redirect URI registered at the provider.
    pub redirect_uri: &'a Url,
}

impl fmt::Debug for ProviderContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderContext").field("id", self.id).field("redirect_uri", self.redirect_uri).finish()
    }
}

/// The parameters of an authorization request.
#[derive(Debug)]
pub struct AuthorizationRequest<'a> {
    /// The `state` value.
    pub state: &'a str,
    /// Scopes to request.
    pub scopes: &'a [String],
    /// PKCE verifier, when the provider does PKCE (the provider derives the challenge).
    pub pkce_verifier: Option<&'a SecretString>,
    /// Who the user says they are (a handle, an e-mail), from the connect session or the
    /// connect page; providers that take a hint pass it on (`login_hint`).
    pub login_hint: Option<&'a str>,
}

/// Where to send the browser, and the secret the flow keeps (sealed) until the callback.
#[derive(Debug)]
pub struct AuthorizationStart {
    /// The provider's authorization URL.
    pub url: Url,
    /// Sealed with the flow and handed back to
    /// [`Provider::finish_authorization`]: by default the PKCE verifier; a provider may keep
    /// more (e.g. a DPoP key and the authorization server it talked to).
    pub flow_secret: Option<SecretString>,
}

/// What the provider sent back to the callback, besides `state`.
#[derive(Debug, Clone, Copy)]
pub struct AuthorizationResponse<'a> {
    /// The authorization code.
    pub code: &'a str,
    /// The `iss` parameter (RFC 9207), when the provider sent one.
    pub issuer: Option<&'a str>,
}

/// What to do after the provider's API answered a request made with a connection's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ApiAnswer {
    /// Pass the answer on (a 401 still leads to one forced refresh and retry).
    Done,
    /// Send the same request again once with fresh credentials from
    /// [`Provider::authorize_api_request`] (e.g. a DPoP proof with the nonce the server just
    /// named), without refreshing the token.
    RetryWithFreshProof,
}

/// The headers that authorize one API request with a connection's token.
pub type AuthorizationHeaders = Vec<(&'static str, String)>;

/// What a revoke call achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevokeOutcome {
    /// The provider confirmed the revocation.
    Revoked,
    /// The provider has no revocation endpoint.
    NotSupported,
}

/// An OAuth provider. Every method has a default driven by the [`ProviderSpec`] and the
/// resolved [`ProviderSettings`]; a provider overrides only its quirks.
///
/// Implementations are registered with [`register_provider!`](crate::register_provider).
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The static description.
    fn spec(&self) -> &'static ProviderSpec;

    /// Checks the provider's own settings when the server starts (e.g. keys and modes in
    /// `settings.extra`) for the provider configured as `id` with `redirect_uri`, so a
    /// misconfiguration fails at start with a message naming the setting rather than at the
    /// first connect. No HTTP client is needed (none is built at start for it). The default
    /// accepts everything.
    fn check_settings(&self, id: &ProviderId, settings: &ProviderSettings, redirect_uri: &Url) -> Result<()> {
        let _ = (id, settings, redirect_uri);
        Ok(())
    }

    /// Builds the URL the browser is sent to.
    fn authorization_url(&self, ctx: &ProviderContext<'_>, request: &AuthorizationRequest<'_>) -> Result<Url> {
        defaults::authorization_url(ctx, request)
    }

    /// Starts an authorization: where to send the browser and what the flow keeps until the
    /// callback. The default builds [`authorization_url`](Self::authorization_url) and keeps
    /// the PKCE verifier. Providers that must talk to a server first (pushed authorization
    /// requests, discovery) override it.
    async fn start_authorization(
        &self,
        ctx: &ProviderContext<'_>,
        request: &AuthorizationRequest<'_>,
    ) -> Result<AuthorizationStart> {
        Ok(AuthorizationStart {
            url: self.authorization_url(ctx, request)?,
            flow_secret: request.pkce_verifier.cloned(),
        })
    }

    /// Finishes an authorization at the callback with the flow's secret from
    /// [`start_authorization`](Self::start_authorization). The default exchanges the code
    /// with the PKCE verifier ([`exchange_code`](Self::exchange_code)).
    async fn finish_authorization(
        &self,
        ctx: &ProviderContext<'_>,
        response: &AuthorizationResponse<'_>,
        flow_secret: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let verifier = flow_secret.filter(|_| ctx.settings.pkce == PkceMode::S256);
        self.exchange_code(ctx, response.code, verifier).await
    }

    /// Exchanges an authorization code for tokens.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        defaults::exchange_code(ctx, code, pkce_verifier).await
    }

    /// Renews the tokens. The default uses the refresh token (RFC 6749 section 6) and keeps
    /// the old refresh token when the provider does not send a new one.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        defaults::refresh(ctx, current).await
    }

    /// Whether tokens like these can be renewed without the user.
    fn can_refresh(&self, tokens: &TokenSet) -> bool {
        tokens.refresh_token.is_some()
    }

    /// Per-instance providers ([`InstanceMode::PerInstance`]): registers an OAuth client on the
    /// server `instance` for `ctx.redirect_uri` and the configured scopes
    /// (`ctx.settings.scopes`). The engine calls it once per (provider, server, redirect URI)
    /// and stores the result. `ctx.settings` are the configured settings, not rebased on any
    /// server. The default fails: the provider has no dynamic registration.
    async fn register_client(
        &self,
        ctx: &ProviderContext<'_>,
        instance: &crate::InstanceOrigin,
    ) -> Result<crate::RegisteredClient> {
        let _ = instance;
        Err(crate::Error::provider(
            ctx.id.as_str(),
            crate::ProviderErrorKind::Unsupported,
            "this provider cannot register clients dynamically",
        ))
    }

    /// Headers the provider's API wants on every call besides the token (Twitch's `Client-Id`,
    /// Notion's `Notion-Version`). The proxy adds them to forwarded requests that do not carry
    /// them already. The default is none.
    fn api_headers(&self, ctx: &ProviderContext<'_>) -> Vec<(&'static str, String)> {
        let _ = ctx;
        Vec::new()
    }

    /// The base URL of the provider's API for a connection with these tokens (the proxy joins
    /// paths to it). The default is the configured `api_base_url`; a provider whose users live
    /// on different servers (Bluesky: each account's PDS) answers per connection.
    fn api_base_url(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Option<Url> {
        let _ = tokens;
        ctx.settings.api_base_url.clone()
    }

    /// The headers that authorize `method url` with `tokens` (valid for at least the refresh
    /// margin). The default is `Authorization: Bearer <access token>`; a provider with
    /// sender-constrained tokens adds its proof (DPoP).
    fn authorize_api_request(
        &self,
        ctx: &ProviderContext<'_>,
        tokens: &TokenSet,
        method: &str,
        url: &Url,
    ) -> Result<AuthorizationHeaders> {
        let _ = (ctx, method, url);
        Ok(vec![("Authorization", format!("Bearer {}", secrecy::ExposeSecret::expose_secret(&tokens.access_token)))])
    }

    /// Looks at the API's answer to a request authorized by
    /// [`authorize_api_request`](Self::authorize_api_request) (e.g. to remember a DPoP nonce)
    /// and says whether to send it again at once. The default passes every answer on.
    fn api_answer(&self, ctx: &ProviderContext<'_>, url: &Url, status: u16, headers: &http::HeaderMap) -> ApiAnswer {
        let _ = (ctx, url, status, headers);
        ApiAnswer::Done
    }

    /// A JSON document the provider publishes under
    /// `{public_url}/providers/{id}/{name}` (Bluesky: its client metadata and JWKS); `None`
    /// when it has no document of that name.
    fn public_document(&self, ctx: &ProviderContext<'_>, name: &str) -> Option<Result<serde_json::Value>> {
        let _ = (ctx, name);
        None
    }

    /// Finds out which account the tokens belong to. For a per-instance provider, return the
    /// server-local id: the engine appends `@{host}` so ids are unique across servers
    /// (`ctx.settings.instance` names the server, e.g. for a display name like `@alice@host`).
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        defaults::fetch_account(ctx, tokens).await
    }

    /// Revokes the grant at the provider (RFC 7009 by default; for OAuth 1.0a a signed POST to
    /// `revoke_url`).
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        match self.spec().protocol {
            Protocol::OAuth1 => crate::oauth1::revoke(ctx, tokens).await,
            _ => defaults::revoke(ctx, tokens).await,
        }
    }

    /// OAuth 1.0a step 1: temporary credentials (request token) with our callback.
    async fn oauth1_request_token(&self, ctx: &ProviderContext<'_>) -> Result<crate::oauth1::TemporaryCredentials> {
        crate::oauth1::request_token(ctx).await
    }

    /// OAuth 1.0a step 2: where to send the browser for a request token.
    fn oauth1_authorize_url(&self, ctx: &ProviderContext<'_>, request_token: &str) -> Result<Url> {
        let mut url = ctx.settings.authorize_url.clone();
        url.query_pairs_mut().append_pair("oauth_token", request_token);
        Ok(url)
    }

    /// OAuth 1.0a step 3: exchanges the verifier for the token and its secret. Non-secret
    /// fields of the answer (e.g. `user_id`, `screen_name`) land in [`TokenSet::extra`].
    async fn oauth1_access_token(
        &self,
        ctx: &ProviderContext<'_>,
        request_token: &str,
        request_secret: &SecretString,
        verifier: &str,
    ) -> Result<TokenSet> {
        crate::oauth1::access_token(ctx, request_token, request_secret, verifier).await
    }
}

impl fmt::Debug for dyn Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Provider({})", self.spec().id)
    }
}

/// Shared handle to a provider implementation.
pub(crate) type SharedProvider = Arc<dyn Provider>;

pub use defaults::{get_json, parse_account};
