//! Progress of a running backup: counters updated by the workers, read by whoever displays them.
//! One object, shared once (`Arc<Progress>`), instead of callbacks threaded through every function.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct Progress {
    /// Entries and bytes dealt with so far (bytes: apparent size, whether read or reused).
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    /// Totals found by the scanner; valid once `scanned` is set.
    pub total_files: AtomicU64,
    pub total_bytes: AtomicU64,
    pub scanned: AtomicBool,
    pub errors: AtomicU64,
}

impl Progress {
    pub fn file_done(&self, bytes: u64) {
        self.files.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// Walks `paths` counting entries and bytes, for an ETA; runs beside the backup and is cheap (metadata only).
    pub fn scan(&self, paths: &[std::path::PathBuf]) {
        let mut stack: Vec<std::path::PathBuf> = paths.to_vec();
        while let Some(p) = stack.pop() {
            let Ok(md) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            self.total_files.fetch_add(1, Relaxed);
            if md.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            } else if md.is_file() {
                self.total_bytes.fetch_add(md.len(), Relaxed);
            }
        }
        self.scanned.store(true, Relaxed);
    }
}
