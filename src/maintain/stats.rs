//! `coffer stats`: what each protected source costs to keep, and what the vault holds as a whole. Pure computation
//! from the vault; printing is the binary's business.
//!
//! A *protected source* is a group of live points with the same host and sources (paths, disks, streams), exactly
//! the groups `forget` decides on ([`GroupBy::default`]). The blobs (trees and chunks) each source's points use are
//! collected with [`Usage`]; the points in the recycle bin are one more owner, since their data stays until they are
//! purged. A blob is *unique* to an owner if no other owner uses it, else *shared*. Stored sizes are sealed sizes
//! (compressed and encrypted, as written in packs); raw sizes are plaintext.
//!
//! Per-owner figures do not depend on `--host`: a blob another host also uses is shared even when that host is not
//! shown. The totals always describe the whole vault.

use crate::format::ids::BlobKind;
use crate::format::point::PointRecord;
use crate::maintain::forget::GroupBy;
use crate::maintain::usage::{Usage, UsageError};
use crate::vault::{Index, VaultError};
use crate::view::View;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

const GIB: f64 = (1u64 << 30) as f64;

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error("no recovery point of host '{0}'")]
    NoHost(String),
    #[error("'{0}' is not a price: give a number of at least 0, like 0.02")]
    Price(String),
}

/// Everything `coffer stats` reports; serialised as is for `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct VaultStats {
    /// One entry per protected source, ordered by host, then sources; only those of the `--host` given.
    pub sources: Vec<SourceStats>,
    pub recycle_bin: BinStats,
    pub totals: Totals,
}

/// One protected source: the live points of one host with one set of sources.
#[derive(Clone, Debug, Serialize)]
pub struct SourceStats {
    pub host: String,
    /// Paths, then `disk:NAME` and `stream:NAME`, sorted.
    pub sources: Vec<String>,
    pub points: usize,
    /// Times of the oldest and newest point (RFC 3339, UTC).
    pub oldest: String,
    pub newest: String,
    /// Data size of the newest point: file bytes plus disk and stream sizes (what a per-instance price is based on).
    pub protected_bytes: u64,
    /// Data sizes of all its points added up (before deduplication).
    pub logical_bytes: u64,
    #[serde(flatten)]
    pub stored: Stored,
}

/// The points in the recycle bin, taken together.
#[derive(Clone, Debug, Serialize)]
pub struct BinStats {
    pub points: usize,
    /// `unique_stored_bytes` is what prune frees once these points are purged.
    #[serde(flatten)]
    pub stored: Stored,
}

/// The stored bytes one owner (a source, or the recycle bin) uses.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stored {
    /// Sealed bytes of the blobs no other owner uses.
    pub unique_stored_bytes: u64,
    /// Sealed bytes of the blobs it uses that other owners use too.
    pub shared_stored_bytes: u64,
    /// Its fair part of the storage: unique bytes plus each shared blob's sealed size divided by the number of
    /// owners using it. Over all sources and the recycle bin these add up to `totals.used_stored_bytes` (within
    /// rounding).
    pub attributed_stored_bytes: u64,
    /// `attributed_stored_bytes` at the price given, per month; only with a price.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_cost: Option<f64>,
}

/// The whole vault, whatever `--host` says.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Totals {
    /// Live points (not in the recycle bin) and the protected sources they form.
    pub points: usize,
    pub sources: usize,
    /// Data sizes of all live points added up.
    pub logical_bytes: u64,
    /// Sizes of all packs the index lists: what the storage holds for data, pack headers and unused blobs included.
    pub stored_bytes: u64,
    pub packs: usize,
    /// Plaintext and sealed bytes of every blob some point (live or in the recycle bin) uses, each counted once.
    pub used_raw_bytes: u64,
    pub used_stored_bytes: u64,
    /// `stored_bytes - used_stored_bytes`: unused blobs and pack headers, which prune could free.
    pub unused_stored_bytes: u64,
    /// Plaintext bytes of the distinct data chunks (not trees) the live points use.
    pub data_raw_bytes: u64,
    /// `logical_bytes / data_raw_bytes`; holes and all-zero disk chunks count as saved. `None` without data.
    pub dedup_ratio: Option<f64>,
    /// `used_raw_bytes / used_stored_bytes` (sealing adds a few bytes per blob). `None` without blobs.
    pub compression_ratio: Option<f64>,
    /// Blobs some point uses that the index does not list (a damaged vault: `coffer check` says more).
    pub missing_blobs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_gib_month: Option<f64>,
    /// `stored_bytes` at the price given, per month: what the storage bills.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monthly_cost: Option<f64>,
}

/// The data size of a point: file bytes plus the sizes of its disks and streams.
pub fn data_bytes(p: &PointRecord) -> u64 {
    let disks: u64 = p.disks.iter().map(|d| d.size).sum();
    let streams: u64 = p.streams.iter().map(|s| s.size).sum();
    p.stats.bytes_total + disks + streams
}

/// Reads a price per GiB and month: a finite number of at least 0.
pub fn parse_price(s: &str) -> Result<f64, StatsError> {
    match s.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(StatsError::Price(s.to_string())),
    }
}

