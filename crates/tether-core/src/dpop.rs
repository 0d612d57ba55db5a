//! DPoP (RFC 9449): proofs of possession of an ES256 key, sent in the `DPoP` header of token
//! requests and of requests made with a DPoP-bound access token, their verification (for
//! servers, such as the loopback mocks) and the per-server nonces servers hand out.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use url::Url;

use crate::jwk::{ES256, EsKey, PublicJwk};
use crate::jwt::{JoseError, decode_es256, random_jti, sign_es256, unix_now};
use crate::secure_eq;

/// The `typ` header of a DPoP proof.
pub const DPOP_JWT_TYPE: &str = "dpop+jwt";

/// How old a proof's `iat` may be when it is verified, in seconds.
pub const DPOP_MAX_AGE_SECS: i64 = 300;

/// How far in the future a proof's `iat` may be (clock skew), in seconds.
pub const DPOP_MAX_FUTURE_SECS: i64 = 30;

/// Header that carries a server's new nonce.
pub const DPOP_NONCE_HEADER: &str = "DPoP-Nonce";

/// Longest nonce kept from a server.
const MAX_NONCE_LEN: usize = 512;

/// A DPoP proof JWT for one request: header `{"typ":"dpop+jwt","alg":"ES256","jwk":<public
/// key>}`, claims `jti` (random), `htm`, `htu` (`htu` without query and fragment, RFC 9449
/// §4.2), `iat` (now), `nonce` when the server gave one and `ath` (see [`dpop_ath`]) when the
/// request carries the access token.
///
/// `htm` is the HTTP method as sent (`"POST"`); `htu` must be an absolute URL.
pub fn dpop_proof(
    key: &EsKey,
    htm: &str,
    htu: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
) -> Result<String, JoseError> {
    dpop_proof_at(key, htm, htu, nonce, access_token, unix_now())
}

/// [`dpop_proof`] issued at `iat` (seconds since the epoch).
pub(crate) fn dpop_proof_at(
    key: &EsKey,
    htm: &str,
    htu: &str,
    nonce: Option<&str>,
    access_token: Option<&str>,
    iat: i64,
) -> Result<String, JoseError> {
    let header = json!({ "typ": DPOP_JWT_TYPE, "alg": ES256, "jwk": key.public_jwk() });
    let mut claims = json!({ "jti": random_jti()?, "htm": htm, "htu": dpop_htu(htu)?, "iat": iat });
    if let Some(nonce) = nonce {
        claims["nonce"] = nonce.into();
    }
    if let Some(token) = access_token {
        claims["ath"] = dpop_ath(token).into();
    }
    sign_es256(key, &header, &claims)
}

/// The `ath` claim for an access token: base64url SHA-256 of its ASCII bytes.
pub fn dpop_ath(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// `url` as it goes into (and is compared with) `htu`: parsed and normalized, without query
/// and fragment.
pub fn dpop_htu(url: &str) -> Result<String, JoseError> {
    let mut url = Url::parse(url).map_err(|_| JoseError::ClaimMismatch("htu"))?;
    url.set_query(None);
    url.set_fragment(None);
    Ok(url.into())
}

/// A DPoP proof that passed [`verify_dpop_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedDpopProof {
    /// The proof's unique id; a server refuses a `jti` it has seen within the accepted window.
    pub jti: String,
    /// When it was made (seconds since the epoch).
    pub iat: i64,
    /// The nonce the proof carries, to compare with the one the server issued.
    pub nonce: Option<String>,
    /// The `ath` claim, if any; see [`check_access_token`](VerifiedDpopProof::check_access_token).
    pub ath: Option<String>,
    /// The public key that signed it.
    pub jwk: PublicJwk,
    /// RFC 7638 thumbprint of that key: what a DPoP-bound token's `cnf.jkt` holds.
    pub jwk_thumbprint: String,
}

impl VerifiedDpopProof {
    /// Checks that the proof's `ath` is the hash of `access_token` (required on requests that
    /// carry a DPoP-bound access token).
    pub fn check_access_token(&self, access_token: &str) -> Result<(), JoseError> {
        match &self.ath {
            Some(ath) if secure_eq(ath.as_bytes(), dpop_ath(access_token).as_bytes()) => Ok(()),
            _ => Err(JoseError::ClaimMismatch("ath")),
        }
    }
}

