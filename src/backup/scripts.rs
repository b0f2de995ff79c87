//! Pre- and post-scripts per application, like a cloud VM-backup service's Linux script plugin: pre-scripts
//! quiesce applications before the data is captured, post-scripts resume them afterwards.
//!
//! Pre-scripts run in the order given; post-scripts in the reverse order, every one of them, whatever happened
//! before (a post-script must therefore cope with its pre-script not having run). Each runs with `sh -c` in a process
//! group of its own with `COFFER_PHASE` (`pre` or `post`) and `COFFER_APP` set; its standard output goes to
//! coffer's standard error, so `--json` output stays clean. A script that outlives its timeout is killed with its
//! whole process group.

use crate::format::sources::ScriptRun;
use serde::Deserialize;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Default timeout of a script.
pub const DEFAULT_TIMEOUT_SECS: f64 = 60.0;

/// The scripts of one application.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppScripts {
    pub name: String,
    #[serde(default)]
    pub pre: Option<String>,
    #[serde(default)]
    pub post: Option<String>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// When the pre-script fails: go on with the backup (at a lower consistency level) or fail it.
    #[serde(default = "yes")]
    pub continue_on_failure: bool,
}

fn default_timeout() -> f64 {
    DEFAULT_TIMEOUT_SECS
}

fn yes() -> bool {
    true
}

/// The `--scripts FILE` format: `{"applications": [{"name": ..., "pre": ..., "post": ..., "timeout_secs": ...,
/// "continue_on_failure": ...}]}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptsFile {
    applications: Vec<AppScripts>,
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptsError {
    #[error("scripts file {0}: {1}")]
    Read(String, io::Error),
    #[error("scripts file {0}: {1}")]
    Parse(String, serde_json::Error),
    #[error("scripts file {0}: {1}")]
    Invalid(String, String),
}

/// Reads a `--scripts` file.
pub fn read_file(path: &Path) -> Result<Vec<AppScripts>, ScriptsError> {
    let name = path.display().to_string();
    let text = std::fs::read(path).map_err(|e| ScriptsError::Read(name.clone(), e))?;
    let file: ScriptsFile = serde_json::from_slice(&text).map_err(|e| ScriptsError::Parse(name.clone(), e))?;
    for app in &file.applications {
        if !(app.timeout_secs > 0.0 && app.timeout_secs.is_finite()) {
            let msg = format!("application {}: timeout_secs must be a positive number", app.name);
            return Err(ScriptsError::Invalid(name, msg));
        }
    }
    Ok(file.applications)
}

/// Runs the pre-scripts in order. Stops early when one fails whose application does not allow going on; returns
/// the runs and whether the backup may go on.
pub fn run_pre(apps: &[AppScripts]) -> (Vec<ScriptRun>, bool) {
    let mut runs = Vec::new();
    for app in apps {
        let Some(cmd) = &app.pre else { continue };
        let run = run_one(app, "pre", cmd);
        let stop = !run.ok && !app.continue_on_failure;
        runs.push(run);
        if stop {
            return (runs, false);
        }
    }
    (runs, true)
}

/// Runs every post-script, last application first.
pub fn run_post(apps: &[AppScripts]) -> Vec<ScriptRun> {
    apps.iter()
        .rev()
        .filter_map(|app| app.post.as_ref().map(|cmd| run_one(app, "post", cmd)))
        .collect()
}

fn run_one(app: &AppScripts, phase: &str, cmd: &str) -> ScriptRun {
    let start = Instant::now();
    let timeout = Duration::from_secs_f64(app.timeout_secs);
    let outcome = match run_with_timeout(cmd, &[("COFFER_PHASE", phase), ("COFFER_APP", &app.name)], timeout) {
        Ok(Some(status)) => (status.success(), status.to_string()),
        Ok(None) => (false, format!("timed out after {} s, killed", app.timeout_secs)),
        Err(e) => (false, format!("cannot run: {e}")),
    };
    let run = ScriptRun {
        name: app.name.clone(),
        phase: phase.into(),
        command: cmd.into(),
        ok: outcome.0,
        outcome: outcome.1,
        duration_secs: start.elapsed().as_secs_f64(),
    };
    log::info!("{phase}-script of {}: {}", app.name, run.outcome);
    run
}

/// Runs `sh -c cmd` in its own process group; `None` if it had to be killed at the timeout.
pub fn run_with_timeout(
    cmd: &str,
    env: &[(&str, &str)],
    timeout: Duration,
) -> io::Result<Option<std::process::ExitStatus>> {
    let stdout = io::stderr().as_fd().try_clone_to_owned()?;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(stdout))
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            // SAFETY: kill with a negative pid signals the child's process group, which it leads (process_group(0)).
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, pre: &str, post: &str, timeout: f64, go_on: bool) -> AppScripts {
        AppScripts {
            name: name.into(),
            pre: Some(pre.into()),
            post: Some(post.into()),
            timeout_secs: timeout,
            continue_on_failure: go_on,
        }
    }

    #[test]
    fn order_failures_and_timeouts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let rec = |tag: &str| format!("echo {tag}-$COFFER_PHASE-$COFFER_APP >> {}", log.display());
        let apps = vec![
            app("a", &rec("1"), &rec("1"), 5.0, true),
            app("b", &format!("{}; exit 3", rec("2")), &rec("2"), 5.0, true),
            app("c", "sleep 5", &rec("3"), 0.2, true),
        ];
        let t = Instant::now();
        let (runs, go_on) = run_pre(&apps);
        assert!(go_on);
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the sleeping script was not killed at its timeout"
        );
        assert_eq!(runs.iter().map(|r| r.ok).collect::<Vec<_>>(), [true, false, false]);
        assert!(runs[1].outcome.contains("3"), "{}", runs[1].outcome);
        assert!(runs[2].outcome.contains("timed out"), "{}", runs[2].outcome);
        let posts = run_post(&apps);
        assert!(posts.iter().all(|r| r.ok));
        let text = std::fs::read_to_string(&log).unwrap();
        assert_eq!(text, "1-pre-a\n2-pre-b\n3-post-c\n2-post-b\n1-post-a\n");
    }

    #[test]
    fn a_failure_that_may_not_be_skipped_stops_the_pre_scripts() {
        let apps = vec![
            app("a", "false", "true", 5.0, false),
            app("b", "true", "true", 5.0, true),
        ];
        let (runs, go_on) = run_pre(&apps);
        assert!(!go_on);
        assert_eq!(runs.len(), 1);
    }

    #[test]
    fn scripts_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s.json");
        std::fs::write(
            &f,
            r#"{"applications": [{"name": "db", "pre": "true", "timeout_secs": 5}]}"#,
        )
        .unwrap();
        let apps = read_file(&f).unwrap();
        assert_eq!(
            (apps[0].name.as_str(), apps[0].timeout_secs, apps[0].continue_on_failure),
            ("db", 5.0, true)
        );
        std::fs::write(&f, r#"{"applications": [{"name": "db", "pre": "true", "timeout": 5}]}"#).unwrap();
        assert!(read_file(&f).unwrap_err().to_string().contains("timeout"));
        std::fs::write(&f, r#"{"applications": [{"name": "db", "timeout_secs": -1}]}"#).unwrap();
        assert!(read_file(&f).is_err());
    }
}
