//! The in-memory token cache never outlives a change made by another replica: on its young
//! ground (`token_cache_ttl_ms`) because disconnects wait that long, on its followed ground
//! (`token_cache_max_age_secs`) because every replica polls the change feed.

use std::time::Duration;

use reqwest::Method;
use tether_e2e::{Harness, HarnessOptions, e2e_test};
use tether_store::sea_orm::{ConnectionTrait, Statement};

fn options(key: &str, ttl_ms: u64, max_age_secs: u64) -> HarnessOptions {
    HarnessOptions {
        token_cache_ttl_ms: ttl_ms,
        token_cache_max_age_secs: max_age_secs,
        encryption_keys: Some(vec![key.to_owned()]),
        ..HarnessOptions::default()
    }
}

/// Sets a connection's status behind the store's back: `updated_at` stays as it was, so the
/// change feed does not report it (only a cache hit can still serve the token then).
async fn set_status_unannounced(db: &str, id: &str, status: &str) {
    let store = tether_store::SeaStore::connect(db, tether_store::testing::test_key_ring().unwrap()).await.unwrap();
    let conn = store.connection();
    let sql = format!("UPDATE connections SET status = '{status}' WHERE id = '{id}'");
    conn.execute_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap();
}

e2e_test!(a_disconnect_on_one_server_is_seen_by_the_other_when_it_returns, |db| {
    let key = tether_core::EncryptionKey::generate().unwrap();
    // Young entries only: the wait of the disconnect alone keeps replicas right.
    let a = Harness::start(&db, options(&key, 1500, 0)).await;
    let b = Harness::start(&db, options(&key, 1500, 0)).await;
    let id = a.connect("user-1").await;
    let token = format!("/v1/connections/{id}/token");
    // A serves the token and keeps it in its cache.
    let (status, first) = a.api_call(Method::GET, &token, None).await;
    assert_eq!(status, 200, "{first}");
    let (status, again) = a.api_call(Method::GET, &token, None).await;
    assert_eq!((status, &again["access_token"]), (200, &first["access_token"]));
    // B disconnects. When its DELETE returns, A no longer hands the token out.
    let (status, body) = b.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = a.api_call(Method::GET, &token, None).await;
    assert_eq!(status, 410, "replica A served a disconnected connection's token: {body}");
    assert_eq!(body["error"]["code"], "connection_disconnected");
    // A forced refresh never comes from the cache either.
    let (status, _) = a.api_call(Method::GET, &format!("{token}?force_refresh=true"), None).await;
    assert_eq!(status, 410);
    a.stop().await;
    b.stop().await;
});

/// Reads the token on `replica` until it is proven to come from its cache: a change the feed
/// cannot see (status set without `updated_at`) does not reach a cached read, while `witness`,
/// which has not read this token, reads the database and reports it. (A read that started
/// before the replica's feed applied its first poll is not cached; the loop reads again.)
async fn cached_by(replica: &Harness, witness: &Harness, db: &str, id: &str) -> serde_json::Value {
    let token = format!("/v1/connections/{id}/token");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, first) = replica.api_call(Method::GET, &token, None).await;
        assert_eq!(status, 200, "{first}");
        set_status_unannounced(db, id, "reauth_required").await;
        let (status, cached) = replica.api_call(Method::GET, &token, None).await;
        let (witness_status, witnessed) = witness.api_call(Method::GET, &token, None).await;
        set_status_unannounced(db, id, "active").await;
        assert_eq!(witness_status, 409, "the witness reads the database: {witnessed}");
        if status == 200 {
            assert_eq!(cached["access_token"], first["access_token"]);
            return first;
        }
        assert!(tokio::time::Instant::now() < deadline, "the replica never served the token from its cache: {cached}");
    }
}

e2e_test!(followed_cache_entries_drop_what_another_replica_changed, |db| {
    let key = tether_core::EncryptionKey::generate().unwrap();
    // Followed entries only (no young ground): B serves from memory for up to a minute, and
    // only the change feed tells it what A did. (A made the connection with its own mock
    // provider, so A is the one that refreshes and revokes.)
    let a = Harness::start(&db, options(&key, 0, 60)).await;
    let b = Harness::start(&db, options(&key, 0, 60)).await;
    let id = a.connect("user-1").await;
    let token = format!("/v1/connections/{id}/token");
    let first = cached_by(&b, &a, &db, &id).await;

    // A refreshes: B serves A's new token within a few polls (it dropped its entry).
    let (status, renewed) = a.api_call(Method::GET, &format!("{token}?force_refresh=true"), None).await;
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(renewed["access_token"], first["access_token"]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, seen) = b.api_call(Method::GET, &token, None).await;
        assert_eq!(status, 200, "{seen}");
        if seen["access_token"] == renewed["access_token"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "B kept serving the token A replaced");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // B holds the new token; A disconnects. When A's DELETE returns, B's feed has seen it.
    let held = cached_by(&b, &a, &db, &id).await;
    assert_eq!(held["access_token"], renewed["access_token"]);
    let (status, body) = a.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = b.api_call(Method::GET, &token, None).await;
    assert_eq!(status, 410, "replica B served a disconnected connection's token: {body}");
    assert_eq!(body["error"]["code"], "connection_disconnected");
    a.stop().await;
    b.stop().await;
});
