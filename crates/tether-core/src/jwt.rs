//! Compact ES256 JSON Web Signatures (RFC 7515) and `private_key_jwt` client assertions
//! (RFC 7523 §2.2, OpenID Connect Core §9): how a confidential client authenticates at the
//! PAR, token and revocation endpoints of an AT Protocol authorization server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::jwk::{ES256, EsKey, JwkSet, PublicJwk};
use crate::{Error, secure_eq};

/// `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Lifetime of the client assertions made here (`exp - iat`), in seconds.
pub const CLIENT_ASSERTION_LIFETIME_SECS: i64 = 60;

/// Clock difference tolerated between signer and verifier, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// Longest compact JWS accepted for verification; proofs and assertions are far shorter.
const MAX_JWS_LEN: usize = 8 * 1024;

/// Why a JOSE object (JWK, JWS, DPoP proof, client assertion) was refused or could not be made.
///
/// Messages name the failed check, never the token or key. Converts into
/// [`Error::InvalidInput`], or [`Error::Seal`] when no key or signature could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Not a compact JWS with a JSON header and JSON claims.
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The header's `alg` is not `ES256`.
    #[error("unsupported JWS algorithm: only ES256 is accepted")]
    UnsupportedAlgorithm,
    /// The header's `typ` is not the expected one.
    #[error("wrong JWT type: expected typ `{0}`")]
    WrongType(&'static str),
    /// A JWK is malformed or not an ES256 public key.
    #[error("invalid JWK: {0}")]
    InvalidKey(&'static str),
    /// The signature does not verify with the key.
    #[error("the JWT signature does not verify")]
    BadSignature,
    /// No key of the key set can verify the JWT.
    #[error("no key of the client's key set matches the JWT")]
    UnknownKey,
    /// A claim is missing or has the wrong value.
    #[error("claim `{0}` is missing or does not match")]
    ClaimMismatch(&'static str),
    /// `exp` is in the past.
    #[error("the JWT has expired")]
    Expired,
    /// `iat` is too old or in the future.
    #[error("the JWT was issued outside the accepted time window")]
    IssuedAtOutOfWindow,
    /// The operating system gave no randomness.
    #[error("no randomness available")]
    NoRandomness,
    /// The signature could not be computed.
    #[error("ES256 signing failed")]
    Signing,
}

impl From<JoseError> for Error {
    fn from(e: JoseError) -> Self {
        match e {
            JoseError::NoRandomness | JoseError::Signing => Error::Seal(e.to_string()),
            other => Error::InvalidInput(other.to_string()),
        }
    }
}

/// Seconds since the Unix epoch, the unit of `iat` and `exp`.
pub(crate) fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A fresh random `jti`: 16 random bytes, base64url.
pub(crate) fn random_jti() -> Result<String, JoseError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| JoseError::NoRandomness)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Signs `header.claims` with ES256 into a compact JWS.
pub(crate) fn sign_es256(key: &EsKey, header: &Value, claims: &Value) -> Result<String, JoseError> {
    let signing_input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature = key.sign(signing_input.as_bytes())?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature)))
}

/// A compact ES256 JWS taken apart; the signature is not checked yet.
#[derive(Debug)]
pub(crate) struct DecodedJws<'a> {
    pub(crate) header: Map<String, Value>,
    pub(crate) claims: Map<String, Value>,
    signing_input: &'a str,
    signature: Vec<u8>,
}

impl DecodedJws<'_> {
    /// Checks the signature with `key`.
    pub(crate) fn verify_with(&self, key: &PublicJwk) -> Result<(), JoseError> {
        key.verify(self.signing_input.as_bytes(), &self.signature)
    }

    /// A string claim.
    pub(crate) fn str_claim(&self, name: &'static str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A required, non-empty string claim.
    pub(crate) fn required_str(&self, name: &'static str) -> Result<&str, JoseError> {
        self.str_claim(name).filter(|value| !value.is_empty()).ok_or(JoseError::ClaimMismatch(name))
    }

    /// A required numeric date claim (seconds; fractions are cut off).
    pub(crate) fn required_time(&self, name: &'static str) -> Result<i64, JoseError> {
        let value = self.claims.get(name).ok_or(JoseError::ClaimMismatch(name))?;
        #[allow(clippy::cast_possible_truncation)]
        value
            .as_i64()
            .or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .ok_or(JoseError::ClaimMismatch(name))
    }
}

