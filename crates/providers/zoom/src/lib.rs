//! Zoom: OAuth 2.0 for a Zoom "General app" (user-managed), to call the Zoom API as the user
//! (meetings, recordings, users).
//!
//! Quirks handled here:
//! - HTTP Basic client authentication; PKCE is optional at Zoom, and Tether uses S256;
//! - no `scope` parameter by default: a Zoom app's scopes are chosen on its Marketplace page
//!   and the token response lists what was granted (configured scopes are sent as usual);
//! - one-hour access tokens; every refresh answers a new refresh token, stored before the
//!   access token is handed out (the used one dies);
//! - token errors are `{"reason","error"}`, and a dead refresh token is
//!   `{"reason":"Invalid Token!","error":"invalid_request"}` (sometimes `invalid_grant`):
//!   `invalid_request` would read as a malformed request, so the token requests go through
//!   [`tether_core::request_tokens`] with [`classify_error`], which makes "Invalid Token!" a
//!   dead grant (reconnect) rather than a failure to retry;
//! - the account is `GET /v2/users/me`: `id` and `display_name`, or `first_name last_name`
//!   where there is no display name;
//! - revocation is `POST /oauth/revoke` with Basic credentials and `token=` the **access**
//!   token; it ends the app's authorization. An expired access token is first renewed with
//!   the refresh token, so there is a live one to revoke.
//!
//! Setup: see docs/providers/zoom.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::Value;
use tether_core::{
    AccountIdentity, ClientAuth, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind, ProviderSpec,
    Result, RevokeOutcome, SecretString, TokenSet, async_trait,
};

/// Zoom's endpoints and defaults (no default scopes: the app's page chooses them).
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://zoom.us/oauth/authorize",
    token_url: "https://zoom.us/oauth/token",
    userinfo_url: Some("https://api.zoom.us/v2/users/me"),
    revoke_url: Some("https://zoom.us/oauth/revoke"),
    api_base_url: Some("https://api.zoom.us/v2/"),
    default_scopes: &[],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Basic,
    account_id_field: "id",
    account_name_field: "display_name",
    ..ProviderSpec::oauth2("zoom", "Zoom")
};

/// The Zoom provider.
#[derive(Debug, Default)]
pub struct ZoomProvider;

/// Classifies a failed Zoom token answer, `{"reason","error"}`: "Invalid Token!" (whatever
/// the `error` code) and `invalid_grant` mean the grant is dead; anything else (bad client
/// credentials, a redirect mismatch) is refused.
pub fn classify_error(status: StatusCode, body: &[u8]) -> (ProviderErrorKind, String) {
    let doc: Option<Value> = tether_core::serde_json::from_slice(body).ok();
    let field =
        |k: &str| doc.as_ref().and_then(|d| d.get(k)).and_then(Value::as_str).map(|s| tether_core::printable(s, 200));
    let (reason, error) = (field("reason"), field("error"));
    if reason.is_none() && error.is_none() {
        if status.is_success() {
            return (ProviderErrorKind::Protocol, "Zoom answered something that is not a token response".into());
        }
        return (ProviderErrorKind::Rejected, format!("Zoom answered HTTP {status}"));
    }
    let dead_token = reason.as_deref().is_some_and(|r| r.to_ascii_lowercase().starts_with("invalid token"));
    let dead = dead_token || error.as_deref() == Some("invalid_grant");
    let kind = if dead { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
    let message = match (reason, error) {
        (Some(reason), Some(error)) => format!("Zoom answered HTTP {status}: {reason} (`{error}`)"),
        (Some(reason), None) => format!("Zoom answered HTTP {status}: {reason}"),
        (None, Some(error)) => format!("Zoom answered HTTP {status}, `{error}`"),
        (None, None) => format!("Zoom answered HTTP {status}"),
    };
    (kind, message)
}

/// The account of a `/v2/users/me` document: the configured id field (`id`), and the
/// configured name field (`display_name`), else `first_name last_name`, else the e-mail.
pub fn account_from_me(provider: &str, doc: &Value, id_field: &str, name_field: &str) -> Result<AccountIdentity> {
    let mut account = tether_core::parse_account(provider, doc, id_field, name_field)?;
    let text = |k: &str| doc.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let has_display_name = text(name_field).is_some();
    if !has_display_name {
        let full: Vec<&str> = [text("first_name"), text("last_name")].into_iter().flatten().collect();
        if !full.is_empty() {
            account.name = Some(full.join(" "));
        }
    }
    Ok(account)
}

#[async_trait]
impl Provider for ZoomProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `grant_type=authorization_code` with the PKCE verifier, Basic credentials, Zoom errors.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let form = tether_core::authorization_code_form(ctx, code, pkce_verifier);
        tether_core::request_tokens(ctx, &form, None, classify_error).await
    }

    /// `grant_type=refresh_token`: a new access token and a new refresh token. "Invalid Token!"
    /// means the grant is dead.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let refresh_token = tether_core::current_refresh_token(ctx, current)?;
        let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        tether_core::request_tokens(ctx, &form, Some(current), classify_error).await
    }

    /// `GET /v2/users/me`, then [`account_from_me`].
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?;
        let doc = tether_core::get_json(ctx, url, tokens).await?;
        account_from_me(ctx.id.as_str(), &doc, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    }

    /// `POST /oauth/revoke` with Basic credentials and the access token (renewed first when it
    /// has expired, since Zoom revokes access tokens).
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let tokens = tether_core::renew_if_expiring(self, ctx, tokens).await?;
        let mut request = ctx.http.post(url.clone());
        let mut form = vec![("token", tokens.access_token.expose_secret())];
        match (ctx.settings.client_auth, ctx.settings.client_secret.as_ref()) {
            (ClientAuth::Basic, Some(secret)) => {
                request = request.basic_auth(&ctx.settings.client_id, Some(secret.expose_secret()));
            }
            (_, secret) => {
                form.push(("client_id", ctx.settings.client_id.as_str()));
                if let Some(secret) = secret {
                    form.push(("client_secret", secret.expose_secret()));
                }
            }
        }
        tether_core::send_revocation(ctx, request.form(&form), "Zoom", |status, body| {
            format!("revocation refused: {}", classify_error(status, body).1)
        })
        .await
    }
}

