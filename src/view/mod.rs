//! The read-only view of recovery points shared by `ls`, `cat`, `restore`, `check` and the mount: resolving paths,
//! walking trees, and reading file content, so they all agree by construction.

use crate::format::ids::{BlobKind, TreeId};
use crate::format::point::PointRecord;
use crate::format::tree::{Node, NodeKind, Tree};
use crate::vault::{Vault, VaultError};
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Bytes of decoded trees to keep (estimated from their node and content counts).
const TREE_CACHE_BYTES: u64 = 64 << 20;

/// Approximate memory of a decoded tree: its nodes with their pieces and xattrs.
#[derive(Clone)]
struct TreeWeight;

impl Weighter<TreeId, Arc<Tree>> for TreeWeight {
    fn weight(&self, _id: &TreeId, tree: &Arc<Tree>) -> u64 {
        let node = |n: &Node| {
            200 + n.name.len() + 40 * n.content.len() + n.xattrs.iter().map(|x| x.value.len() + 48).sum::<usize>()
        };
        tree.nodes.iter().map(node).sum::<usize>() as u64 + 64
    }
}

/// Read access to the points of one vault, with a byte-bounded, concurrent cache of decoded trees (concurrent
/// requests for one tree wait for a single decode).
pub struct View {
    vault: Arc<Vault>,
    trees: Cache<TreeId, Arc<Tree>, TreeWeight>,
}

/// What a path inside a point names: the point's root (no node of its own) or a node.
pub enum Entry {
    Root(TreeId),
    Node(Box<Node>),
}

impl Entry {
    /// The listing of a directory entry, `None` for anything else.
    pub fn subtree(&self) -> Option<TreeId> {
        match self {
            Entry::Root(id) => Some(*id),
            Entry::Node(n) => n.subtree,
        }
    }
}

impl View {
    pub fn new(vault: Arc<Vault>) -> View {
        View {
            vault,
            trees: Cache::with_weighter(4096, TREE_CACHE_BYTES, TreeWeight),
        }
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    /// A decoded tree, from the cache or the vault.
    /// Decodes the given trees into the cache (those not there yet), reading each pack's share in merged ranges.
    /// For listings that will be wanted soon: the subdirectories of a directory just listed.
    pub fn prefetch_trees(&self, ids: &[TreeId]) {
        let mut by_pack: std::collections::BTreeMap<u32, Vec<([u8; 32], crate::vault::Location)>> = Default::default();
        {
            let index = self.vault.index();
            for id in ids.iter().filter(|id| !self.trees.contains_key(*id)) {
                if let Some(loc) = index.get(&id.0) {
                    by_pack.entry(loc.pack).or_default().push((id.0, loc));
                }
            }
        }
        for (pack, mut blobs) in by_pack {
            blobs.sort_by_key(|(_, l)| l.offset);
            blobs.dedup_by_key(|(id, _)| *id);
            self.vault.read_blobs(pack, BlobKind::Tree, &blobs, &mut |k, plain| {
                if let Some(tree) = plain.ok().and_then(|p| Tree::decode(&p).ok()) {
                    self.trees.insert(TreeId(blobs[k].0), Arc::new(tree));
                }
            });
        }
    }

    pub fn tree(&self, id: &TreeId) -> Result<Arc<Tree>, VaultError> {
        self.trees
            .get_or_insert_with(id, || self.vault.read_tree(id).map(Arc::new))
    }

    /// The entry at `path` inside `point`: an absolute path (or `/`) names a backed-up file; a relative path that
    /// starts with `streams/` or `disks/` names a stream or a disk (`disks/<name>.img`), as in the mount.
    pub fn resolve(&self, point: &PointRecord, path: &Path) -> Result<Entry, VaultError> {
        let (root, rest) = section(point, path)?;
        let mut entry = Entry::Root(root);
        for comp in rest.components() {
            let name = match comp {
                Component::Normal(n) => n.as_encoded_bytes(),
                Component::RootDir | Component::CurDir => continue,
                _ => {
                    return Err(VaultError::Point(format!(
                        "'{}': '..' is not allowed here",
                        path.display()
                    )));
                }
            };
            let Some(dir) = entry.subtree() else {
                return Err(not_found(point, path));
            };
            let tree = self.tree(&dir)?;
            let node = tree.find(name).cloned().ok_or_else(|| not_found(point, path))?;
            entry = Entry::Node(Box::new(node));
        }
        Ok(entry)
    }

    /// The node of the disk called `name` in `point`.
    pub fn disk(&self, point: &PointRecord, name: &str) -> Result<Node, VaultError> {
        let none = || VaultError::Point(format!("recovery point {} has no disk {name}", point.id.short()));
        let tree = self.tree(&point.disks_tree.ok_or_else(none)?)?;
        tree.find(name.as_bytes()).cloned().ok_or_else(none)
    }

    /// Calls `f(path, node)` for every node below `dir`, parents before children, in name order. `base` is the
    /// path of `dir` itself. `f` returns whether to descend into a directory.
    pub fn walk(
        &self,
        dir: &TreeId,
        base: &Path,
        f: &mut dyn FnMut(&Path, &Node) -> Result<bool, VaultError>,
    ) -> Result<(), VaultError> {
        let tree = self.tree(dir)?;
        for node in &tree.nodes {
            let path = base.join(std::ffi::OsStr::from_bytes(&node.name));
            if f(&path, node)?
                && let Some(sub) = node.subtree
            {
                self.walk(&sub, &path, f)?;
            }
        }
        Ok(())
    }

    /// Writes a regular file's whole content to `out` (holes as zeros).
    pub fn write_content(&self, node: &Node, out: &mut dyn Write) -> Result<(), ContentError> {
        if node.kind != NodeKind::File {
            return Err(ContentError::NotAFile);
        }
        let zeros = vec![0u8; 1 << 16];
        for piece in &node.content {
            match piece.chunk {
                Some(id) => out.write_all(&self.vault.read_blob(BlobKind::Data, &id.0)?)?,
                None => {
                    let mut left = piece.length;
                    while left > 0 {
                        let n = left.min(zeros.len() as u64) as usize;
                        out.write_all(&zeros[..n])?;
                        left -= n as u64;
                    }
                }
            }
        }
        Ok(())
    }
}

/// The tree a user path starts in, and the rest of the path.
fn section<'a>(point: &PointRecord, path: &'a Path) -> Result<(TreeId, std::borrow::Cow<'a, Path>), VaultError> {
    let missing = |what: &str| VaultError::Point(format!("recovery point {} has no {what}", point.id.short()));
    if let Ok(rest) = path.strip_prefix("streams") {
        return Ok((point.streams_tree.ok_or_else(|| missing("streams"))?, rest.into()));
    }
    if let Ok(rest) = path.strip_prefix("disks") {
        let tree = point.disks_tree.ok_or_else(|| missing("disks"))?;
        let bytes = rest.as_os_str().as_bytes();
        let name = bytes.strip_suffix(b".img").unwrap_or(bytes);
        return Ok((tree, PathBuf::from(std::ffi::OsStr::from_bytes(name)).into()));
    }
    Ok((point.tree, path.into()))
}

/// Errors streaming content.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("not a regular file")]
    NotAFile,
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

fn not_found(point: &PointRecord, path: &Path) -> VaultError {
    VaultError::Point(format!(
        "{}: no such file or directory in recovery point {}",
        path.display(),
        point.id.short()
    ))
}

/// `path` made relative (leading `/` removed), for joining below a target directory.
pub fn relative(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect()
}
