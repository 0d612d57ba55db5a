//! Admin authentication: password sign-in (argon2 PHC hash) and/or a trusted header set by an
//! authenticating reverse proxy; the session cookie (encrypted and authenticated with actix's
//! private cookies), CSRF synchronizer tokens, sign-in and sign-out.
//!
//! The session cookie holds `{user, csrf token, expiry, password fingerprint}` encrypted with
//! AES-256-GCM under a [`Key`] derived from configuration (see [`AdminSettings::new`]). It is
//! HttpOnly, `SameSite=Strict`, `Path=/admin`, and `Secure` when the public URL is https. The
//! CSRF token lives in the session and must come back in every state-changing form.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::cookie::{Cookie, CookieJar, Key, SameSite, time as cookie_time};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, web};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use askama::Template;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256, Sha512};
use tether_core::{random_token, secure_eq};

use super::view::{self, AdminError, Chrome, Flash};
use crate::WebState;

/// Name of the session cookie.
pub(crate) const SESSION_COOKIE: &str = "tether_admin";
/// Name of the cookie carrying the sign-in form's CSRF token (before there is a session).
const LOGIN_COOKIE: &str = "tether_admin_login";
/// The user name of password sign-in (there is one admin password).
const PASSWORD_USER: &str = "admin";
/// At most this many password verifications (argon2: memory and CPU heavy) run at once.
const MAX_CONCURRENT_VERIFICATIONS: usize = 4;
/// Longest password accepted (argon2 takes any length; this bounds the work per attempt).
const MAX_PASSWORD_LEN: usize = 1024;
/// Default session lifetime.
const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// Why admin settings are invalid. Never contains the password hash.
#[derive(Debug, thiserror::Error)]
pub enum AdminSettingsError {
    /// `password_hash` is not an argon2 PHC string.
    #[error(
        "admin.password_hash is not an argon2 PHC string (`$argon2id$v=19$m=…`): create one with `tether admin hash-password`"
    )]
    InvalidPasswordHash,
    /// `trusted_header` is not a usable header name.
    #[error("admin.trusted_header `{0}` is not a usable header name (e.g. X-Forwarded-User)")]
    InvalidHeader(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hashing(String),
}

/// Hashes an admin password into an argon2id PHC string (`$argon2id$v=19$…`) for
/// `[admin] password_hash`, with the argon2 crate's default parameters and a random salt.
pub fn hash_admin_password(password: &str) -> Result<String, AdminSettingsError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AdminSettingsError::Hashing(e.to_string()))
}

/// How the admin pages authenticate. Cheap to clone. The default is disabled: `/admin` then
/// answers a page explaining how to enable it. `Debug` never shows the hash or the key.
#[derive(Clone, Default)]
pub struct AdminSettings {
    pub(crate) inner: Option<Arc<AdminAuth>>,
}

pub(crate) struct AdminAuth {
    password_hash: Option<String>,
    fingerprint: String,
    pub(crate) trusted_header: Option<HeaderName>,
    pub(crate) key: Key,
    session_ttl: Duration,
    verifying: AtomicUsize,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            None => f.write_str("AdminSettings(disabled)"),
            Some(a) => f
                .debug_struct("AdminSettings")
                .field("password", &a.password_hash.is_some())
                .field("trusted_header", &a.trusted_header.as_ref().map(HeaderName::as_str))
                .field("session_ttl", &a.session_ttl)
                .finish_non_exhaustive(),
        }
    }
}

