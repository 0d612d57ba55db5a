//! The JSON API v1.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, Scope, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tether_core::{
    ConnectSessionRequest, ConnectionFilter, ConnectionId, ConnectionStatus, ExposeSecret, OwnerId, ProviderId,
};

use crate::auth::Authenticated;
use crate::{ApiError, WebState};

type ApiResult = Result<HttpResponse, ApiError>;

pub(crate) fn scope() -> Scope {
    web::scope("/v1")
        .route("/providers", web::get().to(list_providers))
        .route("/connect-sessions", web::post().to(create_connect_session))
        .route("/connections", web::get().to(list_connections))
        .route("/connections/{id}", web::get().to(get_connection))
        .route("/connections/{id}", web::delete().to(disconnect))
        .route("/connections/{id}/token", web::get().to(get_token))
        .route("/connections/{id}/refresh", web::post().to(refresh))
        .route("/connections/{id}/events", web::get().to(list_events))
        .route("/proxy/{id}/{path:.*}", web::route().to(crate::proxy::forward))
}

fn ok_json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    HttpResponse::build(status).insert_header(("Cache-Control", "no-store")).json(body)
}

#[derive(Serialize)]
struct ProviderView<'a> {
    id: &'a str,
    display_name: &'a str,
    configured: bool,
    redirect_uri: Option<String>,
    default_scopes: Vec<String>,
}

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
    Ok(ok_json(StatusCode::OK, &serde_json::json!({ "providers": views })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectSessionBody {
    owner: String,
    provider: String,
    return_to: Option<String>,
    scopes: Option<Vec<String>>,
}

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
        })
        .await?;
    Ok(ok_json(
        StatusCode::CREATED,
        &serde_json::json!({
            "id": created.id,
            "connect_url": created.connect_url,
            "expires_at": created.expires_at,
        }),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    owner: Option<String>,
    provider: Option<String>,
    status: Option<String>,
    limit: Option<u64>,
}

async fn list_connections(_: Authenticated, state: web::Data<WebState>, q: web::Query<ListQuery>) -> ApiResult {
    let q = q.into_inner();
    let filter = ConnectionFilter {
        owner: q.owner.as_deref().filter(|s| !s.is_empty()).map(OwnerId::parse).transpose()?,
        provider: q.provider.as_deref().filter(|s| !s.is_empty()).map(ProviderId::parse).transpose()?,
        status: q.status.as_deref().filter(|s| !s.is_empty()).map(str::parse::<ConnectionStatus>).transpose()?,
        limit: Some(q.limit.unwrap_or(500).min(1000)),
    };
    let connections = state.engine.store().list_connections(&filter).await?;
    Ok(ok_json(StatusCode::OK, &serde_json::json!({ "connections": connections })))
}

fn parse_id(raw: &str) -> Result<ConnectionId, ApiError> {
    Ok(ConnectionId::parse(raw)?)
}

async fn get_connection(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let conn = state.engine.connection(parse_id(&id)?).await?;
    Ok(ok_json(StatusCode::OK, &conn))
}

#[derive(Deserialize)]
struct TokenQuery {
    #[serde(default)]
    force_refresh: bool,
}

#[derive(Serialize)]
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

async fn get_token(
    _: Authenticated,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<TokenQuery>,
) -> ApiResult {
    let id = parse_id(&id)?;
    let token =
        if q.force_refresh { state.engine.refresh_now(id).await? } else { state.engine.access_token(id).await? };
    Ok(token_response(token))
}

async fn refresh(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    state.engine.refresh_now(id).await?;
    let conn = state.engine.connection(id).await?;
    Ok(ok_json(StatusCode::OK, &conn))
}

async fn disconnect(_: Authenticated, state: web::Data<WebState>, id: web::Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let outcome = state.engine.disconnect(id).await?;
    let conn = state.engine.connection(id).await?;
    Ok(ok_json(
        StatusCode::OK,
        &serde_json::json!({
            "connection": conn,
            "revoked": outcome.revoked,
            "revoke_error": outcome.revoke_error,
        }),
    ))
}

#[derive(Deserialize)]
struct EventsQuery {
    limit: Option<u64>,
}

async fn list_events(
    _: Authenticated,
    state: web::Data<WebState>,
    id: web::Path<String>,
    q: web::Query<EventsQuery>,
) -> ApiResult {
    let id = parse_id(&id)?;
    state.engine.connection(id).await?;
    let events = state.engine.store().events(id, q.limit.unwrap_or(100).min(1000)).await?;
    Ok(ok_json(StatusCode::OK, &serde_json::json!({ "events": events })))
}
