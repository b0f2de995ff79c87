//! Building a restore plan: the entries to create, in order, and the blob reads grouped by pack.

use super::{RestoreError, RestoreOptions};
use crate::format::point::PointRecord;
use crate::format::tree::{Node, NodeKind};
use crate::vault::Location;
use crate::view::{Entry, View, relative};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// How an entry is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Dir,
    /// A regular file whose content is written by the plan's blob reads.
    File,
    /// Another name of the file created by the entry at this index.
    Hardlink(usize),
    /// Symlink, device or FIFO.
    Special,
}

pub struct PlanEntry {
    /// Path below the restore target.
    pub target: PathBuf,
    /// Path inside the recovery point (for messages and patterns).
    pub source: PathBuf,
    pub node: Node,
    pub action: Action,
}

/// One blob to read and where its bytes go: `(entry index, file offset)` pairs.
pub struct BlobUse {
    pub id: [u8; 32],
    pub loc: Location,
    pub writes: Vec<(usize, u64)>,
}

/// The blobs needed from one pack, sorted by offset.
pub struct PackRead {
    pub pack: u32,
    pub blobs: Vec<BlobUse>,
}

pub struct Plan {
    /// Parents before children.
    pub entries: Vec<PlanEntry>,
    pub packs: Vec<PackRead>,
    /// Data bytes to write (holes excluded).
    pub bytes: u64,
    /// Blobs the index does not know, as messages naming the file.
    pub missing: Vec<String>,
}

/// Plans restoring `subpath` of `point` (everything if `None`).
pub fn plan(
    view: &View,
    point: &PointRecord,
    subpath: Option<&Path>,
    opts: &RestoreOptions,
) -> Result<Plan, RestoreError> {
    let sub = subpath.unwrap_or(Path::new("/"));
    let abs_sub = Path::new("/").join(relative(sub));
    let mut entries = Vec::new();
    match view.resolve(point, sub)? {
        Entry::Node(node) if node.kind != NodeKind::Dir => {
            let name = PathBuf::from(std::ffi::OsStr::from_bytes(&node.name));
            entries.push(PlanEntry {
                target: name,
                source: abs_sub.clone(),
                node: *node,
                action: Action::Special,
            });
        }
        entry => {
            let tree = entry.subtree().expect("directory entries have a listing");
            view.walk(&tree, &abs_sub, &mut |path, node| {
                if opts.excludes.matches(path) {
                    return Ok(false);
                }
                let target = path
                    .strip_prefix(&abs_sub)
                    .expect("walk stays below its base")
                    .to_path_buf();
                entries.push(PlanEntry {
                    target,
                    source: path.to_path_buf(),
                    node: node.clone(),
                    action: Action::Dir,
                });
                Ok(true)
            })?;
        }
    }
    if !opts.includes.is_empty() {
        entries = keep_included(entries, &opts.includes);
    }
    assign_actions(&mut entries);
    let (packs, bytes, missing) = group_blobs(view, &entries);
    Ok(Plan {
        entries,
        packs,
        bytes,
        missing,
    })
}

/// Keeps entries matching an include (or below one) and the directories leading to them.
fn keep_included(entries: Vec<PlanEntry>, includes: &crate::backup::exclude::Patterns) -> Vec<PlanEntry> {
    let mut keep: HashSet<PathBuf> = HashSet::new();
    for e in entries.iter().filter(|e| includes.matches_with_ancestors(&e.source)) {
        keep.extend(e.source.ancestors().map(Path::to_path_buf));
    }
    entries.into_iter().filter(|e| keep.contains(&e.source)).collect()
}

/// Decides each entry's action; the first name of a hardlinked file carries the content, the others link to it.
fn assign_actions(entries: &mut [PlanEntry]) {
    let mut first: HashMap<(u64, u64), usize> = HashMap::new();
    for (i, entry) in entries.iter_mut().enumerate() {
        let node = &entry.node;
        entry.action = match node.kind {
            NodeKind::Dir => Action::Dir,
            NodeKind::File if node.is_hardlinked() => match first.get(&(node.dev, node.inode)) {
                Some(&p) => Action::Hardlink(p),
                None => {
                    first.insert((node.dev, node.inode), i);
                    Action::File
                }
            },
            NodeKind::File => Action::File,
            _ => Action::Special,
        };
    }
}

/// Groups every needed blob by pack, each pack's blobs sorted by offset.
fn group_blobs(view: &View, entries: &[PlanEntry]) -> (Vec<PackRead>, u64, Vec<String>) {
    let index = view.vault().index();
    let mut by_pack: BTreeMap<u32, HashMap<[u8; 32], BlobUse>> = BTreeMap::new();
    let (mut bytes, mut missing) = (0u64, Vec::new());
    for (i, e) in entries.iter().enumerate().filter(|(_, e)| e.action == Action::File) {
        for piece in &e.node.content {
            let Some(chunk) = piece.chunk else { continue };
            bytes += piece.length;
            let Some(loc) = index.get(&chunk.0) else {
                missing.push(format!(
                    "{}: chunk {} is missing from the vault",
                    e.source.display(),
                    chunk.short()
                ));
                continue;
            };
            let uses = by_pack.entry(loc.pack).or_default();
            let u = uses.entry(chunk.0).or_insert_with(|| BlobUse {
                id: chunk.0,
                loc,
                writes: Vec::new(),
            });
            u.writes.push((i, piece.offset));
        }
    }
    let packs = by_pack
        .into_iter()
        .map(|(pack, uses)| {
            let mut blobs: Vec<BlobUse> = uses.into_values().collect();
            blobs.sort_by_key(|b| b.loc.offset);
            PackRead { pack, blobs }
        })
        .collect();
    (packs, bytes, missing)
}
