//! Whole disks: a block device or raw image file cut into fixed-size chunks on a grid, so a changed block changes
//! exactly the chunk holding it and an incremental backup stores only those chunks.
//!
//! Holes (`SEEK_DATA`/`SEEK_HOLE`) are never read, and chunks that read as all zeros are recorded as holes: neither
//! is stored, compressed or encrypted. An image file whose size and mtime match the parent point's disk of the same
//! name is not read at all.

use super::BackupError;
use super::progress::Progress;
use crate::format::ids::{BlobKind, ChunkId};
use crate::format::sources::DiskRecord;
use crate::format::tree::{Node, NodeKind, Piece};
use crate::fsmeta;
use crate::vault::{BlobWriter, Vault};
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::ops::Range;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::time::Instant;

/// Chunk size for disks: 1 MiB, chosen by measurement (docs/benchmarks.md, "Disk chunk size"). Against 256 KiB it
/// stores about a third more after scattered small writes and reads a random block slower, but keeps a quarter of
/// the index entries and node pieces per disk and makes a 4% smaller first backup; 4 MiB stores over half again as
/// much per incremental. `backup --disk-chunk-size` (hidden) exists for that benchmark.
pub const DISK_CHUNK: u64 = 1 << 20;

/// A disk to back up: its name in the point and where to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiskSource {
    pub name: String,
    pub path: PathBuf,
}

impl DiskSource {
    /// Parses `NAME=PATH` or `PATH` (the name is then the file name).
    pub fn parse(arg: &str) -> Result<DiskSource, String> {
        let (name, path) = match arg.split_once('=') {
            Some((n, p)) => (n.to_string(), PathBuf::from(p)),
            None => {
                let path = PathBuf::from(arg);
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                (name.unwrap_or_default(), path)
            }
        };
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(format!(
                "--disk {arg}: the disk name must be a non-empty file name (NAME=PATH)"
            ));
        }
        Ok(DiskSource { name, path })
    }
}

/// What backing up one disk gives: the file node for `disks_tree` and the record for the point.
pub struct DiskOutcome {
    pub node: Node,
    pub record: DiskRecord,
    /// The image changed while it was read.
    pub changed_while_read: bool,
}

/// Backs up one disk. `parent` is the parent point's node of the same name; `t0` is the start of the backup.
pub fn back_up(
    vault: &Vault,
    writer: &BlobWriter,
    src: &DiskSource,
    parent: Option<&Node>,
    chunk_size: u64,
    progress: &Progress,
    t0: Instant,
) -> Result<DiskOutcome, BackupError> {
    let err = |e: io::Error| BackupError::Source(format!("disk {} ({})", src.name, src.path.display()), e);
    let mut file = fsmeta::open_for_backup(&src.path).map_err(err)?;
    let md = file.metadata().map_err(err)?;
    let is_image = md.file_type().is_file();
    if !is_image && !md.file_type().is_block_device() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "not a block device or regular file");
        return Err(err(e));
    }
    let size = file.seek(SeekFrom::End(0)).map_err(err)?;
    let mut node = disk_node(&src.name, &md, size);
    let mut record = DiskRecord {
        name: src.name.clone(),
        source: std::path::absolute(&src.path)
            .unwrap_or_else(|_| src.path.clone())
            .display()
            .to_string(),
        size,
        chunk_size,
        read_started: t0.elapsed().as_secs_f64(),
        ..Default::default()
    };
    let mut changed_while_read = false;
    match parent.filter(|p| is_image && unchanged(p, &node, writer)) {
        Some(p) => {
            node.content = p.content.clone();
            record.reused = true;
            progress.bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
        }
        None => {
            let regions = if is_image {
                fsmeta::data_regions(&file, size).map_err(err)?
            } else {
                std::iter::once(0..size).collect()
            };
            let mut cut = Cutter::new(vault, writer, parent, chunk_size, progress);
            cut.run(&file, size, &regions).map_err(err)?;
            (node.content, record.bytes_read, record.bytes_changed) = (cut.pieces, cut.bytes_read, cut.changed);
            changed_while_read = is_image && fsmeta::changed_since(&file, &node).map_err(err)?;
        }
    }
    record.bytes_data = node.data_bytes();
    record.table = crate::partition::read_table(size, &mut |off, buf| file.read_exact_at(buf, off)).map_err(err)?;
    record.read_finished = t0.elapsed().as_secs_f64();
    Ok(DiskOutcome {
        node,
        record,
        changed_while_read,
    })
}

/// The node of a disk: a regular file of the disk's size with the source's owner, permissions and times.
fn disk_node(name: &str, md: &std::fs::Metadata, size: u64) -> Node {
    let time = fsmeta::stat_time;
    let mut node = Node::new(name.as_bytes().to_vec(), NodeKind::File);
    node.mode = libc::S_IFREG | (md.mode() & 0o7777);
    (node.uid, node.gid, node.size) = (md.uid(), md.gid(), size);
    node.mtime = time(md.mtime(), md.mtime_nsec());
    node.ctime = time(md.ctime(), md.ctime_nsec());
    node.atime = time(md.atime(), md.atime_nsec());
    (node.dev, node.inode) = (md.dev(), md.ino());
    node
}

