//! [`ConnectionStore`] for [`SeaStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Func, LockBehavior, LockType, QueryStatementBuilder, SimpleExpr};
use std::collections::HashSet;

use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Statement, Value,
};
use tether_core::{
    AccountIdentity, Connection, ConnectionChange, ConnectionFilter, ConnectionId, ConnectionStatus, ConnectionStore,
    Error, EventKind, LeaseOutcome, NewConnection, NewEvent, OwnerId, ProviderId, Result, SecretString, StoredTokens,
    TokenSet,
};

use super::events::insert_events;
use super::names::{ACCESS_TOKEN, CONNECTIONS, REFRESH_TOKEN, TOKEN_SECRET};
use super::webhooks::{check_endpoints, enqueue_deliveries};
use super::{SeaStore, check_len, json_list, ms, parse_list, time, time_opt};
use crate::connect::Backend;
use crate::entity::connection::{self, Column, Entity};
use crate::error::{corrupt, db_err, is_retryable_conflict};
use crate::migration::limits;

/// How often an upsert is retried after losing a race with a concurrent one.
const UPSERT_ATTEMPTS: usize = 4;
/// Longest `last_error` kept (it is for people; provider bodies can be long).
const LAST_ERROR_MAX: usize = 2000;

fn not_found(id: ConnectionId) -> Error {
    Error::NotFound { what: "connection", id: id.to_string() }
}

fn clip_error(message: Option<&str>) -> Option<String> {
    message.map(|m| m.chars().take(LAST_ERROR_MAX).collect())
}

/// The token extras as stored: NULL when there are none.
fn extra_json(tokens: &TokenSet) -> Result<Option<String>> {
    if tokens.extra.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(&tokens.extra).map(Some).map_err(|e| Error::Store(format!("encoding token extras: {e}")))
}

fn to_connection(row: &connection::Model) -> Result<Connection> {
    let t = CONNECTIONS;
    Ok(Connection {
        id: ConnectionId::parse(&row.id).map_err(|_| corrupt(t, "id", "not a UUID"))?,
        owner: OwnerId::parse(&row.owner).map_err(|e| corrupt(t, "owner", e))?,
        provider: ProviderId::parse(&row.provider).map_err(|e| corrupt(t, "provider", e))?,
        account: AccountIdentity { id: row.account_id.clone(), name: row.account_name.clone() },
        instance: row.instance.clone(),
        scopes: parse_list(t, "scopes", &row.scopes)?,
        status: row.status.parse::<ConnectionStatus>().map_err(|e| corrupt(t, "status", e))?,
        expires_at: time_opt(t, "expires_at", row.expires_at)?,
        has_refresh_token: row.refresh_token.is_some(),
        created_at: time(t, "created_at", row.created_at)?,
        updated_at: time(t, "updated_at", row.updated_at)?,
        last_refreshed_at: time_opt(t, "last_refreshed_at", row.last_refreshed_at)?,
        last_error: row.last_error.clone(),
    })
}

/// The secret columns of a connection row, sealed for that row.
struct SealedTokens {
    access: String,
    refresh: Option<String>,
    secret: Option<String>,
}

impl SeaStore {
    /// Seals the secrets of `tokens` for row `id`.
    fn seal_tokens(&self, id: &str, tokens: &TokenSet) -> Result<SealedTokens> {
        let optional = |value: &Option<SecretString>, column| {
            value.as_ref().map(|v| self.seal(CONNECTIONS, id, column, v)).transpose()
        };
        Ok(SealedTokens {
            access: self.seal(CONNECTIONS, id, ACCESS_TOKEN, &tokens.access_token)?,
            refresh: optional(&tokens.refresh_token, REFRESH_TOKEN)?,
            secret: optional(&tokens.token_secret, TOKEN_SECRET)?,
        })
    }

