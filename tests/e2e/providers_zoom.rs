//! The Zoom provider through the real server against a Zoom-shaped mock: HTTP Basic, PKCE
//! S256, scopes chosen on the app's page, one-hour tokens with rotating refresh tokens,
//! `{"reason","error"}` errors where a dead refresh token is `"Invalid Token!"` with
//! `invalid_request`, `/v2/users/me`, revocation of the access token with Basic credentials.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, location, secs_until};
use tether_testkit::{MockFlavor, MockProviderConfig};

fn mock() -> MockProviderConfig {
    MockProviderConfig { auto_approve: Some("jill".into()), ..MockProviderConfig::for_flavor(MockFlavor::Zoom) }
}

e2e_test!(zoom_connects_with_pkce_refreshes_with_rotation_and_revokes_the_access_token, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("zoom", mock())).await;
    // The authorization request: S256 challenge, no scope (the app's page chooses them).
    let resp = h.browser.get(h.connect_url("host-1", None).await).send().await.unwrap();
    let authorize = reqwest::Url::parse(&location(&resp)).unwrap();
    assert_eq!(authorize.path(), "/oauth/authorize");
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256", "{authorize}");
    assert!(!q.contains_key("scope"), "{authorize}");
    let resp = h.browser.get(authorize.as_str()).send().await.unwrap();
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.get("/v1/connections?owner=host-1").await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();

    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Jill Example", "the display_name: {conn}");
    assert!(!conn["account"]["id"].as_str().unwrap().is_empty(), "{conn}");
    assert_eq!(conn["scopes"], json!(["user:read:user"]), "what the token response granted");
    let ttl = secs_until(&conn["expires_at"]);
    assert!((3_500..=3_599).contains(&ttl), "one-hour access token: {ttl}");

    // Every refresh answers a new refresh token and kills the used one.
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
    assert_eq!(h.mock.invalid_grant_count(), 0);

    // Zoom revokes the access token (Basic credentials, token=); the authorization ends.
    let (_, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    let access = token["access_token"].as_str().unwrap().to_owned();
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [access.as_str()]);
    assert!(!h.mock.is_access_token_valid(&access));
    assert!(!h.mock.is_refresh_token_valid(&issued[2]), "the whole authorization ends");
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});

e2e_test!(zoom_invalid_token_on_refresh_means_reauth_not_a_retry, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("zoom", mock())).await;
    let id = h.connect("host-1").await;
    // The user removes the app: {"reason":"Invalid Token!","error":"invalid_request"}.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("Invalid Token!"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    // Not retried: later reads do not reach Zoom again.
    let attempts = h.mock.refresh_attempts();
    let (status, _) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409);
    assert_eq!(h.mock.refresh_attempts(), attempts);
    h.stop().await;
});

e2e_test!(zoom_expired_access_token_is_renewed_then_revoked, |db| {
    let h = Harness::start(
        &db,
        HarnessOptions::provider(
            "zoom",
            MockProviderConfig { access_token_ttl: Some(Duration::from_secs(2)), ..mock() },
        ),
    )
    .await;
    let id = h.connect("host-1").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.refresh_count(), 1, "renewed first: Zoom revokes access tokens");
    let revoked = h.mock.revoked_tokens();
    assert_eq!(revoked.len(), 1);
    assert!(revoked[0].starts_with("eyJzv"), "an access token");
    assert!(h.mock.issued_refresh_tokens().iter().all(|r| !h.mock.is_refresh_token_valid(r)));
    h.stop().await;
});

e2e_test!(zoom_refuses_credentials_in_the_body, |db| {
    let mut options = HarnessOptions::provider("zoom", mock());
    options.provider_config = "client_auth = \"post\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("host-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_client"), "Zoom's own error is shown: {page}");
    assert_eq!(h.mock.code_exchanges(), 0);
    assert_eq!(h.connection_count().await, 0, "nothing is stored");
    h.stop().await;
});
