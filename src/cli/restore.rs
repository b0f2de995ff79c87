//! `coffer restore`

use super::{Global, job_end};
use anyhow::Result;
use coffer::backup::exclude::Patterns;
use coffer::format::job::JobEnd;
use coffer::format::point::PointRecord;
use coffer::restore::{self, RestoreOptions};
use coffer::util::human_bytes;
use coffer::vault::Vault;
use coffer::vault::resolve_point;
use coffer::view::View;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// POINT or POINT:PATH (a directory's content goes into the target; a file keeps its name)
    spec: String,
    /// Directory to restore into (created if missing)
    #[arg(long, value_name = "DIR", required_unless_present = "disk")]
    target: Option<PathBuf>,
    /// Restore this whole disk of the point (with --to)
    #[arg(long, value_name = "NAME", requires = "to", conflicts_with = "target")]
    disk: Option<String>,
    /// Image file or block device to write the --disk to (a file is created or replaced, sparse)
    #[arg(long, value_name = "PATH", requires = "disk")]
    to: Option<PathBuf>,
    /// Restore only entries matching this glob (and what is below them); repeatable
    #[arg(long = "include", value_name = "GLOB")]
    includes: Vec<String>,
    /// Skip entries matching this glob; repeatable
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Re-read everything written and compare it with the recovery point
    #[arg(long)]
    verify: bool,
    /// Only show what would be restored
    #[arg(long)]
    dry_run: bool,
    /// With 'latest': newest point of this host
    #[arg(long)]
    host: Option<String>,
    /// With 'latest': newest point that backed up this path
    #[arg(long = "path", value_name = "SOURCE")]
    source: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let (point, sub) = super::split_spec(&a.spec, false)?;
    let opts = RestoreOptions {
        includes: Patterns::new(&a.includes)?,
        excludes: Patterns::new(&a.excludes)?,
        owner: coffer::fsmeta::is_root(),
    };
    let vault = g.open_reader("restore")?;
    let job = vault.job_start("restore", &a.spec);
    super::finish_job(job, restore(g, a, &vault, &point, sub, &opts))
}

fn restore(
    g: &Global,
    a: Args,
    vault: &Arc<Vault>,
    point: &str,
    sub: Option<PathBuf>,
    opts: &RestoreOptions,
) -> Result<(ExitCode, JobEnd)> {
    let rec = resolve_point(vault, point, &super::list::filter(a.host, vec![], a.source))?;
    let view = View::new(vault.clone());
    if let (Some(name), Some(to)) = (&a.disk, &a.to) {
        return restore_disk(g, &view, &rec, name, to, a.verify)
            .map(|bytes| (ExitCode::SUCCESS, job_end(&[], 1, bytes)));
    }
    let target = a.target.clone().expect("clap requires --target without --disk");
    let plan = restore::plan(&view, &rec, sub.as_deref(), opts)?;
    if a.dry_run {
        for e in &plan.entries {
            println!("{}", target.join(&e.target).display());
        }
        eprintln!(
            "would restore {} entries, {} of data",
            plan.entries.len(),
            human_bytes(plan.bytes)
        );
        return Ok((ExitCode::SUCCESS, job_end(&[], 0, 0)));
    }
    let start = std::time::Instant::now();
    let report = restore::execute(&view, &plan, &target, opts)?;
    let mut problems = report.errors;
    if a.verify {
        problems.extend(restore::verify(vault, &plan, &target));
    }
    let end = job_end(&problems, report.entries, report.bytes);
    if !g.quiet {
        eprintln!(
            "restored {} entries, {} in {:.1}s from recovery point {} ({} pack reads){}",
            report.entries,
            human_bytes(report.bytes),
            start.elapsed().as_secs_f64(),
            rec.id.short(),
            report.reads,
            if a.verify && problems.is_empty() {
                ", verified"
            } else {
                ""
            }
        );
    }
    for p in &problems {
        eprintln!("error: {p}");
    }
    if problems.is_empty() {
        Ok((ExitCode::SUCCESS, end))
    } else {
        eprintln!(
            "coffer: error: {} entries could not be restored correctly (recovery point {})",
            problems.len(),
            rec.id.short()
        );
        Ok((ExitCode::from(1), end))
    }
}

/// `restore POINT --disk NAME --to PATH`.
/// Returns the bytes written.
fn restore_disk(g: &Global, view: &View, rec: &PointRecord, name: &str, to: &Path, verify: bool) -> Result<u64> {
    let node = view.disk(rec, name)?;
    let start = std::time::Instant::now();
    let r = restore::disk::restore_disk(view, &node, to, verify)?;
    if !g.quiet {
        eprintln!(
            "restored disk {name} ({}) to {} in {:.1}s: {} written, {} zeroed{}",
            human_bytes(node.size),
            to.display(),
            start.elapsed().as_secs_f64(),
            human_bytes(r.bytes_written),
            human_bytes(r.bytes_zeroed),
            if r.verified { ", verified" } else { "" }
        );
    }
    Ok(r.bytes_written)
}
