use super::schedule::{self, Installed, MARKER};
use super::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;

const CONFIG: &str = "/etc/coffer/coffer.toml";

const EXAMPLE: &str = r#"# top-level defaults
vault = "/srv/coffer"
password_file = "/etc/coffer/pass"

[jobs.home]
paths = ["/home", "/etc"]
exclude = ["*.cache", "/home/*/Downloads"]
exclude_files = ["/etc/coffer/home.exclude"]
one_file_system = true
tags = ["daily"]
host = "web1"
schedule = "daily"
pre_scripts = ["systemctl stop app"]
post_scripts = ["systemctl start app"]
script_timeout = 300
scripts_must_succeed = false
require_consistency = "application"
snapshot = "btrfs"

[jobs.home.retention]
keep_last = 3
keep_hourly = 24
keep_daily = 7
keep_weekly = 4
keep_monthly = 12
keep_yearly = 2
keep_within = "30d"
keep_tags = ["pinned"]

[jobs.machine]
disks = ["sda=/dev/sda", "/dev/nvme0n1"]

[jobs.db]
stream = { name = "db.sql", command = "pg_dumpall" }
schedule = "Mon..Fri *-*-* 22:00"

[jobs.app]
vault = "/mnt/other"
password_command = "pass show coffer"
paths = ["/srv/app"]
snapshot_command = "lvcreate -s -n snap vg/app"
snapshot_cleanup = "lvremove -f vg/snap"
snapshot_at = "/mnt/snap"
freeze = ["/srv"]
max_freeze = 2.5
scripts_must_succeed = true
require_consistency = "filesystem"
"#;

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

fn example() -> JobFile {
    parse(EXAMPLE, Path::new(CONFIG)).unwrap()
}

/// The one-line message parsing `text` fails with.
fn error(text: &str) -> String {
    parse(text, Path::new(CONFIG)).unwrap_err().to_string()
}

#[test]
fn the_example_parses_to_the_expected_jobs() {
    let file = example();
    assert_eq!(file.path, Path::new(CONFIG));
    assert_eq!(file.jobs.keys().collect::<Vec<_>>(), ["app", "db", "home", "machine"]);
    let home = file.job("home").unwrap();
    let expected = Job {
        name: "home".into(),
        vault: Some("/srv/coffer".into()),
        password: Some(Password::File("/etc/coffer/pass".into())),
        paths: vec!["/home".into(), "/etc".into()],
        exclude: vec!["*.cache".into(), "/home/*/Downloads".into()],
        exclude_files: vec!["/etc/coffer/home.exclude".into()],
        one_file_system: true,
        tags: vec!["daily".into()],
        host: Some("web1".into()),
        pre_scripts: vec!["systemctl stop app".into()],
        post_scripts: vec!["systemctl start app".into()],
        script_timeout: Some(300.0),
        require_consistency: Some(Consistency::Application),
        snapshot: Some(SnapshotSpec::Btrfs),
        schedule: Some("daily".into()),
        retention: Some(Retention {
            keep_last: Some(3),
            keep_hourly: Some(24),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_yearly: Some(2),
            keep_within: Some("30d".into()),
            keep_tags: vec!["pinned".into()],
        }),
        ..Job::default()
    };
    assert_eq!(home, &expected);
    let machine = file.job("machine").unwrap();
    let disk = |name: &str, path: &str| DiskSource {
        name: name.into(),
        path: path.into(),
    };
    assert_eq!(
        machine.disks,
        [disk("sda", "/dev/sda"), disk("nvme0n1", "/dev/nvme0n1")]
    );
    assert_eq!(machine.retention, None);
    let stream = Stream {
        name: "db.sql".into(),
        command: "pg_dumpall".into(),
    };
    assert_eq!(file.job("db").unwrap().stream, Some(stream));
}