    /// One attempt of an upsert. `Ok(None)`: lost a race with a concurrent transaction, retry.
    async fn try_upsert(&self, new: &NewConnection) -> Result<Option<(Connection, bool)>> {
        let context = "storing a connection";
        let (txn, _gate) = self.begin_write().await?;
        let existing = Entity::find()
            .filter(Column::Owner.eq(new.owner.as_str()))
            .filter(Column::Provider.eq(new.provider.as_str()))
            .filter(Column::AccountId.eq(new.account.id.as_str()))
            .one(&txn)
            .await
            .map_err(db_err(context))?;
        let now = ms(Utc::now());
        let (id, created) = match existing {
            Some(row) => (row.id, false),
            None => (ConnectionId::new().to_string(), true),
        };
        let sealed = self.seal_tokens(&id, &new.tokens)?;
        let mut row = connection::ActiveModel {
            account_name: Set(new.account.name.clone()),
            scopes: Set(json_list(&new.scopes)?),
            status: Set(ConnectionStatus::Active.as_str().to_owned()),
            access_token: Set(Some(sealed.access)),
            refresh_token: Set(sealed.refresh),
            token_secret: Set(sealed.secret),
            token_type: Set(new.tokens.token_type.clone()),
            expires_at: Set(new.tokens.expires_at.map(ms)),
            refresh_token_expires_at: Set(new.tokens.refresh_token_expires_at.map(ms)),
            token_extra: Set(extra_json(&new.tokens)?),
            lease_holder: Set(None),
            lease_until: Set(None),
            updated_at: Set(now),
            last_error: Set(None),
            ..Default::default()
        };
        if created {
            row.id = Set(id.clone());
            row.owner = Set(new.owner.as_str().to_owned());
            row.provider = Set(new.provider.as_str().to_owned());
            row.account_id = Set(new.account.id.clone());
            row.instance = Set(new.instance.clone());
            row.version = Set(1);
            row.created_at = Set(now);
            row.last_refreshed_at = Set(None);
            match Entity::insert(row).exec_without_returning(&txn).await {
                Ok(_) => {}
                Err(e) if is_retryable_conflict(&e) => {
                    tracing::debug!(error = %e, "connection upsert raced with another; retrying");
                    let _ = txn.rollback().await;
                    return Ok(None);
                }
                Err(e) => return Err(db_err(context)(e)),
            }
        } else {
            let result = Entity::update_many()
                .set(row)
                .col_expr(Column::Version, Expr::col(Column::Version).add(1))
                .filter(Column::Id.eq(id.as_str()))
                .exec(&txn)
                .await;
            match result {
                Ok(_) => {}
                Err(e) if is_retryable_conflict(&e) => {
                    tracing::debug!(error = %e, "connection upsert raced with another; retrying");
                    let _ = txn.rollback().await;
                    return Ok(None);
                }
                Err(e) => return Err(db_err(context)(e)),
            }
        }
        let row = Entity::find_by_id(id.as_str())
            .one(&txn)
            .await
            .map_err(db_err(context))?
            .ok_or_else(|| Error::Store("the stored connection vanished".into()))?;
        match txn.commit().await {
            Ok(()) => {}
            Err(e) if is_retryable_conflict(&e) => return Ok(None),
            Err(e) => return Err(db_err(context)(e)),
        }
        Ok(Some((to_connection(&row)?, created)))
    }

    async fn row(&self, id: ConnectionId, context: &str) -> Result<Option<connection::Model>> {
        // `.all()`, not `.one()`: the primary key matches at most one row, and `.one()` binds
        // `LIMIT ?`, a parameter whose every re-binding makes SQLite compile the statement
        // again (it may plan with the limit's value) — on every token read.
        let rows = Entity::find_by_id(id.to_string()).all(&self.db).await.map_err(db_err(context))?;
        Ok(rows.into_iter().next())
    }
}

#[async_trait]
impl ConnectionStore for SeaStore {
    async fn upsert_connection(&self, new: NewConnection) -> Result<(Connection, bool)> {
        if new.account.id.is_empty() {
            return Err(Error::InvalidInput("the account id is empty".into()));
        }
        check_len("the owner", new.owner.as_str(), limits::OWNER)?;
        check_len("the provider id", new.provider.as_str(), limits::PROVIDER)?;
        check_len("the provider account id", &new.account.id, limits::ACCOUNT_ID)?;
        if let Some(instance) = &new.instance {
            check_len("the instance", instance, limits::INSTANCE)?;
        }
        check_len("the token type", &new.tokens.token_type, limits::TOKEN_TYPE)?;
        for _ in 0..UPSERT_ATTEMPTS {
            if let Some(done) = self.try_upsert(&new).await? {
                return Ok(done);
            }
        }
        Err(Error::Store(format!(
            "storing the connection conflicted with concurrent writers {UPSERT_ATTEMPTS} times; try again"
        )))
    }

