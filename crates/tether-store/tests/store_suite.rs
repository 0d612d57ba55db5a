//! The store conformance suite: every test runs against SQLite (always, a fresh file per test),
//! PostgreSQL (when `TETHER_TEST_POSTGRES_URL` is set) and MySQL/MariaDB (when
//! `TETHER_TEST_MYSQL_URL` is set). Each test gets a database of its own.
//!
//! ```text
//! TETHER_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//! TETHER_TEST_MYSQL_URL=mysql://root@127.0.0.1:3306/test cargo test -p tether-store
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use tether_core::{
    AccountIdentity, ClientRegistration, ClientRegistrationStore, ConnectionFilter, ConnectionId, ConnectionStatus,
    ConnectionStore, EncryptionKey, Error, EventKind, EventStore, ExposeSecret, FlowError, FlowStart, FlowStore,
    KeyRing, LeaseOutcome, NewConnectSession, NewConnection, NewEvent, OwnerId, ProviderId, SecretString, TokenSet,
    Url,
};
use tether_core::{InstanceOrigin, RegisteredClient};
use tether_store::SeaStore;
use tether_store::sea_orm::ConnectionTrait;
use tether_store::sea_orm::sea_query::{Alias, Asterisk, Expr, ExprTrait, Func, Query};
use tether_store::testing::{MYSQL_URL_ENV, POSTGRES_URL_ENV, TestDatabase, admin_url_from_env, test_key_ring};
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

/// Runs `body` against a fresh, migrated database of `backend`.
///
/// SQLite always runs. PostgreSQL and MySQL run when their environment variable is set; when it
/// is set but the server cannot be used, the test fails (it is never silently skipped).
async fn run<F, Fut>(backend: &'static str, body: F)
where
    F: FnOnce(SeaStore) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let env = match backend {
        "postgres" => POSTGRES_URL_ENV,
        "mysql" => MYSQL_URL_ENV,
        _ => "",
    };
    let db = if backend == "sqlite" {
        TestDatabase::sqlite()
    } else {
        let Some(admin) = admin_url_from_env(backend) else {
            eprintln!("note: {env} is not set; the {backend} variant of this test did not run");
            return;
        };
        TestDatabase::create(&admin)
            .await
            .unwrap_or_else(|e| panic!("{env} is set, but no test database could be created there: {e}"))
    };
    let store = SeaStore::connect(db.url(), test_key_ring().unwrap())
        .await
        .unwrap_or_else(|e| panic!("connecting to the fresh {backend} test database: {e}"));
    assert_eq!(store.backend(), backend);
    store.migrate().await.expect("migrate");
    let outcome = tokio::spawn(body(store.clone())).await;
    let _ = store.close().await;
    if let Err(e) = db.drop_database().await {
        eprintln!("warning: {e}");
    }
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("test task failed: {e}"),
        }
    }
}

/// Instantiates the test body `$name` once per backend: `$name::sqlite`, `$name::postgres`,
/// `$name::mysql`.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                crate::run("sqlite", super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                crate::run("postgres", super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn mysql() {
                crate::run("mysql", super::$name).await
            }
        }
    )*};
}

store_tests!(
    migrate_is_idempotent,
    upsert_creates_then_updates_the_same_identity,
    different_owners_of_one_account_get_two_connections,
    identities_compare_exactly,
    longest_identities_fit_and_longer_ones_are_rejected,
    tokens_round_trip,
    secrets_are_sealed_at_rest,
    ciphertext_moved_to_another_row_fails_to_open,
    concurrent_upserts_of_one_identity_make_one_connection,
    twenty_concurrent_lease_acquirers_one_wins,
    versioned_lease_is_taken_only_at_the_current_version_of_an_active_connection,
    expired_lease_can_be_taken_over,
    lease_on_unknown_connection_is_not_found,
    complete_refresh_by_wrong_holder_writes_nothing,
    complete_refresh_persists_rotated_tokens_and_clears_lease,
    release_refresh_lease_is_conditional_on_holder,
    due_for_refresh_orders_limits_and_skips_leased,
    list_connections_filters_newest_first,
    set_status_and_disconnect_of_unknown_connection_are_not_found,
    disconnect_deletes_secrets,
    start_flow_is_single_use,
    start_flow_rejects_unknown_and_expired_links,
    concurrent_starts_of_one_link_one_wins,
    consume_flow_is_single_use_and_forgets_the_verifier,
    consume_flow_rejects_unknown_and_expired_state,
    concurrent_consumes_of_one_state_one_wins,
    pkce_verifier_is_sealed_to_its_flow,
    purge_deletes_only_expired_flows,
    events_are_listed_newest_first,
    reseal_moves_every_secret_to_the_primary_key,
);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Now, at the millisecond precision the store keeps.
fn now() -> DateTime<Utc> {
    DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).unwrap()
}

fn secret(s: &str) -> SecretString {
    SecretString::from(s.to_owned())
}

fn tokens(access: &str, refresh: Option<&str>, expires_at: Option<DateTime<Utc>>) -> TokenSet {
    let mut t = TokenSet::bearer(access);
    t.refresh_token = refresh.map(secret);
    t.expires_at = expires_at;
    t
}

fn new_connection(owner: &str, provider: &str, account: &str, tokens: TokenSet) -> NewConnection {
    NewConnection {
        owner: OwnerId::parse(owner).unwrap(),
        provider: ProviderId::parse(provider).unwrap(),
        account: AccountIdentity { id: account.to_owned(), name: Some(format!("name of {account}")) },
        instance: None,
        tokens,
        scopes: vec!["read".into()],
    }
}

/// A connection of `owner` on github, account `account`, with a refresh token, expiring at
/// `expires_at`.
async fn connect(store: &SeaStore, owner: &str, account: &str, expires_at: Option<DateTime<Utc>>) -> ConnectionId {
    let t = tokens(&format!("at-{owner}-{account}"), Some(&format!("rt-{owner}-{account}")), expires_at);
    let (c, created) = store.upsert_connection(new_connection(owner, "github", account, t)).await.unwrap();
    assert!(created);
    c.id
}

async fn access_token(store: &SeaStore, id: ConnectionId) -> String {
    let stored = store.tokens(id).await.unwrap().expect("tokens");
    stored.tokens.access_token.expose_secret().to_owned()
}

async fn version(store: &SeaStore, id: ConnectionId) -> i64 {
    store.tokens(id).await.unwrap().expect("tokens").version
}

/// Reads one text column of one row directly, bypassing the store.
async fn raw(store: &SeaStore, table: &str, column: &str, id: &str) -> Option<String> {
    let stmt = Query::select()
        .column(Alias::new(column))
        .from(Alias::new(table))
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    let row = store.connection().query_one(&stmt).await.unwrap().expect("row exists");
    row.try_get::<Option<String>>("", column).unwrap()
}

/// Writes one text column of one row directly, bypassing the store.
async fn raw_set(store: &SeaStore, table: &str, column: &str, id: &str, value: Option<String>) {
    let stmt = Query::update()
        .table(Alias::new(table))
        .value(Alias::new(column), value)
        .and_where(Expr::col(Alias::new("id")).eq(id))
        .to_owned();
    store.connection().execute(&stmt).await.unwrap();
}

