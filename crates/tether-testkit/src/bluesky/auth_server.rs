//! The authorization server: metadata, DPoP proofs, client authentication, PAR, authorize,
//! token and revocation.

use std::collections::HashMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::jose::{self, Jws};
use super::{Pending, RefreshToken, Session, Shared, State, random_hex};

/// The `client_assertion_type` of `private_key_jwt`.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How far a proof's or an assertion's `iat` may be from the server's clock.
const MAX_SKEW_SECS: i64 = 60;
/// PAR request lifetime (`expires_in`).
const PAR_LIFETIME_SECS: i64 = 299;
/// Authorization-code lifetime.
const CODE_LIFETIME_SECS: i64 = 60;
/// Scopes this server knows (any `repo:`, `rpc:`, `blob:`, `account:`, `identity:` or
/// `include:` permission is accepted too).
const KNOWN_SCOPES: [&str; 3] = ["atproto", "transition:generic", "transition:chat.bsky"];

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/oauth-protected-resource", web::get().to(protected_resource))
        .route("/.well-known/oauth-authorization-server", web::get().to(metadata))
        .route("/oauth/par", web::post().to(par))
        .route("/oauth/authorize", web::get().to(authorize))
        .route("/oauth/token", web::post().to(token))
        .route("/oauth/revoke", web::post().to(revoke));
}

async fn protected_resource(shared: web::Data<Shared>) -> HttpResponse {
    let origin = &shared.origin;
    HttpResponse::Ok().json(json!({
        "resource": origin,
        "authorization_servers": [origin],
        "scopes_supported": [],
        "bearer_methods_supported": ["header"],
        "resource_documentation": "https://atproto.com",
    }))
}

