//! Job files: named backup jobs declared in TOML (default [`DEFAULT_PATH`]), checked completely when loaded, and
//! turned into the argument vectors of `coffer backup` and of the retention (`--keep-*`) flags. `schedule` writes
//! their systemd units and crontab lines. docs/jobs.md describes the file for users.
//!
//! Contracts:
//! - A [`JobFile`] that loaded is valid: every job has a source, every path is absolute (jobs run from systemd or
//!   cron with an unknown working directory), every schedule is a calendar expression systemd accepts, every
//!   retention keeps something. The argument vectors therefore never fail to parse in the CLI for reasons the file
//!   could have shown.
//! - Every error is one line naming the file, the line (when the key is in the file) and the field, e.g.
//!   `/etc/coffer/coffer.toml:12: jobs.home.retention.keep_daly: unknown field (expected one of ...)`.
//! - Top-level `vault`, `password_file` and `password_command` are defaults that each job inherits; a job that sets
//!   `vault` or either password key replaces the inherited value (the two password keys are one setting).

mod calendar;
mod locate;
mod raw;
pub mod schedule;
#[cfg(test)]
mod tests;

use crate::backup::disk::DiskSource;
use crate::backup::snapshot::SnapshotSpec;
use crate::format::point::Consistency;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// Where `coffer` looks for the job file when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/coffer/coffer.toml";

/// A loaded, valid job file.
#[derive(Clone, Debug, PartialEq)]
pub struct JobFile {
    /// The file as it was given to [`load`] or [`parse`] (used in messages and in the units' `--config`).
    pub path: PathBuf,
    pub jobs: BTreeMap<String, Job>,
}

/// How a job's vault passphrase is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Password {
    /// `--password-file`: the first line of this (absolute) file.
    File(PathBuf),
    /// `--password-command`: the first line this shell command prints.
    Command(String),
}

/// A stream source: the output of a shell command stored as a file named `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stream {
    pub name: String,
    pub command: String,
}

/// One job with the file's defaults applied. `None`, `false` and empty lists mean "flag not given".
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Job {
    pub name: String,
    pub vault: Option<PathBuf>,
    pub password: Option<Password>,
    pub paths: Vec<PathBuf>,
    pub exclude: Vec<String>,
    pub exclude_files: Vec<PathBuf>,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    /// `NAME=PATH` or `PATH` in the file; a bare `PATH` gets its file name as the name, as `--disk` does.
    pub disks: Vec<DiskSource>,
    pub stream: Option<Stream>,
    pub pre_scripts: Vec<String>,
    pub post_scripts: Vec<String>,
    pub script_timeout: Option<f64>,
    pub scripts_must_succeed: bool,
    /// `Application` or `FileSystem`, never `Crash` (requiring crash consistency would require nothing).
    pub require_consistency: Option<Consistency>,
    pub snapshot: Option<SnapshotSpec>,
    /// Only with a `freeze` list (which needs a snapshot command).
    pub max_freeze: Option<f64>,
    /// A systemd OnCalendar expression, checked by the same rules as [`schedule::check_calendar`].
    pub schedule: Option<String>,
    pub retention: Option<Retention>,
}

/// The retention rules of a job, applied after each backup by `coffer run`. At least one rule keeps something.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Like `30d`, `12h`, `2w`, `1y6m` (see [`check_within`]).
    pub keep_within: Option<String>,
    pub keep_tags: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum JobConfError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Anything wrong in the file; `field` is the dotted key (`jobs.home.paths`), empty for syntax errors.
    #[error("{}", invalid_line(path, *line, field, message))]
    Invalid {
        path: PathBuf,
        line: Option<usize>,
        field: String,
        message: String,
    },
    #[error("no job named '{name}' in {} (its jobs: {})", path.display(), known.join(", "))]
    UnknownJob {
        name: String,
        path: PathBuf,
        known: Vec<String>,
    },
    /// A job's schedule cannot be expressed where it was asked for (no schedule, no cron equivalent, a path that
    /// cannot be written into a crontab line).
    #[error("job {job}: {message}")]
    Schedule { job: String, message: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{}: {message}", path.display())]
    Unit { path: PathBuf, message: String },
    #[error("no units of job {job} written by coffer in {}", dir.display())]
    NotInstalled { job: String, dir: PathBuf },
}

fn invalid_line(path: &Path, line: Option<usize>, field: &str, message: &str) -> String {
    let at = match line {
        Some(n) => format!("{}:{n}", path.display()),
        None => path.display().to_string(),
    };
    if field.is_empty() {
        format!("{at}: {message}")
    } else {
        format!("{at}: {field}: {message}")
    }
}

/// Reads and parses the job file at `path`.
pub fn load(path: &Path) -> Result<JobFile, JobConfError> {
    let text = std::fs::read_to_string(path).map_err(|source| JobConfError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text, path)
}

/// Parses and checks the text of a job file; `path` is only used in messages and [`JobFile::path`].
pub fn parse(text: &str, path: &Path) -> Result<JobFile, JobConfError> {
    let located = locate::Located::parse(text, path)?;
    let raw: raw::RawFile = toml::from_str(text).map_err(|e| located.serde_error(&e))?;
    let jobs = raw::build(raw, &located)?;
    Ok(JobFile {
        path: path.to_path_buf(),
        jobs,
    })
}

