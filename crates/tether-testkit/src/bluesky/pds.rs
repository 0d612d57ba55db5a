//! The PDS side: identity fixtures (handle → DID, the PLC directory) and the XRPC resource
//! server with DPoP-bound access tokens and a nonce of its own.

use std::collections::HashMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::auth_server::{ProofError, accept_proof, read_proof};
use super::{BlueskyRecord, Shared, jose, random_hex};

const USE_NONCE_DESCRIPTION: &str = "Authorization server requires nonce in DPoP proof";
const EXPIRED_DESCRIPTION: &str = "\"exp\" claim timestamp check failed";

pub(super) fn configure_identity(cfg: &mut web::ServiceConfig) {
    cfg.route("/.well-known/atproto-did", web::get().to(atproto_did)).route("/plc/{did}", web::get().to(plc_document));
}

pub(super) fn configure_xrpc(cfg: &mut web::ServiceConfig) {
    cfg.route("/xrpc/com.atproto.server.getSession", web::get().to(get_session))
        .route("/xrpc/com.atproto.repo.createRecord", web::post().to(create_record))
        .route("/xrpc/app.bsky.actor.getProfile", web::get().to(get_profile))
        .route("/xrpc/com.atproto.identity.resolveHandle", web::get().to(resolve_handle));
}

async fn atproto_did(shared: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(shared.config.did.clone())
}

async fn plc_document(shared: web::Data<Shared>, did: web::Path<String>) -> HttpResponse {
    let did = did.into_inner();
    if did != shared.config.did {
        return HttpResponse::NotFound().json(json!({ "message": format!("DID not registered: {did}") }));
    }
    HttpResponse::Ok().json(json!({
        "@context": [
            "https://www.w3.org/ns/did/v1",
            "https://w3id.org/security/multikey/v1",
            "https://w3id.org/security/suites/secp256k1-2019/v1"
        ],
        "id": did,
        "alsoKnownAs": [format!("at://{}", shared.config.handle)],
        "verificationMethod": [{
            "id": format!("{did}#atproto"),
            "type": "Multikey",
            "controller": did,
            "publicKeyMultibase": "zQ3shXjHeiBuRCKmM36cuYnm7YEMzhGnCmCyW92sRJ9pribSF"
        }],
        "service": [{
            "id": "#atproto_pds",
            "type": "AtprotoPersonalDataServer",
            "serviceEndpoint": shared.origin
        }]
    }))
}

async fn resolve_handle(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let q = query(&req);
    if q.get("handle").is_some_and(|h| h.eq_ignore_ascii_case(&shared.config.handle)) {
        return HttpResponse::Ok().json(json!({ "did": shared.config.did }));
    }
    HttpResponse::BadRequest().json(json!({ "error": "InvalidRequest", "message": "Unable to resolve handle" }))
}

fn query(req: &HttpRequest) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect()
}

// ---------------------------------------------------------------------------------------------
// Authorization

/// An XRPC answer: always with the resource server's `DPoP-Nonce`.
fn reply(nonce: &str, status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status).insert_header(("DPoP-Nonce", nonce.to_owned())).json(body)
}

