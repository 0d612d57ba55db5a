//! Following the change feed, so cached tokens can live long and still never outlive a change
//! another replica made: each poll lists the connections changed since a little before the
//! previous successful poll and hands them to the token cache, which drops what moved.

use std::time::{Duration, Instant};

use chrono::Utc;

use super::Tether;

/// How far before the previous successful poll's start each poll reaches back. A change is
/// stamped (`updated_at`, the writer's clock) just before its commit; the overlap covers the
/// time from stamp to commit and the difference between replicas' clocks.
pub(crate) const FEED_OVERLAP: Duration = Duration::from_secs(2);

/// Most changes one poll applies; a poll that finds more drops the whole cache instead.
pub(crate) const FEED_LIMIT: u64 = 10_000;

impl Tether {
    /// Follows the change feed for the token cache until `shutdown` resolves: one poll every
    /// [`token_cache_poll_interval`](crate::EngineSettings::token_cache_poll_interval). Without
    /// it, cached tokens are served only on the short
    /// [`token_cache_ttl`](crate::EngineSettings::token_cache_ttl) ground. Returns at once when
    /// the cache does not follow the feed (`token_cache_max_age` or the capacity is zero).
    pub async fn run_token_cache_feed(&self, shutdown: impl std::future::Future<Output = ()>) {
        let Some(interval) = self.inner.token_cache.poll_interval() else { return };
        tokio::pin!(shutdown);
        let mut since = None;
        let mut failing = false;
        loop {
            match self.poll_token_cache_feed(since).await {
                Ok(started_at) => {
                    if failing {
                        tracing::info!("token cache feed: polling again");
                        failing = false;
                    }
                    since = Some(started_at);
                }
                Err(e) => {
                    metrics::counter!("tether_token_cache_feed_failures_total").increment(1);
                    if !failing {
                        tracing::warn!(error = %e, "token cache feed: poll failed; cached tokens are served only while young");
                        failing = true;
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// One poll: the connections changed since `FEED_OVERLAP` before `since` (the start of the
    /// previous successful poll; `None` for the first), applied to the cache. Returns this
    /// poll's start, to pass as `since` next time.
    pub(crate) async fn poll_token_cache_feed(
        &self,
        since: Option<chrono::DateTime<Utc>>,
    ) -> crate::Result<chrono::DateTime<Utc>> {
        let started = Instant::now();
        let started_at = Utc::now();
        let from = since.unwrap_or(started_at) - chrono::Duration::from_std(FEED_OVERLAP).unwrap_or_default();
        let changes = self.inner.store.changed_connections(from, FEED_LIMIT + 1).await?;
        let complete = changes.len() as u64 <= FEED_LIMIT;
        self.inner.token_cache.apply_changes(started, &changes, complete);
        if !complete {
            metrics::counter!("tether_token_cache_feed_overflows_total").increment(1);
            tracing::debug!(limit = FEED_LIMIT, "token cache feed: too many changes in one poll; cache emptied");
        }
        Ok(started_at)
    }
}
