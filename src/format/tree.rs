//! Trees: one listing per directory, encoded with postcard, stored as a `Tree` blob (see docs/format.md).
//!
//! Names, link targets and xattr names/values are raw bytes, so any name a Linux file system accepts round-trips.
//! A tree's nodes are sorted by name bytes and names are unique; encoding the same directory state twice gives the
//! same bytes, hence the same `TreeId`, which is what makes unchanged directories free in later backups.

use super::ids::{ChunkId, TreeId};
use serde::{Deserialize, Serialize};

/// Version of the tree encoding; stored as the first field of every tree.
pub const TREE_VERSION: u32 = 1;

/// The kind of a file system entry. Sockets are never stored (they cannot be restored meaningfully).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    File,
    Dir,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
}

/// Seconds and nanoseconds since the Unix epoch, as the kernel reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

/// One run of a regular file's content: `length` bytes starting at `offset`, either stored as one chunk or a hole.
///
/// Invariant: the pieces of a file are sorted, contiguous from 0 and end at the file's size, so the piece holding
/// any byte offset is found by binary search on `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    pub offset: u64,
    pub length: u64,
    /// `None` is a hole: reads as zeros, restored as a hole, stores nothing.
    pub chunk: Option<ChunkId>,
}

/// One extended attribute, name and value as raw bytes (POSIX ACLs appear as `system.posix_acl_access` and
/// `system.posix_acl_default`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    pub name: Vec<u8>,
    pub value: Vec<u8>,
}

/// Everything recorded about one directory entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub name: Vec<u8>,
    pub kind: NodeKind,
    /// Full `st_mode` (file type bits plus permissions including setuid, setgid and sticky).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// User and group names at backup time, if the ids resolved.
    pub user: Option<String>,
    pub group: Option<String>,
    pub mtime: Time,
    pub atime: Time,
    pub ctime: Time,
    /// Apparent size in bytes (`st_size`); for symlinks the target length.
    pub size: u64,
    /// `st_dev` and `st_ino` at backup time: change detection against the parent point, and hardlink identity
    /// (nodes of one point with equal `(dev, inode)` and `nlink > 1` are one file).
    pub dev: u64,
    pub inode: u64,
    pub nlink: u64,
    /// `st_rdev` for character and block devices, 0 otherwise.
    pub rdev: u64,
    /// Sorted by name.
    pub xattrs: Vec<Xattr>,
    /// Symlink target bytes (empty for other kinds).
    pub target: Vec<u8>,
    /// Regular files only: the content, see `Piece`.
    pub content: Vec<Piece>,
    /// Directories only: the listing.
    pub subtree: Option<TreeId>,
}

