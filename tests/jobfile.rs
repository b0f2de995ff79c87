//! Job files through the real binary: `coffer run JOB` backs up a job and applies its retention to the job's own
//! points only; the job's vault and passphrase win over the command line and the environment; a bad job file or
//! job name is one line; `coffer schedule install|list|remove` writes, shows and removes the units and prints cron
//! lines where systemd is not used.

mod common;

use common::run::{Coffer, coffer_bin, json};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A vault initialised with the test passphrase, a file holding that passphrase, two source trees and the job
/// file `coffer.toml` naming them all.
struct Setup {
    tmp: tempfile::TempDir,
    c: Coffer,
    config: PathBuf,
    home: PathBuf,
    etc: PathBuf,
}

impl Setup {
    /// The job file declares `home` (keep_last = 2, excluding `-skipped*`, then the keys `home_extra`) and `etc`
    /// (no retention, then the keys `etc_extra`).
    fn new(home_extra: &str, etc_extra: &str) -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let c = Coffer::new(&tmp.path().join("vault"));
        c.ok(&["init"]);
        let (home, etc) = (tmp.path().join("home"), tmp.path().join("etc"));
        for (dir, file) in [(&home, "notes.txt"), (&etc, "fstab")] {
            fs::create_dir(dir).unwrap();
            fs::write(dir.join(file), format!("content of {file}")).unwrap();
        }
        fs::write(home.join("-skipped.txt"), "excluded").unwrap();
        let pass = tmp.path().join("pass");
        fs::write(&pass, format!("{}\n", c.password)).unwrap();
        let config = tmp.path().join("coffer.toml");
        let text = format!(
            "vault = \"{}\"\npassword_file = \"{}\"\n\n[jobs.home]\npaths = [\"{}\"]\nexclude = [\"-skipped*\"]\n\
             {home_extra}\n[jobs.home.retention]\nkeep_last = 2\n\n[jobs.etc]\npaths = [\"{}\"]\n{etc_extra}",
            c.vault.display(),
            pass.display(),
            home.display(),
            etc.display()
        );
        fs::write(&config, text).unwrap();
        Setup {
            tmp,
            c,
            config,
            home,
            etc,
        }
    }

    /// `coffer --config <job file> <args>`, see [`coffer`].
    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = coffer(&["--config", self.config.to_str().unwrap()]);
        cmd.args(args);
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("coffer binary runs")
    }

    /// Runs `coffer --config F <args>`, asserts exit 0 and returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        ok(self.run(args), args)
    }

    /// `coffer run JOB`: the new point's id (the first line of stdout).
    fn run_job(&self, job: &str) -> String {
        let out = self.ok(&["run", job]);
        out.lines().next().unwrap().to_string()
    }

    /// Points (live, or with `--deleted` the recycle bin) as (id, backed-up paths).
    fn points(&self, extra: &[&str]) -> Vec<(String, Vec<String>)> {
        let mut args = vec!["list", "--json"];
        args.extend(extra);
        let list = json(&self.c.ok(&args));
        let paths = |p: &serde_json::Value| {
            p.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_str().unwrap().into())
                .collect()
        };
        let points = list.as_array().unwrap().iter();
        points
            .map(|p| (p["id"].as_str().unwrap().into(), paths(&p["paths"])))
            .collect()
    }

    /// The ids of the points (see [`Setup::points`]) that backed up exactly `dir`, oldest first.
    fn ids_of(&self, dir: &Path, extra: &[&str]) -> Vec<String> {
        let dir = dir.to_str().unwrap();
        let points = self.points(extra).into_iter();
        points
            .filter(|(_, paths)| paths.len() == 1 && paths[0] == dir)
            .map(|(id, _)| id)
            .collect()
    }
}

