//! Acme Workspaces, an example of a third-party provider crate: it depends on `tether-core`
//! alone and is not part of the `tether` facade. A binary that links it (see
//! `examples/custom-server`) gets the `acme` provider beside the built-in ones.
//!
//! Acme is standard OAuth 2.0 (PKCE S256, HTTP Basic client authentication, one-hour access
//! tokens, rotating refresh tokens, RFC 7009 revocation) with one quirk, handled by overriding
//! [`Provider::fetch_account`]:
//!
//! - a user id is unique only inside a workspace: `GET /v2/me` answers
//!   `{"user": {"id": 42, "handle": "alice"}, "workspace": {"id": "ws_7", "name": "Acme Corp"}}`,
//!   and the same person in two workspaces is two accounts with two grants. The stable
//!   account id is therefore `{workspace.id}:{user.id}` (`ws_7:42`), which no field path of
//!   [`ProviderSpec::account_id_field`] can express.
//!
//! Everything else is the default behaviour, driven by [`SPEC`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::{
    AccountIdentity, ClientAuth, Error, PkceMode, Provider, ProviderContext, ProviderSpec, Result, TokenSet,
    async_trait, get_json, parse_account,
};

/// Acme's endpoints and defaults. Every URL can be overridden in `[providers.acme]`.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://login.acme.example/oauth2/authorize",
    token_url: "https://login.acme.example/oauth2/token",
    userinfo_url: Some("https://api.acme.example/v2/me"),
    revoke_url: Some("https://login.acme.example/oauth2/revoke"),
    api_base_url: Some("https://api.acme.example/v2/"),
    default_scopes: &["profile", "projects:read"],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Basic,
    // The user inside the `/v2/me` document; the workspace is added by `fetch_account`.
    account_id_field: "user.id",
    account_name_field: "user.handle",
    ..ProviderSpec::oauth2("acme", "Acme Workspaces")
};

/// The Acme provider.
#[derive(Debug, Default)]
pub struct AcmeProvider;

#[async_trait]
impl Provider for AcmeProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `GET /v2/me`, then [`account_from_me`]: the account id names the workspace too.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = ctx.settings.userinfo_url.as_ref().ok_or_else(|| {
            Error::Config(format!("providers.{}.userinfo_url is missing: it is needed to identify the account", ctx.id))
        })?;
        let me = get_json(ctx, url, tokens).await?;
        account_from_me(ctx.id.as_str(), &me, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    }
}

/// Reads the account from a `/v2/me` document: id `{workspace.id}:{user id}`, the user's
/// fields named by `user_id_field` and `name_field` (configurable like any provider's).
///
/// ```
/// let me = tether_core::serde_json::json!({
///     "user": { "id": 42, "handle": "alice" },
///     "workspace": { "id": "ws_7", "name": "Acme Corp" },
/// });
/// let account = tether_provider_acme::account_from_me("acme", &me, "user.id", "user.handle").unwrap();
/// assert_eq!(account.id, "ws_7:42");
/// assert_eq!(account.name.as_deref(), Some("alice"));
/// ```
pub fn account_from_me(
    provider: &str,
    me: &tether_core::serde_json::Value,
    user_id_field: &str,
    name_field: &str,
) -> Result<AccountIdentity> {
    let user = parse_account(provider, me, user_id_field, name_field)?;
    let workspace = parse_account(provider, me, "workspace.id", "workspace.name")?;
    Ok(AccountIdentity { id: format!("{}:{}", workspace.id, user.id), name: user.name })
}

tether_core::register_provider!(AcmeProvider);

#[cfg(test)]
mod tests {
    use tether_core::serde_json::json;

    use super::*;

    #[test]
    fn the_same_user_id_in_two_workspaces_is_two_accounts() {
        let me = |ws: &str| json!({ "user": { "id": 42, "handle": "alice" }, "workspace": { "id": ws } });
        let a = account_from_me("acme", &me("ws_7"), "user.id", "user.handle").unwrap();
        let b = account_from_me("acme", &me("ws_9"), "user.id", "user.handle").unwrap();
        assert_eq!(a.id, "ws_7:42");
        assert_eq!(b.id, "ws_9:42");
        assert_eq!(a.name.as_deref(), Some("alice"));
    }

    #[test]
    fn a_document_without_a_workspace_is_a_protocol_error_naming_the_field() {
        let me = json!({ "user": { "id": 42, "handle": "alice" } });
        let e = account_from_me("acme", &me, "user.id", "user.handle").unwrap_err().to_string();
        assert!(e.contains("workspace.id"), "{e}");
    }

    #[test]
    fn docs_writing_a_provider_shows_this_code() {
        let guide = include_str!("../../../docs/writing-a-provider.md");
        let block = guide
            .split("```rust,ignore\n")
            .find(|b| b.contains("pub struct AcmeProvider;"))
            .and_then(|b| b.split("```").next())
            .expect("docs/writing-a-provider.md shows the Acme crate");
        let source: std::collections::HashSet<&str> = include_str!("lib.rs").lines().map(str::trim).collect();
        for line in block.lines().map(str::trim).filter(|l| !l.is_empty()) {
            assert!(source.contains(line), "the guide shows `{line}`, which src/lib.rs does not have");
        }
    }

    #[test]
    fn registered_under_its_id() {
        let registry = tether_core::ProviderRegistry::collect().unwrap();
        assert_eq!(registry.get("acme").map(|p| p.spec().display_name), Some("Acme Workspaces"));
    }
}
