//! The initial schema: `connections`, `auth_flows`, `events`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};

use super::limits;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261122_000001_create_tables"
    }
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Id,
    Owner,
    Provider,
    AccountId,
    AccountName,
    Scopes,
    Status,
    AccessToken,
    RefreshToken,
    TokenSecret,
    TokenType,
    ExpiresAt,
    RefreshTokenExpiresAt,
    TokenExtra,
    Version,
    LeaseHolder,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
    LastRefreshedAt,
    LastError,
}

#[derive(DeriveIden)]
enum AuthFlows {
    Table,
    Id,
    LinkTokenHash,
    StateHash,
    Provider,
    Owner,
    Scopes,
    ReturnTo,
    PkceVerifier,
    BrowserBindingHash,
    RedirectUri,
    LinkExpiresAt,
    StartedAt,
    StateExpiresAt,
    ConsumedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    ConnectionId,
    Kind,
    Message,
    CreatedAt,
}

pub(super) fn len(n: usize) -> u32 {
    <u32 as TryFrom<usize>>::try_from(n).unwrap_or(u32::MAX)
}

/// MySQL/MariaDB: utf8mb4 with a binary collation, so ids, owners and hashes compare exactly
/// (the server default `utf8mb4_general_ci` would make `Alice` and `alice` the same owner).
/// A NO PAD one where the server has it (MariaDB `utf8mb4_nopad_bin`, MySQL 8
/// `utf8mb4_0900_bin`), so that trailing spaces count too; `utf8mb4_bin` otherwise.
pub(super) async fn mysql_collation(m: &SchemaManager<'_>) -> Result<String, DbErr> {
    let row = m
        .get_connection()
        .query_one_raw(Statement::from_string(
            DbBackend::MySql,
            "SELECT COLLATION_NAME AS name FROM information_schema.COLLATIONS \
             WHERE COLLATION_NAME IN ('utf8mb4_nopad_bin', 'utf8mb4_0900_bin') \
             ORDER BY COLLATION_NAME DESC LIMIT 1",
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<String>("", "name")?,
        None => "utf8mb4_bin".to_owned(),
    })
}

pub(super) fn table_options(collation: Option<&str>, table: &mut TableCreateStatement) -> TableCreateStatement {
    if let Some(collation) = collation {
        table.engine("InnoDB").character_set("utf8mb4").collate(collation);
    }
    table.take()
}

