//! GitHub: OAuth Apps (tokens that do not expire) and GitHub Apps acting for a user (8-hour
//! tokens with 6-month rotating refresh tokens).
//!
//! Quirks handled here or by the core defaults:
//! - errors come back with HTTP 200 (`bad_verification_code`, `bad_refresh_token`): the core
//!   HTTP adapter turns them into errors, and `bad_refresh_token` means the grant is dead;
//! - the granted `scope` comes back comma separated;
//! - the account id is an integer (`id`), the handle is `login`;
//! - revocation is `DELETE /applications/{client_id}/token` with HTTP Basic client
//!   credentials and a JSON body, not RFC 7009.
//!
//! Setup: see docs/providers/github.md.

use tether_core::reqwest::StatusCode;
use tether_core::{
    ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind, ProviderSpec, Result,
    RevokeOutcome, TokenSet, async_trait,
};

/// GitHub's endpoints and defaults. For GitHub Enterprise Server, override every URL in
/// `[providers.github]`.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://github.com/login/oauth/authorize",
    token_url: "https://github.com/login/oauth/access_token",
    userinfo_url: Some("https://api.github.com/user"),
    revoke_url: Some("https://api.github.com/applications/{client_id}/token"),
    api_base_url: Some("https://api.github.com/"),
    default_scopes: &["read:user"],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Post,
    account_id_field: "id",
    account_name_field: "login",
    ..ProviderSpec::oauth2("github", "GitHub")
};

/// The GitHub provider.
#[derive(Debug, Default)]
pub struct GithubProvider;

#[async_trait]
impl Provider for GithubProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `DELETE /applications/{client_id}/token` with Basic client credentials: revokes the
    /// token and, for GitHub Apps, its refresh token with it.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let client_id = &ctx.settings.client_id;
        let url = url.as_str().replace("%7Bclient_id%7D", client_id).replace("{client_id}", client_id);
        let secret = ctx.settings.client_secret.as_ref().map(|s| s.expose_secret().to_owned());
        let resp = ctx
            .http
            .delete(url)
            .basic_auth(client_id, secret)
            .header("Accept", "application/vnd.github+json")
            .json(&tether_core::serde_json::json!({ "access_token": tokens.access_token.expose_secret() }))
            .send()
            .await
            .map_err(|e| Error::provider_unreachable(ctx.id.as_str(), &e))?;
        match resp.status() {
            s if s.is_success() => Ok(RevokeOutcome::Revoked),
            StatusCode::NOT_FOUND => Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::Rejected,
                "GitHub does not know this token (already revoked) or the client credentials are wrong",
            )),
            s if tether_core::is_temporary_status(s) => Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::Temporary { retry_after: None },
                format!("GitHub answered HTTP {s} to the revocation"),
            )),
            s => Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::Rejected,
                format!("GitHub answered HTTP {s} to the revocation"),
            )),
        }
    }
}

tether_core::register_provider!(GithubProvider);