    async fn connection(&self, id: ConnectionId) -> Result<Option<Connection>> {
        self.row(id, "reading a connection").await?.as_ref().map(to_connection).transpose()
    }

    async fn list_connections(&self, filter: &ConnectionFilter) -> Result<Vec<Connection>> {
        let mut query = Entity::find();
        if let Some(owner) = &filter.owner {
            query = query.filter(Column::Owner.eq(owner.as_str()));
        }
        if let Some(provider) = &filter.provider {
            query = query.filter(Column::Provider.eq(provider.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await
            .map_err(db_err("listing connections"))?
            .iter()
            .map(to_connection)
            .collect()
    }

    async fn tokens(&self, id: ConnectionId) -> Result<Option<StoredTokens>> {
        let Some(row) = self.row(id, "reading tokens").await? else {
            return Ok(None);
        };
        self.stored_tokens(&row, true)
    }

    async fn connection_and_tokens(
        &self,
        id: ConnectionId,
        with_refresh_token: bool,
    ) -> Result<Option<(Connection, Option<StoredTokens>)>> {
        let Some(row) = self.row(id, "reading a connection and its tokens").await? else {
            return Ok(None);
        };
        Ok(Some((to_connection(&row)?, self.stored_tokens(&row, with_refresh_token)?)))
    }

    async fn try_acquire_refresh_lease(
        &self,
        id: ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<LeaseOutcome> {
        self.take_lease(id, holder, until, now, None).await
    }

    async fn try_acquire_refresh_lease_at_version(
        &self,
        id: ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        version: i64,
    ) -> Result<LeaseOutcome> {
        self.take_lease(id, holder, until, now, Some(version)).await
    }

    async fn complete_refresh(
        &self,
        id: ConnectionId,
        holder: &str,
        tokens: &TokenSet,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let update = self.refreshed_row(id, holder, tokens, now)?;
        // Persisting the tokens and releasing the lease is one conditional UPDATE: nothing is
        // written unless `holder` still holds the lease.
        let _gate = self.write_gate().await;
        let done = update.exec(&self.db).await.map_err(db_err("storing refreshed tokens"))?;
        Ok(done.rows_affected == 1)
    }

    async fn complete_refreshes(
        &self,
        done: &[(ConnectionId, &str, &TokenSet)],
        now: DateTime<Utc>,
        events: Option<&[String]>,
    ) -> Result<(Vec<bool>, bool)> {
        let context = "storing refreshed tokens";
        if let Some(endpoints) = events {
            check_endpoints(endpoints)?;
        }
        let mut distinct: Vec<ConnectionId> = done.iter().map(|d| d.0).collect();
        distinct.sort_unstable();
        distinct.dedup();
        // SQLite and PostgreSQL write a chunk of rows per statement (UPDATE .. FROM VALUES ..
        // RETURNING); MySQL, or a batch naming a connection twice, one UPDATE per row.
        let multi_row = self.backend != Backend::MySql && distinct.len() == done.len();
        let rows = if multi_row {
            done.iter()
                .map(|(id, holder, tokens)| self.refreshed_values(*id, holder, tokens))
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let updates = if multi_row {
            Vec::new()
        } else {
            done.iter()
                .map(|(id, holder, tokens)| self.refreshed_row(*id, holder, tokens, now))
                .collect::<Result<Vec<_>>>()?
        };
        // Rows in id order, so concurrent batches of several replicas lock them in one order.
        let mut order: Vec<usize> = (0..done.len()).collect();
        order.sort_by_key(|&i| done[i].0);
        for attempt in 1..=UPSERT_ATTEMPTS {
            let (txn, _gate) = self.begin_write().await?;
            let outcome = if multi_row {
                self.write_refreshed_chunks(&txn, &rows, &order, now)
                    .await
                    .map(|ids| done.iter().map(|d| ids.contains(&d.0.to_string())).collect::<Vec<_>>())
            } else {
                let mut written = vec![false; done.len()];
                let mut result = Ok(());
                for &i in &order {
                    match updates[i].clone().exec(&txn).await {
                        Ok(r) => written[i] = r.rows_affected == 1,
                        Err(e) => {
                            result = Err(e);
                            break;
                        }
                    }
                }
                result.map(|()| written)
            };
            let written = match outcome {
                Ok(w) => w,
                Err(e) if is_retryable_conflict(&e) && attempt < UPSERT_ATTEMPTS => {
                    let _ = txn.rollback().await;
                    continue;
                }
                Err(e) => return Err(db_err(context)(e)),
            };
            if let Some(endpoints) = events {
                // The `refreshed` events (and their webhook deliveries) commit with the tokens.
                let refreshed = done
                    .iter()
                    .zip(&written)
                    .filter(|(_, w)| **w)
                    .map(|(d, _)| NewEvent { connection_id: d.0, kind: EventKind::Refreshed, message: None })
                    .collect();
                let recorded = insert_events(&txn, refreshed).await?;
                enqueue_deliveries(&txn, &recorded, endpoints).await?;
            }
            match txn.commit().await {
                Ok(()) => return Ok((written, events.is_some())),
                Err(e) if is_retryable_conflict(&e) && attempt < UPSERT_ATTEMPTS => {}
                Err(e) => return Err(db_err(context)(e)),
            }
        }
        Err(Error::Store(format!("{context}: conflicted with concurrent writers {UPSERT_ATTEMPTS} times")))
    }

    async fn release_refresh_lease(
        &self,
        id: ConnectionId,
        holder: &str,
        status: ConnectionStatus,
        last_error: Option<&str>,
    ) -> Result<()> {
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .set(connection::ActiveModel {
                status: Set(status.as_str().to_owned()),
                last_error: Set(clip_error(last_error)),
                lease_holder: Set(None),
                lease_until: Set(None),
                updated_at: Set(ms(Utc::now())),
                ..Default::default()
            })
            .filter(Column::Id.eq(id.to_string()))
            .filter(Column::LeaseHolder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(db_err("releasing the refresh lease"))?;
        if done.rows_affected == 0 {
            tracing::debug!(connection = %id, "refresh lease was no longer held; nothing released");
        }
        Ok(())
    }

    async fn due_for_refresh(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ConnectionId>> {
        let ids = self.due_ids(before, now, limit, "listing connections due for refresh").await?;
        ids.iter().map(|id| parse_id(id)).collect()
    }

    async fn claim_due_for_refresh(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        holder: &str,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(Connection, StoredTokens)>> {
        if holder.is_empty() {
            return Err(Error::InvalidInput("the lease holder is empty".into()));
        }
        check_len("the lease holder", holder, limits::LEASE_HOLDER)?;
        let context = "claiming connections due for refresh";
        let claim = Entity::update_many()
            .col_expr(Column::LeaseHolder, Expr::value(holder))
            .col_expr(Column::LeaseUntil, Expr::value(ms(until)));
        let mut rows = if self.backend == Backend::MySql {
            // MySQL has neither RETURNING nor LIMIT in an IN subquery: list, take, read back.
            let ids = self.due_ids(before, now, limit, context).await?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            {
                let _gate = self.write_gate().await;
                let taken = claim
                    .filter(Column::Id.is_in(ids.iter().map(String::as_str)))
                    .filter(still_due(before, now))
                    .exec(&self.db)
                    .await
                    .map_err(db_err(context))?;
                if taken.rows_affected == 0 {
                    return Ok(Vec::new());
                }
            }
            // Read under the lease (so the refresh tokens are current), by primary key only.
            Entity::find()
                .filter(Column::Id.is_in(ids.iter().map(String::as_str)))
                .filter(Column::LeaseHolder.eq(holder))
                .all(&self.db)
                .await
                .map_err(db_err(context))?
        } else {
            // SQLite and PostgreSQL: one statement lists, takes and returns the batch. On
            // PostgreSQL the listing skips rows another replica's claim has locked.
            let mut due = Entity::find()
                .select_only()
                .column(Column::Id)
                .filter(due(before, now))
                .order_by_asc(Column::ExpiresAt)
                .order_by_asc(Column::Id)
                .limit(limit);
            let pick = if self.backend == Backend::Postgres {
                due = due.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
                // `id = ANY(ARRAY(..))`: the list is computed once and the rows are looked up
                // by primary key. With `IN (..)`, the generic plan PostgreSQL caches for the
                // prepared statement (it cannot see the limit) hash-joins a scan of the table.
                let list = Expr::SubQuery(None, Box::new(due.into_query().into_sub_query_statement()));
                Expr::cust_with_expr(r#""connections"."id" = ANY(ARRAY $1)"#, list)
            } else {
                Column::Id.in_subquery(due.into_query())
            };
            let mut update = claim.filter(pick).filter(still_due(before, now)).into_query();
            update.returning_all();
            let _gate = self.write_gate().await;
            let taken = self.db.query_all(&update).await.map_err(db_err(context))?;
            taken
                .iter()
                .map(|row| connection::Model::from_query_result(row, ""))
                .collect::<std::result::Result<Vec<_>, DbErr>>()
                .map_err(db_err(context))?
        };
        // Whatever a concurrent writer did between listing and taking, the conditional update
        // re-checked every condition; the rows go back soonest expiry first.
        rows.retain(|row| {
            row.status == ConnectionStatus::Active.as_str() && row.lease_holder.as_deref() == Some(holder)
        });
        rows.sort_unstable_by(|a, b| (a.expires_at, &a.id).cmp(&(b.expires_at, &b.id)));
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(tokens) = self.stored_tokens(row, true)? {
                claimed.push((to_connection(row)?, tokens));
            }
        }
        Ok(claimed)
    }

    async fn set_status(&self, id: ConnectionId, status: ConnectionStatus, last_error: Option<&str>) -> Result<()> {
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .set(connection::ActiveModel {
                status: Set(status.as_str().to_owned()),
                last_error: Set(clip_error(last_error)),
                updated_at: Set(ms(Utc::now())),
                ..Default::default()
            })
            .filter(Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_err("setting a connection's status"))?;
        // MySQL counts matched rows too (sqlx connects with CLIENT_FOUND_ROWS).
        if done.rows_affected == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    async fn disconnect(&self, id: ConnectionId) -> Result<()> {
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .set(connection::ActiveModel {
                status: Set(ConnectionStatus::Disconnected.as_str().to_owned()),
                access_token: Set(None),
                refresh_token: Set(None),
                token_secret: Set(None),
                token_extra: Set(None),
                lease_holder: Set(None),
                lease_until: Set(None),
                updated_at: Set(ms(Utc::now())),
                ..Default::default()
            })
            .col_expr(Column::Version, Expr::col(Column::Version).add(1))
            .filter(Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(db_err("disconnecting a connection"))?;
        if done.rows_affected == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    async fn changed_connections(&self, since: DateTime<Utc>, limit: u64) -> Result<Vec<ConnectionChange>> {
        let context = "listing changed connections";
        // A range scan of `ix_connections_updated_at`; no secret column is read.
        let rows: Vec<(String, i64, i64, String)> = Entity::find()
            .select_only()
            .column(Column::Id)
            .column(Column::UpdatedAt)
            .column(Column::Version)
            .column(Column::Status)
            .filter(Column::UpdatedAt.gte(ms(since)))
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_err(context))?;
        rows.into_iter()
            .map(|(id, updated_at, version, status)| {
                Ok(ConnectionChange {
                    id: parse_id(&id)?,
                    updated_at: time(CONNECTIONS, "updated_at", updated_at)?,
                    version,
                    status: status.parse::<ConnectionStatus>().map_err(|e| corrupt(CONNECTIONS, "status", e))?,
                })
            })
            .collect()
    }
}

/// Values of one row of a multi-row refresh write: id, lease holder, access token, refresh
/// token, token secret, token type, expiry, refresh token expiry, extras, scopes (NULL: keep).
const REFRESH_VALUES: usize = 10;
/// Most rows written by one multi-row refresh statement.
const REFRESH_CHUNK: usize = 64;

/// `UPDATE connections .. FROM (VALUES ..) .. RETURNING id` for `rows` rows on SQLite or
/// PostgreSQL: like [`SeaStore::refreshed_row`] for each row, only where the row's holder still
/// holds the lease.
///
/// The refresh time is bound first: once (`$1`) on PostgreSQL, twice (the first two `?`) on
/// SQLite, whose `?` parameters are numbered in order of appearance.
fn multi_row_refresh_sql(backend: Backend, rows: usize) -> String {
    use std::fmt::Write as _;
    let postgres = backend == Backend::Postgres;
    let col = |n: usize| if postgres { format!("v.c{n}") } else { format!("v.column{n}") };
    let mut values = String::with_capacity(rows * REFRESH_VALUES * 5);
    for r in 0..rows {
        values.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..REFRESH_VALUES {
            if c > 0 {
                values.push_str(", ");
            }
            if postgres {
                let _ = write!(values, "${}", r * REFRESH_VALUES + c + 2);
            } else {
                values.push('?');
            }
        }
        values.push(')');
    }
    let alias = if postgres {
        let names: Vec<String> = (1..=REFRESH_VALUES).map(|n| format!("c{n}")).collect();
        format!("v({})", names.join(", "))
    } else {
        "v".to_owned()
    };
    let active = ConnectionStatus::Active.as_str();
    let now_ms = if postgres { "$1" } else { "?" };
    format!(
        "UPDATE connections SET access_token = {at}, refresh_token = {rt}, token_secret = {ts}, \
         token_type = {tt}, expires_at = {exp}, refresh_token_expires_at = {rexp}, token_extra = {extra}, \
         scopes = COALESCE({scopes}, scopes), status = '{active}', last_refreshed_at = {now_ms}, \
         last_error = NULL, lease_holder = NULL, lease_until = NULL, updated_at = {now_ms}, \
         version = version + 1 FROM (VALUES {values}) AS {alias} \
         WHERE connections.id = {id} AND connections.lease_holder = {holder} RETURNING {returning}",
        id = col(1),
        holder = col(2),
        at = col(3),
        rt = col(4),
        ts = col(5),
        tt = col(6),
        exp = col(7),
        rexp = col(8),
        extra = col(9),
        scopes = col(10),
        returning = if postgres { "connections.id" } else { "id" },
    )
}

/// Active connections with tokens that expire before `before` and whose lease is free at `now`.
fn due(before: DateTime<Utc>, now: DateTime<Utc>) -> Condition {
    due_with(Column::Status.eq(ConnectionStatus::Active.as_str()), before, now)
}

/// [`due`] for rows already picked by primary key: the same conditions, with the status
/// compared through `COALESCE` so that no database can use the `(status, expires_at)` index
/// for it. Given `id IN (..)` and an indexable status, SQLite (which keeps no statistics)
/// walks that index over every due connection instead of looking the ids up, which made
/// every claim cost time in proportion to the table.
fn still_due(before: DateTime<Utc>, now: DateTime<Utc>) -> Condition {
    let status = Expr::expr(Func::coalesce([Expr::col(Column::Status), Expr::val("")]));
    due_with(status.eq(ConnectionStatus::Active.as_str()), before, now)
}

fn due_with(active: SimpleExpr, before: DateTime<Utc>, now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(active)
        .add(Column::AccessToken.is_not_null())
        .add(Column::ExpiresAt.is_not_null())
        .add(Column::ExpiresAt.lt(ms(before)))
        .add(
            Condition::any()
                .add(Column::LeaseHolder.is_null())
                .add(Column::LeaseUntil.is_null())
                .add(Column::LeaseUntil.lt(ms(now))),
        )
}

fn parse_id(id: &str) -> Result<ConnectionId> {
    ConnectionId::parse(id).map_err(|_| corrupt(CONNECTIONS, "id", "not a UUID"))
}

impl SeaStore {
    /// Ids of up to `limit` due connections (see [`due`]), soonest expiry first.
    async fn due_ids(
        &self,
        before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u64,
        context: &str,
    ) -> Result<Vec<String>> {
        Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(due(before, now))
            .order_by_asc(Column::ExpiresAt)
            .order_by_asc(Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_err(context))
    }

    /// One row of a multi-row refresh write: the values of [`REFRESH_VALUES`], in order.
    fn refreshed_values(&self, id: ConnectionId, holder: &str, tokens: &TokenSet) -> Result<Vec<Value>> {
        check_len("the token type", &tokens.token_type, limits::TOKEN_TYPE)?;
        let row_id = id.to_string();
        let sealed = self.seal_tokens(&row_id, tokens)?;
        let scopes = tokens.scopes.as_deref().map(json_list).transpose()?;
        Ok(vec![
            Value::String(Some(row_id)),
            Value::String(Some(holder.to_owned())),
            Value::String(Some(sealed.access)),
            Value::String(sealed.refresh),
            Value::String(sealed.secret),
            Value::String(Some(tokens.token_type.clone())),
            Value::BigInt(tokens.expires_at.map(ms)),
            Value::BigInt(tokens.refresh_token_expires_at.map(ms)),
            Value::String(extra_json(tokens)?),
            Value::String(scopes),
        ])
    }

    /// Writes `rows` (in `order`) with one statement per chunk of up to [`REFRESH_CHUNK`]
    /// rows (chunk sizes are powers of two, so few distinct statements are prepared). Returns
    /// the ids written: those whose holder still held the lease.
    async fn write_refreshed_chunks(
        &self,
        txn: &DatabaseTransaction,
        rows: &[Vec<Value>],
        order: &[usize],
        now: DateTime<Utc>,
    ) -> std::result::Result<HashSet<String>, DbErr> {
        let mut written = HashSet::with_capacity(rows.len());
        let mut rest = order;
        while !rest.is_empty() {
            let size = REFRESH_CHUNK.min(1 << rest.len().ilog2());
            let (chunk, tail) = rest.split_at(size);
            rest = tail;
            let now_values = if self.backend == Backend::Postgres { 1 } else { 2 };
            let values = std::iter::repeat_n(Value::BigInt(Some(ms(now))), now_values)
                .chain(chunk.iter().flat_map(|&i| rows[i].iter().cloned()))
                .collect::<Vec<_>>();
            let backend = txn.get_database_backend();
            let sql = multi_row_refresh_sql(self.backend, size);
            for row in txn.query_all_raw(Statement::from_sql_and_values(backend, sql, values)).await? {
                written.insert(row.try_get::<String>("", "id")?);
            }
        }
        Ok(written)
    }

    /// The conditional UPDATE that stores refreshed tokens and releases the lease, only while
    /// `holder` holds it.
    fn refreshed_row(
        &self,
        id: ConnectionId,
        holder: &str,
        tokens: &TokenSet,
        now: DateTime<Utc>,
    ) -> Result<sea_orm::UpdateMany<Entity>> {
        check_len("the token type", &tokens.token_type, limits::TOKEN_TYPE)?;
        let row_id = id.to_string();
        let sealed = self.seal_tokens(&row_id, tokens)?;
        let mut update = connection::ActiveModel {
            access_token: Set(Some(sealed.access)),
            refresh_token: Set(sealed.refresh),
            token_secret: Set(sealed.secret),
            token_type: Set(tokens.token_type.clone()),
            expires_at: Set(tokens.expires_at.map(ms)),
            refresh_token_expires_at: Set(tokens.refresh_token_expires_at.map(ms)),
            token_extra: Set(extra_json(tokens)?),
            status: Set(ConnectionStatus::Active.as_str().to_owned()),
            last_refreshed_at: Set(Some(ms(now))),
            last_error: Set(None),
            lease_holder: Set(None),
            lease_until: Set(None),
            updated_at: Set(ms(now)),
            ..Default::default()
        };
        if let Some(scopes) = &tokens.scopes {
            update.scopes = Set(json_list(scopes)?);
        }
        Ok(Entity::update_many()
            .set(update)
            .col_expr(Column::Version, Expr::col(Column::Version).add(1))
            .filter(Column::Id.eq(row_id))
            .filter(Column::LeaseHolder.eq(holder)))
    }

    /// The refresh lease in one conditional UPDATE (atomic on every database, no row locks):
    /// taken when it is free or expired and, with `version`, only while the connection is
    /// active at that version (else [`LeaseOutcome::Changed`]).
    async fn take_lease(
        &self,
        id: ConnectionId,
        holder: &str,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
        version: Option<i64>,
    ) -> Result<LeaseOutcome> {
        if holder.is_empty() {
            return Err(Error::InvalidInput("the lease holder is empty".into()));
        }
        check_len("the lease holder", holder, limits::LEASE_HOLDER)?;
        let context = "taking the refresh lease";
        let active = ConnectionStatus::Active.as_str();
        let mut update = Entity::update_many()
            .col_expr(Column::LeaseHolder, Expr::value(holder))
            .col_expr(Column::LeaseUntil, Expr::value(ms(until)))
            .filter(Column::Id.eq(id.to_string()))
            .filter(
                Condition::any()
                    .add(Column::LeaseHolder.is_null())
                    .add(Column::LeaseUntil.is_null())
                    .add(Column::LeaseUntil.lt(ms(now))),
            );
        if let Some(version) = version {
            update = update.filter(Column::Version.eq(version)).filter(Column::Status.eq(active));
        }
        let _gate = self.write_gate().await;
        let taken = update.exec(&self.db).await.map_err(db_err(context))?;
        if taken.rows_affected == 1 {
            return Ok(LeaseOutcome::Acquired);
        }
        let (lease_until, current, status) = Entity::find_by_id(id.to_string())
            .select_only()
            .column(Column::LeaseUntil)
            .column(Column::Version)
            .column(Column::Status)
            .into_tuple::<(Option<i64>, i64, String)>()
            .one(&self.db)
            .await
            .map_err(db_err(context))?
            .ok_or_else(|| not_found(id))?;
        if version.is_some_and(|v| v != current || status != active) {
            return Ok(LeaseOutcome::Changed);
        }
        // Released between the UPDATE and this read: report it held until now, so the caller
        // simply tries again.
        let until = time_opt(CONNECTIONS, "lease_until", lease_until)?.unwrap_or(now);
        Ok(LeaseOutcome::Held { until })
    }

    /// Opens the tokens of a row (`None` when it has none, e.g. disconnected).
    fn stored_tokens(&self, row: &connection::Model, with_refresh_token: bool) -> Result<Option<StoredTokens>> {
        let Some(access) = row.access_token.as_deref() else {
            return Ok(None);
        };
        let t = CONNECTIONS;
        let access_token = self.open(t, &row.id, ACCESS_TOKEN, access)?;
        let refresh_token = match (with_refresh_token, row.refresh_token.as_deref()) {
            (true, Some(rt)) => Some(self.open(t, &row.id, REFRESH_TOKEN, rt)?),
            _ => None,
        };
        let token_secret = row.token_secret.as_deref().map(|ts| self.open(t, &row.id, TOKEN_SECRET, ts)).transpose()?;
        let extra = match row.token_extra.as_deref() {
            None => serde_json::Map::new(),
            Some(text) => serde_json::from_str(text).map_err(|e| corrupt(t, "token_extra", e))?,
        };
        Ok(Some(StoredTokens {
            tokens: TokenSet {
                access_token,
                token_type: row.token_type.clone(),
                refresh_token,
                token_secret,
                expires_at: time_opt(t, "expires_at", row.expires_at)?,
                refresh_token_expires_at: time_opt(t, "refresh_token_expires_at", row.refresh_token_expires_at)?,
                scopes: Some(parse_list(t, "scopes", &row.scopes)?),
                extra,
            },
            version: row.version,
        }))
    }
}
