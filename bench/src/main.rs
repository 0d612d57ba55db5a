//! `cargo xtask bench [--quick]`: Tether's benchmarks. Every figure is measured beside a
//! baseline in the same run and reported as a ratio, because the machine is noisy. Writes
//! docs/benchmarks.md and docs/images/bench-*.svg.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod load;
mod plot;
mod servers;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tether_core::{EngineSettings, KeyRing, ProviderRegistry, RefresherSettings, Tether};
use tether_server::{Config, ServeOptions};

use tether as _;

const API_KEY: &str = "bench-api-key-0123456789abcdef";

struct Scale {
    quick: bool,
    read_connections: usize,
    read_secs: u64,
    flow_secs: u64,
    sweep_connections: usize,
    concurrency: usize,
}

fn temp_dir(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tether-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn config(db: &str, key: &str, provider: &str, refresher: bool) -> anyhow::Result<Config> {
    config_with(db, key, provider, refresher, "")
}

/// The pool size line of a bench config: 16 connections unless `TETHER_BENCH_POOL_SIZE` says.
fn pool_size() -> String {
    let n = std::env::var("TETHER_BENCH_POOL_SIZE").unwrap_or_else(|_| "16".into());
    format!("database_pool_size = {n}")
}

fn config_with(db: &str, key: &str, provider: &str, refresher: bool, extra: &str) -> anyhow::Result<Config> {
    Config::from_toml(&format!(
        "bind = \"127.0.0.1:0\"\ndatabase_url = \"{db}\"\napi_keys = [\"{API_KEY}\"]\nencryption_keys = [\"{key}\"]\n\
         {}\n{extra}\n[refresher]\nenabled = {refresher}\n[providers.mock]\nkind = \"generic\"\n{provider}",
        pool_size()
    ))
}

async fn open_store(db: &str, key: &str) -> anyhow::Result<tether_store::SeaStore> {
    let store = tether_store::SeaStore::connect_with(
        db,
        KeyRing::parse(&[key])?,
        tether_store::StoreOptions::default().max_connections(32),
    )
    .await?;
    store.migrate().await?;
    Ok(store)
}

const DUMMY_PROVIDER: &str = "client_id = \"c\"\nclient_secret = \"s\"\nauthorize_url = \"http://127.0.0.1:9/a\"\ntoken_url = \"http://127.0.0.1:9/t\"\nuserinfo_url = \"http://127.0.0.1:9/u\"\n";

/// How the token cache is configured for a token-read run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheMode {
    /// As served by default: entries follow the change feed (60 s), young ones 2 s.
    Default,
    /// The change feed off: entries live 2 s (`token_cache_max_age_secs = 0`).
    YoungOnly,
    /// No cache at all.
    Off,
}

impl CacheMode {
    /// The configuration lines, and the label in the report.
    fn setting(self) -> (&'static str, &'static str) {
        match self {
            Self::Default => ("", "change feed, 60 s (default)"),
            Self::YoungOnly => ("token_cache_max_age_secs = 0", "2 s, no change feed"),
            Self::Off => ("token_cache_ttl_ms = 0\ntoken_cache_max_age_secs = 0", "off"),
        }
    }
}

