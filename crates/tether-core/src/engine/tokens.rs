//! Fresh tokens: single-flight refresh inside the process (a mutex per connection) and across
//! processes (a lease row in the database), failure classification and backoff, disconnect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use super::Tether;
use super::token_cache::RowStamp;
use crate::{
    ConfiguredProvider, Connection, ConnectionId, ConnectionStatus, Error, EventKind, LeaseOutcome, ProviderErrorKind,
    Result, RevokeOutcome, StoredTokens, TokenSet,
};

/// An access token ready to use. `Debug` redacts it.
#[derive(Clone)]
pub struct FreshToken {
    /// The connection.
    pub connection_id: ConnectionId,
    /// The access token.
    pub access_token: SecretString,
    /// Token type (`bearer`; `oauth1` for OAuth 1.0a connections).
    pub token_type: String,
    /// The OAuth 1.0a token secret (only for OAuth 1.0a connections).
    pub token_secret: Option<SecretString>,
    /// Expiry (`None`: does not expire).
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for FreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshToken")
            .field("connection_id", &self.connection_id)
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Result of a disconnect.
#[derive(Debug, Clone)]
pub struct DisconnectOutcome {
    /// Whether the provider confirmed revocation.
    pub revoked: bool,
    /// Why revocation failed or was skipped, if it did not happen.
    pub revoke_error: Option<String>,
}

/// Per-process state of refreshes: one mutex per connection and the backoff after failures.
#[derive(Default)]
pub(crate) struct Flights {
    locks: Mutex<HashMap<ConnectionId, Arc<tokio::sync::Mutex<()>>>>,
    backoff: Mutex<HashMap<ConnectionId, Backoff>>,
}

#[derive(Clone, Copy)]
struct Backoff {
    failures: u32,
    next_attempt: DateTime<Utc>,
}

impl Flights {
    fn lock_for(&self, id: ConnectionId) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks.entry(id).or_default().clone()
    }

    fn backoff_remaining(&self, id: ConnectionId, now: DateTime<Utc>) -> Option<Duration> {
        let map = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&id).and_then(|b| (b.next_attempt - now).to_std().ok()).filter(|d| !d.is_zero())
    }

    fn record_failure(&self, id: ConnectionId, now: DateTime<Utc>, at_least: Option<Duration>) -> Duration {
        let mut map = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let failures = map.get(&id).map_or(0, |b| b.failures) + 1;
        // 1 s, 2 s, 4 s ... capped at 5 min, with up to 25 % jitter.
        let base = Duration::from_secs(1u64 << failures.min(9).saturating_sub(1)).min(Duration::from_secs(300));
        let jitter = base.mul_f64(jitter_fraction() * 0.25);
        let wait = (base + jitter).max(at_least.unwrap_or_default());
        let next_attempt = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        map.insert(id, Backoff { failures, next_attempt });
        wait
    }

    pub(crate) fn forget(&self, id: ConnectionId) {
        self.backoff.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }
}

/// A number in [0, 1) from the OS random source (0.5 if it is unavailable).
pub(crate) fn jitter_fraction() -> f64 {
    let mut b = [0u8; 4];
    match getrandom::fill(&mut b) {
        Ok(()) => f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0),
        Err(_) => 0.5,
    }
}

