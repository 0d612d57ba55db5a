//! A closed-loop HTTP load generator: `concurrency` tasks, each sending requests back to back
//! for `duration`, recording every latency.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Figures of one load run.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoadStats {
    /// Requests completed with a 2xx answer.
    pub ok: u64,
    /// Other answers or transport errors.
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Median latency.
    pub p50_ms: f64,
    /// 99th percentile latency.
    pub p99_ms: f64,
}

/// Percentile (0..=100) of sorted microsecond samples, in milliseconds.
pub fn percentile_ms(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[idx.min(sorted.len() - 1)] as f64 / 1000.0
}

/// GETs the URLs (round robin per task, offset by task) with the bearer key.
pub async fn run(urls: Arc<Vec<String>>, bearer: Option<&str>, concurrency: usize, duration: Duration) -> LoadStats {
    let client = reqwest::Client::builder().pool_max_idle_per_host(concurrency).build().unwrap_or_default();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..concurrency {
        let client = client.clone();
        let urls = urls.clone();
        let bearer = bearer.map(str::to_owned);
        tasks.spawn(async move {
            let mut samples = Vec::with_capacity(4096);
            let mut errors = 0u64;
            let mut i = t * 7919;
            while started.elapsed() < duration {
                let url = &urls[i % urls.len()];
                i += 1;
                let t0 = Instant::now();
                let mut req = client.get(url);
                if let Some(b) = &bearer {
                    req = req.bearer_auth(b);
                }
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        samples.push(t0.elapsed().as_micros() as u64);
                    }
                    _ => errors += 1,
                }
            }
            (samples, errors)
        });
    }
    let mut all = Vec::new();
    let mut errors = 0;
    while let Some(Ok((s, e))) = tasks.join_next().await {
        all.extend(s);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    LoadStats {
        ok: all.len() as u64,
        errors,
        rps: all.len() as f64 / elapsed,
        p50_ms: percentile_ms(&all, 50.0),
        p99_ms: percentile_ms(&all, 99.0),
    }
}
