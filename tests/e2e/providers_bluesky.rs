//! Bluesky (AT Protocol OAuth) through the real server against a loopback PDS with its own
//! authorization server (`tether_testkit::bluesky::BlueskyMock`), which enforces PAR, PKCE
//! S256, DPoP proofs (signature, htm/htu, jti replay, server nonces, `ath`, key binding),
//! `private_key_jwt` client assertions checked against the client metadata and JWKS that
//! Tether serves, and single-use rotating refresh tokens with replay detection.
//!
//! Covered: the published client documents; a connect with the handle as login hint; the
//! connect page asking for the handle (and going on without one); the token API refusing
//! DPoP-bound tokens; posting through the proxy (DPoP per request, the PDS's nonce challenge);
//! refresh with rotation, single flight under concurrent refreshes, refresh on an expired
//! token through the proxy; a dead session becoming `reauth_required`; revocation on
//! disconnect; a forged `iss` and an unknown account refused with nothing stored; the DPoP key
//! sealed at rest; the `http://localhost` development client.

use reqwest::Method;
use serde_json::{Value, json};
use tether_core::{EsKey, ExposeSecret};
use tether_e2e::tether_testkit::bluesky::{BlueskyMock, BlueskyMockConfig};
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test, location};
use tether_store::sea_orm::{ConnectionTrait, Statement};

/// A client key (private JWK with a kid) for `client_keys`.
fn client_key(kid: &str) -> String {
    let key = EsKey::generate().unwrap();
    let mut jwk: Value = serde_json::from_str(key.to_secret_jwk().expose_secret()).unwrap();
    jwk["kid"] = json!(kid);
    jwk.to_string()
}

/// The `[providers.bluesky]` table for a server talking to `pds` (resolution on loopback).
fn bluesky_config(pds: &BlueskyMock, keys: &[String]) -> String {
    let keys: Vec<String> = keys.iter().map(|k| format!("'{k}'")).collect();
    format!(
        "[providers.bluesky]\nclient_keys = [{keys}]\nclient_name = \"Tether e2e\"\nallow_insecure_loopback = true\n\
         default_server = \"{origin}\"\nplc_directory = \"{origin}/plc\"\ndns_nameserver = \"127.0.0.1:9\"\n\
         resolve_timeout_secs = 2\nhandle_hosts = {{ \"{handle}\" = \"{origin}\" }}\n",
        keys = keys.join(", "),
        origin = pds.origin(),
        handle = pds.handle(),
    )
}

async fn start(db: &str, pds: &BlueskyMock) -> Harness {
    let options =
        HarnessOptions { extra_config: bluesky_config(pds, &[client_key("k1")]), ..HarnessOptions::default() };
    Harness::start(db, options).await
}

