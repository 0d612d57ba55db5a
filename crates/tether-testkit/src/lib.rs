//! Loopback mock OAuth 2.0 providers for testing Tether and third-party provider crates.
//!
//! [`MockProvider`] is a real authorization server: it checks PKCE S256, client
//! authentication, redirect URIs and single-use codes, issues expiring access tokens and
//! rotating refresh tokens, rejects a reused refresh token with `invalid_grant`, answers errors
//! in the provider's own format (RFC 6749 JSON, GitHub's HTTP-200 errors, Pinterest's
//! `{"code","message"}`, Meta's `{"error":{…}}`), counts what it sees and can be told to fail.
//! A [`MockFlavor`] makes it imitate one real provider: its paths, response shapes, error
//! formats and quirks ([`MockProviderConfig::for_flavor`] also sets its client authentication,
//! PKCE support and token lifetimes).
//!
//! Two ways to run it:
//! * [`MockProvider::start`] serves it on `127.0.0.1` with a random port, in the background of
//!   the current tokio runtime (`#[tokio::test]`, `#[tokio::main]` or `#[actix_web::test]`).
//! * [`MockProvider::configure`] registers its routes on your own actix app; mount it in a
//!   scope: `App::new().service(web::scope("/demo").configure(|c| mock.configure(c)))`.
//!   (The Tether server does this in demo mode.)
//!
//! Routes, relative to the mount point:
//!
//! | Route | What |
//! |---|---|
//! | `GET /` | a short page saying what this is |
//! | `GET /authorize` | validates the request; consent page (or straight back with `auto_approve`) |
//! | `POST /authorize` | the consent form: `decision=allow\|deny`, `login`, original parameters |
//! | `POST /token` | `authorization_code` and `refresh_token` grants |
//! | `GET /userinfo`, `GET /user` | the account behind `Authorization: Bearer` (shape per [`MockFlavor`]) |
//! | `POST /revoke` | RFC 7009 revocation (client authentication as for `/token`) |
//! | `DELETE /applications/{client_id}/token` | GitHub-style revocation (Basic, JSON `{"access_token"}`) |
//! | `DELETE /applications/{client_id}/grant` | GitHub-style revocation of the whole authorization |
//!
//! Provider flavors add their provider's own paths (aliases of the routes above, answering in
//! the flavor's shapes):
//!
//! | Flavor | Paths |
//! |---|---|
//! | [`LinkedIn`](MockFlavor::LinkedIn) | `/oauth/v2/authorization`, `POST /oauth/v2/accessToken`, `POST /oauth/v2/revoke`, `GET /v2/userinfo` |
//! | [`Reddit`](MockFlavor::Reddit) | `/api/v1/authorize`, `POST /api/v1/access_token`, `POST /api/v1/revoke_token`, `GET /api/v1/me` |
//! | [`Pinterest`](MockFlavor::Pinterest) | `/oauth/`, `POST /v5/oauth/token`, `GET /v5/user_account` |
//! | [`Facebook`](MockFlavor::Facebook) | `/dialog/oauth`, `GET`/`POST /oauth/access_token` (also `GET /token`), `GET /me?fields=…`, `DELETE /me/permissions` |
//! | [`Google`](MockFlavor::Google) | `/o/oauth2/v2/auth`, `POST /token`, `GET /v1/userinfo`, `POST /revoke` (no client authentication) |
//! | [`Discord`](MockFlavor::Discord) | `/oauth2/authorize`, `POST /api/oauth2/token`, `GET /api/v10/users/@me`, `POST /api/oauth2/token/revoke` |
//! | [`Spotify`](MockFlavor::Spotify) | `/authorize`, `POST /api/token`, `GET /v1/me` |
//! | [`Twitch`](MockFlavor::Twitch) | `/oauth2/authorize`, `POST /oauth2/token`, `GET /oauth2/validate`, `POST /oauth2/revoke` (`client_id` + `token`), `GET /helix/users` |
//! | [`Microsoft`](MockFlavor::Microsoft) | `/{tenant}/oauth2/v2.0/authorize`, `POST /{tenant}/oauth2/v2.0/token`, `GET /v1.0/me` |
//! | [`Dropbox`](MockFlavor::Dropbox) | `/oauth2/authorize`, `POST /oauth2/token`, `POST /2/users/get_current_account`, `POST /2/auth/token/revoke` (Bearer) |
//! | [`Notion`](MockFlavor::Notion) | `/v1/oauth/authorize`, `POST /v1/oauth/token` (JSON body), `GET /v1/users/me`, `POST /v1/oauth/revoke` (JSON body) |
//! | [`Zoom`](MockFlavor::Zoom) | `/oauth/authorize`, `POST /oauth/token`, `GET /v2/users/me`, `POST /oauth/revoke` |
//! | [`Instagram`](MockFlavor::Instagram) | `/oauth/authorize`, `POST /oauth/access_token`, `GET /access_token` (`ig_exchange_token`), `GET /refresh_access_token` (`ig_refresh_token`), `GET /me`, `GET /{version}/me` |
//! | [`Threads`](MockFlavor::Threads) | `/oauth/authorize`, `POST /oauth/access_token`, `GET /access_token` (`th_exchange_token`), `GET /refresh_access_token` (`th_refresh_token`), `GET /me`, `GET /{version}/me` |
//! | [`TikTok`](MockFlavor::TikTok) | `/v2/auth/authorize/`, `POST /v2/oauth/token/`, `GET /v2/user/info/`, `POST /v2/oauth/revoke/` (`client_key` everywhere) |
//! | [`Slack`](MockFlavor::Slack) | `/oauth/v2/authorize`, `POST /api/oauth.v2.access`, `GET`/`POST /api/auth.test`, `GET`/`POST /api/auth.revoke` (Bearer) |
//!
//! Per-instance providers get servers of their own: [`mastodon::MastodonMock`] is one Mastodon
//! instance (dynamic app registration through `POST /api/v1/apps`, PKCE, non-expiring tokens,
//! revocation); start two to test that the instance is part of a connection.
//! [`bluesky::BlueskyMock`] is a Bluesky PDS with its own atproto OAuth authorization server
//! (PAR, PKCE, DPoP with nonces, `private_key_jwt` against fetched client metadata, rotating
//! refresh tokens with replay detection, DPoP-bound XRPC calls).
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! use tether_testkit::{MockProvider, MockProviderConfig};
//! let mock = MockProvider::start(MockProviderConfig { auto_approve: Some("alice".into()), ..Default::default() }).await?;
//! let token_url = mock.url("token"); // http://127.0.0.1:PORT/token
//! assert_eq!(mock.refresh_count(), 0);
//! mock.stop().await;
//! # Ok(()) }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod bluesky;
pub mod mastodon;
mod routes;
mod state;

