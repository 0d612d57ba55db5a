//! Connect sessions and authorization flows in progress.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

use crate::{OwnerId, ProviderId};

/// A connect session created by the application, before the browser opens the link.
#[derive(Debug, Clone)]
pub struct NewConnectSession {
    /// Session id (returned to the application).
    pub id: Uuid,
    /// SHA-256 of the single-use link token (the token itself is only in the link).
    pub link_token_hash: String,
    /// Provider to connect.
    pub provider: ProviderId,
    /// Owner the connection will belong to.
    pub owner: OwnerId,
    /// Scopes to request.
    pub scopes: Vec<String>,
    /// The server of a per-instance provider, when the application named it (its origin).
    pub instance: Option<String>,
    /// Who the user says they are (e.g. a Bluesky handle), passed to the provider.
    pub login_hint: Option<String>,
    /// Where to send the browser afterwards.
    pub return_to: Option<Url>,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// What the browser's visit to the connect link adds to the session.
#[derive(Debug)]
pub struct FlowStart {
    /// SHA-256 of the `state` sent to the provider.
    pub state_hash: String,
    /// The PKCE verifier (sealed by the store).
    pub pkce_verifier: Option<SecretString>,
    /// The server the flow runs on (per-instance providers; the session's own, or the one the
    /// user chose on the connect page). Replaces the session's when set.
    pub instance: Option<String>,
    /// SHA-256 of the browser-binding cookie value.
    pub browser_binding_hash: String,
    /// The public URL the flow started under; the redirect URI is `{this}/callback/{provider}`.
    pub redirect_uri: Url,
    /// When the state stops being accepted.
    pub expires_at: DateTime<Utc>,
}

/// An authorization flow, as read back at the callback.
#[derive(Debug)]
pub struct AuthFlow {
    /// Session id.
    pub id: Uuid,
    /// Provider.
    pub provider: ProviderId,
    /// Owner.
    pub owner: OwnerId,
    /// Requested scopes.
    pub scopes: Vec<String>,
    /// The server of a per-instance provider (its origin).
    pub instance: Option<String>,
    /// Where to send the browser afterwards.
    pub return_to: Option<Url>,
    /// PKCE verifier, opened.
    pub pkce_verifier: Option<SecretString>,
    /// SHA-256 of the browser-binding cookie value.
    pub browser_binding_hash: Option<String>,
    /// The redirect URI used at the authorization endpoint.
    pub redirect_uri: Option<Url>,
    /// When the flow (or link) expires.
    pub expires_at: DateTime<Utc>,
}

/// A connect session whose link was not used yet, as the connect page sees it.
#[derive(Debug, Clone)]
pub struct PendingConnectSession {
    /// Provider to connect.
    pub provider: ProviderId,
    /// Scopes the flow will request.
    pub scopes: Vec<String>,
    /// The server of a per-instance provider, when the application named it.
    pub instance: Option<String>,
    /// The login hint the application gave, if any.
    pub login_hint: Option<String>,
}
