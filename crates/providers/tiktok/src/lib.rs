//! TikTok through Login Kit (OAuth v2): the token of a TikTok user, to read the profile and
//! upload or publish videos with the Content Posting API.
//!
//! Quirks handled here:
//! - the client is named **`client_key`**, not `client_id`, in the authorization request and in
//!   every token and revocation request; the secret goes in the form body (no HTTP Basic);
//! - scopes are comma separated;
//! - no PKCE by default: TikTok requires it only from desktop and mobile apps. When turned on
//!   (`pkce = true`), the challenge is TikTok's `hex(SHA-256(verifier))`, not RFC 7636's
//!   base64url;
//! - the token answer names the account: **`open_id`** (per app) is the account id; the display
//!   name comes from `GET /v2/user/info/?fields=open_id,union_id,avatar_url,display_name`,
//!   whose answers are wrapped in `{"data":{"user":{…}},"error":{"code":"ok",…}}` (the
//!   envelope's `error.code` says whether it worked, whatever the HTTP status);
//! - token errors are `{"error","error_description","log_id"}`, possibly with HTTP 200:
//!   `invalid_grant` is a dead grant;
//! - refresh tokens **rotate** (the used one stops working) and expire after
//!   `refresh_expires_in` (not `refresh_token_expires_in`); the new refresh token is stored
//!   before the access token is handed out;
//! - revocation is `POST /v2/oauth/revoke/` with `client_key`, `client_secret` and the access
//!   token, and ends the user's authorization of the app.
//!
//! Setup: see docs/providers/tiktok.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, SystemTime};

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::Value;
use tether_core::{
    AccountIdentity, AuthorizationRequest, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext,
    ProviderErrorKind, ProviderSpec, Result, RevokeOutcome, SecretString, TokenSet, Url, async_trait, get_json,
    lenient_u64, printable,
};

/// TikTok's endpoints (Login Kit v2) and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.tiktok.com/v2/auth/authorize/",
    token_url: "https://open.tiktokapis.com/v2/oauth/token/",
    userinfo_url: Some("https://open.tiktokapis.com/v2/user/info/?fields=open_id,union_id,avatar_url,display_name"),
    revoke_url: Some("https://open.tiktokapis.com/v2/oauth/revoke/"),
    api_base_url: Some("https://open.tiktokapis.com/"),
    default_scopes: &["user.info.basic", "video.publish", "video.upload"],
    scope_separator: ",",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    account_id_field: "data.user.open_id",
    account_name_field: "data.user.display_name",
    ..ProviderSpec::oauth2("tiktok", "TikTok")
};

/// The [`TokenSet::extra`] key of the account's `open_id` (from the token answer).
pub const OPEN_ID: &str = "open_id";

/// Token-endpoint error codes that mean "try again later".
const RETRYABLE: &[&str] = &["server_error", "temporarily_unavailable", "rate_limit_exceeded"];

/// The TikTok provider.
#[derive(Debug, Default)]
pub struct TiktokProvider;

fn from_now<T: From<SystemTime>>(secs: Option<u64>) -> Option<T> {
    SystemTime::now().checked_add(Duration::from_secs(secs?)).map(T::from)
}

/// The error of a token-endpoint answer (`{"error","error_description","log_id"}`), whatever
/// its HTTP status, as (kind, message). `None`: no error in it.
fn token_error(status: StatusCode, doc: Option<&Value>, what: &str) -> Option<(ProviderErrorKind, String)> {
    let code = doc.and_then(|d| d.get("error")).and_then(Value::as_str).filter(|c| !c.is_empty() && *c != "ok");
    if tether_core::is_temporary_status(status) {
        return Some((ProviderErrorKind::Temporary { retry_after: None }, format!("{what} answered HTTP {status}")));
    }
    let Some(code) = code else {
        return (!status.is_success()).then(|| (ProviderErrorKind::Rejected, format!("{what} answered HTTP {status}")));
    };
    let kind = match code {
        "invalid_grant" => ProviderErrorKind::InvalidGrant,
        c if RETRYABLE.contains(&c) => ProviderErrorKind::Temporary { retry_after: None },
        _ => ProviderErrorKind::Rejected,
    };
    let description = doc
        .and_then(|d| d.get("error_description"))
        .and_then(Value::as_str)
        .map(|d| format!(": {}", printable(d, 200)))
        .unwrap_or_default();
    Some((kind, format!("{what} answered `{}`{description}", printable(code, 60))))
}