async fn metadata(shared: web::Data<Shared>) -> HttpResponse {
    let origin = &shared.origin;
    HttpResponse::Ok().json(json!({
        "issuer": origin,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": true,
        "require_request_uri_registration": true,
        "scopes_supported": KNOWN_SCOPES,
        "subject_types_supported": ["public"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "ui_locales_supported": ["en-US"],
        "display_values_supported": ["page", "popup", "touch"],
        "authorization_response_iss_parameter_supported": true,
        "request_object_signing_alg_values_supported": ["RS256", "ES256", "none"],
        "request_object_encryption_alg_values_supported": [],
        "request_object_encryption_enc_values_supported": [],
        "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
        "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
        "revocation_endpoint": format!("{origin}/oauth/revoke"),
        "pushed_authorization_request_endpoint": format!("{origin}/oauth/par"),
        "require_pushed_authorization_requests": true,
        "authorization_endpoint": format!("{origin}/oauth/authorize"),
        "token_endpoint": format!("{origin}/oauth/token"),
        "dpop_signing_alg_values_supported": ["ES256"],
        "client_id_metadata_document_supported": true,
        "protected_resources": [origin],
        "prompt_values_supported": ["none", "login", "consent", "select_account", "create"],
    }))
}

// ---------------------------------------------------------------------------------------------
// Answers

/// A JSON answer from the authorization server: always `DPoP-Nonce` and `Cache-Control: no-store`.
fn reply(nonce: &str, status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header(("DPoP-Nonce", nonce.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(body)
}

fn oauth_error(nonce: &str, status: StatusCode, error: &str, description: &str) -> HttpResponse {
    reply(nonce, status, json!({ "error": error, "error_description": description }))
}

fn bad_request(nonce: &str, error: &str, description: &str) -> HttpResponse {
    oauth_error(nonce, StatusCode::BAD_REQUEST, error, description)
}

fn invalid_client(nonce: &str, description: &str) -> HttpResponse {
    oauth_error(nonce, StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// How a DPoP proof failed at the authorization server (400, RFC 9449 §5, §8).
fn proof_error(nonce: &str, error: ProofError) -> HttpResponse {
    match error {
        ProofError::UseNonce => {
            bad_request(nonce, "use_dpop_nonce", "Authorization server requires nonce in DPoP proof")
        }
        ProofError::Missing => bad_request(nonce, "invalid_dpop_proof", "DPoP proof required"),
        ProofError::Replayed => bad_request(nonce, "invalid_dpop_proof", "DPoP proof jti was already used"),
        ProofError::Invalid(why) => bad_request(nonce, "invalid_dpop_proof", &format!("Invalid DPoP proof: {why}")),
    }
}

// ---------------------------------------------------------------------------------------------
// DPoP proofs (shared with the resource server)

/// Why a DPoP proof is refused.
pub(super) enum ProofError {
    /// No `DPoP` header.
    Missing,
    /// Missing, stale or wrong `nonce`.
    UseNonce,
    /// The `jti` was seen before.
    Replayed,
    /// Anything else.
    Invalid(String),
}

/// A DPoP proof whose form, signature, `htm`, `htu` and `iat` are right.
pub(super) struct Proof {
    /// RFC 7638 thumbprint of the proof key.
    pub jkt: String,
    jti: String,
    nonce: Option<String>,
    /// The `ath` claim, if any.
    pub ath: Option<String>,
}

/// Reads and checks the request's `DPoP` header, without touching server state: `Ok(None)`
/// when there is none.
pub(super) fn read_proof(req: &HttpRequest, origin: &str) -> Result<Option<Proof>, ProofError> {
    let invalid = |why: &str| ProofError::Invalid(why.to_owned());
    let mut values = req.headers().get_all("dpop");
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(invalid("more than one DPoP header"));
    }
    let text = value.to_str().map_err(|_| invalid("the DPoP header is not ASCII"))?;
    let jws = Jws::parse(text).map_err(invalid)?;
    if jws.header_str("typ") != Some("dpop+jwt") {
        return Err(invalid("typ must be \"dpop+jwt\""));
    }
    if jws.header_str("alg") != Some("ES256") {
        return Err(invalid("alg must be ES256"));
    }
    let Some(jwk) = jws.header.get("jwk").and_then(Value::as_object) else {
        return Err(invalid("the header has no jwk"));
    };
    if jwk.contains_key("d") {
        return Err(invalid("the jwk must not contain a private key"));
    }
    let jkt = jose::thumbprint(jwk).map_err(invalid)?;
    jws.verify_es256(jwk).map_err(invalid)?;
    let jti = jws.claim_str("jti").filter(|j| !j.is_empty()).ok_or_else(|| invalid("jti is missing"))?;
    if jws.claim_str("htm") != Some(req.method().as_str()) {
        return Err(invalid("htm does not match the request method"));
    }
    let htu = format!("{origin}{}", req.path());
    if jws.claim_str("htu") != Some(htu.as_str()) {
        return Err(ProofError::Invalid(format!("htu must be {htu}")));
    }
    let iat = jws.claim_num("iat").ok_or_else(|| invalid("iat is missing"))?;
    if (jose::now() - iat).abs() > MAX_SKEW_SECS {
        return Err(invalid("iat is too far from the server's clock"));
    }
    let nonce = match jws.claims.get("nonce") {
        None => None,
        Some(Value::String(n)) => Some(n.clone()),
        Some(_) => return Err(invalid("nonce must be a string")),
    };
    let ath = match jws.claims.get("ath") {
        None => None,
        Some(Value::String(a)) => Some(a.clone()),
        Some(_) => return Err(invalid("ath must be a string")),
    };
    Ok(Some(Proof { jkt, jti: jti.to_owned(), nonce, ath }))
}

/// Checks the proof's nonce against `expected` (when nonces are required), then records its
/// `jti` (a replay is refused). Counts challenges and replays.
pub(super) fn accept_proof(
    st: &mut State,
    proof: &Proof,
    expected: &str,
    require_nonce: bool,
) -> Result<(), ProofError> {
    if require_nonce && proof.nonce.as_deref() != Some(expected) {
        st.nonce_challenges += 1;
        return Err(ProofError::UseNonce);
    }
    if !st.dpop_jtis.insert(proof.jti.clone()) {
        st.replay_rejections += 1;
        return Err(ProofError::Replayed);
    }
    Ok(())
}

/// Reads and accepts the authorization server proof of a request; `Ok(None)` when absent.
fn as_proof(shared: &Shared, req: &HttpRequest) -> Result<Option<Proof>, Box<HttpResponse>> {
    let proof = read_proof(req, &shared.origin);
    let mut st = shared.lock();
    let nonce = st.as_nonce.clone();
    match proof {
        Ok(Some(p)) => match accept_proof(&mut st, &p, &nonce, shared.config.require_nonce) {
            Ok(()) => Ok(Some(p)),
            Err(e) => Err(Box::new(proof_error(&nonce, e))),
        },
        Ok(None) => Ok(None),
        Err(e) => Err(Box::new(proof_error(&nonce, e))),
    }
}

// ---------------------------------------------------------------------------------------------
// Client authentication

/// An authenticated client and what its metadata allows.
struct Client {
    id: String,
    /// The key that signed the client assertion (`None`: the localhost development client).
    kid: Option<String>,
    /// The assertion's `jti`, to check for replays.
    assertion_jti: Option<String>,
    redirect_uris: Vec<String>,
    scopes: Vec<String>,
    grant_types: Vec<String>,
    loopback: bool,
}

impl Client {
    /// Whether `redirect_uri` is registered (for the localhost client: a loopback redirect URI
    /// matching one of its own, any port, RFC 8252 §7.3).
    fn allows_redirect(&self, redirect_uri: &str) -> bool {
        if !self.loopback {
            return self.redirect_uris.iter().any(|r| r == redirect_uri);
        }
        let Ok(wanted) = url::Url::parse(redirect_uri) else { return false };
        self.redirect_uris.iter().filter_map(|r| url::Url::parse(r).ok()).any(|r| {
            r.scheme() == wanted.scheme()
                && r.host_str() == wanted.host_str()
                && r.path() == wanted.path()
                && r.query() == wanted.query()
        })
    }
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v?.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

/// The `http://localhost` development client (atproto OAuth "localhost client development"):
/// `None` when `client_id` is not one.
fn loopback_client(client_id: &str) -> Option<Result<Client, String>> {
    if !client_id.starts_with("http://localhost") {
        return None;
    }
    let url = url::Url::parse(client_id).ok()?;
    if url.host_str() != Some("localhost") {
        return None;
    }
    Some((|| {
        if url.port().is_some() || url.path() != "/" || url.fragment().is_some() || !url.username().is_empty() {
            return Err("a localhost client_id must be http://localhost with no port, path or fragment".to_owned());
        }
        let (mut redirect_uris, mut scope) = (Vec::new(), None);
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "redirect_uri" => {
                    let r = url::Url::parse(&v).map_err(|_| format!("invalid redirect_uri {v}"))?;
                    let loopback_ip = matches!(r.host_str(), Some("127.0.0.1") | Some("[::1]"));
                    if r.scheme() != "http" || !loopback_ip {
                        return Err(format!(
                            "localhost client redirect URIs must be http://127.0.0.1 or http://[::1] (got {v})"
                        ));
                    }
                    redirect_uris.push(v.into_owned());
                }
                "scope" if scope.is_none() => scope = Some(v.into_owned()),
                other => return Err(format!("unexpected or repeated {other} in a localhost client_id")),
            }
        }
        if redirect_uris.is_empty() {
            redirect_uris = vec!["http://127.0.0.1/".to_owned(), "http://[::1]/".to_owned()];
        }
        let scopes: Vec<String> = scope.as_deref().unwrap_or("atproto").split(' ').map(str::to_owned).collect();
        if !scopes.iter().any(|s| s == "atproto") {
            return Err("the localhost client's scope must include atproto".to_owned());
        }
        Ok(Client {
            id: client_id.to_owned(),
            kid: None,
            assertion_jti: None,
            redirect_uris,
            scopes,
            grant_types: vec!["authorization_code".to_owned(), "refresh_token".to_owned()],
            loopback: true,
        })
    })())
}

/// GETs a JSON object (no redirects).
async fn fetch_json(shared: &Shared, url: &str, what: &str) -> Result<Map<String, Value>, String> {
    let response = shared
        .http
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|_| format!("could not fetch the {what} at {url}"))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("fetching the {what} at {url} answered {}", response.status()));
    }
    match response.json::<Value>().await {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("the {what} at {url} is not a JSON object")),
    }
}

