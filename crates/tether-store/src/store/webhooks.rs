//! [`WebhookStore`] for [`SeaStore`]: the outbox of webhook deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use tether_core::{
    ClaimedDelivery, ConnectionId, DeliveryFilter, DeliveryOutcome, DeliveryStatus, Error, Event, EventKind, NewEvent,
    Result, WebhookDelivery, WebhookStore,
};
use uuid::Uuid;

use super::events::{insert_event, to_event};
use super::{SeaStore, check_len, ms, time, time_opt};
use crate::entity::event as event_entity;
use crate::entity::webhook_delivery::{self, Column, Entity};
use crate::error::{corrupt, db_err};
use crate::migration::limits;

const TABLE: &str = "webhook_deliveries";
/// Longest error message kept.
const ERROR_MAX: usize = 1000;

fn to_delivery(row: &webhook_delivery::Model) -> Result<WebhookDelivery> {
    let uuid = |column: &str, value: &str| Uuid::parse_str(value).map_err(|e| corrupt(TABLE, column, e));
    Ok(WebhookDelivery {
        id: uuid("id", &row.id)?,
        event_id: uuid("event_id", &row.event_id)?,
        event_kind: EventKind::parse(&row.event_kind)
            .ok_or_else(|| corrupt(TABLE, "event_kind", format!("unknown kind `{}`", row.event_kind)))?,
        connection_id: ConnectionId::parse(&row.connection_id)
            .map_err(|_| corrupt(TABLE, "connection_id", "not a UUID"))?,
        endpoint: row.endpoint.clone(),
        status: row.status.parse().map_err(|_| corrupt(TABLE, "status", format!("unknown `{}`", row.status)))?,
        attempts: u32::try_from(row.attempts).map_err(|e| corrupt(TABLE, "attempts", e))?,
        next_attempt_at: time_opt(TABLE, "next_attempt_at", row.next_attempt_at)?,
        last_attempt_at: time_opt(TABLE, "last_attempt_at", row.last_attempt_at)?,
        last_status_code: row.last_status_code.and_then(|c| u16::try_from(c).ok()),
        last_error: row.last_error.clone(),
        created_at: time(TABLE, "created_at", row.created_at)?,
        delivered_at: time_opt(TABLE, "delivered_at", row.delivered_at)?,
    })
}

/// Claims that nobody holds, or whose holder's time ran out.
fn unclaimed(now: DateTime<Utc>) -> Condition {
    Condition::any().add(Column::ClaimedUntil.is_null()).add(Column::ClaimedUntil.lt(ms(now)))
}

fn clip(error: &str) -> String {
    error.chars().take(ERROR_MAX).collect()
}

/// Checks webhook endpoint names before anything is written.
pub(super) fn check_endpoints(endpoints: &[String]) -> Result<()> {
    for endpoint in endpoints {
        check_len("a webhook endpoint name", endpoint, limits::WEBHOOK_ENDPOINT)?;
    }
    Ok(())
}

/// Inserts one pending delivery per endpoint for each of `events`, on `db` (the transaction
/// that records them).
pub(super) async fn enqueue_deliveries(
    db: &impl ConnectionTrait,
    events: &[Event],
    endpoints: &[String],
) -> Result<()> {
    if endpoints.is_empty() || events.is_empty() {
        return Ok(());
    }
    let rows = events.iter().flat_map(|event| {
        let created_at = ms(event.created_at);
        endpoints.iter().map(move |endpoint| webhook_delivery::ActiveModel {
            id: Set(Uuid::now_v7().to_string()),
            event_id: Set(event.id.to_string()),
            connection_id: Set(event.connection_id.to_string()),
            event_kind: Set(event.kind.as_str().to_owned()),
            endpoint: Set(endpoint.clone()),
            status: Set(DeliveryStatus::Pending.as_str().to_owned()),
            attempts: Set(0),
            next_attempt_at: Set(Some(created_at)),
            claim_holder: Set(None),
            claimed_until: Set(None),
            last_attempt_at: Set(None),
            last_status_code: Set(None),
            last_error: Set(None),
            created_at: Set(created_at),
            delivered_at: Set(None),
        })
    });
    Entity::insert_many(rows).exec_without_returning(db).await.map_err(db_err("enqueuing webhooks"))?;
    Ok(())
}

#[async_trait]
impl WebhookStore for SeaStore {
    async fn record_event_with_deliveries(&self, new: NewEvent, endpoints: &[String]) -> Result<Event> {
        check_endpoints(endpoints)?;
        let (txn, _gate) = self.begin_write().await?;
        let event = insert_event(&txn, new).await?;
        enqueue_deliveries(&txn, std::slice::from_ref(&event), endpoints).await?;
        txn.commit().await.map_err(db_err("recording an event"))?;
        Ok(event)
    }

