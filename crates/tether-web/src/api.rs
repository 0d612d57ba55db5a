//! The JSON API v1.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, delete, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tether_core::{
    ConnectSessionRequest, ConnectionFilter, ConnectionId, ConnectionStatus, ExposeSecret, OwnerId, ProviderId,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Authenticated;
use crate::{ApiError, WebState};

type ApiResult = Result<HttpResponse, ApiError>;

/// The `/v1` scope. Every route is registered through `.service()` of a handler that carries
/// its `#[utoipa::path]`, so the OpenAPI document is generated from exactly the routes served.
pub(crate) fn scope() -> utoipa_actix_web::scope::Scope<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    utoipa_actix_web::scope("/v1")
        .service(list_providers)
        .service(create_connect_session)
        .service(list_connections)
        .service(get_connection)
        .service(disconnect)
        .service(get_token)
        .service(refresh)
        .service(verify)
        .service(list_events)
        .service(crate::api_webhooks::list_webhooks)
        .service(crate::api_webhooks::list_deliveries)
        .service(crate::api_webhooks::get_delivery)
        .service(crate::api_webhooks::retry_delivery)
        .service(crate::proxy::forward)
}

/// The JSON error body of every API error.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// An error code and message.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable machine-readable code (see docs/http-api.md).
    code: String,
    /// Human-readable explanation.
    message: String,
}

pub(crate) fn ok_json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(body)
}

/// A compiled-in provider.
#[derive(Serialize, ToSchema)]
struct ProviderView<'a> {
    id: &'a str,
    display_name: &'a str,
    configured: bool,
    /// The redirect URI to register at the provider (configured providers only).
    redirect_uri: Option<String>,
    default_scopes: Vec<String>,
}

/// `GET /v1/providers`.
#[derive(Serialize, ToSchema)]
struct ProvidersResponse<'a> {
    providers: Vec<ProviderView<'a>>,
}

/// Lists the compiled-in providers and whether each is configured.
#[utoipa::path(
    tag = "providers",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Providers", body = ProvidersResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    )
)]
#[get("/providers")]
async fn list_providers(_: Authenticated, state: web::Data<WebState>) -> ApiResult {
    let registry = tether_core::ProviderRegistry::collect()?;
    let mut views: Vec<ProviderView<'_>> = Vec::new();
    let configured: Vec<_> = state.engine.providers().collect();
    for p in &configured {
        views.push(ProviderView {
            id: p.id.as_str(),
            display_name: &p.settings.display_name,
            configured: true,
            redirect_uri: Some(p.redirect_uri.to_string()),
            default_scopes: p.settings.scopes.clone(),
        });
    }
    for p in registry.iter() {
        let spec = p.spec();
        if !configured.iter().any(|c| c.id.as_str() == spec.id) {
            views.push(ProviderView {
                id: spec.id,
                display_name: spec.display_name,
                configured: false,
                redirect_uri: None,
                default_scopes: spec.default_scopes.iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    views.sort_by(|a, b| a.id.cmp(b.id));
    Ok(ok_json(StatusCode::OK, &ProvidersResponse { providers: views }))
}

/// `POST /v1/connect-sessions` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ConnectSessionBody {
    /// Your application's id for the user (1-255 characters).
    owner: String,
    /// Provider id.
    provider: String,
    /// Where to send the browser afterwards (`connection_id` and `status` are appended).
    return_to: Option<String>,
    /// Scopes to request instead of the configured ones.
    scopes: Option<Vec<String>>,
    /// Per-instance providers (Mastodon): the user's server, a host name with an optional
    /// port (`mastodon.social`) or an https origin (`https://mastodon.social`); no path. When
    /// absent, the connect link asks the user for it. Refused (`invalid_instance`) for other
    /// providers, for malformed or non-https values and for servers the configuration does
    /// not allow.
    #[schema(example = "mastodon.social")]
    instance: Option<String>,
    /// Providers that take a login hint (Bluesky): who the user is, e.g. their handle
    /// (`alice.bsky.social`) or DID. The flow then starts at that account's own server. When
    /// absent, the connect page asks the user (who may leave it empty). Refused
    /// (`invalid_request`) for other providers.
    #[schema(example = "alice.bsky.social")]
    login_hint: Option<String>,
}

/// A created connect session.
#[derive(Serialize, ToSchema)]
struct ConnectSessionCreated {
    id: uuid::Uuid,
    /// Single-use link to send the user's browser to.
    connect_url: String,
    expires_at: DateTime<Utc>,
}

/// Creates a single-use connect link for one of your users.
#[utoipa::path(
    tag = "connections",
    security(("api_key" = [])),
    request_body = ConnectSessionBody,
    responses(
        (status = 201, description = "Created", body = ConnectSessionCreated),
        (status = 400, description = "Invalid request, unknown or unconfigured provider, invalid or refused instance", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    )
)]
#[post("/connect-sessions")]
async fn create_connect_session(
    _: Authenticated,
    state: web::Data<WebState>,
    body: web::Json<ConnectSessionBody>,
) -> ApiResult {
    let body = body.into_inner();
    let created = state
        .engine
        .create_connect_session(ConnectSessionRequest {
            owner: body.owner,
            provider: body.provider,
            return_to: body.return_to,
            scopes: body.scopes,
            instance: body.instance,
            login_hint: body.login_hint,
        })
        .await?;
    Ok(ok_json(
        StatusCode::CREATED,
        &ConnectSessionCreated {
            id: created.id,
            connect_url: created.connect_url.to_string(),
            expires_at: created.expires_at,
        },
    ))
}

/// Filters of `GET /v1/connections`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this owner.
    owner: Option<String>,
    /// Only this provider.
    provider: Option<String>,
    /// `active`, `reauth_required` or `disconnected`.
    status: Option<String>,
    /// At most this many (default 500, max 1000).
    limit: Option<u64>,
}

/// `GET /v1/connections`.
#[derive(Serialize, ToSchema)]
struct ConnectionsResponse {
    connections: Vec<tether_core::Connection>,
}

/// Lists connections, newest first.
#[utoipa::path(
    tag = "connections",
    security(("api_key" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "Connections", body = ConnectionsResponse),
        (status = 400, description = "Invalid filter", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
    )
)]
#[get("/connections")]
async fn list_connections(_: Authenticated, state: web::Data<WebState>, q: web::Query<ListQuery>) -> ApiResult {
    let q = q.into_inner();
    let filter = ConnectionFilter {
        owner: q.owner.as_deref().filter(|s| !s.is_empty()).map(OwnerId::parse).transpose()?,
        provider: q.provider.as_deref().filter(|s| !s.is_empty()).map(ProviderId::parse).transpose()?,
        status: q.status.as_deref().filter(|s| !s.is_empty()).map(str::parse::<ConnectionStatus>).transpose()?,
        limit: Some(q.limit.unwrap_or(500).min(1000)),
    };
    let connections = state.engine.store().list_connections(&filter).await?;
    Ok(ok_json(StatusCode::OK, &ConnectionsResponse { connections }))
}

