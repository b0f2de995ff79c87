//! Pack files: many sealed blobs followed by a sealed header that lists them.
//!
//! ```text
//! blob 0 | blob 1 | ... | sealed header | header length (u32 LE) | magic "CFP1"
//! ```
//! The header is at the end so a pack can be written as a stream while blobs are produced; the index normally makes
//! reading it unnecessary, but it lets `check` and recovery rebuild the index from the packs alone.

use crate::crypto::{CryptoError, Keys};
use crate::format::ids::BlobKind;
use serde::{Deserialize, Serialize};

/// Last four bytes of every pack.
pub const PACK_MAGIC: &[u8; 4] = b"CFP1";
/// Length of the fixed trailer: header length and magic.
pub const TRAILER_LEN: usize = 8;
/// Version of the pack header encoding.
pub const PACK_VERSION: u32 = 1;
/// Flag bit: the blob's plaintext is zstd-compressed.
pub const FLAG_ZSTD: u8 = 1;
const HEADER_AAD: &[u8] = b"coffer pack header";

/// Where one blob lives inside its pack, and how to open it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobEntry {
    pub kind: BlobKind,
    /// `FLAG_ZSTD` or 0; bound into the blob's associated data.
    pub flags: u8,
    pub id: [u8; 32],
    /// Byte offset of the sealed blob within the pack.
    pub offset: u32,
    /// Length of the sealed blob (nonce, ciphertext, tag).
    pub length: u32,
    /// Length of the blob's plaintext after decompression.
    pub raw_len: u32,
}

#[derive(Serialize, Deserialize)]
struct PackHeader {
    version: u32,
    blobs: Vec<BlobEntry>,
}

/// Errors reading a pack's header.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    #[error("pack is too short or lacks the pack trailer")]
    Trailer,
    #[error("pack header cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("pack header is not decodable: {0}")]
    Decode(#[from] postcard::Error),
    #[error("pack header version {0} is newer than this program understands")]
    Version(u32),
}

/// The bytes to append after the blobs: sealed header and trailer.
pub fn encode_header(keys: &Keys, blobs: &[BlobEntry]) -> Vec<u8> {
    let header = PackHeader {
        version: PACK_VERSION,
        blobs: blobs.to_vec(),
    };
    let plain = postcard::to_stdvec(&header).expect("encoding into memory cannot fail");
    let mut out = keys.seal(&plain, HEADER_AAD);
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(PACK_MAGIC);
    out
}

/// Parses the trailer (the last `TRAILER_LEN` bytes of a pack) into the sealed header's length.
pub fn header_len(trailer: &[u8]) -> Result<u32, PackError> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != PACK_MAGIC {
        return Err(PackError::Trailer);
    }
    Ok(u32::from_le_bytes(trailer[..4].try_into().expect("4 bytes")))
}

/// Opens a sealed header (without its trailer).
pub fn decode_header(keys: &Keys, sealed: &[u8]) -> Result<Vec<BlobEntry>, PackError> {
    let plain = keys.open(sealed, HEADER_AAD)?;
    let header: PackHeader = postcard::from_bytes(&plain)?;
    if header.version > PACK_VERSION {
        return Err(PackError::Version(header.version));
    }
    Ok(header.blobs)
}

/// Object name of a pack: `data/<first two hex digits>/<id>`; the fan-out keeps directories small on local disks.
pub fn pack_name(id: &crate::format::ids::PackId) -> String {
    let hex = id.to_hex();
    format!("data/{}/{}", &hex[..2], hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let keys = Keys::derive(&[3; 32]);
        let blobs = vec![
            BlobEntry {
                kind: BlobKind::Data,
                flags: FLAG_ZSTD,
                id: [1; 32],
                offset: 0,
                length: 100,
                raw_len: 300,
            },
            BlobEntry {
                kind: BlobKind::Tree,
                flags: 0,
                id: [2; 32],
                offset: 100,
                length: 50,
                raw_len: 22,
            },
        ];
        let bytes = encode_header(&keys, &blobs);
        let n = header_len(&bytes[bytes.len() - TRAILER_LEN..]).unwrap() as usize;
        assert_eq!(n, bytes.len() - TRAILER_LEN);
        assert_eq!(decode_header(&keys, &bytes[..n]).unwrap(), blobs);
        assert!(matches!(header_len(b"12345678"), Err(PackError::Trailer)));
        let mut bad = bytes[..n].to_vec();
        bad[20] ^= 0x40;
        assert!(matches!(decode_header(&keys, &bad), Err(PackError::Crypto(_))));
    }
}
