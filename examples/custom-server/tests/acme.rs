//! The custom server: Acme is registered beside the built-in providers, `acme-tether providers`
//! lists it, and a whole connect flow ends in a token, through `tether_server::start` in process
//! and through the built binary, against a loopback mock shaped like Acme.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::header::LOCATION;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tether_core::ProviderRegistry;
use tether_server::{Config, ServeOptions};
use tether_testkit::{MockClientAuth, MockProvider, MockProviderConfig};
use tokio::io::{AsyncBufReadExt, BufReader};

// Like the binary, this test process sees the registration only if it links the crate.
use tether_provider_acme as _;

const API_KEY: &str = "acme-test-api-key-0123456789";
const BINARY: &str = env!("CARGO_BIN_EXE_acme-tether");

/// The testkit's mock authorization server (PKCE, client authentication, rotating refresh
/// tokens, revocation), mounted in an app of our own with the one route it lacks: Acme's
/// `GET /v2/me`. The same pattern fits any provider whose API the mock's flavors do not cover.
struct AcmeMock {
    mock: MockProvider,
    /// `http://127.0.0.1:PORT`.
    base: String,
    handle: ServerHandle,
}

/// Acme's `/v2/me`: the user inside a workspace, for a live access token.
async fn acme_me(req: HttpRequest, mock: web::Data<MockProvider>) -> HttpResponse {
    let bearer =
        req.headers().get("Authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|token| mock.is_access_token_valid(token)) {
        return HttpResponse::Unauthorized().json(json!({ "error": { "code": "invalid_token" } }));
    }
    HttpResponse::Ok().json(json!({
        "user": { "id": 42, "handle": "alice", "display_name": "Alice" },
        "workspace": { "id": "ws_7", "name": "Acme Corp" },
    }))
}

