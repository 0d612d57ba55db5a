//! Tether's HTTP layer on actix-web: the JSON API v1, the browser routes of the connect flow
//! (connect link and callback), and the demo provider mount.
//!
//! This crate is thin: every decision is made by the [`tether_core::Tether`] engine; handlers
//! translate HTTP to engine calls and engine errors to JSON (API) or readable pages (browser).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod admin;
mod api;
mod api_webhooks;
mod auth;
mod browser;
mod error;
mod middleware;
mod openapi;
mod ops;
mod pages;
mod proxy;

use actix_web::web;
use tether_core::Tether;

pub use admin::{AdminSettings, AdminSettingsError, hash_admin_password};
pub use auth::{ApiKeyEntry, ApiKeyScope, ApiKeys};
pub use error::{ApiError, PageError};
pub use openapi::openapi;
pub use ops::{Readiness, metrics_handle};
pub use tether_testkit::MockProvider as DemoAuthorizationServer;

/// Everything the handlers need. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    /// The engine.
    pub engine: Tether,
    /// Accepted API keys (hashed).
    pub api_keys: ApiKeys,
    /// The demo authorization server mounted at `/demo` (only with `--demo`).
    pub demo: Option<DemoAuthorizationServer>,
    /// Database readiness for `/readyz` (`None`: always ready).
    pub readiness: Option<std::sync::Arc<dyn Readiness>>,
    /// How the admin pages under `/admin` authenticate (disabled by default).
    pub admin: AdminSettings,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("engine", &self.engine)
            .field("demo", &self.demo.is_some())
            .field("admin", &self.admin)
            .finish()
    }
}

/// Registers every route of Tether on an actix `App`:
///
/// ```ignore
/// HttpServer::new(move || App::new().configure(|c| tether_web::configure(c, &state)))
/// ```
pub fn configure(cfg: &mut web::ServiceConfig, state: &WebState) {
    cfg.app_data(web::Data::new(state.clone()))
        .app_data(error::json_config())
        .app_data(error::query_config())
        .app_data(error::path_config())
        .service(api::scope())
        .route("/openapi.json", web::get().to(openapi::openapi_json))
        .configure(ops::configure);
    if let Some(demo) = &state.demo {
        let demo = demo.clone();
        cfg.service(web::scope("/demo").wrap(middleware::browser_headers()).configure(move |c| demo.configure(c)));
    }
    cfg.configure(admin::configure);
    // Last: the browser scope has an empty prefix and answers everything else.
    cfg.configure(browser::configure).default_service(web::to(error::not_found));
}

/// Middleware that logs each request with its path only (never the query string, which
/// carries OAuth codes and states on callback routes) and adds a request id.
pub fn request_logger() -> middleware::RequestLogger {
    middleware::RequestLogger
}
