//! Storage: the one small byte-oriented trait every vault backend implements.
//!
//! The trait is shaped for object stores (S3, Azure Blob): flat names, whole-object atomic creation, ranged reads,
//! listing by prefix. Nothing above it may assume a POSIX file system. The vault only ever adds objects during a
//! backup and never rewrites one; content-addressed names make "create if absent" the only write needed.
//!
//! [`open`] picks the store for a vault location: a directory ([`LocalStore`]) or an `s3://` / `azure://` URL
//! (`CloudStore`, with the default `cloud` feature).

mod cache;
#[cfg(test)]
pub mod faulty;
mod local;
mod memory;
#[cfg(feature = "cloud")]
pub mod object;
mod retry;

pub use cache::{CachedStore, SMALL_READ};
pub use local::LocalStore;
pub use memory::MemoryStore;
#[cfg(feature = "cloud")]
pub use object::CloudStore;
pub use retry::{RetryPolicy, Retrying};

use std::ffi::OsStr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

/// One stored object as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// Errors of a store. Every variant names the object so messages can say which file is at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}: no such object in the vault")]
    NotFound(String),
    #[error("{0}: object already exists")]
    AlreadyExists(String),
    #[error("{name}: {source}")]
    Io { name: String, source: std::io::Error },
    #[error("{name}: object is {size} bytes, cannot read {range:?}")]
    OutOfRange { name: String, size: u64, range: Range<u64> },
    #[error("'{0}' is not a valid object name")]
    BadName(String),
    /// A failure that may pass if the request is repeated (timeout, throttling, dropped connection, short read).
    #[error("{name}: {message}")]
    Transient { name: String, message: String },
}

/// Errors of opening a vault location.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("vault URL '{url}': {reason}")]
    BadUrl { url: String, reason: String },
    #[error("{url}: {message}")]
    Config { url: String, message: String },
    #[error("cannot start the threads for object storage I/O: {0}")]
    Runtime(std::io::Error),
}

/// The store of the vault at `location`: `s3://BUCKET/PREFIX` or `azure://CONTAINER/PREFIX` (any `SCHEME://` is
/// taken as a URL, and refused unless it is one of these), else a directory path.
pub fn open(location: &OsStr) -> Result<Arc<dyn Store>, OpenError> {
    match location.to_str().filter(|s| is_url(s)) {
        None => Ok(Arc::new(LocalStore::new(PathBuf::from(location)))),
        Some(url) => open_url(url),
    }
}

/// Whether `s` starts with `SCHEME://` (letters, digits, `+`, `-`, `.`; first a letter).
pub fn is_url(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    })
}

/// An object store, with coffer's own retries (on top of the client's) and a local read cache (see `cache.rs`)
/// in `$COFFER_CACHE_DIR`, else `$XDG_CACHE_HOME/coffer`, else `~/.cache/coffer`, one directory per vault URL,
/// capped at `$COFFER_CACHE_LIMIT` MiB (default 1024; 0 turns the cache off).
#[cfg(feature = "cloud")]
fn open_url(url: &str) -> Result<Arc<dyn Store>, OpenError> {
    let policy = RetryPolicy {
        attempts: 3,
        ..RetryPolicy::DEFAULT
    };
    let store = Retrying::new(CloudStore::open(url)?, policy);
    let limit_mib: u64 = std::env::var("COFFER_CACHE_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let Some(base) = cache_base().filter(|_| limit_mib > 0) else {
        return Ok(Arc::new(store));
    };
    let dir = base.join(&blake3::hash(url.as_bytes()).to_hex()[..16]);
    match CachedStore::new(store, dir.clone(), limit_mib << 20) {
        Ok(cached) => Ok(Arc::new(cached)),
        Err(e) => {
            log::warn!("no local cache ({}: {e}); every read goes to {url}", dir.display());
            Ok(Arc::new(Retrying::new(CloudStore::open(url)?, policy)))
        }
    }
}

/// Where local caches live.
#[cfg(feature = "cloud")]
fn cache_base() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("COFFER_CACHE_DIR")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("coffer")))
        .or_else(|| var("HOME").map(|h| h.join(".cache/coffer")))
}

#[cfg(not(feature = "cloud"))]
fn open_url(url: &str) -> Result<Arc<dyn Store>, OpenError> {
    Err(OpenError::BadUrl {
        url: url.to_string(),
        reason: "this coffer was built without object storage support (cargo feature 'cloud')".into(),
    })
}

/// A flat namespace of immutable byte objects. Names are `/`-separated paths of `[a-z0-9._-]` segments with no empty,
/// `.` or `..` segment. Implementations are used from many threads at once.
pub trait Store: Send + Sync {
    /// Every object whose name starts with `prefix`, with its size, in no particular order. Objects being created
    /// concurrently may or may not appear; a listed object is complete.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// The bytes of `name`, all of them or the given `range`. `NotFound` if absent; `OutOfRange` if the range ends
    /// past the object's end or is inverted (a short read is never returned silently).
    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError>;

