//! Connection events: the history of every state change.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ConnectionId;

/// What happened to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum EventKind {
    /// A connect flow completed (new connection or reconnection).
    Connected,
    /// Tokens were refreshed.
    Refreshed,
    /// A refresh failed for a transient reason; will retry.
    RefreshFailed,
    /// The grant is dead; the user must reconnect.
    ReauthRequired,
    /// Tokens were revoked at the provider.
    Revoked,
    /// The connection was disconnected and its secrets deleted.
    Disconnected,
}

impl EventKind {
    /// Every kind.
    pub const ALL: [EventKind; 6] = [
        EventKind::Connected,
        EventKind::Refreshed,
        EventKind::RefreshFailed,
        EventKind::ReauthRequired,
        EventKind::Revoked,
        EventKind::Disconnected,
    ];

    /// Stored / API form.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Connected => "connected",
            EventKind::Refreshed => "refreshed",
            EventKind::RefreshFailed => "refresh_failed",
            EventKind::ReauthRequired => "reauth_required",
            EventKind::Revoked => "revoked",
            EventKind::Disconnected => "disconnected",
        }
    }

    /// Parses the stored form.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "connected" => EventKind::Connected,
            "refreshed" => EventKind::Refreshed,
            "refresh_failed" => EventKind::RefreshFailed,
            "reauth_required" => EventKind::ReauthRequired,
            "revoked" => EventKind::Revoked,
            "disconnected" => EventKind::Disconnected,
            _ => return None,
        })
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event to record.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// The connection.
    pub connection_id: ConnectionId,
    /// What happened.
    pub kind: EventKind,
    /// Details for people (never secrets).
    pub message: Option<String>,
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Event id (UUID v7, time ordered).
    pub id: uuid::Uuid,
    /// The connection.
    pub connection_id: ConnectionId,
    /// What happened.
    pub kind: EventKind,
    /// Details.
    pub message: Option<String>,
    /// When.
    pub created_at: DateTime<Utc>,
}
