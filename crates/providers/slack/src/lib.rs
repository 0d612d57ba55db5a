//! Slack through OAuth v2 ("Add to Slack"): the token that lets an application act as a user in
//! a workspace (or as the app's bot there).
//!
//! What a connection holds: **one** Slack token. Slack's answer can carry two, a bot token
//! (`xoxb-`, top level, for the bot scopes asked in `scope`) and a user token (`xoxp-`, under
//! `authed_user`, for the user scopes asked in `user_scope`). The connection keeps the **user
//! token** when user scopes were granted, the **bot token** otherwise: the configured (or
//! session) `scopes` are user scopes, and `bot_scopes` in `[providers.slack]` asks for bot
//! scopes. When both are asked, the bot token of that answer is not stored (a bot-only
//! connection holds it: `scopes = []` and `bot_scopes = [...]`). Each kind refreshes with its
//! own refresh token, and a token set holds one, which is why a connection is one of them.
//!
//! Quirks handled here:
//! - scopes are comma separated and split across `scope` (bot) and `user_scope` (user); no PKCE;
//!   `team` in `[providers.slack]` pins the workspace;
//! - every API error is **HTTP 200** `{"ok":false,"error":"…"}`: the body's `ok` decides;
//!   `invalid_refresh_token`, `invalid_grant`, `token_revoked`, `token_expired`,
//!   `invalid_auth`, `account_inactive` mean the grant is dead; `ratelimited` (429 with
//!   `Retry-After`) and Slack's internal errors are retried;
//! - without token rotation Slack's tokens never expire and there is no refresh token; with
//!   rotation turned on for the app, access tokens expire (12 h), come with a refresh token
//!   (`xoxe-1-…`) that dies when used, and refresh through `oauth.v2.access` with
//!   `grant_type=refresh_token` (the answer holds the token at the top level);
//! - the account is `auth.test`: id `{team_id}:{user_id}` (member ids are per workspace), name
//!   `{user} @ {team}`;
//! - revocation is `auth.revoke` with the token as `Bearer`; an expired rotating token is
//!   renewed first so it can revoke itself.
//!
//! Setup: see docs/providers/slack.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, SystemTime};

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::{Map, Value};
use tether_core::{
    AccountIdentity, AuthorizationRequest, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext,
    ProviderErrorKind, ProviderSpec, Result, RevokeOutcome, SecretString, TokenSet, Url, async_trait,
};

/// Slack's endpoints (OAuth v2) and defaults. The default scopes are **user** scopes.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://slack.com/oauth/v2/authorize",
    token_url: "https://slack.com/api/oauth.v2.access",
    userinfo_url: Some("https://slack.com/api/auth.test"),
    revoke_url: Some("https://slack.com/api/auth.revoke"),
    api_base_url: Some("https://slack.com/api/"),
    default_scopes: &["chat:write", "users:read"],
    scope_separator: ",",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    account_id_field: "user_id",
    account_name_field: "user",
    ..ProviderSpec::oauth2("slack", "Slack")
};

/// The [`TokenSet::extra`] key saying which token the connection holds: `user` or `bot`.
pub const TOKEN_KIND: &str = "slack_token_type";

/// Slack errors that mean the grant is dead.
const DEAD: &[&str] = &[
    "invalid_refresh_token",
    "invalid_grant",
    "token_revoked",
    "token_expired",
    "invalid_auth",
    "account_inactive",
    "app_uninstalled",
];
/// Slack errors that mean "try again later".
const RETRYABLE: &[&str] = &["ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"];

/// The Slack provider.
#[derive(Debug, Default)]
pub struct SlackProvider;

/// The bot scopes configured in `[providers.slack] bot_scopes` (a list or a comma string).
fn bot_scopes(ctx: &ProviderContext<'_>) -> Vec<String> {
    match ctx.settings.extra.get("bot_scopes") {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        Some(Value::String(s)) => tether_core::oauth2_http::split_scopes(s),
        _ => Vec::new(),
    }
}

