//! Instagram ("Instagram API with Instagram Login") and Threads: Meta's logins whose
//! long-lived tokens are renewed by presenting the token itself. The code exchange goes through
//! the shared `/token` handler (see `code_answer`, `instagram_error`); this module adds the
//! Graph endpoints `GET /access_token` (`ig_exchange_token` / `th_exchange_token`: short-lived
//! to long-lived) and `GET /refresh_access_token` (`ig_refresh_token` / `th_refresh_token`:
//! renewal of a long-lived token at least [`DEFAULT_MIN_REFRESH_AGE`] old), and `/me`.

use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::token::{OAuthError, TokenProblem, meta_error_body, meta_token_error};
use super::{Params, Reject, json_query_errors, resource, same_secret};
use crate::state::{AccessToken, account_digits, random};
use crate::{MockFailure, MockFlavor, MockProvider};

/// How old a long-lived token must be before Instagram and Threads renew it.
pub(crate) const DEFAULT_MIN_REFRESH_AGE: Duration = Duration::from_secs(24 * 3600);
/// The long-lived lifetime when the configuration sets none (60 days).
const LONG_LIVED_TTL: Duration = Duration::from_secs(60 * 86_400);

impl MockProvider {
    /// Instagram and Threads flavors: the age a long-lived token must reach before
    /// `refresh_access_token` renews it (24 hours, as the real services, until set). Tests whose
    /// "long-lived" tokens last seconds set it lower.
    pub fn set_min_refresh_age(&self, age: Duration) {
        self.with(|s| s.min_refresh_age = Some(age));
    }
}

/// Token prefixes (access, refresh) of the two flavors; they issue no refresh tokens.
pub(crate) fn prefixes(flavor: MockFlavor) -> (&'static str, &'static str) {
    match flavor {
        MockFlavor::Threads => ("THAA", "-"),
        _ => ("IGAA", "-"),
    }
}

/// The grant types of the exchange and the renewal.
fn grants(flavor: MockFlavor) -> (&'static str, &'static str) {
    match flavor {
        MockFlavor::Threads => ("th_exchange_token", "th_refresh_token"),
        _ => ("ig_exchange_token", "ig_refresh_token"),
    }
}

/// Instagram's professional-account id (`user_id`) for a login: 17 digits starting `1784`.
fn instagram_user_id(login: &str) -> String {
    format!("1784{}", &account_digits(login)[..13])
}

/// The id of a Threads profile for a login (17 digits).
fn threads_user_id(login: &str) -> String {
    format!("2{}", &account_digits(login)[..16])
}

/// "alice" → "Alice".
fn capitalized(login: &str) -> String {
    let mut c = login.chars();
    c.next().map(|f| f.to_uppercase().collect::<String>() + c.as_str()).unwrap_or_default()
}

/// Registers the Graph token endpoints.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(resource(&["/access_token"]).app_data(json_query_errors()).route(web::get().to(exchange)))
        .service(resource(&["/refresh_access_token"]).app_data(json_query_errors()).route(web::get().to(refresh)));
}

/// The code-exchange answer: Instagram `{"data":[{"access_token","user_id","permissions"}]}`
/// (as its reference documents it), Threads `{"access_token","user_id"}`. No `expires_in`:
/// the short-lived token lasts an hour.
pub(crate) fn code_answer(flavor: MockFlavor, access: &str, login: &str, scopes: &[String]) -> HttpResponse {
    let body = match flavor {
        MockFlavor::Threads => json!({ "access_token": access, "user_id": threads_user_id(login) }),
        _ => json!({ "data": [{
            "access_token": access,
            "user_id": instagram_user_id(login),
            "permissions": scopes.join(","),
        }] }),
    };
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body)
}

