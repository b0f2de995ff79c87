//! `coffer list`

use super::Global;
use anyhow::Result;
use coffer::format::point::PointRecord;
use coffer::util::human_bytes;
use coffer::vault::PointFilter;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Only points of this host
    #[arg(long)]
    host: Option<String>,
    /// Only points with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only points that backed up this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
}

pub fn filter(host: Option<String>, tags: Vec<String>, paths: Vec<String>) -> PointFilter {
    PointFilter { host, tags, paths }
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let vault = g.open()?;
    let f = filter(a.host, a.tags, a.paths);
    let points: Vec<PointRecord> = vault.load_points()?.into_iter().filter(|p| f.matches(p)).collect();
    if g.json {
        let arr: Vec<serde_json::Value> = points.iter().map(PointRecord::to_json).collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8}  {:<20}  {:<16}  {:<12}  {:>10}  paths",
        "id", "time (UTC)", "host", "tags", "size"
    );
    for p in &points {
        println!(
            "{:<8}  {:<20}  {:<16}  {:<12}  {:>10}  {}",
            p.id.short(),
            p.time.get(..19).unwrap_or(&p.time).replace('T', " "),
            p.host,
            p.tags.join(","),
            human_bytes(p.stats.bytes_total),
            p.paths.join(" ")
        );
    }
    if !g.quiet {
        eprintln!("{} recovery points", points.len());
    }
    Ok(ExitCode::SUCCESS)
}
