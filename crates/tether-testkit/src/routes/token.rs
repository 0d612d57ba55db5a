//! `POST /token`: client authentication, the `authorization_code` and `refresh_token` grants,
//! injected failures, and errors in the flavor's format.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::{Params, basic_credentials, same_secret};
use crate::state::{AccessToken, MockState, RefreshToken, pkce_shaped, random, s256};
use crate::{MockClientAuth, MockFailure, MockFlavor, MockPkce, MockProvider, MockProviderConfig};

/// GitHub's documentation link in its token errors.
const GITHUB_ERROR_URI: &str =
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";
/// GitHub's refresh-token lifetime (6 months), reported as `refresh_token_expires_in`.
const GITHUB_REFRESH_TTL_SECS: u64 = 15_897_600;

/// A token-endpoint error, before it is shaped for the flavor.
pub(crate) enum OAuthError {
    /// `invalid_request`.
    InvalidRequest(&'static str),
    /// `invalid_client`; `method` is true when the client used the wrong authentication
    /// method (its description then names the expected one, in every flavor).
    InvalidClient { description: &'static str, method: bool },
    /// `invalid_grant` about an authorization code (GitHub: `bad_verification_code`).
    BadCode(&'static str),
    /// `invalid_grant` about a refresh token (GitHub: `bad_refresh_token`).
    BadRefreshToken,
    /// The `redirect_uri` differs from the authorization request's (standard: `invalid_grant`,
    /// GitHub: `redirect_uri_mismatch`).
    RedirectMismatch,
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
}

/// Whether the client asked for JSON (GitHub answers form-encoded otherwise).
fn wants_json(req: &HttpRequest) -> bool {
    req.headers().get("Accept").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"))
}

/// A 200 form-encoded body (GitHub without `Accept: application/json`).
fn form_body(pairs: &[(&str, &str)]) -> HttpResponse {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        form.append_pair(k, v);
    }
    HttpResponse::Ok()
        .content_type("application/x-www-form-urlencoded; charset=utf-8")
        .insert_header(("Cache-Control", "no-store"))
        .body(form.finish())
}

/// Shapes an error for the flavor, and counts `invalid_grant` answers.
pub(crate) fn error_response(mock: &MockProvider, req: &HttpRequest, err: OAuthError) -> HttpResponse {
    if matches!(err, OAuthError::BadCode(_) | OAuthError::BadRefreshToken | OAuthError::RedirectMismatch) {
        mock.with(|s| s.invalid_grants += 1);
    }
    const BAD_REFRESH: &str = "The refresh token is invalid, expired, revoked or already used";
    const MISMATCH: &str = "redirect_uri does not match the authorization request";
    match mock.config.flavor {
        MockFlavor::Standard => {
            let (status, code, description) = match err {
                OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
                OAuthError::InvalidClient { description, .. } => {
                    (StatusCode::UNAUTHORIZED, "invalid_client", description)
                }
                OAuthError::BadCode(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
                OAuthError::BadRefreshToken => (StatusCode::BAD_REQUEST, "invalid_grant", BAD_REFRESH),
                OAuthError::RedirectMismatch => (StatusCode::BAD_REQUEST, "invalid_grant", MISMATCH),
                OAuthError::UnsupportedGrantType => (
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "grant_type must be authorization_code or refresh_token",
                ),
            };
            let mut resp = HttpResponse::build(status);
            resp.insert_header(("Cache-Control", "no-store"));
            if status == StatusCode::UNAUTHORIZED {
                resp.insert_header(("WWW-Authenticate", "Basic realm=\"mock-provider\""));
            }
            resp.json(json!({ "error": code, "error_description": description }))
        }
        MockFlavor::GitHub => {
            let (code, description) = match err {
                OAuthError::InvalidRequest(d) => ("invalid_request", d),
                OAuthError::InvalidClient { description, method: true } => {
                    ("incorrect_client_credentials", description)
                }
                OAuthError::InvalidClient { method: false, .. } => {
                    ("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
                }
                OAuthError::BadCode(_) => ("bad_verification_code", "The code passed is incorrect or expired."),
                OAuthError::BadRefreshToken => {
                    ("bad_refresh_token", "The refresh token passed is incorrect or expired.")
                }
                OAuthError::RedirectMismatch => (
                    "redirect_uri_mismatch",
                    "The redirect_uri MUST match the registered callback URL for this application.",
                ),
                OAuthError::UnsupportedGrantType => ("unsupported_grant_type", "The grant type is not supported."),
            };
            if !wants_json(req) {
                return form_body(&[
                    ("error", code),
                    ("error_description", description),
                    ("error_uri", GITHUB_ERROR_URI),
                ]);
            }
            HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
                "error": code,
                "error_description": description,
                "error_uri": GITHUB_ERROR_URI,
            }))
        }
    }
}

/// Checks client authentication against the configured method.
pub(crate) fn authenticate(mock: &MockProvider, req: &HttpRequest, form: &Params) -> Result<(), OAuthError> {
    let cfg = &mock.config;
    let basic = basic_credentials(req);
    let body = form.get("client_secret").map(|secret| (form.get("client_id").map_or("", String::as_str), secret));
    let invalid = |description| Err(OAuthError::InvalidClient { description, method: false });
    let wrong_method = |description| Err(OAuthError::InvalidClient { description, method: true });
    match (basic, body, cfg.client_auth) {
        (Some(_), _, MockClientAuth::Post) => wrong_method(
            "This client must send client_id and client_secret in the request body (client_secret_post); \
             HTTP Basic authentication is not accepted",
        ),
        (None, Some(_), MockClientAuth::Basic) => wrong_method(
            "This client must authenticate with HTTP Basic (client_secret_basic); \
             credentials in the request body are not accepted",
        ),
        (None, None, MockClientAuth::Basic) => invalid("Client authentication with HTTP Basic is required"),
        (None, None, MockClientAuth::Post) => invalid("client_id and client_secret are required in the request body"),
        (None, None, MockClientAuth::Either) => invalid("Client authentication is required"),
        (Some(None), _, _) => invalid("The HTTP Basic authorization header is malformed"),
        (Some(Some(creds)), _, _) => {
            if creds.matches(&cfg.client_id, &cfg.client_secret) {
                Ok(())
            } else {
                invalid("Unknown client or wrong client secret")
            }
        }
        (None, Some((id, secret)), _) => {
            if same_secret(id, &cfg.client_id) & same_secret(secret, &cfg.client_secret) {
                Ok(())
            } else {
                invalid("Unknown client or wrong client secret")
            }
        }
    }
}

/// `POST /token`.
pub(crate) async fn token(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let form = form.into_inner();
    let grant = match form.get("grant_type").map(String::as_str) {
        Some(g) => g,
        // GitHub's token endpoint does not require grant_type for code exchanges.
        None if mock.config.flavor == MockFlavor::GitHub => "authorization_code",
        None => "",
    };
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
            return HttpResponse::build(status)
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({ "error": "server_error", "error_description": "injected failure" }));
        }
        Some(MockFailure::TooManyRequests { retry_after_secs }) => {
            return HttpResponse::TooManyRequests()
                .insert_header(("Retry-After", retry_after_secs.to_string()))
                .insert_header(("Cache-Control", "no-store"))
                .json(json!({ "error": "rate_limited", "error_description": "slow down" }));
        }
        Some(MockFailure::Hang(d)) => tokio::time::sleep(d).await,
        Some(MockFailure::InvalidGrant) => {
            let err = if is_refresh { OAuthError::BadRefreshToken } else { OAuthError::BadCode("injected failure") };
            return error_response(&mock, &req, err);
        }
        None => {}
    }
    if let Err(err) = authenticate(&mock, &req, &form) {
        return error_response(&mock, &req, err);
    }
    let outcome = match grant {
        "authorization_code" => code_grant(&mock, &form),
        "refresh_token" => {
            if delay > Duration::ZERO {
                tokio::time::sleep(delay).await;
            }
            refresh_grant(&mock, &form)
        }
        "" => Err(OAuthError::InvalidRequest("grant_type is required")),
        _ => Err(OAuthError::UnsupportedGrantType),
    };
    match outcome {
        Ok(issued) => success(&mock.config, &req, issued),
        Err(err) => error_response(&mock, &req, err),
    }
}

