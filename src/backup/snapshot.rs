//! Snapshots to read a consistent state from: btrfs snapshots made by coffer, or any snapshot made by a command.
//!
//! `--snapshot btrfs`: for each btrfs subvolume holding a source path, a read-only snapshot
//! `<subvolume>/.coffer-snapshot-<random>` is created with `btrfs subvolume snapshot -r`, the sources are read from
//! it, and it is deleted afterwards (by a guard process if the backup dies). btrfs creates snapshots atomically
//! after flushing dirty data, so they are file-system-consistent by construction. The file system is not frozen
//! around their creation: on Linux a snapshot ioctl on a frozen btrfs blocks until the thaw (measured: the snapshot
//! completes only after FITHAW), so a freeze would only delay it.
//!
//! `--snapshot-command CREATE`: CREATE makes the snapshot, with the file systems given by `--freeze` frozen around
//! it; `--snapshot-cleanup CMD` removes it afterwards, whatever happened; with `--snapshot-at DIR` the (single)
//! source path is read from DIR. Disks name their snapshot device directly (`--disk root=/dev/vg/root-snap`).

use super::freeze::{self, Frozen, Guard};
use super::scripts::run_with_timeout;
use std::ffi::OsString;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Inode number of the root directory of every btrfs subvolume.
const BTRFS_SUBVOLUME_ROOT_INO: u64 = 256;
const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
/// How long a snapshot or cleanup command may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(600);

/// How to take the snapshot.
#[derive(Clone, Debug, PartialEq)]
pub enum SnapshotSpec {
    Btrfs,
    Command {
        create: String,
        cleanup: Option<String>,
        /// Where the snapshot of the single source path can be read.
        at: Option<PathBuf>,
        /// File systems frozen while `create` runs.
        freeze: Vec<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}: not on a btrfs file system (--snapshot btrfs)")]
    NotBtrfs(String),
    #[error("--snapshot-at needs exactly one source path")]
    AtNeedsOnePath,
    #[error("snapshot of {0}: {1}")]
    Io(String, io::Error),
    #[error("snapshot command failed: {0}")]
    Command(String),
}

/// A snapshot in use: where to read each source, and how to remove it.
pub struct Snapshot {
    /// `(source path, where to read it)`.
    maps: Vec<(PathBuf, PathBuf)>,
    subvolumes: Vec<(PathBuf, Option<Guard>)>,
    cleanup: Option<String>,
    /// For the point: `btrfs <paths>` or `command <create>`.
    pub description: String,
    pub frozen: Vec<String>,
    pub freeze_secs: f64,
    /// The freeze outlived the maximum and was ended early: the snapshot may be inconsistent.
    pub freeze_exceeded: bool,
}

impl Snapshot {
    /// Where to read source path `path` from.
    pub fn read_path(&self, path: &Path) -> PathBuf {
        for (src, at) in &self.maps {
            if let Ok(rest) = path.strip_prefix(src) {
                return if rest.as_os_str().is_empty() {
                    at.clone()
                } else {
                    at.join(rest)
                };
            }
        }
        path.to_path_buf()
    }

    /// Removes the snapshot; returns a message for each step that failed.
    pub fn remove(self) -> Vec<String> {
        let mut errors = Vec::new();
        for (path, guard) in self.subvolumes {
            if let Err(e) = delete_subvolume(&path) {
                errors.push(format!("cannot delete snapshot {}: {e}", path.display()));
            }
            if let Some(g) = guard {
                g.release();
            }
        }
        if let Some(cmd) = &self.cleanup
            && let Err(e) = run_command(cmd)
        {
            errors.push(format!("snapshot cleanup: {e}"));
        }
        errors
    }
}

/// Creates the snapshot for `sources` (absolute paths).
pub fn create(
    spec: &SnapshotSpec,
    sources: &[PathBuf],
    max_freeze: Duration,
    guard_exe: Option<&Path>,
) -> Result<Snapshot, SnapshotError> {
    match spec {
        SnapshotSpec::Btrfs => btrfs(sources, guard_exe),
        SnapshotSpec::Command {
            create,
            cleanup,
            at,
            freeze,
        } => {
            if at.is_some() && sources.len() != 1 {
                return Err(SnapshotError::AtNeedsOnePath);
            }
            let mut snap = Snapshot {
                maps: at.iter().map(|a| (sources[0].clone(), a.clone())).collect(),
                subvolumes: Vec::new(),
                cleanup: cleanup.clone(),
                description: format!("command {create}"),
                frozen: freeze.iter().map(|p| p.display().to_string()).collect(),
                freeze_secs: 0.0,
                freeze_exceeded: false,
            };
            let result = frozen_around(freeze, max_freeze, guard_exe, || run_command(create));
            match result {
                Ok((secs, exceeded)) => {
                    (snap.freeze_secs, snap.freeze_exceeded) = (secs, exceeded);
                    Ok(snap)
                }
                Err(e) => {
                    snap.remove();
                    Err(e)
                }
            }
        }
    }
}

