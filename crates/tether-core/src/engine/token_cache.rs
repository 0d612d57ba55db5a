//! A per-process cache of fresh access tokens, so repeated reads of one connection skip the
//! database and the decryption.
//!
//! An entry is served on one of two grounds, and never once its token would come within the
//! refresh margin of expiry:
//! - **young**: at most `ttl` counted from **before** the database read that produced it. A
//!   disconnect returns only after `ttl` has passed since its commit, so by the time any caller
//!   learns a connection is disconnected, no replica serves it from a cache filled before the
//!   commit (the read that filled it started earlier).
//! - **followed**: up to `max_age`, while this process follows the change feed (the engine's
//!   `run_token_cache_feed` polls the connections changed since its previous poll and
//!   [applies](TokenCache::apply_changes) them here: an entry whose row changed is dropped).
//!   Such an entry is served only while the last applied poll started less than `trust` ago,
//!   and only if its read started after the last poll applied when it was stored, so it is
//!   never older than what the feed has already been told. A disconnect waits `trust` after
//!   its commit: any poll that started after the commit saw it.
//!
//! Every change this process makes to a connection (refresh, reauth, reconnect, disconnect)
//! evicts its entry at once. Forced refreshes and the background refresher never read from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::tokens::FreshToken;
use crate::{ConnectionChange, ConnectionId, ConnectionStatus};

/// How the cache is configured (from [`EngineSettings`](crate::EngineSettings)).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheSettings {
    /// Lifetime of a young entry (zero: none).
    pub ttl: Duration,
    /// Lifetime of a followed entry (zero: the change feed is not used).
    pub max_age: Duration,
    /// How often the change feed is polled.
    pub poll_interval: Duration,
    /// Connections held at most (zero: no cache).
    pub capacity: usize,
}

/// The state of a connection's row a token was read from: any change to the row moves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RowStamp {
    /// `updated_at` of the row.
    pub updated_at: DateTime<Utc>,
    /// Row version.
    pub version: i64,
}

#[derive(Clone)]
struct Entry {
    token: Arc<FreshToken>,
    young_until: Instant,
    followed_until: Option<Instant>,
    stamp: Option<RowStamp>,
}

/// Following the change feed.
struct Feed {
    max_age: Duration,
    poll_interval: Duration,
    trust: Duration,
    origin: Instant,
    /// Nanoseconds from `origin` to the start of the last applied poll, plus one (0: none yet).
    current_since: AtomicU64,
    /// The start of the last applied poll. Storing a followed entry and applying a poll take it
    /// in turn, so an entry read before a poll started is never stored after the poll dropped
    /// its stale predecessor.
    applied: Mutex<Option<Instant>>,
}

impl Feed {
    fn current(&self, now: Instant) -> bool {
        match self.current_since.load(Ordering::Acquire) {
            0 => false,
            n => now < self.origin + Duration::from_nanos(n - 1) + self.trust,
        }
    }
}

/// The cache. With a zero capacity, or a zero `ttl` and no feed, it holds nothing.
pub(crate) struct TokenCache {
    ttl: Duration,
    feed: Option<Feed>,
    entries: Option<quick_cache::sync::Cache<ConnectionId, Entry>>,
}

/// A followed entry is served while the last applied poll started less than this many poll
/// intervals ago: a poll or two may be slow or fail without emptying the cache.
const TRUSTED_POLLS: u32 = 4;

impl TokenCache {
    pub(crate) fn new(settings: CacheSettings) -> Self {
        let feed =
            (settings.capacity > 0 && !settings.max_age.is_zero() && !settings.poll_interval.is_zero()).then(|| Feed {
                max_age: settings.max_age,
                poll_interval: settings.poll_interval,
                trust: settings.poll_interval * TRUSTED_POLLS,
                origin: Instant::now(),
                current_since: AtomicU64::new(0),
                applied: Mutex::new(None),
            });
        let entries = (settings.capacity > 0 && (!settings.ttl.is_zero() || feed.is_some()))
            .then(|| quick_cache::sync::Cache::new(settings.capacity));
        Self { ttl: settings.ttl, feed, entries }
    }

    /// How long a disconnect waits after its commit: until no replica configured like this one
    /// can serve the connection's token any more.
    pub(crate) fn disconnect_wait(&self) -> Duration {
        if self.entries.is_none() {
            return Duration::ZERO;
        }
        self.feed.as_ref().map_or(self.ttl, |f| self.ttl.max(f.trust))
    }

    /// How often the change feed should be polled (`None`: this cache does not follow it).
    pub(crate) fn poll_interval(&self) -> Option<Duration> {
        self.feed.as_ref().map(|f| f.poll_interval)
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<FreshToken> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(&id)?;
        let now = Instant::now();
        let followed = entry.followed_until.filter(|&until| now < until);
        if now < entry.young_until || followed.is_some_and(|_| self.feed.as_ref().is_some_and(|f| f.current(now))) {
            return Some((*entry.token).clone());
        }
        if followed.is_none() {
            entries.remove(&id);
        }
        // Otherwise the feed is behind: the entry is kept for when it catches up (its first
        // poll then covers everything that changed meanwhile).
        None
    }

