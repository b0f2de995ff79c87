use super::*;
use crate::store::MemoryStore;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

/// Counts the reads that reach the store.
struct Counting {
    inner: MemoryStore,
    reads: AtomicU64,
}

impl Store for Counting {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix)
    }
    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.reads.fetch_add(1, SeqCst);
        self.inner.read(name, range)
    }
    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.inner.create(name, data)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

fn cached(cap: u64) -> (tempfile::TempDir, CachedStore<Counting>) {
    let dir = tempfile::tempdir().unwrap();
    let inner = Counting {
        inner: MemoryStore::new(),
        reads: AtomicU64::new(0),
    };
    let c = CachedStore::new(inner, dir.path().join("cache"), cap).unwrap();
    (dir, c)
}

#[test]
fn the_cache_store_conforms() {
    let (_dir, c) = cached(1 << 30);
    crate::store::conformance(&c);
}

#[test]
fn index_files_and_small_ranges_are_read_once() {
    let (_dir, c) = cached(1 << 30);
    c.create("index/aa", b"index bytes").unwrap();
    let big: Vec<u8> = (0..1_000_000u32).map(|i| i as u8).collect();
    c.create("data/00/pack", &big).unwrap();
    c.create("points/p", b"record").unwrap();
    for _ in 0..3 {
        assert_eq!(c.read("index/aa", None).unwrap(), b"index bytes");
        assert_eq!(c.read("data/00/pack", Some(10..1000)).unwrap(), &big[10..1000]);
    }
    assert_eq!(c.inner.reads.load(SeqCst), 2, "one store read each");
    c.read("data/00/pack", Some(0..SMALL_READ + 1)).unwrap();
    c.read("data/00/pack", Some(0..SMALL_READ + 1)).unwrap();
    c.read("points/p", None).unwrap();
    c.read("points/p", None).unwrap();
    assert_eq!(
        c.inner.reads.load(SeqCst),
        6,
        "large ranges and other objects are not cached"
    );
    // Entries survive into the next process.
    let again = CachedStore::new(
        Counting {
            inner: c.inner.inner.clone(),
            reads: AtomicU64::new(0),
        },
        c.dir().to_path_buf(),
        1 << 30,
    )
    .unwrap();
    assert_eq!(again.read("index/aa", None).unwrap(), b"index bytes");
    assert_eq!(again.inner.reads.load(SeqCst), 0);
}

#[test]
fn a_damaged_copy_is_read_again_from_the_store() {
    let (_dir, c) = cached(1 << 30);
    c.create("index/aa", b"index bytes").unwrap();
    c.read("index/aa", None).unwrap();
    let file = c.dir().join("index~aa");
    let mut bytes = std::fs::read(&file).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(c.read("index/aa", None).unwrap(), b"index bytes");
    assert_eq!(c.inner.reads.load(SeqCst), 2);
}

#[test]
fn the_least_recently_used_entries_go_when_over_the_cap() {
    let (_dir, c) = cached(3 * (1000 + 32));
    let blob = vec![7u8; 1000];
    for i in 0..5 {
        c.create(&format!("index/{i}"), &blob).unwrap();
    }
    for i in 0..5 {
        c.read(&format!("index/{i}"), None).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(c.size() <= 3 * 1032, "{}", c.size());
    assert_eq!(std::fs::read_dir(c.dir()).unwrap().count(), 3);
    let before = c.inner.reads.load(SeqCst);
    c.read("index/4", None).unwrap();
    assert_eq!(c.inner.reads.load(SeqCst), before, "the newest entry stayed");
    c.read("index/0", None).unwrap();
    assert_eq!(c.inner.reads.load(SeqCst), before + 1, "the oldest entry went");
    c.clear();
    assert_eq!((c.size(), std::fs::read_dir(c.dir()).unwrap().count()), (0, 0));
}
