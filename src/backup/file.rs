//! Reading one regular file into content pieces: data regions are chunked, hashed and handed to the writer; holes
//! are recorded as holes and never read.

use crate::format::ids::BlobKind;
use crate::format::tree::{Node, Piece};
use crate::fsmeta;
use crate::vault::{BlobWriter, Vault};
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What reading a file found besides its content.
pub struct ReadOutcome {
    /// Bytes read from disk.
    pub bytes_read: u64,
    /// The file changed while it was read (size, mtime or ctime moved): the stored content may be torn.
    pub changed: bool,
}

/// Fills `node.content` from the file at `path`. `node.size` is set to what was actually covered if the file shrank.
pub fn read_content(vault: &Vault, writer: &BlobWriter, path: &Path, node: &mut Node) -> io::Result<ReadOutcome> {
    let file = fsmeta::open_for_backup(path)?;
    let regions = fsmeta::data_regions(&file, node.size)?;
    let mut pieces = Vec::new();
    let mut pos = 0u64;
    let mut bytes_read = 0u64;
    let mut short = false;
    for r in regions {
        if r.start > pos {
            pieces.push(Piece {
                offset: pos,
                length: r.start - pos,
                chunk: None,
            });
        }
        let got = chunk_region(vault, writer, &file, r.start, r.end - r.start, &mut pieces)?;
        bytes_read += got;
        pos = r.start + got;
        if got < r.end - r.start {
            short = true;
            break;
        }
    }
    if !short && pos < node.size {
        pieces.push(Piece {
            offset: pos,
            length: node.size - pos,
            chunk: None,
        });
        pos = node.size;
    }
    let changed = short || fsmeta::changed_since(&file, node)?;
    node.size = pos;
    node.content = pieces;
    Ok(ReadOutcome { bytes_read, changed })
}

/// Chunks `len` bytes at `start`, appending one piece per chunk; returns the bytes actually read (less at EOF).
fn chunk_region(
    vault: &Vault,
    writer: &BlobWriter,
    file: &File,
    start: u64,
    len: u64,
    pieces: &mut Vec<Piece>,
) -> io::Result<u64> {
    let reader = RangeReader {
        file,
        pos: start,
        end: start + len,
    };
    let mut stream = vault.chunker().stream_sized(reader, len);
    let mut offset = start;
    while let Some(chunk) = stream.next_chunk()? {
        let id = vault.keys().chunk_id(&chunk);
        let n = chunk.len() as u64;
        writer.add(BlobKind::Data, id.0, chunk);
        pieces.push(Piece {
            offset,
            length: n,
            chunk: Some(id),
        });
        offset += n;
    }
    Ok(offset - start)
}

/// Reads a byte range of a file with `pread`, so several regions can be read without seeking.
struct RangeReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for RangeReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}
