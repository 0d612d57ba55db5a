//! Small pieces that providers with their own HTTP calls share: sending a request and reading
//! the whole answer, telling a failure worth a retry from a refusal, revoking the access token
//! (renewed first when it has expired), and reading short, printable fields of an error body
//! for messages (never the body itself: it may hold tokens).

use std::borrow::Cow;
use std::time::Duration;

use chrono::Utc;
use reqwest::StatusCode;

use super::{Provider, ProviderContext, RevokeOutcome};
use crate::oauth2_http::retry_after;
use crate::{Error, ProviderErrorKind, Result, TokenSet};

/// An access token closer than this to its expiry is renewed before it is used to revoke.
pub const REVOKE_RENEWAL_MARGIN: Duration = Duration::from_secs(60);

/// A provider's answer, read whole.
#[derive(Debug, Clone)]
pub struct ProviderAnswer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `Retry-After` header, when it gave seconds.
    pub retry_after: Option<Duration>,
    /// The raw body. It may hold tokens: put only short fields of it in messages.
    pub body: Vec<u8>,
}

impl ProviderAnswer {
    /// The body as a JSON document, if it is one.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Whether the status is worth a retry (5xx or 429, see [`is_temporary_status`]).
    pub fn is_temporary(&self) -> bool {
        is_temporary_status(self.status)
    }

    /// [`ProviderErrorKind::Temporary`] with this answer's `Retry-After`.
    pub fn temporary(&self) -> ProviderErrorKind {
        ProviderErrorKind::Temporary { retry_after: self.retry_after }
    }
}

/// Whether an HTTP status means "try again later": any 5xx, and 429 Too Many Requests.
pub fn is_temporary_status(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS
}

/// Sends `request` and reads the whole answer, whatever its status. A provider that cannot be
/// reached, or whose body breaks off, is [`Error::provider_unreachable`] (temporary); the
/// caller classifies the answer.
///
/// ```ignore
/// let answer = tether_core::send_request(ctx, ctx.http.post(url.clone()).form(&form)).await?;
/// if answer.is_temporary() { /* answer.temporary() */ }
/// ```
pub async fn send_request(ctx: &ProviderContext<'_>, request: reqwest::RequestBuilder) -> Result<ProviderAnswer> {
    let id = ctx.id.as_str();
    let resp = request.send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    let retry_after = retry_after(resp.headers());
    let body = resp.bytes().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    Ok(ProviderAnswer { status, retry_after, body: body.to_vec() })
}

/// Sends a revocation request (with `Accept: application/json`) and reads the answer: any 2xx
/// is [`RevokeOutcome::Revoked`]; 5xx and 429 are [`ProviderErrorKind::Temporary`] (with
/// `Retry-After`), "`{provider_name}` answered HTTP {status} to the revocation"; any other
/// answer is [`ProviderErrorKind::Rejected`] with the message `refused` makes of the status and
/// the body (an empty body when it could not be read). Transport failures are
/// [`Error::provider_unreachable`].
///
/// ```ignore
/// let request = ctx.http.post(url.clone()).form(&[("token", access_token.expose_secret())]);
/// tether_core::send_revocation(ctx, request, "Twitch", |status, body| format!("refused: HTTP {status}")).await
/// ```
pub async fn send_revocation(
    ctx: &ProviderContext<'_>,
    request: reqwest::RequestBuilder,
    provider_name: &str,
    refused: impl FnOnce(StatusCode, &[u8]) -> String + Send,
) -> Result<RevokeOutcome> {
    let id = ctx.id.as_str();
    let resp = request
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(RevokeOutcome::Revoked);
    }
    if is_temporary_status(status) {
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after: retry_after(resp.headers()) },
            format!("{provider_name} answered HTTP {status} to the revocation"),
        ));
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(Error::provider(id, ProviderErrorKind::Rejected, refused(status, &body)))
}

/// The tokens to revoke with, for a provider that revokes with the **access** token (the call
/// must carry a live one): `tokens` as they are, or, when the access token expires within
/// [`REVOKE_RENEWAL_MARGIN`] and `provider` can refresh them, the tokens
/// [`Provider::refresh`] answers. A failed renewal is the revocation's error.
///
/// ```ignore
/// let tokens = tether_core::renew_if_expiring(self, ctx, tokens).await?;
/// let token = tokens.access_token.expose_secret();
/// ```
pub async fn renew_if_expiring<'t, P: Provider + ?Sized>(
    provider: &P,
    ctx: &ProviderContext<'_>,
    tokens: &'t TokenSet,
) -> Result<Cow<'t, TokenSet>> {
    if needs_renewal(tokens, Utc::now()) && provider.can_refresh(tokens) {
        Ok(Cow::Owned(provider.refresh(ctx, tokens).await?))
    } else {
        Ok(Cow::Borrowed(tokens))
    }
}

