//! Harness for end-to-end tests: a real `tether` server (the same code the binary runs) on a
//! random loopback port, over a fresh database of the chosen backend, in front of a loopback
//! mock provider; plus a browser-like HTTP client with a cookie jar.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use reqwest::header::LOCATION;
use serde_json::{Value, json};
use tether_server::{RunningServer, ServeOptions};
use tether_testkit::{MockProviderConfig, RunningMockProvider};

pub use tether_testkit;

pub mod oauth1_mock;

/// The API key every test server accepts (scope `full`).
pub const API_KEY: &str = "test-api-key-0123456789abcdef";
/// A read-only API key every test server accepts (scope `read`).
pub const READ_API_KEY: &str = "test-read-only-key-0123456789";

/// A database backend to run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file in a temporary directory (always available).
    Sqlite,
    /// PostgreSQL from `TETHER_TEST_POSTGRES_URL`.
    Postgres,
    /// MySQL / MariaDB from `TETHER_TEST_MYSQL_URL`.
    Mysql,
}

impl Backend {
    /// A fresh, empty database of this backend, or `None` when its environment variable is
    /// unset (the test is then skipped locally; CI always sets it). Panics when the variable is
    /// set but the server cannot be reached, so CI fails instead of skipping.
    pub async fn fresh_database(self) -> Option<String> {
        let var = match self {
            Backend::Sqlite => {
                let dir = std::env::temp_dir().join(format!("tether-e2e-{}", tether_core::random_token(9).unwrap()));
                std::fs::create_dir_all(&dir).unwrap();
                return Some(format!("sqlite://{}?mode=rwc", dir.join("tether.db").display()));
            }
            Backend::Postgres => "TETHER_TEST_POSTGRES_URL",
            Backend::Mysql => "TETHER_TEST_MYSQL_URL",
        };
        let Ok(admin) = std::env::var(var) else {
            eprintln!("{var} is not set: skipping the {self:?} variant");
            return None;
        };
        Some(
            tether_store::testing::fresh_database_url(&admin)
                .await
                .unwrap_or_else(|e| panic!("{var} is set but the database is unusable: {e}")),
        )
    }
}

impl Backend {
    /// Drops a database made by [`fresh_database`](Self::fresh_database) (best effort; a
    /// failed test leaves its database for inspection).
    pub async fn drop_database(self, database_url: &str) {
        let var = match self {
            Backend::Sqlite => return,
            Backend::Postgres => "TETHER_TEST_POSTGRES_URL",
            Backend::Mysql => "TETHER_TEST_MYSQL_URL",
        };
        if let Ok(admin) = std::env::var(var)
            && let Err(e) = tether_store::testing::drop_database(&admin, database_url).await
        {
            eprintln!("could not drop {database_url}: {e}");
        }
    }
}

/// A running server with its mock provider.
pub struct Harness {
    /// The server.
    pub server: RunningServer,
    /// The mock provider, configured as provider id `mock` (kind generic).
    pub mock: RunningMockProvider,
    /// Browser-like client: cookie jar, no automatic redirects.
    pub browser: reqwest::Client,
    /// API client.
    pub api: reqwest::Client,
}

/// Options for [`Harness::start`].
pub struct HarnessOptions {
    /// The mock provider's behaviour.
    pub mock: MockProviderConfig,
    /// Extra TOML appended to the server configuration; `{mock}` is replaced by the mock's
    /// base URL (no trailing slash).
    pub extra_config: String,
    /// Extra TOML inside `[providers.mock]`.
    pub provider_config: String,
    /// Provider kind for the mock: `generic` (standard endpoints, `sub` / `preferred_username`),
    /// or the id of a built-in provider whose mock flavor serves the provider's own paths
    /// (`github`, `linkedin`, `reddit`, `pinterest`, `facebook`, `google`, `microsoft`,
    /// `dropbox`, `notion`, `discord`, `spotify`, `twitch`, `zoom`, `instagram`, `threads`,
    /// `tiktok`, `slack`; Mastodon has its own multi-instance mock, `tether_testkit::mastodon`).
    pub kind: &'static str,
    /// A client secret for the server that differs from the mock's (to test rejection).
    pub server_client_secret: Option<String>,
    /// Run the background refresher (every second).
    pub refresher: bool,
    /// Encryption keys (default: one fresh key).
    pub encryption_keys: Option<Vec<String>>,
    /// `token_cache_ttl_ms` (default 100: the cache is exercised, disconnects stay quick).
    pub token_cache_ttl_ms: u64,
    /// `token_cache_max_age_secs` (default 60, as served: cached tokens follow the change feed).
    pub token_cache_max_age_secs: u64,
    /// `token_cache_poll_ms` (default 50: disconnects wait 200 ms for other replicas' caches).
    pub token_cache_poll_ms: u64,
}

