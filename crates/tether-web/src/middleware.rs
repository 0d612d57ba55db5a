//! Request logging without query strings, request ids, and browser security headers.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::time::Instant;

use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::DefaultHeaders;

/// Logs method, path (never the query), status and duration of each request, and sets an
/// `x-request-id` response header (the incoming one when it is sane, else a new one).
#[derive(Debug, Clone, Copy)]
pub struct RequestLogger;

impl<S, B> Transform<S, ServiceRequest> for RequestLogger
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Transform = RequestLoggerService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(RequestLoggerService { service }))
    }
}

/// The service produced by [`RequestLogger`].
#[derive(Debug)]
pub struct RequestLoggerService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for RequestLoggerService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: 'static,
{
    type Response = ServiceResponse<B>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let method = req.method().to_string();
        // Path only: callback queries carry authorization codes and states.
        // Connect links are single-use bearer secrets: log the route, not the token.
        let path =
            if req.path().starts_with("/connect/") { "/connect/{token}".to_owned() } else { req.path().to_owned() };
        let request_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .map(str::to_owned)
            .or_else(|| tether_core::random_token(12).ok())
            .unwrap_or_default();
        let span = tracing::info_span!("http", request_id = %request_id);
        let fut = {
            let _entered = span.enter();
            self.service.call(req)
        };
        Box::pin(tracing::Instrument::instrument(
            async move {
                let mut res = fut.await?;
                let status = res.status().as_u16();
                // The route pattern, not the path: bounded label cardinality.
                let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
                let labels = [("method", method.clone()), ("route", route), ("status", status.to_string())];
                metrics::counter!("tether_http_requests_total", &labels).increment(1);
                metrics::histogram!("tether_http_request_duration_seconds", &labels[..2])
                    .record(started.elapsed().as_secs_f64());
                if let Ok(v) = HeaderValue::from_str(&request_id) {
                    res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
                }
                tracing::info!(
                    request_id = %request_id,
                    method = %method,
                    path = %path,
                    status,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "request"
                );
                Ok(res)
            },
            span,
        ))
    }
}

/// Headers for browser pages: no framing, no referrer (so codes in callback URLs never leak),
/// no caching, a strict content security policy.
pub(crate) fn browser_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'; form-action *; frame-ancestors 'none'; base-uri 'none'",
        ))
        .add(("X-Frame-Options", "DENY"))
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}
