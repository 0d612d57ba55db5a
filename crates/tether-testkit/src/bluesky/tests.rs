//! End-to-end checks of the mock with a hand-rolled ES256 client (p256 directly, not Tether).

use std::collections::HashMap;

use actix_web::{App, HttpResponse, HttpServer, web};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};

use super::jose::{b64, now, sha256_b64, thumbprint};
use super::{BlueskyMock, BlueskyMockConfig, random_hex};

/// A P-256 key that signs compact JWS.
struct Key {
    signing: SigningKey,
}

impl Key {
    fn new() -> Key {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).unwrap();
            if let Ok(signing) = SigningKey::from_slice(&bytes) {
                return Key { signing };
            }
        }
    }

    fn jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_sec1_point(false);
        let bytes = point.as_bytes();
        json!({ "kty": "EC", "crv": "P-256", "x": b64(&bytes[1..33]), "y": b64(&bytes[33..65]) })
    }

    fn jkt(&self) -> String {
        thumbprint(self.jwk().as_object().unwrap()).unwrap()
    }

    fn sign(&self, header: Value, claims: Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let signature: Signature = self.signing.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature.to_bytes()))
    }

    /// A DPoP proof.
    fn proof(&self, htm: &str, htu: &str, nonce: Option<&str>, ath: Option<&str>) -> String {
        let mut claims = json!({ "jti": random_hex(12), "htm": htm, "htu": htu, "iat": now() });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(a) = ath {
            claims["ath"] = json!(a);
        }
        self.sign(json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk() }), claims)
    }
}

/// A confidential client: its metadata document and JWKS served from a loopback server.
struct ClientApp {
    client_id: String,
    redirect_uri: String,
    keys: Vec<(String, Key)>,
    server: actix_web::dev::ServerHandle,
}

impl ClientApp {
    async fn start(tweak: impl FnOnce(&mut Value)) -> ClientApp {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let client_id = format!("{origin}/client-metadata.json");
        let redirect_uri = format!("{origin}/callback");
        let keys = vec![("k1".to_owned(), Key::new()), ("k2".to_owned(), Key::new())];
        let jwks = json!({ "keys": keys.iter().map(|(kid, k)| {
            let mut jwk = k.jwk();
            jwk["kid"] = json!(kid);
            jwk["alg"] = json!("ES256");
            jwk["use"] = json!("sig");
            jwk
        }).collect::<Vec<_>>() });
        let mut metadata = json!({
            "client_id": client_id,
            "client_name": "Tether test",
            "application_type": "web",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "scope": "atproto transition:generic",
            "dpop_bound_access_tokens": true,
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks_uri": format!("{origin}/jwks.json"),
        });
        tweak(&mut metadata);
        // One app-data value per type: both documents in one.
        let docs = web::Data::new((metadata, jwks));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(docs.clone())
                .route(
                    "/client-metadata.json",
                    web::get().to(|d: web::Data<(Value, Value)>| async move { HttpResponse::Ok().json(&d.0) }),
                )
                .route(
                    "/jwks.json",
                    web::get().to(|d: web::Data<(Value, Value)>| async move { HttpResponse::Ok().json(&d.1) }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        ClientApp { client_id, redirect_uri, keys, server: handle }
    }

    fn key(&self, kid: &str) -> &Key {
        &self.keys.iter().find(|(k, _)| k == kid).unwrap().1
    }

    /// A client assertion signed with `kid` for the audience `aud`.
    fn assertion(&self, kid: &str, aud: &str) -> String {
        let claims = json!({
            "iss": self.client_id, "sub": self.client_id, "aud": aud,
            "jti": random_hex(12), "iat": now(), "exp": now() + 60,
        });
        self.key(kid).sign(json!({ "alg": "ES256", "kid": kid, "typ": "JWT" }), claims)
    }
}

/// The mock, a client, a DPoP key and an HTTP client that does not follow redirects.
struct Harness {
    mock: BlueskyMock,
    app: ClientApp,
    dpop: Key,
    http: reqwest::Client,
}

/// Form parameters.
type Form = Vec<(&'static str, String)>;

/// What a PAR needs to be finished.
struct Par {
    request_uri: String,
    verifier: String,
    state: String,
}

impl Harness {
    async fn new() -> Harness {
        Self::with(BlueskyMockConfig::default(), |_| {}).await
    }

    async fn with(config: BlueskyMockConfig, tweak: impl FnOnce(&mut Value)) -> Harness {
        let mock = BlueskyMock::start(config).await.unwrap();
        let app = ClientApp::start(tweak).await;
        let http = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Harness { mock, app, dpop: Key::new(), http }
    }

    /// POSTs a form to the authorization server with a proof carrying `nonce`.
    async fn post(&self, path: &str, form: &[(&str, String)], key: &Key, nonce: Option<&str>) -> reqwest::Response {
        let proof = key.proof("POST", &self.mock.url(path), nonce, None);
        self.http.post(self.mock.url(path)).header("DPoP", proof).form(form).send().await.unwrap()
    }

    /// POSTs with the current nonce, client authentication by `kid`.
    async fn post_auth(&self, path: &str, mut form: Form, kid: &str, key: &Key) -> reqwest::Response {
        form.push(("client_id", self.app.client_id.clone()));
        form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
        form.push(("client_assertion", self.app.assertion(kid, &self.mock.origin())));
        self.post(path, &form, key, Some(&self.mock.auth_server_nonce())).await
    }

    fn par_form(&self, verifier: &str, state: &str) -> Form {
        vec![
            ("response_type", "code".into()),
            ("redirect_uri", self.app.redirect_uri.clone()),
            ("state", state.into()),
            ("scope", "atproto transition:generic".into()),
            ("code_challenge", sha256_b64(verifier)),
            ("code_challenge_method", "S256".into()),
            ("login_hint", self.mock.handle()),
        ]
    }

    async fn par(&self, kid: &str) -> Par {
        let (verifier, state) = (random_hex(32), random_hex(8));
        let response = self.post_auth("/oauth/par", self.par_form(&verifier, &state), kid, &self.dpop).await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["expires_in"], 299);
        let request_uri = body["request_uri"].as_str().unwrap().to_owned();
        assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:req-"));
        Par { request_uri, verifier, state }
    }

    async fn authorize(&self, client_id: &str, request_uri: &str) -> reqwest::Response {
        let url = url::Url::parse_with_params(
            &self.mock.url("/oauth/authorize"),
            [("client_id", client_id), ("request_uri", request_uri)],
        )
        .unwrap();
        self.http.get(url).send().await.unwrap()
    }

    /// Authorizes a PAR and returns the redirect's query.
    async fn code(&self, par: &Par) -> HashMap<String, String> {
        let response = self.authorize(&self.app.client_id, &par.request_uri).await;
        assert_eq!(response.status(), 302);
        let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert!(location.as_str().starts_with(&self.app.redirect_uri));
        location.query_pairs().into_owned().collect()
    }

    async fn exchange(&self, code: &str, verifier: &str, kid: &str, key: &Key) -> reqwest::Response {
        let form = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.to_owned()),
            ("redirect_uri", self.app.redirect_uri.clone()),
            ("code_verifier", verifier.to_owned()),
        ];
        self.post_auth("/oauth/token", form, kid, key).await
    }

