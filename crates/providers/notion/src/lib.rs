//! Notion: OAuth 2.0 for a Notion public integration (public connection), to read and write
//! the pages and databases a user shares with it in one workspace.
//!
//! Quirks handled here:
//! - `owner=user` on the authorization request (required by Notion); no scopes (what the
//!   integration may reach is chosen by the user on Notion's page picker) and no PKCE;
//! - the token endpoint takes HTTP Basic client authentication and a **JSON** body, not a
//!   form, so the token requests are made here;
//! - the token response describes the installation: `bot_id`, `workspace_id`,
//!   `workspace_name`, `owner`. A connection is one workspace authorization: the account id is
//!   the `bot_id` (one per authorization) and the display name the workspace name;
//! - every call to the API carries a `Notion-Version` header (`2025-09-03` by default, the
//!   `notion_version` setting otherwise, see [`VERSION_SETTING`]); the account is
//!   `GET /v1/users/me`, the integration's bot user;
//! - refresh tokens (added by Notion in 2025): every refresh answers a new access token and a
//!   **new** refresh token; access tokens carry no `expires_in`, so Tether refreshes only on
//!   demand. Integrations whose tokens come without a refresh token keep a token that does not
//!   expire;
//! - errors are `{"object":"error","status","code","message"}` (`code: "invalid_grant"` for a
//!   dead grant); RFC 6749 `{"error"}` bodies are understood too;
//! - revocation is `POST /v1/oauth/revoke` with HTTP Basic and JSON `{"token"}` (the access
//!   token), which ends the authorization.
//!
//! Setup: see docs/providers/notion.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod token;

use tether_core::serde_json::Value;
use tether_core::{
    AccountIdentity, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind,
    ProviderSettings, ProviderSpec, Result, RevokeOutcome, SecretString, TokenSet, async_trait,
};

/// The `Notion-Version` Tether sends when `notion_version` is not configured.
pub const DEFAULT_VERSION: &str = "2025-09-03";

/// The `[providers.notion]` key overriding the `Notion-Version` header of Tether's own calls.
pub const VERSION_SETTING: &str = "notion_version";

/// Notion's endpoints and defaults. Notion has no scopes.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://api.notion.com/v1/oauth/authorize",
    token_url: "https://api.notion.com/v1/oauth/token",
    userinfo_url: Some("https://api.notion.com/v1/users/me"),
    revoke_url: Some("https://api.notion.com/v1/oauth/revoke"),
    api_base_url: Some("https://api.notion.com/"),
    default_scopes: &[],
    scope_separator: " ",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Basic,
    extra_authorize_params: &[("owner", "user")],
    account_id_field: "id",
    account_name_field: "bot.workspace_name",
    ..ProviderSpec::oauth2("notion", "Notion")
};

/// The Notion provider.
#[derive(Debug, Default)]
pub struct NotionProvider;

#[async_trait]
impl Provider for NotionProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// Every Notion API call names its API version (`notion_version`, else the default).
    fn api_headers(&self, ctx: &ProviderContext<'_>) -> Vec<(&'static str, String)> {
        vec![("Notion-Version", version(ctx.settings).to_owned())]
    }

    /// `grant_type=authorization_code` as JSON, HTTP Basic.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let body = tether_core::serde_json::json!({
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": ctx.redirect_uri.as_str(),
        });
        token::request(ctx, &body, None).await
    }

    /// `grant_type=refresh_token` as JSON: a new access token and a new refresh token.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let Some(refresh_token) = &current.refresh_token else {
            return Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::Unsupported,
                "this connection has no refresh token (its Notion token does not expire)",
            ));
        };
        let body = tether_core::serde_json::json!({
            "grant_type": "refresh_token",
            "refresh_token": refresh_token.expose_secret(),
        });
        token::request(ctx, &body, Some(current)).await
    }

    /// `GET /v1/users/me` with `Notion-Version`: the integration's bot user in the workspace.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let id = ctx.id.as_str();
        let url = tether_core::userinfo_url(ctx)?;
        let request = ctx
            .http
            .get(url.clone())
            .bearer_auth(tokens.access_token.expose_secret())
            .header("Notion-Version", version(ctx.settings))
            .header("Accept", "application/json");
        let answer = tether_core::send_request(ctx, request).await?;
        let Some(me) = answer.json().filter(|_| answer.status.is_success()) else {
            let (kind, message) = token::classify_error(answer.status, &answer.body, answer.retry_after);
            return Err(Error::provider(id, kind, format!("{} {message}", url.path())));
        };
        account(id, &me, tokens, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    }

    /// `POST /v1/oauth/revoke` with HTTP Basic and JSON `{"token": <access token>}`.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let body = tether_core::serde_json::json!({ "token": tokens.access_token.expose_secret() });
        token::post(ctx, url, &body).await?;
        Ok(RevokeOutcome::Revoked)
    }
}

