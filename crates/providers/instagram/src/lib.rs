//! Instagram through the "Instagram API with Instagram Login" (Business Login for Instagram):
//! the token of a professional (Business or Creator) account, to publish media and read its
//! profile.
//!
//! Quirks handled here:
//! - the client id is the **Instagram App ID** (not the Meta App ID); id and secret go in the
//!   form body, no PKCE, comma-separated scopes;
//! - the code exchange (`POST https://api.instagram.com/oauth/access_token`) answers a
//!   short-lived token (one hour) and the account's `user_id`, either flat or wrapped in
//!   `{"data":[{…}]}` (both shapes are documented or used); the granted `permissions` become
//!   the connection's scopes. A `#_` Meta appends to the code is stripped;
//! - **no refresh token**: the short-lived token is traded at once for a long-lived one (60
//!   days) with `GET {api_base_url}access_token?grant_type=ig_exchange_token`, and the
//!   long-lived token is renewed with `GET {api_base_url}refresh_access_token?grant_type=ig_refresh_token`
//!   ahead of expiry. Instagram renews only a token that is **at least 24 hours old** and not
//!   expired: a forced refresh of a younger token is refused here (with the time it becomes
//!   renewable) instead of being sent; an expired token needs the user again;
//! - errors are Meta's Graph `{"error":{"message","type","code","error_subcode",…}}`, or
//!   `{"error_type","code","error_message"}` from `api.instagram.com`: code 190 (invalid or
//!   expired token, app removed) means the grant is dead; rate limits and transient errors are
//!   retried;
//! - the account is `GET /me?fields=user_id,username`: `user_id` is the professional account id
//!   (the one the content API and webhooks use), the name is `username`;
//! - Instagram Login tokens cannot be revoked through the API: disconnecting reports
//!   `revoked: false` with that reason (the user removes the app in Instagram's settings).
//!
//! Setup: see docs/providers/instagram.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_core::reqwest::{Method, StatusCode};
use tether_core::serde_json::{Map, Value};
use tether_core::{
    ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind, ProviderSpec, Result,
    RevokeOutcome, SecretString, TokenSet, Url, async_trait,
};

/// Instagram's endpoints and defaults.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.instagram.com/oauth/authorize",
    token_url: "https://api.instagram.com/oauth/access_token",
    userinfo_url: Some("https://graph.instagram.com/v25.0/me?fields=user_id,username"),
    revoke_url: None,
    api_base_url: Some("https://graph.instagram.com/"),
    default_scopes: &["instagram_business_basic", "instagram_business_content_publish"],
    scope_separator: ",",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Post,
    account_id_field: "user_id",
    account_name_field: "username",
    ..ProviderSpec::oauth2("instagram", "Instagram")
};

/// Meta's error code for an invalid or expired access token.
const INVALID_TOKEN: i64 = 190;
/// Meta error codes that mean "slow down" or "try again".
const RETRYABLE: &[i64] = &[1, 2, 4, 17, 32, 341, 613];
/// How old a long-lived token must be before Instagram renews it.
pub const MIN_RENEWAL_AGE: Duration = Duration::from_secs(24 * 3600);
/// The life of a short-lived token when the answer does not say (Instagram documents one hour).
const SHORT_LIVED: Duration = Duration::from_secs(3600);
/// The [`TokenSet::extra`] key holding when the long-lived token was issued (Unix seconds);
/// absent while the connection holds a short-lived token.
pub const LONG_LIVED_SINCE: &str = "long_lived_since";

/// The Instagram provider.
#[derive(Debug, Default)]
pub struct InstagramProvider;

/// A Meta error: Graph's `{"error":{…}}`, the older `{"error_type","code","error_message"}`, or
/// an RFC 6749 `{"error":"…"}` (code-less).
#[derive(Debug, PartialEq, Eq)]
struct MetaError {
    code: Option<i64>,
    subcode: Option<i64>,
    message: String,
    transient: bool,
}

fn parse_meta_error(body: &[u8]) -> Option<MetaError> {
    let doc: Value = tether_core::serde_json::from_slice(body).ok()?;
    let text = |v: Option<&Value>, max| v.and_then(Value::as_str).map(|m| clean(m, max)).unwrap_or_default();
    match doc.get("error") {
        Some(Value::Object(e)) => Some(MetaError {
            code: e.get("code").and_then(Value::as_i64),
            subcode: e.get("error_subcode").and_then(Value::as_i64),
            message: text(e.get("message"), 200),
            transient: e.get("is_transient").and_then(Value::as_bool).unwrap_or(false),
        }),
        Some(Value::String(code)) => {
            Some(MetaError { code: None, subcode: None, message: clean(code, 60), transient: false })
        }
        _ if doc.get("error_type").is_some() => Some(MetaError {
            code: doc.get("code").and_then(Value::as_i64),
            subcode: None,
            message: text(doc.get("error_message"), 200),
            transient: false,
        }),
        _ => None,
    }
}

