//! Mastodon on any instance, through the real server against loopback Mastodon instances
//! (`tether_testkit::mastodon::MastodonMock`): the instance is part of the connection, the app
//! is registered once per instance (also under concurrent first connects), tokens, the proxy
//! and revocation go to the connection's own instance, a revoked token becomes
//! `reauth_required` (noticed by the verify call or the proxy), the connect page asks for the server when the session names none, bad
//! instances are refused, and registration secrets are sealed at rest.

use reqwest::Method;
use serde_json::{Value, json};
use tether_e2e::tether_testkit::mastodon::MastodonMock;
use tether_e2e::{API_KEY, Harness, HarnessOptions, e2e_test, location};
use tether_store::sea_orm::{ConnectionTrait, Statement};

/// Both instances have a user `alice` with the same instance-local id.
const ACCOUNT_ID: &str = "109364312345678901";

async fn start(db: &str, extra: &str) -> Harness {
    let options = HarnessOptions {
        extra_config: format!(
            "[providers.mastodon]\nallow_insecure_instances = true\nclient_name = \"Tether e2e\"\n\
             website = \"https://app.example\"\n{extra}\n"
        ),
        ..HarnessOptions::default()
    };
    Harness::start(db, options).await
}

async fn session(h: &Harness, owner: &str, instance: Option<&str>) -> (u16, Value) {
    let mut body = json!({ "owner": owner, "provider": "mastodon" });
    if let Some(i) = instance {
        body["instance"] = json!(i);
    }
    h.api_call(Method::POST, "/v1/connect-sessions", Some(body)).await
}

/// Follows the browser from the provider's authorization URL to our callback and back.
async fn finish_at_provider(h: &Harness, provider_url: &str) -> Value {
    let resp = h.browser.get(provider_url).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302, "the instance approves: {provider_url}");
    let callback = location(&resp);
    let resp = h.browser.get(&callback).send().await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    assert_eq!(status, 200, "callback: {body}");
    json!({ "callback": callback })
}

