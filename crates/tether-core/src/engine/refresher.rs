//! The background refresher: renews connections ahead of expiry with nobody asking.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::Tether;
use super::tokens::jitter_fraction;
use crate::{Connection, ConnectionId, EventKind, NewEvent, StoredTokens, TokenSet};

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

/// A refresh the provider answered, waiting to be stored. Its permit counts it among the
/// answers the writer has yet to store (bounded like the provider places).
struct Renewal {
    id: ConnectionId,
    holder: Arc<str>,
    tokens: TokenSet,
    provider: String,
    _unwritten: OwnedSemaphorePermit,
}

/// A connection the sweep holds the refresh lease of (until `until`), with the tokens read
/// under it, waiting for a place.
struct Claimed {
    conn: Connection,
    stored: StoredTokens,
    holder: Arc<str>,
    until: chrono::DateTime<Utc>,
}

/// What a renewal needs besides its connection: its provider place, and the way to the
/// writer.
struct Renewing {
    place: OwnedSemaphorePermit,
    unwritten: Arc<Semaphore>,
    done: mpsc::UnboundedSender<Renewal>,
}

/// Most renewals stored in one transaction.
const WRITE_BATCH: usize = 512;

impl Tether {
    /// One sweep: refreshes every due connection (bounded concurrency). Returns how many
    /// connections were renewed.
    ///
    /// Three parts run at once, so that no provider place waits for the database:
    /// - a claimer takes the refresh leases of due connections in batches (one conditional
    ///   update per batch, before any provider is called, so each connection is refreshed once
    ///   however many replicas sweep) and keeps up to half the concurrency claimed
    ///   ahead of the free places;
    /// - up to `concurrency` renewals call their provider, each starting as soon as a place
    ///   frees, with the tokens read under its lease;
    /// - one writer stores the answers that have arrived, and releases their leases, in one
    ///   transaction per batch, with their `refreshed` events. A place frees when its provider
    ///   answered; answers waiting for the writer are bounded by the concurrency too.
    pub async fn refresh_due(&self, settings: &RefresherSettings) -> crate::Result<usize> {
        let concurrency = settings.concurrency.max(1);
        let lease_ttl =
            chrono::Duration::from_std(self.inner.settings.lease_ttl).unwrap_or(chrono::Duration::seconds(30));
        let places = Arc::new(Semaphore::new(concurrency));
        let unwritten = Arc::new(Semaphore::new(concurrency));
        let (done, renewals) = mpsc::unbounded_channel();
        let writer = tokio::spawn(self.clone().store_renewals(renewals));
        let (ahead, mut claimed) = mpsc::channel((concurrency / 2).max(1));
        let claimer = tokio::spawn(self.clone().claim_ahead(settings.clone(), lease_ttl, ahead));
        let mut tasks = tokio::task::JoinSet::new();
        let mut renewed = 0;
        while let Ok(place) = places.clone().acquire_owned().await {
            let Some(Claimed { conn, stored, holder, until }) = claimed.recv().await else { break };
            // A claim that waited for a place until half its lease is gone is given back: the
            // provider's answer might otherwise arrive after another replica took the lease.
            if until - Utc::now() < lease_ttl / 2 {
                let released = self
                    .inner
                    .store
                    .release_refresh_lease(conn.id, &holder, conn.status, conn.last_error.as_deref())
                    .await;
                if let Err(e) = released {
                    tracing::debug!(connection = %conn.id, error = %e, "releasing a stale claim failed");
                }
                continue;
            }
            let renewal = Renewing { place, unwritten: unwritten.clone(), done: done.clone() };
            let engine = self.clone();
            let lead = settings.lead_time;
            tasks.spawn(async move { engine.renew_claimed(conn, stored, holder, renewal, lead).await });
            // Reap finished tasks as the sweep goes: each keeps its memory until joined.
            while let Some(finished) = tasks.try_join_next() {
                if matches!(finished, Ok(true)) {
                    renewed += 1;
                }
            }
        }
        drop(claimed);
        let (claimed_total, failure) = claimer.await.unwrap_or((0, None));
        metrics::gauge!("tether_refresher_due_connections").set(claimed_total as f64);
        drop(done);
        while let Some(finished) = tasks.join_next().await {
            if matches!(finished, Ok(true)) {
                renewed += 1;
            }
        }
        renewed += writer.await.unwrap_or(0);
        match failure {
            Some(e) if renewed == 0 => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "claiming due connections failed; the next sweep retries");
                Ok(renewed)
            }
            None => Ok(renewed),
        }
    }

    /// The sweep's claimer: leases due connections, as many per claim as `ahead` has room for,
    /// until `settings.batch` are claimed or none is due. Returns how many it claimed and the
    /// error that stopped it, if one did.
    async fn claim_ahead(
        self,
        settings: RefresherSettings,
        lease_ttl: chrono::Duration,
        ahead: mpsc::Sender<Claimed>,
    ) -> (u64, Option<crate::Error>) {
        let lead = chrono::Duration::from_std(settings.lead_time).unwrap_or(chrono::Duration::MAX);
        let before = Utc::now() + lead;
        let mut claimed_total = 0u64;
        while claimed_total < settings.batch {
            let Ok(first) = ahead.reserve().await else { break };
            let room = (ahead.capacity() as u64 + 1).min(settings.batch - claimed_total);
            let claim_at = Utc::now();
            let until = claim_at + lease_ttl;
            let holder: Arc<str> = match crate::random_token(6) {
                Ok(tag) => format!("{}:{tag}", self.inner.holder_id).into(),
                Err(e) => return (claimed_total, Some(e)),
            };
            let batch = match self.inner.store.claim_due_for_refresh(before, claim_at, &holder, until, room).await {
                Ok(batch) => batch,
                Err(e) => return (claimed_total, Some(e)),
            };
            if claimed_total == 0 {
                // Lag: how far past its renewal deadline (expiry minus lead time) the most
                // urgent due connection is. Zero when the refresher keeps up.
                let lag = batch
                    .first()
                    .and_then(|(c, _)| c.expires_at)
                    .map_or(0.0, |e| ((claim_at - (e - lead)).num_milliseconds() as f64 / 1000.0).max(0.0));
                metrics::gauge!("tether_refresher_lag_seconds").set(lag);
            }
            if batch.is_empty() {
                break;
            }
            claimed_total += batch.len() as u64;
            let mut batch =
                batch.into_iter().map(|(conn, stored)| Claimed { conn, stored, holder: holder.clone(), until });
            if let Some(item) = batch.next() {
                first.send(item);
            }
            for item in batch {
                // Room was reserved by the capacity read above; only this task sends.
                if ahead.send(item).await.is_err() {
                    return (claimed_total, None);
                }
            }
        }
        (claimed_total, None)
    }

    /// Refreshes one connection this sweep holds the lease of. A provider's answer goes to the
    /// writer (`done`); failures are handled here. Connections the batch path does not handle
    /// (no refresh path, backing off, per-instance lookup failing) are released and go through
    /// the per-connection path. Returns true when that path renewed the connection.
    async fn renew_claimed(
        &self,
        conn: Connection,
        stored: StoredTokens,
        holder: Arc<str>,
        renewing: Renewing,
        lead: Duration,
    ) -> bool {
        let id = conn.id;
        let provider = match self.connection_provider(&conn).await {
            Ok(p) if p.provider.can_refresh(&stored.tokens) && !self.backing_off(id, Utc::now()) => p,
            _ => {
                let released =
                    self.inner.store.release_refresh_lease(id, &holder, conn.status, conn.last_error.as_deref()).await;
                if let Err(e) = released {
                    tracing::debug!(connection = %id, error = %e, "releasing a claimed lease failed");
                    return false;
                }
                return match self.refresh_if_expiring(id, lead).await {
                    Ok(t) => t
                        .expires_at
                        .is_none_or(|e| e > Utc::now() + chrono::Duration::from_std(lead).unwrap_or_default()),
                    Err(e) => {
                        tracing::debug!(connection = %id, error = %e, "background refresh did not renew");
                        false
                    }
                };
            }
        };
        match self.call_refresh(&provider, &stored.tokens).await {
            Ok(tokens) => {
                // The place frees once the answer is counted among those awaiting the writer;
                // when the writer falls behind, that wait holds the place (back-pressure).
                let Ok(unwritten) = renewing.unwritten.acquire_owned().await else { return false };
                drop(renewing.place);
                let renewal = Renewal { id, holder, tokens, provider: provider.id.to_string(), _unwritten: unwritten };
                if renewing.done.send(renewal).is_err() {
                    tracing::error!(connection = %id, "the refresh writer stopped; new tokens not saved");
                }
            }
            Err(e) => {
                if let Err(e) = self.refresh_failed(&conn, &provider, &stored.tokens, &holder, e, false).await {
                    tracing::debug!(connection = %id, error = %e, "background refresh did not renew");
                }
            }
        }
        false
    }

    /// The sweep's writer: stores the renewals that have arrived and their `refreshed` events,
    /// all in one transaction; repeats until every renewal task is done. Returns how many were
    /// stored.
    async fn store_renewals(self, mut renewals: mpsc::UnboundedReceiver<Renewal>) -> usize {
        let mut stored = 0;
        let mut batch = Vec::with_capacity(WRITE_BATCH);
        let endpoints = self.inner.settings.webhooks.endpoints_for(EventKind::Refreshed);
        while renewals.recv_many(&mut batch, WRITE_BATCH).await > 0 {
            let items: Vec<(ConnectionId, &str, &TokenSet)> =
                batch.iter().map(|r| (r.id, &*r.holder, &r.tokens)).collect();
            match self.inner.store.complete_refreshes(&items, Utc::now(), Some(&endpoints)).await {
                Ok((written, events_recorded)) => {
                    let mut events = Vec::with_capacity(batch.len());
                    for (renewal, ok) in batch.iter().zip(written) {
                        if ok {
                            self.forget_local(renewal.id);
                            tracing::info!(connection = %renewal.id, provider = %renewal.provider, "tokens refreshed");
                            events.push(renewal.id);
                        } else {
                            // The lease expired while the provider answered and someone else
                            // took it: these tokens are not stored, and nobody got them.
                            tracing::error!(connection = %renewal.id, "refresh lease lost before the new tokens were saved");
                        }
                    }
                    stored += events.len();
                    if !events_recorded {
                        self.record_refreshed(events).await;
                    } else if !endpoints.is_empty() && !events.is_empty() {
                        self.inner.webhook_wakeup.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, count = batch.len(), "storing refreshed tokens failed");
                }
            }
            // Frees the renewals' places for the next claims.
            batch.clear();
        }
        stored
    }

    /// Records a `refreshed` event for each connection, for stores that did not record them
    /// with the tokens: one insert, or one by one (each with its webhook deliveries) when an
    /// endpoint subscribes to them.
    async fn record_refreshed(&self, ids: Vec<ConnectionId>) {
        if ids.is_empty() {
            return;
        }
        if self.inner.settings.webhooks.endpoints_for(EventKind::Refreshed).is_empty() {
            let events =
                ids.iter().map(|&id| NewEvent { connection_id: id, kind: EventKind::Refreshed, message: None });
            if let Err(e) = self.inner.store.record_events(events.collect()).await {
                tracing::warn!(error = %e, count = ids.len(), "could not record refreshed events");
            }
        } else {
            for id in ids {
                self.record(id, EventKind::Refreshed, None).await;
            }
        }
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