/// Whether the access token expires within [`REVOKE_RENEWAL_MARGIN`] of `now`.
fn needs_renewal(tokens: &TokenSet, now: chrono::DateTime<Utc>) -> bool {
    let margin = chrono::Duration::from_std(REVOKE_RENEWAL_MARGIN).unwrap_or_else(|_| chrono::Duration::zero());
    !tokens.is_fresh(now, margin)
}

/// The configured `userinfo_url` (the endpoint that names the account), or the configuration
/// error that says it is missing.
///
/// ```ignore
/// let doc = tether_core::get_json(ctx, tether_core::userinfo_url(ctx)?, tokens).await?;
/// ```
pub fn userinfo_url<'a>(ctx: &ProviderContext<'a>) -> Result<&'a url::Url> {
    ctx.settings.userinfo_url.as_ref().ok_or_else(|| {
        Error::Config(format!("providers.{}.userinfo_url is missing: it is needed to identify the account", ctx.id))
    })
}

/// Printable text, at most `max` characters: control characters (line breaks included) are
/// dropped. For provider messages that go into errors, logs and events.
pub fn printable(s: &str, max: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max).collect()
}

/// The `error` code of an RFC 6749 style JSON error body (`{"error": "invalid_client", ...}`),
/// kept to ASCII letters, digits and `_` and at most 60 characters; `None` when the body is not
/// JSON or has no string `error`. Never the raw body.
pub fn json_error_code(body: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = doc.get("error").and_then(|e| e.as_str())?;
    Some(code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(60).collect())
}