/// Verifies a DPoP proof as a server does (RFC 9449 §4.3): a compact JWS with `typ:
/// dpop+jwt`, `alg: ES256` and a public `jwk` in its header that verifies the signature;
/// `htm` equal to the request's method; `htu` equal to the request's URL, both without query
/// and fragment; `iat` no older than [`DPOP_MAX_AGE_SECS`] and no more than
/// [`DPOP_MAX_FUTURE_SECS`] ahead of `now` (seconds since the epoch); a non-empty `jti`.
///
/// Nonce, `ath` and `jti` replay checks are the caller's: the verified values are returned.
pub fn verify_dpop_proof(proof: &str, htm: &str, htu: &str, now: i64) -> Result<VerifiedDpopProof, JoseError> {
    let jws = decode_es256(proof)?;
    if jws.header.get("typ").and_then(Value::as_str) != Some(DPOP_JWT_TYPE) {
        return Err(JoseError::WrongType(DPOP_JWT_TYPE));
    }
    let jwk_value = jws.header.get("jwk").ok_or(JoseError::InvalidKey("the header has no jwk"))?;
    if jwk_value.get("d").is_some() {
        return Err(JoseError::InvalidKey("the header's jwk contains a private key"));
    }
    let jwk: PublicJwk = serde_json::from_value(jwk_value.clone())
        .map_err(|_| JoseError::InvalidKey("the header's jwk is not an EC key"))?;
    jws.verify_with(&jwk)?;

    if jws.str_claim("htm") != Some(htm) {
        return Err(JoseError::ClaimMismatch("htm"));
    }
    let claimed_htu = jws.str_claim("htu").ok_or(JoseError::ClaimMismatch("htu"))?;
    if dpop_htu(claimed_htu)? != dpop_htu(htu)? {
        return Err(JoseError::ClaimMismatch("htu"));
    }
    let iat = jws.required_time("iat")?;
    if iat < now - DPOP_MAX_AGE_SECS || iat > now + DPOP_MAX_FUTURE_SECS {
        return Err(JoseError::IssuedAtOutOfWindow);
    }
    let jti = jws.required_str("jti")?.to_owned();
    let optional = |name: &'static str| match jws.claims.get(name) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value.clone())),
        Some(_) => Err(JoseError::ClaimMismatch(name)),
    };
    let nonce = optional("nonce")?;
    let ath = optional("ath")?;
    let jwk_thumbprint = jwk.thumbprint();
    Ok(VerifiedDpopProof { jti, iat, nonce, ath, jwk, jwk_thumbprint })
}

/// Whether a response asks for the request to be retried with a (new) DPoP nonce: an
/// authorization server's `400 {"error":"use_dpop_nonce"}` or a resource server's `401` with
/// `WWW-Authenticate: DPoP error="use_dpop_nonce"` (RFC 9449 §8 and §9).
pub fn is_use_dpop_nonce(status: u16, headers: &http::HeaderMap, body: &[u8]) -> bool {
    match status {
        400 => serde_json::from_slice::<Value>(body)
            .ok()
            .is_some_and(|json| json.get("error").and_then(Value::as_str) == Some("use_dpop_nonce")),
        401 => headers
            .get_all(http::header::WWW_AUTHENTICATE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| value.contains("use_dpop_nonce")),
        _ => false,
    }
}

/// The latest DPoP nonce of each server (origin), as learnt from `DPoP-Nonce` response headers.
///
/// Thread-safe and bounded: beyond its capacity the least recently used origins are forgotten
/// (their next request is answered with `use_dpop_nonce` and a new nonce, then retried).
pub struct DpopNonces {
    nonces: quick_cache::sync::Cache<String, String>,
}

impl DpopNonces {
    /// Origins remembered by [`DpopNonces::default`].
    pub const DEFAULT_CAPACITY: usize = 1024;

    /// A store that remembers up to `capacity` origins.
    pub fn new(capacity: usize) -> Self {
        DpopNonces { nonces: quick_cache::sync::Cache::new(capacity.max(1)) }
    }

    /// The nonce to send to `url`'s origin, if it gave one.
    pub fn get(&self, url: &Url) -> Option<String> {
        self.nonces.get(&origin_key(url)?)
    }

