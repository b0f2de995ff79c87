//! Writing a whole disk of a point back to an image file or a block device, then verifying it.
//!
//! A file target is truncated and sized first, so holes stay holes (nothing is written there). A block device must
//! be at least the disk's size; its holes are zeroed (`FALLOC_FL_ZERO_RANGE`, or written zeros where the device
//! cannot). Chunks are fetched and written in parallel (positioned writes), then the target is synced; with
//! `verify`, every chunk is read back and its keyed hash compared with the recorded id, and holes must read as
//! zeros.

use super::RestoreError;
use crate::format::ids::BlobKind;
use crate::format::tree::{Node, Piece};
use crate::view::View;
use rayon::prelude::*;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

/// What a disk restore did.
#[derive(Debug, Default)]
pub struct DiskReport {
    pub bytes_written: u64,
    pub bytes_zeroed: u64,
    pub verified: bool,
}

/// Writes disk `node` (a node of a point's `disks_tree`) to `to`.
pub fn restore_disk(view: &View, node: &Node, to: &Path, verify: bool) -> Result<DiskReport, RestoreError> {
    let err = |e: io::Error| RestoreError::Target {
        path: to.display().to_string(),
        source: e,
    };
    let (file, is_device) = open_target(to, node.size).map_err(err)?;
    let mut report = DiskReport::default();
    let data: Vec<&Piece> = node.content.iter().filter(|p| p.chunk.is_some()).collect();
    data.par_iter()
        .try_for_each(|p| write_piece(view, &file, p))
        .map_err(|e| match e {
            PieceError::Vault(v) => RestoreError::Vault(v),
            PieceError::Io(e) => err(e),
        })?;
    report.bytes_written = data.iter().map(|p| p.length).sum();
    if is_device {
        for p in node.content.iter().filter(|p| p.chunk.is_none()) {
            zero_range(&file, p.offset, p.length).map_err(err)?;
            report.bytes_zeroed += p.length;
        }
    }
    file.sync_all().map_err(err)?;
    if verify {
        verify_disk(view, node, &file).map_err(err)?;
        report.verified = true;
    }
    Ok(report)
}

enum PieceError {
    Vault(crate::vault::VaultError),
    Io(io::Error),
}

fn write_piece(view: &View, file: &File, p: &Piece) -> Result<(), PieceError> {
    let id = p.chunk.expect("data pieces only");
    let data = view
        .vault()
        .read_blob(BlobKind::Data, &id.0)
        .map_err(PieceError::Vault)?;
    file.write_all_at(&data, p.offset).map_err(PieceError::Io)
}

/// Opens the target: a block device of at least `size` bytes, or a regular file truncated to `size`.
fn open_target(to: &Path, size: u64) -> io::Result<(File, bool)> {
    let is_device = std::fs::metadata(to).is_ok_and(|m| m.file_type().is_block_device());
    if is_device {
        let mut file = OpenOptions::new().write(true).read(true).open(to)?;
        let have = io::Seek::seek(&mut file, io::SeekFrom::End(0))?;
        if have < size {
            let msg = format!("the device has {have} bytes, the disk needs {size}");
            return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        }
        return Ok((file, true));
    }
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .create(true)
        .truncate(true)
        .open(to)?;
    file.set_len(size)?;
    Ok((file, false))
}

/// Makes `[offset, offset + len)` of a device read as zeros.
fn zero_range(file: &File, offset: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on an open descriptor with plain integer arguments.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), libc::FALLOC_FL_ZERO_RANGE, offset as i64, len as i64) };
    if rc == 0 {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 20];
    let mut pos = offset;
    while pos < offset + len {
        let n = (offset + len - pos).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

/// Reads the target back: data pieces must hash to their chunk ids, holes must be zeros.
fn verify_disk(view: &View, node: &Node, file: &File) -> io::Result<()> {
    node.content.par_iter().try_for_each(|p| {
        let mut buf = vec![0u8; p.length.min(1 << 24) as usize];
        let mut pos = p.offset;
        while pos < p.offset + p.length {
            let n = (p.offset + p.length - pos).min(buf.len() as u64) as usize;
            file.read_exact_at(&mut buf[..n], pos)?;
            let ok = match p.chunk {
                Some(id) => n as u64 == p.length && view.vault().keys().chunk_id(&buf[..n]) == id,
                None => crate::backup::disk::is_zero(&buf[..n]),
            };
            if !ok {
                let msg = format!("verification failed at byte {pos}: the written data differs from the point");
                return Err(io::Error::other(msg));
            }
            pos += n as u64;
        }
        Ok(())
    })
}
