//! Reddit: OAuth 2.0 for a "web app" (confidential client), acting as the user through
//! `https://oauth.reddit.com`.
//!
//! Everything is the core default driven by [`SPEC`]; the quirks it encodes:
//! - HTTP Basic client authentication is mandatory (credentials in the body are refused);
//! - `duration=permanent` on the authorization request, without which Reddit issues no refresh
//!   token (a `temporary` grant dies with its access token);
//! - no PKCE;
//! - authorization-code errors come back with HTTP 200 (`{"error":"invalid_grant"}`): the core
//!   HTTP adapter turns them into errors;
//! - the account is `GET https://oauth.reddit.com/api/v1/me`: `id` (base36; the fullname is
//!   `t2_{id}`) and `name`;
//! - Reddit requires a `User-Agent` on every request and throttles generic ones: the core
//!   client sends `tether/<version>` on every call;
//! - revocation is RFC 7009 at `/api/v1/revoke_token` with Basic credentials (revoking the
//!   refresh token ends the grant).
//!
//! Setup: see docs/providers/reddit.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::{ClientAuth, PkceMode, Provider, ProviderSpec};

/// Reddit's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.reddit.com/api/v1/authorize",
    token_url: "https://www.reddit.com/api/v1/access_token",
    userinfo_url: Some("https://oauth.reddit.com/api/v1/me"),
    revoke_url: Some("https://www.reddit.com/api/v1/revoke_token"),
    api_base_url: Some("https://oauth.reddit.com/"),
    default_scopes: &["identity", "read", "submit"],
    scope_separator: " ",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Basic,
    extra_authorize_params: &[("duration", "permanent")],
    account_id_field: "id",
    account_name_field: "name",
    ..ProviderSpec::oauth2("reddit", "Reddit")
};

/// The Reddit provider (all behaviour is the core default driven by [`SPEC`]).
#[derive(Debug, Default)]
pub struct RedditProvider;

impl Provider for RedditProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

tether_core::register_provider!(RedditProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::{
        AuthorizationRequest, ProviderConfig, ProviderContext, ProviderId, ProviderSettings, SecretString, Url,
    };

    #[test]
    fn authorization_asks_for_a_permanent_grant_without_pkce() {
        let config = ProviderConfig {
            client_id: Some("p-jcoLKBynTLew".into()),
            client_secret: Some(SecretString::from("gko_LXELoV07ZBNUXrvWZfzE3aI".to_owned())),
            ..ProviderConfig::default()
        };
        let public = Url::parse("https://tether.example.com").unwrap();
        let settings = ProviderSettings::resolve("reddit", &SPEC, &config, &public).unwrap();
        let (id, http) = (ProviderId::parse("reddit").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/reddit").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let scopes: Vec<String> = settings.scopes.clone();
        let verifier = SecretString::from("v".repeat(43));
        let url = RedditProvider
            .authorization_url(
                &ctx,
                &AuthorizationRequest {
                    state: "st",
                    scopes: &scopes,
                    pkce_verifier: Some(&verifier),
                    login_hint: None,
                },
            )
            .unwrap();
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["duration"], "permanent");
        assert_eq!(q["scope"], "identity read submit");
        assert_eq!(q["response_type"], "code");
        assert!(!q.contains_key("code_challenge"));
        assert_eq!(settings.client_auth, ClientAuth::Basic);
    }

    #[test]
    fn me_gives_the_base36_id_and_the_username() {
        let doc = tether_core::serde_json::json!({
            "id": "1w72", "name": "spez", "is_employee": true, "created_utc": 1118030400.0, "link_karma": 1
        });
        let account =
            tether_core::parse_account("reddit", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!(account.id, "1w72");
        assert_eq!(account.name.as_deref(), Some("spez"));
    }
}
