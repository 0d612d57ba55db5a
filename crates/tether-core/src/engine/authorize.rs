//! Authorizing calls to a provider's API for a connection (used by the HTTP proxy and by
//! library users who make their own requests).

use url::Url;

use super::Tether;
use crate::{ConnectionId, Error, ExposeSecret, Protocol, ProviderContext, Result};

impl Tether {
    /// The provider API base URL of a connection (`api_base_url`).
    pub async fn api_base_url(&self, id: ConnectionId) -> Result<Url> {
        Ok(self.api_target(id).await?.0)
    }

    /// The provider API base URL of a connection and the headers its API wants on every call
    /// besides the token ([`Provider::api_headers`](crate::Provider::api_headers)), from one
    /// read of the connection.
    pub async fn api_target(&self, id: ConnectionId) -> Result<(Url, Vec<(&'static str, String)>)> {
        let conn = self.connection(id).await?;
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
        let base = settings.api_base_url.clone().ok_or_else(|| {
            Error::InvalidInput(format!(
                "provider `{}` has no api_base_url; set providers.{}.api_base_url",
                provider.id, provider.id
            ))
        })?;
        let ctx = ProviderContext {
            id: &provider.id,
            settings,
            http: &self.inner.http,
            redirect_uri: &provider.redirect_uri,
        };
        Ok((base, provider.provider.api_headers(&ctx)))
    }

    /// The `Authorization` header value for `method url` on behalf of a connection: a bearer
    /// token valid for at least the margin (refreshed first when needed), or an OAuth 1.0a
    /// signature over the URL and the form parameters. Set `force_refresh` when the provider
    /// just refused the previous token: see [`token_rejected`](Self::token_rejected).
    pub async fn request_authorization(
        &self,
        id: ConnectionId,
        method: &str,
        url: &Url,
        form: &[(String, String)],
        force_refresh: bool,
    ) -> Result<String> {
        let conn = self.connection(id).await?;
        let provider = self.provider(conn.provider.as_str())?;
        if provider.protocol() == Protocol::OAuth1 {
            return self.sign_oauth1_request(id, method, url, form).await;
        }
        let token = if force_refresh { self.token_rejected(id).await? } else { self.access_token(id).await? };
        Ok(format!("Bearer {}", token.access_token.expose_secret()))
    }
}