async fn raw_count(store: &SeaStore, table: &str) -> i64 {
    let stmt =
        Query::select().expr_as(Func::count(Expr::col(Asterisk)), Alias::new("n")).from(Alias::new(table)).to_owned();
    let row = store.connection().query_one(&stmt).await.unwrap().unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

fn session(link_hash: &str, expires_at: DateTime<Utc>) -> NewConnectSession {
    NewConnectSession {
        id: Uuid::now_v7(),
        link_token_hash: link_hash.to_owned(),
        provider: ProviderId::parse("github").unwrap(),
        owner: OwnerId::parse("owner-1").unwrap(),
        scopes: vec!["repo".into(), "user".into()],
        instance: None,
        login_hint: None,
        return_to: Some(Url::parse("https://app.example/done?x=1").unwrap()),
        expires_at,
        created_at: now(),
    }
}

fn flow_start(state_hash: &str, verifier: &str, expires_at: DateTime<Utc>) -> FlowStart {
    FlowStart {
        state_hash: state_hash.to_owned(),
        pkce_verifier: Some(secret(verifier)),
        instance: None,
        browser_binding_hash: hash(&format!("binding-of-{state_hash}")),
        redirect_uri: Url::parse("https://tether.example/").unwrap(),
        expires_at,
    }
}

fn hash(label: &str) -> String {
    tether_core::hash_secret(label)
}

fn flow_error(e: Error) -> FlowError {
    match e {
        Error::Flow(f) => f,
        other => panic!("expected a flow error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

async fn migrate_is_idempotent(store: SeaStore) {
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.pending_migrations().await.unwrap().is_empty());
    store.ping().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

async fn upsert_creates_then_updates_the_same_identity(store: SeaStore) {
    let t0 = now();
    let mut first = tokens("at-1", Some("rt-1"), Some(t0 + Duration::hours(1)));
    first.extra.insert("open_id".into(), "o-1".into());
    let (c1, created) = store.upsert_connection(new_connection("alice", "github", "42", first)).await.unwrap();
    assert!(created);
    assert_eq!(c1.status, ConnectionStatus::Active);
    assert_eq!(c1.owner.as_str(), "alice");
    assert_eq!(c1.provider.as_str(), "github");
    assert_eq!(c1.account.id, "42");
    assert_eq!(c1.account.name.as_deref(), Some("name of 42"));
    assert_eq!(c1.scopes, vec!["read".to_string()]);
    assert_eq!(c1.expires_at, Some(t0 + Duration::hours(1)));
    assert!(c1.has_refresh_token);
    assert_eq!(c1.last_refreshed_at, None);
    let v1 = store.tokens(c1.id).await.unwrap().unwrap();
    assert_eq!(v1.tokens.access_token.expose_secret(), "at-1");
    assert_eq!(v1.tokens.refresh_token.as_ref().unwrap().expose_secret(), "rt-1");

    store.set_status(c1.id, ConnectionStatus::ReauthRequired, Some("grant died")).await.unwrap();
    let lease_until = now() + Duration::seconds(30);
    assert_eq!(
        store.try_acquire_refresh_lease(c1.id, "someone", lease_until, now()).await.unwrap(),
        LeaseOutcome::Acquired
    );

    let mut again = new_connection("alice", "github", "42", tokens("at-2", None, Some(t0 + Duration::hours(2))));
    again.account.name = Some("Alice Liddell".into());
    again.scopes = vec!["repo".into(), "user".into()];
    let (c2, created) = store.upsert_connection(again).await.unwrap();
    assert!(!created);
    assert_eq!(c2.id, c1.id);
    assert_eq!(c2.created_at, c1.created_at);
    assert_eq!(c2.status, ConnectionStatus::Active);
    assert_eq!(c2.last_error, None);
    assert_eq!(c2.account.name.as_deref(), Some("Alice Liddell"));
    assert_eq!(c2.scopes, vec!["repo".to_string(), "user".to_string()]);
    assert_eq!(c2.expires_at, Some(t0 + Duration::hours(2)));
    assert!(!c2.has_refresh_token);
    let v2 = store.tokens(c1.id).await.unwrap().unwrap();
    assert_eq!(v2.tokens.access_token.expose_secret(), "at-2");
    assert!(v2.tokens.refresh_token.is_none());
    assert!(v2.tokens.extra.is_empty());
    assert_eq!(v2.version, v1.version + 1);
    // The reconnect cleared the lease.
    assert_eq!(
        store.try_acquire_refresh_lease(c1.id, "other", lease_until, now()).await.unwrap(),
        LeaseOutcome::Acquired
    );
    let all = store.list_connections(&ConnectionFilter::default()).await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(ConnectionStore::connection(&store, c1.id).await.unwrap().unwrap(), c2);
}

async fn different_owners_of_one_account_get_two_connections(store: SeaStore) {
    let a = connect(&store, "alice", "42", None).await;
    let b = connect(&store, "bob", "42", None).await;
    assert_ne!(a, b);
    assert_eq!(access_token(&store, a).await, "at-alice-42");
    assert_eq!(access_token(&store, b).await, "at-bob-42");
    // Same owner and account on another provider is another connection too.
    let (c, created) =
        store.upsert_connection(new_connection("alice", "gitlab", "42", tokens("x", None, None))).await.unwrap();
    assert!(created);
    assert!(c.id != a && c.id != b);
}

async fn identities_compare_exactly(store: SeaStore) {
    // MySQL's default collation is case-insensitive: the schema must not be.
    let lower = connect(&store, "alice", "acct", None).await;
    let upper = connect(&store, "Alice", "acct", None).await;
    let other_case_account = connect(&store, "alice", "ACCT", None).await;
    assert_ne!(lower, upper);
    assert_ne!(lower, other_case_account);
    // Nor may it pad: trailing spaces are part of the value (MariaDB: a NO PAD collation).
    let padded_owner = connect(&store, "alice ", "acct", None).await;
    let padded_account = connect(&store, "alice", "acct ", None).await;
    assert_ne!(lower, padded_owner);
    assert_ne!(lower, padded_account);
    let filter = ConnectionFilter { owner: Some(OwnerId::parse("alice").unwrap()), ..Default::default() };
    assert_eq!(store.list_connections(&filter).await.unwrap().len(), 3);
    let (again, created) =
        store.upsert_connection(new_connection("alice", "github", "acct", tokens("t", None, None))).await.unwrap();
    assert!(!created);
    assert_eq!(again.id, lower);
}

async fn longest_identities_fit_and_longer_ones_are_rejected(store: SeaStore) {
    let owner = "o".repeat(255);
    let account: String = "ü".repeat(255);
    let provider = "p".repeat(64);
    let (c, created) =
        store.upsert_connection(new_connection(&owner, &provider, &account, tokens("t", None, None))).await.unwrap();
    assert!(created);
    let read = ConnectionStore::connection(&store, c.id).await.unwrap().unwrap();
    assert_eq!(read.owner.as_str(), owner);
    assert_eq!(read.account.id, account);
    assert_eq!(read.provider.as_str(), provider);

    let too_long = "ü".repeat(256);
    let err = store
        .upsert_connection(new_connection("alice", "github", &too_long, tokens("t", None, None)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert!(err.to_string().contains("account id"), "{err}");
    let err =
        store.upsert_connection(new_connection("alice", "github", "", tokens("t", None, None))).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    let err = store.try_acquire_refresh_lease(c.id, &"h".repeat(256), now(), now()).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

async fn tokens_round_trip(store: SeaStore) {
    let t0 = now();
    let mut t = tokens("at", Some("rt"), Some(t0 + Duration::minutes(5)));
    t.token_type = "mac".into();
    t.token_secret = Some(secret("oauth1-secret"));
    t.refresh_token_expires_at = Some(t0 + Duration::days(30));
    t.scopes = Some(vec!["ignored-by-upsert".into()]);
    t.extra.insert("open_id".into(), "o-1".into());
    t.extra.insert("renewable".into(), true.into());
    let mut new = new_connection("alice", "github", "1", t);
    new.scopes = vec!["a".into(), "b c".into()];
    let (c, _) = store.upsert_connection(new).await.unwrap();
    let stored = store.tokens(c.id).await.unwrap().unwrap();
    let t = stored.tokens;
    assert_eq!(t.access_token.expose_secret(), "at");
    assert_eq!(t.refresh_token.unwrap().expose_secret(), "rt");
    assert_eq!(t.token_type, "mac");
    assert_eq!(t.token_secret.unwrap().expose_secret(), "oauth1-secret");
    assert_eq!(t.expires_at, Some(t0 + Duration::minutes(5)));
    assert_eq!(t.refresh_token_expires_at, Some(t0 + Duration::days(30)));
    assert_eq!(t.scopes, Some(vec!["a".to_string(), "b c".to_string()]));
    assert_eq!(t.extra.get("open_id").unwrap(), "o-1");
    assert_eq!(t.extra.get("renewable").unwrap(), &serde_json::Value::Bool(true));
    assert!(store.tokens(ConnectionId::new()).await.unwrap().is_none());
    assert!(ConnectionStore::connection(&store, ConnectionId::new()).await.unwrap().is_none());
}

async fn secrets_are_sealed_at_rest(store: SeaStore) {
    let mut t = tokens("plain-access-0123456789", Some("plain-refresh-0123456789"), None);
    t.token_secret = Some(secret("plain-secret-0123456789"));
    t.extra.insert("open_id".into(), "not-a-secret".into());
    let (c, _) = store.upsert_connection(new_connection("alice", "github", "1", t)).await.unwrap();
    let id = c.id.to_string();
    let prefix = format!("v1.{}.", store.key_ring().primary_key_id());
    for column in ["access_token", "refresh_token", "token_secret"] {
        let stored = raw(&store, "connections", column, &id).await.unwrap();
        assert!(stored.starts_with(&prefix), "{column}: {stored}");
        assert!(!stored.contains("plain-"), "{column} holds plaintext");
        assert!(!stored.contains("0123456789"), "{column} holds plaintext");
    }
    let extra = raw(&store, "connections", "token_extra", &id).await.unwrap();
    assert!(extra.contains("not-a-secret"));
    assert!(!extra.contains("plain-"));
}

async fn ciphertext_moved_to_another_row_fails_to_open(store: SeaStore) {
    let a = connect(&store, "alice", "1", None).await;
    let b = connect(&store, "bob", "2", None).await;
    let sealed_a = raw(&store, "connections", "access_token", &a.to_string()).await;
    raw_set(&store, "connections", "access_token", &b.to_string(), sealed_a).await;
    let err = store.tokens(b).await.unwrap_err();
    assert!(matches!(err, Error::Seal(_)), "{err:?}");
    // A's own ciphertext still opens; the refresh token cannot move to the access column either.
    assert_eq!(access_token(&store, a).await, "at-alice-1");
    let refresh_a = raw(&store, "connections", "refresh_token", &a.to_string()).await;
    raw_set(&store, "connections", "access_token", &a.to_string(), refresh_a).await;
    assert!(matches!(store.tokens(a).await, Err(Error::Seal(_))));
}

async fn concurrent_upserts_of_one_identity_make_one_connection(store: SeaStore) {
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .upsert_connection(new_connection(
                    "alice",
                    "github",
                    "42",
                    tokens(&format!("at-{i}"), Some("rt"), None),
                ))
                .await
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (c, new) = t.await.unwrap().expect("concurrent upserts all succeed");
        created += usize::from(new);
        ids.push(c.id);
    }
    assert_eq!(created, 1);
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(raw_count(&store, "connections").await, 1);
    assert_eq!(version(&store, ids[0]).await, 10);
}

// ---------------------------------------------------------------------------------------------
// Refresh lease
// ---------------------------------------------------------------------------------------------

async fn twenty_concurrent_lease_acquirers_one_wins(store: SeaStore) {
    let id = connect(&store, "alice", "1", Some(now())).await;
    let t0 = now();
    let until = t0 + Duration::seconds(30);
    let barrier = Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.try_acquire_refresh_lease(id, &format!("holder-{i}"), until, t0).await.unwrap()
        }));
    }
    let mut acquired = 0;
    for t in tasks {
        match t.await.unwrap() {
            LeaseOutcome::Acquired => acquired += 1,
            LeaseOutcome::Held { until: held } => assert_eq!(held, until),
            LeaseOutcome::Changed => panic!("nothing changed the connection"),
        }
    }
    assert_eq!(acquired, 1);
}

async fn versioned_lease_is_taken_only_at_the_current_version_of_an_active_connection(store: SeaStore) {
    let id = connect(&store, "alice", "1", Some(now())).await;
    let t0 = now();
    let until = t0 + Duration::seconds(30);
    let v1 = version(&store, id).await;
    let at = |holder: &'static str, v: i64| {
        let store = store.clone();
        async move { store.try_acquire_refresh_lease_at_version(id, holder, until, t0, v).await.unwrap() }
    };
    // A stale version never takes the lease, free or not.
    assert_eq!(at("a", v1 - 1).await, LeaseOutcome::Changed);
    assert_eq!(at("a", v1).await, LeaseOutcome::Acquired);
    assert_eq!(at("b", v1).await, LeaseOutcome::Held { until });
    // `a` refreshes: the version moves on, and a holder that read before cannot take the lease
    // with its (now spent) refresh token.
    assert!(store.complete_refresh(id, "a", &tokens("at-2", Some("rt-2"), None), now()).await.unwrap());
    let v2 = version(&store, id).await;
    assert!(v2 > v1);
    assert_eq!(at("b", v1).await, LeaseOutcome::Changed);
    assert_eq!(at("b", v2).await, LeaseOutcome::Acquired);
    store.release_refresh_lease(id, "b", ConnectionStatus::Active, None).await.unwrap();
    // A connection that is no longer active is never leased, whatever the version.
    store.set_status(id, ConnectionStatus::ReauthRequired, Some("grant died")).await.unwrap();
    let v3 = version(&store, id).await;
    assert_eq!(at("c", v3).await, LeaseOutcome::Changed);
    let other = connect(&store, "bob", "2", Some(now())).await;
    let v = version(&store, other).await;
    store.disconnect(other).await.unwrap();
    assert_eq!(
        store.try_acquire_refresh_lease_at_version(other, "c", until, t0, v).await.unwrap(),
        LeaseOutcome::Changed
    );
    let unknown = ConnectionId::new();
    assert!(store.try_acquire_refresh_lease_at_version(unknown, "c", until, t0, 1).await.is_err());
}

async fn expired_lease_can_be_taken_over(store: SeaStore) {
    let id = connect(&store, "alice", "1", Some(now())).await;
    let t0 = now();
    let until = t0 + Duration::seconds(1);
    let lease = |holder: &'static str, at: DateTime<Utc>| {
        let store = store.clone();
        async move { store.try_acquire_refresh_lease(id, holder, at + Duration::seconds(30), at).await.unwrap() }
    };
    assert_eq!(store.try_acquire_refresh_lease(id, "a", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    assert_eq!(lease("b", t0).await, LeaseOutcome::Held { until });
    // Still held at exactly `until`; free one millisecond later.
    assert_eq!(lease("b", until).await, LeaseOutcome::Held { until });
    assert_eq!(lease("b", until + Duration::milliseconds(1)).await, LeaseOutcome::Acquired);
    // `a` lost it: its refresh must not be written.
    let late = tokens("at-from-a", Some("rt-from-a"), None);
    assert!(!store.complete_refresh(id, "a", &late, now()).await.unwrap());
    let fresh = tokens("at-from-b", Some("rt-from-b"), None);
    assert!(store.complete_refresh(id, "b", &fresh, now()).await.unwrap());
    assert_eq!(access_token(&store, id).await, "at-from-b");
}

async fn lease_on_unknown_connection_is_not_found(store: SeaStore) {
    let err = store.try_acquire_refresh_lease(ConnectionId::new(), "a", now(), now()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // Completing or releasing on an unknown connection does nothing.
    assert!(!store.complete_refresh(ConnectionId::new(), "a", &tokens("x", None, None), now()).await.unwrap());
    store.release_refresh_lease(ConnectionId::new(), "a", ConnectionStatus::Active, None).await.unwrap();
}

async fn complete_refresh_by_wrong_holder_writes_nothing(store: SeaStore) {
    let id = connect(&store, "alice", "1", Some(now())).await;
    let before = ConnectionStore::connection(&store, id).await.unwrap().unwrap();
    let v = version(&store, id).await;
    let t0 = now();
    let until = t0 + Duration::seconds(30);
    assert_eq!(store.try_acquire_refresh_lease(id, "a", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    let intruder = tokens("at-intruder", Some("rt-intruder"), None);
    assert!(!store.complete_refresh(id, "b", &intruder, now()).await.unwrap());
    assert_eq!(access_token(&store, id).await, "at-alice-1");
    assert_eq!(version(&store, id).await, v);
    assert_eq!(ConnectionStore::connection(&store, id).await.unwrap().unwrap(), before);
    // `a` still holds the lease.
    assert_eq!(
        store.try_acquire_refresh_lease(id, "c", t0 + Duration::seconds(60), now()).await.unwrap(),
        LeaseOutcome::Held { until }
    );
}

async fn complete_refresh_persists_rotated_tokens_and_clears_lease(store: SeaStore) {
    let id = connect(&store, "alice", "1", Some(now())).await;
    store.set_status(id, ConnectionStatus::Active, Some("previous failure")).await.unwrap();
    let v = version(&store, id).await;
    let t0 = now();
    assert_eq!(
        store.try_acquire_refresh_lease(id, "a", t0 + Duration::seconds(30), t0).await.unwrap(),
        LeaseOutcome::Acquired
    );
    let mut rotated = tokens("at-2", Some("rt-2"), Some(t0 + Duration::hours(2)));
    rotated.scopes = Some(vec!["narrower".into()]);
    rotated.token_secret = Some(secret("ts-2"));
    assert!(store.complete_refresh(id, "a", &rotated, t0).await.unwrap());

    let stored = store.tokens(id).await.unwrap().unwrap();
    assert_eq!(stored.version, v + 1);
    assert_eq!(stored.tokens.access_token.expose_secret(), "at-2");
    assert_eq!(stored.tokens.token_secret.as_ref().unwrap().expose_secret(), "ts-2");
    assert_eq!(stored.tokens.refresh_token.unwrap().expose_secret(), "rt-2");
    let c = ConnectionStore::connection(&store, id).await.unwrap().unwrap();
    assert_eq!(c.expires_at, Some(t0 + Duration::hours(2)));
    assert_eq!(c.last_refreshed_at, Some(t0));
    assert_eq!(c.last_error, None);
    assert_eq!(c.scopes, vec!["narrower".to_string()]);
    assert_eq!(c.status, ConnectionStatus::Active);
    // Released in the same step: a second completion by `a` writes nothing, anyone can lease.
    assert!(!store.complete_refresh(id, "a", &rotated, t0).await.unwrap());
    assert_eq!(
        store.try_acquire_refresh_lease(id, "b", t0 + Duration::seconds(30), t0).await.unwrap(),
        LeaseOutcome::Acquired
    );
    // Scopes stay when the provider did not report them.
    let same_scopes = tokens("at-3", Some("rt-3"), None);
    assert!(store.complete_refresh(id, "b", &same_scopes, now()).await.unwrap());
    let c = ConnectionStore::connection(&store, id).await.unwrap().unwrap();
    assert_eq!(c.scopes, vec!["narrower".to_string()]);
    assert_eq!(c.expires_at, None);
    assert_eq!(version(&store, id).await, v + 2);
}

async fn release_refresh_lease_is_conditional_on_holder(store: SeaStore) {
    let id = connect(&store, "alice", "1", Some(now())).await;
    let t0 = now();
    let until = t0 + Duration::seconds(30);
    store.try_acquire_refresh_lease(id, "a", until, t0).await.unwrap();
    store.release_refresh_lease(id, "b", ConnectionStatus::ReauthRequired, Some("nope")).await.unwrap();
    let c = ConnectionStore::connection(&store, id).await.unwrap().unwrap();
    assert_eq!(c.status, ConnectionStatus::Active);
    assert_eq!(c.last_error, None);
    assert_eq!(store.try_acquire_refresh_lease(id, "c", until, t0).await.unwrap(), LeaseOutcome::Held { until });

    let v = version(&store, id).await;
    store.release_refresh_lease(id, "a", ConnectionStatus::ReauthRequired, Some("invalid_grant")).await.unwrap();
    let c = ConnectionStore::connection(&store, id).await.unwrap().unwrap();
    assert_eq!(c.status, ConnectionStatus::ReauthRequired);
    assert_eq!(c.last_error.as_deref(), Some("invalid_grant"));
    assert_eq!(version(&store, id).await, v, "no token change");
    assert_eq!(store.try_acquire_refresh_lease(id, "c", until, t0).await.unwrap(), LeaseOutcome::Acquired);
}

async fn due_for_refresh_orders_limits_and_skips_leased(store: SeaStore) {
    let t0 = now();
    let c10 = connect(&store, "o", "in-10m", Some(t0 + Duration::minutes(10))).await;
    let c5 = connect(&store, "o", "in-5m", Some(t0 + Duration::minutes(5))).await;
    let _later = connect(&store, "o", "in-2h", Some(t0 + Duration::hours(2))).await;
    let _never = connect(&store, "o", "never", None).await;
    let leased = connect(&store, "o", "leased", Some(t0 + Duration::minutes(1))).await;
    store.try_acquire_refresh_lease(leased, "x", t0 + Duration::seconds(30), t0).await.unwrap();
    let stale = connect(&store, "o", "stale-lease", Some(t0 + Duration::minutes(3))).await;
    store
        .try_acquire_refresh_lease(stale, "crashed", t0 - Duration::seconds(1), t0 - Duration::seconds(10))
        .await
        .unwrap();
    let expired = connect(&store, "o", "expired", Some(t0 - Duration::minutes(1))).await;
    let reauth = connect(&store, "o", "reauth", Some(t0 + Duration::minutes(1))).await;
    store.set_status(reauth, ConnectionStatus::ReauthRequired, None).await.unwrap();
    let gone = connect(&store, "o", "gone", Some(t0 + Duration::minutes(1))).await;
    store.disconnect(gone).await.unwrap();

    let before = t0 + Duration::hours(1);
    let due = store.due_for_refresh(before, t0, 100).await.unwrap();
    assert_eq!(due, vec![expired, stale, c5, c10]);
    let due = store.due_for_refresh(before, t0, 2).await.unwrap();
    assert_eq!(due, vec![expired, stale]);
    // Once the lease of `leased` expires it is due again.
    let later = t0 + Duration::seconds(31);
    let due = store.due_for_refresh(before, later, 100).await.unwrap();
    assert_eq!(due, vec![expired, leased, stale, c5, c10]);
}

async fn list_connections_filters_newest_first(store: SeaStore) {
    let a1 = connect(&store, "alice", "1", None).await;
    let a2 = connect(&store, "alice", "2", None).await;
    let b1 = connect(&store, "bob", "1", None).await;
    let (g, _) =
        store.upsert_connection(new_connection("alice", "gitlab", "3", tokens("t", None, None))).await.unwrap();
    store.set_status(a1, ConnectionStatus::ReauthRequired, Some("x")).await.unwrap();
    let ids = |list: Vec<tether_core::Connection>| list.iter().map(|c| c.id).collect::<Vec<_>>();

    let all = store.list_connections(&ConnectionFilter::default()).await.unwrap();
    assert_eq!(ids(all), vec![g.id, b1, a2, a1]);
    let alice = ConnectionFilter { owner: Some(OwnerId::parse("alice").unwrap()), ..Default::default() };
    assert_eq!(ids(store.list_connections(&alice).await.unwrap()), vec![g.id, a2, a1]);
    let alice_github = ConnectionFilter { provider: Some(ProviderId::parse("github").unwrap()), ..alice.clone() };
    assert_eq!(ids(store.list_connections(&alice_github).await.unwrap()), vec![a2, a1]);
    let reauth = ConnectionFilter { status: Some(ConnectionStatus::ReauthRequired), ..Default::default() };
    assert_eq!(ids(store.list_connections(&reauth).await.unwrap()), vec![a1]);
    let limited = ConnectionFilter { limit: Some(2), ..Default::default() };
    assert_eq!(ids(store.list_connections(&limited).await.unwrap()), vec![g.id, b1]);
}

async fn set_status_and_disconnect_of_unknown_connection_are_not_found(store: SeaStore) {
    let err = store.set_status(ConnectionId::new(), ConnectionStatus::Active, None).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let err = store.disconnect(ConnectionId::new()).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // Setting the status a connection already has is not "not found" (MySQL counts matched rows).
    let id = connect(&store, "alice", "1", None).await;
    store.set_status(id, ConnectionStatus::Active, None).await.unwrap();
    store.set_status(id, ConnectionStatus::Active, None).await.unwrap();
}

async fn disconnect_deletes_secrets(store: SeaStore) {
    let t0 = now();
    let mut t = tokens("at", Some("rt"), Some(t0 + Duration::minutes(1)));
    t.token_secret = Some(secret("ts"));
    t.extra.insert("open_id".into(), "o".into());
    let (c, _) = store.upsert_connection(new_connection("alice", "github", "1", t)).await.unwrap();
    let v = version(&store, c.id).await;
    store.try_acquire_refresh_lease(c.id, "a", t0 + Duration::seconds(30), t0).await.unwrap();
    store.disconnect(c.id).await.unwrap();

    assert!(store.tokens(c.id).await.unwrap().is_none());
    let after = ConnectionStore::connection(&store, c.id).await.unwrap().expect("the row stays");
    assert_eq!(after.status, ConnectionStatus::Disconnected);
    assert!(!after.has_refresh_token);
    let id = c.id.to_string();
    for column in ["access_token", "refresh_token", "token_secret", "token_extra", "lease_holder"] {
        assert_eq!(raw(&store, "connections", column, &id).await, None, "{column}");
    }
    let stmt = Query::select()
        .column(Alias::new("version"))
        .from(Alias::new("connections"))
        .and_where(Expr::col(Alias::new("id")).eq(id.as_str()))
        .to_owned();
    let row = store.connection().query_one(&stmt).await.unwrap().unwrap();
    assert_eq!(row.try_get::<i64>("", "version").unwrap(), v + 1);
    assert!(store.due_for_refresh(t0 + Duration::hours(1), t0, 10).await.unwrap().is_empty());
    // The lease is gone, and a late refresh by the former holder cannot resurrect tokens.
    assert!(!store.complete_refresh(c.id, "a", &tokens("zombie", None, None), now()).await.unwrap());
    assert!(store.tokens(c.id).await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------------------------

async fn start_flow_is_single_use(store: SeaStore) {
    let t0 = now();
    let s = session(&hash("link"), t0 + Duration::minutes(10));
    store.create_connect_session(&s).await.unwrap();
    let state_expiry = t0 + Duration::minutes(15);
    let flow =
        store.start_flow(&hash("link"), flow_start(&hash("state"), "verifier-1", state_expiry), t0).await.unwrap();
    assert_eq!(flow.id, s.id);
    assert_eq!(flow.provider.as_str(), "github");
    assert_eq!(flow.owner.as_str(), "owner-1");
    assert_eq!(flow.scopes, s.scopes);
    assert_eq!(flow.return_to, s.return_to);
    assert_eq!(flow.pkce_verifier.as_ref().unwrap().expose_secret(), "verifier-1");
    assert_eq!(flow.browser_binding_hash, Some(hash(&format!("binding-of-{}", hash("state")))));
    assert_eq!(flow.redirect_uri.as_ref().map(Url::as_str), Some("https://tether.example/"));
    assert_eq!(flow.expires_at, state_expiry);

    let err = store
        .start_flow(&hash("link"), flow_start(&hash("state-2"), "verifier-2", state_expiry), t0)
        .await
        .unwrap_err();
    assert_eq!(flow_error(err), FlowError::LinkUsed);
    // The second attempt changed nothing: the first state is still the one that works.
    let consumed = store.consume_flow(&hash("state"), t0 + Duration::minutes(1)).await.unwrap();
    assert_eq!(consumed.pkce_verifier.unwrap().expose_secret(), "verifier-1");
    let err = store.consume_flow(&hash("state-2"), t0 + Duration::minutes(1)).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::UnknownState);
}

async fn start_flow_rejects_unknown_and_expired_links(store: SeaStore) {
    let t0 = now();
    let start = || flow_start(&hash("s"), "v", t0 + Duration::minutes(10));
    let err = store.start_flow(&hash("nope"), start(), t0).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::UnknownLink);

    store.create_connect_session(&session(&hash("link"), t0)).await.unwrap();
    let err = store.start_flow(&hash("link"), start(), t0).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::LinkExpired, "expired at exactly now");
    let err = store.start_flow(&hash("link"), start(), t0 + Duration::seconds(1)).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::LinkExpired);
    // Still usable a millisecond before.
    store.start_flow(&hash("link"), start(), t0 - Duration::milliseconds(1)).await.unwrap();
}

async fn concurrent_starts_of_one_link_one_wins(store: SeaStore) {
    let t0 = now();
    store.create_connect_session(&session(&hash("link"), t0 + Duration::minutes(10))).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store
                .start_flow(
                    &hash("link"),
                    flow_start(&hash(&format!("state-{i}")), "v", t0 + Duration::minutes(10)),
                    t0,
                )
                .await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => won += 1,
            Err(e) => assert_eq!(flow_error(e), FlowError::LinkUsed),
        }
    }
    assert_eq!(won, 1);
}

async fn consume_flow_is_single_use_and_forgets_the_verifier(store: SeaStore) {
    let t0 = now();
    let s = session(&hash("link"), t0 + Duration::minutes(10));
    store.create_connect_session(&s).await.unwrap();
    store
        .start_flow(&hash("link"), flow_start(&hash("state"), "the-verifier", t0 + Duration::minutes(10)), t0)
        .await
        .unwrap();
    let flow = store.consume_flow(&hash("state"), t0 + Duration::minutes(1)).await.unwrap();
    assert_eq!(flow.id, s.id);
    assert_eq!(flow.owner.as_str(), "owner-1");
    assert_eq!(flow.provider.as_str(), "github");
    assert_eq!(flow.scopes, s.scopes);
    assert_eq!(flow.return_to, s.return_to);
    assert_eq!(flow.browser_binding_hash, Some(hash(&format!("binding-of-{}", hash("state")))));
    assert_eq!(flow.pkce_verifier.unwrap().expose_secret(), "the-verifier");
    assert_eq!(raw(&store, "auth_flows", "pkce_verifier", &s.id.to_string()).await, None);
    let err = store.consume_flow(&hash("state"), t0 + Duration::minutes(1)).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::StateReplayed);
}

