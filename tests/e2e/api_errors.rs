//! Bad API input gets a JSON error with a stable code and the right status.

use reqwest::Method;
use serde_json::json;
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test};

e2e_test!(api_errors_are_json_with_stable_codes, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;

    let resp = h.api.get(h.url("/v1/connections")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    let resp = h.api.get(h.url("/v1/connections")).bearer_auth("wrong-key").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let resp = h
        .api
        .post(h.url("/v1/connect-sessions"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");

    let cases = [
        (json!({"owner": "u", "provider": "nope"}), "unknown_provider"),
        (json!({"owner": "u", "provider": "github"}), "provider_not_configured"),
        (json!({"owner": "", "provider": "mock"}), "invalid_request"),
        (json!({"owner": "u", "provider": "mock", "return_to": "javascript:alert(1)"}), "invalid_request"),
        (json!({"owner": "u", "provider": "mock", "scopes": ["a b"]}), "invalid_request"),
        (json!({"owner": "u", "provider": "mock", "extra": 1}), "invalid_request"),
    ];
    for (body, code) in cases {
        let (status, resp) = h.api_call(Method::POST, "/v1/connect-sessions", Some(body.clone())).await;
        assert_eq!(status, 400, "{body} -> {resp}");
        assert_eq!(resp["error"]["code"], code, "{body} -> {resp}");
    }

    let (status, resp) = h.api_call(Method::GET, "/v1/connections/not-a-uuid/token", None).await;
    assert_eq!(status, 404);
    assert_eq!(resp["error"]["code"], "not_found");
    let missing = "0190c6a4-0000-7000-8000-000000000000";
    let (status, resp) = h.api_call(Method::GET, &format!("/v1/connections/{missing}"), None).await;
    assert_eq!(status, 404, "{resp}");
    let (status, resp) = h.api_call(Method::GET, "/v1/connections?status=bogus", None).await;
    assert_eq!(status, 400);
    assert_eq!(resp["error"]["code"], "invalid_request");
    let (status, resp) = h.api_call(Method::GET, "/v1/nothing-here", None).await;
    assert_eq!(status, 404);
    assert_eq!(resp["error"]["code"], "not_found");

    let (status, resp) = h.api_call(Method::GET, "/v1/providers", None).await;
    assert_eq!(status, 200);
    let providers = resp["providers"].as_array().unwrap();
    let mock = providers.iter().find(|p| p["id"] == "mock").unwrap();
    assert_eq!(mock["configured"], true);
    assert_eq!(mock["redirect_uri"], h.url("/callback/mock"));
    assert!(providers.iter().any(|p| p["id"] == "github" && p["configured"] == false));
    h.stop().await;
});
