//! The mock's HTTP endpoints.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::state::{AccessToken, IssuedCode, RefreshToken, account_hex, account_number, random, s256};
use crate::{MockClientAuth, MockFailure, MockFlavor, MockPkce, MockProvider};

type Params = HashMap<String, String>;
/// A response to send instead of going on (boxed: `HttpResponse` is large).
type Reject = Box<HttpResponse>;

pub(crate) fn configure(cfg: &mut web::ServiceConfig, mock: MockProvider) {
    cfg.app_data(web::Data::new(mock))
        .app_data(web::FormConfig::default().error_handler(|e, _| {
            actix_web::error::InternalError::from_response(
                e.to_string(),
                oauth_error_response(StatusCode::BAD_REQUEST, "invalid_request", "malformed form body"),
            )
            .into()
        }))
        .route("/", web::get().to(index))
        .route("/authorize", web::get().to(authorize_get))
        .route("/authorize", web::post().to(authorize_post))
        .route("/token", web::post().to(token))
        .route("/userinfo", web::get().to(userinfo))
        .route("/user", web::get().to(userinfo))
        .route("/revoke", web::post().to(revoke))
        .route("/applications/{client_id}/token", web::delete().to(github_revoke));
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    client_id: &'a str,
    scopes: Vec<&'a str>,
    hidden: Vec<(&'a str, &'a str)>,
    login: &'a str,
    error: Option<&'a str>,
}

fn page(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header(("Referrer-Policy", "no-referrer"))
        .insert_header(("X-Frame-Options", "DENY"))
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

fn error_page(message: &str) -> HttpResponse {
    let escaped = message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    page(
        StatusCode::BAD_REQUEST,
        format!(
            "<!doctype html><meta charset=utf-8><title>Authorization error</title><h1>Authorization error</h1><p>{escaped}</p>"
        ),
    )
}

async fn index() -> HttpResponse {
    page(
        StatusCode::OK,
        "<!doctype html><meta charset=utf-8><title>Demo provider</title><h1>Demo provider</h1>\
         <p>A fake OAuth 2.0 provider for trying Tether and for tests. Endpoints: authorize, token, userinfo, revoke.</p>"
            .into(),
    )
}

fn redirect_with(redirect_uri: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            {
                let mut q = url.query_pairs_mut();
                for (k, v) in pairs {
                    q.append_pair(k, v);
                }
            }
            HttpResponse::Found()
                .insert_header(("Location", url.as_str()))
                .insert_header(("Cache-Control", "no-store"))
                .finish()
        }
        Err(_) => error_page("redirect_uri is not a valid URL"),
    }
}

/// Validates an authorization request. `Err` is the response to send.
fn check_authorize(mock: &MockProvider, p: &Params) -> Result<(), Reject> {
    if p.get("client_id").map(String::as_str) != Some(mock.config.client_id.as_str()) {
        return Err(Box::new(error_page("Unknown client_id.")));
    }
    let Some(redirect_uri) = p.get("redirect_uri").filter(|r| url::Url::parse(r).is_ok()) else {
        return Err(Box::new(error_page("redirect_uri is missing or not an absolute URL.")));
    };
    let state = p.get("state").map(String::as_str).unwrap_or("");
    let fail = |code: &str, desc: &str| {
        Box::new(redirect_with(redirect_uri, &[("error", code), ("error_description", desc), ("state", state)]))
    };
    if p.get("response_type").map(String::as_str) != Some("code") {
        return Err(fail("unsupported_response_type", "only response_type=code is supported"));
    }
    match (mock.config.pkce, p.get("code_challenge"), p.get("code_challenge_method").map(String::as_str)) {
        (MockPkce::Unsupported, _, _) => {}
        (MockPkce::Required, None, _) => return Err(fail("invalid_request", "code_challenge is required (PKCE)")),
        (_, Some(_), m) if m != Some("S256") => {
            return Err(fail("invalid_request", "only code_challenge_method=S256 is accepted"));
        }
        _ => {}
    }
    Ok(())
}

