//! Storage: the one small byte-oriented trait every vault backend implements.
//!
//! The trait is shaped for object stores (S3, Azure Blob): flat names, whole-object atomic creation, ranged reads,
//! listing by prefix. Nothing above it may assume a POSIX file system. The vault only ever adds objects during a
//! backup and never rewrites one; content-addressed names make "create if absent" the only write needed.

mod cache;
#[cfg(test)]
pub mod faulty;
mod local;
mod memory;
mod retry;

pub use cache::{CachedStore, SMALL_READ};
pub use local::LocalStore;
pub use memory::MemoryStore;
pub use retry::{RetryPolicy, Retrying};

use std::ops::Range;

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

/// A flat namespace of immutable byte objects. Names are `/`-separated paths of `[a-z0-9._-]` segments with no empty,
/// `.` or `..` segment. Implementations are used from many threads at once.
pub trait Store: Send + Sync {
    /// Every object whose name starts with `prefix`, with its size, in no particular order. Objects being created
    /// concurrently may or may not appear; a listed object is complete.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;

    /// The bytes of `name`, all of them or the given `range`. `NotFound` if absent; `OutOfRange` if the range ends
    /// past the object's end (a short read is never returned silently).
    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError>;

    /// Creates `name` holding exactly `data`, only if no object of that name exists (`AlreadyExists` otherwise, and
    /// the existing object is untouched). Atomic: other readers see either no object or all of `data`, never part of
    /// it, also after a crash or a full disk. Durable once `Ok` is returned.
    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError>;

    /// Removes `name`. `NotFound` if absent.
    fn delete(&self, name: &str) -> Result<(), StoreError>;

    /// A short description for messages, such as the directory path.
    fn describe(&self) -> String;
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

/// The behaviour every `Store` must show; each implementation's tests call this on a fresh, empty store.
#[cfg(test)]
pub fn conformance(store: &dyn Store) {
    assert!(store.list("").unwrap().is_empty(), "a fresh store is empty");
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
    assert_eq!(store.read("data/ab/abc1", Some(6..11)).unwrap(), b"world");
    assert_eq!(store.read("data/ab/abc1", Some(3..3)).unwrap(), b"");
    assert!(matches!(
        store.read("data/ab/abc1", Some(6..12)),
        Err(StoreError::OutOfRange { .. })
    ));
    assert_eq!(store.read("data/cd/cd2", None).unwrap(), b"");
    assert!(matches!(store.read("nope", None), Err(StoreError::NotFound(_))));
    let mut names: Vec<(String, u64)> = store
        .list("data/")
        .unwrap()
        .into_iter()
        .map(|o| (o.name, o.size))
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![("data/ab/abc1".to_string(), 11), ("data/cd/cd2".to_string(), 0)]
    );
    assert_eq!(store.list("index/").unwrap().len(), 1);
    assert_eq!(store.list("").unwrap().len(), 3);
    assert!(store.list("points/").unwrap().is_empty());
    store.delete("data/ab/abc1").unwrap();
    assert!(matches!(store.delete("data/ab/abc1"), Err(StoreError::NotFound(_))));
    assert!(matches!(store.read("data/ab/abc1", None), Err(StoreError::NotFound(_))));
    assert_eq!(store.list("data/").unwrap().len(), 1);
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
    fn memory_store_conforms() {
        conformance(&MemoryStore::new());
    }

    #[test]
    fn local_store_conforms() {
        let dir = tempfile::tempdir().unwrap();
        conformance(&LocalStore::new(dir.path().join("vault")));
    }
}
