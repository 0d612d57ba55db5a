//! TikTok (Login Kit v2): `client_key` in place of `client_id`, hex S256 PKCE, the token
//! answer with `open_id` and `refresh_expires_in`, errors `{"error","error_description",
//! "log_id"}` with HTTP 200, `/v2/user/info/` in its `{"data","error"}` envelope, and
//! `POST /v2/oauth/revoke/`. The grants themselves are the shared `/token` handler's.

use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::token::{OAuthError, authenticate, error_response};
use super::{Params, json_form_errors, resource};
use crate::state::{account_uuid, random, s256};
use crate::{MockFlavor, MockProvider};

/// Token prefixes (access, refresh), shaped like TikTok's.
pub(crate) const PREFIXES: (&str, &str) = ("act.", "rft.");
/// The life of a refresh token (180 days in the current documentation).
pub(crate) const REFRESH_TTL: Duration = Duration::from_secs(180 * 86_400);

/// A stable `open_id` for a login (per app at TikTok).
fn open_id(login: &str) -> String {
    format!("-000{}", account_uuid(login, "tiktok-open-id").replace('-', "")[..28].to_owned())
}

/// A log id as TikTok puts in every answer.
fn log_id() -> String {
    format!("2026112715{}", &random()[..16])
}

/// The challenge a PKCE verifier must match: TikTok's `hex(SHA-256(verifier))`, RFC 7636's
/// base64url for every other flavor.
pub(crate) fn challenge(flavor: MockFlavor, verifier: &str) -> String {
    match flavor {
        MockFlavor::TikTok => Sha256::digest(verifier.as_bytes()).iter().map(|b| format!("{b:02x}")).collect(),
        _ => s256(verifier),
    }
}

/// TikTok names the client `client_key`: it becomes the `client_id` the shared checks read,
/// and a `client_id` TikTok would ignore is dropped.
pub(crate) fn client_key_params(mut params: Params) -> Params {
    params.remove("client_id");
    if let Some(key) = params.remove("client_key") {
        params.insert("client_id".into(), key);
    }
    params
}

/// Registers the revocation endpoint.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(&["/v2/oauth/revoke/"]).app_data(json_form_errors()).route(web::post().to(revoke)));
}

/// A token-endpoint error: HTTP 200 (TikTok documents only the bodies) with
/// `{"error","error_description","log_id"}`.
pub(crate) fn token_error(err: OAuthError) -> HttpResponse {
    let (code, description) = match err {
        OAuthError::InvalidRequest(d) => ("invalid_request", d),
        OAuthError::InvalidClient { description, method: true } => ("invalid_client", description),
        OAuthError::InvalidClient { .. } => ("invalid_client", "Client key or secret is incorrect."),
        OAuthError::BadCode(_) => ("invalid_grant", "Authorization code is expired."),
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => {
            ("invalid_grant", "Refresh token is invalid or expired.")
        }
        OAuthError::RedirectMismatch => ("invalid_request", "Redirect URI is not matched with the registered one."),
        OAuthError::UnsupportedGrantType => ("unsupported_grant_type", "Grant type is not supported."),
    };
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "error": code, "error_description": description, "log_id": log_id() }))
}

/// The token answer: `open_id`, comma-separated `scope`, `refresh_expires_in`.
pub(crate) fn token_answer(
    login: &str,
    access: &str,
    access_ttl: Option<Duration>,
    refresh: Option<&str>,
    refresh_ttl: Option<Duration>,
    scopes: &[String],
) -> HttpResponse {
    let mut body = json!({
        "access_token": access,
        "open_id": open_id(login),
        "scope": scopes.join(","),
        "token_type": "Bearer",
    });
    if let Some(ttl) = access_ttl {
        body["expires_in"] = json!(ttl.as_secs());
    }
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
        body["refresh_expires_in"] = json!(refresh_ttl.unwrap_or(REFRESH_TTL).as_secs());
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body)
}

/// The API envelope with an error.
fn api_error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status)
        .json(json!({ "data": {}, "error": { "code": code, "message": message, "log_id": log_id() } }))
}

/// 401 for a request without a working access token.
pub(crate) fn unauthorized() -> HttpResponse {
    api_error(
        actix_web::http::StatusCode::UNAUTHORIZED,
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    )
}

/// `GET /v2/user/info/?fields=…`: only the fields asked for (`fields` is required), in the
/// `{"data":{"user":{…}},"error":{"code":"ok",…}}` envelope.
pub(crate) fn user_info(req: &HttpRequest, login: &str) -> HttpResponse {
    let query = web::Query::<Params>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let Some(fields) = query.get("fields").filter(|f| !f.is_empty()) else {
        return api_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid_params",
            "The fields parameter is required.",
        );
    };
    let mut user = serde_json::Map::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let value = match field {
            "open_id" => json!(open_id(login)),
            "union_id" => json!(account_uuid(login, "tiktok-union-id")),
            "avatar_url" => json!("https://p16-sign.tiktokcdn.example/mock.jpeg"),
            "display_name" => json!(format!("{login} ✨")),
            other => {
                return api_error(
                    actix_web::http::StatusCode::BAD_REQUEST,
                    "invalid_params",
                    &format!("Invalid field: {other}"),
                );
            }
        };
        user.insert(field.to_owned(), value);
    }
    HttpResponse::Ok()
        .json(json!({ "data": { "user": user }, "error": { "code": "ok", "message": "", "log_id": log_id() } }))
}

/// `POST /v2/oauth/revoke/`: form `client_key`, `client_secret`, `token` (the access token).
/// Ends the user's whole authorization of the app; `{}` for any token, token errors otherwise.
async fn revoke(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let form = client_key_params(form.into_inner());
    if let Err(err) = authenticate(&mock, &req, &form) {
        return error_response(&mock, &req, err);
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return error_response(&mock, &req, OAuthError::InvalidRequest("token is required"));
    };
    mock.with(|s| s.revoke_token_grant(token));
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({}))
}
