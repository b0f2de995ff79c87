//! The consistency of a backup: pre-scripts, snapshot, post-scripts, and the level they earn.
//!
//! With a snapshot: pre-scripts -> snapshot (file systems frozen around it) -> post-scripts -> data read from the
//! snapshot -> snapshot removed. Without: pre-scripts -> data read live -> post-scripts. Levels:
//! application when scripts were given and every pre-script succeeded; else file system when the data comes from a
//! snapshot whose freeze (if any) stayed within the maximum; else crash. Post-scripts and snapshot removal are
//! registered with the backup's `Cleanup`, so they also run when the backup fails or is interrupted by a signal.

use super::cleanup::Cleanup;
use super::scripts::{self, AppScripts};
use super::snapshot::{self, Snapshot, SnapshotSpec};
use crate::format::point::Consistency;
use crate::format::sources::{ConsistencyReport, ScriptRun};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Default hard maximum for a file system freeze.
pub const DEFAULT_MAX_FREEZE: Duration = Duration::from_secs(20);

#[derive(Clone, Debug, Default)]
pub struct ConsistencyOptions {
    pub scripts: Vec<AppScripts>,
    pub snapshot: Option<SnapshotSpec>,
    /// Fail instead of saving a point below this level.
    pub require: Option<Consistency>,
    pub max_freeze: Duration,
    /// This program, started again as the guard process (see `freeze`); `None` runs without guards.
    pub guard_exe: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConsistencyError {
    #[error("pre-script of {0} failed ({1}) and may not be skipped")]
    PreScript(String, String),
    #[error(transparent)]
    Snapshot(#[from] snapshot::SnapshotError),
    #[error("the point would be {got:?}-consistent but {want:?} was required: {reason}")]
    Required {
        want: Consistency,
        got: Consistency,
        reason: String,
    },
}

/// A backup's consistency state between `begin` and `finish`.
pub struct Session {
    level: Consistency,
    report: Arc<Mutex<ConsistencyReport>>,
    snapshot: Arc<Mutex<Option<Snapshot>>>,
    post: super::cleanup::Token,
    remove: super::cleanup::Token,
    cleanup: Cleanup,
}

/// Runs the pre-scripts and takes the snapshot; the data is then read through `Session::read_path`.
pub fn begin(opts: &ConsistencyOptions, sources: &[PathBuf], cleanup: &Cleanup) -> Result<Session, ConsistencyError> {
    let report = Arc::new(Mutex::new(ConsistencyReport::default()));
    let snapshot: Arc<Mutex<Option<Snapshot>>> = Arc::new(Mutex::new(None));
    let (apps, r) = (opts.scripts.clone(), report.clone());
    let post = cleanup.push(move || {
        let runs = scripts::run_post(&apps);
        r.lock().expect("report lock").scripts.extend(runs);
    });
    let (s, r) = (snapshot.clone(), report.clone());
    let remove = cleanup.push(move || {
        if let Some(snap) = s.lock().expect("snapshot lock").take() {
            for e in snap.remove() {
                log::warn!("{e}");
                r.lock().expect("report lock").reason.push_str(&format!(" ({e})"));
            }
        }
    });
    let mut session = Session {
        level: Consistency::Crash,
        report,
        snapshot,
        post,
        remove,
        cleanup: cleanup.clone(),
    };
    match session.start(opts, sources) {
        Ok(()) => Ok(session),
        Err(e) => {
            session.finish();
            Err(e)
        }
    }
}

impl Session {
    fn start(&mut self, opts: &ConsistencyOptions, sources: &[PathBuf]) -> Result<(), ConsistencyError> {
        let (runs, go_on) = scripts::run_pre(&opts.scripts);
        let failed: Vec<&ScriptRun> = runs.iter().filter(|r| !r.ok).collect();
        if !go_on && let Some(f) = failed.last() {
            return Err(ConsistencyError::PreScript(f.name.clone(), f.outcome.clone()));
        }
        let scripts_ok = !opts.scripts.is_empty() && failed.is_empty();
        let mut reason = scripts_reason(&opts.scripts, &failed);
        self.report.lock().expect("report lock").scripts = runs;
        let mut snapshot_ok = false;
        if let Some(spec) = &opts.snapshot {
            let snap = snapshot::create(spec, sources, opts.max_freeze, opts.guard_exe.as_deref())?;
            snapshot_ok = !snap.freeze_exceeded;
            {
                let mut rep = self.report.lock().expect("report lock");
                (rep.snapshot, rep.frozen, rep.freeze_secs) =
                    (Some(snap.description.clone()), snap.frozen.clone(), snap.freeze_secs);
            }
            if snap.freeze_exceeded {
                reason.push_str(&format!(
                    "; the freeze passed the {} s maximum and was ended early",
                    opts.max_freeze.as_secs_f64()
                ));
            } else {
                reason.push_str(&format!("; data read from snapshot ({})", snap.description));
            }
            *self.snapshot.lock().expect("snapshot lock") = Some(snap);
            // The snapshot holds the application's quiesced state: resume the applications now.
            self.cleanup.run(self.post);
        } else {
            reason.push_str("; data read live, no snapshot");
        }
        self.level = match (scripts_ok, snapshot_ok) {
            (true, _) => Consistency::Application,
            (false, true) => Consistency::FileSystem,
            (false, false) => Consistency::Crash,
        };
        self.report.lock().expect("report lock").reason = reason.trim_start_matches("; ").to_string();
        match opts.require {
            Some(want) if self.level < want => Err(ConsistencyError::Required {
                want,
                got: self.level,
                reason: self.report.lock().expect("report lock").reason.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Where to read source path `path` (inside the snapshot if there is one).
    pub fn read_path(&self, path: &Path) -> PathBuf {
        match &*self.snapshot.lock().expect("snapshot lock") {
            Some(s) => s.read_path(path),
            None => path.to_path_buf(),
        }
    }

    /// Runs the post-scripts (if not run yet) and removes the snapshot; returns the level and its report.
    pub fn finish(self) -> (Consistency, ConsistencyReport) {
        self.cleanup.run(self.post);
        self.cleanup.run(self.remove);
        let report = self.report.lock().expect("report lock").clone();
        (self.level, report)
    }
}

fn scripts_reason(apps: &[AppScripts], failed: &[&ScriptRun]) -> String {
    if apps.is_empty() {
        return "no application scripts".into();
    }
    if failed.is_empty() {
        return format!(
            "pre-scripts of {} succeeded",
            names(apps.iter().map(|a| a.name.as_str()))
        );
    }
    let what: Vec<String> = failed.iter().map(|r| format!("{} ({})", r.name, r.outcome)).collect();
    format!("pre-script failed: {}", what.join(", "))
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    it.collect::<Vec<_>>().join(", ")
}
