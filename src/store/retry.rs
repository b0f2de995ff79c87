//! Retries of transient store errors, with exponential backoff and jitter, around any `Store`.
//!
//! Transient: timeouts, dropped connections, throttling, and a ranged read that came back short. Permanent errors
//! (missing object, existing object, bad name, a full disk, permission denied) are returned at once. A `create` whose
//! earlier attempt failed transiently may in fact have landed: when a retry then finds the object existing, its bytes
//! are compared with ours, and equal bytes count as success, so a retried point record is not reported as a conflict.

use super::{ObjectInfo, Store, StoreError};
use std::io::ErrorKind;
use std::ops::Range;
use std::time::Duration;

/// How many times and how patiently to try.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// Wait before the first retry; doubled each time, with up to 50% random jitter added.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

impl RetryPolicy {
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        attempts: 6,
        first_wait: Duration::from_millis(200),
        max_wait: Duration::from_secs(10),
    };
}

/// `inner` with transient errors retried.
pub struct Retrying<S> {
    inner: S,
    policy: RetryPolicy,
}

impl StoreError {
    /// Worth another try: the same request may well succeed in a moment.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Transient { .. } => true,
            StoreError::Io { source, .. } => matches!(
                source.kind(),
                ErrorKind::TimedOut
                    | ErrorKind::Interrupted
                    | ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::ConnectionRefused
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
                    | ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

impl<S: Store> Retrying<S> {
    pub fn new(inner: S, policy: RetryPolicy) -> Self {
        Retrying { inner, policy }
    }

    /// Runs `op` until it succeeds, fails permanently, or the attempts are used up; `op` gets the attempt number.
    fn run<T>(&self, what: &str, mut op: impl FnMut(u32) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut wait = self.policy.first_wait;
        for attempt in 1.. {
            match op(attempt) {
                Err(e) if e.is_transient() && attempt < self.policy.attempts => {
                    log::info!("{what}: {e}; retrying in {} ms", wait.as_millis());
                    std::thread::sleep(jitter(wait));
                    wait = (wait * 2).min(self.policy.max_wait);
                }
                other => return other,
            }
        }
        unreachable!("the loop returns")
    }
}

fn jitter(d: Duration) -> Duration {
    let r = u64::from_le_bytes(crate::format::ids::random_bytes::<8>());
    d + Duration::from_millis(r % (d.as_millis() as u64 / 2 + 1))
}

impl<S: Store> Store for Retrying<S> {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        self.run(prefix, |_| self.inner.list(prefix))
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.run(name, |_| {
            let bytes = self.inner.read(name, range.clone())?;
            match &range {
                Some(r) if bytes.len() as u64 != r.end.saturating_sub(r.start) => Err(StoreError::Transient {
                    name: name.to_string(),
                    message: format!("short read: {} of {} bytes", bytes.len(), r.end - r.start),
                }),
                _ => Ok(bytes),
            }
        })
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.run(name, |attempt| match self.inner.create(name, data) {
            Err(StoreError::AlreadyExists(n)) if attempt > 1 => match self.inner.read(name, None) {
                Ok(existing) if existing == data => Ok(()),
                Ok(_) => Err(StoreError::AlreadyExists(n)),
                Err(e) => Err(e),
            },
            other => other,
        })
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.run(name, |attempt| match self.inner.delete(name) {
            // An earlier attempt that failed in transit may have deleted it.
            Err(StoreError::NotFound(_)) if attempt > 1 => Ok(()),
            other => other,
        })
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