/// Authenticates the client of a PAR, token or revocation request: the localhost client
/// (no authentication), or a `private_key_jwt` client whose metadata document is at its
/// `client_id`. Errors are `invalid_client` descriptions.
async fn authenticate(shared: &Shared, form: &HashMap<String, String>) -> Result<Client, String> {
    let client_id = form.get("client_id").map(String::as_str).unwrap_or_default();
    if client_id.is_empty() {
        return Err("client_id is required".into());
    }
    let has_assertion = form.contains_key("client_assertion") || form.contains_key("client_assertion_type");
    if let Some(loopback) = loopback_client(client_id) {
        let client = loopback?;
        if has_assertion {
            return Err("the localhost client uses no client authentication (token_endpoint_auth_method none)".into());
        }
        return Ok(client);
    }
    let url = url::Url::parse(client_id).map_err(|_| "client_id must be a URL".to_owned())?;
    let loopback_host = matches!(url.host_str(), Some("127.0.0.1") | Some("localhost") | Some("[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback_host)) || url.fragment().is_some() {
        return Err("client_id must be an https URL (or a loopback http URL in tests) without fragment".into());
    }
    let meta = fetch_json(shared, client_id, "client metadata").await?;
    let s = |k: &str| meta.get(k).and_then(Value::as_str);
    if s("client_id") != Some(client_id) {
        return Err("the client metadata's client_id does not equal the URL it was fetched from".into());
    }
    if meta.get("dpop_bound_access_tokens") != Some(&Value::Bool(true)) {
        return Err("the client metadata must set dpop_bound_access_tokens: true".into());
    }
    if s("token_endpoint_auth_method") != Some("private_key_jwt") {
        return Err("the client metadata must use token_endpoint_auth_method private_key_jwt".into());
    }
    if s("token_endpoint_auth_signing_alg") != Some("ES256") {
        return Err("the client metadata must set token_endpoint_auth_signing_alg ES256".into());
    }
    let redirect_uris = strings(meta.get("redirect_uris")).filter(|r| !r.is_empty());
    let Some(redirect_uris) = redirect_uris else {
        return Err("the client metadata needs a non-empty redirect_uris array".into());
    };
    let grant_types = strings(meta.get("grant_types")).unwrap_or_default();
    if !grant_types.iter().any(|g| g == "authorization_code") {
        return Err("the client metadata's grant_types must include authorization_code".into());
    }
    if !strings(meta.get("response_types")).unwrap_or_default().iter().any(|r| r == "code") {
        return Err("the client metadata's response_types must include code".into());
    }
    let scopes: Vec<String> = s("scope").unwrap_or_default().split(' ').map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "atproto") {
        return Err("the client metadata's scope must include atproto".into());
    }
    let jwks = match (meta.get("jwks"), s("jwks_uri")) {
        (Some(Value::Object(jwks)), None) => jwks.clone(),
        (None, Some(uri)) => fetch_json(shared, uri, "client JWKS").await?,
        _ => return Err("the client metadata needs exactly one of jwks and jwks_uri".into()),
    };

    // The client assertion (RFC 7523 §3).
    if form.get("client_assertion_type").map(String::as_str) != Some(JWT_BEARER) {
        return Err(format!("client_assertion_type must be {JWT_BEARER}"));
    }
    let assertion = form.get("client_assertion").ok_or("client_assertion is required")?;
    let jws = Jws::parse(assertion).map_err(|e| format!("client_assertion: {e}"))?;
    if jws.header_str("alg") != Some("ES256") {
        return Err("the client assertion must be signed with ES256".into());
    }
    let kid = jws.header_str("kid").ok_or("the client assertion header needs a kid")?;
    let keys = jwks.get("keys").and_then(Value::as_array).ok_or("the client JWKS has no keys array")?;
    let key = keys
        .iter()
        .filter_map(Value::as_object)
        .find(|k| k.get("kid").and_then(Value::as_str) == Some(kid))
        .ok_or_else(|| format!("no key with kid {kid} in the client JWKS"))?;
    if key.contains_key("d") {
        return Err("the client JWKS publishes a private key".into());
    }
    if key.get("alg").and_then(Value::as_str).is_some_and(|a| a != "ES256")
        || key.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig")
    {
        return Err(format!("key {kid} is not an ES256 signing key"));
    }
    jws.verify_es256(key).map_err(|e| format!("client assertion: {e}"))?;
    if jws.claim_str("iss") != Some(client_id) || jws.claim_str("sub") != Some(client_id) {
        return Err("the client assertion's iss and sub must be the client_id".into());
    }
    let aud_ok = match jws.claims.get("aud") {
        Some(Value::String(a)) => *a == shared.origin,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(shared.origin.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(format!("the client assertion's aud must be the issuer {}", shared.origin));
    }
    let now = jose::now();
    let exp = jws.claim_num("exp").ok_or("the client assertion needs exp")?;
    if exp <= now {
        return Err("the client assertion has expired".into());
    }
    let iat = jws.claim_num("iat").ok_or("the client assertion needs iat")?;
    if iat > now + MAX_SKEW_SECS || now - iat > 300 {
        return Err("the client assertion's iat is too far from the server's clock".into());
    }
    let jti = jws.claim_str("jti").filter(|j| !j.is_empty()).ok_or("the client assertion needs a jti")?;
    Ok(Client {
        id: client_id.to_owned(),
        kid: Some(kid.to_owned()),
        assertion_jti: Some(jti.to_owned()),
        redirect_uris,
        scopes,
        grant_types,
        loopback: false,
    })
}

/// DPoP (if `required`, or present), then client authentication, then the assertion `jti`
/// check. On success: the proof (if any), the client and the locked state.
async fn proof_and_client(
    shared: &Shared,
    req: &HttpRequest,
    form: &HashMap<String, String>,
    required: bool,
) -> Result<(Option<Proof>, Client), Box<HttpResponse>> {
    let proof = as_proof(shared, req)?;
    if required && proof.is_none() {
        return Err(Box::new(proof_error(&shared.lock().as_nonce, ProofError::Missing)));
    }
    let client = authenticate(shared, form).await;
    let mut st = shared.lock();
    let client = client.map_err(|e| Box::new(invalid_client(&st.as_nonce, &e)))?;
    if let Some(jti) = &client.assertion_jti
        && !st.assertion_jtis.insert(format!("{}\n{jti}", client.id))
    {
        st.replay_rejections += 1;
        return Err(Box::new(invalid_client(&st.as_nonce, "the client assertion jti was already used")));
    }
    if client.kid.is_some() {
        st.last_client_kid = client.kid.clone();
    }
    Ok((proof, client))
}

/// `application/x-www-form-urlencoded` parameters; a repeated parameter is an error.
fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if map.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter {k} is repeated"));
        }
    }
    Ok(map)
}

