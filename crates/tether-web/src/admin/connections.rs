//! The connections pages: the filtered list, one connection with its events, and the actions
//! (refresh now, reveal a fresh token, disconnect, reconnect link).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;
use tether_core::{
    Connection, ConnectionFilter, ConnectionId, ConnectionStatus, DeliveryStatus, ExposeSecret, OwnerId, ProviderId,
};

use super::auth::{AdminSession, CsrfForm};
use super::time;
use super::view::{self, AdminError, Chrome, Flash};
use crate::WebState;

/// At most this many rows on the list page.
const LIST_LIMIT: u64 = 500;

/// A connection as the pages show it.
pub(crate) struct Row {
    pub(crate) id: String,
    pub(crate) owner: String,
    pub(crate) account_name: String,
    pub(crate) account_id: String,
    pub(crate) provider_id: String,
    pub(crate) provider_name: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) status: &'static str,
    pub(crate) status_label: &'static str,
    pub(crate) status_tone: &'static str,
    pub(crate) expiry: String,
    pub(crate) expiry_title: String,
    pub(crate) expiry_tone: &'static str,
    pub(crate) last_refresh: String,
    pub(crate) last_refresh_title: String,
    pub(crate) last_error: Option<String>,
    pub(crate) created: String,
    pub(crate) created_title: String,
    pub(crate) has_refresh_token: bool,
}

fn status_view(s: ConnectionStatus) -> (&'static str, &'static str) {
    match s {
        ConnectionStatus::Active => ("active", "ok"),
        ConnectionStatus::ReauthRequired => ("needs reconnect", "bad"),
        ConnectionStatus::Disconnected => ("disconnected", "muted"),
        _ => ("unknown", "warn"),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { format!("{}…", s.chars().take(max).collect::<String>()) }
}

impl Row {
    pub(crate) fn new(c: &Connection, names: &super::ProviderNames, margin: std::time::Duration) -> Self {
        let now = Utc::now();
        let (status_label, status_tone) = status_view(c.status);
        let (expiry, expiry_tone) = if c.status == ConnectionStatus::Disconnected {
            ("no token".to_owned(), "muted")
        } else {
            time::expiry(c.expires_at, now, margin)
        };
        Self {
            id: c.id.to_string(),
            owner: c.owner.to_string(),
            account_name: c.account.name.clone().unwrap_or_else(|| "(no name)".to_owned()),
            account_id: c.account.id.clone(),
            provider_id: c.provider.to_string(),
            provider_name: names.display_name(c.provider.as_str()),
            scopes: c.scopes.clone(),
            status: c.status.as_str(),
            status_label,
            status_tone,
            expiry,
            expiry_title: c.expires_at.map(time::exact).unwrap_or_default(),
            expiry_tone,
            last_refresh: c.last_refreshed_at.map_or_else(|| "never".to_owned(), |t| time::relative(t, now)),
            last_refresh_title: c.last_refreshed_at.map(time::exact).unwrap_or_default(),
            last_error: c.last_error.as_deref().map(|e| shorten(e, 300)),
            created: time::relative(c.created_at, now),
            created_title: time::exact(c.created_at),
            has_refresh_token: c.has_refresh_token,
        }
    }
}

#[derive(Template)]
#[template(path = "admin/connections.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
    owner: String,
    providers: Vec<(String, String, bool)>,
    statuses: Vec<(&'static str, &'static str, bool)>,
    truncated: bool,
    filtered: bool,
}

/// Filters of the list page.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    owner: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    status: String,
}

/// `GET /admin/connections`.
pub(crate) async fn list(
    state: web::Data<WebState>,
    session: AdminSession,
    req: HttpRequest,
    q: web::Query<ListQuery>,
) -> Result<HttpResponse, AdminError> {
    let q = q.into_inner();
    let (owner, provider, status) = (q.owner.trim(), q.provider.trim(), q.status.trim());
    let filter = ConnectionFilter {
        owner: (!owner.is_empty()).then(|| OwnerId::parse(owner)).transpose()?,
        provider: (!provider.is_empty()).then(|| ProviderId::parse(provider)).transpose()?,
        status: (!status.is_empty()).then(|| status.parse::<ConnectionStatus>()).transpose()?,
        limit: Some(LIST_LIMIT + 1),
    };
    let mut connections = state.engine.store().list_connections(&filter).await?;
    let truncated = connections.len() as u64 > LIST_LIMIT;
    connections.truncate(LIST_LIMIT as usize);
    let names = super::ProviderNames::collect(&state);
    let margin = state.engine.settings().refresh_margin;
    let flash = view::take_flash(&state, &req);
    let page = ListPage {
        chrome: Chrome::new(&session, flash.clone(), "connections"),
        rows: connections.iter().map(|c| Row::new(c, &names, margin)).collect(),
        owner: owner.to_owned(),
        providers: names.all().into_iter().map(|(id, name)| (id.clone(), name, id == provider)).collect(),
        statuses: [("active", "active"), ("reauth_required", "needs reconnect"), ("disconnected", "disconnected")]
            .into_iter()
            .map(|(value, label)| (value, label, value == status))
            .collect(),
        truncated,
        filtered: !(owner.is_empty() && provider.is_empty() && status.is_empty()),
    };
    Ok(view::render(StatusCode::OK, &page, flash.is_some()))
}