async fn consume_flow_rejects_unknown_and_expired_state(store: SeaStore) {
    let t0 = now();
    let err = store.consume_flow(&hash("nope"), t0).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::UnknownState);

    store.create_connect_session(&session(&hash("link"), t0 + Duration::minutes(10))).await.unwrap();
    let state_expiry = t0 + Duration::minutes(5);
    store.start_flow(&hash("link"), flow_start(&hash("state"), "v", state_expiry), t0).await.unwrap();
    let err = store.consume_flow(&hash("state"), state_expiry).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::StateExpired);
    // Expired is not consumed: it stays expired (not "replayed").
    let err = store.consume_flow(&hash("state"), state_expiry + Duration::minutes(1)).await.unwrap_err();
    assert_eq!(flow_error(err), FlowError::StateExpired);
}

async fn concurrent_consumes_of_one_state_one_wins(store: SeaStore) {
    let t0 = now();
    store.create_connect_session(&session(&hash("link"), t0 + Duration::minutes(10))).await.unwrap();
    store.start_flow(&hash("link"), flow_start(&hash("state"), "v", t0 + Duration::minutes(10)), t0).await.unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.consume_flow(&hash("state"), t0).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(flow) => {
                won += 1;
                assert_eq!(flow.pkce_verifier.unwrap().expose_secret(), "v");
            }
            Err(e) => assert_eq!(flow_error(e), FlowError::StateReplayed),
        }
    }
    assert_eq!(won, 1);
}

