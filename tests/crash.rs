//! Crash injection: a store that stops accepting writes after N objects, for every N a backup needs. After each
//! simulated crash the vault must check healthy, show no point for the crashed run, and the next backup must
//! succeed and restore identically.

mod common;

use common::noise;

use coffer::backup::{self, BackupOptions, progress::Progress};
use coffer::crypto::KdfParams;
use coffer::maintain::check::check;
use coffer::store::{MemoryStore, ObjectInfo, Store, StoreError};
use coffer::vault::{InitOptions, Vault};
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Passes everything through to a shared memory store until `budget` creates have happened, then fails every
/// create, as if the process had died at that moment.
struct CrashAfter {
    inner: MemoryStore,
    budget: AtomicUsize,
}

impl Store for CrashAfter {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix)
    }
    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.inner.read(name, range)
    }
    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        let left = self.budget.load(Ordering::SeqCst);
        if left == 0
            || self
                .budget
                .compare_exchange(left, left - 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return Err(StoreError::Io {
                name: name.into(),
                source: std::io::Error::other("simulated crash"),
            });
        }
        self.inner.create(name, data)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }
    fn describe(&self) -> String {
        "crash-after".into()
    }
}

fn opts(src: &Path) -> BackupOptions {
    BackupOptions {
        read_threads: 2,
        ..BackupOptions::files(vec![src.to_path_buf()], "h")
    }
}

fn copy_of(base: &MemoryStore) -> MemoryStore {
    let copy = MemoryStore::new();
    for o in base.list("").unwrap() {
        copy.create(&o.name, &base.read(&o.name, None).unwrap()).unwrap();
    }
    copy
}

#[test]
fn a_crash_at_every_write_leaves_a_healthy_vault() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("a/b")).unwrap();
    for i in 0..24u64 {
        let dir = if i % 2 == 0 { "a" } else { "a/b" };
        std::fs::write(
            src.join(dir).join(format!("f{i}")),
            noise((i as usize * 40_009) % 400_000, i + 1),
        )
        .unwrap();
    }
    let base = MemoryStore::new();
    let kdf = KdfParams::FAST_FOR_TESTS;
    let init = InitOptions {
        kdf,
        pack_size: 1 << 20,
        ..Default::default()
    };
    Vault::init(Arc::new(base.clone()), b"pw", &init).unwrap();
    let mut n = 0;
    loop {
        let memory = copy_of(&base);
        let store = Arc::new(CrashAfter {
            inner: memory.clone(),
            budget: AtomicUsize::new(n),
        });
        let vault = Arc::new(Vault::open(store, b"pw").unwrap());
        let crashed = backup::run(vault, &opts(&src), &Progress::default()).is_err();
        let after = Arc::new(Vault::open(Arc::new(memory.clone()), b"pw").unwrap());
        let report = check(after.clone(), true).unwrap();
        assert!(report.healthy(), "after a crash at write {n}: {report:?}");
        if !crashed {
            break;
        }
        assert!(
            after.point_ids().unwrap().is_empty(),
            "a crashed backup made no point (crash at write {n})"
        );
        let rec = backup::run(after.clone(), &opts(&src), &Progress::default()).unwrap();
        assert!(check(after.clone(), true).unwrap().healthy());
        assert_eq!(after.point_ids().unwrap(), vec![rec.id]);
        n += 1;
        assert!(n < 100, "the backup never completed");
    }
    assert!(
        n >= 6,
        "the backup needed several writes ({n}), so crashes were injected between them"
    );
}
