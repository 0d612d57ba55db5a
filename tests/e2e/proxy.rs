//! The authenticated proxy: fresh credentials added for the application, one retry after a
//! forced refresh on 401, OAuth 1.0a signing, and no way out of the provider's API base.

use reqwest::Method;
use serde_json::json;
use tether_e2e::oauth1_mock::{CONSUMER_KEY, CONSUMER_SECRET, OAuth1Mock};
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test, location};

e2e_test!(proxy_adds_a_fresh_token_and_retries_once_after_401, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let id = h.connect("user-1").await;
    let resp = h.api.get(h.url(&format!("/v1/proxy/{id}/userinfo"))).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["x-tether-connection"], id.as_str());
    let me: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(me["preferred_username"], "alice");

    // The provider revokes the access token behind Tether's back: the proxy refreshes and retries.
    let (_, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    let revoke = reqwest::Client::new()
        .post(h.mock.url("revoke"))
        .basic_auth("mock-client", Some("mock-secret"))
        .form(&[("token", token["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status().as_u16(), 200);
    let refreshes = h.mock.refresh_count();
    let resp = h.api.get(h.url(&format!("/v1/proxy/{id}/userinfo"))).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(h.mock.refresh_count(), refreshes + 1, "exactly one forced refresh");

    // Provider errors pass through unchanged (after the single retry).
    h.mock.revoke_all_grants();
    let resp = h.api.get(h.url(&format!("/v1/proxy/{id}/userinfo"))).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 409, "dead grant after the retry: reauth_required");
    h.stop().await;
});

e2e_test!(proxy_refuses_other_hosts_and_requires_an_api_key, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let id = h.connect("user-1").await;
    for path in ["%2F%2Fevil.example/x", "http:%2F%2Fevil.example/x", "..%2F..%2Fetc"] {
        let resp = h.api.get(h.url(&format!("/v1/proxy/{id}/{path}"))).bearer_auth(API_KEY).send().await.unwrap();
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap_or(json!({}));
        assert!(status == 400 || status == 404, "{path}: {status} {body}");
    }
    let resp = h.api.get(h.url(&format!("/v1/proxy/{id}/userinfo"))).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    h.stop().await;
});

e2e_test!(proxy_signs_oauth1_requests_including_form_bodies, |db| {
    let twitter = OAuth1Mock::start().await;
    let options = HarnessOptions {
        extra_config: format!(
            "[providers.twitter_oauth1]\nclient_id = \"{CONSUMER_KEY}\"\nclient_secret = \"{CONSUMER_SECRET}\"\n\
             request_token_url = \"{b}/oauth/request_token\"\nauthorize_url = \"{b}/oauth/authorize\"\n\
             token_url = \"{b}/oauth/access_token\"\napi_base_url = \"{b}/\"\n",
            b = twitter.base
        ),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    let (_, session) = h
        .api_call(Method::POST, "/v1/connect-sessions", Some(json!({"owner": "brand", "provider": "twitter_oauth1"})))
        .await;
    let r = h.browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    let r = h.browser.get(location(&r)).send().await.unwrap();
    let r = h.browser.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let (_, list) = h.api_call(Method::GET, "/v1/connections?provider=twitter_oauth1", None).await;
    let id = list["connections"][0]["id"].as_str().unwrap().to_owned();

    let resp = h
        .api
        .get(h.url(&format!("/v1/proxy/{id}/1.1/account/verify_credentials.json?include_entities=true")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let resp = h
        .api
        .post(h.url(&format!("/v1/proxy/{id}/1.1/statuses/update.json")))
        .bearer_auth(API_KEY)
        .form(&[("status", "Posting through the proxy, with a signature over the body!")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    assert_eq!(twitter.signature_failures(), 0);
    h.stop().await;
    twitter.stop().await;
});
