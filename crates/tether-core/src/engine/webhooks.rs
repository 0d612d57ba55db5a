//! The webhook dispatcher: claims due deliveries from the outbox, POSTs them signed, and
//! records each outcome (delivered, retry later with backoff, or given up).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use secrecy::ExposeSecret;

use super::Tether;
use super::tokens::jitter_fraction;
use crate::webhook::signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, header_value};
use crate::{ClaimedDelivery, DeliveryOutcome, Error, Result, WebhookPayload, WebhookSettings};

/// Extra time a claim lasts beyond one POST's timeout.
const CLAIM_MARGIN: Duration = Duration::from_secs(30);

/// What one dispatch pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Deliveries claimed and attempted.
    pub attempted: usize,
    /// Of those, accepted by their endpoint.
    pub delivered: usize,
    /// Of those, given up for good.
    pub failed: usize,
}

/// The HTTP side of delivering: one client, the settings, this process's claim holder id.
struct Sender {
    client: reqwest::Client,
    settings: WebhookSettings,
    holder: String,
}

impl Tether {
    /// One pass: claims up to `concurrency` due deliveries and attempts them concurrently.
    pub async fn deliver_webhooks(&self) -> Result<DispatchReport> {
        let sender = Arc::new(self.webhook_sender()?);
        self.dispatch_once(&sender).await
    }

