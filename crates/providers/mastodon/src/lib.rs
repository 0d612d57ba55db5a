//! Mastodon, on any instance: the user names their server, and Tether registers its app there
//! on first use (`POST /api/v1/apps`), stores the registration and reuses it. The operator
//! configures no client id or secret.
//!
//! A per-instance provider ([`InstanceMode::PerInstance`]): every endpoint is relative to the
//! connection's server, and so is the proxy. The quirks encoded here:
//! - dynamic registration with `client_name` (`client_name` setting, default `Tether`),
//!   `redirect_uris` (`{public_url}/callback/mastodon`), `scopes` (the configured ones, space
//!   separated: flows may request these or fewer) and `website` (optional setting); a server
//!   that does not answer like Mastodon is refused as an invalid instance;
//! - PKCE S256 (Mastodon 4.3 and later check it; older servers ignore the parameters, which is
//!   harmless) and `client_secret_post` at the token and revocation endpoints;
//! - tokens do not expire and come without a refresh token: nothing to refresh. A token the
//!   user revoked is noticed when the server answers 401 (identity call, or a proxied call),
//!   and the connection becomes `reauth_required`;
//! - the account is `GET /api/v1/accounts/verify_credentials`: `id` is only unique on its
//!   server, so the engine stores `{id}@{host}`; the display name is the handle
//!   `@{username}@{host}`;
//! - revocation is `POST /oauth/revoke` with `client_id`, `client_secret` and `token` (200 `{}`
//!   also for unknown tokens; 403 `unauthorized_client` for another app's token).
//!
//! Setup: see docs/providers/mastodon.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use async_trait::async_trait;
use tether_core::oauth2_http::{describe_reqwest_error, retry_after};
use tether_core::{
    AccountIdentity, ClientAuth, Error, InstanceMode, InstanceOrigin, PkceMode, Provider, ProviderContext,
    ProviderErrorKind, ProviderSpec, RegisteredClient, Result, SecretString, TokenSet, Url, get_json, parse_account,
    reqwest, serde_json,
};

/// Mastodon's endpoints (relative to each server) and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "{instance}/oauth/authorize",
    token_url: "{instance}/oauth/token",
    userinfo_url: Some("{instance}/api/v1/accounts/verify_credentials"),
    revoke_url: Some("{instance}/oauth/revoke"),
    api_base_url: Some("{instance}/"),
    default_scopes: &["read", "write:statuses", "profile"],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Post,
    account_id_field: "id",
    account_name_field: "username",
    instances: InstanceMode::PerInstance,
    ..ProviderSpec::oauth2("mastodon", "Mastodon")
};

/// The app name shown to users on their server when none is configured.
pub const DEFAULT_CLIENT_NAME: &str = "Tether";

/// The Mastodon provider.
#[derive(Debug, Default)]
pub struct MastodonProvider;

#[async_trait]
impl Provider for MastodonProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    async fn register_client(&self, ctx: &ProviderContext<'_>, instance: &InstanceOrigin) -> Result<RegisteredClient> {
        let id = ctx.id.as_str();
        let url = Url::parse(&format!("{}/api/v1/apps", instance.as_str()))
            .map_err(|e| Error::InvalidInstance(format!("{}: {e}", instance.host())))?;
        let setting = |key: &str| ctx.settings.extra.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
        let scopes = ctx.settings.scopes.join(" ");
        let mut form = vec![
            ("client_name", setting("client_name").unwrap_or(DEFAULT_CLIENT_NAME)),
            ("redirect_uris", ctx.redirect_uri.as_str()),
            ("scopes", scopes.as_str()),
        ];
        if let Some(website) = setting("website") {
            form.push(("website", website));
        }
        let resp =
            ctx.http.post(url).header(reqwest::header::ACCEPT, "application/json").form(&form).send().await.map_err(
                |e| {
                    Error::provider(
                        id,
                        ProviderErrorKind::Temporary { retry_after: None },
                        format!(
                            "{} could not be reached to register the app: {}",
                            instance.host(),
                            describe_reqwest_error(&e)
                        ),
                    )
                },
            )?;
        let status = resp.status();
        if tether_core::is_temporary_status(status) {
            return Err(Error::provider(
                id,
                ProviderErrorKind::Temporary { retry_after: retry_after(resp.headers()) },
                format!("{} answered HTTP {status} when registering the app; try again later", instance.host()),
            ));
        }
        let body: Option<serde_json::Value> = resp.json().await.ok();
        registration_from(id, instance, status.as_u16(), body.as_ref())
    }

    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?;
        let doc = get_json(ctx, url, tokens).await?;
        account_from(ctx.id.as_str(), &doc, ctx.settings.instance.as_ref())
    }
}

