//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: what CI runs (`.ci/run` calls it): format check, clippy with `-D warnings`, the
//!   README's test command, then the store and end-to-end suites against the PostgreSQL and
//!   MariaDB servers (failing when either is unreachable).
//! - `test-databases`: only the last step.
//! - `bench [--quick]`: the benchmarks (release build); rewrites docs/benchmarks.md.
//! - `openapi-fuzz`: schemathesis against the live server's `/openapi.json` (part of `ci`).

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, bail};

mod openapi_fuzz;

const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn main() {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "test-databases" => test_databases(),
        "openapi-fuzz" => openapi_fuzz::run(),
        "bench" => bench(std::env::args().any(|a| a == "--quick")),
        _ => {
            eprintln!("usage: cargo xtask <ci | test-databases | openapi-fuzz | bench [--quick]>");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask {task}: {e:#}");
        std::process::exit(1);
    }
}

pub(crate) fn cargo(args: &[&str], envs: &[(&str, String)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("==> cargo {}", args.join(" "));
    let status = Command::new(cargo)
        .args(args)
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .status()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed", args.join(" "));
    }
    Ok(())
}

fn ci() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--", "--check"], &[])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"], &[])?;
    // The deny.toml policy, when cargo-deny is installed (it is not part of a Rust toolchain).
    let has_deny = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_deny {
        cargo(&["deny", "--offline", "check", "licenses", "bans", "sources"], &[])?;
    } else {
        eprintln!("==> cargo-deny is not installed: skipping the deny.toml check (cargo install cargo-deny)");
    }
    // The README's test command.
    cargo(&["test", "--workspace"], &[])?;
    test_databases()?;
    openapi_fuzz::run()
}

fn bench(quick: bool) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "tether-server", "-p", "tether-bench"], &[])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| std::path::PathBuf::from("target"), Into::into);
    let mut cmd = Command::new(target.join("release").join("tether-bench"));
    if quick {
        cmd.arg("--quick");
    }
    if !cmd.status().context("running the benchmarks")?.success() {
        bail!("the benchmarks failed");
    }
    Ok(())
}

fn reachable(addr: &str) -> bool {
    addr.parse::<SocketAddr>().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok())
}

fn test_databases() -> anyhow::Result<()> {
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
