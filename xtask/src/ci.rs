//! `cargo xtask ci` and `cargo xtask test-databases`.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::bail;

use crate::{cargo, openapi_fuzz, provider_table};

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// Everything CI checks, in the order a developer would want to hear about failures.
pub(crate) fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    // The deny.toml policy, when cargo-deny is installed (it is not part of a Rust toolchain).
    let has_deny = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_deny {
        // cargo-deny reads the metadata of every target's dependencies (Windows and Android
        // ones too), which a build on this machine never downloads: fetch them first.
        cargo(&["fetch"], &[])?;
        cargo(&["deny", "--offline", "check", "licenses", "bans", "sources"], &[])?;
    } else {
        eprintln!("==> cargo-deny is not installed: skipping the deny.toml check (cargo install cargo-deny)");
    }
    // The provider table in docs/providers/README.md is what the registry says.
    provider_table::run(&["--check".to_owned()])?;
    // The README's test command.
    cargo(&["test", "--workspace"], &[])?;
    test_databases()?;
    openapi_fuzz::run()
}

fn reachable(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
}

/// The store and end-to-end suites against PostgreSQL and MariaDB; fails when a server is
/// unreachable instead of skipping.
pub(crate) fn test_databases() -> anyhow::Result<()> {
    let pg = std::env::var("TETHER_TEST_POSTGRES_URL").unwrap_or_else(|_| POSTGRES_URL.into());
    let my = std::env::var("TETHER_TEST_MYSQL_URL").unwrap_or_else(|_| MYSQL_URL.into());
    if !reachable("127.0.0.1:5432") {
        bail!("PostgreSQL is not reachable at 127.0.0.1:5432; the database suites cannot run");
    }
    if !reachable("127.0.0.1:3306") {
        bail!("MariaDB is not reachable at 127.0.0.1:3306; the database suites cannot run");
    }
    cargo(
        &["test", "-p", "tether-store", "-p", "tether-e2e"],
        &[("TETHER_TEST_POSTGRES_URL", pg), ("TETHER_TEST_MYSQL_URL", my)],
    )
}