/// Reads the answer of `POST /api/v1/apps`.
fn registration_from(
    provider: &str,
    instance: &InstanceOrigin,
    status: u16,
    body: Option<&serde_json::Value>,
) -> Result<RegisteredClient> {
    let text = |key: &str| body.and_then(|b| b.get(key)).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    if (200..300).contains(&status) {
        return match (text("client_id"), text("client_secret")) {
            (Some(client_id), Some(secret)) => Ok(RegisteredClient {
                client_id: client_id.to_owned(),
                client_secret: Some(SecretString::from(secret.to_owned())),
            }),
            _ => Err(Error::InvalidInstance(format!(
                "{} does not look like a Mastodon server: its app registration answered without client credentials",
                instance.host()
            ))),
        };
    }
    if status == 422 {
        // Mastodon's validation message, e.g. "Validation failed: Redirect URI must be an absolute URI."
        let reason: String = text("error").unwrap_or("validation failed").chars().take(200).collect();
        return Err(Error::provider(
            provider,
            ProviderErrorKind::Rejected,
            format!("{} refused the app registration: {reason}", instance.host()),
        ));
    }
    Err(Error::InvalidInstance(format!(
        "{} does not look like a Mastodon server (registering the app answered HTTP {status})",
        instance.host()
    )))
}

/// The account of a `verify_credentials` document: the server-local `id` (the engine
/// qualifies it with the host) and the handle `@username@host` as the name.
fn account_from(provider: &str, doc: &serde_json::Value, instance: Option<&InstanceOrigin>) -> Result<AccountIdentity> {
    let mut account = parse_account(provider, doc, "id", "username")?;
    let username =
        ["username", "acct"].iter().find_map(|k| doc.get(*k).and_then(|v| v.as_str())).filter(|u| !u.is_empty());
    account.name = match (username, instance) {
        (Some(user), Some(instance)) => Some(format!("@{user}@{}", instance.host())),
        (Some(user), None) => Some(format!("@{user}")),
        (None, _) => doc.get("display_name").and_then(|v| v.as_str()).filter(|n| !n.is_empty()).map(str::to_owned),
    };
    Ok(account)
}

