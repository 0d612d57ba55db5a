//! The in-memory token cache never outlives a disconnect made by another replica.

use reqwest::Method;
use tether_e2e::{Harness, HarnessOptions, e2e_test};

e2e_test!(a_disconnect_on_one_server_is_seen_by_the_other_when_it_returns, |db| {
    let key = tether_core::EncryptionKey::generate().unwrap();
    let options = || HarnessOptions {
        token_cache_ttl_ms: 1500,
        encryption_keys: Some(vec![key.clone()]),
        ..HarnessOptions::default()
    };
    let a = Harness::start(&db, options()).await;
    let b = Harness::start(&db, options()).await;
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