/// Printable text, at most `max` characters (provider messages go into errors and events).
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// What a failed call means for the connection.
fn classify(status: StatusCode, body: &[u8], what: &str) -> (ProviderErrorKind, String) {
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return (ProviderErrorKind::Temporary { retry_after: None }, format!("{what} answered HTTP {status}"));
    }
    let Some(e) = parse_meta_error(body) else {
        return (ProviderErrorKind::Rejected, format!("{what} answered HTTP {status}"));
    };
    let kind = match e.code {
        Some(INVALID_TOKEN) => ProviderErrorKind::InvalidGrant,
        Some(code) if e.transient || RETRYABLE.contains(&code) => ProviderErrorKind::Temporary { retry_after: None },
        None if e.message == "invalid_grant" => ProviderErrorKind::InvalidGrant,
        _ => ProviderErrorKind::Rejected,
    };
    let code = match (e.code, e.subcode) {
        (Some(c), Some(s)) => format!("code {c}/{s}"),
        (Some(c), None) => format!("code {c}"),
        _ => format!("HTTP {status}"),
    };
    (kind, format!("{what} answered {code}: {}", e.message))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn from_now<T: From<SystemTime>>(d: Duration) -> Option<T> {
    SystemTime::now().checked_add(d).map(T::from)
}

