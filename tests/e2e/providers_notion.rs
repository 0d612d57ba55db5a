//! The Notion provider through the real server against a Notion-shaped mock: `owner=user`, no
//! scopes, HTTP Basic with JSON token requests (a form is refused), the installation's
//! workspace as the account, `Notion-Version` on API calls, a new refresh token on every
//! refresh, `{"object":"error","code"}` errors, JSON revocation.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::{Value, json};
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn notion() -> HarnessOptions {
    HarnessOptions {
        mock: MockProviderConfig {
            auto_approve: Some("acme".into()),
            ..MockProviderConfig::for_flavor(MockFlavor::Notion)
        },
        kind: "notion",
        ..HarnessOptions::default()
    }
}

/// Runs a flow for `owner`, returning the authorization request's query and the connection id.
async fn connect(h: &Harness, owner: &str) -> (HashMap<String, String>, String) {
    let resp = h.browser.get(h.connect_url(owner, None).await).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let authorize = url::Url::parse(&location(&resp)).unwrap();
    assert_eq!(authorize.path(), "/v1/oauth/authorize");
    let query = authorize.query_pairs().into_owned().collect();
    let resp = h.browser.get(authorize).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the mock approves");
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "callback: {}", resp.text().await.unwrap());
    let (_, list) = h.get(&format!("/v1/connections?owner={owner}")).await;
    (query, list["connections"][0]["id"].as_str().expect("a connection").to_owned())
}

/// A refresh grant sent to the mock directly (JSON, Basic), as a replay of a used refresh
/// token would be.
async fn replay(h: &Harness, refresh_token: &str) -> (u16, Value) {
    let cfg = h.mock.config();
    let resp = reqwest::Client::new()
        .post(h.mock.url("v1/oauth/token"))
        .basic_auth(&cfg.client_id, Some(&cfg.client_secret))
        .json(&json!({ "grant_type": "refresh_token", "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

e2e_test!(notion_workspace_authorization_rotates_refresh_tokens_and_revokes, |db| {
    let h = Harness::start(&db, notion()).await;
    let (query, id) = connect(&h, "workspace-owner-1").await;
    assert_eq!(query["owner"], "user");
    assert!(!query.contains_key("scope") && !query.contains_key("code_challenge"), "{query:?}");

    // The connection is the workspace authorization: the bot's id, the workspace's name.
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "acme's Workspace", "{conn}");
    assert_eq!(conn["account"]["id"].as_str().unwrap().len(), 36, "the bot_id: {conn}");
    assert!(conn["expires_at"].is_null(), "Notion access tokens carry no expiry: {conn}");

    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    assert!(token["access_token"].as_str().unwrap().starts_with("ntn_"), "{token}");
    assert_eq!(h.mock.refresh_attempts(), 0, "a token without expiry is not refreshed on read");

    // Every refresh answers a new refresh token; the used one is dead.
    let mut used = Vec::new();
    let mut last = String::new();
    for n in 1..=2 {
        let before = h.mock.live_refresh_tokens();
        assert_eq!(before.len(), 1, "{before:?}");
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let after = h.mock.live_refresh_tokens();
        assert_eq!(after.len(), 1);
        assert_ne!(after, before, "refresh {n} rotated the refresh token");
        used.push(before[0].clone());
        last = token["access_token"].as_str().unwrap().to_owned();
        assert_eq!(h.mock.refresh_count(), n);
    }
    assert_eq!(h.mock.invalid_grant_count(), 0, "Tether never presented a used refresh token");
    let (status, body) = replay(&h, &used[0]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!((body["object"].as_str(), body["code"].as_str()), (Some("error"), Some("invalid_grant")), "{body}");
    // The account did not change with the tokens.
    let (_, again) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(again["account"], conn["account"]);

    // Through the proxy the application sends neither the token nor `Notion-Version` (the mock
    // answers 400 missing_version without it): the proxy adds both.
    let (status, me) = h.api_call(Method::GET, &format!("/v1/proxy/{id}/v1/users/me"), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["id"], conn["account"]["id"], "{me}");

    // Revocation: HTTP Basic, Notion-Version, JSON {"token": <access token>}; ends the
    // authorization, refresh token included.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [last.as_str()]);
    assert!(!h.mock.is_access_token_valid(&last));
    assert!(h.mock.live_refresh_tokens().is_empty());
    h.stop().await;
});

e2e_test!(notion_removed_integration_needs_reauth, |db| {
    let h = Harness::start(&db, notion()).await;
    let (_, id) = connect(&h, "workspace-owner-1").await;
    // The user removes the connection in Notion: `{"object":"error","code":"invalid_grant"}`.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("invalid_grant"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    h.stop().await;
});

e2e_test!(notion_refuses_client_credentials_in_the_body, |db| {
    let mut options = notion();
    options.provider_config = "client_auth = \"post\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("workspace-owner-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("unauthorized"), "Notion's own error code is shown: {page}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});
