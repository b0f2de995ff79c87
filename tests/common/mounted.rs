//! Real FUSE mounts for tests: whether they can be made here, and a guard that always unmounts.
#![allow(dead_code)]

use super::run::Coffer;
use std::path::{Path, PathBuf};
use std::process::Command;

/// True if this process may mount FUSE file systems; tests skip (saying so) otherwise.
pub fn fuse_available() -> bool {
    let ok = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if !ok {
        eprintln!("SKIP: /dev/fuse cannot be opened here, so FUSE mounts cannot be tested");
    }
    ok
}

/// A mount made with `coffer mount --daemon`, unmounted when dropped (also when the test panics).
pub struct Mounted {
    pub dir: PathBuf,
}

impl Mounted {
    pub fn new(c: &Coffer, dir: &Path, extra: &[&str]) -> Mounted {
        std::fs::create_dir_all(dir).unwrap();
        let mut args = vec!["mount", "--daemon", dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        c.ok(&args);
        Mounted { dir: dir.to_path_buf() }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg(&self.dir).status();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

pub fn is_mounted(dir: &Path) -> bool {
    let real = std::fs::canonicalize(dir).unwrap_or(dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(1) == real.to_str())
}
