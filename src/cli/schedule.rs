//! `coffer schedule install|list|remove`: the jobs of the job file as systemd timers, or as cron lines where
//! systemd is not running. The units themselves are `coffer::jobconf::schedule`'s; this file decides when to tell
//! systemd (only for units in its own directory, and only when it runs) and in which order.

use super::Global;
use anyhow::{Context, Result, bail};
use coffer::jobconf::schedule::{self, Installed};
use coffer::jobconf::{self, JobConfError, JobFile};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

#[derive(clap::Subcommand)]
pub enum ScheduleCommand {
    /// Write a service and a timer for every job with a schedule and enable the timers; remove the units of this
    /// job file's jobs that no longer have one. Without systemd, print lines for /etc/cron.d/coffer
    Install(UnitDir),
    /// The jobs with units coffer wrote: job, schedule, job file
    List(UnitDir),
    /// Disable and remove the units of every job, or of the jobs named
    Remove {
        /// Jobs whose units to remove (default: all)
        jobs: Vec<String>,
        #[command(flatten)]
        dir: UnitDir,
    },
}

#[derive(clap::Args)]
pub struct UnitDir {
    /// Directory of the unit files; systemd is told about them only in the default directory
    #[arg(long, value_name = "DIR", default_value = schedule::UNIT_DIR)]
    unit_dir: PathBuf,
}

/// Runs one `systemctl` command line (the words after `systemctl`).
type Systemctl<'a> = &'a mut dyn FnMut(&[&str]) -> Result<()>;

pub fn run(g: &Global, config: &Path, cmd: ScheduleCommand) -> Result<ExitCode> {
    let mut real = systemctl;
    match cmd {
        ScheduleCommand::Install(d) => {
            let file = jobconf::load(config)?;
            let exe = std::env::current_exe().context("cannot find the path of the coffer binary")?;
            let systemd = systemd_runs(&d.unit_dir).then_some(&mut real as Systemctl);
            install(g, &file, &exe, &d.unit_dir, systemd)
        }
        ScheduleCommand::List(d) => list(g, &d.unit_dir),
        ScheduleCommand::Remove { jobs, dir } => {
            let systemd = systemd_runs(&dir.unit_dir).then_some(&mut real as Systemctl);
            remove(g, &dir.unit_dir, &jobs, systemd)
        }
    }
}

/// Whether to tell systemd about units in `dir`: it is systemd's directory and systemd is the running init.
fn systemd_runs(dir: &Path) -> bool {
    dir == Path::new(schedule::UNIT_DIR) && Path::new("/run/systemd/system").is_dir()
}