async fn pkce_verifier_is_sealed_to_its_flow(store: SeaStore) {
    let t0 = now();
    let expiry = t0 + Duration::minutes(10);
    let a = session(&hash("link-a"), expiry);
    let b = session(&hash("link-b"), expiry);
    store.create_connect_session(&a).await.unwrap();
    store.create_connect_session(&b).await.unwrap();
    store.start_flow(&hash("link-a"), flow_start(&hash("state-a"), "plain-verifier-a", expiry), t0).await.unwrap();
    store.start_flow(&hash("link-b"), flow_start(&hash("state-b"), "plain-verifier-b", expiry), t0).await.unwrap();
    let sealed_a = raw(&store, "auth_flows", "pkce_verifier", &a.id.to_string()).await.unwrap();
    assert!(sealed_a.starts_with("v1."), "{sealed_a}");
    assert!(!sealed_a.contains("plain-verifier"));
    assert_eq!(raw(&store, "auth_flows", "state_hash", &a.id.to_string()).await, Some(hash("state-a")));
    // Moved to flow b, it does not open.
    raw_set(&store, "auth_flows", "pkce_verifier", &b.id.to_string(), Some(sealed_a)).await;
    let err = store.consume_flow(&hash("state-b"), t0).await.unwrap_err();
    assert!(matches!(err, Error::Seal(_)), "{err:?}");
    let flow = store.consume_flow(&hash("state-a"), t0).await.unwrap();
    assert_eq!(flow.pkce_verifier.unwrap().expose_secret(), "plain-verifier-a");
}

