//! `POST /token`: client authentication, the `authorization_code` and `refresh_token` grants
//! (and Facebook's `fb_exchange_token`), injected failures, and errors in the flavor's format.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::{Params, basic_credentials, reddit_requires_user_agent, same_secret};
use crate::state::{
    AccessToken, MockState, RefreshToken, account_digits, account_member_id, account_uuid, pkce_shaped, random,
};
use crate::{MockClientAuth, MockFailure, MockFlavor, MockPkce, MockProvider, MockProviderConfig};

/// GitHub's documentation link in its token errors.
const GITHUB_ERROR_URI: &str =
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors";
/// GitHub's refresh-token lifetime (6 months), reported as `refresh_token_expires_in`.
const GITHUB_REFRESH_TTL_SECS: u64 = 15_897_600;
/// LinkedIn's refresh-token lifetime (365 days, not extended by refreshing).
const LINKEDIN_REFRESH_TTL_SECS: u64 = 365 * 86_400;
/// Pinterest's continuous refresh-token lifetime (60 days from each refresh).
const PINTEREST_REFRESH_TTL_SECS: u64 = 60 * 86_400;
/// Spotify's refresh-token lifetime (6 months from the authorization, not extended).
const SPOTIFY_REFRESH_TTL_SECS: u64 = 182 * 86_400;
/// The longest life of a Facebook short-lived token (from a code exchange).
const FACEBOOK_SHORT_TTL: Duration = Duration::from_secs(3600);

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
    /// Facebook `fb_exchange_token`: the presented access token does not work (Meta code 190).
    BadAccessToken(TokenProblem),
}

/// Why a presented access token does not work.
#[derive(Clone, Copy)]
pub(crate) enum TokenProblem {
    /// Never issued (or forgotten).
    Unknown,
    /// Past its expiry.
    Expired,
    /// Revoked (the user removed the app).
    Revoked,
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
    if matches!(
        err,
        OAuthError::BadCode(_)
            | OAuthError::BadRefreshToken
            | OAuthError::RedirectMismatch
            | OAuthError::BadAccessToken(_)
    ) {
        mock.with(|s| s.invalid_grants += 1);
    }
    match mock.config.flavor {
        MockFlavor::Standard
        | MockFlavor::LinkedIn
        | MockFlavor::Google
        | MockFlavor::Discord
        | MockFlavor::Spotify
        | MockFlavor::Dropbox => rfc_error(err),
        MockFlavor::GitHub => github_error(req, err),
        MockFlavor::Reddit => reddit_error(err),
        MockFlavor::Pinterest => pinterest_error(err),
        MockFlavor::Facebook | MockFlavor::Threads => meta_error(err),
        MockFlavor::Instagram => super::meta_login::instagram_error(err),
        MockFlavor::TikTok => super::tiktok::token_error(err),
        MockFlavor::Slack => super::slack::oauth_error(err),
        MockFlavor::Twitch => twitch_error(err),
        MockFlavor::Microsoft => microsoft_error(err),
        MockFlavor::Notion => notion_error(err),
        MockFlavor::Zoom => zoom_error(err),
    }
}

const BAD_REFRESH: &str = "The refresh token is invalid, expired, revoked or already used";
const MISMATCH: &str = "redirect_uri does not match the authorization request";
const BAD_ACCESS: &str = "The access token is invalid, expired or revoked";