fn issue_code(mock: &MockProvider, p: &Params, login: &str) -> HttpResponse {
    let code = random();
    let challenge = match mock.config.pkce {
        MockPkce::Unsupported => None,
        _ => p.get("code_challenge").cloned(),
    };
    let redirect_uri = p.get("redirect_uri").cloned().unwrap_or_default();
    let scopes = p.get("scope").map(|s| split_scopes(s)).unwrap_or_default();
    mock.with(|s| {
        s.codes.insert(
            code.clone(),
            IssuedCode {
                client_id: mock.config.client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                challenge,
                login: login.to_owned(),
                scopes,
                expires: Instant::now() + mock.config.code_ttl,
                used: false,
            },
        )
    });
    let state = p.get("state").map(String::as_str).unwrap_or("");
    redirect_with(&redirect_uri, &[("code", &code), ("state", state)])
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split([' ', ',']).filter(|x| !x.is_empty()).map(str::to_owned).collect()
}

fn consent(mock: &MockProvider, p: &Params, login: &str, error: Option<&str>) -> HttpResponse {
    let hidden: Vec<(&str, &str)> = p
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "decision" | "login"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let scopes = p.get("scope").map(|s| s.split([' ', ',']).filter(|x| !x.is_empty()).collect()).unwrap_or_default();
    let body = ConsentPage { client_id: &mock.config.client_id, scopes, hidden, login, error }.render();
    match body {
        Ok(b) => page(if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, b),
        Err(_) => error_page("could not render the consent page"),
    }
}

async fn authorize_get(mock: web::Data<MockProvider>, q: web::Query<Params>) -> HttpResponse {
    let p = q.into_inner();
    if let Err(resp) = check_authorize(&mock, &p) {
        return *resp;
    }
    match &mock.config.auto_approve {
        Some(login) => issue_code(&mock, &p, login),
        None => consent(&mock, &p, "demo-user", None),
    }
}

fn valid_login(login: &str) -> bool {
    (1..=64).contains(&login.len())
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

async fn authorize_post(mock: web::Data<MockProvider>, form: web::Form<Params>) -> HttpResponse {
    let p = form.into_inner();
    if let Err(resp) = check_authorize(&mock, &p) {
        return *resp;
    }
    let state = p.get("state").map(String::as_str).unwrap_or("");
    let redirect_uri = p.get("redirect_uri").map(String::as_str).unwrap_or("");
    match p.get("decision").map(String::as_str) {
        Some("allow") => {
            let login = p.get("login").map(|l| l.trim()).unwrap_or("");
            if !valid_login(login) {
                return consent(&mock, &p, login, Some("Use 1 to 64 letters, digits, '.', '_' or '-'."));
            }
            issue_code(&mock, &p, login)
        }
        _ => redirect_with(
            redirect_uri,
            &[("error", "access_denied"), ("error_description", "The user denied access"), ("state", state)],
        ),
    }
}

fn oauth_error_response(status: StatusCode, code: &str, description: &str) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "error": code, "error_description": description }))
}

/// An OAuth error in the flavor's format. `kind` is the RFC code; GitHub renames some.
fn oauth_error(mock: &MockProvider, kind: &str, description: &str, refresh: bool) -> HttpResponse {
    if kind == "invalid_grant" {
        mock.with(|s| s.invalid_grants += 1);
    }
    match mock.config.flavor {
        MockFlavor::Standard => {
            let status = if kind == "invalid_client" { StatusCode::UNAUTHORIZED } else { StatusCode::BAD_REQUEST };
            oauth_error_response(status, kind, description)
        }
        MockFlavor::GitHub => {
            let (code, desc) = match kind {
                "invalid_grant" if refresh => {
                    ("bad_refresh_token", "The refresh token passed is incorrect or expired.")
                }
                "invalid_grant" => ("bad_verification_code", "The code passed is incorrect or expired."),
                "invalid_client" => {
                    ("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
                }
                other => (other, description),
            };
            HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
                "error": code,
                "error_description": desc,
                "error_uri": "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors",
            }))
        }
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// Checks client authentication. `Err` is the response to send.
fn authenticate(mock: &MockProvider, req: &HttpRequest, form: &Params) -> Result<(), Reject> {
    let basic = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(i, p)| (percent_decode(i), percent_decode(p))));
    let body = form.get("client_secret").map(|s| (form.get("client_id").cloned().unwrap_or_default(), s.clone()));
    let cfg = &mock.config;
    let (id, secret) = match (basic, body, cfg.client_auth) {
        (Some(_), _, MockClientAuth::Post) => {
            return Err(Box::new(oauth_error(
                mock,
                "invalid_client",
                "use client_secret_post (credentials in the body)",
                false,
            )));
        }
        (None, Some(_), MockClientAuth::Basic) => {
            return Err(Box::new(oauth_error(
                mock,
                "invalid_client",
                "Missing valid authorization header (HTTP Basic required)",
                false,
            )));
        }
        (Some(b), _, _) => b,
        (None, Some(b), _) => b,
        (None, None, _) => {
            return Err(Box::new(oauth_error(mock, "invalid_client", "client authentication is required", false)));
        }
    };
    if id != cfg.client_id || secret != cfg.client_secret {
        return Err(Box::new(oauth_error(mock, "invalid_client", "wrong client credentials", false)));
    }
    Ok(())
}

