//! ES256 (ECDSA P-256 with SHA-256) keys as JSON Web Keys (RFC 7517/7518) and their
//! RFC 7638 thumbprints: the key material of DPoP proofs and private_key_jwt client assertions.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::jwt::JoseError;

/// The JWS algorithm of every key here.
pub const ES256: &str = "ES256";

/// Attempts at drawing a valid scalar; a random 32-byte string is out of range with
/// probability about 2^-32, so more than one attempt practically never happens.
const GENERATE_ATTEMPTS: usize = 8;

/// A P-256 private key for ES256 signatures (DPoP proofs, client assertions).
///
/// Its [`Debug`] output shows the public thumbprint only, never the private scalar. Store it
/// sealed in its [`to_secret_jwk`](EsKey::to_secret_jwk) form and read it back with
/// [`from_secret_jwk`](EsKey::from_secret_jwk).
#[derive(Clone)]
pub struct EsKey {
    signing: SigningKey,
}

impl EsKey {
    /// A new random key from the operating system's randomness.
    pub fn generate() -> Result<Self, JoseError> {
        let mut bytes = [0u8; 32];
        for _ in 0..GENERATE_ATTEMPTS {
            getrandom::fill(&mut bytes).map_err(|_| JoseError::NoRandomness)?;
            // Refused when the bytes are zero or not below the group order: draw again.
            if let Ok(signing) = SigningKey::from_slice(&bytes) {
                bytes.fill(0);
                return Ok(EsKey { signing });
            }
        }
        bytes.fill(0);
        Err(JoseError::NoRandomness)
    }

    /// Parses a private JWK (`{"kty":"EC","crv":"P-256","x","y","d"}`), as written by
    /// [`to_secret_jwk`](EsKey::to_secret_jwk) or by other JOSE libraries. `x` and `y` must
    /// belong to `d`; other members (`kid`, `alg`, `use`) are ignored.
    pub fn from_secret_jwk(jwk: &str) -> Result<Self, JoseError> {
        #[derive(Deserialize)]
        struct PrivateJwk {
            kty: String,
            crv: String,
            x: String,
            y: String,
            d: SecretString,
        }
        let parsed: PrivateJwk =
            serde_json::from_str(jwk).map_err(|_| JoseError::InvalidKey("not a private EC JWK with x, y and d"))?;
        if parsed.kty != "EC" || parsed.crv != "P-256" {
            return Err(JoseError::InvalidKey("only EC keys on P-256 are supported"));
        }
        let mut d = URL_SAFE_NO_PAD
            .decode(parsed.d.expose_secret())
            .map_err(|_| JoseError::InvalidKey("d is not base64url"))?;
        let signing = SigningKey::from_slice(&d).map_err(|_| JoseError::InvalidKey("d is not a P-256 private key"));
        d.fill(0);
        let key = EsKey { signing: signing? };
        let public = key.public_jwk();
        if public.x != parsed.x || public.y != parsed.y {
            return Err(JoseError::InvalidKey("x and y do not belong to d"));
        }
        Ok(key)
    }

    /// The private JWK (`{"kty":"EC","crv":"P-256","x","y","d"}`) as a secret string, the form
    /// to seal at rest.
    pub fn to_secret_jwk(&self) -> SecretString {
        let public = self.public_jwk();
        let mut scalar = self.signing.to_bytes();
        let mut d = URL_SAFE_NO_PAD.encode(scalar.as_slice());
        let jwk = format!(r#"{{"kty":"EC","crv":"P-256","x":"{}","y":"{}","d":"{d}"}}"#, public.x, public.y);
        // Only the returned secret keeps the private scalar; wipe the copies made on the way.
        scalar.as_mut_slice().fill(0);
        d.zeroize();
        SecretString::from(jwk)
    }

    /// The bare public JWK (`kty`, `crv`, `x`, `y`), as embedded in a DPoP proof header.
    pub fn public_jwk(&self) -> PublicJwk {
        PublicJwk::from_verifying_key(self.signing.verifying_key())
    }

    /// The public JWK to publish in a JWKS: with `kid`, `alg: ES256` and `use: sig`.
    pub fn public_jwk_with_kid(&self, kid: &str) -> PublicJwk {
        PublicJwk {
            kid: Some(kid.to_owned()),
            alg: Some(ES256.to_owned()),
            use_: Some("sig".to_owned()),
            ..self.public_jwk()
        }
    }

    /// The RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
    pub fn thumbprint(&self) -> String {
        self.public_jwk().thumbprint()
    }

    /// Signs `message` with ES256: the JOSE signature `r || s` (64 bytes, not DER).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<[u8; 64], JoseError> {
        let signature: Signature = self.signing.try_sign(message).map_err(|_| JoseError::Signing)?;
        Ok(signature.to_bytes().into())
    }
}

