//! The jobs log: every backup, restore, check, forget and prune writes a start record when it begins and an end
//! record when it ends. Writing the log never fails the job itself: a record that cannot be stored is logged as a
//! warning.

use super::{Vault, VaultError};
use crate::crypto::Keys;
use crate::format::job::{self, JOB_VERSION, JobEnd, JobStart, JobStatus, job_end_name, job_start_name};
use crate::store::{Store, StoreError};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// One job as the log shows it.
#[derive(Clone, Debug)]
pub struct Job {
    pub id: String,
    pub start: JobStart,
    pub end: Option<JobEnd>,
    pub status: JobStatus,
}

/// A job in progress; `finish` writes its end record.
pub struct JobHandle {
    store: Arc<dyn Store>,
    keys: Keys,
    id: [u8; 16],
    started: Instant,
}

impl Vault {
    /// Records that a job of `kind` on `target` starts now.
    pub fn job_start(&self, kind: &str, target: &str) -> JobHandle {
        // Ids sort by start time: 8 bytes of nanoseconds since 1970, big endian, then 8 random bytes.
        let mut id = [0u8; 16];
        let nanos = jiff::Timestamp::now().as_nanosecond().max(0) as u64;
        id[..8].copy_from_slice(&nanos.to_be_bytes());
        id[8..].copy_from_slice(&crate::format::ids::random_bytes::<8>());
        let start = JobStart {
            version: JOB_VERSION,
            kind: kind.to_string(),
            host: crate::util::hostname(),
            machine: super::lock::this_machine().to_string(),
            pid: std::process::id(),
            by: super::actor(),
            start: crate::util::now_rfc3339(),
            target: target.to_string(),
        };
        let name = job_start_name(&id);
        if let Err(e) = self.store().create(&name, &job::seal(&start, &name, self.keys())) {
            log::warn!("could not record the job in the vault: {e}");
        }
        JobHandle {
            store: self.store_arc(),
            keys: self.keys().clone(),
            id,
            started: Instant::now(),
        }
    }

    /// Every job in the log, oldest first, with the status of unfinished ones judged now: running if its process
    /// is alive (on this host) or holds a live lock (on another), interrupted otherwise.
    pub fn jobs(&self) -> Result<Vec<Job>, VaultError> {
        let mut names: BTreeMap<String, (bool, bool)> = BTreeMap::new();
        for o in self.store().list("jobs/")? {
            let Some((id, part)) = o.name.strip_prefix("jobs/").and_then(|r| r.split_once('/')) else {
                continue;
            };
            let e = names.entry(id.to_string()).or_default();
            match part {
                "start" => e.0 = true,
                "end" => e.1 = true,
                _ => {}
            }
        }
        let live_locks: Vec<(String, u32)> = self
            .locks()?
            .into_iter()
            .filter(|l| !l.stale)
            .map(|l| (l.record.machine, l.record.pid))
            .collect();
        let jobs: Vec<Option<Job>> = names
            .into_par_iter()
            .filter(|(_, (start, _))| *start)
            .map(|(id, (_, has_end))| self.load_job(id, has_end, &live_locks))
            .collect::<Result<_, _>>()?;
        Ok(jobs.into_iter().flatten().collect())
    }

    fn load_job(&self, id: String, has_end: bool, live: &[(String, u32)]) -> Result<Option<Job>, VaultError> {
        let start_name = format!("jobs/{id}/start");
        let Some(start) = self.read_job_part::<JobStart>(&start_name)? else {
            return Ok(None);
        };
        let end = match has_end {
            true => self.read_job_part::<JobEnd>(&format!("jobs/{id}/end"))?,
            false => None,
        };
        let status = match end.as_ref().and_then(|e| e.status) {
            Some(s) => s,
            None if is_running(&start, live) => JobStatus::Running,
            None => JobStatus::Interrupted,
        };
        Ok(Some(Job { id, start, end, status }))
    }

    fn read_job_part<T: for<'de> serde::Deserialize<'de>>(&self, name: &str) -> Result<Option<T>, VaultError> {
        let bytes = match self.store().read(name, None) {
            Ok(b) => b,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        job::open(&bytes, name, self.keys())
            .map(Some)
            .map_err(|e| VaultError::Damaged {
                object: name.to_string(),
                reason: e.to_string(),
            })
    }
}

/// Running: its process is alive (on this machine), or holds a live lock (elsewhere).
fn is_running(start: &JobStart, live_locks: &[(String, u32)]) -> bool {
    if start.machine == super::lock::this_machine() {
        return super::lock::process_alive(start.pid);
    }
    live_locks.iter().any(|(m, p)| *m == start.machine && *p == start.pid)
}

impl JobHandle {
    /// Records how the job ended (`end.end` and `end.duration_secs` are filled in here).
    pub fn finish(self, mut end: JobEnd) {
        end.version = JOB_VERSION;
        end.end = crate::util::now_rfc3339();
        end.duration_secs = self.started.elapsed().as_secs_f64();
        let name = job_end_name(&self.id);
        if let Err(e) = self.store.create(&name, &job::seal(&end, &name, &self.keys)) {
            log::warn!("could not record the end of the job in the vault: {e}");
        }
    }

    /// Records a failure with its message.
    pub fn failed(self, message: String) {
        self.finish(JobEnd {
            status: Some(JobStatus::Failed),
            message: Some(message),
            ..JobEnd::default()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_logged_with_their_outcome_and_unfinished_ones_are_judged() {
        let (store, vault) = crate::vault::test_vault(1 << 20);
        vault.job_start("backup", "/home").finish(JobEnd {
            status: Some(JobStatus::Warning),
            files: 10,
            problems: 1,
            ..JobEnd::default()
        });
        vault.job_start("prune", "").failed("the vault is in use".into());
        let running = vault.job_start("restore", "abc");
        // A start record of a process that is gone: interrupted.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let start = JobStart {
            version: JOB_VERSION,
            kind: "backup".into(),
            host: crate::util::hostname(),
            machine: super::super::lock::this_machine().to_string(),
            pid: dead,
            by: "x".into(),
            start: crate::util::now_rfc3339(),
            target: "/".into(),
        };
        let name = job_start_name(&[0xff; 16]);
        store.create(&name, &job::seal(&start, &name, vault.keys())).unwrap();
        let jobs = vault.jobs().unwrap();
        let got: Vec<(&str, JobStatus)> = jobs.iter().map(|j| (j.start.kind.as_str(), j.status)).collect();
        assert_eq!(
            got,
            vec![
                ("backup", JobStatus::Warning),
                ("prune", JobStatus::Failed),
                ("restore", JobStatus::Running),
                ("backup", JobStatus::Interrupted),
            ]
        );
        assert_eq!(jobs[0].end.as_ref().unwrap().files, 10);
        assert_eq!(
            jobs[1].end.as_ref().unwrap().message.as_deref(),
            Some("the vault is in use")
        );
        running.finish(JobEnd {
            status: Some(JobStatus::Succeeded),
            ..JobEnd::default()
        });
        assert_eq!(vault.jobs().unwrap()[2].status, JobStatus::Succeeded);
    }
}