impl Node {
    /// A node with the given name and kind and every other field zero or empty.
    pub fn new(name: Vec<u8>, kind: NodeKind) -> Node {
        Node {
            name,
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: Time::default(),
            atime: Time::default(),
            ctime: Time::default(),
            size: 0,
            dev: 0,
            inode: 0,
            nlink: 1,
            rdev: 0,
            xattrs: Vec::new(),
            target: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// Bytes of this file's content that are data rather than holes.
    pub fn data_bytes(&self) -> u64 {
        self.content
            .iter()
            .filter(|p| p.chunk.is_some())
            .map(|p| p.length)
            .sum()
    }

    /// Index of the piece holding byte `offset`, or `None` at or past the end.
    pub fn piece_at(&self, offset: u64) -> Option<usize> {
        let i = self.content.partition_point(|p| p.offset + p.length <= offset);
        (i < self.content.len()).then_some(i)
    }

    /// True when this node is one name of a multiply-linked regular file.
    pub fn is_hardlinked(&self) -> bool {
        self.kind == NodeKind::File && self.nlink > 1
    }
}

/// One directory listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    pub version: u32,
    /// Sorted by `name`, names unique.
    pub nodes: Vec<Node>,
}

/// Errors decoding a tree.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("tree is not decodable: {0}")]
    Decode(#[from] postcard::Error),
    #[error("tree version {0} is newer than this program understands ({TREE_VERSION})")]
    Version(u32),
}

impl Tree {
    /// Builds a tree from nodes in any order; sorts them by name.
    pub fn new(mut nodes: Vec<Node>) -> Tree {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Tree {
            version: TREE_VERSION,
            nodes,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("encoding a tree into memory cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Tree, TreeError> {
        let tree: Tree = postcard::from_bytes(bytes)?;
        if tree.version > TREE_VERSION {
            return Err(TreeError::Version(tree.version));
        }
        Ok(tree)
    }

    /// The index of the node named `name`, by binary search.
    pub fn position(&self, name: &[u8]) -> Option<usize> {
        self.nodes.binary_search_by(|n| n.name.as_slice().cmp(name)).ok()
    }

    /// The node named `name`, by binary search.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn file(name: &[u8], pieces: Vec<Piece>) -> Node {
        let mut n = Node::new(name.to_vec(), NodeKind::File);
        n.size = pieces.last().map(|p| p.offset + p.length).unwrap_or(0);
        n.content = pieces;
        n
    }

    #[test]
    fn piece_lookup_by_offset() {
        let c = Some(ChunkId([7; 32]));
        let n = file(
            b"f",
            vec![
                Piece {
                    offset: 0,
                    length: 10,
                    chunk: c,
                },
                Piece {
                    offset: 10,
                    length: 100,
                    chunk: None,
                },
                Piece {
                    offset: 110,
                    length: 5,
                    chunk: c,
                },
            ],
        );
        assert_eq!(n.piece_at(0), Some(0));
        assert_eq!(n.piece_at(9), Some(0));
        assert_eq!(n.piece_at(10), Some(1));
        assert_eq!(n.piece_at(109), Some(1));
        assert_eq!(n.piece_at(114), Some(2));
        assert_eq!(n.piece_at(115), None);
        assert_eq!(n.data_bytes(), 15);
    }

    #[test]
    fn tree_sorts_and_finds_non_utf8_names() {
        let t = Tree::new(vec![file(b"\xff\xfe", vec![]), file(b"a", vec![]), file(b"B", vec![])]);
        let names: Vec<&[u8]> = t.nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(names, vec![&b"B"[..], b"a", b"\xff\xfe"]);
        assert!(t.find(b"\xff\xfe").is_some());
        assert!(t.find(b"zz").is_none());
        assert_eq!(Tree::decode(&t.encode()).unwrap(), t);
    }

    fn arb_node() -> impl Strategy<Value = Node> {
        let kinds = prop_oneof![
            Just(NodeKind::File),
            Just(NodeKind::Dir),
            Just(NodeKind::Symlink),
            Just(NodeKind::CharDevice),
            Just(NodeKind::BlockDevice),
            Just(NodeKind::Fifo)
        ];
        let time = (any::<i64>(), 0u32..1_000_000_000).prop_map(|(secs, nanos)| Time { secs, nanos });
        let xattr = (vec(any::<u8>(), 1..20), vec(any::<u8>(), 0..40)).prop_map(|(name, value)| Xattr { name, value });
        let piece =
            (any::<u64>(), any::<u64>(), proptest::option::of(any::<[u8; 32]>())).prop_map(|(offset, length, c)| {
                Piece {
                    offset,
                    length,
                    chunk: c.map(ChunkId),
                }
            });
        (
            (vec(any::<u8>(), 1..40), kinds, any::<u32>(), any::<u32>(), any::<u32>()),
            (proptest::option::of(".{0,10}"), time.clone(), time.clone(), time),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (
                vec(xattr, 0..4),
                vec(any::<u8>(), 0..30),
                vec(piece, 0..5),
                proptest::option::of(any::<[u8; 32]>()),
            ),
        )
            .prop_map(
                |(
                    (name, kind, mode, uid, gid),
                    (user, mtime, atime, ctime),
                    (size, dev, inode, nlink, rdev),
                    (xattrs, target, content, sub),
                )| Node {
                    name,
                    kind,
                    mode,
                    uid,
                    gid,
                    group: user.clone(),
                    user,
                    mtime,
                    atime,
                    ctime,
                    size,
                    dev,
                    inode,
                    nlink,
                    rdev,
                    xattrs,
                    target,
                    content,
                    subtree: sub.map(TreeId),
                },
            )
    }

    proptest! {
        /// Every field of every node kind survives encoding, including arbitrary name and target bytes.
        #[test]
        fn any_tree_round_trips(nodes in vec(arb_node(), 0..12)) {
            let tree = Tree::new(nodes);
            let bytes = tree.encode();
            prop_assert_eq!(Tree::decode(&bytes).unwrap(), tree.clone());
            prop_assert_eq!(Tree::new(tree.nodes.clone()).encode(), bytes, "encoding is deterministic");
        }

        /// Decoding arbitrary bytes never panics.
        #[test]
        fn garbage_does_not_panic(bytes in vec(any::<u8>(), 0..200)) {
            let _ = Tree::decode(&bytes);
        }
    }

    #[test]
    fn newer_version_is_refused() {
        let t = Tree {
            version: TREE_VERSION + 1,
            nodes: vec![],
        };
        assert!(matches!(Tree::decode(&t.encode()), Err(TreeError::Version(_))));
    }
}
