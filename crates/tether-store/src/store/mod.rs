//! [`SeaStore`]: the store traits of tether-core on sea-orm.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;
use tether_core::{Error, ExposeSecret, KeyRing, Result, SealContext, SealedSecret, SecretString};

use crate::connect::{Backend, DatabaseUrl, StoreOptions};
use crate::error::{corrupt, db_err};
use crate::migration::Migrator;

mod connections;
mod events;
mod flows;
mod registrations;
mod reseal;
mod webhooks;

pub use reseal::ResealReport;

/// Table and column names used as sealing context.
pub(crate) mod names {
    pub(crate) const CONNECTIONS: &str = "connections";
    pub(crate) const AUTH_FLOWS: &str = "auth_flows";
    pub(crate) const ACCESS_TOKEN: &str = "access_token";
    pub(crate) const REFRESH_TOKEN: &str = "refresh_token";
    pub(crate) const TOKEN_SECRET: &str = "token_secret";
    pub(crate) const PKCE_VERIFIER: &str = "pkce_verifier";
    pub(crate) const CLIENT_REGISTRATIONS: &str = "client_registrations";
    pub(crate) const CLIENT_SECRET: &str = "client_secret";
}

/// The Tether store on a SQLite, PostgreSQL or MySQL/MariaDB database.
///
/// It implements [`ConnectionStore`](tether_core::ConnectionStore),
/// [`FlowStore`](tether_core::FlowStore) and [`EventStore`](tether_core::EventStore), so it is a
/// [`tether_core::Store`]. Cloning is cheap (the pool and the key ring are shared).
#[derive(Clone)]
pub struct SeaStore {
    db: DatabaseConnection,
    keys: KeyRing,
    backend: Backend,
    /// SQLite only: this process's writes queue here (FIFO, no sleeping) instead of contending
    /// for the database's write lock, where SQLite's busy handler would sleep for milliseconds
    /// per retry.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

/// Held while a write runs (SQLite: the process-wide write gate; other databases: nothing).
pub(crate) type WriteGuard = Option<tokio::sync::OwnedMutexGuard<()>>;

impl fmt::Debug for SeaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeaStore")
            .field("backend", &self.backend.as_str())
            .field("primary_key_id", &self.keys.primary_key_id())
            .finish_non_exhaustive()
    }
}

impl SeaStore {
    /// Connects to `database_url` with default pool settings.
    ///
    /// Accepted URLs: `sqlite://PATH` / `sqlite:PATH` (the file is created if missing, unless
    /// the URL has a `mode` parameter), `sqlite::memory:`, `postgres://` / `postgresql://`,
    /// `mysql://` / `mariadb://`. SQLite connections use WAL journaling, a 5 s busy timeout and
    /// foreign keys, so concurrent writers wait for each other instead of failing.
    ///
    /// Errors name the database without its password.
    pub async fn connect(database_url: &str, keys: KeyRing) -> Result<SeaStore> {
        Self::connect_with(database_url, keys, StoreOptions::default()).await
    }

    /// Connects with explicit pool settings.
    pub async fn connect_with(database_url: &str, keys: KeyRing, options: StoreOptions) -> Result<SeaStore> {
        let url = DatabaseUrl::parse(database_url)?;
        let db = url.connect(&options).await?;
        tracing::debug!(backend = url.backend.as_str(), database = %url.redacted, "store connected");
        Ok(SeaStore::new(db, keys, url.backend))
    }

    /// Wraps an existing sea-orm connection (for applications that already have a pool).
    ///
    /// SQLite pragmas (WAL, busy timeout, foreign keys) are then the caller's business.
    pub fn from_connection(db: DatabaseConnection, keys: KeyRing) -> SeaStore {
        let backend = match db.get_database_backend() {
            sea_orm::DbBackend::Postgres => Backend::Postgres,
            sea_orm::DbBackend::MySql => Backend::MySql,
            _ => Backend::Sqlite,
        };
        SeaStore::new(db, keys, backend)
    }

