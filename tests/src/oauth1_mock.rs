//! A loopback OAuth 1.0a provider shaped like Twitter's, which verifies every HMAC-SHA1
//! signature itself (independently of the `oauth1-request` crate Tether signs with), rejects
//! stale timestamps and reused nonces, and answers Twitter's error format.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Consumer key the mock accepts.
pub const CONSUMER_KEY: &str = "xvz1evFS4wEEPTGEFPHBog";
/// Consumer secret the mock accepts.
pub const CONSUMER_SECRET: &str = "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw";

#[derive(Default)]
struct State {
    request_tokens: HashMap<String, (String, String, String)>, // token -> (secret, callback, verifier)
    access_tokens: HashMap<String, String>,                    // token -> secret
    nonces: HashSet<String>,
    signature_failures: usize,
    deny: bool,
    invalidated: Vec<String>,
}

/// The running mock.
pub struct OAuth1Mock {
    state: Arc<Mutex<State>>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    handle: actix_web::dev::ServerHandle,
}

/// RFC 3986 percent-encoding of everything but unreserved characters (RFC 5849 3.6).
pub fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The `oauth_*` parameters of an `Authorization: OAuth ...` header.
fn header_params(req: &HttpRequest) -> Option<BTreeMap<String, String>> {
    let h = req.headers().get("Authorization")?.to_str().ok()?.strip_prefix("OAuth ")?;
    Some(
        h.split(',')
            .filter_map(|kv| {
                let (k, v) = kv.trim().split_once('=')?;
                Some((decode(k), decode(v.trim_matches('"'))))
            })
            .collect(),
    )
}

impl OAuth1Mock {
    /// Starts on a random loopback port.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let s = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(s.clone()))
                .route("/oauth/request_token", web::post().to(request_token))
                .route("/oauth/authorize", web::get().to(authorize))
                .route("/oauth/access_token", web::post().to(access_token))
                .route("/1.1/oauth/invalidate_token", web::post().to(invalidate))
                .route("/1.1/account/verify_credentials.json", web::get().to(verify_credentials))
                .route("/1.1/statuses/update.json", web::post().to(verify_credentials))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { state, base, handle }
    }

    /// Requests whose signature did not verify.
    pub fn signature_failures(&self) -> usize {
        self.state.lock().unwrap().signature_failures
    }
    /// Makes the authorize page answer "denied".
    pub fn set_deny(&self, deny: bool) {
        self.state.lock().unwrap().deny = deny;
    }
    /// Tokens invalidated through the API.
    pub fn invalidated(&self) -> Vec<String> {
        self.state.lock().unwrap().invalidated.clone()
    }
    /// Whether an access token is live.
    pub fn is_live(&self, token: &str) -> bool {
        self.state.lock().unwrap().access_tokens.contains_key(token)
    }
    /// Stops the server.
    pub async fn stop(self) {
        self.handle.stop(false).await;
    }
}

type Shared = web::Data<Arc<Mutex<State>>>;

