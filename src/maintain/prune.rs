//! `coffer prune`: purge points whose soft-delete window has passed, then free the data no remaining point uses.
//!
//! Runs under an exclusive lock (no backup, restore or mount runs meanwhile). Steps, in an order that keeps the
//! vault healthy if prune dies at any moment:
//! 1. purge: delete each due point record, then its tombstone (a tombstone without a point is harmless);
//! 2. repack: copy the used blobs of packs whose unused share exceeds the threshold into new packs (sealed bytes are
//!    copied as they are, after each blob is opened and verified);
//! 3. write new index files listing exactly the packs that stay and the new ones;
//! 4. delete every older index file;
//! 5. delete unused, repacked and unindexed packs. No index file lists them any more (step 4 came first), so an
//!    interruption leaves at worst packs nobody references, which the next prune deletes.
//!
//! A tree that cannot be read, or a used blob that no pack holds, stops prune before it deletes anything.

use super::usage::{Usage, UsageError};
use crate::format::ids::{PackId, PointId};
use crate::format::index::IndexPack;
use crate::format::pack::{BlobEntry, pack_name};
use crate::format::point::{PointRecord, point_name};
use crate::store::StoreError;
use crate::vault::{OpenPack, SealedBlob, Vault, VaultError, pack_id_of, store_pack};
use crate::view::View;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// Packs listed per new index file.
const PACKS_PER_INDEX: usize = 512;

#[derive(Clone, Copy, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this share of its bytes is unused (0.0 - 1.0).
    pub repack_over: f64,
    pub dry_run: bool,
}

/// What prune did (or, in a dry run, would do).
#[derive(Debug, Default, serde::Serialize)]
pub struct PruneReport {
    pub points_purged: usize,
    pub points_remaining: usize,
    pub blobs_used: usize,
    pub packs_before: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    pub unindexed_packs_deleted: usize,
    pub blobs_repacked: usize,
    pub index_files_replaced: usize,
    pub bytes_before: u64,
    pub bytes_deleted: u64,
    pub bytes_written: u64,
    pub bytes_after: u64,
}

impl PruneReport {
    pub fn bytes_freed(&self) -> u64 {
        self.bytes_deleted.saturating_sub(self.bytes_written)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("{0}; prune deletes nothing while it cannot see everything points use")]
    Usage(#[from] UsageError),
    #[error(
        "{count} blobs that recovery points use are in no pack (e.g. {example}); run 'coffer check'; prune deletes nothing"
    )]
    Missing { count: usize, example: String },
}

/// What happens to each pack.
#[derive(Default)]
struct PackPlan {
    keep: Vec<IndexPack>,
    /// Packs to copy from, with the entries to copy.
    repack: Vec<(IndexPack, Vec<BlobEntry>)>,
    delete: Vec<(PackId, u64)>,
    unindexed: Vec<(PackId, u64)>,
}

pub fn prune(vault: &Arc<Vault>, opts: PruneOptions) -> Result<PruneReport, PruneError> {
    let mut report = PruneReport::default();
    let (due, remaining) = due_points(vault)?;
    report.points_purged = due.len();
    report.points_remaining = remaining.len();
    let usage = Usage::of(&View::new(vault.clone()), &remaining)?;
    report.blobs_used = usage.blobs.len();
    let files = vault.read_index_files()?;
    let listed: HashMap<PackId, u64> = vault
        .store()
        .list("data/")
        .map_err(VaultError::from)?
        .into_iter()
        .filter_map(|o| pack_id_of(&o.name).map(|id| (id, o.size)))
        .collect();
    let plan = plan_packs(&files, &usage.blobs, &listed, opts.repack_over)?;
    fill_plan_report(&mut report, &plan, &listed);
    let nothing_to_free = due.is_empty() && report.bytes_deleted == 0;
    if opts.dry_run || nothing_to_free {
        return Ok(report);
    }
    purge(vault, &due)?;
    let written = repack(vault, &plan.repack)?;
    report.packs_written = written.len();
    report.bytes_written = written.iter().map(|p| p.size).sum();
    report.bytes_after = report.bytes_before - report.bytes_deleted + report.bytes_written;
    let mut packs = plan.keep;
    packs.extend(written);
    let new_index = write_indexes(vault, packs)?;
    let old_index: Vec<&String> = files
        .iter()
        .map(|(n, _)| n)
        .filter(|n| !new_index.contains(*n))
        .collect();
    report.index_files_replaced = old_index.len();
    delete_all(vault, old_index.into_iter().cloned())?;
    let doomed = plan.delete.iter().chain(&plan.unindexed).map(|(id, _)| *id);
    delete_all(
        vault,
        doomed
            .chain(plan.repack.iter().map(|(p, _)| p.id))
            .map(|id| pack_name(&id)),
    )?;
    Ok(report)
}