/// A whole flow for `owner` on `instance`; returns the new connection.
async fn connect(h: &Harness, owner: &str, instance: &MastodonMock) -> Value {
    let (status, created) = session(h, owner, Some(&instance.origin)).await;
    assert_eq!(status, 201, "{created}");
    let resp = h.browser.get(created["connect_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let provider_url = location(&resp);
    assert!(provider_url.starts_with(&format!("{}/oauth/authorize?", instance.origin)), "{provider_url}");
    finish_at_provider(h, &provider_url).await;
    newest_connection(h, owner).await
}

async fn newest_connection(h: &Harness, owner: &str) -> Value {
    let (_, list) = h.api_call(Method::GET, &format!("/v1/connections?owner={owner}&provider=mastodon"), None).await;
    list["connections"][0].clone()
}

async fn token(h: &Harness, id: &str) -> (u16, Value) {
    h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await
}

async fn registrations(db: &str) -> Vec<(String, String, Option<String>)> {
    let store = tether_store::SeaStore::connect(db, tether_store::testing::test_key_ring().unwrap()).await.unwrap();
    let conn = store.connection();
    let sql = "SELECT instance, client_id, client_secret FROM client_registrations ORDER BY instance";
    let rows = conn.query_all_raw(Statement::from_string(conn.get_database_backend(), sql)).await.unwrap();
    rows.iter()
        .map(|r| {
            (
                r.try_get_by_index::<String>(0).unwrap(),
                r.try_get_by_index::<String>(1).unwrap(),
                r.try_get_by_index::<Option<String>>(2).unwrap(),
            )
        })
        .collect()
}

e2e_test!(mastodon_connects_on_any_instance_with_one_registration_per_instance, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let b = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let h = start(&db, "").await;

    let on_a = connect(&h, "user-1", &a).await;
    assert_eq!(on_a["provider"], "mastodon");
    assert_eq!(on_a["account"]["id"], format!("{ACCOUNT_ID}@{}", a.host()), "{on_a}");
    assert_eq!(on_a["account"]["name"], format!("@alice@{}", a.host()));
    assert_eq!(on_a["instance"], a.origin);
    assert_eq!(on_a["scopes"], json!(["read", "write:statuses", "profile"]));
    assert_eq!(on_a["expires_at"], Value::Null, "Mastodon tokens do not expire");
    assert_eq!(on_a["has_refresh_token"], false);
    assert_eq!((a.registration_count(), a.pkce_count()), (1, 1));

    // A second user on the same instance reuses the registration.
    connect(&h, "user-2", &a).await;
    assert_eq!(a.registration_count(), 1, "one app per instance");
    assert_eq!(a.pkce_count(), 2);

    // The same numeric account on another instance is another account, with its own app.
    let on_b = connect(&h, "user-1", &b).await;
    assert_ne!(on_b["id"], on_a["id"]);
    assert_eq!(on_b["account"]["id"], format!("{ACCOUNT_ID}@{}", b.host()));
    assert_eq!(on_b["instance"], b.origin);
    assert_eq!((a.registration_count(), b.registration_count()), (1, 1));
    let (_, mine) = h.api_call(Method::GET, "/v1/connections?owner=user-1", None).await;
    assert_eq!(mine["connections"].as_array().unwrap().len(), 2);
    let stored = registrations(&db).await;
    assert_eq!(stored.len(), 2, "{stored:?}");

    // Tokens are the instances' own.
    let (id_a, id_b) = (on_a["id"].as_str().unwrap(), on_b["id"].as_str().unwrap());
    let (status, t_a) = token(&h, id_a).await;
    assert_eq!(status, 200, "{t_a}");
    let t_a = t_a["access_token"].as_str().unwrap().to_owned();
    let (_, t_b) = token(&h, id_b).await;
    let t_b = t_b["access_token"].as_str().unwrap().to_owned();
    assert!(a.token_is_active(&t_a) && !b.token_is_active(&t_a));
    assert!(b.token_is_active(&t_b) && !a.token_is_active(&t_b));

    // The proxy reaches the connection's instance, and only it.
    let (calls_a, calls_b) = (a.api_call_count(), b.api_call_count());
    let resp =
        h.api.get(h.url(&format!("/v1/proxy/{id_b}/api/v1/timelines/home"))).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.text().await.unwrap();
    assert!(body.contains(&format!("hello from {}", b.host())), "{body}");
    assert_eq!((a.api_call_count(), b.api_call_count()), (calls_a, calls_b + 1));
    for escape in ["%2F%2Fevil.example/x", "http:%2F%2Fevil.example/x", "..%2F..%2Fetc"] {
        let resp = h.api.get(h.url(&format!("/v1/proxy/{id_b}/{escape}"))).bearer_auth(API_KEY).send().await.unwrap();
        assert!(matches!(resp.status().as_u16(), 400 | 404), "{escape}: {}", resp.status());
    }

    // Disconnect revokes at the connection's instance with that instance's app.
    let (status, out) = h.api_call(Method::DELETE, &format!("/v1/connections/{id_a}"), None).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["revoked"], true, "{out}");
    assert_eq!((a.revocation_count(), b.revocation_count()), (1, 0));
    assert!(!a.token_is_active(&t_a));
    assert!(b.token_is_active(&t_b), "the other instance's connection is untouched");
    assert_eq!(token(&h, id_a).await.0, 410);
    assert_eq!(token(&h, id_b).await.0, 200);

    h.stop().await;
    a.stop().await;
    b.stop().await;
});

e2e_test!(mastodon_concurrent_first_connects_to_a_new_instance_register_once, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let h = start(&db, "").await;
    let mut links = Vec::new();
    for i in 0..4 {
        let (status, created) = session(&h, &format!("owner-{i}"), Some(&a.origin)).await;
        assert_eq!(status, 201, "{created}");
        links.push(created["connect_url"].as_str().unwrap().to_owned());
    }
    let open = |url: String| {
        let browser = h.browser.clone();
        async move {
            let resp = browser.get(&url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 302);
            location(&resp)
        }
    };
    let (p0, p1, p2, p3) =
        tokio::join!(open(links[0].clone()), open(links[1].clone()), open(links[2].clone()), open(links[3].clone()));
    assert_eq!(a.registration_count(), 1, "concurrent first connects register once");
    for provider_url in [p0, p1, p2, p3] {
        finish_at_provider(&h, &provider_url).await;
    }
    for i in 0..4 {
        assert_eq!(newest_connection(&h, &format!("owner-{i}")).await["status"], "active");
    }
    assert_eq!(registrations(&db).await.len(), 1);
    h.stop().await;
    a.stop().await;
});

