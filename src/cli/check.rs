//! `coffer check`

use super::Global;
use anyhow::Result;
use coffer::format::job::{JobEnd, JobStatus};
use coffer::vault::Vault;
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(g: &Global, read_data: bool) -> Result<ExitCode> {
    let vault = g.open_reader("check")?;
    let job = vault.job_start("check", if read_data { "--read-data" } else { "" });
    super::finish_job(job, check(g, vault, read_data))
}

fn check(g: &Global, vault: Arc<Vault>, read_data: bool) -> Result<(ExitCode, JobEnd)> {
    let report = coffer::maintain::check::check(vault, read_data)?;
    let summary = format!(
        "{} problems, {} affected paths",
        report.problems.len(),
        report.damaged.len()
    );
    let mut end = super::job_end(&[], report.packs as u64, 0);
    if !report.healthy() {
        end.status = Some(JobStatus::Failed);
        end.problems = (report.problems.len() + report.damaged.len()) as u64;
        end.message = Some(format!("the vault is damaged: {summary}"));
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for p in &report.problems {
            println!("error: {p}");
        }
        for (point, path) in &report.damaged {
            println!("damaged: recovery point {point}: {path}");
        }
        if !g.quiet {
            eprintln!(
                "checked {} points, {} trees, {} packs{}{}",
                report.points,
                report.trees,
                report.packs,
                if read_data {
                    format!(", {} blobs read", report.blobs_read)
                } else {
                    String::new()
                },
                if report.unindexed_packs > 0 {
                    format!(
                        " ({} unindexed packs from interrupted backups, reused by the next backup)",
                        report.unindexed_packs
                    )
                } else {
                    String::new()
                }
            );
        }
    }
    if report.healthy() {
        if !g.quiet && !g.json {
            eprintln!("no errors found");
        }
        Ok((ExitCode::SUCCESS, end))
    } else {
        eprintln!("coffer: error: the vault is damaged: {summary}");
        Ok((ExitCode::from(1), end))
    }
}
