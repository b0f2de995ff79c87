//! `coffer backup`

use super::signals::{block_signals, wait_for_signal};
use super::{EXIT_WARNINGS, Global};
use anyhow::Result;
use coffer::backup::cleanup::Cleanup;
use coffer::backup::consistency::{self, ConsistencyOptions};
use coffer::backup::disk::DiskSource;
use coffer::backup::scripts::{self, AppScripts};
use coffer::backup::snapshot::SnapshotSpec;
use coffer::backup::stream::StreamSource;
use coffer::backup::{self, BackupOptions, exclude::Patterns, progress::Progress};
use coffer::format::point::{Consistency, PointRecord};
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
    /// A whole disk, NAME=PATH or PATH: a block device or raw image file (repeatable; disks are read in parallel)
    #[arg(long = "disk", value_name = "NAME=PATH", value_parser = DiskSource::parse)]
    disks: Vec<DiskSource>,
    /// Store standard input (or the output of --command) as the stream NAME
    #[arg(long, value_name = "NAME")]
    stdin_name: Option<String>,
    /// Run this shell command and store its output as the --stdin-name stream; the backup fails if it fails
    #[arg(long, value_name = "CMD", requires = "stdin_name")]
    command: Option<String>,
    /// Shell command run before the data is captured (repeatable)
    #[arg(long = "pre-script", value_name = "CMD")]
    pre_scripts: Vec<String>,
    /// Shell command run after the data is captured, also when the backup fails (repeatable)
    #[arg(long = "post-script", value_name = "CMD")]
    post_scripts: Vec<String>,
    /// Timeout of each --pre-script / --post-script in seconds
    #[arg(long, value_name = "SECS", default_value_t = scripts::DEFAULT_TIMEOUT_SECS)]
    script_timeout: f64,
    /// Let the backup fail, instead of going on at a lower level, when a --pre-script fails
    #[arg(long)]
    scripts_must_succeed: bool,
    /// JSON file listing applications with their pre/post scripts, timeouts and continue_on_failure
    #[arg(long, value_name = "FILE")]
    scripts: Option<PathBuf>,
    /// Read the file paths from a snapshot: `btrfs` (a read-only snapshot made and removed by coffer)
    #[arg(long, value_name = "KIND", value_parser = ["btrfs"], conflicts_with = "snapshot_command")]
    snapshot: Option<String>,
    /// Shell command that creates a snapshot (with --freeze file systems frozen while it runs)
    #[arg(long, value_name = "CMD")]
    snapshot_command: Option<String>,
    /// Shell command that removes the snapshot afterwards, however the backup ended
    #[arg(long, value_name = "CMD", requires = "snapshot_command")]
    snapshot_cleanup: Option<String>,
    /// Where --snapshot-command's snapshot of the (single) source path can be read
    #[arg(long, value_name = "DIR", requires = "snapshot_command")]
    snapshot_at: Option<PathBuf>,
    /// Freeze the file system holding PATH while --snapshot-command runs (repeatable)
    #[arg(long, value_name = "PATH", requires = "snapshot_command")]
    freeze: Vec<PathBuf>,
    /// Hard maximum of a freeze in seconds; the file system is thawed then, whatever happens
    #[arg(long, value_name = "SECS", default_value_t = consistency::DEFAULT_MAX_FREEZE.as_secs_f64())]
    max_freeze: f64,
    /// Fail instead of saving a point below this consistency level
    #[arg(long, value_name = "LEVEL", value_parser = ["application", "filesystem"])]
    require_consistency: Option<String>,
    /// Disk chunk size in bytes (for measurements; the default is chosen in docs/benchmarks.md)
    #[arg(long, hide = true)]
    disk_chunk_size: Option<u64>,
    /// Files and folders to back up
    paths: Vec<PathBuf>,
}

