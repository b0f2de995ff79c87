//! Lock objects (`locks/<random id>`): who uses the vault, how, and since when. Sealed JSON.

use crate::crypto::{CryptoError, Keys};
use serde::{Deserialize, Serialize};

pub const LOCK_VERSION: u32 = 1;

/// Shared locks (backup, restore, mount, forget, check) coexist; an exclusive lock (prune) excludes every other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    Shared,
    Exclusive,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    pub version: u32,
    pub kind: LockKind,
    pub host: String,
    /// Kernel boot id and PID namespace of the holder (see `vault::lock`); its pid is only meaningful there.
    #[serde(default)]
    pub machine: String,
    pub pid: u32,
    /// The command holding it, e.g. "backup".
    pub command: String,
    /// `user@host`.
    pub by: String,
    /// When the holder first took the lock.
    pub created: String,
    /// When this object was written; a holder writes a new one every few minutes.
    pub refreshed: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("lock cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("lock is not decodable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("lock version {0} is newer than this program understands")]
    Version(u32),
}

pub fn lock_name(id: &[u8; 32]) -> String {
    format!("locks/{}", hex::encode(id))
}

fn aad(id: &[u8; 32]) -> Vec<u8> {
    [b"coffer lock ".as_slice(), id].concat()
}

impl LockRecord {
    pub fn encode(&self, id: &[u8; 32], keys: &Keys) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("encoding into memory cannot fail");
        keys.seal(&json, &aad(id))
    }

    pub fn decode(id: &[u8; 32], sealed: &[u8], keys: &Keys) -> Result<LockRecord, LockError> {
        let rec: LockRecord = serde_json::from_slice(&keys.open(sealed, &aad(id))?)?;
        if rec.version > LOCK_VERSION {
            return Err(LockError::Version(rec.version));
        }
        Ok(rec)
    }
}