#[test]
fn argument_vectors_are_exact() {
    let file = example();
    let home = file.job("home").unwrap();
    assert_eq!(
        home.global_args(),
        os(&["--vault", "/srv/coffer", "--password-file", "/etc/coffer/pass"])
    );
    assert_eq!(
        home.backup_args(),
        os(&[
            "--host",
            "web1",
            "--tag",
            "daily",
            "--exclude",
            "*.cache",
            "--exclude",
            "/home/*/Downloads",
            "--exclude-file",
            "/etc/coffer/home.exclude",
            "--one-file-system",
            "--pre-script",
            "systemctl stop app",
            "--post-script",
            "systemctl start app",
            "--script-timeout",
            "300",
            "--snapshot",
            "btrfs",
            "--require-consistency",
            "application",
            "/home",
            "/etc",
        ])
    );
    assert_eq!(
        home.retention_args(),
        Some(os(&[
            "--keep-last",
            "3",
            "--keep-hourly",
            "24",
            "--keep-daily",
            "7",
            "--keep-weekly",
            "4",
            "--keep-monthly",
            "12",
            "--keep-yearly",
            "2",
            "--keep-within",
            "30d",
            "--keep-tag",
            "pinned",
        ]))
    );
    let machine = file.job("machine").unwrap();
    assert_eq!(
        machine.backup_args(),
        os(&["--disk", "sda=/dev/sda", "--disk", "nvme0n1=/dev/nvme0n1"])
    );
    assert_eq!(machine.retention_args(), None);
    assert_eq!(
        file.job("db").unwrap().backup_args(),
        os(&["--stdin-name", "db.sql", "--command", "pg_dumpall"])
    );
}

#[test]
fn snapshot_command_flags_and_overrides_of_vault_and_password() {
    let file = example();
    let app = file.job("app").unwrap();
    assert_eq!(
        app.global_args(),
        os(&["--vault", "/mnt/other", "--password-command", "pass show coffer"])
    );
    assert_eq!(
        app.backup_args(),
        os(&[
            "--scripts-must-succeed",
            "--snapshot-command",
            "lvcreate -s -n snap vg/app",
            "--snapshot-cleanup",
            "lvremove -f vg/snap",
            "--snapshot-at",
            "/mnt/snap",
            "--freeze",
            "/srv",
            "--max-freeze",
            "2.5",
            "--require-consistency",
            "filesystem",
            "/srv/app",
        ])
    );
}

#[test]
fn values_starting_with_a_dash_are_joined_to_their_flag() {
    let text = "[jobs.a]\npaths = ['/a']\nexclude = ['-draft*', 'x']\npre_scripts = ['--now']\n\
                tags = ['-']\n[jobs.a.retention]\nkeep_tags = ['-pin']\n";
    let a = parse(text, Path::new(CONFIG)).unwrap().jobs.remove("a").unwrap();
    assert_eq!(
        a.backup_args(),
        os(&[
            "--tag=-",
            "--exclude=-draft*",
            "--exclude",
            "x",
            "--pre-script=--now",
            "/a"
        ])
    );
    assert_eq!(a.retention_args(), Some(os(&["--keep-tag=-pin"])));
}
#[test]
fn a_job_inherits_what_it_does_not_set_and_nothing_when_the_file_sets_nothing() {
    let text = "password_command = 'cat /k'\n[jobs.a]\npaths = ['/a']\n[jobs.b]\npaths = ['/b']\n\
                vault = '/vb'\npassword_file = '/pb'\n";
    let file = parse(text, Path::new(CONFIG)).unwrap();
    assert_eq!(file.jobs["a"].global_args(), os(&["--password-command", "cat /k"]));
    assert_eq!(
        file.jobs["b"].global_args(),
        os(&["--vault", "/vb", "--password-file", "/pb"])
    );
    let bare = parse("[jobs.a]\npaths = ['/a']\n", Path::new(CONFIG)).unwrap();
    assert!(bare.jobs["a"].global_args().is_empty());
    let cloud = parse(
        "vault = 's3://bucket/vault'\n[jobs.a]\npaths = ['/a']\n",
        Path::new(CONFIG),
    )
    .unwrap();
    assert_eq!(cloud.jobs["a"].global_args(), os(&["--vault", "s3://bucket/vault"]));
}

