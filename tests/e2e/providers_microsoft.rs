//! The Microsoft (Entra ID v2) provider through the real server against an Entra-shaped mock:
//! the tenant in the endpoint paths, a refresh token only with `offline_access`, a new refresh
//! token on every refresh, `AADSTS` errors, Graph `/v1.0/me`, no revocation endpoint.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockFlavor, MockProviderConfig};

/// One-minute tokens: inside the refresh margin, so a token read refreshes.
fn mock() -> MockProviderConfig {
    MockProviderConfig {
        auto_approve: Some("acme".into()),
        access_token_ttl: Some(Duration::from_secs(60)),
        ..MockProviderConfig::for_flavor(MockFlavor::Microsoft)
    }
}

/// Runs a flow for `owner` (with `scopes`, else the defaults); returns the authorization
/// request's URL and the callback's status and page.
async fn flow(h: &Harness, owner: &str, scopes: Option<&[&str]>) -> (url::Url, u16, String) {
    let mut body = json!({ "owner": owner, "provider": "mock" });
    if let Some(scopes) = scopes {
        body["scopes"] = json!(scopes);
    }
    let (status, session) = h.api_call(Method::POST, "/v1/connect-sessions", Some(body)).await;
    assert_eq!(status, 201, "{session}");
    let resp = h.browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let authorize = url::Url::parse(&location(&resp)).unwrap();
    let resp = h.browser.get(authorize.clone()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the mock approves");
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    let status = resp.status().as_u16();
    (authorize, status, resp.text().await.unwrap())
}

async fn connection_of(h: &Harness, owner: &str) -> String {
    let (_, list) = h.get(&format!("/v1/connections?owner={owner}")).await;
    list["connections"][0]["id"].as_str().expect("a connection").to_owned()
}

/// A refresh grant sent to the mock directly, as a replay of a used refresh token would be.
async fn replay(h: &Harness, refresh_token: &str) -> (u16, Value) {
    let cfg = h.mock.config();
    let resp = reqwest::Client::new()
        .post(h.mock.url("common/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", &cfg.client_id),
            ("client_secret", &cfg.client_secret),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

e2e_test!(microsoft_refresh_rotates_the_refresh_token_and_disconnect_cannot_revoke, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("microsoft", mock())).await;
    let (authorize, status, page) = flow(&h, "tenant-user-1", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(authorize.path(), "/common/oauth2/v2.0/authorize", "tenant `common` by default");
    let q: HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["scope"], "openid profile email offline_access User.Read");
    assert_eq!(q["response_mode"], "query");
    assert_eq!(q["code_challenge_method"], "S256");

    let id = connection_of(&h, "tenant-user-1").await;
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["account"]["name"], "Acme Example", "Graph displayName: {conn}");
    let oid = conn["account"]["id"].as_str().unwrap();
    assert_eq!(oid.len(), 36, "the Graph id (object id): {conn}");
    assert_eq!(conn["scopes"], json!(["openid", "profile", "email", "offline_access", "User.Read"]));

    // Every refresh answers a new refresh token; the used one is dead at the mock (Entra leaves
    // it alive a while, Tether never uses it again either way).
    let mut used = Vec::new();
    for n in 1..=3 {
        let before = h.mock.live_refresh_tokens();
        assert_eq!(before.len(), 1, "{before:?}");
        let (status, token) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        assert!(token["access_token"].as_str().unwrap().starts_with("EwB"), "{token}");
        let after = h.mock.live_refresh_tokens();
        assert_eq!(after.len(), 1);
        assert_ne!(after, before, "refresh {n} rotated the refresh token");
        used.push(before[0].clone());
        assert_eq!(h.mock.refresh_count(), n);
    }
    assert_eq!(h.mock.invalid_grant_count(), 0, "Tether never presented a used refresh token");
    let (status, body) = replay(&h, &used[0]).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_codes"], json!([70008]));

    // Entra has no revocation endpoint: the tokens are deleted, revoked is false.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], false, "{body}");
    assert!(body["revoke_error"].as_str().unwrap().contains("no revocation endpoint"), "{body}");
    assert!(h.mock.revoked_tokens().is_empty());
    let (status, _) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 410, "disconnected");
    h.stop().await;
});

e2e_test!(microsoft_expired_refresh_token_aadsts70008_needs_reauth, |db| {
    let h = Harness::start(&db, HarnessOptions::provider("microsoft", mock())).await;
    let (_, status, page) = flow(&h, "tenant-user-1", None).await;
    assert_eq!(status, 200, "{page}");
    let id = connection_of(&h, "tenant-user-1").await;
    h.mock.revoke_all_grants();
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "reauth_required");
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "reauth_required");
    let last_error = conn["last_error"].as_str().unwrap();
    assert!(last_error.contains("invalid_grant") && last_error.contains("AADSTS70008"), "{conn}");
    assert!(!last_error.contains("Trace ID"), "{conn}");
    let (_, events) = h.get(&format!("/v1/connections/{id}/events")).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    h.stop().await;
});

e2e_test!(microsoft_tenant_setting_and_offline_access_decide_the_endpoints_and_the_refresh_token, |db| {
    let mut options = HarnessOptions::provider("microsoft", mock());
    options.provider_config = "tenant = \"organizations\"".into();
    let h = Harness::start(&db, options).await;
    // Work and school accounts only: both the authorization and the token endpoint move.
    let (authorize, status, page) = flow(&h, "org-user", None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(authorize.path(), "/organizations/oauth2/v2.0/authorize");
    assert_eq!(h.mock.code_exchanges(), 1);

    // Without `offline_access` Entra issues no refresh token: nothing can renew the token.
    let (_, status, page) = flow(&h, "no-offline", Some(&["openid", "profile", "User.Read"])).await;
    assert_eq!(status, 200, "{page}");
    let id = connection_of(&h, "no-offline").await;
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "provider_unsupported", "{body}");
    assert_eq!(h.mock.refresh_attempts(), 0);
    h.stop().await;
});

e2e_test!(microsoft_wrong_client_secret_says_what_to_fix_and_stores_nothing, |db| {
    let mut options = HarnessOptions::provider("microsoft", mock());
    options.server_client_secret = Some("the-secret-id-not-its-value".into());
    let h = Harness::start(&db, options).await;
    let (_, status, page) = flow(&h, "tenant-user-1", None).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("AADSTS7000215"), "{page}");
    assert!(!page.contains("the-secret-id-not-its-value"), "no secret in the page");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});
