//! The virtual layout of a mounted vault: which entries a directory has, and what each entry is.
//!
//! ```text
//! points/<time>_<short id>/files/...   the point's tree      points/<...>/point.json   its record
//! points/<...>/disks/<disk>.img        whole disks            points/<...>/disks/<disk>/part<N>.img  partitions
//! points/<...>/streams/<name>          application streams
//! latest -> points/<newest>            hosts/<host>/<time>_<id> -> ../../points/...   tags/<tag>/... likewise
//! versions/files/<path>                union of all paths; a regular file is a directory of its distinct versions
//! ```
//! Point directory names use `-` instead of `:` in the time (`2026-11-24T10-00-00Z_ab12cd34`): a colon before the
//! first `/` makes rsync and scp read a relative path as `host:path`.

use crate::format::point::PointRecord;
use crate::format::tree::{Node, NodeKind, Tree};
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an inode is.
#[derive(Clone, Debug)]
pub enum Content {
    /// The top of the mount (the full layout).
    Root,
    /// `points/`, `hosts/`, `tags/`, `versions/`, and one host's or tag's directory.
    Points,
    Hosts,
    Host(usize),
    Tags,
    Tag(usize),
    VersionsTop,
    /// `points/<name>/`.
    Point(usize),
    /// `points/<name>/point.json`.
    PointJson(usize),
    /// The root tree of a point (`points/<name>/files/`, or the mount root with `--point`).
    Files(usize),
    /// `points/<name>/disks/`: `<disk>.img` per disk, and `<disk>/` for a disk with partitions.
    Disks(usize),
    /// `points/<name>/streams/`: one file per application stream.
    Streams(usize),
    /// `points/<name>/disks/<disk>/`: the partitions of the point's disk number `disk`.
    DiskParts {
        point: usize,
        disk: usize,
    },
    /// `points/<name>/disks/<disk>/part<N>.img`: `length` bytes of a disk's content from `start`.
    Part {
        point: usize,
        disk: NodeRef,
        start: u64,
        length: u64,
    },
    /// A virtual symlink.
    Link(Vec<u8>),
    /// An entry of a point's tree.
    Node {
        point: usize,
        node: NodeRef,
    },
    /// `versions/files/<path>`: a directory in the union of all points (path components from the root).
    Versions(Arc<Vec<Vec<u8>>>),
    /// `versions/files/<path>` where `<path>` is a regular file: its distinct versions.
    VersionsOf(Arc<Vec<Vec<u8>>>),
}

impl Content {
    pub fn is_dir(&self) -> bool {
        match self {
            Content::PointJson(_) | Content::Link(_) | Content::Part { .. } => false,
            Content::Node { node, .. } => node.kind == NodeKind::Dir,
            _ => true,
        }
    }
}

/// A node inside a shared decoded tree: cloning it copies two words, not the node, so listings and the inode table
/// cost little per entry however many the kernel holds.
#[derive(Clone)]
pub struct NodeRef {
    tree: Arc<Tree>,
    index: u32,
}

impl NodeRef {
    pub fn new(tree: Arc<Tree>, index: usize) -> NodeRef {
        NodeRef {
            tree,
            index: index as u32,
        }
    }
}

impl std::ops::Deref for NodeRef {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.tree.nodes[self.index as usize]
    }
}

impl std::fmt::Debug for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeRef({})", String::from_utf8_lossy(&self.name))
    }
}

/// The points of the mount and the names derived from them.
pub struct Points {
    pub records: Vec<PointRecord>,
    /// Directory name of each point, same order as `records` (oldest first).
    pub names: Vec<String>,
    /// `(host, point indexes)` sorted by host.
    pub hosts: Vec<(String, Vec<usize>)>,
    pub tags: Vec<(String, Vec<usize>)>,
}

