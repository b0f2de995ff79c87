//! The job file as serde reads it, and its checking and conversion into [`Job`]s with the defaults applied.
//!
//! serde checks the shape (unknown keys, types); everything else is checked here, one small function per rule, each
//! error placed at the line of the offending key. Jobs are checked in file order so the error reported is the first
//! one in the file.

use super::locate::Located;
use super::{Job, JobConfError, Password, Retention, Stream, calendar, check_within};
use crate::backup::disk::DiskSource;
use crate::backup::exclude::Patterns;
use crate::backup::snapshot::SnapshotSpec;
use crate::format::point::Consistency;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Longest job name: `coffer-NAME.service` must stay well inside systemd's 255-byte unit names.
const MAX_NAME: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    vault: Option<PathBuf>,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
    #[serde(default)]
    jobs: BTreeMap<String, RawJob>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawJob {
    vault: Option<PathBuf>,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
    paths: Vec<PathBuf>,
    exclude: Vec<String>,
    exclude_files: Vec<PathBuf>,
    one_file_system: bool,
    tags: Vec<String>,
    host: Option<String>,
    disks: Vec<String>,
    stream: Option<RawStream>,
    pre_scripts: Vec<String>,
    post_scripts: Vec<String>,
    script_timeout: Option<f64>,
    scripts_must_succeed: bool,
    require_consistency: Option<String>,
    snapshot: Option<String>,
    snapshot_command: Option<String>,
    snapshot_cleanup: Option<String>,
    snapshot_at: Option<PathBuf>,
    freeze: Vec<PathBuf>,
    max_freeze: Option<f64>,
    schedule: Option<String>,
    retention: Option<RawRetention>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStream {
    name: String,
    command: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    keep_last: Option<u32>,
    keep_hourly: Option<u32>,
    keep_daily: Option<u32>,
    keep_weekly: Option<u32>,
    keep_monthly: Option<u32>,
    keep_yearly: Option<u32>,
    keep_within: Option<String>,
    #[serde(default)]
    keep_tags: Vec<String>,
}

/// Checks every job and applies the file's defaults.
pub(super) fn build(raw: RawFile, at: &Located) -> Result<BTreeMap<String, Job>, JobConfError> {
    if raw.jobs.is_empty() {
        let message = "none defined: add a [jobs.NAME] table with paths, disks or stream";
        return Err(at.error(&["jobs"], None, message));
    }
    let top = Check { at, prefix: vec![] };
    let vault = top.vault(raw.vault)?;
    let password = top.password(raw.password_file, raw.password_command)?;
    let mut names: Vec<&String> = raw.jobs.keys().collect();
    names.sort_by_key(|n| at.offset(&["jobs", n]));
    let mut jobs = BTreeMap::new();
    for name in names {
        let check = Check {
            at,
            prefix: vec!["jobs", name],
        };
        let mut job = check.job(name, &raw.jobs[name])?;
        job.vault = job.vault.or_else(|| vault.clone());
        job.password = job.password.or_else(|| password.clone());
        jobs.insert(name.clone(), job);
    }
    Ok(jobs)
}

/// Checks the keys below `prefix` (the root, or `jobs.NAME`).
struct Check<'a> {
    at: &'a Located<'a>,
    prefix: Vec<&'a str>,
}

type Checked<T> = Result<T, JobConfError>;

