//! Turning a database URL into a configured sea-orm connection pool.

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use tether_core::{Error, Result};
use url::Url;

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("tether-store needs at least one of the features `sqlite`, `postgres`, `mysql`");

/// How long a SQLite connection waits for another writer before failing with "database is
/// locked".
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Most bytes of a SQLite file read through a memory map (address space, not memory: pages
/// are the operating system's file cache, shared by every connection of the pool).
#[cfg(feature = "sqlite")]
const SQLITE_MMAP_SIZE: u64 = 1 << 30;

/// Pool settings for [`SeaStore::connect_with`](crate::SeaStore::connect_with).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct StoreOptions {
    /// Maximum pooled connections. Default: 10 for PostgreSQL and MySQL, 4 for a SQLite file
    /// (writers take turns anyway), always 1 for an in-memory SQLite database.
    pub max_connections: Option<u32>,
    /// How long to wait for a connection (including opening one) before failing. Default 15 s.
    pub acquire_timeout: Option<Duration>,
}

impl StoreOptions {
    /// Sets the maximum number of pooled connections.
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = Some(n);
        self
    }

    /// Sets how long to wait for a connection.
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = Some(timeout);
        self
    }
}

/// The database behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        }
    }

    fn feature_enabled(self) -> bool {
        match self {
            Backend::Sqlite => cfg!(feature = "sqlite"),
            Backend::Postgres => cfg!(feature = "postgres"),
            Backend::MySql => cfg!(feature = "mysql"),
        }
    }
}

/// A database URL, checked and prepared for the driver.
pub(crate) struct DatabaseUrl {
    pub(crate) backend: Backend,
    /// What the driver gets (may contain a password).
    pub(crate) driver_url: String,
    /// For messages: the password replaced by `***`.
    pub(crate) redacted: String,
    /// The password, to scrub it from driver error messages.
    password: Option<String>,
    /// An in-memory SQLite database (one connection only, or each would see its own database).
    pub(crate) sqlite_memory: bool,
}

impl DatabaseUrl {
    pub(crate) fn parse(raw: &str) -> Result<Self> {
        let raw = raw.trim();
        let url = Url::parse(raw).map_err(|e| {
            Error::Config(format!(
                "the database URL is not a valid URL ({e}); expected sqlite://PATH, \
                 postgres://USER@HOST/DB or mysql://USER@HOST/DB"
            ))
        })?;
        let scheme = url.scheme().to_ascii_lowercase();
        let backend = match scheme.as_str() {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            other => {
                return Err(Error::Config(format!(
                    "unsupported database URL scheme `{}:`; expected sqlite:, postgres:, mysql: or mariadb:",
                    other.escape_debug()
                )));
            }
        };
        if !backend.feature_enabled() {
            return Err(Error::Config(format!(
                "this build of tether-store has no {} support (cargo feature `{}`)",
                backend.as_str(),
                backend.as_str()
            )));
        }
        let password = url.password().filter(|p| !p.is_empty()).map(str::to_owned);
        let mut redacted_url = url.clone();
        if password.is_some() {
            // Cannot fail: the URL has a host, since it has a password.
            let _ = redacted_url.set_password(Some("***"));
        }
        let redacted = redacted_url.to_string();

        let (driver_url, sqlite_memory) = match backend {
            Backend::Sqlite => {
                let (path, query) = match raw.split_once('?') {
                    Some((p, q)) => (p, Some(q)),
                    None => (raw, None),
                };
                let database = path.split_once(':').map_or("", |(_, rest)| rest).trim_start_matches("//");
                let has_mode =
                    query.is_some_and(|q| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == "mode"));
                let memory = database == ":memory:"
                    || query.is_some_and(|q| {
                        url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "mode" && v == "memory")
                    });
                if database.is_empty() && !memory {
                    return Err(Error::Config(
                        "the SQLite database URL has no file name (use sqlite://tether.db, or sqlite::memory:)".into(),
                    ));
                }
                let url = if has_mode {
                    raw.to_owned()
                } else if query.is_some() {
                    format!("{raw}&mode=rwc")
                } else {
                    format!("{raw}?mode=rwc")
                };
                (url, memory)
            }
            Backend::Postgres => (raw.to_owned(), false),
            Backend::MySql => {
                if scheme == "mariadb" {
                    (format!("mysql:{}", &raw[raw.find(':').map_or(0, |i| i + 1)..]), false)
                } else {
                    (raw.to_owned(), false)
                }
            }
        };
        Ok(Self { backend, driver_url, redacted, password, sqlite_memory })
    }

    /// Removes the password from a driver message, in case a driver ever echoes the URL.
    pub(crate) fn scrub(&self, message: &str) -> String {
        let mut out = message.to_owned();
        if let Some(p) = &self.password {
            out = out.replace(p.as_str(), "***");
            let decoded = url::form_urlencoded::parse(format!("p={p}").as_bytes()).next().map(|(_, v)| v.into_owned());
            if let Some(d) = decoded.filter(|d| !d.is_empty() && d != p) {
                out = out.replace(&d, "***");
            }
        }
        out
    }

    /// Opens the pool.
    pub(crate) async fn connect(&self, options: &StoreOptions) -> Result<DatabaseConnection> {
        let mut opts = ConnectOptions::new(self.driver_url.clone());
        opts.sqlx_logging(false).acquire_timeout(options.acquire_timeout.unwrap_or(Duration::from_secs(15)));
        // sqlx pings a pooled connection on every acquire by default: one extra round trip per
        // query, doubling the cost of a token read. Only connections idle for a while (which a
        // server or a proxy may have closed) are checked; a SQLite file cannot go away.
        match self.backend {
            Backend::Sqlite => opts.test_before_acquire(false),
            Backend::Postgres | Backend::MySql => opts.test_before_acquire_if_idle_for(Duration::from_secs(30)),
        };
        match self.backend {
            Backend::Sqlite => {
                if self.sqlite_memory {
                    // Every connection to `:memory:` would be a new empty database: keep one
                    // connection, forever.
                    opts.max_connections(1)
                        .min_connections(1)
                        .idle_timeout(None::<Duration>)
                        .max_lifetime(None::<Duration>);
                } else {
                    opts.max_connections(options.max_connections.unwrap_or(4).max(1));
                }
                #[cfg(feature = "sqlite")]
                {
                    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                    let memory = self.sqlite_memory;
                    // Applied by sqlx to every new connection of the pool.
                    opts.map_sqlx_sqlite_opts(move |o| {
                        let o = o
                            .busy_timeout(SQLITE_BUSY_TIMEOUT)
                            .foreign_keys(true)
                            // Overwrite deleted content, so removed ciphertexts (disconnects,
                            // key rotation) do not linger in free pages of the file.
                            .pragma("secure_delete", "ON")
                            // Read pages through a shared memory map instead of copying each
                            // into the connection's own page cache with a read(): that cache is
                            // small, and in WAL mode it is emptied whenever another connection
                            // of the pool wrote, so reads otherwise re-copy pages constantly.
                            .pragma("mmap_size", SQLITE_MMAP_SIZE.to_string())
                            .synchronous(SqliteSynchronous::Normal);
                        if memory { o } else { o.journal_mode(SqliteJournalMode::Wal) }
                    });
                }
            }
            Backend::Postgres | Backend::MySql => {
                opts.max_connections(options.max_connections.unwrap_or(10).max(1));
            }
        }
        match Database::connect(opts).await {
            Ok(db) => Ok(db),
            Err(e) => {
                let mut cause = e.to_string();
                if is_pool_timeout(&e)
                    && let Some(direct) = self.diagnose().await
                {
                    // The pool only says it timed out; one direct attempt says why.
                    cause = direct;
                }
                Err(Error::Store(format!(
                    "cannot connect to the {} database {}: {}",
                    self.backend.as_str(),
                    self.redacted,
                    self.scrub(&cause)
                )))
            }
        }
    }

    /// One direct connection attempt (not through a pool), for its error message.
    async fn diagnose(&self) -> Option<String> {
        use sea_orm::sqlx::Connection as _;
        let url = self.driver_url.as_str();
        let attempt = async {
            match self.backend {
                #[cfg(feature = "postgres")]
                Backend::Postgres => sea_orm::sqlx::PgConnection::connect(url).await.err().map(|e| e.to_string()),
                #[cfg(feature = "mysql")]
                Backend::MySql => sea_orm::sqlx::MySqlConnection::connect(url).await.err().map(|e| e.to_string()),
                #[cfg(feature = "sqlite")]
                Backend::Sqlite => sea_orm::sqlx::SqliteConnection::connect(url).await.err().map(|e| e.to_string()),
                #[allow(unreachable_patterns)]
                _ => None,
            }
        };
        tokio::time::timeout(Duration::from_secs(5), attempt)
            .await
            .unwrap_or_else(|_| Some("no answer within 5 s (unreachable host or port?)".into()))
    }
}

