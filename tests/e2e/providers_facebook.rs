//! The Facebook provider through the real server against a Graph-API-shaped mock: parameters
//! for client credentials, no refresh tokens, the short-lived token traded for a long-lived one
//! with `fb_exchange_token` and renewed the same way, Meta error bodies (190 = dead token),
//! `/me?fields=id,name`, `DELETE /me/permissions`, `#_=_` on the redirect.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, secs_until};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn mock(long_lived_ttl: Duration) -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("mark".into()),
        access_token_ttl: Some(long_lived_ttl),
        ..MockProviderConfig::for_flavor(MockFlavor::Facebook)
    }
}

const DAY: u64 = 86_400;

e2e_test!(facebook_connect_stores_a_long_lived_token_renews_it_and_revokes, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("facebook", mock(Duration::from_secs(60 * DAY)))).await;
    // The provider's redirect ends in `#_=_`, as Facebook's does.
    let callback = h.authorize(&h.connect_url("brand-1", None).await).await;
    assert!(callback.ends_with("#_=_"), "{callback}");
    let resp = h.browser.get(&callback).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.get("/v1/connections?owner=brand-1").await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();

    // The code gave a short-lived token, exchanged at once for a long-lived one.
    assert_eq!((h.mock.code_exchanges(), h.mock.token_exchanges(), h.mock.refresh_count()), (1, 1, 0));
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Mark Example", "{conn}");
    assert!(conn["account"]["id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()), "{conn}");
    assert_eq!(conn["scopes"], json!(["public_profile", "pages_show_list", "pages_manage_posts"]));
    let ttl = secs_until(&conn["expires_at"]);
    assert!(ttl > 59 * DAY as i64, "the long-lived token is stored, not the one-hour one: {ttl}");
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    let long_lived = token["access_token"].as_str().unwrap().to_owned();
    assert!(long_lived.starts_with("EAA") && h.mock.is_access_token_valid(&long_lived));
    assert_eq!(h.mock.token_exchanges(), 1, "a fresh token is served as it is");

    // Renewal: the long-lived token is exchanged for a new one.
    let (status, renewed) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 200, "{renewed}");
    let renewed = renewed["access_token"].as_str().unwrap().to_owned();
    assert_ne!(renewed, long_lived);
    assert_eq!((h.mock.token_exchanges(), h.mock.refresh_count()), (2, 1));
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "refreshed");

    // DELETE /me/permissions ends the whole authorization.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [renewed.as_str()]);
    assert!(!h.mock.is_access_token_valid(&renewed) && !h.mock.is_access_token_valid(&long_lived));
    h.stop().await;
});

e2e_test!(facebook_renews_ahead_of_expiry_and_code_190_needs_reauth, |db| {
    // Long-lived tokens of one minute: inside the refresh margin, so a read renews first.
    let h = Harness::start(&db, HarnessOptions::provider("facebook", mock(Duration::from_secs(60)))).await;
    let id = h.connect("brand-1").await;
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(h.mock.refresh_count(), 1, "renewed with fb_exchange_token before handing it out");
    assert!(h.mock.is_access_token_valid(token["access_token"].as_str().unwrap()));

    // The user removes the app: the exchange answers {"error":{"code":190,…}}.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("190"), "{conn}");
    h.stop().await;
});

e2e_test!(facebook_background_refresher_renews_long_lived_tokens_nobody_reads, |db| {
    let mut options = HarnessOptions::provider("facebook", mock(Duration::from_secs(60)));
    options.refresher = true;
    let h = Harness::start(&db, options).await;
    let id = h.connect("bot").await;
    let mut waited = Duration::ZERO;
    while h.mock.refresh_count() == 0 && waited < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        waited += Duration::from_millis(200);
    }
    assert!(h.mock.refresh_count() >= 1, "the refresher renewed the token with fb_exchange_token");
    h.wait_for_event(&id, "refreshed").await;
    h.stop().await;
});

e2e_test!(facebook_expired_token_cannot_be_renewed, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("facebook", mock(Duration::from_secs(2)))).await;
    let id = h.connect("brand-1").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let attempts = h.mock.refresh_attempts();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    assert_eq!(h.mock.refresh_attempts(), attempts, "an expired token is not even sent to Facebook");
    h.stop().await;
});

e2e_test!(facebook_refuses_http_basic_client_authentication, |db| {
    let mut options = HarnessOptions::provider("facebook", mock(Duration::from_secs(60 * DAY)));
    options.provider_config = "client_auth = \"basic\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("brand-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("code 101"), "Meta's error is shown: {page}");
    assert_eq!((h.mock.code_exchanges(), h.connection_count().await), (0, 0));
    h.stop().await;
});
