//! Sealing of secrets at rest: XChaCha20-Poly1305 under a key ring.
//!
//! A sealed value looks like `v1.<key id>.<base64url(nonce || ciphertext)>`. The key id says
//! which key opens it, so keys can be rotated: the first key of the ring seals, every key opens.
//! The associated data binds the ciphertext to its table, row and column, so a ciphertext copied
//! into another row or column fails to open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use secrecy::SecretString;

use crate::{Error, Result};

const VERSION: &str = "v1";
const NONCE_LEN: usize = 24;

/// One encryption key with its id. `Debug` never shows the key material.
#[derive(Clone)]
pub struct EncryptionKey {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl EncryptionKey {
    /// Parses a key in the configuration form `<id>:<base64 of 32 bytes>`.
    ///
    /// The id is 1-32 characters of `A-Za-z0-9_-`. `tether keys generate` prints keys in this form.
    pub fn parse(text: &str) -> Result<Self> {
        let (id, material) = text.trim().split_once(':').ok_or_else(|| {
            Error::Config(
                "an encryption key must look like `<id>:<base64 of 32 bytes>` (run `tether keys generate`)".into(),
            )
        })?;
        let id_ok =
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !id_ok {
            return Err(Error::Config("an encryption key id must be 1-32 characters of A-Z, a-z, 0-9, _ and -".into()));
        }
        let bytes = STANDARD.decode(material).or_else(|_| URL_SAFE_NO_PAD.decode(material)).map_err(|_| {
            Error::Config(format!("encryption key `{id}` is not valid base64 (run `tether keys generate`)"))
        })?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| {
            Error::Config(format!("encryption key `{id}` must be exactly 32 bytes (run `tether keys generate`)"))
        })?;
        Ok(Self { id: id.to_owned(), cipher: XChaCha20Poly1305::new(&Key::from(key)) })
    }

    /// Generates a new random key and returns it in configuration form (`<id>:<base64>`).
    pub fn generate() -> Result<String> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| Error::Seal(format!("no randomness available: {e}")))?;
        let mut id = [0u8; 4];
        getrandom::fill(&mut id).map_err(|e| Error::Seal(format!("no randomness available: {e}")))?;
        let date = chrono::Utc::now().format("%Y%m%d");
        let suffix: String = id.iter().map(|b| format!("{b:02x}")).collect();
        Ok(format!("k{date}{suffix}:{}", STANDARD.encode(key)))
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey").field("id", &self.id).field("key", &"[redacted]").finish()
    }
}

/// Where a sealed value lives; becomes the associated data of the ciphertext.
#[derive(Debug, Clone, Copy)]
pub struct SealContext<'a> {
    /// Table name.
    pub table: &'a str,
    /// Row id.
    pub row: &'a str,
    /// Column name.
    pub column: &'a str,
}

impl SealContext<'_> {
    fn aad(&self) -> Vec<u8> {
        // Length-prefixed so that ("ab","c") and ("a","bc") differ.
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"tether-seal-v1");
        for part in [self.table, self.row, self.column] {
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part.as_bytes());
        }
        aad
    }
}

/// A sealed secret as stored in the database. `Debug` shows only the key id.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret(String);

impl SealedSecret {
    /// Wraps a stored value (as read from the database).
    pub fn from_stored(value: String) -> Self {
        Self(value)
    }
    /// The stored form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Consumes the value, returning the stored form.
    pub fn into_string(self) -> String {
        self.0
    }
    /// The id of the key that sealed this value, if the value is well-formed.
    pub fn key_id(&self) -> Option<&str> {
        let mut parts = self.0.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some(VERSION), Some(id)) => Some(id),
            _ => None,
        }
    }
}

impl fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedSecret(key={})", self.key_id().unwrap_or("?"))
    }
}

/// The set of encryption keys. The first one seals; all of them open.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<EncryptionKey>,
}

