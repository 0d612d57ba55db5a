//! The persistence contract. `tether-store` implements it on sea-orm.
//!
//! Implementations seal every secret (tokens, PKCE verifiers) with the [`KeyRing`](crate::KeyRing)
//! before writing it and open it when reading: plaintext never reaches the database.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::{
    AuthFlow, Connection, ConnectionFilter, ConnectionId, ConnectionStatus, Event, FlowStart, NewConnectSession,
    NewConnection, NewEvent, PendingConnectSession, Result, TokenSet,
};

/// The tokens of a connection with the row version they were read at.
#[derive(Debug, Clone)]
pub struct StoredTokens {
    /// The opened tokens.
    pub tokens: TokenSet,
    /// Row version, incremented on every token change.
    pub version: i64,
}

/// One connection's last change, as the change feed lists it (no secrets): the token caches of
/// other processes compare it with what they hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionChange {
    /// The connection.
    pub id: ConnectionId,
    /// When it last changed (its `updated_at`).
    pub updated_at: DateTime<Utc>,
    /// Its row version (incremented on every token change).
    pub version: i64,
    /// Its status now.
    pub status: ConnectionStatus,
}

/// Result of trying to take the refresh lease of a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseOutcome {
    /// This holder has the lease until the given time.
    Acquired,
    /// Someone else holds it until the given time.
    Held {
        /// When the other holder's lease expires.
        until: DateTime<Utc>,
    },
    /// Not taken: the connection's tokens or status changed since the version the caller
    /// read (see [`ConnectionStore::try_acquire_refresh_lease_at_version`]); read them again.
    Changed,
}

