//! What every admin page shares: the page chrome (navigation, sign-out form, flash message),
//! rendering, flash cookies, error pages, the security headers and the static files.

use std::time::Duration;

use actix_web::cookie::SameSite;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::auth::{self, AdminSession};
use crate::WebState;

/// Content security policy of the admin pages: no inline script or style, scripts and styles
/// only from `/admin/static/`, forms only to this origin, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const FLASH_COOKIE: &str = "tether_admin_flash";
const CSS: &str = include_str!("../../static/admin/app.css");
const JS: &str = include_str!("../../static/admin/app.js");

/// Security headers of every admin response (a handler may set its own CSP first).
pub(crate) fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add(("Content-Security-Policy", CSP))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
        .add(("Cross-Origin-Opener-Policy", "same-origin"))
        .add(("Cross-Origin-Resource-Policy", "same-origin"))
        .add(("Permissions-Policy", "camera=(), microphone=(), geolocation=()"))
}

/// A message shown once, on the next page, after an action.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Flash {
    /// `ok`, `warn` or `bad`.
    pub(crate) tone: String,
    /// The text.
    pub(crate) text: String,
}

impl Flash {
    pub(crate) fn ok(text: impl Into<String>) -> Self {
        Self { tone: "ok".into(), text: text.into() }
    }
    pub(crate) fn warn(text: impl Into<String>) -> Self {
        Self { tone: "warn".into(), text: text.into() }
    }
    pub(crate) fn bad(text: impl Into<String>) -> Self {
        Self { tone: "bad".into(), text: text.into() }
    }
}

/// The page frame: who is signed in, the sign-out form, the flash message, the current section.
#[derive(Debug, Clone)]
pub(crate) struct Chrome {
    pub(crate) user: Option<String>,
    pub(crate) csrf: String,
    pub(crate) can_sign_out: bool,
    pub(crate) flash: Option<Flash>,
    pub(crate) section: &'static str,
}

impl Chrome {
    /// For a signed-in admin.
    pub(crate) fn new(session: &AdminSession, flash: Option<Flash>, section: &'static str) -> Self {
        Self {
            user: Some(session.user.clone()),
            csrf: session.csrf.clone(),
            can_sign_out: !session.via_header,
            flash,
            section,
        }
    }
    /// For pages shown before sign-in.
    pub(crate) fn anonymous(flash: Option<Flash>) -> Self {
        Self { user: None, csrf: String::new(), can_sign_out: false, flash, section: "" }
    }
}

/// Reads (and so consumes: pass `true` to [`render`]) the flash message of the request.
pub(crate) fn take_flash(state: &WebState, req: &HttpRequest) -> Option<Flash> {
    let auth = state.admin.inner.as_ref()?;
    serde_json::from_str(&auth::open_cookie(&auth.key, req, FLASH_COOKIE)?).ok()
}

/// Sets a flash message for the next page.
pub(crate) fn set_flash(state: &WebState, resp: &mut HttpResponse, flash: Flash) {
    let Some(auth) = state.admin.inner.as_ref() else { return };
    let Ok(value) = serde_json::to_string(&flash) else { return };
    // Lax: the flash of a finished connect flow arrives after the provider's redirect.
    let cookie = auth::private_cookie(
        &auth.key,
        FLASH_COOKIE,
        value,
        "/admin",
        SameSite::Lax,
        auth::secure_cookies(state),
        Some(Duration::from_secs(120)),
    );
    if resp.add_cookie(&cookie).is_err() {
        tracing::warn!("could not set the admin flash cookie");
    }
}

/// Renders a page; `clear_flash` removes the flash cookie that was shown.
pub(crate) fn render(status: StatusCode, page: &impl Template, clear_flash: bool) -> HttpResponse {
    let mut resp = crate::pages::html(status, page);
    if clear_flash {
        let _ = resp.add_cookie(&auth::removal_cookie(FLASH_COOKIE, "/admin"));
    }
    resp
}

/// `303 See Other` to a path of this server.
pub(crate) fn see_other(path: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, path)).finish()
}

/// `303` back to `path` with a flash message.
pub(crate) fn back_with(state: &WebState, path: &str, flash: Flash) -> HttpResponse {
    let mut resp = see_other(path);
    set_flash(state, &mut resp, flash);
    resp
}

