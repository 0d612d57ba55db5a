//! Twitter / X: OAuth 2.0 with PKCE and Basic client authentication against the testkit mock
//! (with a Twitter-shaped `/2/users/me`), and OAuth 1.0a against a mock that verifies every
//! HMAC-SHA1 signature independently.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::Method;
use serde_json::json;
use tether_e2e::oauth1_mock::{CONSUMER_KEY, CONSUMER_SECRET, OAuth1Mock};
use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::{MockClientAuth, MockProvider, MockProviderConfig};

/// Serves `/2/users/me` shaped like X's API for tokens the testkit mock issued (the mock is
/// filled in once the harness has started it).
async fn users_me_server(slot: Arc<Mutex<Option<MockProvider>>>) -> String {
    async fn me(slot: web::Data<Arc<Mutex<Option<MockProvider>>>>, req: HttpRequest) -> HttpResponse {
        let token = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let valid = slot.lock().unwrap().as_ref().is_some_and(|m| m.is_access_token_valid(token));
        if valid {
            HttpResponse::Ok()
                .json(json!({"data": {"id": "2244994945", "name": "Developers", "username": "XDevelopers"}}))
        } else {
            HttpResponse::Unauthorized().json(json!({"title": "Unauthorized", "type": "about:blank", "status": 401}))
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = HttpServer::new(move || {
        App::new().app_data(web::Data::new(slot.clone())).route("/2/users/me", web::get().to(me))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    base
}

async fn connect_via(h: &Harness, provider: &str) -> reqwest::Response {
    let (status, session) =
        h.api_call(Method::POST, "/v1/connect-sessions", Some(json!({"owner": "brand", "provider": provider}))).await;
    assert_eq!(status, 201, "{session}");
    let r = h.browser.get(session["connect_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let r = h.browser.get(location(&r)).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    h.browser.get(location(&r)).send().await.unwrap()
}

e2e_test!(twitter_oauth2_with_basic_auth_pkce_and_rotation, |db| {
    let slot = Arc::new(Mutex::new(None));
    let users_me = users_me_server(slot.clone()).await;
    let options = HarnessOptions {
        mock: MockProviderConfig {
            auto_approve: Some("xdev".into()),
            // Confidential clients must use HTTP Basic at X's token endpoint.
            client_auth: MockClientAuth::Basic,
            access_token_ttl: Some(std::time::Duration::from_secs(7200)),
            ..MockProviderConfig::default()
        },
        extra_config: format!(
            "[providers.twitter]\nclient_id = \"mock-client\"\nclient_secret = \"mock-secret\"\n\
             authorize_url = \"{{mock}}/authorize\"\ntoken_url = \"{{mock}}/token\"\nrevoke_url = \"{{mock}}/revoke\"\n\
             userinfo_url = \"{users_me}/2/users/me\"\n"
        ),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    *slot.lock().unwrap() = Some(h.mock.provider.clone());

    let resp = connect_via(&h, "twitter").await;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.api_call(Method::GET, "/v1/connections?provider=twitter", None).await;
    let conn = &list["connections"][0];
    assert_eq!(conn["account"]["id"], "2244994945");
    assert_eq!(conn["account"]["name"], "XDevelopers");
    assert_eq!(conn["scopes"], json!(["tweet.read", "tweet.write", "users.read", "offline.access"]));
    assert_eq!(conn["has_refresh_token"], true, "offline.access gives a refresh token");
    let id = conn["id"].as_str().unwrap().to_owned();

    // Rotating refresh tokens: each forced refresh uses the newest one.
    for _ in 0..3 {
        let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{id}/refresh"), None).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(h.mock.refresh_count(), 3);
    assert_eq!(h.mock.invalid_grant_count(), 0);

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    h.stop().await;
});

e2e_test!(twitter_oauth1_three_legged_flow_signing_and_revoke, |db| {
    let twitter = OAuth1Mock::start().await;
    let options = HarnessOptions {
        extra_config: format!(
            "[providers.twitter_oauth1]\nclient_id = \"{CONSUMER_KEY}\"\nclient_secret = \"{CONSUMER_SECRET}\"\n\
             request_token_url = \"{b}/oauth/request_token\"\nauthorize_url = \"{b}/oauth/authorize\"\n\
             token_url = \"{b}/oauth/access_token\"\nrevoke_url = \"{b}/1.1/oauth/invalidate_token\"\n",
            b = twitter.base
        ),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;

    let resp = connect_via(&h, "twitter_oauth1").await;
    assert_eq!(resp.status().as_u16(), 200, "{}", resp.text().await.unwrap());
    let (_, list) = h.api_call(Method::GET, "/v1/connections?provider=twitter_oauth1", None).await;
    let conn = &list["connections"][0];
    assert_eq!(conn["account"]["id"], "370773112");
    assert_eq!(conn["account"]["name"], "jack");
    let id = conn["id"].as_str().unwrap().to_owned();

    let (status, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200, "{token}");
    assert_eq!(token["token_type"], "oauth1");
    assert!(token["token_secret"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(token["expires_at"].is_null(), "OAuth 1.0a tokens do not expire");
    assert!(twitter.is_live(token["access_token"].as_str().unwrap()));

    // The Rust helper signs arbitrary requests: query parameters and form bodies.
    let cid = tether_core::ConnectionId::parse(&id).unwrap();
    let url =
        url::Url::parse(&format!("{}/1.1/account/verify_credentials.json?include_entities=true&x=a%20b", twitter.base))
            .unwrap();
    let header = h.server.engine.sign_oauth1_request(cid, "GET", &url, &[]).await.unwrap();
    let r = reqwest::Client::new().get(url.as_str()).header("Authorization", header).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let url = url::Url::parse(&format!("{}/1.1/statuses/update.json", twitter.base)).unwrap();
    let form = vec![("status".to_owned(), "Hello Ladies + Gentlemen, a signed OAuth request!".to_owned())];
    let header = h.server.engine.sign_oauth1_request(cid, "POST", &url, &form).await.unwrap();
    let r =
        reqwest::Client::new().post(url.as_str()).header("Authorization", &header).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(twitter.signature_failures(), 0, "every signature Tether made verified");
    // The mock really checks: a replayed header (same nonce) and a changed body fail.
    let r =
        reqwest::Client::new().post(url.as_str()).header("Authorization", &header).form(&form).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let header = h.server.engine.sign_oauth1_request(cid, "POST", &url, &form).await.unwrap();
    let r = reqwest::Client::new()
        .post(url.as_str())
        .header("Authorization", header)
        .form(&[("status", "tampered")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    assert_eq!(twitter.invalidated(), vec![token["access_token"].as_str().unwrap().to_owned()]);
    h.stop().await;
    twitter.stop().await;
});

e2e_test!(twitter_oauth1_denied_consent_stores_nothing, |db| {
    let twitter = OAuth1Mock::start().await;
    twitter.set_deny(true);
    let options = HarnessOptions {
        extra_config: format!(
            "[providers.twitter_oauth1]\nclient_id = \"{CONSUMER_KEY}\"\nclient_secret = \"{CONSUMER_SECRET}\"\n\
             request_token_url = \"{b}/oauth/request_token\"\nauthorize_url = \"{b}/oauth/authorize\"\n\
             token_url = \"{b}/oauth/access_token\"\n",
            b = twitter.base
        ),
        ..HarnessOptions::default()
    };
    let h = Harness::start(&db, options).await;
    let resp = connect_via(&h, "twitter_oauth1").await;
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("access_denied"));
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
    twitter.stop().await;
});
