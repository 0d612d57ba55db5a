//! [`MastodonMock`]: a loopback server that behaves like one Mastodon instance where it matters
//! to an OAuth client: dynamic app registration, the authorization-code flow with optional
//! PKCE, non-expiring tokens, revocation and the account of a token.
//!
//! | Route | What |
//! |---|---|
//! | `POST /api/v1/apps` | registers an app (form or JSON: `client_name`, `redirect_uris`, `scopes`, `website`); 422 when `client_name` is missing or a redirect URI is not absolute |
//! | `GET /oauth/authorize` | checks the app, the registered redirect URI, scopes (a subset of the app's), PKCE `S256` when a challenge is sent; then straight back with a code for the configured user |
//! | `POST /oauth/token` | `authorization_code` grant: client credentials in the body or Basic, single-use code, same redirect URI, PKCE verifier; answers `{access_token, token_type: "Bearer", scope, created_at}` (no `expires_in`, no refresh token) |
//! | `GET /api/v1/accounts/verify_credentials` | the token's account (`id`, `username`, `acct`, `display_name`, `url`); 401 `{"error":"The access token is invalid"}` |
//! | `GET /api/v1/timelines/home` | a one-status timeline naming this instance (for proxy tests); 401 like above |
//! | `POST /oauth/revoke` | `client_id`, `client_secret`, `token`: 200 `{}` (also for unknown tokens), 403 `unauthorized_client` when the token belongs to another app, 401 `invalid_client` |
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let instance = tether_testkit::mastodon::MastodonMock::start("alice", "109000000000000001").await?;
//! assert_eq!(instance.registration_count(), 0);
//! instance.stop().await;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use sha2::{Digest, Sha256};

/// One registered app.
#[derive(Clone)]
struct MastoApp {
    client_secret: String,
    redirect_uris: Vec<String>,
    scopes: Vec<String>,
}

/// An authorization code waiting to be exchanged.
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    scopes: Vec<String>,
    challenge: Option<String>,
}

/// An access token.
struct IssuedToken {
    client_id: String,
    active: bool,
}

#[derive(Default)]
struct MastoState {
    apps: HashMap<String, MastoApp>,
    codes: HashMap<String, PendingCode>,
    tokens: HashMap<String, IssuedToken>,
    registrations: usize,
    revocations: usize,
    api_calls: usize,
    pkce_seen: usize,
}

