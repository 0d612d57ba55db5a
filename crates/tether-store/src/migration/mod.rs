//! Schema migrations (sea-orm-migration), portable across SQLite, PostgreSQL and MariaDB/MySQL.
//!
//! Applied migrations are recorded in `tether_migrations` (not sea-orm's default
//! `seaql_migrations`), so Tether can share a database with an application that runs its own
//! sea-orm migrations.

use sea_orm_migration::prelude::*;

mod m20261122_000001_create_tables;
mod m20261123_000001_webhook_deliveries;
mod m20261127_000001_client_registrations;
mod m20261128_000001_login_hint;
mod m20261129_000001_connections_updated_at;

/// Column lengths of indexed `VARCHAR` columns, enforced by the store before writing.
///
/// On MySQL/MariaDB (utf8mb4, 4 bytes per character) one index key may use at most 3072 bytes,
/// i.e. 768 characters in total over its columns.
pub mod limits {
    /// `connections.owner`, `auth_flows.owner` (an [`OwnerId`](tether_core::OwnerId) is at
    /// most 255 bytes).
    pub const OWNER: usize = 255;
    /// `provider` columns (a [`ProviderId`](tether_core::ProviderId) is at most 64 characters).
    pub const PROVIDER: usize = 64;
    /// `connections.account_id`.
    pub const ACCOUNT_ID: usize = 255;
    /// `connections.status`.
    pub const STATUS: usize = 32;
    /// `connections.token_type`.
    pub const TOKEN_TYPE: usize = 32;
    /// `connections.lease_holder`.
    pub const LEASE_HOLDER: usize = 255;
    /// SHA-256 hex hashes (`link_token_hash`, `state_hash`, `browser_binding_hash`).
    pub const HASH: usize = 64;
    /// `events.kind`.
    pub const EVENT_KIND: usize = 32;
    /// UUID strings.
    pub const UUID: usize = 36;
    /// `webhook_deliveries.endpoint` (a configured webhook name).
    pub const WEBHOOK_ENDPOINT: usize = tether_core::webhook::WEBHOOK_NAME_MAX;
    /// `instance` columns: a server origin (`https://host:port`; the host is at most 253).
    pub const INSTANCE: usize = 300;
    /// `client_registrations.redirect_uri`.
    pub const REDIRECT_URI: usize = 400;
    /// `auth_flows.login_hint` (not indexed; a handle or DID is far shorter).
    pub const LOGIN_HINT: usize = 2048;

    // The unique key (owner, provider, account_id) must fit MySQL's 3072-byte key limit.
    const _: () = assert!((OWNER + PROVIDER + ACCOUNT_ID) * 4 <= 3072);
    // So must (provider, instance, redirect_uri) of `client_registrations`.
    const _: () = assert!((PROVIDER + INSTANCE + REDIRECT_URI) * 4 <= 3072);
    // Anything longer than an instance origin is refused before it reaches the store.
    const _: () = assert!(tether_core::INSTANCE_MAX + "https://".len() <= INSTANCE);
}

/// Tether's migrations.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_tables::Migration),
            Box::new(m20261123_000001_webhook_deliveries::Migration),
            Box::new(m20261127_000001_client_registrations::Migration),
            Box::new(m20261128_000001_login_hint::Migration),
            Box::new(m20261129_000001_connections_updated_at::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "tether_migrations".into_iden()
    }
}