/// Reads a token answer. The refresh token, its expiry and `open_id` of `previous` carry over
/// when the answer does not repeat them.
fn parse_tokens(doc: &Value, previous: Option<&TokenSet>) -> Option<TokenSet> {
    let access_token = doc.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let mut tokens = TokenSet::bearer(access_token);
    tokens.token_type = doc.get("token_type").and_then(Value::as_str).unwrap_or("bearer").to_ascii_lowercase();
    tokens.expires_at = from_now(lenient_u64(doc.get("expires_in")));
    let new_refresh = doc.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty());
    match new_refresh {
        Some(r) => {
            tokens.refresh_token = Some(SecretString::from(r.to_owned()));
            tokens.refresh_token_expires_at = from_now(lenient_u64(doc.get("refresh_expires_in")));
        }
        None => {
            tokens.refresh_token = previous.and_then(|p| p.refresh_token.clone());
            tokens.refresh_token_expires_at = previous.and_then(|p| p.refresh_token_expires_at);
        }
    }
    tokens.scopes = doc
        .get("scope")
        .and_then(Value::as_str)
        .map(tether_core::oauth2_http::split_scopes)
        .or_else(|| previous.and_then(|p| p.scopes.clone()));
    if let Some(p) = previous {
        tokens.extra = p.extra.clone();
    }
    if let Some(open_id) = doc.get(OPEN_ID).and_then(Value::as_str).filter(|o| !o.is_empty()) {
        tokens.extra.insert(OPEN_ID.into(), Value::String(open_id.to_owned()));
    }
    Some(tokens)
}

/// `client_key`, `client_secret` and `params` as a form, POSTed to `url`; the JSON answer, or
/// the classified failure.
async fn post_form(ctx: &ProviderContext<'_>, url: &Url, params: &[(&str, &str)], what: &str) -> Result<Value> {
    let id = ctx.id.as_str();
    let secret = ctx.settings.client_secret.as_ref().map(|s| s.expose_secret());
    let mut form: Vec<(&str, &str)> = vec![("client_key", &ctx.settings.client_id)];
    form.extend(secret.map(|s| ("client_secret", s)));
    form.extend_from_slice(params);
    let request = ctx.http.post(url.clone()).header("Accept", "application/json").form(&form);
    let answer = tether_core::send_request(ctx, request).await?;
    let doc = answer.json();
    match token_error(answer.status, doc.as_ref(), what) {
        Some((ProviderErrorKind::Temporary { .. }, message)) => Err(Error::provider(id, answer.temporary(), message)),
        Some((kind, message)) => Err(Error::provider(id, kind, message)),
        None => {
            doc.ok_or_else(|| Error::provider(id, ProviderErrorKind::Protocol, format!("{what} did not answer JSON")))
        }
    }
}

async fn token_request(
    ctx: &ProviderContext<'_>,
    params: &[(&str, &str)],
    previous: Option<&TokenSet>,
) -> Result<TokenSet> {
    let what = "token endpoint";
    let doc = post_form(ctx, &ctx.settings.token_url, params, what).await?;
    parse_tokens(&doc, previous).ok_or_else(|| {
        Error::provider(
            ctx.id.as_str(),
            ProviderErrorKind::Protocol,
            format!("{what} answered something that is not a token"),
        )
    })
}

