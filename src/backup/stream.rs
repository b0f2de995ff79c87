//! Application streams: standard input, or the output of a command such as `pg_dump`, stored as one file.
//!
//! Streams are cut with the content-defined chunker, so successive dumps of a slowly changing database share most
//! chunks. A command that exits with a non-zero status (or is killed) fails the backup: a truncated dump is never
//! labelled good.

use super::BackupError;
use super::progress::Progress;
use crate::format::ids::BlobKind;
use crate::format::sources::StreamRecord;
use crate::format::tree::{Node, NodeKind, Piece, Time};
use crate::vault::{BlobWriter, Vault};
use std::io::{self, Read};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;

/// A stream to back up: its name in the point and, for a command's output, the shell command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSource {
    pub name: String,
    /// Run with `sh -c`; `None` reads this process's standard input.
    pub command: Option<String>,
}

/// Backs up one stream; returns its node for `streams_tree` and its record.
pub fn back_up(
    vault: &Vault,
    writer: &BlobWriter,
    src: &StreamSource,
    progress: &Progress,
) -> Result<(Node, StreamRecord), BackupError> {
    let err = |e: io::Error| BackupError::Source(format!("stream {}", src.name), e);
    let content = match &src.command {
        None => chunk_all(vault, writer, io::stdin().lock(), progress).map_err(err)?,
        Some(cmd) => run_command(vault, writer, cmd, progress).map_err(|e| match e {
            CommandError::Io(e) => err(e),
            CommandError::Failed(status) => BackupError::Command(cmd.clone(), status),
        })?,
    };
    let size = content.last().map(|p| p.offset + p.length).unwrap_or(0);
    let now = jiff::Timestamp::now();
    let mut node = Node::new(src.name.as_bytes().to_vec(), NodeKind::File);
    node.mode = libc::S_IFREG | 0o600;
    // SAFETY: geteuid and getegid cannot fail and touch no memory.
    (node.uid, node.gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    node.mtime = Time {
        secs: now.as_second(),
        nanos: now.subsec_nanosecond() as u32,
    };
    (node.ctime, node.atime, node.size, node.content) = (node.mtime, node.mtime, size, content);
    let record = StreamRecord {
        name: src.name.clone(),
        command: src.command.clone(),
        size,
    };
    Ok((node, record))
}

enum CommandError {
    Io(io::Error),
    Failed(String),
}

/// Runs `cmd` with `sh -c`, storing its standard output; fails unless it exits with status 0.
fn run_command(vault: &Vault, writer: &BlobWriter, cmd: &str, progress: &Progress) -> Result<Vec<Piece>, CommandError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(CommandError::Io)?;
    let stdout = child.stdout.take().expect("stdout was piped");
    let content = chunk_all(vault, writer, stdout, progress);
    if content.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().map_err(CommandError::Io)?;
    let content = content.map_err(CommandError::Io)?;
    if !status.success() {
        return Err(CommandError::Failed(status.to_string()));
    }
    Ok(content)
}

/// Chunks everything `reader` yields into pieces from offset 0.
fn chunk_all(vault: &Vault, writer: &BlobWriter, reader: impl Read, progress: &Progress) -> io::Result<Vec<Piece>> {
    let mut stream = vault.chunker().stream(reader);
    let (mut pieces, mut offset) = (Vec::new(), 0u64);
    while let Some(chunk) = stream.next_chunk()? {
        if writer.failed() {
            return Err(io::Error::other("the vault writer failed"));
        }
        let id = vault.keys().chunk_id(&chunk);
        let length = chunk.len() as u64;
        writer.add(BlobKind::Data, id.0, chunk);
        pieces.push(Piece {
            offset,
            length,
            chunk: Some(id),
        });
        offset += length;
        progress.bytes.fetch_add(length, Relaxed);
    }
    Ok(pieces)
}
