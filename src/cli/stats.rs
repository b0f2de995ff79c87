//! `coffer stats`

use super::Global;
use super::list::short_time;
use anyhow::Result;
use coffer::maintain::stats::{self, SourceStats, Stored, VaultStats};
use coffer::util::human_bytes;
use coffer::view::View;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Only show the sources of this host (the totals stay those of the whole vault)
    #[arg(long)]
    host: Option<String>,
    /// Add a monthly cost estimate at this price per GiB and month (e.g. 0.02)
    #[arg(long, value_name = "PRICE", value_parser = price, allow_negative_numbers = true)]
    price_per_gib_month: Option<f64>,
}

fn price(s: &str) -> Result<f64, String> {
    stats::parse_price(s).map_err(|e| e.to_string())
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let vault = g.open_reader("stats")?;
    let view = View::new(vault);
    let mut s = stats::stats(&view, a.host.as_deref())?;
    if let Some(p) = a.price_per_gib_month {
        s.set_price(p)?;
    }
    if s.totals.missing_blobs > 0 && !g.quiet {
        eprintln!(
            "warning: {} blobs the points use are missing from the index (counted as 0 bytes): run 'coffer check'",
            s.totals.missing_blobs
        );
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print_sources(&s.sources);
        print_bin(&s);
        print_totals(&s);
    }
    Ok(ExitCode::SUCCESS)
}

/// One aligned line per source; a cost column only with a price.
fn print_sources(sources: &[SourceStats]) {
    let joined: Vec<String> = sources.iter().map(|s| s.sources.join(" ")).collect();
    let hw = sources.iter().map(|s| s.host.len()).max().unwrap_or(0).max(4);
    let sw = joined.iter().map(String::len).max().unwrap_or(0).max(7);
    let priced = sources.iter().any(|s| s.stored.monthly_cost.is_some());
    let cost_head = if priced { "  cost/month" } else { "" };
    println!(
        "{:<hw$}  {:<sw$}  {:>6}  {:<19}  {:>10}  {:>10}  {:>10}{cost_head}",
        "host", "sources", "points", "newest (UTC)", "protected", "unique", "shared"
    );
    for (s, src) in sources.iter().zip(&joined) {
        println!(
            "{:<hw$}  {:<sw$}  {:>6}  {:<19}  {:>10}  {:>10}  {:>10}{}",
            s.host,
            src,
            s.points,
            short_time(&s.newest),
            human_bytes(s.protected_bytes),
            human_bytes(s.stored.unique_stored_bytes),
            human_bytes(s.stored.shared_stored_bytes),
            cost(&s.stored, 12)
        );
    }
}

/// The cost of `stored` right-aligned in `width`, or nothing without a price.
fn cost(stored: &Stored, width: usize) -> String {
    stored.monthly_cost.map_or(String::new(), |c| format!("{c:>width$.2}"))
}

fn print_bin(s: &VaultStats) {
    let b = &s.recycle_bin;
    let priced = b
        .stored
        .monthly_cost
        .map_or(String::new(), |c| format!(", {c:.2}/month"));
    println!(
        "recycle bin: {}, {} only they use (prune frees it once they are purged), {} shared{priced}",
        count(b.points, "point"),
        human_bytes(b.stored.unique_stored_bytes),
        human_bytes(b.stored.shared_stored_bytes),
    );
}

fn print_totals(s: &VaultStats) {
    let t = &s.totals;
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}x"));
    println!("vault: {} of {}", count(t.points, "point"), count(t.sources, "source"));
    println!(
        "  logical data    {:>10}  (all live points)",
        human_bytes(t.logical_bytes)
    );
    println!(
        "  stored          {:>10}  ({} packs)",
        human_bytes(t.stored_bytes),
        t.packs
    );
    println!(
        "  used            {:>10}  ({} before compression)",
        human_bytes(t.used_stored_bytes),
        human_bytes(t.used_raw_bytes)
    );
    println!(
        "  unused          {:>10}  (prune could free)",
        human_bytes(t.unused_stored_bytes)
    );
    println!("  deduplication   {:>10}", ratio(t.dedup_ratio));
    println!("  compression     {:>10}", ratio(t.compression_ratio));
    if let (Some(c), Some(p)) = (t.monthly_cost, t.price_per_gib_month) {
        println!("  monthly cost    {c:>10.2}  (stored at {p} per GiB)");
    }
}

/// "1 point", "2 points".
fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}
