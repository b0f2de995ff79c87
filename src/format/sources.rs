//! What a recovery point records about its sources besides the file tree: whole disks, application streams, and
//! how consistent the captured data is and why. All of it lives in the point record's JSON (see docs/format.md);
//! the content of disks and streams lives in trees (`disks_tree`, `streams_tree`), one file node per disk or stream.

use crate::partition::PartitionTable;
use serde::{Deserialize, Serialize};

/// One whole disk (block device or raw image file) of a point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskRecord {
    /// The disk's name: the node name in `disks_tree`, and `disks/<name>.img` in the mount.
    pub name: String,
    /// The path it was read from (lossy UTF-8, for people).
    pub source: String,
    /// Size in bytes.
    pub size: u64,
    /// Fixed chunk size the disk was cut into; chunk `k` covers `[k * chunk_size, (k + 1) * chunk_size)`.
    pub chunk_size: u64,
    /// The partition table found on the disk (MBR or GPT), if any.
    pub table: Option<PartitionTable>,
    /// Bytes read from the source (0 when an unchanged image was reused from the parent point).
    pub bytes_read: u64,
    /// Bytes of chunks that differ from the parent point's disk of the same name (all data bytes on a first backup).
    pub bytes_changed: u64,
    /// Bytes that are data, not holes or all-zero chunks.
    pub bytes_data: u64,
    /// The image's size and mtime matched the parent point's, so it was not read at all.
    pub reused: bool,
    /// Seconds after the start of the backup when reading this disk began and ended: shows disks read in parallel.
    pub read_started: f64,
    pub read_finished: f64,
}

/// One application stream (standard input or a command's output) of a point.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRecord {
    /// The stream's name: the node name in `streams_tree`, and `streams/<name>` in the mount.
    pub name: String,
    /// The command whose output it is; `None` for standard input.
    pub command: Option<String>,
    pub size: u64,
}

/// One run of a pre- or post-script.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScriptRun {
    /// The application the script belongs to.
    pub name: String,
    /// `pre` or `post`.
    pub phase: String,
    pub command: String,
    /// True if it exited with status 0 within its timeout.
    pub ok: bool,
    /// What happened, for people: "exit status 0", "exit status 3", "timed out after 10 s", ...
    pub outcome: String,
    pub duration_secs: f64,
}

/// How the consistency level of a point came about.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsistencyReport {
    /// Why the point has its level, in one sentence.
    pub reason: String,
    pub scripts: Vec<ScriptRun>,
    /// The snapshot the data was read from: `btrfs <path>` or `command <command>`; `None` when read live.
    pub snapshot: Option<String>,
    /// File systems frozen around the snapshot, and for how long.
    pub frozen: Vec<String>,
    pub freeze_secs: f64,
}
