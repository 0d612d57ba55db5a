//! The Twitch provider through the real server against a Twitch-shaped mock: client
//! credentials only in the body, no PKCE, the token response's `scope` as a JSON array,
//! `{"status","message"}` errors ("Invalid refresh token" = dead grant), rotating refresh
//! tokens, Helix `/helix/users` that needs `Client-Id`, revocation of the access token with
//! `client_id` that ends the authorization.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test, secs_until};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn mock() -> MockProviderConfig {
    MockProviderConfig { auto_approve: Some("streamer".into()), ..MockProviderConfig::for_flavor(MockFlavor::Twitch) }
}

e2e_test!(twitch_connects_refreshes_with_rotation_and_revokes_the_access_token, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("twitch", mock())).await;
    let id = h.connect("channel-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Streamer", "Helix display_name: {conn}");
    let user_id = conn["account"]["id"].as_str().unwrap().to_owned();
    assert!(user_id.chars().all(|c| c.is_ascii_digit()), "{conn}");
    // The token response's scope is a JSON array.
    assert_eq!(conn["scopes"], json!(["user:read:email"]));
    let ttl = secs_until(&conn["expires_at"]);
    assert!((14_000..=14_124).contains(&ttl), "about four hours: {ttl}");

    // Every refresh answers a new refresh token and kills the used one.
    for n in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        assert!(token["access_token"].as_str().unwrap().starts_with("tca"), "{token}");
        assert_eq!(h.mock.refresh_count(), n);
    }
    let issued = h.mock.issued_refresh_tokens();
    assert_eq!(issued.len(), 3, "one from the code, one per refresh");
    assert!(!h.mock.is_refresh_token_valid(&issued[0]) && !h.mock.is_refresh_token_valid(&issued[1]));
    assert!(h.mock.is_refresh_token_valid(&issued[2]));
    assert_eq!(h.mock.invalid_grant_count(), 0);

    // Twitch revokes access tokens (with client_id, no secret); the authorization ends.
    let (_, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    let access = token["access_token"].as_str().unwrap().to_owned();
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [access.as_str()]);
    assert!(!h.mock.is_access_token_valid(&access));
    assert!(!h.mock.is_refresh_token_valid(&issued[2]), "the whole authorization ends");
    assert_eq!(h.mock.refresh_count(), 2, "a valid access token is revoked as it is");
    h.stop().await;
});

e2e_test!(twitch_expired_access_token_is_renewed_then_revoked, |db| {
    let h = Harness::start(
        &db,
        HarnessOptions::provider(
            "twitch",
            MockProviderConfig { access_token_ttl: Some(Duration::from_secs(2)), ..mock() },
        ),
    )
    .await;
    let id = h.connect("channel-1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.refresh_count(), 1, "renewed first: Twitch revokes access tokens, not refresh tokens");
    let revoked = h.mock.revoked_tokens();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].starts_with("tca"), "an access token");
    let issued = h.mock.issued_refresh_tokens();
    assert!(issued.iter().all(|r| !h.mock.is_refresh_token_valid(r)), "nothing of the grant is left");
    h.stop().await;
});

e2e_test!(twitch_invalid_refresh_token_needs_reauth, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("twitch", mock())).await;
    let id = h.connect("channel-1").await;
    // The user disconnects the app (or changes their password): {"status":400,"message":"Invalid refresh token"}.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("Invalid refresh token"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    assert_eq!(h.mock.invalid_grant_count(), 1);
    h.stop().await;
});

e2e_test!(twitch_helix_through_the_proxy_gets_the_client_id, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("twitch", mock())).await;
    let id = h.connect("channel-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    let url = h.url(&format!("/v1/proxy/{id}/helix/users"));
    // The application sends only its API key: the proxy adds the token and the `Client-Id`
    // Helix wants (the mock refuses a call without it, or with another client's).
    let resp = h.api.get(&url).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let users: Value = resp.json().await.unwrap();
    assert_eq!(users["data"][0]["id"], conn["account"]["id"], "{users}");
    assert_eq!(h.mock.refresh_count(), 0);

    // An application that names a client itself is not overridden: another client's id is
    // refused by Helix (401), which the proxy takes for an expired token: one refresh and one
    // retry, then the 401 is passed back.
    let resp = h.api.get(&url).bearer_auth(API_KEY).header("Client-Id", "another-client").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json().await.unwrap();
    assert!(body["message"].as_str().unwrap().contains("Client ID"), "{body}");
    assert_eq!(h.mock.refresh_count(), 1);
    h.stop().await;
});

e2e_test!(twitch_refuses_http_basic_client_authentication, |db| {
    let mut options = HarnessOptions::provider("twitch", mock());
    options.provider_config = "client_auth = \"basic\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("channel-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("Twitch answered HTTP 400"), "Twitch's own error is shown: {page}");
    assert_eq!(h.mock.code_exchanges(), 0);
    assert_eq!(h.connection_count().await, 0, "nothing is stored");
    h.stop().await;
});
