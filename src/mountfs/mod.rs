//! The mounted file system, as a library: every FUSE operation as a function from inode numbers to
//! `Result<_, FsError>`, testable without a kernel. `crate::fuse` only translates.
//!
//! Recovery points never change, so everything here is read-only and the kernel may cache it for as long as it likes.

mod background;
mod cache;
mod inodes;
mod layout;
mod prefetch;
mod versions;

pub use cache::ChunkCache;
pub use inodes::{Ino, ROOT_INO};
pub use layout::{Content, NodeRef, dir_name};

use crate::format::point::PointRecord;
use crate::format::tree::{Node, NodeKind, Time};
use crate::vault::{Vault, VaultError};
use crate::view::View;
use inodes::{Inodes, Key};
use layout::Points;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// Chunks fetched ahead of a sequential reader.
const READ_AHEAD: usize = 4;

/// Errors of file system operations, each one errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    NotFound,
    NotDir,
    IsDir,
    /// Damaged or missing data; the cause is logged.
    Io,
    ReadOnly,
    NoAttr,
    /// An attribute namespace this entry does not have at all (see `getxattr`).
    NotSupported,
    Invalid,
    NoData,
}

impl FsError {
    pub fn errno(self) -> i32 {
        match self {
            FsError::NotFound => libc::ENOENT,
            FsError::NotDir => libc::ENOTDIR,
            FsError::IsDir => libc::EISDIR,
            FsError::Io => libc::EIO,
            FsError::ReadOnly => libc::EROFS,
            FsError::NoAttr => libc::ENODATA,
            FsError::NotSupported => libc::EOPNOTSUPP,
            FsError::Invalid => libc::EINVAL,
            FsError::NoData => libc::ENXIO,
        }
    }
}

/// Attributes of an inode, as `stat` shows them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    pub ino: Ino,
    pub kind: NodeKind,
    /// Permission bits including setuid, setgid and sticky.
    pub perm: u16,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    /// 512-byte blocks of data (holes count nothing).
    pub blocks: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    pub rdev: u32,
}

/// What to show.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// Byte budget of the chunk cache.
    pub cache_bytes: u64,
    /// Show only this point's files at the root (`--point`).
    pub single_point: Option<crate::format::ids::PointId>,
}

/// A directory's entries: name and what it is.
pub type Listing = Vec<(Vec<u8>, Content)>;

/// One open file: where the last read ended, to detect sequential reading.
struct OpenFile {
    last_end: AtomicU64,
}

/// A mounted vault.
pub struct MountFs {
    view: Arc<View>,
    points: Points,
    inodes: Inodes,
    cache: Arc<ChunkCache>,
    mount_time: Time,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    /// Recent directory listings by inode.
    listings: Mutex<lru::LruCache<Ino, Arc<Listing>>>,
    next_handle: AtomicU64,
    /// Per directory, the name up to which small files were already decoded ahead (see `prefetch`).
    prefetched: Mutex<lru::LruCache<crate::format::ids::TreeId, Vec<u8>>>,
    /// Milliseconds since the epoch of the last file open (see `prefetch`).
    last_file_open: AtomicU64,
    /// Threads for prefetch and read-ahead.
    background: background::Background,
}

impl MountFs {
    /// `points` must be the points to show, oldest first.
    pub fn new(vault: Arc<Vault>, points: Vec<PointRecord>, opts: &MountOptions) -> MountFs {
        let points = Points::new(points);
        let root = match opts
            .single_point
            .and_then(|id| points.records.iter().position(|p| p.id == id))
        {
            Some(i) => Content::Files(i),
            None => Content::Root,
        };
        let now = jiff::Timestamp::now();
        MountFs {
            view: Arc::new(View::new(vault)),
            points,
            inodes: Inodes::new(root),
            cache: Arc::new(ChunkCache::new(opts.cache_bytes)),
            mount_time: Time {
                secs: now.as_second(),
                nanos: now.subsec_nanosecond() as u32,
            },
            files: Mutex::new(HashMap::new()),
            listings: Mutex::new(lru::LruCache::new(std::num::NonZeroUsize::new(256).expect("non-zero"))),
            next_handle: AtomicU64::new(1),
            last_file_open: AtomicU64::new(0),
            prefetched: Mutex::new(lru::LruCache::new(std::num::NonZeroUsize::new(1024).expect("non-zero"))),
            background: background::Background::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        }
    }

