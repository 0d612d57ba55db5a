//! The `tether` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tether_core::{ConnectionFilter, ConnectionId, EncryptionKey, ExposeSecret, OwnerId, ProviderId, ProviderRegistry};
use tether_server::{Config, ServeOptions};

use tether as _;

/// Tether: keeps your application connected to its users' accounts on other platforms.
#[derive(Parser)]
#[command(name = "tether", version, about)]
struct Cli {
    /// Configuration file (default: ./tether.toml when present).
    #[arg(long, global = true, env = "TETHER_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the server (migrations run first).
    Serve {
        /// Listen address (overrides `bind`).
        #[arg(long)]
        bind: Option<String>,
        /// Database URL (overrides `database_url`).
        #[arg(long)]
        database_url: Option<String>,
        /// Enable the demo provider, generating missing secrets into tether-demo-secrets.toml.
        #[arg(long)]
        demo: bool,
    },
    /// Runs database migrations.
    Migrate {
        /// Database URL (overrides `database_url`).
        #[arg(long)]
        database_url: Option<String>,
    },
    /// Validates configuration, database and providers.
    Check,
    /// Lists the compiled-in providers.
    Providers {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Encryption keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Prints a fresh access token of a connection (refreshing first if needed).
    Token {
        /// Connection id.
        id: String,
    },
    /// Forces a refresh of a connection.
    Refresh {
        /// Connection id.
        id: String,
    },
    /// Revokes a connection at its provider and deletes its secrets.
    Disconnect {
        /// Connection id.
        id: String,
    },
    /// Connections.
    Connections {
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// The admin pages.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Reads the admin password from standard input (one line) and prints its argon2 hash for
    /// `[admin] password_hash`.
    HashPassword,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Prints a new encryption key (`<id>:<base64>`) for `encryption_keys`.
    Generate,
    /// Re-seals every stored secret under the first key of `encryption_keys` (safe while
    /// servers run, once every replica has the new key first); older keys can then be removed.
    Rotate,
    /// Reads an API key from standard input and prints `sha256:<hex>` for `api_keys`.
    HashApiKey,
    /// Prints a new ES256 private key (a JWK with a `kid`) for `providers.bluesky.client_keys`:
    /// the key Tether signs its Bluesky client assertions with. Keep it secret.
    BlueskyClientKey,
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Lists connections.
    List {
        /// Only this owner.
        #[arg(long)]
        owner: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == Some("json") { builder.json().init() } else { builder.init() }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Providers { json } => return providers(json),
        Command::Keys { command: KeysCommand::Generate } => {
            println!("{}", EncryptionKey::generate()?);
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keys { command: KeysCommand::BlueskyClientKey } => {
            let key = tether::bluesky::generate_client_key()?;
            println!("{}", key.expose_secret());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Keys { command: KeysCommand::HashApiKey } => {
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = key.trim();
            if key.len() < 24 {
                anyhow::bail!("the API key must be at least 24 characters");
            }
            println!("sha256:{}", tether_core::hash_secret(key));
            return Ok(ExitCode::SUCCESS);
        }
        Command::Admin { command: AdminCommand::HashPassword } => {
            use std::io::IsTerminal;
            if std::io::stdin().is_terminal() {
                eprintln!("Type the admin password, then Enter (it is echoed; pipe it in to avoid that):");
            }
            let mut password = String::new();
            std::io::stdin().read_line(&mut password)?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.chars().count() < 12 {
                anyhow::bail!("the admin password must be at least 12 characters");
            }
            if password.len() > 1024 {
                anyhow::bail!("the admin password must be at most 1024 bytes");
            }
            println!("{}", tether_web::hash_admin_password(password)?);
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    init_tracing(cli.log_format.as_deref().or(config.log_format.as_deref()));
    match cli.command {
        Command::Serve { bind, database_url, demo } => {
            if let Some(b) = bind {
                config.bind = b;
            }
            if let Some(d) = database_url {
                config.database_url = d;
            }
            let running = tether_server::start(config, ServeOptions { demo, workers: None }).await?;
            println!("Tether is listening on {} (public URL {})", running.local_addr, running.public_url);
            if let Some(key) = &running.demo_api_key {
                println!("Demo mode. API key (kept in tether-demo-secrets.toml): {key}");
                println!("Open {} to connect a demo account.", running.public_url);
            }
            if let Some(password) = &running.demo_admin_password {
                let admin = format!("{}/admin", running.public_url.as_str().trim_end_matches('/'));
                println!("Demo mode. Admin pages: {admin}, password (kept in tether-demo-secrets.toml): {password}");
            }
            running.wait().await?;
        }
        Command::Migrate { database_url } => {
            if let Some(d) = database_url {
                config.database_url = d;
            }
            tether_server::open_store(&config).await?;
            println!("migrations applied to {}", tether_server::config::redact_url(&config.database_url));
        }
        Command::Check => return check(&config).await,
        Command::Keys { command: KeysCommand::Rotate } => {
            let store = tether_server::open_store(&config).await?;
            let report = store.reseal_secrets().await?;
            println!(
                "re-sealed {} secret(s) under key `{}`; {} already current, {} rewritten by a concurrent refresh",
                report.resealed,
                store.key_ring().primary_key_id(),
                report.current,
                report.skipped
            );
        }
        Command::Token { id } => {
            let engine = cli_engine(&config).await?;
            let token = engine.exportable_token(ConnectionId::parse(&id)?, false).await?;
            println!("{}", token.access_token.expose_secret());
        }
        Command::Refresh { id } => {
            let engine = cli_engine(&config).await?;
            let token = engine.refresh_now(ConnectionId::parse(&id)?).await?;
            let expiry = token.expires_at.map_or("never".to_owned(), |e| e.to_rfc3339());
            println!("refreshed {id}; the access token expires {expiry}");
        }
        Command::Disconnect { id } => {
            let engine = cli_engine(&config).await?;
            let outcome = engine.disconnect(ConnectionId::parse(&id)?).await?;
            match outcome.revoke_error {
                None => println!("disconnected {id}; revoked at the provider"),
                Some(why) => println!("disconnected {id}; secrets deleted, not revoked at the provider: {why}"),
            }
        }
        Command::Connections { command: ConnectionsCommand::List { owner, provider, json } } => {
            let engine = cli_engine(&config).await?;
            let filter = ConnectionFilter {
                owner: owner.as_deref().map(OwnerId::parse).transpose()?,
                provider: provider.as_deref().map(ProviderId::parse).transpose()?,
                ..ConnectionFilter::default()
            };
            let list = engine.store().list_connections(&filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "connections": list }))?);
            } else {
                for c in &list {
                    let expiry = c.expires_at.map_or("never".to_owned(), |e| e.to_rfc3339());
                    println!(
                        "{}  {:<10} {:<16} {:<24} {:<16} expires {}",
                        c.id,
                        c.provider,
                        c.owner,
                        c.account.name.as_deref().unwrap_or(&c.account.id),
                        c.status,
                        expiry
                    );
                }
                println!("{} connection(s)", list.len());
            }
        }
        Command::Providers { .. } | Command::Keys { .. } | Command::Admin { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

async fn cli_engine(config: &Config) -> anyhow::Result<tether_core::Tether> {
    let store = tether_server::open_store(config).await?;
    let addr = config.bind.parse().unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    tether_server::build_engine(config, store, config.public_url(addr)?)
}

fn providers(json: bool) -> anyhow::Result<ExitCode> {
    print!("{}", tether_server::providers_listing(json)?);
    Ok(ExitCode::SUCCESS)
}

async fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    let mut ok = Vec::new();
    match config.key_ring() {
        Ok(ring) => ok.push(format!(
            "encryption keys: {} (sealing with `{}`)",
            config.encryption_keys.len(),
            ring.primary_key_id()
        )),
        Err(e) => problems.push(e.to_string()),
    }
    match config.api_keys() {
        Ok(k) => ok.push(format!("api keys: {}", k.len())),
        Err(e) => problems.push(e.to_string()),
    }
    match config.admin_settings() {
        Ok(a) if !a.is_enabled() => {
            ok.push("admin pages: disabled (add [admin] password_hash or trusted_header)".into())
        }
        Ok(a) => ok.push(format!(
            "admin pages: enabled ({})",
            [
                a.password_enabled().then(|| "password sign-in".to_owned()),
                a.trusted_header().map(|h| format!("trusted header {h}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
        )),
        Err(e) => problems.push(e.to_string()),
    }
    let addr = config.bind.parse().unwrap_or_else(|_| std::net::SocketAddr::from(([127, 0, 0, 1], 8080)));
    let public_url = match config.public_url(addr) {
        Ok(u) => Some(u),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    if problems.is_empty() {
        match tether_store::SeaStore::connect(&config.database_url, config.key_ring()?).await {
            Ok(store) => match store.pending_migrations().await {
                Ok(p) if p.is_empty() => ok.push(format!("database: {} reachable, schema up to date", store.backend())),
                Ok(p) => ok.push(format!(
                    "database: {} reachable, {} migration(s) pending (run `tether migrate`)",
                    store.backend(),
                    p.len()
                )),
                Err(e) => problems.push(format!("database: {e}")),
            },
            Err(e) => {
                problems.push(format!("database {}: {e}", tether_server::config::redact_url(&config.database_url)))
            }
        }
    }
    if let Some(public_url) = &public_url {
        let registry = ProviderRegistry::collect()?;
        for (id, p) in &config.providers {
            match registry.configure_one(id, p, public_url) {
                Ok(c) if c.is_per_instance() => ok.push(format!(
                    "provider {id}: ok, registers itself on each user's server with redirect URI {}",
                    c.redirect_uri
                )),
                Ok(c) => ok.push(format!("provider {id}: ok, register redirect URI {}", c.redirect_uri)),
                Err(e) => problems.push(format!("provider {id}: {e}")),
            }
        }
        if config.providers.is_empty() {
            ok.push("providers: none configured (add [providers.<id>] tables)".into());
        }
    }
    for line in &ok {
        println!("ok    {line}");
    }
    for line in &problems {
        println!("FAIL  {line}");
    }
    if problems.is_empty() {
        println!("configuration is valid");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("error: {} problem(s) found", problems.len());
        Ok(ExitCode::FAILURE)
    }
}
