//! Index files: which blobs each pack holds, so reading a blob needs one ranged read and no pack header.
//!
//! An index file is one sealed postcard value. Index files only accumulate; later ones may repeat entries of earlier
//! ones (harmless: the same blob in two packs is readable from either).

use crate::crypto::{CryptoError, Keys};
use crate::format::ids::{IndexId, PackId};
use crate::format::pack::BlobEntry;
use serde::{Deserialize, Serialize};

pub const INDEX_VERSION: u32 = 1;
const INDEX_AAD: &[u8] = b"coffer index";

/// The blobs of one pack.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Size of the pack object in bytes (lets `check` spot truncated packs by listing alone).
    pub size: u64,
    pub blobs: Vec<BlobEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<IndexPack>,
}

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("index is not decodable: {0}")]
    Decode(#[from] postcard::Error),
    #[error("index version {0} is newer than this program understands")]
    Version(u32),
}

impl IndexFile {
    /// Sealed bytes and the id (name) they are stored under.
    pub fn encode(packs: Vec<IndexPack>, keys: &Keys) -> (IndexId, Vec<u8>) {
        let file = IndexFile {
            version: INDEX_VERSION,
            packs,
        };
        let plain = postcard::to_stdvec(&file).expect("encoding into memory cannot fail");
        let sealed = keys.seal(&plain, INDEX_AAD);
        (IndexId(*blake3::hash(&sealed).as_bytes()), sealed)
    }

    pub fn decode(sealed: &[u8], keys: &Keys) -> Result<IndexFile, IndexError> {
        let file: IndexFile = postcard::from_bytes(&keys.open(sealed, INDEX_AAD)?)?;
        if file.version > INDEX_VERSION {
            return Err(IndexError::Version(file.version));
        }
        Ok(file)
    }
}

pub fn index_name(id: &IndexId) -> String {
    format!("index/{}", id.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::ids::BlobKind;

    proptest::proptest! {
        #[test]
        fn any_index_round_trips(packs in proptest::collection::vec((proptest::prelude::any::<[u8; 32]>(), 0u64..1 << 40, proptest::collection::vec((proptest::prelude::any::<[u8; 32]>(), proptest::prelude::any::<(u8, u32, u32, u32, bool)>()), 0..20)), 0..6)) {
            let keys = Keys::derive(&[4; 32]);
            let packs: Vec<IndexPack> = packs.into_iter().map(|(id, size, blobs)| IndexPack {
                id: PackId(id),
                size,
                blobs: blobs.into_iter().map(|(id, (flags, offset, length, raw_len, tree))| BlobEntry {
                    kind: if tree { BlobKind::Tree } else { BlobKind::Data }, flags, id, offset, length, raw_len,
                }).collect(),
            }).collect();
            let (_, bytes) = IndexFile::encode(packs.clone(), &keys);
            proptest::prop_assert_eq!(IndexFile::decode(&bytes, &keys).unwrap().packs, packs);
        }
    }

    #[test]
    fn round_trip() {
        let keys = Keys::derive(&[4; 32]);
        let e = BlobEntry {
            kind: BlobKind::Data,
            flags: 1,
            id: [5; 32],
            offset: 0,
            length: 10,
            raw_len: 20,
        };
        let packs = vec![IndexPack {
            id: PackId([6; 32]),
            size: 99,
            blobs: vec![e],
        }];
        let (id, bytes) = IndexFile::encode(packs.clone(), &keys);
        assert_eq!(id.0, *blake3::hash(&bytes).as_bytes());
        assert_eq!(IndexFile::decode(&bytes, &keys).unwrap().packs, packs);
        assert!(IndexFile::decode(&bytes, &Keys::derive(&[0; 32])).is_err());
    }
}
