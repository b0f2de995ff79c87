//! The vault's `config` object and its key files, both plain JSON: they must be readable before any key is known
//! (to report "vault format too new" and to try a passphrase). Neither holds a secret in the clear.

use crate::chunker::ChunkerParams;
use crate::crypto::KdfParams;
use serde::{Deserialize, Serialize};

/// Highest vault format version this program reads and writes.
pub const VAULT_VERSION: u32 = 1;
/// Value of the `format` field, so a stray JSON file is not mistaken for a vault.
pub const FORMAT_NAME: &str = "coffer-vault";
pub const CONFIG_NAME: &str = "config";

/// Settings fixed when the vault is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultConfig {
    pub format: String,
    pub version: u32,
    /// Random vault id (hex); bound into every key file's wrapping so keys cannot be moved between vaults.
    pub id: String,
    pub created: String,
    pub chunker: ChunkerParams,
    /// zstd level for new blobs (1-19).
    pub compression: i32,
    /// Target size of pack files in bytes.
    pub pack_size: u32,
}

/// One key file: the master secret wrapped under a passphrase-derived key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: String,
    pub host: String,
    pub user: String,
    pub kdf: String,
    pub params: KdfParams,
    /// Hex.
    pub salt: String,
    /// Hex of `nonce || AES-256-GCM(master secret) || tag`, associated data = vault id bytes.
    pub wrapped: String,
}

pub fn key_name(id: &crate::format::ids::KeyId) -> String {
    format!("keys/{}", id.to_hex())
}
