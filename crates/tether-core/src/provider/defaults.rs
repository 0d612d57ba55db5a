//! Default provider behaviour: RFC 6749 / 7636 / 7009 on the `oauth2` crate, driven by the
//! resolved [`ProviderSettings`](super::ProviderSettings).

use std::time::Duration;

use chrono::Utc;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, StandardRevocableToken,
    TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{AuthorizationRequest, ClientAuth, PkceMode, ProviderContext, RevokeOutcome};
use crate::oauth2_http::{FlexibleTokenResponse, OAuthHttp, OAuthHttpError, retry_after};
use crate::{AccountIdentity, Error, ProviderErrorKind, Result, TokenSet};

type CodeClient = Client<
    BasicErrorResponse,
    FlexibleTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

fn client(ctx: &ProviderContext<'_>) -> Result<CodeClient> {
    let s = ctx.settings;
    let mut client = Client::new(ClientId::new(s.client_id.clone()))
        .set_auth_uri(AuthUrl::from_url(s.authorize_url.clone()))
        .set_token_uri(TokenUrl::from_url(s.token_url.clone()))
        .set_redirect_uri(RedirectUrl::from_url(ctx.redirect_uri.clone()))
        .set_auth_type(match s.client_auth {
            ClientAuth::Basic => AuthType::BasicAuth,
            ClientAuth::Post | ClientAuth::PrivateKeyJwt => AuthType::RequestBody,
        });
    if let Some(secret) = &s.client_secret {
        client = client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()));
    }
    Ok(client)
}

/// Default [`Provider::authorization_url`](super::Provider::authorization_url).
pub(super) fn authorization_url(ctx: &ProviderContext<'_>, request: &AuthorizationRequest<'_>) -> Result<Url> {
    let client = client(ctx)?;
    let state = request.state.to_owned();
    let mut auth = client.authorize_url(move || CsrfToken::new(state));
    if !request.scopes.is_empty() {
        auth = auth.add_extra_param("scope", request.scopes.join(&ctx.settings.scope_separator));
    }
    if let (PkceMode::S256, Some(verifier)) = (ctx.settings.pkce, request.pkce_verifier) {
        let verifier = PkceCodeVerifier::new(verifier.expose_secret().to_owned());
        auth = auth.set_pkce_challenge(PkceCodeChallenge::from_code_verifier_sha256(&verifier));
    }
    for (k, v) in &ctx.settings.extra_authorize_params {
        auth = auth.add_extra_param(k.clone(), v.clone());
    }
    let (url, _) = auth.url();
    Ok(url)
}

/// Default [`Provider::exchange_code`](super::Provider::exchange_code).
pub(super) async fn exchange_code(
    ctx: &ProviderContext<'_>,
    code: &str,
    pkce_verifier: Option<&SecretString>,
) -> Result<TokenSet> {
    let client = client(ctx)?;
    let mut req = client.exchange_code(AuthorizationCode::new(code.to_owned()));
    if let (PkceMode::S256, Some(v)) = (ctx.settings.pkce, pkce_verifier) {
        req = req.set_pkce_verifier(PkceCodeVerifier::new(v.expose_secret().to_owned()));
    }
    for (k, v) in &ctx.settings.extra_token_params {
        req = req.add_extra_param(k.clone(), v.clone());
    }
    let resp = req.request_async(&OAuthHttp(ctx.http)).await.map_err(|e| token_error(ctx, e))?;
    Ok(token_set(resp, None))
}

/// Default [`Provider::refresh`](super::Provider::refresh).
pub(super) async fn refresh(ctx: &ProviderContext<'_>, current: &TokenSet) -> Result<TokenSet> {
    let refresh_token = super::current_refresh_token(ctx, current)?;
    let client = client(ctx)?;
    let rt = RefreshToken::new(refresh_token.expose_secret().to_owned());
    let mut req = client.exchange_refresh_token(&rt);
    for (k, v) in &ctx.settings.extra_token_params {
        req = req.add_extra_param(k.clone(), v.clone());
    }
    let resp = req.request_async(&OAuthHttp(ctx.http)).await.map_err(|e| token_error(ctx, e))?;
    Ok(token_set(resp, Some(current)))
}