use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpServer, web};

use state::MockState;

/// Which client authentication the token and revoke endpoints accept.
///
/// Using a method the mock does not accept is answered `invalid_client` (in the flavor's error
/// format) with a description that names the expected method. Facebook takes the body
/// credentials from the query string too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockClientAuth {
    /// Only HTTP Basic.
    Basic,
    /// Only `client_id` / `client_secret` in the form body.
    Post,
    /// Either.
    Either,
}

/// PKCE policy. Only `S256` is accepted: `plain` (or a challenge without a method, which means
/// `plain`) is refused with `invalid_request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockPkce {
    /// A S256 challenge is required: without one, `/authorize` redirects back with
    /// `error=invalid_request`.
    Required,
    /// Checked when sent, not required.
    Optional,
    /// Ignored, challenge and verifier alike (like providers that do not know PKCE).
    Unsupported,
}

/// Response shapes: which real provider the mock imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFlavor {
    /// RFC 6749 errors (HTTP 400, 401 for `invalid_client`, JSON), space-separated scopes,
    /// tokens `mat_…`/`mrt_…`, user info `{"sub","name","preferred_username","email"}` with
    /// `sub = "u_" + hex(sha256(login)[..8])`.
    Standard,
    /// GitHub: token errors with HTTP 200 (`bad_verification_code`, `bad_refresh_token`,
    /// `incorrect_client_credentials`, `redirect_uri_mismatch`), a form-encoded token response
    /// unless `Accept: application/json`, comma-separated scopes, tokens `gho_…`/`ghr_…`, user
    /// info `{"id": <integer>, "login", "name": null}` that requires a `User-Agent`, and
    /// `DELETE /applications/{client_id}/token` revocation (404 for bad client credentials).
    GitHub,
    /// LinkedIn: RFC 6749 errors, a comma-separated `scope` in token responses, tokens
    /// `AQV…`/`AQX…`, an `id_token` when `openid` was granted, OIDC user info at `/v2/userinfo`
    /// (`{"sub","name","given_name","family_name","email",…}`, errors
    /// `{"serviceErrorCode","message","status"}`). Refresh tokens (LinkedIn issues them only to
    /// approved partners: `issue_refresh_tokens`) are not rotated and keep their fixed 365-day
    /// expiry: each refresh answers the same refresh token with the *remaining*
    /// `refresh_token_expires_in`. `/revoke` (`/oauth/v2/revoke`, form `client_id`,
    /// `client_secret`, `token`) ends the whole authorization.
    LinkedIn,
    /// Reddit: a `User-Agent` is required on every token, revoke and API request (429
    /// `{"message":"Too Many Requests","error":429}` without one); a refresh token only when
    /// the authorization asked for `duration=permanent`; authorization-code errors with
    /// HTTP 200 (`{"error":"invalid_grant"}`), refresh errors with 400; client errors 401
    /// `{"message":"Unauthorized","error":401}`; user info at `/api/v1/me` (`{"id": <base36>,
    /// "name", …}`); RFC 7009 revocation at `/api/v1/revoke_token`.
    Reddit,
    /// Pinterest (API v5): errors `{"code": <int>, "message"}` (283 "The authorization grant
    /// is invalid" for dead codes and refresh tokens, 2 "Authentication failed." for bad client
    /// credentials, 1 for malformed requests), a comma-separated `scope`, tokens
    /// `pina_…`/`pinr_…`, continuous refresh (each refresh answers a new refresh token with
    /// `refresh_token_expires_in`), user info at `/v5/user_account`
    /// (`{"id","username","account_type",…}`). No revocation of user tokens.
    Pinterest,
    /// Facebook (Graph API): Meta errors `{"error":{"message","type":"OAuthException","code",
    /// "error_subcode","fbtrace_id"}}` (190 for invalid or expired access tokens, 100 for bad
    /// codes, 1/101 for client credentials); the token endpoint answers `GET` and `POST`
    /// (`/oauth/access_token`), a code exchange gives a short-lived token (at most one hour)
    /// and **no refresh token**; `grant_type=fb_exchange_token&fb_exchange_token=<token>`
    /// trades a valid token for a long-lived one (`access_token_ttl`; the presented token keeps
    /// working until it expires); `/me?fields=id,name` (token as `Bearer` or `access_token`);
    /// `DELETE /me/permissions` revokes the whole authorization; a successful authorization
    /// redirect ends in `#_=_`.
    Facebook,
    /// Google (and YouTube): RFC 6749 errors, tokens `ya29.…`/`1//…`; a refresh token only
    /// when the authorization asked for `access_type=offline`, and for a user who already
    /// consented once only with `prompt=consent` too (as Google does); refresh answers carry no
    /// refresh token (not rotated); OIDC user info at `/v1/userinfo` (`{"sub": <21 digits>,
    /// "name","given_name","family_name","email","email_verified","picture"}`); `/revoke` takes
    /// `token=` without client authentication, ends the whole grant, and answers 400
    /// `{"error":"invalid_token"}` for a token that does not work.
    Google,
    /// Discord: RFC 6749 errors, space-separated scopes, 7-day access tokens, a new refresh
    /// token on every refresh (the used one dies); `/api/v10/users/@me` (`{"id": <snowflake>,
    /// "username","global_name",…}`, 401 `{"message":"401: Unauthorized","code":0}`);
    /// `/api/oauth2/token/revoke` (RFC 7009, client authentication) revokes every token of the
    /// authorization.
    Discord,
    /// Spotify: HTTP Basic only, RFC 6749 errors, tokens `BQ…`/`AQ…`; refresh answers carry no
    /// refresh token (the old one stays), or, with `rotate_refresh_tokens`, a new one that
    /// replaces the used one (Spotify "may" send one; PKCE refresh tokens are single use);
    /// refresh tokens expire 6 months after the authorization, not extended by refreshing or
    /// rotation, and no response tells their expiry; `/v1/me` (`{"id","display_name","email",
    /// …}`, 401 `{"error":{"status":401,"message"}}`). No revocation endpoint.
    Spotify,
    /// Twitch: client credentials only in the body; errors `{"status": <int>, "message"}`
    /// ("Invalid refresh token", "Invalid authorization code", "invalid client secret"); the
    /// token response's `scope` is a JSON **array**; a new refresh token on every refresh;
    /// `/oauth2/validate` with `Authorization: OAuth <token>` (`{"client_id","login","scopes",
    /// "user_id","expires_in"}`); Helix `/helix/users` needs a `Client-Id` header matching the
    /// token's client (`{"data":[{"id","login","display_name",…}]}`); `/oauth2/revoke` takes
    /// `client_id` and `token` (no secret) and ends the whole authorization (400
    /// `{"status":400,"message":"Invalid token"}` for a dead token, 404 for an unknown client).
    Twitch,
    /// Microsoft Entra ID (v2 endpoints under any `/{tenant}/`): RFC 6749 errors plus
    /// `error_codes`, `timestamp`, `trace_id`, `correlation_id` and `AADSTS…` descriptions; a
    /// refresh token only when `offline_access` was requested; a new refresh token on every
    /// refresh (Entra leaves the old one valid; the mock kills it, which is stricter); Graph
    /// `/v1.0/me` (`{"id","displayName","userPrincipalName","mail",…}`, 401
    /// `{"error":{"code":"InvalidAuthenticationToken","message"}}`). No revocation endpoint.
    Microsoft,
    /// Dropbox: RFC 6749 errors, tokens `sl.…`; a refresh token only with
    /// `token_access_type=offline`; token responses carry `account_id` and `uid`; refresh answers
    /// carry no refresh token (not rotated); `POST /2/users/get_current_account` with no body, or
    /// `null` as JSON (`{"account_id": "dbid:…","name":{"display_name",…},"email",…}`; any other
    /// body is a plain-text 400, as at Dropbox); `POST /2/auth/token/revoke` with
    /// `Authorization: Bearer` and no body ends the access token and its refresh token; API
    /// errors `{"error_summary","error":{".tag"}}`.
    Dropbox,
    /// Notion: HTTP Basic, a **JSON** token request body (`{"grant_type","code","redirect_uri"}`;
    /// a form body is refused), `owner=user` required on the authorization request, no scopes;
    /// token responses carry `bot_id`, `workspace_id`, `workspace_name` and `owner.user`; a new
    /// refresh token on every refresh; errors `{"object":"error","status","code","message"}`
    /// (`code: "invalid_grant"`); `/v1/users/me` (the bot user, needs a `Notion-Version` header);
    /// `/v1/oauth/revoke` (Basic, `Notion-Version`, JSON `{"token"}`) ends the authorization and
    /// answers `{"request_id"}`. Access tokens carry no `expires_in`.
    Notion,
    /// Zoom: HTTP Basic, optional PKCE (S256), one-hour tokens, a new refresh token on every
    /// refresh (the used one dies); without a `scope` parameter the app's configured scope
    /// (`user:read:user`) is granted; token responses carry `api_url`; errors
    /// `{"reason","error"}`, all with HTTP 400, where a dead refresh token is
    /// `{"reason":"Invalid Token!","error":"invalid_request"}` (not `invalid_grant`) and bad
    /// client credentials `{"reason":"Invalid client_id or client_secret","error":
    /// "invalid_client"}`; `/v2/users/me` (`{"id","first_name","last_name","display_name",
    /// "email",…}`, 401 `{"code":124,"message"}`); `/oauth/revoke` (Basic, `token=`) answers
    /// `{"status":"success"}` and ends the authorization.
    Zoom,
    /// Instagram ("Instagram API with Instagram Login"): client credentials in the body, no
    /// PKCE; the code exchange (`POST /oauth/access_token`, `grant_type=authorization_code`)
    /// answers `{"data":[{"access_token","user_id","permissions"}]}` with a short-lived token
    /// (at most one hour) and no refresh token, and its errors are
    /// `{"error_type":"OAuthException","code":400,"error_message"}`; the Graph endpoints
    /// `GET /access_token?grant_type=ig_exchange_token&client_secret&access_token` (short-lived
    /// to long-lived, `access_token_ttl`) and `GET /refresh_access_token?grant_type=ig_refresh_token&access_token`
    /// (a long-lived token at least 24 hours old, see [`MockProvider::set_min_refresh_age`];
    /// presented tokens keep working until they expire) answer Meta errors (190 for dead
    /// tokens); `/me?fields=user_id,username,…` (`user_id` is the professional account id);
    /// the authorization redirect ends in `#_`. No revocation endpoint.
    Instagram,
    /// Threads: like [`Instagram`](MockFlavor::Instagram) with `th_exchange_token` and
    /// `th_refresh_token`, a flat code-exchange answer `{"access_token","user_id"}`, Meta
    /// errors everywhere, and `/me?fields=id,username,name` (`id` = the token's `user_id`). No
    /// revocation endpoint.
    Threads,
    /// TikTok (Login Kit v2): the client is `client_key` (authorization request, token and
    /// revocation forms; a `client_id` is ignored), credentials in the body only; PKCE checked
    /// when sent, with TikTok's **hex** S256 challenge (`hex(SHA-256(verifier))`); token answers
    /// `{"access_token","expires_in","open_id","refresh_token","refresh_expires_in","scope"
    /// (comma separated),"token_type"}`, tokens `act.…`/`rft.…`; refresh tokens rotate (the
    /// used one dies) and last 180 days; errors `{"error","error_description","log_id"}` with
    /// **HTTP 200**; `/v2/user/info/?fields=…` answers `{"data":{"user":{…}},"error":{"code":
    /// "ok","message","log_id"}}` (401 `access_token_invalid`); `/v2/oauth/revoke/` (form
    /// `client_key`, `client_secret`, `token`) ends the whole authorization.
    TikTok,
    /// Slack (OAuth v2): bot scopes in `scope`, user scopes in `user_scope` (no `response_type`
    /// needed, no PKCE); `POST /api/oauth.v2.access` (credentials in the body or Basic;
    /// `redirect_uri` must match when sent) answers the bot token (`xoxb-…`, with `scope`,
    /// `bot_user_id`) at the top level and the user token (`xoxp-…`) under `authed_user`, each
    /// only when its scopes were asked for, with `team`; every error is HTTP 200
    /// `{"ok":false,"error"}` (`invalid_code`, `bad_redirect_uri`, `bad_client_secret`,
    /// `invalid_refresh_token`, …). Without token rotation (the default:
    /// `issue_refresh_tokens: false`) tokens never expire; with it (`issue_refresh_tokens`)
    /// tokens are `xoxe.xoxp-1-…` expiring after `access_token_ttl` (12 h) with `xoxe-1-…`
    /// refresh tokens, and `grant_type=refresh_token` answers the token of the same kind at the
    /// top level (`token_type` `user` or `bot`) and kills the used refresh token.
    /// `auth.test` (`{"ok","team","user","team_id","user_id",…}`) and `auth.revoke`
    /// (revokes only the presented token) take `Authorization: Bearer`.
    Slack,
}