/// RFC 6749 §5.2: HTTP 400 (401 for `invalid_client`) with `{"error","error_description"}`.
fn rfc_error(err: OAuthError) -> HttpResponse {
    let (status, code, description) = match err {
        OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        OAuthError::InvalidClient { description, .. } => (StatusCode::UNAUTHORIZED, "invalid_client", description),
        OAuthError::BadCode(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
        OAuthError::BadRefreshToken => (StatusCode::BAD_REQUEST, "invalid_grant", BAD_REFRESH),
        OAuthError::RedirectMismatch => (StatusCode::BAD_REQUEST, "invalid_grant", MISMATCH),
        OAuthError::BadAccessToken(_) => (StatusCode::BAD_REQUEST, "invalid_grant", BAD_ACCESS),
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

/// Twitch: `{"status": <int>, "message"}`, not RFC 6749.
fn twitch_error(err: OAuthError) -> HttpResponse {
    let (status, message) = match err {
        OAuthError::InvalidClient { description, method: true } => (StatusCode::BAD_REQUEST, description),
        OAuthError::InvalidClient { method: false, .. } => (StatusCode::FORBIDDEN, "invalid client secret"),
        OAuthError::BadCode(_) => (StatusCode::BAD_REQUEST, "Invalid authorization code"),
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => {
            (StatusCode::BAD_REQUEST, "Invalid refresh token")
        }
        OAuthError::RedirectMismatch => {
            (StatusCode::BAD_REQUEST, "Parameter redirect_uri does not match registered URI")
        }
        OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, d),
        OAuthError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "Invalid grant type"),
    };
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "status": status.as_u16(), "message": message }))
}

/// Microsoft Entra ID: RFC 6749 errors with `AADSTS` descriptions and `error_codes`,
/// `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
fn microsoft_error(err: OAuthError) -> HttpResponse {
    let (status, code, aadsts, description) = match err {
        OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", 900_144, d),
        OAuthError::InvalidClient { description, .. } => {
            (StatusCode::UNAUTHORIZED, "invalid_client", 7_000_215, description)
        }
        OAuthError::BadCode(d) => (StatusCode::BAD_REQUEST, "invalid_grant", 54_005, d),
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => (
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            70_008,
            "The provided authorization code or refresh token has expired due to inactivity or was revoked.",
        ),
        OAuthError::RedirectMismatch => (StatusCode::BAD_REQUEST, "invalid_grant", 50_148, MISMATCH),
        OAuthError::UnsupportedGrantType => {
            (StatusCode::BAD_REQUEST, "unsupported_grant_type", 70_003, "The app requested an unsupported grant type.")
        }
    };
    let trace = URL_SAFE_NO_PAD.encode(&random().as_bytes()[..12]);
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(json!({
        "error": code,
        "error_description": format!("AADSTS{aadsts}: {description} Trace ID: {trace}"),
        "error_codes": [aadsts],
        "timestamp": "2026-08-01 12:00:00Z",
        "trace_id": trace,
        "correlation_id": trace,
        "error_uri": format!("https://login.microsoftonline.com/error?code={aadsts}"),
    }))
}

/// Notion: `{"object":"error","status","code","message"}`.
fn notion_error(err: OAuthError) -> HttpResponse {
    let (status, code, message) = match err {
        OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        OAuthError::InvalidClient { description, .. } => (StatusCode::UNAUTHORIZED, "unauthorized", description),
        OAuthError::BadCode(d) => (StatusCode::BAD_REQUEST, "invalid_grant", d),
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => {
            (StatusCode::BAD_REQUEST, "invalid_grant", BAD_REFRESH)
        }
        OAuthError::RedirectMismatch => (StatusCode::BAD_REQUEST, "invalid_grant", MISMATCH),
        OAuthError::UnsupportedGrantType => (
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ),
    };
    notion_error_body(status, code, message)
}

/// A Notion error document.
pub(crate) fn notion_error_body(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(json!({
        "object": "error",
        "status": status.as_u16(),
        "code": code,
        "message": message,
        "request_id": account_uuid(&random(), "request"),
    }))
}

/// Zoom: `{"reason","error"}`; a dead refresh token or code is `invalid_request`, not
/// `invalid_grant`.
fn zoom_error(err: OAuthError) -> HttpResponse {
    let (status, code, reason) = match err {
        OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, "invalid_request", d),
        // Zoom answers 400 to bad client credentials too.
        OAuthError::InvalidClient { description, method: true } => {
            (StatusCode::BAD_REQUEST, "invalid_client", description)
        }
        OAuthError::InvalidClient { method: false, .. } => {
            (StatusCode::BAD_REQUEST, "invalid_client", "Invalid client_id or client_secret")
        }
        OAuthError::BadCode(_) => (StatusCode::BAD_REQUEST, "invalid_request", "Invalid authorization code"),
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => {
            (StatusCode::BAD_REQUEST, "invalid_request", "Invalid Token!")
        }
        OAuthError::RedirectMismatch => (StatusCode::BAD_REQUEST, "invalid_request", "Redirect URI mismatch."),
        OAuthError::UnsupportedGrantType => {
            (StatusCode::BAD_REQUEST, "unsupported_grant_type", "Unsupported grant type")
        }
    };
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "reason": reason, "error": code }))
}

