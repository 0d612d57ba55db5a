//! `cargo xtask openapi-fuzz`: property-based testing of the live server against its own
//! OpenAPI document with schemathesis (from PyPI, in a cached virtualenv). Fails on any 5xx,
//! undocumented status code or wrong content type.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const SCHEMATHESIS: &str = "schemathesis==4.32.5";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn venv() -> anyhow::Result<PathBuf> {
    let dir = std::env::var_os("TETHER_VENV").map_or_else(|| PathBuf::from("/var/tmp/tether-venv"), PathBuf::from);
    let bin = dir.join("bin").join("schemathesis");
    if !bin.exists() {
        eprintln!("==> installing {SCHEMATHESIS} into {}", dir.display());
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&dir).status()?.success()
            && Command::new(dir.join("bin").join("pip")).args(["install", "-q", SCHEMATHESIS]).status()?.success();
        if !ok {
            bail!("could not install {SCHEMATHESIS} (needs python3 and PyPI)");
        }
    }
    Ok(bin)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from)
}

fn wait_ready(port: u16, deadline: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the server did not listen on port {port}")
}

fn read_api_key(dir: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dir.join("tether-demo-secrets.toml")).context("demo secrets")?;
    text.lines()
        .find_map(|l| l.strip_prefix("api_key = \"").and_then(|v| v.strip_suffix('"')))
        .map(str::to_owned)
        .context("no api_key in the demo secrets")
}

/// Runs the fuzzing pass.
pub(crate) fn run() -> anyhow::Result<()> {
    let schemathesis = venv()?;
    crate::cargo(&["build", "-q", "-p", "tether-server", "--bin", "tether"], &[])?;
    let binary = std::fs::canonicalize(target_dir().join("debug").join("tether")).context("tether binary")?;
    let dir = std::env::temp_dir().join(format!("tether-openapi-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let port = free_port()?;
    let _server = KillOnDrop(
        Command::new(binary)
            .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
            .current_dir(&dir)
            .env("TETHER_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .context("starting tether")?,
    );
    wait_ready(port, Duration::from_secs(30))?;
    let key = read_api_key(&dir)?;
    eprintln!("==> schemathesis against http://127.0.0.1:{port}/openapi.json");
    let status = Command::new(schemathesis)
        .args(["run", &format!("http://127.0.0.1:{port}/openapi.json")])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance"])
        .args(["-H", &format!("Authorization: Bearer {key}")])
        .args(["-n", "25", "--seed", "1", "--phases", "examples,coverage,fuzzing"])
        .env("SCHEMATHESIS_HOOKS", "")
        .current_dir(&dir)
        .status()?;
    let _ = std::fs::remove_dir_all(&dir);
    if !status.success() {
        bail!("schemathesis found problems (see above)");
    }
    Ok(())
}
