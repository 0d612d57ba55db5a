//! Pinterest (API v5): OAuth 2.0 for a Pinterest app, to read the account and its boards and
//! create pins.
//!
//! Quirks handled here:
//! - HTTP Basic client authentication at the token endpoint, no PKCE, comma-separated scopes;
//! - errors are not RFC 6749: `{"code": <int>, "message": "..."}`. Code 283 ("The
//!   authorization grant is invalid") on a refresh means the grant is dead, so the token
//!   requests are made here, not by the core defaults (which only know RFC `error` fields);
//! - continuous refresh: 30-day access tokens, 60-day refresh tokens, and every refresh answers
//!   a **new** refresh token (stored before the access token is handed out). Refresh requests
//!   send `continuous_refresh=true`, which apps created before 2025-09-25 need;
//! - the account is `GET /v5/user_account`: `id`, or the `username` where a response has no
//!   `id` (older API versions), and `username` as the name;
//! - Pinterest revokes only tokens of system users, not user tokens: disconnecting deletes the
//!   tokens in Tether and reports `revoked: false` (the user removes the app in their settings).
//!
//! Setup: see docs/providers/pinterest.md.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::time::{Duration, SystemTime};

use tether_core::reqwest::StatusCode;
use tether_core::serde_json::{Map, Value};
use tether_core::{
    AccountIdentity, ClientAuth, Error, ExposeSecret, PkceMode, Provider, ProviderContext, ProviderErrorKind,
    ProviderSpec, Result, SecretString, TokenSet, async_trait,
};

/// Pinterest's endpoints and defaults. There is no revocation endpoint for user tokens.
pub static SPEC: ProviderSpec = ProviderSpec {
    authorize_url: "https://www.pinterest.com/oauth/",
    token_url: "https://api.pinterest.com/v5/oauth/token",
    userinfo_url: Some("https://api.pinterest.com/v5/user_account"),
    revoke_url: None,
    api_base_url: Some("https://api.pinterest.com/"),
    default_scopes: &["user_accounts:read", "pins:read", "pins:write", "boards:read"],
    scope_separator: ",",
    pkce: PkceMode::None,
    client_auth: ClientAuth::Basic,
    account_id_field: "id",
    account_name_field: "username",
    ..ProviderSpec::oauth2("pinterest", "Pinterest")
};

/// Pinterest's error code for a dead authorization code or refresh token.
const INVALID_GRANT: i64 = 283;

/// The Pinterest provider.
#[derive(Debug, Default)]
pub struct PinterestProvider;