/// Connections and their sealed tokens.
#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Creates the connection for (owner, provider, account id), or replaces the tokens, scopes,
    /// name and status (back to active) of the existing one. Returns it and whether it was new.
    async fn upsert_connection(&self, new: NewConnection) -> Result<(Connection, bool)>;
    /// One connection.
    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>>;
    /// Connections matching the filter, newest first.
    async fn list_connections(&self, filter: &ConnectionFilter) -> Result<Vec<Connection>>;
    /// The opened tokens of a connection (`None` when it has none, e.g. disconnected).
    async fn tokens(&self, id: ConnectionId) -> Result<Option<StoredTokens>>;
    /// The connection and its tokens from one read (the token hot path). With
    /// `with_refresh_token = false` the refresh token is not opened (one decryption less); the
    /// returned set then has `refresh_token: None` and must not be used to refresh.
    async fn connection_and_tokens(
        &self,
        id: ConnectionId,
        with_refresh_token: bool,
    ) -> Result<Option<(Connection, Option<StoredTokens>)>> {
        let _ = with_refresh_token;
        let Some(conn) = self.connection(id).await? else { return Ok(None) };
        Ok(Some((conn, self.tokens(id).await?)))
    }
    /// Atomically takes the refresh lease when it is free or expired.
    async fn try_acquire_refresh_lease(
        &self,
        id: ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<LeaseOutcome>;
    /// Takes the refresh lease like [`try_acquire_refresh_lease`](Self::try_acquire_refresh_lease),
    /// but only while the connection is active and its tokens are still at `version`. When it
    /// answers [`LeaseOutcome::Acquired`], the tokens the caller read at `version` are the
    /// current ones, so the refresher needs no second read under the lease;
    /// [`LeaseOutcome::Changed`] means they (or the status) changed since.
    ///
    /// The default takes the lease and then reads the row (releasing the lease again when the
    /// row changed); stores should override it with one conditional update.
    async fn try_acquire_refresh_lease_at_version(
        &self,
        id: ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        version: i64,
    ) -> Result<LeaseOutcome> {
        match self.try_acquire_refresh_lease(id, holder, until, now).await? {
            LeaseOutcome::Acquired => match self.connection_and_tokens(id, false).await? {
                Some((c, Some(t))) if c.status == ConnectionStatus::Active && t.version == version => {
                    Ok(LeaseOutcome::Acquired)
                }
                Some((c, _)) => {
                    self.release_refresh_lease(id, holder, c.status, c.last_error.as_deref()).await?;
                    Ok(LeaseOutcome::Changed)
                }
                None => Err(crate::Error::NotFound { what: "connection", id: id.to_string() }),
            },
            other => Ok(other),
        }
    }
    /// Stores refreshed tokens and releases the lease in one atomic step, only while `holder`
    /// still holds it. Returns false (and writes nothing) when the lease was lost.
    async fn complete_refresh(
        &self,
        id: ConnectionId,
        holder: &str,
        tokens: &TokenSet,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Releases the lease without new tokens, setting status and last error.
    async fn release_refresh_lease(
        &self,
        id: ConnectionId,
        holder: &str,
        status: ConnectionStatus,
        last_error: Option<&str>,
    ) -> Result<()>;
    /// Active connections with a refresh path whose access token expires before `before`, and
    /// whose lease is free at `now`, soonest first.
    async fn due_for_refresh(&self, before: DateTime<Utc>, now: DateTime<Utc>, limit: u64)
    -> Result<Vec<ConnectionId>>;
    /// Takes the refresh lease of up to `limit` connections that are due (the same ones
    /// [`due_for_refresh`](Self::due_for_refresh) lists, soonest first) for `holder` until
    /// `until`, and returns them with their tokens (refresh token opened) as read under the
    /// lease. Each returned connection was free and is now leased by `holder`, so its tokens
    /// are the current ones; connections another holder took in the meantime are left out.
    ///
    /// `holder` should be unique to this claim: [`complete_refreshes`](Self::complete_refreshes)
    /// and [`release_refresh_lease`](Self::release_refresh_lease) write only while it holds the
    /// lease. The default lists the due connections and leases them one by one; stores should
    /// override it with one conditional update for the whole batch.
    async fn claim_due_for_refresh(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        holder: &str,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Connection, StoredTokens)>> {
        let mut claimed = Vec::new();
        for id in self.due_for_refresh(before, now, limit).await? {
            let version = match self.connection_and_tokens(id, false).await? {
                Some((c, Some(t))) if c.status == ConnectionStatus::Active => t.version,
                _ => continue,
            };
            if self.try_acquire_refresh_lease_at_version(id, holder, until, now, version).await?
                != LeaseOutcome::Acquired
            {
                continue;
            }
            match self.connection_and_tokens(id, true).await? {
                Some((c, Some(t))) if t.version == version => claimed.push((c, t)),
                Some((c, _)) => self.release_refresh_lease(id, holder, c.status, c.last_error.as_deref()).await?,
                None => {}
            }
        }
        Ok(claimed)
    }
    /// Stores several refreshes at once, like [`complete_refresh`](Self::complete_refresh) for
    /// each `(connection, lease holder, new tokens)`: each is written, and its lease released,
    /// only while its holder still holds the lease. Returns, in order, whether each was written,
    /// and whether the `refreshed` events were recorded too.
    ///
    /// With `events = Some(endpoints)`, a store may record a `refreshed` event for each written
    /// connection, with a pending webhook delivery per endpoint named, in the same transaction
    /// as the tokens (so the event appears together with them); it then answers `true` and the
    /// caller records nothing more. The default completes them one by one and records no
    /// events; stores should write everything in one transaction.
    async fn complete_refreshes(
        &self,
        done: &[(ConnectionId, &str, &TokenSet)],
        now: DateTime<Utc>,
        events: Option<&[String]>,
    ) -> Result<(Vec<bool>, bool)> {
        let _ = events;
        let mut written = Vec::with_capacity(done.len());
        for (id, holder, tokens) in done {
            written.push(self.complete_refresh(*id, holder, tokens, now).await?);
        }
        Ok((written, false))
    }
    /// How many connections have each status (for metrics). The default counts a listing;
    /// stores should override it with an aggregate query.
    async fn count_by_status(&self) -> Result<Vec<(ConnectionStatus, u64)>> {
        let all = self.list_connections(&ConnectionFilter::default()).await?;
        let mut counts: Vec<(ConnectionStatus, u64)> = Vec::new();
        for c in all {
            match counts.iter_mut().find(|(s, _)| *s == c.status) {
                Some((_, n)) => *n += 1,
                None => counts.push((c.status, 1)),
            }
        }
        Ok(counts)
    }
    /// Sets the status (and last error) of a connection.
    async fn set_status(&self, id: ConnectionId, status: ConnectionStatus, last_error: Option<&str>) -> Result<()>;
    /// Deletes the connection's secrets and marks it disconnected.
    async fn disconnect(&self, id: ConnectionId) -> Result<()>;
    /// The change feed: up to `limit` connections whose `updated_at` is at or after `since`, in
    /// no particular order. Every write that changes a connection's tokens or status sets its
    /// `updated_at` to the time of the write, so a caller that asks again from a little before
    /// its previous question sees every change committed since (see the engine's token cache).
    async fn changed_connections(&self, since: DateTime<Utc>, limit: u64) -> Result<Vec<ConnectionChange>>;
}

/// Connect sessions and authorization flows.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Stores a new connect session.
    async fn create_connect_session(&self, session: &NewConnectSession) -> Result<()>;
    /// The unexpired, unstarted connect session with this link-token hash, without consuming
    /// it (the flow differs per protocol, and a per-instance provider may first ask the user
    /// for their server). Fails like [`start_flow`](Self::start_flow).
    async fn unstarted_connect_session(
        &self,
        link_token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<PendingConnectSession> {
        let _ = (link_token_hash, now);
        Err(crate::Error::Store("this store cannot look up connect sessions".into()))
    }
    /// Single use: marks the session whose link-token hash matches as started and attaches the
    /// flow state. Fails with `FlowError::{UnknownLink, LinkExpired, LinkUsed}`.
    async fn start_flow(&self, link_token_hash: &str, start: FlowStart, now: DateTime<Utc>) -> Result<AuthFlow>;
    /// Single use: consumes the flow whose state hash matches. Fails with
    /// `FlowError::{UnknownState, StateExpired, StateReplayed}`.
    async fn consume_flow(&self, state_hash: &str, now: DateTime<Utc>) -> Result<AuthFlow>;
    /// Deletes flows that expired before `before`. Returns how many.
    async fn purge_flows(&self, before: DateTime<Utc>) -> Result<u64>;
}

/// Connection events.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Records an event.
    async fn record_event(&self, event: NewEvent) -> Result<Event>;
    /// Records several events (the background refresher's `refreshed` events of one batch).
    /// The default records them one by one; stores should insert them in one statement.
    async fn record_events(&self, events: Vec<NewEvent>) -> Result<()> {
        for event in events {
            self.record_event(event).await?;
        }
        Ok(())
    }
    /// Events of a connection, newest first.
    async fn events(&self, connection: ConnectionId, limit: u64) -> Result<Vec<Event>>;
}

/// Everything the engine needs from persistence.
pub trait Store:
    ConnectionStore + FlowStore + EventStore + crate::WebhookStore + crate::ClientRegistrationStore
{
}

impl<T: ConnectionStore + FlowStore + EventStore + crate::WebhookStore + crate::ClientRegistrationStore> Store for T {}
