//! Token lifecycle through the real server: single flight, failure classification, the
//! background refresher.

use std::time::Duration;

use reqwest::Method;
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test};
use tether_testkit::{MockFailure, MockProviderConfig};

/// Tokens live 60 s, inside the 5-minute margin: every token read wants a refresh.
fn short_lived(extra_config: &str) -> HarnessOptions {
    HarnessOptions {
        mock: MockProviderConfig {
            auto_approve: Some("alice".into()),
            access_token_ttl: Some(Duration::from_secs(60)),
            ..MockProviderConfig::default()
        },
        extra_config: extra_config.into(),
        ..HarnessOptions::default()
    }
}

e2e_test!(hundred_concurrent_reads_share_one_refresh, |db| {
    let h = Harness::start(&db, short_lived("")).await;
    let id = h.connect("user-1").await;
    // Every new token is inside the margin too, so a read that arrives after the refresh ended
    // refreshes again by design: the refresh is slow enough that all 100 reads arrive during it
    // even on a loaded machine.
    h.mock.set_refresh_delay(Duration::from_millis(1500));
    let url = h.url(&format!("/v1/connections/{id}/token"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let client = h.api.clone();
        let url = url.clone();
        tasks.spawn(async move {
            let resp = client.get(&url).bearer_auth(API_KEY).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let body: serde_json::Value = resp.json().await.unwrap();
            body["access_token"].as_str().unwrap().to_owned()
        });
    }
    let mut tokens = std::collections::HashSet::new();
    while let Some(t) = tasks.join_next().await {
        tokens.insert(t.unwrap());
    }
    assert_eq!(h.mock.refresh_attempts(), 1, "the provider saw exactly one refresh");
    assert_eq!(tokens.len(), 1, "every caller got the same new token");
    assert!(h.mock.is_access_token_valid(tokens.iter().next().unwrap()));
    assert_eq!(h.mock.invalid_grant_count(), 0);
    h.stop().await;
});

e2e_test!(dead_grant_means_reauth_required, |db| {
    let h = Harness::start(&db, short_lived("")).await;
    let id = h.connect("user-1").await;
    h.mock.revoke_all_grants();
    let (status, body) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    assert!(body["error"]["message"].as_str().unwrap().contains("connect session"));
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("invalid_grant"));
    let (_, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required");
    // Later reads do not hit the provider again.
    let attempts = h.mock.refresh_attempts();
    let (status, _) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 409);
    assert_eq!(h.mock.refresh_attempts(), attempts);
    // Reconnecting the same account makes it active again.
    assert_eq!(h.connect("user-1").await, id);
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "active");
    h.stop().await;
});

e2e_test!(provider_outage_keeps_serving_the_valid_token, |db| {
    let h = Harness::start(&db, short_lived("")).await;
    let id = h.connect("user-1").await;
    let (_, first) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token?force_refresh=true"), None).await;
    let first = first["access_token"].as_str().unwrap().to_owned();
    for failure in [MockFailure::Status(500), MockFailure::TooManyRequests { retry_after_secs: 7 }] {
        h.mock.set_token_failure(Some(failure));
        let (status, body) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
        assert_eq!(status, 200, "{failure:?}: {body}");
        assert_eq!(body["access_token"], first.as_str(), "the still-valid token is served");
    }
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "active");
    let (_, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    assert_eq!(events["events"][0]["kind"], "refresh_failed");
    h.stop().await;
});

e2e_test!(outage_with_an_expired_token_answers_503_with_retry_after, |db| {
    let options = HarnessOptions {
        mock: MockProviderConfig {
            auto_approve: Some("alice".into()),
            access_token_ttl: Some(Duration::from_secs(1)),
            ..MockProviderConfig::default()
        },
        extra_config: "provider_timeout_secs = 1\nrefresh_lease_secs = 5".into(),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    let id = h.connect("user-1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.mock.set_token_failure(Some(MockFailure::TooManyRequests { retry_after_secs: 7 }));
    let resp = h.api.get(h.url(&format!("/v1/connections/{id}/token"))).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    let retry_after: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 7, "the provider's Retry-After is honoured: {retry_after}");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "provider_unavailable");
    // During the backoff the provider is not called again.
    let attempts = h.mock.refresh_attempts();
    let (status, _) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 503);
    assert_eq!(h.mock.refresh_attempts(), attempts);
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "active", "an outage never breaks the connection");
    h.stop().await;
});

e2e_test!(provider_timeout_is_a_transient_failure, |db| {
    let options = HarnessOptions {
        mock: MockProviderConfig {
            auto_approve: Some("alice".into()),
            access_token_ttl: Some(Duration::from_secs(1)),
            ..MockProviderConfig::default()
        },
        extra_config: "provider_timeout_secs = 1\nrefresh_lease_secs = 5".into(),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    let id = h.connect("user-1").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    h.mock.set_token_failure(Some(MockFailure::Hang(Duration::from_secs(3))));
    let (status, body) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 503, "{body}");
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "active");
    h.stop().await;
});

e2e_test!(background_refresher_renews_without_requests, |db| {
    let options = HarnessOptions {
        mock: MockProviderConfig {
            auto_approve: Some("alice".into()),
            access_token_ttl: Some(Duration::from_secs(60)),
            ..MockProviderConfig::default()
        },
        refresher: true,
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    let id = h.connect("user-1").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.mock.refresh_count() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the refresher did not renew the connection");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.wait_for_event(&id, "refreshed").await;
    h.stop().await;
});
