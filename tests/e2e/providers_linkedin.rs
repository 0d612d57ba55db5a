//! The LinkedIn provider through the real server against a LinkedIn-shaped mock: client
//! credentials only in the body, no PKCE, OIDC user info at `/v2/userinfo`, 60-day tokens,
//! partner-only refresh tokens with a fixed expiry, revocation with body credentials.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, secs_until};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn mock() -> MockProviderConfig {
    MockProviderConfig { auto_approve: Some("jane".into()), ..MockProviderConfig::for_flavor(MockFlavor::LinkedIn) }
}

e2e_test!(linkedin_connects_with_body_credentials_and_revokes_with_them, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("linkedin", mock())).await;
    let id = h.connect("brand-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Jane Example", "{conn}");
    let member = conn["account"]["id"].as_str().unwrap();
    assert_eq!(member.len(), 10, "the OIDC `sub` (member id): {conn}");
    // LinkedIn answers the granted scopes comma separated.
    assert_eq!(conn["scopes"], json!(["openid", "profile", "w_member_social"]));
    let ttl = secs_until(&conn["expires_at"]);
    assert!((59 * 86_400..=60 * 86_400).contains(&ttl), "60-day access token: {ttl}");

    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    let access = token["access_token"].as_str().unwrap().to_owned();
    assert!(access.starts_with("AQV"), "{access}");
    assert_eq!(h.mock.refresh_attempts(), 0);

    // Not a partner app: no refresh token, so nothing can renew the token.
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "provider_unsupported", "{body}");

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [access.as_str()], "the access token, with the client credentials in the form");
    assert!(!h.mock.is_access_token_valid(&access));
    h.stop().await;
});

e2e_test!(linkedin_refuses_http_basic_client_authentication, |db| {
    let mut options = HarnessOptions::provider("linkedin", mock());
    options.provider_config = "client_auth = \"basic\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("brand-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_client"), "{page}");
    assert_eq!(h.mock.code_exchanges(), 0);
    assert_eq!(h.connection_count().await, 0, "nothing is stored");
    h.stop().await;
});

e2e_test!(linkedin_partner_refresh_keeps_its_refresh_token_until_the_grant_dies, |db| {
    let config =
        MockProviderConfig { issue_refresh_tokens: true, access_token_ttl: Some(Duration::from_secs(60)), ..mock() };
    let h = Harness::start(&db, HarnessOptions::provider("linkedin", config)).await;
    let id = h.connect("brand-1").await;
    // Inside the refresh margin: the read refreshes first.
    let (status, first) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(h.mock.refresh_count(), 1);
    // Not rotated: the same refresh token works again.
    let (status, second) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(h.mock.refresh_count(), 2);
    assert_ne!(first["access_token"], second["access_token"]);
    assert!(h.mock.is_access_token_valid(second["access_token"].as_str().unwrap()));

    // The member revokes the app: LinkedIn answers invalid_grant.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    h.stop().await;
});