/// Turns a token response into a [`TokenSet`], keeping the previous refresh token and scopes
/// when the provider does not repeat them.
pub(crate) fn token_set(resp: FlexibleTokenResponse, previous: Option<&TokenSet>) -> TokenSet {
    let now = Utc::now();
    let after = |d: Duration| chrono::Duration::from_std(d).ok().map(|d| now + d);
    let refresh_token = resp
        .refresh_token()
        .map(|r| SecretString::from(r.secret().clone()))
        .or_else(|| previous.and_then(|p| p.refresh_token.clone()));
    let refresh_token_expires_at = match resp.refresh_token_expires_in() {
        Some(d) => after(d),
        None if resp.refresh_token().is_none() => previous.and_then(|p| p.refresh_token_expires_at),
        None => None,
    };
    let scopes = resp
        .scopes()
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .or_else(|| previous.and_then(|p| p.scopes.clone()));
    let mut extra = resp.extra.clone();
    extra.retain(|k, _| !k.contains("token") && !k.contains("secret"));
    TokenSet {
        access_token: SecretString::from(resp.access_token().secret().clone()),
        token_type: resp.token_type().as_ref().to_ascii_lowercase(),
        refresh_token,
        token_secret: None,
        expires_at: resp.expires_in().and_then(after),
        refresh_token_expires_at,
        scopes,
        extra,
    }
}

fn token_error(ctx: &ProviderContext<'_>, e: RequestTokenError<OAuthHttpError, BasicErrorResponse>) -> Error {
    let id = ctx.id.as_str();
    match e {
        RequestTokenError::ServerResponse(resp) => {
            let code = resp.error().as_ref().to_owned();
            let kind = match resp.error() {
                BasicErrorResponseType::InvalidGrant => ProviderErrorKind::InvalidGrant,
                BasicErrorResponseType::Extension(ext) if ext == "bad_refresh_token" => ProviderErrorKind::InvalidGrant,
                _ => ProviderErrorKind::Rejected,
            };
            let description = resp.error_description().map(|d| format!(": {}", truncate(d, 300))).unwrap_or_default();
            Error::provider(id, kind, format!("token endpoint answered `{code}`{description}"))
        }
        RequestTokenError::Request(OAuthHttpError::Unavailable { status, retry_after }) => Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after },
            format!("token endpoint answered HTTP {status}"),
        ),
        RequestTokenError::Request(e) => {
            Error::provider(id, ProviderErrorKind::Temporary { retry_after: None }, format!("token endpoint: {e}"))
        }
        // The raw body may contain tokens: never include it.
        RequestTokenError::Parse(e, _) => Error::provider(
            id,
            ProviderErrorKind::Protocol,
            format!("token endpoint answered something that is not a token response (at {})", e.path()),
        ),
        RequestTokenError::Other(msg) => {
            Error::provider(id, ProviderErrorKind::Protocol, format!("token endpoint: {}", truncate(&msg, 200)))
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max { s.to_owned() } else { s.chars().take(max).collect::<String>() + "…" }
}

/// GETs JSON from a provider API with the access token, classifying failures.
pub async fn get_json(ctx: &ProviderContext<'_>, url: &Url, tokens: &TokenSet) -> Result<serde_json::Value> {
    let id = ctx.id.as_str();
    let resp = ctx
        .http
        .get(url.clone())
        .bearer_auth(tokens.access_token.expose_secret())
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after: retry_after(resp.headers()) },
            format!("{} answered HTTP {status}", url.path()),
        ));
    }
    if !status.is_success() {
        let kind = if status.as_u16() == 401 { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected };
        return Err(Error::provider(id, kind, format!("{} answered HTTP {status}", url.path())));
    }
    resp.json()
        .await
        .map_err(|_| Error::provider(id, ProviderErrorKind::Protocol, format!("{} did not answer JSON", url.path())))
}