/// A failure to inject into every `/token` request (code exchanges and refreshes alike), see
/// [`MockProvider::set_token_failure`]. Applied before client authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockFailure {
    /// Answer this HTTP status with `{"error":"server_error"}` (an invalid status code: 500).
    Status(u16),
    /// Answer 429 with `Retry-After`.
    TooManyRequests {
        /// Seconds in the Retry-After header.
        retry_after_secs: u64,
    },
    /// Sleep this long, then answer normally.
    Hang(Duration),
    /// Answer `invalid_grant` (GitHub: `bad_verification_code` / `bad_refresh_token`;
    /// Pinterest: code 283; Facebook: code 100 for codes, 190 for token exchanges; Twitch:
    /// `{"status":400,"message":"Invalid refresh token"}`; Zoom: `"Invalid Token!"`).
    InvalidGrant,
}

/// How the mock behaves. `Debug` does not show the client secret.
#[derive(Clone)]
pub struct MockProviderConfig {
    /// Accepted client id.
    pub client_id: String,
    /// Accepted client secret.
    pub client_secret: String,
    /// Accepted client authentication.
    pub client_auth: MockClientAuth,
    /// PKCE policy.
    pub pkce: MockPkce,
    /// Access-token lifetime; `None`: no `expires_in`, tokens never expire.
    pub access_token_ttl: Option<Duration>,
    /// Whether refresh tokens are issued.
    pub issue_refresh_tokens: bool,
    /// Whether each refresh returns a new refresh token and kills the used one (reuse is
    /// `invalid_grant`). Without rotation the refresh token keeps working and refresh responses
    /// omit `refresh_token`.
    pub rotate_refresh_tokens: bool,
    /// Response shapes.
    pub flavor: MockFlavor,
    /// `Some(login)`: `/authorize` approves at once as this user, without a consent page.
    pub auto_approve: Option<String>,
    /// Authorization-code lifetime. Codes are single use: a replayed code is `invalid_grant`
    /// and revokes the tokens issued from it (RFC 6749 §4.1.2).
    pub code_ttl: Duration,
}

