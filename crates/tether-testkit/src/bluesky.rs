//! [`BlueskyMock`]: a loopback server that behaves like a Bluesky (AT Protocol) PDS with its own
//! OAuth authorization server, strictly enforcing the atproto OAuth profile: pushed
//! authorization requests only, PKCE `S256`, DPoP-bound tokens (RFC 9449) with server nonces,
//! `private_key_jwt` client authentication against the client's published metadata and JWKS
//! (or the `http://localhost` development client), single-use rotating refresh tokens with
//! replay detection, and a resource server with a nonce of its own.
//!
//! Everything is served from one origin, `ORIGIN = http://127.0.0.1:PORT` ([`BlueskyMock::origin`]):
//! it is the PDS, the authorization server's issuer, the handle's host and (under `/plc`) the
//! PLC directory. JWS checks (ES256 signatures, RFC 7638 thumbprints) are the mock's own, not
//! Tether's.
//!
//! | Route | What |
//! |---|---|
//! | `GET /.well-known/atproto-did` | the account's DID (`text/plain`) |
//! | `GET /plc/{did}` | a PLC-style DID document (`alsoKnownAs: at://HANDLE`, `#atproto_pds` = ORIGIN); 404 for other DIDs |
//! | `GET /.well-known/oauth-protected-resource` | RFC 9728 metadata: resource and authorization server ORIGIN |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata shaped like bsky.social's |
//! | `POST /oauth/par` | PAR (RFC 9126): DPoP proof, client authentication, `response_type=code`, `redirect_uri`, `state`, `scope` with `atproto`, PKCE `S256`, optional `login_hint`; 201 `{request_uri, expires_in: 299}` |
//! | `GET /oauth/authorize` | `client_id` + `request_uri` of a PAR (single use); auto-approves as the account: 302 to `redirect_uri?code&state&iss` |
//! | `POST /oauth/token` | `authorization_code` (PKCE, same client, key `kid` and DPoP key as the PAR) and `refresh_token` (single use, same client `kid` and DPoP key; reuse kills the session) |
//! | `POST /oauth/revoke` | `token` (access or refresh) + client authentication (+ optional DPoP): ends the whole session; 200 also for unknown tokens |
//! | `GET /xrpc/com.atproto.server.getSession` | `{did, handle, active}` |
//! | `POST /xrpc/com.atproto.repo.createRecord` | `{repo, collection, record, rkey?}` (needs `transition:generic` or a `repo` scope); kept in [`BlueskyMock::records`] |
//! | `GET /xrpc/app.bsky.actor.getProfile?actor=` | a small profile of the account |
//! | `GET /xrpc/com.atproto.identity.resolveHandle?handle=` | `{did}` (no authentication) |
//!
//! DPoP on `/oauth/*`: header `DPoP` with `typ: dpop+jwt`, `alg: ES256`, a public P-256 `jwk`;
//! claims `jti` (never seen before), `htm`, `htu` (ORIGIN + path, no query), `iat` within 60 s and
//! the authorization server's current `nonce` (else 400 `use_dpop_nonce` with a `DPoP-Nonce`
//! header; every `/oauth/*` answer carries `DPoP-Nonce`). Other bad proofs: 400
//! `invalid_dpop_proof`. XRPC calls need `Authorization: DPoP <token>` and a proof with `ath`,
//! the resource server's nonce (else 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"`)
//! and the key the token is bound to.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tether_testkit::bluesky::{BlueskyMock, BlueskyMockConfig};
//! let pds = BlueskyMock::start(BlueskyMockConfig::default()).await?;
//! let plc_directory = pds.url("/plc"); // http://127.0.0.1:PORT/plc
//! assert_eq!(pds.par_count(), 0);
//! pds.stop().await;
//! # Ok(()) }
//! ```

mod auth_server;
mod jose;
mod pds;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

/// How the mock Bluesky server behaves.
#[derive(Debug, Clone)]
pub struct BlueskyMockConfig {
    /// The account's handle, e.g. `alice.test`.
    pub handle: String,
    /// The account's DID, e.g. `did:plc:ewvi7nxzyoun6zhxrhs64oiz`.
    pub did: String,
    /// Access-token lifetime (`expires_in`), seconds. Default 1800.
    pub access_token_lifetime_secs: u64,
    /// Refresh-token (session) lifetime, seconds, from the code exchange. Default 180 days.
    pub refresh_token_lifetime_secs: u64,
    /// Whether DPoP proofs must carry the server's current nonce. Default `true`. When `false`
    /// nonces are not checked (but `DPoP-Nonce` headers are still sent).
    pub require_nonce: bool,
    /// Whether the PDS (resource server) keeps a DPoP nonce of its own, as a real PDS on
    /// another host than its authorization server does. Default `true`: a client that caches
    /// one nonce per origin gets a `use_dpop_nonce` challenge each time it switches between
    /// `/oauth/*` and `/xrpc/*` here. `false`: both sides use the same nonce.
    pub separate_resource_nonce: bool,
}

