//! Connections: one account of one user on one provider.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ConnectionId, Error, OwnerId, ProviderId, TokenSet};

/// The account on the provider's side, as proven by the callback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountIdentity {
    /// The provider's stable account id.
    pub id: String,
    /// A display name (handle or name), for people.
    pub name: Option<String>,
}

/// Lifecycle status of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// Tokens are usable or refreshable.
    Active,
    /// The grant is dead; the user must connect again.
    ReauthRequired,
    /// Disconnected: revoked at the provider where possible and secrets deleted.
    Disconnected,
}

impl ConnectionStatus {
    /// The stored / API form.
    pub fn as_str(&self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::ReauthRequired => "reauth_required",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "active" => Ok(ConnectionStatus::Active),
            "reauth_required" => Ok(ConnectionStatus::ReauthRequired),
            "disconnected" => Ok(ConnectionStatus::Disconnected),
            other => Err(Error::InvalidInput(format!(
                "unknown status `{}` (expected active, reauth_required or disconnected)",
                other.escape_debug()
            ))),
        }
    }
}

/// A connection as the API shows it: no secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Connection {
    /// Connection id.
    pub id: ConnectionId,
    /// The application's user.
    pub owner: OwnerId,
    /// The provider.
    pub provider: ProviderId,
    /// The provider account.
    pub account: AccountIdentity,
    /// The server of a per-instance provider (`https://mastodon.social`); `null` otherwise.
    pub instance: Option<String>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Status.
    pub status: ConnectionStatus,
    /// When the current access token expires (`None`: it does not).
    pub expires_at: Option<DateTime<Utc>>,
    /// Whether a refresh token is stored.
    pub has_refresh_token: bool,
    /// When the connection was first made.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Last successful refresh.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Last error (refresh or revoke), for people.
    pub last_error: Option<String>,
}

/// What the callback hands to the store to create or update a connection.
#[derive(Debug, Clone)]
pub struct NewConnection {
    /// The application's user.
    pub owner: OwnerId,
    /// The provider.
    pub provider: ProviderId,
    /// The account the callback proved.
    pub account: AccountIdentity,
    /// The server of a per-instance provider (its origin), `None` otherwise.
    pub instance: Option<String>,
    /// The tokens (sealed by the store before they are written).
    pub tokens: TokenSet,
    /// Granted scopes (from the token response or, failing that, the request).
    pub scopes: Vec<String>,
}

/// Filter for listing connections.
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// Only this owner.
    pub owner: Option<OwnerId>,
    /// Only this provider.
    pub provider: Option<ProviderId>,
    /// Only this status.
    pub status: Option<ConnectionStatus>,
    /// At most this many (default: no limit).
    pub limit: Option<u64>,
}