impl std::fmt::Debug for EsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EsKey").field("thumbprint", &self.thumbprint()).field("private_key", &"[redacted]").finish()
    }
}

/// A public EC JSON Web Key (P-256 only).
///
/// Serializes as `{"kty":"EC","crv":"P-256","x","y"}` plus `kid`, `alg` and `use` when set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    /// Key type, `EC`.
    pub kty: String,
    /// Curve, `P-256`.
    pub crv: String,
    /// The x coordinate, 32 bytes big-endian, base64url.
    pub x: String,
    /// The y coordinate, 32 bytes big-endian, base64url.
    pub y: String,
    /// Key id, used to pick the key from a set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm the key is for (`ES256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Public key use (`sig`).
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

impl PublicJwk {
    fn from_verifying_key(key: &VerifyingKey) -> Self {
        let point = key.to_sec1_point(false);
        // Uncompressed SEC1: 0x04 || x (32 bytes) || y (32 bytes).
        let bytes = point.as_bytes();
        PublicJwk {
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x: URL_SAFE_NO_PAD.encode(bytes.get(1..33).unwrap_or_default()),
            y: URL_SAFE_NO_PAD.encode(bytes.get(33..65).unwrap_or_default()),
            kid: None,
            alg: None,
            use_: None,
        }
    }

    /// The RFC 7638 thumbprint: SHA-256 over `{"crv","kty","x","y"}` in that order without
    /// whitespace, base64url without padding.
    pub fn thumbprint(&self) -> String {
        // Written in the canonical (lexicographic) order, which is also the order serde_json
        // prints whether or not its `preserve_order` feature is on.
        let canonical = serde_json::json!({ "crv": self.crv, "kty": self.kty, "x": self.x, "y": self.y });
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.to_string().as_bytes()))
    }

    /// The verifying key, after checking that this is a P-256 point.
    pub(crate) fn verifying_key(&self) -> Result<VerifyingKey, JoseError> {
        if self.kty != "EC" || self.crv != "P-256" {
            return Err(JoseError::InvalidKey("only EC keys on P-256 are supported"));
        }
        if self.alg.as_deref().is_some_and(|alg| alg != ES256) {
            return Err(JoseError::InvalidKey("the key is not for ES256"));
        }
        let coordinate = |value: &str| {
            URL_SAFE_NO_PAD
                .decode(value)
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .ok_or(JoseError::InvalidKey("x and y must be 32 bytes, base64url"))
        };
        let mut sec1 = Vec::with_capacity(65);
        sec1.push(0x04);
        sec1.extend(coordinate(&self.x)?);
        sec1.extend(coordinate(&self.y)?);
        VerifyingKey::from_sec1_bytes(&sec1).map_err(|_| JoseError::InvalidKey("the point is not on P-256"))
    }

    /// Checks an ES256 signature (`r || s`, 64 bytes) of `message` with this key.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JoseError> {
        let key = self.verifying_key()?;
        let signature = Signature::from_slice(signature).map_err(|_| JoseError::BadSignature)?;
        key.verify(message, &signature).map_err(|_| JoseError::BadSignature)
    }
}

/// A JSON Web Key Set (`{"keys":[...]}`), e.g. the `jwks` of a confidential client's metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The public keys.
    pub keys: Vec<PublicJwk>,
}