    /// Creates `name` holding exactly `data`, only if no object of that name exists (`AlreadyExists` otherwise, and
    /// the existing object is untouched). Atomic: other readers see either no object or all of `data`, never part of
    /// it, also after a crash or a full disk. Durable once `Ok` is returned. Of concurrent creates of one name with
    /// different `data`, at most one succeeds. A store whose requests are retried after a lost answer (object
    /// stores) may return `Ok` when the existing object already holds exactly `data`: its first attempt landed.
    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError>;

    /// Removes `name`; afterwards it is neither read nor listed. Removing an absent object may succeed or give
    /// `NotFound`: S3 answers a DELETE of a missing key with success, and asking first would cost a request per
    /// delete and still race. A caller that must know whether the object existed reads it first.
    fn delete(&self, name: &str) -> Result<(), StoreError>;

    /// A short description for messages, such as the directory path.
    fn describe(&self) -> String;

    /// How many object creations are worth running at once: 1 for a local disk (one writer keeps it busy), more for
    /// a remote store whose latency dominates each upload. Each parallel upload holds one pack in memory.
    fn parallel_writes(&self) -> usize {
        1
    }
}

/// A shared store is a store: wrappers can hold an `Arc` that others (a test counting faults) also hold.
impl<S: Store + ?Sized> Store for Arc<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        (**self).list(prefix)
    }
    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        (**self).read(name, range)
    }
    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        (**self).create(name, data)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        (**self).delete(name)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn parallel_writes(&self) -> usize {
        (**self).parallel_writes()
    }
}

/// Checks an object name against the rules of the trait.
pub fn check_name(name: &str) -> Result<(), StoreError> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
    let ok = !name.is_empty()
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.chars().all(ok_char));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName(name.to_string()))
    }
}

/// The slice of `data` for `range`, or `OutOfRange`.
fn slice_range(name: &str, data: &[u8], range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
    let Some(r) = range else {
        return Ok(data.to_vec());
    };
    if r.start > r.end || r.end > data.len() as u64 {
        return Err(StoreError::OutOfRange {
            name: name.to_string(),
            size: data.len() as u64,
            range: r,
        });
    }
    Ok(data[r.start as usize..r.end as usize].to_vec())
}

/// The behaviour every `Store` must show; each implementation's tests call this on a fresh, empty store. Objects
/// are created from several threads at once, as the vault does.
#[cfg(test)]
pub fn conformance(store: &dyn Store) {
    assert!(store.list("").unwrap().is_empty(), "a fresh store is empty");
    assert!(!store.describe().is_empty());
    store.create("data/ab/abc1", b"hello world").unwrap();
    store.create("data/cd/cd2", b"").unwrap();
    store.create("index/i1", b"idx").unwrap();
    assert!(matches!(
        store.create("data/ab/abc1", b"other"),
        Err(StoreError::AlreadyExists(_))
    ));
    assert_eq!(
        store.read("data/ab/abc1", None).unwrap(),
        b"hello world",
        "a refused create leaves the object"
    );
    conformance_reads(store);
    conformance_lists(store);
    conformance_deletes(store);
    for bad in ["", "/x", "x/", "a//b", "../x", "a/./b", "UPPER", "sp ace"] {
        assert!(
            matches!(store.create(bad, b"x"), Err(StoreError::BadName(_))),
            "{bad:?} must be refused"
        );
    }
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    store.create("data/big", &big).unwrap();
    assert_eq!(
        store.read("data/big", Some(1_000_000..1_000_010)).unwrap(),
        &big[1_000_000..1_000_010]
    );
    assert_eq!(store.read("data/big", None).unwrap(), big);
    conformance_concurrent(store);
}

/// Whole and ranged reads of `data/ab/abc1` (11 bytes) and `data/cd/cd2` (empty): never a short read.
#[cfg(test)]
fn conformance_reads(store: &dyn Store) {
    let out_of_range = |name: &str, r: Range<u64>| {
        let got = store.read(name, Some(r.clone()));
        assert!(
            matches!(got, Err(StoreError::OutOfRange { .. })),
            "{name} {r:?}: {got:?}"
        );
    };
    assert_eq!(store.read("data/ab/abc1", Some(6..11)).unwrap(), b"world");
    assert_eq!(store.read("data/ab/abc1", Some(0..11)).unwrap(), b"hello world");
    assert_eq!(store.read("data/ab/abc1", Some(3..3)).unwrap(), b"");
    assert_eq!(store.read("data/ab/abc1", Some(11..11)).unwrap(), b"");
    out_of_range("data/ab/abc1", 6..12);
    out_of_range("data/ab/abc1", 11..12);
    out_of_range("data/ab/abc1", 20..30);
    out_of_range("data/ab/abc1", 12..12);
    #[allow(clippy::reversed_empty_ranges)]
    let inverted = 5..3;
    out_of_range("data/ab/abc1", inverted);
    assert_eq!(store.read("data/cd/cd2", None).unwrap(), b"");
    assert_eq!(store.read("data/cd/cd2", Some(0..0)).unwrap(), b"");
    out_of_range("data/cd/cd2", 0..1);
    assert!(matches!(store.read("nope", None), Err(StoreError::NotFound(_))));
    assert!(matches!(
        store.read("data/nope", Some(0..1)),
        Err(StoreError::NotFound(_))
    ));
}

