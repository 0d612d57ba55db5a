//! The resource side: user info and token revocation.

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use actix_web::http::StatusCode;

use super::token::{
    OAuthError, TokenProblem, authenticate, error_response, meta_error_body, meta_token_error, notion_error_body,
    notion_user,
};
use super::{Params, Reject, basic_credentials, bearer, reddit_requires_user_agent};
use crate::state::{
    MockState, account_base36, account_digits, account_hex, account_member_id, account_number, account_uuid, random,
};
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
        MockFlavor::Facebook | MockFlavor::Instagram | MockFlavor::Threads => meta_token_error(problem),
        MockFlavor::TikTok => super::tiktok::unauthorized(),
        MockFlavor::Slack => super::slack::error_body("invalid_auth"),
        MockFlavor::Discord => HttpResponse::Unauthorized().json(json!({ "message": "401: Unauthorized", "code": 0 })),
        MockFlavor::Spotify => HttpResponse::Unauthorized()
            .json(json!({ "error": { "status": 401, "message": "Invalid access token" } })),
        MockFlavor::Twitch => HttpResponse::Unauthorized()
            .json(json!({ "error": "Unauthorized", "status": 401, "message": "Invalid OAuth token" })),
        MockFlavor::Microsoft => HttpResponse::Unauthorized().json(json!({
            "error": { "code": "InvalidAuthenticationToken", "message": "Access token has expired or is not yet valid." }
        })),
        MockFlavor::Dropbox => dropbox_invalid_token(),
        MockFlavor::Notion => notion_error_body(StatusCode::UNAUTHORIZED, "unauthorized", "API token is invalid."),
        MockFlavor::Zoom => HttpResponse::Unauthorized().json(json!({ "code": 124, "message": "Invalid access token." })),
        MockFlavor::Standard | MockFlavor::Google => HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .json(json!({ "error": "invalid_token", "error_description": "The access token is invalid or expired" })),
    }
}

/// Dropbox's answer to a dead access token.
fn dropbox_invalid_token() -> HttpResponse {
    HttpResponse::Unauthorized()
        .json(json!({ "error_summary": "invalid_access_token/..", "error": { ".tag": "invalid_access_token" } }))
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
    if flavor == MockFlavor::Notion && req.headers().get("Notion-Version").is_none() {
        return notion_error_body(
            StatusCode::BAD_REQUEST,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined.",
        );
    }
    let token = request_token(&mock, &req).unwrap_or_default();
    if flavor == MockFlavor::Twitch {
        // Helix: the Client-Id header must name the client the token was issued to.
        let client = req.headers().get("Client-Id").and_then(|v| v.to_str().ok());
        if client != Some(mock.config.client_id.as_str()) {
            return HttpResponse::Unauthorized().json(json!({
                "error": "Unauthorized", "status": 401, "message": "Client ID and OAuth token do not match"
            }));
        }
    }
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
        MockFlavor::Instagram | MockFlavor::Threads => super::meta_login::me(flavor, &req, &login),
        MockFlavor::TikTok => super::tiktok::user_info(&req, &login),
        MockFlavor::Slack => super::slack::identity(&login, false),
        MockFlavor::Google => HttpResponse::Ok().json(json!({
            // 21 digits, like Google's.
            "sub": format!("10{}1", account_digits(&login)),
            "name": format!("{} Example", display_name(&login)),
            "given_name": display_name(&login),
            "family_name": "Example",
            "picture": "https://lh3.googleusercontent.example/a/mock",
            "email": format!("{login}@example.test"),
            "email_verified": true,
        })),
        MockFlavor::Discord => HttpResponse::Ok().json(json!({
            "id": account_digits(&login),
            "username": login,
            "global_name": display_name(&login),
            "discriminator": "0",
            "avatar": null,
            "mfa_enabled": false,
            "locale": "en-US",
        })),
        MockFlavor::Spotify => HttpResponse::Ok().json(json!({
            "id": login,
            "display_name": display_name(&login),
            "email": format!("{login}@example.test"),
            "type": "user",
            "uri": format!("spotify:user:{login}"),
            "country": "SE",
            "product": "premium",
        })),
        MockFlavor::Twitch => HttpResponse::Ok().json(json!({ "data": [{
            "id": account_number(&login).to_string(),
            "login": login.to_ascii_lowercase(),
            "display_name": display_name(&login),
            "type": "",
            "broadcaster_type": "",
            "description": "",
            "created_at": "2020-01-01T00:00:00Z",
        }] })),
        MockFlavor::Microsoft => HttpResponse::Ok().json(json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "id": account_uuid(&login, "oid"),
            "displayName": format!("{} Example", display_name(&login)),
            "givenName": display_name(&login),
            "surname": "Example",
            "userPrincipalName": format!("{login}@contoso.example"),
            "mail": format!("{login}@contoso.example"),
        })),
        MockFlavor::Dropbox => HttpResponse::Ok().json(json!({
            "account_id": format!("dbid:AA{}", account_member_id(&login)),
            "name": {
                "given_name": display_name(&login),
                "surname": "Example",
                "familiar_name": display_name(&login),
                "display_name": format!("{} Example", display_name(&login)),
                "abbreviated_name": "EX",
            },
            "email": format!("{login}@example.test"),
            "email_verified": true,
            "disabled": false,
            "country": "SE",
            "locale": "en",
            "account_type": { ".tag": "basic" },
        })),
        // The bot user of the installation, with its owner.
        MockFlavor::Notion => HttpResponse::Ok().json(json!({
            "object": "user",
            "id": account_uuid(&login, "bot"),
            "name": "Mock integration",
            "avatar_url": null,
            "type": "bot",
            "bot": {
                "owner": { "type": "user", "user": notion_user(&login) },
                "workspace_name": format!("{login}'s Workspace"),
            },
        })),
        MockFlavor::Zoom => HttpResponse::Ok().json(json!({
            "id": account_member_id(&login) + "Zm9vYmFyQQ",
            "first_name": display_name(&login),
            "last_name": "Example",
            "display_name": format!("{} Example", display_name(&login)),
            "email": format!("{login}@example.test"),
            "type": 1,
            "status": "active",
            "account_id": account_member_id(&format!("account:{login}")),
        })),
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
    let flavor = mock.config.flavor;
    // Google's revocation endpoint takes the token alone.
    if flavor != MockFlavor::Google
        && let Err(err) = authenticate(&mock, &req, &form)
    {
        return error_response(&mock, &req, err);
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return error_response(&mock, &req, OAuthError::InvalidRequest("token is required"));
    };
    match flavor {
        MockFlavor::Google => {
            if !mock.with(|s| s.revoke_token_grant(token)) {
                return HttpResponse::BadRequest()
                    .json(json!({ "error": "invalid_token", "error_description": "Token expired or revoked" }));
            }
            return HttpResponse::Ok().json(json!({}));
        }
        MockFlavor::LinkedIn | MockFlavor::Discord => {
            mock.with(|s| s.revoke_token_grant(token));
        }
        MockFlavor::Zoom => {
            mock.with(|s| s.revoke_token_grant(token));
            return HttpResponse::Ok().json(json!({ "status": "success" }));
        }
        _ => mock.with(|s| s.revoke(token)),
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

/// `GET /oauth2/validate` (Twitch): `Authorization: OAuth <token>` gives the token's client,
/// user, scopes and remaining life; 401 `{"status":401,"message":"invalid access token"}`.
pub(crate) async fn twitch_validate(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("oauth"))
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_default();
    let found = mock.with(|s| {
        if !s.access_valid(&token) {
            return None;
        }
        s.access.get(&token).map(|a| {
            let left = a.expires.map_or(0, |e| e.saturating_duration_since(std::time::Instant::now()).as_secs());
            (a.login.clone(), a.scopes.clone(), left)
        })
    });
    match found {
        Some((login, scopes, expires_in)) => HttpResponse::Ok().json(json!({
            "client_id": mock.config.client_id,
            "login": login.to_ascii_lowercase(),
            "scopes": scopes,
            "user_id": account_number(&login).to_string(),
            "expires_in": expires_in,
        })),
        None => HttpResponse::Unauthorized().json(json!({ "status": 401, "message": "invalid access token" })),
    }
}