impl std::fmt::Debug for MockProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProviderConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("client_auth", &self.client_auth)
            .field("pkce", &self.pkce)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("issue_refresh_tokens", &self.issue_refresh_tokens)
            .field("rotate_refresh_tokens", &self.rotate_refresh_tokens)
            .field("flavor", &self.flavor)
            .field("auto_approve", &self.auto_approve)
            .field("code_ttl", &self.code_ttl)
            .finish()
    }
}

impl MockProviderConfig {
    /// The defaults with `flavor` and what the real provider does: its client authentication,
    /// PKCE support, access-token lifetime and refresh-token behaviour.
    ///
    /// | Flavor | Client auth | PKCE | Access token | Refresh tokens |
    /// |---|---|---|---|---|
    /// | `Standard` | either | required | 1 h | rotating |
    /// | `GitHub` (OAuth App) | body | optional | no expiry | none |
    /// | `LinkedIn` | body | unsupported | 60 days | none (partners only) |
    /// | `Reddit` | Basic | unsupported | 1 h | yes (`duration=permanent`), not rotated |
    /// | `Pinterest` | Basic | unsupported | 30 days | rotating (continuous refresh) |
    /// | `Facebook` | body/query | unsupported | long-lived 60 days | none (`fb_exchange_token`) |
    /// | `Google` | either | optional | 1 h | yes (`access_type=offline`), not rotated |
    /// | `Discord` | either | unsupported (confidential client) | 7 days | rotating |
    /// | `Spotify` | Basic | unsupported (confidential client) | 1 h | yes, not rotated (optionally rotated), 6-month life |
    /// | `Twitch` | body | unsupported | ~4 h | rotating |
    /// | `Microsoft` | either | optional | 1 h | rotating (`offline_access` scope) |
    /// | `Dropbox` | either | optional | 4 h | yes (`token_access_type=offline`), not rotated |
    /// | `Notion` | Basic | unsupported | no expiry | rotating |
    /// | `Zoom` | Basic | optional | 1 h | rotating |
    /// | `Instagram` | body | unsupported | long-lived 60 days | none (`ig_refresh_token`) |
    /// | `Threads` | body | unsupported | long-lived 60 days | none (`th_refresh_token`) |
    /// | `TikTok` | body (`client_key`) | optional, hex S256 | 2 h | rotating, 180 days |
    /// | `Slack` | either | unsupported | no expiry (12 h with rotation) | none (rotating with `issue_refresh_tokens`) |
    pub fn for_flavor(flavor: MockFlavor) -> Self {
        const DAY: u64 = 86_400;
        let (client_auth, pkce, ttl, refresh, rotate) = match flavor {
            MockFlavor::Standard => (MockClientAuth::Either, MockPkce::Required, Some(3600), true, true),
            MockFlavor::GitHub => (MockClientAuth::Post, MockPkce::Optional, None, false, false),
            MockFlavor::LinkedIn => (MockClientAuth::Post, MockPkce::Unsupported, Some(60 * DAY), false, false),
            MockFlavor::Reddit => (MockClientAuth::Basic, MockPkce::Unsupported, Some(3600), true, false),
            MockFlavor::Pinterest => (MockClientAuth::Basic, MockPkce::Unsupported, Some(30 * DAY), true, true),
            MockFlavor::Facebook => (MockClientAuth::Post, MockPkce::Unsupported, Some(60 * DAY), false, false),
            MockFlavor::Google => (MockClientAuth::Either, MockPkce::Optional, Some(3600), true, false),
            MockFlavor::Discord => (MockClientAuth::Either, MockPkce::Unsupported, Some(7 * DAY), true, true),
            MockFlavor::Spotify => (MockClientAuth::Basic, MockPkce::Unsupported, Some(3600), true, false),
            MockFlavor::Twitch => (MockClientAuth::Post, MockPkce::Unsupported, Some(14_124), true, true),
            MockFlavor::Microsoft => (MockClientAuth::Either, MockPkce::Optional, Some(3599), true, true),
            MockFlavor::Dropbox => (MockClientAuth::Either, MockPkce::Optional, Some(14_400), true, false),
            MockFlavor::Notion => (MockClientAuth::Basic, MockPkce::Unsupported, None, true, true),
            MockFlavor::Zoom => (MockClientAuth::Basic, MockPkce::Optional, Some(3599), true, true),
            MockFlavor::Instagram | MockFlavor::Threads => {
                (MockClientAuth::Post, MockPkce::Unsupported, Some(60 * DAY), false, false)
            }
            MockFlavor::TikTok => (MockClientAuth::Post, MockPkce::Optional, Some(7200), true, true),
            MockFlavor::Slack => (MockClientAuth::Either, MockPkce::Unsupported, Some(43_200), false, true),
        };
        Self {
            client_auth,
            pkce,
            access_token_ttl: ttl.map(Duration::from_secs),
            issue_refresh_tokens: refresh,
            rotate_refresh_tokens: rotate,
            flavor,
            ..Self::default()
        }
    }
}