/// What a Slack answer means: the document when `ok`, else the classified failure.
fn check(
    status: StatusCode,
    doc: Option<Value>,
    what: &str,
) -> std::result::Result<Value, (ProviderErrorKind, String)> {
    if tether_core::is_temporary_status(status) {
        return Err((ProviderErrorKind::Temporary { retry_after: None }, format!("{what} answered HTTP {status}")));
    }
    let Some(doc) = doc else {
        return Err((ProviderErrorKind::Protocol, format!("{what} answered HTTP {status} without JSON")));
    };
    if doc.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(doc);
    }
    let code = doc
        .get("error")
        .and_then(Value::as_str)
        .map(|c| tether_core::printable(c, 60))
        .unwrap_or_else(|| "unknown".into());
    let kind = match code.as_str() {
        c if DEAD.contains(&c) => ProviderErrorKind::InvalidGrant,
        c if RETRYABLE.contains(&c) => ProviderErrorKind::Temporary { retry_after: None },
        _ => ProviderErrorKind::Rejected,
    };
    Err((kind, format!("{what} answered `{code}`")))
}

/// Sends a request to a Slack method and returns its `ok` answer, or the classified failure.
async fn call(ctx: &ProviderContext<'_>, request: tether_core::reqwest::RequestBuilder, what: &str) -> Result<Value> {
    let answer = tether_core::send_request(ctx, request.header("Accept", "application/json")).await?;
    check(answer.status, answer.json(), what).map_err(|(kind, message)| {
        let kind = match kind {
            ProviderErrorKind::Temporary { .. } => answer.temporary(),
            other => other,
        };
        Error::provider(ctx.id.as_str(), kind, message)
    })
}

/// Reads the token the connection holds from an `oauth.v2.access` answer: the user token
/// (`authed_user`) when there is one and `kind` is not `bot`, else the top-level one. Without
/// `kind` (a code exchange) the user token wins. Non-secret facts of the installation (team,
/// ids) are kept in the extras; the other token of the answer is not.
fn parse_tokens(doc: &Value, kind: Option<&str>, previous: Option<&TokenSet>) -> Option<TokenSet> {
    let user = doc.get("authed_user").filter(|u| u.get("access_token").and_then(Value::as_str).is_some());
    let top_kind = doc.get("token_type").and_then(Value::as_str).unwrap_or("bot");
    let (entry, kind) = match (kind, user) {
        (Some("bot"), _) | (None, None) => (doc, top_kind),
        (_, Some(user)) if top_kind != "user" => (user, "user"),
        (Some(k), _) => (doc, k),
        (None, Some(user)) => (user, "user"),
    };
    let access_token = entry.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let mut tokens = TokenSet::bearer(access_token);
    tokens.expires_at = tether_core::lenient_u64(entry.get("expires_in"))
        .and_then(|s| SystemTime::now().checked_add(Duration::from_secs(s)))
        .map(Into::into);
    tokens.refresh_token = entry
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .map(|r| SecretString::from(r.to_owned()))
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    tokens.scopes = entry
        .get("scope")
        .and_then(Value::as_str)
        .map(tether_core::oauth2_http::split_scopes)
        .or_else(|| previous.and_then(|p| p.scopes.clone()));
    let mut extra: Map<String, Value> = previous.map(|p| p.extra.clone()).unwrap_or_default();
    extra.insert(TOKEN_KIND.into(), Value::from(kind));
    let text = |v: Option<&Value>| v.and_then(Value::as_str).filter(|s| !s.is_empty()).map(Value::from);
    for (key, value) in [
        ("team_id", text(doc.pointer("/team/id"))),
        ("team_name", text(doc.pointer("/team/name"))),
        ("enterprise_id", text(doc.pointer("/enterprise/id"))),
        ("app_id", text(doc.get("app_id"))),
        ("authed_user_id", text(doc.pointer("/authed_user/id"))),
        ("bot_user_id", text(doc.get("bot_user_id"))),
    ] {
        if let Some(value) = value {
            extra.insert(key.into(), value);
        }
    }
    tokens.extra = extra;
    Some(tokens)
}