/// A failed token request, classified: a dead grant (Pinterest code 283, or an RFC
/// `invalid_grant`) needs the user; anything else is refused or not understood.
fn classify_error(status: StatusCode, body: &[u8]) -> (ProviderErrorKind, String) {
    let doc: Option<Value> = tether_core::serde_json::from_slice(body).ok();
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(|s| tether_core::printable(s, 200));
    let pinterest_code = doc.as_ref().and_then(|d| d.get("code")).and_then(Value::as_i64);
    let rfc_error = text(doc.as_ref().and_then(|d| d.get("error")));
    match (pinterest_code, rfc_error) {
        (Some(code), _) => {
            let message = text(doc.as_ref().and_then(|d| d.get("message"))).unwrap_or_default();
            let kind =
                if code == INVALID_GRANT { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
            (kind, format!("token endpoint answered HTTP {status}, code {code}: {message}"))
        }
        (None, Some(error)) => {
            let kind =
                if error == "invalid_grant" { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
            (kind, format!("token endpoint answered HTTP {status}, `{error}`"))
        }
        (None, None) if status.is_success() => {
            (ProviderErrorKind::Protocol, "token endpoint answered something that is not a token response".into())
        }
        (None, None) => (ProviderErrorKind::Rejected, format!("token endpoint answered HTTP {status}")),
    }
}

/// A number of seconds given as a number or a string.
fn seconds(v: Option<&Value>) -> Option<Duration> {
    tether_core::lenient_u64(v).map(Duration::from_secs)
}

/// A point in time `d` from now, as a [`TokenSet`] stores it.
fn from_now<T: From<SystemTime>>(d: Duration) -> Option<T> {
    SystemTime::now().checked_add(d).map(T::from)
}

/// Reads a token response. Keeps the previous refresh token (and its expiry) and scopes when
/// the response does not repeat them; non-secret extra fields go to [`TokenSet::extra`].
fn parse_token_response(doc: &Value, previous: Option<&TokenSet>) -> Option<TokenSet> {
    let obj = doc.as_object()?;
    let access_token = obj.get("access_token")?.as_str().filter(|t| !t.is_empty())?;
    let new_refresh = obj.get("refresh_token").and_then(Value::as_str).filter(|t| !t.is_empty());
    let (refresh_token, refresh_token_expires_at) = match new_refresh {
        Some(rt) => {
            (Some(SecretString::from(rt.to_owned())), seconds(obj.get("refresh_token_expires_in")).and_then(from_now))
        }
        None => (previous.and_then(|p| p.refresh_token.clone()), previous.and_then(|p| p.refresh_token_expires_at)),
    };
    let scopes = match obj.get("scope") {
        Some(Value::String(s)) => Some(tether_core::oauth2_http::split_scopes(s)),
        Some(Value::Array(items)) => Some(items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()),
        _ => previous.and_then(|p| p.scopes.clone()),
    };
    let mut extra: Map<String, Value> = obj.clone();
    extra.retain(|k, _| !k.contains("token") && !k.contains("secret") && k != "expires_in" && k != "scope");
    Some(TokenSet {
        access_token: SecretString::from(access_token.to_owned()),
        token_type: obj.get("token_type").and_then(Value::as_str).unwrap_or("bearer").to_ascii_lowercase(),
        refresh_token,
        token_secret: None,
        expires_at: seconds(obj.get("expires_in")).and_then(from_now),
        refresh_token_expires_at,
        scopes,
        extra,
    })
}

/// POSTs a token request with the configured client authentication and reads the answer.
async fn token_request(
    ctx: &ProviderContext<'_>,
    form: &[(&str, &str)],
    previous: Option<&TokenSet>,
) -> Result<TokenSet> {
    let id = ctx.id.as_str();
    let settings = ctx.settings;
    let mut form: Vec<(&str, &str)> = form.to_vec();
    for (k, v) in &settings.extra_token_params {
        form.push((k, v));
    }
    let mut request = ctx.http.post(settings.token_url.clone()).header("Accept", "application/json");
    let secret = settings.client_secret.as_ref().map(|s| s.expose_secret());
    match settings.client_auth {
        ClientAuth::Post => {
            form.push(("client_id", &settings.client_id));
            if let Some(secret) = secret {
                form.push(("client_secret", secret));
            }
        }
        _ => {
            // RFC 6749 section 2.3.1: form-encode the credentials before Basic encoding.
            request = request.basic_auth(form_encode(&settings.client_id), secret.map(form_encode));
        }
    }
    let resp = request.form(&form).send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if tether_core::is_temporary_status(status) {
        let retry_after = tether_core::oauth2_http::retry_after(resp.headers());
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after },
            format!("token endpoint answered HTTP {status}"),
        ));
    }
    let body = resp.bytes().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    if status.is_success()
        && let Some(tokens) = tether_core::serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|doc| parse_token_response(&doc, previous))
    {
        return Ok(tokens);
    }
    let (kind, message) = classify_error(status, &body);
    Err(Error::provider(id, kind, message))
}

/// `application/x-www-form-urlencoded` encoding of one value (unreserved characters stay,
/// space is `+`, every other byte is `%XX`).
fn form_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(char::from(b)),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[async_trait]
impl Provider for PinterestProvider {
    fn spec(&self) -> &'static ProviderSpec {
        &SPEC
    }

    /// `grant_type=authorization_code`, Basic client authentication, Pinterest errors.
    async fn exchange_code(
        &self,
        ctx: &ProviderContext<'_>,
        code: &str,
        _pkce_verifier: Option<&SecretString>,
    ) -> Result<TokenSet> {
        let form = [("grant_type", "authorization_code"), ("code", code), ("redirect_uri", ctx.redirect_uri.as_str())];
        token_request(ctx, &form, None).await
    }

    /// `grant_type=refresh_token` with `continuous_refresh=true`: a new access token and a new
    /// refresh token. Code 283 means the grant is dead.
    async fn refresh(&self, ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
        let refresh_token = tether_core::current_refresh_token(ctx, current)?;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose_secret()),
            ("continuous_refresh", "true"),
        ];
        token_request(ctx, &form, Some(current)).await
    }

    /// `GET /v5/user_account`: `id`, falling back to `username` when the response has no id.
    async fn fetch_account(&self, ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
        let url = tether_core::userinfo_url(ctx)?;
        let doc = tether_core::get_json(ctx, url, tokens).await?;
        account(ctx.id.as_str(), &doc, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    }
}

/// The account of a `/v5/user_account` document: the configured id field (`id`), else
/// `username` (stable too: Pinterest usernames identify the account in its URLs).
fn account(provider: &str, doc: &Value, id_field: &str, name_field: &str) -> Result<AccountIdentity> {
    tether_core::parse_account(provider, doc, id_field, name_field)
        .or_else(|_| tether_core::parse_account(provider, doc, "username", name_field))
}

