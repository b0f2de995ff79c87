//! `coffer backup`

use super::{EXIT_WARNINGS, Global};
use anyhow::Result;
use coffer::backup::{self, BackupOptions, exclude::Patterns, progress::Progress};
use coffer::util::human_bytes;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

#[derive(clap::Args)]
pub struct Args {
    /// Host name recorded in the point (default: this machine's)
    #[arg(long)]
    host: Option<String>,
    /// Tag for the point (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Skip entries matching this glob (repeatable; a pattern with '/' matches the whole path)
    #[arg(long = "exclude", value_name = "GLOB")]
    excludes: Vec<String>,
    /// Read exclude globs from this file, one per line
    #[arg(long, value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Do not cross into other file systems below the given paths
    #[arg(long)]
    one_file_system: bool,
    /// Files and folders to back up
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_file {
        patterns.extend(Patterns::read_file(f)?);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let opts = BackupOptions {
        paths: a.paths.clone(),
        host: a.host.unwrap_or_else(coffer::util::hostname),
        tags: a.tags,
        excludes: Patterns::new(&patterns)?,
        one_file_system: a.one_file_system,
        read_threads: (2 * cores).max(4),
        seal_threads: cores,
    };
    let vault = g.open()?;
    let progress = Arc::new(Progress::default());
    let bar = (!g.quiet && std::io::stderr().is_terminal()).then(|| ProgressBar::start(progress.clone(), &a.paths));
    let result = backup::run(vault, &opts, &progress);
    if let Some(b) = bar {
        b.stop();
    }
    let rec = result?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&rec.to_json())?);
    } else {
        println!("{}", rec.id);
    }
    if !g.quiet {
        let s = &rec.stats;
        eprintln!(
            "recovery point {} saved: {} files ({} read), {} dirs, {} total, {} new, {} stored, {:.1}s",
            rec.id.short(),
            s.files,
            s.files_read,
            s.dirs,
            human_bytes(s.bytes_total),
            human_bytes(s.bytes_new),
            human_bytes(s.bytes_stored),
            rec.duration_secs
        );
        for e in &rec.errors {
            eprintln!("warning: {}: {}", e.path, e.message);
        }
        for s in &rec.skipped {
            eprintln!("skipped: {}: {}", s.path, s.message);
        }
    }
    Ok(if rec.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_WARNINGS)
    })
}

/// A terminal progress bar fed by a scanner thread (totals, for the ETA) and the backup's counters.
struct ProgressBar {
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl ProgressBar {
    fn start(progress: Arc<Progress>, paths: &[PathBuf]) -> ProgressBar {
        let scan = (progress.clone(), paths.to_vec());
        std::thread::spawn(move || scan.0.scan(&scan.1));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let bar = indicatif::ProgressBar::new(0).with_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                )
                .expect("valid template"),
            );
            while !flag.load(Relaxed) {
                if progress.scanned.load(Relaxed) {
                    bar.set_length(progress.total_bytes.load(Relaxed));
                }
                bar.set_position(progress.bytes.load(Relaxed));
                bar.set_message(format!("{} entries", progress.files.load(Relaxed)));
                std::thread::sleep(std::time::Duration::from_millis(150));
            }
            bar.finish_and_clear();
        });
        ProgressBar { stop, thread }
    }

    fn stop(self) {
        self.stop.store(true, Relaxed);
        let _ = self.thread.join();
    }
}
