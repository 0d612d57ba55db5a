//! Configuration: `tether.toml` (or `--config FILE`) with every key overridable from the
//! environment as `TETHER_<KEY>`, nested with double underscores
//! (`TETHER_PROVIDERS__GITHUB__CLIENT_ID`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tether_core::webhook::DEFAULT_WEBHOOK_EVENTS;
use tether_core::{
    EngineSettings, EventKind, KeyRing, ProviderConfig, RefresherSettings, Url, WebhookEndpoint, WebhookSettings,
};

/// The whole configuration.
#[derive(Deserialize)]
pub struct Config {
    /// Address to listen on.
    #[serde(default = "default_bind")]
    pub bind: String,
    /// URL browsers and providers reach this server at (default `http://{bind}`).
    pub public_url: Option<String>,
    /// Database URL: `sqlite://FILE?mode=rwc`, `postgres://...`, `mysql://...`.
    #[serde(default = "default_database_url")]
    pub database_url: String,
    /// Maximum database connections of this process (default 10; SQLite uses its own small pool).
    pub database_pool_size: Option<u32>,
    /// API keys accepted on `/v1` (`Authorization: Bearer <key>`): plaintext keys, hashes
    /// (`sha256:<hex>`, from `tether keys hash-api-key`), or tables `{ key | hash, scope = "full" | "read", name }`.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// Encryption keys, `<id>:<base64 32 bytes>`; the first seals, all open.
    #[serde(default)]
    pub encryption_keys: Vec<SecretString>,
    /// Allowed origins for `return_to` (empty: any http(s) URL).
    #[serde(default)]
    pub allowed_return_origins: Vec<String>,
    /// A served token is valid for at least this many seconds (default 300).
    #[serde(default = "default_refresh_margin")]
    pub refresh_margin_secs: u64,
    /// Connect-link lifetime in seconds (default 900).
    #[serde(default = "default_connect_ttl")]
    pub connect_link_ttl_secs: u64,
    /// Seconds a refresh lease is held before another replica may take over (default 30).
    #[serde(default = "default_lease")]
    pub refresh_lease_secs: u64,
    /// Timeout of each call to a provider, in seconds (default 20; below the lease).
    #[serde(default = "default_provider_timeout")]
    pub provider_timeout_secs: u64,
    /// How long the user may take at the provider, in seconds (default 600).
    #[serde(default = "default_flow_ttl")]
    pub flow_ttl_secs: u64,
    /// How long a token read from the database is served again from memory, in milliseconds
    /// (default 2000; 0 disables the cache). Disconnects take this long to return, so that no
    /// replica serves the token afterwards.
    #[serde(default = "default_token_cache_ttl")]
    pub token_cache_ttl_ms: u64,
    /// How long a cached token may be served while this process follows the change feed, in
    /// seconds (default 60; 0: only `token_cache_ttl_ms` applies). Another replica's change to a
    /// connection drops its entry at the next poll.
    #[serde(default = "default_token_cache_max_age")]
    pub token_cache_max_age_secs: u64,
    /// How often the change feed is polled, in milliseconds (default 250, from 10 to 10000).
    /// Entries are served on the feed's ground only while its last poll started less than four
    /// intervals ago, and disconnects take at least that long to return.
    #[serde(default = "default_token_cache_poll")]
    pub token_cache_poll_ms: u64,
    /// Connections whose token the cache holds at most (default 100000).
    #[serde(default = "default_token_cache_capacity")]
    pub token_cache_capacity: usize,
    /// Background refresher.
    #[serde(default)]
    pub refresher: RefresherConfig,
    /// `text` (default) or `json`.
    #[serde(default)]
    pub log_format: Option<String>,
    /// `[providers.<id>]` tables.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `[admin]`: authentication of the admin pages under `/admin`.
    #[serde(default)]
    pub admin: AdminConfig,
    /// `[[webhooks]]`: URLs that receive connection events.
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    /// `[webhook_delivery]`: retries, timeouts and the dispatcher.
    #[serde(default)]
    pub webhook_delivery: WebhookDeliveryConfig,
}