/// GitHub: HTTP 200 with `{"error","error_description","error_uri"}` (form-encoded unless JSON
/// was asked for).
fn github_error(req: &HttpRequest, err: OAuthError) -> HttpResponse {
    let (code, description) = match err {
        OAuthError::InvalidRequest(d) => ("invalid_request", d),
        OAuthError::InvalidClient { description, method: true } => ("incorrect_client_credentials", description),
        OAuthError::InvalidClient { method: false, .. } => {
            ("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
        }
        OAuthError::BadCode(_) | OAuthError::BadAccessToken(_) => {
            ("bad_verification_code", "The code passed is incorrect or expired.")
        }
        OAuthError::BadRefreshToken => ("bad_refresh_token", "The refresh token passed is incorrect or expired."),
        OAuthError::RedirectMismatch => {
            ("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.")
        }
        OAuthError::UnsupportedGrantType => ("unsupported_grant_type", "The grant type is not supported."),
    };
    if !wants_json(req) {
        return form_body(&[("error", code), ("error_description", description), ("error_uri", GITHUB_ERROR_URI)]);
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(json!({
        "error": code,
        "error_description": description,
        "error_uri": GITHUB_ERROR_URI,
    }))
}

/// Reddit: client errors 401 `{"message":"Unauthorized","error":401}`; authorization-code
/// errors with HTTP 200 (as its source does), others 400, `{"error": code}` only.
fn reddit_error(err: OAuthError) -> HttpResponse {
    let (status, code) = match err {
        OAuthError::InvalidClient { description, method } => {
            let message = if method { description } else { "Unauthorized" };
            return HttpResponse::Unauthorized()
                .insert_header(("Cache-Control", "no-store"))
                .insert_header(("WWW-Authenticate", "Basic realm=\"reddit\""))
                .json(json!({ "message": message, "error": 401 }));
        }
        OAuthError::BadCode(_) | OAuthError::RedirectMismatch => (StatusCode::OK, "invalid_grant"),
        OAuthError::BadRefreshToken | OAuthError::BadAccessToken(_) => (StatusCode::BAD_REQUEST, "invalid_grant"),
        OAuthError::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        OAuthError::UnsupportedGrantType => (StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    };
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(json!({ "error": code }))
}

/// Pinterest: `{"code": <int>, "message"}`; 283 for dead grants, 2 for client
/// authentication, 1 for malformed requests.
fn pinterest_error(err: OAuthError) -> HttpResponse {
    const BAD_GRANT: (StatusCode, u32, &str) = (StatusCode::UNAUTHORIZED, 283, "The authorization grant is invalid");
    let (status, code, message) = match err {
        OAuthError::InvalidClient { description, method: true } => (StatusCode::UNAUTHORIZED, 2, description),
        OAuthError::InvalidClient { method: false, .. } => (StatusCode::UNAUTHORIZED, 2, "Authentication failed."),
        OAuthError::BadCode(_)
        | OAuthError::BadRefreshToken
        | OAuthError::RedirectMismatch
        | OAuthError::BadAccessToken(_) => BAD_GRANT,
        OAuthError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, 1, d),
        OAuthError::UnsupportedGrantType => {
            (StatusCode::BAD_REQUEST, 1, "grant_type must be authorization_code or refresh_token")
        }
    };
    HttpResponse::build(status)
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "code": code, "message": message }))
}

/// A Meta Graph API error: HTTP 400 with `{"error":{"message","type","code","error_subcode",
/// "fbtrace_id"}}`.
pub(crate) fn meta_error_body(code: u32, subcode: Option<u32>, message: &str) -> HttpResponse {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": random().chars().take(11).collect::<String>(),
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    let mut resp = HttpResponse::BadRequest();
    resp.insert_header(("Cache-Control", "no-store"));
    if code == 190 {
        resp.insert_header(("WWW-Authenticate", "OAuth \"Facebook Platform\" \"invalid_token\""));
    }
    resp.json(json!({ "error": error }))
}

