//! API-key authentication: `Authorization: Bearer <key>`, compared by SHA-256 hash in constant
//! time against every configured key. Keys are scoped: `full` may do everything, `read` may
//! only read (GET/HEAD: listing, events, tokens — reading a token may refresh it, which changes
//! nothing the key's owner can observe besides freshness).

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::{Method, StatusCode};
use actix_web::{FromRequest, HttpRequest, web};
use tether_core::{hash_secret, secure_eq};

use crate::{ApiError, WebState};

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyScope {
    /// Everything.
    Full,
    /// Only GET/HEAD requests.
    Read,
}

impl ApiKeyScope {
    /// Parses `full` or `read`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "full" => Some(Self::Full),
            "read" => Some(Self::Read),
            _ => None,
        }
    }
}

/// One accepted key: its SHA-256 (hex) and scope.
#[derive(Clone)]
pub struct ApiKeyEntry {
    hash: String,
    scope: ApiKeyScope,
}

impl ApiKeyEntry {
    /// From a plaintext key (hashed at once; the plaintext is not kept).
    pub fn from_key(key: &str, scope: ApiKeyScope) -> Self {
        Self { hash: hash_secret(key), scope }
    }

    /// From a hash in the form `sha256:<64 hex>` (what `tether keys hash-api-key` prints).
    pub fn from_hash(hash: &str, scope: ApiKeyScope) -> Option<Self> {
        let hex = hash.strip_prefix("sha256:")?.to_ascii_lowercase();
        (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(Self { hash: hex, scope })
    }
}

/// The accepted API keys, kept only as SHA-256 hashes. `Debug` shows how many there are.
#[derive(Clone, Default)]
pub struct ApiKeys {
    entries: Arc<Vec<ApiKeyEntry>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.entries.len())
    }
}

impl ApiKeys {
    /// Full-access keys from plaintext.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Self {
        Self::from_entries(keys.iter().map(|k| ApiKeyEntry::from_key(k.as_ref(), ApiKeyScope::Full)).collect())
    }

    /// From prepared entries.
    pub fn from_entries(entries: Vec<ApiKeyEntry>) -> Self {
        Self { entries: Arc::new(entries) }
    }

    /// The scope of `presented`, if it is one of the keys. Every stored hash is compared, in
    /// constant time, so timing does not reveal which key (or how much of one) matched.
    pub fn scope_of(&self, presented: &str) -> Option<ApiKeyScope> {
        let h = hash_secret(presented);
        self.entries.iter().fold(None, |found, k| {
            let hit = secure_eq(k.hash.as_bytes(), h.as_bytes());
            if hit && found.is_none() { Some(k.scope) } else { found }
        })
    }

    /// Whether `presented` is one of the keys.
    pub fn accepts(&self, presented: &str) -> bool {
        self.scope_of(presented).is_some()
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Proof that the request carried a valid API key allowed to make it.
#[derive(Debug)]
pub(crate) struct Authenticated;

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let Some(state) = req.app_data::<web::Data<WebState>>() else {
            return ready(Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "no state")));
        };
        let presented = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim);
        let read_only_method = matches!(*req.method(), Method::GET | Method::HEAD);
        ready(match presented.map(|k| state.api_keys.scope_of(k)) {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing API key: send `Authorization: Bearer <api key>`",
            )),
            Some(None) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key")),
            Some(Some(ApiKeyScope::Read)) if !read_only_method => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this API key is read-only (scope `read`); use a `full` key for changes",
            )),
            Some(Some(_)) => Ok(Authenticated),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys_with_their_scope() {
        let keys = ApiKeys::from_entries(vec![
            ApiKeyEntry::from_key("k1-long-key", ApiKeyScope::Full),
            ApiKeyEntry::from_hash(&format!("sha256:{}", hash_secret("k2-long-key")), ApiKeyScope::Read).unwrap(),
        ]);
        assert_eq!(keys.scope_of("k1-long-key"), Some(ApiKeyScope::Full));
        assert_eq!(keys.scope_of("k2-long-key"), Some(ApiKeyScope::Read));
        assert_eq!(keys.scope_of("k3"), None);
        assert!(!format!("{keys:?}").contains("k1"));
        assert!(ApiKeyEntry::from_hash("sha256:zz", ApiKeyScope::Full).is_none());
        assert!(ApiKeyEntry::from_hash("md5:00", ApiKeyScope::Full).is_none());
    }
}
