//! Recovery point records: listing, loading, saving, and resolving what users type as POINT.

use super::{Vault, VaultError};
use crate::format::ids::PointId;
use crate::format::point::{PointRecord, point_name};
use rayon::prelude::*;

/// Narrows which points are considered (for `list` and for `latest`).
#[derive(Clone, Debug, Default)]
pub struct PointFilter {
    pub host: Option<String>,
    /// A point matches if it has every one of these tags.
    pub tags: Vec<String>,
    /// A point matches if it backed up every one of these paths.
    pub paths: Vec<String>,
}

impl PointFilter {
    pub fn matches(&self, p: &PointRecord) -> bool {
        self.host.as_ref().is_none_or(|h| &p.host == h)
            && self.tags.iter().all(|t| p.tags.contains(t))
            && self.paths.iter().all(|x| p.paths.contains(x))
    }
}

impl Vault {
    /// Ids of every point, sorted by id.
    pub fn point_ids(&self) -> Result<Vec<PointId>, VaultError> {
        let mut ids: Vec<PointId> = self
            .store()
            .list("points/")?
            .iter()
            .filter_map(|o| o.name.strip_prefix("points/").and_then(|h| PointId::from_hex(h).ok()))
            .collect();
        ids.sort();
        Ok(ids)
    }

    pub fn load_point(&self, id: &PointId) -> Result<PointRecord, VaultError> {
        let name = point_name(id);
        let bytes = self.store().read(&name, None)?;
        PointRecord::decode(id, &bytes, self.keys()).map_err(|e| VaultError::damaged(name, e))
    }

    /// Every point, oldest first.
    pub fn load_points(&self) -> Result<Vec<PointRecord>, VaultError> {
        let ids = self.point_ids()?;
        let mut points: Vec<PointRecord> = ids.par_iter().map(|id| self.load_point(id)).collect::<Result<_, _>>()?;
        points.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(points)
    }

    /// Stores a point record: the last write of a backup, after which the point exists.
    pub fn save_point(&self, rec: &PointRecord) -> Result<(), VaultError> {
        self.store().create(&point_name(&rec.id), &rec.encode(self.keys()))?;
        Ok(())
    }
}

/// Finds the point a user means: `latest` (newest matching `filter`), a full id, or a unique id prefix.
pub fn resolve_point(vault: &Vault, spec: &str, filter: &PointFilter) -> Result<PointRecord, VaultError> {
    if spec == "latest" {
        let points = vault.load_points()?;
        return points
            .into_iter()
            .rev()
            .find(|p| filter.matches(p))
            .ok_or_else(|| VaultError::Point("no recovery point matches 'latest'".into()));
    }
    let wanted = spec.to_lowercase();
    if wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(VaultError::Point(format!(
            "'{spec}' is not a recovery point id, id prefix or 'latest'"
        )));
    }
    let ids = vault.point_ids()?;
    let matches: Vec<&PointId> = ids.iter().filter(|id| id.to_hex().starts_with(&wanted)).collect();
    match matches.as_slice() {
        [one] => vault.load_point(one),
        [] => Err(VaultError::Point(format!("no recovery point '{spec}'"))),
        many => Err(VaultError::Point(format!(
            "'{spec}' is ambiguous: it matches {} recovery points",
            many.len()
        ))),
    }
}
