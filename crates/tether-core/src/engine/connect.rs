//! Connect sessions and the authorization-code flow with PKCE.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use url::Url;
use uuid::Uuid;

use super::Tether;
use crate::{
    AuthorizationRequest, AuthorizationResponse, ConfiguredProvider, Connection, Error, EventKind, FlowError,
    FlowStart, NewConnectSession, NewConnection, NewEvent, OwnerId, PkceMode, Protocol, Result, hash_secret,
    random_token, secure_eq,
};

/// What the application asks for when it creates a connect link.
#[derive(Debug, Clone)]
pub struct ConnectSessionRequest {
    /// The application's user the connection will belong to.
    pub owner: String,
    /// Provider id.
    pub provider: String,
    /// Where to send the browser when the flow ends.
    pub return_to: Option<String>,
    /// Scopes to request instead of the configured ones.
    pub scopes: Option<Vec<String>>,
    /// Per-instance providers: the user's server (`mastodon.social` or an https origin). When
    /// absent, the connect link asks the user for it.
    pub instance: Option<String>,
    /// Who the user is, for providers that take a hint (Bluesky: the handle or DID). When
    /// absent, the connect page of such a provider asks the user (who may leave it empty).
    pub login_hint: Option<String>,
}

/// Longest login hint accepted (a Bluesky handle is at most 253 characters, a DID 2048).
pub const LOGIN_HINT_MAX: usize = 2048;

/// A created connect session.
#[derive(Debug, Clone)]
pub struct CreatedConnectSession {
    /// Session id.
    pub id: Uuid,
    /// The single-use link to send the user's browser to.
    pub connect_url: Url,
    /// When the link stops working.
    pub expires_at: DateTime<Utc>,
}

/// Where to send the browser, plus the browser-binding cookie to set.
#[derive(Debug)]
pub struct AuthorizationRedirect {
    /// The provider's authorization URL.
    pub url: Url,
    /// Cookie name binding this flow to the browser.
    pub cookie_name: String,
    /// Cookie value (secret; set HttpOnly).
    pub cookie_value: SecretString,
    /// Cookie lifetime.
    pub cookie_max_age: std::time::Duration,
}

/// What opening a connect link leads to.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectStep {
    /// Send the browser to the provider.
    Redirect(AuthorizationRedirect),
    /// A per-instance provider and no server yet: ask the user for it, then open the link again
    /// with it. The link is not used up.
    ChooseInstance {
        /// The provider's name for people.
        display_name: String,
    },
    /// A provider that takes a login hint and none yet: ask the user (for Bluesky, the handle),
    /// then open the link again with what they typed (empty: no hint). The link is not used up.
    AskLoginHint {
        /// The provider's name for people.
        display_name: String,
        /// What to ask ([`ProviderSpec::login_hint_prompt`](crate::ProviderSpec::login_hint_prompt)).
        prompt: String,
    },
}

/// The query of a provider callback.
#[derive(Debug, Default, Clone)]
pub struct CallbackParams {
    /// `state` (OAuth 1.0a: `oauth_token`).
    pub state: Option<String>,
    /// `code` (OAuth 1.0a: `oauth_verifier`).
    pub code: Option<String>,
    /// `error` (e.g. `access_denied`).
    pub error: Option<String>,
    /// `error_description`.
    pub error_description: Option<String>,
    /// `iss` (RFC 9207: the authorization server that answered).
    pub iss: Option<String>,
}

/// A finished flow.
#[derive(Debug, Clone)]
pub struct CompletedFlow {
    /// The connection created or updated.
    pub connection: Connection,
    /// Whether it is new.
    pub created: bool,
    /// Where the application asked to send the browser.
    pub return_to: Option<Url>,
}

/// Name of the cookie that binds the flow with this state to its browser. Derived from the
/// state so parallel flows in one browser do not overwrite each other.
pub(crate) fn flow_cookie_name(state: &str) -> String {
    format!("tether_flow_{}", &hash_secret(state)[..16])
}

fn to_chrono(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Checks a login hint the application gave or the user typed: trimmed, at most
/// [`LOGIN_HINT_MAX`] characters, no control characters, and only for providers that take one.
/// An empty hint is no hint (`None`).
fn check_login_hint(provider: &ConfiguredProvider, hint: &str) -> Result<Option<String>> {
    let hint = hint.trim();
    if hint.is_empty() {
        return Ok(None);
    }
    if provider.provider.spec().login_hint_prompt.is_none() {
        return Err(Error::InvalidInput(format!("provider `{}` takes no login_hint", provider.id)));
    }
    if hint.chars().count() > LOGIN_HINT_MAX || hint.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "login_hint must be at most {LOGIN_HINT_MAX} characters without control characters"
        )));
    }
    Ok(Some(hint.to_owned()))
}

