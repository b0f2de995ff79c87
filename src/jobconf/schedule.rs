//! Running jobs on their schedules: systemd service and timer units, crontab lines where systemd is absent, and
//! installing, listing and removing coffer's units in a unit directory. Nothing here calls `systemctl`: after
//! [`install`] the caller runs `systemctl daemon-reload` and `systemctl enable --now` for each timer, and disables
//! the timers of [`stale`] jobs before installing, since `systemctl disable` needs the unit file still there.
//!
//! Every unit coffer writes starts with the line [`MARKER`] and names its job file on a `# config:` line. Only files
//! with the marker are ever overwritten or removed, so a unit someone else wrote under a `coffer-` name is safe; and
//! [`install`] removes only units written for the same job file, so two job files can schedule different jobs.

use super::calendar::Calendar;
use super::{Job, JobConfError, JobFile};
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The first line of every unit coffer writes.
pub const MARKER: &str = "# written by coffer schedule install";
/// Where system units go.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// Units larger than this are not coffer's and are not read.
const MAX_UNIT_BYTES: u64 = 64 * 1024;

/// A job whose units coffer installed, as read back from the unit directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Installed {
    pub job: String,
    /// The timer's `OnCalendar=` value; `None` if the timer is missing.
    pub schedule: Option<String>,
    /// The job file the units run, as written on their `# config:` line (systemd-quoted).
    pub config: Option<String>,
    /// The unit files (service and timer), sorted.
    pub files: Vec<PathBuf>,
}

/// Checks a systemd OnCalendar expression by the rules job files use (see docs/jobs.md).
pub fn check_calendar(text: &str) -> Result<(), String> {
    Calendar::parse(text).map(drop)
}

/// The file names of a job's units: `coffer-NAME.service` and `coffer-NAME.timer`.
pub fn unit_names(job: &str) -> (String, String) {
    (format!("coffer-{job}.service"), format!("coffer-{job}.timer"))
}

/// The text of the job's service and timer units, `None` without a schedule. The service runs `EXE --config
/// CONFIG run JOB` once (both paths made absolute, quoted for systemd), at low CPU and I/O priority: best-effort
/// I/O class 7 rather than idle, which a busy server could starve for hours. The timer is persistent (a run
/// missed while the machine was off happens at boot) with up to a minute of random delay.
pub fn units(job: &Job, config: &Path, exe: &Path) -> Option<(String, String)> {
    let schedule = job.schedule.as_deref()?;
    let config = systemd_quote(absolute(config).as_os_str());
    let exe = systemd_quote(absolute(exe).as_os_str());
    let name = &job.name;
    let head =
        format!("{MARKER}; change the job file and install again instead of editing this file\n# config: {config}\n");
    let service = format!(
        "{head}[Unit]\nDescription=coffer backup job {name}\n\n[Service]\nType=oneshot\n\
         ExecStart={exe} --config {config} run {name}\nNice=10\nIOSchedulingClass=best-effort\n\
         IOSchedulingPriority=7\n"
    );
    let timer = format!(
        "{head}[Unit]\nDescription=Schedule of coffer backup job {name}\n\n[Timer]\nOnCalendar={schedule}\n\
         Persistent=true\nRandomizedDelaySec=60\n\n[Install]\nWantedBy=timers.target\n"
    );
    Some((service, timer))
}

