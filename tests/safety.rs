//! Crash, full-disk and permission behaviour of the real binary: the vault never loses what it already has.

mod common;

use common::noise;
use common::run::{Coffer, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn count_files(dir: &Path) -> usize {
    common::files_below(dir).len()
}

#[test]
fn kill_9_during_backup_leaves_a_healthy_vault_and_packs_are_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..8 {
        std::fs::write(src.join(format!("f{i}")), noise(16 << 20, i)).unwrap();
    }
    let mut child = c
        .cmd(&["backup", src.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let data = tmp.path().join("vault/data");
    let start = Instant::now();
    while count_files(&data) < 2 && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let packs_left = count_files(&data);
    assert!(packs_left >= 2, "the backup was killed after writing packs");
    assert_eq!(
        json(&c.ok(&["list", "--json"])).as_array().unwrap().len(),
        0,
        "no point for the killed run"
    );
    c.ok(&["check", "--read-data"]);
    let rec = json(&c.ok(&["backup", "--json", src.to_str().unwrap()]));
    let total = 8u64 * (16 << 20);
    let new = rec["sizes"]["bytes_new"].as_u64().unwrap();
    assert!(
        new < total - (32 << 20),
        "packs of the killed run are reused: {new} new of {total}"
    );
    c.check_and_restore(&tmp.path().join("r"));
}

/// A small tmpfs mounted for the test and unmounted when dropped, also if the test fails.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status();
        ok.map(|s| s.success())
            .unwrap_or(false)
            .then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_vault_disk_fails_cleanly_and_keeps_earlier_points() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "6m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    };
    let c = Coffer::new(&fs.0.join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("small"), noise(100_000, 1)).unwrap();
    c.ok(&["backup", src.to_str().unwrap()]);
    std::fs::write(src.join("big"), noise(40 << 20, 2)).unwrap();
    let o = c.run(&["backup", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert_eq!(json(&c.ok(&["list", "--json"])).as_array().unwrap().len(), 1);
    c.check_and_restore(&tmp.path().join("r"));
}

#[test]
fn an_unreadable_file_is_reported_skipped_and_exits_3() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("SKIP: setpriv (util-linux) not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("ok.txt"), b"fine").unwrap();
    std::fs::write(src.join("secret.txt"), b"hidden").unwrap();
    std::fs::set_permissions(
        src.join("secret.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(common::run::coffer_bin());
        cmd.arg("--vault")
            .arg(&c.vault)
            .args(args)
            .env("COFFER_PASSWORD", &c.password)
            .env_remove("COFFER_VAULT");
        cmd.output().unwrap()
    };
    assert!(as_nobody(&["init"]).status.success());
    let o = as_nobody(&["backup", "--json", src.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("secret.txt"));
    let rec = json(&String::from_utf8_lossy(&o.stdout));
    assert_eq!(rec["errors"].as_array().unwrap().len(), 1);
    assert!(rec["errors"][0]["path"].as_str().unwrap().ends_with("secret.txt"));
    let ls = String::from_utf8_lossy(&as_nobody(&["ls", "latest", src.to_str().unwrap()]).stdout).into_owned();
    assert!(ls.contains("ok.txt") && !ls.contains("secret.txt"), "{ls}");
}

#[test]
fn keys_can_be_added_changed_and_not_all_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let mut add = c.cmd(&["key", "add"]);
    add.env("COFFER_NEW_PASSWORD", "second");
    assert!(add.output().unwrap().status.success());
    let keys = json(&c.ok(&["key", "list", "--json"]));
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let second = Coffer {
        password: "second".into(),
        ..c.clone()
    };
    second.ok(&["list"]);
    let first_id = keys.as_array().unwrap().iter().find(|k| k["current"] == true).unwrap()["id"].clone();
    second.ok(&["key", "remove", &first_id.as_str().unwrap()[..10]]);
    assert!(
        !c.run(&["list"]).status.success(),
        "the removed passphrase no longer opens the vault"
    );
    let o = second.run(&["key", "remove", "0"]);
    assert!(!o.status.success());
    let last = json(&second.ok(&["key", "list", "--json"]))[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let o = second.run(&["key", "remove", &last]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("last key"));
    let mut passwd = second.cmd(&["key", "passwd"]);
    passwd.env("COFFER_NEW_PASSWORD", "third");
    assert!(passwd.output().unwrap().status.success());
    assert!(!second.run(&["list"]).status.success());
    Coffer {
        password: "third".into(),
        ..c.clone()
    }
    .ok(&["list"]);
}

#[test]
fn one_file_system_keeps_the_mount_point_but_not_its_content() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("local.txt"), b"on the source fs").unwrap();
    let Some(inner) = Tmpfs::mount(&src.join("mnt"), "1m") else {
        eprintln!("SKIP: cannot mount a tmpfs here (needs root)");
        return;
    };
    std::fs::write(inner.0.join("other-fs.txt"), b"on another fs").unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    c.ok(&["backup", "--one-file-system", src.to_str().unwrap()]);
    let listing = c.ok(&["ls", "latest", src.to_str().unwrap(), "--recursive"]);
    assert!(listing.contains("local.txt") && listing.contains("/mnt"), "{listing}");
    assert!(!listing.contains("other-fs.txt"), "{listing}");
    c.ok(&["backup", src.to_str().unwrap()]);
    assert!(
        c.ok(&["ls", "latest", src.to_str().unwrap(), "--recursive"])
            .contains("other-fs.txt")
    );
}
