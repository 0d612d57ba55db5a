//! Slack (OAuth v2): bot scopes in `scope` and user scopes in `user_scope` on the authorization
//! request; `POST /api/oauth.v2.access` answering a bot token (`xoxb-`) at the top level and a
//! user token (`xoxp-`) under `authed_user`, errors as HTTP 200 `{"ok":false,"error"}`;
//! optional token rotation (`issue_refresh_tokens`): expiring tokens with `xoxe-1-` refresh
//! tokens that die when used; `auth.test` and `auth.revoke` with `Authorization: Bearer`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::token::{OAuthError, authenticate};
use super::{Params, bearer, json_form_errors, resource};
use crate::state::{AccessToken, MockState, RefreshToken, account_hex, random};
use crate::{MockFailure, MockProvider};

/// What the Slack flavor remembers besides the shared state.
#[derive(Default)]
pub(crate) struct SlackState {
    /// The `user_scope` of each authorization code not yet exchanged.
    user_scopes: HashMap<String, Vec<String>>,
    /// Bot tokens (access and refresh); every other Slack token is a user token.
    bot_tokens: HashSet<String>,
}

/// The app id every answer names.
const APP_ID: &str = "A0MOCKAPP01";

/// Registers `oauth.v2.access`, `auth.test` and `auth.revoke` under `/api/`.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(&["/api/oauth.v2.access"]).app_data(json_form_errors()).route(web::post().to(oauth_v2_access)),
    )
    .service(resource(&["/api/auth.test"]).route(web::post().to(auth_test)).route(web::get().to(auth_test)))
    .service(resource(&["/api/auth.revoke"]).route(web::post().to(auth_revoke)).route(web::get().to(auth_revoke)));
}

