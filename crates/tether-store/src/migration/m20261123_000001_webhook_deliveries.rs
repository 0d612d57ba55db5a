//! `webhook_deliveries`: the webhook outbox (one row per event and endpoint).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::limits;
use super::m20261122_000001_create_tables::{index, len, mysql_collation, table_options};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000001_webhook_deliveries"
    }
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    EventId,
    ConnectionId,
    EventKind,
    Endpoint,
    Status,
    Attempts,
    NextAttemptAt,
    ClaimHolder,
    ClaimedUntil,
    LastAttemptAt,
    LastStatusCode,
    LastError,
    CreatedAt,
    DeliveredAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let collation = match m.get_database_backend() {
            DbBackend::MySql => Some(mysql_collation(m).await?),
            _ => None,
        };
        m.create_table(table_options(
            collation.as_deref(),
            Table::create()
                .table(WebhookDeliveries::Table)
                .if_not_exists()
                .col(string_len(WebhookDeliveries::Id, len(limits::UUID)).primary_key())
                .col(string_len(WebhookDeliveries::EventId, len(limits::UUID)))
                .col(string_len(WebhookDeliveries::ConnectionId, len(limits::UUID)))
                .col(string_len(WebhookDeliveries::EventKind, len(limits::EVENT_KIND)))
                .col(string_len(WebhookDeliveries::Endpoint, len(limits::WEBHOOK_ENDPOINT)))
                .col(string_len(WebhookDeliveries::Status, len(limits::STATUS)))
                .col(integer(WebhookDeliveries::Attempts))
                .col(big_integer_null(WebhookDeliveries::NextAttemptAt))
                .col(string_len_null(WebhookDeliveries::ClaimHolder, len(limits::LEASE_HOLDER)))
                .col(big_integer_null(WebhookDeliveries::ClaimedUntil))
                .col(big_integer_null(WebhookDeliveries::LastAttemptAt))
                .col(integer_null(WebhookDeliveries::LastStatusCode))
                .col(text_null(WebhookDeliveries::LastError))
                .col(big_integer(WebhookDeliveries::CreatedAt))
                .col(big_integer_null(WebhookDeliveries::DeliveredAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_webhook_deliveries_event")
                        .from(WebhookDeliveries::Table, WebhookDeliveries::EventId)
                        .to(Events::Table, Events::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                ),
        ))
        .await?;
        index(
            m,
            "webhook_deliveries",
            "ix_webhook_deliveries_due",
            Index::create()
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::Status)
                .col(WebhookDeliveries::NextAttemptAt)
                .to_owned(),
        )
        .await?;
        index(
            m,
            "webhook_deliveries",
            "ix_webhook_deliveries_event",
            Index::create().table(WebhookDeliveries::Table).col(WebhookDeliveries::EventId).to_owned(),
        )
        .await?;
        index(
            m,
            "webhook_deliveries",
            "ix_webhook_deliveries_connection",
            Index::create()
                .table(WebhookDeliveries::Table)
                .col(WebhookDeliveries::ConnectionId)
                .col(WebhookDeliveries::CreatedAt)
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(WebhookDeliveries::Table).if_exists().to_owned()).await
    }
}
