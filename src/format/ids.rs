//! Identifiers: one newtype per kind of object, so a tree id can never be used where a chunk id is meant.
//!
//! Every id is 32 bytes. Chunk and tree ids are keyed BLAKE3 MACs of the plaintext (each kind with its own key, see
//! `crypto::Keys`), so they reveal nothing about content to someone without the master key. Pack and index ids are
//! plain BLAKE3 hashes of the stored (encrypted) bytes, so anyone can check a stored object against its name.
//! Point and key ids are random.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Error from parsing a hex id.
#[derive(Debug, thiserror::Error)]
#[error("'{0}' is not a 64-digit hex id")]
pub struct BadId(pub String);

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// Full lower-case hex form (64 digits), as used in object names.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
            /// First 8 hex digits, as shown to users.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..4])
            }
            /// Parses the full 64-digit hex form.
            pub fn from_hex(s: &str) -> Result<Self, BadId> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| BadId(s.to_string()))?;
                Ok(Self(out))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

id_type!(
    /// Keyed BLAKE3 of a chunk's plaintext.
    ChunkId
);
id_type!(
    /// Keyed BLAKE3 (tree key) of a tree's encoded plaintext.
    TreeId
);
id_type!(
    /// BLAKE3 of a pack file's bytes.
    PackId
);
id_type!(
    /// BLAKE3 of an index file's bytes.
    IndexId
);
id_type!(
    /// Random id of a recovery point.
    PointId
);
id_type!(
    /// Random id of a key file.
    KeyId
);

/// A blob is either a file-content chunk or an encoded tree; both live in packs and the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BlobKind {
    Data = 0,
    Tree = 1,
}

/// Any blob id with its kind. The index is keyed by the raw 32 bytes: the two kinds use different MAC keys, so
/// their ids do not collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlobId {
    pub kind: BlobKind,
    pub id: [u8; 32],
}

impl From<ChunkId> for BlobId {
    fn from(c: ChunkId) -> Self {
        BlobId {
            kind: BlobKind::Data,
            id: c.0,
        }
    }
}

impl From<TreeId> for BlobId {
    fn from(t: TreeId) -> Self {
        BlobId {
            kind: BlobKind::Tree,
            id: t.0,
        }
    }
}

/// Fresh random 32 bytes from the operating system.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the operating system's random source failed");
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_short() {
        let id = ChunkId(random_bytes());
        assert_eq!(ChunkId::from_hex(&id.to_hex()).unwrap(), id);
        assert_eq!(id.short().len(), 8);
        assert!(id.to_hex().starts_with(&id.short()));
        assert!(ChunkId::from_hex("xyz").is_err());
        assert!(ChunkId::from_hex(&"a".repeat(63)).is_err());
    }
}
