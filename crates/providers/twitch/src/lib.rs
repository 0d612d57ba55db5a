//! Twitch: OAuth 2.0 authorization code for a Twitch application (confidential client), to
//! call the Helix API as the user (chat, channel, subscriptions, ...).
//!
//! Quirks handled here:
//! - client credentials only in the form body (Twitch does not accept HTTP Basic), no PKCE
//!   (not documented), space-separated scopes;
//! - the token response's `scope` is a JSON **array** (read by the core's lenient token
//!   parsing);
//! - token errors are not RFC 6749 but `{"status": 400, "message": "Invalid refresh token"}`,
//!   so the token requests go through [`tether_core::request_tokens`] with [`classify_error`]:
//!   "Invalid refresh token" means the grant is dead (reconnect), "invalid client secret" does
//!   not;
//! - access tokens live about four hours; every refresh answers a new refresh token, stored
//!   before the access token is handed out (Twitch says refresh tokens "may change"; Tether
//!   treats the used one as dead);
//! - the account is Helix `GET /helix/users`, which needs a `Client-Id` header naming the app
//!   as well as the bearer token: `data[0].id` (the user id) and `data[0].display_name`;
//! - revocation is `POST /oauth2/revoke` with `client_id` and the **access** token (no
//!   secret); it ends the authorization. An expired access token is first renewed with the
//!   refresh token, so there is a live one to revoke.
//!
//! - calls through Tether's proxy get `Client-Id` added beside the bearer token
//!   ([`Provider::api_headers`]), unless the application sent one.
//!
//! Not handled: Twitch asks apps that keep sessions to call `/oauth2/validate` hourly; Tether
//! does not (see docs/providers/twitch.md).
//!
//! Setup: see docs/providers/twitch.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::Value;
use tether_core::{
    AccountIdentity, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind,
    ProviderSpec, Result, RevokeOutcome, SecretString, TokenSet, async_trait,
};

/// Twitch's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://id.twitch.tv/oauth2/authorize",
    token_url: "https://id.twitch.tv/oauth2/token",
    userinfo_url: Some("https://api.twitch.tv/helix/users"),
    revoke_url: Some("https://id.twitch.tv/oauth2/revoke"),
    api_base_url: Some("https://api.twitch.tv/helix/"),
    default_scopes: &["user:read:email"],
    scope_separator: " ",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    // Fields of the first user in Helix's `data` array.
    account_id_field: "id",
    account_name_field: "display_name",
    ..ProviderSpec::oauth2("twitch", "Twitch")
};

/// The Twitch provider.
#[derive(Debug, Default)]
pub struct TwitchProvider;

/// Classifies a failed Twitch token (or revocation) answer, `{"status": <int>, "message"}`:
/// a dead refresh token or code needs the user again; anything else (bad client secret,
/// redirect URI mismatch) is refused. RFC 6749 `error` codes are understood too.
pub fn classify_error(status: StatusCode, body: &[u8]) -> (ProviderErrorKind, String) {
    let doc: Option<Value> = tether_core::serde_json::from_slice(body).ok();
    let field =
        |k: &str| doc.as_ref().and_then(|d| d.get(k)).and_then(Value::as_str).map(|s| tether_core::printable(s, 200));
    if let Some(message) = field("message") {
        let lower = message.to_ascii_lowercase();
        let dead = lower.contains("invalid refresh token") || lower.contains("invalid authorization code");
        let kind = if dead { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
        return (kind, format!("Twitch answered HTTP {status}: {message}"));
    }
    if let Some(error) = field("error") {
        let kind = if error == "invalid_grant" { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
        return (kind, format!("Twitch answered HTTP {status}, `{error}`"));
    }
    if status.is_success() {
        return (ProviderErrorKind::Protocol, "Twitch answered something that is not a token response".into());
    }
    (ProviderErrorKind::Rejected, format!("Twitch answered HTTP {status}"))
}

/// The account of a Helix `/users` answer: the first user of `data`, with the configured
/// fields (`id`, `display_name`; the name falls back to `login`).
pub fn account_from_users(provider: &str, doc: &Value, id_field: &str, name_field: &str) -> Result<AccountIdentity> {
    let user = doc.get("data").and_then(|d| d.get(0)).ok_or_else(|| {
        Error::provider(provider, ProviderErrorKind::Protocol, "Helix /users answered no user in `data`")
    })?;
    tether_core::parse_account(provider, user, id_field, name_field)
}

/// GETs a Helix URL with the bearer token and the `Client-Id` header Helix requires.
async fn helix_get(ctx: &ProviderContext<'_>, url: &tether_core::Url, tokens: &TokenSet) -> Result<Value> {
    let id = ctx.id.as_str();
    let resp = ctx
        .http
        .get(url.clone())
        .bearer_auth(tokens.access_token.expose_secret())
        .header("Client-Id", ctx.settings.client_id.as_str())
        .header("Accept", "application/json")
        .send()
        .await
        .map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if tether_core::is_temporary_status(status) {
        let retry_after = tether_core::oauth2_http::retry_after(resp.headers());
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after },
            format!("Helix {} answered HTTP {status}", url.path()),
        ));
    }
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        let (_, message) = classify_error(status, &body);
        let kind = if status == StatusCode::UNAUTHORIZED {
            ProviderErrorKind::InvalidGrant
        } else {
            ProviderErrorKind::Rejected
        };
        return Err(Error::provider(id, kind, format!("{} ({})", message, url.path())));
    }
    resp.json().await.map_err(|_| {
        Error::provider(id, ProviderErrorKind::Protocol, format!("Helix {} did not answer JSON", url.path()))
    })
}

