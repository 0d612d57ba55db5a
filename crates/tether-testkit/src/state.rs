//! What the mock remembers: codes, tokens, counters, injected failures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::MockFailure;

pub(crate) struct IssuedCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) challenge: Option<String>,
    pub(crate) login: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires: Instant,
    pub(crate) used: bool,
}

pub(crate) struct AccessToken {
    pub(crate) login: String,
    pub(crate) expires: Option<Instant>,
    pub(crate) live: bool,
}

pub(crate) struct RefreshToken {
    pub(crate) client_id: String,
    pub(crate) login: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) live: bool,
    /// The access token issued with it (dies when this refresh token is used or revoked).
    pub(crate) access: String,
}

#[derive(Default)]
pub(crate) struct MockState {
    pub(crate) codes: HashMap<String, IssuedCode>,
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshToken>,
    pub(crate) refresh_count: usize,
    pub(crate) refresh_attempts: usize,
    pub(crate) code_exchanges: usize,
    pub(crate) invalid_grants: usize,
    pub(crate) revoked: Vec<String>,
    pub(crate) failure: Option<MockFailure>,
    pub(crate) refresh_delay: Duration,
}

impl MockState {
    pub(crate) fn access_valid(&self, token: &str) -> bool {
        self.access.get(token).is_some_and(|a| a.live && a.expires.is_none_or(|e| e > Instant::now()))
    }

    pub(crate) fn revoke_all(&mut self) {
        self.refresh.values_mut().for_each(|r| r.live = false);
        self.access.values_mut().for_each(|a| a.live = false);
    }

    /// Kills a token (access or refresh); a refresh token takes its access token with it.
    pub(crate) fn revoke(&mut self, token: &str) {
        self.revoked.push(token.to_owned());
        if let Some(a) = self.access.get_mut(token) {
            a.live = false;
        }
        if let Some(r) = self.refresh.get_mut(token) {
            r.live = false;
            let access = r.access.clone();
            if let Some(a) = self.access.get_mut(&access) {
                a.live = false;
            }
        }
    }
}

/// 32 random bytes, base64url.
pub(crate) fn random() -> String {
    let mut b = [0u8; 32];
    // getrandom only fails without an OS random source; a constant would break uniqueness,
    // so fall back to time-derived bytes (test infrastructure only).
    if getrandom::fill(&mut b).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        b[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    URL_SAFE_NO_PAD.encode(b)
}

/// BASE64URL(SHA256(verifier)), the S256 challenge.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A stable account id for a login.
pub(crate) fn account_hex(login: &str) -> String {
    Sha256::digest(login.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A stable integer account id (GitHub flavor).
pub(crate) fn account_number(login: &str) -> u64 {
    let d = Sha256::digest(login.as_bytes());
    let mut n = [0u8; 8];
    n.copy_from_slice(&d[..8]);
    u64::from_le_bytes(n) % 100_000_000 + 1
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(
            super::s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