/// Reads the account from a `/v2/user/info/` answer and the token's `open_id`.
fn account_from_user_info(provider: &str, doc: &Value, open_id: Option<&str>) -> Result<AccountIdentity> {
    let protocol = |m: String| Error::provider(provider, ProviderErrorKind::Protocol, m);
    let code = doc.pointer("/error/code").and_then(Value::as_str).unwrap_or("ok");
    if code != "ok" {
        let message =
            doc.pointer("/error/message").and_then(Value::as_str).map(|m| printable(m, 200)).unwrap_or_default();
        let kind =
            if code == "access_token_invalid" { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
        return Err(Error::provider(
            provider,
            kind,
            format!("user info answered `{}`: {message}", printable(code, 60)),
        ));
    }
    let user = doc.pointer("/data/user").ok_or_else(|| protocol("the user info answer has no data.user".into()))?;
    let listed = user.get("open_id").and_then(Value::as_str).filter(|o| !o.is_empty());
    let id = match (open_id, listed) {
        (Some(token), Some(info)) if token != info => {
            return Err(protocol("the user info belongs to another open_id than the token".into()));
        }
        (Some(id), _) | (None, Some(id)) => id.to_owned(),
        (None, None) => return Err(protocol("neither the token nor the user info names an open_id".into())),
    };
    let name = user.get("display_name").and_then(Value::as_str).filter(|n| !n.is_empty()).map(str::to_owned);
    Ok(AccountIdentity { id, name })
}

#[async_trait]
impl Provider for TiktokProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// The authorization request with `client_key` (TikTok does not know `client_id`) and, when
    /// PKCE is turned on, TikTok's hex-encoded S256 challenge.
    fn authorization_url(&self, ctx: &ProviderContext<'_>, request: &AuthorizationRequest<'_>) -> Result<Url> {
        let s = ctx.settings;
        let mut url = s.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_key", &s.client_id)
                .append_pair("response_type", "code")
                .append_pair("redirect_uri", ctx.redirect_uri.as_str())
                .append_pair("state", request.state);
            if !request.scopes.is_empty() {
                q.append_pair("scope", &request.scopes.join(&s.scope_separator));
            }
            if let (PkceMode::S256, Some(verifier)) = (s.pkce, request.pkce_verifier) {
                q.append_pair("code_challenge", &tether_core::hash_secret(verifier.expose_secret()))
                    .append_pair("code_challenge_method", "S256");
            }
            for (k, v) in &s.extra_authorize_params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// The code grant with `client_key` in the body (and the verifier when PKCE is on).
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let params = tether_core::authorization_code_form(ctx, code, pkce_verifier);
        token_request(ctx, &params, None).await
    }

    /// The refresh grant with `client_key`; the rotated refresh token replaces the used one.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let refresh_token = tether_core::current_refresh_token(ctx, current)?;
        let params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        token_request(ctx, &params, Some(current)).await
    }

    /// `open_id` from the token answer, `display_name` from `/v2/user/info/`.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = ctx.settings.userinfo_url.as_ref().ok_or_else(|| {
            Error::Config(format!("providers.{}.userinfo_url is missing: it is needed to name the account", ctx.id))
        })?;
        let doc = get_json(ctx, url, tokens).await?;
        account_from_user_info(ctx.id.as_str(), &doc, tokens.extra.get(OPEN_ID).and_then(Value::as_str))
    }

    /// `POST /v2/oauth/revoke/` with `client_key`, `client_secret` and the access token.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = &ctx.settings.revoke_url else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let params = [("token", tokens.access_token.expose_secret())];
        post_form(ctx, url, &params, "the revocation").await.map_err(|e| match e {
            // A dead token has nothing left to revoke; say so rather than "invalid grant".
            Error::Provider { kind: ProviderErrorKind::InvalidGrant, message, .. } => {
                Error::provider(ctx.id.as_str(), ProviderErrorKind::Rejected, message)
            }
            other => other,
        })?;
        Ok(RevokeOutcome::Revoked)
    }
}

