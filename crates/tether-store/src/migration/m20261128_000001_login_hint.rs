//! `auth_flows.login_hint`: who the user says they are (e.g. a Bluesky handle), given by the
//! application with the connect session or typed on the connect page.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000001_login_hint"
    }
}

#[derive(DeriveIden)]
enum AuthFlows {
    Table,
    LoginHint,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // MySQL DDL is not transactional: check first so an interrupted run can be repeated.
        if !m.has_column("auth_flows", "login_hint").await? {
            m.alter_table(
                Table::alter().table(AuthFlows::Table).add_column(text_null(AuthFlows::LoginHint)).to_owned(),
            )
            .await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table(AuthFlows::Table).drop_column(AuthFlows::LoginHint).to_owned()).await
    }
}