/// One `[[webhooks]]` entry.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Stable name (default: the URL's host). Deliveries refer to it.
    pub name: Option<String>,
    /// Where events are POSTed (http or https).
    pub url: String,
    /// Shared secret for the `Tether-Signature` HMAC (at least 16 characters).
    pub secret: SecretString,
    /// Event kinds to send (default: connected, reauth_required, refresh_failed, revoked,
    /// disconnected); `"*"` means every kind, `refreshed` included.
    pub events: Option<Vec<String>>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("name", &self.name)
            // The query string may carry a token of the receiver's: never shown.
            .field("url", &redact_url(self.url.split(['?', '#']).next().unwrap_or_default()))
            .field("secret", &"[redacted]")
            .field("events", &self.events)
            .finish()
    }
}

/// `[webhook_delivery]`.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookDeliveryConfig {
    /// Run the webhook dispatcher in `serve` (default true; events are enqueued either way).
    pub enabled: bool,
    /// Attempts before a delivery is given up (default 12).
    pub max_attempts: u32,
    /// Wait after the first failure in milliseconds, doubling after each (default 10000).
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts in seconds (default 14400).
    pub max_backoff_secs: u64,
    /// Timeout of one POST in seconds (default 10).
    pub timeout_secs: u64,
    /// POSTs in flight at once (default 8).
    pub concurrency: usize,
    /// Outbox polling interval in milliseconds (default 1000).
    pub poll_interval_ms: u64,
}

impl Default for WebhookDeliveryConfig {
    fn default() -> Self {
        let d = WebhookSettings::default();
        Self {
            enabled: true,
            max_attempts: d.max_attempts,
            initial_backoff_ms: u64::try_from(d.initial_backoff.as_millis()).unwrap_or(u64::MAX),
            max_backoff_secs: d.max_backoff.as_secs(),
            timeout_secs: d.timeout.as_secs(),
            concurrency: d.concurrency,
            poll_interval_ms: u64::try_from(d.poll_interval.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// `[admin]`. With neither `password_hash` nor `trusted_header`, `/admin` only explains how to
/// enable it (`serve --demo` generates a password).
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// argon2 PHC string of the admin password, from `tether admin hash-password`.
    pub password_hash: Option<SecretString>,
    /// A header an authenticating reverse proxy sets to the user name (e.g. `X-Forwarded-User`).
    /// Only safe when every request reaches Tether through that proxy, which must overwrite the
    /// header a client sends.
    pub trusted_header: Option<String>,
    /// Lifetime of an admin session in seconds (default 43200, 12 h).
    pub session_ttl_secs: Option<u64>,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("password_hash", &self.password_hash.as_ref().map(|_| "[redacted]"))
            .field("trusted_header", &self.trusted_header)
            .field("session_ttl_secs", &self.session_ttl_secs)
            .finish()
    }
}

/// One `api_keys` entry.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ApiKeyConfig {
    /// A plaintext key, or `sha256:<hex>`; full scope.
    Plain(SecretString),
    /// A key with a scope.
    Scoped {
        /// Plaintext key (hashed at start).
        key: Option<SecretString>,
        /// `sha256:<hex>` of the key.
        hash: Option<String>,
        /// `full` (default) or `read`.
        scope: Option<String>,
        /// A name for people (which application holds the key).
        name: Option<String>,
    },
}

impl From<String> for ApiKeyConfig {
    fn from(key: String) -> Self {
        ApiKeyConfig::Plain(SecretString::from(key))
    }
}

/// `[refresher]`.
#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RefresherConfig {
    /// Run the background refresher in `serve` (default true).
    pub enabled: bool,
    /// Renew tokens expiring within this many seconds (default 600).
    pub lead_time_secs: u64,
    /// Seconds between sweeps (default 30).
    pub interval_secs: u64,
    /// Refreshes at once (default 8).
    pub concurrency: usize,
}

