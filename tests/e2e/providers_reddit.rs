//! The Reddit provider through the real server against a Reddit-shaped mock: HTTP Basic only,
//! a refresh token only for `duration=permanent`, a required `User-Agent`, HTTP-200 errors on
//! the code grant, `/api/v1/me`, RFC 7009 revocation at `/api/v1/revoke_token`.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test};
use tether_testkit::{MockFailure, MockFlavor, MockProviderConfig};

/// One-minute tokens: inside the refresh margin, so a token read refreshes.
fn mock() -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("spez".into()),
        access_token_ttl: Some(Duration::from_secs(60)),
        ..MockProviderConfig::for_flavor(MockFlavor::Reddit)
    }
}

/// Runs a flow and returns the callback's status and page.
async fn callback(h: &Harness) -> (u16, String) {
    let callback = h.authorize(&h.connect_url("brand-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

e2e_test!(reddit_permanent_grant_refreshes_and_revokes, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("reddit", mock())).await;
    let id = h.connect("brand-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "spez", "{conn}");
    let account = conn["account"]["id"].as_str().unwrap();
    assert!(account.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()), "base36 id: {conn}");
    assert_eq!(conn["scopes"], json!(["identity", "read", "submit"]));

    // duration=permanent got a refresh token: the read refreshes (the mock also checked the
    // User-Agent and the Basic credentials on every call).
    let (status, first) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(h.mock.refresh_count(), 1);
    // Reddit does not rotate: the same refresh token works again.
    let (status, second) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(h.mock.refresh_count(), 2);
    let access = second["access_token"].as_str().unwrap().to_owned();
    assert_ne!(first["access_token"], access.as_str());

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    let revoked = h.mock.revoked_tokens();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].starts_with("rrt-"), "the refresh token is revoked, ending the grant: {revoked:?}");
    assert!(!h.mock.is_access_token_valid(&access), "its access token dies with it");
    h.stop().await;
});

e2e_test!(reddit_refuses_credentials_in_the_body_and_reports_code_errors_sent_with_200, |db| {
    let mut options = HarnessOptions::provider("reddit", mock());
    options.provider_config = "client_auth = \"post\"".into();
    let h = Harness::start(&db, options).await;
    let (status, page) = callback(&h).await;
    assert_eq!(status, 502, "{page}");
    assert_eq!(h.mock.code_exchanges(), 0);
    h.stop().await;

    // A dead code: Reddit answers HTTP 200 {"error":"invalid_grant"}; no connection is stored.
    let h = Harness::start(&db, HarnessOptions::provider("reddit", mock())).await;
    h.mock.set_token_failure(Some(MockFailure::InvalidGrant));
    let (status, page) = callback(&h).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_grant"), "{page}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});

e2e_test!(reddit_revoked_app_needs_reauthorization, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("reddit", mock())).await;
    let id = h.connect("brand-1").await;
    // The user removes the app in their Reddit preferences.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    assert_eq!(h.mock.invalid_grant_count(), 1);
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required");
    h.stop().await;
});