    fn content(&self, ino: Ino) -> Result<Content, FsError> {
        self.inodes.get(ino).ok_or(FsError::NotFound)
    }

    /// Looks `name` up in directory `parent` and counts one kernel reference to it.
    pub fn lookup(&self, parent: Ino, name: &[u8]) -> Result<Attr, FsError> {
        let dir = self.content(parent)?;
        let child = self.child(&dir, name)?;
        let ino = self.inodes.remember(Key::of(parent, name, &child), child.clone());
        Ok(self.attr_of(ino, &child))
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: Ino, n: u64) {
        self.inodes.forget(ino, n);
    }

    pub fn getattr(&self, ino: Ino) -> Result<Attr, FsError> {
        Ok(self.attr_of(ino, &self.content(ino)?))
    }

    pub fn readlink(&self, ino: Ino) -> Result<Vec<u8>, FsError> {
        match self.content(ino)? {
            Content::Link(target) => Ok(target),
            Content::Node { node, .. } if node.kind == NodeKind::Symlink => Ok(node.target.clone()),
            _ => Err(FsError::Invalid),
        }
    }

    /// Opens a file for reading; returns the handle for `read`.
    pub fn open(&self, ino: Ino) -> Result<u64, FsError> {
        let c = self.content(ino)?;
        if c.is_dir() {
            return Err(FsError::IsDir);
        }
        let fh = self.next_handle.fetch_add(1, Relaxed);
        self.files.lock().expect("handles lock").insert(
            fh,
            Arc::new(OpenFile {
                last_end: AtomicU64::new(u64::MAX),
            }),
        );
        self.prefetch_siblings(ino);
        Ok(fh)
    }

    pub fn release(&self, fh: u64) {
        self.files.lock().expect("handles lock").remove(&fh);
    }

