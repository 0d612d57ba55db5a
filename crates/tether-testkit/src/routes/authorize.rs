//! `GET /authorize` (consent page or auto-approval) and `POST /authorize` (the user's decision).

use std::time::Instant;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use super::{Params, Reject, error_page, page};
use crate::state::{IssuedCode, pkce_shaped, random};
use crate::{MockFlavor, MockPkce, MockProvider};

/// The login the consent page suggests.
const DEFAULT_LOGIN: &str = "demo-user";

/// What a Zoom-flavored mock grants when the request names no scope: the scope a Zoom app
/// reading its user's profile is configured with.
const ZOOM_APP_SCOPE: &str = "user:read:user";

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    /// Where the form posts: this endpoint again, relative to the page.
    action: &'a str,
    client_id: &'a str,
    scopes: Vec<&'a str>,
    return_to: String,
    hidden: Vec<(&'a str, &'a str)>,
    login: &'a str,
    error: Option<&'a str>,
}

/// A validated authorization request.
struct AuthRequest<'a> {
    redirect_uri: url::Url,
    state: Option<&'a str>,
    /// The S256 challenge to bind to the code (`None` when PKCE is unused or ignored).
    challenge: Option<&'a str>,
    /// Whether the code may yield a refresh token (Reddit: `duration=permanent`).
    offline: bool,
}

/// `Location: redirect_uri` plus these query parameters (appended to any query it already has).
fn redirect_with(redirect_uri: &url::Url, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut url = redirect_uri.clone();
    if !pairs.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
    }
    HttpResponse::Found()
        .insert_header(("Location", url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Referrer-Policy", "no-referrer"))
        .finish()
}

/// An error sent back to the client's redirect URI (RFC 6749 §4.1.2.1).
fn redirect_error(req: &AuthRequest<'_>, code: &str, description: &str) -> HttpResponse {
    let mut pairs = vec![("error", code), ("error_description", description)];
    if let Some(state) = req.state {
        pairs.push(("state", state));
    }
    redirect_with(&req.redirect_uri, &pairs)
}

/// Validates an authorization request. `Err` is the response to send: a 400 page when the
/// client or redirect URI cannot be trusted, otherwise an error redirect.
fn check<'a>(mock: &MockProvider, p: &'a Params) -> Result<AuthRequest<'a>, Reject> {
    let cfg = &mock.config;
    // TikTok names the client `client_key`.
    let client_param = if cfg.flavor == MockFlavor::TikTok { "client_key" } else { "client_id" };
    match p.get(client_param) {
        None => return Err(error_page(&format!("The request has no {client_param}.")).into()),
        Some(id) if *id != cfg.client_id => {
            return Err(error_page(&format!("The application \"{id}\" is not registered with this provider.")).into());
        }
        Some(_) => {}
    }
    let Some(raw) = p.get("redirect_uri").filter(|r| !r.is_empty()) else {
        return Err(error_page("The request has no redirect_uri.").into());
    };
    let redirect_uri = match url::Url::parse(raw) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => {
            return Err(error_page("The redirect_uri must be an http or https URL.").into());
        }
        Ok(u) if u.fragment().is_some() => {
            return Err(error_page("The redirect_uri must not contain a fragment.").into());
        }
        Ok(u) => u,
        Err(_) => return Err(error_page("The redirect_uri is not an absolute URL.").into()),
    };
    let mut req =
        AuthRequest { redirect_uri, state: p.get("state").map(String::as_str), challenge: None, offline: true };
    match (p.get("response_type").map(String::as_str), cfg.flavor) {
        // GitHub and Facebook default to `code`.
        (Some("code"), _) | (None, MockFlavor::GitHub | MockFlavor::Facebook | MockFlavor::Slack) => {}
        (None, _) => {
            return Err(redirect_error(&req, "invalid_request", "response_type is required").into());
        }
        (Some(_), _) => {
            return Err(
                redirect_error(&req, "unsupported_response_type", "only response_type=code is supported").into()
            );
        }
    }
    if cfg.flavor == MockFlavor::Reddit {
        // Reddit issues a refresh token only for `duration=permanent`.
        req.offline = match p.get("duration").map(String::as_str) {
            Some("permanent") => true,
            None | Some("temporary") => false,
            Some(_) => {
                return Err(redirect_error(&req, "invalid_request", "duration must be temporary or permanent").into());
            }
        };
    }
    match cfg.flavor {
        // Google: a refresh token only for `access_type=offline` (see `issue_code` for `prompt`).
        MockFlavor::Google => req.offline = p.get("access_type").is_some_and(|v| v == "offline"),
        // Dropbox: a refresh token only for `token_access_type=offline`.
        MockFlavor::Dropbox => req.offline = p.get("token_access_type").is_some_and(|v| v == "offline"),
        // Entra ID: a refresh token only with the `offline_access` scope.
        MockFlavor::Microsoft => {
            req.offline = p.get("scope").is_some_and(|s| split_scopes(s).any(|x| x == "offline_access"));
        }
        // Notion: public integrations are installed by a user.
        MockFlavor::Notion if p.get("owner").map(String::as_str) != Some("user") => {
            return Err(redirect_error(&req, "invalid_request", "owner must be user").into());
        }
        _ => {}
    }
    if cfg.pkce == MockPkce::Unsupported {
        return Ok(req);
    }
    match p.get("code_challenge").filter(|c| !c.is_empty()) {
        None if cfg.pkce == MockPkce::Required => {
            Err(redirect_error(&req, "invalid_request", "code_challenge is required (PKCE with S256)").into())
        }
        None => Ok(req),
        Some(challenge) => {
            // RFC 7636 §4.3: an absent method means `plain`, which this provider refuses.
            if p.get("code_challenge_method").map(String::as_str) != Some("S256") {
                return Err(redirect_error(&req, "invalid_request", "code_challenge_method must be S256").into());
            }
            if !pkce_shaped(challenge) {
                return Err(redirect_error(&req, "invalid_request", "code_challenge is malformed").into());
            }
            req.challenge = Some(challenge);
            Ok(req)
        }
    }
}