async fn purge_deletes_only_expired_flows(store: SeaStore) {
    let t0 = now();
    let two_hours_ago = t0 - Duration::hours(2);
    let three_hours_ago = t0 - Duration::hours(3);
    // Never started, link long expired: purged.
    store.create_connect_session(&session(&hash("unused"), two_hours_ago)).await.unwrap();
    // Started and its state long expired: purged.
    store.create_connect_session(&session(&hash("finished"), two_hours_ago)).await.unwrap();
    store
        .start_flow(&hash("finished"), flow_start(&hash("s-finished"), "v", two_hours_ago), three_hours_ago)
        .await
        .unwrap();
    // Link expired but the flow it started is still running: kept.
    store.create_connect_session(&session(&hash("running"), two_hours_ago)).await.unwrap();
    store
        .start_flow(&hash("running"), flow_start(&hash("s-running"), "v", t0 + Duration::minutes(5)), three_hours_ago)
        .await
        .unwrap();
    // Fresh link: kept.
    store.create_connect_session(&session(&hash("fresh"), t0 + Duration::minutes(10))).await.unwrap();

    assert_eq!(raw_count(&store, "auth_flows").await, 4);
    let purged = store.purge_flows(t0 - Duration::hours(1)).await.unwrap();
    assert_eq!(purged, 2);
    assert_eq!(raw_count(&store, "auth_flows").await, 2);
    store.consume_flow(&hash("s-running"), t0).await.unwrap();
    store.start_flow(&hash("fresh"), flow_start(&hash("s-fresh"), "v", t0 + Duration::minutes(10)), t0).await.unwrap();
    assert_eq!(store.purge_flows(t0 - Duration::hours(1)).await.unwrap(), 0);
}

// ---------------------------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------------------------

async fn events_are_listed_newest_first(store: SeaStore) {
    let a = connect(&store, "alice", "1", None).await;
    let b = connect(&store, "bob", "1", None).await;
    let record = |id, kind, message: Option<&str>| {
        let store = store.clone();
        let message = message.map(str::to_owned);
        async move { store.record_event(NewEvent { connection_id: id, kind, message }).await.unwrap() }
    };
    let e1 = record(a, EventKind::Connected, Some("connected")).await;
    let e2 = record(a, EventKind::Refreshed, None).await;
    let _other = record(b, EventKind::Connected, None).await;
    let e3 = record(a, EventKind::RefreshFailed, Some("provider said 503")).await;
    assert_eq!(e1.connection_id, a);
    assert_eq!(e1.kind, EventKind::Connected);
    assert_eq!(e1.message.as_deref(), Some("connected"));
    assert!(e1.created_at <= e3.created_at);

    let listed = store.events(a, 10).await.unwrap();
    assert_eq!(listed, vec![e3.clone(), e2.clone(), e1.clone()]);
    assert_eq!(store.events(a, 2).await.unwrap(), vec![e3, e2]);
    assert_eq!(store.events(b, 10).await.unwrap().len(), 1);
    assert!(store.events(ConnectionId::new(), 10).await.unwrap().is_empty());

    // Events belong to a connection that exists (a foreign key, enforced on SQLite too).
    let err = store
        .record_event(NewEvent { connection_id: ConnectionId::new(), kind: EventKind::Connected, message: None })
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Key rotation
// ---------------------------------------------------------------------------------------------

async fn reseal_moves_every_secret_to_the_primary_key(store: SeaStore) {
    let old_key = EncryptionKey::generate().unwrap();
    let new_key = EncryptionKey::generate().unwrap();
    let ring = |keys: &[&String]| KeyRing::parse(keys).unwrap();
    let db = store.connection().clone();
    let before = SeaStore::from_connection(db.clone(), ring(&[&old_key]));
    let during = SeaStore::from_connection(db.clone(), ring(&[&new_key, &old_key]));
    let after = SeaStore::from_connection(db, ring(&[&new_key]));
    let new_id = during.key_ring().primary_key_id().to_owned();

    let t0 = now();
    let mut t = tokens("at", Some("rt"), None);
    t.token_secret = Some(secret("ts"));
    let (c, _) = before.upsert_connection(new_connection("alice", "github", "1", t)).await.unwrap();
    let plain = connect(&before, "bob", "2", None).await;
    before.disconnect(plain).await.unwrap();
    let s = session(&hash("link"), t0 + Duration::minutes(10));
    before.create_connect_session(&s).await.unwrap();
    before
        .start_flow(&hash("link"), flow_start(&hash("state"), "verifier", t0 + Duration::minutes(10)), t0)
        .await
        .unwrap();
    let reg = before.insert_client_registration(&registration("mastodon.social", "cid", "cs-1")).await.unwrap();
    // Written after the rotation started: already under the new key.
    let fresh = connect(&during, "carol", "3", None).await;

    assert!(matches!(after.tokens(c.id).await, Err(Error::Seal(_))));
    let report = during.reseal_secrets().await.unwrap();
    assert_eq!(report.resealed, 5, "{report:?}");
    assert_eq!(report.current, 2, "{report:?}");
    assert_eq!(report.skipped, 0, "{report:?}");
    for column in ["access_token", "refresh_token", "token_secret"] {
        let stored = raw(&store, "connections", column, &c.id.to_string()).await.unwrap();
        assert!(stored.starts_with(&format!("v1.{new_id}.")), "{column}");
    }

    // Only the new key is needed now.
    let stored = after.tokens(c.id).await.unwrap().unwrap();
    assert_eq!(stored.tokens.access_token.expose_secret(), "at");
    assert_eq!(stored.tokens.refresh_token.unwrap().expose_secret(), "rt");
    assert_eq!(stored.tokens.token_secret.unwrap().expose_secret(), "ts");
    assert_eq!(access_token(&after, fresh).await, "at-carol-3");
    let flow = after.consume_flow(&hash("state"), t0).await.unwrap();
    assert_eq!(flow.pkce_verifier.unwrap().expose_secret(), "verifier");
    let stored = raw(&store, "client_registrations", "client_secret", &reg.id.to_string()).await.unwrap();
    assert!(stored.starts_with(&format!("v1.{new_id}.")), "client_secret");
    let reg = after.client_registration(&reg.provider, &reg.instance, &reg.redirect_uri).await.unwrap().unwrap();
    assert_eq!(reg.client.client_secret.unwrap().expose_secret(), "cs-1");
    assert_eq!(during.reseal_secrets().await.unwrap().resealed, 0);

    // A value no configured key opens stops the rotation with a clear error.
    let (d, _) =
        before.upsert_connection(new_connection("dave", "github", "4", tokens("x", None, None))).await.unwrap();
    let err = after.reseal_secrets().await.unwrap_err();
    assert!(matches!(err, Error::Seal(_)), "{err:?}");
    assert!(err.to_string().contains("no encryption key"), "{err}");
    assert!(matches!(after.tokens(d.id).await, Err(Error::Seal(_))));
}

// ---------------------------------------------------------------------------------------------
// Webhook outbox
// ---------------------------------------------------------------------------------------------

store_tests!(
    webhook_deliveries_are_enqueued_with_their_event,
    concurrent_dispatchers_claim_each_delivery_once,
    webhook_outcomes_retry_deliver_and_give_up,
    expired_webhook_claims_can_be_taken_over,
);

fn webhook_event(id: ConnectionId, kind: EventKind) -> NewEvent {
    NewEvent { connection_id: id, kind, message: Some("details".into()) }
}

async fn webhook_deliveries_are_enqueued_with_their_event(store: SeaStore) {
    use tether_core::{DeliveryFilter, DeliveryStatus, WebhookStore};
    let a = connect(&store, "alice", "1", None).await;
    let endpoints = ["app".to_owned(), "audit".to_owned()];
    let event = store.record_event_with_deliveries(webhook_event(a, EventKind::Connected), &endpoints).await.unwrap();
    assert_eq!(store.events(a, 10).await.unwrap(), vec![event.clone()]);
    let all = DeliveryFilter { limit: 10, ..DeliveryFilter::default() };
    let listed = store.webhook_deliveries(&all).await.unwrap();
    assert_eq!(listed.len(), 2);
    for d in &listed {
        assert_eq!(d.event_id, event.id);
        assert_eq!(d.event_kind, EventKind::Connected);
        assert_eq!(d.connection_id, a);
        assert_eq!(d.status, DeliveryStatus::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at, Some(event.created_at));
        assert_eq!(store.webhook_delivery(d.id).await.unwrap().as_ref(), Some(d));
    }
    let mut names: Vec<_> = listed.iter().map(|d| d.endpoint.clone()).collect();
    names.sort();
    assert_eq!(names, endpoints);
    let only_audit = DeliveryFilter { endpoint: Some("audit".into()), event_id: Some(event.id), ..all.clone() };
    assert_eq!(store.webhook_deliveries(&only_audit).await.unwrap().len(), 1);
    assert_eq!(store.count_webhook_deliveries().await.unwrap(), vec![(DeliveryStatus::Pending, 2)]);

    // All or nothing: an event for a connection that does not exist leaves no delivery behind.
    let err = store
        .record_event_with_deliveries(webhook_event(ConnectionId::new(), EventKind::Connected), &endpoints)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // An endpoint name too long to store fails before anything is written.
    let long = ["x".repeat(65)];
    assert!(store.record_event_with_deliveries(webhook_event(a, EventKind::Revoked), &long).await.is_err());
    assert_eq!(store.events(a, 10).await.unwrap().len(), 1);
    assert_eq!(raw_count(&store, "webhook_deliveries").await, 2);
}

async fn concurrent_dispatchers_claim_each_delivery_once(store: SeaStore) {
    use tether_core::WebhookStore;
    let a = connect(&store, "alice", "1", None).await;
    for _ in 0..10 {
        store.record_event_with_deliveries(webhook_event(a, EventKind::RefreshFailed), &["app".into()]).await.unwrap();
    }
    let t = now() + Duration::seconds(1);
    let claimers = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let holder = format!("dispatcher-{i}");
            store.claim_webhook_deliveries(&holder, t, t + Duration::seconds(60), 4).await.unwrap()
        })
    });
    let mut ids = Vec::new();
    for claimer in claimers {
        let claimed = claimer.await.unwrap();
        assert!(claimed.len() <= 4);
        for c in claimed {
            assert_eq!(c.event.id, c.delivery.event_id);
            assert_eq!(c.event.kind, EventKind::RefreshFailed);
            ids.push(c.delivery.id);
        }
    }
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "a delivery was claimed twice");
    assert_eq!(total, 10, "every due delivery is claimed by someone");
    // Nothing is left to claim while the claims last.
    assert!(store.claim_webhook_deliveries("late", t, t + Duration::seconds(60), 100).await.unwrap().is_empty());
}