/// Listing by any prefix, aligned to `/` or not, with names relative to the store.
#[cfg(test)]
fn conformance_lists(store: &dyn Store) {
    let names = |prefix: &str| {
        let mut found: Vec<(String, u64)> = store
            .list(prefix)
            .unwrap()
            .into_iter()
            .map(|o| (o.name, o.size))
            .collect();
        found.sort();
        found
    };
    let abc1 = ("data/ab/abc1".to_string(), 11);
    let cd2 = ("data/cd/cd2".to_string(), 0);
    assert_eq!(names("data/"), vec![abc1.clone(), cd2.clone()]);
    assert_eq!(names("dat"), vec![abc1.clone(), cd2.clone()]);
    assert_eq!(names("data/a"), vec![abc1.clone()]);
    assert_eq!(names("data/ab/abc"), vec![abc1.clone()]);
    assert_eq!(names("data/ab/abc1"), vec![abc1]);
    assert_eq!(names("data/ab/abc12"), vec![]);
    assert_eq!(names("index/"), vec![("index/i1".to_string(), 3)]);
    assert_eq!(names("").len(), 3);
    assert!(names("points/").is_empty());
    assert!(names("nothing/here/").is_empty());
}

/// After a delete the object is gone; deleting it again may succeed or say `NotFound`, nothing else.
#[cfg(test)]
fn conformance_deletes(store: &dyn Store) {
    store.delete("data/ab/abc1").unwrap();
    assert!(matches!(
        store.delete("data/ab/abc1"),
        Ok(()) | Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.delete("never/was"),
        Ok(()) | Err(StoreError::NotFound(_))
    ));
    assert!(matches!(store.read("data/ab/abc1", None), Err(StoreError::NotFound(_))));
    assert_eq!(store.list("data/").unwrap().len(), 1);
    store.create("data/ab/abc1", b"again").unwrap();
    assert_eq!(
        store.read("data/ab/abc1", None).unwrap(),
        b"again",
        "a deleted name can be created anew"
    );
}

/// Eight threads create distinct objects at once, then race to create one name with different bytes: exactly one
/// wins and its bytes are stored.
#[cfg(test)]
fn conformance_concurrent(store: &dyn Store) {
    let results: Vec<Result<(), StoreError>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8u8)
            .map(|i| {
                s.spawn(move || {
                    store.create(&format!("par/{i}"), &[i; 1000]).unwrap();
                    store.create("race/one", &[i; 100])
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(store.list("par/").unwrap().len(), 8);
    for i in 0..8u8 {
        assert_eq!(store.read(&format!("par/{i}"), None).unwrap(), vec![i; 1000]);
    }
    let winners: Vec<u8> = (0..8u8).filter(|&i| results[i as usize].is_ok()).collect();
    assert_eq!(winners.len(), 1, "exactly one create wins: {results:?}");
    for r in results.iter().filter(|r| r.is_err()) {
        assert!(matches!(r, Err(StoreError::AlreadyExists(_))), "{r:?}");
    }
    assert_eq!(store.read("race/one", None).unwrap(), vec![winners[0]; 100]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_name("data/0a/ff00").is_ok());
        assert!(check_name("config").is_ok());
        assert!(check_name("a/../b").is_err());
    }

    #[test]
    fn locations_are_urls_or_directories() {
        assert!(is_url("s3://bucket/vault"));
        assert!(is_url("azure://c"));
        assert!(is_url("gs://b"), "any scheme is a URL, to be refused by name");
        assert!(!is_url("/srv/vault"));
        assert!(!is_url("relative/dir"));
        assert!(!is_url("://x"));
        assert!(!is_url("/srv/odd://name"));
        let local = open(OsStr::new("/srv/vault")).unwrap();
        assert_eq!(local.describe(), "/srv/vault");
        let err = open(OsStr::new("gs://bucket/v")).err().unwrap().to_string();
        assert!(err.starts_with("vault URL 'gs://bucket/v': "), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn memory_store_conforms() {
        conformance(&MemoryStore::new());
    }

    #[test]
    fn local_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance(&LocalStore::new(dir.path().join("vault")));
    }
}