    /// Remembers `nonce` for `url`'s origin. Returns false (and keeps nothing) for a URL
    /// without a tuple origin or a nonce that is empty, too long or not printable ASCII
    /// (RFC 9449 §8.1: `1*NQCHAR`).
    pub fn set(&self, url: &Url, nonce: &str) -> bool {
        let valid = !nonce.is_empty()
            && nonce.len() <= MAX_NONCE_LEN
            && nonce.bytes().all(|b| b == b'!' || (b'#'..=b'[').contains(&b) || (b']'..=b'~').contains(&b));
        match origin_key(url) {
            Some(origin) if valid => {
                self.nonces.insert(origin, nonce.to_owned());
                true
            }
            _ => false,
        }
    }

    /// Remembers the `DPoP-Nonce` header of a response from `url`, if it has a valid one.
    pub fn update_from_headers(&self, url: &Url, headers: &http::HeaderMap) -> bool {
        headers.get(DPOP_NONCE_HEADER).and_then(|value| value.to_str().ok()).is_some_and(|nonce| self.set(url, nonce))
    }

    /// Number of origins with a nonce.
    pub fn len(&self) -> usize {
        self.nonces.len()
    }

    /// Whether no origin has a nonce.
    pub fn is_empty(&self) -> bool {
        self.nonces.is_empty()
    }
}

impl Default for DpopNonces {
    fn default() -> Self {
        DpopNonces::new(DpopNonces::DEFAULT_CAPACITY)
    }
}

impl std::fmt::Debug for DpopNonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopNonces").field("origins", &self.nonces.len()).finish()
    }
}

