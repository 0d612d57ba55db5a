//! A loopback OAuth 2.0 / OpenID Connect server shaped like the self-hosted servers that
//! docs/providers/generic.md configures with no code: Keycloak (a realm's `openid-connect`
//! endpoints) and GitLab self-managed (Doorkeeper). The testkit's mock has neither's paths,
//! token responses nor user documents, so this small one lives beside the tests using it.
//!
//! Both shapes: authorization code with PKCE S256 (required by the Keycloak client, checked
//! when sent to GitLab), `client_secret_basic` or `client_secret_post`, single-use codes,
//! refresh tokens that rotate (a reused one is `invalid_grant`), RFC 7009 revocation that ends
//! the grant, and a user endpoint that needs a live token with the right scope.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Method;
use serde_json::{Value, json};
use tether_core::{hash_secret, random_token};
use tether_e2e::Harness;

/// The client id the mock accepts.
pub const CLIENT_ID: &str = "tether";
/// Its secret.
pub const CLIENT_SECRET: &str = "mock-client-secret";
/// The user who approves every authorization.
pub const LOGIN: &str = "alice";
/// Keycloak's `sub`: a user UUID.
pub const KEYCLOAK_SUB: &str = "5b8c5b64-3c1e-4b4e-9a2c-2d7f0e8a1c42";
/// GitLab's numeric user id.
pub const GITLAB_USER_ID: u64 = 4242;
/// The Keycloak realm the mock serves.
pub const REALM: &str = "main";

/// Which server to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Keycloak: `/realms/{realm}/protocol/openid-connect/{auth,token,userinfo,revoke}`,
    /// 5-minute access tokens, `offline_access` refresh tokens with `refresh_expires_in: 0`.
    Keycloak,
    /// GitLab: `/oauth/{authorize,token,userinfo,revoke}` and `/api/v4/user`, 2-hour tokens.
    GitLab,
}

struct PendingCode {
    redirect_uri: String,
    challenge: Option<String>,
    scopes: Vec<String>,
}

/// What the mock saw and holds.
#[derive(Default)]
struct State {
    codes: HashMap<String, PendingCode>,
    /// Grant id → its scopes, while alive.
    grants: HashMap<u64, Vec<String>>,
    access: HashMap<String, u64>,
    refresh: HashMap<String, u64>,
    next_grant: u64,
    authorize_requests: Vec<HashMap<String, String>>,
    token_client_auth: Vec<&'static str>,
    refreshes: usize,
    rejected_refreshes: usize,
    revocations: Vec<HashMap<String, String>>,
}

/// A running mock.
pub struct SelfHostedMock {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    state: Arc<Mutex<State>>,
    handle: ServerHandle,
}

#[derive(Clone)]
struct Ctx {
    shape: Shape,
    base: String,
    state: Arc<Mutex<State>>,
}

type Params = web::Form<HashMap<String, String>>;

