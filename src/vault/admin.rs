//! Vault settings and the recycle bin: reading the settings in force, recording a change, soft-deleting and
//! bringing back points. The rules about *which* changes are allowed live in `maintain::policy`.

use super::{Vault, VaultError};
use crate::format::admin::{
    AdminError, Settings, TOMBSTONE_VERSION, Tombstone, settings_name, settings_seq, tombstone_name,
};
use crate::format::ids::PointId;
use crate::store::StoreError;
use rayon::prelude::*;

/// `user@host` of this process, recorded in settings changes, tombstones and jobs.
pub fn actor() -> String {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let user = crate::fsmeta::NameCache::new()
        .user(uid)
        .unwrap_or_else(|| format!("uid{uid}"));
    format!("{user}@{}", crate::util::hostname())
}

impl Vault {
    /// The settings in force: the `settings/<seq>` object with the highest number, or the defaults.
    pub fn settings(&self) -> Result<Settings, VaultError> {
        let newest = self
            .store()
            .list("settings/")?
            .iter()
            .filter_map(|o| settings_seq(&o.name))
            .max();
        let Some(seq) = newest else {
            return Ok(Settings::default());
        };
        let name = settings_name(seq);
        let bytes = self.store().read(&name, None)?;
        Settings::decode(seq, &bytes, self.keys()).map_err(|e| admin_damage(&name, e))
    }

    /// Records `next` as the settings following `current` (whose `seq` it must carry on). Fails without a change if
    /// someone else changed the settings since `current` was read.
    pub fn save_settings(&self, current: &Settings, mut next: Settings) -> Result<Settings, VaultError> {
        next.seq = current.seq + 1;
        next.changed = crate::util::now_rfc3339();
        next.by = actor();
        let name = settings_name(next.seq);
        match self.store().create(&name, &next.encode(self.keys())) {
            Ok(()) => Ok(next),
            Err(StoreError::AlreadyExists(_)) => Err(VaultError::Point(
                "the vault settings were changed by someone else meanwhile; run the command again".into(),
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// Every tombstone, by point id.
    pub fn tombstones(&self) -> Result<Vec<Tombstone>, VaultError> {
        let ids: Vec<PointId> = self.deleted_ids()?.into_iter().collect();
        let loaded: Vec<Option<Tombstone>> = ids
            .par_iter()
            .map(|id| {
                let name = tombstone_name(id);
                match self.store().read(&name, None) {
                    Ok(bytes) => Tombstone::decode(id, &bytes, self.keys())
                        .map(Some)
                        .map_err(|e| admin_damage(&name, e)),
                    Err(StoreError::NotFound(_)) => Ok(None),
                    Err(e) => Err(e.into()),
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(loaded.into_iter().flatten().collect())
    }

    /// Puts a point in the recycle bin until `purge_after`. A point already there keeps its first tombstone.
    pub fn soft_delete(&self, point: PointId, purge_after: jiff::Timestamp, reason: &str) -> Result<(), VaultError> {
        let t = Tombstone {
            version: TOMBSTONE_VERSION,
            point,
            deleted: crate::util::now_rfc3339(),
            purge_after: crate::util::format_time(purge_after),
            reason: reason.to_string(),
            by: actor(),
        };
        match self.store().create(&tombstone_name(&point), &t.encode(self.keys())) {
            Ok(()) | Err(StoreError::AlreadyExists(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Takes a point out of the recycle bin, unchanged. The tombstone is read first: a store may report the delete
    /// of an absent object as a success, and a point not in the bin must be said so.
    pub fn undelete(&self, point: &PointId) -> Result<(), VaultError> {
        let name = tombstone_name(point);
        let not_in_bin = || VaultError::Point(format!("recovery point {} is not in the recycle bin", point.short()));
        match self.store().read(&name, None) {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => return Err(not_in_bin()),
            Err(e) => return Err(e.into()),
        }
        match self.store().delete(&name) {
            Ok(()) => Ok(()),
            Err(StoreError::NotFound(_)) => Err(not_in_bin()),
            Err(e) => Err(e.into()),
        }
    }
}

fn admin_damage(name: &str, e: AdminError) -> VaultError {
    VaultError::Damaged {
        object: name.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::format::admin::Immutable;
    use crate::format::ids::PointId;

    #[test]
    fn settings_change_in_sequence_and_conflicts_are_refused() {
        let (_, vault) = crate::vault::test_vault(1 << 20);
        let s0 = vault.settings().unwrap();
        assert_eq!(s0.seq, 0);
        let mut next = s0.clone();
        next.immutable = Immutable::On;
        let s1 = vault.save_settings(&s0, next.clone()).unwrap();
        assert_eq!(vault.settings().unwrap(), s1);
        assert_eq!(s1.seq, 1);
        // A second writer that read s0 loses.
        assert!(
            vault
                .save_settings(&s0, next)
                .unwrap_err()
                .to_string()
                .contains("changed by someone")
        );
    }

    #[test]
    fn soft_delete_hides_and_undelete_restores() {
        let (_, vault) = crate::vault::test_vault(1 << 20);
        let id = PointId([5; 32]);
        vault.soft_delete(id, jiff::Timestamp::now(), "test").unwrap();
        assert!(vault.deleted_ids().unwrap().contains(&id));
        assert_eq!(vault.tombstones().unwrap()[0].reason, "test");
        vault.undelete(&id).unwrap();
        assert!(vault.deleted_ids().unwrap().is_empty());
        assert!(
            vault
                .undelete(&id)
                .unwrap_err()
                .to_string()
                .contains("not in the recycle bin")
        );
    }

    #[test]
    fn undelete_says_not_in_the_bin_where_deleting_nothing_succeeds() {
        let (store, _) = crate::vault::test_vault(1 << 20);
        let lax = crate::store::faulty::LaxDelete(store);
        let vault = crate::vault::Vault::open(std::sync::Arc::new(lax), b"pw").unwrap();
        let id = PointId([6; 32]);
        let err = vault.undelete(&id).unwrap_err().to_string();
        assert!(err.contains("not in the recycle bin"), "{err}");
        vault.soft_delete(id, jiff::Timestamp::now(), "test").unwrap();
        vault.undelete(&id).unwrap();
        assert!(vault.deleted_ids().unwrap().is_empty());
    }
}
