//! The Discord provider through the real server against a Discord-shaped mock: no PKCE for a
//! confidential client, Basic or body client authentication, 7-day tokens, a new refresh token
//! on every refresh (the used one dies), `/api/v10/users/@me` (`id`, `global_name`), RFC 7009
//! revocation with client authentication that ends the whole authorization.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, location, secs_until};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn mock() -> MockProviderConfig {
    MockProviderConfig { auto_approve: Some("nelly".into()), ..MockProviderConfig::for_flavor(MockFlavor::Discord) }
}

e2e_test!(discord_connects_refreshes_with_rotation_and_revokes_the_authorization, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("discord", mock())).await;
    let id = h.connect("guild-bot-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Nelly", "the global_name: {conn}");
    let snowflake = conn["account"]["id"].as_str().unwrap();
    assert!(snowflake.len() == 18 && snowflake.chars().all(|c| c.is_ascii_digit()), "{conn}");
    assert_eq!(conn["scopes"], json!(["identify"]));
    let ttl = secs_until(&conn["expires_at"]);
    assert!((7 * 86_400 - 120..=7 * 86_400).contains(&ttl), "7-day access token: {ttl}");

    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    assert!(token["access_token"].as_str().unwrap().starts_with("dca_"), "{token}");
    assert_eq!(h.mock.refresh_attempts(), 0, "a 7-day token is not refreshed on read");

    // Each refresh answers a new refresh token and kills the used one: two refreshes in a row
    // work only if the first new one was stored.
    for n in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        assert!(h.mock.is_access_token_valid(token["access_token"].as_str().unwrap()));
        assert_eq!(h.mock.refresh_count(), n);
    }
    let issued = h.mock.issued_refresh_tokens();
    assert_eq!(issued.len(), 3, "one from the code, one per refresh");
    assert!(!h.mock.is_refresh_token_valid(&issued[0]) && !h.mock.is_refresh_token_valid(&issued[1]));
    assert!(h.mock.is_refresh_token_valid(&issued[2]));
    assert_eq!(h.mock.invalid_grant_count(), 0, "no used refresh token was presented again");

    let (_, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    let access = token["access_token"].as_str().unwrap().to_owned();
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [issued[2].as_str()], "the current refresh token (RFC 7009)");
    assert!(!h.mock.is_refresh_token_valid(&issued[2]));
    assert!(!h.mock.is_access_token_valid(&access), "revocation ends every token of the authorization");
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});

e2e_test!(discord_removed_authorization_needs_reauth, |db| {
    let config = MockProviderConfig { access_token_ttl: Some(Duration::from_secs(60)), ..mock() };
    let h = Harness::start(&db, HarnessOptions::provider("discord", config)).await;
    let id = h.connect("guild-bot-1").await;
    // The user removes the app under Settings → Authorized Apps: invalid_grant.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("invalid_grant"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    assert_eq!(h.mock.invalid_grant_count(), 1);
    h.stop().await;
});

e2e_test!(discord_asks_for_configured_scopes_without_pkce_and_accepts_body_credentials, |db| {
    let mut options = HarnessOptions::provider("discord", mock());
    options.provider_config = "scopes = [\"identify\", \"guilds\"]\nclient_auth = \"post\"".into();
    let h = Harness::start(&db, options).await;
    let resp = h.browser.get(h.connect_url("guild-bot-1", None).await).send().await.unwrap();
    let authorize = reqwest::Url::parse(&location(&resp)).unwrap();
    assert_eq!(authorize.path(), "/oauth2/authorize");
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "identify guilds");
    assert!(!q.contains_key("code_challenge"), "no PKCE for a confidential client: {authorize}");
    let resp = h.browser.get(authorize.as_str()).send().await.unwrap();
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.get("/v1/connections?owner=guild-bot-1").await;
    assert_eq!(list["connections"][0]["scopes"], json!(["identify", "guilds"]), "{list}");
    h.stop().await;
});
