//! The TikTok provider (Login Kit v2) through the real server against a TikTok-shaped mock:
//! `client_key` instead of `client_id` everywhere, body credentials, comma-separated scopes,
//! `open_id` from the token answer as the account id, `/v2/user/info/` in its envelope,
//! token errors with HTTP 200, rotating refresh tokens with `refresh_expires_in`, hex PKCE when
//! turned on, and `POST /v2/oauth/revoke/`.

use reqwest::Method;
use serde_json::json;
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockFailure, MockFlavor, MockProviderConfig};

fn tiktok() -> HarnessOptions {
    let mock = MockProviderConfig {
        auto_approve: Some("mina.makes".into()),
        ..MockProviderConfig::for_flavor(MockFlavor::TikTok)
    };
    HarnessOptions { mock, kind: "tiktok", ..HarnessOptions::default() }
}

/// Follows a connect link to the provider; returns the provider URL's query.
async fn provider_query(h: &Harness, owner: &str) -> (String, std::collections::HashMap<String, String>) {
    let resp = h.browser.get(h.connect_url(owner, None).await).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let provider_url = location(&resp);
    let query = url::Url::parse(&provider_url).unwrap().query_pairs().into_owned().collect();
    (provider_url, query)
}

/// Visits the provider and our callback; returns the callback's status and page.
async fn finish(h: &Harness, provider_url: &str) -> (u16, String) {
    let resp = h.browser.get(provider_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the mock redirects back");
    let resp = h.browser.get(location(&resp)).send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

e2e_test!(tiktok_connect_names_the_open_id_rotates_refresh_tokens_and_revokes, |db| {
    let h = Harness::start(&db, tiktok()).await;
    let (provider_url, q) = provider_query(&h, "creator-1").await;
    assert_eq!(q.get("client_key").map(String::as_str), Some("mock-client"), "{provider_url}");
    assert!(!q.contains_key("client_id"), "TikTok does not know client_id: {provider_url}");
    assert_eq!(q["scope"], "user.info.basic,video.publish,video.upload");
    assert!(!q.contains_key("code_challenge"), "no PKCE for a web app by default");
    let (status, page) = finish(&h, &provider_url).await;
    assert_eq!(status, 200, "{page}");
    let (_, list) = h.get("/v1/connections?owner=creator-1").await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();

    // The account id is the token answer's open_id, the name comes from /v2/user/info/.
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert!(conn["account"]["id"].as_str().unwrap().starts_with("-000"), "{conn}");
    assert_eq!(conn["account"]["name"], "mina.makes ✨", "{conn}");
    assert_eq!(conn["scopes"], json!(["user.info.basic", "video.publish", "video.upload"]));
    let (status, token) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{token}");
    let first = token["access_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("act.") && h.mock.is_access_token_valid(&first));

    // Two refreshes in a row: each uses the refresh token the previous one returned; the used
    // ones are dead at TikTok.
    let mut tokens = vec![first];
    for round in 1..=2 {
        let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
        assert_eq!(status, 200, "{body}");
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
        assert_eq!(h.mock.refresh_count(), round);
    }
    let issued = h.mock.issued_refresh_tokens();
    assert_eq!(issued.len(), 3, "{issued:?}");
    assert!(issued.iter().all(|r| r.starts_with("rft.")));
    assert!(!h.mock.is_refresh_token_valid(&issued[0]) && !h.mock.is_refresh_token_valid(&issued[1]));
    assert!(h.mock.is_refresh_token_valid(&issued[2]));
    assert!(!h.mock.is_access_token_valid(&tokens[0]) && h.mock.is_access_token_valid(&tokens[2]));

    // Disconnect: /v2/oauth/revoke/ with client_key, client_secret and the access token ends the
    // authorization.
    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(h.mock.revoked_tokens(), [tokens[2].as_str()]);
    assert!(!h.mock.is_access_token_valid(&tokens[2]) && !h.mock.is_refresh_token_valid(&issued[2]));
    h.stop().await;
});

e2e_test!(tiktok_invalid_grant_with_http_200_needs_reauth, |db| {
    let h = Harness::start(&db, tiktok()).await;
    let id = h.connect("creator-1").await;
    // The user removes the app: the refresh answers HTTP 200 {"error":"invalid_grant",…}.
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

e2e_test!(tiktok_outage_keeps_serving_the_valid_token, |db| {
    let h = Harness::start(&db, tiktok()).await;
    let id = h.connect("creator-1").await;
    let (_, before) = h.get(&format!("/v1/connections/{id}/token")).await;
    h.mock.set_token_failure(Some(MockFailure::Status(503)));
    let (status, body) = h.get(&format!("/v1/connections/{id}/token?force_refresh=true")).await;
    assert_eq!(status, 503, "{body}");
    h.mock.set_token_failure(None);
    let (status, after) = h.get(&format!("/v1/connections/{id}/token")).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["access_token"], before["access_token"]);
    let (_, conn) = h.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(conn["status"], "active");
    h.stop().await;
});

e2e_test!(tiktok_pkce_when_turned_on_sends_a_hex_challenge, |db| {
    let mut options = tiktok();
    options.provider_config = "pkce = true".into();
    let h = Harness::start(&db, options).await;
    let (provider_url, q) = provider_query(&h, "creator-1").await;
    let challenge = &q["code_challenge"];
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(
        challenge.len() == 64 && challenge.chars().all(|c| c.is_ascii_hexdigit()),
        "hex, not base64url: {challenge}"
    );
    // The mock checks hex(SHA-256(code_verifier)) at the token endpoint.
    let (status, page) = finish(&h, &provider_url).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(h.mock.code_exchanges(), 1);
    h.stop().await;
});

e2e_test!(tiktok_token_errors_with_http_200_end_the_flow_and_client_id_is_refused, |db| {
    let mut options = tiktok();
    options.server_client_secret = Some("not-the-secret".into());
    let h = Harness::start(&db, options).await;
    let (provider_url, _) = provider_query(&h, "creator-1").await;
    // The token endpoint answers HTTP 200 {"error":"invalid_client",…}: no connection is made.
    let (status, page) = finish(&h, &provider_url).await;
    assert_eq!(status, 502, "{page}");
    assert!(page.contains("invalid_client"), "TikTok's error is shown: {page}");
    assert_eq!((h.mock.code_exchanges(), h.connection_count().await), (0, 0));
    // An authorization request naming `client_id` instead of `client_key` is refused.
    let bad = provider_url.replace("client_key=", "client_id=");
    let resp = h.browser.get(&bad).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("no client_key"));
    h.stop().await;
});
