//! `providers [--json]`: the compiled-in providers as this binary links them (shared by the
//! `tether` binary and custom binaries that add provider crates).

use tether_core::ProviderRegistry;

/// The listing of every provider linked into the running binary: a JSON document
/// (`{"providers": [...]}`) or one line per provider.
pub fn providers_listing(json: bool) -> anyhow::Result<String> {
    let registry = ProviderRegistry::collect()?;
    if !json {
        return Ok(registry.iter().map(|p| format!("{:<16} {}\n", p.spec().id, p.spec().display_name)).collect());
    }
    let list: Vec<_> = registry
        .iter()
        .map(|p| {
            let s = p.spec();
            serde_json::json!({
                "id": s.id,
                "display_name": s.display_name,
                "authorize_url": s.authorize_url,
                "token_url": s.token_url,
                "pkce": s.pkce,
                "client_auth": s.client_auth,
                "default_scopes": s.default_scopes,
                "scope_separator": s.scope_separator,
                "protocol": s.protocol,
                "userinfo_url": s.userinfo_url,
                "revoke_url": s.revoke_url,
                "api_base_url": s.api_base_url,
                "requires_client_secret": s.requires_client_secret,
                "revocation": s.revoke_url.is_some(),
            })
        })
        .collect();
    Ok(serde_json::to_string_pretty(&serde_json::json!({ "providers": list }))? + "\n")
}
