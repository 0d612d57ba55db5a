//! Facebook Login for a Graph API app (v25.0): the user's token, to list the Pages they manage
//! and post to them.
//!
//! Quirks handled here:
//! - the client id and secret go in the parameters (no HTTP Basic), no PKCE, comma-separated
//!   scopes, the API version in every URL;
//! - **no refresh token**: the code exchange gives a short-lived token (an hour or two), which
//!   is traded at once for a long-lived one (about 60 days) with
//!   `GET {token_url}?grant_type=fb_exchange_token&client_id&client_secret&fb_exchange_token`;
//!   the long-lived token is renewed the same way while it is still valid (the engine does it
//!   ahead of expiry, like a refresh). An expired token cannot be renewed: the user connects
//!   again;
//! - errors are Meta's `{"error":{"message","type":"OAuthException","code","error_subcode",…}}`:
//!   code 190 (invalid or expired token, app removed, password changed) means the grant is
//!   dead; rate limits (4, 17, 32, 613) and `is_transient` errors are retried;
//! - the account is `GET /me?fields=id,name` (`id` is app-scoped: it differs per app);
//! - revocation is `DELETE /me/permissions?access_token=…`, which removes the whole
//!   authorization;
//! - the `#_=_` Facebook appends to the callback URL is stripped by the web layer.
//!
//! Setup: see docs/providers/facebook.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, SystemTime};

use tether_core::reqwest::{Method, StatusCode};
use tether_core::serde_json::{Map, Value};
use tether_core::{
    ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind, ProviderSpec, Result,
    RevokeOutcome, SecretString, TokenSet, async_trait,
};
use tether_provider_meta_login::GraphErrors;

/// Facebook's endpoints (Graph API v25.0) and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.facebook.com/v25.0/dialog/oauth",
    token_url: "https://graph.facebook.com/v25.0/oauth/access_token",
    userinfo_url: Some("https://graph.facebook.com/v25.0/me?fields=id,name"),
    revoke_url: Some("https://graph.facebook.com/v25.0/me/permissions"),
    api_base_url: Some("https://graph.facebook.com/v25.0/"),
    default_scopes: &["public_profile", "pages_show_list", "pages_manage_posts"],
    scope_separator: ",",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    account_id_field: "id",
    account_name_field: "name",
    ..ProviderSpec::oauth2("facebook", "Facebook")
};

/// How Facebook's Graph errors are read: `{"error":{…}}` (or RFC 6749's `{"error":"…"}`) only;
/// code 190 is a dead grant; `is_transient` errors and these codes are retried: service
/// unavailable, and the application, user and page rate limits. Code 1 is not (Facebook uses it
/// for "Error validating client secret" too).
const GRAPH_ERRORS: GraphErrors = GraphErrors { retryable: &[2, 4, 17, 32, 341, 613], flat_shape: false };

/// The Facebook provider.
#[derive(Debug, Default)]
pub struct FacebookProvider;

/// What a failed Graph call means for the connection.
fn classify(status: StatusCode, body: &[u8], what: &str) -> (ProviderErrorKind, String) {
    GRAPH_ERRORS.classify(status, body, what)
}

/// A point in time `d` from now, as a [`TokenSet`] stores it.
fn from_now<T: From<SystemTime>>(d: Duration) -> Option<T> {
    SystemTime::now().checked_add(d).map(T::from)
}

/// Reads `{"access_token","token_type","expires_in"}`. Scopes and extra fields of `previous`
/// carry over (Facebook repeats neither); there is never a refresh token.
fn parse_token_response(doc: &Value, previous: Option<&TokenSet>) -> Option<TokenSet> {
    let obj = doc.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let expires_in = match obj.get("expires_in") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let mut extra: Map<String, Value> = previous.map(|p| p.extra.clone()).unwrap_or_default();
    for (k, v) in obj {
        if !k.contains("token") && !k.contains("secret") && k != "expires_in" {
            extra.insert(k.clone(), v.clone());
        }
    }
    Some(TokenSet {
        access_token: SecretString::from(access_token.to_owned()),
        token_type: obj.get("token_type").and_then(Value::as_str).unwrap_or("bearer").to_ascii_lowercase(),
        refresh_token: None,
        token_secret: None,
        expires_at: expires_in.map(Duration::from_secs).and_then(from_now),
        refresh_token_expires_at: None,
        scopes: previous.and_then(|p| p.scopes.clone()),
        extra,
    })
}

