//! Token requests a provider makes itself because its token endpoint answers errors that are
//! not RFC 6749 (Twitch `{"status","message"}`, Zoom `{"reason","error"}`): the request, the
//! client authentication and the token parsing are the defaults'; the provider only says what
//! a failed answer means.

use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};

use super::{ClientAuth, PkceMode, ProviderContext};
use crate::oauth2_http::{FlexibleTokenResponse, retry_after};
use crate::{Error, ProviderErrorKind, Result, TokenSet};

/// Reads a failed token answer: the HTTP status and the raw body, to what the engine should
/// do and a message for logs, events and API answers. The message must never contain the
/// body itself (it may hold tokens), only short fields of it.
pub type TokenErrorClassifier = fn(StatusCode, &[u8]) -> (ProviderErrorKind, String);

/// POSTs a token request (`form`, plus the configured `extra_token_params`) to the configured
/// token endpoint with the configured client authentication (HTTP Basic, or `client_id` and
/// `client_secret` in the form), and reads the answer leniently like the defaults do
/// (`expires_in` as number or string, `scope` as a string or an array; `previous`'s refresh
/// token and scopes are kept when the answer does not repeat them).
///
/// Unreachable providers, 5xx and 429 are [`ProviderErrorKind::Temporary`]; any other answer
/// that is not a token response goes to `classify`.
///
/// ```ignore
/// let form = [("grant_type", "refresh_token"), ("refresh_token", rt.expose_secret())];
/// tether_core::request_tokens(ctx, &form, Some(current), classify_twitch_error).await
/// ```
pub async fn request_tokens(
    ctx: &ProviderContext<'_>,
    form: &[(&str, &str)],
    previous: Option<&TokenSet>,
    classify: TokenErrorClassifier,
) -> Result<TokenSet> {
    let id = ctx.id.as_str();
    let settings = ctx.settings;
    let mut form: Vec<(&str, &str)> = form.to_vec();
    form.extend(settings.extra_token_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut request = ctx.http.post(settings.token_url.clone()).header(reqwest::header::ACCEPT, "application/json");
    match (settings.client_auth, settings.client_secret.as_ref().map(|s| s.expose_secret())) {
        (ClientAuth::Basic, Some(secret)) => {
            // RFC 6749 section 2.3.1: form-encode the credentials before Basic encoding.
            request = request.basic_auth(form_encode(&settings.client_id), Some(form_encode(secret)));
        }
        (_, secret) => {
            form.push(("client_id", &settings.client_id));
            if let Some(secret) = secret {
                form.push(("client_secret", secret));
            }
        }
    }
    let resp = request.form(&form).send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after: retry_after(resp.headers()) },
            format!("token endpoint answered HTTP {status}"),
        ));
    }
    let body = resp.bytes().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    if status.is_success()
        && let Some(tokens) = parse_token_response(&body, previous)
    {
        return Ok(tokens);
    }
    let (kind, message) = classify(status, &body);
    Err(Error::provider(id, kind, message))
}

/// The form of an authorization-code token request (RFC 6749 section 4.1.3):
/// `grant_type=authorization_code`, `code`, `redirect_uri`, and the PKCE `code_verifier` when
/// the provider does PKCE (`ctx.settings.pkce` is S256) and the flow has a verifier. Client
/// credentials are not in it (see [`request_tokens`]); push provider-specific fields onto it.
///
/// ```ignore
/// let form = tether_core::authorization_code_form(ctx, code, pkce_verifier);
/// tether_core::request_tokens(ctx, &form, None, classify_zoom_error).await
/// ```
pub fn authorization_code_form<'a>(
    ctx: &ProviderContext<'a>,
    code: &'a str,
    pkce_verifier: Option<&'a SecretString>,
) -> Vec<(&'static str, &'a str)> {
    let mut form =
        vec![("grant_type", "authorization_code"), ("code", code), ("redirect_uri", ctx.redirect_uri.as_str())];
    if let (PkceMode::S256, Some(verifier)) = (ctx.settings.pkce, pkce_verifier) {
        form.push(("code_verifier", verifier.expose_secret()));
    }
    form
}

/// The refresh token of `current`, or, when the connection has none, the
/// [`ProviderErrorKind::Unsupported`] error "this connection has no refresh token" that a
/// [`Provider::refresh`](super::Provider::refresh) answers then.
///
/// ```ignore
/// let refresh_token = tether_core::current_refresh_token(ctx, current)?;
/// let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token.expose_secret())];
/// ```
pub fn current_refresh_token<'t>(ctx: &ProviderContext<'_>, current: &'t TokenSet) -> Result<&'t SecretString> {
    current.refresh_token.as_ref().ok_or_else(|| {
        Error::provider(ctx.id.as_str(), ProviderErrorKind::Unsupported, "this connection has no refresh token")
    })
}

