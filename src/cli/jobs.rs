//! `coffer jobs`, `coffer jobs show ID`

use super::Global;
use super::list::short_time;
use anyhow::{Result, bail};
use coffer::format::job::JobStatus;
use coffer::span::CalSpan;
use coffer::util::human_bytes;
use coffer::vault::Job;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    show: Option<JobsCommand>,
    /// Only jobs of this host
    #[arg(long)]
    host: Option<String>,
    /// Only jobs that failed or were interrupted
    #[arg(long)]
    failed: bool,
    /// Only jobs started within this long (e.g. 7d, 12h)
    #[arg(long, value_name = "DURATION")]
    since: Option<CalSpan>,
    /// Only jobs of this kind (backup, restore, check, forget, prune)
    #[arg(long)]
    kind: Option<String>,
}

#[derive(clap::Subcommand)]
enum JobsCommand {
    /// Show one job in full
    Show {
        /// Job id or unique prefix
        id: String,
    },
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let vault = g.open_unindexed()?;
    let jobs = vault.jobs()?;
    if let Some(JobsCommand::Show { id }) = &a.show {
        let found: Vec<&Job> = jobs.iter().filter(|j| j.id.starts_with(&id.to_lowercase())).collect();
        return match found.as_slice() {
            [one] => show(g, one),
            [] => bail!("no job '{id}'"),
            many => bail!("'{id}' is ambiguous: it matches {} jobs", many.len()),
        };
    }
    let since = a
        .since
        .map(|s| coffer::util::format_time(s.before(jiff::Timestamp::now())));
    let shown: Vec<&Job> = jobs
        .iter()
        .filter(|j| a.host.as_ref().is_none_or(|h| &j.start.host == h))
        .filter(|j| a.kind.as_ref().is_none_or(|k| &j.start.kind == k))
        .filter(|j| !a.failed || matches!(j.status, JobStatus::Failed | JobStatus::Interrupted))
        .filter(|j| since.as_ref().is_none_or(|s| &j.start.start >= s))
        .collect();
    if g.json {
        let arr: Vec<serde_json::Value> = shown.iter().map(|j| to_json(j)).collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<12}  {:<7}  {:<16}  {:<19}  {:>8}  {:<11}  {:>10}  target / message",
        "id", "kind", "host", "start (UTC)", "secs", "status", "bytes"
    );
    for j in &shown {
        let end = j.end.clone().unwrap_or_default();
        let note = end.message.clone().unwrap_or_else(|| j.start.target.clone());
        println!(
            "{:<12}  {:<7}  {:<16}  {:<19}  {:>8}  {:<11}  {:>10}  {}",
            &j.id[..12],
            j.start.kind,
            j.start.host,
            short_time(&j.start.start),
            j.end.as_ref().map_or("-".into(), |e| format!("{:.1}", e.duration_secs)),
            j.status.as_str(),
            human_bytes(end.bytes),
            note
        );
    }
    if !g.quiet {
        eprintln!("{} jobs", shown.len());
    }
    Ok(ExitCode::SUCCESS)
}

fn to_json(j: &Job) -> serde_json::Value {
    serde_json::json!({"id": j.id, "status": j.status, "start": j.start, "end": j.end})
}

fn show(g: &Global, j: &Job) -> Result<ExitCode> {
    if g.json {
        println!("{}", serde_json::to_string_pretty(&to_json(j))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("job       {}", j.id);
    println!("kind      {}", j.start.kind);
    println!("status    {}", j.status.as_str());
    println!("host      {} (pid {}, {})", j.start.host, j.start.pid, j.start.by);
    println!("target    {}", j.start.target);
    println!("start     {}", j.start.start);
    if let Some(e) = &j.end {
        println!("end       {}", e.end);
        println!("duration  {:.1}s", e.duration_secs);
        println!("files     {}", e.files);
        println!("bytes     {} ({})", e.bytes, human_bytes(e.bytes));
        println!("problems  {}", e.problems);
        if let Some(p) = &e.point {
            println!("point     {p}");
        }
        if let Some(m) = &e.message {
            println!("message   {m}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
