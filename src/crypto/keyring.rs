//! The key ring: the first key seals, every key opens (rotation without logging anyone out).
//!
//! Envelope layout, all binary:
//!
//! ```text
//! version (1 byte = 1) | key id (4 bytes) | nonce (24 bytes) | ciphertext + tag
//! ```
//!
//! XChaCha20-Poly1305: its 192-bit nonce may be drawn at random for every seal without a
//! counter shared between instances (AES-GCM's 96-bit nonce would need one at our volume).
//! The key id is the first four bytes of SHA-256 of the key, so it does not depend on the
//! key's position in the configuration. Callers pass associated data that binds the
//! envelope to where it lives (the store key of a session, the name of a cookie), so a
//! sealed value copied elsewhere does not open.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 24;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// Why an envelope did not open. Callers treat every kind as "no such value"; the kinds
/// exist for metrics and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("envelope is malformed")]
    Malformed,
    #[error("envelope was sealed with a key that is not in the key ring")]
    UnknownKey,
    #[error("envelope failed authentication")]
    Forged,
}

struct Key {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

pub struct KeyRing {
    /// Never empty: validation requires at least one key. `keys[0]` seals.
    keys: Vec<Key>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.keys.len())
            .finish()
    }
}

impl KeyRing {
    /// Builds the ring; `None` when `keys` is empty.
    pub fn new(keys: &[[u8; 32]]) -> Option<KeyRing> {
        if keys.is_empty() {
            return None;
        }
        let keys = keys
            .iter()
            .map(|k| {
                let digest = Sha256::digest(k);
                let mut id = [0u8; KEY_ID_LEN];
                id.copy_from_slice(&digest[..KEY_ID_LEN]);
                Key {
                    id,
                    cipher: XChaCha20Poly1305::new(k.into()),
                }
            })
            .collect();
        Some(KeyRing { keys })
    }

    /// Encrypts `plaintext` with the current key, bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let key = &self.keys[0];
        let nonce_bytes = super::random_bytes::<NONCE_LEN>();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.push(VERSION);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(&nonce_bytes);
        // Encryption of an in-memory buffer cannot fail for XChaCha20-Poly1305 short of a
        // plaintext over 256 GiB; we still refuse to panic and return the header alone,
        // which every `open` rejects.
        if let Ok(ciphertext) = key.cipher.encrypt(
            nonce,
            Payload {
                msg: plaintext,
                aad,
            },
        ) {
            out.extend_from_slice(&ciphertext);
        }
        out
    }

    /// Decrypts an envelope made by [`KeyRing::seal`] with any key of the ring.
    pub fn open(&self, envelope: &[u8], aad: &[u8]) -> Result<Vec<u8>, OpenError> {
        if envelope.len() < HEADER_LEN + 16 || envelope[0] != VERSION {
            return Err(OpenError::Malformed);
        }
        let id = &envelope[1..1 + KEY_ID_LEN];
        let key = self
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let nonce = XNonce::from_slice(&envelope[1 + KEY_ID_LEN..HEADER_LEN]);
        key.cipher
            .decrypt(
                nonce,
                Payload {
                    msg: &envelope[HEADER_LEN..],
                    aad,
                },
            )
            .map_err(|_| OpenError::Forged)
    }

    /// True when `envelope` was sealed by a key other than the current one, so the next
    /// write should re-seal it.
    pub fn is_stale(&self, envelope: &[u8]) -> bool {
        envelope.len() < HEADER_LEN || envelope[1..1 + KEY_ID_LEN] != self.keys[0].id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(keys: &[[u8; 32]]) -> KeyRing {
        KeyRing::new(keys).expect("non-empty")
    }

    #[test]
    fn sealed_value_opens_with_same_aad() {
        let r = ring(&[[1; 32]]);
        let env = r.seal(b"hello", b"ctx");
        assert_eq!(r.open(&env, b"ctx").as_deref(), Ok(&b"hello"[..]));
    }

    #[test]
    fn other_aad_does_not_open() {
        let r = ring(&[[1; 32]]);
        let env = r.seal(b"hello", b"ctx");
        assert_eq!(r.open(&env, b"other"), Err(OpenError::Forged));
    }

    #[test]
    fn every_flipped_bit_is_rejected() {
        let r = ring(&[[1; 32]]);
        let env = r.seal(b"hello", b"ctx");
        for i in 0..env.len() {
            let mut bad = env.clone();
            bad[i] ^= 0x01;
            assert!(r.open(&bad, b"ctx").is_err(), "byte {i}");
        }
    }

    #[test]
    fn truncated_and_empty_are_malformed() {
        let r = ring(&[[1; 32]]);
        let env = r.seal(b"hello", b"ctx");
        assert_eq!(r.open(&[], b"ctx"), Err(OpenError::Malformed));
        assert_eq!(r.open(&env[..20], b"ctx"), Err(OpenError::Malformed));
    }

    #[test]
    fn old_key_still_opens_after_rotation_and_is_stale() {
        let old = ring(&[[1; 32]]);
        let env = old.seal(b"v", b"a");
        let rotated = ring(&[[2; 32], [1; 32]]);
        assert_eq!(rotated.open(&env, b"a").as_deref(), Ok(&b"v"[..]));
        assert!(rotated.is_stale(&env));
        assert!(!rotated.is_stale(&rotated.seal(b"v", b"a")));
    }

    #[test]
    fn key_removed_from_ring_is_unknown() {
        let env = ring(&[[1; 32]]).seal(b"v", b"a");
        assert_eq!(
            ring(&[[2; 32]]).open(&env, b"a"),
            Err(OpenError::UnknownKey)
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let r = ring(&[[7; 32]]);
        assert_eq!(format!("{r:?}"), "KeyRing { keys: 1 }");
    }
}
