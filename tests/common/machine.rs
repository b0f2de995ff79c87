//! Helpers for tests on disks and machines: shell steps, tool checks, loop mounts, a fresh vault.

use super::run::{Coffer, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn sh(script: &str) {
    let st = Command::new("sh").arg("-c").arg(script).status().unwrap();
    assert!(st.success(), "`{script}` failed: {st}");
}

/// True if we are root and every tool is installed; otherwise says SKIP.
pub fn have(tools: &[&str]) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: needs root for loop devices and freezing");
        return false;
    }
    for t in tools {
        if !Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
        {
            eprintln!("SKIP: {t} is not installed");
            return false;
        }
    }
    true
}

/// A loop mount of an image, unmounted (thawed first) when dropped.
pub struct LoopMount(pub PathBuf);

impl LoopMount {
    pub fn new(image: &Path, dir: &Path, opts: &str) -> LoopMount {
        std::fs::create_dir_all(dir).unwrap();
        sh(&format!("mount -o {opts},loop {} {}", image.display(), dir.display()));
        LoopMount(dir.to_path_buf())
    }

    /// Makes `<dir>/<name>.img` with the shell command `mkfs` (`{img}` in it is replaced by the image's path) and
    /// mounts it read-write on `<dir>/<name>`.
    pub fn fresh(dir: &Path, name: &str, mkfs: &str) -> LoopMount {
        let img = dir.join(format!("{name}.img"));
        sh(&mkfs.replace("{img}", s(&img)));
        LoopMount::new(&img, &dir.join(name), "rw")
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        let d = self.0.display();
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("fsfreeze -u {d} 2>/dev/null; umount {d}"))
            .status();
    }
}

pub fn setup() -> (tempfile::TempDir, Coffer) {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    (tmp, c)
}

pub fn last_point(c: &Coffer) -> serde_json::Value {
    let list = json(&c.ok(&["list", "--json"]));
    list.as_array().unwrap().last().cloned().unwrap()
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
