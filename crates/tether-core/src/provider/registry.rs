//! The registry of compiled-in providers, and configured provider instances.

use std::collections::BTreeMap;
use std::sync::Arc;

use secrecy::SecretString;
use url::Url;

use super::{
    ApiAnswer, AuthorizationHeaders, AuthorizationRequest, AuthorizationResponse, AuthorizationStart, Provider,
    ProviderContext, ProviderSettings, RevokeOutcome, SharedProvider,
};
use crate::{AccountIdentity, Error, ProviderConfig, ProviderId, Result, TokenSet};

/// One provider submitted with [`register_provider!`](crate::register_provider).
pub struct ProviderRegistration {
    factory: fn() -> Arc<dyn Provider>,
}

impl ProviderRegistration {
    /// Wraps a factory. Used by the registration macro.
    pub const fn new(factory: fn() -> Arc<dyn Provider>) -> Self {
        Self { factory }
    }
}

inventory::collect!(ProviderRegistration);

/// All compiled-in providers, by id.
#[derive(Clone)]
pub struct ProviderRegistry {
    providers: BTreeMap<&'static str, SharedProvider>,
}

impl std::fmt::Debug for ProviderRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.providers.keys()).finish()
    }
}

impl ProviderRegistry {
    /// Collects every registered provider linked into this binary.
    ///
    /// Fails when two providers claim the same id.
    pub fn collect() -> Result<Self> {
        let mut providers = BTreeMap::new();
        for registration in inventory::iter::<ProviderRegistration> {
            let provider = (registration.factory)();
            let id = provider.spec().id;
            if providers.insert(id, provider).is_some() {
                return Err(Error::Config(format!("two compiled-in providers use the id `{id}`")));
            }
        }
        Ok(Self { providers })
    }

    /// Looks a provider up by id.
    pub fn get(&self, id: &str) -> Option<&SharedProvider> {
        self.providers.get(id)
    }

    /// Every provider, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &SharedProvider> {
        self.providers.values()
    }

    /// Builds the configured provider instances from `[providers.*]` tables.
    ///
    /// A table is matched to the provider named by its `kind`, or else by its own name.
    pub fn configure(
        &self,
        configs: &BTreeMap<String, ProviderConfig>,
        public_url: &Url,
    ) -> Result<Vec<ConfiguredProvider>> {
        configs.iter().map(|(id, cfg)| self.configure_one(id, cfg, public_url)).collect()
    }

    /// Builds one configured provider.
    pub fn configure_one(&self, id: &str, config: &ProviderConfig, public_url: &Url) -> Result<ConfiguredProvider> {
        let pid = ProviderId::parse(id).map_err(|e| Error::Config(format!("[providers.{id}]: {e}")))?;
        let kind = config.kind.as_deref().unwrap_or(id);
        let provider = self.get(kind).ok_or_else(|| {
            let known: Vec<_> = self.providers.keys().copied().collect();
            Error::Config(format!(
                "[providers.{id}]: no compiled-in provider `{kind}` (known: {}; use kind = \"generic\" for any other OAuth2 server)",
                known.join(", ")
            ))
        })?;
        let settings = ProviderSettings::resolve(id, provider.spec(), config, public_url)?;
        if settings.instances.is_some() && provider.spec().protocol != super::Protocol::OAuth2 {
            return Err(Error::Config(format!("[providers.{id}]: per-instance providers must use OAuth 2.0")));
        }
        let redirect_uri = Url::parse(&format!("{}/callback/{id}", public_url.as_str().trim_end_matches('/')))
            .map_err(|e| Error::Config(format!("public_url does not make a valid redirect URI: {e}")))?;
        provider.check_settings(&pid, &settings, &redirect_uri)?;
        Ok(ConfiguredProvider { id: pid, provider: provider.clone(), settings, redirect_uri })
    }
}

/// A provider with its configuration: what the engine calls.
#[derive(Clone, Debug)]
pub struct ConfiguredProvider {
    /// The configured id (table name).
    pub id: ProviderId,
    /// The implementation.
    pub provider: Arc<dyn Provider>,
    /// Resolved settings.
    pub settings: ProviderSettings,
    /// `{public_url}/callback/{id}`, to register at the provider.
    pub redirect_uri: Url,
}

impl ConfiguredProvider {
    fn ctx<'a>(&'a self, http: &'a reqwest::Client) -> ProviderContext<'a> {
        ProviderContext { id: &self.id, settings: &self.settings, http, redirect_uri: &self.redirect_uri }
    }

    /// See [`Provider::authorization_url`].
    pub fn authorization_url(&self, http: &reqwest::Client, request: &AuthorizationRequest<'_>) -> Result<Url> {
        self.provider.authorization_url(&self.ctx(http), request)
    }