pub(super) async fn index(
    m: &SchemaManager<'_>,
    table: &str,
    name: &str,
    mut stmt: IndexCreateStatement,
) -> Result<(), DbErr> {
    // MySQL has no `CREATE INDEX IF NOT EXISTS`: check first, so that a migration interrupted
    // half-way (MySQL DDL is not transactional) can simply be run again.
    if m.has_index(table, name).await? {
        return Ok(());
    }
    m.create_index(stmt.name(name).to_owned()).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let collation = match m.get_database_backend() {
            DbBackend::MySql => Some(mysql_collation(m).await?),
            _ => None,
        };
        let collation = collation.as_deref();

        m.create_table(table_options(
            collation,
            Table::create()
                .table(Connections::Table)
                .if_not_exists()
                .col(string_len(Connections::Id, len(limits::UUID)).primary_key())
                .col(string_len(Connections::Owner, len(limits::OWNER)))
                .col(string_len(Connections::Provider, len(limits::PROVIDER)))
                .col(string_len(Connections::AccountId, len(limits::ACCOUNT_ID)))
                .col(text_null(Connections::AccountName))
                .col(text(Connections::Scopes))
                .col(string_len(Connections::Status, len(limits::STATUS)))
                .col(text_null(Connections::AccessToken))
                .col(text_null(Connections::RefreshToken))
                .col(text_null(Connections::TokenSecret))
                .col(string_len(Connections::TokenType, len(limits::TOKEN_TYPE)))
                .col(big_integer_null(Connections::ExpiresAt))
                .col(big_integer_null(Connections::RefreshTokenExpiresAt))
                .col(text_null(Connections::TokenExtra))
                .col(big_integer(Connections::Version).default(0))
                .col(string_len_null(Connections::LeaseHolder, len(limits::LEASE_HOLDER)))
                .col(big_integer_null(Connections::LeaseUntil))
                .col(big_integer(Connections::CreatedAt))
                .col(big_integer(Connections::UpdatedAt))
                .col(big_integer_null(Connections::LastRefreshedAt))
                .col(text_null(Connections::LastError)),
        ))
        .await?;
        index(
            m,
            "connections",
            "ux_connections_identity",
            Index::create()
                .table(Connections::Table)
                .col(Connections::Owner)
                .col(Connections::Provider)
                .col(Connections::AccountId)
                .unique()
                .to_owned(),
        )
        .await?;
        index(
            m,
            "connections",
            "ix_connections_status_expires_at",
            Index::create().table(Connections::Table).col(Connections::Status).col(Connections::ExpiresAt).to_owned(),
        )
        .await?;
        index(
            m,
            "connections",
            "ix_connections_owner",
            Index::create().table(Connections::Table).col(Connections::Owner).to_owned(),
        )
        .await?;
        index(
            m,
            "connections",
            "ix_connections_provider",
            Index::create().table(Connections::Table).col(Connections::Provider).to_owned(),
        )
        .await?;
        index(
            m,
            "connections",
            "ix_connections_created_at",
            Index::create().table(Connections::Table).col(Connections::CreatedAt).to_owned(),
        )
        .await?;

        m.create_table(table_options(
            collation,
            Table::create()
                .table(AuthFlows::Table)
                .if_not_exists()
                .col(string_len(AuthFlows::Id, len(limits::UUID)).primary_key())
                .col(string_len(AuthFlows::LinkTokenHash, len(limits::HASH)))
                .col(string_len_null(AuthFlows::StateHash, len(limits::HASH)))
                .col(string_len(AuthFlows::Provider, len(limits::PROVIDER)))
                .col(string_len(AuthFlows::Owner, len(limits::OWNER)))
                .col(text(AuthFlows::Scopes))
                .col(text_null(AuthFlows::ReturnTo))
                .col(text_null(AuthFlows::PkceVerifier))
                .col(string_len_null(AuthFlows::BrowserBindingHash, len(limits::HASH)))
                .col(text_null(AuthFlows::RedirectUri))
                .col(big_integer(AuthFlows::LinkExpiresAt))
                .col(big_integer_null(AuthFlows::StartedAt))
                .col(big_integer_null(AuthFlows::StateExpiresAt))
                .col(big_integer_null(AuthFlows::ConsumedAt))
                .col(big_integer(AuthFlows::CreatedAt)),
        ))
        .await?;
        index(
            m,
            "auth_flows",
            "ux_auth_flows_link_token_hash",
            Index::create().table(AuthFlows::Table).col(AuthFlows::LinkTokenHash).unique().to_owned(),
        )
        .await?;
        // NULLs never collide in a unique index on any of the three databases.
        index(
            m,
            "auth_flows",
            "ux_auth_flows_state_hash",
            Index::create().table(AuthFlows::Table).col(AuthFlows::StateHash).unique().to_owned(),
        )
        .await?;
        index(
            m,
            "auth_flows",
            "ix_auth_flows_expiry",
            Index::create()
                .table(AuthFlows::Table)
                .col(AuthFlows::LinkExpiresAt)
                .col(AuthFlows::StateExpiresAt)
                .to_owned(),
        )
        .await?;

        m.create_table(table_options(
            collation,
            Table::create()
                .table(Events::Table)
                .if_not_exists()
                .col(string_len(Events::Id, len(limits::UUID)).primary_key())
                .col(string_len(Events::ConnectionId, len(limits::UUID)))
                .col(string_len(Events::Kind, len(limits::EVENT_KIND)))
                .col(text_null(Events::Message))
                .col(big_integer(Events::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_events_connection")
                        .from(Events::Table, Events::ConnectionId)
                        .to(Connections::Table, Connections::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                ),
        ))
        .await?;
        index(
            m,
            "events",
            "ix_events_connection_created",
            Index::create().table(Events::Table).col(Events::ConnectionId).col(Events::CreatedAt).to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [Events::Table.into_iden(), AuthFlows::Table.into_iden(), Connections::Table.into_iden()] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
