//! The claims of docs/security.md, tested: secrets sealed at rest and bound to their row,
//! key rotation while serving, scoped API keys, return_to allowlist, security headers, and no
//! secret in any log line at TRACE level.

use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;
use serde_json::json;
use tether_e2e::oauth1_mock::{CONSUMER_KEY, CONSUMER_SECRET, OAuth1Mock};
use tether_e2e::{API_KEY, Harness, HarnessOptions, READ_API_KEY, e2e_test, location};
use tether_store::sea_orm::{ConnectionTrait, Statement};

/// Every text value of the columns that could ever hold a secret, as stored; for SQLite also
/// the bytes of the database and WAL files (unless the URL is given as `sqlite-rows-only://`).
async fn raw_rows(db: &str) -> String {
    let (db, rows_only) = match db.strip_prefix("sqlite-rows-only://") {
        Some(rest) => (format!("sqlite://{rest}"), true),
        None => (db.to_owned(), false),
    };
    let db = db.as_str();
    let store = tether_store::SeaStore::connect(db, tether_store::testing::test_key_ring().unwrap()).await.unwrap();
    let conn = store.connection();
    let backend = conn.get_database_backend();
    let mut dump = String::new();
    for (table, columns) in [
        (
            "connections",
            &["access_token", "refresh_token", "token_secret", "token_extra", "account_name", "last_error", "scopes"][..],
        ),
        (
            "auth_flows",
            &["pkce_verifier", "state_hash", "link_token_hash", "browser_binding_hash", "return_to", "redirect_uri"][..],
        ),
        ("events", &["message"][..]),
    ] {
        let sql = format!("SELECT {} FROM {table}", columns.join(", "));
        for row in conn.query_all_raw(Statement::from_string(backend, sql)).await.unwrap() {
            for (i, _) in columns.iter().enumerate() {
                if let Ok(Some(v)) = row.try_get_by_index::<Option<String>>(i) {
                    dump.push_str(&v);
                    dump.push('\n');
                }
            }
        }
    }
    if let Some(path) = db.strip_prefix("sqlite://").filter(|_| !rows_only).map(|p| p.split('?').next().unwrap_or(p)) {
        for file in [path.to_owned(), format!("{path}-wal")] {
            if let Ok(bytes) = std::fs::read(&file) {
                dump.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    dump
}

fn oauth1_config(base: &str) -> String {
    format!(
        "[providers.twitter_oauth1]\nclient_id = \"{CONSUMER_KEY}\"\nclient_secret = \"{CONSUMER_SECRET}\"\n\
         request_token_url = \"{base}/oauth/request_token\"\nauthorize_url = \"{base}/oauth/authorize\"\n\
         token_url = \"{base}/oauth/access_token\"\n"
    )
}

e2e_test!(no_secret_reaches_the_database_in_plain_text, |db| {
    let twitter = OAuth1Mock::start().await;
    let h =
        Harness::start(&db, HarnessOptions { extra_config: oauth1_config(&twitter.base), ..Default::default() }).await;
    // An OAuth 2.0 flow, watching every secret that passes by.
    let connect_url = h.connect_url("user-1", None).await;
    let callback = h.authorize(&connect_url).await;
    let callback_url = url::Url::parse(&callback).unwrap();
    let query: std::collections::HashMap<_, _> = callback_url.query_pairs().into_owned().collect();
    assert_eq!(h.browser.get(&callback).send().await.unwrap().status().as_u16(), 200);
    let (_, list) = h.api_call(Method::GET, "/v1/connections?owner=user-1", None).await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();
    let (_, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token?force_refresh=true"), None).await;
    // An OAuth 1.0a flow, for the token secret.
    let (_, session) = h
        .api_call(Method::POST, "/v1/connect-sessions", Some(json!({"owner": "brand", "provider": "twitter_oauth1"})))
        .await;
    let r = h.browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    let r = h.browser.get(location(&r)).send().await.unwrap();
    assert_eq!(h.browser.get(location(&r)).send().await.unwrap().status().as_u16(), 200);
    let (_, list) = h.api_call(Method::GET, "/v1/connections?owner=brand", None).await;
    let oauth1_id = list["connections"][0]["id"].as_str().unwrap().to_owned();
    let (_, oauth1) = h.api_call(Method::GET, &format!("/v1/connections/{oauth1_id}/token"), None).await;

    let dump = raw_rows(&db).await;
    // Disconnecting reveals the refresh token (it is what gets revoked).
    let (status, _) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200);
    let refresh_token = h.mock.revoked_tokens().pop().unwrap();
    let link_token = connect_url.rsplit('/').next().unwrap().to_owned();
    let secrets = [
        ("access token", token["access_token"].as_str().unwrap().to_owned()),
        ("refresh token", refresh_token),
        ("OAuth 1.0a access token", oauth1["access_token"].as_str().unwrap().to_owned()),
        ("OAuth 1.0a token secret", oauth1["token_secret"].as_str().unwrap().to_owned()),
        ("authorization code", query["code"].clone()),
        ("state", query["state"].clone()),
        ("connect-link token", link_token),
        ("client secret", "mock-secret".to_owned()),
        ("consumer secret", CONSUMER_SECRET.to_owned()),
        ("API key", API_KEY.to_owned()),
    ];
    assert!(dump.contains("v1."), "sealed values are present");
    for (what, secret) in &secrets {
        assert!(!dump.contains(secret.as_str()), "the {what} is stored in plain text");
    }
    // After disconnect the secrets are gone entirely.
    let store = tether_store::SeaStore::connect(&db, tether_store::testing::test_key_ring().unwrap()).await.unwrap();
    let cid = tether_core::ConnectionId::parse(&id).unwrap();
    let row = store
        .connection()
        .query_one_raw(Statement::from_string(
            store.connection().get_database_backend(),
            format!("SELECT access_token, refresh_token FROM connections WHERE id = '{cid}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get_by_index::<Option<String>>(0).unwrap(), None);
    assert_eq!(row.try_get_by_index::<Option<String>>(1).unwrap(), None);
    h.stop().await;
    twitter.stop().await;
});

e2e_test!(keys_rotate_while_serving_then_the_old_key_can_go, |db| {
    let old = tether_core::EncryptionKey::generate().unwrap();
    let new = tether_core::EncryptionKey::generate().unwrap();
    let h =
        Harness::start(&db, HarnessOptions { encryption_keys: Some(vec![old.clone()]), ..Default::default() }).await;
    let first = h.connect("user-1").await;
    let second = h.connect("user-2").await;
    let mut served = Vec::new();
    for id in [&first, &second] {
        let (_, t) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
        served.push(t["access_token"].as_str().unwrap().to_owned());
    }
    h.stop().await;

    // Deploy step 1: every replica gets the new key first, the old one still opens.
    let h = Harness::start(
        &db,
        HarnessOptions { encryption_keys: Some(vec![new.clone(), old.clone()]), ..Default::default() },
    )
    .await;
    let reads = {
        let api = h.api.clone();
        let urls: Vec<String> =
            [&first, &second].iter().map(|id| h.url(&format!("/v1/connections/{id}/token"))).collect();
        tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..50 {
                for url in &urls {
                    let r = api.get(url).bearer_auth(API_KEY).send().await.unwrap();
                    assert_eq!(r.status().as_u16(), 200, "served during rotation");
                    ok += 1;
                }
            }
            ok
        })
    };
    // Step 2: `tether keys rotate` (the same call) while the server keeps serving.
    let ring = tether_core::KeyRing::parse(&[new.clone(), old.clone()]).unwrap();
    let rotating = tether_store::SeaStore::connect(&db, ring).await.unwrap();
    let report = rotating.reseal_secrets().await.unwrap();
    assert!(report.resealed >= 2, "{report:?}");
    assert_eq!(reads.await.unwrap(), 100);

    // Step 3: the old key can be removed.
    let only_new =
        tether_store::SeaStore::connect(&db, tether_core::KeyRing::parse(std::slice::from_ref(&new)).unwrap())
            .await
            .unwrap();
    let new_id = new.split(':').next().unwrap();
    for (id, before) in [&first, &second].into_iter().zip(&served) {
        let id = tether_core::ConnectionId::parse(id).unwrap();
        let tokens = tether_core::ConnectionStore::tokens(&only_new, id).await.unwrap().unwrap();
        assert_eq!(tether_core::ExposeSecret::expose_secret(&tokens.tokens.access_token), before.as_str());
    }
    // Every row is under the new key. (A SQLite WAL file may still hold old page images until
    // the next checkpoint; see docs/security.md.)
    let rows = raw_rows(&db.replace("sqlite://", "sqlite-rows-only://")).await;
    assert!(!rows.contains(&format!("v1.{}.", old.split(':').next().unwrap())));
    assert!(rows.contains(&format!("v1.{new_id}.")));
    h.stop().await;
});

e2e_test!(read_only_keys_cannot_change_anything, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let id = h.connect("user-1").await;
    let client = &h.api;
    let get = client.get(h.url(&format!("/v1/connections/{id}/token"))).bearer_auth(READ_API_KEY).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 200, "read keys read tokens");
    for (method, path) in [
        (Method::POST, "/v1/connect-sessions".to_owned()),
        (Method::POST, format!("/v1/connections/{id}/refresh")),
        (Method::DELETE, format!("/v1/connections/{id}")),
        (Method::POST, format!("/v1/proxy/{id}/userinfo")),
    ] {
        let r = client
            .request(method.clone(), h.url(&path))
            .bearer_auth(READ_API_KEY)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{method} {path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "forbidden");
    }
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "active");
    h.stop().await;
});

e2e_test!(return_to_must_be_an_allowed_origin, |db| {
    let options = HarnessOptions {
        extra_config: "allowed_return_origins = [\"https://app.example.com\"]".into(),
        ..Default::default()
    };
    let h = Harness::start(&db, options).await;
    for (url, ok) in [
        ("https://app.example.com/done", true),
        ("https://evil.example/done", false),
        ("https://app.example.com.evil.example/", false),
        ("http://app.example.com/done", false),
    ] {
        let (status, body) = h
            .api_call(
                Method::POST,
                "/v1/connect-sessions",
                Some(json!({"owner": "u", "provider": "mock", "return_to": url})),
            )
            .await;
        assert_eq!(status == 201, ok, "{url}: {status} {body}");
    }
    h.stop().await;
});

e2e_test!(browser_pages_send_security_headers, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let headers = resp.headers();
    assert_eq!(headers["referrer-policy"], "no-referrer", "the code in the callback URL never leaks in a Referer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("frame-ancestors 'none'"));
    assert_eq!(headers["cache-control"], "no-store");
    let cookie = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(h.connect_url("user-1", None).await)
        .send()
        .await
        .unwrap();
    let set_cookie = cookie.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && set_cookie.contains("Path=/callback"),
        "{set_cookie}"
    );
    h.stop().await;
});

