//! Identifier newtypes, so an owner id is never passed where a provider id belongs.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result};

/// Identifies a configured provider (`github`, or the table name of a generic provider).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct ProviderId(String);

impl ProviderId {
    /// Validates and wraps a provider id: 1-64 characters of `a-z`, `0-9`, `-`, `_`.
    pub fn parse(id: &str) -> Result<Self> {
        let ok = !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(id.to_owned()))
        } else {
            Err(Error::InvalidInput(format!(
                "invalid provider id `{}`: use 1-64 characters of a-z, 0-9, - and _",
                id.escape_debug()
            )))
        }
    }
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The application's identifier for one of its users (opaque to Tether).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct OwnerId(String);

impl OwnerId {
    /// Validates an owner id: 1-255 printable characters without control characters.
    pub fn parse(owner: &str) -> Result<Self> {
        if owner.is_empty() || owner.len() > 255 || owner.chars().any(char::is_control) {
            return Err(Error::InvalidInput("owner must be 1-255 characters without control characters".into()));
        }
        Ok(Self(owner.to_owned()))
    }
    /// The owner id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Identifies a connection (a UUID v7, so ids sort by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
pub struct ConnectionId(Uuid);

impl ConnectionId {
    /// A new random, time-ordered id.
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
    /// Parses an id from its string form.
    pub fn parse(s: &str) -> Result<Self> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| Error::NotFound { what: "connection", id: s.chars().take(64).collect() })
    }
    /// The underlying UUID.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for ConnectionId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for ConnectionId {
    fn from(u: Uuid) -> Self {
        Self(u)
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
