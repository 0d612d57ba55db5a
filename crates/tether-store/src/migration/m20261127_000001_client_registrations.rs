//! Per-instance providers: `client_registrations` (the OAuth client registered on each server),
//! and the `instance` of connect sessions and connections.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use super::limits;
use super::m20261122_000001_create_tables::{index, len, mysql_collation, table_options};

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261127_000001_client_registrations"
    }
}

#[derive(DeriveIden)]
enum ClientRegistrations {
    Table,
    Id,
    Provider,
    Instance,
    RedirectUri,
    Scopes,
    ClientId,
    ClientSecret,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Instance,
}

#[derive(DeriveIden)]
enum AuthFlows {
    Table,
    Instance,
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
                .table(ClientRegistrations::Table)
                .if_not_exists()
                .col(string_len(ClientRegistrations::Id, len(limits::UUID)).primary_key())
                .col(string_len(ClientRegistrations::Provider, len(limits::PROVIDER)))
                .col(string_len(ClientRegistrations::Instance, len(limits::INSTANCE)))
                .col(string_len(ClientRegistrations::RedirectUri, len(limits::REDIRECT_URI)))
                .col(text(ClientRegistrations::Scopes))
                .col(text(ClientRegistrations::ClientId))
                .col(text_null(ClientRegistrations::ClientSecret))
                .col(big_integer(ClientRegistrations::CreatedAt)),
        ))
        .await?;
        // One registration per server and redirect URI: the loser of a concurrent first
        // registration hits this key and reads the winner's row.
        index(
            m,
            "client_registrations",
            "ux_client_registrations_instance",
            Index::create()
                .table(ClientRegistrations::Table)
                .col(ClientRegistrations::Provider)
                .col(ClientRegistrations::Instance)
                .col(ClientRegistrations::RedirectUri)
                .unique()
                .to_owned(),
        )
        .await?;
        // MySQL DDL is not transactional: check first so an interrupted run can be repeated.
        if !m.has_column("connections", "instance").await? {
            m.alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(string_len_null(Connections::Instance, len(limits::INSTANCE)))
                    .to_owned(),
            )
            .await?;
        }
        if !m.has_column("auth_flows", "instance").await? {
            m.alter_table(
                Table::alter()
                    .table(AuthFlows::Table)
                    .add_column(string_len_null(AuthFlows::Instance, len(limits::INSTANCE)))
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(ClientRegistrations::Table).if_exists().to_owned()).await?;
        m.alter_table(Table::alter().table(Connections::Table).drop_column(Connections::Instance).to_owned()).await?;
        m.alter_table(Table::alter().table(AuthFlows::Table).drop_column(AuthFlows::Instance).to_owned()).await
    }
}
