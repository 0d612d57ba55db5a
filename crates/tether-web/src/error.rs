//! Engine errors as HTTP: JSON `{"error": {"code", "message"}}` for the API, readable pages
//! for browser routes.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use tether_core::Error;

use crate::pages;

/// An API error: a stable code, a message and a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<u64>,
}

impl ApiError {
    /// A custom error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }
    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.code
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

/// HTTP status for an engine error.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    match e {
        Error::UnknownProvider(_)
        | Error::ProviderNotConfigured(_)
        | Error::InvalidInput(_)
        | Error::InvalidInstance(_)
        | Error::ForbiddenTarget(_)
        | Error::Flow(_) => StatusCode::BAD_REQUEST,
        Error::NotFound { .. } => StatusCode::NOT_FOUND,
        Error::ReauthRequired(_) | Error::TokenBound(_) => StatusCode::CONFLICT,
        Error::Disconnected(_) => StatusCode::GONE,
        Error::TemporarilyUnavailable { .. }
        | Error::Store(_)
        | Error::Provider { kind: tether_core::ProviderErrorKind::Temporary { .. }, .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        Error::Provider { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = status_of(&e);
        let retry_after = match &e {
            Error::TemporarilyUnavailable { retry_after, .. } => Some(retry_after.as_secs().max(1)),
            Error::Store(_) => Some(5),
            Error::Provider { kind: tether_core::ProviderErrorKind::Temporary { retry_after }, .. } => {
                Some(retry_after.map_or(5, |d| d.as_secs().max(1)))
            }
            _ => None,
        };
        let message = match &e {
            Error::ReauthRequired(_) => {
                format!("{e}: create a new connect session for this owner and send the user through it")
            }
            // Internal details stay in the log.
            Error::Store(_) | Error::Seal(_) | Error::Config(_) => {
                tracing::error!(error = %e, "internal error");
                "internal error; see the server log".to_owned()
            }
            _ => e.to_string(),
        };
        Self { status, code: e.code(), message, retry_after }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        resp.insert_header((header::CACHE_CONTROL, "no-store"))
            .json(serde_json::json!({ "error": { "code": self.code, "message": self.message } }))
    }
}

/// A browser-route error, shown as a page.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl From<Error> for PageError {
    fn from(e: Error) -> Self {
        let ApiError { status, code, message, .. } = ApiError::from(e);
        Self { status, code, message }
    }
}

impl std::fmt::Display for PageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse {
        pages::error_page(self.status, self.code, &self.message)
    }
}

pub(crate) fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(64 * 1024).error_handler(|err, _| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid JSON body: {err}")).into()
    })
}

pub(crate) fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("invalid query: {err}")).into()
    })
}

pub(crate) fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|err, _| {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("invalid path: {err}")).into()
    })
}

/// Unknown routes: JSON under `/v1/`, a page elsewhere.
pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/v1/") {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no route {} {}", req.method(), req.path()))
            .error_response()
    } else {
        pages::error_page(StatusCode::NOT_FOUND, "not_found", "There is no page at this address.")
    }
}
