//! The in-memory index: blob id -> pack and position, merged from every index file.

use crate::format::ids::{BlobKind, PackId};
use crate::format::index::IndexPack;
use crate::format::pack::BlobEntry;
use std::collections::HashMap;

/// Where a blob is stored. `pack` indexes `Index::packs`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: u32,
    pub kind: BlobKind,
    pub flags: u8,
    pub offset: u32,
    pub length: u32,
    pub raw_len: u32,
}

/// A pack known to the index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    pub id: PackId,
    pub size: u64,
}

/// Hashes a blob id by its first 8 bytes. Ids are keyed BLAKE3 MACs, uniformly distributed and not choosable without
/// the vault's key, so SipHash's protection buys nothing; it made up about 4% of opening a vault (profiled `list`).
#[derive(Clone, Copy, Default)]
pub struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// See [`IdHash`]. XORs together the first 8 bytes of each write: hashing a `[u8; 32]` writes its length, then
/// its bytes, so the result is the id's first 8 bytes with a constant mixed in: still uniform.
#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut first = [0u8; 8];
        let n = bytes.len().min(8);
        first[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(first);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// All blobs of the vault that index files list. A blob listed in several packs keeps its first location.
#[derive(Default)]
pub struct Index {
    blobs: HashMap<[u8; 32], Location, IdHash>,
    packs: Vec<PackInfo>,
    pack_numbers: HashMap<PackId, u32>,
}

impl Index {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds every blob of one pack.
    pub fn add_pack(&mut self, pack: &IndexPack) {
        let n = match self.pack_numbers.get(&pack.id) {
            Some(&n) => n,
            None => {
                let n = self.packs.len() as u32;
                self.packs.push(PackInfo {
                    id: pack.id,
                    size: pack.size,
                });
                self.pack_numbers.insert(pack.id, n);
                n
            }
        };
        for b in &pack.blobs {
            self.blobs.entry(b.id).or_insert(Location {
                pack: n,
                kind: b.kind,
                flags: b.flags,
                offset: b.offset,
                length: b.length,
                raw_len: b.raw_len,
            });
        }
    }

    pub fn get(&self, id: &[u8; 32]) -> Option<Location> {
        self.blobs.get(id).copied()
    }

    pub fn contains(&self, id: &[u8; 32]) -> bool {
        self.blobs.contains_key(id)
    }

    pub fn pack(&self, n: u32) -> PackInfo {
        self.packs[n as usize]
    }

    pub fn has_pack(&self, id: &PackId) -> bool {
        self.pack_numbers.contains_key(id)
    }

    pub fn packs(&self) -> &[PackInfo] {
        &self.packs
    }

    /// Every blob grouped by the pack it is located in; element `n` belongs to pack number `n`.
    pub fn by_pack(&self) -> Vec<Vec<([u8; 32], Location)>> {
        let mut groups = vec![Vec::new(); self.packs.len()];
        for (id, loc) in &self.blobs {
            groups[loc.pack as usize].push((*id, *loc));
        }
        groups
    }

    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// The index entry of a located blob, as stored in index files and pack headers.
    pub fn entry(id: [u8; 32], loc: &Location) -> BlobEntry {
        BlobEntry {
            kind: loc.kind,
            flags: loc.flags,
            id,
            offset: loc.offset,
            length: loc.length,
            raw_len: loc.raw_len,
        }
    }
}
