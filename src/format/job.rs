//! Job records: `jobs/<id>/start` when a backup, restore, check, forget or prune begins, `jobs/<id>/end` when it
//! ends. Two objects because objects are never rewritten; a start without an end is a job still running or one
//! that was killed. Sealed JSON.

use crate::crypto::{CryptoError, Keys};
use serde::{Deserialize, Serialize};

pub const JOB_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Succeeded,
    /// Finished, with problems worth a look (files that could not be read).
    Warning,
    Failed,
    /// Started and never finished: the process was killed or its machine went down.
    Interrupted,
    Running,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Succeeded => "succeeded",
            JobStatus::Warning => "warning",
            JobStatus::Failed => "failed",
            JobStatus::Interrupted => "interrupted",
            JobStatus::Running => "running",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStart {
    pub version: u32,
    /// "backup", "restore", "check", "forget", "prune".
    pub kind: String,
    pub host: String,
    /// Kernel boot id and PID namespace (see `vault::lock`), where `pid` is meaningful.
    #[serde(default)]
    pub machine: String,
    pub pid: u32,
    pub by: String,
    pub start: String,
    /// What the job works on, e.g. the source paths of a backup or the point of a restore.
    pub target: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobEnd {
    pub version: u32,
    pub end: String,
    pub duration_secs: f64,
    /// Succeeded, warning or failed.
    pub status: Option<JobStatus>,
    pub files: u64,
    pub bytes: u64,
    /// The point a backup made.
    pub point: Option<String>,
    /// Problems (unreadable files, damaged paths), counted.
    pub problems: u64,
    /// The error of a failed job, or a summary of the problems.
    pub message: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("job record cannot be opened: {0}")]
    Crypto(#[from] CryptoError),
    #[error("job record is not decodable: {0}")]
    Decode(#[from] serde_json::Error),
}

pub fn job_start_name(id: &[u8; 16]) -> String {
    format!("jobs/{}/start", hex::encode(id))
}

pub fn job_end_name(id: &[u8; 16]) -> String {
    format!("jobs/{}/end", hex::encode(id))
}

/// Seals a start or end record; the associated data binds it to its object name.
pub fn seal<T: Serialize>(value: &T, name: &str, keys: &Keys) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("encoding into memory cannot fail");
    keys.seal(&json, name.as_bytes())
}

pub fn open<T: for<'de> Deserialize<'de>>(sealed: &[u8], name: &str, keys: &Keys) -> Result<T, JobError> {
    Ok(serde_json::from_slice(&keys.open(sealed, name.as_bytes())?)?)
}
