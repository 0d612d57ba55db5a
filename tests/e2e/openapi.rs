//! The OpenAPI document matches the server: it is served, it is OpenAPI 3.1, and every
//! documented operation answers with one of its documented statuses.

use reqwest::Method;
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test};

e2e_test!(every_documented_operation_answers_as_documented, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let id = h.connect("user-1").await;
    let doc: serde_json::Value = h.api.get(h.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    let paths = doc["paths"].as_object().unwrap();
    for expected in [
        "/v1/providers",
        "/v1/connect-sessions",
        "/v1/connections",
        "/v1/connections/{id}",
        "/v1/connections/{id}/token",
        "/v1/connections/{id}/refresh",
        "/v1/connections/{id}/events",
        "/v1/proxy/{id}/{path}",
        "/v1/webhooks",
        "/v1/webhooks/deliveries",
        "/v1/webhooks/deliveries/{id}",
        "/v1/webhooks/deliveries/{id}/retry",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    let mut checked = 0;
    // DELETE last: it disconnects the connection the other calls use.
    let mut operations: Vec<(String, String, serde_json::Value)> = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations.push((path.clone(), method.clone(), op.clone()));
        }
    }
    operations.sort_by_key(|(p, m, _)| p == "/v1/connections/{id}" && m == "delete");
    for (path, method, op) in operations {
        let url = h.url(&path.replace("{id}", &id).replace("{path}", "userinfo"));
        let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut req = h.api.request(m.clone(), &url).bearer_auth(API_KEY);
        if path == "/v1/connect-sessions" {
            req = req.json(&serde_json::json!({"owner": "u", "provider": "mock"}));
        }
        let status = req.send().await.unwrap().status().as_u16().to_string();
        let documented = op["responses"].as_object().unwrap();
        assert!(
            documented.contains_key(&status),
            "{method} {path} answered {status}, documented: {:?}",
            documented.keys()
        );
        assert!(op["security"].is_array(), "{method} {path} documents its authentication");
        let unauthenticated = h.api.request(m, &url).send().await.unwrap().status().as_u16();
        assert_eq!(unauthenticated, 401, "{method} {path} requires the API key");
        checked += 1;
    }
    assert!(checked >= 16, "{checked} operations checked");
    h.stop().await;
});