tether_core::register_provider!(TiktokProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{ProviderConfig, ProviderId, ProviderSettings};

    fn settings(pkce: Option<bool>) -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("awq8wnkqo1ybcifv".into()),
            client_secret: Some(SecretString::from("s3cr3t".to_owned())),
            pkce,
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("tiktok", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap()).unwrap()
    }

    fn authorization_query(pkce: Option<bool>) -> std::collections::HashMap<String, String> {
        let (id, settings, http) =
            (ProviderId::parse("tiktok").unwrap(), settings(pkce), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/tiktok").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".to_owned());
        let request = AuthorizationRequest {
            state: "st",
            scopes: &settings.scopes,
            pkce_verifier: Some(&verifier),
            login_hint: None,
        };
        let url = TiktokProvider.authorization_url(&ctx, &request).unwrap();
        assert_eq!(url.as_str().split('?').next(), Some("https://www.tiktok.com/v2/auth/authorize/"));
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn authorization_url_names_the_client_key_with_comma_scopes_and_no_pkce() {
        let q = authorization_query(None);
        assert_eq!(q["client_key"], "awq8wnkqo1ybcifv");
        assert!(!q.contains_key("client_id"), "{q:?}");
        assert_eq!(q["scope"], "user.info.basic,video.publish,video.upload");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/tiktok");
        assert_eq!(q["state"], "st");
        assert!(!q.contains_key("code_challenge"));
    }

    #[test]
    fn pkce_when_turned_on_uses_a_hex_challenge() {
        let q = authorization_query(Some(true));
        // hex(SHA-256) of RFC 7636's example verifier (base64url of the same digest is E9Melhoa…).
        assert_eq!(q["code_challenge"], "13d31e961a1ad8ec2f16b10c4c982e0876a878ad6df144566ee1894acb70f9c3");
        assert_eq!(q["code_challenge_method"], "S256");
    }

    #[test]
    fn token_answers_keep_open_id_and_rotated_refresh_tokens() {
        let first = parse_tokens(
            &json!({"access_token": "act.1", "expires_in": 86400, "open_id": "723f24d7-e717-40f8-a2b6-cb8464cd23b4",
                "refresh_expires_in": 31536000, "refresh_token": "rft.1", "scope": "user.info.basic,video.list",
                "token_type": "Bearer"}),
            None,
        )
        .unwrap();
        assert_eq!(first.extra[OPEN_ID], "723f24d7-e717-40f8-a2b6-cb8464cd23b4");
        assert_eq!(first.scopes.as_deref().unwrap(), ["user.info.basic", "video.list"]);
        assert_eq!(first.token_type, "bearer");
        let in_days = |d: u64| SystemTime::now() + Duration::from_secs(d * 86_400);
        let rt_expiry = first.refresh_token_expires_at.unwrap();
        let rt_expiry_at = SystemTime::from(rt_expiry);
        assert!(rt_expiry_at > in_days(364) && rt_expiry_at < in_days(366));
        // A refresh answer without open_id keeps it; a new refresh token replaces the old one.
        let second = parse_tokens(
            &json!({"access_token": "act.2", "expires_in": 86400, "refresh_token": "rft.2", "refresh_expires_in": 100}),
            Some(&first),
        )
        .unwrap();
        assert_eq!(second.refresh_token.unwrap().expose_secret(), "rft.2");
        assert_eq!(second.extra[OPEN_ID], "723f24d7-e717-40f8-a2b6-cb8464cd23b4");
        assert_eq!(second.scopes.as_deref().unwrap(), ["user.info.basic", "video.list"]);
        let third = parse_tokens(&json!({"access_token": "act.3"}), Some(&first)).unwrap();
        assert_eq!(third.refresh_token.unwrap().expose_secret(), "rft.1");
        assert_eq!(third.refresh_token_expires_at, Some(rt_expiry));
        assert!(parse_tokens(&json!({"error": "invalid_grant"}), None).is_none());
    }

    #[test]
    fn token_errors_are_read_from_the_body_whatever_the_status() {
        let dead = json!({"error": "invalid_grant", "error_description": "Refresh token is invalid or expired.", "log_id": "2023"});
        let (kind, message) = token_error(StatusCode::OK, Some(&dead), "token endpoint").unwrap();
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("`invalid_grant`: Refresh token is invalid or expired."), "{message}");
        let client = json!({"error": "invalid_client", "error_description": "Client key or secret is incorrect."});
        assert_eq!(token_error(StatusCode::BAD_REQUEST, Some(&client), "x").unwrap().0, ProviderErrorKind::Rejected);
        let limited = json!({"error": "rate_limit_exceeded"});
        assert!(matches!(
            token_error(StatusCode::OK, Some(&limited), "x").unwrap().0,
            ProviderErrorKind::Temporary { .. }
        ));
        assert!(matches!(
            token_error(StatusCode::BAD_GATEWAY, None, "x").unwrap().0,
            ProviderErrorKind::Temporary { .. }
        ));
        assert_eq!(token_error(StatusCode::FORBIDDEN, None, "x").unwrap().0, ProviderErrorKind::Rejected);
        assert!(token_error(StatusCode::OK, Some(&json!({"access_token": "act.1"})), "x").is_none());
        assert!(token_error(StatusCode::OK, Some(&json!({})), "x").is_none(), "an empty revocation answer is fine");
    }

    #[test]
    fn the_account_is_the_token_open_id_named_by_user_info() {
        let info = json!({"data": {"user": {"open_id": "oid-1", "union_id": "uid-1", "display_name": "Mina"}},
            "error": {"code": "ok", "message": "", "log_id": "2024"}});
        let a = account_from_user_info("tiktok", &info, Some("oid-1")).unwrap();
        assert_eq!(a, AccountIdentity { id: "oid-1".into(), name: Some("Mina".into()) });
        assert!(account_from_user_info("tiktok", &info, Some("oid-2")).is_err(), "another account's user info");
        let a = account_from_user_info("tiktok", &info, None).unwrap();
        assert_eq!(a.id, "oid-1");
        let unnamed = json!({"data": {"user": {}}, "error": {"code": "ok"}});
        assert_eq!(account_from_user_info("tiktok", &unnamed, Some("oid-1")).unwrap().name, None);
        let refused = json!({"data": {}, "error": {"code": "scope_not_authorized", "message": "The user did not authorize the scope required for completing this request.", "log_id": "x"}});
        let e = account_from_user_info("tiktok", &refused, Some("oid-1")).unwrap_err().to_string();
        assert!(e.contains("scope_not_authorized"), "{e}");
    }
}
