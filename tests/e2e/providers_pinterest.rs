//! The Pinterest provider through the real server against a Pinterest-shaped mock: HTTP Basic,
//! comma-separated scopes, `{"code","message"}` errors (283 for a dead grant), continuous
//! refresh (a new refresh token on every refresh), `/v5/user_account`, no revocation.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tether_e2e::{Harness, HarnessOptions, e2e_test};
use tether_testkit::{MockFailure, MockFlavor, MockProviderConfig};

/// One-minute tokens: inside the refresh margin, so a token read refreshes.
fn mock() -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("acme".into()),
        access_token_ttl: Some(Duration::from_secs(60)),
        ..MockProviderConfig::for_flavor(MockFlavor::Pinterest)
    }
}

e2e_test!(pinterest_continuous_refresh_rotates_and_disconnect_cannot_revoke, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("pinterest", mock())).await;
    let id = h.connect("brand-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "acme", "{conn}");
    let account = conn["account"]["id"].as_str().unwrap();
    assert!(account.len() == 18 && account.chars().all(|c| c.is_ascii_digit()), "{conn}");
    // Requested and answered comma separated.
    assert_eq!(conn["scopes"], json!(["user_accounts:read", "pins:read", "pins:write", "boards:read"]));

    // Every refresh answers a new refresh token and kills the used one: three refreshes in a
    // row work only if each new refresh token was stored.
    let mut seen = std::collections::HashSet::new();
    for n in 1..=3 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let access = token["access_token"].as_str().unwrap();
        assert!(access.starts_with("pina_") && seen.insert(access.to_owned()), "{access}");
        assert_eq!(h.mock.refresh_count(), n);
    }
    assert_eq!(h.mock.invalid_grant_count(), 0, "no used refresh token was ever presented again");

    // Pinterest cannot revoke user tokens: the secrets are deleted, revoked is false.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false, "{body}");
    assert!(body["revoke_error"].as_str().unwrap().contains("no revocation endpoint"), "{body}");
    assert!(h.mock.revoked_tokens().is_empty());
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});

e2e_test!(pinterest_code_283_on_refresh_means_reauth_and_outages_do_not, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("pinterest", mock())).await;
    let id = h.connect("brand-1").await;
    let (status, first) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{first}");

    // An outage is not a dead grant: the still-valid token keeps being served.
    h.mock.set_token_failure(Some(MockFailure::Status(503)));
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access_token"], first["access_token"]);
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "active");
    h.mock.set_token_failure(None);

    // The user removes the app: 401 {"code":283,"message":"The authorization grant is invalid"}.
    h.mock.revoke_all_grants();
    let attempts = h.mock.refresh_attempts();
    let mut last = (0, Value::Null);
    // The outage above may have set a short backoff: wait it out.
    for _ in 0..40 {
        last = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        if last.0 != 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (status, body) = last;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    assert!(h.mock.refresh_attempts() > attempts);
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("283"), "{conn}");
    h.stop().await;
});

e2e_test!(pinterest_refuses_credentials_in_the_body, |db| {
    let mut options = HarnessOptions::provider("pinterest", mock());
    options.provider_config = "client_auth = \"post\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("brand-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("code 2"), "Pinterest's own error is shown: {page}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});
