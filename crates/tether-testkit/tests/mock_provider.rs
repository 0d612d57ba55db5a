//! The mock provider over real HTTP: started on loopback and driven with reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tether_testkit::{
    MockClientAuth, MockFailure, MockFlavor, MockPkce, MockProvider, MockProviderConfig, RunningMockProvider,
};

const REDIRECT: &str = "http://app.test/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn auto(login: &str) -> MockProviderConfig {
    MockProviderConfig { auto_approve: Some(login.into()), ..MockProviderConfig::default() }
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers().get("location").expect("a Location header").to_str().unwrap().to_owned()
}

/// `GET /authorize` with the usual parameters plus `extra`; returns the response.
async fn authorize(mock: &RunningMockProvider, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", &mock.config().client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "read write"),
        ("state", "st-1"),
    ];
    for (k, v) in extra {
        params.retain(|(p, _)| p != k);
        params.push((k, v));
    }
    http().get(mock.url("authorize")).query(&params).send().await.unwrap()
}

/// A code from an auto-approving mock, with the RFC 7636 example challenge.
async fn code(mock: &RunningMockProvider) -> String {
    let resp = authorize(mock, &[("code_challenge", CHALLENGE), ("code_challenge_method", "S256")]).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    query_of(&location(&resp))["code"].clone()
}

/// `POST /token` with HTTP Basic client authentication.
async fn token(mock: &RunningMockProvider, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = http()
        .post(mock.url("token"))
        .basic_auth(&mock.config().client_id, Some(&mock.config().client_secret))
        .header("Accept", "application/json")
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    (status, resp.json().await.unwrap())
}

