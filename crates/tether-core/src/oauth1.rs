//! OAuth 1.0a (RFC 5849) with HMAC-SHA1, on the `oauth1-request` crate: the three-legged
//! flow (request token → authorize → access token), signed revocation, and a helper that signs
//! any request for an OAuth 1.0a connection.

use std::num::NonZeroU64;

use oauth1::signature_method::HmacSha1;
use oauth1::{Builder, Credentials, ParameterList};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::oauth2_http::retry_after;
use crate::{Error, ProviderContext, ProviderErrorKind, ProviderSettings, Result, RevokeOutcome, TokenSet};

/// The request token and its secret (RFC 5849 "temporary credentials"). `Debug` redacts.
pub struct TemporaryCredentials {
    /// `oauth_token`: sent to the browser, not secret.
    pub token: String,
    /// `oauth_token_secret`: kept server-side, sealed.
    pub secret: SecretString,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials").field("token", &self.token).field("secret", &"[redacted]").finish()
    }
}

/// Keys that sign a request: the client (consumer) pair and, after step 1, a token pair.
#[derive(Clone, Copy)]
pub struct SigningKeys<'a> {
    /// Consumer key (client id).
    pub consumer_key: &'a str,
    /// Consumer secret.
    pub consumer_secret: &'a str,
    /// Token and token secret.
    pub token: Option<(&'a str, &'a str)>,
}

impl std::fmt::Debug for SigningKeys<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys").field("consumer_key", &self.consumer_key).finish_non_exhaustive()
    }
}

/// Protocol parameters beyond the keys. Leave `nonce`/`timestamp` unset outside tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct SignOptions<'a> {
    /// `oauth_callback` (request-token step).
    pub callback: Option<&'a str>,
    /// `oauth_verifier` (access-token step).
    pub verifier: Option<&'a str>,
    /// Fixed nonce (tests only).
    pub nonce: Option<&'a str>,
    /// Fixed timestamp (tests only).
    pub timestamp: Option<u64>,
    /// Omit `oauth_version=1.0` (RFC 5849 examples omit it; Twitter sends it).
    pub without_version: bool,
}

/// Builds the `Authorization: OAuth ...` header for `method url` with `params` (the form body
/// parameters; query parameters are taken from `url`). Every parameter that is sent must be
/// signed, so send exactly these.
pub fn authorization_header(
    method: &str,
    url: &Url,
    params: &[(String, String)],
    keys: SigningKeys<'_>,
    options: SignOptions<'_>,
) -> Result<String> {
    let mut all: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    all.extend(params.iter().cloned());
    let list = ParameterList::new(all);
    let mut base = url.clone();
    base.set_query(None);
    base.set_fragment(None);
    let mut builder = Builder::<_, _>::new(Credentials::new(keys.consumer_key, keys.consumer_secret), HmacSha1::new());
    if let Some((token, secret)) = keys.token {
        builder.token(Credentials::new(token, secret));
    }
    builder.callback(options.callback).verifier(options.verifier).version(!options.without_version);
    if let Some(nonce) = options.nonce {
        builder.nonce(nonce);
    }
    if let Some(ts) = options.timestamp.and_then(NonZeroU64::new) {
        builder.timestamp(ts);
    }
    Ok(builder.authorize(&method.to_ascii_uppercase(), base.as_str(), &list))
}

fn consumer(settings: &ProviderSettings) -> Result<(&str, &str)> {
    let secret = settings
        .client_secret
        .as_ref()
        .ok_or_else(|| Error::Config("an OAuth 1.0a provider needs client_secret (the consumer secret)".into()))?;
    Ok((settings.client_id.as_str(), secret.expose_secret()))
}

/// Signs an arbitrary request for an OAuth 1.0a connection: returns the `Authorization`
/// header to send with `method url` and the form `params` (which must be sent as signed).
pub fn sign_request(
    settings: &ProviderSettings,
    tokens: &TokenSet,
    method: &str,
    url: &Url,
    params: &[(String, String)],
) -> Result<String> {
    let (ck, cs) = consumer(settings)?;
    let secret = tokens
        .token_secret
        .as_ref()
        .ok_or_else(|| Error::InvalidInput("this connection is not an OAuth 1.0a connection".into()))?;
    let keys = SigningKeys {
        consumer_key: ck,
        consumer_secret: cs,
        token: Some((tokens.access_token.expose_secret(), secret.expose_secret())),
    };
    authorization_header(method, url, params, keys, SignOptions::default())
}

