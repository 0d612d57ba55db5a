//! The resource side: user info and token revocation.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::token::{OAuthError, TokenProblem, authenticate, error_response, meta_error_body, meta_token_error};
use super::{Params, Reject, basic_credentials, bearer, reddit_requires_user_agent};
use crate::state::{MockState, account_base36, account_digits, account_hex, account_member_id, account_number};
use crate::{MockFlavor, MockProvider};

/// "alice.b" → "Alice.b": a display name derived from the login.
fn display_name(login: &str) -> String {
    let mut c = login.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// Why `token` does not work (`None`: it does).
fn token_problem(s: &MockState, token: &str) -> Option<TokenProblem> {
    match s.access.get(token) {
        _ if s.access_valid(token) => None,
        None => Some(TokenProblem::Unknown),
        Some(a) if !a.live => Some(TokenProblem::Revoked),
        Some(_) => Some(TokenProblem::Expired),
    }
}

/// The access token of a request: `Authorization: Bearer`, or (Facebook) `?access_token=`.
fn request_token(mock: &MockProvider, req: &HttpRequest) -> Option<String> {
    if let Some(t) = bearer(req) {
        return Some(t.to_owned());
    }
    if mock.config.flavor != MockFlavor::Facebook {
        return None;
    }
    web::Query::<Params>::from_query(req.query_string()).ok().and_then(|q| q.get("access_token").cloned())
}

/// The 401 (Facebook: 400) for a request without a working access token, in the flavor's shape.
fn unauthorized(flavor: MockFlavor, problem: TokenProblem) -> HttpResponse {
    match flavor {
        MockFlavor::GitHub => HttpResponse::Unauthorized().json(json!({
            "message": "Bad credentials",
            "documentation_url": "https://docs.github.com/rest",
        })),
        MockFlavor::LinkedIn => HttpResponse::Unauthorized().json(json!({
            "serviceErrorCode": 65600,
            "message": "Invalid access token",
            "status": 401,
        })),
        MockFlavor::Reddit => HttpResponse::Unauthorized().json(json!({ "message": "Unauthorized", "error": 401 })),
        MockFlavor::Pinterest => {
            HttpResponse::Unauthorized().json(json!({ "code": 2, "message": "Authentication failed." }))
        }
        MockFlavor::Facebook => meta_token_error(problem),
        MockFlavor::Standard => HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .json(json!({ "error": "invalid_token", "error_description": "The access token is invalid or expired" })),
    }
}

/// `GET /userinfo` and `GET /user` (and the flavors' own paths): the account behind a bearer
/// token, in the flavor's shape.
pub(crate) async fn userinfo(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    if let Some(resp) = reddit_requires_user_agent(&mock, &req) {
        return resp;
    }
    let flavor = mock.config.flavor;
    if flavor == MockFlavor::GitHub && req.headers().get("User-Agent").is_none() {
        return HttpResponse::Forbidden().json(json!({
            "message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            "documentation_url": "https://docs.github.com/en/rest/overview/resources-in-the-rest-api#user-agent-required",
        }));
    }
    let token = request_token(&mock, &req).unwrap_or_default();
    let login = mock.with(|s| match token_problem(s, &token) {
        None => s.access_login(&token).ok_or(TokenProblem::Unknown),
        Some(problem) => Err(problem),
    });
    let login = match login {
        Ok(login) => login,
        Err(problem) => return unauthorized(flavor, problem),
    };
    match flavor {
        // GitHub's `name` is null for users who never set one: clients must fall back to `login`.
        MockFlavor::GitHub => HttpResponse::Ok().json(json!({
            "id": account_number(&login),
            "login": login,
            "name": serde_json::Value::Null,
            "type": "User",
        })),
        MockFlavor::Standard => HttpResponse::Ok().json(json!({
            "sub": format!("u_{}", account_hex(&login)),
            "name": display_name(&login),
            "preferred_username": login,
            "email": format!("{login}@example.test"),
        })),
        // OpenID Connect user info (`/v2/userinfo`).
        MockFlavor::LinkedIn => HttpResponse::Ok().json(json!({
            "sub": account_member_id(&login),
            "email_verified": true,
            "name": format!("{} Example", display_name(&login)),
            "locale": { "country": "US", "language": "en" },
            "given_name": display_name(&login),
            "family_name": "Example",
            "email": format!("{login}@example.test"),
            "picture": "https://media.licdn.example/dms/image/mock",
        })),
        // `/api/v1/me`: `id` is base36 (the fullname is `t2_{id}`).
        MockFlavor::Reddit => HttpResponse::Ok().json(json!({
            "id": account_base36(&login),
            "name": login,
            "is_employee": false,
            "has_verified_email": true,
            "created_utc": 1_600_000_000.0,
            "link_karma": 1,
            "comment_karma": 0,
        })),
        // `/v5/user_account`.
        MockFlavor::Pinterest => HttpResponse::Ok().json(json!({
            "account_type": "BUSINESS",
            "id": account_digits(&login),
            "username": login,
            "business_name": display_name(&login),
            "profile_image": "https://i.pinimg.example/mock.jpg",
            "website_url": "",
            "about": "",
            "board_count": 1,
            "pin_count": 0,
            "follower_count": 0,
            "following_count": 0,
            "monthly_views": 0,
        })),
        MockFlavor::Facebook => facebook_me(&req, &login),
    }
}

/// Graph API `/me?fields=…`: only the fields asked for (`id,name` by default); an unknown field
/// is error 100.
fn facebook_me(req: &HttpRequest, login: &str) -> HttpResponse {
    let query = web::Query::<Params>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let fields = query.get("fields").map_or("id,name", String::as_str);
    let mut doc = serde_json::Map::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let value = match field {
            "id" => json!(account_digits(login)),
            "name" => json!(format!("{} Example", display_name(login))),
            "first_name" => json!(display_name(login)),
            "last_name" => json!("Example"),
            "email" => json!(format!("{login}@example.test")),
            other => {
                return meta_error_body(
                    100,
                    None,
                    &format!("(#100) Tried accessing nonexisting field ({other}) on node type (User)"),
                );
            }
        };
        doc.insert(field.to_owned(), value);
    }
    HttpResponse::Ok().json(doc)
}