impl AdminSettings {
    /// Admin pages disabled (the default).
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Enables the admin pages. `password_hash`: an argon2 PHC string (sign-in with a
    /// password); `trusted_header`: a header set by an authenticating reverse proxy whose
    /// value is the user name. With neither, the admin pages stay disabled.
    ///
    /// `session_key_material` is the secret the session-cookie key is derived from
    /// (`tether-server` passes the first encryption key, so every replica sharing the
    /// configuration accepts the same sessions and restarts keep them). It is hashed with a
    /// label first, so the cookie key reveals nothing about the material. With `None`, a random
    /// key is made for this process: sessions then end when it stops.
    pub fn new(
        password_hash: Option<&str>,
        trusted_header: Option<&str>,
        session_key_material: Option<&[u8]>,
        session_ttl: Option<Duration>,
    ) -> Result<Self, AdminSettingsError> {
        let password_hash = password_hash.map(str::trim).filter(|h| !h.is_empty());
        let trusted_header = trusted_header.map(str::trim).filter(|h| !h.is_empty());
        if password_hash.is_none() && trusted_header.is_none() {
            return Ok(Self::disabled());
        }
        if let Some(h) = password_hash {
            let parsed = argon2::password_hash::phc::PasswordHash::new(h)
                .map_err(|_| AdminSettingsError::InvalidPasswordHash)?;
            if !parsed.algorithm.as_str().starts_with("argon2") || parsed.hash.is_none() || parsed.salt.is_none() {
                return Err(AdminSettingsError::InvalidPasswordHash);
            }
        }
        let trusted_header = trusted_header
            .map(|h| {
                let name = HeaderName::from_bytes(h.as_bytes())
                    .map_err(|_| AdminSettingsError::InvalidHeader(h.chars().take(64).collect()))?;
                // Headers a browser or client sets itself can never prove who the user is.
                if matches!(name.as_str(), "cookie" | "authorization" | "host" | "origin" | "referer" | "user-agent") {
                    return Err(AdminSettingsError::InvalidHeader(h.to_owned()));
                }
                Ok(name)
            })
            .transpose()?;
        let key = match session_key_material {
            Some(material) => {
                let mut h = Sha512::new();
                h.update(b"tether admin session cookie key v1\0");
                h.update(material);
                Key::derive_from(&h.finalize())
            }
            None => Key::generate(),
        };
        let fingerprint = password_hash.map(password_fingerprint).unwrap_or_default();
        Ok(Self {
            inner: Some(Arc::new(AdminAuth {
                password_hash: password_hash.map(str::to_owned),
                fingerprint,
                trusted_header,
                key,
                session_ttl: session_ttl.unwrap_or(DEFAULT_SESSION_TTL).max(Duration::from_secs(60)),
                verifying: AtomicUsize::new(0),
            })),
        })
    }

    /// Whether the admin pages are enabled.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Whether password sign-in is enabled.
    pub fn password_enabled(&self) -> bool {
        self.inner.as_ref().is_some_and(|a| a.password_hash.is_some())
    }

    /// The trusted header, if one is configured.
    pub fn trusted_header(&self) -> Option<&str> {
        self.inner.as_ref().and_then(|a| a.trusted_header.as_ref()).map(HeaderName::as_str)
    }
}

/// A short digest of the password hash: sessions made with another password stop working as
/// soon as the password changes.
fn password_fingerprint(hash: &str) -> String {
    let digest = Sha256::digest([b"tether admin password\0".as_slice(), hash.as_bytes()].concat());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// What the session cookie carries (encrypted).
#[derive(Serialize, Deserialize)]
struct SessionData {
    /// User name.
    u: String,
    /// CSRF synchronizer token.
    c: String,
    /// Expiry, Unix seconds.
    e: i64,
    /// Password fingerprint (password sessions) or empty.
    p: String,
    /// Made from the trusted header.
    h: bool,
}

/// The signed-in admin of this request (put in the request extensions by [`require_admin`]).
#[derive(Clone)]
pub(crate) struct AdminSession {
    /// Who.
    pub(crate) user: String,
    /// The CSRF token forms must carry.
    pub(crate) csrf: String,
    /// Authenticated by the reverse proxy's header (no sign-out).
    pub(crate) via_header: bool,
}

impl std::fmt::Debug for AdminSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSession").field("user", &self.user).field("via_header", &self.via_header).finish()
    }
}

impl AdminSession {
    /// Checks a form's CSRF token against the session's, in constant time.
    pub(crate) fn check_csrf(&self, presented: &str) -> Result<(), AdminError> {
        if !presented.is_empty() && secure_eq(presented.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(AdminError::csrf())
        }
    }
}

impl FromRequest for AdminSession {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(req.extensions().get::<AdminSession>().cloned().ok_or_else(|| {
            AdminError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Sign in to use the admin pages.")
        }))
    }
}

