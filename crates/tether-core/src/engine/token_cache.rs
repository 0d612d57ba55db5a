//! A short-lived, per-process cache of fresh access tokens, so repeated reads of one connection
//! skip the database and the decryption.
//!
//! Correctness across replicas rests on three rules:
//! - an entry lives at most `ttl` counted from **before** the database read that produced it,
//!   and never past the moment its token would come within the refresh margin of expiry;
//! - every change this process makes to a connection (refresh, reauth, reconnect, disconnect)
//!   evicts its entry at once;
//! - a disconnect returns only after `ttl` has passed since its commit, so by the time any
//!   caller learns a connection is disconnected, no replica can still serve it from a cache
//!   filled before the commit (the read that filled it started earlier).
//!
//! Forced refreshes and the background refresher never read from it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::tokens::FreshToken;
use crate::ConnectionId;

#[derive(Clone)]
struct Entry {
    token: Arc<FreshToken>,
    valid_until: Instant,
}

/// The cache. With a zero `ttl` it holds nothing.
pub(crate) struct TokenCache {
    ttl: Duration,
    entries: Option<quick_cache::sync::Cache<ConnectionId, Entry>>,
}

impl TokenCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        let entries = (!ttl.is_zero() && capacity > 0).then(|| quick_cache::sync::Cache::new(capacity));
        Self { ttl, entries }
    }

    /// How long a disconnect waits after its commit (the entry lifetime).
    pub(crate) fn ttl(&self) -> Duration {
        if self.entries.is_some() { self.ttl } else { Duration::ZERO }
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<FreshToken> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(&id)?;
        if Instant::now() < entry.valid_until {
            Some((*entry.token).clone())
        } else {
            entries.remove(&id);
            None
        }
    }

    /// Caches `token`, read by a database query that started at `read_started`, to be served
    /// while it stays valid for at least `margin`.
    pub(crate) fn insert(&self, token: &FreshToken, read_started: Instant, margin: Duration) {
        let Some(entries) = &self.entries else { return };
        let mut lifetime = self.ttl;
        if let Some(expires_at) = token.expires_at {
            lifetime = lifetime.min(remaining(expires_at, Utc::now(), margin));
        }
        if lifetime.is_zero() {
            return;
        }
        entries.insert(
            token.connection_id,
            Entry { token: Arc::new(token.clone()), valid_until: read_started + lifetime },
        );
    }

    pub(crate) fn evict(&self, id: ConnectionId) {
        if let Some(entries) = &self.entries {
            entries.remove(&id);
        }
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
    use secrecy::SecretString;

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

    #[test]
    fn entries_live_from_the_read_start_and_never_into_the_margin() {
        let cache = TokenCache::new(Duration::from_secs(60), 10);
        let margin = Duration::from_secs(300);
        let fresh = token(Some(3600));
        cache.insert(&fresh, Instant::now(), margin);
        assert!(cache.get(fresh.connection_id).is_some());
        cache.evict(fresh.connection_id);
        assert!(cache.get(fresh.connection_id).is_none());

        // A read that started longer ago than the TTL is not cached at all.
        let old = token(Some(3600));
        cache.insert(&old, Instant::now() - Duration::from_secs(61), margin);
        assert!(cache.get(old.connection_id).is_none());

        // A token 301 s from expiry may be served for 1 s at most; one inside the margin not at all.
        let closing = token(Some(301));
        let inside = token(Some(299));
        cache.insert(&closing, Instant::now(), margin);
        cache.insert(&inside, Instant::now(), margin);
        assert!(cache.get(inside.connection_id).is_none());
        let entry = cache.entries.as_ref().unwrap().get(&closing.connection_id).unwrap();
        assert!(entry.valid_until <= Instant::now() + Duration::from_secs(1));
    }

    #[test]
    fn zero_ttl_disables_the_cache() {
        let cache = TokenCache::new(Duration::ZERO, 10);
        let t = token(None);
        cache.insert(&t, Instant::now(), Duration::ZERO);
        assert!(cache.get(t.connection_id).is_none());
        assert_eq!(cache.ttl(), Duration::ZERO);
    }
}
