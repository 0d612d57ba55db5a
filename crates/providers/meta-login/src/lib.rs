//! Meta's long-lived token login, shared by the Instagram (Instagram API with Instagram Login)
//! and Threads provider crates, and Meta's Graph error classification, shared with Facebook.
//!
//! This crate registers **no provider**: a product crate describes itself in a `&'static`
//! [`MetaProduct`] (its [`ProviderSpec`], its name for messages, its exchange and refresh grant
//! types, the minimum renewal age, why it cannot revoke) and registers
//! `MetaLoginProvider::new(&PRODUCT)`.
//!
//! The pattern implemented once here:
//! - id and secret in the form body, no PKCE, comma-separated scopes (the product's spec); a
//!   `#_` Meta appends to the code is stripped;
//! - the code exchange answers a short-lived token (one hour) and the account's `user_id`,
//!   either flat or wrapped in `{"data":[{…}]}`; granted `permissions` become the connection's
//!   scopes;
//! - **no refresh token**: the short-lived token is traded at once for a long-lived one (60
//!   days) with `GET {api_base_url}access_token?grant_type=<exchange grant>` (setting
//!   `exchange_url` overrides the URL), and the long-lived token is renewed with
//!   `GET {api_base_url}refresh_access_token?grant_type=<refresh grant>` (setting
//!   `refresh_url`) once it is at least [`MetaProduct::min_renewal_age`] old and not expired: a
//!   forced refresh of a younger token is refused (with the time it becomes renewable) instead
//!   of being sent; an expired token needs the user again. If the exchange right after the code
//!   fails temporarily, the short-lived token is kept and exchanged by the next refresh;
//! - errors are Meta's Graph `{"error":{"message","type","code","error_subcode",…}}` or the
//!   flat `{"error_type","code","error_message"}` of `api.instagram.com` ([`GraphErrors`]):
//!   code 190 means the grant is dead; rate limits and transient errors are retried;
//! - no revocation: disconnecting reports `revoked: false` with the product's reason.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tether_core::reqwest::{Method, Request, RequestBuilder, StatusCode};
use tether_core::serde_json::{Map, Value};
use tether_core::{
    ClientAuth, Error, ExposeSecret, Provider, ProviderContext, ProviderErrorKind, ProviderSpec, Result, RevokeOutcome,
    SecretString, TokenSet, Url, async_trait,
};

/// Meta's error code for an invalid or expired access token (expired, revoked, app removed):
/// the grant is dead.
pub const INVALID_TOKEN: i64 = 190;

/// The [`TokenSet::extra`] key holding when the long-lived token was issued (Unix seconds);
/// absent while the connection holds a short-lived token.
pub const LONG_LIVED_SINCE: &str = "long_lived_since";

/// How a Meta product's error answers are read and classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphErrors {
    /// Error codes that mean "slow down" or "try again" (besides errors marked
    /// `is_transient`); code [`INVALID_TOKEN`] is always a dead grant.
    pub retryable: &'static [i64],
    /// Whether the flat `{"error_type","code","error_message"}` shape (`api.instagram.com`) is
    /// read too, besides Graph's `{"error":{…}}` and RFC 6749's `{"error":"…"}`.
    pub flat_shape: bool,
}

/// The errors of Instagram Login and Threads: both shapes; unknown error (1), service
/// unavailable (2) and the rate limits retried.
pub const LOGIN_ERRORS: GraphErrors = GraphErrors { retryable: &[1, 2, 4, 17, 32, 341, 613], flat_shape: true };

/// A Meta error: Graph's `{"error":{…}}`, the flat `{"error_type","code","error_message"}`, or
/// an RFC 6749 `{"error":"…"}` (code-less).
#[derive(Debug, PartialEq, Eq)]
struct MetaError {
    code: Option<i64>,
    subcode: Option<i64>,
    message: String,
    transient: bool,
}

