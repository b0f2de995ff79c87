//! Backups of files and folders: from source paths to a recovery point.
//!
//! Order of writes (the crash-safety argument): blobs go into packs, packs are stored, index files follow, and the
//! point record is written last, only after the writer has flushed everything. A backup killed at any moment leaves
//! packs and index files that nothing references yet (reused by the next backup), and no point.

pub mod cleanup;
pub mod consistency;
pub mod disk;
pub mod exclude;
mod file;
pub mod freeze;
pub mod progress;
pub mod scripts;
pub mod snapshot;
pub mod stream;
mod walk;

use crate::format::ids::{PointId, TreeId, random_bytes};
use crate::format::point::{POINT_VERSION, PointRecord, PointStats};
use crate::format::sources::{DiskRecord, StreamRecord};
use crate::format::tree::{Node, NodeKind, Tree};
use crate::fsmeta::NameCache;
use crate::vault::{BlobWriter, Vault, VaultError};
use cleanup::Cleanup;
use consistency::{ConsistencyError, ConsistencyOptions};
use disk::DiskSource;
use exclude::Patterns;
use progress::Progress;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use stream::StreamSource;
use walk::{Counts, Walker};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("source {0}: {1}")]
    Source(String, std::io::Error),
    #[error("nothing to back up: give paths, --disk or --stdin-name")]
    NoSources,
    #[error("disk name {0} given twice")]
    DuplicateDisk(String),
    #[error("command `{0}` failed ({1}); no recovery point was made")]
    Command(String, String),
    #[error(transparent)]
    Consistency(#[from] ConsistencyError),
}

/// What to back up and how.
#[derive(Clone, Debug)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub disks: Vec<DiskSource>,
    pub stream: Option<StreamSource>,
    pub host: String,
    pub tags: Vec<String>,
    pub excludes: Patterns,
    pub one_file_system: bool,
    /// Threads reading files (I/O bound, so more than cores helps on many small files).
    pub read_threads: usize,
    /// Threads compressing and encrypting.
    pub seal_threads: usize,
    pub consistency: ConsistencyOptions,
    /// Fixed chunk size of disks (`disk::DISK_CHUNK` unless measuring).
    pub disk_chunk: u64,
}

impl BackupOptions {
    /// Options to back up `paths` with no disks, streams, scripts or snapshot.
    pub fn files(paths: Vec<PathBuf>, host: &str) -> BackupOptions {
        BackupOptions {
            paths,
            disks: Vec::new(),
            stream: None,
            host: host.into(),
            tags: Vec::new(),
            excludes: Patterns::new(&[]).expect("no patterns compile"),
            one_file_system: false,
            read_threads: 4,
            seal_threads: 2,
            consistency: ConsistencyOptions::default(),
            disk_chunk: disk::DISK_CHUNK,
        }
    }
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
    run_with_cleanup(vault, opts, progress, &Cleanup::default())
}

/// `run`, registering post-scripts and snapshot removal with `cleanup` so a signal handler can run them.
pub fn run_with_cleanup(
    vault: Arc<Vault>,
    opts: &BackupOptions,
    progress: &Progress,
    cleanup: &Cleanup,
) -> Result<PointRecord, BackupError> {
    let start = Instant::now();
    let time = crate::util::now_rfc3339();
    let paths = source_paths(opts)?;
    let recovered = vault.index_orphan_packs()?;
    if recovered > 0 {
        log::info!("indexed {recovered} packs left by an interrupted backup");
    }
    let path_strings: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let points = vault.load_points()?;
    let parent = points
        .iter()
        .rev()
        .find(|p| p.host == opts.host && p.paths == path_strings);
    let session = consistency::begin(&opts.consistency, &paths, cleanup)?;
    let writer = BlobWriter::new(vault.clone(), opts.seal_threads);
    let captured = capture(
        &vault, &writer, opts, &paths, parent, &points, &session, progress, start,
    );
    let (level, report) = session.finish();
    let written = writer.finish()?;
    let c = captured?;
    let mut errors = c.errors;
    errors.sort_by(|a, b| a.path.cmp(&b.path));
    let record = PointRecord {
        version: POINT_VERSION,
        id: PointId(random_bytes()),
        time,
        host: opts.host.clone(),
        tags: opts.tags.clone(),
        paths: path_strings,
        parent: parent.map(|p| p.id),
        tree: c.tree,
        stats: stats(&c.counts, &written),
        errors,
        skipped: c.skipped,
        consistency: level,
        consistency_report: report,
        disks: c.disks.iter().map(|d| d.1.clone()).collect(),
        disks_tree: c.disks_tree,
        streams: c.stream.iter().map(|s| s.1.clone()).collect(),
        streams_tree: c.streams_tree,
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        duration_secs: start.elapsed().as_secs_f64(),
    };
    vault.save_point(&record)?;
    Ok(record)
}

/// Absolute, sorted source paths; checks that every source exists before anything runs.
fn source_paths(opts: &BackupOptions) -> Result<Vec<PathBuf>, BackupError> {
    if opts.paths.is_empty() && opts.disks.is_empty() && opts.stream.is_none() {
        return Err(BackupError::NoSources);
    }
    let mut paths = Vec::new();
    for p in &opts.paths {
        let abs = walk::absolute(p).map_err(|e| BackupError::Source(p.display().to_string(), e))?;
        std::fs::symlink_metadata(&abs).map_err(|e| BackupError::Source(p.display().to_string(), e))?;
        paths.push(abs);
    }
    paths.sort();
    paths.dedup();
    let mut names: Vec<&str> = opts.disks.iter().map(|d| d.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(BackupError::DuplicateDisk(w[0].to_string()));
    }
    for d in &opts.disks {
        std::fs::metadata(&d.path).map_err(|e| BackupError::Source(format!("disk {}", d.name), e))?;
    }
    Ok(paths)
}

