//! The providers page: every compiled-in provider, whether it is configured, the redirect URI
//! to register, and a Connect button that starts a flow for an owner the admin types.

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use tether_core::{ConnectSessionRequest, ConnectionId};

use super::auth::AdminSession;
use super::view::{self, AdminError, Chrome, Flash, MessagePage};
use crate::WebState;

struct ProviderRow {
    id: String,
    display_name: String,
    configured: bool,
    redirect_uri: String,
    scopes: Vec<String>,
    note: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/providers.html")]
struct ProvidersPage {
    chrome: Chrome,
    rows: Vec<ProviderRow>,
    owner: String,
}

/// Query of the providers page (the owner typed last time).
#[derive(Deserialize)]
pub(crate) struct ProvidersQuery {
    #[serde(default)]
    owner: String,
}

/// `GET /admin/providers`.
pub(crate) async fn list(
    state: web::Data<WebState>,
    session: AdminSession,
    req: HttpRequest,
    q: web::Query<ProvidersQuery>,
) -> Result<HttpResponse, AdminError> {
    let base = state.engine.settings().public_url.as_str().trim_end_matches('/').to_owned();
    let mut rows: Vec<ProviderRow> = state
        .engine
        .providers()
        .map(|p| ProviderRow {
            id: p.id.to_string(),
            display_name: p.settings.display_name.clone(),
            configured: true,
            redirect_uri: p.redirect_uri.to_string(),
            scopes: p.settings.scopes.clone(),
            note: None,
        })
        .collect();
    let registry = tether_core::ProviderRegistry::collect()?;
    for p in registry.iter() {
        let spec = p.spec();
        if rows.iter().any(|r| r.id == spec.id) {
            continue;
        }
        let (redirect_uri, note) = match spec.id {
            "generic" => (
                format!("{base}/callback/<your id>"),
                "Any OAuth 2.0 / OIDC server: add [providers.<your id>] with kind = \"generic\", client_id, client_secret and its endpoints.".to_owned(),
            ),
            "demo" => (format!("{base}/callback/demo"), "Enabled by `tether serve --demo`.".to_owned()),
            id => (format!("{base}/callback/{id}"), format!("To enable it, add [providers.{id}] with client_id and client_secret.")),
        };
        rows.push(ProviderRow {
            id: spec.id.to_owned(),
            display_name: spec.display_name.to_owned(),
            configured: false,
            redirect_uri,
            scopes: spec.default_scopes.iter().map(|s| (*s).to_owned()).collect(),
            note: Some(note),
        });
    }
    rows.sort_by(|a, b| b.configured.cmp(&a.configured).then_with(|| a.id.cmp(&b.id)));
    // The Connect forms redirect (through /connect/…) to the providers' authorization pages, and
    // browsers apply form-action to every hop of that chain.
    let mut form_action = vec!["'self'".to_owned(), "https:".to_owned()];
    for p in state.engine.providers() {
        let origin = p.settings.authorize_url.origin();
        if origin.is_tuple() {
            form_action.push(origin.ascii_serialization());
        }
    }
    let csp = view::CSP.replace("form-action 'self'", &format!("form-action {}", form_action.join(" ")));
    let flash = view::take_flash(&state, &req);
    let owner = q.owner.trim().chars().take(255).collect();
    let page = ProvidersPage { chrome: Chrome::new(&session, flash.clone(), "providers"), rows, owner };
    let mut resp = view::render(StatusCode::OK, &page, flash.is_some());
    if let Ok(v) = header::HeaderValue::from_str(&csp) {
        resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    Ok(resp)
}

/// The Connect form.
#[derive(Deserialize)]
pub(crate) struct ConnectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    owner: String,
}

/// `POST /admin/providers/{id}/connect`: creates a connect session for the typed owner and
/// sends this browser through it. The flow comes back to `/admin/connect/done` when
/// `allowed_return_origins` permits this server's own origin.
pub(crate) async fn connect(
    state: web::Data<WebState>,
    session: AdminSession,
    provider: web::Path<String>,
    form: web::Form<ConnectForm>,
) -> Result<HttpResponse, AdminError> {
    session.check_csrf(&form.csrf)?;
    let owner = form.owner.trim().to_owned();
    let back = format!(
        "/admin/providers?owner={}",
        url::form_urlencoded::byte_serialize(owner.chars().take(255).collect::<String>().as_bytes())
            .collect::<String>()
    );
    let settings = state.engine.settings();
    let own_origin = settings.public_url.origin().ascii_serialization();
    let return_to = (settings.allowed_return_origins.is_empty()
        || settings.allowed_return_origins.iter().any(|o| o.trim_end_matches('/') == own_origin))
    .then(|| format!("{}/admin/connect/done", settings.public_url.as_str().trim_end_matches('/')));
    let request = ConnectSessionRequest {
        owner: owner.clone(),
        provider: provider.into_inner(),
        return_to,
        scopes: None,
        instance: None,
        login_hint: None,
    };
    let provider_id = request.provider.clone();
    match state.engine.create_connect_session(request).await {
        Ok(created) => {
            tracing::info!(provider = %provider_id, owner = %owner, admin = %session.user, "admin started a connect flow");
            Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, created.connect_url.as_str())).finish())
        }
        Err(e) => {
            let e = AdminError::from(e);
            Ok(view::back_with(&state, &back, Flash::bad(format!("Cannot connect: {} ({})", e.message(), e.code()))))
        }
    }
}

/// Query the callback appends to `return_to`.
#[derive(Deserialize)]
pub(crate) struct DoneQuery {
    #[serde(default)]
    connection_id: String,
}

/// `GET /admin/connect/done`: where an admin-started flow ends. It needs no session (the
/// session cookie is `SameSite=Strict` and the browser arrives from the provider's redirect),
/// reveals nothing, and moves on with a same-site navigation (meta refresh) so the session
/// cookie is sent again.
pub(crate) async fn connect_done(state: web::Data<WebState>, q: web::Query<DoneQuery>) -> HttpResponse {
    if !state.admin.is_enabled() {
        return view::disabled_page();
    }
    let target = match ConnectionId::parse(&q.connection_id) {
        Ok(id) => format!("/admin/connections/{id}"),
        Err(_) => "/admin/connections".to_owned(),
    };
    let page = MessagePage {
        chrome: Chrome::anonymous(None),
        heading: "Account connected",
        tone: "ok",
        message: "The connection is stored. Opening it…",
        code: None,
        snippet: None,
        refresh_to: Some(&target),
        links: vec![(target.as_str(), "Open the connection")],
    };
    let mut resp = view::render(StatusCode::OK, &page, false);
    view::set_flash(&state, &mut resp, Flash::ok("Account connected."));
    resp
}
