//! Read-ahead across small files: when a file in a directory is opened, the small files after it in the listing are
//! decoded in the background, their blobs read from each pack in merged ranges. `cp -a`, `rsync` and `tar` read
//! directories in listing order, one file at a time, so without this every small file costs a full round trip to
//! the store; with it a directory of small files costs a few ranged reads. Only opening files triggers it (and, for
//! two seconds after a file was opened, opening directories), so `ls` and `find` never decode file data.

use super::inodes::Key;
use super::layout::Content;
use super::{ChunkCache, Ino, MountFs};
use crate::format::ids::{BlobKind, ChunkId, TreeId};
use crate::format::tree::NodeKind;
use crate::vault::{Location, Vault};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

/// Bytes of sibling files decoded ahead per directory.
const BUDGET: u64 = 32 << 20;
/// Files up to this size count as small.
const SMALL: u64 = 1 << 20;
/// How long after a file open directory listings count as part of a copy.
const ACTIVE_MILLIS: u64 = 2000;

fn now_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl MountFs {
    /// Starts decoding the small files that follow `ino` in its directory, and notes that files are being read.
    pub(super) fn prefetch_siblings(&self, ino: Ino) {
        let Some(Key::Name(parent, name)) = self.inodes.key(ino) else {
            return;
        };
        let Some(tree_id) = self.inodes.get(parent).and_then(|c| self.tree_of(&c)) else {
            return;
        };
        self.last_file_open.store(now_millis(), Relaxed);
        self.prefetch_from(tree_id, &name);
    }

    /// When files were opened in the last moments (a copy is walking the tree), an opened directory gets its small
    /// files decoded from the start, so the first file of each directory does not wait for the store either.
    pub(super) fn prefetch_dir(&self, dir: &Content) {
        if now_millis().saturating_sub(self.last_file_open.load(Relaxed)) > ACTIVE_MILLIS {
            return;
        }
        if let Some(tree_id) = self.tree_of(dir) {
            self.prefetch_from(tree_id, b"");
        }
    }

    /// The listing a directory content shows, if it is a tree.
    fn tree_of(&self, c: &Content) -> Option<TreeId> {
        match c {
            Content::Files(p) => Some(self.points.records[*p].tree),
            Content::Node { node, .. } => node.subtree,
            _ => None,
        }
    }

    /// Decodes the small files after `name` in the background, unless that part of the directory was done already.
    /// Each directory remembers how far ahead it was decoded (a watermark name), so a reader going through it
    /// triggers one batch per `BUDGET` bytes.
    fn prefetch_from(&self, tree_id: TreeId, name: &[u8]) {
        {
            let mut marks = self.prefetched.lock().expect("prefetch lock");
            if marks.get(&tree_id).is_some_and(|mark| name < mark.as_slice()) {
                return;
            }
            // Claim the window now so concurrent opens in this directory do not decode it twice.
            marks.put(tree_id, name.to_vec());
        }
        let (ids, mark) = self.small_files_after(&tree_id, name);
        self.prefetched.lock().expect("prefetch lock").put(tree_id, mark);
        if !ids.is_empty() {
            let (cache, vault) = (self.cache.clone(), self.view.vault().clone());
            self.background.spawn(move || decode_into(&vault, &cache, &ids));
        }
    }

    /// Chunk ids of small regular files after `name` in the tree, not cached yet, within the budget, and the name
    /// of the last file taken (the new watermark; past the end of the directory if all were taken).
    fn small_files_after(&self, tree_id: &TreeId, name: &[u8]) -> (Vec<ChunkId>, Vec<u8>) {
        let Ok(tree) = self.view.tree(tree_id) else {
            return (Vec::new(), vec![0xff; 256]);
        };
        let mut budget = BUDGET;
        let mut ids = Vec::new();
        let small = tree
            .nodes
            .iter()
            .filter(|n| n.name.as_slice() > name && n.kind == NodeKind::File && n.size <= SMALL);
        for n in small {
            if n.size > budget {
                return (ids, n.name.clone());
            }
            budget -= n.size;
            ids.extend(
                n.content
                    .iter()
                    .filter_map(|p| p.chunk)
                    .filter(|id| !self.cache.contains(id)),
            );
        }
        (ids, vec![0xff; 256])
    }
}
/// Reads the chunks pack by pack in merged ranges and puts them in the cache.
fn decode_into(vault: &Vault, cache: &ChunkCache, ids: &[ChunkId]) {
    let mut by_pack: BTreeMap<u32, Vec<([u8; 32], Location)>> = BTreeMap::new();
    {
        let index = vault.index();
        for id in ids {
            if let Some(loc) = index.get(&id.0) {
                by_pack.entry(loc.pack).or_default().push((id.0, loc));
            }
        }
    }
    for (pack, mut blobs) in by_pack {
        blobs.sort_by_key(|(_, l)| l.offset);
        blobs.dedup_by_key(|(id, _)| *id);
        vault.read_blobs(pack, BlobKind::Data, &blobs, &mut |k, data| {
            if let Ok(d) = data {
                cache.insert(ChunkId(blobs[k].0), Arc::new(d));
            }
        });
    }
}