impl Tether {
    /// Creates a single-use connect link for `owner` on `provider`.
    pub async fn create_connect_session(&self, request: ConnectSessionRequest) -> Result<CreatedConnectSession> {
        let owner = OwnerId::parse(&request.owner)?;
        let provider = self.provider(&request.provider)?;
        let return_to = request.return_to.as_deref().map(|r| self.check_return_to(r)).transpose()?;
        let scopes = match request.scopes {
            Some(s) => {
                if s.iter().any(|x| x.is_empty() || x.len() > 200 || x.chars().any(|c| c.is_whitespace() || c == ',')) {
                    return Err(Error::InvalidInput(
                        "each scope must be a non-empty string without spaces or commas".into(),
                    ));
                }
                s
            }
            None => provider.settings.scopes.clone(),
        };
        let instance = match request.instance.as_deref() {
            Some(i) => Some(self.check_instance(provider, i)?.as_str().to_owned()),
            None => None,
        };
        let login_hint = match request.login_hint {
            Some(hint) => check_login_hint(provider, &hint)?,
            None => None,
        };
        let token = random_token(32)?;
        let now = Utc::now();
        let session = NewConnectSession {
            id: Uuid::now_v7(),
            link_token_hash: hash_secret(&token),
            provider: provider.id.clone(),
            owner,
            scopes,
            instance,
            login_hint,
            return_to,
            expires_at: now + to_chrono(self.inner.settings.connect_session_ttl),
            created_at: now,
        };
        self.inner.store.create_connect_session(&session).await?;
        let connect_url = self.public_path(&format!("connect/{token}"))?;
        Ok(CreatedConnectSession { id: session.id, connect_url, expires_at: session.expires_at })
    }

    fn public_path(&self, path: &str) -> Result<Url> {
        let base = self.inner.settings.public_url.as_str().trim_end_matches('/');
        Url::parse(&format!("{base}/{path}")).map_err(|e| Error::Config(format!("public_url: {e}")))
    }

    fn check_return_to(&self, raw: &str) -> Result<Url> {
        let url = Url::parse(raw).map_err(|_| Error::InvalidInput("return_to must be an absolute URL".into()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::InvalidInput("return_to must be an http(s) URL".into()));
        }
        let allowed = &self.inner.settings.allowed_return_origins;
        let origin = url.origin().ascii_serialization();
        if !allowed.is_empty() && !allowed.iter().any(|a| a.trim_end_matches('/') == origin) {
            return Err(Error::InvalidInput(format!("return_to origin {origin} is not in allowed_return_origins")));
        }
        Ok(url)
    }

    /// The browser opened a connect link: consume it (single use) and build the redirect to
    /// the provider, with a fresh `state` and PKCE verifier (OAuth 2.0) or request token
    /// (OAuth 1.0a, whose `oauth_token` plays the part of the state), and a browser-binding
    /// cookie. Fails with `invalid_instance` for a per-instance provider whose session names no
    /// server (use [`open_connect_link`](Self::open_connect_link) to ask the user).
    pub async fn begin_authorization(&self, link_token: &str) -> Result<AuthorizationRedirect> {
        match self.open_connect_link(link_token, None).await? {
            ConnectStep::Redirect(redirect) => Ok(redirect),
            ConnectStep::ChooseInstance { display_name } => {
                Err(Error::InvalidInstance(format!("{display_name} needs the user's server: none was given")))
            }
            ConnectStep::AskLoginHint { display_name, .. } => {
                Err(Error::InvalidInput(format!("{display_name} asks the user who they are: use open_connect_link")))
            }
        }
    }

    /// The browser opened a connect link, with the server the user typed on the connect page
    /// (`instance`, per-instance providers only). A per-instance provider needs a server: the
    /// session's or `instance` (which must then be the same). Without either the link is left
    /// unused and [`ConnectStep::ChooseInstance`] says to ask for one. Otherwise the client
    /// registered on that server is found or registered first (nothing is used up when that
    /// fails), then the link is consumed as in [`begin_authorization`](Self::begin_authorization).
    pub async fn open_connect_link(&self, link_token: &str, instance: Option<&str>) -> Result<ConnectStep> {
        self.open_connect_link_as(link_token, instance, None).await
    }

