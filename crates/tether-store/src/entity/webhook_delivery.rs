//! The `webhook_deliveries` table: the webhook outbox.

use sea_orm::entity::prelude::*;

/// A row of `webhook_deliveries`: one event on its way to one endpoint.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub struct Model {
    /// Delivery id (UUID v7 string).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The event (cascade-deleted with it).
    pub event_id: String,
    /// The event's connection (for listing by connection).
    pub connection_id: String,
    /// The event's kind.
    pub event_kind: String,
    /// The configured endpoint name.
    pub endpoint: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due (pending only; unix ms).
    pub next_attempt_at: Option<i64>,
    /// Dispatcher holding the claim.
    pub claim_holder: Option<String>,
    /// Claim expiry (unix ms).
    pub claimed_until: Option<i64>,
    /// Last attempt (unix ms).
    pub last_attempt_at: Option<i64>,
    /// HTTP status of the last attempt.
    pub last_status_code: Option<i32>,
    /// Why the last attempt failed.
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    /// Enqueued (unix ms).
    pub created_at: i64,
    /// Accepted by the endpoint (unix ms).
    pub delivered_at: Option<i64>,
}

/// No relations are navigated through sea-orm.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