impl Default for BlueskyMockConfig {
    /// `alice.test`, `did:plc:ewvi7nxzyoun6zhxrhs64oiz`, 30-minute access tokens, 180-day
    /// refresh tokens, nonces required, a separate resource-server nonce.
    fn default() -> Self {
        Self {
            handle: "alice.test".into(),
            did: "did:plc:ewvi7nxzyoun6zhxrhs64oiz".into(),
            access_token_lifetime_secs: 1800,
            refresh_token_lifetime_secs: 180 * 86_400,
            require_nonce: true,
            separate_resource_nonce: true,
        }
    }
}

/// A record created through `com.atproto.repo.createRecord`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlueskyRecord {
    /// `at://DID/COLLECTION/RKEY`.
    pub uri: String,
    /// The (made-up) CID answered.
    pub cid: String,
    /// The collection NSID, e.g. `app.bsky.feed.post`.
    pub collection: String,
    /// The record key.
    pub rkey: String,
    /// The record as sent.
    pub record: serde_json::Value,
}

/// A PAR'd authorization request, then the code issued for it.
#[derive(Clone)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: String,
    scope: String,
    code_challenge: String,
    jkt: String,
    kid: Option<String>,
    expires_at: i64,
}

/// One authorization (the tokens of one code exchange and its refreshes).
struct Session {
    client_id: String,
    jkt: String,
    kid: Option<String>,
    scope: String,
    active: bool,
    refresh_expires_at: i64,
}

struct AccessToken {
    session: usize,
    expires_at: i64,
}

struct RefreshToken {
    session: usize,
    used: bool,
}

#[derive(Default)]
struct State {
    as_nonce: String,
    rs_nonce: String,
    dpop_jtis: HashSet<String>,
    assertion_jtis: HashSet<String>,
    pars: HashMap<String, Pending>,
    codes: HashMap<String, Pending>,
    sessions: Vec<Session>,
    access: HashMap<String, AccessToken>,
    refresh: HashMap<String, RefreshToken>,
    records: Vec<BlueskyRecord>,
    last_client_kid: Option<String>,
    par_count: usize,
    token_count: usize,
    refresh_count: usize,
    revocation_count: usize,
    nonce_challenges: usize,
    replay_rejections: usize,
    refresh_replays: usize,
    xrpc_calls: usize,
}

impl State {
    fn revoke_session(&mut self, session: usize) {
        if let Some(s) = self.sessions.get_mut(session) {
            s.active = false;
        }
        self.access.retain(|_, t| t.session != session);
        self.refresh.retain(|_, t| t.session != session);
    }
}

struct Shared {
    config: BlueskyMockConfig,
    origin: String,
    http: reqwest::Client,
    state: Mutex<State>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Random lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: still unique within the process.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!("{n:0width$x}", width = bytes * 2);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running mock Bluesky PDS + authorization server on `127.0.0.1` with a random port.
/// Stops when dropped (or with [`stop`](BlueskyMock::stop)).
pub struct BlueskyMock {
    shared: Arc<Shared>,
    server: ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for BlueskyMock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlueskyMock")
            .field("origin", &self.shared.origin)
            .field("handle", &self.shared.config.handle)
            .field("did", &self.shared.config.did)
            .finish_non_exhaustive()
    }
}

