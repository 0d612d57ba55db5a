//! The Dropbox provider through the real server against a Dropbox-shaped mock: a refresh token
//! only with `token_access_type=offline`, PKCE, refresh answers without a refresh token (not
//! rotated), `POST /2/users/get_current_account` without a body, and `POST
//! /2/auth/token/revoke` with the bearer access token ending the refresh token too.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockFlavor, MockProviderConfig};

/// Five-minute tokens: long enough that a disconnect uses the access token as it is.
fn mock() -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("acme".into()),
        access_token_ttl: Some(Duration::from_secs(300)),
        ..MockProviderConfig::for_flavor(MockFlavor::Dropbox)
    }
}

/// Runs a flow for `owner`, returning the authorization request's query and the connection id.
async fn connect(h: &Harness, owner: &str) -> (HashMap<String, String>, String) {
    let resp = h.browser.get(h.connect_url(owner, None).await).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let authorize = url::Url::parse(&location(&resp)).unwrap();
    assert_eq!(authorize.path(), "/oauth2/authorize");
    let query = authorize.query_pairs().into_owned().collect();
    let resp = h.browser.get(authorize).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the mock approves");
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "callback: {}", resp.text().await.unwrap());
    let (_, list) = h.get(&format!("/v1/connections?owner={owner}")).await;
    (query, list["connections"][0]["id"].as_str().expect("a connection").to_owned())
}

e2e_test!(dropbox_offline_grant_refreshes_without_rotation_and_disconnect_revokes_it, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("dropbox", mock())).await;
    let (query, id) = connect(&h, "team-1").await;
    assert_eq!(query["token_access_type"], "offline");
    assert_eq!(query["code_challenge_method"], "S256");

    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Acme Example", "name.display_name: {conn}");
    assert!(conn["account"]["id"].as_str().unwrap().starts_with("dbid:AA"), "{conn}");
    assert_eq!(
        conn["scopes"],
        json!(["account_info.read", "files.metadata.read", "files.content.read", "files.content.write"])
    );
    let refresh_tokens = h.mock.live_refresh_tokens();
    assert_eq!(refresh_tokens.len(), 1, "token_access_type=offline gave a refresh token");

    let mut last = String::new();
    for n in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let access = token["access_token"].as_str().unwrap().to_owned();
        assert!(access.starts_with("sl.") && access != last, "{access}");
        assert_eq!(h.mock.refresh_count(), n);
        last = access;
    }
    assert_eq!(h.mock.live_refresh_tokens(), refresh_tokens, "not rotated");

    // Revocation presents the access token as a bearer; the refresh token dies with it.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [last.as_str()]);
    assert!(!h.mock.is_access_token_valid(&last));
    assert!(h.mock.live_refresh_tokens().is_empty(), "the refresh token died with its access token");
    h.stop().await;
});

e2e_test!(dropbox_disconnect_after_the_access_token_expired_refreshes_then_revokes, |db| {
    let mut config = mock();
    config.access_token_ttl = Some(Duration::from_secs(2));
    let h = Harness::start(&db, HarnessOptions::provider("dropbox", config)).await;
    let (_, id) = connect(&h, "team-1").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(h.mock.refresh_count(), 0);
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "an expired access token cannot authorize the revocation: {body}");
    assert_eq!(h.mock.refresh_count(), 1, "refreshed first");
    assert!(h.mock.live_refresh_tokens().is_empty());
    h.stop().await;
});

e2e_test!(dropbox_revoked_app_needs_reauth, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("dropbox", mock())).await;
    let (_, id) = connect(&h, "team-1").await;
    // The user unlinks the app in their Dropbox settings: `invalid_grant`.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");

    // Disconnecting now cannot revoke (the tokens are dead at Dropbox): reported, deleted.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false, "{body}");
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});