async fn signed_post(
    ctx: &ProviderContext<'_>,
    url: &Url,
    keys: SigningKeys<'_>,
    options: SignOptions<'_>,
    step: &str,
) -> Result<(u16, String)> {
    let header = authorization_header("POST", url, &[], keys, options)?;
    let resp = ctx
        .http
        .post(url.clone())
        .header(reqwest::header::AUTHORIZATION, header)
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await
        .map_err(|e| Error::provider_unreachable(ctx.id.as_str(), &e))?;
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Err(Error::provider(
            ctx.id.as_str(),
            ProviderErrorKind::Temporary { retry_after: retry_after(resp.headers()) },
            format!("{step} answered HTTP {status}"),
        ));
    }
    let body = resp.text().await.map_err(|e| Error::provider_unreachable(ctx.id.as_str(), &e))?;
    if !status.is_success() {
        return Err(Error::provider(
            ctx.id.as_str(),
            if status.as_u16() == 401 { ProviderErrorKind::InvalidGrant } else { ProviderErrorKind::Rejected },
            format!("{step} answered HTTP {status}: {}", provider_message(&body)),
        ));
    }
    Ok((status.as_u16(), body))
}

/// A short, secret-free description of an OAuth 1.0a error body (Twitter's
/// `{"errors":[{"code","message"}]}` or plain text).
fn provider_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body)
        && let Some(first) = v.get("errors").and_then(|e| e.get(0))
    {
        let code = first.get("code").map(|c| c.to_string()).unwrap_or_default();
        let msg = first.get("message").and_then(|m| m.as_str()).unwrap_or("");
        return format!("{code} {}", msg.chars().take(200).collect::<String>()).trim().to_owned();
    }
    // Plain-text errors never echo tokens back; keep them short anyway.
    body.chars().filter(|c| !c.is_control()).take(120).collect()
}

fn form_fields(body: &str) -> std::collections::BTreeMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

/// Step 1: request token, with `{public_url}/callback/{provider}` as `oauth_callback`.
pub async fn request_token(ctx: &ProviderContext<'_>) -> Result<TemporaryCredentials> {
    let url = ctx
        .settings
        .request_token_url
        .as_ref()
        .ok_or_else(|| Error::Config(format!("providers.{}.request_token_url is missing", ctx.id)))?;
    let (ck, cs) = consumer(ctx.settings)?;
    let keys = SigningKeys { consumer_key: ck, consumer_secret: cs, token: None };
    let callback = ctx.redirect_uri.as_str();
    let options = SignOptions { callback: Some(callback), ..SignOptions::default() };
    let (_, body) = signed_post(ctx, url, keys, options, "request-token endpoint").await?;
    let mut fields = form_fields(&body);
    let protocol_error = |m: &str| Error::provider(ctx.id.as_str(), ProviderErrorKind::Protocol, m.to_owned());
    if fields.get("oauth_callback_confirmed").map(String::as_str) != Some("true") {
        return Err(protocol_error("the request-token answer did not confirm the callback"));
    }
    let token = fields.remove("oauth_token").filter(|t| !t.is_empty());
    let secret = fields.remove("oauth_token_secret");
    match (token, secret) {
        (Some(token), Some(secret)) => Ok(TemporaryCredentials { token, secret: SecretString::from(secret) }),
        _ => Err(protocol_error("the request-token answer has no oauth_token / oauth_token_secret")),
    }
}

/// Step 3: exchanges the verifier for the access token and secret.
pub async fn access_token(
    ctx: &ProviderContext<'_>,
    request_token: &str,
    request_secret: &SecretString,
    verifier: &str,
) -> Result<TokenSet> {
    let (ck, cs) = consumer(ctx.settings)?;
    let keys = SigningKeys {
        consumer_key: ck,
        consumer_secret: cs,
        token: Some((request_token, request_secret.expose_secret())),
    };
    let options = SignOptions { verifier: Some(verifier), ..SignOptions::default() };
    let (_, body) = signed_post(ctx, &ctx.settings.token_url, keys, options, "access-token endpoint").await?;
    let mut fields = form_fields(&body);
    let (Some(token), Some(secret)) = (fields.remove("oauth_token"), fields.remove("oauth_token_secret")) else {
        return Err(Error::provider(
            ctx.id.as_str(),
            ProviderErrorKind::Protocol,
            "the access-token answer has no oauth_token / oauth_token_secret",
        ));
    };
    let mut tokens = TokenSet::bearer(token);
    tokens.token_type = "oauth1".into();
    tokens.token_secret = Some(SecretString::from(secret));
    tokens.extra = fields
        .into_iter()
        .filter(|(k, _)| !k.contains("token") && !k.contains("secret"))
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    Ok(tokens)
}

