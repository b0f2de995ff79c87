//! Store wrappers for tests: [`DieAfterWrites`] stops working after a given number of writes (creates and deletes),
//! the way a process killed at that moment would: every later write fails, reads keep working. [`LaxDelete`]
//! reports deleting an absent object as a success, as S3 does.

use super::{ObjectInfo, Store, StoreError};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering::SeqCst};

pub struct DieAfterWrites<S> {
    pub inner: S,
    left: AtomicI64,
    done: AtomicI64,
}

impl<S: Store> DieAfterWrites<S> {
    pub fn new(inner: S, writes: i64) -> Self {
        DieAfterWrites {
            inner,
            left: AtomicI64::new(writes),
            done: AtomicI64::new(0),
        }
    }

    /// True once a write was refused.
    pub fn died(&self) -> bool {
        self.left.load(SeqCst) < 0
    }

    /// Writes attempted so far.
    pub fn writes(&self) -> i64 {
        self.done.load(SeqCst)
    }

    fn write_allowed(&self, name: &str) -> Result<(), StoreError> {
        self.done.fetch_add(1, SeqCst);
        if self.left.fetch_sub(1, SeqCst) > 0 {
            return Ok(());
        }
        Err(StoreError::Io {
            name: name.to_string(),
            source: std::io::Error::other("killed (simulated)"),
        })
    }
}

impl<S: Store> Store for DieAfterWrites<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.inner.list(prefix)
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.inner.read(name, range)
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.write_allowed(name)?;
        self.inner.create(name, data)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.write_allowed(name)?;
        self.inner.delete(name)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Deleting an absent object succeeds, as on S3 (the `Store::delete` contract allows it).
pub struct LaxDelete<S>(pub S);

impl<S: Store> Store for LaxDelete<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.0.list(prefix)
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.0.read(name, range)
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.0.create(name, data)
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.0.delete(name) {
            Err(StoreError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    fn describe(&self) -> String {
        self.0.describe()
    }
}