/// Calls the token endpoint (`GET` with a query or `POST` with a form) with the client
/// credentials as configured, and reads the token answer.
async fn token_call(
    ctx: &ProviderContext<'_>,
    method: Method,
    params: &[(&str, &str)],
    previous: Option<&TokenSet>,
    what: &str,
) -> Result<TokenSet> {
    let id = ctx.id.as_str();
    let settings = ctx.settings;
    let mut params: Vec<(&str, &str)> = params.to_vec();
    let secret = settings.client_secret.as_ref().map(|s| s.expose_secret());
    let mut request = ctx.http.request(method.clone(), settings.token_url.clone()).header("Accept", "application/json");
    match settings.client_auth {
        ClientAuth::Basic => request = request.basic_auth(&settings.client_id, secret),
        _ => {
            params.push(("client_id", &settings.client_id));
            if let Some(secret) = secret {
                params.push(("client_secret", secret));
            }
        }
    }
    request = if method == Method::GET { request.query(&params) } else { request.form(&params) };
    let resp = request.send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    let retry_after = tether_core::oauth2_http::retry_after(resp.headers());
    let body = resp.bytes().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    if status.is_success()
        && let Some(tokens) = tether_core::serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|doc| parse_token_response(&doc, previous))
    {
        return Ok(tokens);
    }
    let (kind, message) = match classify(status, &body, what) {
        (ProviderErrorKind::Temporary { .. }, m) => (ProviderErrorKind::Temporary { retry_after }, m),
        (_, _) if status.is_success() => {
            (ProviderErrorKind::Protocol, format!("{what} answered something that is not a token response"))
        }
        other => other,
    };
    Err(Error::provider(id, kind, message))
}

/// `fb_exchange_token`: a valid user token (short- or long-lived) for a new long-lived one.
async fn long_lived(ctx: &ProviderContext<'_>, token: &TokenSet) -> Result<TokenSet> {
    let params = [("grant_type", "fb_exchange_token"), ("fb_exchange_token", token.access_token.expose_secret())];
    token_call(ctx, Method::GET, &params, Some(token), "the long-lived token exchange").await
}

#[async_trait]
impl Provider for FacebookProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// Exchanges the code for a short-lived token, then that for a long-lived one. If Facebook
    /// is unreachable for the second step the short-lived token is kept: it is renewable (into
    /// a long-lived one) until it expires.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let params = [("code", code), ("redirect_uri", ctx.redirect_uri.as_str())];
        let short = token_call(ctx, Method::POST, &params, None, "token endpoint").await?;
        match long_lived(ctx, &short).await {
            Ok(long) => Ok(long),
            Err(Error::Provider { kind: ProviderErrorKind::Temporary { .. }, .. }) => Ok(short),
            Err(e) => Err(e),
        }
    }

    /// Renews the long-lived token by exchanging it for a new one. Code 190 (expired, revoked,
    /// app removed) means the user must connect again.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        if !current.is_valid(SystemTime::now().into()) {
            return Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::InvalidGrant,
                "the Facebook token expired; an expired token cannot be exchanged for a new one",
            ));
        }
        long_lived(ctx, current).await
    }

    /// A token with an expiry can be renewed while it is still valid.
    fn can_refresh(&self, tokens: &TokenSet) -> bool {
        tokens.expires_at.is_some() && tokens.is_valid(SystemTime::now().into())
    }

    /// `DELETE /me/permissions?access_token=…`: removes the app's whole authorization.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let id = ctx.id.as_str();
        let mut url = url.clone();
        url.query_pairs_mut().append_pair("access_token", tokens.access_token.expose_secret());
        let resp = ctx
            .http
            .delete(url)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| Error::provider_unreachable(id, &e))?;
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let confirmed = tether_core::serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("success").and_then(Value::as_bool))
            .unwrap_or(false);
        match (status.is_success(), confirmed) {
            (true, true) => Ok(RevokeOutcome::Revoked),
            (true, false) => Err(Error::provider(
                id,
                ProviderErrorKind::Rejected,
                "Facebook did not confirm the revocation (no `success: true`)",
            )),
            (false, _) => {
                let (kind, message) = classify(status, &body, "the revocation");
                // A dead token has nothing left to revoke; say so rather than "invalid grant".
                let kind = if kind == ProviderErrorKind::InvalidGrant { ProviderErrorKind::Rejected } else { kind };
                Err(Error::provider(id, kind, message))
            }
        }
    }
}

