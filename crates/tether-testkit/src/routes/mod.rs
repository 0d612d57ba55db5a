//! The mock's HTTP endpoints.

mod api;
mod authorize;
mod meta_login;
pub(crate) mod slack;
mod tiktok;
mod token;

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use subtle::ConstantTimeEq;

use crate::{MockFlavor, MockProvider};

/// A response to send instead of going on (boxed: `HttpResponse` is large).
pub(crate) type Reject = Box<HttpResponse>;

/// Query or form parameters (a repeated name keeps its last value).
pub(crate) type Params = HashMap<String, String>;

/// Registers every route, relative to wherever the caller mounts them.
pub(crate) fn configure(cfg: &mut web::ServiceConfig, mock: MockProvider) {
    let flavor = mock.config.flavor;
    // The provider's own paths, aliases of the generic routes below.
    let (authorize_paths, token_paths, userinfo_paths, revoke_paths): (&[&str], &[&str], &[&str], &[&str]) =
        match flavor {
            MockFlavor::Standard | MockFlavor::GitHub => (&[], &[], &[], &[]),
            MockFlavor::LinkedIn => {
                (&["/oauth/v2/authorization"], &["/oauth/v2/accessToken"], &["/v2/userinfo"], &["/oauth/v2/revoke"])
            }
            MockFlavor::Reddit => {
                (&["/api/v1/authorize"], &["/api/v1/access_token"], &["/api/v1/me"], &["/api/v1/revoke_token"])
            }
            MockFlavor::Pinterest => (&["/oauth/"], &["/v5/oauth/token"], &["/v5/user_account"], &[]),
            MockFlavor::Facebook => (&["/dialog/oauth"], &["/oauth/access_token"], &["/me"], &[]),
            MockFlavor::Google => (&["/o/oauth2/v2/auth"], &[], &["/v1/userinfo"], &[]),
            MockFlavor::Discord => {
                (&["/oauth2/authorize"], &["/api/oauth2/token"], &["/api/v10/users/@me"], &["/api/oauth2/token/revoke"])
            }
            MockFlavor::Spotify => (&[], &["/api/token"], &["/v1/me"], &[]),
            MockFlavor::Twitch => (&["/oauth2/authorize"], &["/oauth2/token"], &["/helix/users"], &[]),
            MockFlavor::Microsoft => {
                (&["/{tenant}/oauth2/v2.0/authorize"], &["/{tenant}/oauth2/v2.0/token"], &["/v1.0/me"], &[])
            }
            MockFlavor::Dropbox => (&["/oauth2/authorize"], &["/oauth2/token"], &[], &[]),
            MockFlavor::Notion => (&["/v1/oauth/authorize"], &["/v1/oauth/token"], &["/v1/users/me"], &[]),
            MockFlavor::Zoom => (&["/oauth/authorize"], &["/oauth/token"], &["/v2/users/me"], &["/oauth/revoke"]),
            MockFlavor::Instagram | MockFlavor::Threads => {
                (&["/oauth/authorize"], &["/oauth/access_token"], &["/me", "/{version}/me"], &[])
            }
            MockFlavor::TikTok => (&["/v2/auth/authorize/"], &["/v2/oauth/token/"], &["/v2/user/info/"], &[]),
            MockFlavor::Slack => (&["/oauth/v2/authorize"], &[], &[], &[]),
        };
    cfg.app_data(web::Data::new(mock))
        // "" answers the bare mount point (`/demo`) inside a scope; "/" the root or `/demo/`.
        .service(resource(&["", "/"]).route(web::get().to(index)))
        .service(authorize_resource(&[&["/authorize"], authorize_paths].concat()));
    let mut token =
        resource(&[&["/token"], token_paths].concat()).app_data(json_form_errors()).app_data(json_query_errors());
    token = if flavor == MockFlavor::Notion {
        // Notion's token endpoint takes a JSON body (and refuses a form).
        token.route(web::post().to(token::token_json))
    } else {
        token.route(web::post().to(token::token))
    };
    if flavor == MockFlavor::Facebook {
        // The Graph API token endpoint answers GET with query parameters too.
        token = token.route(web::get().to(token::token_get));
    }
    cfg.service(token)
        .service(resource(&[&["/userinfo", "/user"], userinfo_paths].concat()).route(web::get().to(api::userinfo)))
        .service(
            resource(&[&["/revoke"], revoke_paths].concat())
                .app_data(json_form_errors())
                .route(web::post().to(api::revoke)),
        )
        .service(resource(&["/applications/{client_id}/token"]).route(web::delete().to(api::github_revoke_token)))
        .service(resource(&["/applications/{client_id}/grant"]).route(web::delete().to(api::github_revoke_grant)));
    match flavor {
        MockFlavor::Facebook => {
            cfg.service(resource(&["/me/permissions"]).route(web::delete().to(api::facebook_revoke)));
        }
        MockFlavor::Twitch => {
            cfg.service(resource(&["/oauth2/validate"]).route(web::get().to(api::twitch_validate)))
                .service(resource(&["/oauth2/revoke"]).route(web::post().to(api::twitch_revoke)));
        }
        MockFlavor::Dropbox => {
            // Dropbox's API calls are POSTs with no body.
            cfg.service(
                resource(&["/2/users/get_current_account"]).route(web::post().to(api::dropbox_current_account)),
            )
            .service(resource(&["/2/auth/token/revoke"]).route(web::post().to(api::dropbox_revoke)));
        }
        MockFlavor::Notion => {
            cfg.service(resource(&["/v1/oauth/revoke"]).route(web::post().to(api::notion_revoke)));
        }
        MockFlavor::Instagram | MockFlavor::Threads => meta_login::configure(cfg),
        MockFlavor::TikTok => tiktok::configure(cfg),
        MockFlavor::Slack => slack::configure(cfg),
        _ => {}
    }
}

