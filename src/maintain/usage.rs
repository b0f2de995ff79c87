//! Which blobs recovery points use: every tree (the root, the disks and streams trees, each directory) and every
//! file chunk. Prune keeps exactly these; stats attributes their stored bytes to the sources that use them.
//!
//! A tree already walked is not walked again (its blobs are already counted), so unchanged directories shared by
//! many points cost one read. A tree that cannot be read is an error: what it references is then unknown, and
//! nothing may be deleted on a guess.

use crate::format::ids::TreeId;
use crate::format::point::PointRecord;
use crate::vault::VaultError;
use crate::view::View;
use std::collections::HashSet;

/// The blobs used by some set of points.
#[derive(Debug, Default)]
pub struct Usage {
    /// Trees and chunks (ids of both kinds never collide: they use different MAC keys).
    pub blobs: HashSet<[u8; 32]>,
    trees: HashSet<TreeId>,
}

#[derive(Debug, thiserror::Error)]
#[error("recovery point {point}: cannot read tree {tree}: {source}")]
pub struct UsageError {
    pub point: String,
    pub tree: String,
    #[source]
    pub source: VaultError,
}

impl Usage {
    /// Adds everything `point` uses.
    pub fn add_point(&mut self, view: &View, point: &PointRecord) -> Result<(), UsageError> {
        let roots = [Some(point.tree), point.disks_tree, point.streams_tree];
        let mut stack: Vec<TreeId> = roots.into_iter().flatten().collect();
        while let Some(id) = stack.pop() {
            if !self.trees.insert(id) {
                continue;
            }
            self.blobs.insert(id.0);
            let tree = view.tree(&id).map_err(|source| UsageError {
                point: point.id.short(),
                tree: id.short(),
                source,
            })?;
            for node in &tree.nodes {
                stack.extend(node.subtree);
                self.blobs
                    .extend(node.content.iter().filter_map(|p| p.chunk).map(|c| c.0));
            }
        }
        Ok(())
    }

    /// Everything `points` use.
    pub fn of(view: &View, points: &[PointRecord]) -> Result<Usage, UsageError> {
        let mut usage = Usage::default();
        for p in points {
            usage.add_point(view, p)?;
        }
        Ok(usage)
    }
}