impl JwkSet {
    /// The key with this `kid`, if any.
    pub fn find(&self, kid: &str) -> Option<&PublicJwk> {
        self.keys.iter().find(|key| key.kid.as_deref() == Some(kid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example P-256 key of RFC 7517 appendix A.2 (private) / A.1 (public).
    pub(crate) const RFC7517_PRIVATE: &str = r#"{"kty":"EC","crv":"P-256","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE","use":"enc","kid":"1"}"#;

    #[test]
    fn thumbprint_of_a_known_key_matches_an_independent_computation() {
        // Expected value computed outside Rust:
        // python3 -c 'import hashlib,base64; c=b"{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4\",\"y\":\"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM\"}";
        //   print(base64.urlsafe_b64encode(hashlib.sha256(c).digest()).rstrip(b"=").decode())'
        let key = EsKey::from_secret_jwk(RFC7517_PRIVATE).unwrap();
        assert_eq!(key.thumbprint(), "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s");
        // The optional members do not change the thumbprint.
        assert_eq!(key.public_jwk_with_kid("k1").thumbprint(), key.thumbprint());
    }

    #[test]
    fn thumbprint_input_uses_the_rfc7638_member_order() {
        let jwk =
            PublicJwk { kid: Some("z".into()), alg: Some(ES256.into()), ..EsKey::generate().unwrap().public_jwk() };
        let canonical = serde_json::json!({ "crv": jwk.crv, "kty": jwk.kty, "x": jwk.x, "y": jwk.y }).to_string();
        assert_eq!(canonical, format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, jwk.x, jwk.y));
        assert_eq!(jwk.thumbprint(), URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())));
    }

    #[test]
    fn secret_jwk_round_trips_and_rejects_foreign_coordinates() {
        let key = EsKey::generate().unwrap();
        let again = EsKey::from_secret_jwk(key.to_secret_jwk().expose_secret()).unwrap();
        assert_eq!(again.public_jwk(), key.public_jwk());

        let other = EsKey::generate().unwrap().public_jwk();
        let mut forged: serde_json::Value = serde_json::from_str(key.to_secret_jwk().expose_secret()).unwrap();
        forged["x"] = other.x.into();
        forged["y"] = other.y.into();
        assert_eq!(
            EsKey::from_secret_jwk(&forged.to_string()).unwrap_err(),
            JoseError::InvalidKey("x and y do not belong to d")
        );
        assert!(EsKey::from_secret_jwk(r#"{"kty":"RSA","crv":"P-256","x":"","y":"","d":""}"#).is_err());
        assert!(EsKey::from_secret_jwk("not json").is_err());
    }

    #[test]
    fn generated_keys_differ_and_publish_es256_sig_jwks() {
        let a = EsKey::generate().unwrap();
        let b = EsKey::generate().unwrap();
        assert_ne!(a.thumbprint(), b.thumbprint());
        let published = serde_json::to_value(JwkSet { keys: vec![a.public_jwk_with_kid("k1")] }).unwrap();
        let jwk = &published["keys"][0];
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["kid"], "k1");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["use"], "sig");
        assert!(jwk.get("d").is_none());
        let set: JwkSet = serde_json::from_value(published).unwrap();
        assert!(set.find("k1").is_some());
        assert!(set.find("k2").is_none());
        // The bare form has no optional members.
        let bare = serde_json::to_value(a.public_jwk()).unwrap();
        assert_eq!(bare.as_object().unwrap().len(), 4);
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let key = EsKey::from_secret_jwk(RFC7517_PRIVATE).unwrap();
        let debug = format!("{key:?}");
        assert!(debug.contains("[redacted]"));
        assert!(!debug.contains("870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"));
        assert!(debug.contains(&key.thumbprint()));
    }

    #[test]
    fn off_curve_points_are_refused() {
        let mut jwk = EsKey::generate().unwrap().public_jwk();
        jwk.y = jwk.x.clone();
        assert!(jwk.verifying_key().is_err());
        jwk.x = "AAAA".into();
        assert!(jwk.verifying_key().is_err());
    }
}