    /// Up to `size` bytes at `offset` (fewer only at the end of the file).
    pub fn read(&self, ino: Ino, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, FsError> {
        match self.content(ino)? {
            Content::PointJson(i) => {
                let json = self.point_json(i);
                let start = (offset as usize).min(json.len());
                Ok(json[start..(start + size as usize).min(json.len())].to_vec())
            }
            Content::Node { point, node } if node.kind == NodeKind::File => {
                let sequential = self.sequential(fh, offset, size);
                self.read_node(point, &node, offset, size as u64, sequential)
            }
            Content::Part {
                point,
                disk,
                start,
                length,
            } => {
                let size = (size as u64).min(length.saturating_sub(offset));
                let sequential = self.sequential(fh, offset, size as u32);
                self.read_node(point, &disk, start + offset, size, sequential)
            }
            c if c.is_dir() => Err(FsError::IsDir),
            _ => Err(FsError::Invalid),
        }
    }

    /// Records a read on handle `fh`; true if it starts where the previous one ended.
    fn sequential(&self, fh: u64, offset: u64, size: u32) -> bool {
        let open = self.files.lock().expect("handles lock").get(&fh).cloned();
        open.is_some_and(|o| o.last_end.swap(offset + size as u64, Relaxed) == offset)
    }

    /// Checks that `ino` is a directory (the kernel is told to skip opendir/releasedir where it can; listings are
    /// kept per inode instead, see `readdir`).
    pub fn opendir(&self, ino: Ino) -> Result<(), FsError> {
        if self.content(ino)?.is_dir() {
            Ok(())
        } else {
            Err(FsError::NotDir)
        }
    }

    /// The listing of a directory, from a small cache of recent listings (a large directory is read in many
    /// `readdir` calls; computing the versions view is not free).
    fn listing(&self, ino: Ino, offset: usize) -> Result<Arc<Listing>, FsError> {
        if let Some(l) = self.listings.lock().expect("listings lock").get(&ino) {
            return Ok(l.clone());
        }
        let c = self.content(ino)?;
        let listing = Arc::new(self.list(&c)?);
        if offset == 0 {
            self.prefetch_dir(&c);
        }
        self.listings.lock().expect("listings lock").put(ino, listing.clone());
        Ok(listing)
    }

    /// At most `max` entries of an open directory from index `offset` on: `(inode, name, content)` (a reply buffer
    /// holds a few hundred at most; taking only those keeps listing a large directory linear). `.` and `..` are not
    /// included (the adapter adds them). Inode numbers are the ones `lookup` will give.
    pub fn readdir(&self, parent: Ino, offset: usize, max: usize) -> Result<Vec<(Ino, Vec<u8>, Content)>, FsError> {
        let listing = self.listing(parent, offset)?;
        Ok(listing
            .iter()
            .skip(offset)
            .take(max)
            .map(|(name, c)| (Key::of(parent, name, c).number(), name.clone(), c.clone()))
            .collect())
    }

    /// For readdirplus: attributes of a listed entry, counting a kernel reference like `lookup`.
    pub fn remember(&self, parent: Ino, name: &[u8], content: &Content) -> Attr {
        let ino = self.inodes.remember(Key::of(parent, name, content), content.clone());
        self.attr_of(ino, content)
    }

    /// The kind of a listed entry (for plain readdir).
    pub fn kind_of(&self, content: &Content) -> NodeKind {
        match content {
            Content::Node { node, .. } => node.kind,
            Content::Link(_) => NodeKind::Symlink,
            Content::PointJson(_) | Content::Part { .. } => NodeKind::File,
            _ => NodeKind::Dir,
        }
    }

    /// NUL-terminated names of the extended attributes.
    pub fn listxattr(&self, ino: Ino) -> Result<Vec<u8>, FsError> {
        let mut out = Vec::new();
        if let Content::Node { node, .. } = self.content(ino)? {
            for x in &node.xattrs {
                out.extend_from_slice(&x.name);
                out.push(0);
            }
        }
        Ok(out)
    }

    /// The value of one extended attribute. A missing `security.*` attribute is reported as "not supported" rather
    /// than "no data": tools such as `ls -l` then stop asking for SELinux labels on this file system, which would
    /// otherwise cost one round trip per file. (Points backed up with labels have them and return them.)
    pub fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>, FsError> {
        let missing = if name.starts_with(b"security.") {
            FsError::NotSupported
        } else {
            FsError::NoAttr
        };
        match self.content(ino)? {
            Content::Node { node, .. } => node
                .xattrs
                .iter()
                .find(|x| x.name == name)
                .map(|x| x.value.clone())
                .ok_or(missing),
            _ => Err(missing),
        }
    }

    /// `SEEK_DATA` / `SEEK_HOLE` from `offset`, by the file's recorded holes.
    pub fn lseek(&self, ino: Ino, offset: u64, whence: i32) -> Result<u64, FsError> {
        let size = self.getattr(ino)?.size;
        if offset >= size {
            return Err(FsError::NoData);
        }
        let (node, base) = match self.content(ino)? {
            Content::Node { node, .. } => (node, 0),
            Content::Part { disk, start, .. } => (disk, start),
            _ => {
                return if whence == libc::SEEK_DATA {
                    Ok(offset)
                } else {
                    Ok(size)
                };
            }
        };
        let want_data = match whence {
            libc::SEEK_DATA => true,
            libc::SEEK_HOLE => false,
            _ => return Err(FsError::Invalid),
        };
        let first = node.piece_at(base + offset).ok_or(FsError::NoData)?;
        for p in &node.content[first..] {
            if p.offset >= base + size {
                break;
            }
            if p.chunk.is_some() == want_data {
                return Ok(p.offset.max(base + offset) - base);
            }
        }
        if want_data { Err(FsError::NoData) } else { Ok(size) }
    }

    /// Total bytes of the vault's packs, for `statfs`.
    pub fn stored_bytes(&self) -> u64 {
        self.view.vault().index().packs().iter().map(|p| p.size).sum()
    }

    /// Live inodes and cached chunk bytes (for tests and diagnostics).
    pub fn usage(&self) -> (usize, u64) {
        (self.inodes.len(), self.cache.weight())
    }

    fn point_json(&self, i: usize) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(&self.points.records[i].to_json()).expect("JSON of a record");
        v.push(b'\n');
        v
    }

    fn point_time(&self, i: usize) -> Time {
        crate::util::parse_time(&self.points.records[i].time)
            .map(|t| Time {
                secs: t.as_second(),
                nanos: t.subsec_nanosecond() as u32,
            })
            .unwrap_or(self.mount_time)
    }