/// `api.instagram.com` errors: `{"error_type":"OAuthException","code":400,"error_message"}`.
pub(crate) fn instagram_error(err: OAuthError) -> HttpResponse {
    let (status, message) = match err {
        OAuthError::InvalidClient { description, method: true } => (400, description),
        OAuthError::InvalidClient { .. } => (400, "Invalid client_secret"),
        OAuthError::BadCode(_) | OAuthError::BadRefreshToken => (400, "Invalid authorization code"),
        OAuthError::RedirectMismatch => (
            400,
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        ),
        OAuthError::BadAccessToken(_) => (400, "Invalid OAuth access token"),
        OAuthError::InvalidRequest(d) => (400, d),
        OAuthError::UnsupportedGrantType => (400, "Invalid grant_type: use authorization_code"),
    };
    HttpResponse::BadRequest().insert_header(("Cache-Control", "no-store")).json(json!({
        "error_type": "OAuthException",
        "code": status,
        "error_message": message,
    }))
}

/// An injected failure (see [`MockProvider::set_token_failure`]), answered like the Graph API.
/// `Err` is the response to send.
async fn injected(mock: &MockProvider, is_refresh: bool) -> Result<(), Reject> {
    let failure = mock.with(|s| {
        if is_refresh {
            s.refresh_attempts += 1;
        }
        s.failure
    });
    match failure {
        Some(MockFailure::Status(code)) => {
            let status = actix_web::http::StatusCode::from_u16(code)
                .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
            Err(HttpResponse::build(status)
                .json(json!({ "error": {
                    "message": "An unexpected error has occurred. Please retry your request later.",
                    "type": "OAuthException", "is_transient": true, "code": 2,
                } }))
                .into())
        }
        Some(MockFailure::TooManyRequests { retry_after_secs }) => Err(HttpResponse::TooManyRequests()
            .insert_header(("Retry-After", retry_after_secs.to_string()))
            .json(json!({ "error": {
                "message": "(#4) Application request limit reached", "type": "OAuthException", "code": 4,
            } }))
            .into()),
        Some(MockFailure::Hang(d)) => {
            tokio::time::sleep(d).await;
            Ok(())
        }
        Some(MockFailure::InvalidGrant) => {
            mock.with(|s| s.invalid_grants += 1);
            Err(meta_token_error(TokenProblem::Revoked).into())
        }
        None => Ok(()),
    }
}

/// A live access token presented to the Graph token endpoints.
struct Presented {
    login: String,
    grant: u64,
    scopes: Vec<String>,
    short_lived: bool,
    /// Time since it was issued (long-lived tokens).
    age: Duration,
}

/// The live token `presented`, or the 190 error.
fn presented_token(mock: &MockProvider, presented: &str) -> Result<Presented, Reject> {
    let long_ttl = mock.config.access_token_ttl.unwrap_or(LONG_LIVED_TTL);
    mock.with(|s| {
        let now = Instant::now();
        let problem = match s.access.get(presented) {
            None => TokenProblem::Unknown,
            Some(a) if !a.live => TokenProblem::Revoked,
            Some(a) if a.expires.is_some_and(|e| e <= now) => TokenProblem::Expired,
            Some(a) => {
                let left = a.expires.map_or(long_ttl, |e| e.saturating_duration_since(now));
                return Ok(Presented {
                    login: a.login.clone(),
                    grant: a.grant,
                    scopes: a.scopes.clone(),
                    short_lived: a.short_lived,
                    age: long_ttl.saturating_sub(left),
                });
            }
        };
        s.invalid_grants += 1;
        Err(meta_token_error(problem).into())
    })
}

/// Issues a long-lived token and answers `{"access_token","token_type","expires_in"}`.
fn issue_long_lived(mock: &MockProvider, from: Presented) -> HttpResponse {
    let Presented { login, grant, scopes, .. } = from;
    let ttl = mock.config.access_token_ttl.unwrap_or(LONG_LIVED_TTL);
    let access = format!("{}{}", prefixes(mock.config.flavor).0, random());
    mock.with(|s| {
        s.prune();
        s.access.insert(
            access.clone(),
            AccessToken { login, expires: Some(Instant::now() + ttl), live: true, grant, short_lived: false, scopes },
        );
    });
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "access_token": access, "token_type": "bearer", "expires_in": ttl.as_secs() }))
}