tether_core::register_provider!(MastodonProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::{
        AuthorizationRequest, ClientRegistration, ExposeSecret, ProviderConfig, ProviderId, ProviderSettings,
    };

    fn configured(extra: &[(&str, serde_json::Value)]) -> ProviderSettings {
        let mut config = ProviderConfig::default();
        for (k, v) in extra {
            config.extra.insert((*k).to_owned(), v.clone());
        }
        let public = Url::parse("https://tether.example.com").unwrap();
        ProviderSettings::resolve("mastodon", &SPEC, &config, &public).unwrap()
    }

    fn registration(instance: InstanceOrigin) -> ClientRegistration {
        ClientRegistration {
            id: uuid::Uuid::now_v7(),
            provider: ProviderId::parse("mastodon").unwrap(),
            instance,
            redirect_uri: Url::parse("https://tether.example.com/callback/mastodon").unwrap(),
            scopes: SPEC.default_scopes.iter().map(|s| (*s).to_owned()).collect(),
            client: RegisteredClient {
                client_id: "registered-id".into(),
                client_secret: Some(SecretString::from("registered-secret".to_owned())),
            },
            created_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn needs_no_client_credentials_in_configuration() {
        let s = configured(&[]);
        assert!(s.client_id.is_empty() && s.client_secret.is_none());
        assert!(s.instances.is_some());
        assert_eq!(s.scopes, vec!["read", "write:statuses", "profile"]);
        assert_eq!(s.client_auth, ClientAuth::Post);
    }

    #[test]
    fn authorization_goes_to_the_instance_with_the_registered_client_and_pkce() {
        let instance = InstanceOrigin::parse("mastodon.social", false).unwrap();
        let settings = configured(&[]).at_instance(&registration(instance)).unwrap();
        let (id, http) = (ProviderId::parse("mastodon").unwrap(), reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/mastodon").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = MastodonProvider
            .authorization_url(
                &ctx,
                &AuthorizationRequest {
                    state: "st",
                    scopes: &settings.scopes,
                    pkce_verifier: Some(&verifier),
                    login_hint: None,
                },
            )
            .unwrap();
        assert_eq!(url.origin().ascii_serialization(), "https://mastodon.social");
        assert_eq!(url.path(), "/oauth/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "registered-id");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "read write:statuses profile");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/mastodon");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["state"], "st");
        assert_eq!(settings.token_url.as_str(), "https://mastodon.social/oauth/token");
        assert_eq!(settings.revoke_url.as_ref().unwrap().as_str(), "https://mastodon.social/oauth/revoke");
        assert_eq!(settings.api_base_url.as_ref().unwrap().as_str(), "https://mastodon.social/");
    }

    #[test]
    fn registration_answers_are_classified() {
        let i = InstanceOrigin::parse("mastodon.social", false).unwrap();
        let ok = json_value(r#"{"id":"1","client_id":"cid","client_secret":"cs","vapid_key":"x"}"#);
        let client = registration_from("mastodon", &i, 200, Some(&ok)).unwrap();
        assert_eq!(client.client_id, "cid");
        assert_eq!(client.client_secret.unwrap().expose_secret(), "cs");
        assert!(!format!("{:?}", registration_from("mastodon", &i, 200, Some(&ok))).contains("\"cs\""));
        let not_mastodon = registration_from("mastodon", &i, 200, Some(&json_value(r#"{"ok":true}"#))).unwrap_err();
        assert_eq!(not_mastodon.code(), "invalid_instance");
        let e = registration_from("mastodon", &i, 404, None).unwrap_err();
        assert_eq!(e.code(), "invalid_instance");
        assert!(e.to_string().contains("does not look like a Mastodon server"), "{e}");
        let invalid = json_value(r#"{"error":"Validation failed: Redirect URI must be an absolute URI."}"#);
        let e = registration_from("mastodon", &i, 422, Some(&invalid)).unwrap_err();
        assert_eq!(e.code(), "provider_error");
        assert!(e.to_string().contains("Redirect URI must be an absolute URI"), "{e}");
    }

    fn json_value(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn accounts_are_server_local_ids_with_handles() {
        let i = InstanceOrigin::parse("mastodon.social", false).unwrap();
        let doc = json_value(
            r#"{"id":"109364312345678901","username":"alice","acct":"alice","display_name":"Alice A.","url":"https://mastodon.social/@alice"}"#,
        );
        let a = account_from("mastodon", &doc, Some(&i)).unwrap();
        assert_eq!(a.id, "109364312345678901");
        assert_eq!(a.name.as_deref(), Some("@alice@mastodon.social"));
        let no_user = json_value(r#"{"id":"1","display_name":"Alice A."}"#);
        assert_eq!(account_from("mastodon", &no_user, Some(&i)).unwrap().name.as_deref(), Some("Alice A."));
        assert!(account_from("mastodon", &json_value(r#"{"username":"alice"}"#), Some(&i)).is_err());
    }

    #[tokio::test]
    async fn registers_on_a_mastodon_instance_and_refuses_other_servers() {
        let mastodon = tether_testkit::mastodon::MastodonMock::start("alice", "1").await.unwrap();
        let settings = configured(&[
            ("client_name", serde_json::json!("My App")),
            ("website", serde_json::json!("https://app.example")),
        ]);
        let (id, http) = (ProviderId::parse("mastodon").unwrap(), reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/mastodon").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let instance = InstanceOrigin::parse(&mastodon.origin, true).unwrap();
        let client = MastodonProvider.register_client(&ctx, &instance).await.unwrap();
        assert!(!client.client_id.is_empty() && client.client_secret.is_some());
        assert_eq!(mastodon.registration_count(), 1);
        mastodon.stop().await;

        // A server that is not Mastodon (no apps API).
        let other = tether_testkit::MockProvider::start(tether_testkit::MockProviderConfig::default()).await.unwrap();
        let origin = other.base_url.as_str().trim_end_matches('/').to_owned();
        let e =
            MastodonProvider.register_client(&ctx, &InstanceOrigin::parse(&origin, true).unwrap()).await.unwrap_err();
        assert_eq!(e.code(), "invalid_instance", "{e}");
        other.stop().await;
    }
}