struct Shared {
    username: String,
    account_id: String,
    state: Mutex<MastoState>,
    host: Mutex<String>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, MastoState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn host(&self) -> String {
        self.host.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A running mock Mastodon instance on `127.0.0.1` with a random port.
pub struct MastodonMock {
    /// `http://127.0.0.1:PORT` (no trailing slash): the instance origin.
    pub origin: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl MastodonMock {
    /// Starts an instance whose only user is `username` with the instance-local id
    /// `account_id`; every authorization is approved for that user.
    pub async fn start(username: &str, account_id: &str) -> std::io::Result<MastodonMock> {
        let shared = Arc::new(Shared {
            username: username.to_owned(),
            account_id: account_id.to_owned(),
            state: Mutex::new(MastoState::default()),
            host: Mutex::new(String::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        *shared.host.lock().unwrap_or_else(|p| p.into_inner()) = addr.to_string();
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/api/v1/apps", web::post().to(register_app))
                .route("/oauth/authorize", web::get().to(authorize))
                .route("/oauth/token", web::post().to(token))
                .route("/oauth/revoke", web::post().to(revoke))
                .route("/api/v1/accounts/verify_credentials", web::get().to(verify_credentials))
                .route("/api/v1/timelines/home", web::get().to(home_timeline))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(MastodonMock { origin: format!("http://{addr}"), shared, handle, task: Some(task) })
    }

    /// `host:port`, as it appears in account ids and handles.
    pub fn host(&self) -> String {
        self.shared.host()
    }

    /// Apps registered through `POST /api/v1/apps`.
    pub fn registration_count(&self) -> usize {
        self.shared.lock().registrations
    }

    /// Successful `POST /oauth/revoke` calls that revoked an active token.
    pub fn revocation_count(&self) -> usize {
        self.shared.lock().revocations
    }

    /// Authorized calls to `/api/v1/*` read endpoints (verify_credentials, timelines).
    pub fn api_call_count(&self) -> usize {
        self.shared.lock().api_calls
    }

    /// Authorizations that carried a PKCE challenge.
    pub fn pkce_count(&self) -> usize {
        self.shared.lock().pkce_seen
    }

    /// The client secrets issued to registered apps (to check they are not stored in plaintext).
    pub fn client_secrets(&self) -> Vec<String> {
        self.shared.lock().apps.values().map(|a| a.client_secret.clone()).collect()
    }

    /// Whether `token` was issued here and is still active.
    pub fn token_is_active(&self, token: &str) -> bool {
        self.shared.lock().tokens.get(token).is_some_and(|t| t.active)
    }

    /// Revokes every token, as when the user revokes the app in their settings.
    pub fn revoke_all(&self) {
        for t in self.shared.lock().tokens.values_mut() {
            t.active = false;
        }
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        b.iter_mut().enumerate().for_each(|(i, x)| *x = i as u8);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Form or JSON body parameters (Mastodon accepts both).
fn params(req: &HttpRequest, body: &[u8]) -> HashMap<String, String> {
    let is_json =
        req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("json"));
    if is_json {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(body) else {
            return HashMap::new();
        };
        return map
            .into_iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Array(items) => {
                        items.iter().filter_map(|i| i.as_str()).collect::<Vec<_>>().join("\n")
                    }
                    other => other.to_string(),
                };
                (k, text)
            })
            .collect();
    }
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
    HttpResponse::build(status).json(json!({ "error": error, "error_description": description }))
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

async fn register_app(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = params(&req, &body);
    let name = p.get("client_name").map(|s| s.trim()).unwrap_or_default();
    if name.is_empty() {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"error": "Validation failed: Application name can't be blank"}));
    }
    let redirect_uris: Vec<String> =
        p.get("redirect_uris").map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
    let valid = |u: &String| u == "urn:ietf:wg:oauth:2.0:oob" || url::Url::parse(u).is_ok_and(|u| u.has_host());
    if redirect_uris.is_empty() || !redirect_uris.iter().all(valid) {
        return HttpResponse::UnprocessableEntity()
            .json(json!({"error": "Validation failed: Redirect URI must be an absolute URI."}));
    }
    let scopes = split_scopes(p.get("scopes").map(String::as_str).unwrap_or("read"));
    let (client_id, client_secret) = (random_hex(16), random_hex(24));
    let mut st = shared.lock();
    st.registrations += 1;
    let id = st.registrations.to_string();
    st.apps.insert(
        client_id.clone(),
        MastoApp { client_secret: client_secret.clone(), redirect_uris: redirect_uris.clone(), scopes: scopes.clone() },
    );
    HttpResponse::Ok().json(json!({
        "id": id,
        "name": name,
        "website": p.get("website"),
        "scopes": scopes,
        "redirect_uri": redirect_uris.join("\n"),
        "redirect_uris": redirect_uris,
        "client_id": client_id,
        "client_secret": client_secret,
        "client_secret_expires_at": 0,
    }))
}

async fn authorize(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let q: HashMap<String, String> = url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let page = |msg: &str| HttpResponse::BadRequest().content_type("text/plain; charset=utf-8").body(msg.to_owned());
    let mut st = shared.lock();
    let Some(app) = st.apps.get(&get("client_id")).cloned() else {
        return page("Client authentication failed due to unknown client");
    };
    let redirect_uri = get("redirect_uri");
    if !app.redirect_uris.contains(&redirect_uri) {
        return page("The redirect uri included is not valid.");
    }
    let back = |params: &[(&str, &str)]| {
        let mut url = match url::Url::parse(&redirect_uri) {
            Ok(u) => u,
            Err(_) => return page("The redirect uri included is not valid."),
        };
        url.query_pairs_mut().extend_pairs(params);
        HttpResponse::Found().insert_header((header::LOCATION, url.as_str())).finish()
    };
    let state = get("state");
    if get("response_type") != "code" {
        return back(&[("error", "unsupported_response_type"), ("state", &state)]);
    }
    let scopes = split_scopes(&q.get("scope").cloned().unwrap_or_else(|| "read".into()));
    if scopes.iter().any(|s| !app.scopes.contains(s)) {
        return back(&[("error", "invalid_scope"), ("state", &state)]);
    }
    let challenge = q.get("code_challenge").cloned().filter(|c| !c.is_empty());
    if challenge.is_some() {
        if get("code_challenge_method") != "S256" {
            return back(&[("error", "invalid_request"), ("state", &state)]);
        }
        st.pkce_seen += 1;
    }
    let code = random_hex(20);
    st.codes.insert(
        code.clone(),
        PendingCode { client_id: get("client_id"), redirect_uri: redirect_uri.clone(), scopes, challenge },
    );
    drop(st);
    back(&[("code", &code), ("state", &state)])
}

/// Client credentials from the body (`client_secret_post`) or HTTP Basic.
fn client_credentials(req: &HttpRequest, p: &HashMap<String, String>) -> Option<(String, String)> {
    if let (Some(id), Some(secret)) = (p.get("client_id"), p.get("client_secret")) {
        return Some((id.clone(), secret.clone()));
    }
    let basic = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Basic ")?;
    let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let dec = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((dec(id)?, dec(secret)?))
}

fn authenticated_client(st: &MastoState, req: &HttpRequest, p: &HashMap<String, String>) -> Option<String> {
    let (id, secret) = client_credentials(req, p)?;
    let app = st.apps.get(&id)?;
    let ok: bool = subtle::ConstantTimeEq::ct_eq(app.client_secret.as_bytes(), secret.as_bytes()).into();
    ok.then_some(id)
}

async fn token(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = params(&req, &body);
    let mut st = shared.lock();
    let Some(client_id) = authenticated_client(&st, &req, &p) else {
        return oauth_error(
            401,
            "invalid_client",
            "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method.",
        );
    };
    if p.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            400,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    let invalid_grant = || {
        oauth_error(
            400,
            "invalid_grant",
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
        )
    };
    // Single use: the code is gone whatever happens next.
    let Some(code) = p.get("code").and_then(|c| st.codes.remove(c)) else { return invalid_grant() };
    if code.client_id != client_id || p.get("redirect_uri") != Some(&code.redirect_uri) {
        return invalid_grant();
    }
    if let Some(challenge) = &code.challenge {
        let verifier = p.get("code_verifier").cloned().unwrap_or_default();
        if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != *challenge {
            return invalid_grant();
        }
    }
    let access = random_hex(22);
    st.tokens.insert(access.clone(), IssuedToken { client_id, active: true });
    HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "scope": code.scopes.join(" "),
        "created_at": 1_764_200_000,
    }))
}

