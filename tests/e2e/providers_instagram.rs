//! The Instagram provider ("Instagram API with Instagram Login") through the real server
//! against an Instagram-shaped mock: client credentials in the body, a short-lived token and
//! `user_id` from the code (`{"data":[…]}`), traded at once for a long-lived one with
//! `ig_exchange_token`, renewed with `ig_refresh_token` (only once 24 hours old), Meta error
//! bodies (190 = dead token), `/me?fields=user_id,username`, no revocation, `#_` on the
//! redirect.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, secs_until};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn mock(long_lived_ttl: Duration) -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("studio.nord".into()),
        access_token_ttl: Some(long_lived_ttl),
        ..MockProviderConfig::for_flavor(MockFlavor::Instagram)
    }
}

const DAY: u64 = 86_400;

async fn event_kinds(h: &Harness, id: &str) -> Vec<String> {
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    events["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap().to_owned()).collect()
}

e2e_test!(instagram_connect_stores_a_long_lived_token_for_the_professional_account, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("instagram", mock(Duration::from_secs(60 * DAY)))).await;
    // The provider's redirect ends in `#_`, as Instagram's does.
    let callback = h.authorize(&h.connect_url("agency-7", None).await).await;
    assert!(callback.ends_with("#_"), "{callback}");
    let resp = h.browser.get(&callback).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.get("/v1/connections?owner=agency-7").await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();

    // The code gave a short-lived token, exchanged at once for a long-lived one.
    assert_eq!((h.mock.code_exchanges(), h.mock.token_exchanges(), h.mock.refresh_count()), (1, 1, 0));
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    let account_id = conn["account"]["id"].as_str().unwrap();
    assert!(account_id.starts_with("1784") && account_id.len() == 17, "user_id, not the app-scoped id: {conn}");
    assert_eq!(conn["account"]["name"], "studio.nord", "{conn}");
    assert_eq!(conn["scopes"], json!(["instagram_business_basic", "instagram_business_content_publish"]));
    let ttl = secs_until(&conn["expires_at"]);
    assert!(ttl > 59 * DAY as i64, "the long-lived token is stored, not the one-hour one: {ttl}");
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    let long_lived = token["access_token"].as_str().unwrap().to_owned();
    assert!(long_lived.starts_with("IGAA") && h.mock.is_access_token_valid(&long_lived));

    // A token younger than 24 hours cannot be renewed: refused here, never sent to Instagram,
    // and the valid token keeps being served.
    let attempts = h.mock.refresh_attempts();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 502, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("24 hours old"), "{body}");
    assert_eq!(h.mock.refresh_attempts(), attempts, "nothing was sent to Instagram");
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!((status, token["access_token"].as_str()), (200, Some(long_lived.as_str())));
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "active");

    // No revocation endpoint: the secrets are deleted and the answer says why nothing was revoked.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false, "{body}");
    assert!(body["revoke_error"].as_str().unwrap().contains("no endpoint to revoke"), "{body}");
    assert!(h.mock.revoked_tokens().is_empty());
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410);
    h.stop().await;
});

e2e_test!(instagram_renews_with_ig_refresh_token_and_code_190_needs_reauth, |db| {
    // "Long-lived" tokens of one minute: inside the refresh margin, so each read renews first.
    let h = Harness::start(&db, HarnessOptions::provider("instagram", mock(Duration::from_secs(60)))).await;
    h.mock.set_min_refresh_age(Duration::ZERO);
    let id = h.connect("agency-7").await;
    assert_eq!(h.mock.token_exchanges(), 1);
    let mut seen = Vec::new();
    for round in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
        assert_eq!(status, 200, "{token}");
        let token = token["access_token"].as_str().unwrap().to_owned();
        assert!(h.mock.is_access_token_valid(&token));
        assert!(!seen.contains(&token), "each renewal gives a new token");
        seen.push(token);
        assert_eq!(h.mock.refresh_count(), round, "renewed with ig_refresh_token, not another exchange");
    }
    assert_eq!(h.mock.token_exchanges(), 1);
    assert_eq!(event_kinds(&h, &id).await.iter().filter(|k| *k == "refreshed").count(), 2);

    // The user removes the app: the renewal answers {"error":{"code":190,…}}.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("190"), "{conn}");
    assert_eq!(event_kinds(&h, &id).await[0], "reauth_required");
    h.stop().await;
});

e2e_test!(instagram_refusing_a_young_token_keeps_serving_the_valid_one, |db| {
    // Instagram itself refuses a token under 24 hours old (the mock's default rule).
    let h = Harness::start(&db, HarnessOptions::provider("instagram", mock(Duration::from_secs(120)))).await;
    let id = h.connect("agency-7").await;
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!((h.mock.refresh_attempts(), h.mock.refresh_count()), (1, 0), "renewal was tried and refused");
    assert!(h.mock.is_access_token_valid(token["access_token"].as_str().unwrap()));
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "active", "a refusal is not a dead grant: {conn}");
    assert!(conn["last_error"].as_str().unwrap().contains("code 100"), "{conn}");
    assert!(event_kinds(&h, &id).await.contains(&"refresh_failed".to_owned()));
    h.stop().await;
});

e2e_test!(instagram_asks_for_comma_separated_scopes_and_shows_error_type_errors, |db| {
    let mut options = HarnessOptions::provider("instagram", mock(Duration::from_secs(60 * DAY)));
    options.provider_config = "client_auth = \"basic\"".into();
    let h = Harness::start(&db, options).await;
    let resp = h.browser.get(h.connect_url("agency-7", None).await).send().await.unwrap();
    let provider_url = url::Url::parse(&tether_e2e::location(&resp)).unwrap();
    let scope = provider_url.query_pairs().find(|(k, _)| k == "scope").map(|(_, v)| v.into_owned());
    assert_eq!(scope.as_deref(), Some("instagram_business_basic,instagram_business_content_publish"));
    assert!(provider_url.query_pairs().all(|(k, _)| k != "code_challenge"), "no PKCE: {provider_url}");
    let resp = h.browser.get(provider_url.as_str()).send().await.unwrap();
    let resp = h.browser.get(tether_e2e::location(&resp)).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("code 400"), "Instagram's own error is shown: {page}");
    assert_eq!((h.mock.code_exchanges(), h.connection_count().await), (0, 0));
    h.stop().await;
});

e2e_test!(instagram_background_refresher_renews_long_lived_tokens_nobody_reads, |db| {
    let mut options = HarnessOptions::provider("instagram", mock(Duration::from_secs(60)));
    options.refresher = true;
    let h = Harness::start(&db, options).await;
    h.mock.set_min_refresh_age(Duration::ZERO);
    let id = h.connect("agency-7").await;
    let mut waited = Duration::ZERO;
    while h.mock.refresh_count() == 0 && waited < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    assert!(h.mock.refresh_count() >= 1, "the refresher renewed the token with ig_refresh_token");
    assert_eq!(h.mock.token_exchanges(), 1, "a renewal, not another exchange");
    h.wait_for_event(&id, "refreshed").await;
    h.stop().await;
});
