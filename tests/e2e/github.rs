//! The GitHub provider against a loopback mock shaped like GitHub (errors with HTTP 200,
//! comma-separated scopes, integer account ids, DELETE revocation).

use reqwest::Method;
use tether_e2e::{Harness, HarnessOptions, e2e_test};
use tether_testkit::{MockClientAuth, MockFlavor, MockProviderConfig};

fn github() -> HarnessOptions {
    HarnessOptions {
        mock: MockProviderConfig {
            flavor: MockFlavor::GitHub,
            client_auth: MockClientAuth::Post,
            auto_approve: Some("octocat".into()),
            access_token_ttl: None,
            issue_refresh_tokens: false,
            ..MockProviderConfig::default()
        },
        kind: "github",
        provider_config: "scopes = [\"repo\", \"read:user\"]".into(),
        ..HarnessOptions::default()
    }
}

e2e_test!(github_oauth_app_connects_and_revokes, |db| {
    let h = Harness::start(&db, github()).await;
    let id = h.connect("user-1").await;
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["account"]["name"], "octocat");
    assert!(conn["account"]["id"].as_str().unwrap().chars().all(|c| c.is_ascii_digit()), "{conn}");
    assert_eq!(conn["scopes"], serde_json::json!(["repo", "read:user"]));
    assert!(conn["expires_at"].is_null(), "OAuth App tokens do not expire");
    let (status, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200);
    assert!(token["access_token"].as_str().unwrap().starts_with("gho_"));

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert!(!h.mock.is_access_token_valid(token["access_token"].as_str().unwrap()));
    h.stop().await;
});

e2e_test!(github_app_refresh_token_rotates_and_bad_refresh_token_needs_reauth, |db| {
    let mut options = github();
    options.mock.access_token_ttl = Some(std::time::Duration::from_secs(60));
    options.mock.issue_refresh_tokens = true;
    options.mock.rotate_refresh_tokens = true;
    let h = Harness::start(&db, options).await;
    let id = h.connect("user-1").await;
    let (status, _) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200);
    assert_eq!(h.mock.refresh_count(), 1);
    // The user removes the app on GitHub: refresh answers 200 {"error":"bad_refresh_token"}.
    h.mock.revoke_all_grants();
    let (status, body) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.api_call(Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(conn["status"], "reauth_required");
    let (_, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required");
    h.stop().await;
});
