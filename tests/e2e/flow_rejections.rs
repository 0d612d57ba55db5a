//! Every way a connect flow can go wrong shows a clear page and stores nothing.

use tether_e2e::{Harness, HarnessOptions, e2e_test, location};
use tether_testkit::MockFailure;

async fn page(h: &Harness, client: &reqwest::Client, url: &str) -> (u16, String) {
    let resp = client.get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(ct.starts_with("text/html"), "browser routes answer pages, got {ct}");
    let _ = h;
    (status, resp.text().await.unwrap())
}

e2e_test!(user_denies_access, |db| {
    let options = HarnessOptions {
        mock: tether_testkit::MockProviderConfig { auto_approve: None, ..Default::default() },
        ..Default::default()
    };
    let h = Harness::start(&db, options).await;
    let connect = h.connect_url("user-1", None).await;
    let resp = h.browser.get(&connect).send().await.unwrap();
    let authorize = url::Url::parse(&location(&resp)).unwrap();
    // The consent page posts back the original parameters with the user's decision.
    let mut form: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    form.push(("decision".into(), "deny".into()));
    form.push(("login".into(), "alice".into()));
    let resp = h.browser.post(h.mock.url("authorize")).form(&form).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let callback = location(&resp);
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 400);
    assert!(body.contains("access_denied"), "{body}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});

e2e_test!(missing_forged_replayed_and_foreign_states_are_refused, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let (status, body) = page(&h, &h.browser, &h.url("/callback/mock?code=abc")).await;
    assert_eq!(status, 400);
    assert!(body.contains("state_missing"), "{body}");
    let (status, body) = page(&h, &h.browser, &h.url("/callback/mock?code=abc&state=forged")).await;
    assert_eq!(status, 400);
    assert!(body.contains("state_unknown"), "{body}");

    // Another browser (no binding cookie) cannot complete someone else's flow.
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    let stranger = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let (status, body) = page(&h, &stranger, &callback).await;
    assert_eq!(status, 400);
    assert!(body.contains("state_foreign_browser"), "{body}");
    assert_eq!(h.connection_count().await, 0);

    // A completed callback cannot be replayed.
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    let (status, _) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 200);
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 400);
    assert!(body.contains("state_replayed"), "{body}");
    assert_eq!(h.connection_count().await, 1);
    assert_eq!(h.mock.code_exchanges(), 1, "a replayed code never reaches the provider");
    h.stop().await;
});

e2e_test!(connect_links_are_single_use_and_expire, |db| {
    let options =
        HarnessOptions { extra_config: "connect_link_ttl_secs = 1\nflow_ttl_secs = 1".into(), ..Default::default() };
    let h = Harness::start(&db, options).await;
    let connect = h.connect_url("user-1", None).await;
    let resp = h.browser.get(&connect).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let (status, body) = page(&h, &h.browser, &connect).await;
    assert_eq!(status, 400);
    assert!(body.contains("connect_link_used"), "{body}");

    let unused = h.connect_url("user-1", None).await;
    let started = h.connect_url("user-1", None).await;
    let callback = h.authorize(&started).await;
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let (status, body) = page(&h, &h.browser, &unused).await;
    assert_eq!(status, 400);
    assert!(body.contains("connect_link_expired"), "{body}");
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 400);
    assert!(body.contains("state_expired"), "{body}");
    let (status, body) = page(&h, &h.browser, &h.url("/connect/not-a-real-link")).await;
    assert_eq!(status, 400);
    assert!(body.contains("connect_link_invalid"), "{body}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});

e2e_test!(failed_code_exchange_stores_nothing, |db| {
    let h = Harness::start(&db, HarnessOptions::default()).await;
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    h.mock.set_token_failure(Some(MockFailure::InvalidGrant));
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 502);
    assert!(body.contains("provider_invalid_grant") || body.contains("provider_error"), "{body}");
    h.mock.set_token_failure(Some(MockFailure::Status(500)));
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});

e2e_test!(wrong_client_secret_is_reported_not_stored, |db| {
    let options = HarnessOptions { server_client_secret: Some("not-the-secret".into()), ..Default::default() };
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 502);
    assert!(body.contains("invalid_client"), "{body}");
    assert!(!body.contains("not-the-secret"), "secrets never appear in pages");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});

e2e_test!(provider_requiring_pkce_refuses_a_flow_without_it, |db| {
    let options = HarnessOptions { provider_config: "pkce = false".into(), ..Default::default() };
    let h = Harness::start(&db, options).await;
    let callback = h.authorize(&h.connect_url("user-1", None).await).await;
    assert!(callback.contains("error=invalid_request"), "{callback}");
    let (status, body) = page(&h, &h.browser, &callback).await;
    assert_eq!(status, 400);
    assert!(body.contains("invalid_request"), "{body}");
    assert_eq!(h.connection_count().await, 0);
    h.stop().await;
});