/// Section 1: token reads across many connections, against the constant-body ceiling.
async fn token_reads(
    scale: &Scale,
    backend: &str,
    db: &str,
    cache: CacheMode,
    out: &mut String,
) -> anyhow::Result<(load::LoadStats, load::LoadStats)> {
    let key = tether_core::EncryptionKey::generate()?;
    let store = open_store(db, &key).await?;
    let t0 = Instant::now();
    let ids = servers::seed(&store, scale.read_connections, chrono::Duration::days(1)).await?;
    eprintln!("[{backend}] seeded {} connections in {:.1} s", ids.len(), t0.elapsed().as_secs_f64());
    let (cache_setting, cache_label) = cache.setting();
    let running = tether_server::start(
        config_with(db, &key, DUMMY_PROVIDER, false, cache_setting)?,
        ServeOptions { demo: false, workers: Some(2) },
    )
    .await?;
    let base = running.public_url.as_str().trim_end_matches('/').to_owned();
    let urls: Arc<Vec<String>> = Arc::new(ids.iter().map(|id| format!("{base}/v1/connections/{id}/token")).collect());
    let (ceiling_base, ceiling) = servers::start_ceiling(2)?;
    let ceiling_urls: Arc<Vec<String>> =
        Arc::new(ids.iter().map(|id| format!("{ceiling_base}/v1/connections/{id}/token")).collect());
    let d = Duration::from_secs(scale.read_secs);
    // Warm up both, then alternate so drift hits both equally.
    let _ = load::run(urls.clone(), Some(API_KEY), scale.concurrency, Duration::from_secs(1)).await;
    let _ = load::run(ceiling_urls.clone(), None, scale.concurrency, Duration::from_secs(1)).await;
    let base_a = load::run(ceiling_urls.clone(), None, scale.concurrency, d / 2).await;
    let tether_a = load::run(urls.clone(), Some(API_KEY), scale.concurrency, d / 2).await;
    let tether_b = load::run(urls.clone(), Some(API_KEY), scale.concurrency, d / 2).await;
    let base_b = load::run(ceiling_urls, None, scale.concurrency, d / 2).await;
    let merge = |a: load::LoadStats, b: load::LoadStats| load::LoadStats {
        ok: a.ok + b.ok,
        errors: a.errors + b.errors,
        rps: (a.rps + b.rps) / 2.0,
        p50_ms: (a.p50_ms + b.p50_ms) / 2.0,
        p99_ms: (a.p99_ms + b.p99_ms) / 2.0,
    };
    let (t, c) = (merge(tether_a, tether_b), merge(base_a, base_b));
    let _ = writeln!(
        out,
        "| {backend} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | **{:.0} %** | {} |",
        cache_label,
        ids.len(),
        t.rps,
        t.p50_ms,
        t.p99_ms,
        c.rps,
        c.p50_ms,
        c.p99_ms,
        100.0 * t.rps / c.rps,
        t.errors
    );
    running.stop().await;
    ceiling.stop(false).await;
    Ok((t, c))
}

