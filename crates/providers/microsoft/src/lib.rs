//! Microsoft Entra ID (the Microsoft identity platform, v2 endpoints): OAuth 2.0 for an app
//! registration, to act as a work, school or personal Microsoft account through Microsoft
//! Graph.
//!
//! Quirks handled here:
//! - the tenant is part of every endpoint path (`/common/oauth2/v2.0/…`); `common` by default,
//!   or the `tenant` setting (`organizations`, `consumers`, a tenant id or domain), see
//!   [`TENANT_SETTING`];
//! - a refresh token only with the `offline_access` scope, which is in the default scopes;
//! - `response_mode=query` on the authorization request, PKCE S256, client credentials in the
//!   body (`client_secret_post`; HTTP Basic is accepted too);
//! - every refresh answers a **new** refresh token (Entra does not revoke the old one, but it
//!   is replaced, and the mock kills it); the refresh request repeats the granted scopes;
//! - errors carry `error_codes` and `AADSTS…` descriptions: `invalid_grant` (AADSTS70008
//!   expired, 700082 expired after inactivity, 50173 revoked after a password change, …),
//!   `interaction_required` and `consent_required` (conditional access, MFA, new consent) all
//!   need the user, so they are dead grants; `invalid_client` (AADSTS7000215 wrong secret,
//!   7000222 expired secret) is a configuration problem, not the user's;
//! - the account is Microsoft Graph `GET /v1.0/me`: `id` (the user's object id) and
//!   `displayName`, else `userPrincipalName`, else `mail`;
//! - there is no OAuth revocation endpoint: disconnecting deletes the tokens in Tether and
//!   reports `revoked: false` (the user or an admin removes the app, see the docs page).
//!
//! Setup: see docs/providers/microsoft.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod token;

use tether_core::serde_json::Value;
use tether_core::{
    AccountIdentity, AuthorizationRequest, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext,
    ProviderErrorKind, ProviderSettings, ProviderSpec, Result, SecretString, TokenSet, Url, async_trait,
};

/// The `[providers.microsoft]` key naming the tenant: `common` (default: work, school and
/// personal accounts), `organizations` (work and school only), `consumers` (personal only), a
/// tenant id (GUID) or a verified domain (`contoso.onmicrosoft.com`: that organization only).
pub const TENANT_SETTING: &str = "tenant";

/// Entra ID's endpoints (tenant `common`) and defaults. There is no revocation endpoint.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
    token_url: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
    userinfo_url: Some("https://graph.microsoft.com/v1.0/me"),
    revoke_url: None,
    api_base_url: Some("https://graph.microsoft.com/"),
    default_scopes: &["openid", "profile", "email", "offline_access", "User.Read"],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Post,
    extra_authorize_params: &[("response_mode", "query")],
    account_id_field: "id",
    account_name_field: "displayName",
    ..ProviderSpec::oauth2("microsoft", "Microsoft")
};

/// The Microsoft Entra ID provider.
#[derive(Debug, Default)]
pub struct MicrosoftProvider;

/// The core defaults, for the authorization request (which needs nothing but the tenant).
struct CoreDefaults;

impl Provider for CoreDefaults {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

#[async_trait]
impl Provider for MicrosoftProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// The RFC 6749 request (with `response_mode=query` and PKCE) at the tenant's endpoint.
    fn authorization_url(&self, ctx: &ProviderContext<'_>, request: &AuthorizationRequest<'_>) -> Result<Url> {
        let settings = for_tenant(ctx.id.as_str(), ctx.settings)?;
        CoreDefaults.authorization_url(&ProviderContext { settings: &settings, ..*ctx }, request)
    }

    /// `grant_type=authorization_code` with the PKCE verifier, Entra errors classified.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let settings = for_tenant(ctx.id.as_str(), ctx.settings)?;
        let ctx = ProviderContext { settings: &settings, ..*ctx };
        let form = tether_core::authorization_code_form(&ctx, code, pkce_verifier);
        tether_core::request_tokens(&ctx, &form, None, token::classify).await
    }

    /// `grant_type=refresh_token` with the granted scopes; the answer's new refresh token
    /// replaces the used one.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let Some(refresh_token) = &current.refresh_token else {
            return Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::Unsupported,
                "this connection has no refresh token (was `offline_access` among the scopes?)",
            ));
        };
        let settings = for_tenant(ctx.id.as_str(), ctx.settings)?;
        let ctx = ProviderContext { settings: &settings, ..*ctx };
        let scopes = current.scopes.as_ref().unwrap_or(&settings.scopes).join(" ");
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        if !scopes.is_empty() {
            form.push(("scope", &scopes));
        }
        tether_core::request_tokens(&ctx, &form, Some(current), token::classify).await
    }

    /// Graph `GET /v1.0/me`: `id`, and `displayName` or `userPrincipalName` or `mail`.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?;
        let me = tether_core::get_json(ctx, url, tokens).await?;
        account(ctx.id.as_str(), &me, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    }
}

/// The account of a Graph `/me` document.
fn account(provider: &str, me: &Value, id_field: &str, name_field: &str) -> Result<AccountIdentity> {
    let mut account = tether_core::parse_account(provider, me, id_field, name_field)?;
    let text = |key: &str| me.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    if me.get(name_field).and_then(Value::as_str).is_none_or(str::is_empty) {
        account.name = text("userPrincipalName").or_else(|| text("mail")).or(account.name);
    }
    Ok(account)
}