async fn webhook_outcomes_retry_deliver_and_give_up(store: SeaStore) {
    use tether_core::{DeliveryOutcome, DeliveryStatus, WebhookStore};
    let a = connect(&store, "alice", "1", None).await;
    store.record_event_with_deliveries(webhook_event(a, EventKind::Revoked), &["app".into()]).await.unwrap();
    let t = now() + Duration::seconds(1);
    let until = t + Duration::seconds(60);
    let claimed = store.claim_webhook_deliveries("d1", t, until, 10).await.unwrap();
    let id = claimed[0].delivery.id;

    // Another holder's outcome is refused.
    let delivered = DeliveryOutcome::Delivered { status_code: 204 };
    assert!(!store.finish_webhook_delivery(id, "d2", t, delivered.clone()).await.unwrap());

    // A retry is not due before its time, and is claimable after it.
    let next = t + Duration::seconds(30);
    let retry = DeliveryOutcome::Retry { next_attempt_at: next, status_code: Some(503), error: "HTTP 503".into() };
    assert!(store.finish_webhook_delivery(id, "d1", t, retry).await.unwrap());
    let d = store.webhook_delivery(id).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts, d.next_attempt_at), (DeliveryStatus::Pending, 1, Some(next)));
    assert_eq!((d.last_status_code, d.last_error.as_deref()), (Some(503), Some("HTTP 503")));
    assert_eq!(d.last_attempt_at, Some(t));
    assert!(store.claim_webhook_deliveries("d1", next - Duration::seconds(1), until, 10).await.unwrap().is_empty());
    assert_eq!(store.claim_webhook_deliveries("d1", next, next + Duration::seconds(60), 10).await.unwrap().len(), 1);
    let gave_up = DeliveryOutcome::GiveUp { status_code: None, error: "connection failed".into() };
    assert!(store.finish_webhook_delivery(id, "d1", next, gave_up).await.unwrap());
    let d = store.webhook_delivery(id).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts, d.next_attempt_at, d.last_status_code), (DeliveryStatus::Failed, 2, None, None));
    assert!(store.claim_webhook_deliveries("d1", next + Duration::days(1), until, 10).await.unwrap().is_empty());

    // A manual retry puts it back, due now, attempts from zero; then it is delivered.
    let later = next + Duration::seconds(5);
    let d = store.retry_webhook_delivery(id, later).await.unwrap();
    assert_eq!((d.status, d.attempts, d.next_attempt_at), (DeliveryStatus::Pending, 0, Some(later)));
    assert_eq!(store.claim_webhook_deliveries("d3", later, later + Duration::seconds(60), 10).await.unwrap().len(), 1);
    // Claimed right now: a manual retry is refused rather than racing the attempt.
    assert!(matches!(store.retry_webhook_delivery(id, later).await, Err(Error::InvalidInput(_))));
    assert!(store.finish_webhook_delivery(id, "d3", later, delivered).await.unwrap());
    let d = store.webhook_delivery(id).await.unwrap().unwrap();
    assert_eq!((d.status, d.attempts, d.delivered_at), (DeliveryStatus::Delivered, 1, Some(later)));
    assert_eq!(store.count_webhook_deliveries().await.unwrap(), vec![(DeliveryStatus::Delivered, 1)]);
    assert!(matches!(store.retry_webhook_delivery(Uuid::now_v7(), later).await, Err(Error::NotFound { .. })));
}

async fn expired_webhook_claims_can_be_taken_over(store: SeaStore) {
    use tether_core::{DeliveryOutcome, WebhookStore};
    let a = connect(&store, "alice", "1", None).await;
    store.record_event_with_deliveries(webhook_event(a, EventKind::Disconnected), &["app".into()]).await.unwrap();
    let t = now() + Duration::seconds(1);
    let first = store.claim_webhook_deliveries("crashed", t, t + Duration::seconds(10), 10).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(store.claim_webhook_deliveries("other", t + Duration::seconds(9), t, 10).await.unwrap().is_empty());
    let after = t + Duration::seconds(11);
    let second = store.claim_webhook_deliveries("other", after, after + Duration::seconds(10), 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].delivery.id, first[0].delivery.id);
    // The crashed holder's late outcome is refused; the new holder's is kept.
    let outcome = DeliveryOutcome::Delivered { status_code: 200 };
    assert!(!store.finish_webhook_delivery(first[0].delivery.id, "crashed", after, outcome.clone()).await.unwrap());
    assert!(store.finish_webhook_delivery(first[0].delivery.id, "other", after, outcome).await.unwrap());
}

// ---------------------------------------------------------------------------------------------
// Client registrations of per-instance providers
// ---------------------------------------------------------------------------------------------

store_tests!(
    client_registrations_round_trip_with_a_sealed_secret,
    client_registrations_are_keyed_by_provider_instance_and_redirect_uri,
    concurrent_first_registrations_on_one_instance_store_one,
    connections_and_flows_keep_their_instance,
    connect_sessions_keep_their_login_hint,
);

async fn connect_sessions_keep_their_login_hint(store: SeaStore) {
    let t0 = now();
    let mut s = session(&hash("link-hint"), t0 + Duration::minutes(10));
    s.login_hint = Some("alice.bsky.social".into());
    store.create_connect_session(&s).await.unwrap();
    let pending = store.unstarted_connect_session(&hash("link-hint"), t0).await.unwrap();
    assert_eq!(pending.login_hint.as_deref(), Some("alice.bsky.social"));
    store.create_connect_session(&session(&hash("link-nohint"), t0 + Duration::minutes(10))).await.unwrap();
    assert_eq!(store.unstarted_connect_session(&hash("link-nohint"), t0).await.unwrap().login_hint, None);
    // A hint too long to store is refused before anything is written.
    let mut long = session(&hash("link-long"), t0 + Duration::minutes(10));
    long.login_hint = Some("a".repeat(5000));
    assert!(store.create_connect_session(&long).await.is_err());
    assert!(matches!(
        store.unstarted_connect_session(&hash("link-long"), t0).await,
        Err(Error::Flow(FlowError::UnknownLink))
    ));
}