    /// The listing of a directory.
    fn list(&self, dir: &Content) -> Result<Listing, FsError> {
        match dir {
            Content::Files(point) => self.tree_listing(*point, &self.points.records[*point].tree),
            Content::Node { point, node } => {
                let sub = node.subtree.ok_or(FsError::NotDir)?;
                self.tree_listing(*point, &sub)
            }
            Content::Versions(path) => self.versions_children(path),
            Content::VersionsOf(path) => self.versions_of(path),
            Content::Disks(point) => self.disks_listing(*point),
            Content::Streams(point) => match self.points.records[*point].streams_tree {
                Some(id) => self.tree_listing(*point, &id),
                None => Ok(Vec::new()),
            },
            Content::DiskParts { point, disk } => self.partitions_listing(*point, *disk),
            other => Ok(self.points.list_virtual(other)),
        }
    }

    /// The entries of a tree; the listings of its subdirectories are fetched in the background (one merged read per
    /// pack), since browsing and `find` ask for them next.
    fn tree_listing(&self, point: usize, id: &crate::format::ids::TreeId) -> Result<Listing, FsError> {
        let tree = self.view.tree(id).map_err(io_error)?;
        let subtrees: Vec<_> = tree.nodes.iter().filter_map(|n| n.subtree).collect();
        if !subtrees.is_empty() {
            let view = self.view.clone();
            self.background.spawn(move || view.prefetch_trees(&subtrees));
        }
        let node = |i: usize| NodeRef::new(tree.clone(), i);
        Ok((0..tree.nodes.len())
            .map(|i| (tree.nodes[i].name.clone(), Content::Node { point, node: node(i) }))
            .collect())
    }

