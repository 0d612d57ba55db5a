//! API-key authentication: `Authorization: Bearer <key>`, compared by hash in constant time.

use std::future::{Ready, ready};
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::{FromRequest, HttpRequest, web};
use tether_core::{hash_secret, secure_eq};

use crate::{ApiError, WebState};

/// The accepted API keys, kept only as SHA-256 hashes. `Debug` shows how many there are.
#[derive(Clone, Default)]
pub struct ApiKeys {
    hashes: Arc<Vec<String>>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKeys({} keys)", self.hashes.len())
    }
}

impl ApiKeys {
    /// Hashes the given plaintext keys.
    pub fn new<S: AsRef<str>>(keys: &[S]) -> Self {
        Self { hashes: Arc::new(keys.iter().map(|k| hash_secret(k.as_ref())).collect()) }
    }

    /// Whether `presented` is one of the keys. Every stored hash is compared, in constant time.
    pub fn accepts(&self, presented: &str) -> bool {
        let h = hash_secret(presented);
        self.hashes.iter().fold(false, |found, k| secure_eq(k.as_bytes(), h.as_bytes()) | found)
    }

    /// Whether any key is configured.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// Proof that the request carried a valid API key.
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
        ready(match presented {
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing API key: send `Authorization: Bearer <api key>`",
            )),
            Some(key) if state.api_keys.accepts(key) => Ok(Authenticated),
            Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "invalid API key")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_keys() {
        let keys = ApiKeys::new(&["k1-long-key", "k2-long-key"]);
        assert!(keys.accepts("k1-long-key"));
        assert!(keys.accepts("k2-long-key"));
        assert!(!keys.accepts("k3"));
        assert!(!format!("{keys:?}").contains("k1"));
    }
}