/// A line for `/etc/cron.d/coffer` (with the user field `root`) running the job at the times of its schedule, for
/// machines without systemd. Shorthands and `[WEEKDAYS] *-*-* HH:MM[:00]` forms have cron equivalents; others are
/// an error that says to use the systemd timer.
pub fn cron_line(job: &Job, config: &Path, exe: &Path) -> Result<String, JobConfError> {
    let fail = |message: String| JobConfError::Schedule {
        job: job.name.clone(),
        message,
    };
    let schedule = job
        .schedule
        .as_deref()
        .ok_or_else(|| fail("has no schedule".to_string()))?;
    let calendar = Calendar::parse(schedule).map_err(fail)?;
    let fields = calendar.cron_fields().ok_or_else(|| {
        fail(format!(
            "schedule '{schedule}' has no cron equivalent: use the systemd timer (coffer schedule install)"
        ))
    })?;
    let mut words = Vec::new();
    for path in [absolute(exe), absolute(config)] {
        let quoted = shell_quote(path.as_os_str()).ok_or_else(|| {
            fail(format!(
                "{} cannot be written into a crontab line (not UTF-8 or a control character)",
                path.display()
            ))
        })?;
        words.push(quoted);
    }
    Ok(format!(
        "{fields} root {} --config {} run {}",
        words[0], words[1], job.name
    ))
}

/// Writes the service and timer of every scheduled job into `unit_dir` (each atomically: a temporary file renamed
/// over the old one), then removes the [`stale`] units. Refuses, before writing anything, to overwrite a unit file
/// coffer did not write. Returns the files written.
pub fn install(file: &JobFile, exe: &Path, unit_dir: &Path) -> Result<Vec<PathBuf>, JobConfError> {
    fs::create_dir_all(unit_dir).map_err(io_error("create", unit_dir))?;
    let mut planned = Vec::new();
    for job in file.jobs.values() {
        if let Some((service, timer)) = units(job, &file.path, exe) {
            let (s, t) = unit_names(&job.name);
            planned.push((unit_dir.join(s), service));
            planned.push((unit_dir.join(t), timer));
        }
    }
    for (path, _) in &planned {
        if fs::symlink_metadata(path).is_ok() && read_ours(path)?.is_none() {
            let message = "exists and was not written by coffer: refusing to overwrite it".to_string();
            return Err(JobConfError::Unit {
                path: path.clone(),
                message,
            });
        }
    }
    let stale = stale(file, unit_dir)?;
    for (path, text) in &planned {
        write_atomic(path, text)?;
    }
    for path in stale.iter().flat_map(|s| &s.files) {
        fs::remove_file(path).map_err(io_error("remove", path))?;
    }
    Ok(planned.into_iter().map(|(path, _)| path).collect())
}

/// The installed jobs that [`install`] would remove: units written for this job file whose job no longer exists
/// or no longer has a schedule. The caller disables their timers (`systemctl disable --now`) before installing.
pub fn stale(file: &JobFile, unit_dir: &Path) -> Result<Vec<Installed>, JobConfError> {
    let config = systemd_quote(absolute(&file.path).as_os_str());
    let scheduled = |name: &str| file.jobs.get(name).is_some_and(|j| j.schedule.is_some());
    let installed = list(unit_dir)?;
    Ok(installed
        .into_iter()
        .filter(|i| i.config.as_deref() == Some(config.as_str()) && !scheduled(&i.job))
        .collect())
}

/// Removes coffer's units from `unit_dir`: of every job, or of the jobs named (each must have a unit there, checked
/// before anything is removed). Returns the files removed.
pub fn remove(unit_dir: &Path, jobs: Option<&[String]>) -> Result<Vec<PathBuf>, JobConfError> {
    let installed = list(unit_dir)?;
    let chosen: Vec<&Installed> = match jobs {
        None => installed.iter().collect(),
        Some(names) => names
            .iter()
            .map(|n| {
                installed
                    .iter()
                    .find(|i| &i.job == n)
                    .ok_or_else(|| JobConfError::NotInstalled {
                        job: n.clone(),
                        dir: unit_dir.to_path_buf(),
                    })
            })
            .collect::<Result<_, _>>()?,
    };
    let mut removed = Vec::new();
    for path in chosen.iter().flat_map(|i| &i.files) {
        fs::remove_file(path).map_err(io_error("remove", path))?;
        removed.push(path.clone());
    }
    Ok(removed)
}

