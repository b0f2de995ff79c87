//! `versions/files/<path>`: every path any point has, and for each regular file the distinct versions of it.
//!
//! A directory lists the union of its children over all points (a name that is a directory anywhere is a
//! directory here). A regular file becomes a directory of versions, one per point where its content differs from
//! the previous version kept, named `<time>_<short id><extension>` after the oldest point that has it; identical
//! consecutive versions collapse into the oldest. Entries that are neither files nor directories show their newest
//! form. Trees come from the shared tree cache, so points that share a directory cost one decode.

use super::layout::Content;
use super::layout::NodeRef;
use super::{FsError, MountFs};
use crate::format::tree::{Node, NodeKind, Tree};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What a name is across points.
enum Seen {
    Dir,
    File,
    Other(usize, NodeRef),
}

impl MountFs {
    /// The tree at `path` in point `point`, if that point has a directory there.
    fn tree_at(&self, point: usize, path: &[Vec<u8>]) -> Result<Option<Arc<Tree>>, FsError> {
        let mut tree = self
            .view
            .tree(&self.points.records[point].tree)
            .map_err(super::io_error)?;
        for name in path {
            let Some(sub) = tree.find(name).and_then(|n| n.subtree) else {
                return Ok(None);
            };
            tree = self.view.tree(&sub).map_err(super::io_error)?;
        }
        Ok(Some(tree))
    }

    /// The node at `path` in point `point`.
    fn node_at(&self, point: usize, path: &[Vec<u8>]) -> Result<Option<NodeRef>, FsError> {
        let Some((name, parent)) = path.split_last() else {
            return Ok(None);
        };
        Ok(self
            .tree_at(point, parent)?
            .and_then(|t| t.position(name).map(|i| NodeRef::new(t, i))))
    }

    /// Children of `versions/files/<path>` when `<path>` is a directory.
    pub(super) fn versions_children(&self, path: &Arc<Vec<Vec<u8>>>) -> Result<Vec<(Vec<u8>, Content)>, FsError> {
        let mut seen: BTreeMap<Vec<u8>, Seen> = BTreeMap::new();
        for point in 0..self.points.records.len() {
            let Some(tree) = self.tree_at(point, path)? else {
                continue;
            };
            for (i, n) in tree.nodes.iter().enumerate() {
                let next = match (n.kind, seen.get(&n.name)) {
                    (NodeKind::Dir, _) | (_, Some(Seen::Dir)) => Seen::Dir,
                    (NodeKind::File, _) | (_, Some(Seen::File)) => Seen::File,
                    _ => Seen::Other(point, NodeRef::new(tree.clone(), i)),
                };
                seen.insert(n.name.clone(), next);
            }
        }
        Ok(seen
            .into_iter()
            .map(|(name, s)| {
                let child = Arc::new([path.as_slice(), std::slice::from_ref(&name)].concat());
                let content = match s {
                    Seen::Dir => Content::Versions(child),
                    Seen::File => Content::VersionsOf(child),
                    Seen::Other(point, node) => Content::Node { point, node },
                };
                (name, content)
            })
            .collect())
    }

    /// The distinct versions of the regular file at `path`, oldest first.
    pub(super) fn versions_of(&self, path: &Arc<Vec<Vec<u8>>>) -> Result<Vec<(Vec<u8>, Content)>, FsError> {
        let file_name = path.last().cloned().unwrap_or_default();
        let mut out = Vec::new();
        let mut last: Option<NodeRef> = None;
        for point in 0..self.points.records.len() {
            let Some(node) = self.node_at(point, path)? else {
                continue;
            };
            if node.kind != NodeKind::File || last.as_ref().is_some_and(|l| same_content(l, &node)) {
                continue;
            }
            out.push((
                self.points.version_name(point, &file_name),
                Content::Node {
                    point,
                    node: node.clone(),
                },
            ));
            last = Some(node);
        }
        Ok(out)
    }
}

/// Same bytes: same size and the same pieces (chunk ids are content hashes).
fn same_content(a: &Node, b: &Node) -> bool {
    a.size == b.size && a.content == b.content
}
