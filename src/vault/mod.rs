//! The vault: a store plus the keys to read it, the loaded index, and the rules for adding to it.
//!
//! Invariants (see docs/architecture.md):
//! - Objects are only ever created, never rewritten; a backup adds packs, then index files, then its point record.
//! - A blob is in the in-memory index only once the pack holding it is durably stored.
//! - Every blob read is decrypted, decompressed and checked against its id before use.

mod admin;
mod blob;
mod index;
mod jobs;
mod keys;
mod lock;
mod points;
mod writer;

pub use admin::actor;
pub use blob::{OpenError, SealedBlob};
pub use index::{Index, Location, PackInfo};
pub use jobs::{Job, JobHandle};
pub use keys::KeyInfo;
pub use lock::{FoundLock, LockGuard, STALE_AFTER};
pub use points::{PointFilter, match_prefix, resolve_point};
pub use writer::{BlobWriter, WriteStats};
pub(crate) use writer::{OpenPack, store_pack};

use crate::chunker::{Chunker, ChunkerParams};
use crate::crypto::Keys;
use crate::format::config::{CONFIG_NAME, FORMAT_NAME, VAULT_VERSION, VaultConfig};
use crate::format::ids::{BlobKind, KeyId, PackId, TreeId};
use crate::format::index::{IndexFile, IndexPack, index_name};
use crate::format::lock::LockKind;
use crate::format::pack::{self, TRAILER_LEN, pack_name};
use crate::format::tree::Tree;
use crate::store::{Store, StoreError};
use rayon::prelude::*;
use std::sync::{Arc, RwLock, RwLockReadGuard};

/// Blobs closer than this in a pack are read with one request (the bytes between are read and discarded).
pub const MERGE_GAP: u64 = 1 << 20;
/// Upper bound of one merged read, so that parallel restores hold little memory.
pub const MAX_READ: u64 = 8 << 20;

/// Errors of vault operations; each message is one line naming what is at fault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("no vault at {0} (create one with 'coffer init')")]
    NoVault(String),
    #[error("a vault already exists at {0}")]
    Exists(String),
    #[error("{0} is not a coffer vault")]
    NotAVault(String),
    #[error("vault format version {found} is newer than this program supports ({supported}); upgrade coffer")]
    TooNew { found: u32, supported: u32 },
    #[error("wrong passphrase: no key of this vault opens with it")]
    WrongPassphrase,
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("damaged {object}: {reason}")]
    Damaged { object: String, reason: String },
    #[error("blob {0} is not in the index (missing data)")]
    MissingBlob(String),
    #[error("{0}")]
    Point(String),
    #[error("{0}")]
    Key(String),
    #[error("{0}")]
    Locked(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl VaultError {
    fn damaged(object: impl Into<String>, reason: impl ToString) -> VaultError {
        VaultError::Damaged {
            object: object.into(),
            reason: reason.to_string(),
        }
    }
}

/// Settings for a new vault.
#[derive(Clone, Debug)]
pub struct InitOptions {
    pub compression: i32,
    pub chunker: ChunkerParams,
    pub pack_size: u32,
    pub kdf: crate::crypto::KdfParams,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            compression: 3,
            chunker: ChunkerParams::DEFAULT,
            pack_size: 32 * 1024 * 1024,
            kdf: crate::crypto::KdfParams::DEFAULT,
        }
    }
}

/// A new vault in memory with a fast key derivation and the given pack size, for tests.
#[cfg(test)]
pub fn test_vault(pack_size: u32) -> (crate::store::MemoryStore, Arc<Vault>) {
    let store = crate::store::MemoryStore::new();
    let opts = InitOptions {
        kdf: crate::crypto::KdfParams::FAST_FOR_TESTS,
        pack_size,
        ..Default::default()
    };
    let vault = Vault::init(Arc::new(store.clone()), b"pw", &opts).expect("init in memory");
    (store, Arc::new(vault))
}

/// An open, unlocked vault. Shared between threads behind an `Arc`.
pub struct Vault {
    store: Arc<dyn Store>,
    config: VaultConfig,
    keys: Keys,
    key_id: KeyId,
    /// Kept to wrap it under new passphrases (`key add`).
    master: [u8; 32],
    chunker: Chunker,
    index: RwLock<Index>,
    /// Names of the index files read into `index`; `None` until the index is first loaded.
    loaded_index: std::sync::Mutex<Option<std::collections::HashSet<String>>>,
    /// The lock this process holds on the vault, if it took one; released when the vault is dropped.
    lock: std::sync::Mutex<Option<LockGuard>>,
}

