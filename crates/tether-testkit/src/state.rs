//! What the mock remembers: codes, tokens, grants, counters, injected failures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::MockFailure;

/// An authorization code handed out by `/authorize`.
pub(crate) struct IssuedCode {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    /// The S256 challenge, when PKCE was used.
    pub(crate) challenge: Option<String>,
    pub(crate) login: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) expires: Instant,
    /// Set on the first exchange attempt: codes are single use.
    pub(crate) used: bool,
    /// The grant created when the code was exchanged (revoked if the code is replayed).
    pub(crate) grant: Option<u64>,
    /// Whether a refresh token may be issued for it (Reddit: only with `duration=permanent`).
    pub(crate) offline: bool,
}

/// An issued access token.
pub(crate) struct AccessToken {
    pub(crate) login: String,
    pub(crate) expires: Option<Instant>,
    pub(crate) live: bool,
    pub(crate) grant: u64,
    /// A Facebook short-lived token (from a code exchange, before `fb_exchange_token`).
    pub(crate) short_lived: bool,
    /// The scopes granted (Twitch's `/oauth2/validate` lists them).
    pub(crate) scopes: Vec<String>,
}

/// An issued refresh token.
pub(crate) struct RefreshToken {
    pub(crate) client_id: String,
    pub(crate) login: String,
    pub(crate) scopes: Vec<String>,
    pub(crate) live: bool,
    /// The access token issued with it (dies when this refresh token is used or revoked).
    pub(crate) access: String,
    pub(crate) grant: u64,
    /// When it stops working (`None`: never).
    pub(crate) expires: Option<Instant>,
}

impl RefreshToken {
    /// Whether it still works.
    pub(crate) fn usable(&self) -> bool {
        self.live && self.expires.is_none_or(|e| e > Instant::now())
    }
}

/// Everything behind the mock's mutex.
#[derive(Default)]
pub(crate) struct MockState {
    pub(crate) codes: HashMap<String, IssuedCode>,
    pub(crate) access: HashMap<String, AccessToken>,
    pub(crate) refresh: HashMap<String, RefreshToken>,
    pub(crate) next_grant: u64,
    pub(crate) refresh_count: usize,
    pub(crate) refresh_attempts: usize,
    pub(crate) code_exchanges: usize,
    pub(crate) token_exchanges: usize,
    pub(crate) invalid_grants: usize,
    pub(crate) revoked: Vec<String>,
    /// Every refresh token issued, oldest first.
    pub(crate) issued_refresh: Vec<String>,
    pub(crate) failure: Option<MockFailure>,
    pub(crate) refresh_delay: Duration,
    /// Logins that consented once (Google issues a refresh token to a returning user only with
    /// `prompt=consent`).
    pub(crate) consented: std::collections::HashSet<String>,
    /// Instagram and Threads: the age a long-lived token must reach to be renewed (`None`: 24 h).
    pub(crate) min_refresh_age: Option<Duration>,
    /// Slack: user scopes of pending codes, and which tokens are bot tokens.
    pub(crate) slack: crate::routes::slack::SlackState,
}

impl MockState {
    /// Whether `token` is a live, unexpired access token.
    pub(crate) fn access_valid(&self, token: &str) -> bool {
        self.access.get(token).is_some_and(|a| a.live && a.expires.is_none_or(|e| e > Instant::now()))
    }

    /// The login behind a live access token.
    pub(crate) fn access_login(&self, token: &str) -> Option<String> {
        if self.access_valid(token) { self.access.get(token).map(|a| a.login.clone()) } else { None }
    }