/// The authorization endpoint at these paths.
fn authorize_resource(paths: &[&str]) -> actix_web::Resource {
    resource(paths)
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            actix_web::error::InternalError::from_response(e, error_page("The query string is malformed.")).into()
        }))
        .app_data(web::FormConfig::default().error_handler(|e, _| {
            actix_web::error::InternalError::from_response(e, error_page("The form body is malformed.")).into()
        }))
        .route(web::get().to(authorize::authorize_get))
        .route(web::post().to(authorize::authorize_post))
}

/// A resource that answers other methods 404 (like an unknown path), not 405.
fn resource(paths: &[&str]) -> actix_web::Resource {
    web::resource(paths.to_vec()).default_service(web::to(|| async {
        HttpResponse::NotFound().json(serde_json::json!({ "error": "not_found" }))
    }))
}

/// A form body that is not `application/x-www-form-urlencoded` or does not parse gets an OAuth
/// `invalid_request` (never actix's plain-text default).
fn json_form_errors() -> web::FormConfig {
    web::FormConfig::default().error_handler(|e, _| {
        let resp = HttpResponse::BadRequest().insert_header(("Cache-Control", "no-store")).json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "the body must be application/x-www-form-urlencoded",
        }));
        actix_web::error::InternalError::from_response(e, resp).into()
    })
}

/// A query string that does not parse gets an OAuth `invalid_request` (Facebook's `GET` token
/// endpoint).
fn json_query_errors() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|e, _| {
        let resp = HttpResponse::BadRequest().insert_header(("Cache-Control", "no-store")).json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "the query string is malformed",
        }));
        actix_web::error::InternalError::from_response(e, resp).into()
    })
}

/// Reddit refuses requests without a `User-Agent` (429, as it does for generic agents).
/// `Some` is the response to send.
pub(crate) fn reddit_requires_user_agent(mock: &MockProvider, req: &HttpRequest) -> Option<HttpResponse> {
    let has_agent = req.headers().get("User-Agent").and_then(|v| v.to_str().ok()).is_some_and(|v| !v.trim().is_empty());
    (mock.config.flavor == MockFlavor::Reddit && !has_agent).then(|| {
        HttpResponse::TooManyRequests()
            .insert_header(("Cache-Control", "no-store"))
            .json(serde_json::json!({ "message": "Too Many Requests", "error": 429 }))
    })
}