/// Points whose recycle-bin window has passed (or whose record is already gone), and every other point (live or
/// still in the bin).
fn due_points(vault: &Vault) -> Result<(Vec<PointId>, Vec<PointRecord>), VaultError> {
    let window = vault.settings()?.soft_delete;
    let now = jiff::Timestamp::now();
    let all = vault.load_all_points()?;
    let times: HashMap<PointId, &str> = all.iter().map(|p| (p.id, p.time.as_str())).collect();
    let due: HashSet<PointId> = vault
        .tombstones()?
        .into_iter()
        .filter(|t| {
            times
                .get(&t.point)
                .is_none_or(|time| t.purge_time(&window, time) <= now)
        })
        .map(|t| t.point)
        .collect();
    let remaining = all.iter().filter(|p| !due.contains(&p.id)).cloned().collect();
    Ok((due.into_iter().collect(), remaining))
}

/// Deletes each point record, then its tombstone.
fn purge(vault: &Vault, due: &[PointId]) -> Result<(), VaultError> {
    let names = due
        .iter()
        .flat_map(|id| [point_name(id), crate::format::admin::tombstone_name(id)]);
    delete_all(vault, names)
}

/// Deletes objects in order, checking first and then every `CHECK_EVERY` deletions that prune's lock still stands.
fn delete_all(vault: &Vault, names: impl Iterator<Item = String>) -> Result<(), VaultError> {
    const CHECK_EVERY: usize = 256;
    for (i, name) in names.enumerate() {
        if i % CHECK_EVERY == 0 {
            vault.check_lock()?;
        }
        delete(vault, &name)?;
    }
    Ok(())
}

