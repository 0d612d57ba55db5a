//! The resource side: user info and token revocation.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::token::{OAuthError, authenticate, error_response};
use super::{Params, Reject, basic_credentials, bearer};
use crate::state::{account_hex, account_number};
use crate::{MockFlavor, MockProvider};

/// "alice.b" → "Alice.b": a display name derived from the login.
fn display_name(login: &str) -> String {
    let mut c = login.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// `GET /userinfo` and `GET /user`: the account behind a bearer token, in the flavor's shape.
pub(crate) async fn userinfo(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let github = mock.config.flavor == MockFlavor::GitHub;
    if github && req.headers().get("User-Agent").is_none() {
        return HttpResponse::Forbidden().json(json!({
            "message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            "documentation_url": "https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required",
        }));
    }
    let login = bearer(&req).and_then(|token| mock.with(|s| s.access_login(token)));
    let Some(login) = login else {
        return if github {
            HttpResponse::Unauthorized().json(json!({
                "message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest",
            }))
        } else {
            HttpResponse::Unauthorized().insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\"")).json(
                json!({ "error": "invalid_token", "error_description": "The access token is invalid or expired" }),
            )
        };
    };
    if github {
        // GitHub's `name` is null for users who never set one: clients must fall back to `login`.
        HttpResponse::Ok().json(json!({
            "id": account_number(&login),
            "login": login,
            "name": serde_json::Value::Null,
            "type": "User",
        }))
    } else {
        HttpResponse::Ok().json(json!({
            "sub": format!("u_{}", account_hex(&login)),
            "name": display_name(&login),
            "preferred_username": login,
            "email": format!("{login}@example.test"),
        }))
    }
}

/// `POST /revoke` (RFC 7009): form `token` (+ optional `token_type_hint`), client authentication
/// as for `/token`. Always 200 for an authenticated client, whether the token was known or not.
pub(crate) async fn revoke(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let form = form.into_inner();
    if let Err(err) = authenticate(&mock, &req, &form) {
        return error_response(&mock, &req, err);
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return error_response(&mock, &req, OAuthError::InvalidRequest("token is required"));
    };
    mock.with(|s| s.revoke(token));
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish()
}

/// GitHub answers 404 to bad client credentials on its application endpoints.
fn github_not_found() -> HttpResponse {
    HttpResponse::NotFound().json(json!({
        "message": "Not Found",
        "documentation_url": "https://docs.github.com/rest/apps/oauth-applications",
    }))
}

/// The `access_token` of a GitHub application-endpoint request, after checking the Basic
/// client credentials and the client id in the path. `Err` is the response to send.
fn github_app_request(mock: &MockProvider, req: &HttpRequest, client_id: &str, body: &[u8]) -> Result<String, Reject> {
    let cfg = &mock.config;
    let authed = basic_credentials(req).flatten().is_some_and(|c| c.matches(&cfg.client_id, &cfg.client_secret));
    if !authed || client_id != cfg.client_id {
        return Err(github_not_found().into());
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("access_token").and_then(|t| t.as_str()).filter(|t| !t.is_empty()).map(str::to_owned))
        .ok_or_else(|| {
            HttpResponse::UnprocessableEntity()
                .json(json!({
                    "message": "Invalid request.\n\n\"access_token\" wasn't supplied.",
                    "documentation_url": "https://docs.github.com/rest/apps/oauth-applications",
                }))
                .into()
        })
}

/// `DELETE /applications/{client_id}/token` (GitHub): Basic client credentials, JSON body
/// `{"access_token": ...}`; 204, or 404 for bad credentials or an unknown or dead token.
pub(crate) async fn github_revoke_token(
    mock: web::Data<MockProvider>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let token = match github_app_request(&mock, &req, &path, &body) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let known = mock.with(|s| {
        let known = s.access_valid(&token);
        s.revoke(&token);
        known
    });
    if known { HttpResponse::NoContent().finish() } else { github_not_found() }
}

/// `DELETE /applications/{client_id}/grant` (GitHub): like the token endpoint, but revokes
/// every token of the authorization the access token belongs to.
pub(crate) async fn github_revoke_grant(
    mock: web::Data<MockProvider>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let token = match github_app_request(&mock, &req, &path, &body) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    let known = mock.with(|s| {
        s.revoked.push(token.clone());
        let grant = s.access_valid(&token).then(|| s.access.get(&token).map(|a| a.grant)).flatten();
        grant.map(|g| s.revoke_grant(g)).is_some()
    });
    if known { HttpResponse::NoContent().finish() } else { github_not_found() }
}