async fn revoke(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let p = params(&req, &body);
    let mut st = shared.lock();
    let Some(client_id) = authenticated_client(&st, &req, &p) else {
        return oauth_error(401, "invalid_client", "Client authentication failed.");
    };
    let token = p.get("token").cloned().unwrap_or_default();
    let mut revoked = false;
    match st.tokens.get_mut(&token) {
        Some(t) if t.client_id != client_id => {
            return oauth_error(403, "unauthorized_client", "You are not authorized to revoke this token");
        }
        Some(t) => {
            revoked = t.active;
            t.active = false;
        }
        None => {}
    }
    if revoked {
        st.revocations += 1;
    }
    HttpResponse::Ok().json(json!({}))
}

/// The bearer token of an API request, if it is active here.
fn authorized(st: &mut MastoState, req: &HttpRequest) -> bool {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let ok = st.tokens.get(token).is_some_and(|t| t.active);
    if ok {
        st.api_calls += 1;
    }
    ok
}

fn invalid_token() -> HttpResponse {
    HttpResponse::Unauthorized().json(json!({"error": "The access token is invalid"}))
}

async fn verify_credentials(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if !authorized(&mut shared.lock(), &req) {
        return invalid_token();
    }
    let host = shared.host();
    HttpResponse::Ok().json(json!({
        "id": shared.account_id,
        "username": shared.username,
        "acct": shared.username,
        "display_name": format!("{} on {host}", shared.username),
        "locked": false,
        "bot": false,
        "url": format!("http://{host}/@{}", shared.username),
        "followers_count": 3,
    }))
}

async fn home_timeline(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if !authorized(&mut shared.lock(), &req) {
        return invalid_token();
    }
    HttpResponse::Ok().json(json!([{ "id": "1", "content": format!("<p>hello from {}</p>", shared.host()) }]))
}
