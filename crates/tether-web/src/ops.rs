//! Operations endpoints: `/healthz` (process up), `/readyz` (database reachable, migrations
//! applied) and `/metrics` (Prometheus text format).

use std::sync::OnceLock;

use actix_web::{HttpResponse, web};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tether_core::{ConnectionStatus, DeliveryStatus};

use crate::WebState;

/// What `/readyz` asks the database layer. Implemented by the server over its store.
#[async_trait::async_trait]
pub trait Readiness: Send + Sync {
    /// `Ok` when the database answers and no migration is pending; else why not.
    async fn check(&self) -> Result<(), String>;
}

/// The process-wide Prometheus recorder (installed on first use; metrics are global).
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Suffix("duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

async fn readyz(state: web::Data<WebState>) -> HttpResponse {
    let result = match &state.readiness {
        Some(r) => r.check().await,
        None => Ok(()),
    };
    match result {
        Ok(()) => HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })),
        Err(why) => {
            tracing::warn!(reason = %why, "not ready");
            HttpResponse::ServiceUnavailable()
                .insert_header(("Retry-After", "5"))
                .json(serde_json::json!({ "status": "not_ready", "reason": why }))
        }
    }
}

async fn metrics(state: web::Data<WebState>) -> HttpResponse {
    let Some(handle) = metrics_handle() else {
        return HttpResponse::ServiceUnavailable().body("metrics recorder unavailable");
    };
    match state.engine.store().count_by_status().await {
        Ok(counts) => {
            for status in [ConnectionStatus::Active, ConnectionStatus::ReauthRequired, ConnectionStatus::Disconnected] {
                let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                metrics::gauge!("tether_connections", "status" => status.as_str()).set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "could not count connections for metrics"),
    }
    if !state.engine.settings().webhooks.endpoints.is_empty() {
        match state.engine.store().count_webhook_deliveries().await {
            Ok(counts) => {
                for status in [DeliveryStatus::Pending, DeliveryStatus::Delivered, DeliveryStatus::Failed] {
                    let n = counts.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                    metrics::gauge!("tether_webhook_deliveries", "status" => status.as_str()).set(n as f64);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not count webhook deliveries for metrics"),
        }
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(handle.render())
}