e2e_test!(mastodon_replicas_registering_on_a_new_instance_at_once_keep_one_registration, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    // Two replicas: one database, one key ring, one public URL (so one redirect URI).
    let keys = vec![tether_core::EncryptionKey::generate().unwrap()];
    let config = "[providers.mastodon]\nallow_insecure_instances = true\n";
    let h = Harness::start(
        &db,
        HarnessOptions {
            extra_config: config.into(),
            encryption_keys: Some(keys.clone()),
            ..HarnessOptions::default()
        },
    )
    .await;
    let public = h.server.public_url.as_str().trim_end_matches('/').to_owned();
    let h2 = Harness::start(
        &db,
        HarnessOptions {
            extra_config: format!("public_url = \"{public}\"\n{config}"),
            encryption_keys: Some(keys),
            ..HarnessOptions::default()
        },
    )
    .await;
    let (_, s1) = session(&h, "owner-1", Some(&a.origin)).await;
    let (_, s2) = session(&h2, "owner-2", Some(&a.origin)).await;
    let link1 = s1["connect_url"].as_str().unwrap().to_owned();
    // Opened at the second replica's own address.
    let link2 = s2["connect_url"].as_str().unwrap().replace(&public, &format!("http://{}", h2.server.local_addr));
    let open = |url: String| {
        let browser = h.browser.clone();
        async move {
            let resp = browser.get(&url).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 302, "{url}");
            location(&resp)
        }
    };
    let (p1, p2) = tokio::join!(open(link1), open(link2));
    let client_of = |u: &str| {
        let url = reqwest::Url::parse(u).unwrap();
        url.query_pairs().find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned()).unwrap()
    };
    assert_eq!(client_of(&p1), client_of(&p2), "both replicas use the registration stored first");
    let stored = registrations(&db).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].1, client_of(&p1));
    assert!((1..=2).contains(&a.registration_count()), "each replica registers at most once");
    // Both flows finish (callbacks at the shared public URL).
    finish_at_provider(&h, &p1).await;
    finish_at_provider(&h, &p2).await;
    for owner in ["owner-1", "owner-2"] {
        let conn = newest_connection(&h, owner).await;
        assert_eq!(conn["status"], "active", "{conn}");
        let (status, t) = token(&h2, conn["id"].as_str().unwrap()).await;
        assert_eq!(status, 200, "{t}");
        assert!(a.token_is_active(t["access_token"].as_str().unwrap()));
    }
    h2.stop().await;
    h.stop().await;
    a.stop().await;
});

e2e_test!(mastodon_revoked_token_makes_the_connection_reauth_required, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let h = start(&db, "").await;
    let conn = connect(&h, "user-1", &a).await;
    let id = conn["id"].as_str().unwrap();
    let other = connect(&h, "user-2", &a).await;
    let other_id = other["id"].as_str().unwrap();
    // A live token passes the check at the instance.
    let calls = a.api_call_count();
    let (status, checked) = h.api_call(Method::POST, &format!("/v1/connections/{other_id}/verify"), None).await;
    assert_eq!((status, checked["status"].as_str()), (200, Some("active")), "{checked}");
    assert_eq!(a.api_call_count(), calls + 1);
    // The user revokes the app in their Mastodon settings.
    a.revoke_all();

    // The verify call notices it at once.
    let (status, body) = h.api_call(Method::POST, &format!("/v1/connections/{other_id}/verify"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("reauth_required")), "{body}");
    let (_, other) = h.api_call(Method::GET, &format!("/v1/connections/{other_id}"), None).await;
    assert_eq!(other["status"], "reauth_required");
    // Nothing expires, so a token read cannot know; the next call to the instance does.
    assert_eq!(token(&h, id).await.0, 200);
    let resp = h
        .api
        .get(h.url(&format!("/v1/proxy/{id}/api/v1/accounts/verify_credentials")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 409);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "reauth_required", "{body}");
    let (status, body) = token(&h, id).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("reauth_required")), "{body}");
    let (_, events) = h.api_call(Method::GET, &format!("/v1/connections/{id}/events"), None).await;
    assert_eq!(events["events"][0]["kind"], "reauth_required", "{events}");
    assert!(events["events"][0]["message"].as_str().unwrap().contains("401"), "{events}");

    // Connecting again repairs it: same connection, new token, same registration.
    let again = connect(&h, "user-1", &a).await;
    assert_eq!(again["id"], conn["id"]);
    assert_eq!(again["status"], "active");
    assert_eq!(token(&h, id).await.0, 200);
    assert_eq!(a.registration_count(), 1);
    assert_eq!(h.api_call(Method::POST, &format!("/v1/connections/{id}/verify"), None).await.0, 200);
    h.stop().await;
    a.stop().await;
});