async fn exchange(mock: &RunningMockProvider, code: &str, verifier: &str) -> (StatusCode, Value) {
    token(
        mock,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(mock: &RunningMockProvider, refresh_token: &str) -> (StatusCode, Value) {
    token(mock, &[("grant_type", "refresh_token"), ("refresh_token", refresh_token)]).await
}

async fn userinfo(mock: &RunningMockProvider, path: &str, access: &str) -> (StatusCode, Value) {
    let resp = http().get(mock.url(path)).bearer_auth(access).header("User-Agent", "tests").send().await.unwrap();
    (resp.status(), resp.json().await.unwrap())
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}"))
}

#[tokio::test]
async fn full_code_flow_with_pkce_and_basic_auth() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    assert_eq!(mock.base_url.as_str(), mock.url(""));
    assert!(mock.base_url.as_str().starts_with("http://127.0.0.1:"));

    let resp = authorize(
        &mock,
        &[
            ("redirect_uri", "http://app.test/callback?tenant=7"),
            ("code_challenge", CHALLENGE),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let loc = location(&resp);
    assert!(loc.starts_with("http://app.test/callback?tenant=7&code="), "{loc}");
    let q = query_of(&loc);
    assert_eq!(q["state"], "st-1");

    let (status, body) = token(
        &mock,
        &[
            ("grant_type", "authorization_code"),
            ("code", &q["code"]),
            ("redirect_uri", "http://app.test/callback?tenant=7"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = s(&body["access_token"]);
    assert!(access.starts_with("mat_"), "{body}");
    assert!(s(&body["refresh_token"]).starts_with("mrt_"), "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "read write");
    assert_eq!(mock.code_exchanges(), 1);
    assert!(mock.is_access_token_valid(access));

    let (status, me) = userinfo(&mock, "userinfo", access).await;
    assert_eq!(status, StatusCode::OK);
    let expected_sub =
        format!("u_{}", Sha256::digest(b"alice")[..8].iter().map(|b| format!("{b:02x}")).collect::<String>());
    assert_eq!(me["sub"], expected_sub.as_str());
    assert_eq!(me["preferred_username"], "alice");
    assert_eq!(me["name"], "Alice");
    assert_eq!(me["email"], "alice@example.test");
    mock.stop().await;
}

#[tokio::test]
async fn wrong_verifier_missing_verifier_and_wrong_redirect_are_invalid_grant() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let other = URL_SAFE_NO_PAD.encode([7u8; 32]);
    let (status, body) = exchange(&mock, &code(&mock).await, &other).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert!(s(&body["error_description"]).contains("code_verifier does not match"), "{body}");

    let c = code(&mock).await;
    let (status, body) =
        token(&mock, &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", REDIRECT)]).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_grant"), "{body}");

    let c = code(&mock).await;
    let (status, body) = token(
        &mock,
        &[
            ("grant_type", "authorization_code"),
            ("code", &c),
            ("redirect_uri", "http://evil.test/cb"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_grant"), "{body}");
    assert_eq!(mock.invalid_grant_count(), 3);
    assert_eq!(mock.code_exchanges(), 0);
}

#[tokio::test]
async fn reused_code_is_invalid_grant_and_revokes_its_tokens() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let c = code(&mock).await;
    let (status, first) = exchange(&mock, &c, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = exchange(&mock, &c, VERIFIER).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(mock.invalid_grant_count(), 1);
    assert_eq!(mock.code_exchanges(), 1);
    // RFC 6749 §4.1.2: tokens issued from a replayed code are revoked.
    assert!(!mock.is_access_token_valid(s(&first["access_token"])));
    let (status, body) = refresh(&mock, s(&first["refresh_token"])).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_grant"));
}

#[tokio::test]
async fn expired_code_is_invalid_grant() {
    let mock = MockProvider::start(MockProviderConfig { code_ttl: Duration::ZERO, ..auto("alice") }).await.unwrap();
    let (status, body) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_grant"), "{body}");
    assert!(s(&body["error_description"]).contains("expired"), "{body}");
}

#[tokio::test]
async fn client_authentication_methods_are_enforced() {
    let basic_only =
        MockProvider::start(MockProviderConfig { client_auth: MockClientAuth::Basic, ..auto("alice") }).await.unwrap();
    let c = code(&basic_only).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "mock-client"),
        ("client_secret", "mock-secret"),
    ];
    let resp = http().post(basic_only.url("token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    assert!(s(&body["error_description"]).contains("HTTP Basic"), "{body}");
    // Wrong secret over Basic.
    let resp = http().post(basic_only.url("token")).basic_auth("mock-client", Some("nope")).form(&form[..4]).send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_client");

    let post_only =
        MockProvider::start(MockProviderConfig { client_auth: MockClientAuth::Post, ..auto("alice") }).await.unwrap();
    let c = code(&post_only).await;
    let (status, body) = exchange(&post_only, &c, VERIFIER).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(s(&body["error_description"]).contains("client_secret_post"), "{body}");
    let c = code(&post_only).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", c.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", "mock-client"),
        ("client_secret", "mock-secret"),
    ];
    let resp = http().post(post_only.url("token")).form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn basic_credentials_may_be_form_urlencoded_or_raw() {
    let config = MockProviderConfig {
        client_id: "my client".into(),
        client_secret: "s+e:c%t".into(),
        issue_refresh_tokens: true,
        ..auto("alice")
    };
    let mock = MockProvider::start(config).await.unwrap();
    for creds in ["my+client:s%2Be%3Ac%25t", "my client:s+e:c%t"] {
        let resp = http()
            .post(mock.url("token"))
            .header("Authorization", format!("Basic {}", STANDARD.encode(creds)))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", "unknown")])
            .send()
            .await
            .unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{creds}: authenticated, then the token is refused: {body}");
    }
    assert_eq!(mock.refresh_attempts(), 2);
    assert_eq!(mock.refresh_count(), 0);
}

#[tokio::test]
async fn rotation_kills_the_used_refresh_token_and_the_old_access_token() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let (_, first) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    let (status, second) = refresh(&mock, s(&first["refresh_token"])).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["scope"], "read write");
    assert!(!mock.is_access_token_valid(s(&first["access_token"])), "the new access token replaces the old");
    assert!(mock.is_access_token_valid(s(&second["access_token"])));
    assert_eq!(mock.refresh_count(), 1);

    let (status, body) = refresh(&mock, s(&first["refresh_token"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "The refresh token is invalid, expired, revoked or already used");
    assert_eq!(mock.invalid_grant_count(), 1);
    assert_eq!((mock.refresh_count(), mock.refresh_attempts()), (1, 2));

    let (status, third) = refresh(&mock, s(&second["refresh_token"])).await;
    assert_eq!(status, StatusCode::OK, "{third}");
    assert_eq!(mock.refresh_count(), 2);
}

#[tokio::test]
async fn without_rotation_the_refresh_token_keeps_working() {
    let mock = MockProvider::start(MockProviderConfig { rotate_refresh_tokens: false, ..auto("alice") }).await.unwrap();
    let (_, first) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    let rt = s(&first["refresh_token"]).to_owned();
    for _ in 0..2 {
        let (status, body) = refresh(&mock, &rt).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.get("refresh_token").is_none(), "{body}");
    }
    assert_eq!(mock.refresh_count(), 2);
    // Revoking the refresh token also kills the access token issued with it.
    let (_, latest) = refresh(&mock, &rt).await;
    let resp = http().post(mock.url("revoke")).basic_auth("mock-client", Some("mock-secret")).form(&[("token", &rt)]);
    assert_eq!(resp.send().await.unwrap().status(), StatusCode::OK);
    assert!(!mock.is_access_token_valid(s(&latest["access_token"])));
    assert_eq!(refresh(&mock, &rt).await.1["error"], "invalid_grant");
}

#[tokio::test]
async fn no_ttl_and_no_refresh_tokens() {
    let config = MockProviderConfig { access_token_ttl: None, issue_refresh_tokens: false, ..auto("alice") };
    let mock = MockProvider::start(config).await.unwrap();
    let (status, body) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.get("expires_in").is_none() && body.get("refresh_token").is_none(), "{body}");
}

#[tokio::test]
async fn access_tokens_expire() {
    let config = MockProviderConfig { access_token_ttl: Some(Duration::from_millis(30)), ..auto("alice") };
    let mock = MockProvider::start(config).await.unwrap();
    let (_, body) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    assert_eq!(body["expires_in"], 0);
    tokio::time::sleep(Duration::from_millis(40)).await;
    assert!(!mock.is_access_token_valid(s(&body["access_token"])));
    let (status, err) = userinfo(&mock, "userinfo", s(&body["access_token"])).await;
    assert_eq!((status, s(&err["error"])), (StatusCode::UNAUTHORIZED, "invalid_token"));
}

#[tokio::test]
async fn injected_failures() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let (_, tokens) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    let rt = s(&tokens["refresh_token"]).to_owned();

    mock.set_token_failure(Some(MockFailure::Status(500)));
    let (status, body) = refresh(&mock, &rt).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::INTERNAL_SERVER_ERROR, "server_error"));
    // Code exchanges fail too.
    let c = code(&mock).await;
    assert_eq!(exchange(&mock, &c, VERIFIER).await.0, StatusCode::INTERNAL_SERVER_ERROR);

    mock.set_token_failure(Some(MockFailure::TooManyRequests { retry_after_secs: 7 }));
    let resp = http()
        .post(mock.url("token"))
        .basic_auth("mock-client", Some("mock-secret"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", rt.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "7");

    mock.set_token_failure(Some(MockFailure::InvalidGrant));
    assert_eq!(refresh(&mock, &rt).await.1["error"], "invalid_grant");
    assert_eq!(mock.invalid_grant_count(), 1);

    mock.set_token_failure(Some(MockFailure::Hang(Duration::from_millis(60))));
    let started = Instant::now();
    let (status, body) = refresh(&mock, &rt).await;
    assert_eq!(status, StatusCode::OK, "a hang answers normally afterwards: {body}");
    assert!(started.elapsed() >= Duration::from_millis(60));

    mock.set_token_failure(None);
    let (status, _) = refresh(&mock, s(&body["refresh_token"])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((mock.refresh_attempts(), mock.refresh_count()), (5, 2));
}

#[tokio::test]
async fn refresh_delay_lets_two_racing_refreshes_collide() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let (_, tokens) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    let rt = s(&tokens["refresh_token"]).to_owned();
    mock.set_refresh_delay(Duration::from_millis(80));
    let started = Instant::now();
    let (a, b) = tokio::join!(refresh(&mock, &rt), refresh(&mock, &rt));
    assert!(started.elapsed() >= Duration::from_millis(80));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    assert_eq!((mock.refresh_count(), mock.refresh_attempts(), mock.invalid_grant_count()), (1, 2, 1));
}

#[tokio::test]
async fn revoke_all_grants_kills_every_token() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let (_, tokens) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    mock.revoke_all_grants();
    assert!(!mock.is_access_token_valid(s(&tokens["access_token"])));
    assert_eq!(refresh(&mock, s(&tokens["refresh_token"])).await.1["error"], "invalid_grant");
    // A new connection works.
    let (status, _) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn revoke_kills_the_access_token() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let (_, tokens) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    let access = s(&tokens["access_token"]);
    assert_eq!(userinfo(&mock, "userinfo", access).await.0, StatusCode::OK);

    let resp = http().post(mock.url("revoke")).form(&[("token", access)]).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "client authentication is required");
    let resp = http()
        .post(mock.url("revoke"))
        .basic_auth("mock-client", Some("mock-secret"))
        .form(&[("token", access), ("token_type_hint", "access_token")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(mock.revoked_tokens(), vec![access.to_owned()]);
    let (status, body) = userinfo(&mock, "userinfo", access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_token");
    // Other methods answer 404, like unknown paths (proxies pass this through).
    let resp = http().delete(mock.url("userinfo")).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // The refresh token was not revoked.
    assert_eq!(refresh(&mock, s(&tokens["refresh_token"])).await.0, StatusCode::OK);
}

#[tokio::test]
async fn unknown_and_missing_grant_types() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let (status, body) = token(&mock, &[("grant_type", "password")]).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "unsupported_grant_type"));
    let (status, body) = token(&mock, &[("code", "x")]).await;
    assert_eq!((status, s(&body["error"])), (StatusCode::BAD_REQUEST, "invalid_request"));
    let resp = http().post(mock.url("token")).body("{}").header("Content-Type", "application/json").send();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "invalid_request");
}

