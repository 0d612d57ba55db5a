//! Spotify: the Web API acting for a user (profile, playlists, playback) through a Spotify app
//! (confidential client).
//!
//! Everything is the core default driven by [`SPEC`]; the quirks it encodes:
//! - HTTP Basic client authentication (credentials in the body are for PKCE public clients);
//! - no PKCE: Spotify documents it for public clients, not for a client with a secret;
//! - space-separated scopes; access tokens live one hour;
//! - a refresh answer may omit `refresh_token` (the stored one stays valid and is kept) or
//!   carry a new one (which replaces the stored one before the access token is handed out);
//! - refresh tokens expire six months after the user's authorization, and refreshing does not
//!   extend that: Spotify then answers `invalid_grant` and the connection becomes
//!   `reauth_required`. No response tells the expiry, so Tether cannot warn ahead;
//! - the account is `GET /v1/me`: `id` (the Spotify user id) and `display_name`;
//! - Spotify has **no revocation endpoint**: disconnecting deletes the tokens in Tether and
//!   reports `revoked: false`; the user removes the app at <https://www.spotify.com/account/apps>.
//!
//! Setup: see docs/providers/spotify.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::{ClientAuth, PkceMode, Provider, ProviderSpec};

/// Spotify's endpoints and defaults. There is no revocation endpoint.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://accounts.spotify.com/authorize",
    token_url: "https://accounts.spotify.com/api/token",
    userinfo_url: Some("https://api.spotify.com/v1/me"),
    revoke_url: None,
    api_base_url: Some("https://api.spotify.com/"),
    default_scopes: &["user-read-private"],
    scope_separator: " ",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Basic,
    account_id_field: "id",
    account_name_field: "display_name",
    ..ProviderSpec::oauth2("spotify", "Spotify")
};

/// The Spotify provider (all behaviour is the core default driven by [`SPEC`]).
#[derive(Debug, Default)]
pub struct SpotifyProvider;

impl Provider for SpotifyProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }
}

tether_core::register_provider!(SpotifyProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::{
        AuthorizationRequest, ProviderConfig, ProviderContext, ProviderId, ProviderSettings, SecretString, Url,
        serde_json::json,
    };

    fn settings() -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("5fe01282e44241328a84e7c5cc169165".into()),
            client_secret: Some(SecretString::from("spotify-secret".to_owned())),
            scopes: Some(vec!["user-read-private".into(), "playlist-modify-private".into()]),
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("spotify", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap())
            .unwrap()
    }

    #[test]
    fn authorization_has_space_separated_scopes_and_no_pkce() {
        let (id, settings, http) =
            (ProviderId::parse("spotify").unwrap(), settings(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/spotify").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = SpotifyProvider
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
        assert!(url.as_str().starts_with("https://accounts.spotify.com/authorize?"), "{url}");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "user-read-private playlist-modify-private");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/spotify");
        assert!(!q.contains_key("code_challenge"), "no PKCE for a client with a secret");
        assert_eq!(settings.client_auth, ClientAuth::Basic);
    }

    #[test]
    fn there_is_no_revocation_endpoint() {
        assert!(settings().revoke_url.is_none(), "disconnect reports revoked: false");
    }

    #[test]
    fn the_account_is_the_user_id_and_the_display_name() {
        let doc = json!({
            "id": "wizzler", "display_name": "JM Wizzler", "email": "email@example.com", "country": "SE",
            "product": "premium", "type": "user", "uri": "spotify:user:wizzler",
            "external_urls": {"spotify": "https://open.spotify.com/user/wizzler"}, "followers": {"total": 3829}
        });
        let a = tether_core::parse_account("spotify", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("wizzler", Some("JM Wizzler")));
        let a = tether_core::parse_account("spotify", &json!({"id": "x", "display_name": null}), "id", "display_name")
            .unwrap();
        assert_eq!(a.name, None);
    }
}
