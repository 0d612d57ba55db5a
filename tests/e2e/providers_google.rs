//! The Google provider through the real server against a Google-shaped mock: a refresh token
//! only for `access_type=offline` (and, for a returning user, `prompt=consent`), PKCE S256,
//! OIDC user info, refresh answers without a refresh token (not rotated), `/revoke` with the
//! token alone ending the whole grant.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockFailure, MockFlavor, MockProviderConfig};

/// One-minute tokens: inside the refresh margin, so a token read refreshes.
fn mock() -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("acme".into()),
        access_token_ttl: Some(Duration::from_secs(60)),
        ..MockProviderConfig::for_flavor(MockFlavor::Google)
    }
}

/// Runs a flow for `owner`, returning the authorization request's query and the connection id.
async fn connect(h: &Harness, owner: &str) -> (HashMap<String, String>, String) {
    let resp = h.browser.get(h.connect_url(owner, None).await).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let authorize = url::Url::parse(&location(&resp)).unwrap();
    assert_eq!(authorize.path(), "/o/oauth2/v2/auth");
    let query = authorize.query_pairs().into_owned().collect();
    let resp = h.browser.get(authorize).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the mock approves");
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "callback: {}", resp.text().await.unwrap());
    let (_, list) = h.get(&format!("/v1/connections?owner={owner}")).await;
    (query, list["connections"][0]["id"].as_str().expect("a connection").to_owned())
}

e2e_test!(google_offline_grant_refreshes_without_rotation_and_disconnect_revokes_it, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("google", mock())).await;
    let (query, id) = connect(&h, "creator-1").await;
    assert_eq!(query["access_type"], "offline");
    assert_eq!(query["prompt"], "consent");
    assert_eq!(query["include_granted_scopes"], "true");
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "openid email profile https://www.googleapis.com/auth/youtube.readonly");

    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Acme Example", "{conn}");
    let sub = conn["account"]["id"].as_str().unwrap();
    assert!(sub.len() == 21 && sub.chars().all(|c| c.is_ascii_digit()), "the OIDC `sub`: {conn}");
    assert_eq!(
        conn["scopes"],
        json!(["openid", "email", "profile", "https://www.googleapis.com/auth/youtube.readonly"])
    );
    let refresh_tokens = h.mock.live_refresh_tokens();
    assert_eq!(refresh_tokens.len(), 1, "access_type=offline gave a refresh token");

    // Refreshes answer no refresh token: the one from the authorization keeps working.
    let mut last = String::new();
    for n in 1..=2 {
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let access = token["access_token"].as_str().unwrap().to_owned();
        assert!(access.starts_with("ya29.") && access != last, "{access}");
        assert_eq!(h.mock.refresh_count(), n);
        last = access;
    }
    assert_eq!(h.mock.live_refresh_tokens(), refresh_tokens, "not rotated");
    assert_eq!(h.mock.invalid_grant_count(), 0);

    // Disconnecting revokes the refresh token, which ends the whole grant at Google.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), refresh_tokens);
    assert!(!h.mock.is_access_token_valid(&last), "the access token died with the grant");
    assert!(h.mock.live_refresh_tokens().is_empty());
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});

e2e_test!(google_returning_user_still_gets_a_refresh_token_thanks_to_prompt_consent, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("google", mock())).await;
    // The same Google user connects twice (two owners): Google issues a refresh token at the
    // first consent only, unless consent is prompted again.
    let (_, first) = connect(&h, "owner-a").await;
    let (_, second) = connect(&h, "owner-b").await;
    assert_ne!(first, second);
    assert_eq!(h.mock.live_refresh_tokens().len(), 2, "both authorizations issued a refresh token");
    for id in [&first, &second] {
        let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(h.mock.refresh_count(), 2);
    h.stop().await;
});

e2e_test!(google_revoked_grant_needs_reauth_and_outages_do_not, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("google", mock())).await;
    let (_, id) = connect(&h, "creator-1").await;
    let (status, first) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{first}");

    // An outage is not a dead grant: the still-valid token keeps being served.
    h.mock.set_token_failure(Some(MockFailure::Status(503)));
    let (status, body) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["access_token"], first["access_token"]);
    h.mock.set_token_failure(None);

    // The user removes the app at myaccount.google.com: `invalid_grant` "Token has been
    // expired or revoked."
    h.mock.revoke_all_grants();
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
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    assert!(conn["last_error"].as_str().unwrap().contains("invalid_grant"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");

    // Disconnecting a dead grant: Google answers `invalid_token`; the tokens are deleted anyway.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false, "{body}");
    assert!(body["revoke_error"].as_str().unwrap().contains("invalid_token"), "{body}");
    h.stop().await;
});