/// Splits and decodes a compact JWS whose header says `alg: ES256`.
pub(crate) fn decode_es256(token: &str) -> Result<DecodedJws<'_>, JoseError> {
    if token.len() > MAX_JWS_LEN {
        return Err(JoseError::Malformed("too long"));
    }
    let three_parts = token
        .rsplit_once('.')
        .and_then(|(signing_input, signature)| Some((signing_input, signing_input.split_once('.')?, signature)))
        .filter(|(_, (_, claims), _)| !claims.contains('.'));
    let Some((signing_input, (header, claims), signature)) = three_parts else {
        return Err(JoseError::Malformed("not three dot-separated parts"));
    };
    let object = |part: &str, what: &'static str| -> Result<Map<String, Value>, JoseError> {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| JoseError::Malformed(what))?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(JoseError::Malformed(what)),
        }
    };
    let header_map = object(header, "the header is not a base64url JSON object")?;
    if header_map.get("alg").and_then(Value::as_str) != Some(ES256) {
        return Err(JoseError::UnsupportedAlgorithm);
    }
    let claims = object(claims, "the claims are not a base64url JSON object")?;
    let signature =
        URL_SAFE_NO_PAD.decode(signature).map_err(|_| JoseError::Malformed("the signature is not base64url"))?;
    if signature.len() != 64 {
        return Err(JoseError::BadSignature);
    }
    // The signature covers the first two parts exactly as received.
    Ok(DecodedJws { header: header_map, claims, signing_input, signature })
}

/// A `private_key_jwt` client assertion (RFC 7523): header `{"alg":"ES256","kid"}`, claims
/// `iss = sub = client_id`, `aud`, a random `jti`, `iat` and `exp` =
/// `iat` + [`CLIENT_ASSERTION_LIFETIME_SECS`].
///
/// Send it as `client_assertion` with `client_assertion_type` = [`CLIENT_ASSERTION_TYPE`]. For
/// AT Protocol the audience is the authorization server's issuer.
pub fn client_assertion(key: &EsKey, kid: &str, client_id: &str, audience: &str) -> Result<String, JoseError> {
    client_assertion_at(key, kid, client_id, audience, unix_now())
}

/// [`client_assertion`] issued at `iat` (seconds since the epoch).
pub(crate) fn client_assertion_at(
    key: &EsKey,
    kid: &str,
    client_id: &str,
    audience: &str,
    iat: i64,
) -> Result<String, JoseError> {
    let header = json!({ "alg": ES256, "kid": kid });
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": random_jti()?,
        "iat": iat,
        "exp": iat + CLIENT_ASSERTION_LIFETIME_SECS,
    });
    sign_es256(key, &header, &claims)
}

/// A client assertion that passed [`verify_client_assertion`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedClientAssertion {
    /// The assertion's unique id; the verifier must refuse a `jti` it has already seen.
    pub jti: String,
    /// The `kid` of the key that verified it (`None` when the key set entry has none).
    pub kid: Option<String>,
    /// Expiry (seconds since the epoch): how long the `jti` must be remembered.
    pub exp: i64,
}