    /// Caches `token`, read by a database query that started at `read_started` from a row in
    /// state `stamp` (`None`: not straight from a row, e.g. just refreshed), to be served while
    /// it stays valid for at least `margin`.
    pub(crate) fn insert(&self, token: &FreshToken, stamp: Option<RowStamp>, read_started: Instant, margin: Duration) {
        let Some(entries) = &self.entries else { return };
        let valid_for = token.expires_at.map(|expires_at| remaining(expires_at, Utc::now(), margin));
        let capped = |lifetime: Duration| valid_for.map_or(lifetime, |v| v.min(lifetime));
        let young = capped(self.ttl);
        let mut entry =
            Entry { token: Arc::new(token.clone()), young_until: read_started + young, followed_until: None, stamp };
        match (&self.feed, stamp) {
            (Some(feed), Some(_)) => {
                let applied = feed.applied.lock().unwrap_or_else(|p| p.into_inner());
                if applied.is_some_and(|poll_started| read_started >= poll_started) {
                    let followed = capped(feed.max_age);
                    entry.followed_until = (!followed.is_zero()).then_some(read_started + followed);
                }
                if entry.followed_until.is_some() || !young.is_zero() {
                    entries.insert(token.connection_id, entry);
                }
            }
            _ if !young.is_zero() => entries.insert(token.connection_id, entry),
            _ => {}
        }
    }

    pub(crate) fn evict(&self, id: ConnectionId) {
        if let Some(entries) = &self.entries {
            entries.remove(&id);
        }
    }

    /// Applies one poll of the change feed that started at `poll_started`: drops every entry
    /// whose row is not in the state it was read in any more. `complete = false` (the poll hit
    /// its limit) drops everything. From now on followed entries may be served until
    /// `poll_started + trust`.
    pub(crate) fn apply_changes(&self, poll_started: Instant, changes: &[ConnectionChange], complete: bool) {
        let Some(feed) = &self.feed else { return };
        let mut applied = feed.applied.lock().unwrap_or_else(|p| p.into_inner());
        if applied.is_some_and(|previous| previous > poll_started) {
            return;
        }
        *applied = Some(poll_started);
        if let Some(entries) = &self.entries {
            if complete {
                for change in changes {
                    let current = RowStamp { updated_at: change.updated_at, version: change.version };
                    entries.remove_if(&change.id, |e| {
                        change.status != ConnectionStatus::Active || e.stamp != Some(current)
                    });
                }
            } else {
                entries.clear();
            }
        }
        let since = poll_started.saturating_duration_since(feed.origin).as_nanos();
        feed.current_since.store(u64::try_from(since).unwrap_or(u64::MAX - 1) + 1, Ordering::Release);
    }
}