    async fn refresh(&self, refresh_token: &str, kid: &str, key: &Key) -> reqwest::Response {
        let form = vec![("grant_type", "refresh_token".into()), ("refresh_token", refresh_token.to_owned())];
        self.post_auth("/oauth/token", form, kid, key).await
    }

    /// PAR → authorize → token with key `k1`: the token response.
    async fn login(&self) -> Value {
        let par = self.par("k1").await;
        let query = self.code(&par).await;
        let response = self.exchange(&query["code"], &par.verifier, "k1", &self.dpop).await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// An XRPC call with a DPoP proof by `key` carrying `nonce` and `ath`.
    #[allow(clippy::too_many_arguments)]
    async fn xrpc_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        key: &Key,
        nonce: Option<&str>,
        ath: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let htu = self.mock.url(path.split('?').next().unwrap());
        let proof = key.proof(method, &htu, nonce, ath);
        let request = match body {
            Some(b) => self.http.post(self.mock.url(path)).json(&b),
            None => self.http.get(self.mock.url(path)),
        };
        request.header("Authorization", format!("DPoP {token}")).header("DPoP", proof).send().await.unwrap()
    }

    /// An XRPC call done right (current resource nonce, right `ath`).
    async fn xrpc(&self, method: &str, path: &str, token: &str, key: &Key, body: Option<Value>) -> reqwest::Response {
        let nonce = self.mock.resource_nonce();
        self.xrpc_with(method, path, token, key, Some(&nonce), Some(&sha256_b64(token)), body).await
    }

    async fn stop(self) {
        self.app.server.stop(false).await;
        self.mock.stop().await;
    }
}

async fn error_of(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["error"].as_str().unwrap_or_default().to_owned()
}

fn post_record(did: &str, text: &str) -> Value {
    json!({
        "repo": did,
        "collection": "app.bsky.feed.post",
        "record": { "$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-27T12:00:00.000Z" },
    })
}