/// A message page: errors, "not enabled", "connected".
#[derive(Template)]
#[template(path = "admin/message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) chrome: Chrome,
    pub(crate) heading: &'a str,
    pub(crate) tone: &'a str,
    pub(crate) message: &'a str,
    pub(crate) code: Option<&'a str>,
    pub(crate) snippet: Option<&'a str>,
    pub(crate) refresh_to: Option<&'a str>,
    pub(crate) links: Vec<(&'a str, &'a str)>,
}

/// The page `/admin` answers when no admin authentication is configured.
pub(crate) fn disabled_page() -> HttpResponse {
    let page = MessagePage {
        chrome: Chrome::anonymous(None),
        heading: "The admin pages are not enabled",
        tone: "warn",
        message: "Tether serves its admin pages only to authenticated admins, and no admin authentication is \
                  configured. Add an [admin] table to the configuration with a password hash (from \
                  `tether admin hash-password`), or with the header an authenticating reverse proxy sets, then restart.",
        code: Some("admin_disabled"),
        snippet: Some(
            "# Password sign-in:\n#   tether admin hash-password   (type the password, then Enter)\n[admin]\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$…\"\n\n# Or behind a reverse proxy that authenticates:\n[admin]\ntrusted_header = \"X-Forwarded-User\"",
        ),
        refresh_to: None,
        links: Vec::new(),
    };
    render(StatusCode::FORBIDDEN, &page, false)
}

/// An error shown as an admin page.
#[derive(Debug)]
pub(crate) struct AdminError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl AdminError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into() }
    }
    pub(crate) fn csrf() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "csrf_failed",
            "This form was not sent from this admin page or has expired (CSRF check failed). Go back, reload the page and try again.",
        )
    }
    pub(crate) fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "Internal error; see the server log.")
    }
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("There is no {what} here."))
    }
    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }
    /// The message (for flash messages).
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
    /// The stable code.
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }
    pub(crate) fn into_response(self) -> HttpResponse {
        self.error_response()
    }
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl From<tether_core::Error> for AdminError {
    fn from(e: tether_core::Error) -> Self {
        use tether_core::Error;
        let status = crate::error::status_of(&e);
        let message = match &e {
            Error::Store(_) | Error::Seal(_) | Error::Config(_) => {
                tracing::error!(error = %e, "internal error");
                "Internal error; see the server log.".to_owned()
            }
            Error::ReauthRequired(_) => {
                format!("{e}. Create a reconnect link on the connection's page and send it to the user.")
            }
            _ => e.to_string(),
        };
        Self { status, code: e.code(), message }
    }
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let heading = match self.status.as_u16() {
            401 => "Sign-in required",
            403 => "Refused",
            404 => "Not found",
            429 => "Too many attempts",
            400..=499 => "This request cannot be done",
            502 | 503 => "The provider or the database could not be reached",
            _ => "Something went wrong",
        };
        let page = MessagePage {
            chrome: Chrome::anonymous(None),
            heading,
            tone: "bad",
            message: &self.message,
            code: Some(self.code),
            snippet: None,
            refresh_to: None,
            links: vec![("/admin/connections", "Connections"), ("/admin/providers", "Providers")],
        };
        render(self.status, &page, false)
    }
}

/// Malformed forms, queries and paths under `/admin` get admin pages, not JSON.
pub(crate) fn form_config() -> web::FormConfig {
    web::FormConfig::default()
        .limit(16 * 1024)
        .error_handler(|err, _| AdminError::bad_request(format!("The form is malformed: {err}")).into())
}

pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default()
        .error_handler(|err, _| AdminError::bad_request(format!("The address is malformed: {err}")).into())
}

pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|_, _| AdminError::not_found("page").into())
}

/// Unknown admin pages (only reached when signed in).
pub(crate) async fn not_found() -> HttpResponse {
    AdminError::not_found("page").into_response()
}

/// `GET /admin/static/app.css`.
pub(crate) async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(CSS)
}

/// `GET /admin/static/app.js`.
pub(crate) async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=300"))
        .body(JS)
}