/// The Meta error for an access token that does not work (code 190).
pub(crate) fn meta_token_error(problem: TokenProblem) -> HttpResponse {
    match problem {
        TokenProblem::Unknown => meta_error_body(190, None, "Invalid OAuth access token - Cannot parse access token"),
        TokenProblem::Expired => meta_error_body(190, Some(463), "Error validating access token: Session has expired."),
        TokenProblem::Revoked => meta_error_body(
            190,
            Some(458),
            "Error validating access token: The user has not authorized application mock-app.",
        ),
    }
}

/// Facebook: Meta errors (1/101 client credentials, 100 codes and parameters, 190 tokens).
fn meta_error(err: OAuthError) -> HttpResponse {
    match err {
        OAuthError::InvalidClient { description, method: true } => {
            meta_error_body(101, None, &format!("Missing client_id parameter. {description}"))
        }
        OAuthError::InvalidClient { description, method: false } if description.contains("required") => {
            meta_error_body(101, None, "Missing client_id parameter.")
        }
        OAuthError::InvalidClient { method: false, .. } => meta_error_body(1, None, "Error validating client secret."),
        OAuthError::BadCode(d) => meta_error_body(100, Some(36009), d),
        OAuthError::RedirectMismatch => meta_error_body(
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you \
             used in the OAuth dialog request",
        ),
        OAuthError::BadAccessToken(problem) => meta_token_error(problem),
        OAuthError::BadRefreshToken => meta_token_error(TokenProblem::Unknown),
        OAuthError::InvalidRequest(d) => meta_error_body(100, None, d),
        OAuthError::UnsupportedGrantType => {
            meta_error_body(100, None, "Unsupported grant_type: use fb_exchange_token or omit it for a code")
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

/// `POST /token` (Facebook: query parameters count too).
pub(crate) async fn token(mock: web::Data<MockProvider>, req: HttpRequest, form: web::Form<Params>) -> HttpResponse {
    let mut params = form.into_inner();
    if mock.config.flavor == MockFlavor::Facebook
        && let Ok(web::Query(query)) = web::Query::<Params>::from_query(req.query_string())
    {
        for (k, v) in query {
            params.entry(k).or_insert(v);
        }
    }
    if mock.config.flavor == MockFlavor::TikTok {
        params = super::tiktok::client_key_params(params);
    }
    token_request(&mock, &req, params).await
}

/// `POST /v1/oauth/token` (Notion): the same grants with a JSON body; a form body is refused.
pub(crate) async fn token_json(mock: web::Data<MockProvider>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let doc = serde_json::from_slice::<serde_json::Value>(&body).ok();
    let Some(obj) = doc.as_ref().and_then(|d| d.as_object()) else {
        return error_response(&mock, &req, OAuthError::InvalidRequest("the body must be a JSON object"));
    };
    let params: Params = obj.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect();
    token_request(&mock, &req, params).await
}

/// `GET /token` (Facebook only): the same, with query parameters.
pub(crate) async fn token_get(
    mock: web::Data<MockProvider>,
    req: HttpRequest,
    query: web::Query<Params>,
) -> HttpResponse {
    token_request(&mock, &req, query.into_inner()).await
}

/// What a `/token` request asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grant {
    Code,
    Refresh,
    /// Facebook `fb_exchange_token`; `renewal` when the presented token is not a short-lived one.
    Exchange {
        renewal: bool,
    },
    Missing,
    Unsupported,
}

async fn token_request(mock: &MockProvider, req: &HttpRequest, form: Params) -> HttpResponse {
    if let Some(resp) = reddit_requires_user_agent(mock, req) {
        return resp;
    }
    let flavor = mock.config.flavor;
    let grant = match (form.get("grant_type").map(String::as_str), flavor) {
        (Some("authorization_code"), _) => Grant::Code,
        // GitHub's and Facebook's token endpoints do not require grant_type for code exchanges.
        (None, MockFlavor::GitHub | MockFlavor::Facebook) => Grant::Code,
        (Some("refresh_token"), f) if f != MockFlavor::Facebook => Grant::Refresh,
        (Some("fb_exchange_token"), MockFlavor::Facebook) => {
            let presented = form.get("fb_exchange_token").map_or("", String::as_str);
            let short = mock.with(|s| s.access.get(presented).is_some_and(|a| a.short_lived));
            Grant::Exchange { renewal: !short }
        }
        (None, _) => Grant::Missing,
        (Some(_), _) => Grant::Unsupported,
    };
    let is_refresh = matches!(grant, Grant::Refresh | Grant::Exchange { renewal: true });
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
            let err = match grant {
                Grant::Refresh => OAuthError::BadRefreshToken,
                Grant::Exchange { .. } => OAuthError::BadAccessToken(TokenProblem::Revoked),
                _ => OAuthError::BadCode("injected failure"),
            };
            return error_response(mock, req, err);
        }
        None => {}
    }
    if let Err(err) = authenticate(mock, req, &form) {
        return error_response(mock, req, err);
    }
    if is_refresh && delay > Duration::ZERO {
        tokio::time::sleep(delay).await;
    }
    let outcome = match grant {
        Grant::Code => code_grant(mock, &form),
        Grant::Refresh => refresh_grant(mock, &form),
        Grant::Exchange { renewal } => exchange_grant(mock, &form, renewal),
        Grant::Missing => Err(OAuthError::InvalidRequest("grant_type is required")),
        Grant::Unsupported => Err(OAuthError::UnsupportedGrantType),
    };
    match outcome {
        Ok(issued) => success(&mock.config, req, issued),
        Err(err) => error_response(mock, req, err),
    }
}