/// What a successful grant hands out.
struct Issued {
    access: String,
    /// Only when the response carries one (new or rotated).
    refresh: Option<String>,
    scopes: Vec<String>,
}

/// Stores a new access token (and, when `new_refresh`, a new refresh token) for a grant.
/// `linked_refresh` is an existing refresh token that stays and now goes with the new access
/// token (refresh without rotation).
fn mint(
    s: &mut MockState,
    cfg: &MockProviderConfig,
    login: &str,
    scopes: &[String],
    grant: u64,
    linked_refresh: Option<&str>,
) -> Issued {
    let (ap, rp) = match cfg.flavor {
        MockFlavor::Standard => ("mat_", "mrt_"),
        MockFlavor::GitHub => ("gho_", "ghr_"),
    };
    s.prune();
    let access = format!("{ap}{}", random());
    s.access.insert(
        access.clone(),
        AccessToken {
            login: login.to_owned(),
            expires: cfg.access_token_ttl.map(|t| Instant::now() + t),
            live: true,
            grant,
        },
    );
    let refresh = match linked_refresh {
        Some(r) => {
            if let Some(token) = s.refresh.get_mut(r) {
                token.access = access.clone();
            }
            None
        }
        None if cfg.issue_refresh_tokens => {
            let r = format!("{rp}{}", random());
            s.refresh.insert(
                r.clone(),
                RefreshToken {
                    client_id: cfg.client_id.clone(),
                    login: login.to_owned(),
                    scopes: scopes.to_vec(),
                    live: true,
                    access: access.clone(),
                    grant,
                },
            );
            Some(r)
        }
        None => None,
    };
    Issued { access, refresh, scopes: scopes.to_vec() }
}

