//! Executing a restore plan: create entries, fill file content pack by pack in parallel, then apply metadata
//! (directories last, deepest first, so writing inside them does not disturb their times).

use super::plan::{Action, PackRead, Plan, PlanEntry};
use super::{RestoreError, RestoreOptions};
use crate::format::ids::BlobKind;
use crate::fsmeta;
use crate::view::View;
use rayon::prelude::*;
use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a restore did.
#[derive(Debug, Default)]
pub struct Report {
    pub entries: u64,
    pub bytes: u64,
    /// Ranged reads issued against packs.
    pub reads: u64,
    /// Per-entry problems; the restore went on past them.
    pub errors: Vec<String>,
}

/// Restores everything in `plan` below `target`.
pub fn execute(view: &View, plan: &Plan, target: &Path, opts: &RestoreOptions) -> Result<Report, RestoreError> {
    let target_err = |source| RestoreError::Target {
        path: target.display().to_string(),
        source,
    };
    fs::create_dir_all(target).map_err(target_err)?;
    let probe = target.join(format!(".coffer-restore-probe-{}", std::process::id()));
    fs::File::create(&probe).map_err(target_err)?;
    let _ = fs::remove_file(&probe);

    let errors = Mutex::new(plan.missing.clone());
    let fail = |msg: String| errors.lock().expect("errors lock").push(msg);
    let t0 = std::time::Instant::now();
    create_all(plan, target, &fail);
    let t1 = std::time::Instant::now();
    let (bytes, reads) = (AtomicU64::new(0), AtomicU64::new(0));
    plan.packs.par_iter().for_each(|p| {
        restore_pack(view, plan, p, target, &bytes, &reads)
            .into_iter()
            .for_each(fail)
    });
    let t2 = std::time::Instant::now();
    apply_all_metadata(plan, target, opts, &fail);
    log::debug!(
        "restore: entries created in {:.2?}, content written in {:.2?}, metadata applied in {:.2?}",
        t1 - t0,
        t2 - t1,
        t2.elapsed()
    );
    let mut errors = errors.into_inner().expect("errors lock");
    errors.sort();
    Ok(Report {
        entries: plan.entries.len() as u64,
        bytes: bytes.into_inner(),
        reads: reads.into_inner(),
        errors,
    })
}

/// Creates every entry with no content yet: directories first, in plan order (parents before children), then files,
/// links and special files in parallel, then hard links (whose first name must exist).
fn create_all(plan: &Plan, target: &Path, fail: &(dyn Fn(String) + Sync)) {
    let create = |e: &PlanEntry| {
        if let Err(err) = create_entry(target, e, plan) {
            fail(format!("{}: {err}", e.source.display()));
        }
    };
    let is_link = |e: &&PlanEntry| matches!(e.action, Action::Hardlink(_));
    plan.entries.iter().filter(|e| e.action == Action::Dir).for_each(create);
    plan.entries
        .par_iter()
        .filter(|e| e.action != Action::Dir && !is_link(e))
        .for_each(create);
    plan.entries.iter().filter(is_link).for_each(create);
}

/// Creates one entry: a directory (owner-only until metadata is applied), an empty file of the final size (so holes
/// stay holes), a link or a special file. Whatever stands where a non-directory goes is replaced (a directory with
/// its contents); an existing directory where a directory goes is kept.
fn create_entry(target: &Path, e: &PlanEntry, plan: &Plan) -> std::io::Result<()> {
    let path = target.join(&e.target);
    if e.action == Action::Dir {
        return match fs::DirBuilder::new().mode(0o700).create(&path) {
            Err(err) if err.kind() == ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            other => other,
        };
    }
    // Restores usually go to fresh places: try to create first, and look at what is in the way only when something is.
    match create_non_dir(target, &path, e, plan) {
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {
            match fs::symlink_metadata(&path) {
                Ok(md) if md.is_dir() => fs::remove_dir_all(&path)?,
                Ok(_) => fs::remove_file(&path)?,
                Err(_) => {}
            }
            create_non_dir(target, &path, e, plan)
        }
        other => other,
    }
}

fn create_non_dir(target: &Path, path: &Path, e: &PlanEntry, plan: &Plan) -> std::io::Result<()> {
    match e.action {
        Action::File => {
            let f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
            f.set_len(e.node.size)
        }
        Action::Hardlink(first) => fs::hard_link(target.join(&plan.entries[first].target), path),
        _ => fsmeta::create_special(path, &e.node).map_err(|err| match err {
            fsmeta::FsError::Io { err, .. } if err.kind() == ErrorKind::AlreadyExists => err,
            other => std::io::Error::other(other),
        }),
    }
}

/// Reads the needed blobs of one pack in merged ranges and writes them into their files; returns the problems.
fn restore_pack(
    view: &View,
    plan: &Plan,
    p: &PackRead,
    target: &Path,
    bytes: &AtomicU64,
    reads: &AtomicU64,
) -> Vec<String> {
    let blobs: Vec<([u8; 32], crate::vault::Location)> = p.blobs.iter().map(|b| (b.id, b.loc)).collect();
    let mut problems = Vec::new();
    let n = view.vault().read_blobs(p.pack, BlobKind::Data, &blobs, &mut |k, data| {
        let b = &p.blobs[k];
        match data
            .map_err(|e| e.to_string())
            .and_then(|d| write_blob(plan, target, &b.writes, &d, bytes))
        {
            Ok(()) => {}
            Err(e) => {
                let files: Vec<String> = b
                    .writes
                    .iter()
                    .map(|(e, _)| plan.entries[*e].source.display().to_string())
                    .collect();
                problems.push(format!("{e} (needed by {})", files.join(", ")));
            }
        }
    });
    reads.fetch_add(n, Relaxed);
    problems
}

/// Writes one blob's bytes at every place that needs it.
fn write_blob(
    plan: &Plan,
    target: &Path,
    writes: &[(usize, u64)],
    data: &[u8],
    bytes: &AtomicU64,
) -> Result<(), String> {
    for &(entry, offset) in writes {
        let path = target.join(&plan.entries[entry].target);
        let f = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        f.write_all_at(data, offset)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        bytes.fetch_add(data.len() as u64, Relaxed);
    }
    Ok(())
}

/// Metadata for every entry: non-directories first, then directories deepest first.
fn apply_all_metadata(plan: &Plan, target: &Path, opts: &RestoreOptions, fail: &(dyn Fn(String) + Sync)) {
    let meta = fsmeta::RestoreOptions { owner: opts.owner };
    plan.entries
        .par_iter()
        .filter(|e| e.action != Action::Dir)
        .for_each(|e| {
            if let Err(err) = fsmeta::apply_metadata(&target.join(&e.target), &e.node, &meta) {
                fail(err.to_string());
            }
        });
    for e in plan.entries.iter().rev().filter(|e| e.action == Action::Dir) {
        if let Err(err) = fsmeta::apply_metadata(&target.join(&e.target), &e.node, &meta) {
            fail(err.to_string());
        }
    }
}
