//! Authorizing calls to a provider's API for a connection: the headers for one request
//! ([`Tether::authorize_request`]) and whole requests with the retries a provider needs
//! ([`Tether::send_api_request`], used by the HTTP proxy and by library users).

use url::Url;

use super::Tether;
use crate::{
    ApiAnswer, AuthorizationHeaders, ConfiguredProvider, ConnectionId, Error, Protocol, ProviderContext, Result,
    TokenSet,
};

/// A request to a provider's API on behalf of a connection, for [`Tether::send_api_request`].
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// HTTP method.
    pub method: reqwest::Method,
    /// Path relative to the connection's API base ([`Tether::api_target`]: the configured
    /// `api_base_url`, or the connection's own server), with an optional `?query`, e.g.
    /// `xrpc/com.atproto.repo.createRecord`. It must stay under the base.
    pub path: String,
    /// Headers to send (an `Authorization` header here is replaced).
    pub headers: http::HeaderMap,
    /// Body bytes.
    pub body: bytes::Bytes,
    /// The body's form parameters when it is `application/x-www-form-urlencoded` (OAuth 1.0a
    /// signs them); empty otherwise.
    pub form: Vec<(String, String)>,
}

impl ApiRequest {
    /// A request without body or headers.
    pub fn new(method: reqwest::Method, path: impl Into<String>) -> Self {
        ApiRequest {
            method,
            path: path.into(),
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::new(),
            form: Vec::new(),
        }
    }

    /// A JSON body (sets `Content-Type: application/json`).
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.headers.insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
        self.body = bytes::Bytes::from(body.to_string());
        self
    }
}

/// Joins `path` (relative, with an optional `?query`) to an API `base`, refusing anything that
/// leaves it: absolute URLs, paths starting with `/` or holding `\\`, and `..` that climbs out.
pub fn api_url(base: &Url, path: &str) -> Result<Url> {
    let forbidden = || Error::ForbiddenTarget("requests only reach the provider's API base URL".to_owned());
    let (path, query) = path.split_once('?').map_or((path, None), |(p, q)| (p, Some(q)));
    if path.contains("://") || path.starts_with('/') || path.contains('\\') {
        return Err(forbidden());
    }
    let mut target = base.join(path).map_err(|_| forbidden())?;
    if target.origin() != base.origin() || !target.path().starts_with(base.path()) {
        return Err(forbidden());
    }
    target.set_query(query.filter(|q| !q.is_empty()));
    Ok(target)
}

impl Tether {
    /// The provider API base URL of a connection.
    pub async fn api_base_url(&self, id: ConnectionId) -> Result<Url> {
        Ok(self.api_target(id).await?.0)
    }

