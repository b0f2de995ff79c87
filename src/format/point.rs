//! Recovery point records: one sealed JSON object per point, written last in a backup.
//!
//! JSON (inside the encryption) because the record is small, read by people via `coffer list --json`, and grows new
//! fields as later features land; unknown fields are ignored by older readers and missing ones take defaults.

use crate::crypto::{CryptoError, Keys};
use crate::format::ids::{PointId, TreeId};
use crate::format::sources::{ConsistencyReport, DiskRecord, StreamRecord};
use serde::{Deserialize, Serialize};

pub const POINT_VERSION: u32 = 1;

/// How consistent the captured data is: application (pre-scripts succeeded), file system (read from a snapshot
/// taken with the file system flushed and frozen), or crash (read live).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    #[default]
    Crash,
    #[serde(rename = "filesystem")]
    FileSystem,
    Application,
}

impl Consistency {
    /// The level as `list` shows it and `--require-consistency` names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Crash => "crash",
            Consistency::FileSystem => "filesystem",
            Consistency::Application => "application",
        }
    }
}

/// Counts and sizes of one backup.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PointStats {
    pub files: u64,
    pub dirs: u64,
    pub others: u64,
    /// Files whose content was read (not reused from the parent).
    pub files_read: u64,
    /// Apparent size of all files.
    pub bytes_total: u64,
    /// Bytes of file content read from disk.
    pub bytes_read: u64,
    /// Plaintext bytes of blobs that were new to the vault.
    pub bytes_new: u64,
    /// Bytes of sealed blobs written to packs for this point.
    pub bytes_stored: u64,
    pub blobs_new: u64,
}

/// A problem met during the backup: the path and what happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathMessage {
    pub path: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PointRecord {
    pub version: u32,
    pub id: PointId,
    /// UTC time the backup started, RFC 3339 with nanoseconds.
    pub time: String,
    pub host: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Absolute source paths as given (lossy UTF-8 for display; the tree holds the exact bytes).
    pub paths: Vec<String>,
    pub parent: Option<PointId>,
    /// Root tree: the file system root, holding the source paths with their parent directories.
    pub tree: TreeId,
    #[serde(default)]
    pub stats: PointStats,
    /// Files that could not be read or changed while read.
    #[serde(default)]
    pub errors: Vec<PathMessage>,
    /// Entries deliberately not stored (sockets).
    #[serde(default)]
    pub skipped: Vec<PathMessage>,
    #[serde(default)]
    pub consistency: Consistency,
    /// Why the point has its consistency level: scripts run, snapshot used.
    #[serde(default)]
    pub consistency_report: ConsistencyReport,
    /// Whole disks of the point; their content is in `disks_tree`, one file node per disk named like the disk.
    #[serde(default)]
    pub disks: Vec<DiskRecord>,
    #[serde(default)]
    pub disks_tree: Option<TreeId>,
    /// Application streams; their content is in `streams_tree`, one file node per stream.
    #[serde(default)]
    pub streams: Vec<StreamRecord>,
    #[serde(default)]
    pub streams_tree: Option<TreeId>,
    pub program_version: String,
    #[serde(default)]
    pub duration_secs: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum PointError {
    #[error("recovery point record cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("recovery point record is not decodable: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("recovery point record version {0} is newer than this program understands")]
    Version(u32),
}

fn aad(id: &PointId) -> Vec<u8> {
    [b"coffer point ".as_slice(), &id.0].concat()
}

impl PointRecord {
    pub fn encode(&self, keys: &Keys) -> Vec<u8> {
        let json = serde_json::to_vec(self).expect("encoding into memory cannot fail");
        keys.seal(&json, &aad(&self.id))
    }

    /// Opens the record stored under `id`; a record moved to another name fails authentication.
    pub fn decode(id: &PointId, sealed: &[u8], keys: &Keys) -> Result<PointRecord, PointError> {
        let rec: PointRecord = serde_json::from_slice(&keys.open(sealed, &aad(id))?)?;
        if rec.version > POINT_VERSION {
            return Err(PointError::Version(rec.version));
        }
        Ok(rec)
    }
}

impl PointRecord {
    /// What the point protects: its paths, `disk:NAME` and `stream:NAME`, sorted. Points with equal host and sources
    /// form one group for retention and one protected source for stats.
    pub fn sources(&self) -> Vec<String> {
        let mut s: Vec<String> = self.paths.clone();
        s.extend(self.disks.iter().map(|d| format!("disk:{}", d.name)));
        s.extend(self.streams.iter().map(|x| format!("stream:{}", x.name)));
        s.sort();
        s
    }

    /// The public JSON form of a point (`list --json`, `backup --json`, `point.json` in the mount): ids in hex,
    /// sizes under `sizes`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id.to_hex(),
            "short_id": self.id.short(),
            "time": self.time,
            "host": self.host,
            "tags": self.tags,
            "paths": self.paths,
            "parent": self.parent.map(|x| x.to_hex()),
            "tree": self.tree.to_hex(),
            "sizes": self.stats,
            "consistency": self.consistency,
            "consistency_report": self.consistency_report,
            "disks": self.disks,
            "streams": self.streams,
            "errors": self.errors,
            "skipped": self.skipped,
            "program_version": self.program_version,
            "duration_secs": self.duration_secs,
        })
    }
}

/// A point record with the given id, time and host, backing up `/x`, for tests.
#[cfg(test)]
pub fn sample(id: [u8; 32], time: &str, host: &str) -> PointRecord {
    PointRecord {
        version: POINT_VERSION,
        id: PointId(id),
        time: time.into(),
        host: host.into(),
        tags: vec![],
        paths: vec!["/x".into()],
        parent: None,
        tree: TreeId([0; 32]),
        stats: Default::default(),
        errors: vec![],
        skipped: vec![],
        consistency: Default::default(),
        consistency_report: Default::default(),
        disks: vec![],
        disks_tree: None,
        streams: vec![],
        streams_tree: None,
        program_version: "test".into(),
        duration_secs: 0.0,
    }
}

pub fn point_name(id: &PointId) -> String {
    format!("points/{}", id.to_hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let keys = Keys::derive(&[8; 32]);
        let rec = PointRecord {
            version: POINT_VERSION,
            id: PointId([1; 32]),
            time: "2026-11-24T10:00:00.123456789Z".into(),
            host: "h".into(),
            tags: vec!["t".into()],
            paths: vec!["/x".into()],
            parent: None,
            tree: TreeId([2; 32]),
            stats: PointStats {
                files: 3,
                ..Default::default()
            },
            errors: vec![],
            skipped: vec![],
            consistency: Consistency::Crash,
            consistency_report: Default::default(),
            disks: vec![],
            disks_tree: None,
            streams: vec![],
            streams_tree: None,
            program_version: "0.1.0".into(),
            duration_secs: 1.5,
        };
        let bytes = rec.encode(&keys);
        assert_eq!(PointRecord::decode(&rec.id, &bytes, &keys).unwrap(), rec);
        assert!(PointRecord::decode(&PointId([9; 32]), &bytes, &keys).is_err());
    }
}
