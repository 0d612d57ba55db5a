//! The `auth_flows` table: connect sessions and the authorization flows started from them.

use sea_orm::entity::prelude::*;

/// A row of `auth_flows`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "auth_flows")]
pub struct Model {
    /// Session id (UUID string).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// SHA-256 (hex) of the single-use link token.
    #[sea_orm(unique)]
    pub link_token_hash: String,
    /// SHA-256 (hex) of the OAuth `state`, once the flow started.
    #[sea_orm(unique)]
    pub state_hash: Option<String>,
    /// Provider id.
    pub provider: String,
    /// Owner the connection will belong to.
    pub owner: String,
    /// Requested scopes, a JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// Server origin of a per-instance provider.
    pub instance: Option<String>,
    /// Who the user says they are (e.g. a Bluesky handle).
    #[sea_orm(column_type = "Text", nullable)]
    pub login_hint: Option<String>,
    /// Where to send the browser afterwards.
    #[sea_orm(column_type = "Text", nullable)]
    pub return_to: Option<String>,
    /// Sealed PKCE verifier; NULL once the flow is consumed.
    #[sea_orm(column_type = "Text", nullable)]
    pub pkce_verifier: Option<String>,
    /// SHA-256 (hex) of the browser-binding cookie.
    pub browser_binding_hash: Option<String>,
    /// Public URL the flow started under.
    #[sea_orm(column_type = "Text", nullable)]
    pub redirect_uri: Option<String>,
    /// When the link stops working (unix ms).
    pub link_expires_at: i64,
    /// When the link was used (unix ms).
    pub started_at: Option<i64>,
    /// When the state stops being accepted (unix ms).
    pub state_expires_at: Option<i64>,
    /// When the callback consumed the state (unix ms).
    pub consumed_at: Option<i64>,
    /// Creation time (unix ms).
    pub created_at: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
