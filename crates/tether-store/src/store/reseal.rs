//! Re-sealing every stored secret under the primary key (`tether keys rotate`).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tether_core::{Result, SealedSecret};

use super::SeaStore;
use super::names::{
    ACCESS_TOKEN, AUTH_FLOWS, CLIENT_REGISTRATIONS, CLIENT_SECRET, CONNECTIONS, PKCE_VERIFIER, REFRESH_TOKEN,
    TOKEN_SECRET,
};
use crate::entity::{auth_flow, client_registration, connection};
use crate::error::db_err;

const BATCH: u64 = 500;

/// What [`SeaStore::reseal_secrets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResealReport {
    /// Secrets re-sealed under the primary key.
    pub resealed: u64,
    /// Secrets that were already sealed under the primary key.
    pub current: u64,
    /// Secrets changed by someone else (a refresh) while this ran; they were written by the
    /// current code, so they are sealed under the primary key already.
    pub skipped: u64,
}

impl SeaStore {
    /// Re-seals every stored secret (tokens, token secrets, PKCE verifiers, the client secrets of
    /// per-instance registrations) that was sealed with
    /// a key other than the primary (first) key of the ring, so that older keys can then be
    /// removed from the configuration.
    ///
    /// Safe while the server runs: each value is replaced only if it is still the one that was
    /// read. Fails, changing nothing more, on the first value no configured key opens.
    pub async fn reseal_secrets(&self) -> Result<ResealReport> {
        use {auth_flow as flow, client_registration as registration, connection as conn};
        let mut report = ResealReport::default();
        let conn_id = conn::Column::Id;
        for (column, name) in [
            (conn::Column::AccessToken, ACCESS_TOKEN),
            (conn::Column::RefreshToken, REFRESH_TOKEN),
            (conn::Column::TokenSecret, TOKEN_SECRET),
        ] {
            self.reseal_column::<conn::Entity>((conn_id, column), (CONNECTIONS, name), &mut report).await?;
        }
        let flow_columns = (flow::Column::Id, flow::Column::PkceVerifier);
        self.reseal_column::<flow::Entity>(flow_columns, (AUTH_FLOWS, PKCE_VERIFIER), &mut report).await?;
        let registration_columns = (registration::Column::Id, registration::Column::ClientSecret);
        self.reseal_column::<registration::Entity>(
            registration_columns,
            (CLIENT_REGISTRATIONS, CLIENT_SECRET),
            &mut report,
        )
        .await?;
        Ok(report)
    }

    /// A new sealed value when `stored` needs re-sealing.
    fn reseal_one(&self, table: &str, row: &str, column: &str, stored: &str) -> Result<Option<String>> {
        if !self.keys.needs_reseal(&SealedSecret::from_stored(stored.to_owned())) {
            return Ok(None);
        }
        let plain = self.open(table, row, column, stored)?;
        self.seal(table, row, column, &plain).map(Some)
    }

    /// Re-seals one secret column of one table, a page of rows at a time, each value replaced
    /// only if it is still the one read.
    async fn reseal_column<E: EntityTrait>(
        &self,
        (id_column, column): (E::Column, E::Column),
        (table, name): (&str, &str),
        report: &mut ResealReport,
    ) -> Result<()> {
        let context = format!("re-sealing {table}.{name}");
        let mut after = String::new();
        loop {
            let rows: Vec<(String, String)> = E::find()
                .select_only()
                .columns([id_column, column])
                .filter(column.is_not_null())
                .filter(id_column.gt(after.as_str()))
                .order_by_asc(id_column)
                .limit(BATCH)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_err(&context))?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.0.clone();
            for (id, old) in rows {
                let Some(new) = self.reseal_one(table, &id, name, &old)? else {
                    report.current += 1;
                    continue;
                };
                let _gate = self.write_gate().await;
                let done = E::update_many()
                    .col_expr(column, Expr::value(new))
                    .filter(id_column.eq(id.as_str()))
                    .filter(column.eq(old))
                    .exec(&self.db)
                    .await
                    .map_err(db_err(&context))?;
                if done.rows_affected == 1 {
                    report.resealed += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
    }
}