impl SelfHostedMock {
    /// Serves the shape on `127.0.0.1`, on a random port.
    pub async fn start(shape: Shape) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let ctx = Ctx { shape, base: base.clone(), state: state.clone() };
        let server = HttpServer::new(move || {
            let app = App::new().app_data(web::Data::new(ctx.clone()));
            match shape {
                Shape::Keycloak => {
                    let p = format!("/realms/{REALM}/protocol/openid-connect");
                    app.route(&format!("{p}/auth"), web::get().to(authorize))
                        .route(&format!("{p}/token"), web::post().to(token))
                        .route(&format!("{p}/userinfo"), web::get().to(userinfo))
                        .route(&format!("{p}/revoke"), web::post().to(revoke))
                }
                Shape::GitLab => app
                    .route("/oauth/authorize", web::get().to(authorize))
                    .route("/oauth/token", web::post().to(token))
                    .route("/oauth/userinfo", web::get().to(userinfo))
                    .route("/api/v4/user", web::get().to(api_user))
                    .route("/oauth/revoke", web::post().to(revoke)),
            }
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base, state, handle }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The query of every authorization request, oldest first.
    pub fn authorize_requests(&self) -> Vec<HashMap<String, String>> {
        self.with(|s| s.authorize_requests.clone())
    }
    /// How the client authenticated at the token endpoint (`basic` or `post`), per request.
    pub fn token_client_auth(&self) -> Vec<&'static str> {
        self.with(|s| s.token_client_auth.clone())
    }
    /// Successful refresh grants.
    pub fn refreshes(&self) -> usize {
        self.with(|s| s.refreshes)
    }
    /// Refresh grants refused (a used, revoked or unknown refresh token).
    pub fn rejected_refreshes(&self) -> usize {
        self.with(|s| s.rejected_refreshes)
    }
    /// The form of every revocation request.
    pub fn revocations(&self) -> Vec<HashMap<String, String>> {
        self.with(|s| s.revocations.clone())
    }
    /// Whether `token` is a live access token.
    pub fn is_access_token_valid(&self, token: &str) -> bool {
        self.with(|s| s.access.get(token).is_some_and(|g| s.grants.contains_key(g)))
    }
    /// Live grants (an authorization not yet revoked).
    pub fn live_grants(&self) -> usize {
        self.with(|s| s.grants.len())
    }
    /// Stops serving.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

fn redirect(to: &str, pairs: &[(&str, &str)]) -> HttpResponse {
    let mut url = url::Url::parse(to).unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    HttpResponse::Found().insert_header(("Location", url.to_string())).finish()
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// `GET` authorization endpoint: checks the client and PKCE, approves as [`LOGIN`].
async fn authorize(ctx: web::Data<Ctx>, query: web::Query<HashMap<String, String>>) -> HttpResponse {
    let q = query.into_inner();
    ctx.state.lock().unwrap().authorize_requests.push(q.clone());
    let (Some(redirect_uri), Some(CLIENT_ID)) = (q.get("redirect_uri"), q.get("client_id").map(String::as_str)) else {
        // Both servers show an error page, never redirect, for an unknown client.
        return HttpResponse::BadRequest().body("Invalid parameter: client_id or redirect_uri");
    };
    let state = q.get("state").map(String::as_str).unwrap_or_default();
    let fail = |error: &str, description: &str| {
        redirect(redirect_uri, &[("error", error), ("error_description", description), ("state", state)])
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return fail("unsupported_response_type", "Unsupported response_type");
    }
    let challenge = q.get("code_challenge").cloned();
    match (ctx.shape, &challenge, q.get("code_challenge_method").map(String::as_str)) {
        // The Keycloak client has "PKCE Method: S256": required.
        (Shape::Keycloak, None, _) => return fail("invalid_request", "Missing parameter: code_challenge_method"),
        (_, Some(_), method) if method != Some("S256") => {
            return fail(
                "invalid_request",
                "Invalid parameter: code challenge method is not matching the configured one",
            );
        }
        _ => {}
    }
    let scopes = split_scopes(q.get("scope").map(String::as_str).unwrap_or_default());
    let code = random_token(24).unwrap();
    ctx.state
        .lock()
        .unwrap()
        .codes
        .insert(code.clone(), PendingCode { redirect_uri: redirect_uri.clone(), challenge, scopes });
    match ctx.shape {
        // Keycloak adds the SSO session and (RFC 9207) the issuer.
        Shape::Keycloak => {
            let issuer = format!("{}/realms/{REALM}", ctx.base);
            redirect(
                redirect_uri,
                &[
                    ("state", state),
                    ("session_state", "0c5a2b9e-7d1f-4a7e-8f51-3b1d9a6c0e77"),
                    ("iss", &issuer),
                    ("code", &code),
                ],
            )
        }
        Shape::GitLab => redirect(redirect_uri, &[("code", &code), ("state", state)]),
    }
}

/// The client credentials of a token or revoke request: `basic` or `post`, or `None` when they
/// are missing or wrong.
fn client_auth(req: &HttpRequest, form: &HashMap<String, String>) -> Option<&'static str> {
    if let Some(basic) =
        req.headers().get("Authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
    {
        let decoded = String::from_utf8(STANDARD.decode(basic).ok()?).ok()?;
        let (id, secret) = decoded.split_once(':')?;
        // RFC 6749 section 2.3.1: both parts are form-encoded before the Basic encoding.
        let unform =
            |s: &str| url::form_urlencoded::parse(format!("v={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
        return (unform(id)?.as_str() == CLIENT_ID && unform(secret)?.as_str() == CLIENT_SECRET).then_some("basic");
    }
    let id = form.get("client_id")?;
    let secret = form.get("client_secret")?;
    (id == CLIENT_ID && secret == CLIENT_SECRET).then_some("post")
}

fn oauth_error(status: u16, error: &str, description: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({ "error": error, "error_description": description }))
}

fn invalid_grant(shape: Shape, reused_refresh: bool) -> HttpResponse {
    let description = match (shape, reused_refresh) {
        (Shape::Keycloak, true) => "Maximum allowed refresh token reuse exceeded",
        (Shape::Keycloak, false) => "Code not valid",
        (Shape::GitLab, _) => {
            "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in \
             the authorization request, or was issued to another client."
        }
    };
    oauth_error(400, "invalid_grant", description)
}

/// `POST` token endpoint: `authorization_code` and rotating `refresh_token` grants.
async fn token(ctx: web::Data<Ctx>, req: HttpRequest, form: Params) -> HttpResponse {
    let form = form.into_inner();
    let Some(method) = client_auth(&req, &form) else {
        return match ctx.shape {
            Shape::Keycloak => oauth_error(401, "unauthorized_client", "Invalid client or Invalid client credentials"),
            Shape::GitLab => oauth_error(
                401,
                "invalid_client",
                "Client authentication failed due to unknown client, no client authentication included, or unsupported \
                 authentication method.",
            ),
        };
    };
    let mut s = ctx.state.lock().unwrap();
    s.token_client_auth.push(method);
    let grant = match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let Some(pending) = form.get("code").and_then(|c| s.codes.remove(c)) else {
                return invalid_grant(ctx.shape, false);
            };
            if form.get("redirect_uri") != Some(&pending.redirect_uri) {
                return invalid_grant(ctx.shape, false);
            }
            if let Some(challenge) = &pending.challenge {
                let verifier = form.get("code_verifier").map(String::as_str).unwrap_or_default();
                let digest: Vec<u8> = (0..32)
                    .map(|i| u8::from_str_radix(&hash_secret(verifier)[2 * i..2 * i + 2], 16).unwrap())
                    .collect();
                if URL_SAFE_NO_PAD.encode(digest) != *challenge {
                    return oauth_error(400, "invalid_grant", "PKCE verification failed: Code mismatch");
                }
            }
            s.next_grant += 1;
            let id = s.next_grant;
            s.grants.insert(id, pending.scopes);
            id
        }
        Some("refresh_token") => {
            // Rotation: the presented refresh token dies whether or not the grant is alive.
            let grant =
                form.get("refresh_token").and_then(|t| s.refresh.remove(t)).filter(|g| s.grants.contains_key(g));
            let Some(grant) = grant else {
                s.rejected_refreshes += 1;
                return invalid_grant(ctx.shape, true);
            };
            s.refreshes += 1;
            grant
        }
        _ => return oauth_error(400, "unsupported_grant_type", "Unsupported grant_type"),
    };
    let scopes = s.grants[&grant].clone();
    let (access, refresh) = match ctx.shape {
        // Keycloak's tokens are JWTs; opaque random strings stand in for them.
        Shape::Keycloak => (
            format!("eyJhbGciOiJSUzI1NiJ9.{}", random_token(32).unwrap()),
            format!("eyJhbGciOiJIUzUxMiJ9.{}", random_token(32).unwrap()),
        ),
        Shape::GitLab => (hash_secret(&random_token(16).unwrap()), hash_secret(&random_token(16).unwrap())),
    };
    s.access.insert(access.clone(), grant);
    s.refresh.insert(refresh.clone(), grant);
    let body = match ctx.shape {
        Shape::Keycloak => json!({
            "access_token": access,
            "expires_in": 300,
            // An offline token has no expiry: Keycloak says 0.
            "refresh_expires_in": if scopes.iter().any(|s| s == "offline_access") { 0 } else { 1800 },
            "refresh_token": refresh,
            "token_type": "Bearer",
            "id_token": format!("eyJhbGciOiJSUzI1NiJ9.{}", random_token(32).unwrap()),
            "not-before-policy": 0,
            "session_state": "0c5a2b9e-7d1f-4a7e-8f51-3b1d9a6c0e77",
            "scope": scopes.join(" "),
        }),
        Shape::GitLab => json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": 7200,
            "refresh_token": refresh,
            "scope": scopes.join(" "),
            "created_at": chrono_now(),
        }),
    };
    HttpResponse::Ok().insert_header(("Cache-Control", "no-store")).json(body)
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The scopes behind the request's bearer token, when it is live.
fn bearer_scopes(ctx: &Ctx, req: &HttpRequest) -> Option<Vec<String>> {
    let token = req.headers().get("Authorization")?.to_str().ok()?.strip_prefix("Bearer ")?;
    let s = ctx.state.lock().unwrap();
    s.access.get(token).and_then(|g| s.grants.get(g)).cloned()
}