fn is_known_scope(scope: &str) -> bool {
    KNOWN_SCOPES.contains(&scope)
        || ["repo:", "rpc:", "blob:", "account:", "identity:", "include:"].iter().any(|p| scope.starts_with(p))
}

// ---------------------------------------------------------------------------------------------
// Endpoints

async fn par(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&shared.lock().as_nonce, "invalid_request", &e),
    };
    let (proof, client) = match proof_and_client(&shared, &req, &form, true).await {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let Some(proof) = proof else { return proof_error(&shared.lock().as_nonce, ProofError::Missing) };
    let mut st = shared.lock();
    let nonce = st.as_nonce.clone();
    let get = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    let fail = |error: &str, why: &str| bad_request(&nonce, error, why);
    if form.contains_key("request") || form.contains_key("request_uri") {
        return fail("invalid_request", "request and request_uri are not allowed in a pushed authorization request");
    }
    if get("response_type") != "code" {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let redirect_uri = get("redirect_uri");
    if redirect_uri.is_empty() {
        return fail("invalid_request", "redirect_uri is required");
    }
    if !client.allows_redirect(redirect_uri) {
        return fail("invalid_request", "redirect_uri is not registered for this client");
    }
    if get("state").is_empty() {
        return fail("invalid_request", "state is required");
    }
    let scope = get("scope");
    let scopes: Vec<&str> = scope.split(' ').filter(|s| !s.is_empty()).collect();
    if !scopes.contains(&"atproto") {
        return fail("invalid_scope", "scope must include atproto");
    }
    if let Some(unknown) = scopes.iter().find(|s| !is_known_scope(s)) {
        return fail("invalid_scope", &format!("unknown scope {unknown}"));
    }
    if let Some(missing) = scopes.iter().find(|s| !client.scopes.iter().any(|c| c == *s)) {
        return fail("invalid_scope", &format!("scope {missing} is not declared in the client metadata"));
    }
    let challenge = get("code_challenge");
    if challenge.is_empty() {
        return fail("invalid_request", "code_challenge is required (PKCE)");
    }
    if get("code_challenge_method") != "S256" {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43 || !challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)");
    }
    if form.get("dpop_jkt").is_some_and(|jkt| *jkt != proof.jkt) {
        return fail("invalid_request", "dpop_jkt does not match the DPoP proof key");
    }
    if let Some(hint) = form.get("login_hint") {
        let hint = hint.trim().trim_start_matches('@').to_ascii_lowercase();
        if hint != shared.config.handle.to_ascii_lowercase() && hint != shared.config.did {
            return fail("invalid_request", "login_hint does not name an account on this server");
        }
    }
    let request_uri = format!("urn:ietf:params:oauth:request_uri:req-{}", random_hex(16));
    st.pars.insert(
        request_uri.clone(),
        Pending {
            client_id: client.id,
            redirect_uri: redirect_uri.to_owned(),
            state: get("state").to_owned(),
            scope: scopes.join(" "),
            code_challenge: challenge.to_owned(),
            jkt: proof.jkt,
            kid: client.kid,
            expires_at: jose::now() + PAR_LIFETIME_SECS,
        },
    );
    st.par_count += 1;
    reply(&nonce, StatusCode::CREATED, json!({ "request_uri": request_uri, "expires_in": PAR_LIFETIME_SECS }))
}