/// `mock-client` / `mock-secret`, either client authentication, PKCE required, one-hour access
/// tokens, rotating refresh tokens, standard flavor, consent page, 60 s codes.
impl Default for MockProviderConfig {
    fn default() -> Self {
        Self {
            client_id: "mock-client".into(),
            client_secret: "mock-secret".into(),
            client_auth: MockClientAuth::Either,
            pkce: MockPkce::Required,
            access_token_ttl: Some(Duration::from_secs(3600)),
            issue_refresh_tokens: true,
            rotate_refresh_tokens: true,
            flavor: MockFlavor::Standard,
            auto_approve: None,
            code_ttl: Duration::from_secs(60),
        }
    }
}

/// The mock authorization server's state. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct MockProvider {
    pub(crate) config: Arc<MockProviderConfig>,
    pub(crate) state: Arc<Mutex<MockState>>,
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider").field("client_id", &self.config.client_id).finish_non_exhaustive()
    }
}

impl MockProvider {
    /// A mock with this behaviour, not listening anywhere yet.
    pub fn new(config: MockProviderConfig) -> Self {
        Self { config: Arc::new(config), state: Arc::new(Mutex::new(MockState::default())) }
    }

    /// Starts a mock on `127.0.0.1` with a random port, serving in the background.
    ///
    /// The server runs as a task of the current tokio runtime (so call it inside
    /// `#[tokio::test]`, `#[tokio::main]` or `#[actix_web::test]`); it stops with
    /// [`RunningMockProvider::stop`], when the [`RunningMockProvider`] is dropped, or when the
    /// runtime shuts down.
    pub async fn start(config: MockProviderConfig) -> std::io::Result<RunningMockProvider> {
        let provider = Self::new(config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let base_url = url::Url::parse(&format!("http://{addr}/"))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mounted = provider.clone();
        let server = HttpServer::new(move || {
            let p = mounted.clone();
            App::new().configure(move |c| p.configure(c))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        let task = tokio::spawn(server);
        Ok(RunningMockProvider { provider, base_url, handle, task: Some(task) })
    }

    /// Registers the routes, with paths relative to the mount point (see the crate docs for
    /// the list): mount it in a scope, `web::scope("/demo").configure(|c| mock.configure(c))`,
    /// or at the root of an app of its own. It also registers the mock as app data and
    /// per-route form/query error handlers, scoped to where it is mounted.
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        routes::configure(cfg, self.clone());
    }

    /// The behaviour this mock was created with.
    pub fn config(&self) -> &MockProviderConfig {
        &self.config
    }

    /// Runs `f` on the state (the lock is never held across an `.await`).
    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut MockState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }

    /// Successful `refresh_token` grants (Facebook: `fb_exchange_token` grants that renewed a
    /// long-lived token).
    pub fn refresh_count(&self) -> usize {
        self.with(|s| s.refresh_count)
    }
    /// All `refresh_token` grant requests, failed ones (injected failures, bad client
    /// credentials, dead tokens) included (Facebook: `fb_exchange_token` requests that do not
    /// present a short-lived token).
    pub fn refresh_attempts(&self) -> usize {
        self.with(|s| s.refresh_attempts)
    }
    /// Successful Facebook `fb_exchange_token` grants (short-lived to long-lived, and renewals).
    pub fn token_exchanges(&self) -> usize {
        self.with(|s| s.token_exchanges)
    }
    /// Successful `authorization_code` exchanges.
    pub fn code_exchanges(&self) -> usize {
        self.with(|s| s.code_exchanges)
    }
    /// Tokens passed to a revocation endpoint (access or refresh, known or not), oldest first.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.with(|s| s.revoked.clone())
    }
    /// Requests answered `invalid_grant` (or the flavor's equivalent: GitHub's
    /// `bad_verification_code`/`bad_refresh_token`, Pinterest's code 283, Meta's codes 100 and
    /// 190), injected ones included.
    pub fn invalid_grant_count(&self) -> usize {
        self.with(|s| s.invalid_grants)
    }
    /// Whether `token` is a live, unexpired access token.
    pub fn is_access_token_valid(&self, token: &str) -> bool {
        self.with(|s| s.access_valid(token))
    }
    /// Every refresh token issued, oldest first (with rotation, each refresh adds one).
    pub fn issued_refresh_tokens(&self) -> Vec<String> {
        self.with(|s| s.issued_refresh.clone())
    }
    /// Whether `token` is a refresh token that still works (not used up by rotation, revoked
    /// or expired).
    pub fn is_refresh_token_valid(&self, token: &str) -> bool {
        self.with(|s| s.refresh.get(token).is_some_and(|r| r.usable()))
    }
    /// Refresh tokens that still work (not rotated away, revoked or expired), in no order: a
    /// test of a rotating provider checks that the one it saw before a refresh is gone.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.with(|s| s.refresh.iter().filter(|(_, r)| r.usable()).map(|(t, _)| t.clone()).collect())
    }
    /// Makes every `/token` request fail this way until cleared with `None`.
    /// Refresh attempts are still counted.
    pub fn set_token_failure(&self, failure: Option<MockFailure>) {
        self.with(|s| s.failure = failure);
    }
    /// Sleeps this long before checking and answering each refresh grant (widens race
    /// windows). `Duration::ZERO` turns it off.
    pub fn set_refresh_delay(&self, delay: Duration) {
        self.with(|s| s.refresh_delay = delay);
    }
    /// The user removed the app: every refresh token dies (`invalid_grant` from now on) and
    /// every access token becomes invalid. Tokens issued later work.
    pub fn revoke_all_grants(&self) {
        self.with(|s| s.revoke_all());
    }
}

/// A mock listening on loopback. Derefs to [`MockProvider`]; stops when dropped.
#[derive(Debug)]
pub struct RunningMockProvider {
    /// The mock.
    pub provider: MockProvider,
    /// `http://127.0.0.1:PORT/`.
    pub base_url: url::Url,
    handle: ServerHandle,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningMockProvider {
    /// An absolute URL for a path relative to the mock: `url("token")` (or `url("/token")`) is
    /// `http://127.0.0.1:PORT/token`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path.trim_start_matches('/'))
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(mut self) {
        self.handle.stop(false).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for RunningMockProvider {
    fn drop(&mut self) {
        if self.task.is_some() {
            let handle = self.handle.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { handle.stop(false).await });
            }
        }
    }
}

impl Deref for RunningMockProvider {
    type Target = MockProvider;
    fn deref(&self) -> &MockProvider {
        &self.provider
    }
}