/// What a successful grant hands out.
struct Issued {
    /// The grant type that was answered (Pinterest echoes it as `response_type`).
    grant_type: &'static str,
    login: String,
    access: String,
    /// The access token's lifetime (`None`: no `expires_in`).
    access_ttl: Option<Duration>,
    /// Only when the response carries one (new, rotated, or LinkedIn's unchanged one).
    refresh: Option<String>,
    /// What is left of the refresh token's life, when it has an expiry.
    refresh_ttl: Option<Duration>,
    scopes: Vec<String>,
}

/// Token prefixes per flavor (access, refresh), shaped like the real ones.
fn prefixes(flavor: MockFlavor) -> (&'static str, &'static str) {
    match flavor {
        MockFlavor::Standard => ("mat_", "mrt_"),
        MockFlavor::GitHub => ("gho_", "ghr_"),
        MockFlavor::LinkedIn => ("AQV", "AQX"),
        MockFlavor::Reddit => ("eyJ", "rrt-"),
        MockFlavor::Pinterest => ("pina_", "pinr_"),
        MockFlavor::Facebook => ("EAA", "EAR"),
        MockFlavor::Google => ("ya29.", "1//0"),
        MockFlavor::Discord => ("dca_", "dcr_"),
        MockFlavor::Spotify => ("BQ", "AQ"),
        MockFlavor::Twitch => ("tca", "tcr"),
        MockFlavor::Microsoft => ("EwB", "M.C5"),
        MockFlavor::Dropbox => ("sl.", "drt-"),
        MockFlavor::Notion => ("ntn_", "nrt_"),
        MockFlavor::Zoom => ("eyJzv", "eyJzr"),
        MockFlavor::Instagram | MockFlavor::Threads => super::meta_login::prefixes(flavor),
        MockFlavor::TikTok => super::tiktok::PREFIXES,
        MockFlavor::Slack => ("xoxp-", "xoxe-1-"),
    }
}

/// The fixed lifetime of a new refresh token in this flavor (`None`: no expiry enforced).
fn refresh_lifetime(flavor: MockFlavor) -> Option<Duration> {
    match flavor {
        MockFlavor::LinkedIn => Some(Duration::from_secs(LINKEDIN_REFRESH_TTL_SECS)),
        MockFlavor::Pinterest => Some(Duration::from_secs(PINTEREST_REFRESH_TTL_SECS)),
        MockFlavor::Spotify => Some(Duration::from_secs(SPOTIFY_REFRESH_TTL_SECS)),
        MockFlavor::TikTok => Some(super::tiktok::REFRESH_TTL),
        _ => None,
    }
}