impl Points {
    /// `records` must be sorted oldest first.
    pub fn new(records: Vec<PointRecord>) -> Points {
        let names = records.iter().map(dir_name).collect();
        let mut hosts: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut tags: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in records.iter().enumerate() {
            hosts.entry(p.host.clone()).or_default().push(i);
            for t in &p.tags {
                tags.entry(t.clone()).or_default().push(i);
            }
        }
        Points {
            records,
            names,
            hosts: hosts.into_iter().collect(),
            tags: tags.into_iter().collect(),
        }
    }

    /// Children of a virtual directory (not of trees or the versions view).
    pub fn list_virtual(&self, dir: &Content) -> Vec<(Vec<u8>, Content)> {
        let links = |idx: &[usize]| -> Vec<(Vec<u8>, Content)> {
            idx.iter()
                .map(|&i| (self.names[i].clone().into_bytes(), Content::Link(self.up_link(i))))
                .collect()
        };
        match dir {
            Content::Root => {
                let mut v = vec![(b"points".to_vec(), Content::Points)];
                if let Some(last) = self.names.last() {
                    v.push((b"latest".to_vec(), Content::Link(format!("points/{last}").into_bytes())));
                }
                v.push((b"hosts".to_vec(), Content::Hosts));
                v.push((b"tags".to_vec(), Content::Tags));
                v.push((b"versions".to_vec(), Content::VersionsTop));
                v
            }
            Content::Points => (0..self.names.len())
                .map(|i| (self.names[i].clone().into_bytes(), Content::Point(i)))
                .collect(),
            Content::Point(i) => {
                let mut v = vec![(b"files".to_vec(), Content::Files(*i))];
                if self.records[*i].disks_tree.is_some() {
                    v.push((b"disks".to_vec(), Content::Disks(*i)));
                }
                if self.records[*i].streams_tree.is_some() {
                    v.push((b"streams".to_vec(), Content::Streams(*i)));
                }
                v.push((b"point.json".to_vec(), Content::PointJson(*i)));
                v
            }
            Content::Hosts => self
                .hosts
                .iter()
                .enumerate()
                .map(|(i, (h, _))| (h.clone().into_bytes(), Content::Host(i)))
                .collect(),
            Content::Host(i) => links(&self.hosts[*i].1),
            Content::Tags => self
                .tags
                .iter()
                .enumerate()
                .map(|(i, (t, _))| (t.clone().into_bytes(), Content::Tag(i)))
                .collect(),
            Content::Tag(i) => links(&self.tags[*i].1),
            Content::VersionsTop => vec![(b"files".to_vec(), Content::Versions(Arc::new(Vec::new())))],
            _ => Vec::new(),
        }
    }

    /// `../../points/<name>`, the target of a host or tag entry.
    fn up_link(&self, i: usize) -> Vec<u8> {
        format!("../../points/{}", self.names[i]).into_bytes()
    }

    /// The name of version `point` of a file called `file_name`: `<time>_<short id><extension>`.
    pub fn version_name(&self, point: usize, file_name: &[u8]) -> Vec<u8> {
        let mut name = self.names[point].clone().into_bytes();
        name.extend_from_slice(extension(file_name));
        name
    }
}

/// `2026-11-24T10-00-00Z_ab12cd34` for a point taken at 2026-11-24T10:00:00.xxxZ.
pub fn dir_name(p: &PointRecord) -> String {
    let time = p.time.get(..19).unwrap_or(&p.time).replace(':', "-");
    format!("{time}Z_{}", p.id.short())
}

/// The extension of a file name including its dot (`.tar.gz` gives `.gz`); empty for none or a leading dot only.
pub fn extension(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|&b| b == b'.') {
        Some(i) if i > 0 => &name[i..],
        _ => b"",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions() {
        assert_eq!(extension(b"a.txt"), b".txt");
        assert_eq!(extension(b"a.tar.gz"), b".gz");
        assert_eq!(extension(b".bashrc"), b"");
        assert_eq!(extension(b"Makefile"), b"");
    }
}