impl KeyRing {
    /// Builds a key ring. Fails when it is empty or two keys share an id.
    pub fn new(keys: Vec<EncryptionKey>) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::Config(
                "encryption_keys is empty: add one (generate it with `tether keys generate`)".into(),
            ));
        }
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].iter().any(|o| o.id == k.id) {
                return Err(Error::Config(format!("encryption key id `{}` appears twice", k.id)));
            }
        }
        Ok(Self { keys })
    }

    /// Parses the configuration form of several keys.
    pub fn parse<S: AsRef<str>>(keys: &[S]) -> Result<Self> {
        Self::new(keys.iter().map(|k| EncryptionKey::parse(k.as_ref())).collect::<Result<_>>()?)
    }

    /// The id of the key that seals new values.
    pub fn primary_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `plaintext` for the given place.
    pub fn seal(&self, plaintext: &str, ctx: SealContext<'_>) -> Result<SealedSecret> {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| Error::Seal(format!("no randomness available: {e}")))?;
        let aad = ctx.aad();
        let ciphertext = key
            .cipher
            .encrypt(&XNonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .map_err(|_| Error::Seal("encryption failed".into()))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(SealedSecret(format!("{VERSION}.{}.{}", key.id, URL_SAFE_NO_PAD.encode(blob))))
    }

    /// Opens a sealed value. Fails when the key is unknown, the value was tampered with, or it
    /// was sealed for another place.
    pub fn open(&self, sealed: &SealedSecret, ctx: SealContext<'_>) -> Result<SecretString> {
        let mut parts = sealed.0.splitn(3, '.');
        let (Some(VERSION), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(Error::Seal(format!("{}.{} is not a sealed value", ctx.table, ctx.column)));
        };
        let key = self.keys.iter().find(|k| k.id == key_id).ok_or_else(|| {
            Error::Seal(format!(
                "no encryption key with id `{key_id}` is configured; it is needed to open stored secrets"
            ))
        })?;
        let blob = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| Error::Seal(format!("{}.{} is corrupted", ctx.table, ctx.column)))?;
        if blob.len() < NONCE_LEN {
            return Err(Error::Seal(format!("{}.{} is corrupted", ctx.table, ctx.column)));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] =
            nonce.try_into().map_err(|_| Error::Seal(format!("{}.{} is corrupted", ctx.table, ctx.column)))?;
        let aad = ctx.aad();
        let plain = key.cipher.decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: &aad }).map_err(|_| {
            Error::Seal(format!(
                "{}.{} of row {} failed authentication (tampered, or moved from another row)",
                ctx.table, ctx.column, ctx.row
            ))
        })?;
        let text = String::from_utf8(plain).map_err(|_| Error::Seal("sealed value is not UTF-8".into()))?;
        Ok(SecretString::from(text))
    }

    /// Whether `sealed` was sealed with a key other than the primary one (needs re-sealing).
    pub fn needs_reseal(&self, sealed: &SealedSecret) -> bool {
        sealed.key_id() != Some(self.primary_key_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn ring() -> KeyRing {
        KeyRing::parse(&[EncryptionKey::generate().unwrap()]).unwrap()
    }
    const CTX: SealContext<'static> = SealContext { table: "connections", row: "r1", column: "access_token" };

    #[test]
    fn seal_then_open_round_trips_and_hides_plaintext() {
        let ring = ring();
        let sealed = ring.seal("gho_secret_token", CTX).unwrap();
        assert!(!sealed.as_str().contains("gho_secret_token"));
        assert_eq!(sealed.key_id(), Some(ring.primary_key_id()));
        assert_eq!(ring.open(&sealed, CTX).unwrap().expose_secret(), "gho_secret_token");
        assert!(!format!("{sealed:?}").contains(sealed.as_str()));
    }

    #[test]
    fn ciphertext_moved_to_another_row_or_column_fails_to_open() {
        let ring = ring();
        let sealed = ring.seal("t", CTX).unwrap();
        let other_row = SealContext { row: "r2", ..CTX };
        let other_col = SealContext { column: "refresh_token", ..CTX };
        assert!(ring.open(&sealed, other_row).is_err());
        assert!(ring.open(&sealed, other_col).is_err());
    }

    #[test]
    fn tampered_ciphertext_fails() {
        let ring = ring();
        let sealed = ring.seal("token", CTX).unwrap();
        let mut s = sealed.into_string();
        let last = s.pop().unwrap();
        s.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.open(&SealedSecret::from_stored(s), CTX).is_err());
    }

    #[test]
    fn old_keys_open_and_only_the_first_seals() {
        let old = EncryptionKey::generate().unwrap();
        let new = EncryptionKey::generate().unwrap();
        let before = KeyRing::parse(std::slice::from_ref(&old)).unwrap();
        let sealed = before.seal("t", CTX).unwrap();
        let after = KeyRing::parse(&[new, old]).unwrap();
        assert_eq!(after.open(&sealed, CTX).unwrap().expose_secret(), "t");
        assert!(after.needs_reseal(&sealed));
        assert!(!after.needs_reseal(&after.seal("t", CTX).unwrap()));
        let without_old = KeyRing::parse(&[EncryptionKey::generate().unwrap()]).unwrap();
        assert!(without_old.open(&sealed, CTX).is_err());
    }

    #[test]
    fn malformed_keys_are_rejected_with_a_clear_message() {
        for bad in ["nocolon", ":AAAA", "k1:not base64!", "k1:AAAA"] {
            let err = EncryptionKey::parse(bad).unwrap_err().to_string();
            assert!(err.contains("key"), "{err}");
        }
        assert!(KeyRing::parse::<&str>(&[]).is_err());
        let k = EncryptionKey::generate().unwrap();
        assert!(KeyRing::parse(&[k.clone(), k]).is_err());
        assert!(!format!("{:?}", EncryptionKey::parse(&EncryptionKey::generate().unwrap()).unwrap()).contains("=="));
    }
}
