//! The Keycloak configuration of docs/providers/generic.md, as written there, through the real
//! server against a Keycloak-shaped loopback server: a realm's `openid-connect` endpoints, PKCE
//! S256 required, `client_secret_basic`, an offline token (`refresh_expires_in: 0`), 5-minute
//! access tokens, rotating refresh tokens, and revocation of the offline token.

use reqwest::Method;
use tether_e2e::{Harness, HarnessOptions, e2e_test};

use crate::self_hosted_mock::{KEYCLOAK_SUB, LOGIN, SelfHostedMock, Shape, connect, documented_config};

async fn start(db: &str) -> (Harness, SelfHostedMock) {
    let keycloak = SelfHostedMock::start(Shape::Keycloak).await;
    let provider = documented_config("tests/e2e/generic_keycloak.rs", "https://keycloak.example.com", &keycloak);
    // The page's advice for Keycloak's 5-minute tokens: a fresh token is served as it is.
    let extra_config = format!("refresh_margin_secs = 60\n{provider}");
    let h = Harness::start(db, HarnessOptions { extra_config, ..HarnessOptions::default() }).await;
    (h, keycloak)
}

e2e_test!(keycloak_documented_configuration_connects_refreshes_with_rotation_and_revokes, |db| {
    let (h, keycloak) = start(&db).await;
    let connection = connect(&h, "keycloak", "team-1").await;
    assert_eq!(connection["account"]["id"], KEYCLOAK_SUB, "{connection}");
    assert_eq!(connection["account"]["name"], LOGIN);
    let id = connection["id"].as_str().unwrap().to_owned();

    let authorize = &keycloak.authorize_requests()[0];
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert_eq!(authorize["scope"], "openid profile email offline_access");
    assert_eq!(authorize["redirect_uri"], h.url("/callback/keycloak"));

    let (status, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200, "{token}");
    let mut access = token["access_token"].as_str().unwrap().to_owned();
    assert!(keycloak.is_access_token_valid(&access));
    assert_eq!(keycloak.refreshes(), 0, "a 5-minute token is fresh under a 60 s margin");

    // "Revoke Refresh Token" on: each refresh token works once, so the second refresh succeeds
    // only if Tether stored the token the first one rotated in.
    for n in 1..=2 {
        let path = format!("/v1/connections/{id}/token?force_refresh=true");
        let (status, token) = h.api_call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let renewed = token["access_token"].as_str().unwrap().to_owned();
        assert_ne!(renewed, access);
        assert!(keycloak.is_access_token_valid(&renewed));
        access = renewed;
        assert_eq!(keycloak.refreshes(), n);
    }
    assert_eq!(keycloak.rejected_refreshes(), 0);
    assert_eq!(keycloak.token_client_auth(), ["basic"; 3], "client_secret_basic on every token request");

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    let revocations = keycloak.revocations();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0]["token_type_hint"], "refresh_token", "the offline token is revoked");
    assert_eq!(keycloak.live_grants(), 0, "the offline session is gone");
    assert!(!keycloak.is_access_token_valid(&access));
    h.stop().await;
    keycloak.stop().await;
});