/// `coffer <args>` with no vault, passphrase or job file from the inherited environment, stdin from /dev/null.
fn coffer(args: &[&str]) -> Command {
    let mut cmd = Command::new(coffer_bin());
    cmd.args(args);
    for var in [
        "COFFER_VAULT",
        "COFFER_PASSWORD",
        "COFFER_NEW_PASSWORD",
        "COFFER_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn ok(o: Output, args: &[&str]) -> String {
    assert!(
        o.status.success(),
        "coffer {args:?} exited {:?}:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn run_backs_up_the_job_and_forgets_only_its_own_old_points() {
    let s = Setup::new("", "");
    let home = s.home.to_str().unwrap();
    let other_host = s.c.ok(&["backup", "--host", "elsewhere", home]).trim().to_string();
    let (mut home_ids, mut etc_ids) = (Vec::new(), Vec::new());
    for i in 0..3 {
        fs::write(s.home.join("notes.txt"), format!("home version {i}")).unwrap();
        home_ids.push(s.run_job("home"));
        if i < 2 {
            fs::write(s.etc.join("fstab"), format!("etc version {i}")).unwrap();
            etc_ids.push(s.run_job("etc"));
        }
    }
    assert_eq!(
        s.ids_of(&s.home, &[]),
        [other_host.clone(), home_ids[1].clone(), home_ids[2].clone()]
    );
    assert_eq!(
        s.ids_of(&s.etc, &[]),
        etc_ids,
        "etc has no retention and is not in home's group"
    );
    assert_eq!(s.ids_of(&s.home, &["--deleted"]), [home_ids[0].clone()]);
    assert_eq!(s.points(&["--deleted"]).len(), 1);

    let listing = s.c.ok(&["ls", &home_ids[2], home]);
    assert!(
        listing.contains("notes.txt") && !listing.contains("-skipped.txt"),
        "{listing}"
    );
    let content = s.c.ok(&["cat", &format!("{}:{home}/notes.txt", home_ids[2])]);
    assert_eq!(content, "home version 2");

    let jobs = json(&s.c.ok(&["jobs", "--json"]));
    let kinds: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .inspect(|j| assert_eq!(j["status"], "succeeded", "{j}"))
        .map(|j| j["start"]["kind"].as_str().unwrap())
        .collect();
    // The manual backup, then home (backup, forget), etc (backup), home, etc, home.
    let expected = [
        "backup", "backup", "forget", "backup", "backup", "forget", "backup", "backup", "forget",
    ];
    assert_eq!(
        kinds, expected,
        "manual backup, then home+forget, etc, home+forget, etc, home+forget"
    );
}

#[test]
fn the_jobs_vault_and_passphrase_win_over_the_command_line_and_the_environment() {
    let s = Setup::new("", "");
    let wrong = s.tmp.path().join("wrong");
    fs::write(&wrong, "not the passphrase\n").unwrap();
    let o = s
        .cmd(&[
            "--vault",
            "/nonexistent/vault",
            "--password-file",
            wrong.to_str().unwrap(),
            "run",
            "etc",
        ])
        .env("COFFER_VAULT", "/nonexistent/env-vault")
        .env("COFFER_PASSWORD", "also wrong")
        .output()
        .unwrap();
    let id = ok(o, &["run", "etc", "(with wrong options)"]);
    assert_eq!(s.ids_of(&s.etc, &[]), [id.trim().to_string()]);

    // A job file without vault and passphrase takes them from the command line, then from the environment.
    let bare = s.tmp.path().join("bare.toml");
    fs::write(&bare, format!("[jobs.etc]\npaths = [\"{}\"]\n", s.etc.display())).unwrap();
    let o = coffer(&[
        "--config",
        bare.to_str().unwrap(),
        "--vault",
        s.c.vault.to_str().unwrap(),
        "run",
        "etc",
    ])
    .env("COFFER_VAULT", "/nonexistent/env-vault")
    .env("COFFER_PASSWORD", &s.c.password)
    .output()
    .unwrap();
    ok(o, &["run", "etc", "(vault from the command line)"]);
    let o = coffer(&["--config", bare.to_str().unwrap(), "run", "etc"])
        .env("COFFER_VAULT", &s.c.vault)
        .env("COFFER_PASSWORD", &s.c.password)
        .output()
        .unwrap();
    ok(o, &["run", "etc", "(vault from the environment)"]);
    assert_eq!(s.ids_of(&s.etc, &[]).len(), 3);
}

#[test]
fn a_failed_forget_exits_1_after_the_backup_is_saved() {
    let s = Setup::new("", "");
    s.run_job("home");
    s.run_job("home");
    s.c.ok(&["vault", "set", "immutable=on"]);
    let o = s.run(&["run", "home"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let line = err.lines().find(|l| l.starts_with("coffer: error:")).unwrap();
    assert!(
        line.contains("job home: the backup is saved, but forgetting old points failed") && line.contains("immutable"),
        "{err}"
    );
    let id = String::from_utf8(o.stdout).unwrap().lines().next().unwrap().to_string();
    let live = s.ids_of(&s.home, &[]);
    assert_eq!(live.len(), 3, "nothing was forgotten");
    assert_eq!(live[2], id, "the new point is saved");
}

#[test]
fn a_bad_job_file_or_job_name_is_one_line_and_exit_1() {
    let s = Setup::new("", "");
    let o = s.run(&["run", "hom"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "coffer: error: no job named 'hom' in {} (its jobs: etc, home)",
            s.config.display()
        )
    );

    let text = fs::read_to_string(&s.config)
        .unwrap()
        .replace("keep_last = 2", "keep_lats = 2");
    fs::write(&s.config, &text).unwrap();
    let line = text.lines().position(|l| l.starts_with("keep_lats")).unwrap() + 1;
    let o = s.run(&["run", "home"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    let at = format!(
        "coffer: error: {}:{line}: jobs.home.retention.keep_lats: unknown field",
        s.config.display()
    );
    assert!(err.starts_with(&at), "{err}");
    assert!(s.points(&[]).is_empty(), "nothing ran");

    let o = coffer(&["--config", "/nonexistent/coffer.toml", "schedule", "install"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("coffer: error: cannot read /nonexistent/coffer.toml"),
        "{}",
        stderr(&o)
    );
}

/// The unit files in `dir`, sorted.
fn unit_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn schedule_install_writes_units_and_cron_lines_and_follows_the_job_file() {
    let s = Setup::new("schedule = \"daily\"\n", "");
    let with = fs::read_to_string(&s.config).unwrap();
    let without = with.replace("schedule = \"daily\"\n", "");
    let units = s.tmp.path().join("units");
    let dir = units.to_str().unwrap();
    // A relative --config is written as an absolute path.
    let o = coffer(&["--config", "coffer.toml", "schedule", "install", "--unit-dir", dir])
        .current_dir(s.tmp.path())
        .output()
        .unwrap();
    let out = ok(o, &["schedule", "install"]);
    let exe = fs::canonicalize(coffer_bin()).unwrap();
    let (exe, config) = (exe.to_str().unwrap(), s.config.to_str().unwrap());
    assert_eq!(out, format!("0 0 * * * root {exe} --config {config} run home\n"));
    assert_eq!(unit_files(&units), ["coffer-home.service", "coffer-home.timer"]);
    let service = fs::read_to_string(units.join("coffer-home.service")).unwrap();
    assert!(
        service.contains(&format!("\nExecStart={exe} --config {config} run home\n")),
        "{service}"
    );
    let timer = fs::read_to_string(units.join("coffer-home.timer")).unwrap();
    assert!(timer.contains("\nOnCalendar=daily\n"), "{timer}");

    let listed = s.ok(&["schedule", "list", "--unit-dir", dir]);
    assert_eq!(listed, format!("home  daily  {config}\n"));
    let listed = json(&s.ok(&["--json", "schedule", "list", "--unit-dir", dir]));
    assert_eq!(listed[0]["job"], "home");
    assert_eq!(listed[0]["schedule"], "daily");
    assert_eq!(listed[0]["config"], config);

    fs::write(&s.config, &without).unwrap();
    let o = s.run(&["schedule", "install", "--unit-dir", dir]);
    let err = stderr(&o);
    assert_eq!(ok(o, &["schedule", "install", "(no schedule)"]), "");
    assert!(err.contains("removed the units of job home"), "{err}");
    assert!(unit_files(&units).is_empty());
    assert_eq!(s.ok(&["schedule", "list", "--unit-dir", dir]), "");

    fs::write(&s.config, &with).unwrap();
    s.ok(&["schedule", "install", "--unit-dir", dir]);
    assert_eq!(unit_files(&units).len(), 2);
    let o = s.run(&["schedule", "remove", "--unit-dir", dir]);
    assert!(stderr(&o).contains("removed "), "{}", stderr(&o));
    ok(o, &["schedule", "remove"]);
    assert!(unit_files(&units).is_empty());
    let o = s.run(&["schedule", "remove", "home", "--unit-dir", dir]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no units of job home written by coffer"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_schedule_without_a_cron_equivalent_fails_after_the_others_are_handled() {
    let s = Setup::new("schedule = \"Mon..Fri 22:00\"\n", "schedule = \"*-*-01 03:00\"\n");
    let units = s.tmp.path().join("units");
    let o = s.run(&["schedule", "install", "--unit-dir", units.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    assert!(
        out.starts_with("0 22 * * 1-5 root ") && out.ends_with(" run home\n"),
        "{out}"
    );
    assert_eq!(out.lines().count(), 1);
    let err = stderr(&o);
    assert!(
        err.contains("coffer: error: job etc: schedule '*-*-01 03:00' has no cron equivalent"),
        "{err}"
    );
    assert!(err.contains("/etc/cron.d/coffer"), "{err}");
    let expected = [
        "coffer-etc.service",
        "coffer-etc.timer",
        "coffer-home.service",
        "coffer-home.timer",
    ];
    assert_eq!(unit_files(&units), expected, "both jobs' units are written");
}
