//! The engine: connect sessions, the authorization-code flow, and fresh tokens.

mod authorize;
mod cache_feed;
mod connect;
mod instances;
mod refresher;
mod token_cache;
mod tokens;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use authorize::{ApiRequest, api_url};
pub use connect::{
    AuthorizationRedirect, CallbackParams, CompletedFlow, ConnectSessionRequest, ConnectStep, CreatedConnectSession,
    LOGIN_HINT_MAX,
};
pub use refresher::RefresherSettings;
pub use tokens::{DisconnectOutcome, FreshToken};
pub use webhooks::DispatchReport;

use crate::{ConfiguredProvider, Error, Result, Store};

/// Engine settings (from configuration).
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// The URL browsers and providers reach this server at (redirect URIs, connect links).
    pub public_url: Url,
    /// How long a connect link works.
    pub connect_session_ttl: Duration,
    /// How long the user may take at the provider (state lifetime).
    pub flow_ttl: Duration,
    /// A served access token is valid for at least this long; refresh happens first otherwise.
    pub refresh_margin: Duration,
    /// How long a refresh lease is held before others may take over (crashed holder).
    pub lease_ttl: Duration,
    /// How long a caller waits for another holder's refresh before giving up.
    pub lease_wait: Duration,
    /// Allowed origins for `return_to` (`https://app.example.com`). Empty: any http(s) URL.
    pub allowed_return_origins: Vec<String>,
    /// Timeout of each call to a provider.
    pub provider_timeout: Duration,
    /// Webhook endpoints and delivery settings (none by default).
    pub webhooks: crate::WebhookSettings,
    /// How long a fresh token read from the database may be served again from memory without
    /// reading it, on that ground alone (zero: not at all). Disconnects wait this long after
    /// their commit before returning, so no replica serves a disconnected connection's token
    /// afterwards.
    pub token_cache_ttl: Duration,
    /// How long a cached token may be served while this process follows the change feed
    /// ([`Tether::run_token_cache_feed`]; zero: the feed is not used). Entries whose connection
    /// another replica changed are dropped at the next poll.
    pub token_cache_max_age: Duration,
    /// How often the change feed is polled. Cached tokens are served on the feed's ground only
    /// while its last poll started less than four intervals ago, and disconnects wait that long.
    pub token_cache_poll_interval: Duration,
    /// Connections whose token the cache holds at most.
    pub token_cache_capacity: usize,
}

impl EngineSettings {
    /// Defaults for a public URL: 15 min links, 10 min flows, 5 min margin.
    pub fn new(public_url: Url) -> Self {
        Self {
            public_url,
            connect_session_ttl: Duration::from_secs(15 * 60),
            flow_ttl: Duration::from_secs(10 * 60),
            refresh_margin: Duration::from_secs(5 * 60),
            lease_ttl: Duration::from_secs(30),
            lease_wait: Duration::from_secs(45),
            allowed_return_origins: Vec::new(),
            provider_timeout: Duration::from_secs(20),
            webhooks: crate::WebhookSettings::default(),
            token_cache_ttl: Duration::from_secs(2),
            token_cache_max_age: Duration::from_secs(60),
            token_cache_poll_interval: Duration::from_millis(250),
            token_cache_capacity: 100_000,
        }
    }
}

/// The Tether engine. Cheap to clone.
#[derive(Clone)]
pub struct Tether {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    providers: BTreeMap<String, ConfiguredProvider>,
    settings: EngineSettings,
    http: reqwest::Client,
    holder_id: String,
    flights: tokens::Flights,
    /// Recently read fresh tokens.
    token_cache: token_cache::TokenCache,
    /// Wakes the webhook dispatcher when this process records an event.
    webhook_wakeup: tokio::sync::Notify,
    /// Serialises client registrations per server in this process.
    registration_locks: instances::RegistrationLocks,
}

impl std::fmt::Debug for Tether {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tether")
            .field("providers", &self.inner.providers.keys().collect::<Vec<_>>())
            .field("public_url", &self.inner.settings.public_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Tether {
    /// Builds the engine over a store and the configured providers.
    pub fn new(store: Arc<dyn Store>, providers: Vec<ConfiguredProvider>, settings: EngineSettings) -> Result<Self> {
        settings.webhooks.validate()?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.provider_timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("tether/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        let mut by_id = BTreeMap::new();
        for p in providers {
            if let Some(dup) = by_id.insert(p.id.as_str().to_owned(), p) {
                return Err(Error::Config(format!("provider `{}` is configured twice", dup.id)));
            }
        }
        let token_cache = token_cache::TokenCache::new(token_cache::CacheSettings {
            ttl: settings.token_cache_ttl,
            max_age: settings.token_cache_max_age,
            poll_interval: settings.token_cache_poll_interval,
            capacity: settings.token_cache_capacity,
        });
        let holder_id = format!("{}-{}", std::process::id(), crate::random_token(9)?);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                providers: by_id,
                settings,
                http,
                holder_id,
                flights: tokens::Flights::default(),
                webhook_wakeup: tokio::sync::Notify::new(),
                token_cache,
                registration_locks: instances::RegistrationLocks::default(),
            }),
        })
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.inner.settings
    }

    /// The HTTP client used for provider calls.
    pub fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// Configured providers, sorted by id.
    pub fn providers(&self) -> impl Iterator<Item = &ConfiguredProvider> {
        self.inner.providers.values()
    }

    /// A configured provider by id.
    pub fn provider(&self, id: &str) -> Result<&ConfiguredProvider> {
        self.inner.providers.get(id).ok_or_else(|| {
            if crate::ProviderRegistry::collect().ok().is_some_and(|r| r.get(id).is_some()) {
                Error::ProviderNotConfigured(id.to_owned())
            } else {
                Error::UnknownProvider(id.chars().take(64).collect())
            }
        })
    }

    /// The JSON document `name` a configured provider publishes under
    /// `{public_url}/providers/{id}/{name}` ([`Provider::public_document`](crate::Provider::public_document)),
    /// e.g. Bluesky's client metadata and JWKS.
    pub fn provider_document(&self, id: &str, name: &str) -> Result<serde_json::Value> {
        let provider = self.provider(id)?;
        provider.public_document(&self.inner.http, name).unwrap_or_else(|| {
            Err(Error::NotFound {
                what: "provider document",
                id: format!("{id}/{}", name.chars().take(64).collect::<String>()),
            })
        })
    }
}
