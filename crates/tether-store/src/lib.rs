//! Tether persistence on [sea-orm]: the [`tether_core`] store traits
//! ([`ConnectionStore`](tether_core::ConnectionStore), [`FlowStore`](tether_core::FlowStore),
//! [`EventStore`](tether_core::EventStore)) for SQLite, PostgreSQL and MySQL/MariaDB.
//!
//! ```no_run
//! # async fn demo(keys: tether_core::KeyRing) -> tether_core::Result<()> {
//! let store = tether_store::SeaStore::connect("sqlite://tether.db", keys).await?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! - Every secret (access and refresh tokens, PKCE verifiers) is sealed with the store's
//!   [`KeyRing`](tether_core::KeyRing) for its table, row and column before it is written, and
//!   opened when read: plaintext never reaches the database, and a ciphertext moved to another
//!   row fails to open.
//! - Everything that must be atomic across processes (the refresh lease, completing a refresh,
//!   single use of connect links and OAuth states) is one conditional `UPDATE`, so it is atomic
//!   on all three databases without row locks.
//! - Times are stored as unix milliseconds (`BIGINT`): values read back are truncated to the
//!   millisecond.
//! - [`SeaStore::reseal_secrets`] re-seals every secret under the primary key after a key
//!   rotation; [`testing`] creates throw-away databases for tests.
//!
//! On MySQL/MariaDB the tables use `utf8mb4` with a binary collation (`utf8mb4_nopad_bin` on
//! MariaDB, `utf8mb4_0900_bin` on MySQL 8, `utf8mb4_bin` on older servers), so owners, account
//! ids and hashes compare exactly, as on the other two databases. (With the last one, which pads,
//! values differing only by trailing spaces compare equal.)
//!
//! [sea-orm]: https://www.sea-ql.org/SeaORM/
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod connect;
pub mod entity;
mod error;
pub mod migration;
mod store;
pub mod testing;

pub use connect::StoreOptions;
pub use migration::Migrator;
pub use store::{ResealReport, SeaStore};

/// Re-exported so users of [`SeaStore::connection`] need no direct sea-orm dependency.
pub use sea_orm;