/// `GET /access_token?grant_type=ig_exchange_token&client_secret&access_token=<short-lived>`
/// (Threads: `th_exchange_token`): a long-lived token for a valid short-lived one, which keeps
/// working until it expires.
async fn exchange(mock: web::Data<MockProvider>, query: web::Query<Params>) -> HttpResponse {
    let q = query.into_inner();
    if let Err(resp) = injected(&mock, false).await {
        return *resp;
    }
    let (grant_type, _) = grants(mock.config.flavor);
    if q.get("grant_type").map(String::as_str) != Some(grant_type) {
        return meta_error_body(100, None, &format!("(#100) grant_type must be {grant_type}"));
    }
    let secret_ok = q.get("client_secret").is_some_and(|s| same_secret(s, &mock.config.client_secret));
    if !secret_ok {
        return meta_error_body(1, None, "Error validating client secret.");
    }
    let presented = q.get("access_token").map_or("", String::as_str);
    let token = match presented_token(&mock, presented) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    if !token.short_lived {
        return meta_error_body(100, None, "(#100) Only a short-lived token can be exchanged for a long-lived one");
    }
    mock.with(|s| s.token_exchanges += 1);
    issue_long_lived(&mock, token)
}

/// `GET /refresh_access_token?grant_type=ig_refresh_token&access_token=<long-lived>` (Threads:
/// `th_refresh_token`): a new long-lived token for one that is valid and old enough. No client
/// credentials. The presented token keeps working until it expires (Meta does not say it ends).
async fn refresh(mock: web::Data<MockProvider>, query: web::Query<Params>) -> HttpResponse {
    let q = query.into_inner();
    if let Err(resp) = injected(&mock, true).await {
        return *resp;
    }
    let (_, grant_type) = grants(mock.config.flavor);
    if q.get("grant_type").map(String::as_str) != Some(grant_type) {
        return meta_error_body(100, None, &format!("(#100) grant_type must be {grant_type}"));
    }
    let presented = q.get("access_token").map_or("", String::as_str);
    let token = match presented_token(&mock, presented) {
        Ok(t) => t,
        Err(resp) => return *resp,
    };
    if token.short_lived {
        return meta_error_body(100, None, "(#100) A short-lived token cannot be refreshed; exchange it first");
    }
    let min_age = mock.with(|s| s.min_refresh_age).unwrap_or(DEFAULT_MIN_REFRESH_AGE);
    if token.age < min_age {
        return meta_error_body(
            100,
            None,
            "(#100) The access token cannot be refreshed yet: it must be at least 24 hours old",
        );
    }
    mock.with(|s| s.refresh_count += 1);
    issue_long_lived(&mock, token)
}

/// `GET /me?fields=…` (also under a version, `/v25.0/me`): only the fields asked for.
/// Instagram: `user_id` (professional account id), `id` (app-scoped), `username`, `name`,
/// `account_type`; Threads: `id`, `username`, `name`. An unknown field is error 100.
pub(crate) fn me(flavor: MockFlavor, req: &HttpRequest, login: &str) -> HttpResponse {
    if let Some(version) = req.match_info().get("version")
        && !version.starts_with('v')
    {
        return HttpResponse::NotFound().json(json!({ "error": "not_found" }));
    }
    let query = web::Query::<Params>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let threads = flavor == MockFlavor::Threads;
    let fields = query.get("fields").map_or(if threads { "id" } else { "id,username" }, String::as_str);
    let mut doc = serde_json::Map::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let value = match (field, threads) {
            ("id", true) => json!(threads_user_id(login)),
            ("id", false) => json!(account_digits(login)[..17].to_owned()),
            ("user_id", false) => json!(instagram_user_id(login)),
            ("username", _) => json!(login),
            ("name", _) => json!(format!("{} Example", capitalized(login))),
            ("account_type", false) => json!("BUSINESS"),
            (other, _) => {
                let node = if threads { "ThreadsUser" } else { "User" };
                return meta_error_body(
                    100,
                    None,
                    &format!("(#100) Tried accessing nonexisting field ({other}) on node type ({node})"),
                );
            }
        };
        doc.insert(field.to_owned(), value);
    }
    HttpResponse::Ok().json(doc)
}