impl HarnessOptions {
    /// Options for the built-in provider `kind` against `mock` (the mock's flavor should be
    /// that provider's).
    pub fn provider(kind: &'static str, mock: tether_testkit::MockProviderConfig) -> Self {
        Self { mock, kind, ..Self::default() }
    }
}

/// Seconds from now until the RFC 3339 time in a JSON field (negative when past).
pub fn secs_until(v: &Value) -> i64 {
    let at = chrono::DateTime::parse_from_rfc3339(v.as_str().expect("a timestamp")).expect("an RFC 3339 time");
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds()
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            mock: MockProviderConfig { auto_approve: Some("alice".into()), ..MockProviderConfig::default() },
            extra_config: String::new(),
            provider_config: String::new(),
            kind: "generic",
            server_client_secret: None,
            refresher: false,
            encryption_keys: None,
            token_cache_ttl_ms: 100,
            token_cache_max_age_secs: 60,
            token_cache_poll_ms: 50,
        }
    }
}

impl Harness {
    /// Starts a mock provider and a server over `database_url`.
    pub async fn start(database_url: &str, options: HarnessOptions) -> Self {
        let client_id = options.mock.client_id.clone();
        let client_secret = options.server_client_secret.clone().unwrap_or_else(|| options.mock.client_secret.clone());
        let mock = tether_testkit::MockProvider::start(options.mock).await.expect("mock provider starts");
        // Provider kinds get the mock's provider-shaped paths (the real endpoints' paths).
        let provider_paths = match options.kind {
            "github" => Some(("authorize", "token", "user", Some("applications/{client_id}/token"))),
            "linkedin" => {
                Some(("oauth/v2/authorization", "oauth/v2/accessToken", "v2/userinfo", Some("oauth/v2/revoke")))
            }
            "reddit" => Some(("api/v1/authorize", "api/v1/access_token", "api/v1/me", Some("api/v1/revoke_token"))),
            // Pinterest cannot revoke user tokens: no revoke_url.
            "pinterest" => Some(("oauth/", "v5/oauth/token", "v5/user_account", None)),
            "facebook" => Some(("dialog/oauth", "oauth/access_token", "me?fields=id,name", Some("me/permissions"))),
            "zoom" => Some(("oauth/authorize", "oauth/token", "v2/users/me", Some("oauth/revoke"))),
            // Instagram and Threads revoke nothing; their long-lived exchange and renewal hang off api_base_url.
            "instagram" => Some(("oauth/authorize", "oauth/access_token", "v25.0/me?fields=user_id,username", None)),
            "threads" => Some(("oauth/authorize", "oauth/access_token", "v1.0/me?fields=id,username,name", None)),
            "tiktok" => Some((
                "v2/auth/authorize/",
                "v2/oauth/token/",
                "v2/user/info/?fields=open_id,union_id,avatar_url,display_name",
                Some("v2/oauth/revoke/"),
            )),
            "slack" => Some(("oauth/v2/authorize", "api/oauth.v2.access", "api/auth.test", Some("api/auth.revoke"))),
            "twitch" => Some(("oauth2/authorize", "oauth2/token", "helix/users", Some("oauth2/revoke"))),
            // Spotify has no revocation endpoint.
            "spotify" => Some(("authorize", "api/token", "v1/me", None)),
            "discord" => {
                Some(("oauth2/authorize", "api/oauth2/token", "api/v10/users/@me", Some("api/oauth2/token/revoke")))
            }
            "google" => Some(("o/oauth2/v2/auth", "token", "v1/userinfo", Some("revoke"))),
            // Entra ID has no revocation endpoint.
            "microsoft" => Some(("common/oauth2/v2.0/authorize", "common/oauth2/v2.0/token", "v1.0/me", None)),
            "dropbox" => {
                Some(("oauth2/authorize", "oauth2/token", "2/users/get_current_account", Some("2/auth/token/revoke")))
            }
            "notion" => Some(("v1/oauth/authorize", "v1/oauth/token", "v1/users/me", Some("v1/oauth/revoke"))),
            _ => None,
        };
        let endpoints = if let Some((authorize, token, userinfo, revoke)) = provider_paths {
            let mut endpoints = format!(
                "authorize_url = \"{}\"\ntoken_url = \"{}\"\nuserinfo_url = \"{}\"\n",
                mock.url(authorize),
                mock.url(token),
                mock.url(userinfo),
            );
            if let Some(revoke) = revoke {
                endpoints.push_str(&format!("revoke_url = \"{}\"\n", mock.url(revoke)));
            }
            if options.kind != "github" {
                endpoints.push_str(&format!("api_base_url = \"{}\"\n", mock.base_url));
            }
            endpoints
        } else {
            format!(
                "authorize_url = \"{}\"\ntoken_url = \"{}\"\nuserinfo_url = \"{}\"\nrevoke_url = \"{}\"\naccount_id_field = \"sub\"\naccount_name_field = \"preferred_username\"\napi_base_url = \"{}\"\n",
                mock.url("authorize"),
                mock.url("token"),
                mock.url("userinfo"),
                mock.url("revoke"),
                mock.base_url,
            )
        };
        let toml = format!(
            r#"
bind = "127.0.0.1:0"
database_url = "{database_url}"
database_pool_size = 4
token_cache_ttl_ms = {token_cache_ttl_ms}
token_cache_max_age_secs = {token_cache_max_age_secs}
token_cache_poll_ms = {token_cache_poll_ms}
api_keys = ["{API_KEY}", {{ key = "{READ_API_KEY}", scope = "read", name = "dashboard" }}]
encryption_keys = {keys}
{extra}

[refresher]
enabled = {refresher}
interval_secs = 1

[providers.mock]
kind = "{kind}"
client_id = "{client_id}"
client_secret = "{client_secret}"
{endpoints}
{provider_extra}
"#,
            keys = serde_json::to_string(
                &options
                    .encryption_keys
                    .clone()
                    .unwrap_or_else(|| vec![tether_core::EncryptionKey::generate().unwrap()])
            )
            .unwrap(),
            extra = options.extra_config.replace("{mock}", mock.base_url.as_str().trim_end_matches('/')),
            kind = options.kind,
            provider_extra = options.provider_config,
            refresher = options.refresher,
            token_cache_ttl_ms = options.token_cache_ttl_ms,
            token_cache_max_age_secs = options.token_cache_max_age_secs,
            token_cache_poll_ms = options.token_cache_poll_ms,
        );
        let config = tether_server::Config::from_toml(&toml).expect("valid test configuration");
        let server =
            tether_server::start(config, ServeOptions { demo: false, workers: Some(2) }).await.expect("server starts");
        let browser = reqwest::Client::builder()
            .cookie_provider(Arc::new(reqwest::cookie::Jar::default()))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let api = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { server, mock, browser, api }
    }