/// Runs `f` with the file systems of `paths` frozen; returns the freeze time and whether it passed `max`.
fn frozen_around(
    paths: &[PathBuf],
    max: Duration,
    guard_exe: Option<&Path>,
    f: impl FnOnce() -> Result<(), String>,
) -> Result<(f64, bool), SnapshotError> {
    let mut frozen: Vec<Frozen> = Vec::new();
    for p in paths {
        let fz = freeze::freeze(p, max, guard_exe).map_err(|e| SnapshotError::Io(p.display().to_string(), e))?;
        frozen.push(fz);
    }
    let result = f();
    let mut held = Duration::ZERO;
    for fz in frozen.into_iter().rev() {
        let p = fz.path().display().to_string();
        held = held.max(fz.thaw().map_err(|e| SnapshotError::Io(p, e))?);
    }
    result.map_err(SnapshotError::Command)?;
    Ok((held.as_secs_f64(), !paths.is_empty() && held > max))
}

fn run_command(cmd: &str) -> Result<(), String> {
    match run_with_timeout(cmd, &[], COMMAND_TIMEOUT) {
        Ok(Some(s)) if s.success() => Ok(()),
        Ok(Some(s)) => Err(format!("{cmd}: {s}")),
        Ok(None) => Err(format!("{cmd}: timed out")),
        Err(e) => Err(format!("{cmd}: {e}")),
    }
}

/// One read-only snapshot per btrfs subvolume holding a source.
fn btrfs(sources: &[PathBuf], guard_exe: Option<&Path>) -> Result<Snapshot, SnapshotError> {
    let mut snap = Snapshot {
        maps: Vec::new(),
        subvolumes: Vec::new(),
        cleanup: None,
        description: String::new(),
        frozen: Vec::new(),
        freeze_secs: 0.0,
        freeze_exceeded: false,
    };
    for src in sources {
        let err = |e| SnapshotError::Io(src.display().to_string(), e);
        let root = subvolume_root(src)?;
        let at = match snap
            .subvolumes
            .iter()
            .position(|(s, _)| s.parent() == Some(root.as_path()))
        {
            Some(i) => snap.subvolumes[i].0.clone(),
            None => {
                let name = format!(
                    ".coffer-snapshot-{}",
                    hex::encode(crate::format::ids::random_bytes::<4>())
                );
                let at = root.join(name);
                make_snapshot(&root, &at).map_err(err)?;
                let guard = match guard_exe {
                    Some(exe) => {
                        Some(Guard::spawn(exe, &["remove-subvolume".into(), OsString::from(&at)]).map_err(err)?)
                    }
                    None => None,
                };
                snap.subvolumes.push((at.clone(), guard));
                at
            }
        };
        let rest = src.strip_prefix(&root).unwrap_or(Path::new(""));
        snap.maps.push((src.clone(), at.join(rest)));
    }
    let names: Vec<String> = snap.subvolumes.iter().map(|(p, _)| p.display().to_string()).collect();
    snap.description = format!("btrfs {}", names.join(" "));
    Ok(snap)
}

/// The root of the btrfs subvolume holding `path`: the nearest ancestor (or itself) with inode 256.
fn subvolume_root(path: &Path) -> Result<PathBuf, SnapshotError> {
    let not_btrfs = || SnapshotError::NotBtrfs(path.display().to_string());
    let io_err = |e| SnapshotError::Io(path.display().to_string(), e);
    let start = if path.is_dir() {
        path
    } else {
        path.parent().ok_or_else(not_btrfs)?
    };
    if !is_btrfs(start).map_err(io_err)? {
        return Err(not_btrfs());
    }
    let mut dir = start.to_path_buf();
    loop {
        if std::fs::metadata(&dir).map_err(io_err)?.ino() == BTRFS_SUBVOLUME_ROOT_INO {
            return Ok(dir);
        }
        if !dir.pop() {
            return Err(not_btrfs());
        }
    }
}

fn is_btrfs(path: &Path) -> io::Result<bool> {
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: statfs writes into a zeroed struct we own; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BTRFS_SUPER_MAGIC)
}

fn make_snapshot(root: &Path, at: &Path) -> io::Result<()> {
    btrfs_command(&[OsString::from("snapshot"), "-r".into(), root.into(), at.into()])
}

/// Deletes a btrfs subvolume (used by `Snapshot::remove` and the guard).
pub fn delete_subvolume(path: &Path) -> io::Result<()> {
    btrfs_command(&[OsString::from("delete"), path.into()])
}

fn btrfs_command(args: &[OsString]) -> io::Result<()> {
    let out = std::process::Command::new("btrfs")
        .arg("subvolume")
        .args(args)
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    Err(io::Error::other(format!("btrfs subvolume: {}", msg.trim())))
}