    /// The provider API base URL of a connection (the configured `api_base_url`, or the
    /// connection's own server: a Mastodon instance, a Bluesky PDS) and the headers its API
    /// wants on every call besides the token
    /// ([`Provider::api_headers`](crate::Provider::api_headers)), from one read of the
    /// connection (which must be usable: not `reauth_required`, not disconnected).
    pub async fn api_target(&self, id: ConnectionId) -> Result<(Url, Vec<(&'static str, String)>)> {
        let (_, base, headers) = self.api_target_of(id).await?;
        Ok((base, headers))
    }

    /// [`api_target`](Self::api_target) with the connection's configured provider.
    async fn api_target_of(&self, id: ConnectionId) -> Result<(&ConfiguredProvider, Url, Vec<(&'static str, String)>)> {
        let (conn, stored) = self.live(id, false).await?;
        let provider = self.provider(conn.provider.as_str())?;
        // Only the endpoints are rebased on the connection's server: the API needs no client
        // registration, so none is read.
        let rebased;
        let settings = match self.stored_instance(provider, conn.instance.as_deref(), &format!("connection {id}"))? {
            None => &provider.settings,
            Some(instance) => {
                rebased = provider.settings.rebased(&instance)?;
                &rebased
            }
        };
        let ctx = ProviderContext {
            id: &provider.id,
            settings,
            http: &self.inner.http,
            redirect_uri: &provider.redirect_uri,
        };
        let base = provider.provider.api_base_url(&ctx, &stored.tokens).ok_or_else(|| {
            Error::InvalidInput(format!(
                "provider `{}` has no api_base_url; set providers.{}.api_base_url",
                provider.id, provider.id
            ))
        })?;
        Ok((provider, base, provider.provider.api_headers(&ctx)))
    }

    /// The headers that authorize `method url` on behalf of a connection: a bearer token valid
    /// for at least the margin (refreshed first when needed), a DPoP-bound token with its
    /// proof, or an OAuth 1.0a signature over the URL and the form parameters. Set
    /// `force_refresh` when the provider just refused the previous token: see
    /// [`token_rejected`](Self::token_rejected). [`send_api_request`](Self::send_api_request)
    /// sends whole requests with these headers and the retries providers need.
    pub async fn authorize_request(
        &self,
        id: ConnectionId,
        method: &str,
        url: &Url,
        form: &[(String, String)],
        force_refresh: bool,
    ) -> Result<AuthorizationHeaders> {
        let conn = self.connection(id).await?;
        let provider = self.provider(conn.provider.as_str())?;
        self.authorize_with(provider, id, method, url, form, force_refresh).await
    }

    /// [`authorize_request`](Self::authorize_request) for a connection of `provider`.
    async fn authorize_with(
        &self,
        provider: &ConfiguredProvider,
        id: ConnectionId,
        method: &str,
        url: &Url,
        form: &[(String, String)],
        force_refresh: bool,
    ) -> Result<AuthorizationHeaders> {
        if provider.protocol() == Protocol::OAuth1 {
            return Ok(vec![("Authorization", self.sign_oauth1_request(id, method, url, form).await?)]);
        }
        let token = if force_refresh { self.token_rejected(id).await? } else { self.access_token(id).await? };
        let tokens = TokenSet {
            access_token: token.access_token,
            token_type: token.token_type,
            refresh_token: None,
            token_secret: token.token_secret,
            expires_at: token.expires_at,
            refresh_token_expires_at: None,
            scopes: Some(token.scopes),
            extra: serde_json::Map::new(),
        };
        provider.authorize_api_request(&self.inner.http, &tokens, method, url)
    }

    /// Sends a request to the connection's provider API with fresh credentials and returns
    /// the provider's answer, whatever its status:
    /// - the provider's API headers ([`api_target`](Self::api_target)) are added unless the
    ///   request has them, and the authorization from
    ///   [`authorize_request`](Self::authorize_request) replaces any `Authorization`;
    /// - when the provider asks for a fresh proof (a DPoP nonce), the request is sent once more
    ///   with one (once per token);
    /// - on a 401 the token is force-refreshed once and the request sent again (not for OAuth
    ///   1.0a, whose tokens are not refreshed, nor for form bodies).
    ///
    /// A path leaving the API base fails with [`Error::ForbiddenTarget`]; a provider that
    /// cannot be reached is a temporary provider error.
    pub async fn send_api_request(&self, id: ConnectionId, request: ApiRequest) -> Result<reqwest::Response> {
        let (provider, base, provider_headers) = self.api_target_of(id).await?;
        let url = api_url(&base, &request.path)?;
        let refreshable = provider.protocol() != Protocol::OAuth1 && request.form.is_empty();
        let method = request.method.as_str().to_owned();
        // `forced`: the token was refreshed once already; `refresh_next`: refresh before the
        // next send (only the send right after the 401).
        let (mut forced, mut refresh_next, mut fresh_proof) = (false, false, false);
        loop {
            let authorization = self.authorize_with(provider, id, &method, &url, &request.form, refresh_next).await?;
            refresh_next = false;
            let mut headers = request.headers.clone();
            for (name, value) in &provider_headers {
                if !headers.contains_key(*name)
                    && let Ok(value) = http::HeaderValue::from_str(value)
                {
                    headers.insert(*name, value);
                }
            }
            for (name, value) in &authorization {
                let value = http::HeaderValue::from_str(value).map_err(|_| {
                    Error::provider(
                        provider.id.as_str(),
                        crate::ProviderErrorKind::Protocol,
                        "unusable credentials header",
                    )
                })?;
                headers.insert(*name, value);
            }
            let resp = self
                .inner
                .http
                .request(request.method.clone(), url.clone())
                .headers(headers)
                .body(request.body.clone())
                .send()
                .await
                .map_err(|e| Error::provider_unreachable(provider.id.as_str(), &e))?;
            let status = resp.status().as_u16();
            if provider.api_answer(&self.inner.http, &url, status, resp.headers()) == ApiAnswer::RetryWithFreshProof
                && !fresh_proof
            {
                tracing::debug!(connection = %id, "provider asked for a fresh proof; sending again");
                fresh_proof = true;
                continue;
            }
            if status == 401 && !forced && refreshable {
                tracing::info!(connection = %id, "provider answered 401; refreshing and retrying once");
                forced = true;
                refresh_next = true;
                // The refresh may have changed what the server expects in a proof (its nonce):
                // the new token gets its own fresh-proof retry. At most four sends in all.
                fresh_proof = false;
                continue;
            }
            return Ok(resp);
        }
    }

    /// A token the application may use on its own, for the token API: fails with
    /// [`Error::TokenBound`] for DPoP-bound tokens (RFC 9449 `token_type` `DPoP`), which need a
    /// proof signed with a key Tether keeps, saying how to make calls instead.
    /// `force_refresh` refreshes first ([`refresh_now`](Self::refresh_now)).
    pub async fn exportable_token(&self, id: ConnectionId, force_refresh: bool) -> Result<super::FreshToken> {
        let token = if force_refresh { self.refresh_now(id).await? } else { self.access_token(id).await? };
        if token.token_type.eq_ignore_ascii_case("dpop") {
            return Err(Error::TokenBound(format!(
                "the tokens of connection `{id}` are DPoP-bound: every request needs a proof signed with the \
                 connection's key, which Tether keeps; call the API through the proxy (/v1/proxy/{id}/...) \
                 or with Tether::send_api_request"
            )));
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_api_base_are_reachable() {
        let base = Url::parse("https://api.x.com/2/").unwrap();
        assert_eq!(api_url(&base, "tweets").unwrap().as_str(), "https://api.x.com/2/tweets");
        assert_eq!(api_url(&base, "users/me?a=1").unwrap().as_str(), "https://api.x.com/2/users/me?a=1");
        for bad in
            ["https://evil.example/x", "//evil.example/x", "/1.1/x", "../1.1/x", "a/../../x", "..%2F..%2Fx", "\\\\evil"]
        {
            let r = api_url(&base, bad);
            assert!(
                r.is_err()
                    || r.as_ref().is_ok_and(|u| u.host_str() == Some("api.x.com") && u.path().starts_with("/2/")),
                "{bad}: {r:?}"
            );
        }
        assert!(matches!(api_url(&base, "../1.1/x"), Err(Error::ForbiddenTarget(_))));
        assert!(api_url(&base, "//evil.example/x").is_err());
        assert!(api_url(&base, "x?https://evil.example/").is_ok_and(|u| u.host_str() == Some("api.x.com")));
    }
}