/// What [`mint`] issues tokens for.
struct Mint<'a> {
    login: &'a str,
    scopes: &'a [String],
    grant: u64,
    grant_type: &'static str,
    /// A refresh token that stays (refresh without rotation).
    linked_refresh: Option<&'a str>,
    /// Whether a new refresh token may be issued.
    offline: bool,
    /// Lifetime of the access token.
    access_ttl: Option<Duration>,
    /// A Facebook short-lived token.
    short_lived: bool,
}

/// Stores a new access token for a grant, and a new refresh token when the flavor and the
/// configuration issue one (a `linked_refresh` stays instead and now goes with the new access
/// token).
fn mint(s: &mut MockState, cfg: &MockProviderConfig, m: Mint<'_>) -> Issued {
    let (ap, rp) = prefixes(cfg.flavor);
    s.prune();
    let access = format!("{ap}{}", random());
    s.access.insert(
        access.clone(),
        AccessToken {
            login: m.login.to_owned(),
            expires: m.access_ttl.map(|t| Instant::now() + t),
            live: true,
            grant: m.grant,
            short_lived: m.short_lived,
            scopes: m.scopes.to_vec(),
        },
    );
    let now = Instant::now();
    let (refresh, refresh_ttl) = match m.linked_refresh {
        Some(r) => match s.refresh.get_mut(r) {
            Some(token) => {
                token.access = access.clone();
                // LinkedIn answers the unchanged refresh token with what is left of its life.
                if cfg.flavor == MockFlavor::LinkedIn {
                    (Some(r.to_owned()), token.expires.map(|e| e.saturating_duration_since(now)))
                } else {
                    (None, None)
                }
            }
            None => (None, None),
        },
        None if cfg.issue_refresh_tokens && m.offline && cfg.flavor != MockFlavor::Facebook => {
            let r = format!("{rp}{}", random());
            s.issued_refresh.push(r.clone());
            let lifetime = refresh_lifetime(cfg.flavor);
            s.refresh.insert(
                r.clone(),
                RefreshToken {
                    client_id: cfg.client_id.clone(),
                    login: m.login.to_owned(),
                    scopes: m.scopes.to_vec(),
                    live: true,
                    access: access.clone(),
                    grant: m.grant,
                    expires: lifetime.map(|l| now + l),
                },
            );
            (Some(r), lifetime)
        }
        None => (None, None),
    };
    Issued {
        grant_type: m.grant_type,
        login: m.login.to_owned(),
        access,
        access_ttl: m.access_ttl,
        refresh,
        refresh_ttl,
        scopes: m.scopes.to_vec(),
    }
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
            (Some(challenge), Some(v)) if super::tiktok::challenge(cfg.flavor, v) != *challenge => {
                return Err(OAuthError::BadCode("code_verifier does not match the code_challenge"));
            }
            (None, Some(_)) if cfg.pkce == MockPkce::Required => {
                return Err(OAuthError::InvalidRequest(
                    "code_verifier sent, but the authorization had no code_challenge",
                ));
            }
            _ => {}
        }
        let (login, scopes, offline) = (c.login.clone(), c.scopes.clone(), c.offline);
        let grant = s.new_grant();
        if let Some(c) = s.codes.get_mut(code) {
            c.grant = Some(grant);
        }
        s.code_exchanges += 1;
        // Meta logins give a short-lived token for a code.
        let facebook = matches!(cfg.flavor, MockFlavor::Facebook | MockFlavor::Instagram | MockFlavor::Threads);
        let access_ttl = match (facebook, cfg.access_token_ttl) {
            // Facebook: a short-lived token, at most an hour.
            (true, ttl) => Some(ttl.map_or(FACEBOOK_SHORT_TTL, |t| t.min(FACEBOOK_SHORT_TTL))),
            (false, ttl) => ttl,
        };
        let m = Mint {
            login: &login,
            scopes: &scopes,
            grant,
            grant_type: "authorization_code",
            linked_refresh: None,
            offline,
            access_ttl,
            short_lived: facebook,
        };
        Ok(mint(s, cfg, m))
    })
}

