//! Dropbox: OAuth 2.0 for a Dropbox app with scoped access, to read and write the user's
//! files through the Dropbox HTTP API.
//!
//! Quirks handled here:
//! - `token_access_type=offline` on the authorization request, without which Dropbox issues
//!   only a short-lived access token and no refresh token;
//! - PKCE S256 with the app secret; HTTP Basic client authentication (the body works too);
//! - 4-hour access tokens; refresh answers carry **no** refresh token (it is long-lived and
//!   not rotated: the core default keeps it);
//! - the account is an RPC call, `POST /2/users/get_current_account` with the bearer token and
//!   **no body** (a JSON body other than `null` is refused): `account_id` (`dbid:…`) and
//!   `name.display_name`;
//! - revocation is `POST /2/auth/token/revoke` with `Authorization: Bearer <access token>` and
//!   no body, which also disables the refresh token. It needs a live access token, so an
//!   expired one is refreshed first;
//! - API errors are `{"error_summary": "…", "error": {".tag": …}}` (or plain text for a
//!   malformed call); only the summary's tag reaches error messages.
//!
//! Setup: see docs/providers/dropbox.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::Duration;

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::Value;
use tether_core::{
    AccountIdentity, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind,
    ProviderSpec, Result, RevokeOutcome, TokenSet, Url, async_trait,
};

/// Dropbox's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.dropbox.com/oauth2/authorize",
    token_url: "https://api.dropboxapi.com/oauth2/token",
    userinfo_url: Some("https://api.dropboxapi.com/2/users/get_current_account"),
    revoke_url: Some("https://api.dropboxapi.com/2/auth/token/revoke"),
    api_base_url: Some("https://api.dropboxapi.com/"),
    default_scopes: &["account_info.read", "files.metadata.read", "files.content.read", "files.content.write"],
    scope_separator: " ",
    pkce: PkceMode::S256,
    client_auth: ClientAuth::Basic,
    extra_authorize_params: &[("token_access_type", "offline")],
    account_id_field: "account_id",
    account_name_field: "name.display_name",
    ..ProviderSpec::oauth2("dropbox", "Dropbox")
};

/// The Dropbox provider.
#[derive(Debug, Default)]
pub struct DropboxProvider;

#[async_trait]
impl Provider for DropboxProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `POST /2/users/get_current_account` with no body: `account_id` and `name.display_name`.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?;
        let doc = rpc(ctx, url, tokens).await?;
        let doc = doc.ok_or_else(|| {
            Error::provider(ctx.id.as_str(), ProviderErrorKind::Protocol, format!("{} did not answer JSON", url.path()))
        })?;
        tether_core::parse_account(
            ctx.id.as_str(),
            &doc,
            &ctx.settings.account_id_field,
            &ctx.settings.account_name_field,
        )
    }

    /// `POST /2/auth/token/revoke` with the access token (refreshed first when it has expired);
    /// Dropbox disables the refresh token with it.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        // The call itself must be authorized by a live access token.
        let tokens = tether_core::renew_if_expiring(self, ctx, tokens).await?;
        rpc(ctx, url, &tokens).await?;
        Ok(RevokeOutcome::Revoked)
    }
}

/// An RPC call without arguments: `POST` with the bearer token and no body. Answers the JSON
/// document, if the answer is JSON (`auth/token/revoke` answers `null`).
async fn rpc(ctx: &ProviderContext<'_>, url: &Url, tokens: &TokenSet) -> Result<Option<Value>> {
    let request = ctx.http.post(url.clone()).bearer_auth(tokens.access_token.expose_secret());
    let answer = tether_core::send_request(ctx, request).await?;
    let doc = answer.json();
    if answer.status.is_success() {
        return Ok(doc);
    }
    let (kind, message) = classify(answer.status, doc.as_ref(), answer.retry_after);
    Err(Error::provider(ctx.id.as_str(), kind, format!("{} answered {message}", url.path())))
}

