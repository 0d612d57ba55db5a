//! Loopback mock OAuth 2.0 providers for testing Tether and third-party provider crates.
//!
//! [`MockProvider`] is a real authorization server: it checks PKCE S256, client
//! authentication, redirect URIs and single-use codes, issues expiring access tokens and
//! rotating refresh tokens, rejects a reused refresh token with `invalid_grant`, answers errors
//! in the provider's own format (RFC 6749 JSON, or GitHub's HTTP-200 errors), counts what it
//! sees and can be told to fail. Start it on a random loopback port with
//! [`MockProvider::start`], or mount it on your own actix `App` with
//! [`MockProvider::configure`] (the Tether server mounts it under `/demo` in demo mode).
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tether_testkit::{MockProvider, MockProviderConfig};
//! let mock = MockProvider::start(MockProviderConfig { auto_approve: Some("alice".into()), ..Default::default() }).await?;
//! let token_url = mock.url("token"); // http://127.0.0.1:PORT/token
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod routes;
mod state;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

use state::MockState;

/// Which client authentication the token and revoke endpoints accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockClientAuth {
    /// Only HTTP Basic.
    Basic,
    /// Only `client_id` / `client_secret` in the form body.
    Post,
    /// Either.
    Either,
}

/// PKCE policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockPkce {
    /// A S256 challenge is required.
    Required,
    /// Checked when sent.
    Optional,
    /// Ignored (like providers that do not know PKCE).
    Unsupported,
}

/// Response shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFlavor {
    /// RFC 6749 errors (HTTP 400/401 JSON), `/userinfo` with `sub`.
    Standard,
    /// GitHub: errors with HTTP 200, comma-separated scopes, `/user` with an integer `id`,
    /// `DELETE /applications/{client_id}/token` revocation.
    GitHub,
}

/// A failure to inject into `/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFailure {
    /// Answer this HTTP status with `{"error":"server_error"}`.
    Status(u16),
    /// Answer 429 with `Retry-After`.
    TooManyRequests {
        /// Seconds in the Retry-After header.
        retry_after_secs: u64,
    },
    /// Sleep this long, then answer normally.
    Hang(Duration),
    /// Answer `invalid_grant`.
    InvalidGrant,
}

/// How the mock behaves.
#[derive(Debug, Clone)]
pub struct MockProviderConfig {
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret.
    pub client_secret: String,
    /// Accepted client authentication.
    pub client_auth: MockClientAuth,
    /// PKCE policy.
    pub pkce: MockPkce,
    /// Access-token lifetime; `None`: no `expires_in`, tokens never expire.
    pub access_token_ttl: Option<Duration>,
    /// Whether refresh tokens are issued.
    pub issue_refresh_tokens: bool,
    /// Whether each refresh returns a new refresh token and kills the used one.
    pub rotate_refresh_tokens: bool,
    /// Response shapes.
    pub flavor: MockFlavor,
    /// `Some(login)`: `/authorize` approves at once as this user, without a consent page.
    pub auto_approve: Option<String>,
    /// Authorization-code lifetime.
    pub code_ttl: Duration,
}

impl Default for MockProviderConfig {
    fn default() -> Self {
        Self {
            client_id: "mock-client".into(),
            client_secret: "mock-secret".into(),
            client_auth: MockClientAuth::Either,
            pkce: MockPkce::Required,
            access_token_ttl: Some(Duration::from_secs(3600)),
            issue_refresh_tokens: true,
            rotate_refresh_tokens: true,
            flavor: MockFlavor::Standard,
            auto_approve: None,
            code_ttl: Duration::from_secs(60),
        }
    }
}

/// The mock authorization server's state. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct MockProvider {
    pub(crate) config: Arc<MockProviderConfig>,
    pub(crate) state: Arc<Mutex<MockState>>,
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider").field("client_id", &self.config.client_id).finish_non_exhaustive()
    }
}

impl MockProvider {
    /// A mock with this behaviour, not listening anywhere yet.
    pub fn new(config: MockProviderConfig) -> Self {
        Self { config: Arc::new(config), state: Arc::new(Mutex::new(MockState::default())) }
    }

    /// Starts a mock on `127.0.0.1` with a random port, serving in the background.
    pub async fn start(config: MockProviderConfig) -> std::io::Result<RunningMockProvider> {
        let provider = Self::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let mounted = provider.clone();
        let server = HttpServer::new(move || {
            let p = mounted.clone();
            App::new().configure(move |c| p.configure(c))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        let base_url = url::Url::parse(&format!("http://{addr}/"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        Ok(RunningMockProvider { provider, base_url, handle, task: Some(task) })
    }

    /// Registers the routes (relative paths: `authorize`, `token`, `userinfo`, `user`,
    /// `revoke`, `applications/{client_id}/token`, and an index page).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        routes::configure(cfg, self.clone());
    }

    fn with<T>(&self, f: impl FnOnce(&mut MockState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Successful refresh-token grants.
    pub fn refresh_count(&self) -> usize {
        self.with(|s| s.refresh_count)
    }
    /// All refresh-token grant requests, failed ones included.
    pub fn refresh_attempts(&self) -> usize {
        self.with(|s| s.refresh_attempts)
    }
    /// Successful authorization-code exchanges.
    pub fn code_exchanges(&self) -> usize {
        self.with(|s| s.code_exchanges)
    }
    /// Tokens passed to the revocation endpoint.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.with(|s| s.revoked.clone())
    }
    /// Requests answered `invalid_grant` (or GitHub's equivalents).
    pub fn invalid_grant_count(&self) -> usize {
        self.with(|s| s.invalid_grants)
    }
    /// Whether `token` is a live, unexpired access token.
    pub fn is_access_token_valid(&self, token: &str) -> bool {
        self.with(|s| s.access_valid(token))
    }
    /// Makes every `/token` request fail this way until cleared with `None`.
    pub fn set_token_failure(&self, failure: Option<MockFailure>) {
        self.with(|s| s.failure = failure);
    }
    /// Sleeps this long before answering refresh grants (widens race windows).
    pub fn set_refresh_delay(&self, delay: Duration) {
        self.with(|s| s.refresh_delay = delay);
    }
    /// The user removed the app: every refresh and access token dies.
    pub fn revoke_all_grants(&self) {
        self.with(|s| s.revoke_all());
    }
}

/// A mock listening on loopback. Derefs to [`MockProvider`].
#[derive(Debug)]
pub struct RunningMockProvider {
    /// The mock.
    pub provider: MockProvider,
    /// `http://127.0.0.1:PORT/`.
    pub base_url: url::Url,
    handle: ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningMockProvider {
    /// An absolute URL for a path relative to the mock (`url("token")`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningMockProvider {
    fn drop(&mut self) {
        if self.task.is_some() {
            let handle = self.handle.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { handle.stop(false).await });
            }
        }
    }
}

impl Deref for RunningMockProvider {
    type Target = MockProvider;
    fn deref(&self) -> &MockProvider {
        &self.provider
    }
}
