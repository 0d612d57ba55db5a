//! The admin web pages under `/admin`: connections (filtered list, one connection with its
//! events and actions) and providers (configuration status, redirect URIs, Connect), rendered
//! on the server with askama, for authenticated admins only (see [`auth`]).
//!
//! Every page carries strict security headers ([`view::security_headers`]); every
//! state-changing form carries the session's CSRF token; tokens only ever appear in the body of
//! a POST response the admin explicitly asked for.

mod auth;
mod connections;
mod providers;
mod time;
mod view;

use std::collections::BTreeMap;

use actix_web::{HttpResponse, middleware, web};

pub use auth::{AdminSettings, AdminSettingsError, hash_admin_password};

use crate::WebState;

/// Registers `/admin` (before the catch-all browser scope).
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .wrap(view::security_headers())
            .app_data(view::form_config())
            .app_data(view::query_config())
            .app_data(view::path_config())
            .route("/static/app.css", web::get().to(view::css))
            .route("/static/app.js", web::get().to(view::js))
            .route("/login", web::get().to(auth::login_page))
            .route("/login", web::post().to(auth::login))
            .route("/connect/done", web::get().to(providers::connect_done))
            .service(
                web::scope("")
                    .wrap(middleware::from_fn(auth::require_admin))
                    .route("", web::get().to(home))
                    .route("/", web::get().to(home))
                    .route("/logout", web::post().to(auth::logout))
                    .route("/connections", web::get().to(connections::list))
                    .route("/connections/{id}", web::get().to(connections::show))
                    .route("/connections/{id}/refresh", web::post().to(connections::refresh))
                    .route("/connections/{id}/token", web::post().to(connections::reveal_token))
                    .route("/connections/{id}/disconnect", web::post().to(connections::disconnect))
                    .route("/connections/{id}/reconnect", web::post().to(connections::reconnect_link))
                    .route("/providers", web::get().to(providers::list))
                    .route("/providers/{id}/connect", web::post().to(providers::connect))
                    .default_service(web::to(view::not_found)),
            ),
    );
}

async fn home() -> HttpResponse {
    view::see_other("/admin/connections")
}

/// Display names of every provider id the pages may show: configured ones (generic providers
/// have their own ids and names) and compiled-in ones.
pub(crate) struct ProviderNames(BTreeMap<String, String>);

impl ProviderNames {
    pub(crate) fn collect(state: &WebState) -> Self {
        let mut names = BTreeMap::new();
        if let Ok(registry) = tether_core::ProviderRegistry::collect() {
            for p in registry.iter() {
                let spec = p.spec();
                names.insert(spec.id.to_owned(), spec.display_name.to_owned());
            }
        }
        for p in state.engine.providers() {
            names.insert(p.id.to_string(), p.settings.display_name.clone());
        }
        Self(names)
    }

    /// The display name of `id` (the id itself when unknown, e.g. a generic provider removed
    /// from the configuration).
    pub(crate) fn display_name(&self, id: &str) -> String {
        self.0.get(id).cloned().unwrap_or_else(|| id.to_owned())
    }

    /// `(id, display name)` pairs, sorted by id.
    pub(crate) fn all(&self) -> Vec<(String, String)> {
        self.0.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}