fn lenient_u64(v: Option<&Value>) -> Option<u64> {
    match v? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Reads the code-exchange answer: `{"access_token","user_id","permissions"}`, flat or as
/// `{"data":[{…}]}`. The token is short-lived; `user_id` (string or number) and the granted
/// permissions are kept.
fn parse_code_answer(doc: &Value) -> Option<TokenSet> {
    let entry = match doc.get("data") {
        Some(Value::Array(items)) => items.first()?,
        _ => doc,
    };
    let obj = entry.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let mut tokens = TokenSet::bearer(access_token);
    let life = lenient_u64(obj.get("expires_in")).map_or(SHORT_LIVED, Duration::from_secs);
    tokens.expires_at = from_now(life);
    tokens.scopes = match obj.get("permissions") {
        Some(Value::String(s)) => Some(tether_core::oauth2_http::split_scopes(s)),
        Some(Value::Array(items)) => Some(items.iter().filter_map(Value::as_str).map(str::to_owned).collect()),
        _ => None,
    };
    match obj.get("user_id") {
        Some(Value::String(id)) if !id.is_empty() => {
            tokens.extra.insert("user_id".into(), Value::String(id.clone()));
        }
        Some(Value::Number(n)) => {
            tokens.extra.insert("user_id".into(), Value::String(n.to_string()));
        }
        _ => {}
    }
    Some(tokens)
}

/// Reads a long-lived answer `{"access_token","token_type","expires_in"}` (exchange and renewal
/// alike). Scopes and extras of `previous` carry over; the issue time is recorded.
fn parse_long_lived(doc: &Value, previous: &TokenSet) -> Option<TokenSet> {
    let obj = doc.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let mut extra: Map<String, Value> = previous.extra.clone();
    extra.insert(LONG_LIVED_SINCE.into(), Value::from(unix_now()));
    Some(TokenSet {
        access_token: SecretString::from(access_token.to_owned()),
        token_type: obj.get("token_type").and_then(Value::as_str).unwrap_or("bearer").to_ascii_lowercase(),
        refresh_token: None,
        token_secret: None,
        expires_at: lenient_u64(obj.get("expires_in")).map(Duration::from_secs).and_then(from_now),
        refresh_token_expires_at: None,
        scopes: previous.scopes.clone(),
        extra,
    })
}

/// When a long-lived token becomes renewable, if that is still ahead and before it expires.
/// `None`: renew now (a short-lived token, an old enough one, or one that would expire before
/// reaching the age, which is left to Instagram to judge).
fn too_young_until(tokens: &TokenSet, now: u64) -> Option<u64> {
    let since = lenient_u64(tokens.extra.get(LONG_LIVED_SINCE))?;
    let renewable_at = since.saturating_add(MIN_RENEWAL_AGE.as_secs());
    let expires = tokens.expires_at.map(|e| e.timestamp().max(0) as u64)?;
    (now < renewable_at && renewable_at < expires).then_some(renewable_at)
}

/// A configured Graph endpoint: `providers.instagram.<key>`, else `api_base_url` + `path`.
fn graph_url(ctx: &ProviderContext<'_>, key: &str, path: &str) -> Result<Url> {
    if let Some(raw) = ctx.settings.extra.get(key).and_then(Value::as_str) {
        return Url::parse(raw)
            .map_err(|e| Error::Config(format!("providers.{}.{key} is not a valid URL ({e})", ctx.id)));
    }
    let base = ctx.settings.api_base_url.as_ref().ok_or_else(|| {
        Error::Config(format!("providers.{}.api_base_url is missing: the token exchange and renewal need it", ctx.id))
    })?;
    base.join(path).map_err(|e| Error::Config(format!("providers.{}.api_base_url cannot hold {path} ({e})", ctx.id)))
}

/// Sends a token request and returns the JSON answer, or the classified failure.
async fn token_call(
    ctx: &ProviderContext<'_>,
    request: tether_core::reqwest::RequestBuilder,
    what: &str,
) -> Result<Value> {
    let id = ctx.id.as_str();
    let resp =
        request.header("Accept", "application/json").send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    let retry_after = tether_core::oauth2_http::retry_after(resp.headers());
    let body = resp.bytes().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let doc = tether_core::serde_json::from_slice::<Value>(&body).ok();
    if status.is_success()
        && let Some(doc) = doc.filter(|d| d.get("error").is_none() && d.get("error_type").is_none())
    {
        return Ok(doc);
    }
    let (kind, message) = match classify(status, &body, what) {
        (ProviderErrorKind::Temporary { .. }, m) => (ProviderErrorKind::Temporary { retry_after }, m),
        other => other,
    };
    Err(Error::provider(id, kind, message))
}

fn not_a_token(ctx: &ProviderContext<'_>, what: &str) -> Error {
    Error::provider(
        ctx.id.as_str(),
        ProviderErrorKind::Protocol,
        format!("{what} answered something that is not a token"),
    )
}

/// `ig_exchange_token`: a valid short-lived token for a long-lived one.
async fn exchange(ctx: &ProviderContext<'_>, short: &TokenSet) -> Result<TokenSet> {
    let what = "the long-lived token exchange";
    let url = graph_url(ctx, "exchange_url", "access_token")?;
    let secret = ctx.settings.client_secret.as_ref().map(|s| s.expose_secret()).unwrap_or_default();
    let query = [
        ("grant_type", "ig_exchange_token"),
        ("client_secret", secret),
        ("access_token", short.access_token.expose_secret()),
    ];
    let doc = token_call(ctx, ctx.http.request(Method::GET, url).query(&query), what).await?;
    parse_long_lived(&doc, short).ok_or_else(|| not_a_token(ctx, what))
}

/// `ig_refresh_token`: a long-lived token (at least 24 h old) for a new one, valid 60 days.
async fn renew(ctx: &ProviderContext<'_>, long: &TokenSet) -> Result<TokenSet> {
    let what = "the long-lived token renewal";
    let url = graph_url(ctx, "refresh_url", "refresh_access_token")?;
    let query = [("grant_type", "ig_refresh_token"), ("access_token", long.access_token.expose_secret())];
    let doc = token_call(ctx, ctx.http.request(Method::GET, url).query(&query), what).await?;
    parse_long_lived(&doc, long).ok_or_else(|| not_a_token(ctx, what))
}

#[async_trait]
impl Provider for InstagramProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// Exchanges the code for a short-lived token, then that for a long-lived one. If Instagram
    /// is unreachable for the second step the short-lived token is kept: the next refresh
    /// exchanges it while it is valid.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let what = "token endpoint";
        let code = code.strip_suffix("#_").unwrap_or(code);
        let settings = ctx.settings;
        let secret = settings.client_secret.as_ref().map(|s| s.expose_secret());
        let mut form =
            vec![("grant_type", "authorization_code"), ("redirect_uri", ctx.redirect_uri.as_str()), ("code", code)];
        let mut request = ctx.http.post(settings.token_url.clone());
        match settings.client_auth {
            ClientAuth::Basic => request = request.basic_auth(&settings.client_id, secret),
            _ => {
                form.push(("client_id", &settings.client_id));
                form.extend(secret.map(|s| ("client_secret", s)));
            }
        }
        let doc = token_call(ctx, request.form(&form), what).await?;
        let short = parse_code_answer(&doc).ok_or_else(|| not_a_token(ctx, what))?;
        match exchange(ctx, &short).await {
            Ok(long) => Ok(long),
            Err(Error::Provider { kind: ProviderErrorKind::Temporary { .. }, .. }) => Ok(short),
            Err(e) => Err(e),
        }
    }

    /// A short-lived token is exchanged for a long-lived one; a long-lived one is renewed once
    /// it is 24 hours old. Code 190 means the user must connect again.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let id = ctx.id.as_str();
        if !current.is_valid(SystemTime::now().into()) {
            return Err(Error::provider(
                id,
                ProviderErrorKind::InvalidGrant,
                "the Instagram token expired; an expired token cannot be renewed",
            ));
        }
        if !current.extra.contains_key(LONG_LIVED_SINCE) {
            return exchange(ctx, current).await;
        }
        let now = unix_now();
        if let Some(at) = too_young_until(current, now) {
            let hours = (at - now).div_ceil(3600);
            return Err(Error::provider(
                id,
                ProviderErrorKind::Rejected,
                format!(
                    "Instagram renews a long-lived token only once it is 24 hours old; this one becomes \
                     renewable in about {hours} h (it stays valid meanwhile)"
                ),
            ));
        }
        renew(ctx, current).await
    }

    /// A token with an expiry can be renewed while it is still valid.
    fn can_refresh(&self, tokens: &TokenSet) -> bool {
        tokens.expires_at.is_some() && tokens.is_valid(SystemTime::now().into())
    }

    /// Instagram Login tokens have no revocation endpoint.
    async fn revoke(&self, ctx: &ProviderContext<'_>, _tokens: &TokenSet) -> Result<RevokeOutcome> {
        Err(Error::provider(
            ctx.id.as_str(),
            ProviderErrorKind::Unsupported,
            "Instagram has no endpoint to revoke Instagram Login tokens: the token stays valid until it expires \
             unless the user removes the app in Instagram's settings (Apps and websites)",
        ))
    }
}

