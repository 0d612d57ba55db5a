//! The requests Tether makes to an atproto authorization server, each with a DPoP proof and
//! client authentication: pushed authorization requests (PAR), the code and refresh grants,
//! and revocation. A server that asks for a (new) DPoP nonce gets the request once more with
//! it; nonces are remembered per server.

use chrono::Utc;
use serde::Deserialize;
use tether_core::oauth2_http::{describe_reqwest_error, retry_after};
use tether_core::{
    DpopNonces, EsKey, ExposeSecret, ProviderErrorKind, SecretString, TokenSet, Url, dpop_proof, is_use_dpop_nonce,
    reqwest, serde_json,
};

use crate::PROVIDER_ID;
use crate::error::excerpt;

/// Largest answer read from an authorization server.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// An answer of an authorization server.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    retry_after: Option<std::time::Duration>,
}

fn provider_error(kind: ProviderErrorKind, message: impl Into<String>) -> tether_core::Error {
    tether_core::Error::provider(PROVIDER_ID, kind, message)
}

/// Sends a request to `url` with a DPoP proof signed by `key` (with `ath` when `access_token`
/// is given: a resource request), sending it once more with the server's new nonce when it
/// answers `use_dpop_nonce` (RFC 9449 §8–9). `build` makes the request for each attempt
/// (client assertions are single use). Only transport failures and oversized answers are
/// errors; any answer is returned, read up to [`MAX_ANSWER_BYTES`].
async fn send_with_dpop(
    nonces: &DpopNonces,
    key: &EsKey,
    method: &str,
    url: &Url,
    access_token: Option<&str>,
    build: impl Fn() -> tether_core::Result<reqwest::RequestBuilder>,
) -> tether_core::Result<Answer> {
    let unreachable = |e: &reqwest::Error| {
        provider_error(
            ProviderErrorKind::Temporary { retry_after: None },
            format!("{} could not be reached: {}", origin_of(url), describe_reqwest_error(e)),
        )
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let nonce = nonces.get(url);
        let proof = dpop_proof(key, method, url.as_str(), nonce.as_deref(), access_token)
            .map_err(|e| provider_error(ProviderErrorKind::Protocol, format!("signing a DPoP proof: {e}")))?;
        let mut resp = build()?.header("DPoP", proof).send().await.map_err(|e| unreachable(&e))?;
        let learnt = nonces.update_from_headers(url, resp.headers());
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| unreachable(&e))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(provider_error(
                    ProviderErrorKind::Protocol,
                    format!("{} answered with more than {MAX_ANSWER_BYTES} bytes", origin_of(url)),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        if attempt == 1 && learnt && is_use_dpop_nonce(status, &headers, &body) {
            continue;
        }
        return Ok(Answer { status, body, retry_after: retry_after(&headers) });
    }
}

/// POSTs `form()` to an authorization server endpoint with a DPoP proof (see
/// [`send_with_dpop`]). `form` is called for each attempt.
pub(crate) async fn dpop_post(
    http: &reqwest::Client,
    nonces: &DpopNonces,
    key: &EsKey,
    url: &Url,
    form: impl Fn() -> tether_core::Result<Vec<(&'static str, String)>>,
) -> tether_core::Result<Answer> {
    send_with_dpop(nonces, key, "POST", url, None, || {
        Ok(http.post(url.clone()).header(reqwest::header::ACCEPT, "application/json").form(&form()?))
    })
    .await
}

fn origin_of(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The `error` and `error_description` of an OAuth error answer.
fn oauth_error(body: &[u8]) -> (Option<String>, Option<String>) {
    let json: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |k: &str| json.get(k).and_then(|v| v.as_str()).map(|s| s.chars().take(200).collect::<String>());
    (text("error"), text("error_description"))
}

/// An error for a refused request: temporary for 5xx/429 and an unsatisfied nonce, a dead
/// grant for `invalid_grant`, otherwise a refusal naming the server's error.
pub(crate) fn refusal(what: &str, answer: &Answer) -> tether_core::Error {
    let (code, description) = oauth_error(&answer.body);
    let detail = match (&code, &description) {
        (Some(c), Some(d)) => format!("{c}: {d}"),
        (Some(c), None) => c.clone(),
        _ => format!("HTTP {}{}", answer.status, excerpt(&answer.body)),
    };
    let message = format!("{what} refused ({detail})");
    let kind = match code.as_deref() {
        _ if answer.status == 429 || answer.status >= 500 => {
            ProviderErrorKind::Temporary { retry_after: answer.retry_after }
        }
        Some("use_dpop_nonce") => ProviderErrorKind::Temporary { retry_after: None },
        Some("invalid_grant") => ProviderErrorKind::InvalidGrant,
        _ => ProviderErrorKind::Rejected,
    };
    provider_error(kind, message)
}

#[derive(Deserialize)]
struct ParAnswer {
    request_uri: String,
}

/// Pushes the authorization request; returns its `request_uri`.
pub(crate) async fn push_authorization_request(
    http: &reqwest::Client,
    nonces: &DpopNonces,
    key: &EsKey,
    par_endpoint: &Url,
    form: impl Fn() -> tether_core::Result<Vec<(&'static str, String)>>,
) -> tether_core::Result<String> {
    let answer = dpop_post(http, nonces, key, par_endpoint, form).await?;
    if !(200..300).contains(&answer.status) {
        return Err(refusal("the pushed authorization request", &answer));
    }
    let par: ParAnswer = serde_json::from_slice(&answer.body)
        .map_err(|e| provider_error(ProviderErrorKind::Protocol, format!("the PAR answer has no request_uri ({e})")))?;
    if par.request_uri.is_empty() || par.request_uri.len() > 2048 {
        return Err(provider_error(ProviderErrorKind::Protocol, "the PAR answer has an unusable request_uri"));
    }
    Ok(par.request_uri)
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    refresh_token: Option<String>,
    expires_in: Option<i64>,
    scope: Option<String>,
    sub: Option<String>,
}

/// Tokens of a token answer, with the `sub` (the account DID) it names.
pub(crate) struct IssuedTokens {
    pub(crate) tokens: TokenSet,
    pub(crate) sub: String,
}

/// Sends a token request (code or refresh grant) and checks the answer as atproto requires:
/// `token_type` `DPoP`, a `sub`, the `atproto` scope.
pub(crate) async fn request_tokens(
    http: &reqwest::Client,
    nonces: &DpopNonces,
    key: &EsKey,
    token_endpoint: &Url,
    what: &str,
    form: impl Fn() -> tether_core::Result<Vec<(&'static str, String)>>,
) -> tether_core::Result<IssuedTokens> {
    let answer = dpop_post(http, nonces, key, token_endpoint, form).await?;
    if answer.status != 200 {
        return Err(refusal(what, &answer));
    }
    let parsed: TokenAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
        provider_error(ProviderErrorKind::Protocol, format!("the {what} answer is not a token answer ({e})"))
    })?;
    if !parsed.token_type.eq_ignore_ascii_case("dpop") {
        return Err(provider_error(
            ProviderErrorKind::Protocol,
            format!(
                "the {what} answer has token_type `{}`, not DPoP",
                parsed.token_type.chars().take(20).collect::<String>()
            ),
        ));
    }
    let sub = parsed.sub.filter(|s| s.starts_with("did:")).ok_or_else(|| {
        provider_error(ProviderErrorKind::Protocol, format!("the {what} answer names no account (`sub` DID)"))
    })?;
    let scopes: Vec<String> = parsed.scope.unwrap_or_default().split_whitespace().map(str::to_owned).collect();
    if !scopes.iter().any(|s| s == "atproto") {
        return Err(provider_error(ProviderErrorKind::Protocol, format!("the {what} answer lacks the atproto scope")));
    }
    if parsed.access_token.is_empty() {
        return Err(provider_error(
            ProviderErrorKind::Protocol,
            format!("the {what} answer has an empty access token"),
        ));
    }
    let now = Utc::now();
    let tokens = TokenSet {
        access_token: SecretString::from(parsed.access_token),
        token_type: "DPoP".to_owned(),
        refresh_token: parsed.refresh_token.filter(|r| !r.is_empty()).map(SecretString::from),
        token_secret: None,
        expires_at: parsed.expires_in.map(|s| now + chrono::Duration::seconds(s.clamp(0, 10 * 365 * 86_400))),
        refresh_token_expires_at: None,
        scopes: Some(scopes),
        extra: serde_json::Map::new(),
    };
    Ok(IssuedTokens { tokens, sub })
}

/// GETs `url` from a PDS with the DPoP-bound `access_token` and a proof with `ath` (see
/// [`send_with_dpop`]).
pub(crate) async fn resource_get(
    http: &reqwest::Client,
    nonces: &DpopNonces,
    key: &EsKey,
    url: &Url,
    access_token: &SecretString,
) -> tether_core::Result<Answer> {
    let token = access_token.expose_secret();
    send_with_dpop(nonces, key, "GET", url, Some(token), || {
        Ok(http.get(url.clone()).header(reqwest::header::AUTHORIZATION, format!("DPoP {token}")))
    })
    .await
}

/// Revokes `token` at `revocation_endpoint` (RFC 7009 with DPoP and client authentication).
pub(crate) async fn revoke(
    http: &reqwest::Client,
    nonces: &DpopNonces,
    key: &EsKey,
    revocation_endpoint: &Url,
    token: &SecretString,
    client_auth: impl Fn() -> tether_core::Result<Vec<(&'static str, String)>>,
) -> tether_core::Result<()> {
    let answer = dpop_post(http, nonces, key, revocation_endpoint, || {
        let mut form = client_auth()?;
        form.push(("token", token.expose_secret().to_owned()));
        Ok(form)
    })
    .await?;
    if (200..300).contains(&answer.status) { Ok(()) } else { Err(refusal("revocation", &answer)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer { status, body: body.as_bytes().to_vec(), retry_after: None }
    }

    fn kind(e: tether_core::Error) -> ProviderErrorKind {
        match e {
            tether_core::Error::Provider { kind, .. } => kind,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refusals_are_classified() {
        assert_eq!(kind(refusal("x", &answer(400, r#"{"error":"invalid_grant"}"#))), ProviderErrorKind::InvalidGrant);
        assert!(matches!(kind(refusal("x", &answer(503, ""))), ProviderErrorKind::Temporary { .. }));
        assert!(matches!(
            kind(refusal("x", &answer(400, r#"{"error":"use_dpop_nonce"}"#))),
            ProviderErrorKind::Temporary { .. }
        ));
        let e = refusal("the refresh", &answer(401, r#"{"error":"invalid_client","error_description":"bad kid"}"#));
        assert!(e.to_string().contains("invalid_client: bad kid"), "{e}");
        assert_eq!(kind(e), ProviderErrorKind::Rejected);
    }
}