/// Issues a single-use code for `login` and redirects back with it.
fn issue_code(mock: &MockProvider, p: &Params, req: &AuthRequest<'_>, login: &str) -> HttpResponse {
    let code = random();
    // Google issues a refresh token at the first consent only, unless `prompt=consent` asks
    // for consent (and a new refresh token) again.
    let mut offline = req.offline;
    if mock.config.flavor == MockFlavor::Google {
        let again = p.get("prompt").is_some_and(|v| v.split(' ').any(|x| x == "consent"));
        let first = mock.with(|s| s.consented.insert(login.to_owned()));
        offline = offline && (first || again);
    }
    let mut scopes: Vec<String> =
        p.get("scope").map(|s| split_scopes(s).map(str::to_owned).collect()).unwrap_or_default();
    // Zoom: an app's scopes are chosen on its Marketplace page, not in the request.
    if mock.config.flavor == MockFlavor::Zoom && scopes.is_empty() {
        scopes = vec![ZOOM_APP_SCOPE.to_owned()];
    }
    let issued = IssuedCode {
        client_id: mock.config.client_id.clone(),
        redirect_uri: p.get("redirect_uri").cloned().unwrap_or_default(),
        challenge: req.challenge.map(str::to_owned),
        login: login.to_owned(),
        scopes,
        expires: Instant::now() + mock.config.code_ttl,
        used: false,
        grant: None,
        offline,
    };
    mock.with(|s| {
        s.prune();
        s.codes.insert(code.clone(), issued);
    });
    if mock.config.flavor == MockFlavor::Slack {
        super::slack::remember_user_scopes(mock, &code, p);
    }
    let mut pairs = vec![("code", code.as_str())];
    if let Some(state) = req.state {
        pairs.push(("state", state));
    }
    let mut redirect_uri = req.redirect_uri.clone();
    if mock.config.flavor == MockFlavor::Facebook {
        // Facebook appends this fragment to the redirect after a successful login.
        redirect_uri.set_fragment(Some("_=_"));
    }
    if matches!(mock.config.flavor, MockFlavor::Instagram | MockFlavor::Threads) {
        // Instagram and Threads append `#_`.
        redirect_uri.set_fragment(Some("_"));
    }
    redirect_with(&redirect_uri, &pairs)
}