/// 401 with `WWW-Authenticate: DPoP error="…", error_description="…"`.
fn unauthorized(nonce: &str, www_error: &str, description: &str, body_error: &str) -> HttpResponse {
    let escaped = description.replace('\\', "\\\\").replace('"', "\\\"");
    HttpResponse::Unauthorized()
        .insert_header(("DPoP-Nonce", nonce.to_owned()))
        .insert_header((
            header::WWW_AUTHENTICATE,
            format!(r#"DPoP error="{www_error}", error_description="{escaped}""#),
        ))
        .json(json!({ "error": body_error, "message": description }))
}

/// The session scope of an authorized XRPC request.
struct Authorized {
    scope: String,
}

/// Checks `Authorization: DPoP <token>` and the DPoP proof (resource-server nonce, `ath`, the
/// token's key). Counts the call when it succeeds.
fn authorize(shared: &Shared, req: &HttpRequest) -> Result<Authorized, Box<HttpResponse>> {
    let proof = read_proof(req, &shared.origin);
    let mut st = shared.lock();
    let nonce = st.rs_nonce.clone();
    let authorization = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let (scheme, token) = authorization.split_once(' ').unwrap_or((authorization, ""));
    if authorization.is_empty() {
        return Err(Box::new(
            HttpResponse::Unauthorized()
                .insert_header(("DPoP-Nonce", nonce))
                .insert_header((header::WWW_AUTHENTICATE, r#"DPoP algs="ES256""#))
                .json(json!({ "error": "AuthMissing", "message": "Authentication Required" })),
        ));
    }
    if scheme.eq_ignore_ascii_case("Bearer") {
        let why = "DPoP-bound token used with the Bearer scheme";
        return Err(Box::new(unauthorized(&nonce, "invalid_token", why, "InvalidToken")));
    }
    if !scheme.eq_ignore_ascii_case("DPoP") || token.is_empty() {
        return Err(Box::new(unauthorized(&nonce, "invalid_token", "Unexpected authorization type", "InvalidToken")));
    }
    let proof = match proof {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Err(Box::new(unauthorized(&nonce, "invalid_dpop_proof", "DPoP proof required", "InvalidToken")));
        }
        Err(e) => return Err(Box::new(proof_error(&nonce, e))),
    };
    if let Err(e) = accept_proof(&mut st, &proof, &nonce, shared.config.require_nonce) {
        return Err(Box::new(proof_error(&nonce, e)));
    }
    if proof.ath.as_deref() != Some(jose::sha256_b64(token).as_str()) {
        return Err(Box::new(unauthorized(&nonce, "invalid_dpop_proof", "DPoP ath mismatch", "InvalidToken")));
    }
    let Some(access) = st.access.get(token) else {
        return Err(Box::new(unauthorized(&nonce, "invalid_token", "Invalid token", "InvalidToken")));
    };
    let Some(session) = st.sessions.get(access.session).filter(|s| s.active) else {
        return Err(Box::new(unauthorized(&nonce, "invalid_token", "Token has been revoked", "InvalidToken")));
    };
    if access.expires_at <= jose::now() {
        return Err(Box::new(unauthorized(&nonce, "invalid_token", EXPIRED_DESCRIPTION, "ExpiredToken")));
    }
    if session.jkt != proof.jkt {
        return Err(Box::new(unauthorized(&nonce, "invalid_token", "Invalid DPoP key binding", "InvalidToken")));
    }
    let scope = session.scope.clone();
    st.xrpc_calls += 1;
    Ok(Authorized { scope })
}

fn proof_error(nonce: &str, error: ProofError) -> HttpResponse {
    match error {
        ProofError::UseNonce => unauthorized(nonce, "use_dpop_nonce", USE_NONCE_DESCRIPTION, "use_dpop_nonce"),
        ProofError::Missing => unauthorized(nonce, "invalid_dpop_proof", "DPoP proof required", "InvalidToken"),
        ProofError::Replayed => {
            unauthorized(nonce, "invalid_dpop_proof", "DPoP proof jti was already used", "InvalidToken")
        }
        ProofError::Invalid(why) => {
            unauthorized(nonce, "invalid_dpop_proof", &format!("Invalid DPoP proof: {why}"), "InvalidToken")
        }
    }
}

fn rs_nonce(shared: &Shared) -> String {
    shared.lock().rs_nonce.clone()
}

// ---------------------------------------------------------------------------------------------
// Methods

async fn get_session(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if let Err(response) = authorize(&shared, &req) {
        return *response;
    }
    reply(
        &rs_nonce(&shared),
        StatusCode::OK,
        json!({ "did": shared.config.did, "handle": shared.config.handle, "active": true }),
    )
}

async fn get_profile(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    if let Err(response) = authorize(&shared, &req) {
        return *response;
    }
    let nonce = rs_nonce(&shared);
    let actor = query(&req).get("actor").cloned().unwrap_or_default();
    let cfg = &shared.config;
    if actor != cfg.did && !actor.eq_ignore_ascii_case(&cfg.handle) {
        return reply(
            &nonce,
            StatusCode::BAD_REQUEST,
            json!({ "error": "InvalidRequest", "message": "Profile not found" }),
        );
    }
    let name = cfg.handle.split('.').next().unwrap_or_default();
    reply(
        &nonce,
        StatusCode::OK,
        json!({
            "did": cfg.did,
            "handle": cfg.handle,
            "displayName": name,
            "description": "A mock Bluesky account",
            "followersCount": 3,
            "followsCount": 2,
            "postsCount": shared.lock().records.len(),
        }),
    )
}

/// A TID record key: 13 characters of base32-sortable over microseconds and a random clock id.
fn tid() -> String {
    const ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
        & ((1 << 53) - 1);
    let clock = u64::from_str_radix(&random_hex(2), 16).unwrap_or(0) & 0x3ff;
    let value = (micros << 10) | clock;
    (0..13).rev().map(|i| char::from(ALPHABET[((value >> (i * 5)) & 31) as usize])).collect()
}

/// A CIDv1-looking string (`bafyrei…`, 59 characters) derived from `data`.
fn fake_cid(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let digest = Sha256::digest(data);
    let mut bits = digest.iter().flat_map(|b| (0..8).rev().map(move |i| (b >> i) & 1));
    let tail: String = (0..52)
        .map(|_| {
            let v = (0..5).fold(0u8, |acc, _| (acc << 1) | bits.next().unwrap_or(0));
            char::from(ALPHABET[usize::from(v)])
        })
        .collect();
    format!("bafyrei{tail}")
}

async fn create_record(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let authorized = match authorize(&shared, &req) {
        Ok(a) => a,
        Err(response) => return *response,
    };
    let nonce = rs_nonce(&shared);
    let invalid = |message: &str| {
        reply(&nonce, StatusCode::BAD_REQUEST, json!({ "error": "InvalidRequest", "message": message }))
    };
    let can_write = authorized
        .scope
        .split(' ')
        .any(|s| s == "transition:generic" || s.starts_with("repo:") || s.starts_with("repo?"));
    if !can_write {
        return reply(
            &nonce,
            StatusCode::FORBIDDEN,
            json!({ "error": "ScopeMissingError", "message": "Missing required scope \"transition:generic\"" }),
        );
    }
    let Ok(Value::Object(input)) = serde_json::from_slice::<Value>(&body) else {
        return invalid("Request body must be a JSON object");
    };
    let cfg = &shared.config;
    let repo = input.get("repo").and_then(Value::as_str).unwrap_or_default();
    if repo != cfg.did && !repo.eq_ignore_ascii_case(&cfg.handle) {
        return invalid("Input/repo must be the authenticated account's DID or handle");
    }
    let collection = input.get("collection").and_then(Value::as_str).unwrap_or_default();
    if collection.split('.').count() < 3 {
        return invalid("Input/collection must be a valid NSID");
    }
    let Some(record) = input.get("record").filter(|r| r.is_object()) else {
        return invalid("Input/record must be an object");
    };
    if record.get("$type").is_some_and(|t| t.as_str() != Some(collection)) {
        return invalid("Invalid $type: must match collection");
    }
    if collection == "app.bsky.feed.post" {
        let Some(text) = record.get("text").and_then(Value::as_str) else {
            return invalid("Invalid app.bsky.feed.post record: Record must have the property \"text\"");
        };
        if text.chars().count() > 300 || text.len() > 3000 {
            return invalid("Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes");
        }
        if record.get("createdAt").and_then(Value::as_str).is_none() {
            return invalid("Invalid app.bsky.feed.post record: Record must have the property \"createdAt\"");
        }
    }
    let rkey = match input.get("rkey").and_then(Value::as_str) {
        Some(r) if !r.is_empty() && r.len() <= 512 && !r.contains('/') => r.to_owned(),
        Some(_) => return invalid("Input/rkey is not a valid record key"),
        None => tid(),
    };
    let uri = format!("at://{}/{collection}/{rkey}", cfg.did);
    let mut st = shared.lock();
    if st.records.iter().any(|r| r.uri == uri) {
        drop(st);
        return invalid("Record already exists");
    }
    let cid = fake_cid(format!("{uri}\n{record}").as_bytes());
    st.records.push(BlueskyRecord {
        uri: uri.clone(),
        cid: cid.clone(),
        collection: collection.to_owned(),
        rkey,
        record: record.clone(),
    });
    let rev = tid();
    drop(st);
    reply(
        &nonce,
        StatusCode::OK,
        json!({
            "uri": uri,
            "cid": cid,
            "commit": { "cid": fake_cid(rev.as_bytes()), "rev": rev },
            "validationStatus": "valid",
        }),
    )
}
