//! The whole connect flow, from connect link to a working token.

use reqwest::Method;
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};

e2e_test!(full_flow_gives_a_working_token, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let id = h.connect("user-1").await;

    let (status, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap();
    assert!(h.mock.is_access_token_valid(access), "the served token is the one the provider issued");
    assert_eq!(token["token_type"], "bearer");
    assert!(token["expires_at"].is_string());

    let (status, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(conn["owner"], "user-1");
    assert_eq!(conn["provider"], "mock");
    assert_eq!(conn["status"], "active");
    assert_eq!(conn["account"]["name"], "alice");
    assert!(conn["account"]["id"].as_str().unwrap().starts_with("u_"));
    assert!(conn.get("access_token").is_none(), "connection views never carry tokens");
    assert_eq!(h.mock.code_exchanges(), 1);

    let (status, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    assert_eq!(status, 200);
    assert_eq!(events["events"][0]["kind"], "connected");
    h.stop().await;
});

e2e_test!(same_account_twice_updates_one_connection, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let first = h.connect("user-1").await;
    let second = h.connect("user-1").await;
    assert_eq!(first, second, "one connection per (owner, provider, account)");
    assert_eq!(h.connection_count().await, 1);
    let other = h.connect("user-2").await;
    assert_ne!(first, other, "another owner gets its own connection");
    assert_eq!(h.connection_count().await, 2);
    h.stop().await;
});

e2e_test!(return_to_receives_the_connection_id, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let connect = h.connect_url("user-9", Some("https://app.example.com/done?x=1")).await;
    let callback = h.authorize(&connect).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let target = url::Url::parse(&location(&resp)).unwrap();
    assert_eq!(target.host_str(), Some("app.example.com"));
    let pairs: Vec<(String, String)> = target.query_pairs().into_owned().collect();
    assert!(pairs.contains(&("x".into(), "1".into())));
    let id = pairs.iter().find(|(k, _)| k == "connection_id").map(|(_, v)| v.clone()).unwrap();
    let (status, _) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200);
    h.stop().await;
});

e2e_test!(expired_token_is_refreshed_with_the_rotated_refresh_token, |db| {
    let mut options = HarnessOptions::default();
    // Tokens that expire inside the 5-minute margin: every read needs a refresh.
    options.mock.access_token_ttl = Some(std::time::Duration::from_secs(60));
    let h = Harness::start(&db, options).await;
    let id = h.connect("user-1").await;
    let (_, first) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    let (_, second) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(h.mock.refresh_count(), 2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert!(h.mock.is_access_token_valid(second["access_token"].as_str().unwrap()));
    assert_eq!(h.mock.invalid_grant_count(), 0, "the rotated refresh token was stored and used");
    h.stop().await;
});

e2e_test!(disconnect_revokes_and_deletes_secrets, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let id = h.connect("user-1").await;
    let (_, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    let access = token["access_token"].as_str().unwrap().to_owned();
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(body["connection"]["status"], "disconnected");
    assert!(!h.mock.revoked_tokens().is_empty());
    assert!(!h.mock.is_access_token_valid(&access));
    let (status, body) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 410);
    assert_eq!(body["error"]["code"], "connection_disconnected");
    let id = tether_core::ConnectionId::parse(&id).unwrap();
    assert!(h.server.engine.store().tokens(id).await.unwrap().is_none(), "secrets are gone");
    h.stop().await;
});
