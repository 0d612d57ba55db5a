//! Helpers for tests that need a real, empty database of their own: this crate's conformance
//! suite and the end-to-end tests of the workspace.
//!
//! Each test creates a fresh database (a new SQLite file, or `CREATE DATABASE tether_t_<random>`
//! through an admin URL of a PostgreSQL or MySQL/MariaDB server), so tests run in parallel
//! without seeing each other's rows, and drops it at the end.
//!
//! ```no_run
//! # async fn demo() -> tether_core::Result<()> {
//! use tether_store::testing::{TestDatabase, test_key_ring};
//! let db = TestDatabase::create("postgres://postgres@127.0.0.1:5432/postgres").await?;
//! let store = tether_store::SeaStore::connect(db.url(), test_key_ring()?).await?;
//! store.migrate().await?;
//! // ...
//! store.close().await?;
//! db.drop_database().await?;
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::time::Duration;

use sea_orm::ConnectionTrait;
use tether_core::{EncryptionKey, Error, KeyRing, Result};
use url::Url;
use uuid::Uuid;

use crate::StoreOptions;
use crate::connect::{Backend, DatabaseUrl};

/// Environment variable with the admin URL of a PostgreSQL server for tests
/// (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
pub const POSTGRES_URL_ENV: &str = "TETHER_TEST_POSTGRES_URL";
/// Environment variable with the admin URL of a MySQL/MariaDB server for tests
/// (e.g. `mysql://root@127.0.0.1:3306/test`).
pub const MYSQL_URL_ENV: &str = "TETHER_TEST_MYSQL_URL";

/// Prefix of every database (or SQLite file) these helpers create; only such databases are
/// ever dropped.
pub const TEST_DATABASE_PREFIX: &str = "tether_t_";

/// A key ring with one fresh random key.
pub fn test_key_ring() -> Result<KeyRing> {
    KeyRing::parse(&[EncryptionKey::generate()?])
}

/// A database created for one test.
#[derive(Debug)]
pub struct TestDatabase {
    url: String,
    backend: Backend,
    target: Target,
}

#[derive(Debug)]
enum Target {
    SqliteFile(PathBuf),
    Server { admin_url: String, name: String },
}

fn random_name() -> String {
    format!("{TEST_DATABASE_PREFIX}{}", Uuid::new_v4().simple())
}

fn sqlite_file_url(path: &std::path::Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl TestDatabase {
    /// A fresh SQLite file in the system's temporary directory.
    pub fn sqlite() -> Self {
        let path = std::env::temp_dir().join(format!("{}.db", random_name()));
        TestDatabase { url: sqlite_file_url(&path), backend: Backend::Sqlite, target: Target::SqliteFile(path) }
    }

    /// A fresh, empty database on the server of `admin_url` (a user allowed to create
    /// databases), or a fresh SQLite file when `admin_url` is a `sqlite:` URL.
    ///
    /// Fails with a clear message when the server cannot be reached.
    pub async fn create(admin_url: &str) -> Result<Self> {
        let admin = DatabaseUrl::parse(admin_url)?;
        if admin.backend == Backend::Sqlite {
            return Ok(Self::sqlite());
        }
        let name = random_name();
        let conn = admin_connection(&admin).await?;
        let sql = match admin.backend {
            Backend::Postgres => format!("CREATE DATABASE \"{name}\""),
            _ => format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"),
        };
        let created = conn.execute_unprepared(&sql).await;
        let _ = conn.close().await;
        created.map_err(|e| {
            Error::Store(format!(
                "cannot create test database {name} on {}: {}",
                admin.redacted,
                admin.scrub(&e.to_string())
            ))
        })?;
        let mut url = Url::parse(admin_url.trim()).map_err(|e| Error::Config(format!("admin URL: {e}")))?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            backend: admin.backend,
            target: Target::Server { admin_url: admin_url.trim().to_owned(), name },
        })
    }

    /// The URL of the new database, for [`SeaStore::connect`](crate::SeaStore::connect).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `"sqlite"`, `"postgres"` or `"mysql"`.
    pub fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    /// Drops the database (deletes the SQLite file). Close stores using it first; on
    /// PostgreSQL remaining connections are terminated.
    pub async fn drop_database(self) -> Result<()> {
        match self.target {
            Target::SqliteFile(path) => {
                remove_sqlite_files(&path);
                Ok(())
            }
            Target::Server { admin_url, name } => drop_server_database(&admin_url, &name).await,
        }
    }
}

fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

async fn admin_connection(admin: &DatabaseUrl) -> Result<sea_orm::DatabaseConnection> {
    admin.connect(&StoreOptions::default().max_connections(1).acquire_timeout(Duration::from_secs(10))).await
}

async fn drop_server_database(admin_url: &str, name: &str) -> Result<()> {
    let admin = DatabaseUrl::parse(admin_url)?;
    let conn = admin_connection(&admin).await?;
    let result = match admin.backend {
        Backend::Postgres => {
            let forced = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
            match forced {
                Ok(r) => Ok(r),
                // PostgreSQL before 13 has no FORCE.
                Err(_) => conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await,
            }
        }
        _ => conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS `{name}`")).await,
    };
    let _ = conn.close().await;
    result
        .map(|_| ())
        .map_err(|e| Error::Store(format!("cannot drop test database {name}: {}", admin.scrub(&e.to_string()))))
}

/// Creates a fresh database through `admin_url` (see [`TestDatabase::create`]) and returns its
/// URL. Drop it with [`drop_database`] when done.
pub async fn fresh_database_url(admin_url: &str) -> Result<String> {
    Ok(TestDatabase::create(admin_url).await?.url)
}

/// Drops a database made by [`fresh_database_url`]. Refuses anything whose name does not start
/// with [`TEST_DATABASE_PREFIX`].
pub async fn drop_database(admin_url: &str, database_url: &str) -> Result<()> {
    let parsed = DatabaseUrl::parse(database_url)?;
    let refuse = || {
        Error::InvalidInput(format!(
            "refusing to drop {}: not a test database ({TEST_DATABASE_PREFIX}*)",
            parsed.redacted
        ))
    };
    let is_test_name = |name: &str| {
        name.strip_prefix(TEST_DATABASE_PREFIX)
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
    };
    if parsed.backend == Backend::Sqlite {
        let path = database_url.split_once("://").map_or(database_url, |(_, rest)| rest);
        let path = PathBuf::from(path.split('?').next().unwrap_or(path));
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
        if !is_test_name(stem) {
            return Err(refuse());
        }
        remove_sqlite_files(&path);
        return Ok(());
    }
    let url = Url::parse(database_url.trim()).map_err(|e| Error::Config(e.to_string()))?;
    let name = url.path().trim_start_matches('/');
    if !is_test_name(name) {
        return Err(refuse());
    }
    drop_server_database(admin_url, name).await
}

/// The admin URL for `backend` (`"postgres"` or `"mysql"`) from the environment
/// ([`POSTGRES_URL_ENV`], [`MYSQL_URL_ENV`]); `None` when unset or empty.
pub fn admin_url_from_env(backend: &str) -> Option<String> {
    let var = match backend {
        "postgres" => POSTGRES_URL_ENV,
        "mysql" => MYSQL_URL_ENV,
        _ => return None,
    };
    std::env::var(var).ok().filter(|v| !v.trim().is_empty())
}