impl Vault {
    /// Creates a new vault in an empty store, with one key for `passphrase`.
    pub fn init(store: Arc<dyn Store>, passphrase: &[u8], opts: &InitOptions) -> Result<Vault, VaultError> {
        if !store.list("")?.is_empty() {
            return Err(VaultError::Exists(store.describe()));
        }
        let config = VaultConfig {
            format: FORMAT_NAME.to_string(),
            version: VAULT_VERSION,
            id: hex::encode(crate::format::ids::random_bytes::<32>()),
            created: crate::util::now_rfc3339(),
            chunker: opts.chunker,
            compression: opts.compression,
            pack_size: opts.pack_size,
        };
        let master: [u8; 32] = crate::format::ids::random_bytes();
        let key_id = keys::create_key(store.as_ref(), &config, &master, passphrase, opts.kdf)?;
        let json = serde_json::to_vec_pretty(&config).expect("encoding into memory cannot fail");
        store.create(CONFIG_NAME, &json).map_err(|e| match e {
            StoreError::AlreadyExists(_) => VaultError::Exists(store.describe()),
            e => e.into(),
        })?;
        let vault = Vault::assemble(store, config, &master, key_id);
        // A new vault's index is complete: empty.
        *vault.loaded_index.lock().expect("loaded index lock") = Some(Default::default());
        Ok(vault)
    }

    /// Opens a vault: reads its config, finds the key that `passphrase` unlocks, and loads the index.
    pub fn open(store: Arc<dyn Store>, passphrase: &[u8]) -> Result<Vault, VaultError> {
        let vault = Vault::open_unindexed(store, passphrase)?;
        vault.load_index()?;
        Ok(vault)
    }

    /// Opens a vault under a lock of `kind` (waiting up to `wait` for conflicting ones), taken before the index is
    /// read, so the index cannot describe packs a concurrent prune is deleting. The lock is held until the vault is
    /// dropped, and every point saved meanwhile first checks that it still stands.
    pub fn open_locked(
        store: Arc<dyn Store>,
        passphrase: &[u8],
        kind: LockKind,
        command: &str,
        wait: std::time::Duration,
    ) -> Result<Vault, VaultError> {
        let vault = Vault::open_unindexed(store, passphrase)?;
        let guard = vault.lock(kind, command, wait)?;
        *vault.lock.lock().expect("lock slot") = Some(guard);
        vault.load_index()?;
        Ok(vault)
    }

    /// Fails if this vault was opened under a lock that no longer stands (see `LockGuard::check_held`).
    pub fn check_lock(&self) -> Result<(), VaultError> {
        match &*self.lock.lock().expect("lock slot") {
            Some(guard) => guard.check_held(),
            None => Ok(()),
        }
    }

    /// Opens a vault without reading its index, for commands that only read point records or management objects
    /// (`list`, `jobs`, settings, keys). `load_index` can still be called later.
    pub fn open_unindexed(store: Arc<dyn Store>, passphrase: &[u8]) -> Result<Vault, VaultError> {
        let config = read_config(store.as_ref())?;
        let (key_id, master) = keys::unlock(store.as_ref(), &config, passphrase)?;
        Ok(Vault::assemble(store, config, &master, key_id))
    }

    fn assemble(store: Arc<dyn Store>, config: VaultConfig, master: &[u8; 32], key_id: KeyId) -> Vault {
        let keys = Keys::derive(master);
        let chunker = Chunker::new(config.chunker, keys.gear_seed);
        Vault {
            store,
            config,
            keys,
            key_id,
            master: *master,
            chunker,
            index: RwLock::new(Index::new()),
            loaded_index: std::sync::Mutex::new(None),
            lock: std::sync::Mutex::new(None),
        }
    }

    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    pub fn store_arc(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    /// The key this vault was unlocked with.
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    pub fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().expect("index lock poisoned")
    }

    /// Adds packs to the in-memory index (after they are durably stored).
    pub fn add_to_index(&self, packs: &[IndexPack]) {
        let mut index = self.index.write().expect("index lock poisoned");
        packs.iter().for_each(|p| index.add_pack(p));
    }