/// `grant_type=refresh_token`.
fn refresh_grant(mock: &MockProvider, form: &Params) -> Result<Issued, OAuthError> {
    let cfg = &mock.config;
    let Some(presented) = form.get("refresh_token").filter(|r| !r.is_empty()) else {
        return Err(OAuthError::InvalidRequest("refresh_token is required"));
    };
    mock.with(|s| {
        let r = s.refresh.get_mut(presented).filter(|r| r.usable() && r.client_id == cfg.client_id);
        let Some(r) = r else { return Err(OAuthError::BadRefreshToken) };
        if cfg.rotate_refresh_tokens {
            r.live = false;
        }
        let (old_access, login, scopes, grant) = (r.access.clone(), r.login.clone(), r.scopes.clone(), r.grant);
        let old_expiry = r.expires;
        // The new access token replaces the old one (as GitHub and X do).
        if let Some(a) = s.access.get_mut(&old_access) {
            a.live = false;
        }
        s.refresh_count += 1;
        let linked = (!cfg.rotate_refresh_tokens).then_some(presented.as_str());
        let m = Mint {
            login: &login,
            scopes: &scopes,
            grant,
            grant_type: "refresh_token",
            linked_refresh: linked,
            offline: true,
            access_ttl: cfg.access_token_ttl,
            short_lived: false,
        };
        let mut issued = mint(s, cfg, m);
        // Spotify: a rotated refresh token keeps the original authorization's six months.
        if cfg.flavor == MockFlavor::Spotify
            && let Some(new) = issued.refresh.as_deref().and_then(|r| s.refresh.get_mut(r))
        {
            new.expires = old_expiry;
            issued.refresh_ttl = old_expiry.map(|e| e.saturating_duration_since(Instant::now()));
        }
        Ok(issued)
    })
}

/// Facebook `grant_type=fb_exchange_token`: a valid token (short- or long-lived) of this client's
/// user for a new long-lived one. The presented token keeps working until it expires.
fn exchange_grant(mock: &MockProvider, form: &Params, renewal: bool) -> Result<Issued, OAuthError> {
    let cfg = &mock.config;
    let Some(presented) = form.get("fb_exchange_token").filter(|t| !t.is_empty()) else {
        return Err(OAuthError::InvalidRequest("The parameter fb_exchange_token is required"));
    };
    mock.with(|s| {
        let (login, grant) = match s.access.get(presented) {
            None => return Err(OAuthError::BadAccessToken(TokenProblem::Unknown)),
            Some(a) if !a.live => return Err(OAuthError::BadAccessToken(TokenProblem::Revoked)),
            Some(a) if a.expires.is_some_and(|e| e <= Instant::now()) => {
                return Err(OAuthError::BadAccessToken(TokenProblem::Expired));
            }
            Some(a) => (a.login.clone(), a.grant),
        };
        s.token_exchanges += 1;
        if renewal {
            s.refresh_count += 1;
        }
        let m = Mint {
            login: &login,
            scopes: &[],
            grant,
            grant_type: "fb_exchange_token",
            linked_refresh: None,
            offline: false,
            access_ttl: cfg.access_token_ttl,
            short_lived: false,
        };
        Ok(mint(s, cfg, m))
    })
}

/// A JWT-shaped OpenID Connect ID token (LinkedIn sends one when `openid` was granted). Its
/// signature is random: it is for clients that must not rely on it, not to be verified.
fn fake_id_token(cfg: &MockProviderConfig, login: &str) -> String {
    let part = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.{}",
        part(json!({ "alg": "RS256", "kid": "mock", "typ": "JWT" })),
        part(json!({ "iss": "https://www.linkedin.com/oauth", "aud": cfg.client_id, "sub": account_member_id(login) })),
        random()
    )
}

/// A Notion person user object.
pub(crate) fn notion_user(login: &str) -> serde_json::Value {
    json!({
        "object": "user",
        "id": account_uuid(login, "user"),
        "name": login,
        "avatar_url": null,
        "type": "person",
        "person": { "email": format!("{login}@example.test") },
    })
}

