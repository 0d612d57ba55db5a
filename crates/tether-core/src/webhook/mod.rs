//! Webhooks: connection events POSTed to the application's URLs, signed, from a durable outbox.
//!
//! Recording an event writes one pending delivery per subscribed endpoint in the same
//! transaction ([`WebhookStore::record_event_with_deliveries`]), so an event that exists is an
//! event that will be delivered, whatever happens to the process afterwards. A dispatcher
//! ([`Tether::run_webhook_dispatcher`](crate::Tether::run_webhook_dispatcher)) claims due
//! deliveries with a lease (several replicas never send the same attempt twice at once), POSTs
//! them signed with HMAC-SHA256 ([`signature`]), and records the outcome: delivered, retried
//! later with exponential backoff, or given up after the last attempt.

pub mod signature;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{Connection, ConnectionId, Error, Event, EventKind, NewEvent, Result, Url};

/// The events an endpoint receives when its configuration names none.
pub const DEFAULT_WEBHOOK_EVENTS: [EventKind; 5] = [
    EventKind::Connected,
    EventKind::ReauthRequired,
    EventKind::RefreshFailed,
    EventKind::Revoked,
    EventKind::Disconnected,
];

/// One URL the application registered for events.
#[derive(Clone)]
pub struct WebhookEndpoint {
    /// Stable name; deliveries refer to it, so renaming an endpoint orphans its pending ones.
    pub name: String,
    /// Where events are POSTed.
    pub url: Url,
    /// The shared secret the signature is computed with.
    pub secret: SecretString,
    /// The event kinds this endpoint receives.
    pub events: Vec<EventKind>,
}

impl WebhookEndpoint {
    /// Whether this endpoint receives events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.contains(&kind)
    }

    /// The URL without its query string and credentials, for logs and the API.
    pub fn display_url(&self) -> String {
        let mut url = self.url.clone();
        url.set_query(None);
        url.set_fragment(None);
        let _ = url.set_password(None);
        let _ = url.set_username("");
        url.to_string()
    }
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("name", &self.name)
            .field("url", &self.display_url())
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .finish()
    }
}

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// The endpoints; none means events are recorded but nothing is delivered.
    pub endpoints: Vec<WebhookEndpoint>,
    /// Attempts before a delivery is given up (status `failed`).
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles with each further failure.
    pub initial_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Timeout of one POST.
    pub timeout: Duration,
    /// POSTs in flight at once.
    pub concurrency: usize,
    /// How often the outbox is polled for due deliveries when nothing wakes the dispatcher.
    pub poll_interval: Duration,
}

impl Default for WebhookSettings {
    /// 12 attempts over about 17 hours (10 s doubling to a 4 h cap), 10 s timeout, 8 in flight,
    /// 1 s polling.
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            max_attempts: 12,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(4 * 3600),
            timeout: Duration::from_secs(10),
            concurrency: 8,
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl WebhookSettings {
    /// Checks names (unique, storable), URLs (http or https) and secrets (at least 16 bytes).
    pub fn validate(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.endpoints {
            if e.name.is_empty() || e.name.len() > WEBHOOK_NAME_MAX {
                return Err(Error::Config(format!(
                    "webhook name `{}` must be 1 to {WEBHOOK_NAME_MAX} characters",
                    e.name.escape_debug()
                )));
            }
            if !seen.insert(e.name.as_str()) {
                return Err(Error::Config(format!("two webhooks are named `{}`; give each a unique name", e.name)));
            }
            if !matches!(e.url.scheme(), "http" | "https") {
                return Err(Error::Config(format!("webhook `{}`: the URL must be http or https", e.name)));
            }
            if secrecy::ExposeSecret::expose_secret(&e.secret).len() < 16 {
                return Err(Error::Config(format!(
                    "webhook `{}`: the secret must be at least 16 characters (e.g. `openssl rand -hex 32`)",
                    e.name
                )));
            }
            if e.events.is_empty() {
                return Err(Error::Config(format!("webhook `{}`: `events` is empty", e.name)));
            }
        }
        if self.max_attempts == 0 {
            return Err(Error::Config("webhook max_attempts must be at least 1".into()));
        }
        Ok(())
    }

    /// Names of the endpoints that receive events of `kind`.
    pub fn endpoints_for(&self, kind: EventKind) -> Vec<String> {
        self.endpoints.iter().filter(|e| e.wants(kind)).map(|e| e.name.clone()).collect()
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed ones (at least 1):
    /// `initial_backoff × 2^(attempts-1)`, capped at `max_backoff`, jittered by ±20 %, and never
    /// shorter than a `Retry-After` the receiver asked for.
    pub fn backoff(&self, attempts: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let base = self.initial_backoff.saturating_mul(1u32 << exp).min(self.max_backoff);
        let jittered = base.mul_f64(0.8 + 0.4 * jitter.clamp(0.0, 1.0));
        retry_after.map_or(jittered, |r| jittered.max(r.min(self.max_backoff)))
    }
}

/// Longest endpoint name the outbox stores.
pub const WEBHOOK_NAME_MAX: usize = 64;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Not delivered yet; will be attempted at `next_attempt_at`.
    Pending,
    /// The endpoint answered 2xx.
    Delivered,
    /// Given up after the last attempt (or the endpoint is no longer configured).
    Failed,
}

impl DeliveryStatus {
    /// Stored / API form.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(Error::InvalidInput(format!(
                "unknown delivery status `{}` (expected pending, delivered or failed)",
                other.escape_debug()
            ))),
        }
    }
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    /// Delivery id (UUID v7), sent as `Tether-Delivery`.
    pub id: uuid::Uuid,
    /// The event delivered.
    pub event_id: uuid::Uuid,
    /// The event's kind.
    pub event_kind: EventKind,
    /// The connection the event is about.
    pub connection_id: ConnectionId,
    /// The endpoint's configured name.
    pub endpoint: String,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// When the last attempt was made.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// HTTP status of the last attempt, if the endpoint answered.
    pub last_status_code: Option<u16>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When the delivery was enqueued (with its event).
    pub created_at: DateTime<Utc>,
    /// When the endpoint accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this status.
    pub status: Option<DeliveryStatus>,
    /// Only this event.
    pub event_id: Option<uuid::Uuid>,
    /// Only events of this connection.
    pub connection_id: Option<ConnectionId>,
    /// Only this endpoint.
    pub endpoint: Option<String>,
    /// At most this many (newest first).
    pub limit: u64,
}