#[tokio::test]
async fn authorize_request_validation() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    // Unknown client and missing redirect_uri: an error page, never a redirect.
    for extra in [[("client_id", "<b>evil</b>")], [("redirect_uri", "")], [("redirect_uri", "javascript:alert(1)")]] {
        let resp = authorize(&mock, &extra).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(resp.headers().get("location").is_none());
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = resp.text().await.unwrap();
        assert!(!body.contains("<b>evil"), "escaped: {body}");
    }
    // PKCE problems go back to the client with the state.
    for extra in [
        vec![],
        vec![("code_challenge", CHALLENGE), ("code_challenge_method", "plain")],
        vec![("code_challenge", CHALLENGE)],
        vec![("code_challenge", "short"), ("code_challenge_method", "S256")],
    ] {
        let resp = authorize(&mock, &extra).await;
        assert_eq!(resp.status(), StatusCode::FOUND, "{extra:?}");
        let q = query_of(&location(&resp));
        assert_eq!((q["error"].as_str(), q["state"].as_str()), ("invalid_request", "st-1"), "{extra:?}");
        assert!(!q.contains_key("code"));
    }
    let resp = authorize(&mock, &[("response_type", "token")]).await;
    assert_eq!(query_of(&location(&resp))["error"], "unsupported_response_type");
}