/// Everything read for one point.
struct Captured {
    tree: TreeId,
    counts: Counts,
    errors: Vec<crate::format::point::PathMessage>,
    skipped: Vec<crate::format::point::PathMessage>,
    disks: Vec<(Node, DiskRecord)>,
    disks_tree: Option<TreeId>,
    stream: Option<(Node, StreamRecord)>,
    streams_tree: Option<TreeId>,
}

/// Reads files, disks and the stream, all at once: each disk on a thread of its own, the stream on another, files
/// with the walker's pool.
#[allow(clippy::too_many_arguments)]
fn capture(
    vault: &Arc<Vault>,
    writer: &BlobWriter,
    opts: &BackupOptions,
    paths: &[PathBuf],
    parent: Option<&PointRecord>,
    points: &[PointRecord],
    session: &consistency::Session,
    progress: &Progress,
    t0: Instant,
) -> Result<Captured, BackupError> {
    let walker = Walker {
        vault,
        writer,
        excludes: &opts.excludes,
        one_file_system: opts.one_file_system,
        progress,
        names: NameCache::new(),
        errors: Mutex::new(Vec::new()),
        skipped: Mutex::new(Vec::new()),
        hardlinks: Mutex::new(Default::default()),
        counts: Counts::default(),
    };
    let (tree, disks, stream) = std::thread::scope(|s| {
        let disk_threads: Vec<_> = opts
            .disks
            .iter()
            .map(|d| {
                let prev = parent_disk(vault, points, &opts.host, &d.name);
                s.spawn(move || disk::back_up(vault, writer, d, prev.as_ref(), opts.disk_chunk, progress, t0))
            })
            .collect();
        let stream = opts
            .stream
            .as_ref()
            .map(|src| s.spawn(|| stream::back_up(vault, writer, src, progress)));
        let tree = files_tree(&walker, opts, paths, parent, session);
        let disks: Vec<_> = disk_threads
            .into_iter()
            .map(|t| t.join().expect("disk thread"))
            .collect();
        (tree, disks, stream.map(|t| t.join().expect("stream thread")))
    });
    let tree = tree?;
    let mut disk_out = Vec::new();
    for d in disks {
        let d = d?;
        if d.changed_while_read {
            walker.error(
                Path::new(&d.record.source),
                "disk image changed while it was read; it may be torn",
            );
        }
        disk_out.push((d.node, d.record));
    }
    let stream = stream.transpose()?;
    let one_tree = |nodes: Vec<Node>| (!nodes.is_empty()).then(|| walker.store_tree(nodes));
    let disks_tree = one_tree(disk_out.iter().map(|d| d.0.clone()).collect());
    let streams_tree = one_tree(stream.iter().map(|s| s.0.clone()).collect());
    Ok(Captured {
        tree,
        errors: walker.errors.into_inner().expect("lock"),
        skipped: walker.skipped.into_inner().expect("lock"),
        counts: walker.counts,
        disks: disk_out,
        disks_tree,
        stream,
        streams_tree,
    })
}

/// The root tree holding the source paths (empty when there are none), read through the snapshot if any.
fn files_tree(
    w: &Walker,
    opts: &BackupOptions,
    paths: &[PathBuf],
    parent: Option<&PointRecord>,
    session: &consistency::Session,
) -> Result<TreeId, BackupError> {
    let mut selection = Selection::default();
    paths.iter().for_each(|p| selection.add(&walk::components(p)));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.read_threads.max(1))
        .build()
        .map_err(|e| VaultError::Internal(format!("cannot start threads: {e}")))?;
    let parent_root = parent.and_then(|p| w.vault.read_tree(&p.tree).ok());
    Ok(pool.install(|| select_tree(w, session, Path::new("/"), &selection, parent_root.as_ref())))
}

/// The newest earlier node of the disk called `name` on this host, for incrementals.
fn parent_disk(vault: &Vault, points: &[PointRecord], host: &str, name: &str) -> Option<Node> {
    let p = points
        .iter()
        .rev()
        .find(|p| p.host == host && p.disks.iter().any(|d| d.name == name))?;
    let tree = vault.read_tree(&p.disks_tree?).ok()?;
    tree.find(name.as_bytes()).cloned()
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

/// The tree of directory `dir` holding only the selected entries (whole subtrees where a source was named).
fn select_tree(
    w: &Walker,
    session: &consistency::Session,
    dir: &Path,
    sel: &Selection,
    parent: Option<&Tree>,
) -> TreeId {
    let nodes: Vec<Node> = sel
        .children
        .iter()
        .filter_map(|(name, child)| {
            let path = dir.join(OsStr::from_bytes(name));
            let prev = parent.and_then(|t| t.find(name));
            if child.whole {
                let read_from = session.read_path(&path);
                let dev = std::fs::symlink_metadata(&read_from)
                    .map(|m| std::os::unix::fs::MetadataExt::dev(&m))
                    .ok()?;
                return w.entry(&read_from, name.clone(), dev, prev);
            }
            let mut node = crate::fsmeta::read_node(&path, name.clone(), &w.names).ok().flatten()?;
            if node.kind != NodeKind::Dir {
                return None;
            }
            let prev_tree = w.parent_tree(prev);
            node.subtree = Some(select_tree(w, session, &path, child, prev_tree.as_ref()));
            Some(node)
        })
        .collect();
    w.store_tree(nodes)
}