/// Signed POST to `revoke_url` (Twitter: `/1.1/oauth/invalidate_token`).
pub async fn revoke(ctx: &ProviderContext<'_>, tokens: &TokenSet) -> Result<RevokeOutcome> {
    let Some(url) = &ctx.settings.revoke_url else {
        return Ok(RevokeOutcome::NotSupported);
    };
    let (ck, cs) = consumer(ctx.settings)?;
    let secret = tokens.token_secret.as_ref().map(|s| s.expose_secret()).unwrap_or("");
    let keys = SigningKeys {
        consumer_key: ck,
        consumer_secret: cs,
        token: Some((tokens.access_token.expose_secret(), secret)),
    };
    signed_post(ctx, url, keys, SignOptions::default(), "token invalidation endpoint").await?;
    Ok(RevokeOutcome::Revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signature(header: &str) -> String {
        let raw = header.split("oauth_signature=\"").nth(1).unwrap().split('"').next().unwrap();
        url::form_urlencoded::parse(format!("s={raw}").as_bytes()).next().unwrap().1.into_owned()
    }

    #[test]
    fn twitter_documentation_example_signature() {
        // xdevplatform docs, "Creating a signature" (api.x.com and the classic api.twitter.com page).
        for (host, expected) in
            [("api.x.com", "Ls93hJiZbQ3akF3HF3x1Bz8/zU4="), ("api.twitter.com", "hCtSmYh+iHYCEqBWrE7C7hYmtUk=")]
        {
            let url = Url::parse(&format!("https://{host}/1.1/statuses/update.json?include_entities=true")).unwrap();
            let params = [("status".to_owned(), "Hello Ladies + Gentlemen, a signed OAuth request!".to_owned())];
            let keys = SigningKeys {
                consumer_key: "xvz1evFS4wEEPTGEFPHBog",
                consumer_secret: "kAcSOqF21Fu85e7zjz7ZN2U4ZRhfV3WpwPAoE3Z7kBw",
                token: Some((
                    "370773112-GmHxMAgYyLbNEtIKZeRNFsMKPR9EyMZeS9weJAEb",
                    "LswwdoUaIvS8ltyTt5jkRh4J50vUPVVHtR2YPi5kE",
                )),
            };
            let options = SignOptions {
                nonce: Some("kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgmZeNu2VS4cg"),
                timestamp: Some(1_318_622_958),
                ..SignOptions::default()
            };
            let header = authorization_header("POST", &url, &params, keys, options).unwrap();
            assert_eq!(signature(&header), expected, "{host}");
        }
    }

    #[test]
    fn rfc5849_temporary_credentials_and_token_examples() {
        let keys = SigningKeys { consumer_key: "dpf43f3p2l4k3l03", consumer_secret: "kd94hf93k423kf44", token: None };
        let url = Url::parse("https://photos.example.net/initiate").unwrap();
        let options = SignOptions {
            callback: Some("http://printer.example.com/ready"),
            nonce: Some("wIjqoS"),
            timestamp: Some(137_131_200),
            without_version: true,
            ..SignOptions::default()
        };
        let header = authorization_header("POST", &url, &[], keys, options).unwrap();
        assert_eq!(signature(&header), "74KNZJeDHnMBp0EMJ9ZHt/XKycU=");

        let keys = SigningKeys { token: Some(("hh5s93j4hdidpola", "hdhd0244k9j7ao03")), ..keys };
        let url = Url::parse("https://photos.example.net/token").unwrap();
        let options = SignOptions {
            verifier: Some("hfdp7dh39dks9884"),
            nonce: Some("walatlh"),
            timestamp: Some(137_131_201),
            without_version: true,
            ..SignOptions::default()
        };
        let header = authorization_header("POST", &url, &[], keys, options).unwrap();
        assert_eq!(signature(&header), "gKgrFCywp7rO0OXSjdot/IHF7IU=");
    }

    #[test]
    fn rfc5849_resource_request_signs_the_query_and_depends_on_the_scheme() {
        let keys = SigningKeys {
            consumer_key: "dpf43f3p2l4k3l03",
            consumer_secret: "kd94hf93k423kf44",
            token: Some(("nnch734d00sl2jdk", "pfkkdhi9sl3r4s00")),
        };
        let options = SignOptions {
            nonce: Some("chapoH"),
            timestamp: Some(137_131_202),
            without_version: true,
            ..SignOptions::default()
        };
        let http = Url::parse("http://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let header = authorization_header("GET", &http, &[], keys, options).unwrap();
        assert_eq!(signature(&header), "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
        let https = Url::parse("https://photos.example.net/photos?file=vacation.jpg&size=original").unwrap();
        let header = authorization_header("GET", &https, &[], keys, options).unwrap();
        assert_ne!(signature(&header), "MdpQcU8iPSUjWoN/UDMsK2sui9I=");
    }
}
