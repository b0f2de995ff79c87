//! The chunk cache of a mount: decoded chunks, bounded in bytes, shared by all request threads.
//!
//! `quick_cache` is sharded (no global lock around reads) and lets concurrent requests for the same chunk wait for
//! the one decoding it instead of decoding it twice, which is what makes read-ahead cheap.

use crate::format::ids::{BlobKind, ChunkId};
use crate::vault::{Vault, VaultError};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::sync::Arc;

#[derive(Clone)]
struct ByLength;

impl Weighter<ChunkId, Arc<Vec<u8>>> for ByLength {
    fn weight(&self, _key: &ChunkId, val: &Arc<Vec<u8>>) -> u64 {
        val.len() as u64 + 64
    }
}

/// Decoded chunks by id, at most `budget` bytes.
pub struct ChunkCache {
    cache: Cache<ChunkId, Arc<Vec<u8>>, ByLength>,
}

impl ChunkCache {
    pub fn new(budget: u64) -> ChunkCache {
        let items = (budget / (512 * 1024)).max(16) as usize;
        ChunkCache {
            cache: Cache::with_weighter(items, budget, ByLength),
        }
    }

    /// The chunk's plaintext, read, verified and inserted on a miss.
    pub fn get(&self, vault: &Vault, id: &ChunkId) -> Result<Arc<Vec<u8>>, VaultError> {
        self.cache
            .get_or_insert_with(id, || vault.read_blob(BlobKind::Data, &id.0).map(Arc::new))
    }

    /// Puts a chunk read by read-ahead into the cache.
    pub fn insert(&self, id: ChunkId, data: Arc<Vec<u8>>) {
        self.cache.insert(id, data);
    }

    /// True if the chunk is cached (used to skip needless read-ahead).
    pub fn contains(&self, id: &ChunkId) -> bool {
        self.cache.contains_key(id)
    }

    /// Bytes held now.
    pub fn weight(&self) -> u64 {
        self.cache.weight()
    }
}