/// Keeps the `user_scope` of an authorization request with the code issued for it.
pub(crate) fn remember_user_scopes(mock: &MockProvider, code: &str, params: &Params) {
    let scopes: Vec<String> = params
        .get("user_scope")
        .map(|s| s.split([',', ' ']).filter(|x| !x.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    mock.with(|s| {
        let codes = &s.codes;
        s.slack.user_scopes.retain(|c, _| codes.contains_key(c));
        s.slack.user_scopes.insert(code.to_owned(), scopes);
    });
}

/// `T` + 10 characters: the workspace of a login (each demo login has its own workspace).
fn team_id(login: &str) -> String {
    format!("T{}", account_hex(&format!("team:{login}"))[..10].to_ascii_uppercase())
}

/// `U` + 10 characters: a member id.
fn user_id(login: &str) -> String {
    format!("U{}", account_hex(login)[..10].to_ascii_uppercase())
}

/// The member id of the app's bot user in a login's workspace.
fn bot_user_id(login: &str) -> String {
    format!("U{}", account_hex(&format!("bot:{login}"))[..10].to_ascii_uppercase())
}

fn team_name(login: &str) -> String {
    format!("{login} workspace")
}

/// An HTTP 200 `{"ok":false,"error"}` answer (how Slack reports every API error).
pub(crate) fn error_body(code: &str) -> HttpResponse {
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({ "ok": false, "error": code }))
}

/// A shared-handler error in Slack's shape (the flavor's `/token` alias and `/revoke`).
pub(crate) fn oauth_error(err: OAuthError) -> HttpResponse {
    error_body(match err {
        OAuthError::InvalidClient { description, .. } if description.contains("secret") => "bad_client_secret",
        OAuthError::InvalidClient { .. } => "invalid_client_id",
        OAuthError::BadCode(_) => "invalid_code",
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => "invalid_refresh_token",
        OAuthError::RedirectMismatch => "bad_redirect_uri",
        OAuthError::InvalidRequest(_) => "invalid_arguments",
        OAuthError::UnsupportedGrantType => "invalid_grant_type",
    })
}

/// An injected failure (see [`MockProvider::set_token_failure`]) answered like Slack.
async fn injected(mock: &MockProvider, refresh: bool) -> Option<HttpResponse> {
    let (failure, delay) = mock.with(|s| {
        if refresh {
            s.refresh_attempts += 1;
        }
        (s.failure, s.refresh_delay)
    });
    match failure {
        Some(MockFailure::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Some(HttpResponse::build(status).content_type("text/html").body("<html>Slack is down</html>"));
        }
        Some(MockFailure::TooManyRequests { retry_after_secs }) => {
            return Some(
                HttpResponse::TooManyRequests()
                    .insert_header(("Retry-After", retry_after_secs.to_string()))
                    .json(json!({ "ok": false, "error": "ratelimited" })),
            );
        }
        Some(MockFailure::Hang(d)) => tokio::time::sleep(d).await,
        Some(MockFailure::InvalidGrant) => {
            mock.with(|s| s.invalid_grants += 1);
            return Some(error_body(if refresh { "invalid_refresh_token" } else { "invalid_code" }));
        }
        None => {}
    }
    if refresh && delay > Duration::ZERO {
        tokio::time::sleep(delay).await;
    }
    None
}

/// A new token of one grant: its access token and, with rotation, its refresh token. Returns
/// (access, refresh).
fn mint(
    s: &mut MockState,
    mock: &MockProvider,
    login: &str,
    grant: u64,
    scopes: &[String],
    bot: bool,
) -> (String, Option<String>) {
    let cfg = &mock.config;
    let rotation = cfg.issue_refresh_tokens;
    let kind = if bot { "xoxb" } else { "xoxp" };
    // With token rotation Slack's access tokens are `xoxe.xoxp-1-…`.
    let access = if rotation { format!("xoxe.{kind}-1-{}", random()) } else { format!("{kind}-{}", random()) };
    s.access.insert(
        access.clone(),
        AccessToken {
            login: login.to_owned(),
            expires: if rotation { cfg.access_token_ttl.map(|t| Instant::now() + t) } else { None },
            live: true,
            grant,
            short_lived: false,
            scopes: scopes.to_vec(),
        },
    );
    let refresh = rotation.then(|| {
        let r = format!("xoxe-1-{}", random());
        s.refresh.insert(
            r.clone(),
            RefreshToken {
                client_id: cfg.client_id.clone(),
                login: login.to_owned(),
                scopes: scopes.to_vec(),
                live: true,
                access: access.clone(),
                grant,
                expires: None,
            },
        );
        s.issued_refresh.push(r.clone());
        r
    });
    if bot {
        s.slack.bot_tokens.insert(access.clone());
        s.slack.bot_tokens.extend(refresh.clone());
    }
    (access, refresh)
}

/// The token fields of an answer: `access_token`, and with rotation `expires_in` and
/// `refresh_token`.
fn token_fields(mock: &MockProvider, doc: &mut serde_json::Value, access: &str, refresh: Option<&str>) {
    doc["access_token"] = json!(access);
    if let Some(r) = refresh {
        doc["refresh_token"] = json!(r);
        if let Some(ttl) = mock.config.access_token_ttl {
            doc["expires_in"] = json!(ttl.as_secs());
        }
    }
}

/// `POST /api/oauth.v2.access`: `code` (+ `redirect_uri` when the authorization had one) or
/// `grant_type=refresh_token`, client credentials in the body or with HTTP Basic.
async fn oauth_v2_access(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let form = form.into_inner();
    let refresh = form.get("grant_type").map(String::as_str) == Some("refresh_token");
    if let Some(resp) = injected(&mock, refresh).await {
        return resp;
    }
    if let Err(err) = authenticate(&mock, &req, &form) {
        return oauth_error(err);
    }
    match form.get("grant_type").map(String::as_str) {
        None | Some("authorization_code") => code_grant(&mock, &form),
        Some("refresh_token") => refresh_grant(&mock, &form),
        Some(_) => error_body("invalid_grant_type"),
    }
}

fn code_grant(mock: &MockProvider, form: &Params) -> HttpResponse {
    let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
        return error_body("invalid_code");
    };
    let cfg = &mock.config;
    let outcome = mock.with(|s| {
        let Some(c) = s.codes.get_mut(code) else { return Err("invalid_code") };
        if c.used {
            if let Some(grant) = c.grant {
                s.revoke_grant(grant);
            }
            return Err("code_already_used");
        }
        c.used = true;
        if c.expires <= Instant::now() || c.client_id != cfg.client_id {
            return Err("invalid_code");
        }
        if form.get("redirect_uri").is_some_and(|r| *r != c.redirect_uri) {
            return Err("bad_redirect_uri");
        }
        let (login, bot_scopes) = (c.login.clone(), c.scopes.clone());
        let user_scopes = s.slack.user_scopes.remove(code).unwrap_or_default();
        let grant = s.new_grant();
        if let Some(c) = s.codes.get_mut(code) {
            c.grant = Some(grant);
        }
        s.code_exchanges += 1;
        s.prune();
        let bot = (!bot_scopes.is_empty()).then(|| mint(s, mock, &login, grant, &bot_scopes, true));
        let user = (!user_scopes.is_empty()).then(|| mint(s, mock, &login, grant, &user_scopes, false));
        Ok((login, bot_scopes, bot, user_scopes, user))
    });
    let (login, bot_scopes, bot, user_scopes, user) = match outcome {
        Ok(o) => o,
        Err(code) => {
            mock.with(|s| s.invalid_grants += 1);
            return error_body(code);
        }
    };
    let mut authed_user = json!({ "id": user_id(&login) });
    if let Some((access, refresh)) = &user {
        authed_user["scope"] = json!(user_scopes.join(","));
        authed_user["token_type"] = json!("user");
        token_fields(mock, &mut authed_user, access, refresh.as_deref());
    }
    let mut doc = json!({
        "ok": true,
        "app_id": APP_ID,
        "authed_user": authed_user,
        "team": { "id": team_id(&login), "name": team_name(&login) },
        "enterprise": null,
        "is_enterprise_install": false,
    });
    if let Some((access, refresh)) = &bot {
        doc["scope"] = json!(bot_scopes.join(","));
        doc["token_type"] = json!("bot");
        doc["bot_user_id"] = json!(bot_user_id(&login));
        token_fields(mock, &mut doc, access, refresh.as_deref());
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(doc)
}

/// `grant_type=refresh_token`: the token of the same kind (bot or user) at the top level, and
/// a new refresh token; the used refresh token and its access token die.
fn refresh_grant(mock: &MockProvider, form: &Params) -> HttpResponse {
    let presented = form.get("refresh_token").map_or("", String::as_str);
    let cfg = &mock.config;
    let outcome = mock.with(|s| {
        let r = s.refresh.get_mut(presented).filter(|r| r.usable() && r.client_id == cfg.client_id)?;
        r.live = false;
        let (old_access, login, scopes, grant) = (r.access.clone(), r.login.clone(), r.scopes.clone(), r.grant);
        if let Some(a) = s.access.get_mut(&old_access) {
            a.live = false;
        }
        let bot = s.slack.bot_tokens.contains(presented);
        s.refresh_count += 1;
        let (access, refresh) = mint(s, mock, &login, grant, &scopes, bot);
        Some((login, scopes, bot, access, refresh))
    });
    let Some((login, scopes, bot, access, refresh)) = outcome else {
        mock.with(|s| s.invalid_grants += 1);
        return error_body("invalid_refresh_token");
    };
    let mut doc = json!({
        "ok": true,
        "app_id": APP_ID,
        "scope": scopes.join(","),
        "token_type": if bot { "bot" } else { "user" },
        "team": { "id": team_id(&login), "name": team_name(&login) },
        "enterprise": null,
        "is_enterprise_install": false,
    });
    if bot {
        doc["bot_user_id"] = json!(bot_user_id(&login));
    } else {
        doc["user_id"] = json!(user_id(&login));
    }
    token_fields(mock, &mut doc, &access, refresh.as_deref());
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(doc)
}

/// Why a presented token does not work, as Slack names it (`None`: it works).
fn token_problem(s: &MockState, token: &str) -> Option<&'static str> {
    match s.access.get(token) {
        _ if s.access_valid(token) => None,
        None => Some("invalid_auth"),
        Some(a) if !a.live => Some("token_revoked"),
        Some(_) => Some("token_expired"),
    }
}

