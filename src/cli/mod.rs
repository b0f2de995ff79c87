//! Command-line interface: arguments, passphrase sources, opening the vault, and one module per verb.

mod backup;
mod cat;
mod check;
mod forget;
mod jobs;
mod key;
mod list;
mod ls;
mod mount;
mod prune;
mod restore;
mod run;
mod schedule;
mod settings;
mod signals;
mod stats;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use coffer::format::job::{JobEnd, JobStatus};
use coffer::format::lock::LockKind;
use coffer::store::Store;
use coffer::vault::JobHandle;
use coffer::vault::{InitOptions, Vault};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code of a backup or restore that completed but met problems (unreadable files, changed files).
pub const EXIT_WARNINGS: u8 = 3;

#[derive(Parser)]
#[command(name = "coffer", version, about = "Encrypted, deduplicating backups you can browse")]
pub struct Cli {
    /// Vault location: a directory, s3://BUCKET/PREFIX or azure://CONTAINER/PREFIX (credentials from the AWS_* or
    /// AZURE_* variables, see the README)
    #[arg(long, global = true, env = "COFFER_VAULT", value_name = "PATH|URL")]
    vault: Option<PathBuf>,
    /// Read the passphrase from the first line of this file
    #[arg(long, global = true, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Run this shell command and use the first line it prints as the passphrase
    #[arg(long, global = true, value_name = "CMD")]
    password_command: Option<String>,
    /// More detail on stderr (repeat for more)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Machine-readable JSON on stdout where the output is data
    #[arg(long, global = true)]
    json: bool,
    /// How long to wait for a conflicting vault lock (a prune, or the backups a prune waits for) before giving up
    #[arg(long, global = true, value_name = "SECS", default_value_t = 300)]
    lock_wait: u64,
    /// Take no lock for reading commands (ls, cat, restore, mount, check), e.g. on read-only media; a prune may then
    /// run meanwhile and make reads fail
    #[arg(long, global = true)]
    no_lock: bool,
    /// The job file that `run` and `schedule` read
    #[arg(long, global = true, env = "COFFER_CONFIG", value_name = "FILE", default_value = coffer::jobconf::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new vault
    Init {
        /// zstd compression level for new data (1-19)
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
        compression: i32,
    },
    /// Back up files and folders into a new recovery point
    Backup(Box<backup::Args>),
    /// List recovery points
    List(list::Args),
    /// List files in a recovery point
    Ls(ls::Args),
    /// Write one file of a recovery point to stdout
    Cat {
        /// POINT:PATH
        spec: String,
    },
    /// Restore files from a recovery point
    Restore(restore::Args),
    /// Check that the vault is complete and (with --read-data) intact
    Check {
        /// Also read and verify every stored byte
        #[arg(long)]
        read_data: bool,
    },
    /// Mount recovery points read-only (FUSE) on an empty directory
    Mount(mount::Args),
    /// Unmount a coffer mount
    Umount { mountpoint: PathBuf },
    /// Manage the passphrases (keys) that open the vault
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Move recovery points that no retention rule keeps to the recycle bin
    Forget(forget::Args),
    /// Bring recovery points back from the recycle bin, unchanged
    Undelete {
        /// Point id or unique prefix (repeatable)
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Purge points whose soft-delete window is over and free the data no point uses (takes an exclusive lock)
    Prune(prune::Args),
    /// Remove stale locks (processes that are gone, or locks not refreshed for 30 minutes)
    Unlock {
        /// Remove every lock, also those of processes that may still run
        #[arg(long)]
        all: bool,
    },
    /// The jobs log: every backup, restore, check, forget and prune with its outcome
    Jobs(jobs::Args),
    /// Sizes and costs: per protected source (host + sources), the recycle bin and the whole vault
    Stats(stats::Args),
    /// Manage the retention policies stored in the vault
    #[command(subcommand)]
    Policy(settings::PolicyCommand),
    /// Show or change vault settings (immutability, soft-delete window)
    #[command(subcommand)]
    Vault(settings::VaultCommand),
    /// Run a backup job of the job file (--config), then forget its old points by the job's retention
    Run(run::Args),
    /// Run the jobs of the job file on their schedules: systemd timers, or cron lines where systemd is absent
    #[command(subcommand)]
    Schedule(schedule::ScheduleCommand),
}

/// Options every command sees.
pub struct Global {
    pub json: bool,
    pub quiet: bool,
    lock_wait: std::time::Duration,
    no_lock: bool,
    vault: Option<PathBuf>,
    password_file: Option<PathBuf>,
    password_command: Option<String>,
}

/// Entry point when invoked as `mount.fuse.coffer` (by mount(8) and /etc/fstab).
pub fn mount_helper(args: &[String]) -> Result<ExitCode> {
    mount::helper(args)
}

pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let fuser_level = if cli.verbose >= 2 {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Error
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .filter_module("fuser", fuser_level)
        .format_timestamp(None)
        .init();
    let g = Global {
        json: cli.json,
        quiet: cli.quiet,
        lock_wait: std::time::Duration::from_secs(cli.lock_wait),
        no_lock: cli.no_lock,
        vault: cli.vault,
        password_file: cli.password_file,
        password_command: cli.password_command,
    };
    match cli.command {
        Command::Init { compression } => init(&g, compression),
        Command::Backup(a) => backup::run(&g, *a),
        Command::List(a) => list::run(&g, a),
        Command::Ls(a) => ls::run(&g, a),
        Command::Cat { spec } => cat::run(&g, &spec),
        Command::Restore(a) => restore::run(&g, a),
        Command::Check { read_data } => check::run(&g, read_data),
        Command::Key(k) => key::run(&g, k),
        Command::Mount(a) => mount::run(&g, a),
        Command::Umount { mountpoint } => mount::umount(&mountpoint),
        Command::Forget(a) => forget::run(&g, a),
        Command::Undelete { ids } => forget::undelete(&g, &ids),
        Command::Prune(a) => prune::run(&g, &a),
        Command::Unlock { all } => prune::unlock(&g, all),
        Command::Jobs(a) => jobs::run(&g, a),
        Command::Stats(a) => stats::run(&g, a),
        Command::Policy(c) => settings::policy(&g, c),
        Command::Vault(c) => settings::vault_settings(&g, c),
        Command::Run(a) => run::run(&g, &cli.config, &a),
        Command::Schedule(c) => schedule::run(&g, &cli.config, c),
    }
}

fn init(g: &Global, compression: i32) -> Result<ExitCode> {
    let store = g.store()?;
    let pass = g.new_passphrase("COFFER_PASSWORD", None)?;
    let opts = InitOptions {
        compression,
        ..InitOptions::default()
    };
    let vault = Vault::init(store, pass.as_bytes(), &opts)?;
    if !g.quiet {
        eprintln!(
            "created vault {} at {}",
            &vault.config().id[..8],
            vault.store().describe()
        );
    }
    Ok(ExitCode::SUCCESS)
}

impl Global {
    /// The store of `--vault` (or `COFFER_VAULT`): a directory or an object-store URL.
    fn store(&self) -> Result<Arc<dyn Store>> {
        let Some(location) = &self.vault else {
            bail!("no vault given: use --vault PATH|URL or set COFFER_VAULT")
        };
        Ok(coffer::store::open(location.as_os_str())?)
    }

