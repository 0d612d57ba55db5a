//! The provider flavors (LinkedIn, Reddit, Pinterest, Facebook) over real HTTP: their paths,
//! response shapes, error formats and quirks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use tether_testkit::{MockFailure, MockFlavor, MockProvider, MockProviderConfig, RunningMockProvider};

const REDIRECT: &str = "http://app.test/callback";

/// No redirects followed, and no `User-Agent` unless a request sets one.
fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn start(flavor: MockFlavor) -> RunningMockProvider {
    MockProvider::start(MockProviderConfig {
        auto_approve: Some("jane".into()),
        ..MockProviderConfig::for_flavor(flavor)
    })
    .await
    .unwrap()
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

/// `GET {path}` with the usual authorization parameters plus `extra`; returns the Location.
async fn authorize(mock: &RunningMockProvider, path: &str, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "mock-client"),
        ("redirect_uri", REDIRECT),
        ("scope", scope),
        ("state", "st-1"),
    ];
    params.extend_from_slice(extra);
    let resp = http().get(mock.url(path)).query(&params).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND, "{}", resp.text().await.unwrap());
    resp.headers()["location"].to_str().unwrap().to_owned()
}

async fn json(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// A token request with credentials in the body.
async fn post_body(mock: &RunningMockProvider, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let mut form = form.to_vec();
    form.extend([("client_id", "mock-client"), ("client_secret", "mock-secret")]);
    json(http().post(mock.url(path)).header("User-Agent", "tests/1").form(&form).send().await.unwrap()).await
}

/// A token request with HTTP Basic credentials.
async fn post_basic(mock: &RunningMockProvider, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let req =
        http().post(mock.url(path)).header("User-Agent", "tests/1").basic_auth("mock-client", Some("mock-secret"));
    json(req.form(form).send().await.unwrap()).await
}

fn code_form(code: &str) -> [(&str, &str); 3] {
    [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", REDIRECT)]
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[tokio::test]
async fn linkedin_body_credentials_oidc_and_a_refresh_token_that_keeps_its_expiry() {
    let mock = MockProvider::start(MockProviderConfig {
        auto_approve: Some("jane".into()),
        issue_refresh_tokens: true,
        ..MockProviderConfig::for_flavor(MockFlavor::LinkedIn)
    })
    .await
    .unwrap();
    let loc = authorize(&mock, "oauth/v2/authorization", "openid profile w_member_social", &[]).await;
    let code = query_of(&loc)["code"].clone();
    // HTTP Basic is refused, with a description naming the method to use.
    let (status, body) = post_basic(&mock, "oauth/v2/accessToken", &code_form(&code)).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::UNAUTHORIZED, "invalid_client"));
    assert!(s(&body["error_description"]).contains("client_secret_post"), "{body}");
    // That attempt did not reach the code: it still works with body credentials.
    let (status, tokens) = post_body(&mock, "oauth/v2/accessToken", &code_form(&code)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "openid,profile,w_member_social");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 60 * 86_400);
    assert!(s(&tokens["access_token"]).starts_with("AQV") && s(&tokens["refresh_token"]).starts_with("AQX"));
    assert_eq!(tokens["refresh_token_expires_in"], 365 * 86_400);
    assert_eq!(s(&tokens["id_token"]).split('.').count(), 3, "a JWT-shaped id_token with openid");

    // OIDC user info.
    let (status, me) =
        json(http().get(mock.url("v2/userinfo")).bearer_auth(s(&tokens["access_token"])).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((s(&me["name"]), s(&me["given_name"])), ("Jane Example", "Jane"));
    assert_eq!(s(&me["sub"]).len(), 10);
    let (status, body) = json(http().get(mock.url("v2/userinfo")).bearer_auth("AQVnope").send().await.unwrap()).await;
    assert_eq!((status, &body["serviceErrorCode"]), (StatusCode::UNAUTHORIZED, &Value::from(65600)));

    // Refresh: the same refresh token comes back, with what is left of its life.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rt = s(&tokens["refresh_token"]).to_owned();
    let (status, refreshed) =
        post_body(&mock, "oauth/v2/accessToken", &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(s(&refreshed["refresh_token"]), rt);
    assert!(refreshed["refresh_token_expires_in"].as_u64().unwrap() < 365 * 86_400, "not extended: {refreshed}");
    assert!(!mock.is_access_token_valid(s(&tokens["access_token"])));

    // Revocation: body credentials, ends the whole authorization.
    let access = s(&refreshed["access_token"]).to_owned();
    let resp = http()
        .post(mock.url("oauth/v2/revoke"))
        .form(&[("client_id", "mock-client"), ("client_secret", "mock-secret"), ("token", &access)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!mock.is_access_token_valid(&access));
    let (status, body) =
        post_body(&mock, "oauth/v2/accessToken", &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_grant"));
}

#[tokio::test]
async fn reddit_user_agent_duration_and_its_error_shapes() {
    let mock = start(MockFlavor::Reddit).await;
    // Without duration=permanent: no refresh token.
    let loc = authorize(&mock, "api/v1/authorize", "identity submit", &[]).await;
    let (status, tokens) = post_basic(&mock, "api/v1/access_token", &code_form(&query_of(&loc)["code"])).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(tokens["scope"], "identity submit");
    // With it: a refresh token.
    let loc = authorize(&mock, "api/v1/authorize", "identity submit", &[("duration", "permanent")]).await;
    let code = query_of(&loc)["code"].clone();
    // No User-Agent: throttled.
    let resp = http()
        .post(mock.url("api/v1/access_token"))
        .basic_auth("mock-client", Some("mock-secret"))
        .form(&code_form(&code))
        .send()
        .await
        .unwrap();
    let (status, body) = json(resp).await;
    assert_eq!((status, &body["error"]), (StatusCode::TOO_MANY_REQUESTS, &Value::from(429)));
    // Credentials in the body: 401 in Reddit's shape.
    let (status, body) = post_body(&mock, "api/v1/access_token", &code_form(&code)).await;
    assert_eq!((status, &body["error"]), (StatusCode::UNAUTHORIZED, &Value::from(401)));
    let (status, tokens) = post_basic(&mock, "api/v1/access_token", &code_form(&code)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let rt = s(&tokens["refresh_token"]).to_owned();
    // Not rotated: the refresh token works twice; refresh errors are 400.
    let mut access = String::new();
    for _ in 0..2 {
        let (status, body) =
            post_basic(&mock, "api/v1/access_token", &[("grant_type", "refresh_token"), ("refresh_token", &rt)]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        access = s(&body["access_token"]).to_owned();
    }
    let (status, body) =
        post_basic(&mock, "api/v1/access_token", &[("grant_type", "refresh_token"), ("refresh_token", "nope")]).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_grant"));

    // /api/v1/me needs the User-Agent too.
    assert_eq!(http().get(mock.url("api/v1/me")).bearer_auth(&access).send().await.unwrap().status(), 429);
    let resp = http().get(mock.url("api/v1/me")).bearer_auth(&access).header("User-Agent", "tests/1").send();
    let (status, me) = json(resp.await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "jane");
    assert!(s(&me["id"]).chars().all(|c| c.is_ascii_alphanumeric()));

    // A code error comes back with HTTP 200 (and a replayed code revokes its grant).
    let (status, body) = post_basic(&mock, "api/v1/access_token", &code_form(&code)).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::OK, "invalid_grant"));
    let resp = http().get(mock.url("api/v1/me")).bearer_auth(&access).header("User-Agent", "tests/1").send();
    let (status, body) = json(resp.await.unwrap()).await;
    assert_eq!((status, &body["error"]), (StatusCode::UNAUTHORIZED, &Value::from(401)));
    let loc = authorize(&mock, "api/v1/authorize", "identity", &[("duration", "permanent")]).await;
    let (_, tokens) = post_basic(&mock, "api/v1/access_token", &code_form(&query_of(&loc)["code"])).await;

    // Revocation: Basic, a refresh token takes its access token with it.
    let rt = s(&tokens["refresh_token"]).to_owned();
    let resp = http()
        .post(mock.url("api/v1/revoke_token"))
        .header("User-Agent", "tests/1")
        .basic_auth("mock-client", Some("mock-secret"))
        .form(&[("token", rt.as_str()), ("token_type_hint", "refresh_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!mock.is_access_token_valid(s(&tokens["access_token"])));
    // A bad duration is refused.
    let resp = http()
        .get(mock.url("api/v1/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", "mock-client"),
            ("redirect_uri", REDIRECT),
            ("duration", "forever"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(query_of(resp.headers()["location"].to_str().unwrap())["error"], "invalid_request");
}

#[tokio::test]
async fn pinterest_code_and_message_errors_and_continuous_refresh() {
    let mock = start(MockFlavor::Pinterest).await;
    let loc = authorize(&mock, "oauth/", "user_accounts:read,pins:write", &[]).await;
    let code = query_of(&loc)["code"].clone();
    let (status, body) = post_body(&mock, "v5/oauth/token", &code_form(&code)).await;
    assert_eq!((status, &body["code"]), (StatusCode::UNAUTHORIZED, &Value::from(2)));
    let (status, tokens) = post_basic(&mock, "v5/oauth/token", &code_form(&code)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "user_accounts:read,pins:write");
    assert_eq!(tokens["response_type"], "authorization_code");
    assert_eq!(tokens["expires_in"], 30 * 86_400);
    assert_eq!(tokens["refresh_token_expires_in"], 60 * 86_400);
    assert!(tokens["refresh_token_expires_at"].is_u64());
    assert!(s(&tokens["access_token"]).starts_with("pina_") && s(&tokens["refresh_token"]).starts_with("pinr_"));

    // Continuous refresh: a new refresh token each time; the used one is dead (283).
    let rt = s(&tokens["refresh_token"]).to_owned();
    let refresh = [("grant_type", "refresh_token"), ("refresh_token", rt.as_str()), ("continuous_refresh", "true")];
    let (status, refreshed) = post_basic(&mock, "v5/oauth/token", &refresh).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(refreshed["response_type"], "refresh_token");
    assert_ne!(s(&refreshed["refresh_token"]), rt);
    let (status, body) = post_basic(&mock, "v5/oauth/token", &refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, serde_json::json!({"code": 283, "message": "The authorization grant is invalid"}));
    let (status, body) = post_basic(&mock, "v5/oauth/token", &[("grant_type", "password")]).await;
    assert_eq!((status, &body["code"]), (StatusCode::BAD_REQUEST, &Value::from(1)));
    mock.set_token_failure(Some(MockFailure::InvalidGrant));
    let (_, body) = post_basic(&mock, "v5/oauth/token", &refresh).await;
    assert_eq!(body["code"], 283);
    mock.set_token_failure(None);

    let access = s(&refreshed["access_token"]);
    let (status, me) = json(http().get(mock.url("v5/user_account")).bearer_auth(access).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((s(&me["username"]), s(&me["account_type"])), ("jane", "BUSINESS"));
    assert_eq!(s(&me["id"]).len(), 18);
    let (status, body) =
        json(http().get(mock.url("v5/user_account")).bearer_auth("pina_x").send().await.unwrap()).await;
    assert_eq!((status, &body["code"]), (StatusCode::UNAUTHORIZED, &Value::from(2)));
}

#[tokio::test]
async fn facebook_short_then_long_lived_tokens_meta_errors_and_permissions_revocation() {
    let mock = MockProvider::start(MockProviderConfig {
        auto_approve: Some("mark".into()),
        access_token_ttl: Some(Duration::from_secs(2)),
        ..MockProviderConfig::for_flavor(MockFlavor::Facebook)
    })
    .await
    .unwrap();
    // No response_type needed; the redirect ends in #_=_.
    let resp = http()
        .get(mock.url("dialog/oauth"))
        .query(&[("client_id", "mock-client"), ("redirect_uri", REDIRECT), ("scope", "public_profile,pages_show_list")])
        .send()
        .await
        .unwrap();
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.ends_with("#_=_"), "{loc}");
    let code = query_of(&loc)["code"].clone();

    // HTTP Basic: error 101 in Meta's shape.
    let (status, body) =
        post_basic(&mock, "oauth/access_token", &[("code", code.as_str()), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((&body["error"]["code"], s(&body["error"]["type"])), (&Value::from(101), "OAuthException"));
    // The code exchange as a GET with the credentials in the query: a short-lived token, no
    // refresh token, no scope.
    let q = [
        ("client_id", "mock-client"),
        ("client_secret", "mock-secret"),
        ("redirect_uri", REDIRECT),
        ("code", code.as_str()),
    ];
    let (status, short) = json(http().get(mock.url("oauth/access_token")).query(&q).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{short}");
    assert!(short.get("refresh_token").is_none() && short.get("scope").is_none(), "{short}");
    assert_eq!(short["expires_in"], 2);

    // fb_exchange_token: short-lived to long-lived, then long-lived renewal.
    let exchange = |token: String| {
        let q = [
            ("grant_type", "fb_exchange_token".to_owned()),
            ("client_id", "mock-client".to_owned()),
            ("client_secret", "mock-secret".to_owned()),
            ("fb_exchange_token", token),
        ];
        http().get(mock.url("oauth/access_token")).query(&q).send()
    };
    let (status, long) = json(exchange(s(&short["access_token"]).to_owned()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{long}");
    assert_eq!((mock.token_exchanges(), mock.refresh_count(), mock.refresh_attempts()), (1, 0, 0));
    let (status, renewed) = json(exchange(s(&long["access_token"]).to_owned()).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!((mock.token_exchanges(), mock.refresh_count()), (2, 1));
    assert!(mock.is_access_token_valid(s(&long["access_token"])), "the presented token lives on until it expires");

    // /me: the fields asked for, token in the query or as Bearer.
    let access = s(&renewed["access_token"]).to_owned();
    let me = |fields: &str| {
        http().get(mock.url("me")).query(&[("fields", fields), ("access_token", access.as_str())]).send()
    };
    let (status, doc) = json(me("id,name").await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc.as_object().unwrap().len(), 2);
    assert_eq!(doc["name"], "Mark Example");
    let (status, body) = json(me("id,birthday").await.unwrap()).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &Value::from(100)));
    let (status, _) = json(http().get(mock.url("me")).bearer_auth(&access).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    // An expired token cannot be exchanged: 190/463.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = json(exchange(access.clone()).await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!((&body["error"]["code"], &body["error"]["error_subcode"]), (&Value::from(190), &Value::from(463)));
    assert!(mock.invalid_grant_count() >= 1);

    // DELETE /me/permissions kills the whole grant.
    let loc = authorize(&mock, "dialog/oauth", "public_profile", &[]).await;
    let code = query_of(&loc)["code"].clone();
    let (_, short) =
        post_body(&mock, "oauth/access_token", &[("code", code.as_str()), ("redirect_uri", REDIRECT)]).await;
    let (_, long) = json(exchange(s(&short["access_token"]).to_owned()).await.unwrap()).await;
    let delete = |token: &str| http().delete(mock.url("me/permissions")).query(&[("access_token", token)]).send();
    let (status, body) = json(delete(s(&long["access_token"])).await.unwrap()).await;
    assert_eq!((status, &body["success"]), (StatusCode::OK, &Value::from(true)));
    assert!(!mock.is_access_token_valid(s(&short["access_token"])));
    let (status, body) = json(delete(s(&long["access_token"])).await.unwrap()).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &Value::from(190)));
    // A replayed code: error 100/36009.
    let (_, body) =
        post_body(&mock, "oauth/access_token", &[("code", code.as_str()), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((&body["error"]["code"], &body["error"]["error_subcode"]), (&Value::from(100), &Value::from(36009)));
    // There is no refresh_token grant.
    let (_, body) =
        post_body(&mock, "oauth/access_token", &[("grant_type", "refresh_token"), ("refresh_token", "x")]).await;
    assert_eq!(body["error"]["code"], 100);
}

#[tokio::test]
async fn flavor_paths_exist_only_for_their_flavor() {
    let standard = MockProvider::start(MockProviderConfig::default()).await.unwrap();
    for path in ["v2/userinfo", "api/v1/me", "v5/user_account", "me"] {
        assert_eq!(http().get(standard.url(path)).send().await.unwrap().status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert_eq!(http().get(standard.url("token")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let reddit = start(MockFlavor::Reddit).await;
    assert_eq!(http().get(reddit.url("v2/userinfo")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
    let page = http().get(reddit.url("")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Reddit-shaped"), "{page}");
}

#[tokio::test]
async fn the_consent_page_posts_back_to_the_flavor_path() {
    let mock = MockProvider::start(MockProviderConfig::for_flavor(MockFlavor::Facebook)).await.unwrap();
    let params =
        [("client_id", "mock-client"), ("redirect_uri", REDIRECT), ("state", "st-1"), ("scope", "public_profile")];
    let page = http().get(mock.url("dialog/oauth")).query(&params).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("action=\"oauth\""), "{page}");
    let mut form = params.to_vec();
    form.extend([("decision", "allow"), ("login", "mark")]);
    let resp = http().post(mock.url("dialog/oauth")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(loc.ends_with("#_=_") && query_of(&loc).contains_key("code"), "{loc}");
    let pinterest = MockProvider::start(MockProviderConfig::for_flavor(MockFlavor::Pinterest)).await.unwrap();
    let resp = http().get(pinterest.url("oauth/")).query(&params).query(&[("response_type", "code")]).send();
    let page = resp.await.unwrap().text().await.unwrap();
    assert!(page.contains("action=\"./\""), "{page}");
}