async fn authorize(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let query: HashMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
    let mut st = shared.lock();
    let nonce = st.as_nonce.clone();
    let page = |msg: &str| {
        HttpResponse::BadRequest()
            .insert_header(("DPoP-Nonce", nonce.clone()))
            .content_type("text/plain; charset=utf-8")
            .body(format!("Authorization failed: {msg}"))
    };
    let Some(request_uri) = query.get("request_uri") else {
        return page("this server requires pushed authorization requests (request_uri is missing)");
    };
    let Some(client_id) = query.get("client_id") else { return page("client_id is required") };
    // Single use, whatever happens next.
    let Some(pending) = st.pars.remove(request_uri) else {
        return page("unknown, expired or already used request_uri");
    };
    if pending.expires_at <= jose::now() {
        return page("the request_uri has expired");
    }
    if pending.client_id != *client_id {
        return page("client_id does not match the pushed authorization request");
    }
    let Ok(mut location) = url::Url::parse(&pending.redirect_uri) else { return page("invalid redirect_uri") };
    let code = format!("cod-{}", random_hex(24));
    location
        .query_pairs_mut()
        .append_pair("iss", &shared.origin)
        .append_pair("state", &pending.state)
        .append_pair("code", &code);
    st.codes.insert(code, Pending { expires_at: jose::now() + CODE_LIFETIME_SECS, ..pending });
    HttpResponse::Found()
        .insert_header((header::LOCATION, location.as_str()))
        .insert_header(("DPoP-Nonce", nonce))
        .finish()
}