/// Reads the account from an `auth.test` answer: `{team_id}:{user_id}`, `{user} @ {team}`.
fn account_from_auth_test(provider: &str, doc: &Value) -> Result<AccountIdentity> {
    let field = |k: &str| doc.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (Some(team_id), Some(user_id)) = (field("team_id"), field("user_id")) else {
        return Err(Error::provider(
            provider,
            ProviderErrorKind::Protocol,
            "auth.test answered without team_id and user_id",
        ));
    };
    let name = match (field("user"), field("team")) {
        (Some(user), Some(team)) => Some(format!("{user} @ {team}")),
        (Some(user), None) => Some(user.to_owned()),
        (None, team) => team.map(str::to_owned),
    };
    Ok(AccountIdentity { id: format!("{team_id}:{user_id}"), name })
}

/// `oauth.v2.access` with the client credentials as configured (body or Basic).
async fn token_request(
    ctx: &ProviderContext<'_>,
    params: &[(&str, &str)],
    kind: Option<&str>,
    previous: Option<&TokenSet>,
) -> Result<TokenSet> {
    let what = "oauth.v2.access";
    let settings = ctx.settings;
    let secret = settings.client_secret.as_ref().map(|s| s.expose_secret());
    let mut form = params.to_vec();
    let mut request = ctx.http.post(settings.token_url.clone());
    match settings.client_auth {
        ClientAuth::Basic => request = request.basic_auth(&settings.client_id, secret),
        _ => {
            form.push(("client_id", &settings.client_id));
            form.extend(secret.map(|s| ("client_secret", s)));
        }
    }
    let doc = call(ctx, request.form(&form), what).await?;
    parse_tokens(&doc, kind, previous).ok_or_else(|| {
        Error::provider(ctx.id.as_str(), ProviderErrorKind::Protocol, format!("{what} answered no token"))
    })
}

#[async_trait]
impl Provider for SlackProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `user_scope` from the requested scopes, `scope` from `bot_scopes`, `team` when pinned.
    fn authorization_url(&self, ctx: &ProviderContext<'_>, request: &AuthorizationRequest<'_>) -> Result<Url> {
        let s = ctx.settings;
        let mut url = s.authorize_url.clone();
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &s.client_id)
                .append_pair("redirect_uri", ctx.redirect_uri.as_str())
                .append_pair("state", request.state);
            let bot = bot_scopes(ctx);
            if !bot.is_empty() {
                q.append_pair("scope", &bot.join(&s.scope_separator));
            }
            if !request.scopes.is_empty() {
                q.append_pair("user_scope", &request.scopes.join(&s.scope_separator));
            }
            if let Some(team) = s.extra.get("team").and_then(Value::as_str) {
                q.append_pair("team", team);
            }
            for (k, v) in &s.extra_authorize_params {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// `oauth.v2.access` with the code; keeps the user token when there is one.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let params = [("code", code), ("redirect_uri", ctx.redirect_uri.as_str())];
        token_request(ctx, &params, None, None).await
    }

    /// `oauth.v2.access` with `grant_type=refresh_token` (token rotation): the token of the
    /// kind the connection holds, and its new refresh token.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let Some(refresh_token) = &current.refresh_token else {
            return Err(Error::provider(
                ctx.id.as_str(),
                ProviderErrorKind::Unsupported,
                "Slack tokens without token rotation never expire and cannot be refreshed",
            ));
        };
        let params = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
        let kind = current.extra.get(TOKEN_KIND).and_then(Value::as_str).unwrap_or("user").to_owned();
        token_request(ctx, &params, Some(&kind), Some(current)).await
    }

    /// `auth.test` with the token.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?.clone();
        let request = ctx.http.post(url).bearer_auth(tokens.access_token.expose_secret());
        let doc = call(ctx, request, "auth.test").await?;
        account_from_auth_test(ctx.id.as_str(), &doc)
    }

    /// `auth.revoke` with the token as `Bearer`. An expired rotating token is renewed first:
    /// only a working token can revoke itself.
    async fn revoke(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
        let Some(url) = ctx.settings.revoke_url.clone() else {
            return Ok(RevokeOutcome::NotSupported);
        };
        let renewed;
        let tokens = if !tokens.is_valid(SystemTime::now().into()) && tokens.refresh_token.is_some() {
            renewed = self.refresh(ctx, tokens).await?;
            &renewed
        } else {
            tokens
        };
        let request = ctx.http.post(url).bearer_auth(tokens.access_token.expose_secret());
        match call(ctx, request, "auth.revoke").await {
            Ok(_) => Ok(RevokeOutcome::Revoked),
            // A dead token has nothing left to revoke; say so rather than "invalid grant".
            Err(Error::Provider { kind: ProviderErrorKind::InvalidGrant, message, .. }) => {
                Err(Error::provider(ctx.id.as_str(), ProviderErrorKind::Rejected, message))
            }
            Err(e) => Err(e),
        }
    }
}