/// An image is unchanged since the parent point when its size and mtime match and all its chunks are still stored.
fn unchanged(parent: &Node, node: &Node, writer: &BlobWriter) -> bool {
    parent.size == node.size
        && parent.mtime == node.mtime
        && parent.content.iter().filter_map(|p| p.chunk).all(|c| writer.has(&c.0))
}

/// Cuts a disk into grid chunks and compares each with the parent's piece at the same offset.
struct Cutter<'a> {
    vault: &'a Vault,
    writer: &'a BlobWriter,
    parent: &'a [Piece],
    chunk_size: u64,
    /// Index into `parent` of the first piece that may cover the next chunk.
    cursor: usize,
    progress: &'a Progress,
    pieces: Vec<Piece>,
    bytes_read: u64,
    changed: u64,
}

impl<'a> Cutter<'a> {
    fn new(
        vault: &'a Vault,
        writer: &'a BlobWriter,
        parent: Option<&'a Node>,
        chunk_size: u64,
        progress: &'a Progress,
    ) -> Self {
        Cutter {
            chunk_size: chunk_size.max(4096),
            vault,
            writer,
            parent: parent.map(|p| p.content.as_slice()).unwrap_or(&[]),
            cursor: 0,
            progress,
            pieces: Vec::new(),
            bytes_read: 0,
            changed: 0,
        }
    }

    fn run(&mut self, file: &File, size: u64, regions: &[Range<u64>]) -> io::Result<()> {
        let mut region = 0;
        let mut offset = 0;
        while offset < size {
            if self.writer.failed() {
                return Err(io::Error::other("the vault writer failed"));
            }
            let len = self.chunk_size.min(size - offset);
            while region < regions.len() && regions[region].end <= offset {
                region += 1;
            }
            let has_data = regions.get(region).is_some_and(|r| r.start < offset + len);
            let chunk = if has_data { self.read(file, offset, len)? } else { None };
            self.push(offset, len, chunk);
            self.progress.bytes.fetch_add(len, std::sync::atomic::Ordering::Relaxed);
            offset += len;
        }
        Ok(())
    }

    /// Reads one chunk; `None` if it is all zeros.
    fn read(&mut self, file: &File, offset: u64, len: u64) -> io::Result<Option<ChunkId>> {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        self.bytes_read += len;
        if is_zero(&buf) {
            return Ok(None);
        }
        let id = self.vault.keys().chunk_id(&buf);
        self.writer.add(BlobKind::Data, id.0, buf);
        Ok(Some(id))
    }

    /// Appends a piece (merging adjacent holes) and counts it as changed if the parent had other content there.
    fn push(&mut self, offset: u64, length: u64, chunk: Option<ChunkId>) {
        let changed = match (chunk, self.parent_at(offset, length)) {
            (Some(c), before) => before != Some(Some(c)),
            (None, before) => matches!(before, Some(Some(_))),
        };
        if changed {
            self.changed += length;
        }
        match self.pieces.last_mut() {
            Some(last) if chunk.is_none() && last.chunk.is_none() => last.length += length,
            _ => self.pieces.push(Piece { offset, length, chunk }),
        }
    }

    /// What the parent had at exactly `[offset, offset + length)`: `Some(None)` for a hole covering it, `Some(id)`
    /// for a chunk of exactly that range, `None` for anything else (no parent, other boundaries).
    fn parent_at(&mut self, offset: u64, length: u64) -> Option<Option<ChunkId>> {
        while self.cursor < self.parent.len() {
            let p = &self.parent[self.cursor];
            if p.offset + p.length > offset {
                break;
            }
            self.cursor += 1;
        }
        let p = self.parent.get(self.cursor)?;
        match p.chunk {
            None if p.offset <= offset && offset + length <= p.offset + p.length => Some(None),
            Some(c) if p.offset == offset && p.length == length => Some(Some(c)),
            _ => None,
        }
    }
}

/// True if every byte is zero (OR-folded in blocks, which the compiler vectorises, stopping at the first non-zero
/// block).
pub(crate) fn is_zero(buf: &[u8]) -> bool {
    buf.chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection() {
        let mut v = vec![0u8; 4099];
        assert!(is_zero(&v[1..]));
        v[4098] = 1;
        assert!(!is_zero(&v[1..]));
        v[4098] = 0;
        v[1] = 7;
        assert!(!is_zero(&v[1..]));
    }

    #[test]
    fn disk_names() {
        let d = DiskSource::parse("sda=/dev/sda").unwrap();
        assert_eq!((d.name.as_str(), d.path.to_str().unwrap()), ("sda", "/dev/sda"));
        assert_eq!(DiskSource::parse("/tmp/vm.img").unwrap().name, "vm.img");
        assert!(DiskSource::parse("=/dev/sda").is_err());
        assert!(DiskSource::parse("a/b=/dev/sda").is_err());
    }
}