/// Verifies a `private_key_jwt` client assertion as an authorization server does: ES256
/// signature by a key of `keys` (the one named by the header's `kid`, or any when there is
/// none), `iss` and `sub` equal to `client_id`, `aud` (a string or an array) containing
/// `audience`, `exp` not passed and `iat`, when present, not in the future, with
/// [`CLOCK_SKEW_SECS`] of tolerance; `now` is in seconds since the epoch.
///
/// Replay protection (remembering `jti` until `exp`) is the caller's job.
pub fn verify_client_assertion(
    assertion: &str,
    keys: &JwkSet,
    client_id: &str,
    audience: &str,
    now: i64,
) -> Result<VerifiedClientAssertion, JoseError> {
    let jws = decode_es256(assertion)?;
    let key = match jws.header.get("kid") {
        Some(Value::String(kid)) => {
            let key = keys.find(kid).ok_or(JoseError::UnknownKey)?;
            jws.verify_with(key)?;
            key
        }
        Some(_) => return Err(JoseError::Malformed("kid is not a string")),
        None => keys.keys.iter().find(|key| jws.verify_with(key).is_ok()).ok_or(JoseError::UnknownKey)?,
    };
    if !jws.str_claim("iss").is_some_and(|iss| secure_eq(iss.as_bytes(), client_id.as_bytes())) {
        return Err(JoseError::ClaimMismatch("iss"));
    }
    if !jws.str_claim("sub").is_some_and(|sub| secure_eq(sub.as_bytes(), client_id.as_bytes())) {
        return Err(JoseError::ClaimMismatch("sub"));
    }
    let audience_ok = match jws.claims.get("aud") {
        Some(Value::String(aud)) => aud == audience,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(JoseError::ClaimMismatch("aud"));
    }
    let exp = jws.required_time("exp")?;
    if now > exp + CLOCK_SKEW_SECS {
        return Err(JoseError::Expired);
    }
    if jws.claims.contains_key("iat") && jws.required_time("iat")? > now + CLOCK_SKEW_SECS {
        return Err(JoseError::IssuedAtOutOfWindow);
    }
    let jti = jws.required_str("jti")?.to_owned();
    Ok(VerifiedClientAssertion { jti, kid: key.kid.clone(), exp })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwk::PublicJwk;

    const CLIENT: &str = "https://app.example.com/client-metadata.json";
    const ISSUER: &str = "https://bsky.social";

    fn parts(token: &str) -> (Value, Value) {
        let mut it = token.split('.');
        let mut decode = || serde_json::from_slice(&URL_SAFE_NO_PAD.decode(it.next().unwrap()).unwrap()).unwrap();
        (decode(), decode())
    }

    /// A token with its claims replaced, keeping the original header and signature.
    pub(crate) fn with_claims(token: &str, claims: &Value) -> String {
        let mut it = token.split('.');
        let header = it.next().unwrap();
        let _ = it.next();
        let signature = it.next().unwrap();
        format!("{header}.{}.{signature}", URL_SAFE_NO_PAD.encode(claims.to_string()))
    }

    fn key_set(key: &EsKey, kid: &str) -> JwkSet {
        JwkSet { keys: vec![key.public_jwk_with_kid(kid)] }
    }

    #[test]
    fn client_assertion_has_the_rfc7523_header_and_claims() {
        let key = EsKey::generate().unwrap();
        let token = client_assertion(&key, "k1", CLIENT, ISSUER).unwrap();
        let (header, claims) = parts(&token);
        assert_eq!(header, json!({ "alg": "ES256", "kid": "k1" }));
        assert_eq!(claims["iss"], CLIENT);
        assert_eq!(claims["sub"], CLIENT);
        assert_eq!(claims["aud"], ISSUER);
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["exp"].as_i64().unwrap(), iat + CLIENT_ASSERTION_LIFETIME_SECS);
        assert!((iat - unix_now()).abs() <= 5);
        let signature = URL_SAFE_NO_PAD.decode(token.rsplit('.').next().unwrap()).unwrap();
        assert_eq!(signature.len(), 64, "JOSE r||s, not DER");
        let other = client_assertion(&key, "k1", CLIENT, ISSUER).unwrap();
        assert_ne!(parts(&other).1["jti"], claims["jti"]);
    }

    #[test]
    fn client_assertion_round_trips() {
        let key = EsKey::generate().unwrap();
        let token = client_assertion(&key, "k1", CLIENT, ISSUER).unwrap();
        let verified = verify_client_assertion(&token, &key_set(&key, "k1"), CLIENT, ISSUER, unix_now()).unwrap();
        assert_eq!(verified.kid.as_deref(), Some("k1"));
        assert_eq!(verified.jti, parts(&token).1["jti"]);
    }

    #[test]
    fn client_assertion_with_wrong_key_client_audience_or_time_is_refused() {
        let key = EsKey::generate().unwrap();
        let other = EsKey::generate().unwrap();
        let token = client_assertion(&key, "k1", CLIENT, ISSUER).unwrap();
        let now = unix_now();
        let set = key_set(&key, "k1");
        assert_eq!(
            verify_client_assertion(&token, &key_set(&other, "k1"), CLIENT, ISSUER, now),
            Err(JoseError::BadSignature)
        );
        assert_eq!(
            verify_client_assertion(&token, &key_set(&key, "k2"), CLIENT, ISSUER, now),
            Err(JoseError::UnknownKey)
        );
        assert_eq!(
            verify_client_assertion(&token, &set, "https://evil.example/c", ISSUER, now),
            Err(JoseError::ClaimMismatch("iss"))
        );
        assert_eq!(
            verify_client_assertion(&token, &set, CLIENT, "https://other.as", now),
            Err(JoseError::ClaimMismatch("aud"))
        );
        let late = now + CLIENT_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS + 1;
        assert_eq!(verify_client_assertion(&token, &set, CLIENT, ISSUER, late), Err(JoseError::Expired));
        let early = now - CLOCK_SKEW_SECS - 5;
        assert_eq!(verify_client_assertion(&token, &set, CLIENT, ISSUER, early), Err(JoseError::IssuedAtOutOfWindow));

        // Changed claims under the original signature.
        let mut claims = parts(&token).1;
        claims["sub"] = "someone-else".into();
        assert_eq!(
            verify_client_assertion(&with_claims(&token, &claims), &set, CLIENT, ISSUER, now),
            Err(JoseError::BadSignature)
        );
    }

    #[test]
    fn client_assertion_without_kid_is_checked_against_every_key() {
        let key = EsKey::generate().unwrap();
        let header = json!({ "alg": "ES256" });
        let claims = json!({ "iss": CLIENT, "sub": CLIENT, "aud": [ISSUER, "x"], "jti": "j", "exp": unix_now() + 60 });
        let token = sign_es256(&key, &header, &claims).unwrap();
        let set =
            JwkSet { keys: vec![EsKey::generate().unwrap().public_jwk_with_kid("a"), key.public_jwk_with_kid("b")] };
        let verified = verify_client_assertion(&token, &set, CLIENT, ISSUER, unix_now()).unwrap();
        assert_eq!(verified.kid.as_deref(), Some("b"));
        let missing_jti =
            sign_es256(&key, &header, &json!({ "iss": CLIENT, "sub": CLIENT, "aud": ISSUER, "exp": unix_now() + 60 }))
                .unwrap();
        assert_eq!(
            verify_client_assertion(&missing_jti, &set, CLIENT, ISSUER, unix_now()),
            Err(JoseError::ClaimMismatch("jti"))
        );
    }

    #[test]
    fn malformed_and_non_es256_tokens_are_refused() {
        let key = EsKey::generate().unwrap();
        let set = key_set(&key, "k1");
        let now = unix_now();
        for token in ["", "a.b", "a.b.c.d", "!!.e30.AA", "e30.e30.AA"] {
            assert!(verify_client_assertion(token, &set, CLIENT, ISSUER, now).is_err(), "{token}");
        }
        let hs256 = format!("{}.{}.AAAA", URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(verify_client_assertion(&hs256, &set, CLIENT, ISSUER, now), Err(JoseError::UnsupportedAlgorithm));
        let none = format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#), URL_SAFE_NO_PAD.encode("{}"));
        assert_eq!(verify_client_assertion(&none, &set, CLIENT, ISSUER, now), Err(JoseError::UnsupportedAlgorithm));
    }

    #[test]
    fn tampered_signature_is_refused() {
        let key = EsKey::generate().unwrap();
        let token = client_assertion(&key, "k1", CLIENT, ISSUER).unwrap();
        let (head, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[10] ^= 1;
        let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(&bytes));
        assert_eq!(
            verify_client_assertion(&tampered, &key_set(&key, "k1"), CLIENT, ISSUER, unix_now()),
            Err(JoseError::BadSignature)
        );
    }

    #[test]
    fn es256_jws_from_an_independent_implementation_verifies() {
        // Made with Python `cryptography` 48.0.0, not with this crate:
        //   key = ec.derive_private_key(int.from_bytes(b64url_decode(RFC 7517 A.2 "d"), "big"), ec.SECP256R1())
        //   input = b64url(json(header, separators=(",", ":"))) + "." + b64url(json(claims, ...))
        //   r, s = decode_dss_signature(key.sign(input.encode(), ec.ECDSA(hashes.SHA256())))
        //   token = input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        // with header {"alg":"ES256","kid":"py"} and the claims below (iat 1800000000, exp
        // 1800000060). ECDSA signatures are randomized, so the token is fixed here.
        let jwk: PublicJwk = serde_json::from_str(
            r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","kid":"py"}"#,
        )
        .unwrap();
        let set = JwkSet { keys: vec![jwk] };
        let verified =
            verify_client_assertion(PYTHON_ASSERTION, &set, PYTHON_CLIENT, PYTHON_AUDIENCE, PYTHON_NOW).unwrap();
        assert_eq!(verified.jti, "python-jti-1");
        assert_eq!(verified.kid.as_deref(), Some("py"));
    }

    const PYTHON_CLIENT: &str = "https://client.example/metadata.json";
    const PYTHON_AUDIENCE: &str = "https://as.example";
    const PYTHON_NOW: i64 = 1_800_000_010;
    const PYTHON_ASSERTION: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6InB5In0.eyJpc3MiOiJodHRwczovL2NsaWVudC5leGFtcGxlL21ldGFkYXRhLmpzb24iLCJzdWIiOiJodHRwczovL2NsaWVudC5leGFtcGxlL21ldGFkYXRhLmpzb24iLCJhdWQiOiJodHRwczovL2FzLmV4YW1wbGUiLCJqdGkiOiJweXRob24tanRpLTEiLCJpYXQiOjE4MDAwMDAwMDAsImV4cCI6MTgwMDAwMDA2MH0.rovvGVOzCTT1Fi4Ji2-mJfxEfNToY2ZsSg7D0a85RkftBWeFVhzMlFkvAeWQBUd2X7ZW1GqxhLmcZuaQEnHcOQ";
}
