//! The one error type of tether-core.

use std::time::Duration;

/// Result with the core [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine, with a stable [`code`](Error::code) for APIs.
///
/// Messages never contain secrets: tokens, codes and client secrets are not part of any variant.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No provider with this id is compiled in.
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    /// The provider is compiled in but has no configuration (client id and secret).
    #[error("provider `{0}` is not configured: add a [providers.{0}] table with client_id and client_secret")]
    ProviderNotConfigured(String),
    /// Configuration is invalid.
    #[error("configuration error: {0}")]
    Config(String),
    /// The request is malformed.
    #[error("{0}")]
    InvalidInput(String),
    /// The server (instance) named for a per-instance provider is malformed or not allowed.
    #[error("{0}")]
    InvalidInstance(String),
    /// A thing with this id does not exist.
    #[error("{what} `{id}` not found")]
    NotFound {
        /// What was looked up ("connection", ...).
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// A connect link or authorization flow was rejected.
    #[error(transparent)]
    Flow(#[from] FlowError),
    /// The provider answered with an error or could not be reached.
    #[error("provider `{provider}`: {message}")]
    Provider {
        /// Provider id.
        provider: String,
        /// How to react to the failure.
        kind: ProviderErrorKind,
        /// Human-readable description (never contains secrets).
        message: String,
    },
    /// The connection needs the user to connect again (its grant is dead).
    #[error("connection `{0}` needs to be reconnected by its user (status reauth_required)")]
    ReauthRequired(String),
    /// The connection's access token cannot be used on its own (it is bound to a key Tether
    /// keeps, e.g. DPoP): make the call through the proxy or [`Tether::send_api_request`](crate::Tether::send_api_request).
    #[error("{0}")]
    TokenBound(String),
    /// A request to a provider's API would leave the connection's API base URL.
    #[error("{0}")]
    ForbiddenTarget(String),
    /// The connection was disconnected; its secrets are gone.
    #[error("connection `{0}` is disconnected")]
    Disconnected(String),
    /// No valid token can be served right now; try again later.
    #[error("provider `{provider}` is unavailable and no valid token is stored; retry later")]
    TemporarilyUnavailable {
        /// Provider id.
        provider: String,
        /// Suggested wait before retrying.
        retry_after: Duration,
    },
    /// A secret could not be sealed or opened.
    #[error("sealing error: {0}")]
    Seal(String),
    /// The store failed.
    #[error("store error: {0}")]
    Store(String),
}

impl Error {
    /// A stable, machine-readable code for this error, used in API responses.
    pub fn code(&self) -> &'static str {
        match self {
            Error::UnknownProvider(_) => "unknown_provider",
            Error::ProviderNotConfigured(_) => "provider_not_configured",
            Error::Config(_) => "configuration_error",
            Error::InvalidInput(_) => "invalid_request",
            Error::InvalidInstance(_) => "invalid_instance",
            Error::NotFound { .. } => "not_found",
            Error::Flow(e) => e.code(),
            Error::Provider { kind, .. } => match kind {
                ProviderErrorKind::InvalidGrant => "provider_invalid_grant",
                ProviderErrorKind::Temporary { .. } => "provider_unavailable",
                ProviderErrorKind::Rejected => "provider_error",
                ProviderErrorKind::Protocol => "provider_protocol_error",
                ProviderErrorKind::Unsupported => "provider_unsupported",
            },
            Error::ReauthRequired(_) => "reauth_required",
            Error::Disconnected(_) => "connection_disconnected",
            Error::TokenBound(_) => "token_bound",
            Error::ForbiddenTarget(_) => "proxy_forbidden_target",
            Error::TemporarilyUnavailable { .. } => "provider_unavailable",
            Error::Seal(_) => "sealing_error",
            Error::Store(_) => "store_error",
        }
    }

    /// Shorthand for a provider error.
    pub fn provider(provider: &str, kind: ProviderErrorKind, message: impl Into<String>) -> Self {
        Error::Provider { provider: provider.to_owned(), kind, message: message.into() }
    }

    /// A provider that could not be reached (connection refused, timeout, broken body):
    /// retryable. The URL is left out of the message (it may carry a token in its query).
    pub fn provider_unreachable(provider: &str, e: &reqwest::Error) -> Self {
        Error::provider(
            provider,
            ProviderErrorKind::Temporary { retry_after: None },
            crate::oauth2_http::describe_reqwest_error(e),
        )
    }

    /// Shorthand for a store error.
    pub fn store(message: impl std::fmt::Display) -> Self {
        Error::Store(message.to_string())
    }
}

/// How a provider failure should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderErrorKind {
    /// The grant is dead (`invalid_grant`, revoked app, expired refresh token): the user must reconnect.
    InvalidGrant,
    /// Unreachable, timeout, 5xx or 429: retry later.
    Temporary {
        /// What the provider asked for (Retry-After), if anything.
        retry_after: Option<Duration>,
    },
    /// The provider refused the request for another reason (bad client credentials, access denied...).
    Rejected,
    /// The provider answered something we could not understand.
    Protocol,
    /// The provider does not support the operation (no refresh token, no revoke endpoint).
    Unsupported,
}

/// Why a connect link or an authorization callback was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The connect link is unknown.
    #[error("this connect link is not valid")]
    UnknownLink,
    /// The connect link expired.
    #[error("this connect link has expired; ask the application for a new one")]
    LinkExpired,
    /// The connect link was already used.
    #[error("this connect link was already used; ask the application for a new one")]
    LinkUsed,
    /// The callback has no `state` parameter.
    #[error("the provider's answer has no state parameter")]
    MissingState,
    /// The state is unknown (forged or from another server).
    #[error("the authorization state is unknown")]
    UnknownState,
    /// The flow took too long.
    #[error("the authorization took too long and expired; start again")]
    StateExpired,
    /// The state was already used (a replayed callback).
    #[error("this authorization was already completed or used")]
    StateReplayed,
    /// The callback came from a different browser than the one that started the flow.
    #[error("this authorization was started in a different browser")]
    ForeignBrowser,
    /// The callback has no `code`.
    #[error("the provider's answer has no authorization code")]
    MissingCode,
    /// The provider reported an error in the callback (e.g. the user denied access).
    #[error("the provider reported: {0}")]
    ProviderDenied(String),
}

impl FlowError {
    /// Stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            FlowError::UnknownLink => "connect_link_invalid",
            FlowError::LinkExpired => "connect_link_expired",
            FlowError::LinkUsed => "connect_link_used",
            FlowError::MissingState => "state_missing",
            FlowError::UnknownState => "state_unknown",
            FlowError::StateExpired => "state_expired",
            FlowError::StateReplayed => "state_replayed",
            FlowError::ForeignBrowser => "state_foreign_browser",
            FlowError::MissingCode => "code_missing",
            FlowError::ProviderDenied(_) => "access_denied",
        }
    }
}