fn origin_key(url: &Url) -> Option<String> {
    let origin = url.origin();
    origin.is_tuple().then(|| origin.ascii_serialization())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN_URL: &str = "https://bsky.social/oauth/token";

    fn parts(token: &str) -> (Value, Value) {
        let mut it = token.split('.');
        let mut decode = || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
        (decode(), decode())
    }

    /// The token with its claims replaced, the original header and signature kept.
    fn with_claims(token: &str, claims: &Value) -> String {
        let (header, rest) = token.split_once('.').unwrap();
        let signature = rest.rsplit_once('.').unwrap().1;
        format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    #[test]
    fn proof_has_the_rfc9449_header_and_claims() {
        let key = EsKey::generate().unwrap();
        let proof = dpop_proof(&key, "POST", "https://bsky.social/oauth/token?x=1#frag", Some("n-1"), None).unwrap();
        let (header, claims) = parts(&proof);
        assert_eq!(header, json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk() }));
        assert_eq!(header["jwk"].as_object().unwrap().len(), 4, "bare public jwk: kty, crv, x, y");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(claims["htu"], TOKEN_URL);
        assert_eq!(claims["nonce"], "n-1");
        assert!(claims.get("ath").is_none());
        assert!((claims["iat"].as_i64().unwrap() - unix_now()).abs() <= 5);
        let again = dpop_proof(&key, "POST", TOKEN_URL, None, None).unwrap();
        assert_ne!(parts(&again).1["jti"], claims["jti"]);
        assert!(parts(&again).1.get("nonce").is_none());
    }

    #[test]
    fn ath_of_a_known_token() {
        // python3 -c 'import hashlib,base64; print(base64.urlsafe_b64encode(hashlib.sha256(
        //   b"Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU").digest()).rstrip(b"=").decode())'
        // (the access token of the RFC 9449 §7.1 example; its ath there is the same value).
        assert_eq!(
            dpop_ath("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn proof_round_trips_with_nonce_and_ath() {
        let key = EsKey::generate().unwrap();
        let proof = dpop_proof(
            &key,
            "GET",
            "https://pds.example/xrpc/app.bsky.actor.getProfile?actor=x",
            Some("n"),
            Some("at-1"),
        )
        .unwrap();
        let verified =
            verify_dpop_proof(&proof, "GET", "https://pds.example/xrpc/app.bsky.actor.getProfile?actor=y", unix_now())
                .unwrap();
        assert_eq!(verified.nonce.as_deref(), Some("n"));
        assert_eq!(verified.jwk_thumbprint, key.thumbprint());
        assert_eq!(verified.jti, parts(&proof).1["jti"]);
        verified.check_access_token("at-1").unwrap();
        assert_eq!(verified.check_access_token("at-2"), Err(JoseError::ClaimMismatch("ath")));
        let without =
            verify_dpop_proof(&dpop_proof(&key, "POST", TOKEN_URL, None, None).unwrap(), "POST", TOKEN_URL, unix_now())
                .unwrap();
        assert_eq!(without.nonce, None);
        assert_eq!(without.check_access_token("at-1"), Err(JoseError::ClaimMismatch("ath")));
    }

    #[test]
    fn proof_for_another_method_or_url_is_refused() {
        let key = EsKey::generate().unwrap();
        let proof = dpop_proof(&key, "POST", TOKEN_URL, None, None).unwrap();
        let now = unix_now();
        assert_eq!(verify_dpop_proof(&proof, "GET", TOKEN_URL, now), Err(JoseError::ClaimMismatch("htm")));
        assert_eq!(verify_dpop_proof(&proof, "post", TOKEN_URL, now), Err(JoseError::ClaimMismatch("htm")));
        assert_eq!(
            verify_dpop_proof(&proof, "POST", "https://bsky.social/oauth/par", now),
            Err(JoseError::ClaimMismatch("htu"))
        );
        assert_eq!(
            verify_dpop_proof(&proof, "POST", "https://evil.example/oauth/token", now),
            Err(JoseError::ClaimMismatch("htu"))
        );
        // Syntax-based normalization: default port and host case do not matter.
        verify_dpop_proof(&proof, "POST", "https://BSKY.social:443/oauth/token", now).unwrap();
    }

    #[test]
    fn old_or_future_proofs_are_refused() {
        let key = EsKey::generate().unwrap();
        let now = 1_800_000_000;
        let proof_at = |iat| dpop_proof_at(&key, "POST", TOKEN_URL, None, None, iat).unwrap();
        verify_dpop_proof(&proof_at(now - DPOP_MAX_AGE_SECS), "POST", TOKEN_URL, now).unwrap();
        verify_dpop_proof(&proof_at(now + DPOP_MAX_FUTURE_SECS), "POST", TOKEN_URL, now).unwrap();
        let old = proof_at(now - DPOP_MAX_AGE_SECS - 1);
        assert_eq!(verify_dpop_proof(&old, "POST", TOKEN_URL, now), Err(JoseError::IssuedAtOutOfWindow));
        let future = proof_at(now + DPOP_MAX_FUTURE_SECS + 1);
        assert_eq!(verify_dpop_proof(&future, "POST", TOKEN_URL, now), Err(JoseError::IssuedAtOutOfWindow));
    }

    #[test]
    fn tampered_claims_or_signature_are_refused() {
        let key = EsKey::generate().unwrap();
        let proof = dpop_proof(&key, "POST", TOKEN_URL, Some("n"), None).unwrap();
        let now = unix_now();
        let (_, claims) = parts(&proof);
        for (name, value) in [
            ("htm", json!("GET")),
            ("htu", json!("https://x.example/")),
            ("iat", json!(now - 10)),
            ("nonce", json!("m")),
        ] {
            let mut changed = claims.clone();
            changed[name] = value;
            let forged = with_claims(&proof, &changed);
            let (htm, htu) = (changed["htm"].as_str().unwrap(), changed["htu"].as_str().unwrap());
            assert_eq!(verify_dpop_proof(&forged, htm, htu, now), Err(JoseError::BadSignature), "{name}");
        }
        let (head, signature) = proof.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[40] ^= 0x80;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(verify_dpop_proof(&tampered, "POST", TOKEN_URL, now), Err(JoseError::BadSignature));
    }

    #[test]
    fn proof_signed_by_another_key_than_its_jwk_is_refused() {
        let key = EsKey::generate().unwrap();
        let other = EsKey::generate().unwrap();
        let header = json!({ "typ": DPOP_JWT_TYPE, "alg": ES256, "jwk": other.public_jwk() });
        let claims = json!({ "jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": unix_now() });
        let proof = sign_es256(&key, &header, &claims).unwrap();
        assert_eq!(verify_dpop_proof(&proof, "POST", TOKEN_URL, unix_now()), Err(JoseError::BadSignature));
    }

    #[test]
    fn wrong_typ_private_jwk_or_missing_jti_are_refused() {
        let key = EsKey::generate().unwrap();
        let now = unix_now();
        let claims = json!({ "jti": "j", "htm": "POST", "htu": TOKEN_URL, "iat": now });
        let jwt = sign_es256(&key, &json!({ "typ": "JWT", "alg": ES256, "jwk": key.public_jwk() }), &claims).unwrap();
        assert_eq!(verify_dpop_proof(&jwt, "POST", TOKEN_URL, now), Err(JoseError::WrongType(DPOP_JWT_TYPE)));
        let private: Value = serde_json::from_str(secrecy::ExposeSecret::expose_secret(&key.to_secret_jwk())).unwrap();
        let leaked = sign_es256(&key, &json!({ "typ": DPOP_JWT_TYPE, "alg": ES256, "jwk": private }), &claims).unwrap();
        assert!(matches!(verify_dpop_proof(&leaked, "POST", TOKEN_URL, now), Err(JoseError::InvalidKey(_))));
        let no_jwk = sign_es256(&key, &json!({ "typ": DPOP_JWT_TYPE, "alg": ES256 }), &claims).unwrap();
        assert!(matches!(verify_dpop_proof(&no_jwk, "POST", TOKEN_URL, now), Err(JoseError::InvalidKey(_))));
        let header = json!({ "typ": DPOP_JWT_TYPE, "alg": ES256, "jwk": key.public_jwk() });
        let no_jti = sign_es256(&key, &header, &json!({ "htm": "POST", "htu": TOKEN_URL, "iat": now })).unwrap();
        assert_eq!(verify_dpop_proof(&no_jti, "POST", TOKEN_URL, now), Err(JoseError::ClaimMismatch("jti")));
    }

    #[test]
    fn nonce_store_keeps_the_latest_nonce_per_origin() {
        let nonces = DpopNonces::default();
        let token = Url::parse(TOKEN_URL).unwrap();
        let par = Url::parse("https://bsky.social/oauth/par?x=1").unwrap();
        let pds = Url::parse("https://pds.example:8443/xrpc/x").unwrap();
        assert_eq!(nonces.get(&token), None);
        let mut headers = http::HeaderMap::new();
        headers.insert("dpop-nonce", http::HeaderValue::from_static("n-1"));
        assert!(nonces.update_from_headers(&token, &headers));
        assert_eq!(nonces.get(&par).as_deref(), Some("n-1"), "same origin");
        assert_eq!(nonces.get(&pds), None, "other origin");
        assert!(nonces.set(&par, "n-2"));
        assert_eq!(nonces.get(&token).as_deref(), Some("n-2"), "the latest wins");
        assert!(!nonces.update_from_headers(&pds, &http::HeaderMap::new()));
        assert!(!nonces.set(&pds, ""));
        assert!(!nonces.set(&pds, "bad\"nonce"));
        assert!(!nonces.set(&pds, &"n".repeat(MAX_NONCE_LEN + 1)));
        assert!(!nonces.set(&Url::parse("data:text/plain,x").unwrap(), "n"));
        assert_eq!(nonces.len(), 1);
        assert_eq!(format!("{nonces:?}"), "DpopNonces { origins: 1 }");
    }

    #[test]
    fn nonce_store_is_bounded_and_shared_across_threads() {
        let nonces = std::sync::Arc::new(DpopNonces::new(16));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let nonces = nonces.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        let url = Url::parse(&format!("https://s{t}-{i}.example/")).unwrap();
                        assert!(nonces.set(&url, &format!("n{i}")));
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(nonces.len() <= 16, "{} origins kept", nonces.len());
    }

    #[test]
    fn use_dpop_nonce_answers_are_recognised() {
        let none = http::HeaderMap::new();
        assert!(is_use_dpop_nonce(400, &none, br#"{"error":"use_dpop_nonce","error_description":"x"}"#));
        assert!(!is_use_dpop_nonce(400, &none, br#"{"error":"invalid_grant"}"#));
        assert!(!is_use_dpop_nonce(400, &none, b"not json"));
        let mut www = http::HeaderMap::new();
        www.insert(
            http::header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static(r#"DPoP error="use_dpop_nonce", error_description="x""#),
        );
        assert!(is_use_dpop_nonce(401, &www, b""));
        assert!(!is_use_dpop_nonce(401, &none, b""));
        assert!(!is_use_dpop_nonce(500, &www, br#"{"error":"use_dpop_nonce"}"#));
    }
}
