//! Google: OAuth 2.0 (OpenID Connect) for a Google Cloud "Web application" client, with
//! YouTube as the main use (the YouTube Data API v3 as the user).
//!
//! Quirks handled here:
//! - `access_type=offline` on the authorization request, without which Google issues no
//!   refresh token, and `prompt=consent`, without which a user who consented before gets none
//!   either (Google hands out a refresh token at the first consent only);
//! - `include_granted_scopes=true`: incremental authorization, so a new connection with more
//!   scopes keeps the ones the user granted the app before;
//! - PKCE S256 with the client secret (a web client needs both); client credentials in the
//!   body (`client_secret_post`, Google accepts HTTP Basic too);
//! - scopes are full URLs for APIs (`https://www.googleapis.com/auth/youtube.readonly`);
//! - refresh answers carry **no** refresh token: the one from the authorization is kept (the
//!   core default);
//! - the account is OpenID Connect user info: `sub` (stable, numeric) and `name`. A YouTube
//!   channel id is one API call away through the proxy (`youtube/v3/channels?mine=true`); a
//!   Google account may have no channel, or several (brand accounts), so it is not the id;
//! - revocation is `POST https://oauth2.googleapis.com/revoke` with the token alone (no client
//!   authentication); revoking the refresh token ends the whole grant.
//!
//! Setup: see docs/providers/google.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::Value;
use tether_core::{
    ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind, ProviderSpec, Result,
    RevokeOutcome, TokenSet, async_trait,
};

/// The YouTube scope requested by default: read the user's channel, videos and playlists.
pub const YOUTUBE_READONLY: &str = "https://www.googleapis.com/auth/youtube.readonly";

/// Google's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
    token_url: "https://oauth2.googleapis.com/token",
    userinfo_url: Some("https://openidconnect.googleapis.com/v1/userinfo"),
    revoke_url: Some("https://oauth2.googleapis.com/revoke"),
    api_base_url: Some("https://www.googleapis.com/"),
    default_scopes: &["openid", "email", "profile", YOUTUBE_READONLY],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Post,
    extra_authorize_params: &[("access_type", "offline"), ("prompt", "consent"), ("include_granted_scopes", "true")],
    account_id_field: "sub",
    account_name_field: "name",
    ..ProviderSpec::oauth2("google", "Google")
};

/// The Google provider.
#[derive(Debug, Default)]
pub struct GoogleProvider;

#[async_trait]
impl Provider for GoogleProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `POST /revoke` with `token=` only: the refresh token (which ends the whole grant, access
    /// tokens included), else the access token.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let id = ctx.id.as_str();
        let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
        let resp = ctx
            .http
            .post(url.clone())
            .header("Accept", "application/json")
            .form(&[("token", token.expose_secret())])
            .send()
            .await
            .map_err(|e| Error::provider_unreachable(id, &e))?;
        let status = resp.status();
        let retry_after = tether_core::oauth2_http::retry_after(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        revoke_outcome(status, &body, retry_after).map_err(|(kind, message)| Error::provider(id, kind, message))
    }
}

/// Reads the revocation endpoint's answer: 200 is done; 5xx and 429 are worth a retry; 400
/// `invalid_token` means the token no longer works at Google (expired, or revoked before).
fn revoke_outcome(
    status: StatusCode,
    body: &[u8],
    retry_after: Option<std::time::Duration>,
) -> std::result::Result<RevokeOutcome, (ProviderErrorKind, String)> {
    if status.is_success() {
        return Ok(RevokeOutcome::Revoked);
    }
    if tether_core::is_temporary_status(status) {
        return Err((
            ProviderErrorKind::Temporary { retry_after },
            format!("revocation endpoint answered HTTP {status}"),
        ));
    }
    let error = tether_core::serde_json::from_slice::<Value>(body).ok().and_then(|doc| {
        doc.get("error")
            .and_then(Value::as_str)
            .map(|e| e.chars().filter(|c| !c.is_control()).take(60).collect::<String>())
    });
    let message = match error.as_deref() {
        Some("invalid_token") => {
            "revocation endpoint answered `invalid_token`: the token had already expired or been revoked at Google"
                .to_owned()
        }
        Some(code) => format!("revocation endpoint answered HTTP {status}, `{code}`"),
        None => format!("revocation endpoint answered HTTP {status}"),
    };
    Err((ProviderErrorKind::Rejected, message))
}