fn parse_id(raw: &str) -> Result<ConnectionId, ApiError> {
    Ok(ConnectionId::parse(raw)?)
}

/// One connection (never its tokens).
#[utoipa::path(
    tag = "connections",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The connection", body = tether_core::Connection),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
#[get("/connections/{id}")]
async fn get_connection(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let conn = state.engine.connection(parse_id(&id)?).await?;
    Ok(ok_json(StatusCode::OK, &conn))
}

/// Options of `GET /v1/connections/{id}/token`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenQuery {
    /// Refresh first, even if the token is fresh.
    #[serde(default)]
    force_refresh: bool,
}

/// A fresh access token.
#[derive(Serialize, ToSchema)]
struct TokenView {
    connection_id: ConnectionId,
    access_token: String,
    token_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_secret: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    scopes: Vec<String>,
}

fn token_response(t: tether_core::FreshToken) -> HttpResponse {
    ok_json(
        StatusCode::OK,
        &TokenView {
            connection_id: t.connection_id,
            access_token: t.access_token.expose_secret().to_owned(),
            token_type: t.token_type,
            token_secret: t.token_secret.as_ref().map(|s| s.expose_secret().to_owned()),
            expires_at: t.expires_at,
            scopes: t.scopes,
        },
    )
}

/// A token valid for at least the configured margin (refreshed first when needed).
#[utoipa::path(
    tag = "tokens",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Connection id"), TokenQuery),
    responses(
        (status = 200, description = "A fresh token (OAuth 1.0a connections add token_secret)", body = TokenView),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "reauth_required: send the user through a new connect link; token_bound: the tokens are DPoP-bound (Bluesky), call the API through the proxy", body = ErrorBody),
        (status = 410, description = "The connection was disconnected", body = ErrorBody),
        (status = 502, description = "The provider refused", body = ErrorBody),
        (status = 503, description = "Provider unavailable and no valid token stored (Retry-After)", body = ErrorBody),
    )
)]
#[get("/connections/{id}/token")]
async fn get_token(
    _: Authenticated,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<TokenQuery>,
) -> ApiResult {
    let id = parse_id(&id)?;
    Ok(token_response(state.engine.exportable_token(id, q.force_refresh).await?))
}