/// Requested scopes: space-delimited per RFC 6749 (commas tolerated, as some providers do).
fn split_scopes(s: &str) -> impl Iterator<Item = &str> {
    s.split([' ', ',']).filter(|x| !x.is_empty())
}

/// The consent page; every original parameter travels back as a hidden field.
/// The form action that posts back to the endpoint at `path` (`/demo/authorize` → `authorize`,
/// `/oauth/` → `./`), relative so it works wherever the mock is mounted.
fn form_action(path: &str) -> &str {
    match path.rsplit('/').next() {
        Some("") | None => "./",
        Some(last) => last,
    }
}

fn consent(
    mock: &MockProvider,
    http: &HttpRequest,
    p: &Params,
    req: &AuthRequest<'_>,
    login: &str,
    error: Option<&str>,
) -> HttpResponse {
    let mut hidden: Vec<(&str, &str)> = p
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "decision" | "login"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    hidden.sort_unstable();
    let page_data = ConsentPage {
        action: form_action(http.path()),
        client_id: &mock.config.client_id,
        scopes: p.get("scope").map(|s| split_scopes(s).collect()).unwrap_or_default(),
        return_to: req.redirect_uri.origin().ascii_serialization(),
        hidden,
        login,
        error,
    };
    match page_data.render() {
        Ok(body) => page(if error.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::OK }, body),
        Err(_) => error_page("The consent page could not be rendered."),
    }
}

/// `GET /authorize`.
pub(crate) async fn authorize_get(
    mock: web::Data<MockProvider>,
    http: HttpRequest,
    q: web::Query<Params>,
) -> HttpResponse {
    let p = q.into_inner();
    let req = match check(&mock, &p) {
        Ok(req) => req,
        Err(resp) => return *resp,
    };
    match &mock.config.auto_approve {
        Some(login) => issue_code(&mock, &p, &req, login),
        None => consent(&mock, &http, &p, &req, DEFAULT_LOGIN, None),
    }
}

/// A demo login: 1 to 64 characters of `[A-Za-z0-9_.-]`.
fn valid_login(login: &str) -> bool {
    (1..=64).contains(&login.len())
        && login.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// `POST /authorize`: the consent form (original parameters, `decision`, `login`).
pub(crate) async fn authorize_post(
    mock: web::Data<MockProvider>,
    http: HttpRequest,
    form: web::Form<Params>,
) -> HttpResponse {
    let p = form.into_inner();
    let req = match check(&mock, &p) {
        Ok(req) => req,
        Err(resp) => return *resp,
    };
    let login = p.get("login").map(|l| l.trim()).unwrap_or("");
    match p.get("decision").map(String::as_str) {
        Some("allow") if valid_login(login) => issue_code(&mock, &p, &req, login),
        Some("allow") => {
            let shown = if login.len() > 64 { DEFAULT_LOGIN } else { login };
            consent(&mock, &http, &p, &req, shown, Some("Use 1 to 64 letters, digits, '.', '_' or '-' for the name."))
        }
        Some("deny") => redirect_error(&req, "access_denied", "The user denied access"),
        _ => {
            let shown = if valid_login(login) { login } else { DEFAULT_LOGIN };
            consent(&mock, &http, &p, &req, shown, Some("Choose Allow or Deny."))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::form_action;

    #[test]
    fn the_consent_form_posts_back_to_the_same_endpoint() {
        assert_eq!(form_action("/authorize"), "authorize");
        assert_eq!(form_action("/demo/authorize"), "authorize");
        assert_eq!(form_action("/oauth/v2/authorization"), "authorization");
        assert_eq!(form_action("/oauth/"), "./");
        assert_eq!(form_action("/dialog/oauth"), "oauth");
    }
}