fn delete(vault: &Vault, name: &str) -> Result<(), VaultError> {
    match vault.store().delete(name) {
        Ok(()) | Err(StoreError::NotFound(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Decides every pack. Each used blob is taken from one pack, preferring packs with the most used bytes, so
/// duplicates left by concurrent backups are dropped with the emptier pack.
fn plan_packs(
    files: &[(String, crate::format::index::IndexFile)],
    used: &HashSet<[u8; 32]>,
    listed: &HashMap<PackId, u64>,
    repack_over: f64,
) -> Result<PackPlan, PruneError> {
    let mut packs: BTreeMap<PackId, &IndexPack> = BTreeMap::new();
    for (_, f) in files {
        for p in f.packs.iter().filter(|p| listed.contains_key(&p.id)) {
            packs.entry(p.id).or_insert(p);
        }
    }
    let used_bytes = |p: &IndexPack| -> u64 {
        p.blobs
            .iter()
            .filter(|b| used.contains(&b.id))
            .map(|b| b.length as u64)
            .sum()
    };
    let mut order: Vec<&IndexPack> = packs.values().copied().collect();
    order.sort_by_cached_key(|p| std::cmp::Reverse(used_bytes(p) * 1000 / p.size.max(1)));
    let mut plan = PackPlan::default();
    let mut taken: HashSet<[u8; 32]> = HashSet::new();
    for p in order {
        let needed: Vec<BlobEntry> = p
            .blobs
            .iter()
            .filter(|b| used.contains(&b.id) && taken.insert(b.id))
            .copied()
            .collect();
        // Unused: blobs no point needs from this pack (the header is not counted: it shrinks with the pack).
        let all_bytes: u64 = p.blobs.iter().map(|b| b.length as u64).sum();
        let unused_bytes = all_bytes - needed.iter().map(|b| b.length as u64).sum::<u64>();
        if needed.is_empty() {
            plan.delete.push((p.id, p.size));
        } else if unused_bytes as f64 / p.size as f64 > repack_over {
            plan.repack.push((p.clone(), needed));
        } else {
            plan.keep.push(p.clone());
        }
    }
    let missing: Vec<&[u8; 32]> = used.iter().filter(|id| !taken.contains(*id)).collect();
    if let Some(first) = missing.first() {
        return Err(PruneError::Missing {
            count: missing.len(),
            example: hex::encode(first)[..16].to_string(),
        });
    }
    plan.unindexed = listed
        .iter()
        .filter(|(id, _)| !packs.contains_key(id))
        .map(|(id, s)| (*id, *s))
        .collect();
    Ok(plan)
}

fn fill_plan_report(r: &mut PruneReport, plan: &PackPlan, listed: &HashMap<PackId, u64>) {
    r.packs_before = listed.len();
    r.bytes_before = listed.values().sum();
    r.packs_deleted = plan.delete.len();
    r.packs_repacked = plan.repack.len();
    r.unindexed_packs_deleted = plan.unindexed.len();
    r.blobs_repacked = plan.repack.iter().map(|(_, b)| b.len()).sum();
    let sizes = plan.delete.iter().chain(&plan.unindexed).map(|(_, s)| *s);
    r.bytes_deleted = sizes.sum::<u64>() + plan.repack.iter().map(|(p, _)| p.size).sum::<u64>();
    r.bytes_after = r.bytes_before - r.bytes_deleted;
}

/// Copies the listed blobs of each pack into new packs (data and trees apart); returns the new packs.
fn repack(vault: &Vault, sources: &[(IndexPack, Vec<BlobEntry>)]) -> Result<Vec<IndexPack>, VaultError> {
    let pack_size = vault.config().pack_size as usize;
    let (mut data, mut trees) = (OpenPack::default(), OpenPack::default());
    let mut written = Vec::new();
    for (pack, blobs) in sources {
        let name = pack_name(&pack.id);
        let bytes = vault.store().read(&name, None)?;
        for b in blobs {
            let sealed = bytes
                .get(b.offset as usize..(b.offset + b.length) as usize)
                .ok_or_else(|| VaultError::Damaged {
                    object: name.clone(),
                    reason: "blob lies past the end of the pack".into(),
                })?;
            let loc = crate::vault::Location {
                pack: 0,
                kind: b.kind,
                flags: b.flags,
                offset: b.offset,
                length: b.length,
                raw_len: b.raw_len,
            };
            vault.open_blob(b.kind, &b.id, &loc, sealed, &name)?;
            let open = if b.kind == crate::format::ids::BlobKind::Tree {
                &mut trees
            } else {
                &mut data
            };
            open.push(SealedBlob {
                kind: b.kind,
                id: b.id,
                flags: b.flags,
                raw_len: b.raw_len,
                bytes: sealed.to_vec(),
            });
            if open.len() >= pack_size {
                written.push(store_pack(vault, open.close(vault))?);
            }
        }
    }
    for open in [&mut data, &mut trees] {
        if !open.is_empty() {
            written.push(store_pack(vault, open.close(vault))?);
        }
    }
    Ok(written)
}

/// Writes index files covering `packs`; returns their names.
fn write_indexes(vault: &Vault, packs: Vec<IndexPack>) -> Result<HashSet<String>, VaultError> {
    let mut names = HashSet::new();
    let mut packs = packs.into_iter().peekable();
    while packs.peek().is_some() {
        let chunk: Vec<IndexPack> = packs.by_ref().take(PACKS_PER_INDEX).collect();
        names.extend(vault.write_index(chunk)?);
    }
    Ok(names)
}

#[cfg(test)]
mod tests;