tether_core::register_provider!(ZoomProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{AuthorizationRequest, ProviderConfig, ProviderId, ProviderSettings, Url};

    fn settings(scopes: Option<Vec<String>>) -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("nQ4Yq2NeRNOjoBJYkiA".into()),
            client_secret: Some(SecretString::from("zoom-secret".to_owned())),
            scopes,
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("zoom", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap()).unwrap()
    }

    fn authorization_query(settings: &ProviderSettings) -> std::collections::HashMap<String, String> {
        let (id, http) = (ProviderId::parse("zoom").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/zoom").unwrap();
        let ctx = ProviderContext { id: &id, settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
        let url = ZoomProvider
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
        assert!(url.as_str().starts_with("https://zoom.us/oauth/authorize?"), "{url}");
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn authorization_uses_s256_and_names_no_scope_unless_configured() {
        let q = authorization_query(&settings(None));
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["client_id"], "nQ4Yq2NeRNOjoBJYkiA");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/zoom");
        // RFC 7636 appendix B.
        assert_eq!(q["code_challenge"], "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!q.contains_key("scope"), "a Zoom app's scopes are set on its Marketplace page");
        let q = authorization_query(&settings(Some(vec!["user:read:user".into(), "meeting:write:meeting".into()])));
        assert_eq!(q["scope"], "user:read:user meeting:write:meeting");
    }

    #[test]
    fn invalid_token_is_a_dead_grant_whatever_the_error_code() {
        let (kind, message) =
            classify_error(StatusCode::BAD_REQUEST, br#"{"reason":"Invalid Token!","error":"invalid_request"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant, "must not be retried as a temporary failure");
        assert!(message.contains("Invalid Token!") && message.contains("invalid_request"), "{message}");
        let (kind, _) =
            classify_error(StatusCode::BAD_REQUEST, br#"{"reason":"Invalid Token!","error":"invalid_grant"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        let (kind, _) = classify_error(StatusCode::UNAUTHORIZED, br#"{"error":"invalid_grant"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        let (kind, message) = classify_error(
            StatusCode::BAD_REQUEST,
            br#"{"reason":"Invalid client_id or client_secret","error":"invalid_client"}"#,
        );
        assert_eq!(kind, ProviderErrorKind::Rejected, "bad client credentials must not kill every connection");
        assert!(message.contains("invalid_client"), "{message}");
        let (kind, _) =
            classify_error(StatusCode::BAD_REQUEST, br#"{"reason":"Missing parameter","error":"invalid_request"}"#);
        assert_eq!(kind, ProviderErrorKind::Rejected);
        let (kind, _) = classify_error(StatusCode::OK, b"{}");
        assert_eq!(kind, ProviderErrorKind::Protocol);
        let (kind, message) = classify_error(StatusCode::BAD_GATEWAY, b"<html>secret</html>");
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(!message.contains("secret"), "{message}");
    }

    #[test]
    fn the_name_is_the_display_name_or_first_and_last_name() {
        let doc = json!({
            "id": "KDcuGIm1QgePTO8WbOqwIQ", "first_name": "Jill", "last_name": "Chill", "display_name": "Jill Chill (Ops)",
            "email": "jchill@example.com", "type": 1, "account_id": "q6gBJVO5TzexKYTb_I2rpg", "status": "active"
        });
        let a = account_from_me("zoom", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("KDcuGIm1QgePTO8WbOqwIQ", Some("Jill Chill (Ops)")));
        let doc =
            json!({"id": "x1", "first_name": "Jill", "last_name": "Chill", "display_name": "", "email": "j@x.com"});
        let a = account_from_me("zoom", &doc, "id", "display_name").unwrap();
        assert_eq!(a.name.as_deref(), Some("Jill Chill"));
        let a = account_from_me("zoom", &json!({"id": "x2", "first_name": "Jill"}), "id", "display_name").unwrap();
        assert_eq!(a.name.as_deref(), Some("Jill"));
        let a = account_from_me("zoom", &json!({"id": "x3", "email": "j@x.com"}), "id", "display_name").unwrap();
        assert_eq!(a.name.as_deref(), Some("j@x.com"));
        assert!(
            account_from_me("zoom", &json!({"code": 124, "message": "Invalid access token."}), "id", "display_name")
                .is_err()
        );
    }
}
