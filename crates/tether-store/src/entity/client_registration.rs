//! The `client_registrations` table: the OAuth client a per-instance provider registered on
//! one server for one redirect URI.

use sea_orm::entity::prelude::*;

/// A row of `client_registrations`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "client_registrations")]
pub struct Model {
    /// Registration id (UUID v7 string).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Provider id.
    pub provider: String,
    /// Server origin (`https://mastodon.social`).
    pub instance: String,
    /// Redirect URI registered.
    pub redirect_uri: String,
    /// Scopes registered, a JSON array of strings.
    #[sea_orm(column_type = "Text")]
    pub scopes: String,
    /// Client id issued by the server.
    #[sea_orm(column_type = "Text")]
    pub client_id: String,
    /// Sealed client secret.
    #[sea_orm(column_type = "Text", nullable)]
    pub client_secret: Option<String>,
    /// Registration time (unix ms).
    pub created_at: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
