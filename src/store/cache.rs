//! A local, size-capped cache of object reads, for vaults on object storage: an incremental backup or a mount
//! then does not download again the index files and trees it read before.
//!
//! Objects never change once created, so a cached read is valid for as long as the object exists; prune deletes
//! objects only after nothing lists them, so a cached copy of a deleted object is never asked for. Cached are whole
//! reads of `index/` files and ranged reads up to `SMALL_READ` bytes (trees, and small chunks); everything else
//! goes straight to the store. Each cache file starts with the BLAKE3 hash of the bytes it holds; a copy that does not
//! match (a damaged disk, a half-written file) is dropped and read again from the store. Deleting the directory is
//! always safe. When the cache grows over its cap, the least recently used entries are removed.

use super::{ObjectInfo, Store, StoreError};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

/// Ranged reads up to this size are cached (trees and small chunks; data chunks average 1 MiB).
pub const SMALL_READ: u64 = 256 * 1024;

/// `inner` with reads cached in `dir`.
pub struct CachedStore<S> {
    inner: S,
    dir: PathBuf,
    cap: u64,
    /// Cached file name -> (size, last use), and the total size.
    entries: Mutex<(Entries, u64)>,
}

type Entries = BTreeMap<String, (u64, SystemTime)>;

impl<S: Store> CachedStore<S> {
    /// A cache in `dir` (created if missing) holding at most `cap` bytes; entries from earlier runs are kept.
    pub fn new(inner: S, dir: PathBuf, cap: u64) -> std::io::Result<Self> {
        fs::create_dir_all(&dir)?;
        let mut entries = BTreeMap::new();
        let mut total = 0;
        for e in fs::read_dir(&dir)? {
            let e = e?;
            let md = e.metadata()?;
            if md.is_file() {
                total += md.len();
                let used = md
                    .accessed()
                    .or_else(|_| md.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                entries.insert(e.file_name().to_string_lossy().into_owned(), (md.len(), used));
            }
        }
        let cache = CachedStore {
            inner,
            dir,
            cap,
            entries: Mutex::new((entries, total)),
        };
        cache.evict();
        Ok(cache)
    }

    /// Bytes held now.
    pub fn size(&self) -> u64 {
        self.entries.lock().expect("cache lock").1
    }

    /// The cache file for a read: the object name with `/` as `~`, and the range.
    fn key(name: &str, range: &Option<Range<u64>>) -> Option<String> {
        let flat = name.replace('/', "~");
        match range {
            None if name.starts_with("index/") => Some(flat),
            Some(r) if r.start <= r.end && r.end - r.start <= SMALL_READ => {
                Some(format!("{flat}@{}-{}", r.start, r.end))
            }
            _ => None,
        }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// The cached bytes, if present and matching their hash.
    fn lookup(&self, key: &str) -> Option<Vec<u8>> {
        let mut file = fs::read(self.path(key)).ok()?;
        if file.len() < 32 || blake3::hash(&file[32..]).as_bytes() != &file[..32] {
            let _ = fs::remove_file(self.path(key));
            return None;
        }
        if let Some(e) = self.entries.lock().expect("cache lock").0.get_mut(key) {
            e.1 = SystemTime::now();
        }
        Some(file.split_off(32))
    }

    /// Stores a copy (through a temporary file, so a reader never sees part of one); failures only cost the copy.
    fn remember(&self, key: &str, bytes: &[u8]) {
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        let written = fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(blake3::hash(bytes).as_bytes())
                    .and_then(|_| f.write_all(bytes))
            })
            .and_then(|_| fs::rename(&tmp, self.path(key)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        let mut guard = self.entries.lock().expect("cache lock");
        let (entries, total) = &mut *guard;
        let size = bytes.len() as u64 + 32;
        if let Some((old, _)) = entries.insert(key.to_string(), (size, SystemTime::now())) {
            *total -= old;
        }
        *total += size;
        drop(guard);
        self.evict();
    }

    /// Removes least recently used entries until the cache fits its cap.
    fn evict(&self) {
        let mut guard = self.entries.lock().expect("cache lock");
        let (entries, total) = &mut *guard;
        if *total <= self.cap {
            return;
        }
        let mut by_age: Vec<(SystemTime, String, u64)> = entries
            .iter()
            .map(|(k, (size, used))| (*used, k.clone(), *size))
            .collect();
        by_age.sort();
        for (_, key, size) in by_age {
            if *total <= self.cap {
                break;
            }
            let _ = fs::remove_file(self.dir.join(&key));
            entries.remove(&key);
            *total -= size;
        }
    }

    /// Deletes every cached copy.
    pub fn clear(&self) {
        let mut guard = self.entries.lock().expect("cache lock");
        for key in guard.0.keys() {
            let _ = fs::remove_file(self.dir.join(key));
        }
        *guard = (BTreeMap::new(), 0);
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl<S: Store> Store for CachedStore<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix)
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        let Some(key) = Self::key(name, &range) else {
            return self.inner.read(name, range);
        };
        if let Some(bytes) = self.lookup(&key) {
            return Ok(bytes);
        }
        let bytes = self.inner.read(name, range)?;
        self.remember(&key, &bytes);
        Ok(bytes)
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.inner.create(name, data)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }

    fn parallel_writes(&self) -> usize {
        self.inner.parallel_writes()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests;