#[tokio::test]
async fn pkce_unsupported_ignores_the_challenge_and_optional_checks_it() {
    let unsupported =
        MockProvider::start(MockProviderConfig { pkce: MockPkce::Unsupported, ..auto("alice") }).await.unwrap();
    let c = code(&unsupported).await;
    let (status, body) =
        token(&unsupported, &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let optional = MockProvider::start(MockProviderConfig { pkce: MockPkce::Optional, ..auto("alice") }).await.unwrap();
    let resp = authorize(&optional, &[]).await;
    let c = query_of(&location(&resp))["code"].clone();
    let (status, body) =
        token(&optional, &[("grant_type", "authorization_code"), ("code", &c), ("redirect_uri", REDIRECT)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = exchange(&optional, &code(&optional).await, &URL_SAFE_NO_PAD.encode([1u8; 32])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn consent_page_allow_deny_and_bad_login() {
    let mock = MockProvider::start(MockProviderConfig::default()).await.unwrap();
    let resp = authorize(
        &mock,
        &[("code_challenge", CHALLENGE), ("code_challenge_method", "S256"), ("state", "\"><script>x</script>")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    for (h, v) in [("referrer-policy", "no-referrer"), ("x-frame-options", "DENY"), ("cache-control", "no-store")] {
        assert_eq!(resp.headers()[h], v);
    }
    let page = resp.text().await.unwrap();
    assert!(page.contains("Demo provider — authorize access"));
    assert!(page.contains("mock-client") && page.contains("read") && page.contains("write"));
    assert!(page.contains("value=\"demo-user\""));
    assert!(page.contains("action=\"authorize\""));
    assert!(!page.contains("<script>"), "the state is escaped");

    let base = vec![
        ("response_type", "code"),
        ("client_id", "mock-client"),
        ("redirect_uri", REDIRECT),
        ("scope", "read write"),
        ("state", "st-2"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let post = |extra: &[(&'static str, &'static str)]| {
        let mut form = base.clone();
        form.extend_from_slice(extra);
        http().post(mock.url("authorize")).form(&form).send()
    };
    let resp = post(&[("decision", "deny"), ("login", "bob")]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["error_description"], "The user denied access");
    assert_eq!(q["state"], "st-2");

    let resp = post(&[("decision", "allow"), ("login", "bad name!")]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("1 to 64"));

    let resp = post(&[("decision", "allow"), ("login", "bob.smith")]).await.unwrap();
    assert_eq!(resp.status(), StatusCode::FOUND);
    let q = query_of(&location(&resp));
    assert_eq!(q["state"], "st-2");
    let (status, tokens) = exchange(&mock, &q["code"], VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(userinfo(&mock, "userinfo", s(&tokens["access_token"])).await.1["preferred_username"], "bob.smith");

    let resp = http().get(mock.url("")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let index = resp.text().await.unwrap();
    assert!(index.contains("Demo provider") && !index.contains("mock-secret"));
}

fn github(config: MockProviderConfig) -> MockProviderConfig {
    MockProviderConfig { flavor: MockFlavor::GitHub, pkce: MockPkce::Optional, ..config }
}

#[tokio::test]
async fn github_flavor_errors_scopes_user_and_revocation() {
    let mock = MockProvider::start(github(auto("octocat"))).await.unwrap();
    let resp = authorize(&mock, &[("scope", "repo read:user")]).await;
    let c = query_of(&location(&resp))["code"].clone();
    // Without Accept: application/json GitHub answers form-encoded.
    let resp = http()
        .post(mock.url("token"))
        .form(&[
            ("client_id", "mock-client"),
            ("client_secret", "mock-secret"),
            ("code", &c),
            ("redirect_uri", REDIRECT),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("application/x-www-form-urlencoded"));
    let form: HashMap<String, String> =
        url::form_urlencoded::parse(&resp.bytes().await.unwrap()).into_owned().collect();
    assert_eq!(form["scope"], "repo,read:user");
    assert_eq!(form["token_type"], "bearer");
    assert!(form["access_token"].starts_with("gho_") && form["refresh_token"].starts_with("ghr_"), "{form:?}");
    let access = form["access_token"].clone();

    // Errors are HTTP 200.
    let (status, body) = exchange(&mock, "not-a-code", VERIFIER).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["error"], "bad_verification_code");
    assert_eq!(body["error_description"], "The code passed is incorrect or expired.");
    assert!(body["error_uri"].is_string());
    let (status, body) = refresh(&mock, "ghr_nope").await;
    assert_eq!((status, s(&body["error"])), (StatusCode::OK, "bad_refresh_token"));
    assert_eq!(body["error_description"], "The refresh token passed is incorrect or expired.");
    assert_eq!(mock.invalid_grant_count(), 2);
    let resp = http()
        .post(mock.url("token"))
        .header("Accept", "application/json")
        .basic_auth("mock-client", Some("wrong"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", &form["refresh_token"])])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "incorrect_client_credentials");

    // /user: integer id, requires a User-Agent.
    let (status, me) = userinfo(&mock, "user", &access).await;
    assert_eq!(status, StatusCode::OK);
    assert!(me["id"].is_u64(), "{me}");
    assert_eq!(me["login"], "octocat");
    assert!(me["name"].is_null());
    let resp = http().get(mock.url("user")).bearer_auth(&access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let (status, body) = userinfo(&mock, "user", "gho_nope").await;
    assert_eq!((status, s(&body["message"])), (StatusCode::UNAUTHORIZED, "Bad credentials"));

    // DELETE /applications/{client_id}/token.
    let delete = |user: &str, pass: &str| {
        http()
            .delete(mock.url("applications/mock-client/token"))
            .basic_auth(user, Some(pass))
            .json(&serde_json::json!({ "access_token": access }))
            .send()
    };
    assert_eq!(delete("mock-client", "wrong").await.unwrap().status(), StatusCode::NOT_FOUND);
    assert!(mock.is_access_token_valid(&access));
    assert_eq!(delete("mock-client", "mock-secret").await.unwrap().status(), StatusCode::NO_CONTENT);
    assert!(!mock.is_access_token_valid(&access));
    assert_eq!(mock.revoked_tokens(), vec![access.clone()]);
    assert_eq!(userinfo(&mock, "user", &access).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn github_grant_revocation_kills_the_refresh_token_too() {
    let mock = MockProvider::start(github(auto("octocat"))).await.unwrap();
    let (_, tokens) = exchange(&mock, &code(&mock).await, VERIFIER).await;
    let resp = http()
        .delete(mock.url("applications/mock-client/grant"))
        .basic_auth("mock-client", Some("mock-secret"))
        .json(&serde_json::json!({ "access_token": tokens["access_token"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(refresh(&mock, s(&tokens["refresh_token"])).await.1["error"], "bad_refresh_token");
}

#[actix_web::test]
async fn mounts_under_a_scope() {
    use actix_web::{App, test, web};
    let mock = MockProvider::new(auto("alice"));
    let app = test::init_service(App::new().service(web::scope("/demo").configure(|c| mock.configure(c)))).await;
    for path in ["/demo", "/demo/"] {
        let resp = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let uri = format!(
        "/demo/authorize?response_type=code&client_id=mock-client&redirect_uri={}&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let resp = test::call_service(&app, test::TestRequest::get().uri(&uri).to_request()).await;
    assert_eq!(resp.status().as_u16(), 302);
    let loc = resp.headers().get("location").unwrap().to_str().unwrap().to_owned();
    let code = query_of(&loc)["code"].clone();
    let req = test::TestRequest::post()
        .uri("/demo/token")
        .insert_header(("Authorization", format!("Basic {}", STANDARD.encode("mock-client:mock-secret"))))
        .set_form([
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .to_request();
    let body: Value = test::call_and_read_body_json(&app, req).await;
    assert!(s(&body["access_token"]).starts_with("mat_"), "{body}");
    assert_eq!(mock.code_exchanges(), 1);
}

#[actix_web::test]
async fn starts_inside_an_actix_runtime_and_stops_on_drop() {
    let mock = MockProvider::start(auto("alice")).await.unwrap();
    let url = mock.url("/");
    assert_eq!(http().get(&url).send().await.unwrap().status(), StatusCode::OK);
    drop(mock);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(http().get(&url).send().await.is_err(), "stopped");
}

#[test]
fn config_debug_hides_the_secret() {
    let text = format!("{:?}", MockProviderConfig { client_secret: "hunter2".into(), ..Default::default() });
    assert!(!text.contains("hunter2") && text.contains("mock-client"), "{text}");
}
