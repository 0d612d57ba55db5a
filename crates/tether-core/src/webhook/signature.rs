//! The `Tether-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
//!
//! The MAC is computed with the endpoint's secret over `"{t}.{body}"` (the timestamp, a dot,
//! and the raw request body bytes). A receiver recomputes it, compares in constant time, and
//! rejects timestamps too far from its clock (replays). Several `v1=` entries may appear
//! (reserved for secret rotation); one match is enough.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Tether-Signature";
/// Header naming the event kind.
pub const EVENT_HEADER: &str = "Tether-Event";
/// Header carrying the delivery id (distinct per endpoint; the event id is in the body).
pub const DELIVERY_HEADER: &str = "Tether-Delivery";

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No `t=` or no `v1=` in the header.
    #[error("the signature header is malformed")]
    Malformed,
    /// The timestamp is outside the tolerance.
    #[error("the signature timestamp is outside the tolerance")]
    Expired,
    /// No `v1=` value matches.
    #[error("the signature does not match")]
    Mismatch,
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable_hmac(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[cold]
fn unreachable_hmac() -> ! {
    panic!("HMAC-SHA256 accepts keys of every length")
}

/// The hex MAC of `body` at `timestamp`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
}

/// The full header value: `t=<timestamp>,v1=<hex>`.
pub fn header_value(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", sign(secret, timestamp, body))
}

/// Verifies a `Tether-Signature` header value against the raw body, accepting timestamps
/// within `tolerance` of `now` (unix seconds).
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance: Duration) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => candidates.push(v),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if candidates.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let skew = now.abs_diff(timestamp);
    if skew > tolerance.as_secs() {
        return Err(SignatureError::Expired);
    }
    let expected = sign(secret, timestamp, body);
    let ok = candidates.iter().any(|c| bool::from(c.as_bytes().ct_eq(expected.as_bytes())));
    if ok { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed independently with Python:
    // hmac.new(b"whsec_test_0123456789", b'1700000000.{"id":"e1"}', hashlib.sha256).hexdigest()
    const VECTOR: &str = "e3c0ab8c2c2783d6eb5ec42e123051b2d2ce704466c5abb868a37e471131e79d";

    #[test]
    fn matches_an_independent_computation() {
        assert_eq!(sign(b"whsec_test_0123456789", 1_700_000_000, br#"{"id":"e1"}"#), VECTOR);
        assert_eq!(
            header_value(b"whsec_test_0123456789", 1_700_000_000, br#"{"id":"e1"}"#),
            format!("t=1700000000,v1={VECTOR}")
        );
    }

    #[test]
    fn verifies_and_refuses() {
        let secret = b"whsec_test_0123456789";
        let body = br#"{"id":"e1"}"#;
        let header = header_value(secret, 1_700_000_000, body);
        let tolerance = Duration::from_secs(300);
        assert_eq!(verify(secret, &header, body, 1_700_000_100, tolerance), Ok(()));
        assert_eq!(verify(secret, &header, body, 1_700_000_400, tolerance), Err(SignatureError::Expired));
        assert_eq!(
            verify(b"another-secret-xyz", &header, body, 1_700_000_000, tolerance),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify(secret, &header, br#"{"id":"e2"}"#, 1_700_000_000, tolerance), Err(SignatureError::Mismatch));
        assert_eq!(verify(secret, "v1=abc", body, 1_700_000_000, tolerance), Err(SignatureError::Malformed));
        assert_eq!(verify(secret, "t=1700000000", body, 1_700_000_000, tolerance), Err(SignatureError::Malformed));
        // A rotated secret: one of several v1 entries matching is enough.
        let both = format!("t=1700000000,v1=deadbeef,v1={}", sign(secret, 1_700_000_000, body));
        assert_eq!(verify(secret, &both, body, 1_700_000_000, tolerance), Ok(()));
    }
}
