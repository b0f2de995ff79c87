//! Key hierarchy and authenticated encryption.
//!
//! A vault has one random 32-byte master secret. Each key file wraps it under a key-encryption key (KEK) derived from
//! a passphrase with Argon2id, so several passphrases can open one vault and changing a passphrase never re-encrypts
//! data. From the master secret, BLAKE3 `derive_key` makes independent subkeys: the AES-256-GCM data key, one MAC key
//! per blob kind for ids, and the chunker's gear seed (secret, so chunk boundaries do not reveal content).
//!
//! Sealed bytes are `nonce (12) || ciphertext || tag (16)` with a random nonce; associated data binds each object to
//! its role (and a blob to its id), so an object cannot be swapped for another.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use serde::{Deserialize, Serialize};

use crate::format::ids::{BlobKind, ChunkId, TreeId, random_bytes};

/// Bytes added by sealing: nonce plus tag.
pub const SEAL_OVERHEAD: usize = 12 + 16;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Wrong key, or the bytes were changed: AES-GCM cannot tell the two apart.
    #[error("authentication failed (wrong key or damaged data)")]
    Auth,
    #[error("sealed data is too short ({0} bytes)")]
    Short(usize),
    #[error("key derivation failed: {0}")]
    Kdf(String),
}

/// The vault's subkeys, derived from the master secret. Cheap to clone and share between threads.
#[derive(Clone)]
pub struct Keys {
    cipher: Aes256Gcm,
    chunk_mac: [u8; 32],
    tree_mac: [u8; 32],
    /// Seed of the content-defined chunker's gear table.
    pub gear_seed: u64,
}

impl Keys {
    /// Derives every subkey from the master secret.
    pub fn derive(master: &[u8; 32]) -> Keys {
        let data = blake3::derive_key("coffer 2026-11 data encryption key", master);
        let chunk_mac = blake3::derive_key("coffer 2026-11 chunk id key", master);
        let tree_mac = blake3::derive_key("coffer 2026-11 tree id key", master);
        let seed = blake3::derive_key("coffer 2026-11 chunker gear seed", master);
        Keys {
            cipher: Aes256Gcm::new(&data.into()),
            chunk_mac,
            tree_mac,
            gear_seed: u64::from_le_bytes(seed[..8].try_into().expect("8 bytes")),
        }
    }

    pub fn chunk_id(&self, plaintext: &[u8]) -> ChunkId {
        ChunkId(*blake3::keyed_hash(&self.chunk_mac, plaintext).as_bytes())
    }

    pub fn tree_id(&self, plaintext: &[u8]) -> TreeId {
        TreeId(*blake3::keyed_hash(&self.tree_mac, plaintext).as_bytes())
    }

    /// Encrypts `plaintext` bound to `aad`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, plaintext, aad)
    }

    /// Decrypts bytes made by `seal` with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open_with(&self.cipher, sealed, aad)
    }
}

/// Associated data of a blob: its kind, its flags byte and its id. Binding the flags means a changed compression
/// flag in an index or pack header makes the blob fail authentication instead of decompressing garbage.
pub fn blob_aad(kind: BlobKind, flags: u8, id: &[u8; 32]) -> [u8; 34] {
    let mut aad = [0u8; 34];
    aad[0] = kind as u8;
    aad[1] = flags;
    aad[2..].copy_from_slice(id);
    aad
}

fn seal_with(cipher: &Aes256Gcm, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let nonce_bytes: [u8; 12] = random_bytes();
    let nonce = Nonce::from(nonce_bytes);
    let ct = cipher
        .encrypt(&nonce, Payload { msg: plaintext, aad })
        .expect("AES-GCM encryption of an in-memory buffer cannot fail");
    let mut out = Vec::with_capacity(12 + ct.len());
    out.extend_from_slice(&nonce_bytes);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &Aes256Gcm, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(CryptoError::Short(sealed.len()));
    }
    let nonce_bytes: [u8; 12] = sealed[..12].try_into().expect("12 bytes");
    let nonce = Nonce::from(nonce_bytes);
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[12..],
                aad,
            },
        )
        .map_err(|_| CryptoError::Auth)
}