    /// Reads every index file not read yet (in parallel) into memory. Called again after points are listed, it
    /// picks up the index files of points saved since the vault was opened.
    pub fn load_index(&self) -> Result<(), VaultError> {
        let names: Vec<String> = {
            let loaded = self.loaded_index.lock().expect("loaded index lock");
            let listed = self.store.list("index/")?;
            let seen = |n: &String| loaded.as_ref().is_some_and(|l| l.contains(n));
            listed.into_iter().map(|o| o.name).filter(|n| !seen(n)).collect()
        };
        let files = self.read_index_named(&names)?;
        let mut index = self.index.write().expect("index lock poisoned");
        for (_, file) in &files {
            file.packs.iter().for_each(|p| index.add_pack(p));
        }
        self.loaded_index
            .lock()
            .expect("loaded index lock")
            .get_or_insert_default()
            .extend(names);
        Ok(())
    }

    /// Reloads index files only if the index was loaded before (commands that never need it do not pay for it).
    pub(crate) fn refresh_index(&self) -> Result<(), VaultError> {
        if self.loaded_index.lock().expect("loaded index lock").is_none() {
            return Ok(());
        }
        self.load_index()
    }

    /// Every index file with its object name, decoded (in parallel).
    pub fn read_index_files(&self) -> Result<Vec<(String, IndexFile)>, VaultError> {
        let names: Vec<String> = self.store.list("index/")?.into_iter().map(|o| o.name).collect();
        self.read_index_named(&names)
    }

    fn read_index_named(&self, names: &[String]) -> Result<Vec<(String, IndexFile)>, VaultError> {
        names
            .par_iter()
            .map(|name| {
                let bytes = self.store.read(name, None)?;
                let file = IndexFile::decode(&bytes, &self.keys).map_err(|e| VaultError::damaged(name, e))?;
                Ok((name.clone(), file))
            })
            .collect()
    }