/// The `Notion-Version` of Tether's calls: the `notion_version` setting, else
/// [`DEFAULT_VERSION`].
fn version(settings: &ProviderSettings) -> &str {
    settings
        .extra
        .get(VERSION_SETTING)
        .and_then(Value::as_str)
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(DEFAULT_VERSION)
}

/// The account of a connection: the bot user of `/v1/users/me` (its id is the authorization's
/// `bot_id`), named after the workspace (`bot.workspace_name`, else the token response's
/// `workspace_name`, else the bot's name).
fn account(provider: &str, me: &Value, tokens: &TokenSet, id_field: &str, name_field: &str) -> Result<AccountIdentity> {
    let mut account = tether_core::parse_account(provider, me, id_field, name_field)?;
    let workspace = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    let named =
        name_field.split('.').try_fold(me, |v, key| v.get(key)).and_then(Value::as_str).is_some_and(|s| !s.is_empty());
    if !named {
        account.name = workspace(tokens.extra.get("workspace_name")).or(account.name);
    }
    Ok(account)
}

tether_core::register_provider!(NotionProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use tether_core::serde_json::json;
    use tether_core::{AuthorizationRequest, ProviderConfig, ProviderId, Url};

    fn settings(extra: BTreeMap<String, Value>) -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("1d2d872b-594c-80a1-b6d4-0037c5e4b2ff".into()),
            client_secret: Some(SecretString::from("secret_abc".to_owned())),
            extra,
            ..ProviderConfig::default()
        };
        let public = Url::parse("https://tether.example.com").unwrap();
        ProviderSettings::resolve("notion", &SPEC, &config, &public).unwrap()
    }

    #[test]
    fn authorization_asks_for_a_user_installation_without_scopes_or_pkce() {
        let settings = settings(BTreeMap::new());
        let (id, http) = (ProviderId::parse("notion").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/notion").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = NotionProvider
            .authorization_url(
                &ctx,
                &AuthorizationRequest { state: "st", scopes: &[], pkce_verifier: Some(&verifier), login_hint: None },
            )
            .unwrap();
        assert_eq!(url.as_str().split('?').next(), Some("https://api.notion.com/v1/oauth/authorize"));
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["owner"], "user");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/notion");
        assert!(!q.contains_key("scope") && !q.contains_key("code_challenge"), "{q:?}");
        assert_eq!(settings.client_auth, ClientAuth::Basic);
    }

    #[test]
    fn the_version_header_is_configurable() {
        assert_eq!(version(&settings(BTreeMap::new())), "2025-09-03");
        let extra = BTreeMap::from([(VERSION_SETTING.to_owned(), json!("2022-06-28"))]);
        assert_eq!(version(&settings(extra)), "2022-06-28");
    }

    #[test]
    fn the_account_is_the_bot_named_after_the_workspace() {
        let me = json!({
            "object": "user", "id": "16d84278-ab0e-484c-9bdd-b35da3bd8905", "name": "Tether sync",
            "avatar_url": null, "type": "bot",
            "bot": {"owner": {"type": "user", "user": {"object": "user", "id": "6794760a-1f15-45cd-9c65-0dfe42f5135a"}},
                    "workspace_name": "Acme Corp"}
        });
        let tokens = TokenSet::bearer("ntn_x");
        let a = account("notion", &me, &tokens, "id", "bot.workspace_name").unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("16d84278-ab0e-484c-9bdd-b35da3bd8905", Some("Acme Corp")));
        // Older API versions: no workspace name on the bot; the token response has it.
        let me = json!({"object": "user", "id": "16d84278-ab0e-484c-9bdd-b35da3bd8905", "name": "Tether sync", "type": "bot", "bot": {}});
        let mut tokens = TokenSet::bearer("ntn_x");
        tokens.extra.insert("workspace_name".into(), json!("Acme Corp"));
        let a = account("notion", &me, &tokens, "id", "bot.workspace_name").unwrap();
        assert_eq!(a.name.as_deref(), Some("Acme Corp"));
        let a = account("notion", &me, &TokenSet::bearer("ntn_x"), "id", "bot.workspace_name").unwrap();
        assert_eq!(a.name.as_deref(), Some("Tether sync"));
        assert!(account("notion", &json!({"object": "user"}), &tokens, "id", "bot.workspace_name").is_err());
    }
}