    /// The vault's directory, unless the vault is on object storage.
    pub fn vault_dir(&self) -> Option<&PathBuf> {
        self.vault
            .as_ref()
            .filter(|v| !v.to_str().is_some_and(coffer::store::is_url))
    }

    /// The passphrase to hand to a child process, unless it can find it the same way this one did.
    pub fn passphrase_for_child(&self) -> Result<Option<String>> {
        if self.configured_passphrase()?.is_some() {
            return Ok(None);
        }
        self.passphrase().map(Some)
    }

    /// Opens and unlocks the vault.
    pub fn open(&self) -> Result<Arc<Vault>> {
        let store = self.store()?;
        coffer::vault::read_config(store.as_ref())?;
        let pass = self.passphrase()?;
        Ok(Arc::new(Vault::open(store, pass.as_bytes())?))
    }

    /// Opens and unlocks the vault under a shared lock for `command` (see `Vault::open_locked`).
    pub fn open_shared(&self, command: &str) -> Result<Arc<Vault>> {
        self.open_locked(LockKind::Shared, command)
    }

    /// Opens the vault without reading its index (for commands that need only point records or settings).
    pub fn open_unindexed(&self) -> Result<Arc<Vault>> {
        let store = self.store()?;
        coffer::vault::read_config(store.as_ref())?;
        let pass = self.passphrase()?;
        Ok(Arc::new(Vault::open_unindexed(store, pass.as_bytes())?))
    }

