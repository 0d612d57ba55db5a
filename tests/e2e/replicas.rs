//! Several `tether serve` processes on one database: one refresh per expiry, never a lost
//! connection, and recovery from a holder killed mid-refresh.

use std::time::{Duration, Instant};

use serde_json::json;
use tether_e2e::{API_KEY, Replica, e2e_test, location};
use tether_testkit::{MockProvider, MockProviderConfig, RunningMockProvider};

struct Cluster {
    mock: RunningMockProvider,
    config: std::path::PathBuf,
}

async fn cluster(db: &str, mock: MockProviderConfig, extra: &str) -> Cluster {
    let client_id = mock.client_id.clone();
    let client_secret = mock.client_secret.clone();
    let mock = MockProvider::start(mock).await.unwrap();
    let dir = std::env::temp_dir().join(format!("tether-replicas-{}", tether_core::random_token(9).unwrap()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("tether.toml");
    std::fs::write(
        &config,
        format!(
            r#"bind = "127.0.0.1:0"
database_url = "{db}"
database_pool_size = 4
api_keys = ["{API_KEY}"]
encryption_keys = ["{key}"]
{extra}
[refresher]
enabled = false
[providers.mock]
kind = "generic"
client_id = "{client_id}"
client_secret = "{client_secret}"
authorize_url = "{authorize}"
token_url = "{token}"
userinfo_url = "{userinfo}"
"#,
            key = tether_core::EncryptionKey::generate().unwrap(),
            authorize = mock.url("authorize"),
            token = mock.url("token"),
            userinfo = mock.url("userinfo"),
        ),
    )
    .unwrap();
    Cluster { mock, config }
}

/// Runs a connect flow on `replica` and returns the connection id.
async fn connect(replica: &Replica) -> String {
    let api = reqwest::Client::new();
    let session: serde_json::Value = api
        .post(format!("{}/v1/connect-sessions", replica.base))
        .bearer_auth(API_KEY)
        .json(&json!({"owner": "bot", "provider": "mock"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let browser =
        reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    let r = browser.get(location(&r)).send().await.unwrap();
    let r = browser.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let list: serde_json::Value = api
        .get(format!("{}/v1/connections?owner=bot", replica.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["connections"][0]["id"].as_str().unwrap().to_owned()
}

e2e_test!(two_replicas_refresh_once_per_expiry, |db| {
    // Tokens live 3 s and are refreshed when less than 2 s remain: a new expiry every second.
    let mock = MockProviderConfig {
        auto_approve: Some("bot".into()),
        access_token_ttl: Some(Duration::from_secs(3)),
        ..MockProviderConfig::default()
    };
    let c = cluster(&db, mock, "refresh_margin_secs = 2\nprovider_timeout_secs = 5\nrefresh_lease_secs = 10").await;
    let a = Replica::spawn(&c.config).await;
    let b = Replica::spawn(&c.config).await;
    let id = connect(&a).await;
    c.mock.set_refresh_delay(Duration::from_millis(50));

    let started = Instant::now();
    let run_for = Duration::from_secs(6);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8 {
        let url = format!("{}/v1/connections/{id}/token", if i % 2 == 0 { &a.base } else { &b.base });
        tasks.spawn(async move {
            let client = reqwest::Client::new();
            let mut served = 0;
            while started.elapsed() < run_for {
                let resp = client.get(&url).bearer_auth(API_KEY).send().await.unwrap();
                assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
                served += 1;
            }
            served
        });
    }
    let mut served = 0;
    while let Some(n) = tasks.join_next().await {
        served += n.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let refreshes = c.mock.refresh_count();
    eprintln!("{served} token reads, {refreshes} refreshes in {elapsed:.1} s");
    assert_eq!(c.mock.invalid_grant_count(), 0, "no refresh ever used a dead refresh token");
    assert_eq!(c.mock.refresh_attempts(), refreshes, "every refresh the provider saw succeeded");
    assert!(refreshes >= 3, "the run crossed several expiries ({refreshes})");
    assert!(
        (refreshes as f64) <= elapsed + 2.0,
        "at most one refresh per expiry: {refreshes} refreshes in {elapsed:.1} s"
    );
    let conn: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/connections/{id}", b.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(conn["status"], "active");
});

e2e_test!(holder_killed_mid_refresh_recovers_after_lease_expiry, |db| {
    let mock = MockProviderConfig {
        auto_approve: Some("bot".into()),
        access_token_ttl: Some(Duration::from_secs(1)),
        // Non-rotating, so the killed holder's in-flight request cannot spend the refresh token.
        rotate_refresh_tokens: false,
        ..MockProviderConfig::default()
    };
    let c = cluster(&db, mock, "provider_timeout_secs = 2\nrefresh_lease_secs = 3").await;
    let mut a = Replica::spawn(&c.config).await;
    let b = Replica::spawn(&c.config).await;
    let id = connect(&a).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    c.mock.set_refresh_delay(Duration::from_secs(30));
    let stuck = format!("{}/v1/connections/{id}/token", a.base);
    tokio::spawn(async move {
        let _ = reqwest::Client::new().get(stuck).bearer_auth(API_KEY).send().await;
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.mock.refresh_attempts() == 0 {
        assert!(Instant::now() < deadline, "replica A never started its refresh");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().await;
    c.mock.set_refresh_delay(Duration::ZERO);

    let asked = Instant::now();
    let resp = reqwest::Client::new()
        .get(format!("{}/v1/connections/{id}/token", b.base))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap_or_default());
    assert!(asked.elapsed() >= Duration::from_millis(1500), "B waited for the dead holder's lease to expire");
    assert_eq!(c.mock.refresh_count(), 1, "B refreshed once the lease expired");
});