#[actix_web::test]
async fn metadata_and_identity_documents_have_the_expected_shape() {
    let h = Harness::new().await;
    let origin = h.mock.origin();
    let get = |path: &str| h.http.get(h.mock.url(path)).send();

    let asm: Value = get("/.well-known/oauth-authorization-server").await.unwrap().json().await.unwrap();
    assert_eq!(asm["issuer"], origin);
    assert_eq!(asm["pushed_authorization_request_endpoint"], format!("{origin}/oauth/par"));
    assert_eq!(asm["authorization_endpoint"], format!("{origin}/oauth/authorize"));
    assert_eq!(asm["token_endpoint"], format!("{origin}/oauth/token"));
    assert_eq!(asm["revocation_endpoint"], format!("{origin}/oauth/revoke"));
    assert_eq!(asm["require_pushed_authorization_requests"], true);
    assert_eq!(asm["dpop_signing_alg_values_supported"], json!(["ES256"]));
    assert_eq!(asm["token_endpoint_auth_methods_supported"], json!(["none", "private_key_jwt"]));
    assert_eq!(asm["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(asm["authorization_response_iss_parameter_supported"], true);
    assert_eq!(asm["client_id_metadata_document_supported"], true);
    assert_eq!(asm["scopes_supported"], json!(["atproto", "transition:generic", "transition:chat.bsky"]));

    let prm: Value = get("/.well-known/oauth-protected-resource").await.unwrap().json().await.unwrap();
    assert_eq!(prm["resource"], origin);
    assert_eq!(prm["authorization_servers"], json!([origin]));

    let did = get("/.well-known/atproto-did").await.unwrap().text().await.unwrap();
    assert_eq!(did, "did:plc:ewvi7nxzyoun6zhxrhs64oiz");
    let doc: Value = get(&format!("/plc/{did}")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["id"], did);
    assert_eq!(doc["alsoKnownAs"], json!(["at://alice.test"]));
    assert_eq!(doc["service"][0]["id"], "#atproto_pds");
    assert_eq!(doc["service"][0]["type"], "AtprotoPersonalDataServer");
    assert_eq!(doc["service"][0]["serviceEndpoint"], origin);
    assert_eq!(get("/plc/did:plc:someoneelse0000000000000").await.unwrap().status(), 404);
    h.stop().await;
}

#[actix_web::test]
async fn full_flow_with_rotation_and_refresh_replay_detection() {
    let h = Harness::new().await;
    let par = h.par("k1").await;
    assert_eq!(h.mock.par_count(), 1);
    let query = h.code(&par).await;
    assert_eq!(query["state"], par.state);
    assert_eq!(query["iss"], h.mock.origin());

    let response = h.exchange(&query["code"], &par.verifier, "k1", &h.dpop).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("dpop-nonce"));
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    assert_eq!(tokens["scope"], "atproto transition:generic");
    assert_eq!(tokens["sub"], h.mock.did());
    assert_eq!(tokens["expires_in"], 1800);
    assert_eq!(h.mock.token_count(), 1);
    assert_eq!(h.mock.last_client_kid().as_deref(), Some("k1"));
    assert_eq!(h.mock.sessions_active(), 1);
    // The code is single use.
    let again = h.exchange(&query["code"], &par.verifier, "k1", &h.dpop).await;
    assert_eq!(error_of(again).await, "invalid_grant");

    let access = tokens["access_token"].as_str().unwrap();
    let created = h
        .xrpc("POST", "/xrpc/com.atproto.repo.createRecord", access, &h.dpop, Some(post_record(&h.mock.did(), "hi")))
        .await;
    assert_eq!(created.status(), 200);
    assert!(created.headers().contains_key("dpop-nonce"));
    let created: Value = created.json().await.unwrap();
    let records = h.mock.records();
    assert_eq!(records.len(), 1);
    assert_eq!(created["uri"], records[0].uri);
    assert!(records[0].uri.starts_with(&format!("at://{}/app.bsky.feed.post/", h.mock.did())));
    assert_eq!(records[0].record["text"], "hi");
    assert!(created["cid"].as_str().unwrap().starts_with("bafy"));

    let session = h.xrpc("GET", "/xrpc/com.atproto.server.getSession", access, &h.dpop, None).await;
    let session: Value = session.json().await.unwrap();
    assert_eq!(session, json!({ "did": h.mock.did(), "handle": "alice.test", "active": true }));
    let path = format!("/xrpc/app.bsky.actor.getProfile?actor={}", h.mock.handle());
    let profile: Value = h.xrpc("GET", &path, access, &h.dpop, None).await.json().await.unwrap();
    assert_eq!(profile["did"], h.mock.did());

    // Rotation.
    let first_refresh = tokens["refresh_token"].as_str().unwrap();
    let rotated = h.refresh(first_refresh, "k1", &h.dpop).await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert_ne!(rotated["refresh_token"], tokens["refresh_token"]);
    assert_eq!(h.mock.refresh_count(), 1);
    let new_access = rotated["access_token"].as_str().unwrap();
    assert_eq!(h.xrpc("GET", "/xrpc/com.atproto.server.getSession", new_access, &h.dpop, None).await.status(), 200);

    // Reusing the old refresh token: invalid_grant, and the whole session dies.
    let replay = h.refresh(first_refresh, "k1", &h.dpop).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(error_of(replay).await, "invalid_grant");
    assert_eq!(h.mock.refresh_replays(), 1);
    assert_eq!(h.mock.sessions_active(), 0);
    let dead = h.xrpc("GET", "/xrpc/com.atproto.server.getSession", new_access, &h.dpop, None).await;
    assert_eq!(dead.status(), 401);
    assert_eq!(error_of(dead).await, "InvalidToken");
    let newest = rotated["refresh_token"].as_str().unwrap();
    assert_eq!(error_of(h.refresh(newest, "k1", &h.dpop).await).await, "invalid_grant");
    assert_eq!(h.mock.refresh_count(), 1);
    h.stop().await;
}

#[actix_web::test]
async fn nonce_challenge_then_success() {
    let h = Harness::new().await;
    let (verifier, state) = (random_hex(32), random_hex(8));
    let mut form = h.par_form(&verifier, &state);
    form.push(("client_id", h.app.client_id.clone()));
    form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
    form.push(("client_assertion", h.app.assertion("k1", &h.mock.origin())));

    let first = h.post("/oauth/par", &form, &h.dpop, None).await;
    assert_eq!(first.status(), 400);
    let nonce = first.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(error_of(first).await, "use_dpop_nonce");
    assert_eq!(h.mock.nonce_challenges(), 1);
    // Same client assertion, new proof with the nonce.
    let second = h.post("/oauth/par", &form, &h.dpop, Some(&nonce)).await;
    assert_eq!(second.status(), 201);

    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let ath = sha256_b64(access);
    // The authorization server's nonce is not the resource server's.
    let path = "/xrpc/com.atproto.server.getSession";
    let challenged = h.xrpc_with("GET", path, access, &h.dpop, Some(&nonce), Some(&ath), None).await;
    assert_eq!(challenged.status(), 401);
    let www = challenged.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert!(www.starts_with(r#"DPoP error="use_dpop_nonce""#), "{www}");
    let rs_nonce = challenged.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(error_of(challenged).await, "use_dpop_nonce");
    let ok = h.xrpc_with("GET", path, access, &h.dpop, Some(&rs_nonce), Some(&ath), None).await;
    assert_eq!(ok.status(), 200);

    // After a rotation the old nonce is stale.
    h.mock.rotate_nonce();
    let stale = h.xrpc_with("GET", path, access, &h.dpop, Some(&rs_nonce), Some(&ath), None).await;
    assert_eq!(stale.status(), 401);
    let fresh = stale.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(fresh, rs_nonce);
    assert_eq!(h.xrpc_with("GET", path, access, &h.dpop, Some(&fresh), Some(&ath), None).await.status(), 200);
    let refreshed = {
        let form = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap().to_owned()),
            ("client_id", h.app.client_id.clone()),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
            ("client_assertion", h.app.assertion("k1", &h.mock.origin())),
        ];
        h.post("/oauth/token", &form, &h.dpop, Some(&nonce)).await
    };
    assert_eq!(error_of(refreshed).await, "use_dpop_nonce");
    assert_eq!(h.mock.nonce_challenges(), 4);
    h.stop().await;
}

#[actix_web::test]
async fn replayed_jti_is_refused() {
    let h = Harness::new().await;
    let (verifier, state) = (random_hex(32), random_hex(8));
    let mut form = h.par_form(&verifier, &state);
    form.push(("client_id", h.app.client_id.clone()));
    form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
    form.push(("client_assertion", h.app.assertion("k1", &h.mock.origin())));
    let proof = h.dpop.proof("POST", &h.mock.url("/oauth/par"), Some(&h.mock.auth_server_nonce()), None);
    let send = || h.http.post(h.mock.url("/oauth/par")).header("DPoP", proof.clone()).form(&form).send();
    assert_eq!(send().await.unwrap().status(), 201);
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert_eq!(error_of(replay).await, "invalid_dpop_proof");

    // A replayed client assertion (fresh proof) is invalid_client.
    let again = h.post("/oauth/par", &form, &h.dpop, Some(&h.mock.auth_server_nonce())).await;
    assert_eq!(again.status(), 401);
    assert_eq!(error_of(again).await, "invalid_client");

    // At the PDS too.
    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let url = h.mock.url("/xrpc/com.atproto.server.getSession");
    let proof = h.dpop.proof("GET", &url, Some(&h.mock.resource_nonce()), Some(&sha256_b64(access)));
    let send =
        || h.http.get(&url).header("Authorization", format!("DPoP {access}")).header("DPoP", proof.clone()).send();
    assert_eq!(send().await.unwrap().status(), 200);
    let replay = send().await.unwrap();
    assert_eq!(replay.status(), 401);
    assert!(replay.headers()["www-authenticate"].to_str().unwrap().contains("invalid_dpop_proof"));
    assert_eq!(h.mock.replay_rejections(), 3);
    h.stop().await;
}

#[actix_web::test]
async fn wrong_htu_or_htm_is_refused() {
    let h = Harness::new().await;
    let nonce = h.mock.auth_server_nonce();
    let (verifier, state) = (random_hex(32), random_hex(8));
    let mut form = h.par_form(&verifier, &state);
    form.push(("client_id", h.app.client_id.clone()));
    form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
    for (htm, htu) in [
        ("POST", h.mock.url("/oauth/token")),
        ("POST", format!("{}?x=1", h.mock.url("/oauth/par"))),
        ("POST", "http://127.0.0.1:1/oauth/par".to_owned()),
        ("GET", h.mock.url("/oauth/par")),
    ] {
        let mut form = form.clone();
        form.push(("client_assertion", h.app.assertion("k1", &h.mock.origin())));
        let proof = h.dpop.proof(htm, &htu, Some(&nonce), None);
        let response = h.http.post(h.mock.url("/oauth/par")).header("DPoP", proof).form(&form).send().await.unwrap();
        assert_eq!(response.status(), 400, "{htm} {htu}");
        assert_eq!(error_of(response).await, "invalid_dpop_proof");
    }
    assert_eq!(h.mock.par_count(), 0);
    h.stop().await;
}

#[actix_web::test]
async fn wrong_ath_bearer_scheme_and_expiry_are_refused() {
    let h = Harness::new().await;
    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let path = "/xrpc/com.atproto.server.getSession";
    let nonce = h.mock.resource_nonce();
    let wrong = h.xrpc_with("GET", path, access, &h.dpop, Some(&nonce), Some(&sha256_b64("other")), None).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers()["www-authenticate"].to_str().unwrap().contains(r#"error="invalid_dpop_proof""#));
    let missing = h.xrpc_with("GET", path, access, &h.dpop, Some(&nonce), None, None).await;
    assert_eq!(missing.status(), 401);

    let bearer = h.http.get(h.mock.url(path)).bearer_auth(access).send().await.unwrap();
    assert_eq!(bearer.status(), 401);
    assert!(bearer.headers()["www-authenticate"].to_str().unwrap().starts_with(r#"DPoP error="invalid_token""#));
    assert_eq!(error_of(bearer).await, "InvalidToken");

    h.mock.expire_access_tokens();
    let expired = h.xrpc("GET", path, access, &h.dpop, None).await;
    assert_eq!(expired.status(), 401);
    let www = expired.headers()["www-authenticate"].to_str().unwrap().to_owned();
    assert_eq!(www, r#"DPoP error="invalid_token", error_description="\"exp\" claim timestamp check failed""#);
    assert_eq!(error_of(expired).await, "ExpiredToken");
    // A refresh still works.
    let refreshed = h.refresh(tokens["refresh_token"].as_str().unwrap(), "k1", &h.dpop).await;
    assert_eq!(refreshed.status(), 200);
    h.stop().await;
}

#[actix_web::test]
async fn another_dpop_key_or_client_key_is_refused() {
    let h = Harness::new().await;
    let other = Key::new();
    assert_ne!(other.jkt(), h.dpop.jkt());
    // Code exchange with another DPoP key than the PAR's.
    let par = h.par("k1").await;
    let query = h.code(&par).await;
    assert_eq!(error_of(h.exchange(&query["code"], &par.verifier, "k1", &other).await).await, "invalid_grant");

    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let response = h.xrpc("GET", "/xrpc/com.atproto.server.getSession", access, &other, None).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"));
    assert_eq!(error_of(h.refresh(refresh, "k1", &other).await).await, "invalid_grant");
    // The session was authenticated with k1: k2 may not refresh it.
    assert_eq!(error_of(h.refresh(refresh, "k2", &h.dpop).await).await, "invalid_grant");
    assert_eq!(h.mock.last_client_kid().as_deref(), Some("k2"));
    // Failed attempts did not use the refresh token up.
    assert_eq!(h.refresh(refresh, "k1", &h.dpop).await.status(), 200);
    h.stop().await;
}

#[actix_web::test]
async fn authorize_needs_a_fresh_pushed_request() {
    let h = Harness::new().await;
    let verifier = random_hex(32);
    let plain = url::Url::parse_with_params(
        &h.mock.url("/oauth/authorize"),
        [
            ("client_id", h.app.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", h.app.redirect_uri.as_str()),
            ("state", "s"),
            ("scope", "atproto"),
            ("code_challenge", &sha256_b64(&verifier)),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap();
    assert_eq!(h.http.get(plain).send().await.unwrap().status(), 400);

    let par = h.par("k1").await;
    assert_eq!(h.authorize("http://localhost", &par.request_uri).await.status(), 400);
    // Consumed by the failed attempt: single use.
    assert_eq!(h.authorize(&h.app.client_id, &par.request_uri).await.status(), 400);
    let par = h.par("k1").await;
    assert_eq!(h.authorize(&h.app.client_id, &par.request_uri).await.status(), 302);
    assert_eq!(h.authorize(&h.app.client_id, &par.request_uri).await.status(), 400);
    h.stop().await;
}

#[actix_web::test]
async fn par_refuses_bad_requests() {
    let h = Harness::new().await;
    let verifier = random_hex(32);
    // (expected error, parameter, new value or None to leave it out)
    let cases = [
        ("invalid_request", "code_challenge", None),
        ("invalid_request", "code_challenge_method", Some("plain")),
        ("invalid_request", "code_challenge", Some("short")),
        ("invalid_scope", "scope", Some("transition:generic")),
        ("invalid_scope", "scope", Some("atproto transition:chat.bsky")),
        ("invalid_request", "redirect_uri", Some("http://127.0.0.1:9/elsewhere")),
        ("invalid_request", "login_hint", Some("bob.test")),
        ("invalid_request", "state", None),
        ("unsupported_response_type", "response_type", Some("token")),
    ];
    for (expected, name, value) in cases {
        let mut form = h.par_form(&verifier, "st");
        form.retain(|(k, _)| *k != name);
        if let Some(v) = value {
            form.push((name, v.to_owned()));
        }
        let response = h.post_auth("/oauth/par", form.clone(), "k1", &h.dpop).await;
        assert_eq!(response.status(), 400, "{form:?}");
        assert_eq!(error_of(response).await, expected, "{form:?}");
    }
    // The DID works as a login hint.
    let mut form = h.par_form(&verifier, "st");
    form.iter_mut().filter(|(k, _)| *k == "login_hint").for_each(|p| p.1 = h.mock.did());
    assert_eq!(h.post_auth("/oauth/par", form, "k1", &h.dpop).await.status(), 201);
    // No DPoP proof at all.
    let mut form = h.par_form(&verifier, "st");
    form.push(("client_id", h.app.client_id.clone()));
    let response = h.http.post(h.mock.url("/oauth/par")).form(&form).send().await.unwrap();
    assert_eq!(error_of(response).await, "invalid_dpop_proof");
    assert_eq!(h.mock.par_count(), 1);
    h.stop().await;
}

#[actix_web::test]
async fn pkce_mismatch_is_refused() {
    let h = Harness::new().await;
    let par = h.par("k1").await;
    let query = h.code(&par).await;
    let response = h.exchange(&query["code"], &random_hex(32), "k1", &h.dpop).await;
    assert_eq!(response.status(), 400);
    assert_eq!(error_of(response).await, "invalid_grant");
    assert_eq!(h.mock.token_count(), 0);
    h.stop().await;
}

#[actix_web::test]
async fn client_authentication_is_checked() {
    let h = Harness::new().await;
    let verifier = random_hex(32);
    let hr = &h;
    let send = |assertion: String| {
        let mut form = hr.par_form(&verifier, "st");
        form.push(("client_id", hr.app.client_id.clone()));
        form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
        form.push(("client_assertion", assertion));
        async move { hr.post("/oauth/par", &form, &hr.dpop, Some(&hr.mock.auth_server_nonce())).await }
    };
    let wrong_aud = send(h.app.assertion("k1", "https://bsky.social")).await;
    assert_eq!(wrong_aud.status(), 401);
    assert_eq!(error_of(wrong_aud).await, "invalid_client");
    let claims = |exp: i64| json!({ "iss": h.app.client_id, "sub": h.app.client_id, "aud": h.mock.origin(), "jti": random_hex(8), "iat": now(), "exp": exp });
    let expired = h.app.key("k1").sign(json!({ "alg": "ES256", "kid": "k1" }), claims(now() - 1));
    assert_eq!(send(expired).await.status(), 401);
    let unknown_kid = h.app.key("k1").sign(json!({ "alg": "ES256", "kid": "k9" }), claims(now() + 60));
    assert_eq!(send(unknown_kid).await.status(), 401);
    let wrong_key = h.app.key("k2").sign(json!({ "alg": "ES256", "kid": "k1" }), claims(now() + 60));
    assert_eq!(send(wrong_key).await.status(), 401);
    assert_eq!(send(h.app.assertion("k2", &h.mock.origin())).await.status(), 201);
    assert_eq!(h.mock.last_client_kid().as_deref(), Some("k2"));
    h.stop().await;
}

#[actix_web::test]
async fn client_metadata_must_follow_the_atproto_profile() {
    let h = Harness::with(BlueskyMockConfig::default(), |m| m["dpop_bound_access_tokens"] = json!(false)).await;
    let response = h.post_auth("/oauth/par", h.par_form(&random_hex(32), "s"), "k1", &h.dpop).await;
    assert_eq!(response.status(), 401);
    assert_eq!(error_of(response).await, "invalid_client");
    h.stop().await;
    let h = Harness::with(BlueskyMockConfig::default(), |m| m["client_id"] = json!("https://example.com/meta")).await;
    let response = h.post_auth("/oauth/par", h.par_form(&random_hex(32), "s"), "k1", &h.dpop).await;
    assert_eq!(response.status(), 401);
    h.stop().await;
}

#[actix_web::test]
async fn revocation_and_revoke_all_end_sessions() {
    let h = Harness::new().await;
    let tokens = h.login().await;
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let response = h.post_auth("/oauth/revoke", vec![("token", refresh.to_owned())], "k1", &h.dpop).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.mock.revocation_count(), 1);
    assert_eq!(h.mock.sessions_active(), 0);
    let access = tokens["access_token"].as_str().unwrap();
    assert!(!h.mock.is_access_token_active(access));
    assert_eq!(h.xrpc("GET", "/xrpc/com.atproto.server.getSession", access, &h.dpop, None).await.status(), 401);
    let unknown = h.post_auth("/oauth/revoke", vec![("token", "nope".into())], "k1", &h.dpop).await;
    assert_eq!(unknown.status(), 200);

    let tokens = h.login().await;
    assert_eq!(h.mock.sessions_active(), 1);
    h.mock.revoke_all();
    assert_eq!(h.mock.sessions_active(), 0);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(error_of(h.refresh(refresh, "k1", &h.dpop).await).await, "invalid_grant");
    h.stop().await;
}

/// PAR → authorize → token for a localhost development client (redirect port 43210).
async fn localhost_login(h: &Harness, client_id: &str, scope: &str) -> Value {
    let redirect_uri = "http://127.0.0.1:43210/callback";
    let verifier = random_hex(32);
    let form = vec![
        ("client_id", client_id.to_owned()),
        ("response_type", "code".to_owned()),
        ("redirect_uri", redirect_uri.to_owned()),
        ("state", "xyz".to_owned()),
        ("scope", scope.to_owned()),
        ("code_challenge", sha256_b64(&verifier)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    let response = h.post("/oauth/par", &form, &h.dpop, Some(&h.mock.auth_server_nonce())).await;
    assert_eq!(response.status(), 201);
    let request_uri = response.json::<Value>().await.unwrap()["request_uri"].as_str().unwrap().to_owned();
    let response = h.authorize(client_id, &request_uri).await;
    let location = url::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
    assert!(location.as_str().starts_with(redirect_uri));
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let form = vec![
        ("client_id", client_id.to_owned()),
        ("grant_type", "authorization_code".to_owned()),
        ("code", code),
        ("redirect_uri", redirect_uri.to_owned()),
        ("code_verifier", verifier),
    ];
    let response = h.post("/oauth/token", &form, &h.dpop, Some(&h.mock.auth_server_nonce())).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn localhost_public_client_is_accepted() {
    let h = Harness::new().await;
    let client_id = format!(
        "http://localhost?{}",
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("redirect_uri", "http://127.0.0.1/callback")
            .append_pair("scope", "atproto transition:generic")
            .finish()
    );
    let tokens = localhost_login(&h, &client_id, "atproto transition:generic").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(h.xrpc("GET", "/xrpc/com.atproto.server.getSession", access, &h.dpop, None).await.status(), 200);
    assert_eq!(h.mock.last_client_kid(), None);
    let post = post_record(&h.mock.did(), "from localhost");
    assert_eq!(h.xrpc("POST", "/xrpc/com.atproto.repo.createRecord", access, &h.dpop, Some(post)).await.status(), 200);
    // The localhost client may refresh without client authentication.
    let refresh = vec![
        ("client_id", client_id.clone()),
        ("grant_type", "refresh_token".to_owned()),
        ("refresh_token", tokens["refresh_token"].as_str().unwrap().to_owned()),
    ];
    let response = h.post("/oauth/token", &refresh, &h.dpop, Some(&h.mock.auth_server_nonce())).await;
    assert_eq!(response.status(), 200);

    // With the default scope (atproto only) the account can be read but not written to.
    let default_scope = "http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback";
    let tokens = localhost_login(&h, default_scope, "atproto").await;
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(tokens["scope"], "atproto");
    assert_eq!(h.xrpc("GET", "/xrpc/com.atproto.server.getSession", access, &h.dpop, None).await.status(), 200);
    let post = post_record(&h.mock.did(), "no scope");
    assert_eq!(h.xrpc("POST", "/xrpc/com.atproto.repo.createRecord", access, &h.dpop, Some(post)).await.status(), 403);
    assert_eq!(h.mock.records().len(), 1);

    let verifier = random_hex(32);

    // A localhost redirect URI (not an IP) or a scope beyond the client_id's is refused.
    let mut bad = vec![
        ("client_id", client_id.clone()),
        ("response_type", "code".to_owned()),
        ("redirect_uri", "http://localhost:43210/callback".to_owned()),
        ("state", "xyz".to_owned()),
        ("scope", "atproto".to_owned()),
        ("code_challenge", sha256_b64(&verifier)),
        ("code_challenge_method", "S256".to_owned()),
    ];
    let response = h.post("/oauth/par", &bad, &h.dpop, Some(&h.mock.auth_server_nonce())).await;
    assert_eq!(error_of(response).await, "invalid_request");
    bad[0].1 = "http://localhost".to_owned();
    bad[2].1 = "http://127.0.0.1:5/".to_owned();
    bad[4].1 = "atproto transition:generic".to_owned();
    let response = h.post("/oauth/par", &bad, &h.dpop, Some(&h.mock.auth_server_nonce())).await;
    assert_eq!(error_of(response).await, "invalid_scope");
    h.stop().await;
}

#[actix_web::test]
async fn writes_need_a_write_scope_and_a_valid_post() {
    let h = Harness::new().await;
    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let path = "/xrpc/com.atproto.repo.createRecord";
    let mut no_date = post_record(&h.mock.did(), "x");
    no_date["record"].as_object_mut().unwrap().remove("createdAt");
    let response = h.xrpc("POST", path, access, &h.dpop, Some(no_date)).await;
    assert_eq!(response.status(), 400);
    let other_repo = post_record("did:plc:someoneelse", "x");
    assert_eq!(h.xrpc("POST", path, access, &h.dpop, Some(other_repo)).await.status(), 400);
    let by_handle = post_record(&h.mock.handle(), "x");
    assert_eq!(h.xrpc("POST", path, access, &h.dpop, Some(by_handle)).await.status(), 200);
    assert_eq!(h.mock.records().len(), 1);
    h.stop().await;
}

#[actix_web::test]
async fn expired_refresh_token_is_invalid_grant() {
    let config = BlueskyMockConfig { refresh_token_lifetime_secs: 0, ..BlueskyMockConfig::default() };
    let h = Harness::with(config, |_| {}).await;
    let tokens = h.login().await;
    assert_eq!(h.mock.sessions_active(), 0);
    let response = h.refresh(tokens["refresh_token"].as_str().unwrap(), "k1", &h.dpop).await;
    assert_eq!(error_of(response).await, "invalid_grant");
    assert_eq!(h.mock.refresh_count(), 0);
    h.stop().await;
}

#[actix_web::test]
async fn the_resource_server_can_share_the_authorization_server_nonce() {
    let config = BlueskyMockConfig { separate_resource_nonce: false, ..BlueskyMockConfig::default() };
    let h = Harness::with(config, |_| {}).await;
    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let nonce = h.mock.auth_server_nonce();
    assert_eq!(nonce, h.mock.resource_nonce());
    let path = "/xrpc/com.atproto.server.getSession";
    let ok = h.xrpc_with("GET", path, access, &h.dpop, Some(&nonce), Some(&sha256_b64(access)), None).await;
    assert_eq!(ok.status(), 200);
    h.mock.rotate_nonce();
    assert_ne!(h.mock.auth_server_nonce(), nonce);
    assert_eq!(h.mock.auth_server_nonce(), h.mock.resource_nonce());
    h.stop().await;
}

#[actix_web::test]
async fn nonces_can_be_turned_off() {
    let config = BlueskyMockConfig { require_nonce: false, ..BlueskyMockConfig::default() };
    let h = Harness::with(config, |_| {}).await;
    let tokens = h.login().await;
    let access = tokens["access_token"].as_str().unwrap();
    let path = "/xrpc/com.atproto.server.getSession";
    let ok = h.xrpc_with("GET", path, access, &h.dpop, None, Some(&sha256_b64(access)), None).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key("dpop-nonce"));
    assert_eq!(h.mock.nonce_challenges(), 0);
    h.stop().await;
}