/// Time until `expires_at - margin`, zero if already past.
fn remaining(expires_at: DateTime<Utc>, now: DateTime<Utc>, margin: Duration) -> Duration {
    let margin = chrono::Duration::from_std(margin).unwrap_or(chrono::Duration::MAX);
    (expires_at - margin - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use secrecy::{ExposeSecret, SecretString};

    use super::*;

    fn token(expires_in: Option<i64>) -> FreshToken {
        FreshToken {
            connection_id: ConnectionId::new(),
            access_token: SecretString::from("at"),
            token_type: "bearer".into(),
            token_secret: None,
            expires_at: expires_in.map(|s| Utc::now() + chrono::Duration::seconds(s)),
            scopes: Vec::new(),
        }
    }

    fn settings(ttl_ms: u64, max_age_ms: u64, poll_ms: u64) -> CacheSettings {
        CacheSettings {
            ttl: Duration::from_millis(ttl_ms),
            max_age: Duration::from_millis(max_age_ms),
            poll_interval: Duration::from_millis(poll_ms),
            capacity: 10,
        }
    }

    fn stamp(version: i64) -> RowStamp {
        RowStamp { updated_at: DateTime::from_timestamp_millis(1_800_000_000_000).unwrap(), version }
    }

    fn change(id: ConnectionId, row: RowStamp, status: ConnectionStatus) -> ConnectionChange {
        ConnectionChange { id, updated_at: row.updated_at, version: row.version, status }
    }

    #[test]
    fn young_entries_live_from_the_read_start_and_never_into_the_margin() {
        let cache = TokenCache::new(settings(60_000, 0, 0));
        let margin = Duration::from_secs(300);
        let fresh = token(Some(3600));
        cache.insert(&fresh, None, Instant::now(), margin);
        assert!(cache.get(fresh.connection_id).is_some());
        cache.evict(fresh.connection_id);
        assert!(cache.get(fresh.connection_id).is_none());

        // A read that started longer ago than the TTL is not cached at all.
        let old = token(Some(3600));
        cache.insert(&old, None, Instant::now() - Duration::from_secs(61), margin);
        assert!(cache.get(old.connection_id).is_none());

        // A token 301 s from expiry may be served for 1 s at most; one inside the margin not at all.
        let closing = token(Some(301));
        let inside = token(Some(299));
        cache.insert(&closing, None, Instant::now(), margin);
        cache.insert(&inside, None, Instant::now(), margin);
        assert!(cache.get(inside.connection_id).is_none());
        let entry = cache.entries.as_ref().unwrap().get(&closing.connection_id).unwrap();
        assert!(entry.young_until <= Instant::now() + Duration::from_secs(1));
        assert_eq!(cache.disconnect_wait(), Duration::from_secs(60));
    }

    #[test]
    fn zero_ttl_without_the_feed_disables_the_cache() {
        let cache = TokenCache::new(settings(0, 0, 250));
        let t = token(None);
        cache.insert(&t, Some(stamp(1)), Instant::now(), Duration::ZERO);
        assert!(cache.get(t.connection_id).is_none());
        assert_eq!(cache.disconnect_wait(), Duration::ZERO);
        assert_eq!(cache.poll_interval(), None);
    }

    #[test]
    fn followed_entries_are_served_only_while_the_feed_is_current() {
        let cache = TokenCache::new(settings(0, 60_000, 50));
        assert_eq!(cache.disconnect_wait(), Duration::from_millis(200));
        let t = token(Some(3600));
        // No poll applied yet: nothing can be followed, so nothing is stored.
        cache.insert(&t, Some(stamp(1)), Instant::now(), Duration::ZERO);
        assert!(cache.get(t.connection_id).is_none());

        cache.apply_changes(Instant::now(), &[], true);
        cache.insert(&t, Some(stamp(1)), Instant::now(), Duration::ZERO);
        assert_eq!(cache.get(t.connection_id).unwrap().access_token.expose_secret(), "at");
        // Without a poll for longer than the trust (4 intervals), the entry is not served, but
        // kept: once the feed catches up it is served again.
        std::thread::sleep(Duration::from_millis(250));
        assert!(cache.get(t.connection_id).is_none());
        cache.apply_changes(Instant::now(), &[], true);
        assert!(cache.get(t.connection_id).is_some());
    }

    #[test]
    fn a_read_older_than_the_last_applied_poll_is_not_followed() {
        let cache = TokenCache::new(settings(0, 60_000, 1000));
        let read_started = Instant::now();
        cache.apply_changes(Instant::now(), &[], true);
        let t = token(Some(3600));
        cache.insert(&t, Some(stamp(1)), read_started, Duration::ZERO);
        assert!(cache.get(t.connection_id).is_none(), "the poll may already have dropped a change this read predates");
        // A poll older than the one applied is ignored.
        let later = Instant::now();
        cache.apply_changes(later - Duration::from_secs(5), &[], true);
        cache.insert(&t, Some(stamp(1)), later, Duration::ZERO);
        assert!(cache.get(t.connection_id).is_some());
    }

    #[test]
    fn changes_drop_exactly_the_entries_whose_row_moved() {
        let cache = TokenCache::new(settings(0, 60_000, 1000));
        cache.apply_changes(Instant::now(), &[], true);
        let (same, refreshed, reauth, unstamped) = (token(None), token(None), token(None), token(None));
        let now = Instant::now();
        for t in [&same, &refreshed, &reauth] {
            cache.insert(t, Some(stamp(1)), now, Duration::ZERO);
        }
        // A token stored straight after a refresh is young only: not followed.
        cache.insert(&unstamped, None, now, Duration::ZERO);
        assert!(cache.get(unstamped.connection_id).is_none());
        cache.apply_changes(
            Instant::now(),
            &[
                change(same.connection_id, stamp(1), ConnectionStatus::Active),
                change(refreshed.connection_id, stamp(2), ConnectionStatus::Active),
                change(reauth.connection_id, stamp(1), ConnectionStatus::ReauthRequired),
            ],
            true,
        );
        assert!(cache.get(same.connection_id).is_some(), "the row is still as it was read");
        assert!(cache.get(refreshed.connection_id).is_none());
        assert!(cache.get(reauth.connection_id).is_none());
        // A poll that hit its limit drops everything.
        cache.apply_changes(Instant::now(), &[], false);
        assert!(cache.get(same.connection_id).is_none());
    }

    #[test]
    fn young_and_followed_together_wait_for_the_longer() {
        let cache = TokenCache::new(settings(2000, 60_000, 250));
        assert_eq!(cache.disconnect_wait(), Duration::from_secs(2));
        assert_eq!(cache.poll_interval(), Some(Duration::from_millis(250)));
        // Young entries are served before any poll.
        let t = token(Some(3600));
        cache.insert(&t, Some(stamp(1)), Instant::now(), Duration::ZERO);
        assert!(cache.get(t.connection_id).is_some());
    }
}