e2e_test!(mastodon_connect_page_asks_for_the_server_when_the_session_names_none, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let h = start(&db, "").await;
    let (status, created) = session(&h, "user-1", None).await;
    assert_eq!(status, 201, "{created}");
    let link = created["connect_url"].as_str().unwrap().to_owned();

    let resp = h.browser.get(&link).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let page = resp.text().await.unwrap();
    assert!(page.contains("Which server is your Mastodon account on?"), "{page}");
    assert!(page.contains(r#"name="instance""#) && page.contains(r#"method="post""#), "{page}");

    // A refused value shows the form again with the reason (escaped), and the link stays usable.
    for (bad, reason) in [
        ("https://mastodon.social/@alice", "without a path"),
        ("<script>x</script>", "not a valid server address"),
        (h.mock.base_url.as_str().trim_end_matches('/'), "does not look like a Mastodon server"),
    ] {
        let resp = h.browser.post(&link).form(&[("instance", bad)]).send().await.unwrap();
        let status = resp.status().as_u16();
        let page = resp.text().await.unwrap();
        assert_eq!(status, 400, "{bad}: {page}");
        assert!(page.contains(reason), "{bad}: {page}");
        assert!(page.contains(r#"name="instance""#), "the form again: {page}");
        assert!(!page.contains("<script>x"), "escaped: {page}");
    }

    let resp = h.browser.post(&link).form(&[("instance", a.origin.as_str())]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 303);
    let provider_url = location(&resp);
    assert!(provider_url.starts_with(&format!("{}/oauth/authorize?", a.origin)), "{provider_url}");
    finish_at_provider(&h, &provider_url).await;
    let conn = newest_connection(&h, "user-1").await;
    assert_eq!(conn["instance"], a.origin);
    assert_eq!(conn["account"]["name"], format!("@alice@{}", a.host()));

    // Single use, whichever way it was used.
    let resp = h.browser.get(&link).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    assert!(resp.text().await.unwrap().contains("connect_link_used"));
    let resp = h.browser.post(&link).form(&[("instance", a.origin.as_str())]).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    h.stop().await;
    a.stop().await;
});

e2e_test!(mastodon_bad_instances_are_refused, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let h = start(&db, "blocked_instances = [\"blocked.example\"]").await;
    for bad in [
        "https://mastodon.social/@alice",
        "mastodon.social/path",
        "https://user:pw@mastodon.social",
        "mastodon.social?x=1",
        "ftp://mastodon.social",
        "blocked.example",
        "social.blocked.example",
        "",
    ] {
        let (status, body) = session(&h, "user-1", Some(bad)).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "invalid_instance", "{bad}: {body}");
    }
    // Single-service providers take no instance.
    let (status, body) = h
        .api_call(
            Method::POST,
            "/v1/connect-sessions",
            Some(json!({ "owner": "u", "provider": "mock", "instance": "mastodon.social" })),
        )
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_instance")), "{body}");

    // A server that does not answer like Mastodon: the browser gets a readable page, nothing
    // is registered or used up.
    let not_mastodon = h.mock.base_url.as_str().trim_end_matches('/').to_owned();
    let (status, created) = session(&h, "user-1", Some(&not_mastodon)).await;
    assert_eq!(status, 201, "{created}");
    let resp = h.browser.get(created["connect_url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let page = resp.text().await.unwrap();
    assert!(page.contains("does not look like a Mastodon server") && page.contains("invalid_instance"), "{page}");
    assert!(registrations(&db).await.is_empty());

    // An https-only deployment refuses plain http instances (the tests opt in to them).
    let strict = Harness::start(
        &db.replace("tether.db", "strict.db"),
        HarnessOptions { extra_config: "[providers.mastodon]\n".into(), ..HarnessOptions::default() },
    )
    .await;
    let (status, body) = session(&strict, "user-1", Some(&a.origin)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_instance")), "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("https"), "{body}");
    strict.stop().await;
    h.stop().await;
    a.stop().await;
});

e2e_test!(mastodon_registration_secrets_are_sealed_at_rest, |db| {
    let a = MastodonMock::start("alice", ACCOUNT_ID).await.unwrap();
    let h = start(&db, "").await;
    let conn = connect(&h, "user-1", &a).await;
    let (_, t) = token(&h, conn["id"].as_str().unwrap()).await;
    let access = t["access_token"].as_str().unwrap().to_owned();
    let secrets = a.client_secrets();
    assert_eq!(secrets.len(), 1);
    let stored = registrations(&db).await;
    assert_eq!(stored.len(), 1);
    let (instance, _client_id, sealed) = &stored[0];
    assert_eq!(instance, &a.origin);
    let sealed = sealed.as_deref().expect("a client secret is stored");
    assert!(sealed.starts_with("v1."), "{sealed}");
    assert!(!sealed.contains(&secrets[0]));
    // Nor anywhere else in the database (SQLite: the file itself).
    if let Some(path) = db.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap().to_owned()) {
        h.stop().await;
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
        let haystack = String::from_utf8_lossy(&bytes);
        assert!(!haystack.contains(&secrets[0]), "client secret in plaintext in the SQLite file");
        assert!(!haystack.contains(&access), "access token in plaintext in the SQLite file");
    } else {
        h.stop().await;
    }
    a.stop().await;
});
