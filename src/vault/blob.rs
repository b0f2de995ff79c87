//! Sealing and opening single blobs: compression choice, encryption bound to the id, verification both ways.

use super::VaultError;
use crate::crypto::{Keys, blob_aad};
use crate::format::ids::BlobKind;
use crate::format::pack::FLAG_ZSTD;
use std::cell::RefCell;

thread_local! {
    /// One zstd compression context per thread and level, reused for every blob: creating one costs more than
    /// compressing a small file (measured: 3% of a first backup's CPU went to `ZSTD_createCCtx` and its memset).
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
    /// One zstd decompression context per thread, likewise.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

fn compress(plain: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with_borrow_mut(|slot| {
        if slot.as_ref().is_none_or(|(l, _)| *l != level) {
            *slot = Some((level, zstd::bulk::Compressor::new(level)?));
        }
        let (_, c) = slot.as_mut().expect("set just above");
        c.compress(plain)
    })
}

fn decompress(payload: &[u8], raw_len: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with_borrow_mut(|slot| {
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut().expect("set just above").decompress(payload, raw_len)
    })
}

/// A blob ready to append to a pack.
pub struct SealedBlob {
    pub kind: BlobKind,
    pub id: [u8; 32],
    pub flags: u8,
    pub raw_len: u32,
    pub bytes: Vec<u8>,
}

/// Compresses (keeping the raw bytes when zstd does not save at least 1/32 of them), encrypts, and decrypts once
/// more to prove the stored bytes open to what was meant: a fault in memory or in the cipher is caught before the
/// blob counts as stored.
pub fn seal(keys: &Keys, kind: BlobKind, id: [u8; 32], plain: &[u8], level: i32) -> Result<SealedBlob, VaultError> {
    let compressed = compress(plain, level)
        .ok()
        .filter(|c| c.len() < plain.len() - plain.len() / 32);
    let (flags, payload) = match &compressed {
        Some(c) => (FLAG_ZSTD, c.as_slice()),
        None => (0, plain),
    };
    let aad = blob_aad(kind, flags, &id);
    let bytes = keys.seal(payload, &aad);
    if keys.open(&bytes, &aad).ok().as_deref() != Some(payload) {
        return Err(VaultError::Internal(format!(
            "blob {} did not verify after encryption",
            hex::encode(id)
        )));
    }
    Ok(SealedBlob {
        kind,
        id,
        flags,
        raw_len: plain.len() as u32,
        bytes,
    })
}

/// Why a stored blob could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("authentication failed (damaged or altered)")]
    Auth,
    #[error("decompression failed")]
    Decompress,
    #[error("content does not match its id")]
    Mismatch,
}

/// Decrypts, decompresses and checks the id of a stored blob.
pub fn open(
    keys: &Keys,
    kind: BlobKind,
    id: &[u8; 32],
    flags: u8,
    raw_len: u32,
    sealed: &[u8],
) -> Result<Vec<u8>, OpenError> {
    let payload = keys
        .open(sealed, &blob_aad(kind, flags, id))
        .map_err(|_| OpenError::Auth)?;
    let plain = if flags & FLAG_ZSTD != 0 {
        decompress(&payload, raw_len as usize).map_err(|_| OpenError::Decompress)?
    } else {
        payload
    };
    let actual = match kind {
        BlobKind::Data => keys.chunk_id(&plain).0,
        BlobKind::Tree => keys.tree_id(&plain).0,
    };
    if &actual != id || plain.len() != raw_len as usize {
        return Err(OpenError::Mismatch);
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_and_random_round_trip() {
        let keys = Keys::derive(&[1; 32]);
        let text = b"abcabcabc".repeat(1000);
        let random: Vec<u8> = (0..5000).map(|_| crate::format::ids::random_bytes::<1>()[0]).collect();
        for (plain, want_flag) in [(&text, FLAG_ZSTD), (&random, 0)] {
            let id = keys.chunk_id(plain).0;
            let b = seal(&keys, BlobKind::Data, id, plain, 3).unwrap();
            assert_eq!(b.flags, want_flag);
            assert_eq!(
                &open(&keys, BlobKind::Data, &id, b.flags, b.raw_len, &b.bytes).unwrap(),
                plain
            );
            assert!(matches!(
                open(&keys, BlobKind::Tree, &id, b.flags, b.raw_len, &b.bytes),
                Err(OpenError::Auth)
            ));
            assert!(open(&keys, BlobKind::Data, &id, b.flags ^ 1, b.raw_len, &b.bytes).is_err());
        }
    }

    #[test]
    fn wrong_id_is_a_mismatch_even_if_sealed_under_it() {
        let keys = Keys::derive(&[1; 32]);
        let b = seal(&keys, BlobKind::Data, [7; 32], b"data", 3).unwrap();
        assert!(matches!(
            open(&keys, BlobKind::Data, &[7; 32], b.flags, 4, &b.bytes),
            Err(OpenError::Mismatch)
        ));
    }
}