fn systemctl(args: &[&str]) -> Result<()> {
    let status = std::process::Command::new("systemctl")
        .args(args)
        .stdin(Stdio::null())
        .status()
        .context("cannot run systemctl")?;
    if !status.success() {
        bail!("systemctl {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `schedule install`. With systemd: disables the timers of stale jobs (while their files still exist), writes
/// the units, reloads systemd and enables each timer. Without: writes the units and prints a cron line per
/// scheduled job; exit code 1 if some schedule has none (after printing the others).
fn install(g: &Global, file: &JobFile, exe: &Path, dir: &Path, systemd: Option<Systemctl>) -> Result<ExitCode> {
    let stale = schedule::stale(file, dir)?;
    if let Some(systemctl) = systemd {
        disable_timers(stale.iter(), &mut *systemctl)?;
        schedule::install(file, exe, dir)?;
        systemctl(&["daemon-reload"])?;
        for job in file.jobs.values().filter(|j| j.schedule.is_some()) {
            systemctl(&["enable", "--now", &schedule::unit_names(&job.name).1])?;
        }
        report_install(g, file, dir, &stale);
        return Ok(ExitCode::SUCCESS);
    }
    schedule::install(file, exe, dir)?;
    report_install(g, file, dir, &stale);
    let mut all_ok = true;
    for job in file.jobs.values().filter(|j| j.schedule.is_some()) {
        match schedule::cron_line(job, &file.path, exe) {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("coffer: error: {e}");
                all_ok = false;
            }
        }
    }
    if !g.quiet && file.jobs.values().any(|j| j.schedule.is_some()) {
        eprintln!("{}", cron_note(dir));
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Why no timer was enabled, and where the printed cron lines belong.
fn cron_note(dir: &Path) -> String {
    let why = if dir == Path::new(schedule::UNIT_DIR) {
        "systemd is not running here".to_string()
    } else {
        format!("{} is not systemd's unit directory", dir.display())
    };
    format!(
        "note: {why}, so no timer was enabled; to run the jobs from cron, put the lines above in /etc/cron.d/coffer"
    )
}

/// Tells, on stderr, which jobs are scheduled and which jobs' units were removed.
fn report_install(g: &Global, file: &JobFile, dir: &Path, stale: &[Installed]) {
    if g.quiet {
        return;
    }
    for s in stale {
        eprintln!("removed the units of job {} (no longer scheduled)", s.job);
    }
    let scheduled: Vec<_> = file.jobs.values().filter(|j| j.schedule.is_some()).collect();
    for job in &scheduled {
        let (service, timer) = schedule::unit_names(&job.name);
        let when = job.schedule.as_deref().unwrap_or_default();
        eprintln!("job {}: {service} and {timer} in {} ({when})", job.name, dir.display());
    }
    if scheduled.is_empty() {
        eprintln!("no job in {} has a schedule", file.path.display());
    }
}

/// `systemctl disable --now` for the timer of each job that has one.
fn disable_timers<'a>(jobs: impl Iterator<Item = &'a Installed>, systemctl: Systemctl) -> Result<()> {
    for i in jobs {
        let timer = schedule::unit_names(&i.job).1;
        if i.files.iter().any(|f| f.file_name() == Some(timer.as_ref())) {
            systemctl(&["disable", "--now", &timer])?;
        }
    }
    Ok(())
}

/// `schedule list`: job, schedule and job file of each job with units in `dir`.
fn list(g: &Global, dir: &Path) -> Result<ExitCode> {
    let installed = schedule::list(dir)?;
    if g.json {
        let arr: Vec<serde_json::Value> = installed
            .iter()
            .map(|i| serde_json::json!({"job": i.job, "schedule": i.schedule, "config": i.config, "files": i.files}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&arr)?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = |f: fn(&Installed) -> usize| installed.iter().map(f).max().unwrap_or(0);
    let (jw, sw) = (
        width(|i| i.job.len()),
        width(|i| i.schedule.as_deref().map_or(10, str::len)),
    );
    for i in &installed {
        let when = i.schedule.as_deref().unwrap_or("(no timer)");
        let config = i.config.as_deref().unwrap_or("(unknown job file)");
        println!("{:<jw$}  {when:<sw$}  {config}", i.job);
    }
    if installed.is_empty() && !g.quiet {
        eprintln!("no coffer units in {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `schedule remove`: with systemd, disables the chosen timers first (checking every named job has units before
/// touching any), removes the files, then reloads systemd.
fn remove(g: &Global, dir: &Path, jobs: &[String], systemd: Option<Systemctl>) -> Result<ExitCode> {
    let names = (!jobs.is_empty()).then_some(jobs);
    let removed = match systemd {
        Some(systemctl) => {
            let installed = schedule::list(dir)?;
            disable_timers(chosen(&installed, names, dir)?.into_iter(), &mut *systemctl)?;
            let removed = schedule::remove(dir, names)?;
            systemctl(&["daemon-reload"])?;
            removed
        }
        None => schedule::remove(dir, names)?,
    };
    if !g.quiet {
        for f in &removed {
            eprintln!("removed {}", f.display());
        }
        if removed.is_empty() {
            eprintln!("no coffer units in {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The installed jobs `names` picks (all without names); an error names the first job without units.
fn chosen<'a>(installed: &'a [Installed], names: Option<&[String]>, dir: &Path) -> Result<Vec<&'a Installed>> {
    let Some(names) = names else {
        return Ok(installed.iter().collect());
    };
    let find = |n: &String| {
        installed
            .iter()
            .find(|i| &i.job == n)
            .ok_or_else(|| JobConfError::NotInstalled {
                job: n.clone(),
                dir: dir.to_path_buf(),
            })
    };
    Ok(names.iter().map(find).collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    fn quiet() -> Global {
        Global {
            json: false,
            quiet: true,
            lock_wait: std::time::Duration::from_secs(1),
            no_lock: false,
            vault: None,
            password_file: None,
            password_command: None,
        }
    }

    fn job_file(dir: &Path, text: &str) -> JobFile {
        jobconf::parse(text, &dir.join("coffer.toml")).expect("valid job file")
    }

    /// A systemctl that records each call, with whether the unit it names had a file in `dir` at that moment.
    fn recorder<'a>(dir: &'a Path, calls: &'a RefCell<Vec<String>>) -> impl FnMut(&[&str]) -> Result<()> + 'a {
        move |args: &[&str]| {
            let unit = args.last().filter(|a| a.starts_with("coffer-"));
            let present = unit.map(|u| {
                if dir.join(u).exists() {
                    " (file present)"
                } else {
                    " (file absent)"
                }
            });
            calls
                .borrow_mut()
                .push(format!("{}{}", args.join(" "), present.unwrap_or_default()));
            Ok(())
        }
    }

    const TWO_JOBS: &str = "[jobs.home]\npaths = [\"/home\"]\nschedule = \"daily\"\n\n\
                            [jobs.db]\npaths = [\"/srv\"]\nschedule = \"Sat 03:00\"\n";

    #[test]
    fn install_disables_stale_timers_before_removing_them_then_reloads_and_enables() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("units");
        let calls = RefCell::new(Vec::new());
        let exe = Path::new("/usr/bin/coffer");
        let first = job_file(tmp.path(), TWO_JOBS);
        install(&quiet(), &first, exe, &units, Some(&mut recorder(&units, &calls))).unwrap();
        assert_eq!(
            calls.take(),
            [
                "daemon-reload",
                "enable --now coffer-db.timer (file present)",
                "enable --now coffer-home.timer (file present)"
            ]
        );
        let second = job_file(tmp.path(), &TWO_JOBS.replace("schedule = \"Sat 03:00\"\n", ""));
        install(&quiet(), &second, exe, &units, Some(&mut recorder(&units, &calls))).unwrap();
        assert_eq!(
            calls.take(),
            [
                "disable --now coffer-db.timer (file present)",
                "daemon-reload",
                "enable --now coffer-home.timer (file present)"
            ]
        );
        assert!(!units.join("coffer-db.timer").exists() && !units.join("coffer-db.service").exists());
        assert!(units.join("coffer-home.timer").exists());
    }

    #[test]
    fn remove_checks_names_then_disables_before_removing_and_reloads() {
        let tmp = tempfile::tempdir().unwrap();
        let units = tmp.path().join("units");
        let file = job_file(tmp.path(), TWO_JOBS);
        schedule::install(&file, Path::new("/usr/bin/coffer"), &units).unwrap();
        let calls = RefCell::new(Vec::new());
        let names = ["home".to_string(), "nosuch".to_string()];
        let err = remove(&quiet(), &units, &names, Some(&mut recorder(&units, &calls))).unwrap_err();
        assert!(err.to_string().contains("no units of job nosuch"), "{err}");
        assert!(calls.take().is_empty(), "nothing is disabled when a name is wrong");
        assert!(units.join("coffer-home.timer").exists());

        remove(&quiet(), &units, &names[..1], Some(&mut recorder(&units, &calls))).unwrap();
        assert_eq!(
            calls.take(),
            ["disable --now coffer-home.timer (file present)", "daemon-reload"]
        );
        assert!(!units.join("coffer-home.timer").exists() && !units.join("coffer-home.service").exists());
        assert!(units.join("coffer-db.timer").exists());
    }

    #[test]
    fn a_failing_systemctl_is_an_error_that_names_the_command() {
        let err = systemctl(&["--no-such-option-for-coffer-tests"]).unwrap_err();
        let text = super::super::one_line(&err);
        assert!(text.contains("systemctl") && !text.contains('\n'), "{text}");
    }
}