/// A whole number given as a JSON number or as a string of digits (`"expires_in": "3600"`),
/// as some providers send lifetimes; `None` for anything else.
pub fn lenient_u64(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ProviderConfig, ProviderId, ProviderSettings, ProviderSpec};
    use async_trait::async_trait;
    use secrecy::{ExposeSecret, SecretString};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use url::Url;

    static SPEC: ProviderSpec = ProviderSpec {
        authorize_url: "https://p.example/a",
        token_url: "https://p.example/t",
        ..ProviderSpec::oauth2("p", "P")
    };

    /// A provider whose refresh answers `renewed` and counts its calls.
    #[derive(Default)]
    struct Renewing(AtomicUsize);

    #[async_trait]
    impl Provider for Renewing {
        fn spec(&self) -> &'static ProviderSpec {
            &SPEC
        }
        async fn refresh(&self, _ctx: &ProviderContext<'_>, _current: &TokenSet) -> Result<TokenSet> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(TokenSet::bearer("renewed"))
        }
    }

    fn settings() -> ProviderSettings {
        let config = ProviderConfig {
            client_id: Some("c".into()),
            client_secret: Some(SecretString::from("s".to_owned())),
            ..ProviderConfig::default()
        };
        ProviderSettings::resolve("p", &SPEC, &config, &Url::parse("https://tether.example").unwrap()).unwrap()
    }

    /// Answers one HTTP request on loopback with `response` (a whole HTTP/1.1 answer).
    async fn serve_once(response: &'static str) -> Url {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 8192];
            let _ = socket.read(&mut buf).await;
            socket.write_all(response.as_bytes()).await.unwrap();
            let _ = socket.shutdown().await;
        });
        Url::parse(&format!("http://{addr}/revoke")).unwrap()
    }

    #[test]
    fn a_missing_userinfo_url_is_a_configuration_error() {
        let (id, http) = (ProviderId::parse("p").unwrap(), reqwest::Client::new());
        let redirect = Url::parse("https://tether.example/callback/p").unwrap();
        let mut settings = settings();
        settings.userinfo_url = Some(Url::parse("https://p.example/me").unwrap());
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        assert_eq!(userinfo_url(&ctx).unwrap().as_str(), "https://p.example/me");
        let mut settings = settings.clone();
        settings.userinfo_url = None;
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let Err(Error::Config(message)) = userinfo_url(&ctx) else { panic!("a configuration error") };
        assert_eq!(message, "providers.p.userinfo_url is missing: it is needed to identify the account");
    }

    #[test]
    fn temporary_statuses_are_5xx_and_429() {
        assert!(is_temporary_status(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(is_temporary_status(StatusCode::SERVICE_UNAVAILABLE));
        assert!(is_temporary_status(StatusCode::TOO_MANY_REQUESTS));
        assert!(!is_temporary_status(StatusCode::BAD_REQUEST));
        assert!(!is_temporary_status(StatusCode::UNAUTHORIZED));
        assert!(!is_temporary_status(StatusCode::OK));
    }

    #[test]
    fn printable_text_drops_control_characters_and_is_short() {
        assert_eq!(printable("Invalid Token!\r\n", 200), "Invalid Token!");
        assert_eq!(printable("é\u{7}x", 200), "éx");
        assert_eq!(printable(&"x".repeat(500), 60).len(), 60);
    }

    #[test]
    fn error_codes_are_short_and_clean() {
        assert_eq!(
            json_error_code(br#"{"error":"invalid_client","error_description":"x"}"#).as_deref(),
            Some("invalid_client")
        );
        assert_eq!(json_error_code(br#"{"error":"<script>"}"#).as_deref(), Some("script"));
        assert_eq!(json_error_code(format!(r#"{{"error":"{}"}}"#, "a".repeat(100)).as_bytes()).unwrap().len(), 60);
        assert_eq!(json_error_code(br#"{"error":{"code":1}}"#), None);
        assert_eq!(json_error_code(b"<html>"), None);
    }

    #[test]
    fn lifetimes_are_numbers_or_strings() {
        assert_eq!(lenient_u64(Some(&json!(3600))), Some(3600));
        assert_eq!(lenient_u64(Some(&json!(" 86400 "))), Some(86400));
        assert_eq!(lenient_u64(Some(&json!(-1))), None);
        assert_eq!(lenient_u64(Some(&json!("soon"))), None);
        assert_eq!(lenient_u64(Some(&json!(null))), None);
        assert_eq!(lenient_u64(None), None);
    }

    #[tokio::test]
    async fn an_expiring_access_token_is_renewed_before_revocation_and_a_live_one_is_not() {
        let (id, settings, http) = (ProviderId::parse("p").unwrap(), settings(), reqwest::Client::new());
        let redirect = Url::parse("https://tether.example/callback/p").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let provider = Renewing::default();

        let mut expiring = TokenSet::bearer("old");
        expiring.refresh_token = Some(SecretString::from("rt".to_owned()));
        expiring.expires_at = Some(Utc::now() + chrono::Duration::seconds(30));
        let tokens = renew_if_expiring(&provider, &ctx, &expiring).await.unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "renewed");

        let mut live = expiring.clone();
        live.expires_at = Some(Utc::now() + chrono::Duration::hours(1));
        let tokens = renew_if_expiring(&provider, &ctx, &live).await.unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "old");

        let mut no_refresh = expiring.clone();
        no_refresh.refresh_token = None;
        let tokens = renew_if_expiring(&provider, &ctx, &no_refresh).await.unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "old", "nothing to renew with");

        let never_expires = TokenSet::bearer("forever");
        let tokens = renew_if_expiring(&provider, &ctx, &never_expires).await.unwrap();
        assert_eq!(tokens.access_token.expose_secret(), "forever");
        assert_eq!(provider.0.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn revocation_answers_are_revoked_temporary_or_refused() {
        let (id, settings, http) = (ProviderId::parse("p").unwrap(), settings(), reqwest::Client::new());
        let redirect = Url::parse("https://tether.example/callback/p").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };
        let refused = |status: StatusCode, body: &[u8]| {
            format!("refused: {status} `{}`", json_error_code(body).unwrap_or_default())
        };

        let url = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
        let outcome = send_revocation(&ctx, http.post(url), "P", refused).await.unwrap();
        assert_eq!(outcome, RevokeOutcome::Revoked);

        let url = serve_once(
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 7\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
        )
        .await;
        let err = send_revocation(&ctx, http.post(url), "P", refused).await.unwrap_err();
        let Error::Provider { kind, message, .. } = err else { panic!("{err:?}") };
        assert_eq!(kind, ProviderErrorKind::Temporary { retry_after: Some(Duration::from_secs(7)) });
        assert_eq!(message, "P answered HTTP 503 Service Unavailable to the revocation");

        let url = serve_once(
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 26\r\nconnection: close\r\n\r\n{\"error\":\"invalid_client\"}",
        )
        .await;
        let err = send_revocation(&ctx, http.post(url), "P", refused).await.unwrap_err();
        let Error::Provider { kind, message, .. } = err else { panic!("{err:?}") };
        assert_eq!(kind, ProviderErrorKind::Rejected);
        assert_eq!(message, "refused: 400 Bad Request `invalid_client`");
    }

    #[tokio::test]
    async fn answers_are_read_whole_and_unreachable_providers_are_temporary() {
        let (id, settings, http) = (ProviderId::parse("p").unwrap(), settings(), reqwest::Client::new());
        let redirect = Url::parse("https://tether.example/callback/p").unwrap();
        let ctx = ProviderContext { id: &id, settings: &settings, http: &http, redirect_uri: &redirect };

        let url = serve_once(
            "HTTP/1.1 429 Too Many Requests\r\nretry-after: 3\r\ncontent-length: 11\r\nconnection: close\r\n\r\n{\"ok\":true}",
        )
        .await;
        let answer = send_request(&ctx, http.get(url)).await.unwrap();
        assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(answer.is_temporary());
        assert_eq!(answer.temporary(), ProviderErrorKind::Temporary { retry_after: Some(Duration::from_secs(3)) });
        assert_eq!(answer.json(), Some(json!({"ok": true})));

        // Nothing listens on a port just freed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let err = send_request(&ctx, http.get(url)).await.unwrap_err();
        let Error::Provider { kind, .. } = err else { panic!("{err:?}") };
        assert_eq!(kind, ProviderErrorKind::Temporary { retry_after: None });
    }
}
