//! The Spotify provider through the real server against a Spotify-shaped mock: HTTP Basic
//! only, no PKCE for a confidential client, one-hour tokens, refresh answers with or without a
//! new refresh token, `/v1/me` (`id`, `display_name`), no revocation endpoint.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test};
use tether_testkit::{MockFlavor, MockProviderConfig};

/// One-minute tokens: inside the refresh margin, so a token read refreshes.
fn mock() -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("wizzler".into()),
        access_token_ttl: Some(Duration::from_secs(60)),
        ..MockProviderConfig::for_flavor(MockFlavor::Spotify)
    }
}

e2e_test!(spotify_refresh_without_a_new_refresh_token_keeps_the_old_one_and_disconnect_cannot_revoke, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("spotify", mock())).await;
    let id = h.connect("listener-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["id"], "wizzler", "{conn}");
    assert_eq!(conn["account"]["name"], "Wizzler", "the display_name: {conn}");
    assert_eq!(conn["scopes"], json!(["user-read-private"]));

    // Spotify answers refreshes without a refresh token: the stored one is kept and keeps working.
    let mut seen = std::collections::HashSet::new();
    for n in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let access = token["access_token"].as_str().unwrap();
        assert!(access.starts_with("BQ") && seen.insert(access.to_owned()), "{access}");
        assert_eq!(h.mock.refresh_count(), n);
    }
    let issued = h.mock.issued_refresh_tokens();
    assert_eq!(issued.len(), 1, "only the code exchange issued a refresh token");
    assert!(h.mock.is_refresh_token_valid(&issued[0]));

    // No revocation endpoint: the secrets are deleted, revoked is false, with the reason.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false, "{body}");
    assert!(body["revoke_error"].as_str().unwrap().contains("no revocation endpoint"), "{body}");
    assert!(h.mock.revoked_tokens().is_empty());
    assert!(h.mock.is_refresh_token_valid(&issued[0]), "only the user can end the grant (spotify.com/account/apps)");
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});

e2e_test!(spotify_a_new_refresh_token_in_a_refresh_answer_replaces_the_old_one, |db| {
    let h = Harness::start(
        &db,
        HarnessOptions::provider("spotify", MockProviderConfig { rotate_refresh_tokens: true, ..mock() }),
    )
    .await;
    let id = h.connect("listener-1").await;
    for n in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
    }
    let issued = h.mock.issued_refresh_tokens();
    assert_eq!(issued.len(), 3, "one from the code, one per refresh");
    assert!(!h.mock.is_refresh_token_valid(&issued[0]) && !h.mock.is_refresh_token_valid(&issued[1]));
    assert!(h.mock.is_refresh_token_valid(&issued[2]));
    assert_eq!(h.mock.invalid_grant_count(), 0, "the new refresh token was stored and used");
    h.stop().await;
});

e2e_test!(spotify_dead_refresh_token_needs_reauth, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("spotify", mock())).await;
    let id = h.connect("listener-1").await;
    // Six months after the authorization, or the user removed the app: invalid_grant.
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("invalid_grant"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    h.stop().await;
});

e2e_test!(spotify_refuses_credentials_in_the_body, |db| {
    let mut options = HarnessOptions::provider("spotify", mock());
    options.provider_config = "client_auth = \"post\"".into();
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("listener-1", None).await).await;
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let page = resp.text().await.unwrap();
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_client"), "{page}");
    assert_eq!(h.mock.code_exchanges(), 0);
    assert_eq!(h.connection_count().await, 0, "nothing is stored");
    h.stop().await;
});