tether_core::register_provider!(GoogleProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tether_core::{
        AuthorizationRequest, ProviderConfig, ProviderId, ProviderSettings, SecretString, Url, serde_json::json,
    };

    fn settings(config: ProviderConfig) -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("1234-abc.apps.googleusercontent.com".into()),
            client_secret: Some(SecretString::from("GOCSPX-secret".to_owned())),
            ..config
        };
        let public = Url::parse("https://tether.example.com").unwrap();
        ProviderSettings::resolve("google", &SPEC, &config, &public).unwrap()
    }

    fn authorization_query(settings: &ProviderSettings) -> HashMap<String, String> {
        let (id, http) = (ProviderId::parse("google").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/google").unwrap();
        let ctx = ProviderContext { id: &id, settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
        let url = GoogleProvider
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
        assert_eq!(url.host_str(), Some("accounts.google.com"));
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn authorization_asks_for_an_offline_grant_with_consent_incremental_scopes_and_pkce() {
        let q = authorization_query(&settings(ProviderConfig::default()));
        assert_eq!(q["access_type"], "offline", "without it Google issues no refresh token");
        assert_eq!(q["prompt"], "consent", "without it a returning user gets no refresh token");
        assert_eq!(q["include_granted_scopes"], "true");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(q["scope"], "openid email profile https://www.googleapis.com/auth/youtube.readonly");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/google");
    }

    #[test]
    fn configured_scopes_for_posting_to_youtube_keep_the_offline_parameters() {
        let scopes = vec!["openid".to_owned(), "https://www.googleapis.com/auth/youtube.upload".to_owned()];
        let q = authorization_query(&settings(ProviderConfig { scopes: Some(scopes), ..ProviderConfig::default() }));
        assert_eq!(q["scope"], "openid https://www.googleapis.com/auth/youtube.upload");
        assert_eq!((q["access_type"].as_str(), q["prompt"].as_str()), ("offline", "consent"));
    }

    #[test]
    fn defaults_are_body_credentials_and_the_documented_endpoints() {
        let s = settings(ProviderConfig::default());
        assert_eq!(s.client_auth, ClientAuth::Post);
        assert_eq!(s.token_url.as_str(), "https://oauth2.googleapis.com/token");
        assert_eq!(s.revoke_url.as_ref().unwrap().as_str(), "https://oauth2.googleapis.com/revoke");
        assert_eq!(s.api_base_url.as_ref().unwrap().as_str(), "https://www.googleapis.com/");
    }

    #[test]
    fn userinfo_gives_the_numeric_sub_and_the_name() {
        let doc = json!({
            "sub": "110169484474386276334", "name": "Ada Lovelace", "given_name": "Ada",
            "email": "ada@example.com", "email_verified": true, "picture": "https://lh3.googleusercontent.com/a/x"
        });
        let a = tether_core::parse_account("google", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("110169484474386276334", Some("Ada Lovelace")));
        // Without the `profile` scope there is no name: the e-mail stands in.
        let doc = json!({"sub": "110169484474386276334", "email": "ada@example.com"});
        let a = tether_core::parse_account("google", &doc, "sub", "name").unwrap();
        assert_eq!(a.name.as_deref(), Some("ada@example.com"));
    }

    #[test]
    fn revocation_answers_are_classified() {
        assert_eq!(revoke_outcome(StatusCode::OK, b"{}", None), Ok(RevokeOutcome::Revoked));
        let (kind, message) = revoke_outcome(
            StatusCode::BAD_REQUEST,
            br#"{"error":"invalid_token","error_description":"Token expired or revoked"}"#,
            None,
        )
        .unwrap_err();
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(message.contains("already expired or been revoked"), "{message}");
        let retry = Some(std::time::Duration::from_secs(3));
        let (kind, _) = revoke_outcome(StatusCode::SERVICE_UNAVAILABLE, b"", retry).unwrap_err();
        assert_eq!(kind, ProviderErrorKind::Temporary { retry_after: retry });
        let (kind, message) = revoke_outcome(StatusCode::BAD_REQUEST, b"<html>", None).unwrap_err();
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(message.contains("400"), "{message}");
    }
}