impl Default for RefresherConfig {
    fn default() -> Self {
        Self { enabled: true, lead_time_secs: 600, interval_secs: 30, concurrency: 8 }
    }
}

fn default_bind() -> String {
    "127.0.0.1:8080".into()
}
fn default_database_url() -> String {
    "sqlite://tether.db?mode=rwc".into()
}
fn default_refresh_margin() -> u64 {
    300
}
fn default_connect_ttl() -> u64 {
    900
}
fn default_lease() -> u64 {
    30
}
fn default_provider_timeout() -> u64 {
    20
}
fn default_token_cache_ttl() -> u64 {
    2000
}
fn default_token_cache_max_age() -> u64 {
    60
}
fn default_token_cache_poll() -> u64 {
    250
}
fn default_token_cache_capacity() -> usize {
    100_000
}
fn default_flow_ttl() -> u64 {
    600
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("public_url", &self.public_url)
            .field("database_url", &redact_url(&self.database_url))
            .field("api_keys", &format!("[{} redacted]", self.api_keys.len()))
            .field("encryption_keys", &format!("[{} redacted]", self.encryption_keys.len()))
            .field("providers", &self.providers)
            .field("admin", &self.admin)
            .field("webhooks", &self.webhooks)
            .finish_non_exhaustive()
    }
}

/// Hides the password of a database URL.
pub fn redact_url(raw: &str) -> String {
    match Url::parse(raw) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => raw.to_owned(),
    }
}