    /// An absolute URL on the server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.server.public_url.as_str().trim_end_matches('/'), path)
    }

    /// `GET path` on the JSON API with the full-access key: the status and the JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.api_call(reqwest::Method::GET, path, None).await
    }

    /// Calls the API with the test key; returns status and JSON body.
    pub async fn api_call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.api.request(method, self.url(path)).bearer_auth(API_KEY);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| json!({ "raw": text })))
    }

    /// Creates a connect session and returns its connect URL.
    pub async fn connect_url(&self, owner: &str, return_to: Option<&str>) -> String {
        let mut body = json!({ "owner": owner, "provider": "mock" });
        if let Some(r) = return_to {
            body["return_to"] = json!(r);
        }
        let (status, json) = self.api_call(reqwest::Method::POST, "/v1/connect-sessions", Some(body)).await;
        assert_eq!(status, 201, "{json}");
        json["connect_url"].as_str().unwrap().to_owned()
    }

    /// Follows the browser from the connect link to the provider's redirect back to our
    /// callback (the mock auto-approves). Returns the callback URL, not yet visited.
    pub async fn authorize(&self, connect_url: &str) -> String {
        let resp = self.browser.get(connect_url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "connect link should redirect to the provider");
        let provider_url = location(&resp);
        let resp = self.browser.get(&provider_url).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 302, "mock provider should redirect back");
        location(&resp)
    }

    /// Runs a whole flow for `owner` and returns the new connection id.
    pub async fn connect(&self, owner: &str) -> String {
        let callback = self.authorize(&self.connect_url(owner, None).await).await;
        let resp = self.browser.get(&callback).send().await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_eq!(status, 200, "callback should succeed: {body}");
        let (_, list) = self.api_call(reqwest::Method::GET, &format!("/v1/connections?owner={owner}"), None).await;
        list["connections"][0]["id"].as_str().expect("a connection").to_owned()
    }

    /// Waits (up to 20 s) until the connection has an event of `kind` and returns its events.
    /// Background work (the refresher) commits its event shortly after the provider answered,
    /// so tests that saw the provider's side poll for the event instead of reading once.
    pub async fn wait_for_event(&self, id: &str, kind: &str) -> Value {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let (_, events) = self.get(&format!("/v1/connections/{id}/events")).await;
            if events["events"].as_array().is_some_and(|a| a.iter().any(|e| e["kind"] == kind)) {
                return events;
            }
            assert!(tokio::time::Instant::now() < deadline, "no `{kind}` event for {id}: {events}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }

    /// Number of connections stored.
    pub async fn connection_count(&self) -> usize {
        let (status, list) = self.api_call(reqwest::Method::GET, "/v1/connections", None).await;
        assert_eq!(status, 200);
        list["connections"].as_array().unwrap().len()
    }

    /// Stops the server and the mock.
    pub async fn stop(self) {
        self.server.stop().await;
        self.mock.stop().await;
    }
}

/// The Location header of a redirect.
pub fn location(resp: &reqwest::Response) -> String {
    resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).expect("a Location header").to_owned()
}