/// Verifies the request's signature with `token_secret`. Returns the oauth parameters.
#[allow(clippy::result_large_err)] // test mock: the error is the response to send
fn verify(
    state: &Shared,
    req: &HttpRequest,
    body: &[u8],
    token_secret: impl Fn(&BTreeMap<String, String>) -> Option<String>,
) -> Result<BTreeMap<String, String>, HttpResponse> {
    let unauthorized = |state: &Shared, code: u32, msg: &str| {
        state.lock().unwrap().signature_failures += 1;
        HttpResponse::Unauthorized().json(serde_json::json!({ "errors": [{ "code": code, "message": msg }] }))
    };
    let Some(oauth) = header_params(req) else { return Err(unauthorized(state, 215, "Bad Authentication data.")) };
    if oauth.get("oauth_consumer_key").map(String::as_str) != Some(CONSUMER_KEY)
        || oauth.get("oauth_signature_method").map(String::as_str) != Some("HMAC-SHA1")
    {
        return Err(unauthorized(state, 32, "Could not authenticate you."));
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let ts: u64 = oauth.get("oauth_timestamp").and_then(|t| t.parse().ok()).unwrap_or(0);
    if now.abs_diff(ts) > 300 {
        return Err(unauthorized(state, 135, "Timestamp out of bounds."));
    }
    let nonce = oauth.get("oauth_nonce").cloned().unwrap_or_default();
    if nonce.is_empty() || !state.lock().unwrap().nonces.insert(nonce) {
        return Err(unauthorized(state, 32, "Could not authenticate you. (nonce reused)"));
    }
    let Some(ts_secret) = token_secret(&oauth) else {
        return Err(unauthorized(state, 89, "Invalid or expired token."));
    };
    let mut params: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let is_form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if is_form {
        params.extend(url::form_urlencoded::parse(body).into_owned());
    }
    params.extend(
        oauth.iter().filter(|(k, _)| *k != "oauth_signature" && *k != "realm").map(|(k, v)| (k.clone(), v.clone())),
    );
    let mut encoded: Vec<(String, String)> = params.iter().map(|(k, v)| (encode(k), encode(v))).collect();
    encoded.sort();
    let param_string = encoded.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");
    let host = req.connection_info().host().to_owned();
    let base_url = format!("http://{host}{}", req.path());
    let base = format!("{}&{}&{}", req.method().as_str(), encode(&base_url), encode(&param_string));
    let key = format!("{}&{}", encode(CONSUMER_SECRET), encode(&ts_secret));
    let mut mac = Hmac::<Sha1>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(base.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    if oauth.get("oauth_signature") != Some(&expected) {
        return Err(unauthorized(state, 32, "Could not authenticate you."));
    }
    Ok(oauth)
}

fn random() -> String {
    tether_core::random_token(24).unwrap()
}

async fn request_token(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let oauth = match verify(&state, &req, &body, |_| Some(String::new())) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(callback) = oauth.get("oauth_callback").cloned() else {
        return HttpResponse::BadRequest().json(serde_json::json!({"errors":[{"code":417,"message":"Desktop applications only support the oauth_callback value 'oob'"}]}));
    };
    let (token, secret) = (format!("rt-{}", random()), random());
    state.lock().unwrap().request_tokens.insert(token.clone(), (secret.clone(), callback, random()));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8") // Twitter really sends form data labelled text/html
        .body(format!("oauth_token={token}&oauth_token_secret={secret}&oauth_callback_confirmed=true"))
}

async fn authorize(state: Shared, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let token = q.get("oauth_token").cloned().unwrap_or_default();
    let s = state.lock().unwrap();
    let Some((_, callback, verifier)) = s.request_tokens.get(&token) else {
        return HttpResponse::BadRequest().body("This page is no longer valid.");
    };
    let mut url = url::Url::parse(callback).unwrap();
    if s.deny {
        url.query_pairs_mut().append_pair("denied", &token);
    } else {
        url.query_pairs_mut().append_pair("oauth_token", &token).append_pair("oauth_verifier", verifier);
    }
    HttpResponse::Found().insert_header(("Location", url.as_str())).finish()
}

async fn access_token(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let lookup = |o: &BTreeMap<String, String>| {
        o.get("oauth_token").and_then(|t| state.lock().unwrap().request_tokens.get(t).map(|(s, _, _)| s.clone()))
    };
    let oauth = match verify(&state, &req, &body, lookup) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let token = oauth.get("oauth_token").cloned().unwrap_or_default();
    let mut s = state.lock().unwrap();
    let Some((_, _, verifier)) = s.request_tokens.remove(&token) else {
        return HttpResponse::Unauthorized().body("Invalid request token.");
    };
    if oauth.get("oauth_verifier") != Some(&verifier) {
        return HttpResponse::Unauthorized()
            .body("Error processing your OAuth request: Invalid oauth_verifier parameter");
    }
    let (access, secret) = (format!("370773112-{}", random()), random());
    s.access_tokens.insert(access.clone(), secret.clone());
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(format!("oauth_token={access}&oauth_token_secret={secret}&user_id=370773112&screen_name=jack"))
}

fn access_lookup(state: &Shared) -> impl Fn(&BTreeMap<String, String>) -> Option<String> + '_ {
    move |o| o.get("oauth_token").and_then(|t| state.lock().unwrap().access_tokens.get(t).cloned())
}

async fn invalidate(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let oauth = match verify(&state, &req, &body, access_lookup(&state)) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let token = oauth.get("oauth_token").cloned().unwrap_or_default();
    let mut s = state.lock().unwrap();
    s.access_tokens.remove(&token);
    s.invalidated.push(token.clone());
    HttpResponse::Ok().json(serde_json::json!({ "access_token": token }))
}

async fn verify_credentials(state: Shared, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    match verify(&state, &req, &body, access_lookup(&state)) {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({ "id_str": "370773112", "screen_name": "jack" })),
        Err(r) => r,
    }
}