#[test]
fn an_unknown_job_lists_the_known_ones() {
    let e = example().job("hom").unwrap_err().to_string();
    assert_eq!(
        e,
        "no job named 'hom' in /etc/coffer/coffer.toml (its jobs: app, db, home, machine)"
    );
}

#[test]
fn load_reads_the_file_and_a_missing_file_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("coffer.toml");
    fs::write(&path, EXAMPLE).unwrap();
    assert_eq!(load(&path).unwrap(), parse(EXAMPLE, &path).unwrap());
    let missing = dir.path().join("missing.toml");
    let e = load(&missing).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            missing.display()
        )
    );
}

#[test]
fn golden_shape_errors_name_file_line_and_field() {
    let unknown =
        "vault = '/v'\n\n[jobs.home]\npaths = ['/a']\n\n[jobs.home.retention]\nkeep_last = 1\nkeep_daly = 3\n";
    assert_eq!(
        error(unknown),
        "/etc/coffer/coffer.toml:8: jobs.home.retention.keep_daly: unknown field (expected one of keep_last, \
         keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within, keep_tags)"
    );
    assert_eq!(
        error("[jobs.home]\npaths = ['/a']\nhostname = 'x'\n")
            .split(" (expected")
            .next(),
        Some("/etc/coffer/coffer.toml:3: jobs.home.hostname: unknown field")
    );
    assert_eq!(
        error("vault = '/v'\n\n[jobs.home]\n\npaths = '/home'\n"),
        "/etc/coffer/coffer.toml:5: jobs.home.paths: expected an array of strings, found string \"/home\""
    );
    assert_eq!(
        error("[jobs.home]\npaths = [\n  '/a',\n  3,\n]\n"),
        "/etc/coffer/coffer.toml:4: jobs.home.paths: expected an array of strings, found integer 3"
    );
    assert_eq!(
        error("[jobs.home]\npaths = ['/a']\n[jobs.home.retention]\nkeep_last = -1\n"),
        "/etc/coffer/coffer.toml:4: jobs.home.retention.keep_last: expected a whole number from 0 to 4294967295, \
         found integer -1"
    );
    assert_eq!(
        error("[jobs.db]\nstream = { name = 'x' }\n"),
        "/etc/coffer/coffer.toml:2: jobs.db.stream: missing field command"
    );
    assert_eq!(
        error("vault = '/v'\n[jobs.home\n"),
        "/etc/coffer/coffer.toml:2: unclosed table, expected ]"
    );
    assert_eq!(
        error("vault = '/v'\nvault = '/w'\n"),
        "/etc/coffer/coffer.toml:2: vault: duplicate key"
    );
}

#[test]
fn golden_semantic_errors_name_file_line_and_field() {
    let cases = [
        (
            "[jobs.ok]\npaths = ['/a']\n\n[jobs.'my home']\npaths = ['/home']\n",
            "/etc/coffer/coffer.toml:4: jobs.\"my home\": bad job name 'my home': use letters, digits, '_', '.' and \
             '-' (not first), at most 200",
        ),
        (
            "vault = '/v'\n[jobs.home]\nexclude = ['*.o']\n",
            "/etc/coffer/coffer.toml:2: jobs.home: nothing to back up: give paths, disks or stream",
        ),
        (
            "[jobs.home]\npaths = [\n  '/home',\n  'srv/data',\n]\n",
            "/etc/coffer/coffer.toml:4: jobs.home.paths: relative path 'srv/data': give an absolute path",
        ),
        (
            "password_file = 'pass'\n[jobs.home]\npaths = ['/home']\n",
            "/etc/coffer/coffer.toml:1: password_file: relative path 'pass': give an absolute path",
        ),
        (
            "[jobs.home]\npaths = ['/home']\n[jobs.home.retention]\nkeep_daily = 7\nkeep_within = '30s'\n",
            "/etc/coffer/coffer.toml:5: jobs.home.retention.keep_within: '30s' is not a duration: write a number and a \
             unit, e.g. 30d, 12h, 2w, 1y6m (units y m w d h)",
        ),
        (
            "[jobs.home]\npaths = ['/home']\nschedule = 'every day'\n",
            "/etc/coffer/coffer.toml:3: jobs.home.schedule: 'every day': 'every' is not a weekday (Mon..Sun): use a \
             shorthand like daily or [WEEKDAYS] DATE TIME like Mon..Fri *-*-* 22:00",
        ),
        (
            "[jobs.home]\npaths = ['/home']\nsnapshot_cleanup = 'lvremove vg/snap'\n",
            "/etc/coffer/coffer.toml:3: jobs.home.snapshot_cleanup: needs snapshot_command",
        ),
        (
            "",
            "/etc/coffer/coffer.toml: jobs: none defined: add a [jobs.NAME] table with paths, disks or stream",
        ),
        (
            "# nothing yet\n[jobs]\n",
            "/etc/coffer/coffer.toml:2: jobs: none defined: add a [jobs.NAME] table with paths, disks or stream",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(text), expected, "for {text:?}");
    }
}