    /// Opens the vault for reading: under a shared lock unless `--no-lock` was given.
    pub fn open_reader(&self, command: &str) -> Result<Arc<Vault>> {
        if self.no_lock {
            self.open()
        } else {
            self.open_shared(command)
        }
    }

    pub fn open_locked(&self, kind: LockKind, command: &str) -> Result<Arc<Vault>> {
        let store = self.store()?;
        coffer::vault::read_config(store.as_ref())?;
        let pass = self.passphrase()?;
        Ok(Arc::new(Vault::open_locked(
            store,
            pass.as_bytes(),
            kind,
            command,
            self.lock_wait,
        )?))
    }

    /// The passphrase of an existing vault: env, file, command, or a prompt on a terminal.
    fn passphrase(&self) -> Result<String> {
        if let Some(p) = self.configured_passphrase()? {
            return Ok(p);
        }
        if !std::io::stdin().is_terminal() {
            bail!("no passphrase: set COFFER_PASSWORD or use --password-file or --password-command");
        }
        Ok(rpassword::prompt_password("passphrase: ")?)
    }

    /// Explicit options win over the environment: `--password-file`, then `--password-command`, then
    /// `COFFER_PASSWORD`.
    fn configured_passphrase(&self) -> Result<Option<String>> {
        if let Some(f) = &self.password_file {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            return Ok(Some(first_line(&text)));
        }
        if let Some(cmd) = &self.password_command {
            let out = std::process::Command::new("sh").arg("-c").arg(cmd).output()?;
            if !out.status.success() {
                bail!("password command failed ({})", out.status);
            }
            return Ok(Some(first_line(&String::from_utf8_lossy(&out.stdout))));
        }
        Ok(std::env::var("COFFER_PASSWORD").ok())
    }

    /// A passphrase for a new key: from `env_var`, `file`, the usual sources (for `init`), or asked twice.
    pub fn new_passphrase(&self, env_var: &str, file: Option<&PathBuf>) -> Result<String> {
        if let Some(f) = file {
            let text = std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
            return Ok(first_line(&text));
        }
        if let Ok(p) = std::env::var(env_var) {
            return Ok(p);
        }
        if env_var == "COFFER_PASSWORD"
            && let Some(p) = self.configured_passphrase()?
        {
            return Ok(p);
        }
        if !std::io::stdin().is_terminal() {
            bail!("no new passphrase: set {env_var} or give a file");
        }
        let a = rpassword::prompt_password("new passphrase: ")?;
        let b = rpassword::prompt_password("repeat passphrase: ")?;
        if a != b {
            bail!("the passphrases differ");
        }
        Ok(a)
    }
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or("").to_string()
}

/// Records the outcome of a command in the vault's jobs log and passes it on.
pub fn finish_job<T>(job: JobHandle, outcome: Result<(T, JobEnd)>) -> Result<T> {
    match outcome {
        Ok((value, end)) => {
            job.finish(end);
            Ok(value)
        }
        Err(e) => {
            job.failed(one_line(&e));
            Err(e)
        }
    }
}

/// The end record of a job that succeeded, or finished with `problems` (then `warning`, with the first as message).
pub fn job_end(problems: &[String], files: u64, bytes: u64) -> JobEnd {
    JobEnd {
        status: Some(if problems.is_empty() {
            JobStatus::Succeeded
        } else {
            JobStatus::Warning
        }),
        files,
        bytes,
        problems: problems.len() as u64,
        message: problems.first().cloned(),
        ..JobEnd::default()
    }
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

/// Splits `POINT:PATH` (PATH optional unless `need_path`).
pub fn split_spec(spec: &str, need_path: bool) -> Result<(String, Option<PathBuf>)> {
    match spec.split_once(':') {
        Some((p, path)) if !path.is_empty() => Ok((p.to_string(), Some(PathBuf::from(path)))),
        _ if need_path => bail!("'{spec}' should be POINT:PATH"),
        Some((p, _)) => Ok((p.to_string(), None)),
        None => Ok((spec.to_string(), None)),
    }
}
