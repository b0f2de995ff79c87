//! Inode numbers and the table of inodes the kernel currently knows.
//!
//! Numbers are derived from (parent inode, name), so the same path gets the same number whenever it is looked up
//! again, and all names of one hardlinked file in a point share one number derived from (point, dev, inode): `cp -a`
//! and `rsync -H` out of the mount then recreate the hardlinks. The table holds an inode from its first lookup
//! until the kernel forgets it, so memory follows what the kernel caches, not the size of the vault.

use super::layout::Content;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::RwLock;

pub type Ino = u64;
pub const ROOT_INO: Ino = 1;

/// What identifies an inode: a name in a parent, or a hardlink group.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    Name(Ino, Vec<u8>),
    Hardlink { point: usize, dev: u64, inode: u64 },
}

impl Key {
    /// The key of `content` named `name` in `parent`.
    pub fn of(parent: Ino, name: &[u8], content: &Content) -> Key {
        match content {
            Content::Node { point, node } if node.is_hardlinked() => Key::Hardlink {
                point: *point,
                dev: node.dev,
                inode: node.inode,
            },
            _ => Key::Name(parent, name.to_vec()),
        }
    }

    /// The inode number this key asks for (the table may move it on a collision).
    pub fn number(&self) -> Ino {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        (h.finish() >> 1).max(ROOT_INO + 1)
    }
}

struct Entry {
    key: Key,
    content: Content,
    lookups: u64,
}

/// The live inodes.
pub struct Inodes {
    map: RwLock<HashMap<Ino, Entry>>,
    root: Content,
}

impl Inodes {
    pub fn new(root: Content) -> Inodes {
        Inodes {
            map: RwLock::new(HashMap::new()),
            root,
        }
    }

    /// The content of a live inode.
    pub fn get(&self, ino: Ino) -> Option<Content> {
        if ino == ROOT_INO {
            return Some(self.root.clone());
        }
        self.map
            .read()
            .expect("inode lock")
            .get(&ino)
            .map(|e| e.content.clone())
    }

    /// The key a live inode was registered under.
    pub fn key(&self, ino: Ino) -> Option<Key> {
        self.map.read().expect("inode lock").get(&ino).map(|e| e.key.clone())
    }

    /// Records one kernel lookup of `content` under `key`; returns its inode number.
    pub fn remember(&self, key: Key, content: Content) -> Ino {
        let mut map = self.map.write().expect("inode lock");
        let mut ino = key.number();
        loop {
            match map.get_mut(&ino) {
                Some(e) if e.key == key => {
                    e.lookups += 1;
                    return ino;
                }
                Some(_) => ino = ino.wrapping_add(1).max(ROOT_INO + 1),
                None => {
                    map.insert(
                        ino,
                        Entry {
                            key,
                            content,
                            lookups: 1,
                        },
                    );
                    return ino;
                }
            }
        }
    }

    /// The kernel dropped `n` lookups of `ino`; the inode is removed when none remain.
    pub fn forget(&self, ino: Ino, n: u64) {
        let mut map = self.map.write().expect("inode lock");
        if let Some(e) = map.get_mut(&ino) {
            e.lookups = e.lookups.saturating_sub(n);
            if e.lookups == 0 {
                map.remove(&ino);
            }
        }
    }

    /// How many inodes are live (for tests and statistics).
    pub fn len(&self) -> usize {
        self.map.read().expect("inode lock").len()
    }
}