impl Args {
    fn consistency(&self) -> Result<ConsistencyOptions> {
        let mut apps = match &self.scripts {
            Some(f) => scripts::read_file(f)?,
            None => Vec::new(),
        };
        let n = self.pre_scripts.len().max(self.post_scripts.len());
        for i in 0..n {
            apps.push(AppScripts {
                name: format!("script{}", i + 1),
                pre: self.pre_scripts.get(i).cloned(),
                post: self.post_scripts.get(i).cloned(),
                timeout_secs: self.script_timeout,
                continue_on_failure: !self.scripts_must_succeed,
            });
        }
        let snapshot = match (&self.snapshot, &self.snapshot_command) {
            (Some(_), _) => Some(SnapshotSpec::Btrfs),
            (None, Some(create)) => Some(SnapshotSpec::Command {
                create: create.clone(),
                cleanup: self.snapshot_cleanup.clone(),
                at: self.snapshot_at.clone(),
                freeze: self.freeze.clone(),
            }),
            (None, None) => None,
        };
        let positive = |secs: f64| secs > 0.0 && secs.is_finite();
        if !positive(self.max_freeze) || !positive(self.script_timeout) {
            anyhow::bail!("--max-freeze and --script-timeout must be positive numbers of seconds");
        }
        Ok(ConsistencyOptions {
            scripts: apps,
            snapshot,
            require: self.require_consistency.as_deref().map(|l| match l {
                "application" => Consistency::Application,
                _ => Consistency::FileSystem,
            }),
            max_freeze: std::time::Duration::from_secs_f64(self.max_freeze),
            guard_exe: std::env::current_exe().ok(),
        })
    }
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    let rec = execute(g, a)?;
    Ok(if rec.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_WARNINGS)
    })
}

/// Runs the backup, prints its id and summary, and returns the point's record.
pub fn execute(g: &Global, a: Args) -> Result<PointRecord> {
    let mut patterns = a.excludes.clone();
    for f in &a.exclude_file {
        patterns.extend(Patterns::read_file(f)?);
    }
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let signals = block_signals();
    let opts = BackupOptions {
        consistency: a.consistency()?,
        disks: a.disks.clone(),
        stream: a.stdin_name.clone().map(|name| StreamSource {
            name,
            command: a.command.clone(),
        }),
        disk_chunk: a.disk_chunk_size.unwrap_or(coffer::backup::disk::DISK_CHUNK),
        paths: a.paths.clone(),
        host: a.host.unwrap_or_else(coffer::util::hostname),
        tags: a.tags,
        excludes: Patterns::new(&patterns)?,
        one_file_system: a.one_file_system,
        read_threads: (2 * cores).max(4),
        seal_threads: cores,
    };
    let vault = g.open_shared("backup")?;
    let target: Vec<String> = a.paths.iter().map(|p| p.display().to_string()).collect();
    let job = vault.job_start("backup", &target.join(" "));
    let progress = Arc::new(Progress::default());
    let bar = (!g.quiet && std::io::stderr().is_terminal()).then(|| ProgressBar::start(progress.clone(), &a.paths));
    let cleanup = Cleanup::default();
    let on_signal = cleanup.clone();
    std::thread::spawn(move || {
        let sig = wait_for_signal(&signals);
        eprintln!("coffer: signal {sig}: running post-scripts and removing snapshots, then stopping");
        on_signal.run_all();
        std::process::exit(128 + sig);
    });
    let result = backup::run_with_cleanup(vault, &opts, &progress, &cleanup);
    if let Some(b) = bar {
        b.stop();
    }
    let rec = match result {
        Ok(rec) => rec,
        Err(e) => return super::finish_job::<PointRecord>(job, Err(e.into())),
    };
    let problems: Vec<String> = rec
        .errors
        .iter()
        .map(|e| format!("{}: {}", e.path, e.message))
        .collect();
    let mut end = super::job_end(&problems, rec.stats.files, rec.stats.bytes_total);
    end.point = Some(rec.id.to_hex());
    job.finish(end);
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
        for d in &rec.disks {
            let how = if d.reused {
                "unchanged, not read".to_string()
            } else {
                format!("changed {} of {}", human_bytes(d.bytes_changed), human_bytes(d.size))
            };
            eprintln!("disk {}: {how}", d.name);
        }
        for st in &rec.streams {
            eprintln!("stream {}: {}", st.name, human_bytes(st.size));
        }
        eprintln!(
            "consistency: {} ({})",
            rec.consistency.as_str(),
            rec.consistency_report.reason
        );
        for e in &rec.errors {
            eprintln!("warning: {}: {}", e.path, e.message);
        }
        for s in &rec.skipped {
            eprintln!("skipped: {}: {}", s.path, s.message);
        }
    }
    Ok(rec)
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
