//! `/v1/proxy/{connection_id}/{path}`: forwards a request to the connection's provider API
//! with fresh credentials, so an application never handles a token.
//!
//! - Only the provider's configured `api_base_url` can be reached: the path is joined to it and
//!   the result must keep its origin and stay under its path.
//! - OAuth 2.0: `Authorization: Bearer <fresh token>`; on a 401 the token is force-refreshed
//!   once and the request retried. OAuth 1.0a: the request is signed (form bodies included).
//! - The request body is buffered (needed for the retry and for signing; 32 MiB limit); the
//!   response is streamed back.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, route, web};
use futures_util::StreamExt;
use tether_core::{ConnectionId, Url};

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

/// Joins `path` (and the incoming query) to `base`, refusing anything that leaves it.
pub(crate) fn target_url(base: &Url, path: &str, query: &str) -> Result<Url, ApiError> {
    let forbidden = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "proxy_forbidden_target",
            "the proxy only reaches the provider's API base URL",
        )
    };
    if path.contains("://") || path.starts_with('/') || path.contains('\\') {
        return Err(forbidden());
    }
    let mut target = base.join(path).map_err(|_| forbidden())?;
    if target.origin() != base.origin() || !target.path().starts_with(base.path()) {
        return Err(forbidden());
    }
    target.set_query(if query.is_empty() { None } else { Some(query) });
    Ok(target)
}

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
    let (base, provider_headers) = state.engine.api_target(id).await?;
    let target = target_url(&base, &rest, req.query_string())?;
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

    let mut forced = false;
    loop {
        let authorization = state.engine.request_authorization(id, method.as_str(), &target, &form, forced).await?;
        let mut outgoing = state.engine.http().request(method.clone(), target.clone());
        for (name, value) in req.headers() {
            if DROPPED_REQUEST_HEADERS.contains(&name.as_str()) {
                continue;
            }
            outgoing = outgoing.header(name.as_str(), value.as_bytes());
        }
        // Headers the provider's API wants besides the token, unless the application sent its own.
        for (name, value) in &provider_headers {
            if !req.headers().contains_key(*name) {
                outgoing = outgoing.header(*name, value.as_str());
            }
        }
        let resp = outgoing.header("Authorization", authorization).body(body.clone()).send().await.map_err(|e| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "provider_unavailable",
                format!(
                    "the provider API could not be reached: {}",
                    tether_core::oauth2_http::describe_reqwest_error(&e)
                ),
            )
        })?;
        if resp.status().as_u16() == 401 && !forced && form.is_empty() && !is_oauth1(&state, id).await {
            tracing::info!(connection = %id, "provider answered 401 through the proxy; refreshing and retrying once");
            forced = true;
            continue;
        }
        let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut out = HttpResponse::build(status);
        for (name, value) in resp.headers() {
            if !DROPPED_RESPONSE_HEADERS.contains(&name.as_str()) {
                out.append_header((name.as_str(), value.as_bytes()));
            }
        }
        out.insert_header(("x-tether-connection", id.to_string()));
        let stream = resp.bytes_stream().map(|chunk| chunk.map_err(std::io::Error::other));
        return Ok(out.streaming(stream));
    }
}

async fn is_oauth1(state: &WebState, id: ConnectionId) -> bool {
    match state.engine.connection(id).await {
        Ok(c) => {
            state.engine.provider(c.provider.as_str()).is_ok_and(|p| p.protocol() == tether_core::Protocol::OAuth1)
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_under_the_api_base_are_reachable() {
        let base = Url::parse("https://api.x.com/2/").unwrap();
        assert_eq!(target_url(&base, "tweets", "").unwrap().as_str(), "https://api.x.com/2/tweets");
        assert_eq!(target_url(&base, "users/me", "a=1").unwrap().as_str(), "https://api.x.com/2/users/me?a=1");
        for bad in
            ["https://evil.example/x", "//evil.example/x", "/1.1/x", "../1.1/x", "a/../../x", "..%2F..%2Fx", "\\\\evil"]
        {
            let r = target_url(&base, bad, "");
            assert!(
                r.is_err()
                    || r.as_ref().is_ok_and(|u| u.host_str() == Some("api.x.com") && u.path().starts_with("/2/")),
                "{bad}: {r:?}"
            );
        }
        assert!(target_url(&base, "../1.1/x", "").is_err());
        assert!(target_url(&base, "//evil.example/x", "").is_err());
    }
}