fn registration(instance: &str, client_id: &str, client_secret: &str) -> ClientRegistration {
    ClientRegistration {
        id: Uuid::now_v7(),
        provider: ProviderId::parse("mastodon").unwrap(),
        instance: InstanceOrigin::parse(instance, true).unwrap(),
        redirect_uri: Url::parse("https://tether.example/callback/mastodon").unwrap(),
        scopes: vec!["read".into(), "write:statuses".into()],
        client: RegisteredClient { client_id: client_id.to_owned(), client_secret: Some(secret(client_secret)) },
        created_at: now(),
    }
}

async fn client_registrations_round_trip_with_a_sealed_secret(store: SeaStore) {
    let r = registration("mastodon.social", "client-id-1", "client-secret-1");
    assert!(store.client_registration(&r.provider, &r.instance, &r.redirect_uri).await.unwrap().is_none());
    let stored = store.insert_client_registration(&r).await.unwrap();
    assert_eq!(stored.id, r.id);
    let read = store.client_registration(&r.provider, &r.instance, &r.redirect_uri).await.unwrap().unwrap();
    assert_eq!((read.id, read.instance.as_str(), read.scopes.clone()), (r.id, "https://mastodon.social", r.scopes));
    assert_eq!(read.redirect_uri, r.redirect_uri);
    assert_eq!(read.created_at, r.created_at);
    assert_eq!(read.client.client_id, "client-id-1");
    assert!(!format!("{read:?}").contains("client-secret-1"));
    assert_eq!(read.client.client_secret.unwrap().expose_secret(), "client-secret-1");
    // At rest the secret is sealed, and sealed to its row.
    let raw_secret = raw(&store, "client_registrations", "client_secret", &r.id.to_string()).await.unwrap();
    assert!(raw_secret.starts_with("v1.") && !raw_secret.contains("client-secret-1"), "{raw_secret}");
    let other = store.insert_client_registration(&registration("other.example", "id-2", "s-2")).await.unwrap();
    raw_set(&store, "client_registrations", "client_secret", &other.id.to_string(), Some(raw_secret)).await;
    let moved = store.client_registration(&other.provider, &other.instance, &other.redirect_uri).await;
    assert!(matches!(moved, Err(Error::Seal(_))), "{moved:?}");
}

async fn client_registrations_are_keyed_by_provider_instance_and_redirect_uri(store: SeaStore) {
    let first = store.insert_client_registration(&registration("mastodon.social", "a", "sa")).await.unwrap();
    let mut other_uri = registration("mastodon.social", "b", "sb");
    other_uri.redirect_uri = Url::parse("https://new.example/callback/mastodon").unwrap();
    let mut other_provider = registration("mastodon.social", "c", "sc");
    other_provider.provider = ProviderId::parse("mastodon_staging").unwrap();
    let other_instance = registration("http://127.0.0.1:4000", "d", "sd");
    for r in [&other_uri, &other_provider, &other_instance] {
        assert_eq!(store.insert_client_registration(r).await.unwrap().id, r.id, "{r:?}");
    }
    // The same key again: the first one stays and is returned.
    let again = store.insert_client_registration(&registration("mastodon.social", "e", "se")).await.unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(again.client.client_id, "a");
    assert_eq!(raw_count(&store, "client_registrations").await, 4);
}

async fn concurrent_first_registrations_on_one_instance_store_one(store: SeaStore) {
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let r = registration("fresh.example", &format!("client-{i}"), &format!("secret-{i}"));
            store.insert_client_registration(&r).await.unwrap()
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let r = t.await.unwrap();
        winners.push((r.id, r.client.client_id.clone(), r.client.client_secret.unwrap().expose_secret().to_owned()));
    }
    winners.dedup();
    assert_eq!(winners.len(), 1, "every caller gets the one stored registration: {winners:?}");
    assert_eq!(raw_count(&store, "client_registrations").await, 1);
}

async fn connections_and_flows_keep_their_instance(store: SeaStore) {
    let mut new = new_connection("alice", "mastodon", "42@mastodon.social", tokens("at", None, None));
    new.instance = Some("https://mastodon.social".into());
    let (c, _) = store.upsert_connection(new).await.unwrap();
    assert_eq!(c.instance.as_deref(), Some("https://mastodon.social"));
    let other =
        store.upsert_connection(new_connection("alice", "github", "7", tokens("at", None, None))).await.unwrap().0;
    assert_eq!(other.instance, None);

    let t0 = now();
    // Named by the application when the session was created.
    let mut s = session(&hash("link-a"), t0 + Duration::minutes(10));
    s.instance = Some("https://a.example".into());
    store.create_connect_session(&s).await.unwrap();
    let pending = store.unstarted_connect_session(&hash("link-a"), t0).await.unwrap();
    assert_eq!(pending.instance.as_deref(), Some("https://a.example"));
    assert_eq!(pending.scopes, vec!["repo".to_owned(), "user".to_owned()]);
    store.start_flow(&hash("link-a"), flow_start(&hash("state-a"), "v", t0 + Duration::minutes(10)), t0).await.unwrap();
    assert_eq!(store.consume_flow(&hash("state-a"), t0).await.unwrap().instance.as_deref(), Some("https://a.example"));
    // Chosen by the user on the connect page.
    store.create_connect_session(&session(&hash("link-b"), t0 + Duration::minutes(10))).await.unwrap();
    assert_eq!(store.unstarted_connect_session(&hash("link-b"), t0).await.unwrap().instance, None);
    let mut start = flow_start(&hash("state-b"), "v", t0 + Duration::minutes(10));
    start.instance = Some("https://b.example".into());
    let flow = store.start_flow(&hash("link-b"), start, t0).await.unwrap();
    assert_eq!(flow.instance.as_deref(), Some("https://b.example"));
    assert_eq!(store.consume_flow(&hash("state-b"), t0).await.unwrap().instance.as_deref(), Some("https://b.example"));
}

// ---------------------------------------------------------------------------------------------
// Refresh in batches (the background refresher)
// ---------------------------------------------------------------------------------------------

store_tests!(
    claim_due_for_refresh_leases_due_connections_soonest_first,
    concurrent_claims_take_each_due_connection_once,
    complete_refreshes_writes_only_what_each_holder_still_holds,
    record_events_inserts_every_event,
);

async fn claim_due_for_refresh_leases_due_connections_soonest_first(store: SeaStore) {
    let t0 = now();
    let c10 = connect(&store, "o", "in-10m", Some(t0 + Duration::minutes(10))).await;
    let c5 = connect(&store, "o", "in-5m", Some(t0 + Duration::minutes(5))).await;
    let _later = connect(&store, "o", "in-2h", Some(t0 + Duration::hours(2))).await;
    let _never = connect(&store, "o", "never", None).await;
    let leased = connect(&store, "o", "leased", Some(t0 + Duration::minutes(1))).await;
    store.try_acquire_refresh_lease(leased, "x", t0 + Duration::seconds(30), t0).await.unwrap();
    let expired = connect(&store, "o", "expired", Some(t0 - Duration::minutes(1))).await;
    let reauth = connect(&store, "o", "reauth", Some(t0 + Duration::minutes(1))).await;
    store.set_status(reauth, ConnectionStatus::ReauthRequired, None).await.unwrap();
    let gone = connect(&store, "o", "gone", Some(t0 + Duration::minutes(1))).await;
    store.disconnect(gone).await.unwrap();

    let before = t0 + Duration::hours(1);
    let until = t0 + Duration::seconds(30);
    let first = store.claim_due_for_refresh(before, t0, "sweep-1", until, 2).await.unwrap();
    let ids: Vec<_> = first.iter().map(|(c, _)| c.id).collect();
    assert_eq!(ids, vec![expired, c5]);
    // Read under the lease, refresh token included, at the current version.
    for (c, t) in &first {
        assert_eq!(c.status, ConnectionStatus::Active);
        assert_eq!(t.version, version(&store, c.id).await);
        let rt = t.tokens.refresh_token.as_ref().expect("refresh token opened").expose_secret().to_owned();
        assert_eq!(rt, format!("rt-o-{}", if c.id == expired { "expired" } else { "in-5m" }));
        // Leased: nobody else can take it, and it is no longer due.
        assert_eq!(
            store.try_acquire_refresh_lease(c.id, "other", until, t0).await.unwrap(),
            LeaseOutcome::Held { until }
        );
    }
    assert_eq!(store.due_for_refresh(before, t0, 100).await.unwrap(), vec![c10]);
    let second = store.claim_due_for_refresh(before, t0, "sweep-2", until, 100).await.unwrap();
    assert_eq!(second.iter().map(|(c, _)| c.id).collect::<Vec<_>>(), vec![c10]);
    assert!(store.claim_due_for_refresh(before, t0, "sweep-3", until, 100).await.unwrap().is_empty());
    // The claim's holder releases like any holder; then the connection is due again.
    store.release_refresh_lease(c10, "sweep-2", ConnectionStatus::Active, None).await.unwrap();
    let again = store.claim_due_for_refresh(before, t0, "sweep-4", until, 100).await.unwrap();
    assert_eq!(again.iter().map(|(c, _)| c.id).collect::<Vec<_>>(), vec![c10]);
    // Expired leases are claimed again.
    let later = t0 + Duration::seconds(31);
    let taken_over = store.claim_due_for_refresh(before, later, "sweep-5", later + Duration::seconds(30), 100).await;
    let ids: Vec<_> = taken_over.unwrap().iter().map(|(c, _)| c.id).collect();
    assert_eq!(ids, vec![expired, leased, c5, c10]);
    assert!(store.claim_due_for_refresh(before, t0, "", until, 1).await.is_err(), "an empty holder is refused");
}

