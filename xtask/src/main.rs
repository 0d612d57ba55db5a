//! Project automation, run as `cargo xtask <task>`:
//!
//! - `ci`: what CI runs (`.ci/run` calls it): format check, clippy with `-D warnings`, the
//!   README's test command, then the store and end-to-end suites against the PostgreSQL and
//!   MariaDB servers (failing when either is unreachable).
//! - `test-databases`: only the last step.
//! - `bench [--quick] [--only reads|replicas|flows|sweep|footprint]`: the benchmarks (release
//!   build); rewrites docs/benchmarks.md (not with `--only`, which prints one section's rows).
//! - `provider-table [--check]`: the provider table in docs/providers/README.md, generated from
//!   the registry (`--check`, part of `ci`, fails when it is out of date).
//! - `openapi-fuzz`: schemathesis against the live server's `/openapi.json` (part of `ci`).
//! - `new-provider NAME`: a new provider crate under `crates/providers/NAME` (crate,
//!   registration, mock-based tests) and its page `docs/providers/NAME.md`; see
//!   docs/writing-a-provider.md.

use std::process::Command;

use anyhow::{Context, bail};

mod ci;
mod new_provider;
mod openapi_fuzz;
mod provider_table;

const USAGE: &str = "usage: cargo xtask <ci | test-databases | openapi-fuzz | bench [--quick] [--only SECTION] [--sweep N] | new-provider NAME | provider-table [--check]>";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let task = args.first().cloned().unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci::ci(),
        "test-databases" => ci::test_databases(),
        "openapi-fuzz" => openapi_fuzz::run(),
        "bench" => bench(&args[1..]),
        "new-provider" => new_provider::run(&args[1..]),
        "provider-table" => provider_table::run(&args[1..]),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("xtask {task}: {e:#}");
        std::process::exit(1);
    }
}

/// Runs `cargo ARGS` (the cargo that runs xtask) with extra environment variables; fails when
/// it does.
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

fn bench(args: &[String]) -> anyhow::Result<()> {
    cargo(&["build", "--release", "-p", "tether-server", "-p", "tether-bench"], &[])?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| std::path::PathBuf::from("target"), Into::into);
    let mut cmd = Command::new(target.join("release").join("tether-bench"));
    cmd.args(args);
    if !cmd.status().context("running the benchmarks")?.success() {
        bail!("the benchmarks failed");
    }
    Ok(())
}