tether_core::register_provider!(PinterestProvider);

#[cfg(test)]
mod tests {
    use super::*;
    use tether_core::serde_json::json;

    #[test]
    fn a_dead_grant_is_code_283_and_client_errors_are_not() {
        let (kind, message) =
            classify_error(StatusCode::UNAUTHORIZED, br#"{"code":283,"message":"The authorization grant is invalid"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        assert!(message.contains("283") && message.contains("authorization grant is invalid"), "{message}");
        let (kind, _) = classify_error(StatusCode::UNAUTHORIZED, br#"{"code":2,"message":"Authentication failed."}"#);
        assert_eq!(kind, ProviderErrorKind::Rejected, "bad client credentials must not kill every connection");
        let (kind, _) = classify_error(StatusCode::BAD_REQUEST, br#"{"error":"invalid_grant"}"#);
        assert_eq!(kind, ProviderErrorKind::InvalidGrant);
        let (kind, _) = classify_error(StatusCode::BAD_REQUEST, b"<html>oops</html>");
        assert_eq!(kind, ProviderErrorKind::Rejected);
        let (kind, _) = classify_error(StatusCode::OK, b"{}");
        assert_eq!(kind, ProviderErrorKind::Protocol);
        let (_, message) = classify_error(
            StatusCode::BAD_REQUEST,
            format!(r#"{{"code":1,"message":"{}\n"}}"#, "x".repeat(500)).as_bytes(),
        );
        assert!(message.len() < 300 && !message.contains('\n'), "{message}");
    }

    #[test]
    fn continuous_refresh_stores_the_new_refresh_token_and_its_expiry() {
        let mut previous = TokenSet::bearer("pina_old");
        previous.refresh_token = Some(SecretString::from("pinr_old".to_owned()));
        previous.scopes = Some(vec!["pins:read".into()]);
        let doc = json!({
            "access_token": "pina_new", "refresh_token": "pinr_new", "response_type": "refresh_token",
            "token_type": "bearer", "expires_in": 2592000, "refresh_token_expires_in": 5184000,
            "refresh_token_expires_at": 1767225600, "scope": "boards:read,pins:read,pins:write,user_accounts:read"
        });
        let t = parse_token_response(&doc, Some(&previous)).unwrap();
        assert_eq!(t.access_token.expose_secret(), "pina_new");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose_secret(), "pinr_new");
        assert_eq!(t.scopes.as_deref().unwrap(), ["boards:read", "pins:read", "pins:write", "user_accounts:read"]);
        let now = SystemTime::now();
        let days = |d: u64| now + Duration::from_secs(d * 86_400);
        assert!(t.is_valid(days(29).into()) && !t.is_valid(days(31).into()));
        let mut rt = TokenSet::bearer("x");
        rt.expires_at = t.refresh_token_expires_at;
        assert!(rt.is_valid(days(59).into()) && !rt.is_valid(days(61).into()));
        assert_eq!(t.extra.get("response_type"), Some(&json!("refresh_token")));
        assert!(!t.extra.keys().any(|k| k.contains("token_expires")), "{:?}", t.extra);
    }

    #[test]
    fn a_refresh_answer_without_a_refresh_token_keeps_the_old_one() {
        let mut previous = TokenSet::bearer("pina_old");
        previous.refresh_token = Some(SecretString::from("pinr_old".to_owned()));
        let t =
            parse_token_response(&json!({"access_token": "pina_new", "expires_in": "60"}), Some(&previous)).unwrap();
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "pinr_old");
        assert!(parse_token_response(&json!({"code": 283, "message": "x"}), None).is_none());
        assert!(parse_token_response(&json!({"access_token": ""}), None).is_none());
    }

    #[test]
    fn the_account_is_the_id_or_else_the_username() {
        let doc =
            json!({"account_type": "BUSINESS", "id": "549755885175", "username": "acme", "business_name": "Acme"});
        let a = account("pinterest", &doc, "id", "username").unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("549755885175", Some("acme")));
        let doc = json!({"account_type": "PINNER", "username": "jane", "profile_image": "https://i.pinimg.com/x.jpg"});
        let a = account("pinterest", &doc, "id", "username").unwrap();
        assert_eq!((a.id.as_str(), a.name.as_deref()), ("jane", Some("jane")));
        assert!(account("pinterest", &json!({"account_type": "PINNER"}), "id", "username").is_err());
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("1234567"), "1234567");
        assert_eq!(form_encode("a b+c/é"), "a+b%2Bc%2F%C3%A9");
    }
}