/// OIDC user info: needs the `openid` scope on both servers.
async fn userinfo(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let Some(scopes) = bearer_scopes(&ctx, &req) else {
        return HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .json(json!({ "error": "invalid_token", "error_description": "Token verification failed" }));
    };
    if !scopes.iter().any(|s| s == "openid") {
        return oauth_error(403, "insufficient_scope", "Missing openid scope");
    }
    HttpResponse::Ok().json(match ctx.shape {
        Shape::Keycloak => json!({
            "sub": KEYCLOAK_SUB,
            "email_verified": true,
            "name": "Alice Liddell",
            "preferred_username": LOGIN,
            "given_name": "Alice",
            "family_name": "Liddell",
            "email": "alice@example.test",
        }),
        // `sub` is the numeric user id as a string; `nickname` the username.
        Shape::GitLab => json!({
            "sub": GITLAB_USER_ID.to_string(),
            "sub_legacy": hash_secret("alice-legacy"),
            "name": "Alice Liddell",
            "nickname": LOGIN,
            "preferred_username": LOGIN,
            "email": "alice@example.test",
            "email_verified": true,
            "website": "",
            "profile": format!("{}/{LOGIN}", ctx.base),
            "picture": format!("{}/uploads/-/system/user/avatar/{GITLAB_USER_ID}/avatar.png", ctx.base),
            "groups": ["tether-admins"],
        }),
    })
}