fn wants_json(req: &HttpRequest) -> bool {
    req.headers().get("Accept").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

fn issue_tokens(
    mock: &MockProvider,
    req: &HttpRequest,
    login: &str,
    scopes: &[String],
    refresh: Option<String>,
) -> HttpResponse {
    let cfg = &mock.config;
    let (ap, rp) = match cfg.flavor {
        MockFlavor::Standard => ("mat_", "mrt_"),
        MockFlavor::GitHub => ("gho_", "ghr_"),
    };
    let access = format!("{ap}{}", random());
    let refresh = match refresh {
        Some(r) => Some(r),
        None if cfg.issue_refresh_tokens => Some(format!("{rp}{}", random())),
        None => None,
    };
    mock.with(|s| {
        s.access.insert(
            access.clone(),
            AccessToken {
                login: login.to_owned(),
                expires: cfg.access_token_ttl.map(|t| Instant::now() + t),
                live: true,
            },
        );
        if let Some(r) = &refresh {
            let entry = s.refresh.entry(r.clone()).or_insert_with(|| RefreshToken {
                client_id: cfg.client_id.clone(),
                login: login.to_owned(),
                scopes: scopes.to_vec(),
                live: true,
                access: String::new(),
            });
            entry.access = access.clone();
        }
    });
    let sep = if cfg.flavor == MockFlavor::GitHub { "," } else { " " };
    let scope = scopes.join(sep);
    if cfg.flavor == MockFlavor::GitHub && !wants_json(req) {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("access_token", &access).append_pair("scope", &scope).append_pair("token_type", "bearer");
        return HttpResponse::Ok().content_type("application/x-www-form-urlencoded").body(form.finish());
    }
    let mut body = json!({ "access_token": access, "token_type": "bearer", "scope": scope });
    if let Some(ttl) = cfg.access_token_ttl {
        body["expires_in"] = json!(ttl.as_secs());
    }
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
        if cfg.flavor == MockFlavor::GitHub {
            body["refresh_token_expires_in"] = json!(15_897_600);
        }
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body)
}

async fn token(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let form = form.into_inner();
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    let is_refresh = grant == "refresh_token";
    let (failure, delay) = mock.with(|s| {
        if is_refresh {
            s.refresh_attempts += 1;
        }
        (s.failure, s.refresh_delay)
    });
    match failure {
        Some(MockFailure::Status(code)) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return HttpResponse::build(status).json(json!({ "error": "server_error" }));
        }
        Some(MockFailure::TooManyRequests { retry_after_secs }) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry_after_secs.to_string()))
                .json(json!({ "error": "rate_limited" }));
        }
        Some(MockFailure::Hang(d)) => tokio::time::sleep(d).await,
        Some(MockFailure::InvalidGrant) => return oauth_error(&mock, "invalid_grant", "injected failure", is_refresh),
        None => {}
    }
    if let Err(resp) = authenticate(&mock, &req, &form) {
        return *resp;
    }
    match grant {
        "authorization_code" => code_grant(&mock, &req, &form),
        "refresh_token" => {
            if delay > Duration::ZERO {
                tokio::time::sleep(delay).await;
            }
            refresh_grant(&mock, &req, &form)
        }
        _ => oauth_error(
            &mock,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
            false,
        ),
    }
}

