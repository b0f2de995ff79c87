//! `coffer run JOB`: one job of the job file, as `coffer backup` with the job's options, then `coffer forget` with
//! its retention rules on the job's own points.

use super::forget::{self, KeepArgs, Request};
use super::{EXIT_WARNINGS, Global, backup};
use anyhow::Result;
use clap::Parser;
use coffer::format::point::PointRecord;
use coffer::jobconf::{self, Job, Password};
use coffer::maintain::forget::GroupBy;
use coffer::vault::PointFilter;
use std::ffi::OsString;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The job's name in the job file
    job: String,
}

/// The job's backup options, parsed exactly as `coffer backup` parses its command line.
#[derive(Parser)]
#[command(name = "backup", no_binary_name = true)]
struct BackupLine {
    #[command(flatten)]
    args: backup::Args,
}

/// The job's retention rules, parsed exactly as `coffer forget` parses its `--keep-*` flags.
#[derive(Parser)]
#[command(name = "forget", no_binary_name = true)]
struct KeepLine {
    #[command(flatten)]
    keep: KeepArgs,
}

/// Backs up the job; with a retention table, forgets the job's old points afterwards. Exit code 1 if forget failed
/// (its error is printed; the point is saved), else 3 if the backup met problems, else 0.
pub fn run(g: &Global, config: &Path, a: &Args) -> Result<ExitCode> {
    let file = jobconf::load(config)?;
    let job = file.job(&a.job)?;
    let g = g.for_job(job);
    let keep = match job.retention_args() {
        Some(args) => Some(parse::<KeepLine>(job, "retention", args)?.keep),
        None => None,
    };
    let backup = parse::<BackupLine>(job, "backup", job.backup_args())?.args;
    let rec = backup::execute(&g, backup)?;
    let warned = !rec.errors.is_empty();
    if let Some(keep) = keep
        && let Err(e) = forget_own(&g, &rec, &keep)
    {
        let e = e.context(format!(
            "job {}: the backup is saved, but forgetting old points failed",
            job.name
        ));
        eprintln!("coffer: error: {}", super::one_line(&e));
        return Ok(ExitCode::FAILURE);
    }
    Ok(if warned {
        ExitCode::from(EXIT_WARNINGS)
    } else {
        ExitCode::SUCCESS
    })
}

/// Forgets by `keep` among the points of `rec`'s host with exactly its sources: the job's own group, whatever
/// other jobs and hosts share the vault.
fn forget_own(g: &Global, rec: &PointRecord, keep: &KeepArgs) -> Result<()> {
    let request = Request {
        rules: Some(keep.policy()),
        filter: PointFilter {
            host: Some(rec.host.clone()),
            sources: Some(rec.sources()),
            ..PointFilter::default()
        },
        group_by: GroupBy::default(),
        dry_run: false,
        prune: false,
    };
    let vault = g.open_shared("forget")?;
    forget::forget(g, vault, request).map(drop)
}

/// Parses a job's argument vector with the command's own clap definition; a refusal is one line.
fn parse<P: Parser>(job: &Job, what: &str, args: Vec<OsString>) -> Result<P> {
    P::try_parse_from(args).map_err(|e| {
        let text = e.to_string();
        let first = text.lines().next().unwrap_or_default();
        let reason = first.strip_prefix("error: ").unwrap_or(first);
        anyhow::anyhow!("job {}: invalid {what} options: {reason}", job.name)
    })
}

impl Global {
    /// The options for running `job`: the job's vault and passphrase setting, where it has them, replace the
    /// command line's (which already replaced `COFFER_VAULT`); a job's passphrase setting also wins over
    /// `COFFER_PASSWORD`, as `--password-file` and `--password-command` do.
    fn for_job(&self, job: &Job) -> Global {
        let (password_file, password_command) = match &job.password {
            Some(Password::File(f)) => (Some(f.clone()), None),
            Some(Password::Command(c)) => (None, Some(c.clone())),
            None => (self.password_file.clone(), self.password_command.clone()),
        };
        Global {
            json: self.json,
            quiet: self.quiet,
            lock_wait: self.lock_wait,
            no_lock: self.no_lock,
            vault: job.vault.clone().or_else(|| self.vault.clone()),
            password_file,
            password_command,
        }
    }
}