/// The form of a revocation request: exactly what Twitch documents, `client_id` and the
/// access token (the secret is not sent).
fn revoke_form<'a>(ctx: &'a ProviderContext<'_>, access_token: &'a SecretString) -> [(&'static str, &'a str); 2] {
    [("client_id", ctx.settings.client_id.as_str()), ("token", access_token.expose_secret())]
}

#[async_trait]
impl Provider for TwitchProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// Helix wants `Client-Id` (the app's client id) beside the token on every call.
    fn api_headers(&self, ctx: &ProviderContext<'_>) -> Vec<(&'static str, String)> {
        vec![("Client-Id", ctx.settings.client_id.clone())]
    }

    /// `grant_type=authorization_code`, credentials in the body, Twitch errors.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", ctx.redirect_uri.as_str())];
        tether_core::request_tokens(ctx, &form, None, classify_error).await
    }

    /// `grant_type=refresh_token`: a new access token and a new refresh token. "Invalid
    /// refresh token" means the grant is dead.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let refresh_token = tether_core::current_refresh_token(ctx, current)?;
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        tether_core::request_tokens(ctx, &form, Some(current), classify_error).await
    }

    /// Helix `GET /users` with `Client-Id`: the first user of `data`.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?;
        let doc = helix_get(ctx, url, tokens).await?;
        account_from_users(ctx.id.as_str(), &doc, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    }

    /// `POST /oauth2/revoke` with `client_id` and the access token (renewed first when it has
    /// expired, since Twitch revokes access tokens).
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let tokens = tether_core::renew_if_expiring(self, ctx, tokens).await?;
        let request = ctx.http.post(url.clone()).form(&revoke_form(ctx, &tokens.access_token));
        tether_core::send_revocation(ctx, request, "Twitch", |status, body| {
            format!("revocation refused: {}", classify_error(status, body).1)
        })
        .await
    }
}

tether_core::register_provider!(TwitchProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{AuthorizationRequest, ProviderConfig, ProviderId, ProviderSettings, Url};

    fn settings() -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("hof5gwx0su6owfnys0yan9c87zr6t".into()),
            client_secret: Some(SecretString::from("twitch-secret".to_owned())),
            scopes: Some(vec!["user:read:email".into(), "chat:read".into()]),
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("twitch", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap()).unwrap()
    }

    #[test]
    fn authorization_has_space_separated_scopes_and_no_pkce() {
        let (id, settings, http) =
            (ProviderId::parse("twitch").unwrap(), settings(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/twitch").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = TwitchProvider
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
        assert!(url.as_str().starts_with("https://id.twitch.tv/oauth2/authorize?"), "{url}");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["scope"], "user:read:email chat:read");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "hof5gwx0su6owfnys0yan9c87zr6t");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/twitch");
        assert!(!q.contains_key("code_challenge"));
        assert_eq!(settings.client_auth, ClientAuth::Post);
    }

    #[test]
    fn an_invalid_refresh_token_is_a_dead_grant_and_a_bad_secret_is_not() {
        let (kind, message) =
            classify_error(StatusCode::BAD_REQUEST, br#"{"status":400,"message":"Invalid refresh token"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("Invalid refresh token") && message.contains("400"), "{message}");
        let (kind, _) =
            classify_error(StatusCode::BAD_REQUEST, br#"{"status":400,"message":"Invalid authorization code"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        let (kind, _) = classify_error(StatusCode::FORBIDDEN, br#"{"status":403,"message":"invalid client secret"}"#);
        assert_eq!(kind, ProviderErrorKind::Rejected, "bad client credentials must not kill every connection");
        let (kind, _) = classify_error(
            StatusCode::BAD_REQUEST,
            br#"{"status":400,"message":"Parameter redirect_uri does not match registered URI"}"#,
        );
        assert_eq!(kind, ProviderErrorKind::Rejected);
        let (kind, _) = classify_error(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        let (kind, _) = classify_error(StatusCode::OK, b"{}");
        assert_eq!(kind, ProviderErrorKind::Protocol);
        let (kind, message) = classify_error(StatusCode::BAD_GATEWAY, b"<html>");
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(!message.contains("html"), "{message}");
        let long = format!(r#"{{"status":400,"message":"{}\n"}}"#, "x".repeat(500));
        let (_, message) = classify_error(StatusCode::BAD_REQUEST, long.as_bytes());
        assert!(message.len() < 300 && !message.contains('\n'), "{message}");
    }

    #[test]
    fn the_account_is_the_first_helix_user() {
        let doc = json!({"data": [{
            "id": "141981764", "login": "twitchdev", "display_name": "TwitchDev", "type": "",
            "broadcaster_type": "partner", "description": "Supporting third-party developers",
            "created_at": "2016-12-14T20:32:28Z"
        }]});
        let a = account_from_users("twitch", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("141981764", Some("TwitchDev")));
        let a = account_from_users("twitch", &json!({"data": [{"id": "1", "login": "quiet"}]}), "id", "display_name")
            .unwrap();
        assert_eq!(a.name.as_deref(), Some("quiet"));
        assert!(account_from_users("twitch", &json!({"data": []}), "id", "display_name").is_err());
        assert!(account_from_users("twitch", &json!({"id": "1"}), "id", "display_name").is_err());
    }

    #[test]
    fn the_revocation_form_is_the_client_id_and_the_access_token_only() {
        let (id, settings, http) =
            (ProviderId::parse("twitch").unwrap(), settings(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/twitch").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let access = SecretString::from("tcaaccess".to_owned());
        assert_eq!(
            revoke_form(&ctx, &access),
            [("client_id", "hof5gwx0su6owfnys0yan9c87zr6t"), ("token", "tcaaccess")]
        );
    }
}