/// Argon2id cost parameters, stored in each key file so they can be raised later without breaking old keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    /// Defaults for new keys: 64 MiB, 3 passes, 4 lanes, the second recommended option of RFC 9106 (section 4).
    /// The lanes are computed on all cores (argon2's `parallel` feature): measured on this 2-core machine, `coffer
    /// list` of a small vault takes 151 ms with 1 lane and 87 ms with 4, at the same memory and passes. Key files
    /// made with 1 lane (before 2026-11-25) keep their parameters and still open.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 4,
    };
    /// Deliberately weak parameters for tests that open many vaults; never for real keys.
    pub const FAST_FOR_TESTS: KdfParams = KdfParams {
        memory_kib: 1024,
        iterations: 1,
        parallelism: 1,
    };
}

/// Derives a key-encryption key from a passphrase with Argon2id.
pub fn derive_kek(passphrase: &[u8], salt: &[u8], p: KdfParams) -> Result<[u8; 32], CryptoError> {
    let params = argon2::Params::new(p.memory_kib, p.iterations, p.parallelism, Some(32))
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = [0u8; 32];
    argon
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| CryptoError::Kdf(e.to_string()))?;
    Ok(out)
}

/// Wraps (encrypts) the master secret under a KEK, bound to `aad` (the vault id).
pub fn wrap_master(kek: &[u8; 32], master: &[u8; 32], aad: &[u8]) -> Vec<u8> {
    seal_with(&Aes256Gcm::new(&(*kek).into()), master, aad)
}

/// Unwraps the master secret; `CryptoError::Auth` means a wrong passphrase (or a damaged key file).
pub fn unwrap_master(kek: &[u8; 32], wrapped: &[u8], aad: &[u8]) -> Result<[u8; 32], CryptoError> {
    let plain = open_with(&Aes256Gcm::new(&(*kek).into()), wrapped, aad)?;
    plain.try_into().map_err(|v: Vec<u8>| CryptoError::Short(v.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let keys = Keys::derive(&[1; 32]);
        let sealed = keys.seal(b"hello", b"ctx");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(keys.open(&sealed, b"ctx").unwrap(), b"hello");
        assert!(matches!(keys.open(&sealed, b"other"), Err(CryptoError::Auth)));
        let mut bad = sealed.clone();
        bad[14] ^= 1;
        assert!(matches!(keys.open(&bad, b"ctx"), Err(CryptoError::Auth)));
        assert!(matches!(keys.open(&sealed[..10], b"ctx"), Err(CryptoError::Short(10))));
        assert!(Keys::derive(&[2; 32]).open(&sealed, b"ctx").is_err());
    }

    #[test]
    fn ids_are_keyed_and_kind_specific() {
        let a = Keys::derive(&[1; 32]);
        let b = Keys::derive(&[2; 32]);
        assert_ne!(a.chunk_id(b"x").0, b.chunk_id(b"x").0);
        assert_ne!(a.chunk_id(b"x").0, a.tree_id(b"x").0);
        assert_eq!(a.chunk_id(b"x"), a.chunk_id(b"x"));
        assert_ne!(a.gear_seed, b.gear_seed);
    }

    #[test]
    fn master_wrap_needs_right_passphrase() {
        let p = KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        };
        let kek = derive_kek(b"right", b"saltsaltsaltsalt", p).unwrap();
        let wrapped = wrap_master(&kek, &[9; 32], b"vault");
        assert_eq!(unwrap_master(&kek, &wrapped, b"vault").unwrap(), [9; 32]);
        let wrong = derive_kek(b"wrong", b"saltsaltsaltsalt", p).unwrap();
        assert!(matches!(
            unwrap_master(&wrong, &wrapped, b"vault"),
            Err(CryptoError::Auth)
        ));
    }
}
