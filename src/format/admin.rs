//! Management objects: vault settings (retention policies, soft-delete window, immutability) and the tombstones
//! that put a recovery point in the recycle bin. Sealed JSON, like point records.
//!
//! Settings are never rewritten: each change creates `settings/<seq>` with the next sequence number, so two
//! concurrent changes cannot both win (create-if-absent refuses the second), and the newest number is in force.

use crate::crypto::{CryptoError, Keys};
use crate::format::ids::PointId;
use crate::retention::Policy;
use crate::span::CalSpan;
use serde::{Deserialize, Serialize};

pub const SETTINGS_VERSION: u32 = 1;
pub const TOMBSTONE_VERSION: u32 = 1;
/// Soft-delete window of a vault whose settings never changed.
pub const DEFAULT_SOFT_DELETE: CalSpan = CalSpan {
    years: 0,
    months: 0,
    days: 14,
    hours: 0,
};

/// Whether points may be removed before their policy allows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Immutable {
    #[default]
    Off,
    On,
    /// Like `On`, and can never be turned off.
    Locked,
}

impl Immutable {
    pub fn as_str(self) -> &'static str {
        match self {
            Immutable::Off => "off",
            Immutable::On => "on",
            Immutable::Locked => "locked",
        }
    }
}

/// A named retention policy and the points it applies to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredPolicy {
    pub name: String,
    pub keep: Policy,
    /// Applies to points of this host only (all hosts if `None`).
    pub host: Option<String>,
    /// Applies to points that backed up every one of these paths.
    pub paths: Vec<String>,
    /// Applies to points carrying every one of these tags.
    pub tags: Vec<String>,
}

/// The vault's changeable settings, as of one change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub version: u32,
    /// 0 for the defaults of a vault whose settings never changed; each change adds 1.
    pub seq: u64,
    pub changed: String,
    /// `user@host` that made the change.
    pub by: String,
    pub soft_delete: CalSpan,
    pub immutable: Immutable,
    pub policies: Vec<StoredPolicy>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            version: SETTINGS_VERSION,
            seq: 0,
            changed: String::new(),
            by: String::new(),
            soft_delete: DEFAULT_SOFT_DELETE,
            immutable: Immutable::Off,
            policies: Vec::new(),
        }
    }
}

/// A recovery point in the recycle bin. The point's record stays untouched until prune purges it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub version: u32,
    pub point: PointId,
    pub deleted: String,
    /// The earliest time prune may purge the point (the window may later grow, never shrink, see `purge_time`).
    pub purge_after: String,
    /// Why: the command and rule, e.g. "forget: no rule keeps it".
    pub reason: String,
    pub by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("not decodable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("version {0} is newer than this program understands")]
    Version(u32),
    #[error("is stored under the wrong name")]
    Misplaced,
}

pub fn settings_name(seq: u64) -> String {
    format!("settings/{seq:020}")
}

/// The sequence number in a `settings/<seq>` name.
pub fn settings_seq(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("settings/")?;
    (digits.len() == 20).then(|| digits.parse().ok())?
}

pub fn tombstone_name(id: &PointId) -> String {
    format!("deleted/{}", id.to_hex())
}

const SETTINGS_AAD: &[u8] = b"coffer settings";

fn tombstone_aad(id: &PointId) -> Vec<u8> {
    [b"coffer deleted ".as_slice(), &id.0].concat()
}

impl Settings {
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("encoding into memory cannot fail");
        keys.seal(&json, SETTINGS_AAD)
    }

    /// Opens the settings stored as number `seq`.
    pub fn decode(seq: u64, sealed: &[u8], keys: &Keys) -> Result<Settings, AdminError> {
        let s: Settings = serde_json::from_slice(&keys.open(sealed, SETTINGS_AAD)?)?;
        if s.version > SETTINGS_VERSION {
            return Err(AdminError::Version(s.version));
        }
        if s.seq != seq {
            return Err(AdminError::Misplaced);
        }
        Ok(s)
    }
}

impl Tombstone {
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("encoding into memory cannot fail");
        keys.seal(&json, &tombstone_aad(&self.point))
    }

    pub fn decode(id: &PointId, sealed: &[u8], keys: &Keys) -> Result<Tombstone, AdminError> {
        let t: Tombstone = serde_json::from_slice(&keys.open(sealed, &tombstone_aad(id))?)?;
        if t.version > TOMBSTONE_VERSION {
            return Err(AdminError::Version(t.version));
        }
        Ok(t)
    }

    /// When prune may purge the point: the later of `purge_after` and the deletion time plus the current window, so
    /// lengthening the window also protects points already in the recycle bin. The deletion time counts as no
    /// earlier than the point's own `point_time`, so a forgetting host whose clock is far behind cannot skip the
    /// window.
    pub fn purge_time(&self, window: &CalSpan, point_time: &str) -> jiff::Timestamp {
        let parse = |t: &str| crate::util::parse_time(t).unwrap_or(jiff::Timestamp::MAX);
        let deleted = parse(&self.deleted).max(crate::util::parse_time(point_time).unwrap_or(jiff::Timestamp::MIN));
        parse(&self.purge_after).max(window.after(deleted))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_and_binding() {
        let keys = Keys::derive(&[3; 32]);
        let s = Settings {
            seq: 7,
            immutable: Immutable::On,
            policies: vec![StoredPolicy {
                name: "daily".into(),
                keep: Policy {
                    daily: 7,
                    ..Policy::default()
                },
                host: Some("web1".into()),
                ..StoredPolicy::default()
            }],
            ..Settings::default()
        };
        let sealed = s.encode(&keys);
        assert_eq!(Settings::decode(7, &sealed, &keys).unwrap(), s);
        assert!(matches!(
            Settings::decode(8, &sealed, &keys),
            Err(AdminError::Misplaced)
        ));
        assert_eq!(settings_seq(&settings_name(7)), Some(7));
        assert_eq!(settings_seq("settings/7"), None);
    }

    #[test]
    fn tombstones_are_bound_to_their_point_and_never_purge_earlier() {
        let keys = Keys::derive(&[3; 32]);
        let t = Tombstone {
            version: TOMBSTONE_VERSION,
            point: PointId([1; 32]),
            deleted: "2026-11-01T00:00:00.000000000Z".into(),
            purge_after: "2026-11-15T00:00:00.000000000Z".into(),
            reason: "forget".into(),
            by: "root@h".into(),
        };
        let sealed = t.encode(&keys);
        assert_eq!(Tombstone::decode(&t.point, &sealed, &keys).unwrap(), t);
        assert!(Tombstone::decode(&PointId([2; 32]), &sealed, &keys).is_err());
        let at = |s: &str| s.parse::<jiff::Timestamp>().unwrap();
        let made = "2026-10-01T00:00:00.000000000Z";
        assert_eq!(t.purge_time(&CalSpan::days(1), made), at("2026-11-15T00:00:00Z"));
        assert_eq!(t.purge_time(&CalSpan::days(30), made), at("2026-12-01T00:00:00Z"));
        // Deleted "before" the point was made (a clock far behind): the window runs from the point's time.
        let mut early = t.clone();
        early.deleted = "1970-01-01T00:00:00.000000000Z".into();
        early.purge_after = "1970-01-15T00:00:00.000000000Z".into();
        assert_eq!(early.purge_time(&CalSpan::days(14), made), at("2026-10-15T00:00:00Z"));
    }
}