#[test]
fn every_semantic_rule_refuses_its_case() {
    let job = |body: &str| error(&format!("[jobs.j]\npaths = ['/a']\n{body}\n"));
    let cases = [
        (
            "require_consistency = 'crash'",
            "jobs.j.require_consistency: 'crash' is not a level",
        ),
        ("snapshot = 'zfs'", "jobs.j.snapshot: 'zfs' is not a snapshot kind"),
        ("snapshot = 'btrfs'\nsnapshot_command = 'x'", "not both"),
        ("freeze = ['/a']", "jobs.j.freeze: needs snapshot_command"),
        ("snapshot_at = '/snap'", "jobs.j.snapshot_at: needs snapshot_command"),
        (
            "snapshot_command = 'x'\nmax_freeze = 5",
            "jobs.j.max_freeze: needs freeze",
        ),
        (
            "script_timeout = 0",
            "jobs.j.script_timeout: must be a positive number of seconds",
        ),
        ("script_timeout = -2.5", "must be a positive number"),
        (
            "snapshot_command = 'x'\nfreeze = ['/a']\nmax_freeze = 0",
            "jobs.j.max_freeze: must be a positive",
        ),
        (
            "exclude_files = ['x.exclude']",
            "jobs.j.exclude_files: relative path 'x.exclude'",
        ),
        ("exclude = ['[a']", "jobs.j.exclude: bad pattern '[a'"),
        ("tags = ['']", "jobs.j.tags: must not be empty"),
        (
            "disks = ['sda=dev/sda']",
            "jobs.j.disks: relative path in 'sda=dev/sda'",
        ),
        ("disks = ['/dev/sda', 'sda=/dev/sdb']", "disk name 'sda' given twice"),
        (
            "stream = { name = 'a/b', command = 'x' }",
            "jobs.j.stream.name: must be a file name",
        ),
        (
            "stream = { name = 'a', command = '' }",
            "jobs.j.stream.command: must not be empty",
        ),
        ("vault = 'vault'", "jobs.j.vault: relative path 'vault'"),
        (
            "password_file = '/p'\npassword_command = 'x'",
            "give password_file or password_command, not both",
        ),
        ("[jobs.j.retention]\nkeep_daily = 0", "jobs.j.retention: keeps nothing"),
        ("[jobs.j.retention]\nkeep_within = '0d'", "'0d' is zero"),
        ("paths = ['/b']", "duplicate key"),
    ];
    for (body, part) in cases {
        let e = job(body);
        assert!(e.contains(part), "{body:?} gave {e:?}");
        assert!(e.starts_with("/etc/coffer/coffer.toml:"), "{e}");
    }
    let two_paths = "[jobs.j]\npaths = ['/a', '/b']\nsnapshot_command = 'x'\nsnapshot_at = '/snap'\n";
    assert!(error(two_paths).contains("jobs.j.snapshot_at: needs exactly one entry in paths"));
    assert!(error("[jobs.'-x']\npaths = ['/a']\n").contains("bad job name '-x'"));
}

#[test]
fn the_first_error_in_file_order_is_reported() {
    let text = "[jobs.zeta]\npaths = ['rel']\n[jobs.alpha]\npaths = ['rel']\n";
    assert_eq!(
        error(text),
        "/etc/coffer/coffer.toml:2: jobs.zeta.paths: relative path 'rel': give an absolute path"
    );
}

