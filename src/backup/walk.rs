//! Walking the source tree in parallel and turning it into stored trees.
//!
//! Directories are processed depth-first with rayon: the entries of a directory are handled in parallel (files read
//! and chunked, subdirectories recursed into), then the directory's tree is encoded and stored. A file whose size,
//! mtime, ctime and inode match its node in the parent point reuses that node's content without being opened.

use super::exclude::Patterns;
use super::file::read_content;
use super::progress::Progress;
use crate::format::ids::{BlobKind, TreeId};
use crate::format::point::PathMessage;
use crate::format::tree::{Node, NodeKind, Piece, Tree};
use crate::fsmeta::{self, NameCache};
use crate::vault::{BlobWriter, Vault};
use rayon::prelude::*;
use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Shared state of one backup's walk.
pub struct Walker<'a> {
    pub vault: &'a Vault,
    pub writer: &'a BlobWriter,
    pub excludes: &'a Patterns,
    pub one_file_system: bool,
    pub progress: &'a Progress,
    pub names: NameCache,
    pub errors: Mutex<Vec<PathMessage>>,
    pub skipped: Mutex<Vec<PathMessage>>,
    /// Content of hardlinked files already read in this backup, by (dev, inode).
    pub hardlinks: Mutex<HashMap<(u64, u64), Vec<Piece>>>,
    pub counts: Counts,
}

#[derive(Default)]
pub struct Counts {
    pub files: AtomicU64,
    pub dirs: AtomicU64,
    pub others: AtomicU64,
    pub files_read: AtomicU64,
    pub bytes_total: AtomicU64,
    pub bytes_read: AtomicU64,
}

impl Walker<'_> {
    pub fn error(&self, path: &Path, message: impl ToString) {
        log::info!("{}: {}", path.display(), message.to_string());
        self.progress.errors.fetch_add(1, Relaxed);
        let msg = PathMessage {
            path: path.display().to_string(),
            message: message.to_string(),
        };
        self.errors.lock().expect("errors lock").push(msg);
    }

    /// Encodes and stores a tree; returns its id.
    pub fn store_tree(&self, nodes: Vec<Node>) -> TreeId {
        let bytes = Tree::new(nodes).encode();
        let id = self.vault.keys().tree_id(&bytes);
        self.writer.add(BlobKind::Tree, id.0, bytes);
        id
    }

    /// Loads the parent point's tree for a directory, if there is one (a damaged one only costs re-reading files).
    pub fn parent_tree(&self, node: Option<&Node>) -> Option<Tree> {
        let id = node.filter(|n| n.kind == NodeKind::Dir)?.subtree?;
        self.vault
            .read_tree(&id)
            .map_err(|e| log::warn!("parent tree {}: {e}", id.short()))
            .ok()
    }

    /// The whole subtree at `path` (a directory on device `dev`), compared against `parent`.
    pub fn dir_tree(&self, path: &Path, dev: u64, parent: Option<&Tree>) -> TreeId {
        let names = match fsmeta::list_dir(path) {
            Ok(n) => n,
            Err(e) => {
                self.error(path, format!("cannot list directory: {e}"));
                Vec::new()
            }
        };
        let nodes: Vec<Node> = names
            .par_iter()
            .filter_map(|name| {
                let child = path.join(OsStr::from_bytes(name));
                let prev = parent.and_then(|t| t.find(name));
                self.entry(&child, name.clone(), dev, prev)
            })
            .collect();
        self.store_tree(nodes)
    }

    /// One entry with everything below it; `None` if excluded, skipped or unreadable.
    pub fn entry(&self, path: &Path, name: Vec<u8>, dev: u64, prev: Option<&Node>) -> Option<Node> {
        if self.writer.failed() || self.excludes.matches(path) {
            return None;
        }
        let mut node = match fsmeta::read_node(path, name, &self.names) {
            Ok(Some(n)) => n,
            Ok(None) => {
                let msg = PathMessage {
                    path: path.display().to_string(),
                    message: "socket, not stored".into(),
                };
                self.skipped.lock().expect("skipped lock").push(msg);
                return None;
            }
            Err(e) => {
                self.error(path, e);
                return None;
            }
        };
        match node.kind {
            NodeKind::File => self.file(path, &mut node, prev).then_some(node),
            NodeKind::Dir => {
                self.counts.dirs.fetch_add(1, Relaxed);
                let prev_tree = self.parent_tree(prev);
                node.subtree = Some(if self.one_file_system && node.dev != dev {
                    self.store_tree(Vec::new())
                } else {
                    self.dir_tree(path, node.dev, prev_tree.as_ref())
                });
                self.progress.file_done(0);
                Some(node)
            }
            _ => {
                self.counts.others.fetch_add(1, Relaxed);
                self.progress.file_done(0);
                Some(node)
            }
        }
    }

    /// Fills a file node's content (reused or read); false if the file could not be read.
    fn file(&self, path: &Path, node: &mut Node, prev: Option<&Node>) -> bool {
        self.counts.files.fetch_add(1, Relaxed);
        self.counts.bytes_total.fetch_add(node.size, Relaxed);
        if let Some(content) = self.reusable(node, prev) {
            node.content = content;
        } else {
            match read_content(self.vault, self.writer, path, node) {
                Ok(out) => {
                    self.counts.files_read.fetch_add(1, Relaxed);
                    self.counts.bytes_read.fetch_add(out.bytes_read, Relaxed);
                    if out.changed {
                        self.error(
                            path,
                            "file changed while it was read; the stored copy may be inconsistent",
                        );
                    }
                    if node.is_hardlinked() {
                        let key = (node.dev, node.inode);
                        self.hardlinks
                            .lock()
                            .expect("hardlinks lock")
                            .insert(key, node.content.clone());
                    }
                }
                Err(e) => {
                    self.error(path, format!("cannot read file: {e}"));
                    return false;
                }
            }
        }
        self.progress.file_done(node.size);
        true
    }

    /// Content that can be taken without reading: from an earlier name of the same hardlinked file in this backup,
    /// or from the parent point's node when size, mtime, ctime and inode all match and its chunks are still stored.
    fn reusable(&self, node: &Node, prev: Option<&Node>) -> Option<Vec<Piece>> {
        if node.is_hardlinked()
            && let Some(c) = self
                .hardlinks
                .lock()
                .expect("hardlinks lock")
                .get(&(node.dev, node.inode))
        {
            return Some(c.clone());
        }
        let p = prev?;
        let same = p.kind == NodeKind::File
            && p.size == node.size
            && p.mtime == node.mtime
            && p.ctime == node.ctime
            && p.inode == node.inode;
        let stored = || p.content.iter().filter_map(|x| x.chunk).all(|c| self.writer.has(&c.0));
        (same && stored()).then(|| p.content.clone())
    }
}

/// The chain of directories from `/` to a source path, to build the root tree that holds the source paths.
pub fn components(path: &Path) -> Vec<Vec<u8>> {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.as_bytes().to_vec()),
            _ => None,
        })
        .collect()
}

/// Absolute path of a source, without resolving its last component (a symlink given as source is stored as one).
pub fn absolute(path: &Path) -> std::io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    let parent = match abs.parent() {
        Some(p) => std::fs::canonicalize(p)?,
        None => return Ok(abs),
    };
    Ok(match abs.file_name() {
        Some(name) => parent.join(name),
        None => parent,
    })
}