/// `POST /revoke` (RFC 7009, and the flavors' own paths): form `token` (+ optional
/// `token_type_hint`), client authentication as for `/token`. Always 200 for an authenticated
/// client, whether the token was known or not. LinkedIn ends the whole authorization.
pub(crate) async fn revoke(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    if let Some(resp) = reddit_requires_user_agent(&mock, &req) {
        return resp;
    }
    let form = form.into_inner();
    if let Err(err) = authenticate(&mock, &req, &form) {
        return error_response(&mock, &req, err);
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return error_response(&mock, &req, OAuthError::InvalidRequest("token is required"));
    };
    if mock.config.flavor == MockFlavor::LinkedIn {
        mock.with(|s| s.revoke_token_grant(token));
    } else {
        mock.with(|s| s.revoke(token));
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).finish()
}

/// `DELETE /me/permissions` (Facebook): the user's token (`?access_token=` or `Bearer`) removes
/// the app's whole authorization; `{"success": true}`, or error 190 for a token that does not work.
pub(crate) async fn facebook_revoke(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let token = request_token(&mock, &req).unwrap_or_default();
    let problem = mock.with(|s| {
        let problem = token_problem(s, &token);
        if problem.is_none() {
            s.revoke_token_grant(&token);
        } else {
            s.revoked.push(token.clone());
        }
        problem
    });
    match problem {
        None => HttpResponse::Ok().json(json!({ "success": true })),
        Some(problem) => meta_token_error(problem),
    }
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