/// Computes the figures of every protected source (only those of `filter_host` if given), the recycle bin and the
/// vault. Reads every tree of every point once per owner using it.
pub fn stats(view: &View, filter_host: Option<&str>) -> Result<VaultStats, StatsError> {
    let vault = view.vault();
    let deleted = vault.deleted_ids()?;
    let (bin, live): (Vec<PointRecord>, Vec<PointRecord>) = vault
        .load_all_points()?
        .into_iter()
        .partition(|p| deleted.contains(&p.id));
    if let Some(h) = filter_host
        && !live.iter().any(|p| p.host == h)
    {
        return Err(StatsError::NoHost(h.to_string()));
    }
    let groups = group(live);
    let mut usages = Vec::with_capacity(groups.len() + 1);
    for points in groups.values() {
        usages.push(Usage::of(view, points)?);
    }
    usages.push(Usage::of(view, &bin)?);
    let index = vault.index();
    let owners = Owners::count(&usages, &index);
    let mut sources = Vec::new();
    for (points, usage) in groups.values().zip(&usages) {
        if filter_host.is_none_or(|h| points[0].host == h) {
            sources.push(source(points, owners.stored(usage)));
        }
    }
    let recycle_bin = BinStats {
        points: bin.len(),
        stored: owners.stored(&usages[groups.len()]),
    };
    let totals = owners.totals(&index, &groups);
    Ok(VaultStats {
        sources,
        recycle_bin,
        totals,
    })
}

impl VaultStats {
    /// Adds monthly costs at `per_gib_month` (see [`parse_price`]): per owner for its attributed bytes, in total for
    /// the stored bytes.
    pub fn set_price(&mut self, per_gib_month: f64) -> Result<(), StatsError> {
        if !(per_gib_month.is_finite() && per_gib_month >= 0.0) {
            return Err(StatsError::Price(per_gib_month.to_string()));
        }
        let cost = |bytes: u64| Some(bytes as f64 * per_gib_month / GIB);
        for s in &mut self.sources {
            s.stored.monthly_cost = cost(s.stored.attributed_stored_bytes);
        }
        self.recycle_bin.stored.monthly_cost = cost(self.recycle_bin.stored.attributed_stored_bytes);
        self.totals.price_per_gib_month = Some(per_gib_month);
        self.totals.monthly_cost = cost(self.totals.stored_bytes);
        Ok(())
    }
}

/// Live points by protected source (oldest first within each, as loaded).
fn group(live: Vec<PointRecord>) -> BTreeMap<String, Vec<PointRecord>> {
    let by = GroupBy::default();
    let mut groups: BTreeMap<String, Vec<PointRecord>> = BTreeMap::new();
    for p in live {
        groups.entry(by.key(&p)).or_default().push(p);
    }
    groups
}

/// The figures of one source from its points (oldest first, at least one).
fn source(points: &[PointRecord], stored: Stored) -> SourceStats {
    let (first, last) = (&points[0], &points[points.len() - 1]);
    SourceStats {
        host: last.host.clone(),
        sources: last.sources(),
        points: points.len(),
        oldest: first.time.clone(),
        newest: last.time.clone(),
        protected_bytes: data_bytes(last),
        logical_bytes: points.iter().map(data_bytes).sum(),
        stored,
    }
}

/// One used blob: where it is stored (`None` if the index lacks it), how many owners use it, whether a live source
/// is among them.
struct Use {
    loc: Option<crate::vault::Location>,
    owners: u32,
    live: bool,
}

/// Every blob some owner uses. The last usage is the recycle bin's; the others are live sources'.
struct Owners(HashMap<[u8; 32], Use>);

impl Owners {
    fn count(usages: &[Usage], index: &Index) -> Owners {
        let mut map: HashMap<[u8; 32], Use> = HashMap::new();
        let live = usages.len().saturating_sub(1);
        for (n, usage) in usages.iter().enumerate() {
            for id in &usage.blobs {
                let u = map.entry(*id).or_insert_with(|| Use {
                    loc: index.get(id),
                    owners: 0,
                    live: false,
                });
                u.owners += 1;
                u.live |= n < live;
            }
        }
        Owners(map)
    }

    /// What one owner's blobs take, unique and shared.
    fn stored(&self, usage: &Usage) -> Stored {
        let mut s = Stored::default();
        let mut attributed = 0.0;
        for u in usage.blobs.iter().filter_map(|id| self.0.get(id)) {
            let len = u.loc.map_or(0, |l| l.length as u64);
            if u.owners == 1 {
                s.unique_stored_bytes += len;
            } else {
                s.shared_stored_bytes += len;
            }
            attributed += len as f64 / u.owners as f64;
        }
        s.attributed_stored_bytes = attributed.round() as u64;
        s
    }

    fn totals(&self, index: &Index, groups: &BTreeMap<String, Vec<PointRecord>>) -> Totals {
        let mut t = Totals {
            points: groups.values().map(Vec::len).sum(),
            sources: groups.len(),
            logical_bytes: groups.values().flatten().map(data_bytes).sum(),
            stored_bytes: index.packs().iter().map(|p| p.size).sum(),
            packs: index.packs().len(),
            ..Totals::default()
        };
        for u in self.0.values() {
            let Some(loc) = u.loc else {
                t.missing_blobs += 1;
                continue;
            };
            t.used_raw_bytes += loc.raw_len as u64;
            t.used_stored_bytes += loc.length as u64;
            if u.live && loc.kind == BlobKind::Data {
                t.data_raw_bytes += loc.raw_len as u64;
            }
        }
        t.unused_stored_bytes = t.stored_bytes.saturating_sub(t.used_stored_bytes);
        t.dedup_ratio = ratio(t.logical_bytes, t.data_raw_bytes);
        t.compression_ratio = ratio(t.used_raw_bytes, t.used_stored_bytes);
        t
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

#[cfg(test)]
mod tests;