/// The `auth.test` answer for a login's user (or its workspace's bot).
pub(crate) fn identity(login: &str, bot: bool) -> HttpResponse {
    let team = team_name(login);
    let mut doc = json!({
        "ok": true,
        "url": format!("https://{}.slack.example/", login.to_ascii_lowercase()),
        "team": team,
        "team_id": team_id(login),
        "is_enterprise_install": false,
    });
    if bot {
        doc["user"] = json!("mockbot");
        doc["user_id"] = json!(bot_user_id(login));
        doc["bot_id"] = json!(format!("B{}", &bot_user_id(login)[1..]));
    } else {
        doc["user"] = json!(login);
        doc["user_id"] = json!(user_id(login));
    }
    HttpResponse::Ok().json(doc)
}

/// `auth.test` (GET or POST, `Authorization: Bearer`): who the token is.
async fn auth_test(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let Some(token) = bearer(&req).map(str::to_owned) else { return error_body("not_authed") };
    let found = mock.with(|s| match token_problem(s, &token) {
        Some(problem) => Err(problem),
        None => Ok((s.access_login(&token).unwrap_or_default(), s.slack.bot_tokens.contains(&token))),
    });
    match found {
        Ok((login, bot)) => identity(&login, bot),
        Err(problem) => error_body(problem),
    }
}

/// `auth.revoke` (GET or POST, `Authorization: Bearer`): revokes that token (and, with
/// rotation, the refresh token it came with). Other tokens of the installation stay.
async fn auth_revoke(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let Some(token) = bearer(&req).map(str::to_owned) else { return error_body("not_authed") };
    let problem = mock.with(|s| {
        let problem = token_problem(s, &token);
        if problem.is_none() {
            // Records the token in `revoked`.
            s.revoke(&token);
            s.refresh.values_mut().filter(|r| r.access == token).for_each(|r| r.live = false);
        } else {
            s.revoked.push(token.clone());
        }
        problem
    });
    match problem {
        None => HttpResponse::Ok().json(json!({ "ok": true, "revoked": true })),
        Some(problem) => error_body(problem),
    }
}
