//! The two GitLab self-managed configurations of docs/providers/generic.md, as written there,
//! through the real server against a GitLab-shaped loopback server: `/oauth/*` endpoints,
//! client credentials in the body, 2-hour access tokens, rotating refresh tokens, the account
//! from `/oauth/userinfo` (`sub` a numeric string, `nickname`) or from `/api/v4/user` (`id` an
//! integer, `username`), and `/oauth/revoke`.

use reqwest::Method;
use tether_e2e::{Harness, HarnessOptions, e2e_test};

use crate::self_hosted_mock::{GITLAB_USER_ID, LOGIN, SelfHostedMock, Shape, connect, documented_config};

/// Runs the documented configuration whose block contains `marker`: flow, account, token, two
/// refreshes with rotation, revocation.
async fn documented_configuration_works(db: &str, marker: &str, scope: &str) {
    let gitlab = SelfHostedMock::start(Shape::GitLab).await;
    let extra_config = documented_config(marker, "https://gitlab.example.com", &gitlab);
    let h = Harness::start(db, HarnessOptions { extra_config, ..HarnessOptions::default() }).await;

    let connection = connect(&h, "gitlab", "team-1").await;
    // Either way the account id is the user's number.
    assert_eq!(connection["account"]["id"], GITLAB_USER_ID.to_string(), "{connection}");
    assert_eq!(connection["account"]["name"], LOGIN);
    let id = connection["id"].as_str().unwrap().to_owned();
    let authorize = &gitlab.authorize_requests()[0];
    assert_eq!(authorize["scope"], scope);
    assert_eq!(authorize["code_challenge_method"], "S256");

    let (status, token) = h.api_call(Method::GET, &format!("/v1/connections/{id}/token"), None).await;
    assert_eq!(status, 200, "{token}");
    let mut access = token["access_token"].as_str().unwrap().to_owned();
    assert!(gitlab.is_access_token_valid(&access));
    assert_eq!(gitlab.refreshes(), 0, "2-hour tokens are fresh");

    // GitLab rotates refresh tokens: the second refresh works only with the first one's new token.
    for n in 1..=2 {
        let path = format!("/v1/connections/{id}/token?force_refresh=true");
        let (status, token) = h.api_call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "refresh {n}: {token}");
        let renewed = token["access_token"].as_str().unwrap().to_owned();
        assert_ne!(renewed, access);
        access = renewed;
        assert_eq!(gitlab.refreshes(), n);
    }
    assert_eq!(gitlab.rejected_refreshes(), 0);
    assert_eq!(gitlab.token_client_auth(), ["post"; 3], "client credentials in the body");

    let (status, body) = h.api_call(Method::DELETE, &format!("/v1/connections/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["revoked"], true, "{body}");
    let revocations = gitlab.revocations();
    assert_eq!(revocations.len(), 1);
    assert!(revocations[0].contains_key("client_secret"), "revocation authenticates the client");
    assert_eq!(gitlab.live_grants(), 0);
    assert!(!gitlab.is_access_token_valid(&access), "the access token dies with its refresh token");
    h.stop().await;
    gitlab.stop().await;
}

e2e_test!(gitlab_openid_configuration_connects_refreshes_with_rotation_and_revokes, |db| {
    documented_configuration_works(&db, "tests/e2e/generic_gitlab.rs, openid", "openid read_user api").await;
});

e2e_test!(gitlab_rest_configuration_connects_refreshes_with_rotation_and_revokes, |db| {
    documented_configuration_works(&db, "tests/e2e/generic_gitlab.rs, REST", "read_user api").await;
});