/// A failed API call, classified: 401 (`invalid_access_token`, `expired_access_token`: the
/// token no longer works) is a dead grant; 5xx and 429 are worth a retry; anything else is
/// refused. The message keeps the status and the error's tag, never the body.
fn classify(status: StatusCode, doc: Option<&Value>, retry_after: Option<Duration>) -> (ProviderErrorKind, String) {
    let tag = doc
        .and_then(|d| d.get("error_summary"))
        .and_then(Value::as_str)
        .map(|s| s.split('/').next().unwrap_or(s).chars().filter(|c| c.is_ascii_graphic()).take(60).collect::<String>())
        .filter(|t| !t.is_empty());
    let message = match tag {
        Some(tag) => format!("HTTP {status}, `{tag}`"),
        None => format!("HTTP {status}"),
    };
    let kind = if tether_core::is_temporary_status(status) {
        ProviderErrorKind::Temporary { retry_after }
    } else if status == StatusCode::UNAUTHORIZED {
        ProviderErrorKind::InvalidGrant
    } else {
        ProviderErrorKind::Rejected
    };
    (kind, message)
}

tether_core::register_provider!(DropboxProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use tether_core::serde_json::json;
    use tether_core::{AuthorizationRequest, ProviderConfig, ProviderId, ProviderSettings, SecretString};

    #[test]
    fn authorization_asks_for_offline_access_with_pkce() {
        let config = ProviderConfig {
            client_id: Some("a1b2c3d4e5f6g7h".into()),
            client_secret: Some(SecretString::from("s3cr3t".to_owned())),
            ..ProviderConfig::default()
        };
        let public = Url::parse("https://tether.example.com").unwrap();
        let settings = ProviderSettings::resolve("dropbox", &SPEC, &config, &public).unwrap();
        let (id, http) = (ProviderId::parse("dropbox").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/dropbox").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = DropboxProvider
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
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["token_access_type"], "offline", "without it there is no refresh token");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["scope"], "account_info.read files.metadata.read files.content.read files.content.write");
        assert_eq!(settings.client_auth, ClientAuth::Basic);
    }

    #[test]
    fn the_account_is_the_dbid_and_the_display_name() {
        let doc = json!({
            "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
            "name": {"given_name": "Franz", "surname": "Ferdinand", "familiar_name": "Franz",
                     "display_name": "Franz Ferdinand (Personal)", "abbreviated_name": "FF"},
            "email": "franz@dropbox.com", "email_verified": true, "disabled": false,
            "account_type": {".tag": "basic"}
        });
        let a = tether_core::parse_account("dropbox", &doc, SPEC.account_id_field, SPEC.account_name_field).unwrap();
        assert_eq!(a.id, "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc");
        assert_eq!(a.name.as_deref(), Some("Franz Ferdinand (Personal)"));
    }

    #[test]
    fn api_errors_are_classified_by_status_and_keep_only_the_tag() {
        let expired = json!({"error_summary": "expired_access_token/..", "error": {".tag": "expired_access_token"}});
        let (kind, message) = classify(StatusCode::UNAUTHORIZED, Some(&expired), None);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert_eq!(message, "HTTP 401 Unauthorized, `expired_access_token`");
        let (kind, message) = classify(StatusCode::BAD_REQUEST, None, None);
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert_eq!(message, "HTTP 400 Bad Request");
        let retry = Some(Duration::from_secs(5));
        let limited = json!({"error_summary": "too_many_requests/..", "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 5}});
        let (kind, _) = classify(StatusCode::TOO_MANY_REQUESTS, Some(&limited), retry);
        assert_eq!(kind, ProviderErrorKind::Temporary { retry_after: retry });
        let odd = json!({"error_summary": "bad\ntag with spaces/x"});
        let (_, message) = classify(StatusCode::CONFLICT, Some(&odd), None);
        assert_eq!(message, "HTTP 409 Conflict, `badtagwithspaces`", "control characters and spaces go");
    }
}