/// Section 2: connect flows per second through the real server and a loopback mock provider.
async fn connect_flows(scale: &Scale, out: &mut String) -> anyhow::Result<()> {
    let dir = temp_dir("flows")?;
    let db = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let mock = tether_testkit::MockProvider::start(tether_testkit::MockProviderConfig {
        auto_approve: Some("bench".into()),
        ..Default::default()
    })
    .await?;
    let provider = format!(
        "client_id = \"mock-client\"\nclient_secret = \"mock-secret\"\nauthorize_url = \"{}\"\ntoken_url = \"{}\"\nuserinfo_url = \"{}\"\n",
        mock.url("authorize"),
        mock.url("token"),
        mock.url("userinfo")
    );
    let key = tether_core::EncryptionKey::generate()?;
    let running =
        tether_server::start(config(&db, &key, &provider, false)?, ServeOptions { demo: false, workers: Some(2) })
            .await?;
    let base = running.public_url.as_str().trim_end_matches('/').to_owned();
    let (ceiling_base, ceiling) = servers::start_ceiling(2)?;
    let d = Duration::from_secs(scale.flow_secs);
    let concurrency = 8;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..concurrency {
        let base = base.clone();
        tasks.spawn(async move {
            let api = reqwest::Client::new();
            let mut done = 0u64;
            let mut n = 0;
            while started.elapsed() < d {
                n += 1;
                let browser = reqwest::Client::builder()
                    .cookie_store(true)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let session: serde_json::Value = api
                    .post(format!("{base}/v1/connect-sessions"))
                    .bearer_auth(API_KEY)
                    .json(&serde_json::json!({"owner": format!("o-{w}-{n}"), "provider": "mock"}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let r = browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
                let r = browser.get(r.headers()["location"].to_str().unwrap()).send().await.unwrap();
                let r = browser.get(r.headers()["location"].to_str().unwrap()).send().await.unwrap();
                if r.status().is_success() {
                    done += 1;
                }
            }
            done
        });
    }
    let mut flows = 0;
    while let Some(r) = tasks.join_next().await {
        flows += r?;
    }
    let flow_rate = flows as f64 / started.elapsed().as_secs_f64();
    // Baseline: the same number of HTTP round trips per flow (4 browser/API requests plus the
    // server's 2 calls to the provider) against the constant-body server.
    let urls = Arc::new(vec![format!("{ceiling_base}/x")]);
    let floor = load::run(urls, None, concurrency, d).await;
    let floor_flows = floor.rps / 6.0;
    let _ = writeln!(
        out,
        "| {flow_rate:.0} flows/s | {floor_flows:.0} flows/s | **{:.0} %** | {flows} flows, {} codes exchanged |",
        100.0 * flow_rate / floor_flows,
        mock.code_exchanges()
    );
    running.stop().await;
    ceiling.stop(false).await;
    mock.stop().await;
    Ok(())
}

/// Section 3: refresh sweep: every connection due at once, provider latency 50 ms.
async fn refresh_sweep(scale: &Scale, backend: &str, db: &str, out: &mut String) -> anyhow::Result<Vec<(f64, f64)>> {
    let key = tether_core::EncryptionKey::generate()?;
    // The store as `serve` opens it (default pools: 4 for SQLite, 10 for PostgreSQL).
    let store = tether_store::SeaStore::connect(db, KeyRing::parse(&[key.as_str()])?).await?;
    store.migrate().await?;
    let n = scale.sweep_connections;
    let seeding = Instant::now();
    servers::seed(&store, n, chrono::Duration::minutes(1)).await?;
    eprintln!("{backend}: seeded {n} connections in {:.1} s; sweeping", seeding.elapsed().as_secs_f64());
    let endpoint = servers::RefreshEndpoint::default();
    let latency = Duration::from_millis(50);
    let (token_url, handle) = endpoint.start(latency, 2)?;
    let engine = sweep_engine(store, db, &key, &token_url)?;
    let concurrency = 256;
    let settings = RefresherSettings {
        lead_time: Duration::from_secs(600),
        interval: Duration::from_millis(100),
        concurrency,
        batch: n as u64,
    };
    let started = Instant::now();
    let mut renewed = 0;
    while renewed < n && started.elapsed() < Duration::from_secs(3600) {
        let r = engine.refresh_due(&settings).await?;
        if r == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        renewed += r;
    }
    let wall = started.elapsed().as_secs_f64();
    let ideal = n as f64 * latency.as_secs_f64() / concurrency as f64;
    let refreshes = endpoint.refreshes.load(std::sync::atomic::Ordering::Relaxed);
    let duplicates = endpoint.duplicates.load(std::sync::atomic::Ordering::Relaxed);
    let _ = writeln!(
        out,
        "| {backend} | {n} | {concurrency} | {wall:.1} s | {ideal:.1} s | **{:.2}×** | {refreshes} | {duplicates} |",
        wall / ideal
    );
    handle.stop(false).await;
    let mut completions = endpoint.completions.lock().map(|c| c.clone()).unwrap_or_default();
    completions.sort_unstable();
    let at = |q: usize| completions.get((n * q / 10).saturating_sub(1)).map_or(0.0, |ms| *ms as f64 / 1000.0);
    eprintln!(
        "{backend}: refreshes done at 10 % {:.1} s, 50 % {:.1} s, 90 % {:.1} s, 100 % {:.1} s",
        at(1),
        at(5),
        at(9),
        at(10)
    );
    Ok(completions.iter().enumerate().map(|(i, ms)| (*ms as f64 / 1000.0, (i + 1) as f64)).collect())
}

/// An engine over `store` whose provider `mock` refreshes at `token_url`.
fn sweep_engine(store: tether_store::SeaStore, db: &str, key: &str, token_url: &str) -> anyhow::Result<Tether> {
    sweep_engine_with(store, db, key, token_url, EngineSettings::new(url::Url::parse("http://127.0.0.1:9/")?))
}

/// [`sweep_engine`] with its engine settings.
fn sweep_engine_with(
    store: tether_store::SeaStore,
    db: &str,
    key: &str,
    token_url: &str,
    settings: EngineSettings,
) -> anyhow::Result<Tether> {
    let provider = format!(
        "client_id = \"c\"\nclient_secret = \"s\"\nauthorize_url = \"http://127.0.0.1:9/a\"\ntoken_url = \"{token_url}\"\n"
    );
    let cfg = config(db, key, &provider, true)?;
    let public = url::Url::parse("http://127.0.0.1:9/")?;
    let providers = ProviderRegistry::collect()?.configure(&cfg.providers, &public)?;
    Ok(Tether::new(Arc::new(store), providers, settings)?)
}

/// Section 4: token reads through 1, 2 and 4 replicas on one PostgreSQL database, while every
/// connection's token also expires during the run (so replicas race to refresh them).
async fn replicas(scale: &Scale, admin: &str, out: &mut String) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let binary = std::env::current_exe()?.parent().context("target dir")?.join("tether");
    let mut per_cpu_second_of_one = None;
    for count in [1usize, 2, 4] {
        let db = tether_store::testing::fresh_database_url(admin).await?;
        let key = tether_core::EncryptionKey::generate()?;
        let store = open_store(&db, &key).await?;
        // Tokens valid for 8 s with a 5 s margin: each needs one refresh about 3 s into the run.
        let ids = servers::seed(&store, scale.read_connections.min(2_000), chrono::Duration::seconds(8)).await?;
        let _ = store.close().await;
        let endpoint = servers::RefreshEndpoint::default();
        let (token_url, handle) = endpoint.start(Duration::from_millis(50), 2)?;
        let dir = temp_dir(&format!("replicas-{count}"))?;
        std::fs::write(
            dir.join("tether.toml"),
            format!(
                "bind = \"127.0.0.1:0\"\ndatabase_url = \"{db}\"\napi_keys = [\"{API_KEY}\"]\nencryption_keys = [\"{key}\"]\n\
                 refresh_margin_secs = 5\ndatabase_pool_size = 8\n[refresher]\nenabled = false\n[providers.mock]\nkind = \"generic\"\n\
                 client_id = \"c\"\nclient_secret = \"s\"\nauthorize_url = \"http://127.0.0.1:9/a\"\ntoken_url = \"{token_url}\"\n"
            ),
        )?;
        let mut children = Vec::new();
        let mut bases = Vec::new();
        for _ in 0..count {
            let mut child = tokio::process::Command::new(&binary)
                .args(["serve", "--config"])
                .arg(dir.join("tether.toml"))
                .env("TETHER_LOG", "error")
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()?;
            let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
            while let Some(line) = lines.next_line().await? {
                if let Some(rest) = line.strip_prefix("Tether is listening on ") {
                    bases.push(format!("http://{}", rest.split_whitespace().next().unwrap_or_default()));
                    break;
                }
            }
            children.push(child);
        }
        let urls: Arc<Vec<String>> = Arc::new(
            ids.iter()
                .enumerate()
                .map(|(i, id)| format!("{}/v1/connections/{id}/token", bases[i % bases.len()]))
                .collect(),
        );
        // First the expiry race (every token needs its one refresh), then steady reads of the
        // renewed tokens, which measure scaling.
        // (At least 10 s: the tokens fall due 3 s after seeding, and the race must renew them all.)
        let race_secs = scale.read_secs.max(10);
        let race = load::run(urls.clone(), Some(API_KEY), scale.concurrency, Duration::from_secs(race_secs)).await;
        let committed_before = pg_transactions(&db).await?;
        let cpu_before: Option<f64> = children.iter().map(|c| c.id().and_then(cpu_seconds)).sum();
        let steady = load::run(urls, Some(API_KEY), scale.concurrency, Duration::from_secs(scale.read_secs / 2)).await;
        let cpu_after: Option<f64> = children.iter().map(|c| c.id().and_then(cpu_seconds)).sum();
        let per_cpu_second = match (cpu_before, cpu_after) {
            (Some(before), Some(after)) if after > before => Some(steady.ok as f64 / (after - before)),
            _ => None,
        };
        let one_replica = *per_cpu_second_of_one.get_or_insert(per_cpu_second.unwrap_or(0.0));
        let efficiency = match per_cpu_second {
            Some(p) if one_replica > 0.0 => format!("**{:.2}**", p / one_replica),
            _ => "–".to_owned(),
        };
        // PostgreSQL publishes each backend's counts within a second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let per_thousand = (pg_transactions(&db).await? - committed_before) as f64 * 1000.0 / (steady.ok.max(1) as f64);
        let refreshes = endpoint.refreshes.load(std::sync::atomic::Ordering::Relaxed);
        let duplicates = endpoint.duplicates.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            out,
            "| {count} | {:.0} | {:.2} | {:.2} | {refreshes} of {} | {duplicates} | {:.0} | {} | {efficiency} | {per_thousand:.1} | {} |",
            race.rps,
            race.p50_ms,
            race.p99_ms,
            ids.len(),
            steady.rps,
            per_cpu_second.map_or("–".to_owned(), |p| format!("{p:.0}")),
            race.errors + steady.errors
        );
        for mut c in children {
            let _ = c.kill().await;
        }
        handle.stop(false).await;
        let _ = tether_store::testing::drop_database(admin, &db).await;
    }
    Ok(())
}

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat` (Linux; clock
/// ticks of 1/100 s, the kernel's `USER_HZ` on every mainstream architecture).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start with the state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Transactions PostgreSQL has counted in `db` (committed and rolled back, every client).
async fn pg_transactions(db: &str) -> anyhow::Result<i64> {
    use tether_store::sea_orm::{ConnectionTrait, Database, Statement};
    let conn = Database::connect(db).await?;
    let row = conn
        .query_one_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT CAST(xact_commit + xact_rollback AS BIGINT) AS n FROM pg_stat_database WHERE datname = current_database()",
        ))
        .await?
        .context("pg_stat_database has no row for the bench database")?;
    let n = row.try_get::<i64>("", "n")?;
    let _ = conn.close().await;
    Ok(n)
}

/// Section 5: footprint: binary size, start-up time, resident memory idle and with connections.
async fn footprint(scale: &Scale, out: &mut String) -> anyhow::Result<()> {
    let binary = std::env::current_exe()?.parent().context("target dir")?.join("tether");
    let size = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
    let dir = temp_dir("footprint")?;
    let key = tether_core::EncryptionKey::generate()?;
    let db = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
    let n = scale.read_connections;
    let store = open_store(&db, &key).await?;
    let ids = servers::seed(&store, n, chrono::Duration::days(1)).await?;
    let _ = store.close().await;
    std::fs::write(
        dir.join("tether.toml"),
        format!(
            "bind = \"127.0.0.1:0\"\ndatabase_url = \"{db}\"\napi_keys = [\"{API_KEY}\"]\nencryption_keys = [\"{key}\"]\n[providers.mock]\nkind = \"generic\"\n{DUMMY_PROVIDER}"
        ),
    )?;
    let mut startups = Vec::new();
    let mut rss = (0, 0);
    for round in 0..5 {
        use tokio::io::AsyncBufReadExt;
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(&binary)
            .args(["serve", "--config"])
            .arg(dir.join("tether.toml"))
            .env("TETHER_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut base = String::new();
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("Tether is listening on ") {
                base = format!("http://{}", rest.split_whitespace().next().unwrap_or_default());
                break;
            }
        }
        startups.push(t0.elapsed().as_secs_f64() * 1000.0);
        if round == 0 {
            let pid = child.id().unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(500)).await;
            let idle = rss_kib(pid);
            let urls = Arc::new(ids.iter().map(|id| format!("{base}/v1/connections/{id}/token")).collect::<Vec<_>>());
            let client = reqwest::Client::new();
            for u in urls.iter() {
                let _ = client.get(u).bearer_auth(API_KEY).send().await;
            }
            rss = (idle, rss_kib(pid));
        }
        let _ = child.kill().await;
    }
    startups.sort_by(f64::total_cmp);
    let _ = writeln!(out, "| release binary size | {:.1} MiB |", size as f64 / 1048576.0);
    let _ =
        writeln!(out, "| start-up to listening (median of 5, SQLite, migrations checked) | {:.0} ms |", startups[2]);
    let _ = writeln!(out, "| resident memory, idle | {:.1} MiB |", rss.0 as f64 / 1024.0);
    let _ = writeln!(
        out,
        "| resident memory after reading each of {n} connections once | {:.1} MiB |",
        rss.1 as f64 / 1024.0
    );
    Ok(())
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick {
        Scale { quick, read_connections: 2_000, read_secs: 6, flow_secs: 5, sweep_connections: 2_000, concurrency: 32 }
    } else {
        Scale {
            quick,
            read_connections: 10_000,
            read_secs: 20,
            flow_secs: 15,
            sweep_connections: 100_000,
            concurrency: 64,
        }
    };
    // `--only SECTION` (reads, replicas, flows, sweep, footprint) runs one section and prints
    // its rows without rewriting the report: for working on one figure.
    let args: Vec<String> = std::env::args().collect();
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let runs = |section: &str| only.as_deref().is_none_or(|o| o == section);
    let mut scale = scale;
    if let Some(n) = args.iter().position(|a| a == "--sweep").and_then(|i| args.get(i + 1)?.parse().ok()) {
        scale.sweep_connections = n;
    }
    let mut reads = String::new();
    let mut percentiles = Vec::new();
    if runs("reads") {
        for cache in [CacheMode::Default, CacheMode::YoungOnly, CacheMode::Off] {
            let dir = temp_dir("reads")?;
            let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
            let (t, c) = token_reads(&scale, "SQLite", &sqlite, cache, &mut reads).await?;
            if cache == CacheMode::Default {
                percentiles.push(("SQLite", t, c));
            }
            if let Ok(admin) = std::env::var("TETHER_BENCH_POSTGRES_URL") {
                let pg = tether_store::testing::fresh_database_url(&admin).await?;
                let (t, c) = token_reads(&scale, "PostgreSQL", &pg, cache, &mut reads).await?;
                if cache == CacheMode::Default {
                    percentiles.push(("PostgreSQL", t, c));
                }
                let _ = tether_store::testing::drop_database(&admin, &pg).await;
            }
        }
    }
    let mut replica_rows = String::new();
    if runs("replicas")
        && let Ok(admin) = std::env::var("TETHER_BENCH_POSTGRES_URL")
    {
        replicas(&scale, &admin, &mut replica_rows).await?;
    }
    let mut flows = String::new();
    if runs("flows") {
        connect_flows(&scale, &mut flows).await?;
    }
    let mut sweep = String::new();
    let mut progress = Vec::new();
    if runs("sweep") {
        let dir = temp_dir("sweep")?;
        let sqlite = format!("sqlite://{}?mode=rwc", dir.join("t.db").display());
        progress = refresh_sweep(&scale, "SQLite", &sqlite, &mut sweep).await?;
        if let Ok(admin) = std::env::var("TETHER_BENCH_POSTGRES_URL") {
            let pg = tether_store::testing::fresh_database_url(&admin).await?;
            refresh_sweep(&scale, "PostgreSQL", &pg, &mut sweep).await?;
            let _ = tether_store::testing::drop_database(&admin, &pg).await;
        }
    }
    let mut foot = String::new();
    if runs("footprint") {
        footprint(&scale, &mut foot).await?;
    }
    if only.is_some() {
        println!("{reads}{replica_rows}{flows}{sweep}{foot}");
        return Ok(());
    }

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::create_dir_all(root.join("docs/images"))?;
    plot::latency(&root.join("docs/images/bench-latency.svg"), &percentiles)?;
    plot::sweep(&root.join("docs/images/bench-sweep.svg"), &progress)?;
    let report = plot::report(&scale_label(&scale), &reads, &flows, &sweep, &replica_rows, &foot);
    std::fs::write(root.join("docs/benchmarks.md"), &report)?;
    println!("{report}");
    Ok(())
}

fn scale_label(s: &Scale) -> String {
    format!(
        "{} run: {} connections for token reads ({} s per side, {} concurrent clients), {} s of connect flows, {} connections in the refresh sweep",
        if s.quick { "`--quick`" } else { "Full" },
        s.read_connections,
        s.read_secs,
        s.concurrency,
        s.flow_secs,
        s.sweep_connections
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use tether_core::{ConnectionId, ConnectionStore, LeaseOutcome};
    use tether_store::testing::{TestDatabase, admin_url_from_env};

    use super::*;

    /// Two engines (as two replicas would) sweep one database at once while an application
    /// reads some of the same tokens: every connection is refreshed exactly once, and every
    /// renewal is stored.
    async fn two_sweepers_and_readers_refresh_each_connection_once(db: TestDatabase) {
        let key = tether_core::EncryptionKey::generate().unwrap();
        let n = 300;
        let seed_store = open_store(db.url(), &key).await.unwrap();
        let ids = servers::seed(&seed_store, n, chrono::Duration::minutes(1)).await.unwrap();
        let endpoint = servers::RefreshEndpoint::default();
        let (token_url, handle) = endpoint.start(Duration::from_millis(5), 2).unwrap();
        let mut engines = Vec::new();
        for _ in 0..2 {
            let store =
                tether_store::SeaStore::connect(db.url(), KeyRing::parse(&[key.as_str()]).unwrap()).await.unwrap();
            engines.push(sweep_engine(store, db.url(), &key, &token_url).unwrap());
        }
        let settings = RefresherSettings {
            lead_time: Duration::from_secs(600),
            interval: Duration::from_millis(10),
            concurrency: 16,
            batch: n as u64,
        };
        let mut tasks = tokio::task::JoinSet::new();
        for engine in &engines {
            let engine = engine.clone();
            let settings = settings.clone();
            tasks.spawn(async move {
                let mut renewed = 0;
                loop {
                    let r = engine.refresh_due(&settings).await.unwrap();
                    if r == 0 {
                        return renewed;
                    }
                    renewed += r;
                }
            });
        }
        // Reads of every tenth connection: its token is inside the refresh margin, so these
        // race the sweepers for the same leases.
        for (i, id) in ids.iter().enumerate().step_by(10) {
            let engine = engines[i % 2].clone();
            let id = ConnectionId::parse(id).unwrap();
            tasks.spawn(async move {
                engine.access_token(id).await.unwrap();
                0
            });
        }
        let mut swept = 0;
        while let Some(r) = tasks.join_next().await {
            swept += r.unwrap();
        }
        assert_eq!(endpoint.duplicates.load(Ordering::Relaxed), 0, "a refresh token was presented twice");
        assert_eq!(endpoint.refreshes.load(Ordering::Relaxed), n as u64, "one refresh per connection");
        assert!(swept <= n);
        let later = chrono::Utc::now() + chrono::Duration::minutes(10);
        assert!(seed_store.due_for_refresh(later, chrono::Utc::now(), 10).await.unwrap().is_empty());
        for id in &ids {
            let stored = seed_store.tokens(ConnectionId::parse(id).unwrap()).await.unwrap().unwrap();
            let at = tether_core::ExposeSecret::expose_secret(&stored.tokens.access_token).to_owned();
            assert!(at.starts_with("at-rt-") && at.ends_with("-next"), "{id}: {at}");
            assert_eq!(stored.version, 2, "{id} written once");
        }
        let events = tether_core::EventStore::events(&seed_store, ConnectionId::parse(&ids[0]).unwrap(), 10);
        assert_eq!(events.await.unwrap().iter().filter(|e| e.kind == tether_core::EventKind::Refreshed).count(), 1);
        handle.stop(false).await;
        let _ = seed_store.close().await;
        let _ = db.drop_database().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_sweepers_on_sqlite() {
        two_sweepers_and_readers_refresh_each_connection_once(TestDatabase::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_sweepers_on_postgres() {
        let Some(admin) = admin_url_from_env("postgres") else { return };
        two_sweepers_and_readers_refresh_each_connection_once(TestDatabase::create(&admin).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_sweepers_on_mysql() {
        let Some(admin) = admin_url_from_env("mysql") else { return };
        two_sweepers_and_readers_refresh_each_connection_once(TestDatabase::create(&admin).await.unwrap()).await;
    }

    /// With a provider slower than half the lease, a connection claimed ahead waits for a place
    /// until too little of its lease is left to be refreshed safely: the sweep gives it back and
    /// claims it again, so every provider call starts with at least half a lease in hand. The
    /// provider here asks the database, at each call, how long the caller's lease still runs.
    async fn claims_that_waited_too_long_are_given_back(db: TestDatabase) {
        use actix_web::{App, HttpResponse, HttpServer, web};
        let key = tether_core::EncryptionKey::generate().unwrap();
        let n = 4;
        let store = open_store(db.url(), &key).await.unwrap();
        let ids = servers::seed(&store, n, chrono::Duration::minutes(1)).await.unwrap();
        // The connection whose refresh token is `rt-<i>`, at index i (seeding returns ids in
        // the order its tasks finished).
        let mut by_token = vec![None; n];
        for id in &ids {
            let id = ConnectionId::parse(id).unwrap();
            let stored = store.tokens(id).await.unwrap().unwrap();
            let rt =
                stored.tokens.refresh_token.as_ref().map(|t| tether_core::ExposeSecret::expose_secret(t).to_owned());
            let i: usize = rt.as_deref().and_then(|t| t.strip_prefix("rt-")?.parse().ok()).unwrap();
            by_token[i] = Some(id);
        }
        let ids: Arc<Vec<ConnectionId>> = Arc::new(by_token.into_iter().map(Option::unwrap).collect());
        // Lease left at each provider call, in ms (-1: the lease had already run out).
        let lease_left: Arc<std::sync::Mutex<Vec<i64>>> = Arc::default();
        let (probe, seen, known) = (store.clone(), lease_left.clone(), ids.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let token_url = format!("http://{}/token", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            let (probe, seen, known) = (probe.clone(), seen.clone(), known.clone());
            App::new().route(
                "/token",
                web::post().to(move |form: web::Form<Vec<(String, String)>>| {
                    let (probe, seen, known) = (probe.clone(), seen.clone(), known.clone());
                    async move {
                        let rt = form.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone());
                        let i: usize = rt.as_deref().and_then(|t| t.strip_prefix("rt-")?.parse().ok()).unwrap();
                        let now = chrono::Utc::now();
                        let lease = probe.try_acquire_refresh_lease(known[i], "probe", now, now).await.unwrap();
                        let left = match lease {
                            LeaseOutcome::Held { until } => (until - now).num_milliseconds(),
                            _ => -1,
                        };
                        seen.lock().unwrap().push(left);
                        tokio::time::sleep(Duration::from_millis(700)).await;
                        HttpResponse::Ok().json(serde_json::json!({
                            "access_token": format!("at-{i}-next"),
                            "refresh_token": format!("rt-{i}-next"),
                            "token_type": "bearer",
                            "expires_in": 7200,
                        }))
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let mut settings = EngineSettings::new(url::Url::parse("http://127.0.0.1:9/").unwrap());
        settings.lease_ttl = Duration::from_secs(1);
        let engine = sweep_engine_with(store.clone(), db.url(), &key, &token_url, settings).unwrap();
        let sweep = RefresherSettings {
            lead_time: Duration::from_secs(600),
            interval: Duration::from_millis(10),
            concurrency: 1,
            batch: n as u64,
        };
        let mut renewed = 0;
        for _ in 0..20 {
            renewed += engine.refresh_due(&sweep).await.unwrap();
            if renewed == n {
                break;
            }
        }
        assert_eq!(renewed, n, "every connection renewed");
        let left = lease_left.lock().unwrap().clone();
        assert_eq!(left.len(), n, "one provider call per connection: {left:?}");
        assert!(left.iter().all(|ms| *ms >= 400), "a refresh started with less than half its lease: {left:?}");
        for id in ids.iter() {
            assert_eq!(store.tokens(*id).await.unwrap().unwrap().version, 2, "{id} written once");
        }
        handle.stop(false).await;
        let _ = store.close().await;
        let _ = db.drop_database().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stale_claims_given_back_on_sqlite() {
        claims_that_waited_too_long_are_given_back(TestDatabase::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn stale_claims_given_back_on_postgres() {
        let Some(admin) = admin_url_from_env("postgres") else { return };
        claims_that_waited_too_long_are_given_back(TestDatabase::create(&admin).await.unwrap()).await;
    }
}