    /// Delivers webhooks until `shutdown` resolves: a pass whenever this process records an
    /// event, at least every `poll_interval` (events recorded by other replicas, due retries),
    /// and again at once while passes find a full batch.
    pub async fn run_webhook_dispatcher(&self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let sender = match self.webhook_sender() {
            Ok(s) => Arc::new(s),
            Err(e) => {
                tracing::error!(error = %e, "the webhook dispatcher cannot start");
                return;
            }
        };
        loop {
            let full = match self.dispatch_once(&sender).await {
                Ok(report) => report.attempted >= sender.settings.concurrency.max(1),
                Err(e) => {
                    tracing::warn!(error = %e, "webhook dispatch pass failed");
                    false
                }
            };
            if full {
                continue;
            }
            let pause = sender.settings.poll_interval.mul_f64(0.8 + 0.4 * jitter_fraction());
            tokio::select! {
                _ = &mut shutdown => return,
                _ = self.inner.webhook_wakeup.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Puts a delivery back in the queue, due now (see
    /// [`WebhookStore::retry_webhook_delivery`](crate::WebhookStore::retry_webhook_delivery)),
    /// and wakes this process's dispatcher.
    pub async fn retry_webhook_delivery(
        &self,
        id: uuid::Uuid,
        now: chrono::DateTime<Utc>,
    ) -> Result<crate::WebhookDelivery> {
        let delivery = self.inner.store.retry_webhook_delivery(id, now).await?;
        self.inner.webhook_wakeup.notify_one();
        Ok(delivery)
    }

    /// A connection's newest `limit` events, each with its webhook deliveries (one per
    /// endpoint that receives its kind; none without webhooks), from two reads.
    pub async fn events_with_deliveries(
        &self,
        id: crate::ConnectionId,
        limit: u64,
    ) -> Result<Vec<(crate::Event, Vec<crate::WebhookDelivery>)>> {
        let events = self.inner.store.events(id, limit).await?;
        let endpoints = self.inner.settings.webhooks.endpoints.len() as u64;
        let mut by_event: std::collections::HashMap<uuid::Uuid, Vec<crate::WebhookDelivery>> =
            std::collections::HashMap::new();
        if endpoints > 0 && !events.is_empty() {
            // At most one delivery per endpoint and event, so this covers the listed events.
            let filter = crate::DeliveryFilter {
                connection_id: Some(id),
                limit: limit.saturating_mul(endpoints + 1),
                ..Default::default()
            };
            for delivery in self.inner.store.webhook_deliveries(&filter).await? {
                by_event.entry(delivery.event_id).or_default().push(delivery);
            }
        }
        Ok(events
            .into_iter()
            .map(|e| {
                let deliveries = by_event.remove(&e.id).unwrap_or_default();
                (e, deliveries)
            })
            .collect())
    }

    fn webhook_sender(&self) -> Result<Sender> {
        let settings = self.inner.settings.webhooks.clone();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("tether-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the webhook HTTP client: {e}")))?;
        Ok(Sender { client, settings, holder: format!("webhooks-{}", self.inner.holder_id) })
    }

    async fn dispatch_once(&self, sender: &Arc<Sender>) -> Result<DispatchReport> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(sender.settings.timeout + CLAIM_MARGIN).unwrap_or_default();
        let batch = sender.settings.concurrency.max(1) as u64;
        let claimed = self.inner.store.claim_webhook_deliveries(&sender.holder, now, until, batch).await?;
        let mut report = DispatchReport { attempted: claimed.len(), ..DispatchReport::default() };
        let mut tasks = tokio::task::JoinSet::new();
        for claim in claimed {
            let engine = self.clone();
            let sender = sender.clone();
            tasks.spawn(async move { engine.attempt(&sender, claim).await });
        }
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(Some(DeliveryOutcome::Delivered { .. }))) => report.delivered += 1,
                Ok(Ok(Some(DeliveryOutcome::GiveUp { .. }))) => report.failed += 1,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!(error = %e, "recording a webhook attempt failed"),
                Err(e) => tracing::error!(error = %e, "a webhook attempt panicked"),
            }
        }
        Ok(report)
    }

    /// Attempts one claimed delivery and writes the outcome. `None` when the claim was lost.
    async fn attempt(&self, sender: &Sender, claim: ClaimedDelivery) -> Result<Option<DeliveryOutcome>> {
        let delivery = &claim.delivery;
        let attempts = delivery.attempts.saturating_add(1);
        let started = Instant::now();
        let result = match sender.settings.endpoints.iter().find(|e| e.name == delivery.endpoint) {
            None => Err((None, format!("the endpoint `{}` is no longer configured", delivery.endpoint), true)),
            Some(endpoint) => match self.inner.store.connection(claim.event.connection_id).await? {
                None => Err((None, "the connection no longer exists".to_owned(), true)),
                Some(connection) => {
                    let body = serde_json::to_vec(&WebhookPayload::new(&claim.event, connection))
                        .map_err(|e| Error::Store(format!("encoding a webhook body: {e}")))?;
                    let signature =
                        header_value(endpoint.secret.expose_secret().as_bytes(), Utc::now().timestamp(), &body);
                    let sent = sender
                        .client
                        .post(endpoint.url.clone())
                        .header(reqwest::header::CONTENT_TYPE, "application/json")
                        .header(SIGNATURE_HEADER, signature)
                        .header(EVENT_HEADER, claim.event.kind.as_str())
                        .header(DELIVERY_HEADER, delivery.id.to_string())
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status().is_success() => Ok(resp.status().as_u16()),
                        Ok(resp) => {
                            let retry_after = crate::oauth2_http::retry_after(resp.headers());
                            let status = resp.status();
                            Err((
                                Some((status.as_u16(), retry_after)),
                                format!("the endpoint answered {status}"),
                                false,
                            ))
                        }
                        Err(e) => Err((None, crate::oauth2_http::describe_reqwest_error(&e), false)),
                    }
                }
            },
        };
        let elapsed = started.elapsed().as_secs_f64();
        let outcome = match result {
            Ok(status_code) => DeliveryOutcome::Delivered { status_code },
            Err((answer, error, final_now)) => {
                let status_code = answer.map(|(s, _)| s);
                if final_now || attempts >= sender.settings.max_attempts {
                    DeliveryOutcome::GiveUp { status_code, error }
                } else {
                    let wait = sender.settings.backoff(attempts, answer.and_then(|(_, r)| r), jitter_fraction());
                    let next_attempt_at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
                    DeliveryOutcome::Retry { next_attempt_at, status_code, error }
                }
            }
        };
        let label = match &outcome {
            DeliveryOutcome::Delivered { .. } => "delivered",
            DeliveryOutcome::Retry { .. } => "retry",
            DeliveryOutcome::GiveUp { .. } => "failed",
        };
        let labels = [("endpoint", delivery.endpoint.clone()), ("outcome", label.to_owned())];
        metrics::counter!("tether_webhook_attempts_total", &labels).increment(1);
        metrics::histogram!("tether_webhook_attempt_duration_seconds", "endpoint" => delivery.endpoint.clone())
            .record(elapsed);
        match &outcome {
            DeliveryOutcome::Delivered { status_code } => tracing::debug!(
                delivery = %delivery.id, endpoint = %delivery.endpoint, event = %claim.event.kind, attempts,
                status_code, "webhook delivered"
            ),
            DeliveryOutcome::Retry { error, next_attempt_at, .. } => tracing::info!(
                delivery = %delivery.id, endpoint = %delivery.endpoint, event = %claim.event.kind, attempts,
                %error, %next_attempt_at, "webhook attempt failed; will retry"
            ),
            DeliveryOutcome::GiveUp { error, .. } => tracing::warn!(
                delivery = %delivery.id, endpoint = %delivery.endpoint, event = %claim.event.kind, attempts,
                %error, "webhook delivery given up"
            ),
        }
        let kept =
            self.inner.store.finish_webhook_delivery(delivery.id, &sender.holder, Utc::now(), outcome.clone()).await?;
        if !kept {
            tracing::warn!(delivery = %delivery.id, "the webhook claim expired before the attempt was recorded");
            return Ok(None);
        }
        Ok(Some(outcome))
    }
}