/// A token response, or `None` when `body` is not one (an error sent with HTTP 200 included).
fn parse_token_response(body: &[u8], previous: Option<&TokenSet>) -> Option<TokenSet> {
    let doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    if doc.get("error").is_some() {
        return None;
    }
    let resp: FlexibleTokenResponse = serde_json::from_value(doc).ok()?;
    let tokens = super::defaults::token_set(resp, previous);
    (!tokens.access_token.expose_secret().is_empty()).then_some(tokens)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_leniently_and_errors_are_not_tokens() {
        let body = br#"{"access_token":"a","refresh_token":"r","expires_in":14124,"scope":["chat:read","user:read:email"],"token_type":"bearer"}"#;
        let t = parse_token_response(body, None).unwrap();
        assert_eq!(t.access_token.expose_secret(), "a");
        assert_eq!(t.scopes.as_deref().unwrap(), ["chat:read", "user:read:email"]);
        assert!(t.expires_at.is_some());

        let mut previous = TokenSet::bearer("old");
        previous.refresh_token = Some(secrecy::SecretString::from("kept".to_owned()));
        let t = parse_token_response(br#"{"access_token":"b","expires_in":"3600"}"#, Some(&previous)).unwrap();
        assert_eq!(t.refresh_token.unwrap().expose_secret(), "kept");

        assert!(parse_token_response(br#"{"status":400,"message":"Invalid refresh token"}"#, None).is_none());
        assert!(parse_token_response(br#"{"access_token":"x","error":"invalid_request"}"#, None).is_none());
        assert!(parse_token_response(br#"{"access_token":""}"#, None).is_none());
        assert!(parse_token_response(b"<html>", None).is_none());
    }

    fn settings(pkce: PkceMode) -> super::super::ProviderSettings {
        static SPEC: super::super::ProviderSpec = super::super::ProviderSpec {
            authorize_url: "https://p.example/a",
            token_url: "https://p.example/t",
            ..super::super::ProviderSpec::oauth2("p", "P")
        };
        let config = super::super::ProviderConfig {
            client_id: Some("c".into()),
            client_secret: Some(SecretString::from("s".to_owned())),
            pkce: Some(pkce == PkceMode::S256),
            ..Default::default()
        };
        super::super::ProviderSettings::resolve("p", &SPEC, &config, &url::Url::parse("https://t.example").unwrap())
            .unwrap()
    }

    #[test]
    fn the_code_grant_has_the_verifier_only_with_pkce_and_refresh_needs_a_refresh_token() {
        let (id, http) = (crate::ProviderId::parse("p").unwrap(), reqwest::Client::new());
        let redirect = url::Url::parse("https://t.example/callback/p").unwrap();
        let verifier = SecretString::from("v".repeat(43));
        let with_pkce = settings(PkceMode::S256);
        let ctx = ProviderContext { id: &id, settings: &with_pkce, http: &http, redirect_uri: &redirect };
        assert_eq!(
            authorization_code_form(&ctx, "the-code", Some(&verifier)),
            [
                ("grant_type", "authorization_code"),
                ("code", "the-code"),
                ("redirect_uri", "https://t.example/callback/p"),
                ("code_verifier", verifier.expose_secret()),
            ]
        );
        assert_eq!(authorization_code_form(&ctx, "c", None).len(), 3);
        let without = settings(PkceMode::None);
        let ctx = ProviderContext { id: &id, settings: &without, http: &http, redirect_uri: &redirect };
        assert_eq!(authorization_code_form(&ctx, "c", Some(&verifier)).len(), 3, "no verifier without PKCE");

        let mut tokens = TokenSet::bearer("a");
        let Err(Error::Provider { kind, message, .. }) = current_refresh_token(&ctx, &tokens) else { panic!() };
        assert_eq!((kind, message.as_str()), (ProviderErrorKind::Unsupported, "this connection has no refresh token"));
        tokens.refresh_token = Some(SecretString::from("rt".to_owned()));
        assert_eq!(current_refresh_token(&ctx, &tokens).unwrap().expose_secret(), "rt");
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        assert_eq!(form_encode("a b+c/é"), "a+b%2Bc%2F%C3%A9");
    }
}