/// An event as the timeline shows it.
struct EventRow {
    kind: String,
    tone: &'static str,
    message: Option<String>,
    when: String,
    when_title: String,
    /// Its webhook deliveries, one per subscribed endpoint.
    deliveries: Vec<DeliveryRow>,
}

/// One webhook delivery of an event: endpoint, status and what the last attempt said.
struct DeliveryRow {
    endpoint: String,
    status: &'static str,
    tone: &'static str,
    detail: String,
}

impl DeliveryRow {
    fn new(d: &tether_core::WebhookDelivery, now: chrono::DateTime<Utc>) -> Self {
        let attempts = match d.attempts {
            1 => "1 attempt".to_owned(),
            n => format!("{n} attempts"),
        };
        let last = match (d.last_status_code, &d.last_error) {
            (_, Some(error)) => format!("; last: {error}"),
            (Some(code), None) => format!("; last: HTTP {code}"),
            (None, None) => String::new(),
        };
        let (tone, detail) = match d.status {
            DeliveryStatus::Delivered => ("ok", format!("{attempts}{last}")),
            DeliveryStatus::Failed => ("bad", format!("gave up after {attempts}{last}")),
            DeliveryStatus::Pending => {
                let next = d.next_attempt_at.map(|t| format!(", next attempt {}", time::relative(t, now)));
                ("warn", format!("{attempts}{}{last}", next.unwrap_or_default()))
            }
        };
        Self { endpoint: d.endpoint.clone(), status: d.status.as_str(), tone, detail }
    }
}

#[derive(Template)]
#[template(path = "admin/connection.html")]
struct ShowPage {
    chrome: Chrome,
    c: Row,
    events: Vec<EventRow>,
    can_use: bool,
    can_reconnect: bool,
}

fn parse_id(raw: &str) -> Result<ConnectionId, AdminError> {
    ConnectionId::parse(raw).map_err(|_| AdminError::not_found("connection"))
}

fn page_of(id: ConnectionId) -> String {
    format!("/admin/connections/{id}")
}

/// `GET /admin/connections/{id}`.
pub(crate) async fn show(
    state: web::Data<WebState>,
    session: AdminSession,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, AdminError> {
    let id = parse_id(&id)?;
    let conn = state.engine.connection(id).await?;
    let now = Utc::now();
    let events = state
        .engine
        .events_with_deliveries(id, 200)
        .await?
        .into_iter()
        .map(|(e, deliveries)| EventRow {
            deliveries: deliveries.iter().map(|d| DeliveryRow::new(d, now)).collect(),
            kind: e.kind.to_string(),
            tone: match e.kind {
                tether_core::EventKind::Connected | tether_core::EventKind::Refreshed => "ok",
                tether_core::EventKind::RefreshFailed => "warn",
                tether_core::EventKind::ReauthRequired => "bad",
                _ => "muted",
            },
            message: e.message,
            when: time::relative(e.created_at, now),
            when_title: time::exact(e.created_at),
        })
        .collect();
    let names = super::ProviderNames::collect(&state);
    let flash = view::take_flash(&state, &req);
    let page = ShowPage {
        chrome: Chrome::new(&session, flash.clone(), "connections"),
        c: Row::new(&conn, &names, state.engine.settings().refresh_margin),
        events,
        can_use: conn.status == ConnectionStatus::Active,
        can_reconnect: conn.status != ConnectionStatus::Active,
    };
    Ok(view::render(StatusCode::OK, &page, flash.is_some()))
}

/// Engine failures of an action: "no such connection" is a page; anything else goes back to
/// the connection's page as a flash message (its events tell the rest).
fn action_failed(
    state: &WebState,
    id: ConnectionId,
    what: &str,
    e: tether_core::Error,
) -> Result<HttpResponse, AdminError> {
    let e = AdminError::from(e);
    if e.code() == "not_found" {
        return Err(e);
    }
    Ok(view::back_with(state, &page_of(id), Flash::bad(format!("{what} failed: {} ({})", e.message(), e.code()))))
}

/// `POST /admin/connections/{id}/refresh`.
pub(crate) async fn refresh(
    state: web::Data<WebState>,
    session: AdminSession,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AdminError> {
    session.check_csrf(&form.csrf)?;
    let id = parse_id(&id)?;
    match state.engine.refresh_now(id).await {
        Ok(t) => {
            tracing::info!(connection = %id, admin = %session.user, "admin refreshed a connection");
            let expiry = t
                .expires_at
                .map_or_else(|| "does not expire".to_owned(), |e| format!("expires {}", time::relative(e, Utc::now())));
            Ok(view::back_with(&state, &page_of(id), Flash::ok(format!("Refreshed. The new access token {expiry}."))))
        }
        Err(e) => action_failed(&state, id, "Refresh", e),
    }
}

/// A form with a confirmation checkbox.
#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    confirm: String,
}

#[derive(Template)]
#[template(path = "admin/token.html")]
struct TokenPage<'a> {
    chrome: Chrome,
    c: Row,
    token: &'a str,
    token_type: &'a str,
    token_secret: Option<&'a str>,
    expiry: String,
    scopes: Vec<String>,
}