fn is_pool_timeout(e: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match e {
        DbErr::Conn(RuntimeErr::SqlxError(inner)) => {
            matches!(inner.as_ref(), sea_orm::sqlx::Error::PoolTimedOut)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_are_recognised() {
        let u = DatabaseUrl::parse("sqlite://data/tether.db").unwrap();
        assert_eq!(u.backend, Backend::Sqlite);
        assert_eq!(u.driver_url, "sqlite://data/tether.db?mode=rwc");
        assert!(!u.sqlite_memory);
        let u = DatabaseUrl::parse("sqlite:tether.db?mode=ro").unwrap();
        assert_eq!(u.driver_url, "sqlite:tether.db?mode=ro");
        let u = DatabaseUrl::parse("sqlite::memory:").unwrap();
        assert!(u.sqlite_memory);
        let u = DatabaseUrl::parse("postgresql://u@h/db").unwrap();
        assert_eq!(u.backend, Backend::Postgres);
        let u = DatabaseUrl::parse("mariadb://root@127.0.0.1:3306/t").unwrap();
        assert_eq!(u.backend, Backend::MySql);
        assert_eq!(u.driver_url, "mysql://root@127.0.0.1:3306/t");
    }

    #[test]
    fn bad_urls_have_clear_messages_without_passwords() {
        let err = DatabaseUrl::parse("redis://u:hunter2@h/0").err().unwrap().to_string();
        assert!(err.contains("unsupported database URL scheme `redis:`"), "{err}");
        assert!(!err.contains("hunter2"));
        let err = DatabaseUrl::parse("not a url").err().unwrap().to_string();
        assert!(err.contains("not a valid URL"), "{err}");
        let err = DatabaseUrl::parse("sqlite:").err().unwrap().to_string();
        assert!(err.contains("no file name"), "{err}");
    }

    #[test]
    fn passwords_are_redacted_and_scrubbed() {
        let u = DatabaseUrl::parse("postgres://app:s%40cret@db.example:5432/tether").unwrap();
        assert_eq!(u.redacted, "postgres://app:***@db.example:5432/tether");
        assert_eq!(u.scrub("x s%40cret y s@cret z"), "x *** y *** z");
    }
}