    /// `disks/`: `<disk>.img` for every disk, `<disk>/` for every disk with partitions.
    fn disks_listing(&self, point: usize) -> Result<Listing, FsError> {
        let rec = &self.points.records[point];
        let Some(id) = rec.disks_tree else {
            return Ok(Vec::new());
        };
        let tree = self.view.tree(&id).map_err(io_error)?;
        let mut out: Listing = (0..tree.nodes.len())
            .map(|i| {
                let name = [tree.nodes[i].name.as_slice(), b".img"].concat();
                let node = NodeRef::new(tree.clone(), i);
                (name, Content::Node { point, node })
            })
            .collect();
        for (disk, d) in rec.disks.iter().enumerate() {
            if d.table.as_ref().is_some_and(|t| !t.partitions.is_empty()) {
                out.push((d.name.clone().into_bytes(), Content::DiskParts { point, disk }));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// `disks/<disk>/`: `part<N>.img` per partition, each cut to the disk's size.
    fn partitions_listing(&self, point: usize, disk: usize) -> Result<Listing, FsError> {
        let rec = &self.points.records[point];
        let d = rec.disks.get(disk).ok_or(FsError::NotFound)?;
        let tree = self
            .view
            .tree(&rec.disks_tree.ok_or(FsError::NotFound)?)
            .map_err(io_error)?;
        let i = tree.position(d.name.as_bytes()).ok_or(FsError::Io)?;
        let node = NodeRef::new(tree, i);
        let parts = d.table.as_ref().map(|t| t.partitions.as_slice()).unwrap_or(&[]);
        Ok(parts
            .iter()
            .filter(|p| p.start < node.size)
            .map(|p| {
                let content = Content::Part {
                    point,
                    disk: node.clone(),
                    start: p.start,
                    length: p.length.min(node.size - p.start),
                };
                (format!("part{}.img", p.number).into_bytes(), content)
            })
            .collect())
    }

    /// One child of a directory, by name.
    fn child(&self, dir: &Content, name: &[u8]) -> Result<Content, FsError> {
        let tree_id = match dir {
            Content::Files(p) => Some((*p, self.points.records[*p].tree)),
            Content::Node { point, node } => Some((*point, node.subtree.ok_or(FsError::NotDir)?)),
            _ if !dir.is_dir() => return Err(FsError::NotDir),
            _ => None,
        };
        if let Some((point, id)) = tree_id {
            let tree = self.view.tree(&id).map_err(io_error)?;
            let i = tree.position(name).ok_or(FsError::NotFound)?;
            return Ok(Content::Node {
                point,
                node: NodeRef::new(tree, i),
            });
        }
        self.list(dir)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)
            .ok_or(FsError::NotFound)
    }

    fn attr_of(&self, ino: Ino, c: &Content) -> Attr {
        let (t, dir) = (self.mount_time, |time: Time| Attr {
            ino,
            kind: NodeKind::Dir,
            perm: 0o555,
            nlink: 2,
            uid: 0,
            gid: 0,
            size: 0,
            blocks: 0,
            atime: time,
            mtime: time,
            ctime: time,
            rdev: 0,
        });
        match c {
            Content::Node { node, .. } => node_attr(ino, node),
            Content::Point(i) | Content::Files(i) | Content::Disks(i) | Content::Streams(i) => dir(self.point_time(*i)),
            Content::DiskParts { point, .. } => dir(self.point_time(*point)),
            Content::Part {
                disk, start, length, ..
            } => Attr {
                size: *length,
                blocks: data_in(disk, *start, *length).div_ceil(512),
                ..node_attr(ino, disk)
            },
            Content::PointJson(i) => {
                let size = self.point_json(*i).len() as u64;
                Attr {
                    kind: NodeKind::File,
                    perm: 0o444,
                    nlink: 1,
                    size,
                    blocks: size.div_ceil(512),
                    ..dir(self.point_time(*i))
                }
            }
            Content::Link(target) => Attr {
                kind: NodeKind::Symlink,
                perm: 0o777,
                nlink: 1,
                size: target.len() as u64,
                ..dir(t)
            },
            _ => dir(t),
        }
    }

    /// Reads a range of a backed-up file through the chunk cache; a sequential reader gets the next chunks fetched
    /// in the background.
    fn read_node(
        &self,
        point: usize,
        node: &Node,
        offset: u64,
        size: u64,
        sequential: bool,
    ) -> Result<Vec<u8>, FsError> {
        let end = (offset + size).min(node.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut i = node.piece_at(offset).ok_or(FsError::Io)?;
        while (offset + out.len() as u64) < end {
            let pos = offset + out.len() as u64;
            let p = node.content.get(i).ok_or(FsError::Io)?;
            let take = ((p.offset + p.length).min(end) - pos) as usize;
            let skip = (pos - p.offset) as usize;
            match p.chunk {
                None => out.resize(out.len() + take, 0),
                Some(id) => {
                    let data = self
                        .cache
                        .get(self.view.vault(), &id)
                        .map_err(|e| self.damaged(point, node, e))?;
                    let part = data.get(skip..skip + take).ok_or(FsError::Io)?;
                    out.extend_from_slice(part);
                }
            }
            i += 1;
        }
        if sequential {
            self.read_ahead(node, i);
        }
        Ok(out)
    }

    /// Starts decoding the chunks after piece `next` in the background.
    fn read_ahead(&self, node: &Node, next: usize) {
        let ids: Vec<_> = node
            .content
            .iter()
            .skip(next)
            .filter_map(|p| p.chunk)
            .take(READ_AHEAD)
            .collect();
        for id in ids.into_iter().filter(|id| !self.cache.contains(id)) {
            let (cache, vault) = (self.cache.clone(), self.view.vault().clone());
            self.background.spawn(move || {
                let _ = cache.get(&vault, &id);
            });
        }
    }

    fn damaged(&self, point: usize, node: &Node, e: VaultError) -> FsError {
        let name = String::from_utf8_lossy(&node.name);
        log::error!("recovery point {}: {name}: {e}", self.points.records[point].id.short());
        FsError::Io
    }
}

fn io_error(e: VaultError) -> FsError {
    log::error!("{e}");
    FsError::Io
}

/// Bytes of `node`'s content in `[start, start + length)` that are data, not holes.
fn data_in(node: &Node, start: u64, length: u64) -> u64 {
    let end = start + length;
    node.content
        .iter()
        .filter(|p| p.chunk.is_some())
        .map(|p| (p.offset + p.length).min(end).saturating_sub(p.offset.max(start)))
        .sum()
}

/// Attributes of a backed-up entry, exactly as recorded.
fn node_attr(ino: Ino, n: &Node) -> Attr {
    Attr {
        ino,
        kind: n.kind,
        perm: (n.mode & 0o7777) as u16,
        nlink: n.nlink.min(u32::MAX as u64) as u32,
        uid: n.uid,
        gid: n.gid,
        size: n.size,
        blocks: if n.kind == NodeKind::File {
            n.data_bytes().div_ceil(512)
        } else {
            n.size.div_ceil(512)
        },
        atime: n.atime,
        mtime: n.mtime,
        ctime: n.ctime,
        rdev: n.rdev as u32,
    }
}

#[cfg(test)]
mod tests;
