//! [`EventStore`] for [`SeaStore`].

use async_trait::async_trait;
use chrono::Utc;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use tether_core::{ConnectionId, Error, Event, EventKind, EventStore, NewEvent, Result};
use uuid::Uuid;

use super::{SeaStore, ms, time};
use crate::entity::event::{self, Column, Entity};
use crate::error::{corrupt, db_err, is_foreign_key_violation};

const EVENTS: &str = "events";
/// Longest message kept (they are for people; a TEXT column holds 64 KB on MySQL).
const MESSAGE_MAX: usize = 4000;

pub(super) fn to_event(row: &event::Model) -> Result<Event> {
    Ok(Event {
        id: Uuid::parse_str(&row.id).map_err(|e| corrupt(EVENTS, "id", e))?,
        connection_id: ConnectionId::parse(&row.connection_id)
            .map_err(|_| corrupt(EVENTS, "connection_id", "not a UUID"))?,
        kind: EventKind::parse(&row.kind)
            .ok_or_else(|| corrupt(EVENTS, "kind", format!("unknown kind `{}`", row.kind)))?,
        message: row.message.clone(),
        created_at: time(EVENTS, "created_at", row.created_at)?,
    })
}

/// Inserts an event row on `db` (the pool or a transaction).
pub(super) async fn insert_event(db: &impl ConnectionTrait, new: NewEvent) -> Result<Event> {
    let row = event::Model {
        id: Uuid::now_v7().to_string(),
        connection_id: new.connection_id.to_string(),
        kind: new.kind.as_str().to_owned(),
        message: new.message.map(|m| m.chars().take(MESSAGE_MAX).collect()),
        created_at: ms(Utc::now()),
    };
    let active = event::ActiveModel {
        id: Set(row.id.clone()),
        connection_id: Set(row.connection_id.clone()),
        kind: Set(row.kind.clone()),
        message: Set(row.message.clone()),
        created_at: Set(row.created_at),
    };
    Entity::insert(active).exec_without_returning(db).await.map_err(|e| {
        if is_foreign_key_violation(&e) {
            Error::NotFound { what: "connection", id: new.connection_id.to_string() }
        } else {
            db_err("recording an event")(e)
        }
    })?;
    to_event(&row)
}

/// Inserts several event rows with one statement on `db` (the pool or a transaction).
pub(super) async fn insert_events(db: &impl ConnectionTrait, events: Vec<NewEvent>) -> Result<Vec<Event>> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let created_at = ms(Utc::now());
    let rows: Vec<event::Model> = events
        .into_iter()
        .map(|new| event::Model {
            id: Uuid::now_v7().to_string(),
            connection_id: new.connection_id.to_string(),
            kind: new.kind.as_str().to_owned(),
            message: new.message.map(|m| m.chars().take(MESSAGE_MAX).collect()),
            created_at,
        })
        .collect();
    let active = rows.iter().map(|row| event::ActiveModel {
        id: Set(row.id.clone()),
        connection_id: Set(row.connection_id.clone()),
        kind: Set(row.kind.clone()),
        message: Set(row.message.clone()),
        created_at: Set(row.created_at),
    });
    Entity::insert_many(active).exec_without_returning(db).await.map_err(|e| {
        if is_foreign_key_violation(&e) {
            Error::NotFound { what: "connection", id: "one of the events' connections".into() }
        } else {
            db_err("recording events")(e)
        }
    })?;
    rows.iter().map(to_event).collect()
}

#[async_trait]
impl EventStore for SeaStore {
    async fn record_event(&self, new: NewEvent) -> Result<Event> {
        let _gate = self.write_gate().await;
        insert_event(&self.db, new).await
    }

    async fn record_events(&self, events: Vec<NewEvent>) -> Result<()> {
        let _gate = self.write_gate().await;
        insert_events(&self.db, events).await.map(|_| ())
    }

    async fn events(&self, connection: ConnectionId, limit: u64) -> Result<Vec<Event>> {
        Entity::find()
            .filter(Column::ConnectionId.eq(connection.to_string()))
            .order_by_desc(Column::CreatedAt)
            .order_by_desc(Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(db_err("listing events"))?
            .iter()
            .map(to_event)
            .collect()
    }
}
