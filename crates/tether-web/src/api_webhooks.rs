//! `/v1/webhooks`: the configured endpoints and the delivery status of every event.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, get, post, web};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use tether_core::{ConnectionId, DeliveryFilter, DeliveryStatus, EventKind, WebhookDelivery};
use utoipa::{IntoParams, ToSchema};

use crate::api::{ErrorBody, ok_json};
use crate::auth::Authenticated;
use crate::{ApiError, WebState};

type ApiResult = Result<HttpResponse, ApiError>;

/// A configured endpoint (never its secret).
#[derive(Serialize, ToSchema)]
struct EndpointView {
    /// The configured name; deliveries refer to it.
    name: String,
    /// The URL without query string or credentials.
    url: String,
    /// Event kinds it receives.
    events: Vec<EventKind>,
}

/// How many deliveries are in each status.
#[derive(Serialize, ToSchema, Default)]
struct DeliveryCounts {
    pending: u64,
    delivered: u64,
    failed: u64,
}

/// `GET /v1/webhooks`.
#[derive(Serialize, ToSchema)]
struct WebhooksResponse {
    endpoints: Vec<EndpointView>,
    /// Deliveries in the outbox by status (every endpoint, every replica).
    deliveries: DeliveryCounts,
}

/// The configured webhook endpoints and the outbox's totals.
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Endpoints and delivery counts", body = WebhooksResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    )
)]
#[get("/webhooks")]
pub(crate) async fn list_webhooks(_: Authenticated, state: web::Data<WebState>) -> ApiResult {
    let endpoints = state
        .engine
        .settings()
        .webhooks
        .endpoints
        .iter()
        .map(|e| EndpointView { name: e.name.clone(), url: e.display_url(), events: e.events.clone() })
        .collect();
    let mut deliveries = DeliveryCounts::default();
    for (status, n) in state.engine.store().count_webhook_deliveries().await? {
        match status {
            DeliveryStatus::Pending => deliveries.pending = n,
            DeliveryStatus::Delivered => deliveries.delivered = n,
            DeliveryStatus::Failed => deliveries.failed = n,
        }
    }
    Ok(ok_json(StatusCode::OK, &WebhooksResponse { endpoints, deliveries }))
}

/// Filters of `GET /v1/webhooks/deliveries`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct DeliveriesQuery {
    /// `pending`, `delivered` or `failed`.
    status: Option<String>,
    /// Only deliveries of this connection's events.
    connection_id: Option<String>,
    /// Only deliveries of this event.
    event_id: Option<String>,
    /// Only this endpoint (its configured name).
    endpoint: Option<String>,
    /// At most this many (default 100, max 1000).
    limit: Option<u64>,
}

/// `GET /v1/webhooks/deliveries`.
#[derive(Serialize, ToSchema)]
struct DeliveriesResponse {
    deliveries: Vec<WebhookDelivery>,
}

fn parse_uuid(what: &str, raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map_err(|_| tether_core::Error::InvalidInput(format!("`{}` is not a valid {what}", raw.escape_debug())).into())
}

/// Webhook deliveries, newest first: one per event and endpoint, with attempts, the last
/// status code or error, and when the next attempt is due.
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    params(DeliveriesQuery),
    responses(
        (status = 200, description = "Deliveries", body = DeliveriesResponse),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    )
)]
#[get("/webhooks/deliveries")]
pub(crate) async fn list_deliveries(
    _: Authenticated,
    state: web::Data<WebState>,
    q: web::Query<DeliveriesQuery>,
) -> ApiResult {
    let q = q.into_inner();
    let present = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    let filter = DeliveryFilter {
        status: present(&q.status).map(|s| s.parse::<DeliveryStatus>()).transpose()?,
        // A malformed id in a filter is a bad request (400), not a missing connection.
        connection_id: present(&q.connection_id)
            .map(|s| parse_uuid("connection id", &s).map(ConnectionId::from))
            .transpose()?,
        event_id: present(&q.event_id).map(|s| parse_uuid("event id", &s)).transpose()?,
        endpoint: present(&q.endpoint),
        limit: q.limit.unwrap_or(100).min(1000),
    };
    let deliveries = state.engine.store().webhook_deliveries(&filter).await?;
    Ok(ok_json(StatusCode::OK, &DeliveriesResponse { deliveries }))
}

/// One delivery.
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 200, description = "The delivery", body = WebhookDelivery),
        (status = 400, description = "Not a delivery id", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
#[get("/webhooks/deliveries/{id}")]
pub(crate) async fn get_delivery(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_uuid("delivery id", &id)?;
    let delivery = state
        .engine
        .store()
        .webhook_delivery(id)
        .await?
        .ok_or_else(|| tether_core::Error::NotFound { what: "webhook delivery", id: id.to_string() })?;
    Ok(ok_json(StatusCode::OK, &delivery))
}

/// Sends a delivery again: puts it back in the queue, due now, with a fresh set of attempts
/// (for a `failed` delivery after fixing the receiver, or to replay a `delivered` one).
#[utoipa::path(
    tag = "webhooks",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Delivery id")),
    responses(
        (status = 202, description = "Queued; the dispatcher sends it shortly", body = WebhookDelivery),
        (status = 400, description = "Not a delivery id, or an attempt is in flight right now", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 403, description = "Read-only API key", body = ErrorBody),
        (status = 404, description = "No such delivery", body = ErrorBody),
    )
)]
#[post("/webhooks/deliveries/{id}/retry")]
pub(crate) async fn retry_delivery(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_uuid("delivery id", &id)?;
    let delivery = state.engine.retry_webhook_delivery(id, Utc::now()).await?;
    Ok(ok_json(StatusCode::ACCEPTED, &delivery))
}
