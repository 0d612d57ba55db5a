//! The `events` table: the history of every connection.

use sea_orm::entity::prelude::*;

/// A row of `events`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "events")]
pub struct Model {
    /// Event id (UUID v7 string).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The connection.
    pub connection_id: String,
    /// What happened (`connected`, `refreshed`, ...).
    pub kind: String,
    /// Details for people.
    #[sea_orm(column_type = "Text", nullable)]
    pub message: Option<String>,
    /// When (unix ms).
    pub created_at: i64,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