impl AcmeMock {
    async fn start() -> Self {
        let mock = MockProvider::new(MockProviderConfig {
            auto_approve: Some("alice".into()),
            client_auth: MockClientAuth::Basic,
            ..MockProviderConfig::default()
        });
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app_mock = mock.clone();
        let server = HttpServer::new(move || {
            let mock = app_mock.clone();
            App::new()
                .app_data(web::Data::new(mock.clone()))
                .route("/v2/me", web::get().to(acme_me))
                .configure(move |c| mock.configure(c))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { mock, base, handle }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// A fresh directory for one test's database and configuration.
fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("acme-tether-{}", tether_core::random_token(9).unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server configuration over a fresh SQLite file in `dir`, with `[providers.acme]` pointed at
/// the mock.
fn config_toml(acme: &AcmeMock, dir: &Path) -> String {
    format!(
        r#"
bind = "127.0.0.1:0"
database_url = "sqlite://{db}?mode=rwc"
api_keys = ["{API_KEY}"]
encryption_keys = ["{key}"]

[refresher]
enabled = false

[providers.acme]
client_id = "mock-client"
client_secret = "mock-secret"
authorize_url = "{base}/authorize"
token_url = "{base}/token"
userinfo_url = "{base}/v2/me"
revoke_url = "{base}/revoke"
api_base_url = "{base}/v2/"
"#,
        db = dir.join("tether.db").display(),
        key = tether_core::EncryptionKey::generate().unwrap(),
        base = acme.base,
    )
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// Through the HTTP API of the server at `base`, as an application and its user's browser
/// would: a connect session, the authorization at Acme, the callback, then a token, a
/// refresh and a disconnect.
async fn connect_and_use_a_token(base: &str, acme: &AcmeMock) {
    let api = reqwest::Client::new();
    let browser = reqwest::Client::builder()
        .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
        .redirect(Policy::none())
        .build()
        .unwrap();
    let call = |method: reqwest::Method, path: &str| api.request(method, format!("{base}{path}")).bearer_auth(API_KEY);

    let providers: Value = call(reqwest::Method::GET, "/v1/providers").send().await.unwrap().json().await.unwrap();
    let listed = providers["providers"].as_array().unwrap().iter().find(|p| p["id"] == "acme").cloned();
    let listed = listed.unwrap_or_else(|| panic!("acme is not in /v1/providers: {providers}"));
    assert_eq!(listed["configured"], true, "{listed}");
    assert_eq!(listed["redirect_uri"], format!("{base}/callback/acme"));

    let resp = call(reqwest::Method::POST, "/v1/connect-sessions")
        .json(&json!({ "owner": "team-1", "provider": "acme" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let session: Value = resp.json().await.unwrap();

    let to_acme = browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(to_acme.status().as_u16(), 302);
    let authorize = location(&to_acme);
    assert!(authorize.starts_with(&format!("{}/authorize?", acme.base)), "{authorize}");
    assert!(authorize.contains("code_challenge_method=S256") && authorize.contains("scope=profile+projects%3Aread"));
    let back = browser.get(&authorize).send().await.unwrap();
    assert_eq!(back.status().as_u16(), 302, "Acme approves and redirects back");
    let callback = location(&back);
    assert!(callback.starts_with(&format!("{base}/callback/acme?")), "{callback}");
    let done = browser.get(&callback).send().await.unwrap();
    assert_eq!(done.status().as_u16(), 200, "{}", done.text().await.unwrap());

    // The account id is Acme's quirk: workspace and user together.
    let list: Value =
        call(reqwest::Method::GET, "/v1/connections?owner=team-1").send().await.unwrap().json().await.unwrap();
    let connection = &list["connections"][0];
    assert_eq!(connection["provider"], "acme");
    assert_eq!(connection["account"]["id"], "ws_7:42", "{connection}");
    assert_eq!(connection["account"]["name"], "alice");
    let id = connection["id"].as_str().unwrap();

    let token: Value =
        call(reqwest::Method::GET, &format!("/v1/connections/{id}/token")).send().await.unwrap().json().await.unwrap();
    let access = token["access_token"].as_str().unwrap_or_else(|| panic!("no token: {token}"));
    assert!(acme.mock.is_access_token_valid(access));
    let refreshed: Value = call(reqwest::Method::GET, &format!("/v1/connections/{id}/token?force_refresh=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acme.mock.refresh_count(), 1);
    assert_ne!(refreshed["access_token"], token["access_token"]);

    let gone: Value =
        call(reqwest::Method::DELETE, &format!("/v1/connections/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(gone["revoked"], true, "{gone}");
    assert!(!acme.mock.is_access_token_valid(refreshed["access_token"].as_str().unwrap()));
}

#[test]
fn acme_is_registered_beside_the_built_in_providers() {
    let registry = ProviderRegistry::collect().unwrap();
    assert_eq!(registry.get("acme").map(|p| p.spec().display_name), Some("Acme Workspaces"));
    for builtin in ["github", "generic", "demo"] {
        assert!(registry.get(builtin).is_some(), "{builtin} comes with tether-server");
    }
}

#[test]
fn the_binary_lists_acme_in_providers_json() {
    let out = std::process::Command::new(BINARY).args(["providers", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = doc["providers"].as_array().unwrap().iter().filter_map(|p| p["id"].as_str()).collect();
    assert!(ids.contains(&"acme") && ids.contains(&"github"), "{ids:?}");
    let acme = doc["providers"].as_array().unwrap().iter().find(|p| p["id"] == "acme").unwrap();
    assert_eq!(acme["display_name"], "Acme Workspaces");
    assert_eq!(acme["pkce"], "s256");
    assert_eq!(acme["revocation"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_through_tether_server_start_completes_and_serves_a_token() {
    let acme = AcmeMock::start().await;
    let dir = temp_dir();
    let config = Config::from_toml(&config_toml(&acme, &dir)).unwrap();
    let server =
        tether_server::start(config, ServeOptions { workers: Some(2), ..ServeOptions::default() }).await.unwrap();
    connect_and_use_a_token(server.public_url.as_str().trim_end_matches('/'), &acme).await;
    server.stop().await;
    acme.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_binary_serves_acme() {
    let acme = AcmeMock::start().await;
    let dir = temp_dir();
    let config = dir.join("tether.toml");
    std::fs::write(&config, config_toml(&acme, &dir)).unwrap();
    let mut child = tokio::process::Command::new(BINARY)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .env("TETHER_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("Tether is listening on ") {
                return format!("http://{}", rest.split_whitespace().next().unwrap());
            }
        }
        panic!("acme-tether exited before listening");
    })
    .await
    .expect("acme-tether listens within a minute");
    connect_and_use_a_token(&base, &acme).await;
    child.kill().await.unwrap();
    acme.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}