#[test]
fn keep_within_takes_what_forget_takes() {
    assert_eq!(check_within("1y6m").unwrap().to_string(), "1y6m");
    for bad in ["", "30", "d", "3x", "1.5d", "-1d", "1d 2h", "99999999999999999999y"] {
        assert!(check_within(bad).is_err(), "{bad:?}");
    }
    assert!(check_within("0d0h").unwrap_err().contains("zero"));
}

#[test]
fn calendar_expressions_accepted_and_refused() {
    let good = [
        "daily",
        "Weekly",
        "annually",
        "quarterly",
        "semiannually",
        "*-*-* 02:30",
        "Mon..Fri *-*-* 22:00:00",
        "Sat 03:00",
        "Mon,Wed,Fri 12:00",
        "Monday 04:00",
        "*-*-01/2 00:00",
        "*-02~03",
        "2026-01-01 00:00:00",
        "Mon",
        "*-*-* *:0/15",
        "*-*-* 08..18:00",
    ];
    for g in good {
        assert_eq!(schedule::check_calendar(g), Ok(()), "{g:?}");
    }
    let bad = [
        ("", "empty"),
        ("   ", "empty"),
        ("daily\n", "a line break"),
        ("every day", "'every' is not a weekday"),
        ("*-*-* 25:00", "'25' is not a valid hour (0-23)"),
        ("Fri..Mon 10:00", "must run forward"),
        ("*-*-* 02:30 UTC", "unexpected 'UTC'"),
        ("*/2:00", "'*/2' is not a valid hour"),
        ("10:00:30.5", "'30.5' is not a valid second"),
        ("@1700000000", "contains '@'"),
        ("*-*-* 02:30;reboot", "contains ';'"),
        ("*-13-01", "'13' is not a valid month"),
        ("*-*-* 10:00/0", "'00/0' is not a valid minute"),
        ("*-*-* 10", "unexpected '10' (a time is HOUR:MINUTE"),
        ("Mon *-*-*-* 10:00", "'*-*' is not a valid month"),
    ];
    for (b, part) in bad {
        let e = schedule::check_calendar(b).unwrap_err();
        assert!(e.contains(part), "{b:?} gave {e:?}");
        assert!(!e.contains('\n'));
    }
}

fn scheduled(name: &str, schedule: &str) -> Job {
    Job {
        name: name.into(),
        paths: vec!["/home".into()],
        schedule: Some(schedule.into()),
        ..Job::default()
    }
}

#[test]
fn cron_lines_for_shorthands_and_simple_forms() {
    let exe = Path::new("/usr/bin/coffer");
    let cases = [
        ("minutely", "* * * * *"),
        ("hourly", "0 * * * *"),
        ("daily", "0 0 * * *"),
        ("weekly", "0 0 * * 1"),
        ("monthly", "0 0 1 * *"),
        ("yearly", "0 0 1 1 *"),
        ("annually", "0 0 1 1 *"),
        ("quarterly", "0 0 1 1,4,7,10 *"),
        ("semiannually", "0 0 1 1,7 *"),
        ("Mon..Fri *-*-* 22:00", "0 22 * * 1-5"),
        ("Sat,Sun 03:30:00", "30 3 * * 6,0"),
        ("Mon..Sun 01:00", "0 1 * * *"),
        ("Mon,Tue,Thu..Sun 06:05", "5 6 * * 1-2,4-6,0"),
        ("*-*-* *:0/15", "*/15 * * * *"),
        ("*-*-* 08..18/2:10,40", "10,40 8-18/2 * * *"),
        ("*-*-* 5/6:00", "0 5-23/6 * * *"),
        ("Fri", "0 0 * * 5"),
    ];
    for (expr, fields) in cases {
        let line = schedule::cron_line(&scheduled("home", expr), Path::new(CONFIG), exe).unwrap();
        assert_eq!(
            line,
            format!("{fields} root /usr/bin/coffer --config /etc/coffer/coffer.toml run home"),
            "{expr}"
        );
    }
    for expr in ["*-*-01/2 00:00", "*-*-* 22:00:30", "2026-*-* 00:00", "*-02~03"] {
        let e = schedule::cron_line(&scheduled("home", expr), Path::new(CONFIG), exe).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "job home: schedule '{expr}' has no cron equivalent: use the systemd timer (coffer schedule install)"
            )
        );
    }
    let unscheduled = Job {
        schedule: None,
        ..scheduled("home", "daily")
    };
    assert_eq!(
        schedule::cron_line(&unscheduled, Path::new(CONFIG), exe)
            .unwrap_err()
            .to_string(),
        "job home: has no schedule"
    );
}

