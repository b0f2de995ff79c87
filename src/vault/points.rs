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
    /// A point matches if its sources (`PointRecord::sources`) are exactly these.
    pub sources: Option<Vec<String>>,
}

impl PointFilter {
    pub fn matches(&self, p: &PointRecord) -> bool {
        self.host.as_ref().is_none_or(|h| &p.host == h)
            && self.tags.iter().all(|t| p.tags.contains(t))
            && self.paths.iter().all(|x| p.paths.contains(x))
            && self.sources.as_ref().is_none_or(|s| *s == p.sources())
    }
}

impl Vault {
    /// Ids of every point not in the recycle bin, sorted by id.
    pub fn point_ids(&self) -> Result<Vec<PointId>, VaultError> {
        let deleted = self.deleted_ids()?;
        let mut ids = self.all_point_ids()?;
        ids.retain(|id| !deleted.contains(id));
        Ok(ids)
    }

    /// Ids of every point record, also those in the recycle bin, sorted by id.
    pub fn all_point_ids(&self) -> Result<Vec<PointId>, VaultError> {
        let mut ids = ids_under(self, "points/")?;
        ids.sort();
        Ok(ids)
    }

    /// Ids of the points in the recycle bin (their tombstones' names; a tombstone may outlive its point briefly).
    pub fn deleted_ids(&self) -> Result<std::collections::HashSet<PointId>, VaultError> {
        Ok(ids_under(self, "deleted/")?.into_iter().collect())
    }

    pub fn load_point(&self, id: &PointId) -> Result<PointRecord, VaultError> {
        let name = point_name(id);
        let bytes = self.store().read(&name, None)?;
        PointRecord::decode(id, &bytes, self.keys()).map_err(|e| VaultError::damaged(name, e))
    }

    /// Every point not in the recycle bin, oldest first.
    pub fn load_points(&self) -> Result<Vec<PointRecord>, VaultError> {
        self.load_points_of(&self.point_ids()?)
    }

    /// Every point record, also those in the recycle bin (whose data must stay until they are purged), oldest first.
    pub fn load_all_points(&self) -> Result<Vec<PointRecord>, VaultError> {
        self.load_points_of(&self.all_point_ids()?)
    }

    fn load_points_of(&self, ids: &[PointId]) -> Result<Vec<PointRecord>, VaultError> {
        // A point purged by a concurrent prune between the listing and the read is skipped, not an error.
        let loaded: Vec<Option<PointRecord>> = ids
            .par_iter()
            .map(|id| match self.load_point(id) {
                Err(VaultError::Store(crate::store::StoreError::NotFound(_))) => Ok(None),
                r => r.map(Some),
            })
            .collect::<Result<_, _>>()?;
        let mut points: Vec<PointRecord> = loaded.into_iter().flatten().collect();
        // Points saved after the index was read have their index files written before them: read those now.
        self.refresh_index()?;
        points.sort_by(|a, b| a.time.cmp(&b.time).then(a.id.cmp(&b.id)));
        Ok(points)
    }

    /// Stores a point record: the last write of a backup, after which the point exists. Refused if the vault was opened
    /// under a lock that no longer stands.
    pub fn save_point(&self, rec: &PointRecord) -> Result<(), VaultError> {
        self.check_lock()?;
        self.store().create(&point_name(&rec.id), &rec.encode(self.keys()))?;
        Ok(())
    }
}

/// The ids named by the objects under `prefix` (`points/<hex>`, `deleted/<hex>`); other names are ignored.
fn ids_under(vault: &Vault, prefix: &str) -> Result<Vec<PointId>, VaultError> {
    Ok(vault
        .store()
        .list(prefix)?
        .iter()
        .filter_map(|o| o.name.strip_prefix(prefix).and_then(|h| PointId::from_hex(h).ok()))
        .collect())
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
    let ids = vault.point_ids()?;
    match_prefix(vault, &ids, spec)
}

/// The one point among `ids` whose hex id starts with `spec`.
pub fn match_prefix(vault: &Vault, ids: &[PointId], spec: &str) -> Result<PointRecord, VaultError> {
    let wanted = spec.to_lowercase();
    if wanted.is_empty() || !wanted.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(VaultError::Point(format!(
            "'{spec}' is not a recovery point id, id prefix or 'latest'"
        )));
    }
    let matches: Vec<&PointId> = ids.iter().filter(|id| id.to_hex().starts_with(&wanted)).collect();
    match matches.as_slice() {
        [one] => {
            let point = vault.load_point(one)?;
            vault.refresh_index()?;
            Ok(point)
        }
        [] => Err(VaultError::Point(format!("no recovery point '{spec}'"))),
        many => Err(VaultError::Point(format!(
            "'{spec}' is ambiguous: it matches {} recovery points",
            many.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn point(id: [u8; 32], time: &str, host: &str) -> PointRecord {
        crate::format::point::sample(id, time, host)
    }

    #[test]
    fn ids_prefixes_latest_and_ambiguity() {
        let (_, vault) = crate::vault::test_vault(1 << 20);
        let mut a = [0xab; 32];
        a[1] = 0x01;
        let mut b = [0xab; 32];
        b[1] = 0x02;
        vault
            .save_point(&point(a, "2026-01-01T00:00:00.000000000Z", "h1"))
            .unwrap();
        vault
            .save_point(&point(b, "2026-01-02T00:00:00.000000000Z", "h2"))
            .unwrap();
        let none = PointFilter::default();
        let err = resolve_point(&vault, "ab", &none).unwrap_err().to_string();
        assert!(err.contains("ambiguous") && err.contains('2'), "{err}");
        assert_eq!(resolve_point(&vault, "AB01", &none).unwrap().id, PointId(a));
        assert_eq!(
            resolve_point(&vault, &PointId(b).to_hex(), &none).unwrap().id,
            PointId(b)
        );
        assert_eq!(resolve_point(&vault, "latest", &none).unwrap().id, PointId(b));
        let h1 = PointFilter {
            host: Some("h1".into()),
            ..Default::default()
        };
        assert_eq!(resolve_point(&vault, "latest", &h1).unwrap().id, PointId(a));
        assert!(
            resolve_point(&vault, "cd", &none)
                .unwrap_err()
                .to_string()
                .contains("no recovery point")
        );
        assert!(
            resolve_point(&vault, "lat", &none)
                .unwrap_err()
                .to_string()
                .contains("not a recovery point id")
        );
    }

    #[test]
    fn points_saved_after_opening_are_readable_and_check_healthy() {
        let (store, early) = crate::vault::test_vault(1 << 20);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"written after the first vault was opened").unwrap();
        let late = Arc::new(Vault::open(Arc::new(store), b"pw").unwrap());
        let opts = crate::backup::BackupOptions::files(vec![dir.path().to_path_buf()], "h");
        crate::backup::run(late, &opts, &Default::default()).unwrap();
        let report = crate::maintain::check::check(early.clone(), false).unwrap();
        assert!(report.healthy(), "{report:?}");
        let p = resolve_point(&early, "latest", &PointFilter::default()).unwrap();
        early.read_tree(&p.tree).unwrap();
    }
}
