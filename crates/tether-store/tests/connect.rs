//! Connecting, SQLite connection settings, migrations on fresh databases and the test helpers.
//!
//! Tests that need PostgreSQL or MySQL run when `TETHER_TEST_POSTGRES_URL` /
//! `TETHER_TEST_MYSQL_URL` are set and fail when those servers cannot be used.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use tether_core::{
    AccountIdentity, ConnectionStore, Error, LeaseOutcome, NewConnection, OwnerId, ProviderId, TokenSet,
};
use tether_store::sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tether_store::testing::{TestDatabase, admin_url_from_env, drop_database, test_key_ring};
use tether_store::{SeaStore, StoreOptions};

fn new_connection(owner: &str, account: &str) -> NewConnection {
    NewConnection {
        owner: OwnerId::parse(owner).unwrap(),
        provider: ProviderId::parse("github").unwrap(),
        account: AccountIdentity { id: account.to_owned(), name: None },
        instance: None,
        tokens: TokenSet::bearer(format!("at-{owner}-{account}")),
        scopes: vec![],
    }
}

/// Fresh (unmigrated) databases of every configured backend: SQLite always.
async fn fresh_databases() -> Vec<TestDatabase> {
    let mut dbs = vec![TestDatabase::sqlite()];
    for backend in ["postgres", "mysql"] {
        if let Some(admin) = admin_url_from_env(backend) {
            dbs.push(
                TestDatabase::create(&admin)
                    .await
                    .unwrap_or_else(|e| panic!("the {backend} test server is configured but unusable: {e}")),
            );
        } else {
            eprintln!("note: no {backend} test server configured; only the other backends ran");
        }
    }
    dbs
}

#[tokio::test]
async fn unsupported_and_malformed_urls_are_explained() {
    let err = SeaStore::connect("redis://user:hunter2@localhost/0", test_key_ring().unwrap()).await.unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("unsupported database URL scheme `redis:`"), "{msg}");
    assert!(!msg.contains("hunter2"), "{msg}");

    let err = SeaStore::connect("tether.db", test_key_ring().unwrap()).await.unwrap_err();
    assert!(err.to_string().contains("not a valid URL"), "{err}");
}

#[tokio::test]
async fn unreachable_servers_fail_clearly_without_the_password() {
    for url in
        ["postgres://tether:hunter2-secret@127.0.0.1:1/tether", "mysql://tether:hunter2-secret@127.0.0.1:1/tether"]
    {
        let started = Instant::now();
        let err = SeaStore::connect_with(
            url,
            test_key_ring().unwrap(),
            StoreOptions::default().acquire_timeout(Duration::from_secs(3)),
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Store(_)), "{err:?}");
        assert!(msg.contains("cannot connect"), "{msg}");
        assert!(msg.contains("127.0.0.1:1"), "{msg}");
        // The cause, not just "pool timed out".
        assert!(msg.contains("refused"), "{msg}");
        assert!(msg.contains("***"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(10), "{url}: too slow");
    }
}

#[tokio::test]
async fn a_missing_database_on_a_live_server_is_named() {
    for backend in ["postgres", "mysql"] {
        let Some(admin) = admin_url_from_env(backend) else {
            eprintln!("note: no {backend} test server configured");
            continue;
        };
        let mut url = tether_core::Url::parse(&admin).unwrap();
        url.set_path("/tether_t_does_not_exist");
        let started = Instant::now();
        let err = SeaStore::connect(url.as_str(), test_key_ring().unwrap()).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("tether_t_does_not_exist"), "{msg}");
        assert!(msg.contains("does not exist") || msg.contains("Unknown database"), "{msg}");
        assert!(started.elapsed() < Duration::from_secs(20), "{backend}: too slow");
    }
}