/// GitLab's REST `GET /api/v4/user`: `read_user` or `api` scope, integer `id`, `username`.
async fn api_user(ctx: web::Data<Ctx>, req: HttpRequest) -> HttpResponse {
    let Some(scopes) = bearer_scopes(&ctx, &req) else {
        return HttpResponse::Unauthorized().json(json!({ "message": "401 Unauthorized" }));
    };
    if !scopes.iter().any(|s| s == "read_user" || s == "api") {
        return HttpResponse::Forbidden().json(json!({
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the access token.",
            "scope": "api read_user",
        }));
    }
    HttpResponse::Ok().json(json!({
        "id": GITLAB_USER_ID,
        "username": LOGIN,
        "name": "Alice Liddell",
        "state": "active",
        "locked": false,
        "avatar_url": format!("{}/uploads/-/system/user/avatar/{GITLAB_USER_ID}/avatar.png", ctx.base),
        "web_url": format!("{}/{LOGIN}", ctx.base),
    }))
}

/// RFC 7009: revoking either token of a grant ends the grant (Keycloak: the offline session;
/// GitLab: the access and refresh token pair). Unknown tokens are answered 200 too.
async fn revoke(ctx: web::Data<Ctx>, req: HttpRequest, form: Params) -> HttpResponse {
    let form = form.into_inner();
    if client_auth(&req, &form).is_none() {
        return oauth_error(401, "invalid_client", "Invalid client credentials");
    }
    let mut s = ctx.state.lock().unwrap();
    s.revocations.push(form.clone());
    let token = form.get("token").map(String::as_str).unwrap_or_default();
    if let Some(grant) = s.refresh.get(token).or_else(|| s.access.get(token)).copied() {
        s.grants.remove(&grant);
    }
    match ctx.shape {
        Shape::Keycloak => HttpResponse::Ok().finish(),
        Shape::GitLab => HttpResponse::Ok().json(json!({})),
    }
}

/// The TOML block of docs/providers/generic.md that contains `marker`, with the documentation
/// host replaced by the mock's and the client credentials by the mock's: the tests run the
/// documented configuration itself.
pub fn documented_config(marker: &str, doc_host: &str, mock: &SelfHostedMock) -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/providers/generic.md")).unwrap();
    let block = doc
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block))
        .find(|block| block.contains(marker))
        .unwrap_or_else(|| panic!("docs/providers/generic.md has no toml block with `{marker}`"));
    block
        .lines()
        .map(|line| {
            if line.trim_start().starts_with("client_secret") {
                format!("client_secret = \"{CLIENT_SECRET}\"")
            } else if line.trim_start().starts_with("client_id") {
                format!("client_id = \"{CLIENT_ID}\"")
            } else {
                line.replace(doc_host, &mock.base)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs a whole connect flow for `owner` on the configured provider `provider` through the
/// server's API and a browser, and returns the connection.
pub async fn connect(h: &Harness, provider: &str, owner: &str) -> Value {
    let body = json!({ "owner": owner, "provider": provider });
    let (status, session) = h.api_call(Method::POST, "/v1/connect-sessions", Some(body)).await;
    assert_eq!(status, 201, "{session}");
    let callback = h.authorize(session["connect_url"].as_str().unwrap()).await;
    assert!(callback.contains(&format!("/callback/{provider}?")), "{callback}");
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "callback: {}", resp.text().await.unwrap());
    let (_, list) = h.api_call(Method::GET, &format!("/v1/connections?owner={owner}&provider={provider}"), None).await;
    list["connections"][0].clone()
}