#[test]
fn cron_lines_quote_for_the_shell_and_escape_percent() {
    let job = scheduled("home", "daily");
    let line = schedule::cron_line(
        &job,
        Path::new("/etc/my coffer/it's 100%.toml"),
        Path::new("/usr/bin/coffer"),
    );
    assert_eq!(
        line.unwrap(),
        "0 0 * * * root /usr/bin/coffer --config '/etc/my coffer/it'\\''s 100\\%.toml' run home"
    );
}

#[test]
fn units_run_the_job_with_quoted_paths_on_its_calendar() {
    let job = scheduled("home", "Mon..Fri *-*-* 22:00");
    let (service, timer) = schedule::units(
        &job,
        Path::new("/etc/my coffer/coffer.toml"),
        Path::new("/usr/local/bin/coffer"),
    )
    .unwrap();
    assert!(service.starts_with(MARKER));
    assert!(service.contains("\nType=oneshot\n"));
    assert!(service.contains("\nDescription=coffer backup job home\n"));
    assert!(
        service.contains("\nExecStart=/usr/local/bin/coffer --config \"/etc/my coffer/coffer.toml\" run home\n"),
        "{service}"
    );
    assert!(timer.starts_with(MARKER));
    assert!(timer.contains("\nOnCalendar=Mon..Fri *-*-* 22:00\n"));
    assert!(timer.contains("\nPersistent=true\n"));
    assert!(timer.contains("\nWantedBy=timers.target\n"));
    assert!(schedule::units(&Job::default(), Path::new(CONFIG), Path::new("/usr/bin/coffer")).is_none());
}

#[test]
fn systemd_quoting_escapes_specifiers_variables_and_odd_bytes() {
    use std::os::unix::ffi::OsStrExt;
    let q = |b: &[u8]| schedule::systemd_quote(OsStr::from_bytes(b));
    assert_eq!(q(b"/etc/coffer/coffer.toml"), "/etc/coffer/coffer.toml");
    assert_eq!(q(b"/a b"), "\"/a b\"");
    assert_eq!(q(b"/100%$HOME"), "\"/100%%$$HOME\"");
    assert_eq!(q(b"/q\"\\"), "\"/q\\\"\\\\\"");
    assert_eq!(q(b"/new\nline\xff"), "\"/new\\x0aline\\xff\"");
    assert_eq!(q("/é".as_bytes()), "\"/é\"");
}