pub(crate) fn secure_cookies(state: &WebState) -> bool {
    state.engine.settings().public_url.scheme() == "https"
}

/// Seals `value` into a private (encrypted, authenticated) cookie.
pub(crate) fn private_cookie(
    key: &Key,
    name: &'static str,
    value: String,
    path: &'static str,
    same_site: SameSite,
    secure: bool,
    max_age: Option<Duration>,
) -> Cookie<'static> {
    let mut cookie = Cookie::build(name, value).path(path).http_only(true).same_site(same_site).secure(secure).finish();
    if let Some(age) = max_age {
        cookie.set_max_age(cookie_time::Duration::seconds(i64::try_from(age.as_secs()).unwrap_or(3600)));
    }
    let mut jar = CookieJar::new();
    jar.private_mut(key).add(cookie.clone());
    jar.get(name).cloned().unwrap_or(cookie)
}

/// Opens the private cookie `name` of the request.
pub(crate) fn open_cookie(key: &Key, req: &HttpRequest, name: &str) -> Option<String> {
    let cookie = req.cookie(name)?;
    let mut jar = CookieJar::new();
    jar.add_original(cookie);
    jar.private(key).get(name).map(|c| c.value().to_owned())
}

/// A cookie that deletes `name` at `path`.
pub(crate) fn removal_cookie(name: &'static str, path: &'static str) -> Cookie<'static> {
    let mut c = Cookie::build(name, "").path(path).http_only(true).finish();
    c.make_removal();
    c
}

fn read_session(auth: &AdminAuth, req: &HttpRequest) -> Option<SessionData> {
    let data: SessionData = serde_json::from_str(&open_cookie(&auth.key, req, SESSION_COOKIE)?).ok()?;
    if data.e <= chrono::Utc::now().timestamp() || data.c.is_empty() {
        return None;
    }
    let valid = if data.h {
        auth.trusted_header.is_some()
    } else {
        auth.password_hash.is_some() && secure_eq(data.p.as_bytes(), auth.fingerprint.as_bytes())
    };
    valid.then_some(data)
}

fn new_session(auth: &AdminAuth, user: String, via_header: bool) -> Result<SessionData, AdminError> {
    let ttl = i64::try_from(auth.session_ttl.as_secs()).unwrap_or(12 * 3600);
    Ok(SessionData {
        u: user,
        c: random_token(32).map_err(AdminError::from)?,
        e: chrono::Utc::now().timestamp() + ttl,
        p: if via_header { String::new() } else { auth.fingerprint.clone() },
        h: via_header,
    })
}

fn session_cookie(auth: &AdminAuth, data: &SessionData, secure: bool) -> Result<Cookie<'static>, AdminError> {
    let value = serde_json::to_string(data)
        .map_err(|_| AdminError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "cannot make a session"))?;
    // A browser-session cookie; the expiry inside bounds its life.
    Ok(private_cookie(&auth.key, SESSION_COOKIE, value, "/admin", SameSite::Strict, secure, None))
}

/// The user named by the trusted header, when it is configured and present with a sane value.
fn header_user(auth: &AdminAuth, req: &HttpRequest) -> Option<String> {
    let name = auth.trusted_header.as_ref()?;
    let value = req.headers().get(name)?.to_str().ok()?.trim();
    (!value.is_empty() && value.len() <= 200 && !value.chars().any(char::is_control)).then(|| value.to_owned())
}

/// Only paths inside the admin pages are followed after sign-in (no open redirect).
pub(crate) fn safe_next(next: &str) -> &str {
    let inside = next == "/admin" || next.starts_with("/admin/") || next.starts_with("/admin?");
    if inside && !next.contains("//") && !next.contains('\\') && !next.chars().any(char::is_control) {
        next
    } else {
        "/admin/connections"
    }
}

fn login_redirect(req: &HttpRequest) -> HttpResponse {
    let mut target = "/admin/login".to_owned();
    if matches!(*req.method(), Method::GET | Method::HEAD) {
        let here = match req.query_string() {
            "" => req.path().to_owned(),
            q => format!("{}?{q}", req.path()),
        };
        if safe_next(&here) == here {
            target.push_str("?next=");
            target.extend(url::form_urlencoded::byte_serialize(here.as_bytes()));
        }
    }
    HttpResponse::SeeOther().insert_header((header::LOCATION, target)).finish()
}

