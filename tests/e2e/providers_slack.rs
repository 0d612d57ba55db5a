//! The Slack provider (OAuth v2) through the real server against a Slack-shaped mock: user
//! scopes in `user_scope` and bot scopes in `scope`, one token per connection (the user token
//! when user scopes were granted, the bot token otherwise), errors as HTTP 200 `ok:false`,
//! tokens that never expire without token rotation, rotating `xoxe-1-` refresh tokens with it,
//! `auth.test` identity (`team:user`) and `auth.revoke`.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn slack(rotation: bool, provider_config: &str) -> HarnessOptions {
    let mock = MockProviderConfig {
        auto_approve: Some("grace".into()),
        issue_refresh_tokens: rotation,
        ..MockProviderConfig::for_flavor(MockFlavor::Slack)
    };
    HarnessOptions { mock, kind: "slack", provider_config: provider_config.into(), ..HarnessOptions::default() }
}

/// Runs a flow for `owner`; returns the authorization request's query and the connection id.
async fn connect(h: &Harness, owner: &str) -> (HashMap<String, String>, String) {
    let resp = h.browser.get(h.connect_url(owner, None).await).send().await.unwrap();
    let provider_url = location(&resp);
    let query = url::Url::parse(&provider_url).unwrap().query_pairs().into_owned().collect();
    let resp = h.browser.get(&provider_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the mock redirects back");
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.get(&format!("/v1/connections?owner={owner}")).await;
    (query, list["connections"][0]["id"].as_str().unwrap().to_owned())
}

e2e_test!(slack_user_token_never_expires_names_the_workspace_member_and_is_revoked, |db| {
    let h = Harness::start(&db, slack(false, "")).await;
    let (q, id) = connect(&h, "team-app").await;
    assert_eq!(q["user_scope"], "chat:write,users:read", "{q:?}");
    assert!(!q.contains_key("scope"), "no bot scopes asked: {q:?}");
    assert!(!q.contains_key("code_challenge"));

    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    let account = conn["account"]["id"].as_str().unwrap();
    let (team, user) = account.split_once(':').unwrap();
    assert!(team.starts_with('T') && user.starts_with('U'), "{conn}");
    assert_eq!(conn["account"]["name"], "grace @ grace workspace", "{conn}");
    assert_eq!(conn["scopes"], json!(["chat:write", "users:read"]));
    assert!(conn["expires_at"].is_null(), "without token rotation Slack tokens never expire: {conn}");
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    let user_token = token["access_token"].as_str().unwrap().to_owned();
    assert!(user_token.starts_with("xoxp-") && h.mock.is_access_token_valid(&user_token));
    // Nothing to refresh.
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(h.mock.refresh_attempts(), 0);

    // auth.revoke with the token as Bearer.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [user_token.as_str()]);
    assert!(!h.mock.is_access_token_valid(&user_token));
    h.stop().await;
});

e2e_test!(slack_with_bot_and_user_scopes_keeps_the_user_token, |db| {
    let h = Harness::start(&db, slack(false, "bot_scopes = [\"channels:read\", \"chat:write\"]")).await;
    let (q, id) = connect(&h, "team-app").await;
    assert_eq!(q["scope"], "channels:read,chat:write");
    assert_eq!(q["user_scope"], "chat:write,users:read");
    let (_, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert!(token["access_token"].as_str().unwrap().starts_with("xoxp-"), "the user token: {token}");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["scopes"], json!(["chat:write", "users:read"]), "the user token's scopes: {conn}");
    assert_eq!(conn["account"]["name"], "grace @ grace workspace");
    h.stop().await;
});

e2e_test!(slack_bot_only_installation_holds_the_bot_token, |db| {
    let h = Harness::start(&db, slack(false, "scopes = []\nbot_scopes = \"commands,chat:write\"")).await;
    let (q, id) = connect(&h, "team-app").await;
    assert_eq!(q["scope"], "commands,chat:write");
    assert!(!q.contains_key("user_scope"), "{q:?}");
    let (_, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    let bot_token = token["access_token"].as_str().unwrap().to_owned();
    assert!(bot_token.starts_with("xoxb-"), "{token}");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "mockbot @ grace workspace", "auth.test names the bot user: {conn}");
    assert_eq!(conn["scopes"], json!(["commands", "chat:write"]));
    let (_, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(body["revoked"], true, "{body}");
    assert!(!h.mock.is_access_token_valid(&bot_token));
    h.stop().await;
});

e2e_test!(slack_token_rotation_refreshes_twice_and_a_dead_refresh_token_needs_reauth, |db| {
    let h = Harness::start(&db, slack(true, "")).await;
    let (_, id) = connect(&h, "team-app").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    let at = chrono::DateTime::parse_from_rfc3339(conn["expires_at"].as_str().unwrap()).unwrap();
    let hours = (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((11.9..=12.0).contains(&hours), "rotating tokens last 12 hours: {conn}");
    let (_, first) = h.get(&format!("/v1/connections/{id}/token")).await;
    let mut tokens = vec![first["access_token"].as_str().unwrap().to_owned()];
    assert!(tokens[0].starts_with("xoxe.xoxp-1-"), "{first}");
    for round in 1..=2 {
        let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
        assert_eq!(h.mock.refresh_count(), round);
    }
    let issued = h.mock.issued_refresh_tokens();
    assert_eq!(issued.len(), 3, "{issued:?}");
    assert!(issued.iter().all(|r| r.starts_with("xoxe-1-")));
    assert!(!h.mock.is_refresh_token_valid(&issued[0]) && !h.mock.is_refresh_token_valid(&issued[1]));
    assert!(h.mock.is_refresh_token_valid(&issued[2]));
    assert!(!h.mock.is_access_token_valid(&tokens[1]) && h.mock.is_access_token_valid(&tokens[2]));

    // The app is uninstalled: the refresh answers HTTP 200 {"ok":false,"error":"invalid_refresh_token"}.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("invalid_refresh_token"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    h.stop().await;
});

e2e_test!(slack_expired_rotating_token_is_renewed_to_revoke_itself, |db| {
    let mut options = slack(true, "");
    options.mock.access_token_ttl = Some(Duration::from_secs(1));
    let h = Harness::start(&db, options).await;
    let (_, id) = connect(&h, "team-app").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.refresh_count(), 1, "renewed first");
    let issued = h.mock.issued_refresh_tokens();
    assert!(issued.iter().all(|r| !h.mock.is_refresh_token_valid(r)), "nothing of the grant is left");
    h.stop().await;
});

e2e_test!(slack_errors_with_http_200_end_the_flow, |db| {
    let mut options = slack(false, "");
    options.server_client_secret = Some("not-the-secret".into());
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("team-app", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("bad_client_secret"), "Slack's error is shown: {page}");
    assert_eq!((h.mock.code_exchanges(), h.connection_count().await), (0, 0));
    h.stop().await;
});