    /// [`open_connect_link`](Self::open_connect_link) with what the user typed on the connect
    /// page of a provider that takes a login hint (`login_hint`; `Some("")`: they chose to give
    /// none). Without a hint from the session or the page, such a provider answers
    /// [`ConnectStep::AskLoginHint`] and the link stays unused.
    pub async fn open_connect_link_as(
        &self,
        link_token: &str,
        instance: Option<&str>,
        login_hint: Option<&str>,
    ) -> Result<ConnectStep> {
        let now = Utc::now();
        let link_hash = hash_secret(link_token);
        let pending = self.inner.store.unstarted_connect_session(&link_hash, now).await?;
        let configured = self.provider(pending.provider.as_str())?;
        let login_hint = match (pending.login_hint.as_deref(), login_hint) {
            (Some(fixed), _) => Some(fixed.to_owned()),
            (None, Some(typed)) => check_login_hint(configured, typed)?,
            (None, None) => match configured.provider.spec().login_hint_prompt {
                Some(prompt) => {
                    return Ok(ConnectStep::AskLoginHint {
                        display_name: configured.settings.display_name.clone(),
                        prompt: prompt.to_owned(),
                    });
                }
                None => None,
            },
        };
        let (provider, instance) = if configured.is_per_instance() {
            let chosen = match (pending.instance.as_deref(), instance) {
                (Some(fixed), Some(typed)) => {
                    if self.check_instance(configured, typed)?.as_str() != fixed {
                        return Err(Error::InvalidInstance(format!("this connect link is for the server {fixed}")));
                    }
                    fixed
                }
                (Some(fixed), None) => fixed,
                (None, Some(typed)) => typed,
                (None, None) => {
                    return Ok(ConnectStep::ChooseInstance { display_name: configured.settings.display_name.clone() });
                }
            };
            let origin = self.check_instance(configured, chosen)?;
            let at = self.provider_at(configured, &origin, true).await?;
            let registered = &at.settings.scopes;
            if let Some(missing) = pending.scopes.iter().find(|s| !registered.contains(s)) {
                return Err(Error::InvalidInput(format!(
                    "scope `{missing}` is not among the scopes registered on {} ({})",
                    origin.host(),
                    registered.join(" ")
                )));
            }
            (Cow::Owned(at), Some(origin.as_str().to_owned()))
        } else {
            if instance.is_some() {
                return Err(Error::InvalidInstance(format!(
                    "provider `{}` is a single service: it takes no server",
                    configured.id
                )));
            }
            (Cow::Borrowed(configured), None)
        };
        let redirect = self
            .start_authorization(&link_hash, &provider, instance, &pending.scopes, login_hint.as_deref(), now)
            .await?;
        Ok(ConnectStep::Redirect(redirect))
    }

    /// The provider of an unused connect link, as the connect page shows it: its display name
    /// and, when it takes a login hint, what to ask the user.
    pub async fn connect_link_provider(&self, link_token: &str) -> Result<(String, Option<&'static str>)> {
        let pending = self.inner.store.unstarted_connect_session(&hash_secret(link_token), Utc::now()).await?;
        let provider = self.provider(pending.provider.as_str())?;
        Ok((provider.settings.display_name.clone(), provider.provider.spec().login_hint_prompt))
    }

    async fn start_authorization(
        &self,
        link_hash: &str,
        provider: &ConfiguredProvider,
        instance: Option<String>,
        scopes: &[String],
        login_hint: Option<&str>,
        now: chrono::DateTime<Utc>,
    ) -> Result<AuthorizationRedirect> {
        let binding = random_token(32)?;
        let expires_at = now + to_chrono(self.inner.settings.flow_ttl);
        let (state, url) = match provider.protocol() {
            Protocol::OAuth1 => {
                let temporary = provider.oauth1_request_token(&self.inner.http).await?;
                let start = FlowStart {
                    state_hash: hash_secret(&temporary.token),
                    // The request-token secret rides in the flow's sealed secret column.
                    pkce_verifier: Some(temporary.secret),
                    instance,
                    browser_binding_hash: hash_secret(&binding),
                    redirect_uri: self.inner.settings.public_url.clone(),
                    expires_at,
                };
                self.inner.store.start_flow(link_hash, start, now).await?;
                let url = provider.oauth1_authorize_url(&self.inner.http, &temporary.token)?;
                (temporary.token, url)
            }
            _ => {
                let state = random_token(32)?;
                let verifier = (provider.settings.pkce == PkceMode::S256)
                    .then(|| random_token(48).map(SecretString::from))
                    .transpose()?;
                // The provider may talk to its server first (pushed authorization requests);
                // when storing the flow then fails (the link was used meanwhile), what it
                // started there simply expires unused.
                let started = provider
                    .start_authorization(
                        &self.inner.http,
                        &AuthorizationRequest { state: &state, scopes, pkce_verifier: verifier.as_ref(), login_hint },
                    )
                    .await?;
                let start = FlowStart {
                    state_hash: hash_secret(&state),
                    pkce_verifier: started.flow_secret,
                    instance,
                    browser_binding_hash: hash_secret(&binding),
                    redirect_uri: self.inner.settings.public_url.clone(),
                    expires_at,
                };
                self.inner.store.start_flow(link_hash, start, now).await?;
                (state, started.url)
            }
        };
        Ok(AuthorizationRedirect {
            url,
            cookie_name: flow_cookie_name(&state),
            cookie_value: SecretString::from(binding),
            cookie_max_age: self.inner.settings.flow_ttl,
        })
    }

