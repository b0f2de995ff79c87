//! `coffer forget`, `coffer undelete`

use super::Global;
use anyhow::Result;
use coffer::maintain::forget::{self, GroupBy, Verdict};
use coffer::retention::Policy;
use coffer::span::CalSpan;
use coffer::vault::{PointFilter, Vault, match_prefix};
use std::process::ExitCode;
use std::sync::Arc;

/// The retention rules, shared by `forget` and `policy set`.
#[derive(clap::Args, Clone, Default)]
pub struct KeepArgs {
    /// Keep the N newest points
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest point of each of the N most recent hours with points
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_hourly: u32,
    /// Keep the newest point of each of the N most recent days with points (UTC days)
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: u32,
    /// Keep the newest point of each of the N most recent ISO weeks with points
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: u32,
    /// Keep the newest point of each of the N most recent months with points
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: u32,
    /// Keep the newest point of each of the N most recent years with points
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every point at most this much older than the newest one (e.g. 30d, 2w, 1y6m)
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<CalSpan>,
    /// Keep every point with this tag (repeatable)
    #[arg(long = "keep-tag", value_name = "TAG")]
    keep_tags: Vec<String>,
}

impl KeepArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            last: self.keep_last,
            hourly: self.keep_hourly,
            daily: self.keep_daily,
            weekly: self.keep_weekly,
            monthly: self.keep_monthly,
            yearly: self.keep_yearly,
            within: self.keep_within,
            tags: self.keep_tags.clone(),
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    keep: KeepArgs,
    /// Only consider points of this host
    #[arg(long)]
    host: Option<String>,
    /// Only consider points with this tag (repeatable: all must match)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Only consider points that backed up this path (repeatable)
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    /// Split points into groups by these fields: host, paths (sources: paths, disks, streams), tags
    #[arg(long = "group-by", value_name = "FIELDS", default_value = "host,paths")]
    group_by_text: String,
    /// Show what would be removed, change nothing
    #[arg(long)]
    dry_run: bool,
    /// Run prune afterwards (it frees data only of points whose soft-delete window is over)
    #[arg(long)]
    prune: bool,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let vault = g.open_shared("forget")?;
    let rules = a.keep.policy();
    let request = Request {
        rules: (!rules.is_empty()).then_some(rules),
        filter: PointFilter {
            host: a.host,
            tags: a.tags,
            paths: a.paths,
            sources: None,
        },
        group_by: a.group_by_text.parse()?,
        dry_run: a.dry_run,
        prune: a.prune && !a.dry_run,
    };
    forget(g, vault, request)
}

/// What to forget and how.
pub struct Request {
    /// The rules; `None` applies the stored policies.
    pub rules: Option<Policy>,
    pub filter: PointFilter,
    pub group_by: GroupBy,
    pub dry_run: bool,
    pub prune: bool,
}

/// Forgets (and prunes) as asked, in a vault opened with a shared lock, which is released before pruning.
pub fn forget(g: &Global, vault: Arc<Vault>, r: Request) -> Result<ExitCode> {
    let Request {
        rules,
        filter,
        group_by,
        dry_run,
        prune: then_prune,
    } = r;
    let settings = vault.settings()?;
    let points = vault.load_points()?;
    let verdicts = forget::plan(&points, rules.as_ref(), &filter, group_by, &settings)?;
    let removed = if dry_run {
        0
    } else {
        let job = vault.job_start("forget", filter.host.as_deref().unwrap_or("all hosts"));
        let outcome = remove(&vault, &verdicts, &settings.soft_delete).map(|n| (n, super::job_end(&[], n as u64, 0)));
        super::finish_job(job, outcome)?
    };
    let listing = print_verdicts(g, &verdicts, dry_run);
    if !g.quiet {
        let gone = verdicts.iter().filter(|v| !v.keep).count();
        let kept = verdicts.len() - gone;
        match dry_run {
            true => eprintln!("{kept} kept, {gone} would be removed (dry run: nothing changed)"),
            false => eprintln!(
                "{kept} kept, {removed} moved to the recycle bin for {} ('coffer list --deleted' shows them, \
                 'coffer undelete ID' brings one back)",
                settings.soft_delete
            ),
        }
    }
    let mut pruned = None;
    if then_prune {
        drop(vault); // releases the shared lock, so prune can take its exclusive one
        let report = super::prune::execute(g, &super::prune::Args::default())?;
        super::prune::print(g, &report, false);
        pruned = Some(super::prune::to_json(&report, false));
    }
    if g.json {
        let out = match pruned {
            Some(p) => serde_json::json!({"forget": listing, "prune": p}),
            None => listing,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    }
    Ok(ExitCode::SUCCESS)
}

/// Soft-deletes every point the plan removes; returns how many.
fn remove(vault: &Vault, verdicts: &[Verdict], window: &CalSpan) -> Result<usize> {
    let purge_after = window.after(jiff::Timestamp::now());
    let mut n = 0;
    for v in verdicts.iter().filter(|v| !v.keep) {
        vault.soft_delete(v.point.id, purge_after, "forget: no retention rule keeps it")?;
        n += 1;
    }
    Ok(n)
}

/// Prints the decisions as text, or returns them as JSON (printed by the caller, with prune's report if any).
fn print_verdicts(g: &Global, verdicts: &[Verdict], dry_run: bool) -> serde_json::Value {
    if g.json {
        let arr: Vec<serde_json::Value> = verdicts
            .iter()
            .map(|v| {
                serde_json::json!({"id": v.point.id.to_hex(), "time": v.point.time, "host": v.point.host,
                    "group": v.group, "keep": v.keep, "reasons": v.reasons})
            })
            .collect();
        return arr.into();
    }
    let mut group = None;
    for v in verdicts {
        if group != Some(&v.group) {
            println!("{}:", v.group);
            group = Some(&v.group);
        }
        let action = match (v.keep, dry_run) {
            (true, _) => "keep",
            (false, true) => "would remove",
            (false, false) => "remove",
        };
        println!(
            "  {action:<12}  {}  {}  {}",
            v.point.id.short(),
            super::list::short_time(&v.point.time),
            v.reasons.join(", ")
        );
    }
    serde_json::Value::Null
}

/// `coffer undelete ID...`: takes points out of the recycle bin.
pub fn undelete(g: &Global, specs: &[String]) -> Result<ExitCode> {
    let vault = g.open_shared("undelete")?;
    let deleted: Vec<_> = vault.deleted_ids()?.into_iter().collect();
    for spec in specs {
        let point = match_prefix(&vault, &deleted, spec)?;
        vault.undelete(&point.id)?;
        if !g.quiet {
            eprintln!("recovery point {} is back", point.id.short());
        }
    }
    Ok(ExitCode::SUCCESS)
}
