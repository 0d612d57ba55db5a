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

/// `(id, access_token, refresh_token, token_secret)` of a connection row.
type SecretColumns = (String, Option<String>, Option<String>, Option<String>);

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
        let mut report = ResealReport::default();
        self.reseal_connections(&mut report).await?;
        self.reseal_flows(&mut report).await?;
        self.reseal_registrations(&mut report).await?;
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

    async fn reseal_connections(&self, report: &mut ResealReport) -> Result<()> {
        use connection::{Column, Entity};
        let context = "re-sealing connection secrets";
        let mut after = String::new();
        loop {
            let rows: Vec<SecretColumns> = Entity::find()
                .select_only()
                .columns([Column::Id, Column::AccessToken, Column::RefreshToken, Column::TokenSecret])
                .filter(Column::Id.gt(after.as_str()))
                .order_by_asc(Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_err(context))?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.0.clone();
            for (id, access, refresh, secret) in rows {
                for (column, name, value) in [
                    (Column::AccessToken, ACCESS_TOKEN, access),
                    (Column::RefreshToken, REFRESH_TOKEN, refresh),
                    (Column::TokenSecret, TOKEN_SECRET, secret),
                ] {
                    let Some(old) = value else { continue };
                    let Some(new) = self.reseal_one(CONNECTIONS, &id, name, &old)? else {
                        report.current += 1;
                        continue;
                    };
                    let _gate = self.write_gate().await;
                    let done = Entity::update_many()
                        .col_expr(column, Expr::value(new))
                        .filter(Column::Id.eq(id.as_str()))
                        .filter(column.eq(old))
                        .exec(&self.db)
                        .await
                        .map_err(db_err(context))?;
                    if done.rows_affected == 1 {
                        report.resealed += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
            }
        }
    }

    async fn reseal_flows(&self, report: &mut ResealReport) -> Result<()> {
        use auth_flow::{Column, Entity};
        let context = "re-sealing flow secrets";
        let mut after = String::new();
        loop {
            let rows: Vec<(String, String)> = Entity::find()
                .select_only()
                .columns([Column::Id, Column::PkceVerifier])
                .filter(Column::PkceVerifier.is_not_null())
                .filter(Column::Id.gt(after.as_str()))
                .order_by_asc(Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_err(context))?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.0.clone();
            for (id, old) in rows {
                let Some(new) = self.reseal_one(AUTH_FLOWS, &id, PKCE_VERIFIER, &old)? else {
                    report.current += 1;
                    continue;
                };
                let _gate = self.write_gate().await;
                let done = Entity::update_many()
                    .col_expr(Column::PkceVerifier, Expr::value(new))
                    .filter(Column::Id.eq(id.as_str()))
                    .filter(Column::PkceVerifier.eq(old))
                    .exec(&self.db)
                    .await
                    .map_err(db_err(context))?;
                if done.rows_affected == 1 {
                    report.resealed += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
    }

    async fn reseal_registrations(&self, report: &mut ResealReport) -> Result<()> {
        use client_registration::{Column, Entity};
        let context = "re-sealing client registration secrets";
        let mut after = String::new();
        loop {
            let rows: Vec<(String, String)> = Entity::find()
                .select_only()
                .columns([Column::Id, Column::ClientSecret])
                .filter(Column::ClientSecret.is_not_null())
                .filter(Column::Id.gt(after.as_str()))
                .order_by_asc(Column::Id)
                .limit(BATCH)
                .into_tuple()
                .all(&self.db)
                .await
                .map_err(db_err(context))?;
            let Some(last) = rows.last() else { return Ok(()) };
            after = last.0.clone();
            for (id, old) in rows {
                let Some(new) = self.reseal_one(CLIENT_REGISTRATIONS, &id, CLIENT_SECRET, &old)? else {
                    report.current += 1;
                    continue;
                };
                let _gate = self.write_gate().await;
                let done = Entity::update_many()
                    .col_expr(Column::ClientSecret, Expr::value(new))
                    .filter(Column::Id.eq(id.as_str()))
                    .filter(Column::ClientSecret.eq(old))
                    .exec(&self.db)
                    .await
                    .map_err(db_err(context))?;
                if done.rows_affected == 1 {
                    report.resealed += 1;
                } else {
                    report.skipped += 1;
                }
            }
        }
    }
}
