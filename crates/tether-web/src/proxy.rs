//! `/v1/proxy/{connection_id}/{path}`: forwards a request to the connection's provider API
//! with fresh credentials, so an application never handles a token.
//!
//! - Only the provider's configured `api_base_url` can be reached: the path is joined to it and
//!   the result must keep its origin and stay under its path.
//! - The request is sent by [`Tether::send_api_request`](tether_core::Tether::send_api_request):
//!   OAuth 2.0 `Authorization: Bearer <fresh token>` (DPoP-bound tokens with a fresh proof per
//!   request, sent again once when the server asks for a new nonce); on a 401 the token is
//!   force-refreshed once and the request retried. OAuth 1.0a: the request is signed (form
//!   bodies included).
//! - The request body is buffered (needed for the retry and for signing; 32 MiB limit); the
//!   response is streamed back.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, route, web};
use futures_util::StreamExt;
use tether_core::ConnectionId;

use crate::auth::Authenticated;
use crate::{ApiError, WebState};

/// Largest request body the proxy forwards.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Request headers never forwarded: hop-by-hop, our own credentials, cookies, and headers the
/// client library recomputes.
const DROPPED_REQUEST_HEADERS: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-request-id",
];

/// Response headers never passed back.
const DROPPED_RESPONSE_HEADERS: &[&str] =
    &["connection", "keep-alive", "transfer-encoding", "trailer", "upgrade", "content-length", "set-cookie"];

async fn read_body(mut payload: web::Payload) -> Result<web::Bytes, ApiError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", format!("body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "the proxy forwards at most 32 MiB",
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Forwards a request to the provider's API with fresh credentials.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/proxy/{id}/{path}",
    tag = "proxy",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "Connection id"),
        ("path" = String, Path, description = "Path under the provider's api_base_url"),
    ),
    responses(
        (status = 200, description = "The provider's answer, streamed (any status the provider returns)"),
        (status = 400, description = "Target outside the provider's API base, or no api_base_url", body = crate::api::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::api::ErrorBody),
        (status = 404, description = "No such connection", body = crate::api::ErrorBody),
        (status = 409, description = "reauth_required", body = crate::api::ErrorBody),
        (status = 410, description = "The connection was disconnected", body = crate::api::ErrorBody),
        (status = 413, description = "Request body over 32 MiB", body = crate::api::ErrorBody),
        (status = 502, description = "The provider could not be reached", body = crate::api::ErrorBody),
        (status = 503, description = "Provider unavailable and no valid token (Retry-After)", body = crate::api::ErrorBody),
    )
)]
#[route("/proxy/{id}/{path:.*}", method = "GET", method = "POST", method = "PUT", method = "PATCH", method = "DELETE")]
pub(crate) async fn forward(
    _: Authenticated,
    state: web::Data<WebState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let (id, rest) = path.into_inner();
    let id = ConnectionId::parse(&id)?;
    let path = match req.query_string() {
        "" => rest,
        query => format!("{rest}?{query}"),
    };
    let body = read_body(payload).await?;
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes())
        .map_err(|_| ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request", "unsupported method"))?;
    let is_form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // OAuth 1.0a signs form parameters too.
    let form: Vec<(String, String)> =
        if is_form { url::form_urlencoded::parse(&body).into_owned().collect() } else { Vec::new() };

    let mut headers = tether_core::http::HeaderMap::new();
    for (name, value) in req.headers() {
        if DROPPED_REQUEST_HEADERS.contains(&name.as_str()) {
            continue;
        }
        if let (Ok(name), Ok(value)) = (
            tether_core::http::HeaderName::from_bytes(name.as_str().as_bytes()),
            tether_core::http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            headers.append(name, value);
        }
    }
    let request = tether_core::ApiRequest { method, path, headers, body, form };
    let resp = state.engine.send_api_request(id, request).await?;
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut out = HttpResponse::build(status);
    for (name, value) in resp.headers() {
        if !DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
            out.append_header((name.as_str(), value.as_bytes()));
        }
    }
    out.insert_header(("x-tether-connection", id.to_string()));
    let stream = resp.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other));
    Ok(out.streaming(stream))
}