/// An HTML page with the headers every page of the mock carries.
pub(crate) fn page(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// Escapes text for HTML element content and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const PAGE_STYLE: &str = "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem}\
code{font-size:.9rem}</style>";

/// The 400 page for an authorization request that cannot be redirected back (unknown client,
/// missing or bad `redirect_uri`): like real providers, the mock shows it instead of redirecting.
pub(crate) fn error_page(message: &str) -> HttpResponse {
    page(
        StatusCode::BAD_REQUEST,
        format!(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Demo provider — authorization error</title>\
             {PAGE_STYLE}<h1>Authorization error</h1><p>{}</p>\
             <p>The application that sent you here made an invalid request. Nothing was authorized.</p></html>",
            escape(message)
        ),
    )
}

/// `GET /`: what this is.
async fn index(mock: web::Data<MockProvider>) -> HttpResponse {
    let flavor = match mock.config.flavor {
        MockFlavor::Standard => "standard OAuth 2.0 (RFC 6749)",
        MockFlavor::GitHub => "GitHub-shaped",
        MockFlavor::LinkedIn => "LinkedIn-shaped",
        MockFlavor::Reddit => "Reddit-shaped",
        MockFlavor::Pinterest => "Pinterest-shaped",
        MockFlavor::Facebook => "Facebook-shaped",
        MockFlavor::Google => "Google-shaped",
        MockFlavor::Discord => "Discord-shaped",
        MockFlavor::Spotify => "Spotify-shaped",
        MockFlavor::Twitch => "Twitch-shaped",
        MockFlavor::Microsoft => "Microsoft-Entra-shaped",
        MockFlavor::Dropbox => "Dropbox-shaped",
        MockFlavor::Notion => "Notion-shaped",
        MockFlavor::Zoom => "Zoom-shaped",
        MockFlavor::Instagram => "Instagram-shaped",
        MockFlavor::Threads => "Threads-shaped",
        MockFlavor::TikTok => "TikTok-shaped",
        MockFlavor::Slack => "Slack-shaped",
    };
    page(
        StatusCode::OK,
        format!(
            "<!doctype html><html lang=en><meta charset=utf-8><title>Demo provider</title>{PAGE_STYLE}\
             <h1>Demo provider</h1>\
             <p>A fake OAuth 2.0 authorization server ({flavor}) for trying Tether without an account at a real \
             provider, and for tests. It has no real users: on its consent page you type any name, and each name is \
             a separate demo account.</p>\
             <p>Endpoints, relative to this page: <code>authorize</code>, <code>token</code>, \
             <code>userinfo</code> (or <code>user</code>), <code>revoke</code>.</p></html>"
        ),
    )
}

/// Compares two secrets in constant time (for equal lengths).
pub(crate) fn same_secret(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// The decoded `Authorization: Basic` credentials, as sent (`raw`) and percent-decoded
/// (RFC 6749 §2.3.1 form-encodes id and secret before base64). `Some(None)`: a Basic header
/// that does not decode.
pub(crate) fn basic_credentials(req: &HttpRequest) -> Option<Option<BasicCredentials>> {
    let value = req.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(i, p)| (i.to_owned(), p.to_owned())));
    Some(decoded.map(|(id, secret)| BasicCredentials { id, secret }))
}

/// Client credentials from an HTTP Basic header.
pub(crate) struct BasicCredentials {
    pub(crate) id: String,
    pub(crate) secret: String,
}

impl BasicCredentials {
    /// Whether these are the configured credentials, either raw or form-url-decoded.
    pub(crate) fn matches(&self, id: &str, secret: &str) -> bool {
        let raw = same_secret(&self.id, id) & same_secret(&self.secret, secret);
        raw || (same_secret(&form_decode(&self.id), id) & same_secret(&form_decode(&self.secret), secret))
    }
}

/// Decodes one `application/x-www-form-urlencoded` value (`+` is a space; a `%` not followed by
/// two hex digits stays as it is).
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                if let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                    out.push((h * 16 + l) as u8);
                    i += 2;
                } else {
                    out.push(b'%');
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The bearer token of a request (`Bearer x`, or GitHub's older `token x`).
pub(crate) fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get("Authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token")).then(|| token.trim())
}
