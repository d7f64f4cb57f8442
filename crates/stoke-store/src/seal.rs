//! Secrets at rest: the [`MasterKey`] and the sealed form of a secret.
//!
//! A secret (an access key's secret) is stored only sealed: AES-256-GCM under the master key,
//! a random 96-bit nonce per secret, and the record's own id (the access key id) as associated
//! data, so that a sealed secret moved to another row does not open. The stored form is the
//! nonce followed by the ciphertext and its tag. The master key is kept apart from the
//! database (`STOKE_MASTER_KEY` or a file of its own, read by the binary); nodes of one
//! cluster share it. [`MasterKey::derive`] gives other parts keys of their own from it (HKDF
//! with SHA-256), so that one secret is all an installation keeps.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::Rng;
use zeroize::Zeroizing;

/// The bytes of a nonce, at the start of every sealed secret.
const NONCE_LEN: usize = 12;

/// Why a master key could not be read, or a secret could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("a master key is 64 hexadecimal characters (32 bytes); got {0} characters")]
    BadLength(usize),
    #[error("a master key is 64 hexadecimal characters (32 bytes); it has other characters")]
    NotHex,
    /// The sealed bytes do not open under this key and associated data: another master key
    /// sealed them, or they were changed.
    #[error("a sealed secret does not open with this master key")]
    WrongKey,
}

/// The 32-byte key that seals secrets at rest. Its `Debug` shows nothing of it; its bytes are
/// wiped when it goes.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rng().fill(&mut k[..]);
        Self(k)
    }

    /// The key from its 64 hexadecimal characters (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(SealError::BadLength(text.chars().count()));
        }
        let mut k = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text, &mut k[..]).map_err(|_| SealError::NotHex)?;
        Ok(Self(k))
    }

    /// The key as 64 lower-case hexadecimal characters (to write the key file).
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex::encode(&self.0[..]))
    }

    /// A key of its own for `label` (HKDF-SHA-256 of the master key, `label` as the info):
    /// the same master key and label always give the same key, another label another one.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(b"stoke master key"), &self.0[..]);
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA-256's limit (255 * 32): this cannot fail.
        let _ = hk.expand(label.as_bytes(), &mut out);
        out
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new((&*self.0).into())
    }

    /// `secret` sealed with a fresh nonce, bound to `aad` (the record's id).
    pub fn seal(&self, secret: &[u8], aad: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce[..]);
        let payload = Payload {
            msg: secret,
            aad: aad.as_bytes(),
        };
        // AES-GCM encryption fails only for messages of gigabytes.
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The secret `sealed` holds, if it was sealed with this key for `aad`.
    pub fn open(&self, sealed: &[u8], aad: &str) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::WrongKey);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let payload = Payload {
            msg: body,
            aad: aad.as_bytes(),
        };
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), payload)
            .map(Zeroizing::new)
            .map_err(|_| SealError::WrongKey)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_its_id() {
        let k = MasterKey::generate();
        let sealed = k.seal(b"wJalrXUtnFEMI", "AKIA1");
        assert!(!sealed.windows(13).any(|w| w == b"wJalrXUtnFEMI"));
        assert_eq!(&k.open(&sealed, "AKIA1").unwrap()[..], b"wJalrXUtnFEMI");
        assert_eq!(k.open(&sealed, "AKIA2"), Err(SealError::WrongKey));
        assert_eq!(
            MasterKey::generate().open(&sealed, "AKIA1"),
            Err(SealError::WrongKey)
        );
        assert_ne!(sealed, k.seal(b"wJalrXUtnFEMI", "AKIA1"), "a nonce each");
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(k.open(&tampered, "AKIA1"), Err(SealError::WrongKey));
    }

    #[test]
    fn keys_parse_from_hex_and_derive_apart() {
        let k = MasterKey::generate();
        let again = MasterKey::from_hex(&format!(" {}\n", k.to_hex().as_str())).unwrap();
        assert_eq!(again.derive("a"), k.derive("a"));
        assert_ne!(k.derive("a"), k.derive("b"));
        assert_eq!(
            MasterKey::from_hex("ab").unwrap_err(),
            SealError::BadLength(2)
        );
        assert_eq!(
            MasterKey::from_hex(&"zz".repeat(32)).unwrap_err(),
            SealError::NotHex
        );
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
    }
}