fn code_grant(mock: &MockProvider, req: &HttpRequest, form: &Params) -> HttpResponse {
    let code = form.get("code").cloned().unwrap_or_default();
    let verifier = form.get("code_verifier").cloned();
    let redirect_uri = form.get("redirect_uri").cloned().unwrap_or_default();
    let pkce = mock.config.pkce;
    let outcome = mock.with(|s| {
        let Some(c) = s.codes.get_mut(&code) else { return Err(("invalid_grant", "unknown authorization code")) };
        if c.used {
            return Err(("invalid_grant", "authorization code already used"));
        }
        c.used = true;
        if c.expires < Instant::now() {
            return Err(("invalid_grant", "authorization code expired"));
        }
        if c.client_id != mock.config.client_id {
            return Err(("invalid_grant", "code issued to another client"));
        }
        if c.redirect_uri != redirect_uri {
            return Err(("invalid_grant", "redirect_uri does not match the authorization request"));
        }
        match (&c.challenge, &verifier) {
            (Some(ch), Some(v)) if s256(v) == *ch => {}
            (Some(_), Some(_)) => return Err(("invalid_grant", "code_verifier does not match the code_challenge")),
            (Some(_), None) => return Err(("invalid_request", "code_verifier is required")),
            (None, Some(_)) if pkce == MockPkce::Required => {
                return Err(("invalid_request", "code_verifier sent without a code_challenge"));
            }
            _ => {}
        }
        s.code_exchanges += 1;
        Ok((c.login.clone(), c.scopes.clone()))
    });
    match outcome {
        Ok((login, scopes)) => issue_tokens(mock, req, &login, &scopes, None),
        Err((kind, desc)) => oauth_error(mock, kind, desc, false),
    }
}

fn refresh_grant(mock: &MockProvider, req: &HttpRequest, form: &Params) -> HttpResponse {
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    let rotate = mock.config.rotate_refresh_tokens;
    let outcome = mock.with(|s| {
        let r = s.refresh.get_mut(&presented)?;
        if !r.live || r.client_id != mock.config.client_id {
            return None;
        }
        let old_access = r.access.clone();
        let info = (r.login.clone(), r.scopes.clone());
        if rotate {
            r.live = false;
        }
        if let Some(a) = s.access.get_mut(&old_access) {
            a.live = false;
        }
        s.refresh_count += 1;
        Some(info)
    });
    match outcome {
        Some((login, scopes)) => {
            let keep = if rotate { None } else { Some(presented) };
            issue_tokens(mock, req, &login, &scopes, keep)
        }
        None => {
            oauth_error(mock, "invalid_grant", "The refresh token is invalid, expired, revoked or already used", true)
        }
    }
}

fn display_name(login: &str) -> String {
    let mut c = login.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

async fn userinfo(mock: web::Data<MockProvider>, req: HttpRequest) -> HttpResponse {
    let github = mock.config.flavor == MockFlavor::GitHub;
    if github && req.headers().get("User-Agent").is_none() {
        return HttpResponse::Forbidden().json(json!({
            "message": "Request forbidden by administrative rules. Please make sure your request has a User-Agent header"
        }));
    }
    let token = req
        .headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("token ")))
        .unwrap_or("");
    let login = mock.with(|s| if s.access_valid(token) { s.access.get(token).map(|a| a.login.clone()) } else { None });
    let Some(login) = login else {
        return if github {
            HttpResponse::Unauthorized().json(json!({ "message": "Bad credentials" }))
        } else {
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
                .json(json!({ "error": "invalid_token" }))
        };
    };
    if github {
        HttpResponse::Ok()
            .json(json!({ "id": account_number(&login), "login": login, "name": serde_json::Value::Null }))
    } else {
        HttpResponse::Ok().json(json!({
            "sub": format!("u_{}", account_hex(&login)),
            "name": display_name(&login),
            "preferred_username": login,
            "email": format!("{login}@example.test"),
        }))
    }
}

async fn revoke(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let form = form.into_inner();
    if let Err(resp) = authenticate(&mock, &req, &form) {
        return *resp;
    }
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(&mock, "invalid_request", "token is required", false);
    };
    mock.with(|s| s.revoke(token));
    HttpResponse::Ok().finish()
}

async fn github_revoke(
    mock: web::Data<MockProvider>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let authed = authenticate_basic_only(&mock, &req) && path.as_str() == mock.config.client_id;
    if !authed {
        return HttpResponse::NotFound().json(json!({ "message": "Not Found" }));
    }
    let token = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("access_token").and_then(|t| t.as_str()).map(str::to_owned));
    match token {
        Some(t) if mock.with(|s| s.access.contains_key(&t)) => {
            mock.with(|s| s.revoke(&t));
            HttpResponse::NoContent().finish()
        }
        Some(_) => HttpResponse::NotFound().json(json!({ "message": "Not Found" })),
        None => HttpResponse::UnprocessableEntity().json(json!({ "message": "Invalid request" })),
    }
}

fn authenticate_basic_only(mock: &MockProvider, req: &HttpRequest) -> bool {
    req.headers()
        .get("Authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|s| s == format!("{}:{}", mock.config.client_id, mock.config.client_secret))
}