/// The jobs with units coffer wrote in `unit_dir`, sorted by job name; none if the directory does not exist.
pub fn list(unit_dir: &Path) -> Result<Vec<Installed>, JobConfError> {
    let entries = match fs::read_dir(unit_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("read", unit_dir)(e)),
    };
    let mut found: BTreeMap<String, Installed> = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(io_error("read", unit_dir))?.path();
        let Some((job, is_timer)) = path.file_name().and_then(unit_job) else {
            continue;
        };
        let Some(text) = read_ours(&path)? else { continue };
        let item = found.entry(job.clone()).or_insert_with(|| Installed {
            job,
            schedule: None,
            config: None,
            files: Vec::new(),
        });
        if is_timer {
            item.schedule = line_value(&text, "OnCalendar=");
        }
        item.config = item.config.take().or_else(|| line_value(&text, "# config: "));
        item.files.push(path);
    }
    let mut installed: Vec<Installed> = found.into_values().collect();
    installed.iter_mut().for_each(|i| i.files.sort());
    Ok(installed)
}

/// The job of a unit file name `coffer-JOB.service` or `coffer-JOB.timer`, and whether it is the timer.
fn unit_job(name: &OsStr) -> Option<(String, bool)> {
    let rest = name.to_str()?.strip_prefix("coffer-")?;
    let (job, is_timer) = match rest.strip_suffix(".timer") {
        Some(job) => (job, true),
        None => (rest.strip_suffix(".service")?, false),
    };
    (!job.is_empty()).then(|| (job.to_string(), is_timer))
}

/// The text of a regular file that starts with [`MARKER`]; `None` for anything else (foreign, symlink, too big).
fn read_ours(path: &Path) -> Result<Option<String>, JobConfError> {
    let meta = fs::symlink_metadata(path).map_err(io_error("read", path))?;
    if !meta.is_file() || meta.len() > MAX_UNIT_BYTES {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    let file = fs::File::open(path).map_err(io_error("read", path))?;
    file.take(MAX_UNIT_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io_error("read", path))?;
    let ours = String::from_utf8(bytes)
        .ok()
        .filter(|t| t.lines().next().is_some_and(|l| l.starts_with(MARKER)));
    Ok(ours)
}

fn line_value(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .map(|v| v.trim().to_string())
}

/// Writes `text` to a temporary file beside `path`, flushes it and renames it over `path`.
fn write_atomic(path: &Path, text: &str) -> Result<(), JobConfError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_error("write", path))
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> JobConfError {
    let path = path.to_path_buf();
    move |source| JobConfError::Io { action, path, source }
}

/// `path` made absolute against the current directory (systemd and cron run elsewhere); unchanged if that fails.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Bytes that need no quoting in a unit file's command line or a shell command.
fn plain(bytes: &[u8]) -> bool {
    !bytes.is_empty()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.,:+=@-".contains(b))
}

/// One argument of a systemd command line: double-quoted when needed, with `\`, `"`, control characters and
/// non-UTF-8 bytes escaped C-style, and `%` and `$` doubled so systemd does not expand them.
pub(super) fn systemd_quote(arg: &OsStr) -> String {
    let bytes = arg.as_bytes();
    if plain(bytes) {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut out = String::from("\"");
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '%' => out.push_str("%%"),
                '$' => out.push_str("$$"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    c.encode_utf8(&mut buf)
                        .bytes()
                        .for_each(|b| out.push_str(&format!("\\x{b:02x}")));
                }
                c => out.push(c),
            }
        }
        chunk
            .invalid()
            .iter()
            .for_each(|b| out.push_str(&format!("\\x{b:02x}")));
    }
    out.push('"');
    out
}

/// One word of a crontab command: single-quoted for `sh` when needed, `%` escaped for cron. `None` for text a
/// crontab line cannot hold (not UTF-8, control characters).
fn shell_quote(arg: &OsStr) -> Option<String> {
    let s = arg.to_str().filter(|s| !s.chars().any(char::is_control))?;
    let quoted = if plain(s.as_bytes()) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    };
    Some(quoted.replace('%', "\\%"))
}
