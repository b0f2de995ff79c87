//! Store wrappers for tests that inject faults: [`DieAfterWrites`] stops working after a given number of writes
//! (creates and deletes), the way a process killed at that moment would; [`Flaky`] fails every Nth request in turn
//! by refusing it, by timing out, by performing it and then reporting a failure, or by returning a ranged read one
//! byte short; [`LaxDelete`] reports deleting an absent object as a success, as S3 does.

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

/// The faults `Flaky` injects, in turn.
const FAULTS: [Fault; 4] = [Fault::Refuse, Fault::Timeout, Fault::LandThenFail, Fault::Truncate];

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Not performed; a transient error.
    Refuse,
    /// Not performed, after a delay; a transient error.
    Timeout,
    /// Performed, but the answer is lost: a transient error.
    LandThenFail,
    /// Ranged reads return one byte less (other requests are refused).
    Truncate,
}

/// Every `every`-th request gets the next fault of `FAULTS`.
pub struct Flaky<S> {
    pub inner: S,
    every: u64,
    pub requests: std::sync::atomic::AtomicU64,
    pub faults: std::sync::atomic::AtomicU64,
}

impl<S: Store> Flaky<S> {
    pub fn new(inner: S, every: u64) -> Self {
        Flaky {
            inner,
            every,
            requests: Default::default(),
            faults: Default::default(),
        }
    }

    fn fault(&self) -> Option<Fault> {
        let n = self.requests.fetch_add(1, SeqCst) + 1;
        if !n.is_multiple_of(self.every) {
            return None;
        }
        let k = self.faults.fetch_add(1, SeqCst);
        Some(FAULTS[k as usize % FAULTS.len()])
    }

    fn failed<T>(name: &str, f: Fault) -> Result<T, StoreError> {
        if let Fault::Timeout = f {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Err(StoreError::Transient {
            name: name.to_string(),
            message: format!("injected fault: {f:?}"),
        })
    }
}

impl<S: Store> Store for Flaky<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        match self.fault() {
            None => self.inner.list(prefix),
            Some(Fault::LandThenFail) => self
                .inner
                .list(prefix)
                .and_then(|_| Self::failed(prefix, Fault::LandThenFail)),
            Some(f) => Self::failed(prefix, f),
        }
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        match self.fault() {
            None => self.inner.read(name, range),
            // A ranged read comes back one byte short; a whole read cut short is a broken body, which an HTTP client
            // reports as an error, since it knows the length.
            Some(Fault::Truncate) if range.is_some() => self.inner.read(name, range).map(|mut b| {
                b.pop();
                b
            }),
            Some(f) => Self::failed(name, f),
        }
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        match self.fault() {
            None => self.inner.create(name, data),
            Some(Fault::LandThenFail) => self
                .inner
                .create(name, data)
                .and_then(|_| Self::failed(name, Fault::LandThenFail)),
            Some(f) => Self::failed(name, f),
        }
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        match self.fault() {
            None => self.inner.delete(name),
            Some(Fault::LandThenFail) => self
                .inner
                .delete(name)
                .and_then(|_| Self::failed(name, Fault::LandThenFail)),
            Some(f) => Self::failed(name, f),
        }
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
