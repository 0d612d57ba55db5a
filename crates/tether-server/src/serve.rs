//! Wiring: store, providers, engine, HTTP server, background refresher and webhook dispatcher.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, dev::ServerHandle};
use anyhow::Context;
use tether_core::{ProviderRegistry, Tether, Url};
use tether_store::SeaStore;
use tether_web::{ApiKeys, WebState};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::Config;
use crate::config::redact_url;

// The facade links every built-in provider so inventory sees them.
use tether as _;

/// `/readyz`: the database answers and every migration is applied.
struct StoreReadiness(SeaStore);

#[async_trait::async_trait]
impl tether_web::Readiness for StoreReadiness {
    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| format!("database unreachable: {e}"))?;
        let pending = self.0.pending_migrations().await.map_err(|e| format!("cannot read migrations: {e}"))?;
        if pending.is_empty() { Ok(()) } else { Err(format!("{} migration(s) pending", pending.len())) }
    }
}

/// Options of `tether serve` that are not configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions {
    /// Enable the demo provider (and generate missing secrets).
    pub demo: bool,
    /// HTTP worker threads (default: number of CPUs).
    pub workers: Option<usize>,
}

/// A running server. `Debug` hides the generated demo credentials.
pub struct RunningServer {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// The public URL.
    pub public_url: Url,
    /// The engine (for in-process use and tests).
    pub engine: Tether,
    /// The API key demo mode generated, to show the user.
    pub demo_api_key: Option<String>,
    /// The admin password demo mode generated (no `[admin]` authentication configured), to
    /// show the user.
    pub demo_admin_password: Option<String>,
    handle: ServerHandle,
    server: JoinHandle<std::io::Result<()>>,
    /// Background tasks (refresher, webhook dispatcher) and their shutdown signals.
    background: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("local_addr", &self.local_addr)
            .field("public_url", &self.public_url.as_str())
            .field("engine", &self.engine)
            .field("demo_api_key", &self.demo_api_key.as_ref().map(|_| "[redacted]"))
            .field("demo_admin_password", &self.demo_admin_password.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// Stops gracefully.
    pub async fn stop(self) {
        stop_background(self.background).await;
        self.handle.stop(true).await;
        let _ = self.server.await;
    }

    /// Runs until the server stops (Ctrl-C / SIGTERM are handled by actix).
    pub async fn wait(self) -> anyhow::Result<()> {
        let result = self.server.await.context("server task failed")?;
        stop_background(self.background).await;
        result.context("server failed")
    }
}

async fn stop_background(tasks: Vec<(oneshot::Sender<()>, JoinHandle<()>)>) {
    for (tx, task) in tasks {
        let _ = tx.send(());
        let _ = task.await;
    }
}

/// Spawns a background task that runs until its shutdown signal.
fn spawn_background<F, Fut>(run: F) -> (oneshot::Sender<()>, JoinHandle<()>)
where
    F: FnOnce(oneshot::Receiver<()>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = oneshot::channel::<()>();
    (tx, tokio::spawn(run(rx)))
}

/// Connects to the database (creating a SQLite file when needed) and runs migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<SeaStore> {
    let keys = config.key_ring()?;
    let mut options = tether_store::StoreOptions::default();
    if let Some(n) = config.database_pool_size {
        options = options.max_connections(n);
    }
    let store = SeaStore::connect_with(&config.database_url, keys, options)
        .await
        .map_err(|e| anyhow::anyhow!("database {}: {e}", redact_url(&config.database_url)))?;
    store.migrate().await.map_err(|e| anyhow::anyhow!("migrations failed: {e}"))?;
    Ok(store)
}

/// Builds the engine over an open store.
pub fn build_engine(config: &Config, store: SeaStore, public_url: Url) -> anyhow::Result<Tether> {
    let registry = ProviderRegistry::collect()?;
    let providers = registry.configure(&config.providers, &public_url)?;
    Ok(Tether::new(Arc::new(store), providers, config.engine_settings(public_url)?)?)
}

/// Binds, migrates and starts serving in the background.
pub async fn start(mut config: Config, options: ServeOptions) -> anyhow::Result<RunningServer> {
    let (demo, generated) = if options.demo {
        let (mock, generated) = crate::demo::enable(&mut config)?;
        (Some(mock), generated)
    } else {
        (None, crate::demo::DemoCredentials::default())
    };
    let api_keys = ApiKeys::from_entries(config.api_keys()?);
    config.key_ring()?;
    config.check_timing()?;
    let admin = config.admin_settings()?;
    let listener =
        std::net::TcpListener::bind(&config.bind).with_context(|| format!("cannot listen on {}", config.bind))?;
    let local_addr = listener.local_addr()?;
    let public_url = config.public_url(local_addr)?;
    let store = open_store(&config).await?;
    let readiness: Arc<dyn tether_web::Readiness> = Arc::new(StoreReadiness(store.clone()));
    let engine = build_engine(&config, store, public_url.clone())?;
    tether_web::metrics_handle();
    let state = WebState { engine: engine.clone(), api_keys, demo, readiness: Some(readiness), admin };
    let mut server = HttpServer::new(move || {
        App::new().wrap(tether_web::request_logger()).configure(|c| tether_web::configure(c, &state))
    })
    .listen(listener)?
    .shutdown_timeout(10);
    if let Some(w) = options.workers {
        server = server.workers(w.max(1));
    }
    let server = server.run();
    let handle = server.handle();
    let server = tokio::spawn(server);
    let mut background = Vec::new();
    if config.refresher.enabled {
        let settings = config.refresher_settings();
        let engine = engine.clone();
        background.push(spawn_background(|rx| async move {
            engine
                .run_refresher(settings, async {
                    let _ = rx.await;
                })
                .await;
        }));
    }
    {
        let engine = engine.clone();
        background.push(spawn_background(|rx| async move {
            engine
                .run_token_cache_feed(async {
                    let _ = rx.await;
                })
                .await;
        }));
    }
    if config.webhook_delivery.enabled && !config.webhooks.is_empty() {
        let engine = engine.clone();
        background.push(spawn_background(|rx| async move {
            engine
                .run_webhook_dispatcher(async {
                    let _ = rx.await;
                })
                .await;
        }));
    }
    tracing::info!(addr = %local_addr, public_url = %public_url, "tether is serving");
    Ok(RunningServer {
        local_addr,
        public_url,
        engine,
        demo_api_key: generated.api_key,
        demo_admin_password: generated.admin_password,
        handle,
        server,
        background,
    })
}
