//! `coffer list`

use super::Global;
use anyhow::Result;
use coffer::format::admin::Tombstone;
use coffer::format::ids::PointId;
use coffer::format::point::PointRecord;
use coffer::util::{format_time, human_bytes};
use coffer::vault::{PointFilter, Vault};
use std::collections::HashMap;
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
    /// List the points in the recycle bin instead, with when they will be purged
    #[arg(long)]
    deleted: bool,
}

pub fn filter(host: Option<String>, tags: Vec<String>, paths: Vec<String>) -> PointFilter {
    PointFilter {
        host,
        tags,
        paths,
        sources: None,
    }
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let vault = g.open_unindexed()?;
    let f = filter(a.host, a.tags, a.paths);
    if a.deleted {
        return deleted(g, &vault, &f);
    }
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
            short_time(&p.time),
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

/// `list --deleted`: points in the recycle bin, oldest first, with their purge dates.
fn deleted(g: &Global, vault: &Vault, f: &PointFilter) -> Result<ExitCode> {
    let window = vault.settings()?.soft_delete;
    let tombstones: HashMap<PointId, Tombstone> = vault.tombstones()?.into_iter().map(|t| (t.point, t)).collect();
    let points: Vec<PointRecord> = vault
        .load_all_points()?
        .into_iter()
        .filter(|p| tombstones.contains_key(&p.id) && f.matches(p))
        .collect();
    let purge = |p: &PointRecord| format_time(tombstones[&p.id].purge_time(&window, &p.time));
    if g.json {
        let arr: Vec<serde_json::Value> = points
            .iter()
            .map(|p| {
                let mut j = p.to_json();
                let t = &tombstones[&p.id];
                j["deleted"] = serde_json::json!({"time": t.deleted, "purge_after": purge(p), "reason": t.reason,
                    "by": t.by});
                j
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<8}  {:<20}  {:<16}  {:<20}  {:<20}  paths",
        "id", "time (UTC)", "host", "deleted", "purge after"
    );
    for p in &points {
        println!(
            "{:<8}  {:<20}  {:<16}  {:<20}  {:<20}  {}",
            p.id.short(),
            short_time(&p.time),
            p.host,
            short_time(&tombstones[&p.id].deleted),
            short_time(&purge(p)),
            p.paths.join(" ")
        );
    }
    if !g.quiet {
        eprintln!("{} recovery points in the recycle bin", points.len());
    }
    Ok(ExitCode::SUCCESS)
}

/// `2026-11-24 10:00:00` from an RFC 3339 time.
pub fn short_time(t: &str) -> String {
    t.get(..19).unwrap_or(t).replace('T', " ")
}