async fn concurrent_claims_take_each_due_connection_once(store: SeaStore) {
    let t0 = now();
    let mut all = Vec::new();
    for i in 0..40 {
        all.push(connect(&store, "o", &format!("a-{i}"), Some(t0 + Duration::seconds(i))).await);
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(6));
    let mut tasks = Vec::new();
    for w in 0..6 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let holder = format!("sweeper-{w}");
            let mut mine = Vec::new();
            loop {
                let claimed = store
                    .claim_due_for_refresh(t0 + Duration::hours(1), t0, &holder, t0 + Duration::seconds(30), 5)
                    .await
                    .unwrap();
                if claimed.is_empty() && store.due_for_refresh(t0 + Duration::hours(1), t0, 1).await.unwrap().is_empty()
                {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|(c, _)| (c.id, holder.clone())));
            }
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    let mut ids: Vec<_> = claimed.iter().map(|(id, _)| *id).collect();
    ids.sort();
    all.sort();
    assert_eq!(ids, all, "every due connection claimed exactly once");
    // Each holder can complete exactly what it claimed.
    let fresh = tokens("at-new", Some("rt-new"), Some(t0 + Duration::hours(2)));
    let items: Vec<_> = claimed.iter().map(|(id, h)| (*id, h.as_str(), &fresh)).collect();
    let (written, events) = store.complete_refreshes(&items, now(), None).await.unwrap();
    assert!(written.iter().all(|w| *w));
    assert!(!events, "no events were asked for");
}

async fn complete_refreshes_writes_only_what_each_holder_still_holds(store: SeaStore) {
    use tether_core::{DeliveryFilter, WebhookStore};
    let t0 = now();
    let a = connect(&store, "o", "a", Some(t0)).await;
    let b = connect(&store, "o", "b", Some(t0)).await;
    let c = connect(&store, "o", "c", Some(t0)).await;
    let (va, vb, vc) = (version(&store, a).await, version(&store, b).await, version(&store, c).await);
    let until = t0 + Duration::seconds(30);
    assert_eq!(store.try_acquire_refresh_lease(a, "h1", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    assert_eq!(store.try_acquire_refresh_lease(b, "h2", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    assert_eq!(store.try_acquire_refresh_lease(c, "h3", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    let mut ta = tokens("at-a2", Some("rt-a2"), Some(t0 + Duration::hours(2)));
    ta.scopes = Some(vec!["narrower".into()]);
    let tb = tokens("at-b2", Some("rt-b2"), Some(t0 + Duration::hours(2)));
    let tc = tokens("at-c2", None, Some(t0 + Duration::hours(2)));
    // `b` is completed by a holder that does not hold its lease: nothing is written for it.
    let endpoints = vec!["app".to_owned()];
    let batch = [(a, "h1", &ta), (b, "h1", &tb), (c, "h3", &tc)];
    let (written, events) = store.complete_refreshes(&batch, t0, Some(&endpoints)).await.unwrap();
    assert_eq!(written, vec![true, false, true]);
    assert!(events, "the refreshed events were recorded with the tokens");
    // One `refreshed` event, with its pending webhook delivery, per connection written.
    for (id, expected) in [(a, 1), (b, 0), (c, 1)] {
        let refreshed: Vec<_> =
            store.events(id, 10).await.unwrap().into_iter().filter(|e| e.kind == EventKind::Refreshed).collect();
        assert_eq!(refreshed.len(), expected, "events of {id}");
        let filter = DeliveryFilter { connection_id: Some(id), limit: 10, ..Default::default() };
        let deliveries = store.webhook_deliveries(&filter).await.unwrap();
        assert_eq!(deliveries.len(), expected);
        if let (Some(event), Some(delivery)) = (refreshed.first(), deliveries.first()) {
            assert_eq!(delivery.event_id, event.id);
            assert_eq!(delivery.endpoint, "app");
        }
    }
    assert_eq!(access_token(&store, a).await, "at-a2");
    assert_eq!(version(&store, a).await, va + 1);
    let ca = ConnectionStore::connection(&store, a).await.unwrap().unwrap();
    assert_eq!(ca.scopes, vec!["narrower".to_string()]);
    assert_eq!(ca.last_refreshed_at, Some(t0));
    assert_eq!(ca.expires_at, Some(t0 + Duration::hours(2)));
    assert_eq!(access_token(&store, b).await, "at-o-b");
    assert_eq!(version(&store, b).await, vb);
    let stored_c = store.tokens(c).await.unwrap().unwrap();
    assert_eq!(stored_c.version, vc + 1);
    assert!(stored_c.tokens.refresh_token.is_none(), "a refresh without a new refresh token stores none");
    // Released: anyone may lease `a` and `c` now; `b` is still h2's.
    assert_eq!(store.try_acquire_refresh_lease(a, "x", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    assert_eq!(store.try_acquire_refresh_lease(c, "x", until, t0).await.unwrap(), LeaseOutcome::Acquired);
    assert_eq!(store.try_acquire_refresh_lease(b, "x", until, t0).await.unwrap(), LeaseOutcome::Held { until });
    assert!(store.complete_refreshes(&[], t0, Some(&endpoints)).await.unwrap().0.is_empty());
    // Unknown connections are not written, and get no event.
    let unknown = [(ConnectionId::new(), "x", &tb)];
    assert_eq!(store.complete_refreshes(&unknown, t0, Some(&endpoints)).await.unwrap(), (vec![false], true));
}

async fn record_events_inserts_every_event(store: SeaStore) {
    let a = connect(&store, "o", "a", None).await;
    let b = connect(&store, "o", "b", None).await;
    let event = |id, kind| NewEvent { connection_id: id, kind, message: None };
    store
        .record_events(vec![
            event(a, EventKind::Refreshed),
            event(b, EventKind::Refreshed),
            event(a, EventKind::Refreshed),
        ])
        .await
        .unwrap();
    store.record_events(Vec::new()).await.unwrap();
    let of_a = store.events(a, 10).await.unwrap();
    assert_eq!(of_a.len(), 2);
    assert!(of_a.iter().all(|e| e.kind == EventKind::Refreshed && e.connection_id == a));
    assert_eq!(store.events(b, 10).await.unwrap().len(), 1);
    assert!(store.record_events(vec![event(ConnectionId::new(), EventKind::Refreshed)]).await.is_err());
}

// ---------------------------------------------------------------------------------------------
// Change feed
// ---------------------------------------------------------------------------------------------

store_tests!(changed_connections_list_every_write_with_its_new_state);

/// The changes listed at or after `since`, by connection.
async fn changes_since(
    store: &SeaStore,
    since: DateTime<Utc>,
) -> std::collections::HashMap<ConnectionId, tether_core::ConnectionChange> {
    store.changed_connections(since, 100).await.unwrap().into_iter().map(|c| (c.id, c)).collect()
}

/// Waits until the clock has moved to a new millisecond (`updated_at` has millisecond
/// precision) and returns that moment.
async fn next_millisecond() -> DateTime<Utc> {
    let start = now();
    tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    let t = now();
    assert!(t > start);
    t
}

async fn changed_connections_list_every_write_with_its_new_state(store: SeaStore) {
    let t0 = next_millisecond().await;
    let a = connect(&store, "alice", "1", Some(t0 + Duration::hours(1))).await;
    let b = connect(&store, "bob", "2", Some(t0 + Duration::hours(1))).await;
    let seen = changes_since(&store, t0).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[&a].status, ConnectionStatus::Active);
    assert_eq!(seen[&a].version, version(&store, a).await);
    let stored = ConnectionStore::connection(&store, a).await.unwrap().unwrap();
    assert_eq!(seen[&a].updated_at, stored.updated_at, "the feed and a read agree on the stamp");
    assert!(changes_since(&store, now() + Duration::seconds(1)).await.is_empty());
    assert_eq!(store.changed_connections(t0, 1).await.unwrap().len(), 1, "the limit holds");

    // A status change, listed with the status and no new version.
    let t1 = next_millisecond().await;
    store.set_status(a, ConnectionStatus::ReauthRequired, Some("grant gone")).await.unwrap();
    let seen = changes_since(&store, t1).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec![&a], "b did not change");
    assert_eq!(seen[&a].status, ConnectionStatus::ReauthRequired);
    assert!(seen[&a].updated_at >= t1);

    // A refresh moves the version; taking the lease alone is not a change.
    let t2 = next_millisecond().await;
    let v = version(&store, b).await;
    store.try_acquire_refresh_lease(b, "h", t2 + Duration::seconds(30), t2).await.unwrap();
    assert!(changes_since(&store, t2).await.is_empty());
    assert!(store.complete_refresh(b, "h", &tokens("at-new", Some("rt-new"), None), now()).await.unwrap());
    let seen = changes_since(&store, t2).await;
    assert_eq!((seen[&b].version, seen[&b].status), (v + 1, ConnectionStatus::Active));

    // A failed refresh releasing its lease, a reconnect, a disconnect: each is listed.
    let t3 = next_millisecond().await;
    store.try_acquire_refresh_lease(b, "h", t3 + Duration::seconds(30), t3).await.unwrap();
    store.release_refresh_lease(b, "h", ConnectionStatus::Active, Some("provider down")).await.unwrap();
    assert!(changes_since(&store, t3).await.contains_key(&b));
    let t4 = next_millisecond().await;
    let (again, created) =
        store.upsert_connection(new_connection("alice", "github", "1", tokens("at-re", None, None))).await.unwrap();
    assert!(!created);
    let seen = changes_since(&store, t4).await;
    assert_eq!((seen[&again.id].status, seen.len()), (ConnectionStatus::Active, 1));
    let t5 = next_millisecond().await;
    store.disconnect(b).await.unwrap();
    let seen = changes_since(&store, t5).await;
    assert_eq!(seen.keys().collect::<Vec<_>>(), vec![&b]);
    assert_eq!(seen[&b].status, ConnectionStatus::Disconnected);
}
