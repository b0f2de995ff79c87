//! `restore --verify`: re-read what was written and compare it with the point.

use super::plan::{Action, Plan};
use crate::format::tree::NodeKind;
use crate::vault::Vault;
use rayon::prelude::*;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Re-reads every restored regular file: its size, each data piece's keyed hash against the chunk id, and holes
/// reading as zeros. Returns one message per mismatch.
pub fn verify(vault: &Vault, plan: &Plan, target: &Path) -> Vec<String> {
    let mut problems: Vec<String> = plan
        .entries
        .par_iter()
        .filter(|e| e.action == Action::File && e.node.kind == NodeKind::File)
        .filter_map(|e| verify_file(vault, &target.join(&e.target), &e.node).err())
        .map(|msg| msg.to_string())
        .collect();
    problems.sort();
    problems
}

fn verify_file(vault: &Vault, path: &Path, node: &crate::format::tree::Node) -> Result<(), String> {
    let at = |msg: &str| format!("{}: {msg}", path.display());
    let f = File::open(path).map_err(|e| at(&e.to_string()))?;
    let size = f.metadata().map_err(|e| at(&e.to_string()))?.len();
    if size != node.size {
        return Err(at(&format!("size is {size}, expected {}", node.size)));
    }
    let mut buf = Vec::new();
    for piece in &node.content {
        let ok = match piece.chunk {
            Some(id) => {
                buf.resize(piece.length as usize, 0);
                f.read_exact_at(&mut buf, piece.offset)
                    .map_err(|e| at(&e.to_string()))?;
                vault.keys().chunk_id(&buf) == id
            }
            None => reads_zeros(&f, piece.offset, piece.length).map_err(|e| at(&e.to_string()))?,
        };
        if !ok {
            return Err(at(&format!("content differs at offset {}", piece.offset)));
        }
    }
    Ok(())
}

/// True if `len` bytes at `offset` are all zero; reads in 1 MiB blocks so a large hole needs little memory.
fn reads_zeros(f: &File, offset: u64, len: u64) -> std::io::Result<bool> {
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0;
    while done < len {
        let n = (len - done).min(buf.len() as u64) as usize;
        f.read_exact_at(&mut buf[..n], offset + done)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        done += n as u64;
    }
    Ok(true)
}
