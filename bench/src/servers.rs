//! The servers a benchmark runs against: the constant-body ceiling, a refresh endpoint with a
//! fixed latency, and Tether itself over a seeded database.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;
use tether_core::{AccountIdentity, ConnectionStore, NewConnection, OwnerId, ProviderId, SecretString, TokenSet};

/// The same JSON shape and size as a token answer.
pub const CONSTANT_BODY: &str = r#"{"connection_id":"01a20590-6705-706b-8b6a-7a2defdae454","access_token":"mat_7i6OqA68z-S6cnQ4pPs7UmljrzuXp0-G01JIJpe6HG8","token_type":"bearer","expires_at":"2026-11-23T00:17:36.045Z","scopes":["profile","posts.write"]}"#;

/// Starts an actix server answering the constant body on every GET (the ceiling).
pub fn start_ceiling(workers: usize) -> anyhow::Result<(String, actix_web::dev::ServerHandle)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|| async {
            HttpResponse::Ok().content_type("application/json").body(CONSTANT_BODY)
        }))
    })
    .workers(workers)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok((base, handle))
}

/// A token endpoint that answers refresh grants after `latency`, rotating refresh tokens, and
/// records every refresh token it sees (to count duplicates) and when it answered.
#[derive(Clone, Default)]
pub struct RefreshEndpoint {
    seen: Arc<Mutex<HashSet<String>>>,
    /// Refreshes answered.
    pub refreshes: Arc<AtomicU64>,
    /// Refresh tokens presented twice.
    pub duplicates: Arc<AtomicU64>,
    /// Completion times since start, in ms.
    pub completions: Arc<Mutex<Vec<u64>>>,
}

impl RefreshEndpoint {
    /// Starts it; returns the token URL.
    pub fn start(&self, latency: Duration, workers: usize) -> anyhow::Result<(String, actix_web::dev::ServerHandle)> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let base = format!("http://{}", listener.local_addr()?);
        let me = self.clone();
        let t0 = Instant::now();
        let server = HttpServer::new(move || {
            let me = me.clone();
            App::new().app_data(web::Data::new(me)).route(
                "/token",
                web::post().to(
                    move |me: web::Data<RefreshEndpoint>, form: web::Form<Vec<(String, String)>>| async move {
                        tokio::time::sleep(latency).await;
                        let rt =
                            form.iter().find(|(k, _)| k == "refresh_token").map(|(_, v)| v.clone()).unwrap_or_default();
                        let fresh = me.seen.lock().map(|mut s| s.insert(rt.clone())).unwrap_or(false);
                        if !fresh {
                            me.duplicates.fetch_add(1, Ordering::Relaxed);
                            return HttpResponse::BadRequest().json(serde_json::json!({"error": "invalid_grant"}));
                        }
                        me.refreshes.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut c) = me.completions.lock() {
                            c.push(t0.elapsed().as_millis() as u64);
                        }
                        HttpResponse::Ok().json(serde_json::json!({
                            "access_token": format!("at-{rt}-next"),
                            "refresh_token": format!("{rt}-next"),
                            "token_type": "bearer",
                            "expires_in": 7200,
                        }))
                    },
                ),
            )
        })
        .workers(workers)
        .backlog(4096)
        .max_connections(100_000)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok((format!("{base}/token"), handle))
    }
}

/// Inserts `n` connections of provider `mock` with tokens valid for `valid_for` (negative:
/// already expired) and refresh tokens `rt-<i>`. Returns their ids.
pub async fn seed(
    store: &tether_store::SeaStore,
    n: usize,
    valid_for: chrono::Duration,
) -> anyhow::Result<Vec<String>> {
    let store = Arc::new(store.clone());
    let mut ids = Vec::with_capacity(n);
    let mut tasks = tokio::task::JoinSet::new();
    let chunk = n.div_ceil(16).max(1);
    for start in (0..n).step_by(chunk) {
        let store = store.clone();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for i in start..(start + chunk).min(n) {
                let mut tokens = TokenSet::bearer(format!("at-{i}"));
                tokens.refresh_token = Some(SecretString::from(format!("rt-{i}")));
                tokens.expires_at = Some(chrono::Utc::now() + valid_for);
                let (c, _) = store
                    .upsert_connection(NewConnection {
                        owner: OwnerId::parse(&format!("owner-{i}"))?,
                        provider: ProviderId::parse("mock")?,
                        account: AccountIdentity { id: format!("acct-{i}"), name: None },
                        instance: None,
                        tokens,
                        scopes: vec!["read".into()],
                    })
                    .await?;
                out.push(c.id.to_string());
            }
            anyhow::Ok(out)
        });
    }
    while let Some(r) = tasks.join_next().await {
        ids.extend(r.context("seeding task")??);
    }
    Ok(ids)
}