    async fn claim_webhook_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ClaimedDelivery>> {
        if holder.is_empty() {
            return Err(Error::InvalidInput("the claim holder is empty".into()));
        }
        check_len("the claim holder", holder, limits::LEASE_HOLDER)?;
        let context = "claiming webhook deliveries";
        let candidates: Vec<String> = Entity::find()
            .select_only()
            .column(Column::Id)
            .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
            .filter(Column::NextAttemptAt.lte(ms(now)))
            .filter(unclaimed(now))
            .order_by_asc(Column::NextAttemptAt)
            .order_by_asc(Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_err(context))?;
        let mut claimed = Vec::with_capacity(candidates.len());
        for id in candidates {
            // One conditional UPDATE per row: of several dispatchers that saw the same row,
            // exactly one changes it.
            let _gate = self.write_gate().await;
            let taken = Entity::update_many()
                .col_expr(Column::ClaimHolder, Expr::value(holder))
                .col_expr(Column::ClaimedUntil, Expr::value(ms(until)))
                .filter(Column::Id.eq(id.as_str()))
                .filter(Column::Status.eq(DeliveryStatus::Pending.as_str()))
                .filter(unclaimed(now))
                .exec(&self.db)
                .await
                .map_err(db_err(context))?;
            if taken.rows_affected == 1 {
                claimed.push(id);
            }
        }
        if claimed.is_empty() {
            return Ok(Vec::new());
        }
        let rows = Entity::find()
            .filter(Column::Id.is_in(claimed.iter().map(String::as_str)))
            .order_by_asc(Column::NextAttemptAt)
            .order_by_asc(Column::Id)
            .all(&self.db)
            .await
            .map_err(db_err(context))?;
        let events = event_entity::Entity::find()
            .filter(event_entity::Column::Id.is_in(rows.iter().map(|r| r.event_id.as_str())))
            .all(&self.db)
            .await
            .map_err(db_err(context))?;
        rows.iter()
            .map(|row| {
                let event = events
                    .iter()
                    .find(|e| e.id == row.event_id)
                    .ok_or_else(|| corrupt(TABLE, "event_id", "the event is missing"))?;
                Ok(ClaimedDelivery { delivery: to_delivery(row)?, event: to_event(event)? })
            })
            .collect()
    }

    async fn finish_webhook_delivery(
        &self,
        id: Uuid,
        holder: &str,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome,
    ) -> Result<bool> {
        let (status, next, code, error, delivered) = match outcome {
            DeliveryOutcome::Delivered { status_code } => {
                (DeliveryStatus::Delivered, None, Some(status_code), None, Some(ms(at)))
            }
            DeliveryOutcome::Retry { next_attempt_at, status_code, error } => {
                (DeliveryStatus::Pending, Some(ms(next_attempt_at)), status_code, Some(clip(&error)), None)
            }
            DeliveryOutcome::GiveUp { status_code, error } => {
                (DeliveryStatus::Failed, None, status_code, Some(clip(&error)), None)
            }
        };
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .col_expr(Column::Status, Expr::value(status.as_str()))
            .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
            .col_expr(Column::NextAttemptAt, Expr::value(next))
            .col_expr(Column::ClaimHolder, Expr::value(Option::<String>::None))
            .col_expr(Column::ClaimedUntil, Expr::value(Option::<i64>::None))
            .col_expr(Column::LastAttemptAt, Expr::value(Some(ms(at))))
            .col_expr(Column::LastStatusCode, Expr::value(code.map(i32::from)))
            .col_expr(Column::LastError, Expr::value(error))
            .col_expr(Column::DeliveredAt, Expr::value(delivered))
            .filter(Column::Id.eq(id.to_string()))
            .filter(Column::ClaimHolder.eq(holder))
            .exec(&self.db)
            .await
            .map_err(db_err("recording a webhook attempt"))?;
        Ok(done.rows_affected == 1)
    }

    async fn webhook_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<WebhookDelivery>> {
        let mut query = Entity::find();
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        if let Some(event) = filter.event_id {
            query = query.filter(Column::EventId.eq(event.to_string()));
        }
        if let Some(connection) = filter.connection_id {
            query = query.filter(Column::ConnectionId.eq(connection.to_string()));
        }
        if let Some(endpoint) = &filter.endpoint {
            query = query.filter(Column::Endpoint.eq(endpoint.as_str()));
        }
        query
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(filter.limit)
            .all(&self.db)
            .await
            .map_err(db_err("listing webhook deliveries"))?
            .iter()
            .map(to_delivery)
            .collect()
    }

    async fn webhook_delivery(&self, id: Uuid) -> Result<Option<WebhookDelivery>> {
        Entity::find_by_id(id.to_string())
            .one(&self.db)
            .await
            .map_err(db_err("reading a webhook delivery"))?
            .as_ref()
            .map(to_delivery)
            .transpose()
    }

    async fn retry_webhook_delivery(&self, id: Uuid, now: DateTime<Utc>) -> Result<WebhookDelivery> {
        let _gate = self.write_gate().await;
        let done = Entity::update_many()
            .col_expr(Column::Status, Expr::value(DeliveryStatus::Pending.as_str()))
            .col_expr(Column::Attempts, Expr::value(0))
            .col_expr(Column::NextAttemptAt, Expr::value(Some(ms(now))))
            .col_expr(Column::DeliveredAt, Expr::value(Option::<i64>::None))
            .filter(Column::Id.eq(id.to_string()))
            .filter(unclaimed(now))
            .exec(&self.db)
            .await
            .map_err(db_err("requeuing a webhook delivery"))?;
        let current = self.webhook_delivery(id).await?;
        match current {
            None => Err(Error::NotFound { what: "webhook delivery", id: id.to_string() }),
            Some(_) if done.rows_affected == 0 => Err(Error::InvalidInput(
                "the delivery is being attempted right now; ask again once the attempt is over".into(),
            )),
            Some(d) => Ok(d),
        }
    }

    async fn count_webhook_deliveries(&self) -> Result<Vec<(DeliveryStatus, u64)>> {
        let rows: Vec<(String, i64)> = Entity::find()
            .select_only()
            .column(Column::Status)
            .column_as(Column::Id.count(), "n")
            .group_by(Column::Status)
            .into_tuple()
            .all(&self.db)
            .await
            .map_err(db_err("counting webhook deliveries"))?;
        rows.into_iter()
            .map(|(status, n)| {
                let status = status.parse().map_err(|_| corrupt(TABLE, "status", format!("unknown `{status}`")))?;
                Ok((status, u64::try_from(n).unwrap_or(0)))
            })
            .collect()
    }
}