impl Config {
    /// Loads defaults, then the TOML file (`path`, or `./tether.toml` when present), then
    /// `TETHER_*` environment variables.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Self> {
        let mut figment = Figment::new();
        match path {
            Some(p) => {
                if !p.exists() {
                    bail!("configuration file {} does not exist", p.display());
                }
                figment = figment.merge(Toml::file_exact(p));
            }
            None => {
                let default = PathBuf::from("tether.toml");
                if default.exists() {
                    figment = figment.merge(Toml::file_exact(default));
                }
            }
        }
        figment = figment.merge(Env::prefixed("TETHER_").split("__").ignore(&[
            "config",
            "test_postgres_url",
            "test_mysql_url",
        ]));
        figment.extract::<Config>().map_err(|e| anyhow::anyhow!("invalid configuration: {}", one_line(&e)))
    }

    /// Parses configuration from TOML text alone (no file lookup, no environment): for
    /// programs that embed the server, and tests.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        Figment::from(Toml::string(text))
            .extract::<Config>()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {}", one_line(&e)))
    }

    /// The public URL (default `http://{bind}`), given the address actually bound.
    pub fn public_url(&self, bound: std::net::SocketAddr) -> anyhow::Result<Url> {
        let raw = match &self.public_url {
            Some(u) => u.clone(),
            None => format!("http://{bound}"),
        };
        let url = Url::parse(&raw).with_context(|| format!("public_url `{raw}` is not a valid URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            bail!("public_url must be an http(s) URL");
        }
        Ok(url)
    }

    /// The key ring, with an actionable message when keys are missing or malformed.
    pub fn key_ring(&self) -> anyhow::Result<KeyRing> {
        if self.encryption_keys.is_empty() {
            bail!(
                "encryption_keys is empty: run `tether keys generate` and put the key in tether.toml (encryption_keys = [\"...\"]) or TETHER_ENCRYPTION_KEYS='[\"...\"]'"
            );
        }
        let keys: Vec<&str> = self.encryption_keys.iter().map(|k| k.expose_secret()).collect();
        KeyRing::parse(&keys).map_err(|e| anyhow::anyhow!("encryption_keys: {e}"))
    }

    /// The API keys, checked and hashed.
    pub fn api_keys(&self) -> anyhow::Result<Vec<tether_web::ApiKeyEntry>> {
        use tether_web::{ApiKeyEntry, ApiKeyScope};
        if self.api_keys.is_empty() {
            bail!(
                "api_keys is empty: add at least one random key of 24+ characters to tether.toml (api_keys = [\"...\"]) or TETHER_API_KEYS='[\"...\"]'"
            );
        }
        let plain = |i: usize, key: &str, scope| -> anyhow::Result<ApiKeyEntry> {
            let key = key.trim();
            if key.starts_with("sha256:") {
                return ApiKeyEntry::from_hash(key, scope)
                    .with_context(|| format!("api_keys[{i}] is not a valid sha256:<64 hex> hash"));
            }
            if key.len() < 24 {
                bail!("api_keys[{i}] is too short: use at least 24 random characters (e.g. `openssl rand -hex 24`)");
            }
            Ok(ApiKeyEntry::from_key(key, scope))
        };
        self.api_keys
            .iter()
            .enumerate()
            .map(|(i, k)| match k {
                ApiKeyConfig::Plain(key) => plain(i, key.expose_secret(), ApiKeyScope::Full),
                ApiKeyConfig::Scoped { key, hash, scope, .. } => {
                    let scope = match scope.as_deref() {
                        None => ApiKeyScope::Full,
                        Some(s) => ApiKeyScope::parse(s)
                            .with_context(|| format!("api_keys[{i}].scope must be \"full\" or \"read\""))?,
                    };
                    match (key, hash) {
                        (Some(key), None) => plain(i, key.expose_secret(), scope),
                        (None, Some(hash)) => ApiKeyEntry::from_hash(hash, scope)
                            .with_context(|| format!("api_keys[{i}].hash is not a valid sha256:<64 hex> hash")),
                        _ => bail!("api_keys[{i}] needs exactly one of `key` and `hash`"),
                    }
                }
            })
            .collect()
    }

    /// The admin pages' authentication. The session-cookie key is derived from the first
    /// encryption key (hashed with a label), so replicas sharing the configuration accept each
    /// other's sessions, restarts keep them, and rotating encryption keys signs admins out.
    pub fn admin_settings(&self) -> anyhow::Result<tether_web::AdminSettings> {
        let material = self.encryption_keys.first().map(|k| k.expose_secret().as_bytes());
        Ok(tether_web::AdminSettings::new(
            self.admin.password_hash.as_ref().map(|h| h.expose_secret()),
            self.admin.trusted_header.as_deref(),
            material,
            self.admin.session_ttl_secs.map(Duration::from_secs),
        )?)
    }

    /// Checks the timing settings make sense together.
    pub fn check_timing(&self) -> anyhow::Result<()> {
        if self.provider_timeout_secs >= self.refresh_lease_secs {
            bail!(
                "provider_timeout_secs ({}) must be lower than refresh_lease_secs ({}), or a slow provider could outlive the refresh lease",
                self.provider_timeout_secs,
                self.refresh_lease_secs
            );
        }
        if !(10..=10_000).contains(&self.token_cache_poll_ms) {
            bail!("token_cache_poll_ms ({}) must be between 10 and 10000", self.token_cache_poll_ms);
        }
        Ok(())
    }

    /// Webhook endpoints and delivery settings, checked.
    pub fn webhook_settings(&self) -> anyhow::Result<WebhookSettings> {
        let d = &self.webhook_delivery;
        let mut endpoints = Vec::with_capacity(self.webhooks.len());
        for (i, w) in self.webhooks.iter().enumerate() {
            let url = Url::parse(&w.url).map_err(|e| anyhow::anyhow!("webhooks[{i}].url: {e}"))?;
            let name = match &w.name {
                Some(name) => name.clone(),
                None => match (url.host_str(), url.port()) {
                    (Some(host), Some(port)) => format!("{host}:{port}"),
                    (Some(host), None) => host.to_owned(),
                    (None, _) => bail!("webhooks[{i}].url has no host"),
                },
            };
            let events = match &w.events {
                None => DEFAULT_WEBHOOK_EVENTS.to_vec(),
                Some(list) if list.iter().any(|e| e == "*") => EventKind::ALL.to_vec(),
                Some(list) => list
                    .iter()
                    .map(|e| {
                        EventKind::parse(e).ok_or_else(|| {
                            anyhow::anyhow!(
                                "webhooks[{i}].events: unknown event `{}` (expected connected, refreshed, refresh_failed, reauth_required, revoked, disconnected or \"*\")",
                                e.escape_debug()
                            )
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
            };
            endpoints.push(WebhookEndpoint { name, url, secret: w.secret.clone(), events });
        }
        let settings = WebhookSettings {
            endpoints,
            max_attempts: d.max_attempts,
            initial_backoff: Duration::from_millis(d.initial_backoff_ms.max(1)),
            max_backoff: Duration::from_secs(d.max_backoff_secs.max(1)),
            timeout: Duration::from_secs(d.timeout_secs.max(1)),
            concurrency: d.concurrency.max(1),
            poll_interval: Duration::from_millis(d.poll_interval_ms.max(10)),
        };
        settings.validate()?;
        Ok(settings)
    }

    /// Engine settings.
    pub fn engine_settings(&self, public_url: Url) -> anyhow::Result<EngineSettings> {
        let mut s = EngineSettings::new(public_url);
        s.refresh_margin = Duration::from_secs(self.refresh_margin_secs);
        s.connect_session_ttl = Duration::from_secs(self.connect_link_ttl_secs.max(1));
        s.flow_ttl = Duration::from_secs(self.flow_ttl_secs.max(1));
        s.lease_ttl = Duration::from_secs(self.refresh_lease_secs.max(1));
        s.lease_wait = s.lease_ttl + Duration::from_secs(15);
        s.provider_timeout = Duration::from_secs(self.provider_timeout_secs.max(1));
        s.allowed_return_origins = self.allowed_return_origins.clone();
        s.webhooks = self.webhook_settings()?;
        s.token_cache_ttl = Duration::from_millis(self.token_cache_ttl_ms);
        s.token_cache_max_age = Duration::from_secs(self.token_cache_max_age_secs);
        s.token_cache_poll_interval = Duration::from_millis(self.token_cache_poll_ms);
        s.token_cache_capacity = self.token_cache_capacity;
        Ok(s)
    }

    /// Refresher settings.
    pub fn refresher_settings(&self) -> RefresherSettings {
        RefresherSettings {
            lead_time: Duration::from_secs(self.refresher.lead_time_secs.max(self.refresh_margin_secs)),
            interval: Duration::from_secs(self.refresher.interval_secs.max(1)),
            concurrency: self.refresher.concurrency.max(1),
            ..RefresherSettings::default()
        }
    }
}

fn one_line(e: &figment::Error) -> String {
    e.clone().into_iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closure signature
mod tests {
    use super::*;

    #[test]
    fn env_overrides_nested_keys_and_keeps_numeric_ids_as_strings() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "tether.toml",
                r#"
                bind = "127.0.0.1:9000"
                [providers.github]
                client_id = "from-file"
                client_secret = "file-secret"
                "#,
            )?;
            jail.set_env("TETHER_PROVIDERS__GITHUB__CLIENT_ID", "123456789");
            jail.set_env("TETHER_API_KEYS", r#"["0123456789abcdef0123456789"]"#);
            let c = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.bind, "127.0.0.1:9000");
            assert_eq!(c.providers["github"].client_id.as_deref(), Some("123456789"));
            assert_eq!(c.api_keys().map_err(|e| e.to_string())?.len(), 1);
            assert!(!format!("{c:?}").contains("file-secret"));
            Ok(())
        });
    }

    #[test]
    fn token_cache_settings_reach_the_engine_and_a_bad_poll_interval_is_refused() {
        let url = Url::parse("http://127.0.0.1:8080/").map_err(|e| e.to_string());
        let c = Config::from_toml("token_cache_max_age_secs = 30\ntoken_cache_poll_ms = 100\n");
        let (Ok(url), Ok(c)) = (url, c) else { panic!("valid test configuration") };
        assert!(c.check_timing().is_ok());
        let s = c.engine_settings(url.clone()).map_err(|e| e.to_string());
        let Ok(s) = s else { panic!("{s:?}") };
        assert_eq!(
            (s.token_cache_max_age, s.token_cache_poll_interval, s.token_cache_ttl),
            (Duration::from_secs(30), Duration::from_millis(100), Duration::from_secs(2))
        );
        for bad in ["token_cache_poll_ms = 0", "token_cache_poll_ms = 60000"] {
            let Ok(c) = Config::from_toml(bad) else { panic!("parses: {bad}") };
            let e = c.check_timing().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("token_cache_poll_ms") && e.contains("between 10 and 10000"), "{bad}: {e}");
        }
    }

    #[test]
    fn missing_secrets_name_the_key_and_the_fix() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None).map_err(|e| e.to_string())?;
            let e = c.key_ring().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("encryption_keys") && e.contains("tether keys generate"), "{e}");
            let e = c.api_keys().err().map(|e| e.to_string()).unwrap_or_default();
            assert!(e.contains("api_keys"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn admin_table_is_checked_and_redacted() {
        let hash = tether_web::hash_admin_password("a long admin password").unwrap();
        let c = Config::from_toml(&format!(
            "encryption_keys = [\"k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"]\n[admin]\npassword_hash = \"{hash}\"\ntrusted_header = \"X-Forwarded-User\"\n"
        ))
        .unwrap();
        let admin = c.admin_settings().unwrap();
        assert!(admin.password_enabled());
        assert_eq!(admin.trusted_header(), Some("x-forwarded-user"));
        assert!(!format!("{c:?}").contains("argon2"), "{c:?}");
        let c = Config::from_toml("[admin]\npassword_hash = \"hunter2\"\n").unwrap();
        let e = c.admin_settings().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("admin.password_hash") && e.contains("tether admin hash-password"), "{e}");
        assert!(!c.admin_settings().is_ok_and(|a| a.is_enabled()));
        assert!(Config::from_toml("[admin]\npasword_hash = \"x\"\n").is_err(), "typos are refused");
    }

    #[test]
    fn webhooks_are_checked_and_their_secrets_redacted() {
        let c = Config::from_toml(
            "[[webhooks]]\nurl = \"https://app.example.com/hooks?k=url-secret\"\nsecret = \"0123456789abcdef-hook\"\n\n[[webhooks]]\nname = \"audit\"\nurl = \"http://127.0.0.1:9/a\"\nsecret = \"0123456789abcdef-hook\"\nevents = [\"*\"]\n",
        )
        .unwrap();
        let s = c.webhook_settings().unwrap();
        assert_eq!(s.endpoints[0].name, "app.example.com");
        assert_eq!(s.endpoints[0].events.len(), 5);
        assert_eq!(s.endpoints[1].events.len(), 6, "* includes refreshed");
        for shown in [format!("{c:?}"), format!("{s:?}")] {
            assert!(!shown.contains("0123456789abcdef-hook") && !shown.contains("url-secret"), "{shown}");
        }
        let bad = |toml: &str| Config::from_toml(toml).unwrap().webhook_settings().err().map(|e| e.to_string());
        let e = bad("[[webhooks]]\nurl = \"https://a.example\"\nsecret = \"short\"\n").unwrap_or_default();
        assert!(e.contains("at least 16"), "{e}");
        let e =
            bad("[[webhooks]]\nurl = \"https://a.example\"\nsecret = \"0123456789abcdef\"\nevents = [\"exploded\"]\n")
                .unwrap_or_default();
        assert!(e.contains("unknown event `exploded`"), "{e}");
        let twice = "[[webhooks]]\nurl = \"https://a.example/1\"\nsecret = \"0123456789abcdef\"\n[[webhooks]]\nurl = \"https://a.example/2\"\nsecret = \"0123456789abcdef\"\n";
        assert!(bad(twice).unwrap_or_default().contains("unique name"));
        let e = bad("[[webhooks]]\nurl = \"ftp://a.example\"\nsecret = \"0123456789abcdef\"\n").unwrap_or_default();
        assert!(e.contains("http or https"), "{e}");
    }

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(redact_url("postgres://u:pw@h/db"), "postgres://u:***@h/db");
    }
}