/// `grant_type=authorization_code`.
fn code_grant(mock: &MockProvider, form: &Params) -> Result<Issued, OAuthError> {
    let cfg = &mock.config;
    let Some(code) = form.get("code").filter(|c| !c.is_empty()) else {
        return Err(OAuthError::InvalidRequest("code is required"));
    };
    let redirect_uri = form.get("redirect_uri").map_or("", String::as_str);
    let verifier = form.get("code_verifier").map(String::as_str);
    mock.with(|s| {
        let Some(c) = s.codes.get_mut(code) else {
            return Err(OAuthError::BadCode("The authorization code is unknown or expired"));
        };
        if c.used {
            // RFC 6749 §4.1.2: a replayed code revokes what was issued from it.
            if let Some(grant) = c.grant {
                s.revoke_grant(grant);
            }
            return Err(OAuthError::BadCode("The authorization code was already used"));
        }
        // Any attempt spends the code, so a verifier cannot be guessed in several tries.
        c.used = true;
        if c.expires <= Instant::now() {
            return Err(OAuthError::BadCode("The authorization code expired"));
        }
        if c.client_id != cfg.client_id {
            return Err(OAuthError::BadCode("The authorization code was issued to another client"));
        }
        if c.redirect_uri != redirect_uri {
            return Err(OAuthError::RedirectMismatch);
        }
        match (&c.challenge, verifier) {
            (Some(_), None) => return Err(OAuthError::BadCode("code_verifier is required")),
            (Some(_), Some(v)) if !pkce_shaped(v) => {
                return Err(OAuthError::BadCode("code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~]"));
            }
            (Some(challenge), Some(v)) if s256(v) != *challenge => {
                return Err(OAuthError::BadCode("code_verifier does not match the code_challenge"));
            }
            (None, Some(_)) if cfg.pkce == MockPkce::Required => {
                return Err(OAuthError::InvalidRequest(
                    "code_verifier sent, but the authorization had no code_challenge",
                ));
            }
            _ => {}
        }
        let (login, scopes) = (c.login.clone(), c.scopes.clone());
        let grant = s.new_grant();
        if let Some(c) = s.codes.get_mut(code) {
            c.grant = Some(grant);
        }
        s.code_exchanges += 1;
        Ok(mint(s, cfg, &login, &scopes, grant, None))
    })
}

/// `grant_type=refresh_token`.
fn refresh_grant(mock: &MockProvider, form: &Params) -> Result<Issued, OAuthError> {
    let cfg = &mock.config;
    let Some(presented) = form.get("refresh_token").filter(|r| !r.is_empty()) else {
        return Err(OAuthError::InvalidRequest("refresh_token is required"));
    };
    mock.with(|s| {
        let r = s.refresh.get_mut(presented).filter(|r| r.live && r.client_id == cfg.client_id);
        let Some(r) = r else { return Err(OAuthError::BadRefreshToken) };
        if cfg.rotate_refresh_tokens {
            r.live = false;
        }
        let (old_access, login, scopes, grant) = (r.access.clone(), r.login.clone(), r.scopes.clone(), r.grant);
        // The new access token replaces the old one (as GitHub and X do).
        if let Some(a) = s.access.get_mut(&old_access) {
            a.live = false;
        }
        s.refresh_count += 1;
        let linked = (!cfg.rotate_refresh_tokens).then_some(presented.as_str());
        Ok(mint(s, cfg, &login, &scopes, grant, linked))
    })
}

/// The 200 answer: JSON, or GitHub's form encoding when JSON was not asked for.
fn success(cfg: &MockProviderConfig, req: &HttpRequest, issued: Issued) -> HttpResponse {
    let github = cfg.flavor == MockFlavor::GitHub;
    let scope = issued.scopes.join(if github { "," } else { " " });
    let expires_in = cfg.access_token_ttl.map(|t| t.as_secs().to_string());
    if github && !wants_json(req) {
        let mut pairs = vec![("access_token", issued.access.as_str())];
        if let Some(e) = &expires_in {
            pairs.push(("expires_in", e));
        }
        let refresh_ttl = GITHUB_REFRESH_TTL_SECS.to_string();
        if let Some(r) = &issued.refresh {
            pairs.push(("refresh_token", r));
            pairs.push(("refresh_token_expires_in", &refresh_ttl));
        }
        pairs.push(("scope", &scope));
        pairs.push(("token_type", "bearer"));
        return form_body(&pairs);
    }
    let mut body = json!({ "access_token": issued.access, "token_type": "bearer", "scope": scope });
    if let Some(ttl) = cfg.access_token_ttl {
        body["expires_in"] = json!(ttl.as_secs());
    }
    if let Some(r) = issued.refresh {
        body["refresh_token"] = json!(r);
        if github {
            body["refresh_token_expires_in"] = json!(GITHUB_REFRESH_TTL_SECS);
        }
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache")).json(body)
}
