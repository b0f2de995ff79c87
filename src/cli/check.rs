//! `coffer check`

use super::Global;
use anyhow::Result;
use std::process::ExitCode;

pub fn run(g: &Global, read_data: bool) -> Result<ExitCode> {
    let vault = g.open_shared("check")?;
    let report = coffer::maintain::check::check(vault, read_data)?;
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
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "coffer: error: the vault is damaged: {} problems, {} affected paths",
            report.problems.len(),
            report.damaged.len()
        );
        Ok(ExitCode::from(1))
    }
}
