//! LinkedIn: "Sign In with LinkedIn using OpenID Connect" to identify the member, "Share on
//! LinkedIn" (`w_member_social`) to post as them.
//!
//! Quirks handled here or by the core defaults:
//! - client credentials go in the form body (LinkedIn does not accept HTTP Basic);
//! - web apps get no PKCE (LinkedIn enables it only for native apps, on request);
//! - the account comes from the OIDC user info (`sub`, `name`); `sub` is the member id used as
//!   `urn:li:person:{sub}` when posting;
//! - access tokens live 60 days; refresh tokens exist only for approved Marketing Developer
//!   Platform partners (365 days, not extended by refreshing): the default refresh uses one
//!   when the token response had it, otherwise the connection needs its user again after 60 days;
//! - revocation is `POST /oauth/v2/revoke` with `client_id`, `client_secret` and `token` (the
//!   access token) in the form, nothing else.
//!
//! Setup: see docs/providers/linkedin.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::{
    ClientAuth, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderSpec, Result, RevokeOutcome, TokenSet,
    async_trait,
};

/// LinkedIn's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.linkedin.com/oauth/v2/authorization",
    token_url: "https://www.linkedin.com/oauth/v2/accessToken",
    userinfo_url: Some("https://api.linkedin.com/v2/userinfo"),
    revoke_url: Some("https://www.linkedin.com/oauth/v2/revoke"),
    api_base_url: Some("https://api.linkedin.com/"),
    default_scopes: &["openid", "profile", "w_member_social"],
    scope_separator: " ",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    account_id_field: "sub",
    account_name_field: "name",
    ..ProviderSpec::oauth2("linkedin", "LinkedIn")
};

/// The LinkedIn provider.
#[derive(Debug, Default)]
pub struct LinkedinProvider;

/// The form of a revocation request: exactly what LinkedIn documents, `client_id`,
/// `client_secret` and the access token (no `token_type_hint`).
fn revoke_form<'a>(ctx: &'a ProviderContext<'_>, tokens: &'a TokenSet) -> Vec<(&'static str, &'a str)> {
    let mut form = vec![("client_id", ctx.settings.client_id.as_str())];
    if let Some(secret) = &ctx.settings.client_secret {
        form.push(("client_secret", secret.expose_secret()));
    }
    form.push(("token", tokens.access_token.expose_secret()));
    form
}

#[async_trait]
impl Provider for LinkedinProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `POST /oauth/v2/revoke` with the client credentials and the access token in the form:
    /// ends the member's authorization of the app.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let request = ctx.http.post(url.clone()).form(&revoke_form(ctx, tokens));
        tether_core::send_revocation(ctx, request, "LinkedIn", |status, body| {
            let code = tether_core::json_error_code(body).unwrap_or_else(|| format!("HTTP {status}"));
            format!("LinkedIn refused the revocation: `{code}`")
        })
        .await
    }
}

tether_core::register_provider!(LinkedinProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::{AuthorizationRequest, ProviderConfig, ProviderId, ProviderSettings, SecretString, Url};

    fn settings() -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("78abc".into()),
            client_secret: Some(SecretString::from("s3cret".to_owned())),
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("linkedin", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap())
            .unwrap()
    }

    #[test]
    fn authorization_url_has_space_separated_scopes_and_no_pkce() {
        let (id, settings, http) =
            (ProviderId::parse("linkedin").unwrap(), settings(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/linkedin").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let scopes: Vec<String> = SPEC.default_scopes.iter().map(|s| (*s).to_owned()).collect();
        let url = LinkedinProvider
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
        assert!(url.as_str().starts_with("https://www.linkedin.com/oauth/v2/authorization?"), "{url}");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "openid profile w_member_social");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/linkedin");
        assert!(!q.contains_key("code_challenge"), "LinkedIn web apps do not do PKCE");
    }

    #[test]
    fn revocation_form_is_client_credentials_and_the_access_token() {
        let (id, settings, http) =
            (ProviderId::parse("linkedin").unwrap(), settings(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/linkedin").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let mut tokens = TokenSet::bearer("AQVaccess");
        tokens.refresh_token = Some(SecretString::from("AQXrefresh".to_owned()));
        let form = revoke_form(&ctx, &tokens);
        assert_eq!(form, [("client_id", "78abc"), ("client_secret", "s3cret"), ("token", "AQVaccess")]);
    }

    #[test]
    fn oidc_userinfo_gives_the_member_id_and_name() {
        let doc = tether_core::serde_json::json!({
            "sub": "782bbtaQ", "email_verified": true, "name": "John Doe",
            "locale": {"country": "US", "language": "en"}, "given_name": "John", "family_name": "Doe",
            "email": "doe@email.com", "picture": "https://media.licdn.com/dms/image/x"
        });
        let account =
            tether_core::parse_account("linkedin", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!(account.id, "782bbtaQ");
        assert_eq!(account.name.as_deref(), Some("John Doe"));
    }
}
