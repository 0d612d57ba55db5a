//! The tokens a provider issued for one connection.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// The tokens of one connection. `Debug` redacts every secret.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token.
    pub access_token: SecretString,
    /// Token type as issued (`bearer` for nearly everyone).
    pub token_type: String,
    /// The refresh token, if the provider issued one.
    pub refresh_token: Option<SecretString>,
    /// The OAuth 1.0a token secret (`oauth_token_secret`), for OAuth 1.0a connections.
    pub token_secret: Option<SecretString>,
    /// When the access token expires; `None` when the provider says it does not.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the refresh token expires, when the provider says so.
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    /// Scopes granted, when the provider reported them.
    pub scopes: Option<Vec<String>>,
    /// Non-secret extra fields of the token response a provider wants to keep (e.g. `open_id`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl TokenSet {
    /// A bearer token with no refresh token and no expiry.
    pub fn bearer(access_token: impl Into<String>) -> Self {
        Self {
            access_token: SecretString::from(access_token.into()),
            token_type: "bearer".into(),
            refresh_token: None,
            token_secret: None,
            expires_at: None,
            refresh_token_expires_at: None,
            scopes: None,
            extra: serde_json::Map::new(),
        }
    }

    /// Whether the access token is still valid for at least `margin` at `now`.
    pub fn is_fresh(&self, now: DateTime<Utc>, margin: chrono::Duration) -> bool {
        match self.expires_at {
            None => true,
            Some(exp) => exp - margin > now,
        }
    }

    /// Whether the access token is valid at `now` (with no margin).
    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.is_fresh(now, chrono::Duration::zero())
    }
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("refresh_token", &self.refresh_token.as_ref().map(|_| "[redacted]"))
            .field("token_secret", &self.token_secret.as_ref().map(|_| "[redacted]"))
            .field("expires_at", &self.expires_at)
            .field("refresh_token_expires_at", &self.refresh_token_expires_at)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_tokens() {
        let mut t = TokenSet::bearer("at-very-secret");
        t.refresh_token = Some(SecretString::from("rt-very-secret".to_string()));
        let s = format!("{t:?}");
        assert!(!s.contains("very-secret"), "{s}");
    }

    #[test]
    fn freshness_respects_the_margin() {
        let now = Utc::now();
        let mut t = TokenSet::bearer("x");
        assert!(t.is_fresh(now, chrono::Duration::minutes(5)));
        t.expires_at = Some(now + chrono::Duration::minutes(4));
        assert!(!t.is_fresh(now, chrono::Duration::minutes(5)));
        assert!(t.is_valid(now));
        t.expires_at = Some(now + chrono::Duration::minutes(6));
        assert!(t.is_fresh(now, chrono::Duration::minutes(5)));
    }
}