/// The 200 answer, shaped for the flavor (GitHub form-encodes it unless JSON was asked for).
fn success(cfg: &MockProviderConfig, req: &HttpRequest, issued: Issued) -> HttpResponse {
    let github = cfg.flavor == MockFlavor::GitHub;
    let comma = matches!(cfg.flavor, MockFlavor::GitHub | MockFlavor::LinkedIn | MockFlavor::Pinterest);
    let scope = issued.scopes.join(if comma { "," } else { " " });
    let expires_in = issued.access_ttl.map(|t| t.as_secs().to_string());
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
    let mut body = match cfg.flavor {
        MockFlavor::Instagram | MockFlavor::Threads => {
            return super::meta_login::code_answer(cfg.flavor, &issued.access, &issued.login, &issued.scopes);
        }
        MockFlavor::TikTok => {
            let i = &issued;
            return super::tiktok::token_answer(
                &i.login,
                &i.access,
                i.access_ttl,
                i.refresh.as_deref(),
                i.refresh_ttl,
                &i.scopes,
            );
        }
        // Graph API: no scope (granted permissions are at /me/permissions).
        MockFlavor::Facebook => json!({ "access_token": issued.access, "token_type": "bearer" }),
        MockFlavor::LinkedIn => json!({ "access_token": issued.access, "token_type": "Bearer", "scope": scope }),
        MockFlavor::Pinterest => json!({
            "access_token": issued.access,
            "token_type": "bearer",
            "scope": scope,
            "response_type": issued.grant_type,
        }),
        // Twitch: `scope` is a JSON array.
        MockFlavor::Twitch => json!({ "access_token": issued.access, "token_type": "bearer", "scope": issued.scopes }),
        MockFlavor::Spotify | MockFlavor::Microsoft | MockFlavor::Discord => {
            json!({ "access_token": issued.access, "token_type": "Bearer", "scope": scope })
        }
        // Zoom names the API host of the user's data center.
        MockFlavor::Zoom => {
            json!({ "access_token": issued.access, "token_type": "bearer", "scope": scope, "api_url": "https://api.zoom.us" })
        }
        MockFlavor::Dropbox => json!({
            "access_token": issued.access,
            "token_type": "bearer",
            "scope": scope,
            "account_id": format!("dbid:AA{}", account_member_id(&issued.login)),
            "uid": account_digits(&issued.login)[..9].to_owned(),
        }),
        // Notion: no scopes; the installation (bot, workspace, owner) instead.
        MockFlavor::Notion => json!({
            "access_token": issued.access,
            "token_type": "bearer",
            "bot_id": account_uuid(&issued.login, "bot"),
            "workspace_id": account_uuid(&issued.login, "workspace"),
            "workspace_name": format!("{}'s Workspace", issued.login),
            "workspace_icon": null,
            "owner": { "type": "user", "user": notion_user(&issued.login) },
            "duplicated_template_id": null,
            "request_id": account_uuid(&random(), "request"),
        }),
        _ => json!({ "access_token": issued.access, "token_type": "bearer", "scope": scope }),
    };
    if let Some(ttl) = issued.access_ttl {
        body["expires_in"] = json!(ttl.as_secs());
    }
    if let Some(r) = issued.refresh {
        body["refresh_token"] = json!(r);
        if github {
            body["refresh_token_expires_in"] = json!(GITHUB_REFRESH_TTL_SECS);
        } else if let Some(ttl) = issued.refresh_ttl.filter(|_| cfg.flavor != MockFlavor::Spotify) {
            // Spotify does not tell the refresh token's expiry.
            body["refresh_token_expires_in"] = json!(ttl.as_secs());
            if cfg.flavor == MockFlavor::Pinterest {
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                body["refresh_token_expires_at"] = json!((now + ttl).as_secs());
            }
        }
    }
    if cfg.flavor == MockFlavor::LinkedIn && issued.scopes.iter().any(|s| s == "openid") {
        body["id_token"] = json!(fake_id_token(cfg, &issued.login));
    }
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache")).json(body)
}
