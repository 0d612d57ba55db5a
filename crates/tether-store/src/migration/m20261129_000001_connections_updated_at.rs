//! `ix_connections_updated_at`: the change feed (`changed_connections`) reads the connections
//! changed since a moment by a range scan of this index, several times a second per replica.

use sea_orm_migration::prelude::*;

use super::m20261122_000001_create_tables::index;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000001_connections_updated_at"
    }
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        index(
            m,
            "connections",
            "ix_connections_updated_at",
            Index::create().table(Connections::Table).col(Connections::UpdatedAt).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(Index::drop().name("ix_connections_updated_at").table(Connections::Table).to_owned()).await
    }
}