impl GraphErrors {
    fn parse(&self, body: &[u8]) -> Option<MetaError> {
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
            _ if self.flat_shape && doc.get("error_type").is_some() => Some(MetaError {
                code: doc.get("code").and_then(Value::as_i64),
                subcode: None,
                message: text(doc.get("error_message"), 200),
                transient: false,
            }),
            _ => None,
        }
    }

    /// What a failed call to `what` (answered `status` with `body`) means for the connection,
    /// and a message for the error (the provider's text, cleaned and cut; never a token).
    /// `Temporary` carries no `retry_after`: the caller adds the `Retry-After` it saw.
    pub fn classify(&self, status: StatusCode, body: &[u8], what: &str) -> (ProviderErrorKind, String) {
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return (ProviderErrorKind::Temporary { retry_after: None }, format!("{what} answered HTTP {status}"));
        }
        let Some(e) = self.parse(body) else {
            return (ProviderErrorKind::Rejected, format!("{what} answered HTTP {status}"));
        };
        let kind = match e.code {
            Some(INVALID_TOKEN) => ProviderErrorKind::InvalidGrant,
            Some(code) if e.transient || self.retryable.contains(&code) => {
                ProviderErrorKind::Temporary { retry_after: None }
            }
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
}

/// Printable text, at most `max` characters (provider messages go into errors and events).
fn clean(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// One Meta product using the long-lived token login: what differs between Instagram and
/// Threads.
#[derive(Debug)]
pub struct MetaProduct {
    /// The product's endpoints and defaults.
    pub spec: &'static ProviderSpec,
    /// The product's name in messages ("Instagram").
    pub name: &'static str,
    /// The grant type trading a short-lived token for a long-lived one (`ig_exchange_token`).
    pub exchange_grant: &'static str,
    /// The grant type renewing a long-lived token (`ig_refresh_token`).
    pub refresh_grant: &'static str,
    /// How old a long-lived token must be before the product renews it (24 hours).
    pub min_renewal_age: Duration,
    /// The life of a short-lived token when the code exchange does not say (one hour).
    pub short_lived: Duration,
    /// Why disconnecting cannot revoke the token, as the user reads it.
    pub no_revocation: &'static str,
}

/// The provider for one [`MetaProduct`]; register it from the product's crate with
/// `tether_core::register_provider!(MetaLoginProvider::new(&PRODUCT))`.
#[derive(Debug, Clone, Copy)]
pub struct MetaLoginProvider {
    product: &'static MetaProduct,
}

impl MetaLoginProvider {
    /// The provider of `product`.
    #[must_use]
    pub const fn new(product: &'static MetaProduct) -> Self {
        Self { product }
    }

    /// The product this provider serves.
    #[must_use]
    pub const fn product(&self) -> &'static MetaProduct {
        self.product
    }

    /// The long-lived token exchange of `short` as it would be sent (not sent; for inspection).
    ///
    /// # Errors
    /// A configuration error when the exchange URL cannot be formed, or a request that cannot
    /// be built.
    pub fn exchange_request(&self, ctx: &ProviderContext<'_>, short: &TokenSet) -> Result<Request> {
        self.exchange_builder(ctx, short)?.build().map_err(|e| Error::provider_unreachable(ctx.id.as_str(), &e))
    }

    /// The renewal of the long-lived token `long` as it would be sent (not sent; for inspection).
    ///
    /// # Errors
    /// A configuration error when the renewal URL cannot be formed, or a request that cannot be
    /// built.
    pub fn renewal_request(&self, ctx: &ProviderContext<'_>, long: &TokenSet) -> Result<Request> {
        self.renewal_builder(ctx, long)?.build().map_err(|e| Error::provider_unreachable(ctx.id.as_str(), &e))
    }

    /// `<exchange grant>`: a valid short-lived token for a long-lived one.
    fn exchange_builder(&self, ctx: &ProviderContext<'_>, short: &TokenSet) -> Result<RequestBuilder> {
        let url = graph_url(ctx, "exchange_url", "access_token")?;
        let secret = ctx.settings.client_secret.as_ref().map(|s| s.expose_secret()).unwrap_or_default();
        let query = [
            ("grant_type", self.product.exchange_grant),
            ("client_secret", secret),
            ("access_token", short.access_token.expose_secret()),
        ];
        Ok(ctx.http.request(Method::GET, url).query(&query))
    }

    /// `<refresh grant>`: a long-lived token (old enough) for a new one, valid 60 days.
    fn renewal_builder(&self, ctx: &ProviderContext<'_>, long: &TokenSet) -> Result<RequestBuilder> {
        let url = graph_url(ctx, "refresh_url", "refresh_access_token")?;
        let query = [("grant_type", self.product.refresh_grant), ("access_token", long.access_token.expose_secret())];
        Ok(ctx.http.request(Method::GET, url).query(&query))
    }

    async fn exchange(&self, ctx: &ProviderContext<'_>, short: &TokenSet) -> Result<TokenSet> {
        let what = "the long-lived token exchange";
        let doc = token_call(ctx, self.exchange_builder(ctx, short)?, what).await?;
        parse_long_lived(&doc, short).ok_or_else(|| not_a_token(ctx, what))
    }

    async fn renew(&self, ctx: &ProviderContext<'_>, long: &TokenSet) -> Result<TokenSet> {
        let what = "the long-lived token renewal";
        let doc = token_call(ctx, self.renewal_builder(ctx, long)?, what).await?;
        parse_long_lived(&doc, long).ok_or_else(|| not_a_token(ctx, what))
    }

    /// When a long-lived token becomes renewable, if that is still ahead and before it expires.
    /// `None`: renew now (a short-lived token, an old enough one, or one that would expire
    /// before reaching the age, which is left to the product to judge).
    fn too_young_until(&self, tokens: &TokenSet, now: u64) -> Option<u64> {
        let since = lenient_u64(tokens.extra.get(LONG_LIVED_SINCE))?;
        let renewable_at = since.saturating_add(self.product.min_renewal_age.as_secs());
        let expires = tokens.expires_at.map(|e| e.timestamp().max(0) as u64)?;
        (now < renewable_at && renewable_at < expires).then_some(renewable_at)
    }
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
/// `{"data":[{…}]}`. The token is short-lived (`short_lived` unless the answer says);
/// `user_id` (string or number) and the granted permissions are kept.
fn parse_code_answer(doc: &Value, short_lived: Duration) -> Option<TokenSet> {
    let entry = match doc.get("data") {
        Some(Value::Array(items)) => items.first()?,
        _ => doc,
    };
    let obj = entry.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let mut tokens = TokenSet::bearer(access_token);
    let life = lenient_u64(obj.get("expires_in")).map_or(short_lived, Duration::from_secs);
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

/// A configured Graph endpoint: `providers.<id>.<key>`, else `api_base_url` + `path`.
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
async fn token_call(ctx: &ProviderContext<'_>, request: RequestBuilder, what: &str) -> Result<Value> {
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
    let (kind, message) = match LOGIN_ERRORS.classify(status, &body, what) {
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

#[async_trait]
impl Provider for MetaLoginProvider {
    fn spec(&self) -> &'static ProviderSpec {
        self.product.spec
    }

    /// Exchanges the code for a short-lived token, then that for a long-lived one. If the
    /// product is unreachable for the second step the short-lived token is kept: the next
    /// refresh exchanges it while it is valid.
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
        let short = parse_code_answer(&doc, self.product.short_lived).ok_or_else(|| not_a_token(ctx, what))?;
        match self.exchange(ctx, &short).await {
            Ok(long) => Ok(long),
            Err(Error::Provider { kind: ProviderErrorKind::Temporary { .. }, .. }) => Ok(short),
            Err(e) => Err(e),
        }
    }

    /// A short-lived token is exchanged for a long-lived one; a long-lived one is renewed once
    /// it is old enough. Code 190 means the user must connect again.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let id = ctx.id.as_str();
        let name = self.product.name;
        if !current.is_valid(SystemTime::now().into()) {
            return Err(Error::provider(
                id,
                ProviderErrorKind::InvalidGrant,
                format!("the {name} token expired; an expired token cannot be renewed"),
            ));
        }
        if !current.extra.contains_key(LONG_LIVED_SINCE) {
            return self.exchange(ctx, current).await;
        }
        let now = unix_now();
        if let Some(at) = self.too_young_until(current, now) {
            let hours = (at - now).div_ceil(3600);
            let age = self.product.min_renewal_age.as_secs() / 3600;
            return Err(Error::provider(
                id,
                ProviderErrorKind::Rejected,
                format!(
                    "{name} renews a long-lived token only once it is {age} hours old; this one becomes \
                     renewable in about {hours} h (it stays valid meanwhile)"
                ),
            ));
        }
        self.renew(ctx, current).await
    }

    /// A token with an expiry can be renewed while it is still valid.
    fn can_refresh(&self, tokens: &TokenSet) -> bool {
        tokens.expires_at.is_some() && tokens.is_valid(SystemTime::now().into())
    }

    /// The product has no revocation endpoint: unsupported, with the product's reason.
    async fn revoke(&self, ctx: &ProviderContext<'_>, _tokens: &TokenSet) -> Result<RevokeOutcome> {
        Err(Error::provider(ctx.id.as_str(), ProviderErrorKind::Unsupported, self.product.no_revocation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;
    use tether_core::{PkceMode, ProviderConfig, ProviderId, ProviderSettings};

    static SPEC: ProviderSpec = ProviderSpec {
        authorize_url: "https://meta.example.com/oauth/authorize",
        token_url: "https://api.meta.example.com/oauth/access_token",
        userinfo_url: Some("https://graph.meta.example.com/me?fields=user_id,username"),
        revoke_url: None,
        api_base_url: Some("https://graph.meta.example.com/"),
        default_scopes: &["basic"],
        scope_separator: ",",
        pkce: PkceMode::None,
        client_auth: ClientAuth::Post,
        account_id_field: "user_id",
        account_name_field: "username",
        ..ProviderSpec::oauth2("metatest", "Meta test product")
    };

    static PRODUCT: MetaProduct = MetaProduct {
        spec: &SPEC,
        name: "Metatest",
        exchange_grant: "mt_exchange_token",
        refresh_grant: "mt_refresh_token",
        min_renewal_age: Duration::from_secs(24 * 3600),
        short_lived: Duration::from_secs(3600),
        no_revocation: "Metatest cannot revoke tokens",
    };

    static P: MetaLoginProvider = MetaLoginProvider::new(&PRODUCT);

    fn settings(extra: &[(&str, &str)]) -> ProviderSettings {
        let mut config = ProviderConfig {
            client_id: Some("990602627938098".into()),
            client_secret: Some(SecretString::from("a1b2c3".to_owned())),
            ..ProviderConfig::default()
        };
        for (k, v) in extra {
            config.extra.insert((*k).into(), json!(v));
        }
        ProviderSettings::resolve("metatest", &SPEC, &config, &Url::parse("https://tether.example.com").unwrap())
            .unwrap()
    }

    /// Runs `f` with a context for `settings` (no request is sent by the tests using it).
    fn with_ctx<T>(s: &ProviderSettings, f: impl FnOnce(&ProviderContext<'_>) -> T) -> T {
        let (id, http) = (ProviderId::parse("metatest").unwrap(), tether_core::reqwest::Client::new());
        let redirect = Url::parse("https://tether.example.com/callback/metatest").unwrap();
        f(&ProviderContext { id: &id, settings: s, http: &http, redirect_uri: &redirect })
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn exchange_and_renewal_use_the_product_grants_and_their_own_url_settings() {
        let mut short = TokenSet::bearer("MTshort");
        with_ctx(&settings(&[]), |ctx| {
            let r = P.exchange_request(ctx, &short).unwrap();
            assert_eq!(r.method(), Method::GET);
            assert_eq!(
                r.url().as_str(),
                "https://graph.meta.example.com/access_token?grant_type=mt_exchange_token&client_secret=a1b2c3&access_token=MTshort"
            );
            let r = P.renewal_request(ctx, &short).unwrap();
            assert_eq!(
                r.url().as_str(),
                "https://graph.meta.example.com/refresh_access_token?grant_type=mt_refresh_token&access_token=MTshort"
            );
        });
        short.access_token = SecretString::from("a b&c".to_owned());
        with_ctx(
            &settings(&[("exchange_url", "http://127.0.0.1:9/x"), ("refresh_url", "http://127.0.0.1:9/renew")]),
            |ctx| {
                let r = P.exchange_request(ctx, &short).unwrap();
                assert!(
                    r.url().as_str().starts_with("http://127.0.0.1:9/x?grant_type=mt_exchange_token&"),
                    "{}",
                    r.url()
                );
                let r = P.renewal_request(ctx, &short).unwrap();
                assert_eq!(
                    r.url().as_str(),
                    "http://127.0.0.1:9/renew?grant_type=mt_refresh_token&access_token=a+b%26c"
                );
            },
        );
        with_ctx(&settings(&[("refresh_url", "not a url")]), |ctx| {
            let e = P.renewal_request(ctx, &short).unwrap_err().to_string();
            assert!(e.contains("providers.metatest.refresh_url"), "{e}");
        });
    }

    #[test]
    fn code_answers_are_read_flat_or_wrapped_in_data() {
        let wrapped = json!({"data": [{"access_token": "MTshort", "user_id": "17841400000000001",
            "permissions": "basic,content_publish"}]});
        let t = parse_code_answer(&wrapped, PRODUCT.short_lived).unwrap();
        assert_eq!(t.access_token.expose_secret(), "MTshort");
        assert_eq!(t.extra["user_id"], "17841400000000001");
        assert_eq!(t.scopes.as_deref().unwrap(), ["basic", "content_publish"]);
        let hour = SystemTime::now() + Duration::from_secs(3590);
        assert!(t.is_valid(hour.into()) && !t.is_valid((hour + Duration::from_secs(20)).into()), "one hour");
        assert!(!t.extra.contains_key(LONG_LIVED_SINCE));
        let flat = json!({"access_token": "MTQVshort", "user_id": 17841400000000002_u64, "expires_in": "7200"});
        let t = parse_code_answer(&flat, PRODUCT.short_lived).unwrap();
        assert_eq!(t.extra["user_id"], "17841400000000002");
        assert!(t.scopes.is_none());
        assert!(t.is_valid((SystemTime::now() + Duration::from_secs(7000)).into()), "the answer's life wins");
        assert!(parse_code_answer(&json!({"data": []}), PRODUCT.short_lived).is_none());
        assert!(parse_code_answer(&json!({"error_type": "OAuthException"}), PRODUCT.short_lived).is_none());
    }

    #[test]
    fn long_lived_answers_keep_scopes_and_record_their_issue_time() {
        let mut short = TokenSet::bearer("MTshort");
        short.scopes = Some(vec!["basic".into()]);
        short.extra.insert("user_id".into(), json!("1784"));
        let long =
            parse_long_lived(&json!({"access_token": "MTlong", "token_type": "bearer", "expires_in": 5183944}), &short)
                .unwrap();
        assert_eq!(long.access_token.expose_secret(), "MTlong");
        assert!(long.refresh_token.is_none());
        assert_eq!(long.scopes.as_deref().unwrap(), ["basic"]);
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
        let mut t = TokenSet::bearer("MTAA");
        t.expires_at = from_now(Duration::from_secs(60 * 86_400));
        assert_eq!(P.too_young_until(&t, now), None, "a short-lived token is exchanged, never too young");
        t.extra.insert(LONG_LIVED_SINCE.into(), json!(now - 3600));
        assert_eq!(P.too_young_until(&t, now), Some(now - 3600 + 86_400));
        t.extra.insert(LONG_LIVED_SINCE.into(), json!(now - 86_401));
        assert_eq!(P.too_young_until(&t, now), None);
        // A token that expires before it is a day old is left to the product to judge.
        t.extra.insert(LONG_LIVED_SINCE.into(), json!(now - 10));
        t.expires_at = from_now(Duration::from_secs(60));
        assert_eq!(P.too_young_until(&t, now), None);
    }

    #[test]
    fn refusals_before_any_call_name_the_product() {
        let s = settings(&[("exchange_url", "http://127.0.0.1:9/"), ("refresh_url", "http://127.0.0.1:9/")]);
        let mut young = TokenSet::bearer("MTAA");
        young.expires_at = from_now(Duration::from_secs(60 * 86_400));
        young.extra.insert(LONG_LIVED_SINCE.into(), json!(unix_now() - 3600));
        let e = with_ctx(&s, |ctx| block_on(P.refresh(ctx, &young))).unwrap_err();
        let Error::Provider { kind: ProviderErrorKind::Rejected, message, .. } = e else { panic!("{e:?}") };
        assert!(message.starts_with("Metatest renews a long-lived token only once it is 24 hours old"), "{message}");
        assert!(message.contains("renewable in about 23 h"), "{message}");
        let mut expired = young.clone();
        expired.expires_at = Some(SystemTime::UNIX_EPOCH.into());
        let e = with_ctx(&s, |ctx| block_on(P.refresh(ctx, &expired))).unwrap_err();
        let Error::Provider { kind: ProviderErrorKind::InvalidGrant, message, .. } = e else { panic!("{e:?}") };
        assert_eq!(message, "the Metatest token expired; an expired token cannot be renewed");
        let e = with_ctx(&s, |ctx| block_on(P.revoke(ctx, &young))).unwrap_err();
        let Error::Provider { kind: ProviderErrorKind::Unsupported, message, .. } = e else { panic!("{e:?}") };
        assert_eq!(message, PRODUCT.no_revocation);
        assert!(std::ptr::eq(P.spec(), &SPEC));
    }

    #[test]
    fn code_190_is_a_dead_grant_in_both_error_shapes() {
        let classify = |status, body: &[u8], what| LOGIN_ERRORS.classify(status, body, what);
        let graph = br#"{"error":{"message":"Error validating access token: Session has expired","type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":"A"}}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, graph, "the long-lived token renewal");
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("code 190/463"), "{message}");
        let old = br#"{"error_type":"OAuthException","code":400,"error_message":"Invalid authorization code"}"#;
        let (kind, message) = classify(StatusCode::BAD_REQUEST, old, "token endpoint");
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert!(message.contains("code 400: Invalid authorization code"), "{message}");
        let flat_190 = br#"{"error_type":"OAuthException","code":190,"error_message":"Invalid token"}"#;
        assert_eq!(classify(StatusCode::BAD_REQUEST, flat_190, "x").0, ProviderErrorKind::InvalidGrant);
        let limited =
            br#"{"error":{"message":"(#4) Application request limit reached","type":"OAuthException","code":4}}"#;
        assert!(matches!(classify(StatusCode::BAD_REQUEST, limited, "x").0, ProviderErrorKind::Temporary { .. }));
        assert!(matches!(classify(StatusCode::BAD_GATEWAY, b"", "x").0, ProviderErrorKind::Temporary { .. }));
        assert_eq!(classify(StatusCode::BAD_REQUEST, b"<html>", "x").0, ProviderErrorKind::Rejected);
        assert_eq!(
            classify(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#, "x").0,
            ProviderErrorKind::InvalidGrant
        );
    }

    #[test]
    fn graph_only_errors_ignore_the_flat_shape_and_take_their_own_retryable_codes() {
        let graph_only = GraphErrors { retryable: &[4], flat_shape: false };
        let flat_190 = br#"{"error_type":"OAuthException","code":190,"error_message":"Invalid token"}"#;
        let (kind, message) = graph_only.classify(StatusCode::BAD_REQUEST, flat_190, "x");
        assert_eq!((kind, message.as_str()), (ProviderErrorKind::Rejected, "x answered HTTP 400 Bad Request"));
        let code_1 = br#"{"error":{"message":"An unknown error occurred","type":"OAuthException","code":1}}"#;
        assert!(matches!(
            LOGIN_ERRORS.classify(StatusCode::BAD_REQUEST, code_1, "x").0,
            ProviderErrorKind::Temporary { .. }
        ));
        assert_eq!(graph_only.classify(StatusCode::BAD_REQUEST, code_1, "x").0, ProviderErrorKind::Rejected);
        let transient = br#"{"error":{"message":"try again","code":9000,"is_transient":true}}"#;
        assert!(matches!(
            graph_only.classify(StatusCode::BAD_REQUEST, transient, "x").0,
            ProviderErrorKind::Temporary { .. }
        ));
    }

    #[test]
    fn meta_errors_parse_with_or_without_a_subcode_and_are_cleaned() {
        let e = LOGIN_ERRORS
            .parse(br#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190}}"#)
            .unwrap();
        assert_eq!((e.code, e.subcode, e.transient), (Some(190), None, false));
        assert!(LOGIN_ERRORS.parse(br#"{"data":[]}"#).is_none());
        let long = json!({"error": {"message": format!("a\nb{}", "x".repeat(300)), "code": 100}}).to_string();
        let e = LOGIN_ERRORS.parse(long.as_bytes()).unwrap();
        assert_eq!(e.message.chars().count(), 200);
        assert!(e.message.starts_with("abx"));
    }

    #[test]
    fn only_a_valid_expiring_token_can_be_renewed() {
        let mut t = TokenSet::bearer("MTAA");
        assert!(!P.can_refresh(&t));
        t.expires_at = from_now(Duration::from_secs(3600));
        assert!(P.can_refresh(&t));
        t.expires_at = Some(SystemTime::UNIX_EPOCH.into());
        assert!(!P.can_refresh(&t));
    }
}