fn write_config(dir: &Path, text: &str) -> JobFile {
    let path = dir.join("coffer.toml");
    fs::write(&path, text).unwrap();
    load(&path).unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn install_writes_units_and_a_second_install_removes_unscheduled_ones_only() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    fs::create_dir(&units).unwrap();
    fs::write(units.join("coffer-other.service"), "[Service]\nExecStart=/bin/true\n").unwrap();
    let exe = Path::new("/usr/bin/coffer");
    let both = "[jobs.home]\npaths = ['/home']\nschedule = 'daily'\n\
                [jobs.db]\npaths = ['/var/db']\nschedule = 'Sat 03:00'\n[jobs.adhoc]\npaths = ['/x']\n";
    let file = write_config(tmp.path(), both);
    let written = schedule::install(&file, exe, &units).unwrap();
    let expected: Vec<PathBuf> = [
        "coffer-db.service",
        "coffer-db.timer",
        "coffer-home.service",
        "coffer-home.timer",
    ]
    .iter()
    .map(|n| units.join(n))
    .collect();
    assert_eq!(written, expected);
    let config = file.path.display();
    let service = fs::read_to_string(units.join("coffer-db.service")).unwrap();
    assert!(service.contains(&format!("\nExecStart=/usr/bin/coffer --config {config} run db\n")));
    let timer = fs::read_to_string(units.join("coffer-db.timer")).unwrap();
    assert!(timer.contains("\nOnCalendar=Sat 03:00\n"));
    let mode = fs::metadata(units.join("coffer-db.timer"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);

    let only_home = both.replace("schedule = 'Sat 03:00'\n", "");
    let file = write_config(tmp.path(), &only_home);
    let stale = schedule::stale(&file, &units).unwrap();
    assert_eq!(stale.iter().map(|i| i.job.as_str()).collect::<Vec<_>>(), ["db"]);
    schedule::install(&file, exe, &units).unwrap();
    assert_eq!(
        names(&units),
        ["coffer-home.service", "coffer-home.timer", "coffer-other.service"]
    );
}

#[test]
fn install_keeps_units_of_other_job_files_and_refuses_to_overwrite_foreign_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    let exe = Path::new("/usr/bin/coffer");
    let a = tmp.path().join("a.toml");
    fs::write(&a, "[jobs.web]\npaths = ['/srv']\nschedule = 'hourly'\n").unwrap();
    schedule::install(&load(&a).unwrap(), exe, &units).unwrap();
    let b = write_config(tmp.path(), "[jobs.home]\npaths = ['/home']\nschedule = 'daily'\n");
    schedule::install(&b, exe, &units).unwrap();
    assert_eq!(
        names(&units),
        [
            "coffer-home.service",
            "coffer-home.timer",
            "coffer-web.service",
            "coffer-web.timer"
        ]
    );

    fs::write(units.join("coffer-mail.timer"), "[Timer]\nOnCalendar=daily\n").unwrap();
    let c = write_config(tmp.path(), "[jobs.mail]\npaths = ['/var/mail']\nschedule = 'daily'\n");
    let e = schedule::install(&c, exe, &units).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: exists and was not written by coffer: refusing to overwrite it",
            units.join("coffer-mail.timer").display()
        )
    );
    assert!(
        !units.join("coffer-mail.service").exists(),
        "nothing is written after a refusal"
    );
}

#[test]
fn list_reads_back_jobs_and_schedules_and_remove_takes_only_coffers_units() {
    let tmp = tempfile::tempdir().unwrap();
    let units = tmp.path().join("units");
    assert_eq!(schedule::list(&units).unwrap(), []);
    let text = "[jobs.home]\npaths = ['/home']\nschedule = 'Mon..Fri *-*-* 22:00'\n\
                [jobs.db]\npaths = ['/db']\nschedule = 'weekly'\n";
    let file = write_config(tmp.path(), text);
    schedule::install(&file, Path::new("/usr/bin/coffer"), &units).unwrap();
    fs::write(units.join("coffer-other.service"), "[Service]\n").unwrap();
    let listed = schedule::list(&units).unwrap();
    let config = file.path.display().to_string();
    assert_eq!(
        listed,
        [
            Installed {
                job: "db".into(),
                schedule: Some("weekly".into()),
                config: Some(config.clone()),
                files: vec![units.join("coffer-db.service"), units.join("coffer-db.timer")],
            },
            Installed {
                job: "home".into(),
                schedule: Some("Mon..Fri *-*-* 22:00".into()),
                config: Some(config),
                files: vec![units.join("coffer-home.service"), units.join("coffer-home.timer")],
            },
        ]
    );

    let e = schedule::remove(&units, Some(&["home".into(), "other".into()])).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("no units of job other written by coffer in {}", units.display())
    );
    assert_eq!(names(&units).len(), 5, "nothing removed when one name is wrong");
    let removed = schedule::remove(&units, Some(&["home".into()])).unwrap();
    assert_eq!(
        removed,
        [units.join("coffer-home.service"), units.join("coffer-home.timer")]
    );
    let removed = schedule::remove(&units, None).unwrap();
    assert_eq!(removed.len(), 2);
    assert_eq!(names(&units), ["coffer-other.service"]);
}