/// Middleware of the protected admin routes: establishes who the admin is (trusted header,
/// else session cookie), or answers with the sign-in redirect, the "not enabled" page, or a
/// 401 page. Puts an [`AdminSession`] in the request extensions.
pub(crate) async fn require_admin(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<WebState>>().cloned() else {
        return Ok(req.into_response(AdminError::internal().into_response()));
    };
    let Some(auth) = state.admin.inner.clone() else {
        return Ok(req.into_response(view::disabled_page()));
    };
    let existing = read_session(&auth, req.request());
    let (data, fresh) = match (header_user(&auth, req.request()), existing) {
        (Some(user), Some(s)) if s.h && s.u == user => (s, false),
        (Some(user), _) => match new_session(&auth, user, true) {
            Ok(s) => (s, true),
            Err(e) => return Ok(req.into_response(e.into_response())),
        },
        (None, Some(s)) if !s.h => (s, false),
        (None, _) => {
            let resp = if auth.password_hash.is_some() {
                login_redirect(req.request())
            } else {
                let header = auth.trusted_header.as_ref().map_or("", HeaderName::as_str);
                AdminError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    format!(
                        "Your reverse proxy did not identify you: the admin pages expect the `{header}` header from the proxy that authenticates users."
                    ),
                )
                .into_response()
            };
            return Ok(req.into_response(resp));
        }
    };
    let cookie = if fresh { Some(session_cookie(&auth, &data, secure_cookies(&state))?) } else { None };
    req.extensions_mut().insert(AdminSession { user: data.u, csrf: data.c, via_header: data.h });
    let mut res = next.call(req).await?.map_into_boxed_body();
    if let Some(c) = cookie {
        res.response_mut().add_cookie(&c)?;
    }
    Ok(res)
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    chrome: Chrome,
    csrf: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    password: bool,
    header: Option<&'a str>,
}

/// Query of `GET /admin/login`.
#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    #[serde(default)]
    next: String,
}

fn login_form(
    state: &WebState,
    auth: &AdminAuth,
    req: &HttpRequest,
    status: StatusCode,
    next: &str,
    error: Option<&str>,
) -> Result<HttpResponse, AdminError> {
    let token = random_token(24)?;
    let cookie = private_cookie(
        &auth.key,
        LOGIN_COOKIE,
        token.clone(),
        "/admin/login",
        SameSite::Strict,
        secure_cookies(state),
        Some(Duration::from_secs(3600)),
    );
    let flash = view::take_flash(state, req);
    let page = LoginPage {
        chrome: Chrome::anonymous(flash.clone()),
        csrf: &token,
        next: safe_next(next),
        error,
        password: auth.password_hash.is_some(),
        header: auth.trusted_header.as_ref().map(HeaderName::as_str),
    };
    let mut resp = view::render(status, &page, flash.is_some());
    resp.add_cookie(&cookie).map_err(|_| AdminError::internal())?;
    Ok(resp)
}

/// `GET /admin/login`.
pub(crate) async fn login_page(
    state: web::Data<WebState>,
    req: HttpRequest,
    q: web::Query<LoginQuery>,
) -> Result<HttpResponse, AdminError> {
    let Some(auth) = state.admin.inner.clone() else { return Ok(view::disabled_page()) };
    if read_session(&auth, &req).is_some_and(|s| !s.h) {
        return Ok(view::see_other(safe_next(&q.next)));
    }
    login_form(&state, &auth, &req, StatusCode::OK, &q.next, None)
}

/// The sign-in form.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginForm").field("next", &self.next).finish_non_exhaustive()
    }
}

