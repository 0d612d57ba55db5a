//! The background refresher: renews connections ahead of expiry with nobody asking.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::Tether;
use super::tokens::jitter_fraction;

/// Background refresher settings.
#[derive(Debug, Clone)]
pub struct RefresherSettings {
    /// Renew connections whose token expires within this lead time.
    pub lead_time: Duration,
    /// Time between sweeps (jittered by up to 20 %).
    pub interval: Duration,
    /// Refreshes running at once.
    pub concurrency: usize,
    /// Connections claimed per sweep.
    pub batch: u64,
}

impl Default for RefresherSettings {
    fn default() -> Self {
        Self { lead_time: Duration::from_secs(10 * 60), interval: Duration::from_secs(30), concurrency: 8, batch: 500 }
    }
}

impl Tether {
    /// One sweep: refreshes every due connection (bounded concurrency). Returns how many
    /// connections were renewed.
    pub async fn refresh_due(&self, settings: &RefresherSettings) -> crate::Result<usize> {
        let now = Utc::now();
        let before = now + chrono::Duration::from_std(settings.lead_time).unwrap_or(chrono::Duration::MAX);
        let due = self.inner.store.due_for_refresh(before, now, settings.batch).await?;
        metrics::gauge!("tether_refresher_due_connections").set(due.len() as f64);
        // Lag: how far past its renewal deadline (expiry minus lead time) the most urgent due
        // connection is. Zero when the refresher keeps up.
        let lag = match due.first() {
            Some(id) => match self.inner.store.connection(*id).await {
                Ok(Some(c)) => c
                    .expires_at
                    .map_or(0.0, |e| ((now - (e - (before - now))).num_milliseconds() as f64 / 1000.0).max(0.0)),
                _ => 0.0,
            },
            None => 0.0,
        };
        metrics::gauge!("tether_refresher_lag_seconds").set(lag);
        let permits = Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for id in due {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                break;
            };
            let engine = self.clone();
            let lead = settings.lead_time;
            tasks.spawn(async move {
                let _permit = permit;
                match engine.refresh_if_expiring(id, lead).await {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::debug!(connection = %id, error = %e, "background refresh did not renew");
                        false
                    }
                }
            });
        }
        let mut renewed = 0;
        while let Some(done) = tasks.join_next().await {
            if matches!(done, Ok(true)) {
                renewed += 1;
            }
        }
        Ok(renewed)
    }

    /// Runs sweeps until `shutdown` resolves.
    pub async fn run_refresher(&self, settings: RefresherSettings, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.refresh_due(&settings).await {
                tracing::warn!(error = %e, "background refresh sweep failed");
            }
            if let Err(e) = self.inner.store.purge_flows(Utc::now() - chrono::Duration::hours(1)).await {
                tracing::debug!(error = %e, "purging old flows failed");
            }
            let pause = settings.interval.mul_f64(0.8 + 0.4 * jitter_fraction());
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}