/// Forces a refresh now.
#[utoipa::path(
    tag = "tokens",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The refreshed connection", body = tether_core::Connection),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "reauth_required", body = ErrorBody),
        (status = 410, description = "The connection was disconnected", body = ErrorBody),
        (status = 502, description = "The provider refused or cannot refresh this connection", body = ErrorBody),
        (status = 503, description = "Provider unavailable (Retry-After)", body = ErrorBody),
    )
)]
#[post("/connections/{id}/refresh")]
async fn refresh(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    state.engine.refresh_now(id).await?;
    let conn = state.engine.connection(id).await?;
    Ok(ok_json(StatusCode::OK, &conn))
}

/// Checks with the provider that the connection's token still works (its identity endpoint).
///
/// For tokens that never expire (Mastodon, GitHub OAuth apps) this is how a revocation by the
/// user is noticed before the next API call: a refused token that cannot be renewed makes the
/// connection `reauth_required` (409, with an event).
#[utoipa::path(
    tag = "connections",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "The token works; the connection", body = tether_core::Connection),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "reauth_required: the provider refused the token", body = ErrorBody),
        (status = 410, description = "The connection was disconnected", body = ErrorBody),
        (status = 502, description = "The provider answered an error or another account", body = ErrorBody),
        (status = 503, description = "Provider unavailable (Retry-After)", body = ErrorBody),
    )
)]
#[post("/connections/{id}/verify")]
async fn verify(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    state.engine.verify_connection(id).await?;
    let conn = state.engine.connection(id).await?;
    Ok(ok_json(StatusCode::OK, &conn))
}

/// Result of a disconnect.
#[derive(Serialize, ToSchema)]
struct DisconnectResponse {
    connection: tether_core::Connection,
    /// Whether the provider confirmed the revocation.
    revoked: bool,
    /// Why it was not revoked (the secrets are deleted anyway).
    revoke_error: Option<String>,
}

/// Revokes at the provider where possible, then deletes the connection's secrets.
#[utoipa::path(
    tag = "connections",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Connection id")),
    responses(
        (status = 200, description = "Disconnected", body = DisconnectResponse),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
#[delete("/connections/{id}")]
async fn disconnect(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let outcome = state.engine.disconnect(id).await?;
    let conn = state.engine.connection(id).await?;
    Ok(ok_json(
        StatusCode::OK,
        &DisconnectResponse { connection: conn, revoked: outcome.revoked, revoke_error: outcome.revoke_error },
    ))
}

/// Options of `GET /v1/connections/{id}/events`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// At most this many (default 100, max 1000).
    limit: Option<u64>,
}

/// An event with the status of its webhook deliveries.
#[derive(Serialize, ToSchema)]
struct EventView {
    /// Event id (UUID v7), the `id` of its webhook payload.
    id: uuid::Uuid,
    /// The connection.
    connection_id: ConnectionId,
    /// What happened.
    kind: tether_core::EventKind,
    /// Details.
    message: Option<String>,
    /// When.
    created_at: DateTime<Utc>,
    /// One per webhook endpoint that receives this kind of event (empty without webhooks).
    deliveries: Vec<tether_core::WebhookDelivery>,
}

/// `GET /v1/connections/{id}/events`.
#[derive(Serialize, ToSchema)]
struct EventsResponse {
    events: Vec<EventView>,
}

/// The connection's events, newest first.
#[utoipa::path(
    tag = "connections",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Connection id"), EventsQuery),
    responses(
        (status = 200, description = "Events", body = EventsResponse),
        (status = 400, description = "Invalid query", body = ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody),
    )
)]
#[get("/connections/{id}/events")]
async fn list_events(
    _: Authenticated,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> ApiResult {
    let id = parse_id(&id)?;
    state.engine.connection(id).await?;
    let limit = q.limit.unwrap_or(100).min(1000);
    let events = state
        .engine
        .events_with_deliveries(id, limit)
        .await?
        .into_iter()
        .map(|(e, deliveries)| EventView {
            id: e.id,
            connection_id: e.connection_id,
            kind: e.kind,
            message: e.message,
            created_at: e.created_at,
            deliveries,
        })
        .collect();
    Ok(ok_json(StatusCode::OK, &EventsResponse { events }))
}