/// The settings with the configured tenant in the authorization and token endpoint paths (the
/// path segment before `oauth2`). Without a `tenant` setting they are returned unchanged.
fn for_tenant(id: &str, settings: &ProviderSettings) -> Result<ProviderSettings> {
    let mut settings = settings.clone();
    let Some(value) = settings.extra.get(TENANT_SETTING) else {
        return Ok(settings);
    };
    let tenant = value.as_str().map(str::trim).filter(|t| valid_tenant(t)).ok_or_else(|| {
        Error::Config(format!(
            "providers.{id}.{TENANT_SETTING} must be `common`, `organizations`, `consumers`, a tenant id or a domain"
        ))
    })?;
    for (key, url) in [("authorize_url", &mut settings.authorize_url), ("token_url", &mut settings.token_url)] {
        *url = with_tenant(url, tenant).ok_or_else(|| {
            Error::Config(format!(
                "providers.{id}.{TENANT_SETTING} is set, but providers.{id}.{key} has no `/{{tenant}}/oauth2/` path to put it in"
            ))
        })?;
    }
    Ok(settings)
}

/// A tenant name: a GUID, a domain or one of the three aliases (letters, digits, `.`, `-`).
fn valid_tenant(t: &str) -> bool {
    !t.is_empty() && t.len() <= 253 && t.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
}

/// `url` with the path segment before `oauth2` replaced by `tenant`.
fn with_tenant(url: &Url, tenant: &str) -> Option<Url> {
    let mut segments: Vec<String> = url.path_segments()?.map(str::to_owned).collect();
    let at = segments.iter().position(|s| s == "oauth2")?.checked_sub(1)?;
    segments[at] = tenant.to_owned();
    let mut out = url.clone();
    out.set_path(&format!("/{}", segments.join("/")));
    Some(out)
}

tether_core::register_provider!(MicrosoftProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use tether_core::serde_json::json;
    use tether_core::{ProviderConfig, ProviderId};

    fn settings(extra: BTreeMap<String, Value>) -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("00000000-aaaa-bbbb-cccc-000000000000".into()),
            client_secret: Some(SecretString::from("Abc8Q~secret".to_owned())),
            extra,
            ..ProviderConfig::default()
        };
        let public = Url::parse("https://tether.example.com").unwrap();
        ProviderSettings::resolve("microsoft", &SPEC, &config, &public).unwrap()
    }

    fn authorization_url(settings: &ProviderSettings) -> Result<Url> {
        let (id, http) = (ProviderId::parse("microsoft").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/microsoft").unwrap();
        let ctx = ProviderContext { id: &id, settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        MicrosoftProvider.authorization_url(
            &ctx,
            &AuthorizationRequest {
                state: "st",
                scopes: &settings.scopes,
                pkce_verifier: Some(&verifier),
                login_hint: None,
            },
        )
    }

    #[test]
    fn authorization_goes_to_the_common_tenant_with_offline_access_and_pkce() {
        let url = authorization_url(&settings(BTreeMap::new())).unwrap();
        assert_eq!(url.path(), "/common/oauth2/v2.0/authorize");
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "openid profile email offline_access User.Read");
        assert_eq!(q["response_mode"], "query");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/microsoft");
    }

    #[test]
    fn the_tenant_setting_goes_into_both_endpoint_paths() {
        let extra = BTreeMap::from([(TENANT_SETTING.to_owned(), json!("organizations"))]);
        let s = for_tenant("microsoft", &settings(extra.clone())).unwrap();
        assert_eq!(s.authorize_url.as_str(), "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize");
        assert_eq!(s.token_url.as_str(), "https://login.microsoftonline.com/organizations/oauth2/v2.0/token");
        assert_eq!(authorization_url(&settings(extra)).unwrap().path(), "/organizations/oauth2/v2.0/authorize");
        // An overridden endpoint (a mock, a sovereign cloud) gets the tenant at the same place.
        let url = Url::parse("http://127.0.0.1:8080/common/oauth2/v2.0/token").unwrap();
        let guid = "72f988bf-86f1-41af-91ab-2d7cd011db47";
        assert_eq!(
            with_tenant(&url, guid).unwrap().as_str(),
            format!("http://127.0.0.1:8080/{guid}/oauth2/v2.0/token")
        );
        assert!(with_tenant(&Url::parse("http://127.0.0.1/token").unwrap(), guid).is_none());
    }

    #[test]
    fn a_malformed_tenant_is_a_configuration_error_naming_the_key() {
        for bad in [json!("contoso/evil"), json!(""), json!(42), json!("a b")] {
            let extra = BTreeMap::from([(TENANT_SETTING.to_owned(), bad)]);
            let e = for_tenant("microsoft", &settings(extra)).unwrap_err().to_string();
            assert!(e.contains("providers.microsoft.tenant"), "{e}");
        }
    }

    #[test]
    fn the_account_is_the_graph_id_and_display_name_or_else_the_upn() {
        let me = json!({
            "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
            "id": "87d349ed-44d7-43e1-9a83-5f2406dee5bd", "displayName": "Megan Bowen",
            "userPrincipalName": "MeganB@contoso.onmicrosoft.com", "mail": "MeganB@contoso.onmicrosoft.com"
        });
        let a = account("microsoft", &me, "id", "displayName").unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("87d349ed-44d7-43e1-9a83-5f2406dee5bd", Some("Megan Bowen")));
        let me = json!({"id": "4f1e2d3c4b5a6978", "displayName": null, "userPrincipalName": "outlook_ABC@outlook.com"});
        let a = account("microsoft", &me, "id", "displayName").unwrap();
        assert_eq!(a.name.as_deref(), Some("outlook_ABC@outlook.com"));
        assert!(account("microsoft", &json!({"displayName": "x"}), "id", "displayName").is_err());
    }
}