impl BlueskyMock {
    /// Starts the server on `127.0.0.1` with a random port, in the background of the current
    /// tokio runtime (`#[tokio::test]`, `#[actix_web::test]`, …).
    pub async fn start(config: BlueskyMockConfig) -> std::io::Result<BlueskyMock> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let origin = format!("http://{}", listener.local_addr()?);
        let http = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(std::io::Error::other)?;
        let as_nonce = random_hex(16);
        let rs_nonce = if config.separate_resource_nonce { random_hex(16) } else { as_nonce.clone() };
        let state = State { as_nonce, rs_nonce, ..State::default() };
        let shared = Arc::new(Shared { config, origin, http, state: Mutex::new(state) });
        let data = web::Data::from(shared.clone());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .configure(pds::configure_identity)
                .configure(auth_server::configure)
                .configure(pds::configure_xrpc)
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(BlueskyMock { shared, server: handle, task: Some(task) })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash): the PDS, the issuer and the handle host.
    pub fn origin(&self) -> String {
        self.shared.origin.clone()
    }

    /// ORIGIN + `/` + `path`: `url("/plc")` and `url("plc")` are `http://127.0.0.1:PORT/plc`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.shared.origin, path.trim_start_matches('/'))
    }

    /// The account's handle.
    pub fn handle(&self) -> String {
        self.shared.config.handle.clone()
    }

    /// The account's DID.
    pub fn did(&self) -> String {
        self.shared.config.did.clone()
    }

    /// The behaviour this mock was started with.
    pub fn config(&self) -> &BlueskyMockConfig {
        &self.shared.config
    }

    /// Replaces both the authorization server's and the resource server's DPoP nonces: proofs
    /// with the old ones are answered `use_dpop_nonce` from now on.
    pub fn rotate_nonce(&self) {
        let mut st = self.shared.lock();
        st.as_nonce = random_hex(16);
        st.rs_nonce = if self.shared.config.separate_resource_nonce { random_hex(16) } else { st.as_nonce.clone() };
    }

    /// The authorization server's current DPoP nonce.
    pub fn auth_server_nonce(&self) -> String {
        self.shared.lock().as_nonce.clone()
    }

    /// The resource server's (PDS's) current DPoP nonce.
    pub fn resource_nonce(&self) -> String {
        self.shared.lock().rs_nonce.clone()
    }

    /// Successful pushed authorization requests.
    pub fn par_count(&self) -> usize {
        self.shared.lock().par_count
    }

    /// Successful `authorization_code` grants.
    pub fn token_count(&self) -> usize {
        self.shared.lock().token_count
    }

    /// Successful `refresh_token` grants.
    pub fn refresh_count(&self) -> usize {
        self.shared.lock().refresh_count
    }

    /// Successful (client-authenticated) `/oauth/revoke` requests, whether or not the token
    /// was live.
    pub fn revocation_count(&self) -> usize {
        self.shared.lock().revocation_count
    }

    /// `use_dpop_nonce` answers, from the authorization server and the PDS.
    pub fn nonce_challenges(&self) -> usize {
        self.shared.lock().nonce_challenges
    }

    /// Requests refused because a DPoP proof `jti` or a client assertion `jti` was seen before.
    pub fn replay_rejections(&self) -> usize {
        self.shared.lock().replay_rejections
    }

    /// Refresh grants that presented an already-used refresh token (each killed its session).
    pub fn refresh_replays(&self) -> usize {
        self.shared.lock().refresh_replays
    }

    /// Authorized XRPC calls that succeeded.
    pub fn xrpc_calls(&self) -> usize {
        self.shared.lock().xrpc_calls
    }

    /// The records created so far, oldest first.
    pub fn records(&self) -> Vec<BlueskyRecord> {
        self.shared.lock().records.clone()
    }

    /// Makes every access token issued so far expired (the PDS answers `ExpiredToken`); refresh
    /// tokens keep working.
    pub fn expire_access_tokens(&self) {
        let now = jose::now();
        for t in self.shared.lock().access.values_mut() {
            t.expires_at = now - 1;
        }
    }

    /// Ends every session server-side, as when the user revokes the app: access tokens are
    /// refused and refresh tokens answer `invalid_grant`. Later authorizations work.
    pub fn revoke_all(&self) {
        let mut st = self.shared.lock();
        let n = st.sessions.len();
        (0..n).for_each(|i| st.revoke_session(i));
    }

    /// The `kid` of the client key of the last successful `private_key_jwt` authentication.
    pub fn last_client_kid(&self) -> Option<String> {
        self.shared.lock().last_client_kid.clone()
    }

    /// Sessions that are not revoked and whose refresh token has not expired.
    pub fn sessions_active(&self) -> usize {
        let now = jose::now();
        self.shared.lock().sessions.iter().filter(|s| s.active && s.refresh_expires_at > now).count()
    }

    /// Whether `token` is a live access token (issued here, unexpired, session not revoked).
    pub fn is_access_token_active(&self, token: &str) -> bool {
        let now = jose::now();
        let st = self.shared.lock();
        st.access.get(token).is_some_and(|t| t.expires_at > now && st.sessions.get(t.session).is_some_and(|s| s.active))
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        self.server.stop(false).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for BlueskyMock {
    fn drop(&mut self) {
        if self.task.is_some() {
            let handle = self.server.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { handle.stop(false).await });
            }
        }
    }
}