/// What happened on an attempt, as written back to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// 2xx.
    Delivered {
        /// The endpoint's status code.
        status_code: u16,
    },
    /// Failed; try again at `next_attempt_at`.
    Retry {
        /// When.
        next_attempt_at: DateTime<Utc>,
        /// The endpoint's status code, if it answered.
        status_code: Option<u16>,
        /// What went wrong (no secrets).
        error: String,
    },
    /// Failed for the last time.
    GiveUp {
        /// The endpoint's status code, if it answered.
        status_code: Option<u16>,
        /// What went wrong (no secrets).
        error: String,
    },
}

/// A delivery claimed by one dispatcher, with its event.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    /// The delivery (as claimed: `attempts` does not count the attempt about to be made).
    pub delivery: WebhookDelivery,
    /// The event to send.
    pub event: Event,
}

/// The outbox: pending deliveries, claims and outcomes.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Records an event and, in the same transaction, one pending delivery (due now) per named
    /// endpoint.
    async fn record_event_with_deliveries(&self, event: NewEvent, endpoints: &[String]) -> Result<Event>;

    /// Claims up to `limit` pending deliveries due at `now` for `holder` until `until`: each
    /// delivery is claimed by one holder at a time (a conditional update), and a claim that
    /// expires (crashed holder) can be taken again. Oldest first.
    async fn claim_webhook_deliveries(
        &self,
        holder: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// Writes the outcome of an attempt made at `at` and releases the claim. Returns false (and
    /// writes nothing) when `holder` no longer holds the claim.
    async fn finish_webhook_delivery(
        &self,
        id: uuid::Uuid,
        holder: &str,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome,
    ) -> Result<bool>;

    /// Deliveries matching the filter, newest first.
    async fn webhook_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<WebhookDelivery>>;

    /// One delivery.
    async fn webhook_delivery(&self, id: uuid::Uuid) -> Result<Option<WebhookDelivery>>;

    /// Puts a delivery back in the queue, due at `now`, with its attempts counted from zero
    /// (a manual redelivery). Returns the updated delivery; `NotFound` when there is none.
    async fn retry_webhook_delivery(&self, id: uuid::Uuid, now: DateTime<Utc>) -> Result<WebhookDelivery>;

    /// Number of deliveries in each status.
    async fn count_webhook_deliveries(&self) -> Result<Vec<(DeliveryStatus, u64)>>;
}

/// The JSON body POSTed for an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    /// The event id: the same across retries, so receivers can drop duplicates.
    pub id: uuid::Uuid,
    /// `connected`, `reauth_required`, `refresh_failed`, `revoked`, `disconnected` (`refreshed`
    /// when subscribed).
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// Details for people (never secrets).
    pub message: Option<String>,
    /// The connection as it is when the delivery is sent (no secrets).
    pub connection: Connection,
}

impl WebhookPayload {
    /// The payload of `event` about `connection`.
    pub fn new(event: &Event, connection: Connection) -> Self {
        Self {
            id: event.id,
            kind: event.kind,
            created_at: event.created_at,
            message: event.message.clone(),
            connection,
        }
    }
}
