//! Backups of files and folders: from source paths to a recovery point.
//!
//! Order of writes (the crash-safety argument): blobs go into packs, packs are stored, index files follow, and the
//! point record is written last, only after the writer has flushed everything. A backup killed at any moment leaves
//! packs and index files that nothing references yet (reused by the next backup), and no point.

pub mod exclude;
mod file;
pub mod progress;
mod walk;

use crate::format::ids::{PointId, random_bytes};
use crate::format::point::{POINT_VERSION, PointRecord, PointStats};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::fsmeta::NameCache;
use crate::vault::{BlobWriter, Vault, VaultError};
use exclude::Patterns;
use progress::Progress;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use walk::{Counts, Walker};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("source {0}: {1}")]
    Source(String, std::io::Error),
    #[error("no source paths given")]
    NoPaths,
}

/// What to back up and how.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub host: String,
    pub tags: Vec<String>,
    pub excludes: Patterns,
    pub one_file_system: bool,
    /// Threads reading files (I/O bound, so more than cores helps on many small files).
    pub read_threads: usize,
    /// Threads compressing and encrypting.
    pub seal_threads: usize,
}

/// A tree of the source paths: which children of each directory on the way are selected.
#[derive(Default)]
struct Selection {
    children: BTreeMap<Vec<u8>, Selection>,
    /// This entry was named as a source: back up everything below it.
    whole: bool,
}

impl Selection {
    fn add(&mut self, parts: &[Vec<u8>]) {
        match parts.split_first() {
            None => self.whole = true,
            Some((first, rest)) => self.children.entry(first.clone()).or_default().add(rest),
        }
    }
}

/// Runs one backup and stores its recovery point. The record's `errors` list what could not be read.
pub fn run(vault: Arc<Vault>, opts: &BackupOptions, progress: &Progress) -> Result<PointRecord, BackupError> {
    if opts.paths.is_empty() {
        return Err(BackupError::NoPaths);
    }
    let start = std::time::Instant::now();
    let time = crate::util::now_rfc3339();
    let mut paths = Vec::new();
    for p in &opts.paths {
        let abs = walk::absolute(p).map_err(|e| BackupError::Source(p.display().to_string(), e))?;
        std::fs::symlink_metadata(&abs).map_err(|e| BackupError::Source(p.display().to_string(), e))?;
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    let recovered = vault.index_orphan_packs()?;
    if recovered > 0 {
        log::info!("indexed {recovered} packs left by an interrupted backup");
    }
    let path_strings: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let parent = find_parent(&vault, &opts.host, &path_strings)?;
    let mut selection = Selection::default();
    paths.iter().for_each(|p| selection.add(&walk::components(p)));

    let writer = BlobWriter::new(vault.clone(), opts.seal_threads);
    let walker = Walker {
        vault: &vault,
        writer: &writer,
        excludes: &opts.excludes,
        one_file_system: opts.one_file_system,
        progress,
        names: NameCache::new(),
        errors: Mutex::new(Vec::new()),
        skipped: Mutex::new(Vec::new()),
        hardlinks: Mutex::new(Default::default()),
        counts: Counts::default(),
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.read_threads.max(1))
        .build()
        .map_err(|e| VaultError::Internal(format!("cannot start threads: {e}")))?;
    let parent_root = parent.as_ref().and_then(|p| vault.read_tree(&p.tree).ok());
    let root = pool.install(|| select_tree(&walker, Path::new("/"), &selection, parent_root.as_ref()));
    let (errors, skipped, counts) = (walker.errors, walker.skipped, walker.counts);
    let written = writer.finish()?;
    let mut errors = errors.into_inner().expect("lock");
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    let record = PointRecord {
        version: POINT_VERSION,
        id: PointId(random_bytes()),
        time,
        host: opts.host.clone(),
        tags: opts.tags.clone(),
        paths: path_strings,
        parent: parent.map(|p| p.id),
        tree: root,
        stats: stats(&counts, &written),
        errors,
        skipped: skipped.into_inner().expect("lock"),
        consistency: Default::default(),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        duration_secs: start.elapsed().as_secs_f64(),
    };
    vault.save_point(&record)?;
    Ok(record)
}

fn stats(c: &Counts, w: &crate::vault::WriteStats) -> PointStats {
    PointStats {
        files: c.files.load(Relaxed),
        dirs: c.dirs.load(Relaxed),
        others: c.others.load(Relaxed),
        files_read: c.files_read.load(Relaxed),
        bytes_total: c.bytes_total.load(Relaxed),
        bytes_read: c.bytes_read.load(Relaxed),
        bytes_new: w.bytes_new,
        bytes_stored: w.bytes_stored,
        blobs_new: w.blobs_new,
    }
}

/// The newest point of the same host with the same source paths: files unchanged since it are not read again.
fn find_parent(vault: &Vault, host: &str, paths: &[String]) -> Result<Option<PointRecord>, VaultError> {
    let points = vault.load_points()?;
    Ok(points.into_iter().rev().find(|p| p.host == host && p.paths == paths))
}

/// The tree of directory `dir` holding only the selected entries (whole subtrees where a source was named).
fn select_tree(w: &Walker, dir: &Path, sel: &Selection, parent: Option<&Tree>) -> crate::format::ids::TreeId {
    let nodes: Vec<Node> = sel
        .children
        .iter()
        .filter_map(|(name, child)| {
            let path = dir.join(OsStr::from_bytes(name));
            let prev = parent.and_then(|t| t.find(name));
            if child.whole {
                let dev = std::fs::symlink_metadata(&path)
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                    .ok()?;
                return w.entry(&path, name.clone(), dev, prev);
            }
            let mut node = crate::fsmeta::read_node(&path, name.clone(), &w.names).ok().flatten()?;
            if node.kind != NodeKind::Dir {
                return None;
            }
            let prev_tree = w.parent_tree(prev);
            node.subtree = Some(select_tree(w, &path, child, prev_tree.as_ref()));
            Some(node)
        })
        .collect();
    w.store_tree(nodes)
}