async fn session(h: &Harness, owner: &str, login_hint: Option<&str>) -> String {
    let mut body = json!({ "owner": owner, "provider": "bluesky" });
    if let Some(hint) = login_hint {
        body["login_hint"] = json!(hint);
    }
    let (status, created) = h.api_call(Method::POST, "/v1/connect-sessions", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created["connect_url"].as_str().unwrap().to_owned()
}

/// From the authorization server's authorize URL through our callback; returns the callback
/// URL and the callback's status and body.
async fn at_server(h: &Harness, pds: &BlueskyMock, authorize_url: &str) -> (String, u16, String) {
    assert!(authorize_url.starts_with(&format!("{}/oauth/authorize?", pds.origin())), "{authorize_url}");
    let url = url::Url::parse(authorize_url).unwrap();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert!(query["request_uri"].starts_with("urn:ietf:params:oauth:request_uri:"), "{query:?}");
    assert_eq!(query.len(), 2, "only client_id and request_uri travel through the browser: {query:?}");
    let resp = h.browser.get(authorize_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the authorization server approves");
    let callback = location(&resp);
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    (callback, status, resp.text().await.unwrap())
}

/// A whole flow with the handle as login hint; returns the connection.
async fn connect(h: &Harness, pds: &BlueskyMock, owner: &str) -> Value {
    let resp = h.browser.get(session(h, owner, Some(&pds.handle())).await).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "{}", resp.text().await.unwrap());
    let (_, status, body) = at_server(h, pds, &location(&resp)).await;
    assert_eq!(status, 200, "callback: {body}");
    newest(h, owner).await
}

async fn newest(h: &Harness, owner: &str) -> Value {
    let (_, list) = h.get(&format!("/v1/connections?owner={owner}&provider=bluesky")).await;
    list["connections"][0].clone()
}

async fn post(h: &Harness, id: &str, text: &str) -> (u16, Value) {
    let resp = h
        .api
        .post(h.url(&format!("/v1/proxy/{id}/xrpc/com.atproto.repo.createRecord")))
        .bearer_auth(API_KEY)
        .json(&json!({
            "repo": "alice.test",
            "collection": "app.bsky.feed.post",
            "record": { "$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-11-27T12:00:00Z" },
        }))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The raw `token_secret` column of a connection.
async fn raw_token_secret(db: &str, id: &str) -> Option<String> {
    let store = tether_store::SeaStore::connect(db, tether_store::testing::test_key_ring().unwrap()).await.unwrap();
    let conn = store.connection();
    let sql = format!("SELECT token_secret FROM connections WHERE id = '{id}'");
    let row = conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap().unwrap();
    row.try_get_by_index::<Option<String>>(0).unwrap()
}

e2e_test!(bluesky_publishes_its_client_metadata_and_jwks, |db| {
    let pds = BlueskyMock::start(BlueskyMockConfig::default()).await.unwrap();
    let options = HarnessOptions {
        extra_config: bluesky_config(&pds, &[client_key("new-key"), client_key("old-key")]),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    let metadata_url = h.url("/providers/bluesky/client-metadata.json");
    let resp = h.api.get(&metadata_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["client_id"], metadata_url, "the client id is the document's own URL");
    assert_eq!(doc["redirect_uris"], json!([h.url("/callback/bluesky")]));
    assert_eq!(doc["dpop_bound_access_tokens"], true);
    assert_eq!(doc["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(doc["token_endpoint_auth_signing_alg"], "ES256");
    assert_eq!(doc["grant_types"], json!(["authorization_code", "refresh_token"]));
    assert_eq!(doc["scope"], "atproto transition:generic");
    assert_eq!(doc["client_name"], "Tether e2e");
    let jwks_url = doc["jwks_uri"].as_str().unwrap();
    assert_eq!(jwks_url, h.url("/providers/bluesky/jwks.json"));
    let jwks: Value = h.api.get(jwks_url).send().await.unwrap().json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.iter().map(|k| k["kid"].as_str().unwrap()).collect::<Vec<_>>(), ["new-key", "old-key"]);
    for key in keys {
        assert_eq!(
            (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
            (Some("EC"), Some("P-256"), Some("ES256"))
        );
        assert!(key.get("d").is_none(), "only public keys are published: {key}");
    }
    // Unknown documents and providers are JSON 404s.
    let resp = h.api.get(h.url("/providers/bluesky/secrets.json")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "not_found");
    let resp = h.api.get(h.url("/providers/github/client-metadata.json")).send().await.unwrap();
    assert!(matches!(resp.status().as_u16(), 400 | 404), "{}", resp.status());

    // New sessions sign with the first key.
    connect(&h, &pds, "user-1").await;
    assert_eq!(pds.last_client_kid().as_deref(), Some("new-key"));
    h.stop().await;
    pds.stop().await;
});

e2e_test!(bluesky_connects_with_a_handle_posts_through_the_proxy_refreshes_and_revokes, |db| {
    let pds = BlueskyMock::start(BlueskyMockConfig::default()).await.unwrap();
    let h = start(&db, &pds).await;

    let conn = connect(&h, &pds, "user-1").await;
    let id = conn["id"].as_str().unwrap().to_owned();
    assert_eq!(conn["account"]["id"], pds.did(), "the account is the DID: {conn}");
    assert_eq!(conn["account"]["name"], pds.handle());
    assert_eq!(conn["status"], "active");
    assert_eq!(conn["has_refresh_token"], true);
    assert!(conn["scopes"].as_array().unwrap().contains(&json!("atproto")), "{conn}");
    assert_eq!((pds.par_count(), pds.token_count()), (1, 1));
    assert!(pds.nonce_challenges() >= 1, "the authorization server's first answer asks for a nonce");

    // The bare token is useless without the connection's key: the token API says so.
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "token_bound");
    assert!(body["error"]["message"].as_str().unwrap().contains("proxy"), "{body}");

    // The DPoP key is sealed at rest.
    let sealed = raw_token_secret(&db, &id).await.expect("a DPoP key is stored");
    assert!(!sealed.contains("kty") && !sealed.contains("P-256"), "the key is not stored in clear: {sealed}");

    // Posting through the proxy: a DPoP proof per request. The PDS nonce learnt at connect
    // (its getSession answered the identity check) went stale: the challenge is answered by
    // sending again with the new nonce.
    pds.rotate_nonce();
    let before = pds.nonce_challenges();
    let (status, created) = post(&h, &id, "hello from tether").await;
    assert_eq!(status, 200, "{created}");
    assert!(created["uri"].as_str().unwrap().starts_with(&format!("at://{}/app.bsky.feed.post/", pds.did())));
    assert_eq!(pds.nonce_challenges(), before + 1, "one challenge from the PDS, then the nonce is known");
    let (status, _) = post(&h, &id, "second post").await;
    assert_eq!(status, 200);
    assert_eq!(pds.nonce_challenges(), before + 1, "the PDS nonce is remembered");
    let texts: Vec<_> = pds.records().iter().map(|r| r.record["text"].as_str().unwrap_or("").to_owned()).collect();
    assert_eq!(texts, ["hello from tether", "second post"]);
    let resp = h
        .api
        .get(h.url(&format!("/v1/proxy/{id}/xrpc/app.bsky.actor.getProfile?actor={}", pds.handle())))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["did"], pds.did());
    // The proxy stays on the user's PDS.
    let resp = h.api.get(h.url(&format!("/v1/proxy/{id}/..%2F..%2Fetc"))).bearer_auth(API_KEY).send().await.unwrap();
    assert!(matches!(resp.status().as_u16(), 400 | 404), "{}", resp.status());

    // Refresh rotates the refresh token; the spent one is never sent again.
    for n in 1..=2 {
        let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(pds.refresh_count(), n);
    }
    assert_eq!(pds.refresh_replays(), 0);
    assert_eq!(pds.last_client_kid().as_deref(), Some("k1"), "refreshes use the session's client key");

    // Concurrent refreshes share one flight: no refresh token is used twice.
    let path = format!("/v1/connections/{id}/refresh");
    let (a, b, c, d) = tokio::join!(
        h.api_call(Method::POST, &path, None),
        h.api_call(Method::POST, &path, None),
        h.api_call(Method::POST, &path, None),
        h.api_call(Method::POST, &path, None),
    );
    for (status, body) in [a, b, c, d] {
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(pds.refresh_replays(), 0, "single flight: no spent refresh token is replayed");
    assert_eq!(pds.sessions_active(), 1);

    // An access token the PDS no longer accepts: the proxy refreshes once and sends again.
    let refreshes = pds.refresh_count();
    pds.expire_access_tokens();
    let (status, body) = post(&h, &id, "after expiry").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(pds.refresh_count(), refreshes + 1);

    // Verify asks the PDS whose token it is.
    let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{id}/verify"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["account"]["id"], pds.did());

    // Disconnect revokes the session at the authorization server.
    let (status, out) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["revoked"], true, "{out}");
    assert_eq!((pds.revocation_count(), pds.sessions_active()), (1, 0));
    assert_eq!(raw_token_secret(&db, &id).await, None, "the key is gone with the tokens");
    h.stop().await;
    pds.stop().await;
});

e2e_test!(bluesky_connect_page_asks_for_the_handle_and_can_go_on_without_one, |db| {
    let pds = BlueskyMock::start(BlueskyMockConfig::default()).await.unwrap();
    let h = start(&db, &pds).await;

    let link = session(&h, "user-1", None).await;
    let resp = h.browser.get(&link).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let page = resp.text().await.unwrap();
    assert!(page.contains("Bluesky handle") && page.contains("name=\"login_hint\""), "{page}");

    // A malformed handle shows the form again with the reason; the link stays usable.
    let resp = h.browser.post(&link).form(&[("login_hint", "not a handle!")]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("not a valid handle") && page.contains("not a handle!"), "{page}");
    assert_eq!(pds.par_count(), 0, "nothing was pushed for a malformed handle");

    // The typed handle starts the flow at that account's server.
    let resp = h.browser.post(&link).form(&[("login_hint", pds.handle().as_str())]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let (_, status, body) = at_server(&h, &pds, &location(&resp)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(newest(&h, "user-1").await["account"]["id"], pds.did());

    // Without a handle the flow starts at the default server; the account is then resolved
    // from the token's `sub` and checked to be served by that server.
    let link = session(&h, "user-2", None).await;
    let resp = h.browser.post(&link).form(&[("login_hint", "")]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let (_, status, body) = at_server(&h, &pds, &location(&resp)).await;
    assert_eq!(status, 200, "{body}");
    let conn = newest(&h, "user-2").await;
    assert_eq!(
        (conn["account"]["id"].as_str(), conn["account"]["name"].as_str()),
        (Some(pds.did().as_str()), Some(pds.handle().as_str()))
    );
    h.stop().await;
    pds.stop().await;
});

e2e_test!(bluesky_refuses_a_forged_issuer_and_an_unknown_account_and_stores_nothing, |db| {
    let pds = BlueskyMock::start(BlueskyMockConfig::default()).await.unwrap();
    let h = start(&db, &pds).await;

    // The callback's `iss` must be the server the flow started at.
    let resp = h.browser.get(session(&h, "user-1", Some(&pds.handle())).await).send().await.unwrap();
    let authorize_url = location(&resp);
    let resp = h.browser.get(&authorize_url).send().await.unwrap();
    let callback = location(&resp);
    let mut forged = url::Url::parse(&callback).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            if k == "iss" {
                (k.into_owned(), "https://evil.example".to_owned())
            } else {
                (k.into_owned(), v.into_owned())
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let resp = h.browser.get(forged.as_str()).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert!(matches!(status, 400 | 502), "{status}: {page}");
    assert!(page.contains("evil.example"), "{page}");
    assert_eq!(pds.token_count(), 0, "no code was exchanged");
    assert_eq!(h.connection_count().await, 0);

    // A DID nobody serves: refused before anything is pushed.
    let resp =
        h.browser.get(session(&h, "user-1", Some("did:plc:aaaaaaaaaaaaaaaaaaaaaaaa")).await).send().await.unwrap();
    let status = resp.status().as_u16();
    assert!(matches!(status, 400 | 502), "{status}");
    assert_eq!(pds.par_count(), 1, "only the first flow pushed a request");

    // A login hint is refused for providers that take none.
    let (status, body) = h
        .api_call(
            Method::POST,
            "/v1/connect-sessions",
            Some(json!({ "owner": "u", "provider": "mock", "login_hint": "alice" })),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{body}");
    h.stop().await;
    pds.stop().await;
});

e2e_test!(bluesky_dead_session_becomes_reauth_required, |db| {
    let pds = BlueskyMock::start(BlueskyMockConfig::default()).await.unwrap();
    let h = start(&db, &pds).await;
    let id = connect(&h, &pds, "user-1").await["id"].as_str().unwrap().to_owned();
    pds.revoke_all();
    // Verify notices: the PDS refuses the token, the refresh is refused too.
    let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{id}/verify"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("reauth_required")), "{body}");
    let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert!(events["events"].as_array().unwrap().iter().any(|e| e["kind"] == "reauth_required"), "{events}");
    // Reconnecting the same account brings the connection back.
    connect(&h, &pds, "user-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "active");
    let (status, _) = post(&h, &id, "back again").await;
    assert_eq!(status, 200);
    h.stop().await;
    pds.stop().await;
});

e2e_test!(bluesky_localhost_development_client_needs_no_keys, |db| {
    let pds = BlueskyMock::start(BlueskyMockConfig::default()).await.unwrap();
    let options = HarnessOptions { extra_config: bluesky_config(&pds, &[]), ..HarnessOptions::default() };
    let h = Harness::start(&db, options).await;
    let doc: Value =
        h.api.get(h.url("/providers/bluesky/client-metadata.json")).send().await.unwrap().json().await.unwrap();
    let client_id = doc["client_id"].as_str().unwrap();
    assert!(client_id.starts_with("http://localhost?redirect_uri=http%3A%2F%2F127.0.0.1%3A"), "{client_id}");
    assert_eq!(doc["token_endpoint_auth_method"], "none");
    let id = connect(&h, &pds, "user-1").await["id"].as_str().unwrap().to_owned();
    assert_eq!(pds.last_client_kid(), None, "a public client signs no assertion");
    let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = post(&h, &id, "from localhost").await;
    assert_eq!(status, 200);
    h.stop().await;
    pds.stop().await;
});