tether_core::register_provider!(InstagramProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{AuthorizationRequest, ProviderConfig, ProviderId, ProviderSettings};

    fn settings(extra: &[(&str, &str)]) -> ProviderSettings {
        let mut config = ProviderConfig {
            client_id: Some("990602627938098".into()),
            client_secret: Some(SecretString::from("a1b2c3".to_owned())),
            ..ProviderConfig::default()
        };
        for (k, v) in extra {
            config.extra.insert((*k).into(), json!(v));
        }
        ProviderSettings::resolve("instagram", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap())
            .unwrap()
    }

    #[test]
    fn authorization_url_has_comma_separated_scopes_and_no_pkce() {
        let (id, settings, http) =
            (ProviderId::parse("instagram").unwrap(), settings(&[]), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/instagram").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let verifier = SecretString::from("v".repeat(43));
        let url = InstagramProvider
            .authorization_url(
                &ctx,
                &AuthorizationRequest { state: "st", scopes: &settings.scopes, pkce_verifier: Some(&verifier) },
            )
            .unwrap();
        assert_eq!(url.host_str(), Some("www.instagram.com"));
        assert_eq!(url.path(), "/oauth/authorize");
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["client_id"], "990602627938098");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["scope"], "instagram_business_basic,instagram_business_content_publish");
        assert_eq!(q["redirect_uri"], "https://tether.example.com/callback/instagram");
        assert_eq!(q["state"], "st");
        assert!(!q.contains_key("code_challenge"));
    }

    #[test]
    fn exchange_and_renewal_urls_follow_the_api_base_or_their_own_setting() {
        let (id, http) = (ProviderId::parse("instagram").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/instagram").unwrap();
        let s = settings(&[]);
        let ctx = ProviderContext { id: &id, settings: &s, http: &http, redirect_uri: &redirect };
        assert_eq!(
            graph_url(&ctx, "exchange_url", "access_token").unwrap().as_str(),
            "https://graph.instagram.com/access_token"
        );
        assert_eq!(
            graph_url(&ctx, "refresh_url", "refresh_access_token").unwrap().as_str(),
            "https://graph.instagram.com/refresh_access_token"
        );
        let s = settings(&[("refresh_url", "http://127.0.0.1:9/renew")]);
        let ctx = ProviderContext { id: &id, settings: &s, http: &http, redirect_uri: &redirect };
        assert_eq!(
            graph_url(&ctx, "refresh_url", "refresh_access_token").unwrap().as_str(),
            "http://127.0.0.1:9/renew"
        );
        let s = settings(&[("refresh_url", "not a url")]);
        let ctx = ProviderContext { id: &id, settings: &s, http: &http, redirect_uri: &redirect };
        let e = graph_url(&ctx, "refresh_url", "refresh_access_token").unwrap_err().to_string();
        assert!(e.contains("providers.instagram.refresh_url"), "{e}");
    }

    #[test]
    fn code_answers_are_read_flat_or_wrapped_in_data() {
        let wrapped = json!({"data": [{"access_token": "IGAAshort", "user_id": "17841400000000001",
            "permissions": "instagram_business_basic,instagram_business_content_publish"}]});
        let t = parse_code_answer(&wrapped).unwrap();
        assert_eq!(t.access_token.expose_secret(), "IGAAshort");
        assert_eq!(t.extra["user_id"], "17841400000000001");
        assert_eq!(t.scopes.unwrap(), ["instagram_business_basic", "instagram_business_content_publish"]);
        assert!(t.expires_at.is_some(), "a short-lived token expires (one hour)");
        assert!(!t.extra.contains_key(LONG_LIVED_SINCE));
        let flat = json!({"access_token": "IGQVshort", "user_id": 17841400000000002_u64});
        let t = parse_code_answer(&flat).unwrap();
        assert_eq!(t.extra["user_id"], "17841400000000002");
        assert!(t.scopes.is_none());
        assert!(parse_code_answer(&json!({"data": []})).is_none());
        assert!(parse_code_answer(&json!({"error_type": "OAuthException"})).is_none());
    }

    #[test]
    fn long_lived_answers_keep_scopes_and_record_their_issue_time() {
        let mut short = TokenSet::bearer("IGAAshort");
        short.scopes = Some(vec!["instagram_business_basic".into()]);
        short.extra.insert("user_id".into(), json!("1784"));
        let long = parse_long_lived(
            &json!({"access_token": "IGAAlong", "token_type": "bearer", "expires_in": 5183944}),
            &short,
        )
        .unwrap();
        assert_eq!(long.access_token.expose_secret(), "IGAAlong");
        assert!(long.refresh_token.is_none());
        assert_eq!(long.scopes.as_deref().unwrap(), ["instagram_business_basic"]);
        assert_eq!(long.extra["user_id"], "1784");
        let since = long.extra[LONG_LIVED_SINCE].as_u64().unwrap();
        assert!(since.abs_diff(unix_now()) < 5);
        let in_days = |d: u64| SystemTime::now() + Duration::from_secs(d * 86_400);
        assert!(long.is_valid(in_days(59).into()) && !long.is_valid(in_days(61).into()));
        assert!(parse_long_lived(&json!({"token_type": "bearer"}), &short).is_none());
    }

    #[test]
    fn a_long_lived_token_is_renewable_once_it_is_a_day_old() {
        let now = unix_now();
        let mut t = TokenSet::bearer("IGAA");
        t.expires_at = from_now(Duration::from_secs(60 * 86_400));
        assert_eq!(too_young_until(&t, now), None, "a short-lived token is exchanged, never too young");
        t.extra.insert(LONG_LIVED_SINCE.into(), json!(now - 3600));
        assert_eq!(too_young_until(&t, now), Some(now - 3600 + 86_400));
        t.extra.insert(LONG_LIVED_SINCE.into(), json!(now - 86_401));
        assert_eq!(too_young_until(&t, now), None);
        // A token that expires before it is a day old is left to Instagram to judge.
        t.extra.insert(LONG_LIVED_SINCE.into(), json!(now - 10));
        t.expires_at = from_now(Duration::from_secs(60));
        assert_eq!(too_young_until(&t, now), None);
    }

    #[test]
    fn code_190_is_a_dead_grant_in_both_error_shapes() {
        let graph = br#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A"}}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, graph, "the long-lived token renewal");
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("code 190/463"), "{message}");
        let old = br#"{"error_type":"OAuthException","code":400,"error_message":"Invalid authorization code"}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, old, "token endpoint");
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(message.contains("code 400: Invalid authorization code"), "{message}");
        let limited =
            br#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4}}"#;
        assert!(matches!(classify(StatusCode::BAD_REQUEST, limited, "x").0, ProviderErrorKind::Temporary { .. }));
        assert!(matches!(classify(StatusCode::BAD_GATEWAY, b"", "x").0, ProviderErrorKind::Temporary { .. }));
        assert_eq!(classify(StatusCode::BAD_REQUEST, b"<html>", "x").0, ProviderErrorKind::Rejected);
    }

    #[test]
    fn only_a_valid_expiring_token_can_be_renewed() {
        let p = InstagramProvider;
        let mut t = TokenSet::bearer("IGAA");
        assert!(!p.can_refresh(&t));
        t.expires_at = from_now(Duration::from_secs(3600));
        assert!(p.can_refresh(&t));
        t.expires_at = Some(SystemTime::UNIX_EPOCH.into());
        assert!(!p.can_refresh(&t));
    }
}