/// Captures every log line of this test process at TRACE level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || Capture(writer.clone()))
            .with_ansi(false)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        buffer
    })
    .clone()
}

struct Capture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

e2e_test!(no_secret_in_any_log_line_at_trace_level, |db| {
    let logs = captured_logs();
    let options = HarnessOptions {
        mock: tether_testkit::MockProviderConfig {
            auto_approve: Some("alice".into()),
            access_token_ttl: Some(std::time::Duration::from_secs(60)),
            ..Default::default()
        },
        ..Default::default()
    };
    let h = Harness::start(&db, options).await;
    let connect_url = h.connect_url("user-1", None).await;
    let callback = h.authorize(&connect_url).await;
    let query: std::collections::HashMap<_, _> =
        url::Url::parse(&callback).unwrap().query_pairs().into_owned().collect();
    assert_eq!(h.browser.get(&callback).send().await.unwrap().status().as_u16(), 200);
    let (_, list) = h.api_call(Method::GET, "/v1/connections?owner=user-1", None).await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();
    let (_, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    let r = h.api.get(h.url(&format!("/v1/proxy/{id}/userinfo"))).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    h.mock.set_token_failure(Some(tether_testkit::MockFailure::InvalidGrant));
    let _ = h.api_call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
    let (status, _) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200);
    let revoked = h.mock.revoked_tokens();
    h.stop().await;

    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(text.contains("TRACE") || text.contains("DEBUG"), "logs were captured at a fine level");
    let mut secrets = vec![
        ("access token", token["access_token"].as_str().unwrap().to_owned()),
        ("authorization code", query["code"].clone()),
        ("state", query["state"].clone()),
        ("connect-link token", connect_url.rsplit('/').next().unwrap().to_owned()),
        ("client secret", "mock-secret".to_owned()),
        ("API key", API_KEY.to_owned()),
    ];
    secrets.extend(revoked.into_iter().map(|t| ("revoked token", t)));
    for (what, secret) in secrets {
        assert!(!text.contains(&secret), "the {what} appears in the logs");
    }
});