tether_core::register_provider!(FacebookProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;

    #[test]
    fn code_190_is_a_dead_grant_and_rate_limits_are_retried() {
        let expired = br#"{"error":{"message":"Error validating access token: Session has expired on Friday, 09-Oct-26 11:00:00 PDT.","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"AbCdEf"}}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, expired, "the long-lived token exchange");
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("code 190/463") && message.contains("Session has expired"), "{message}");
        let limited = br#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","is_transient":true,"code":4,"fbtrace_id":"x"}}"#;
        assert!(matches!(classify(StatusCode::BAD_REQUEST, limited, "x").0, ProviderErrorKind::Temporary { .. }));
        let secret = br#"{"error":{"message":"Error validating client secret.","type":"OAuthException","code":1,"fbtrace_id":"x"}}"#;
        assert_eq!(classify(StatusCode::BAD_REQUEST, secret, "x").0, ProviderErrorKind::Rejected);
        let used = br#"{"error":{"message":"This authorization code has been used.","type":"OAuthException","code":100,"error_subcode":36009}}"#;
        assert_eq!(classify(StatusCode::BAD_REQUEST, used, "x").0, ProviderErrorKind::Rejected);
        assert!(matches!(classify(StatusCode::SERVICE_UNAVAILABLE, b"", "x").0, ProviderErrorKind::Temporary { .. }));
        assert_eq!(classify(StatusCode::BAD_REQUEST, b"<html>", "x").0, ProviderErrorKind::Rejected);
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#, "x").0,
            ProviderErrorKind::InvalidGrant
        );
    }

    #[test]
    fn graph_errors_read_with_or_without_a_subcode_and_nothing_else() {
        let invalid = br#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190}}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, invalid, "x");
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert_eq!(message, "x answered code 190: Invalid OAuth access token - Cannot parse access token");
        let (kind, message) = classify(StatusCode::BAD_REQUEST, br#"{"data":[]}"#, "x");
        assert_eq!((kind, message.as_str()), (ProviderErrorKind::Rejected, "x answered HTTP 400 Bad Request"));
        // Instagram's flat shape is not Facebook's: read as an unexplained HTTP error.
        let flat = br#"{"error_type":"OAuthException","code":190,"error_message":"Invalid token"}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, flat, "x");
        assert_eq!((kind, message.as_str()), (ProviderErrorKind::Rejected, "x answered HTTP 400 Bad Request"));
    }

    #[test]
    fn long_lived_answers_keep_scopes_and_never_have_a_refresh_token() {
        let mut short = TokenSet::bearer("EAAshort");
        short.scopes = Some(vec!["pages_show_list".into()]);
        let long = parse_token_response(
            &json!({"access_token": "EAAlong", "token_type": "bearer", "expires_in": 5183944}),
            Some(&short),
        )
        .unwrap();
        assert_eq!(long.access_token.expose_secret(), "EAAlong");
        assert!(long.refresh_token.is_none());
        assert_eq!(long.scopes.as_deref().unwrap(), ["pages_show_list"]);
        let in_days = |d: u64| SystemTime::now() + Duration::from_secs(d * 86_400);
        assert!(long.is_valid(in_days(59).into()) && !long.is_valid(in_days(61).into()));
        assert!(long.extra.is_empty(), "{:?}", long.extra);
        assert!(parse_token_response(&json!({"error": {"code": 190}}), None).is_none());
    }

    #[test]
    fn only_a_valid_expiring_token_can_be_renewed() {
        let p = FacebookProvider;
        let mut t = TokenSet::bearer("EAA");
        assert!(!p.can_refresh(&t), "a token without expiry has nothing to renew");
        t.expires_at = from_now(Duration::from_secs(3600));
        assert!(p.can_refresh(&t));
        t.expires_at = Some(SystemTime::UNIX_EPOCH.into());
        assert!(!p.can_refresh(&t), "an expired token cannot be exchanged");
    }
}