impl JobFile {
    /// The job called `name`; the error lists the jobs there are.
    pub fn job(&self, name: &str) -> Result<&Job, JobConfError> {
        self.jobs.get(name).ok_or_else(|| JobConfError::UnknownJob {
            name: name.to_string(),
            path: self.path.clone(),
            known: self.jobs.keys().cloned().collect(),
        })
    }
}

impl Job {
    /// The global options (before the subcommand): `--vault`, `--password-file` or `--password-command`, each only
    /// if the job (or the file's defaults) set it.
    pub fn global_args(&self) -> Vec<OsString> {
        let mut a = Args::default();
        a.opt_path("--vault", self.vault.as_deref());
        match &self.password {
            Some(Password::File(f)) => a.opt_path("--password-file", Some(f)),
            Some(Password::Command(c)) => a.opt("--password-command", Some(c)),
            None => {}
        }
        a.0
    }

    /// The arguments of `coffer backup` (without the word `backup`): flags in a fixed order, then the paths.
    pub fn backup_args(&self) -> Vec<OsString> {
        let mut a = Args::default();
        a.opt("--host", self.host.as_deref());
        a.each("--tag", &self.tags);
        a.each("--exclude", &self.exclude);
        a.each_path("--exclude-file", &self.exclude_files);
        a.flag("--one-file-system", self.one_file_system);
        for d in &self.disks {
            let mut spec = OsString::from(format!("{}=", d.name));
            spec.push(&d.path);
            a.pair("--disk", spec);
        }
        if let Some(s) = &self.stream {
            a.opt("--stdin-name", Some(&s.name));
            a.opt("--command", Some(&s.command));
        }
        a.each("--pre-script", &self.pre_scripts);
        a.each("--post-script", &self.post_scripts);
        a.opt(
            "--script-timeout",
            self.script_timeout.map(|s| s.to_string()).as_deref(),
        );
        a.flag("--scripts-must-succeed", self.scripts_must_succeed);
        self.snapshot_args(&mut a);
        let level = self.require_consistency.map(|c| c.as_str());
        a.opt("--require-consistency", level);
        a.0.extend(self.paths.iter().map(|p| p.as_os_str().to_owned()));
        a.0
    }

    fn snapshot_args(&self, a: &mut Args) {
        match &self.snapshot {
            Some(SnapshotSpec::Btrfs) => a.opt("--snapshot", Some("btrfs")),
            Some(SnapshotSpec::Command {
                create,
                cleanup,
                at,
                freeze,
            }) => {
                a.opt("--snapshot-command", Some(create));
                a.opt("--snapshot-cleanup", cleanup.as_deref());
                a.opt_path("--snapshot-at", at.as_deref());
                a.each_path("--freeze", freeze);
            }
            None => {}
        }
        a.opt("--max-freeze", self.max_freeze.map(|s| s.to_string()).as_deref());
    }

    /// The retention flags (`--keep-last N` ... `--keep-tag T`), `None` when the job has no retention.
    pub fn retention_args(&self) -> Option<Vec<OsString>> {
        let r = self.retention.as_ref()?;
        let mut a = Args::default();
        let counts = [
            ("--keep-last", r.keep_last),
            ("--keep-hourly", r.keep_hourly),
            ("--keep-daily", r.keep_daily),
            ("--keep-weekly", r.keep_weekly),
            ("--keep-monthly", r.keep_monthly),
            ("--keep-yearly", r.keep_yearly),
        ];
        for (flag, n) in counts {
            a.opt(flag, n.map(|n| n.to_string()).as_deref());
        }
        a.opt("--keep-within", r.keep_within.as_deref());
        a.each("--keep-tag", &r.keep_tags);
        Some(a.0)
    }
}

/// Checks a `keep_within` value: a calendar duration as `forget --keep-within` takes it (see `span::CalSpan`), and
/// not zero (zero would keep only the newest point, which `keep_last = 1` says plainly).
pub fn check_within(text: &str) -> Result<crate::span::CalSpan, String> {
    let span: crate::span::CalSpan = text.parse().map_err(|e: crate::span::SpanError| e.to_string())?;
    if span == crate::span::CalSpan::default() {
        return Err(format!("'{text}' is zero: give a positive duration"));
    }
    Ok(span)
}

/// An argument vector under construction.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    /// `FLAG VALUE`, or `FLAG=VALUE` when the value starts with `-`: clap (like most parsers) would take a separate
    /// `-x` for a flag, so `--exclude -x` or `--pre-script --now` would not parse.
    fn pair(&mut self, flag: &str, value: impl Into<OsString>) {
        let value = value.into();
        if value.as_encoded_bytes().starts_with(b"-") {
            let mut joined = OsString::from(format!("{flag}="));
            joined.push(&value);
            self.0.push(joined);
        } else {
            self.0.push(flag.into());
            self.0.push(value);
        }
    }

    fn opt(&mut self, flag: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.pair(flag, v);
        }
    }

    fn opt_path(&mut self, flag: &str, value: Option<&Path>) {
        if let Some(v) = value {
            self.pair(flag, v.as_os_str());
        }
    }

    fn each(&mut self, flag: &str, values: &[String]) {
        for v in values {
            self.pair(flag, v);
        }
    }

    fn each_path(&mut self, flag: &str, values: &[PathBuf]) {
        for v in values {
            self.pair(flag, v.as_os_str());
        }
    }

    fn flag(&mut self, flag: &str, on: bool) {
        if on {
            self.0.push(flag.into());
        }
    }
}
