//! The bridge between the `oauth2` crate and reqwest 0.13, and a tolerant token response.
//!
//! The adapter normalises what real providers do so the `oauth2` crate can parse it:
//! errors sent with HTTP 200 (GitHub, Slack) become HTTP 400, JSON sent with a wrong content
//! type is relabelled, and 5xx / 429 answers become a retryable [`OAuthHttpError::Unavailable`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use oauth2::basic::BasicTokenType;
use oauth2::{AccessToken, RefreshToken, Scope, TokenResponse};
use serde::{Deserialize, Deserializer, Serialize};

/// Errors of the HTTP adapter.
#[derive(Debug, thiserror::Error)]
pub enum OAuthHttpError {
    /// Transport failure (connection refused, timeout, TLS).
    #[error("could not reach the provider: {0}")]
    Transport(String),
    /// The provider answered 5xx or 429.
    #[error("the provider answered HTTP {status}")]
    Unavailable {
        /// HTTP status.
        status: u16,
        /// Parsed Retry-After.
        retry_after: Option<Duration>,
    },
    /// Building the response failed.
    #[error("invalid HTTP response: {0}")]
    Http(#[from] http::Error),
}

/// reqwest client usable by the `oauth2` crate.
#[derive(Clone, Debug)]
pub struct OAuthHttp<'a>(pub &'a reqwest::Client);

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp<'_> {
    type Error = OAuthHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, Self::Error>> + Send + Sync + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let resp = self
                .0
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(|e| OAuthHttpError::Transport(describe_reqwest_error(&e)))?;
            let status = resp.status();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(OAuthHttpError::Unavailable {
                    status: status.as_u16(),
                    retry_after: retry_after(resp.headers()),
                });
            }
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await.map_err(|e| OAuthHttpError::Transport(describe_reqwest_error(&e)))?;
            let json: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
            let mut out_status = status;
            let mut builder = http::Response::builder();
            for (k, v) in &headers {
                if k != http::header::CONTENT_TYPE {
                    builder = builder.header(k, v);
                }
            }
            let mut content_type = headers.get(http::header::CONTENT_TYPE).cloned();
            if let Some(serde_json::Value::Object(map)) = &json {
                content_type = Some(http::HeaderValue::from_static("application/json"));
                if status.is_success() && map.contains_key("error") && !map.contains_key("access_token") {
                    out_status = http::StatusCode::BAD_REQUEST;
                }
            }
            if let Some(ct) = content_type {
                builder = builder.header(http::header::CONTENT_TYPE, ct);
            }
            Ok(builder.status(out_status).body(bytes.to_vec())?)
        })
    }
}

/// Describes a reqwest error without the URL (which may carry a token in its query).
pub fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "could not read the response"
    } else {
        "request failed"
    };
    let e = e.without_url_ref();
    format!("{kind} ({e})")
}

trait WithoutUrl {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrl for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut s = self.to_string();
        if let Some(url) = self.url() {
            s = s.replace(url.as_str(), url.origin().ascii_serialization().as_str());
        }
        s
    }
}

/// Parses a Retry-After header given in seconds.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// A token response that accepts what real providers send: `expires_in` as number or string,
/// `scope` as a space or comma separated string or an array, a missing `token_type`, and
/// extra fields. `Debug` never shows tokens.
#[derive(Clone, Serialize, Deserialize)]
pub struct FlexibleTokenResponse {
    access_token: AccessToken,
    #[serde(default = "bearer")]
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "lenient_u64", skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<RefreshToken>,
    #[serde(default, deserialize_with = "lenient_scopes", skip_serializing_if = "Option::is_none")]
    scope: Option<Vec<Scope>>,
    /// Every other field of the response.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl FlexibleTokenResponse {
    /// `refresh_token_expires_in` / `refresh_expires_in`, when the provider sends one.
    pub fn refresh_token_expires_in(&self) -> Option<Duration> {
        ["refresh_token_expires_in", "refresh_expires_in"]
            .iter()
            .find_map(|k| self.extra.get(*k))
            .and_then(value_as_u64)
            .map(Duration::from_secs)
    }
}

fn bearer() -> BasicTokenType {
    BasicTokenType::Bearer
}

fn value_as_u64(v: &serde_json::Value) -> Option<u64> {
    match v {
        serde_json::Value::Number(n) => n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64)),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(value_as_u64))
}

fn lenient_scopes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Scope>>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(split_scopes(&s).into_iter().map(Scope::new).collect()),
        Some(serde_json::Value::Array(items)) => {
            Some(items.into_iter().filter_map(|i| i.as_str().map(|s| Scope::new(s.to_owned()))).collect())
        }
        _ => None,
    })
}

/// Splits a scope string on whitespace or commas (providers use both).
pub fn split_scopes(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || c == ',').filter(|p| !p.is_empty()).map(str::to_owned).collect()
}

impl fmt::Debug for FlexibleTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlexibleTokenResponse")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl TokenResponse for FlexibleTokenResponse {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scope.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerant_parsing_of_real_provider_shapes() {
        let gh: FlexibleTokenResponse =
            serde_json::from_str(r#"{"access_token":"gho_x","scope":"repo,gist","token_type":"bearer"}"#).unwrap();
        assert_eq!(gh.scopes().unwrap().iter().map(|s| s.as_str()).collect::<Vec<_>>(), ["repo", "gist"]);
        let twitch: FlexibleTokenResponse =
            serde_json::from_str(r#"{"access_token":"a","expires_in":"14000","scope":["a:b","c"]}"#).unwrap();
        assert_eq!(twitch.expires_in(), Some(Duration::from_secs(14000)));
        assert_eq!(twitch.scopes().unwrap().len(), 2);
        let tiktok: FlexibleTokenResponse = serde_json::from_str(
            r#"{"access_token":"a","refresh_token":"r","refresh_expires_in":86400,"open_id":"o"}"#,
        )
        .unwrap();
        assert_eq!(tiktok.refresh_token_expires_in(), Some(Duration::from_secs(86400)));
        assert!(!format!("{tiktok:?}").contains("\"r\""));
    }
}
