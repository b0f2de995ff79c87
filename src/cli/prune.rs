//! `coffer prune`, `coffer unlock`

use super::Global;
use anyhow::{Result, bail};
use coffer::format::lock::LockKind;
use coffer::maintain::prune::{PruneOptions, PruneReport, prune};
use coffer::util::human_bytes;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Show what would be freed, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Repack a pack when more than this percentage of it is unused
    #[arg(long, value_name = "PERCENT", default_value_t = 20.0)]
    repack_over: f64,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            dry_run: false,
            repack_over: 20.0,
        }
    }
}

pub fn run(g: &Global, a: &Args) -> Result<ExitCode> {
    let report = execute(g, a)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&report, a.dry_run))?);
    } else {
        print(g, &report, a.dry_run);
    }
    Ok(ExitCode::SUCCESS)
}

/// Takes the exclusive lock and prunes.
pub fn execute(g: &Global, a: &Args) -> Result<PruneReport> {
    if !(0.0..=100.0).contains(&a.repack_over) {
        bail!("--repack-over must be a percentage from 0 to 100");
    }
    let vault = g.open_locked(LockKind::Exclusive, "prune")?;
    let opts = PruneOptions {
        repack_over: a.repack_over / 100.0,
        dry_run: a.dry_run,
    };
    if a.dry_run {
        return Ok(prune(&vault, opts)?);
    }
    let job = vault.job_start("prune", "");
    let outcome = prune(&vault, opts).map_err(anyhow::Error::from).map(|r| {
        let end = super::job_end(&[], r.points_purged as u64, r.bytes_freed());
        (r, end)
    });
    super::finish_job(job, outcome)
}

pub fn to_json(r: &PruneReport, dry_run: bool) -> serde_json::Value {
    let mut j = serde_json::to_value(r).expect("a report encodes");
    j["bytes_freed"] = r.bytes_freed().into();
    j["dry_run"] = dry_run.into();
    j
}

pub fn print(g: &Global, r: &PruneReport, dry_run: bool) {
    if g.quiet {
        return;
    }
    let would = if dry_run { "would be " } else { "" };
    eprintln!(
        "{} points purged from the recycle bin, {} remain ({} blobs in use)",
        r.points_purged, r.points_remaining, r.blobs_used
    );
    eprintln!(
        "packs: {} before, {} {would}deleted, {} {would}repacked into {} ({} blobs), {} left by interrupted backups {would}deleted",
        r.packs_before,
        r.packs_deleted,
        r.packs_repacked,
        if dry_run {
            "new ones".to_string()
        } else {
            r.packs_written.to_string()
        },
        r.blobs_repacked,
        r.unindexed_packs_deleted
    );
    eprintln!(
        "{} {would}freed: {} -> {}{}",
        human_bytes(r.bytes_freed()),
        human_bytes(r.bytes_before),
        human_bytes(r.bytes_after),
        if dry_run { " (before repacking)" } else { "" }
    );
}

pub fn unlock(g: &Global, all: bool) -> Result<ExitCode> {
    let vault = g.open_unindexed()?;
    let removed = vault.unlock(all)?;
    for l in &removed {
        println!("removed {}", l.describe());
    }
    if !g.quiet {
        let left = vault.locks()?;
        eprintln!("{} locks removed, {} in place", removed.len(), left.len());
        for l in left {
            eprintln!("  in place: {}", l.describe());
        }
    }
    Ok(ExitCode::SUCCESS)
}