/// Releases a verification slot when dropped.
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `POST /admin/login`.
pub(crate) async fn login(
    state: web::Data<WebState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AdminError> {
    let Some(auth) = state.admin.inner.clone() else { return Ok(view::disabled_page()) };
    let form = form.into_inner();
    let Some(hash) = auth.password_hash.clone() else {
        return Err(AdminError::new(
            StatusCode::NOT_FOUND,
            "password_sign_in_disabled",
            "Password sign-in is not enabled: your reverse proxy authenticates admins.",
        ));
    };
    let expected = open_cookie(&auth.key, &req, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !secure_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Err(AdminError::csrf());
    }
    if form.password.is_empty() || form.password.len() > MAX_PASSWORD_LEN {
        return login_form(&state, &auth, &req, StatusCode::UNAUTHORIZED, &form.next, Some("Wrong password."));
    }
    if auth.verifying.fetch_add(1, Ordering::SeqCst) >= MAX_CONCURRENT_VERIFICATIONS {
        auth.verifying.fetch_sub(1, Ordering::SeqCst);
        return Err(AdminError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "Too many sign-in attempts at once. Wait a moment and try again.",
        ));
    }
    let ok = {
        let _slot = Slot(&auth.verifying);
        let password = form.password;
        web::block(move || Argon2::default().verify_password(password.as_bytes(), hash.as_str()).is_ok())
            .await
            .unwrap_or(false)
    };
    if !ok {
        tracing::warn!("admin sign-in failed: wrong password");
        // Slows guessing down; the argon2 cost does the rest.
        actix_web::rt::time::sleep(Duration::from_millis(400)).await;
        return login_form(&state, &auth, &req, StatusCode::UNAUTHORIZED, &form.next, Some("Wrong password."));
    }
    tracing::info!("admin signed in with the password");
    let data = new_session(&auth, PASSWORD_USER.to_owned(), false)?;
    let mut resp = view::see_other(safe_next(&form.next));
    resp.add_cookie(&session_cookie(&auth, &data, secure_cookies(&state))?).map_err(|_| AdminError::internal())?;
    resp.add_cookie(&removal_cookie(LOGIN_COOKIE, "/admin/login")).map_err(|_| AdminError::internal())?;
    Ok(resp)
}

/// A form that carries only the CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// `POST /admin/logout`.
pub(crate) async fn logout(
    state: web::Data<WebState>,
    session: AdminSession,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse, AdminError> {
    session.check_csrf(&form.csrf)?;
    let mut resp = view::see_other("/admin/login");
    resp.add_cookie(&removal_cookie(SESSION_COOKIE, "/admin")).map_err(|_| AdminError::internal())?;
    view::set_flash(&state, &mut resp, Flash::ok("Signed out."));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_inside_the_admin_pages() {
        assert_eq!(safe_next("/admin/connections?owner=a"), "/admin/connections?owner=a");
        assert_eq!(safe_next("/admin"), "/admin");
        for bad in ["https://evil.example", "//evil.example", "/admin//evil", "/adminx", "/admin/\\evil", ""] {
            assert_eq!(safe_next(bad), "/admin/connections", "{bad}");
        }
    }

    #[test]
    fn settings_validate_and_never_show_secrets() {
        let hash = "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG";
        let s = AdminSettings::new(Some(hash), Some("X-Forwarded-User"), Some(b"material"), None).unwrap();
        assert!(s.is_enabled() && s.password_enabled());
        assert_eq!(s.trusted_header(), Some("x-forwarded-user"));
        assert!(!format!("{s:?}").contains("argon2"));
        assert!(!AdminSettings::new(None, None, None, None).unwrap().is_enabled());
        assert!(matches!(
            AdminSettings::new(Some("sha256:abc"), None, None, None),
            Err(AdminSettingsError::InvalidPasswordHash)
        ));
        assert!(matches!(
            AdminSettings::new(None, Some("Cookie"), None, None),
            Err(AdminSettingsError::InvalidHeader(_))
        ));
        assert!(matches!(
            AdminSettings::new(None, Some("bad header"), None, None),
            Err(AdminSettingsError::InvalidHeader(_))
        ));
    }

    #[test]
    fn hashes_verify() {
        let hash = hash_admin_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(Argon2::default().verify_password(b"correct horse", hash.as_str()).is_ok());
        assert!(Argon2::default().verify_password(b"wrong horse", hash.as_str()).is_err());
    }
}
