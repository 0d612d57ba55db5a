//! Server-rendered pages (askama, auto-escaped).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

#[derive(Template)]
#[template(path = "message.html")]
pub(crate) struct MessagePage<'a> {
    pub(crate) heading: &'a str,
    pub(crate) tone: &'a str,
    pub(crate) message: &'a str,
    pub(crate) details: Vec<(&'a str, String)>,
    pub(crate) code: Option<&'a str>,
    pub(crate) snippet: Option<String>,
}

/// The connect page of a per-instance provider: asks the user for their server.
#[derive(Template)]
#[template(path = "instance.html")]
pub(crate) struct InstancePage<'a> {
    pub(crate) display_name: &'a str,
    pub(crate) value: &'a str,
    pub(crate) error: Option<&'a str>,
}

/// The connect page of a provider that takes a login hint: asks the user who they are (for
/// Bluesky, the handle); they may leave it empty.
#[derive(Template)]
#[template(path = "login_hint.html")]
pub(crate) struct LoginHintPage<'a> {
    pub(crate) display_name: &'a str,
    pub(crate) prompt: &'a str,
    pub(crate) value: &'a str,
    pub(crate) error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "index.html")]
pub(crate) struct IndexPage {
    pub(crate) demo: bool,
    pub(crate) providers: Vec<String>,
}

/// Renders a template into a response with the browser security headers.
pub(crate) fn html(status: StatusCode, page: &impl Template) -> HttpResponse {
    match page.render() {
        Ok(body) => HttpResponse::build(status).content_type("text/html; charset=utf-8").body(body),
        Err(e) => {
            tracing::error!(error = %e, "template rendering failed");
            HttpResponse::InternalServerError().content_type("text/plain; charset=utf-8").body("internal error")
        }
    }
}

/// A readable error page.
pub(crate) fn error_page(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let heading = match status.as_u16() {
        404 => "Not found",
        400..=499 => "This connection could not be completed",
        502 | 503 => "The provider could not be reached",
        _ => "Something went wrong",
    };
    html(status, &MessagePage { heading, tone: "bad", message, details: Vec::new(), code: Some(code), snippet: None })
}