    /// A fresh grant id (one per successful code exchange).
    pub(crate) fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.next_grant
    }

    /// The user removed the app: every token dies.
    pub(crate) fn revoke_all(&mut self) {
        self.refresh.values_mut().for_each(|r| r.live = false);
        self.access.values_mut().for_each(|a| a.live = false);
    }

    /// Kills every token of one grant.
    pub(crate) fn revoke_grant(&mut self, grant: u64) {
        self.refresh.values_mut().filter(|r| r.grant == grant).for_each(|r| r.live = false);
        self.access.values_mut().filter(|a| a.grant == grant).for_each(|a| a.live = false);
    }

    /// RFC 7009: kills a token (access or refresh); a refresh token takes its access token with
    /// it. Unknown tokens are accepted silently. Records the token in `revoked`.
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

    /// Kills every token of the grant `token` (an access or refresh token) belongs to, and
    /// records it in `revoked`. Returns whether the token was a live one.
    pub(crate) fn revoke_token_grant(&mut self, token: &str) -> bool {
        self.revoked.push(token.to_owned());
        let grant = match (self.access.get(token), self.refresh.get(token)) {
            (Some(a), _) if self.access_valid(token) => Some(a.grant),
            (_, Some(r)) if r.usable() => Some(r.grant),
            _ => None,
        };
        grant.map(|g| self.revoke_grant(g)).is_some()
    }

    /// Forgets expired codes and dead tokens, so a long-running demo server stays small.
    /// Forgotten codes and tokens are answered exactly like dead ones (`invalid_grant`, 401).
    pub(crate) fn prune(&mut self) {
        let now = Instant::now();
        self.codes.retain(|_, c| c.expires > now);
        self.access.retain(|_, a| a.live && a.expires.is_none_or(|e| e > now));
        self.refresh.retain(|_, r| r.usable());
    }
}

/// 32 random bytes, base64url without padding (43 characters).
pub(crate) fn random() -> String {
    let mut b = [0u8; 32];
    if getrandom::fill(&mut b).is_err() {
        // Only without any OS random source. Test infrastructure: stay unique rather than fail.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let mut h = Sha256::new();
        h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        h.update(nanos.to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        b.copy_from_slice(&h.finalize());
    }
    URL_SAFE_NO_PAD.encode(b)
}

/// BASE64URL-NOPAD(SHA256(verifier)), the S256 challenge.
pub(crate) fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `s` has the shape RFC 7636 requires of a verifier or challenge: 43 to 128 characters
/// of `[A-Za-z0-9-._~]`.
pub(crate) fn pkce_shaped(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// A stable account id for a login: hex of the first 8 bytes of SHA-256(login).
pub(crate) fn account_hex(login: &str) -> String {
    Sha256::digest(login.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// A stable Reddit-style account id: `account_number` in base 36 (Reddit ids look like `1w72`).
pub(crate) fn account_base36(login: &str) -> String {
    let mut n = account_number(login);
    let mut digits = Vec::new();
    while n > 0 {
        digits.push(char::from_digit((n % 36) as u32, 36).unwrap_or('0'));
        n /= 36;
    }
    digits.iter().rev().collect()
}

/// A stable long decimal account id as a string (Pinterest, Facebook app-scoped ids), 18 digits.
pub(crate) fn account_digits(login: &str) -> String {
    let d = Sha256::digest(login.as_bytes());
    let mut n = [0u8; 8];
    n.copy_from_slice(&d[8..16]);
    format!("{}", u64::from_le_bytes(n) % 900_000_000_000_000_000 + 100_000_000_000_000_000)
}

/// A stable LinkedIn-style member id (`sub`): 10 base64url characters.
pub(crate) fn account_member_id(login: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(login.as_bytes())[16..24]).chars().take(10).collect()
}

/// A stable UUID-shaped id for a login (Notion users and workspaces, Microsoft object ids);
/// `salt` tells several ids of one login apart.
pub(crate) fn account_uuid(login: &str, salt: &str) -> String {
    let d = Sha256::digest(format!("{salt}:{login}").as_bytes());
    let h: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A stable integer account id (GitHub flavor), 1..=100_000_000.
pub(crate) fn account_number(login: &str) -> u64 {
    let d = Sha256::digest(login.as_bytes());
    let mut n = [0u8; 8];
    n.copy_from_slice(&d[..8]);
    u64::from_le_bytes(n) % 100_000_000 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        assert_eq!(s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

    #[test]
    fn random_tokens_are_43_chars_and_distinct() {
        let (a, b) = (random(), random());
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(pkce_shaped(&a));
    }

    #[test]
    fn account_ids_are_stable() {
        assert_eq!(account_hex("alice"), account_hex("alice"));
        assert_eq!(account_hex("alice").len(), 16);
        assert_ne!(account_number("alice"), account_number("bob"));
        assert_eq!(account_digits("alice").len(), 18);
        assert_eq!(account_member_id("alice").len(), 10);
        assert_eq!(account_uuid("alice", "user").len(), 36);
        assert_ne!(account_uuid("alice", "user"), account_uuid("alice", "workspace"));
        let b36 = account_base36("alice");
        assert!(!b36.is_empty() && b36.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()), "{b36}");
        assert_eq!(u64::from_str_radix(&b36, 36).unwrap(), account_number("alice"));
    }
}
