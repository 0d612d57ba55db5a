//! Discord: OAuth 2.0 for a Discord application (confidential client), to identify the user
//! and call the API as them (`identify`, `guilds`, ...).
//!
//! Everything is the core default driven by [`SPEC`]; the quirks it encodes:
//! - no PKCE: Discord documents PKCE for public clients only, and this is a confidential client
//!   (client secret on the server);
//! - HTTP Basic client authentication (Discord accepts Basic or the form body); the token
//!   endpoint takes `application/x-www-form-urlencoded` only;
//! - space-separated scopes; access tokens live 7 days; every refresh answers a **new**
//!   refresh token, stored before the access token is handed out (whether the used one dies
//!   is undocumented: Tether treats it as single use);
//! - the account is `GET /api/v10/users/@me`: `id` (a snowflake, as a string) and
//!   `global_name`, the display name, which is `null` for users who never set one (the name
//!   is then `username`);
//! - revocation is RFC 7009 at `/api/oauth2/token/revoke` with client authentication;
//!   revoking the refresh token ends the whole authorization (every token of it).
//!
//! Setup: see docs/providers/discord.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::{ClientAuth, PkceMode, Provider, ProviderSpec};

/// Discord's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://discord.com/oauth2/authorize",
    token_url: "https://discord.com/api/oauth2/token",
    userinfo_url: Some("https://discord.com/api/v10/users/@me"),
    revoke_url: Some("https://discord.com/api/oauth2/token/revoke"),
    api_base_url: Some("https://discord.com/api/"),
    default_scopes: &["identify"],
    scope_separator: " ",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Basic,
    account_id_field: "id",
    account_name_field: "global_name",
    ..ProviderSpec::oauth2("discord", "Discord")
};

/// The Discord provider (all behaviour is the core default driven by [`SPEC`]).
#[derive(Debug, Default)]
pub struct DiscordProvider;

impl Provider for DiscordProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

tether_core::register_provider!(DiscordProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::{
        AuthorizationRequest, ProviderConfig, ProviderContext, ProviderId, ProviderSettings, SecretString, Url,
        serde_json::json,
    };

    #[test]
    fn authorization_has_space_separated_scopes_and_no_pkce() {
        let config = ProviderConfig {
            client_id: Some("1234567890123456789".into()),
            client_secret: Some(SecretString::from("discord-secret".to_owned())),
            scopes: Some(vec!["identify".into(), "guilds".into()]),
            ..ProviderConfig::default()
        };
        let public = Url::parse("https://tether.example.com").unwrap();
        let settings = ProviderSettings::resolve("discord", &SPEC, &config, &public).unwrap();
        let (id, http) = (ProviderId::parse("discord").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/discord").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = DiscordProvider
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
        assert!(url.as_str().starts_with("https://discord.com/oauth2/authorize?"), "{url}");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "identify guilds");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "1234567890123456789");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/discord");
        assert_eq!(q["state"], "st");
        assert!(!q.contains_key("code_challenge"), "no PKCE for a confidential Discord client");
        assert_eq!(settings.client_auth, ClientAuth::Basic);
        assert_eq!(settings.scopes, ["identify", "guilds"]);
    }

    #[test]
    fn default_scope_is_identify() {
        let settings = ProviderSettings::resolve(
            "discord",
            &SPEC,
            &ProviderConfig {
                client_id: Some("1".into()),
                client_secret: Some(SecretString::from("s".to_owned())),
                ..ProviderConfig::default()
            },
            &Url::parse("https://tether.example.com").unwrap(),
        )
        .unwrap();
        assert_eq!(settings.scopes, ["identify"]);
    }

    #[test]
    fn the_account_is_the_snowflake_and_the_global_name_or_else_the_username() {
        let parse = |doc| tether_core::parse_account("discord", &doc, SPEC.account_id_field, SPEC.account_name_field);
        let a = parse(json!({
            "id": "80351110224678912", "username": "nelly", "discriminator": "0", "global_name": "Nelly",
            "avatar": "8342729096ea3675442027381ff50dfe", "mfa_enabled": true, "locale": "en-US"
        }))
        .unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("80351110224678912", Some("Nelly")));
        let a = parse(json!({"id": "80351110224678913", "username": "quiet", "global_name": null})).unwrap();
        assert_eq!(a.name.as_deref(), Some("quiet"), "no display name set: the username");
        assert!(parse(json!({"message": "401: Unauthorized", "code": 0})).is_err());
    }
}
