//! `coffer check`: is everything every point needs present (and, with `read_data`, intact)?
//!
//! Phase 1 looks at packs: each indexed pack must be listed by the store with the size the index records; with
//! `read_data`, each pack is read whole, its BLAKE3 compared to its name, and every blob in it decrypted and checked
//! against its id. Phase 2 walks every point's trees: each tree and chunk must be indexed and live in a healthy pack.
//! Damage is reported as the points and file paths it affects.

use crate::format::ids::{PackId, TreeId};
use crate::format::pack::pack_name;
use crate::format::point::PointRecord;
use crate::format::tree::Node;
use crate::vault::Location;
use crate::vault::{Vault, VaultError, pack_id_of};
use crate::view::View;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

/// Findings of a check.
#[derive(Debug, Default, serde::Serialize)]
pub struct CheckReport {
    pub points: usize,
    pub packs: usize,
    pub trees: usize,
    pub blobs_read: usize,
    /// Problems with packs and blobs, one line each.
    pub problems: Vec<String>,
    /// `(point short id, path)` of every file or directory whose data is damaged or missing.
    pub damaged: Vec<(String, String)>,
    /// Packs no index lists (left by an interrupted backup; harmless).
    pub unindexed_packs: usize,
}

impl CheckReport {
    pub fn healthy(&self) -> bool {
        self.problems.is_empty() && self.damaged.is_empty()
    }
}

/// Runs the check.
pub fn check(vault: Arc<Vault>, read_data: bool) -> Result<CheckReport, VaultError> {
    let mut report = CheckReport::default();
    let bad_packs = check_packs(&vault, read_data, &mut report)?;
    // Points in the recycle bin count: they must stay restorable until prune purges them.
    let points = vault.load_all_points()?;
    report.points = points.len();
    let view = View::new(vault.clone());
    let mut walker = TreeCheck {
        view: &view,
        bad_packs: &bad_packs.0,
        bad_blobs: &bad_packs.1,
        seen: HashMap::new(),
    };
    for p in &points {
        walker.check_point(p, &mut report);
    }
    report.trees = walker.seen.len();
    report.damaged.sort();
    report.damaged.dedup();
    Ok(report)
}

type BadSets = (HashSet<PackId>, HashSet<[u8; 32]>);

/// Phase 1: which packs (and, reading data, which blobs) are missing or damaged.
fn check_packs(vault: &Vault, read_data: bool, report: &mut CheckReport) -> Result<BadSets, VaultError> {
    let listed: HashMap<PackId, u64> = vault
        .store()
        .list("data/")?
        .into_iter()
        .filter_map(|o| pack_id_of(&o.name).map(|id| (id, o.size)))
        .collect();
    let packs: Vec<_> = vault.index().packs().to_vec();
    report.packs = packs.len();
    report.unindexed_packs = listed.keys().filter(|id| !vault.index().has_pack(id)).count();
    let mut bad = HashSet::new();
    for p in &packs {
        match listed.get(&p.id) {
            None => report.problems.push(format!("{}: pack is missing", pack_name(&p.id))),
            Some(&size) if size != p.size => report.problems.push(format!(
                "{}: pack is {size} bytes, the index says {}",
                pack_name(&p.id),
                p.size
            )),
            Some(_) => continue,
        }
        bad.insert(p.id);
    }
    let mut bad_blobs = HashSet::new();
    if read_data {
        let groups = vault.index().by_pack();
        let results: Vec<_> = packs
            .par_iter()
            .zip(groups.par_iter())
            .filter(|(p, _)| !bad.contains(&p.id))
            .map(|(p, blobs)| read_pack(vault, &p.id, blobs))
            .collect();
        for r in results {
            report.blobs_read += r.blobs;
            report.problems.extend(r.problems);
            bad_blobs.extend(r.bad_blobs);
        }
    }
    Ok((bad, bad_blobs))
}

struct PackResult {
    blobs: usize,
    problems: Vec<String>,
    bad_blobs: Vec<[u8; 32]>,
}

/// Reads a whole pack and opens every blob the index places in it.
fn read_pack(vault: &Vault, id: &PackId, entries: &[([u8; 32], Location)]) -> PackResult {
    let name = pack_name(id);
    let mut r = PackResult {
        blobs: 0,
        problems: Vec::new(),
        bad_blobs: Vec::new(),
    };
    let bytes = match vault.store().read(&name, None) {
        Ok(b) => b,
        Err(e) => {
            r.problems.push(e.to_string());
            return r;
        }
    };
    if blake3::hash(&bytes).as_bytes() != &id.0 {
        r.problems
            .push(format!("{name}: pack content does not match its name (damaged)"));
    }
    for &(blob, loc) in entries {
        r.blobs += 1;
        let range = loc.offset as usize..(loc.offset + loc.length) as usize;
        let opened = bytes.get(range).ok_or_else(|| VaultError::Damaged {
            object: name.clone(),
            reason: "blob lies past the end of the pack".into(),
        });
        if let Err(e) = opened.and_then(|sealed| vault.open_blob(loc.kind, &blob, &loc, sealed, &name)) {
            r.problems.push(e.to_string());
            r.bad_blobs.push(blob);
        }
    }
    r
}

/// Phase 2 state: tree ids already walked and whether anything below them was damaged.
struct TreeCheck<'a> {
    view: &'a View,
    bad_packs: &'a HashSet<PackId>,
    bad_blobs: &'a HashSet<[u8; 32]>,
    seen: HashMap<TreeId, bool>,
}

impl TreeCheck<'_> {
    fn check_point(&mut self, p: &PointRecord, report: &mut CheckReport) {
        let mut damaged = Vec::new();
        self.check_tree(&p.tree, Path::new("/"), &mut damaged);
        report
            .damaged
            .extend(damaged.into_iter().map(|path| (p.id.short(), path)));
    }

    /// Returns whether anything below `id` is damaged; adds the damaged paths.
    fn check_tree(&mut self, id: &TreeId, path: &Path, damaged: &mut Vec<String>) -> bool {
        if self.seen.get(id) == Some(&false) {
            return false;
        }
        if !self.blob_ok(&id.0) {
            damaged.push(format!("{} (directory listing)", path.display()));
            self.seen.insert(*id, true);
            return true;
        }
        let tree = match self.view.tree(id) {
            Ok(t) => t,
            Err(e) => {
                damaged.push(format!("{} (directory listing: {e})", path.display()));
                self.seen.insert(*id, true);
                return true;
            }
        };
        let mut bad = false;
        for node in &tree.nodes {
            let child = path.join(std::ffi::OsStr::from_bytes(&node.name));
            bad |= self.check_node(node, &child, damaged);
        }
        self.seen.insert(*id, bad);
        bad
    }

    fn check_node(&mut self, node: &Node, path: &Path, damaged: &mut Vec<String>) -> bool {
        if let Some(sub) = node.subtree {
            return self.check_tree(&sub, path, damaged);
        }
        let bad = node.content.iter().filter_map(|p| p.chunk).any(|c| !self.blob_ok(&c.0));
        if bad {
            damaged.push(path.display().to_string());
        }
        bad
    }

    fn blob_ok(&self, id: &[u8; 32]) -> bool {
        let index = self.view.vault().index();
        match index.get(id) {
            None => false,
            Some(loc) => !self.bad_packs.contains(&index.pack(loc.pack).id) && !self.bad_blobs.contains(id),
        }
    }
}