    /// Refused if the vault was opened under a lock that no longer stands: a prune may have deleted packs meanwhile,
    /// and an index file listing them would make later backups reuse missing data.
    pub fn write_index(&self, packs: Vec<IndexPack>) -> Result<Option<String>, VaultError> {
        if packs.is_empty() {
            return Ok(None);
        }
        self.check_lock()?;
        let (id, bytes) = IndexFile::encode(packs, &self.keys);
        let name = index_name(&id);
        match self.store.create(&name, &bytes) {
            Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(Some(name)),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads the headers of packs that no index file lists (left by an interrupted backup), adds them to the index
    /// and writes an index file for them, so their blobs are reused instead of stored again. Returns how many.
    pub fn index_orphan_packs(&self) -> Result<usize, VaultError> {
        let listed = self.store.list("data/")?;
        let orphans: Vec<_> = {
            let index = self.index();
            listed
                .into_iter()
                .filter_map(|o| pack_id_of(&o.name).map(|id| (id, o.size)))
                .filter(|(id, _)| !index.has_pack(id))
                .collect()
        };
        let packs: Vec<IndexPack> = orphans
            .par_iter()
            .filter_map(|&(id, size)| match self.read_pack_header(&id, size) {
                Ok(blobs) => Some(IndexPack { id, size, blobs }),
                Err(e) => {
                    log::warn!("ignoring unreadable unindexed pack {}: {e}", pack_name(&id));
                    None
                }
            })
            .collect();
        let n = packs.len();
        self.add_to_index(&packs);
        self.write_index(packs)?;
        Ok(n)
    }

    /// The blob list of a pack, read from its own header.
    pub fn read_pack_header(&self, id: &PackId, size: u64) -> Result<Vec<pack::BlobEntry>, VaultError> {
        let name = pack_name(id);
        if size < TRAILER_LEN as u64 {
            return Err(VaultError::damaged(&name, "too short to be a pack"));
        }
        let trailer = self.store.read(&name, Some(size - TRAILER_LEN as u64..size))?;
        let len = pack::header_len(&trailer).map_err(|e| VaultError::damaged(&name, e))? as u64;
        let end = size - TRAILER_LEN as u64;
        if len > end {
            return Err(VaultError::damaged(&name, "header length exceeds pack size"));
        }
        let sealed = self.store.read(&name, Some(end - len..end))?;
        pack::decode_header(&self.keys, &sealed).map_err(|e| VaultError::damaged(&name, e))
    }

    /// Reads, opens and verifies one blob.
    pub fn read_blob(&self, kind: BlobKind, id: &[u8; 32]) -> Result<Vec<u8>, VaultError> {
        let loc = self
            .index()
            .get(id)
            .ok_or_else(|| VaultError::MissingBlob(hex::encode(id)))?;
        let pack = self.index().pack(loc.pack);
        let name = pack_name(&pack.id);
        let range = loc.offset as u64..loc.offset as u64 + loc.length as u64;
        let sealed = self.store.read(&name, Some(range))?;
        self.open_blob(kind, id, &loc, &sealed, &name)
    }

    /// Opens sealed bytes read from `pack` at `loc`.
    pub fn open_blob(
        &self,
        kind: BlobKind,
        id: &[u8; 32],
        loc: &Location,
        sealed: &[u8],
        pack: &str,
    ) -> Result<Vec<u8>, VaultError> {
        blob::open(&self.keys, kind, id, loc.flags, loc.raw_len, sealed)
            .map_err(|e| VaultError::damaged(pack, format!("blob {}: {e}", &hex::encode(id)[..8])))
    }

    /// Reads blobs of pack number `pack` with as few ranged reads as possible: `blobs` must be sorted by offset, and
    /// neighbours less than `MERGE_GAP` apart share one read (the bytes between are read and dropped). Each blob is
    /// opened and verified, then handed to `each` with its index in `blobs`; a failed read or a damaged blob is an
    /// `Err` for that blob only. Returns the number of reads issued.
    pub fn read_blobs(
        &self,
        pack: u32,
        kind: BlobKind,
        blobs: &[([u8; 32], Location)],
        each: &mut dyn FnMut(usize, Result<Vec<u8>, VaultError>),
    ) -> u64 {
        let name = pack_name(&self.index().pack(pack).id);
        let end_of = |l: &Location| l.offset as u64 + l.length as u64;
        let (mut i, mut reads) = (0, 0);
        while i < blobs.len() {
            let mut j = i + 1;
            while j < blobs.len()
                && blobs[j].1.offset as u64 <= end_of(&blobs[j - 1].1) + MERGE_GAP
                && end_of(&blobs[j].1) - blobs[i].1.offset as u64 <= MAX_READ
            {
                j += 1;
            }
            let start = blobs[i].1.offset as u64;
            reads += 1;
            match self.store.read(&name, Some(start..end_of(&blobs[j - 1].1))) {
                Ok(range) => {
                    for (k, (id, loc)) in blobs.iter().enumerate().take(j).skip(i) {
                        let at = (loc.offset as u64 - start) as usize;
                        let sealed = range.get(at..at + loc.length as usize).unwrap_or_default();
                        each(k, self.open_blob(kind, id, loc, sealed, &name));
                    }
                }
                Err(e) => {
                    let msg = e.to_string();
                    (i..j).for_each(|k| each(k, Err(VaultError::damaged(&name, &msg))));
                }
            }
            i = j;
        }
        reads
    }

    pub fn read_tree(&self, id: &TreeId) -> Result<Tree, VaultError> {
        let bytes = self.read_blob(BlobKind::Tree, &id.0)?;
        Tree::decode(&bytes).map_err(|e| VaultError::damaged(format!("tree {}", id.short()), e))
    }

    /// Seals one blob with this vault's keys and compression level.
    pub fn seal_blob(&self, kind: BlobKind, id: [u8; 32], plain: &[u8]) -> Result<SealedBlob, VaultError> {
        blob::seal(&self.keys, kind, id, plain, self.config.compression)
    }
}

/// Reads and checks the `config` object.
pub fn read_config(store: &dyn Store) -> Result<VaultConfig, VaultError> {
    let bytes = store.read(CONFIG_NAME, None).map_err(|e| match e {
        StoreError::NotFound(_) => VaultError::NoVault(store.describe()),
        e => e.into(),
    })?;
    let config: VaultConfig = serde_json::from_slice(&bytes).map_err(|_| VaultError::NotAVault(store.describe()))?;
    if config.format != FORMAT_NAME {
        return Err(VaultError::NotAVault(store.describe()));
    }
    if config.version > VAULT_VERSION {
        return Err(VaultError::TooNew {
            found: config.version,
            supported: VAULT_VERSION,
        });
    }
    Ok(config)
}

/// The pack id in a `data/xx/<id>` object name.
pub fn pack_id_of(name: &str) -> Option<PackId> {
    let hex = name.strip_prefix("data/")?.split('/').nth(1)?;
    PackId::from_hex(hex).ok()
}