/// `POST /oauth2/revoke` (Twitch): form `client_id` and `token`, no secret. Ends the whole
/// authorization; 400 `Invalid token` for a token that does not work, 404 for another client.
pub(crate) async fn twitch_revoke(mock: web::Data<MockProvider>, form: web::Form<Params>) -> HttpResponse {
    let form = form.into_inner();
    if form.get("client_id") != Some(&mock.config.client_id) {
        return HttpResponse::NotFound().json(json!({ "status": 404, "message": "client does not exist" }));
    }
    let token = form.get("token").cloned().unwrap_or_default();
    if mock.with(|s| s.revoke_token_grant(&token)) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::BadRequest().json(json!({ "status": 400, "message": "Invalid token" }))
    }
}

/// `POST /2/auth/token/revoke` (Dropbox): `Authorization: Bearer`, no body; ends the access
/// token and the refresh token it came with. Answers `null`.
pub(crate) async fn dropbox_revoke(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let token = bearer(&req).unwrap_or_default().to_owned();
    if mock.with(|s| s.revoke_token_grant(&token)) {
        HttpResponse::Ok().content_type("application/json").body("null")
    } else {
        dropbox_invalid_token()
    }
}

/// `POST /2/users/get_current_account` (Dropbox): an RPC endpoint without arguments. Like
/// Dropbox, it takes no body, or the body `null` with `Content-Type: application/json`; an
/// empty JSON body is a 400 with a plain-text message.
pub(crate) async fn dropbox_current_account(
    mock: web::Data<MockProvider>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let json = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body_ok = if json { body.trim_ascii() == b"null" } else { body.is_empty() };
    if !body_ok {
        return HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body(
            "Error in call to API function \"users/get_current_account\": request body: could not decode input as JSON",
        );
    }
    userinfo(mock, req).await
}

/// `POST /v1/oauth/revoke` (Notion): HTTP Basic, `Notion-Version`, JSON `{"token"}`; ends the
/// authorization.
pub(crate) async fn notion_revoke(mock: web::Data<MockProvider>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    if req.headers().get("Notion-Version").is_none() {
        return notion_error_body(
            StatusCode::BAD_REQUEST,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined.",
        );
    }
    if let Err(err) = authenticate(&mock, &req, &Params::new()) {
        return error_response(&mock, &req, err);
    }
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_owned))
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return notion_error_body(StatusCode::BAD_REQUEST, "validation_error", "body.token should be defined");
    };
    mock.with(|s| s.revoke_token_grant(&token));
    HttpResponse::Ok().json(json!({ "request_id": account_uuid(&random(), "request") }))
}