/// `POST /admin/connections/{id}/token`: shows a fresh access token once. Needs the CSRF token
/// and the confirmation box; the token is only ever in this response's body.
pub(crate) async fn reveal_token(
    state: web::Data<WebState>,
    session: AdminSession,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, AdminError> {
    session.check_csrf(&form.csrf)?;
    let id = parse_id(&id)?;
    if form.confirm != "yes" {
        return Ok(view::back_with(
            &state,
            &page_of(id),
            Flash::warn("The token was not shown: tick the box to confirm you want to see it."),
        ));
    }
    let conn = state.engine.connection(id).await?;
    // DPoP-bound tokens are not shown: their key never leaves Tether.
    let token = match state.engine.exportable_token(id, false).await {
        Ok(t) => t,
        Err(e) => return action_failed(&state, id, "Reading a token", e),
    };
    tracing::warn!(connection = %id, admin = %session.user, "admin revealed an access token");
    let names = super::ProviderNames::collect(&state);
    let page = TokenPage {
        chrome: Chrome::new(&session, None, "connections"),
        c: Row::new(&conn, &names, state.engine.settings().refresh_margin),
        token: token.access_token.expose_secret(),
        token_type: &token.token_type,
        token_secret: token.token_secret.as_ref().map(|s| s.expose_secret()),
        expiry: time::expiry(token.expires_at, Utc::now(), std::time::Duration::ZERO).0,
        scopes: token.scopes.clone(),
    };
    Ok(view::render(StatusCode::OK, &page, false))
}

/// `POST /admin/connections/{id}/disconnect`.
pub(crate) async fn disconnect(
    state: web::Data<WebState>,
    session: AdminSession,
    id: web::Path<String>,
    form: web::Form<ConfirmForm>,
) -> Result<HttpResponse, AdminError> {
    session.check_csrf(&form.csrf)?;
    let id = parse_id(&id)?;
    if form.confirm != "yes" {
        return Ok(view::back_with(
            &state,
            &page_of(id),
            Flash::warn("Nothing was disconnected: tick the box to confirm."),
        ));
    }
    match state.engine.disconnect(id).await {
        Ok(outcome) => {
            tracing::info!(connection = %id, admin = %session.user, revoked = outcome.revoked, "admin disconnected a connection");
            let flash = match outcome.revoke_error {
                None => Flash::ok("Disconnected: revoked at the provider, tokens deleted."),
                Some(why) => {
                    Flash::warn(format!("Disconnected: tokens deleted, but not revoked at the provider ({why})."))
                }
            };
            Ok(view::back_with(&state, &page_of(id), flash))
        }
        Err(e) => action_failed(&state, id, "Disconnect", e),
    }
}

#[derive(Template)]
#[template(path = "admin/link.html")]
struct LinkPage<'a> {
    chrome: Chrome,
    c: Row,
    link: &'a str,
    expires: String,
}

/// `POST /admin/connections/{id}/reconnect`: a single-use connect link for the same owner and
/// provider, to send to the user whose grant died.
pub(crate) async fn reconnect_link(
    state: web::Data<WebState>,
    session: AdminSession,
    id: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AdminError> {
    session.check_csrf(&form.csrf)?;
    let id = parse_id(&id)?;
    let conn = state.engine.connection(id).await?;
    // Providers that take a login hint (Bluesky) start at the same account again.
    let takes_hint = state.engine.provider(conn.provider.as_str()).is_ok_and(|p| p.takes_login_hint());
    let created = match state
        .engine
        .create_connect_session(tether_core::ConnectSessionRequest {
            owner: conn.owner.to_string(),
            provider: conn.provider.to_string(),
            return_to: None,
            scopes: Some(conn.scopes.clone()).filter(|s| !s.is_empty()),
            instance: conn.instance.clone(),
            login_hint: takes_hint.then(|| conn.account.id.clone()),
        })
        .await
    {
        Ok(c) => c,
        Err(e) => return action_failed(&state, id, "Creating a reconnect link", e),
    };
    let names = super::ProviderNames::collect(&state);
    let page = LinkPage {
        chrome: Chrome::new(&session, None, "connections"),
        c: Row::new(&conn, &names, state.engine.settings().refresh_margin),
        link: created.connect_url.as_str(),
        expires: time::relative(created.expires_at, Utc::now()),
    };
    Ok(view::render(StatusCode::OK, &page, false))
}