/// Issues an access and a refresh token for `session` and answers them.
fn issue_tokens(shared: &Shared, st: &mut State, session: usize, nonce: &str) -> HttpResponse {
    let access = format!("at-{}", random_hex(32));
    let refresh = format!("ref-{}", random_hex(32));
    let lifetime = i64::try_from(shared.config.access_token_lifetime_secs).unwrap_or(i64::MAX / 2);
    st.access.insert(access.clone(), super::AccessToken { session, expires_at: jose::now() + lifetime });
    st.refresh.insert(refresh.clone(), RefreshToken { session, used: false });
    let scope = st.sessions.get(session).map(|s| s.scope.clone()).unwrap_or_default();
    reply(
        nonce,
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "DPoP",
            "expires_in": lifetime,
            "refresh_token": refresh,
            "scope": scope,
            "sub": shared.config.did,
        }),
    )
}

async fn token(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&shared.lock().as_nonce, "invalid_request", &e),
    };
    let (proof, client) = match proof_and_client(&shared, &req, &form, true).await {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let Some(proof) = proof else { return proof_error(&shared.lock().as_nonce, ProofError::Missing) };
    let mut st = shared.lock();
    let nonce = st.as_nonce.clone();
    let grant_type = form.get("grant_type").map(String::as_str).unwrap_or_default();
    if grant_type != "authorization_code" && grant_type != "refresh_token" {
        return bad_request(&nonce, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token");
    }
    if !client.grant_types.iter().any(|g| g == grant_type) {
        return bad_request(&nonce, "unauthorized_client", &format!("the client metadata does not allow {grant_type}"));
    }
    let invalid_grant = |why: &str| bad_request(&nonce, "invalid_grant", why);
    let now = jose::now();
    if grant_type == "authorization_code" {
        let code = form.get("code").map(String::as_str).unwrap_or_default();
        let Some(pending) = st.codes.remove(code) else { return invalid_grant("Invalid code") };
        if pending.expires_at <= now {
            return invalid_grant("This code has expired");
        }
        if pending.client_id != client.id {
            return invalid_grant("The code was not issued to this client");
        }
        if form.get("redirect_uri") != Some(&pending.redirect_uri) {
            return invalid_grant("redirect_uri does not match the authorization request");
        }
        let verifier = form.get("code_verifier").map(String::as_str).unwrap_or_default();
        let verifier_ok = (43..=128).contains(&verifier.len())
            && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !verifier_ok || jose::sha256_b64(verifier) != pending.code_challenge {
            return invalid_grant("Invalid code_verifier");
        }
        if proof.jkt != pending.jkt {
            return invalid_grant("DPoP proof does not match the expected JKT");
        }
        if client.kid != pending.kid {
            return invalid_grant("Client authentication key mismatch (kid)");
        }
        let refresh_lifetime = i64::try_from(shared.config.refresh_token_lifetime_secs).unwrap_or(i64::MAX / 2);
        st.sessions.push(Session {
            client_id: client.id,
            jkt: pending.jkt,
            kid: client.kid,
            scope: pending.scope,
            active: true,
            refresh_expires_at: now.saturating_add(refresh_lifetime),
        });
        let session = st.sessions.len() - 1;
        st.token_count += 1;
        return issue_tokens(&shared, &mut st, session, &nonce);
    }

    // refresh_token
    let presented = form.get("refresh_token").map(String::as_str).unwrap_or_default();
    let Some(entry) = st.refresh.get(presented) else { return invalid_grant("Invalid refresh token") };
    let (session, used) = (entry.session, entry.used);
    if used {
        // Replay detection: the whole session dies.
        st.revoke_session(session);
        st.refresh_replays += 1;
        return invalid_grant("Refresh token replayed");
    }
    let Some(s) = st.sessions.get(session) else { return invalid_grant("Invalid refresh token") };
    if !s.active {
        return invalid_grant("Session revoked");
    }
    if s.refresh_expires_at <= now {
        return invalid_grant("Refresh token expired");
    }
    if s.client_id != client.id {
        return invalid_grant("Token was not issued to this client");
    }
    if s.kid != client.kid {
        return invalid_grant("Client authentication key mismatch (kid)");
    }
    if s.jkt != proof.jkt {
        return invalid_grant("DPoP proof does not match the expected JKT");
    }
    if let Some(scope) = form.get("scope")
        && scope.split(' ').any(|x| !s.scope.split(' ').any(|y| x == y))
    {
        return bad_request(&nonce, "invalid_scope", "a refresh cannot widen the scope");
    }
    if let Some(entry) = st.refresh.get_mut(presented) {
        entry.used = true;
    }
    st.refresh_count += 1;
    issue_tokens(&shared, &mut st, session, &nonce)
}

async fn revoke(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(e) => return bad_request(&shared.lock().as_nonce, "invalid_request", &e),
    };
    let (_proof, client) = match proof_and_client(&shared, &req, &form, false).await {
        Ok(ok) => ok,
        Err(response) => return *response,
    };
    let mut st = shared.lock();
    let nonce = st.as_nonce.clone();
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return bad_request(&nonce, "invalid_request", "token is required");
    };
    let session = st.access.get(token).map(|t| t.session).or_else(|| st.refresh.get(token).map(|t| t.session));
    if let Some(session) = session
        && st.sessions.get(session).is_some_and(|s| s.client_id == client.id)
    {
        st.revoke_session(session);
    }
    st.revocation_count += 1;
    HttpResponse::Ok().insert_header(("DPoP-Nonce", nonce)).insert_header((header::CACHE_CONTROL, "no-store")).finish()
}