tether_core::register_provider!(SlackProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{ProviderConfig, ProviderId, ProviderSettings};

    fn authorization_query(
        extra: &[(&str, Value)],
        scopes: Option<Vec<String>>,
    ) -> std::collections::HashMap<String, String> {
        let mut config = ProviderConfig {
            client_id: Some("4123456789.9876543210".into()),
            client_secret: Some(SecretString::from("s3cr3t".to_owned())),
            scopes,
            ..ProviderConfig::default()
        };
        for (k, v) in extra {
            config.extra.insert((*k).into(), v.clone());
        }
        let settings =
            ProviderSettings::resolve("slack", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap())
                .unwrap();
        let (id, http) = (ProviderId::parse("slack").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/slack").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let request = AuthorizationRequest {
            state: "st",
            scopes: &settings.scopes,
            pkce_verifier: Some(&verifier),
            login_hint: None,
        };
        let url = SlackProvider.authorization_url(&ctx, &request).unwrap();
        assert_eq!(url.as_str().split('?').next(), Some("https://slack.com/oauth/v2/authorize"));
        url.query_pairs().into_owned().collect()
    }

    #[test]
    fn requested_scopes_are_user_scopes_and_bot_scopes_come_from_the_configuration() {
        let q = authorization_query(&[], None);
        assert_eq!(q["client_id"], "4123456789.9876543210");
        assert_eq!(q["user_scope"], "chat:write,users:read");
        assert!(!q.contains_key("scope"), "no bot scopes unless configured: {q:?}");
        assert!(!q.contains_key("code_challenge"));
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/slack");
        assert_eq!(q["state"], "st");
        let q = authorization_query(
            &[("bot_scopes", json!(["channels:read", "chat:write"])), ("team", json!("T0123ABCD"))],
            Some(vec![]),
        );
        assert_eq!(q["scope"], "channels:read,chat:write");
        assert!(!q.contains_key("user_scope"), "a bot-only installation: {q:?}");
        assert_eq!(q["team"], "T0123ABCD");
        let q = authorization_query(&[("bot_scopes", json!("commands, chat:write"))], None);
        assert_eq!(q["scope"], "commands,chat:write");
    }

    fn v2_access(user: bool, bot: bool) -> Value {
        let mut doc = json!({"ok": true, "app_id": "A0KRD7HC3", "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"},
            "enterprise": null, "is_enterprise_install": false, "authed_user": {"id": "U1234"}});
        if user {
            doc["authed_user"] = json!({"id": "U1234", "scope": "chat:write,users:read", "access_token": "xoxp-1234",
                "token_type": "user"});
        }
        if bot {
            doc["access_token"] = json!("xoxb-17653672481");
            doc["token_type"] = json!("bot");
            doc["scope"] = json!("commands,incoming-webhook");
            doc["bot_user_id"] = json!("U0KRQLJ9H");
        }
        doc
    }

    #[test]
    fn the_user_token_wins_and_the_bot_token_is_kept_only_alone() {
        let both = parse_tokens(&v2_access(true, true), None, None).unwrap();
        assert_eq!(both.access_token.expose_secret(), "xoxp-1234");
        assert_eq!(both.scopes.as_deref().unwrap(), ["chat:write", "users:read"]);
        assert_eq!(both.extra[TOKEN_KIND], "user");
        assert_eq!(both.extra["team_id"], "T9TK3CUKW");
        assert_eq!(both.extra["bot_user_id"], "U0KRQLJ9H");
        assert!(both.expires_at.is_none() && both.refresh_token.is_none(), "without rotation tokens never expire");
        let extras = tether_core::serde_json::to_string(&both.extra).unwrap();
        assert!(!extras.contains("xox"), "no token in the plain extras: {extras}");
        let bot = parse_tokens(&v2_access(false, true), None, None).unwrap();
        assert_eq!(bot.access_token.expose_secret(), "xoxb-17653672481");
        assert_eq!(bot.extra[TOKEN_KIND], "bot");
        assert_eq!(bot.scopes.as_deref().unwrap(), ["commands", "incoming-webhook"]);
        assert!(parse_tokens(&v2_access(false, false), None, None).is_none());
    }

    #[test]
    fn rotation_answers_expire_carry_a_refresh_token_and_refresh_at_the_top_level() {
        let mut doc = v2_access(true, false);
        doc["authed_user"]["access_token"] = json!("xoxe.xoxp-1-first");
        doc["authed_user"]["refresh_token"] = json!("xoxe-1-first");
        doc["authed_user"]["expires_in"] = json!(43200);
        let first = parse_tokens(&doc, None, None).unwrap();
        assert_eq!(first.refresh_token.as_ref().unwrap().expose_secret(), "xoxe-1-first");
        let in_hours = |h: u64| SystemTime::now() + Duration::from_secs(h * 3600);
        assert!(first.is_valid(in_hours(11).into()) && !first.is_valid(in_hours(13).into()));
        let refreshed = json!({"ok": true, "app_id": "A0KRD7HC3", "access_token": "xoxe.xoxp-1-second",
            "token_type": "user", "scope": "chat:write,users:read", "expires_in": 43200,
            "refresh_token": "xoxe-1-second", "team": {"id": "T9TK3CUKW", "name": "Slack Softball Team"}});
        let second = parse_tokens(&refreshed, Some("user"), Some(&first)).unwrap();
        assert_eq!(second.access_token.expose_secret(), "xoxe.xoxp-1-second");
        assert_eq!(second.refresh_token.unwrap().expose_secret(), "xoxe-1-second");
        assert_eq!(second.extra["authed_user_id"], "U1234", "kept from the installation");
    }

    #[test]
    fn errors_come_with_http_200_and_ok_false() {
        let dead = Some(json!({"ok": false, "error": "invalid_refresh_token"}));
        let (kind, message) = check(StatusCode::OK, dead, "oauth.v2.access").unwrap_err();
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert_eq!(message, "oauth.v2.access answered `invalid_refresh_token`");
        for code in ["token_revoked", "invalid_grant", "invalid_auth"] {
            let doc = Some(json!({"ok": false, "error": code}));
            assert_eq!(check(StatusCode::OK, doc, "x").unwrap_err().0, ProviderErrorKind::InvalidGrant, "{code}");
        }
        let secret = Some(json!({"ok": false, "error": "bad_client_secret"}));
        assert_eq!(check(StatusCode::OK, secret, "x").unwrap_err().0, ProviderErrorKind::Rejected);
        let limited = Some(json!({"ok": false, "error": "ratelimited"}));
        assert!(matches!(
            check(StatusCode::TOO_MANY_REQUESTS, limited, "x").unwrap_err().0,
            ProviderErrorKind::Temporary { .. }
        ));
        assert!(matches!(
            check(StatusCode::OK, Some(json!({"ok": false, "error": "internal_error"})), "x").unwrap_err().0,
            ProviderErrorKind::Temporary { .. }
        ));
        assert_eq!(check(StatusCode::OK, None, "x").unwrap_err().0, ProviderErrorKind::Protocol);
        assert!(check(StatusCode::OK, Some(json!({"ok": true})), "x").is_ok());
    }

    #[test]
    fn the_account_is_the_member_of_the_workspace() {
        let doc = json!({"ok": true, "url": "https://subarachnoid.slack.com/", "team": "Subarachnoid Workspace",
            "user": "grace", "team_id": "T12345678", "user_id": "W12345678"});
        let a = account_from_auth_test("slack", &doc).unwrap();
        assert_eq!(
            a,
            AccountIdentity { id: "T12345678:W12345678".into(), name: Some("grace @ Subarachnoid Workspace".into()) }
        );
        assert!(account_from_auth_test("slack", &json!({"ok": true, "user_id": "U1"})).is_err());
    }
}