#[tokio::test]
async fn sqlite_file_is_created_and_every_connection_is_configured() {
    let db = TestDatabase::sqlite();
    let store = SeaStore::connect(db.url(), test_key_ring().unwrap()).await.unwrap();
    // Hold four transactions at once so that four distinct pooled connections answer.
    let conn = store.connection();
    let mut txns = Vec::new();
    for _ in 0..4 {
        txns.push(conn.begin().await.unwrap());
    }
    for txn in &txns {
        let pragma = |name: &str| {
            let sql = format!("PRAGMA {name}");
            async move { txn.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql)).await.unwrap().unwrap() }
        };
        let mode: String = pragma("journal_mode").await.try_get_by_index(0).unwrap();
        assert_eq!(mode, "wal");
        let timeout: i64 = pragma("busy_timeout").await.try_get_by_index(0).unwrap();
        assert_eq!(timeout, 5000);
        let fk: i64 = pragma("foreign_keys").await.try_get_by_index(0).unwrap();
        assert_eq!(fk, 1);
    }
    drop(txns);
    store.close().await.unwrap();
    db.drop_database().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_writers_in_two_pools_wait_instead_of_failing() {
    let db = TestDatabase::sqlite();
    let keys = test_key_ring().unwrap();
    let a = SeaStore::connect(db.url(), keys.clone()).await.unwrap();
    let b = SeaStore::connect(db.url(), keys).await.unwrap();
    a.migrate().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            // Distinct identities, and one identity everybody fights over.
            store.upsert_connection(new_connection("owner", &format!("acct-{i}"))).await?;
            let (shared, _) = store.upsert_connection(new_connection("owner", "shared")).await?;
            let now = chrono::Utc::now();
            store.try_acquire_refresh_lease(shared.id, &format!("h{i}"), now + chrono::Duration::seconds(30), now).await
        }));
    }
    let mut acquired = 0;
    for t in tasks {
        let outcome = t.await.unwrap().expect("no \"database is locked\"");
        acquired += usize::from(outcome == LeaseOutcome::Acquired);
    }
    // Every upsert of "shared" clears the lease, so several may win; at least one did.
    assert!(acquired >= 1);
    let all = a.list_connections(&tether_core::ConnectionFilter::default()).await.unwrap();
    assert_eq!(all.len(), 41);
    a.close().await.unwrap();
    b.close().await.unwrap();
    db.drop_database().await.unwrap();
}

#[tokio::test]
async fn sqlite_in_memory_works_with_its_single_connection() {
    let store = SeaStore::connect("sqlite::memory:", test_key_ring().unwrap()).await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    store.migrate().await.unwrap();
    let (c, created) = store.upsert_connection(new_connection("alice", "1")).await.unwrap();
    assert!(created);
    assert!(store.tokens(c.id).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pending_migrations_then_concurrent_migrations_on_fresh_databases() {
    for db in fresh_databases().await {
        let keys = test_key_ring().unwrap();
        let store = SeaStore::connect(db.url(), keys.clone()).await.unwrap();
        assert_eq!(
            store.pending_migrations().await.unwrap(),
            vec![
                "m20261122_000001_create_tables".to_string(),
                "m20261123_000001_webhook_deliveries".to_string(),
                "m20261127_000001_client_registrations".to_string(),
                "m20261128_000001_login_hint".to_string(),
                "m20261129_000001_connections_updated_at".to_string(),
            ],
            "{}",
            db.backend()
        );
        // Several processes starting at once all migrate; exactly one does the work.
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = db.url().to_owned();
            let keys = keys.clone();
            tasks.push(tokio::spawn(async move {
                let s = SeaStore::connect(&url, keys).await?;
                let r = s.migrate().await;
                s.close().await?;
                r
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap_or_else(|e| panic!("{}: concurrent migrate failed: {e}", db.backend()));
        }
        assert!(store.pending_migrations().await.unwrap().is_empty());
        store.upsert_connection(new_connection("alice", "1")).await.unwrap();
        store.close().await.unwrap();
        db.drop_database().await.unwrap();
    }
}

#[tokio::test]
async fn test_helpers_refuse_to_drop_foreign_databases() {
    let err =
        drop_database("postgres://postgres@127.0.0.1:5432/postgres", "postgres://postgres@127.0.0.1:5432/production")
            .await
            .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = drop_database("sqlite::memory:", "sqlite:///var/lib/tether/tether.db").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");

    // The URL-returning helpers round-trip on SQLite.
    let url = tether_store::testing::fresh_database_url("sqlite::memory:").await.unwrap();
    let store = SeaStore::connect(&url, test_key_ring().unwrap()).await.unwrap();
    store.migrate().await.unwrap();
    store.close().await.unwrap();
    drop_database("sqlite::memory:", &url).await.unwrap();
    let path = url.trim_start_matches("sqlite://").split('?').next().unwrap().to_owned();
    assert!(!std::path::Path::new(&path).exists());
}