impl Check<'_> {
    fn fail(&self, key: &str, item: Option<usize>, message: impl Into<String>) -> JobConfError {
        let mut field = self.prefix.clone();
        field.extend(key.split('/').filter(|k| !k.is_empty()));
        self.at.error(&field, item, message)
    }

    fn job(&self, name: &str, raw: &RawJob) -> Checked<Job> {
        self.name(name)?;
        let (snapshot, max_freeze) = self.snapshot(raw)?;
        let job = Job {
            name: name.to_string(),
            vault: self.vault(raw.vault.clone())?,
            password: self.password(raw.password_file.clone(), raw.password_command.clone())?,
            paths: self.absolute("paths", &raw.paths)?,
            exclude: self.excludes(&raw.exclude)?,
            exclude_files: self.absolute("exclude_files", &raw.exclude_files)?,
            one_file_system: raw.one_file_system,
            tags: self.words("tags", &raw.tags)?,
            host: self.word("host", raw.host.as_ref())?,
            disks: self.disks(&raw.disks)?,
            stream: self.stream(raw.stream.as_ref())?,
            pre_scripts: self.words("pre_scripts", &raw.pre_scripts)?,
            post_scripts: self.words("post_scripts", &raw.post_scripts)?,
            script_timeout: self.seconds("script_timeout", raw.script_timeout)?,
            scripts_must_succeed: raw.scripts_must_succeed,
            require_consistency: self.consistency(raw.require_consistency.as_deref())?,
            snapshot,
            max_freeze,
            schedule: self.schedule(raw.schedule.as_ref())?,
            retention: self.retention(raw.retention.as_ref())?,
        };
        if job.paths.is_empty() && job.disks.is_empty() && job.stream.is_none() {
            return Err(self.fail("", None, "nothing to back up: give paths, disks or stream"));
        }
        if matches!(job.snapshot, Some(SnapshotSpec::Command { at: Some(_), .. })) && job.paths.len() != 1 {
            return Err(self.fail("snapshot_at", None, "needs exactly one entry in paths"));
        }
        Ok(job)
    }

    /// Job names become systemd unit names (`coffer-NAME.service`) and command-line arguments.
    fn name(&self, name: &str) -> Checked<()> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
        let leading = name.starts_with(['-', '.']);
        if name.is_empty() || leading || name.len() > MAX_NAME || !name.chars().all(allowed) {
            let message =
                format!("bad job name '{name}': use letters, digits, '_', '.' and '-' (not first), at most {MAX_NAME}");
            return Err(self.fail("", None, message));
        }
        Ok(())
    }

    /// A directory (absolute) or an object-store URL.
    fn vault(&self, vault: Option<PathBuf>) -> Checked<Option<PathBuf>> {
        if let Some(v) = &vault
            && !v.to_str().is_some_and(crate::store::is_url)
        {
            self.absolute("vault", std::slice::from_ref(v))?;
        }
        Ok(vault)
    }

    fn password(&self, file: Option<PathBuf>, command: Option<String>) -> Checked<Option<Password>> {
        match (file, command) {
            (Some(_), Some(_)) => Err(self.fail(
                "password_command",
                None,
                "give password_file or password_command, not both",
            )),
            (Some(f), None) => Ok(Some(Password::File(self.absolute("password_file", &[f])?.remove(0)))),
            (None, Some(c)) => Ok(Some(Password::Command(self.words("password_command", &[c])?.remove(0)))),
            (None, None) => Ok(None),
        }
    }

    /// Jobs run from systemd or cron, whose working directory is not the user's: only absolute paths mean the same.
    fn absolute(&self, key: &str, paths: &[PathBuf]) -> Checked<Vec<PathBuf>> {
        for (i, p) in paths.iter().enumerate() {
            if !p.is_absolute() {
                let message = format!("relative path '{}': give an absolute path", p.display());
                return Err(self.fail(key, Some(i), message));
            }
        }
        Ok(paths.to_vec())
    }

    fn words(&self, key: &str, words: &[String]) -> Checked<Vec<String>> {
        if let Some(i) = words.iter().position(|w| w.trim().is_empty()) {
            return Err(self.fail(key, Some(i), "must not be empty"));
        }
        Ok(words.to_vec())
    }

    fn word(&self, key: &str, word: Option<&String>) -> Checked<Option<String>> {
        Ok(self
            .words(key, word.map(std::slice::from_ref).unwrap_or_default())?
            .pop())
    }

    fn excludes(&self, patterns: &[String]) -> Checked<Vec<String>> {
        for (i, p) in patterns.iter().enumerate() {
            if let Err(e) = Patterns::new(std::slice::from_ref(p)) {
                return Err(self.fail("exclude", Some(i), e.to_string()));
            }
        }
        self.words("exclude", patterns)
    }

    fn disks(&self, specs: &[String]) -> Checked<Vec<DiskSource>> {
        let mut disks: Vec<DiskSource> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let disk = DiskSource::parse(spec)
                .map_err(|_| self.fail("disks", Some(i), format!("bad disk '{spec}': give NAME=PATH or PATH")))?;
            self.absolute("disks", std::slice::from_ref(&disk.path)).map_err(|_| {
                self.fail(
                    "disks",
                    Some(i),
                    format!("relative path in '{spec}': give an absolute path"),
                )
            })?;
            if disks.iter().any(|d| d.name == disk.name) {
                return Err(self.fail("disks", Some(i), format!("disk name '{}' given twice", disk.name)));
            }
            disks.push(disk);
        }
        Ok(disks)
    }

    fn stream(&self, raw: Option<&RawStream>) -> Checked<Option<Stream>> {
        let Some(s) = raw else { return Ok(None) };
        let name_ok = !s.name.is_empty() && !s.name.contains('/') && s.name != "." && s.name != "..";
        if !name_ok {
            return Err(self.fail("stream/name", None, "must be a file name (not empty, no '/')"));
        }
        let command = self
            .words("stream/command", std::slice::from_ref(&s.command))?
            .remove(0);
        Ok(Some(Stream {
            name: s.name.clone(),
            command,
        }))
    }

    fn seconds(&self, key: &str, secs: Option<f64>) -> Checked<Option<f64>> {
        match secs {
            Some(s) if !(s > 0.0 && s.is_finite()) => Err(self.fail(key, None, "must be a positive number of seconds")),
            _ => Ok(secs),
        }
    }

    fn consistency(&self, level: Option<&str>) -> Checked<Option<Consistency>> {
        match level {
            None => Ok(None),
            Some("application") => Ok(Some(Consistency::Application)),
            Some("filesystem") => Ok(Some(Consistency::FileSystem)),
            Some(other) => Err(self.fail(
                "require_consistency",
                None,
                format!("'{other}' is not a level: use \"application\" or \"filesystem\""),
            )),
        }
    }

    fn snapshot(&self, raw: &RawJob) -> Checked<(Option<SnapshotSpec>, Option<f64>)> {
        let needs_command = [
            ("snapshot_cleanup", raw.snapshot_cleanup.is_some()),
            ("snapshot_at", raw.snapshot_at.is_some()),
            ("freeze", !raw.freeze.is_empty()),
        ];
        if raw.snapshot_command.is_none()
            && let Some((key, _)) = needs_command.iter().find(|(_, set)| *set)
        {
            return Err(self.fail(key, None, "needs snapshot_command"));
        }
        if raw.max_freeze.is_some() && raw.freeze.is_empty() {
            return Err(self.fail("max_freeze", None, "needs freeze (the file systems to freeze)"));
        }
        let max_freeze = self.seconds("max_freeze", raw.max_freeze)?;
        let spec = match (raw.snapshot.as_deref(), &raw.snapshot_command) {
            (Some(_), Some(_)) => {
                return Err(self.fail("snapshot_command", None, "give snapshot or snapshot_command, not both"));
            }
            (Some("btrfs"), None) => Some(SnapshotSpec::Btrfs),
            (Some(other), None) => {
                let message = format!("'{other}' is not a snapshot kind: use \"btrfs\" (or snapshot_command)");
                return Err(self.fail("snapshot", None, message));
            }
            (None, Some(create)) => Some(SnapshotSpec::Command {
                create: self.words("snapshot_command", std::slice::from_ref(create))?.remove(0),
                cleanup: self.word("snapshot_cleanup", raw.snapshot_cleanup.as_ref())?,
                at: self.absolute("snapshot_at", raw.snapshot_at.as_slice())?.pop(),
                freeze: self.absolute("freeze", &raw.freeze)?,
            }),
            (None, None) => None,
        };
        Ok((spec, max_freeze))
    }

    fn schedule(&self, schedule: Option<&String>) -> Checked<Option<String>> {
        if let Some(s) = schedule {
            calendar::Calendar::parse(s).map_err(|e| self.fail("schedule", None, e))?;
        }
        Ok(schedule.cloned())
    }

    fn retention(&self, raw: Option<&RawRetention>) -> Checked<Option<Retention>> {
        let Some(r) = raw else { return Ok(None) };
        if let Some(w) = &r.keep_within {
            check_within(w).map_err(|e| self.fail("retention/keep_within", None, e))?;
        }
        let retention = Retention {
            keep_last: r.keep_last,
            keep_hourly: r.keep_hourly,
            keep_daily: r.keep_daily,
            keep_weekly: r.keep_weekly,
            keep_monthly: r.keep_monthly,
            keep_yearly: r.keep_yearly,
            keep_within: r.keep_within.clone(),
            keep_tags: self.words("retention/keep_tags", &r.keep_tags)?,
        };
        let counts = [
            r.keep_last,
            r.keep_hourly,
            r.keep_daily,
            r.keep_weekly,
            r.keep_monthly,
            r.keep_yearly,
        ];
        let keeps = counts.iter().any(|n| n.unwrap_or(0) > 0) || r.keep_within.is_some() || !r.keep_tags.is_empty();
        if !keeps {
            let message = "keeps nothing: give at least one keep_* rule above zero";
            return Err(self.fail("retention", None, message));
        }
        Ok(Some(retention))
    }
}
