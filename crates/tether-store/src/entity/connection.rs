//! The `connections` table: one account of one owner on one provider, with its sealed tokens.

use sea_orm::entity::prelude::*;

/// A row of `connections`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connections")]
pub struct Model {
    /// Connection id (UUID v7 string).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The application's user.
    pub owner: String,
    /// Provider id.
    pub provider: String,
    /// The provider's account id.
    pub account_id: String,
    /// Display name of the account.
    #[sea_orm(column_type = "Text", nullable)]
    pub account_name: Option<String>,
    /// Server origin of a per-instance provider.
    pub instance: Option<String>,
    /// Granted scopes, a JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// `active`, `reauth_required` or `disconnected`.
    pub status: String,
    /// Sealed access token; NULL once disconnected.
    #[sea_orm(column_type = "Text", nullable)]
    pub access_token: Option<String>,
    /// Sealed refresh token.
    #[sea_orm(column_type = "Text", nullable)]
    pub refresh_token: Option<String>,
    /// Sealed OAuth 1.0a token secret.
    #[sea_orm(column_type = "Text", nullable)]
    pub token_secret: Option<String>,
    /// Token type as issued (`bearer`).
    pub token_type: String,
    /// Access-token expiry (unix ms).
    pub expires_at: Option<i64>,
    /// Refresh-token expiry (unix ms).
    pub refresh_token_expires_at: Option<i64>,
    /// Non-secret extras of the token response, a JSON object.
    #[sea_orm(column_type = "Text", nullable)]
    pub token_extra: Option<String>,
    /// Incremented on every token change.
    pub version: i64,
    /// Who holds the refresh lease.
    pub lease_holder: Option<String>,
    /// Until when the lease is held (unix ms).
    pub lease_until: Option<i64>,
    /// Creation time (unix ms).
    pub created_at: i64,
    /// Last change (unix ms).
    pub updated_at: i64,
    /// Last successful refresh (unix ms).
    pub last_refreshed_at: Option<i64>,
    /// Last refresh or revoke error, for people.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