    /// The cookie name to read at the callback for this `state`.
    pub fn flow_cookie_name(&self, state: &str) -> String {
        flow_cookie_name(state)
    }

    /// Finishes a flow at the callback: checks state (single use, unexpired, same browser),
    /// exchanges the code with the PKCE verifier, identifies the account and stores the
    /// connection. Nothing is stored when any step fails.
    pub async fn complete_authorization(
        &self,
        provider_id: &str,
        params: CallbackParams,
        browser_binding: Option<&str>,
    ) -> Result<CompletedFlow> {
        let state = params.state.as_deref().filter(|s| !s.is_empty()).ok_or(FlowError::MissingState)?;
        let flow = self.inner.store.consume_flow(&hash_secret(state), Utc::now()).await?;
        if flow.provider.as_str() != provider_id {
            return Err(FlowError::UnknownState.into());
        }
        let bound = match (browser_binding, &flow.browser_binding_hash) {
            (Some(cookie), Some(expected)) => secure_eq(hash_secret(cookie).as_bytes(), expected.as_bytes()),
            _ => false,
        };
        if !bound {
            return Err(FlowError::ForeignBrowser.into());
        }
        if let Some(error) = params.error {
            let detail = match params.error_description {
                Some(d) => format!("{error} ({})", d.chars().take(200).collect::<String>()),
                None => error,
            };
            return Err(FlowError::ProviderDenied(detail.chars().take(300).collect()).into());
        }
        let code = params.code.filter(|c| !c.is_empty()).ok_or(FlowError::MissingCode)?;
        let configured = self.provider(provider_id)?;
        let (provider, instance) = self.provider_on(configured, flow.instance.as_deref(), "flow").await?;
        let tokens = match provider.protocol() {
            Protocol::OAuth1 => {
                let secret = flow.pkce_verifier.as_ref().ok_or(FlowError::UnknownState)?;
                provider.oauth1_access_token(&self.inner.http, state, secret, &code).await?
            }
            _ => {
                let response = AuthorizationResponse { code: &code, issuer: params.iss.as_deref() };
                provider.finish_authorization(&self.inner.http, &response, flow.pkce_verifier.as_ref()).await?
            }
        };
        let account = provider.fetch_account(&self.inner.http, &tokens).await?;
        let account = super::instances::qualified(account, instance.as_ref());
        let scopes = tokens.scopes.clone().unwrap_or_else(|| flow.scopes.clone());
        let (connection, created) = self
            .inner
            .store
            .upsert_connection(NewConnection {
                owner: flow.owner.clone(),
                provider: provider.id.clone(),
                account,
                instance: instance.map(|o| o.as_str().to_owned()),
                tokens,
                scopes,
            })
            .await?;
        self.forget_local(connection.id);
        let message = if created { "connected" } else { "reconnected: tokens replaced" };
        self.record(connection.id, EventKind::Connected, Some(message.to_owned())).await;
        tracing::info!(connection = %connection.id, provider = %provider.id, created, "connection completed");
        Ok(CompletedFlow { connection, created, return_to: flow.return_to })
    }

    /// Records an event, with its webhook deliveries in the same transaction, and wakes this
    /// process's webhook dispatcher.
    pub(crate) async fn record(&self, id: crate::ConnectionId, kind: EventKind, message: Option<String>) {
        let endpoints = self.inner.settings.webhooks.endpoints_for(kind);
        let event = NewEvent { connection_id: id, kind, message };
        let recorded = if endpoints.is_empty() {
            self.inner.store.record_event(event).await
        } else {
            self.inner.store.record_event_with_deliveries(event, &endpoints).await
        };
        match recorded {
            Ok(_) if !endpoints.is_empty() => self.inner.webhook_wakeup.notify_one(),
            Ok(_) => {}
            Err(e) => tracing::warn!(connection = %id, event = %kind, error = %e, "could not record event"),
        }
    }
}