/// Declares one async test per backend: `name_sqlite`, `name_postgres`, `name_mysql`.
#[macro_export]
macro_rules! e2e_test {
    ($name:ident, |$db:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            async fn run($db: String) $body
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(db) = $crate::Backend::Sqlite.fresh_database().await { run(db).await }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::Backend::Postgres.fresh_database().await {
                    run(db.clone()).await;
                    $crate::Backend::Postgres.drop_database(&db).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mysql() {
                if let Some(db) = $crate::Backend::Mysql.fresh_database().await {
                    run(db.clone()).await;
                    $crate::Backend::Mysql.drop_database(&db).await;
                }
            }
        }
    };
}

/// Path of the `tether` binary, built once per test process with the same cargo and target
/// directory as the tests.
pub fn tether_binary() -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "tether-server", "--bin", "tether"])
                .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the tether binary failed");
            // current_exe is target/<profile>/deps/e2e-…; the binary is target/<profile>/tether.
            let exe = std::env::current_exe().expect("current exe");
            let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target dir").to_path_buf();
            profile_dir.join(format!("tether{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// A `tether serve` child process.
pub struct Replica {
    child: tokio::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Replica {
    /// Spawns `tether serve --config <config>` and waits until it listens.
    pub async fn spawn(config: &std::path::Path) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let mut child = tokio::process::Command::new(tether_binary())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("TETHER_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("tether starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(std::time::Duration::from_secs(60), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.strip_prefix("Tether is listening on ") {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    return format!("http://{addr}");
                }
            }
            panic!("tether exited before listening");
        })
        .await
        .expect("tether listens within a minute");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, base }
    }

    /// Kills the process at once (SIGKILL), as a crash would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}
