//! `acme-tether`: the Tether server with one more provider, Acme, linked from a third-party crate.
//!
//! Everything but the command line comes from `tether-server` as a library: configuration
//! (`tether.toml` and `TETHER_*` variables, exactly as for `tether`), the store, the engine, the
//! HTTP API, the connect flow, the admin pages and the background refresher. The stock `tether`
//! binary's commands that build no provider (`keys`, `admin hash-password`) work on the same
//! configuration; those that do (`check`, `token`, `refresh`, `disconnect`, `connections`) need
//! a binary that links Acme: add them here the same way when you need them.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tether_server::{Config, ServeOptions};

// inventory only sees crates the binary links, and a dependency nothing refers to is not linked:
// this line is what puts `acme` in the registry. (tether-server links the built-in providers.)
use tether_provider_acme as _;

/// Tether with the Acme provider.
#[derive(Parser)]
#[command(name = "acme-tether", version, about)]
struct Cli {
    /// Configuration file (default: ./tether.toml when present).
    #[arg(long, global = true, env = "TETHER_CONFIG")]
    config: Option<PathBuf>,
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
    },
    /// Runs database migrations.
    Migrate,
    /// Lists the compiled-in providers.
    Providers {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Providers { json } = cli.command {
        return providers(json);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    init_tracing();
    match cli.command {
        Command::Serve { bind, database_url } => {
            config.bind = bind.unwrap_or(config.bind);
            config.database_url = database_url.unwrap_or(config.database_url);
            let running = tether_server::start(config, ServeOptions::default()).await?;
            println!("Tether is listening on {} (public URL {})", running.local_addr, running.public_url);
            running.wait().await
        }
        Command::Migrate => {
            tether_server::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Providers { .. } => Ok(()),
    }
}

/// Logs to stderr, filtered by `TETHER_LOG` like the stock binary.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,sea_orm_migration=warn,actix_server=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// `providers [--json]`: the registry as this binary links it.
fn providers(json: bool) -> anyhow::Result<()> {
    print!("{}", tether_server::providers_listing(json)?);
    Ok(())
}