fn fresh(id: ConnectionId, t: &TokenSet, fallback_scopes: &[String]) -> FreshToken {
    FreshToken {
        connection_id: id,
        access_token: t.access_token.clone(),
        token_type: t.token_type.clone(),
        token_secret: t.token_secret.clone(),
        expires_at: t.expires_at,
        scopes: t.scopes.clone().unwrap_or_else(|| fallback_scopes.to_vec()),
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Tether {
    /// One connection (without secrets).
    pub async fn connection(&self, id: ConnectionId) -> Result<Connection> {
        self.inner.store.connection(id).await?.ok_or_else(|| Error::NotFound { what: "connection", id: id.to_string() })
    }

    /// An access token valid for at least the configured margin, refreshing first if needed.
    ///
    /// Concurrent callers share one refresh: in this process through a per-connection mutex,
    /// across processes through the lease in the database. Callers that did not win wait for
    /// the winner's tokens.
    pub async fn access_token(&self, id: ConnectionId) -> Result<FreshToken> {
        if let Some(token) = self.inner.token_cache.get(id) {
            return Ok(token);
        }
        let read_started = std::time::Instant::now();
        let margin = self.inner.settings.refresh_margin;
        let (token, stamp) = self.token_stamped(id, false, margin).await?;
        self.inner.token_cache.insert(&token, stamp, read_started, margin);
        Ok(token)
    }

    /// Forces a refresh (unless another caller refreshed after this call began) and returns
    /// the new token.
    pub async fn refresh_now(&self, id: ConnectionId) -> Result<FreshToken> {
        self.token(id, true, self.inner.settings.refresh_margin).await
    }

    /// Refreshes when the token expires within `lead` (used by the background refresher).
    pub(crate) async fn refresh_if_expiring(&self, id: ConnectionId, lead: Duration) -> Result<FreshToken> {
        self.token(id, false, lead.max(self.inner.settings.refresh_margin)).await
    }

    async fn token(&self, id: ConnectionId, force: bool, margin: Duration) -> Result<FreshToken> {
        Ok(self.token_stamped(id, force, margin).await?.0)
    }

    /// [`token`](Self::token), with the state of the row the token was read from when it came
    /// straight from the database (what the token cache compares with the change feed).
    async fn token_stamped(
        &self,
        id: ConnectionId,
        force: bool,
        margin: Duration,
    ) -> Result<(FreshToken, Option<RowStamp>)> {
        // Hot path: one read, one decryption (the refresh token stays sealed). Callers that
        // expect to refresh (forced, or the refresher) read the refresh token at once instead
        // of reading the row twice.
        let expect_refresh = force || margin > self.inner.settings.refresh_margin;
        let (conn, quick) = self.live(id, expect_refresh).await?;
        let now = Utc::now();
        if !force && quick.tokens.is_fresh(now, chrono_of(margin)) {
            let stamp = RowStamp { updated_at: conn.updated_at, version: quick.version };
            return Ok((fresh(id, &quick.tokens, &conn.scopes), Some(stamp)));
        }
        let stored = if expect_refresh { quick } else { self.live(id, true).await?.1 };
        let provider = self.provider(conn.provider.as_str())?;
        if !provider.provider.can_refresh(&stored.tokens) {
            if stored.tokens.is_valid(now) && !force {
                return Ok((fresh(id, &stored.tokens, &conn.scopes), None));
            }
            if force {
                return Err(Error::provider(
                    provider.id.as_str(),
                    ProviderErrorKind::Unsupported,
                    "this connection's tokens cannot be refreshed",
                ));
            }
            return self
                .mark_reauth_required(id, "the access token expired and the provider issued no way to renew it")
                .await;
        }
        let provider = self.connection_provider(&conn).await?;
        Ok((self.refresh_single_flight(&conn, &provider, stored, force, margin).await?, None))
    }

    /// Asks the provider whose the connection's token is (its identity endpoint), with a token
    /// valid for at least the margin: a liveness check for tokens that never expire (Mastodon,
    /// GitHub OAuth apps), whose revocation by the user is otherwise only noticed at the next
    /// API call. A token the provider refuses is handled like
    /// [`token_rejected`](Self::token_rejected): renewed and checked once more when it can be,
    /// otherwise the connection becomes `reauth_required`. Fails with a protocol error when the
    /// token now belongs to another account. Returns the account as the provider names it.
    pub async fn verify_connection(&self, id: ConnectionId) -> Result<crate::AccountIdentity> {
        let mut renewed = false;
        loop {
            self.access_token(id).await?;
            let (conn, stored) = self
                .inner
                .store
                .connection_and_tokens(id, false)
                .await?
                .ok_or_else(|| Error::NotFound { what: "connection", id: id.to_string() })?;
            let stored = stored.ok_or_else(|| Error::Disconnected(id.to_string()))?;
            let provider = self.connection_provider(&conn).await?;
            match provider.fetch_account(&self.inner.http, &stored.tokens).await {
                Ok(account) => {
                    let account = super::instances::qualified(account, provider.settings.instance.as_ref());
                    if account.id != conn.account.id {
                        return Err(Error::provider(
                            provider.id.as_str(),
                            ProviderErrorKind::Protocol,
                            "the token now belongs to another account than the connection's",
                        ));
                    }
                    return Ok(account);
                }
                Err(Error::Provider { kind: ProviderErrorKind::InvalidGrant, .. }) if !renewed => {
                    self.token_rejected(id).await?;
                    renewed = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// The provider just refused this connection's access token (HTTP 401 from its API):
    /// refreshes it when it can be renewed; otherwise the grant is gone, so the connection
    /// becomes `reauth_required` (with an event) and this fails with
    /// [`Error::ReauthRequired`].
    pub async fn token_rejected(&self, id: ConnectionId) -> Result<FreshToken> {
        let (conn, stored) = self.live(id, true).await?;
        let provider = self.provider(conn.provider.as_str())?;
        if provider.provider.can_refresh(&stored.tokens) {
            return self.refresh_now(id).await;
        }
        tracing::warn!(connection = %id, provider = %provider.id, "token refused and not renewable: reauth required");
        self.mark_reauth_required(id, "the provider refused the access token (HTTP 401) and it cannot be renewed").await
    }

    /// A connection that can still be used and its tokens, from one read: `reauth_required`,
    /// `disconnected` (or tokens gone) and unknown ids are the matching errors. Without
    /// `with_refresh_token` the refresh token is not opened (the hot path).
    pub(super) async fn live(&self, id: ConnectionId, with_refresh_token: bool) -> Result<(Connection, StoredTokens)> {
        let (conn, tokens) = self
            .inner
            .store
            .connection_and_tokens(id, with_refresh_token)
            .await?
            .ok_or_else(|| Error::NotFound { what: "connection", id: id.to_string() })?;
        match conn.status {
            ConnectionStatus::ReauthRequired => Err(Error::ReauthRequired(id.to_string())),
            ConnectionStatus::Disconnected => Err(Error::Disconnected(id.to_string())),
            _ => {
                let tokens = tokens.ok_or_else(|| Error::Disconnected(id.to_string()))?;
                Ok((conn, tokens))
            }
        }
    }

    /// The grant is gone without a refresh in flight: marks the connection `reauth_required`
    /// with `reason`, forgets its cached token, records the event, and fails with
    /// [`Error::ReauthRequired`].
    async fn mark_reauth_required<T>(&self, id: ConnectionId, reason: &str) -> Result<T> {
        self.inner.store.set_status(id, ConnectionStatus::ReauthRequired, Some(reason)).await?;
        self.inner.token_cache.evict(id);
        self.record(id, EventKind::ReauthRequired, Some(reason.to_owned())).await;
        Err(Error::ReauthRequired(id.to_string()))
    }

    /// Refreshes under the in-process lock and the database lease, starting from `read`: the
    /// tokens (refresh token included) the caller just read.
    async fn refresh_single_flight(
        &self,
        conn: &Connection,
        provider: &ConfiguredProvider,
        read: StoredTokens,
        force: bool,
        margin: Duration,
    ) -> Result<FreshToken> {
        let id = conn.id;
        let seen_version = read.version;
        let lock = self.inner.flights.lock_for(id);
        // Uncontended, the caller's read is still the latest this process knows of; after a
        // wait, another task of this process has probably refreshed: read again.
        let (_in_process, mut known) = match lock.try_lock() {
            Ok(guard) => (guard, Some(read)),
            Err(_) => (lock.lock().await, None),
        };
        let settings = &self.inner.settings;
        let started = tokio::time::Instant::now();
        let stored = loop {
            // Someone (this process or another) may have refreshed while we waited.
            let stored = match known.take() {
                Some(read) => read,
                None => self.live(id, true).await?.1,
            };
            let now = Utc::now();
            if stored.version != seen_version || (!force && stored.tokens.is_fresh(now, chrono_of(margin))) {
                return Ok(fresh(id, &stored.tokens, &conn.scopes));
            }
            if let Some(wait) = self.inner.flights.backoff_remaining(id, now) {
                return serve_or_unavailable(id, &stored.tokens, &conn.scopes, provider, wait, force);
            }
            let until = now + chrono_of(settings.lease_ttl);
            let holder = &self.inner.holder_id;
            // The lease is taken only if the connection is still active at the version read, so
            // the refresh token in hand is the current one: another process may have finished a
            // refresh (and released the lease) between our read and our claim, spending it.
            match self.inner.store.try_acquire_refresh_lease_at_version(id, holder, until, now, stored.version).await? {
                LeaseOutcome::Acquired => break stored,
                // Changed since the read: the next turn reads again and serves the new tokens
                // (or reports the new status).
                LeaseOutcome::Changed => {}
                LeaseOutcome::Held { .. } => {
                    metrics::counter!("tether_refresh_lease_contention_total", "provider" => provider.id.to_string())
                        .increment(1);
                    if started.elapsed() > settings.lease_wait {
                        return serve_or_unavailable(
                            id,
                            &stored.tokens,
                            &conn.scopes,
                            provider,
                            Duration::from_secs(2),
                            force,
                        );
                    }
                    let pause = 40 + (jitter_fraction() * 80.0) as u64;
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
            }
        };
        self.refresh_with_lease(conn, provider, stored, force).await
    }

    async fn refresh_with_lease(
        &self,
        conn: &Connection,
        provider: &ConfiguredProvider,
        stored: StoredTokens,
        force: bool,
    ) -> Result<FreshToken> {
        let id = conn.id;
        let holder = &self.inner.holder_id;
        match self.call_refresh(provider, &stored.tokens).await {
            Ok(new_tokens) => {
                if !self.inner.store.complete_refresh(id, holder, &new_tokens, Utc::now()).await? {
                    // The lease expired while the provider answered and someone else took it:
                    // never hand out tokens that are not persisted.
                    tracing::error!(connection = %id, "refresh lease lost before the new tokens were saved");
                    return Err(Error::TemporarilyUnavailable {
                        provider: provider.id.to_string(),
                        retry_after: Duration::from_secs(1),
                    });
                }
                self.forget_local(id);
                self.record(id, EventKind::Refreshed, None).await;
                tracing::info!(connection = %id, provider = %provider.id, "tokens refreshed");
                Ok(fresh(id, &new_tokens, &conn.scopes))
            }
            Err(e) => self.refresh_failed(conn, provider, &stored.tokens, holder, e, force).await,
        }
    }

    /// Asks the provider for new tokens, counting the outcome and timing the call.
    pub(crate) async fn call_refresh(&self, provider: &ConfiguredProvider, tokens: &TokenSet) -> Result<TokenSet> {
        let started = std::time::Instant::now();
        let result = provider.refresh(&self.inner.http, tokens).await;
        let outcome = match &result {
            Ok(_) => "success",
            Err(Error::Provider { kind: ProviderErrorKind::InvalidGrant, .. }) => "invalid_grant",
            Err(Error::Provider { kind: ProviderErrorKind::Temporary { .. }, .. }) => "temporary_failure",
            Err(_) => "failure",
        };
        let labels = [("provider", provider.id.to_string()), ("outcome", outcome.to_owned())];
        metrics::counter!("tether_refreshes_total", &labels).increment(1);
        metrics::histogram!("tether_refresh_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
        result
    }

    /// A refresh under `holder`'s lease failed with `e`: releases the lease (a dead grant makes
    /// the connection `reauth_required`), records the event, backs off after other failures,
    /// and serves the still-valid `tokens` where that is right.
    pub(crate) async fn refresh_failed(
        &self,
        conn: &Connection,
        provider: &ConfiguredProvider,
        tokens: &TokenSet,
        holder: &str,
        e: Error,
        force: bool,
    ) -> Result<FreshToken> {
        let id = conn.id;
        let store = &self.inner.store;
        match e {
            Error::Provider { kind: ProviderErrorKind::InvalidGrant, message, .. } => {
                store.release_refresh_lease(id, holder, ConnectionStatus::ReauthRequired, Some(&message)).await?;
                self.inner.token_cache.evict(id);
                self.record(id, EventKind::ReauthRequired, Some(message)).await;
                tracing::warn!(connection = %id, provider = %provider.id, "grant is dead: reauth required");
                Err(Error::ReauthRequired(id.to_string()))
            }
            e => {
                let message = e.to_string();
                store.release_refresh_lease(id, holder, ConnectionStatus::Active, Some(&message)).await?;
                let retry_after = match &e {
                    Error::Provider { kind: ProviderErrorKind::Temporary { retry_after }, .. } => *retry_after,
                    _ => None,
                };
                let wait = self.inner.flights.record_failure(id, Utc::now(), retry_after);
                self.record(id, EventKind::RefreshFailed, Some(message)).await;
                tracing::warn!(connection = %id, provider = %provider.id, error = %e, "refresh failed");
                match e {
                    Error::Provider { kind: ProviderErrorKind::Temporary { .. }, .. } => {
                        serve_or_unavailable(id, tokens, &conn.scopes, provider, wait, force)
                    }
                    other if !force && tokens.is_valid(Utc::now()) => {
                        tracing::debug!(connection = %id, error = %other, "serving the still-valid token");
                        Ok(fresh(id, tokens, &conn.scopes))
                    }
                    other => Err(other),
                }
            }
        }
    }

    /// Whether this process is backing off from refreshing `id` after a failure.
    pub(crate) fn backing_off(&self, id: ConnectionId, now: DateTime<Utc>) -> bool {
        self.inner.flights.backoff_remaining(id, now).is_some()
    }

    /// Signs a request for an OAuth 1.0a connection and returns its `Authorization` header.
    /// `params` are the form-body parameters (send exactly these); query parameters are read
    /// from `url`.
    ///
    /// ```ignore
    /// let url = Url::parse("https://upload.x.com/1.1/media/upload.json")?;
    /// let header = engine.sign_oauth1_request(id, "POST", &url, &[("command".into(), "INIT".into())]).await?;
    /// ```
    pub async fn sign_oauth1_request(
        &self,
        id: ConnectionId,
        method: &str,
        url: &url::Url,
        params: &[(String, String)],
    ) -> Result<String> {
        let (conn, stored) = self.live(id, false).await?;
        let provider = self.provider(conn.provider.as_str())?;
        crate::oauth1::sign_request(&provider.settings, &stored.tokens, method, url, params)
    }

    /// Disconnects: revokes at the provider where it can (a failed revoke is reported, not
    /// fatal), then deletes the connection's secrets. Returns once no replica can serve the
    /// token from its cache any more (after [`EngineSettings::token_cache_ttl`](crate::EngineSettings),
    /// or four feed poll intervals if that is longer).
    pub async fn disconnect(&self, id: ConnectionId) -> Result<DisconnectOutcome> {
        let conn = self.connection(id).await?;
        if conn.status == ConnectionStatus::Disconnected {
            return Ok(DisconnectOutcome { revoked: false, revoke_error: Some("already disconnected".into()) });
        }
        let tokens = self.inner.store.tokens(id).await?;
        let outcome = match (tokens, self.connection_provider(&conn).await) {
            (None, _) => DisconnectOutcome { revoked: false, revoke_error: Some("no tokens stored".into()) },
            (Some(_), Err(e)) => DisconnectOutcome { revoked: false, revoke_error: Some(e.to_string()) },
            (Some(stored), Ok(provider)) => match provider.revoke(&self.inner.http, &stored.tokens).await {
                Ok(RevokeOutcome::Revoked) => DisconnectOutcome { revoked: true, revoke_error: None },
                Ok(_) => DisconnectOutcome {
                    revoked: false,
                    revoke_error: Some("the provider has no revocation endpoint".into()),
                },
                Err(e) => DisconnectOutcome { revoked: false, revoke_error: Some(e.to_string()) },
            },
        };
        self.inner.store.disconnect(id).await?;
        self.forget_local(id);
        if outcome.revoked {
            self.record(id, EventKind::Revoked, None).await;
        }
        let message =
            outcome.revoke_error.as_ref().map(|e| format!("secrets deleted; not revoked at the provider: {e}"));
        self.record(id, EventKind::Disconnected, message).await;
        // Other replicas may hold this token in their cache, filled by a read that started
        // before the commit: once this returns, none of them can serve it any more.
        let wait = self.inner.token_cache.disconnect_wait();
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(outcome)
    }
}

impl Tether {
    /// Forgets what this process remembers about a connection whose tokens changed: its
    /// refresh backoff and its cached token.
    pub(crate) fn forget_local(&self, id: ConnectionId) {
        self.inner.flights.forget(id);
        self.inner.token_cache.evict(id);
    }
}

fn serve_or_unavailable(
    id: ConnectionId,
    tokens: &TokenSet,
    scopes: &[String],
    provider: &ConfiguredProvider,
    retry_after: Duration,
    force: bool,
) -> Result<FreshToken> {
    if !force && tokens.is_valid(Utc::now()) {
        return Ok(fresh(id, tokens, scopes));
    }
    Err(Error::TemporarilyUnavailable {
        provider: provider.id.to_string(),
        retry_after: retry_after.max(Duration::from_secs(1)),
    })
}