    fn new(db: DatabaseConnection, keys: KeyRing, backend: Backend) -> SeaStore {
        let write_gate = (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(())));
        SeaStore { db, keys, backend, write_gate }
    }

    /// Applies every pending migration.
    ///
    /// Safe to run concurrently from several processes: on PostgreSQL and MySQL it holds a
    /// database lock (`pg_advisory_xact_lock` / `GET_LOCK`) while migrating, on SQLite an
    /// immediate (write) transaction.
    pub async fn migrate(&self) -> Result<()> {
        let context = "running migrations";
        match self.backend {
            Backend::Sqlite => {
                let (txn, _gate) = self.begin_write().await?;
                Migrator::up(&txn, None).await.map_err(db_err(context))?;
                txn.commit().await.map_err(db_err(context))
            }
            Backend::Postgres => {
                let txn = self.db.begin().await.map_err(db_err(context))?;
                // 0x746574686572 is "tether" in ASCII.
                txn.execute_unprepared("SELECT pg_advisory_xact_lock(127978044810610)")
                    .await
                    .map_err(db_err("taking the migration lock"))?;
                Migrator::up(&txn, None).await.map_err(db_err(context))?;
                txn.commit().await.map_err(db_err(context))
            }
            Backend::MySql => {
                // The transaction only pins one pooled connection: GET_LOCK belongs to the
                // session, and MySQL commits implicitly around DDL anyway.
                let txn = self.db.begin().await.map_err(db_err(context))?;
                let got = txn
                    .query_one_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::MySql,
                        "SELECT GET_LOCK('tether_migrations', 300) AS got",
                    ))
                    .await
                    .map_err(db_err("taking the migration lock"))?
                    .and_then(|row| row.try_get::<Option<i64>>("", "got").ok().flatten());
                if got != Some(1) {
                    return Err(Error::Store("timed out waiting for another process to finish migrating".into()));
                }
                let result = Migrator::up(&txn, None).await;
                let released = txn.execute_unprepared("DO RELEASE_LOCK('tether_migrations')").await;
                result.map_err(db_err(context))?;
                released.map_err(db_err("releasing the migration lock"))?;
                txn.commit().await.map_err(db_err(context))
            }
        }
    }

    /// Names of the migrations not yet applied (empty when the schema is current). Reads only:
    /// suitable for readiness checks with a user that may not create tables.
    pub async fn pending_migrations(&self) -> Result<Vec<String>> {
        let pending =
            Migrator::get_pending_migrations_read_only(&self.db).await.map_err(db_err("reading applied migrations"))?;
        Ok(pending.iter().map(|m| m.name().to_owned()).collect())
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(db_err("pinging the database"))
    }

    /// `"sqlite"`, `"postgres"` or `"mysql"` (MariaDB included).
    pub fn backend(&self) -> &'static str {
        self.backend.as_str()
    }

    /// The underlying sea-orm connection pool.
    ///
    /// This inherent method shadows [`ConnectionStore::connection`](tether_core::ConnectionStore::connection)
    /// on a concrete `SeaStore`: to read a Tether connection by id, call
    /// `ConnectionStore::connection(&store, id)` (through `dyn Store` there is no ambiguity).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// The key ring secrets are sealed with.
    pub fn key_ring(&self) -> &KeyRing {
        &self.keys
    }

    /// Closes the pool.
    pub async fn close(self) -> Result<()> {
        self.db.close().await.map_err(db_err("closing the pool"))
    }

    /// A transaction that writes. On SQLite it takes the write lock at `BEGIN` (`IMMEDIATE`):
    /// a deferred transaction that reads and then writes can fail with "database is locked"
    /// when another connection wrote in between, which the busy timeout does not cover.
    /// Waits for this process's turn to write (SQLite; immediate elsewhere). Hold the guard for
    /// the duration of the write statement.
    pub(crate) async fn write_gate(&self) -> WriteGuard {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// A write transaction with its [`WriteGuard`]; keep both until commit or rollback.
    pub(crate) async fn begin_write(&self) -> Result<(DatabaseTransaction, WriteGuard)> {
        let gate = self.write_gate().await;
        let options = TransactionOptions {
            sqlite_transaction_mode: (self.backend == Backend::Sqlite).then_some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        let txn = self.db.begin_with_options(options).await.map_err(db_err("beginning a transaction"))?;
        Ok((txn, gate))
    }

    pub(crate) fn seal(&self, table: &str, row: &str, column: &str, secret: &SecretString) -> Result<String> {
        Ok(self.keys.seal(secret.expose_secret(), SealContext { table, row, column })?.into_string())
    }

    pub(crate) fn open(&self, table: &str, row: &str, column: &str, stored: &str) -> Result<SecretString> {
        self.keys.open(&SealedSecret::from_stored(stored.to_owned()), SealContext { table, row, column })
    }
}

/// Unix milliseconds.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Back from unix milliseconds.
pub(crate) fn time(table: &str, column: &str, ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| corrupt(table, column, "time out of range"))
}

/// Optional time back from unix milliseconds.
pub(crate) fn time_opt(table: &str, column: &str, ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(|ms| time(table, column, ms)).transpose()
}

/// A list of strings as stored (JSON array).
pub(crate) fn json_list(list: &[String]) -> Result<String> {
    serde_json::to_string(list).map_err(|e| Error::Store(format!("encoding a list: {e}")))
}

/// A stored JSON array of strings.
pub(crate) fn parse_list(table: &str, column: &str, text: &str) -> Result<Vec<String>> {
    serde_json::from_str(text).map_err(|e| corrupt(table, column, e))
}

/// Checks the length of a value written to a `VARCHAR(max)` column.
pub(crate) fn check_len(what: &str, value: &str, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n > max {
        return Err(Error::InvalidInput(format!("{what} is too long ({n} characters; at most {max} can be stored)")));
    }
    Ok(())
}