/// Reads the account id and name from a userinfo document. `id_field` and `name_field` may
/// walk into objects with dots (`data.id`). Numeric ids become strings.
pub fn parse_account(
    provider: &str,
    doc: &serde_json::Value,
    id_field: &str,
    name_field: &str,
) -> Result<AccountIdentity> {
    let lookup = |path: &str| path.split('.').try_fold(doc, |v, key| v.get(key));
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let id = lookup(id_field).and_then(as_text).ok_or_else(|| {
        Error::provider(
            provider,
            ProviderErrorKind::Protocol,
            format!("the userinfo response has no account id in field `{id_field}`"),
        )
    })?;
    let name = [name_field, "name", "preferred_username", "login", "username", "email"]
        .iter()
        .find_map(|f| lookup(f).and_then(as_text));
    Ok(AccountIdentity { id, name })
}

/// Default [`Provider::fetch_account`](super::Provider::fetch_account).
pub(super) async fn fetch_account(ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<AccountIdentity> {
    // Some token answers name the account themselves (OAuth 1.0a `user_id`, Meta `user_id`).
    let in_token = serde_json::Value::Object(tokens.extra.clone());
    if ctx.settings.userinfo_url.is_none()
        && let Ok(account) =
            parse_account(ctx.id.as_str(), &in_token, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
    {
        return Ok(account);
    }
    let url = super::userinfo_url(ctx)?;
    let doc = get_json(ctx, url, tokens).await?;
    parse_account(ctx.id.as_str(), &doc, &ctx.settings.account_id_field, &ctx.settings.account_name_field)
}

/// Default [`Provider::revoke`](super::Provider::revoke): RFC 7009, the refresh token when
/// there is one (which ends the whole grant), else the access token, with the provider's
/// client authentication.
pub(super) async fn revoke(ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
    let Some(url) = &ctx.settings.revoke_url else {
        return Ok(RevokeOutcome::NotSupported);
    };
    let id = ctx.id.as_str();
    let (token, hint) = match &tokens.refresh_token {
        Some(rt) => (rt.expose_secret(), "refresh_token"),
        None => (tokens.access_token.expose_secret(), "access_token"),
    };
    let mut form = vec![("token", token), ("token_type_hint", hint)];
    let mut request = ctx.http.post(url.clone()).header(reqwest::header::ACCEPT, "application/json");
    let secret = ctx.settings.client_secret.as_ref().map(|s| s.expose_secret());
    match (ctx.settings.client_auth, secret) {
        (ClientAuth::Basic, Some(secret)) => {
            // RFC 6749 section 2.3.1: form-encode the credentials before Basic encoding.
            let enc = |v: &str| url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
            request = request.basic_auth(enc(&ctx.settings.client_id), Some(enc(secret)));
        }
        (_, secret) => {
            form.push(("client_id", &ctx.settings.client_id));
            if let Some(secret) = secret {
                form.push(("client_secret", secret));
            }
        }
    }
    let resp = request.form(&form).send().await.map_err(|e| Error::provider_unreachable(id, &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(RevokeOutcome::Revoked);
    }
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Error::provider(
            id,
            ProviderErrorKind::Temporary { retry_after: retry_after(resp.headers()) },
            format!("revocation endpoint answered HTTP {status}"),
        ));
    }
    let code = resp
        .json::<serde_json::Value>()
        .await
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(|e| truncate(e, 60)))
        .unwrap_or_else(|| format!("HTTP {status}"));
    Err(Error::provider(id, ProviderErrorKind::Rejected, format!("revocation endpoint answered `{code}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b_s256_vector() {
        let verifier = PkceCodeVerifier::new("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        assert_eq!(challenge.as_str(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(challenge.method().as_str(), "S256");
    }

    #[test]
    fn account_parsing_handles_numeric_ids_nested_fields_and_fallback_names() {
        let gh = serde_json::json!({"id": 583231, "login": "octocat", "name": null});
        let a = parse_account("github", &gh, "id", "name").unwrap();
        assert_eq!(a, AccountIdentity { id: "583231".into(), name: Some("octocat".into()) });
        let x = serde_json::json!({"data": {"id": "2244994945", "username": "XDevelopers", "name": "Developers"}});
        let a = parse_account("twitter", &x, "data.id", "data.username").unwrap();
        assert_eq!(a.id, "2244994945");
        assert_eq!(a.name.as_deref(), Some("XDevelopers"));
        assert!(parse_account("p", &serde_json::json!({}), "sub", "name").is_err());
    }
}