    /// See [`Provider::start_authorization`].
    pub async fn start_authorization(
        &self,
        http: &reqwest::Client,
        request: &AuthorizationRequest<'_>,
    ) -> Result<AuthorizationStart> {
        self.provider.start_authorization(&self.ctx(http), request).await
    }

    /// See [`Provider::finish_authorization`].
    pub async fn finish_authorization(
        &self,
        http: &reqwest::Client,
        response: &AuthorizationResponse<'_>,
        flow_secret: Option<&SecretString>,
    ) -> Result<TokenSet> {
        self.provider.finish_authorization(&self.ctx(http), response, flow_secret).await
    }

    /// See [`Provider::api_base_url`].
    pub fn api_base_url(&self, http: &reqwest::Client, tokens: &TokenSet) -> Option<Url> {
        self.provider.api_base_url(&self.ctx(http), tokens)
    }

    /// See [`Provider::authorize_api_request`].
    pub fn authorize_api_request(
        &self,
        http: &reqwest::Client,
        tokens: &TokenSet,
        method: &str,
        url: &Url,
    ) -> Result<AuthorizationHeaders> {
        self.provider.authorize_api_request(&self.ctx(http), tokens, method, url)
    }

    /// See [`Provider::api_answer`].
    pub fn api_answer(&self, http: &reqwest::Client, url: &Url, status: u16, headers: &http::HeaderMap) -> ApiAnswer {
        self.provider.api_answer(&self.ctx(http), url, status, headers)
    }

    /// See [`Provider::public_document`].
    pub fn public_document(&self, http: &reqwest::Client, name: &str) -> Option<Result<serde_json::Value>> {
        self.provider.public_document(&self.ctx(http), name)
    }

    /// Whether the connect flow takes a login hint
    /// ([`ProviderSpec::login_hint_prompt`](super::ProviderSpec::login_hint_prompt)).
    pub fn takes_login_hint(&self) -> bool {
        self.provider.spec().login_hint_prompt.is_some()
    }

    /// Whether every connection names its server ([`InstanceMode::PerInstance`](super::InstanceMode)).
    pub fn is_per_instance(&self) -> bool {
        self.settings.instances.is_some()
    }

    /// See [`Provider::register_client`].
    pub async fn register_client(
        &self,
        http: &reqwest::Client,
        instance: &crate::InstanceOrigin,
    ) -> Result<crate::RegisteredClient> {
        self.provider.register_client(&self.ctx(http), instance).await
    }

    /// This provider on the server of `registration`, with its client.
    pub fn at_instance(&self, registration: &crate::ClientRegistration) -> Result<ConfiguredProvider> {
        Ok(ConfiguredProvider {
            id: self.id.clone(),
            provider: self.provider.clone(),
            settings: self.settings.at_instance(registration)?,
            redirect_uri: self.redirect_uri.clone(),
        })
    }

    /// See [`Provider::exchange_code`].
    pub async fn exchange_code(
        &self,
        http: &reqwest::Client,
        code: &str,
        verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        self.provider.exchange_code(&self.ctx(http), code, verifier).await
    }

    /// See [`Provider::refresh`].
    pub async fn refresh(&self, http: &reqwest::Client, current: &TokenSet) -> Result<TokenSet> {
        self.provider.refresh(&self.ctx(http), current).await
    }

    /// See [`Provider::fetch_account`].
    pub async fn fetch_account(&self, http: &reqwest::Client, tokens: &TokenSet) -> Result<AccountIdentity> {
        self.provider.fetch_account(&self.ctx(http), tokens).await
    }

    /// See [`Provider::oauth1_request_token`].
    pub async fn oauth1_request_token(&self, http: &reqwest::Client) -> Result<crate::oauth1::TemporaryCredentials> {
        self.provider.oauth1_request_token(&self.ctx(http)).await
    }

    /// See [`Provider::oauth1_authorize_url`].
    pub fn oauth1_authorize_url(&self, http: &reqwest::Client, request_token: &str) -> Result<Url> {
        self.provider.oauth1_authorize_url(&self.ctx(http), request_token)
    }

    /// See [`Provider::oauth1_access_token`].
    pub async fn oauth1_access_token(
        &self,
        http: &reqwest::Client,
        request_token: &str,
        request_secret: &SecretString,
        verifier: &str,
    ) -> Result<TokenSet> {
        self.provider.oauth1_access_token(&self.ctx(http), request_token, request_secret, verifier).await
    }

    /// The protocol the provider speaks.
    pub fn protocol(&self) -> super::Protocol {
        self.provider.spec().protocol
    }

    /// See [`Provider::revoke`].
    pub async fn revoke(&self, http: &reqwest::Client, tokens: &TokenSet) -> Result<RevokeOutcome> {
        self.provider.revoke(&self.ctx(http), tokens).await
    }
}
