//! Machine recovery points on real kernels and tools: disk images made with mkfs and sfdisk, loop devices, btrfs
//! snapshots, frozen file systems, scripts and commands. Runs as root (CI); each test says SKIP and returns when
//! a tool or privilege it needs is missing. Loop mounts, frozen file systems and FUSE mounts are undone by guards,
//! also when a test fails.

mod common;

use common::machine::{LoopMount, have, last_point, s, setup, sh};
use common::mounted::{Mounted, fuse_available};
use common::run::json;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True if the file system at `dir` is frozen (FIFREEZE on a frozen file system fails with EBUSY).
fn frozen(dir: &Path) -> bool {
    let d = dir.display();
    !Command::new("sh")
        .arg("-c")
        .arg(format!("fsfreeze -f {d} 2>/dev/null && fsfreeze -u {d}"))
        .status()
        .unwrap()
        .success()
}

/// Kills a process (and the snapshot command it started) when dropped, so a failing test leaves nothing running.
struct Reaper(u32);

impl Drop for Reaper {
    fn drop(&mut self) {
        // SAFETY: signalling a child of this test.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        let _ = Command::new("pkill").args(["-f", "^(sh -c )?sleep 37"]).status();
    }
}

#[test]
fn an_ext4_image_backs_up_incrementally_and_loop_mounts_from_the_vault() {
    if !have(&["mkfs.ext4"]) || !fuse_available() {
        return;
    }
    let (tmp, c) = setup();
    let (src, img) = (tmp.path().join("tree"), tmp.path().join("fs.img"));
    sh(&format!(
        "mkdir {0} && cp -a /usr/share/doc/coreutils /usr/share/doc/bash {0}/ && head -c 3M /dev/urandom > {0}/r",
        s(&src)
    ));
    sh(&format!("mkfs.ext4 -q -F -d {} {} 256M", s(&src), s(&img)));
    let first = json(&c.ok(&["--json", "backup", "--disk", &format!("fs={}", s(&img))]));
    assert_eq!(first["disks"][0]["size"], 256 << 20);
    {
        let m = LoopMount::new(&img, &tmp.path().join("rw"), "rw");
        sh(&format!("head -c 8M /dev/urandom > {}/new.bin", m.0.display()));
    }
    let second = json(&c.ok(&["--json", "backup", "--disk", &format!("fs={}", s(&img))]));
    let (changed, new) = (
        second["disks"][0]["bytes_changed"].as_u64().unwrap(),
        second["sizes"]["bytes_new"].as_u64().unwrap(),
    );
    assert!((8 << 20..14 << 20).contains(&changed), "changed {changed}");
    assert!(
        (8 << 20..14 << 20).contains(&new),
        "stored {new} new bytes after an 8 MiB change"
    );
    let third = json(&c.ok(&["--json", "backup", "--disk", &format!("fs={}", s(&img))]));
    assert_eq!(
        (
            third["disks"][0]["reused"].as_bool(),
            third["disks"][0]["bytes_read"].as_u64()
        ),
        (Some(true), Some(0))
    );

    let mnt = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let inner = LoopMount::new(&mnt.dir.join("latest/disks/fs.img"), &tmp.path().join("inner"), "ro");
    sh(&format!(
        "diff -r --no-dereference {0} {1} -x new.bin -x lost+found",
        s(&src),
        inner.0.display()
    ));
    assert_eq!(std::fs::metadata(inner.0.join("new.bin")).unwrap().len(), 8 << 20);
}

#[test]
fn partitions_appear_as_part_images_and_match_the_disk() {
    if !have(&["sfdisk", "mkfs.ext4"]) || !fuse_available() {
        return;
    }
    let (tmp, c) = setup();
    let img = tmp.path().join("disk.img");
    sh(&format!(
        "truncate -s 200M {0} && printf 'label: gpt\\nstart=2048, size=100M, type=linux, name=\"root\"\\nstart=, size=40M, type=swap\\n' | sfdisk -q {0} \
         && mkfs.ext4 -q -F -d /usr/share/doc/coreutils -E offset=1048576 {0} 100M \
         && head -c 3M /dev/urandom | dd of={0} bs=1M seek=110 conv=notrunc status=none",
        s(&img)
    ));
    c.ok(&["backup", "--disk", &format!("sda={}", s(&img))]);
    let table = &last_point(&c)["disks"][0]["table"];
    assert_eq!(table["kind"], "gpt");
    assert_eq!(table["partitions"][0]["name"], "root");
    assert_eq!(
        (
            table["partitions"][1]["start"].as_u64(),
            table["partitions"][1]["length"].as_u64()
        ),
        (Some(101 << 20), Some(40 << 20))
    );
    let mnt = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let disks = mnt.dir.join("latest/disks");
    sh(&format!("cmp {} {}", s(&img), disks.join("sda.img").display()));
    sh(&format!(
        "cmp -i 105906176:0 -n 41943040 {} {}",
        s(&img),
        disks.join("sda/part2.img").display()
    ));
    assert_eq!(std::fs::metadata(disks.join("sda/part1.img")).unwrap().len(), 100 << 20);
    let inner = LoopMount::new(&disks.join("sda/part1.img"), &tmp.path().join("p1"), "ro");
    sh(&format!(
        "diff -r /usr/share/doc/coreutils {} -x lost+found",
        inner.0.display()
    ));
}

#[test]
fn a_sparse_image_stores_its_data_not_its_size_and_restores_sparse_and_verified() {
    if !have(&["truncate"]) {
        return;
    }
    let (tmp, c) = setup();
    let img = tmp.path().join("sparse.img");
    sh(&format!(
        "truncate -s 1G {0} && for o in 7 300 900; do head -c 1M /dev/urandom | dd of={0} bs=1M seek=$o conv=notrunc status=none; done \
         && head -c 4M /dev/zero | dd of={0} bs=1M seek=500 conv=notrunc status=none",
        s(&img)
    ));
    let p = json(&c.ok(&["--json", "backup", "--disk", s(&img)]));
    assert_eq!(p["disks"][0]["bytes_data"], 3 << 20);
    assert!(p["sizes"]["bytes_stored"].as_u64().unwrap() < 4 << 20, "{}", p["sizes"]);
    let out = tmp.path().join("restored.img");
    c.ok(&["restore", "latest", "--disk", "sparse.img", "--to", s(&out), "--verify"]);
    sh(&format!("cmp {} {}", s(&img), s(&out)));
    assert!(
        std::fs::metadata(&out).unwrap().blocks() * 512 < 16 << 20,
        "the restored image is not sparse"
    );
    assert!(
        c.fails(&["restore", "latest", "--disk", "nope", "--to", s(&out)])
            .contains("no disk nope")
    );
}

#[test]
fn two_disks_are_read_at_the_same_time() {
    if !have(&["head"]) {
        return;
    }
    let (tmp, c) = setup();
    let (a, b) = (tmp.path().join("a.img"), tmp.path().join("b.img"));
    sh(&format!(
        "head -c 160M /dev/urandom > {} && head -c 160M /dev/urandom > {}",
        s(&a),
        s(&b)
    ));
    let p = json(&c.ok(&["--json", "backup", "--disk", s(&a), "--disk", s(&b)]));
    let t = |i: usize, k: &str| p["disks"][i][k].as_f64().unwrap();
    assert!(
        t(0, "read_started") < t(1, "read_finished") && t(1, "read_started") < t(0, "read_finished"),
        "disk reads did not overlap: {}",
        p["disks"]
    );
}

#[test]
fn streams_are_stored_and_a_failing_command_leaves_no_point() {
    let (tmp, c) = setup();
    let dump = tmp.path().join("dump");
    sh(&format!("head -c 3000000 /dev/urandom > {}", s(&dump)));
    let p = json(&c.ok(&[
        "--json",
        "backup",
        "--command",
        &format!("cat {}", s(&dump)),
        "--stdin-name",
        "db.sql",
    ]));
    assert_eq!(p["streams"][0]["size"], 3_000_000);
    let got = c.cmd(&["cat", "latest:streams/db.sql"]).output().unwrap().stdout;
    assert_eq!(got, std::fs::read(&dump).unwrap());
    let mut child = c
        .cmd(&["backup", "--stdin-name", "in.txt"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"from stdin").unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(
        c.cmd(&["cat", "latest:streams/in.txt"]).output().unwrap().stdout,
        b"from stdin"
    );
    let before = json(&c.ok(&["list", "--json"])).as_array().unwrap().len();
    let err = c.fails(&[
        "backup",
        "--command",
        "printf partial; exit 3",
        "--stdin-name",
        "db.sql",
    ]);
    assert!(err.contains("no recovery point"), "{err}");
    assert_eq!(json(&c.ok(&["list", "--json"])).as_array().unwrap().len(), before);
}

#[test]
fn scripts_decide_the_level_and_post_scripts_always_run() {
    let (tmp, c) = setup();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), b"x").unwrap();
    let marker = tmp.path().join("post-ran");
    let post = format!("echo $COFFER_APP >> {}", s(&marker));
    let ok = json(&c.ok(&[
        "--json",
        "backup",
        s(&src),
        "--pre-script",
        "true",
        "--post-script",
        &post,
    ]));
    assert_eq!(ok["consistency"], "application");
    let degraded = json(&c.ok(&[
        "--json",
        "backup",
        s(&src),
        "--pre-script",
        "exit 4",
        "--post-script",
        &post,
    ]));
    assert_eq!(degraded["consistency"], "crash");
    assert!(
        degraded["consistency_report"]["reason"]
            .as_str()
            .unwrap()
            .contains("pre-script failed")
    );
    let n = json(&c.ok(&["list", "--json"])).as_array().unwrap().len();
    let err = c.fails(&[
        "backup",
        s(&src),
        "--pre-script",
        "exit 4",
        "--post-script",
        &post,
        "--require-consistency",
        "application",
    ]);
    assert!(
        err.contains("application was required") || err.contains("required"),
        "{err}"
    );
    assert_eq!(json(&c.ok(&["list", "--json"])).as_array().unwrap().len(), n);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().lines().count(),
        3,
        "a post-script did not run"
    );

    // SIGTERM while the data is read: post-scripts still run, no point is made. The pre-script marks the moment the
    // backup is under way (a fixed sleep raced with process start-up on a loaded machine).
    let started = tmp.path().join("started");
    let pre = format!("touch {}", s(&started));
    let mut child = c
        .cmd(&[
            "backup",
            s(&src),
            "--pre-script",
            &pre,
            "--post-script",
            &post,
            "--command",
            "sleep 20",
            "--stdin-name",
            "s",
        ])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !started.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().lines().count(),
        4,
        "no post-script after SIGTERM"
    );
    assert_eq!(json(&c.ok(&["list", "--json"])).as_array().unwrap().len(), n);
}

#[test]
fn a_file_system_is_frozen_only_around_the_snapshot_and_always_thawed() {
    if !have(&["mkfs.ext4", "fsfreeze"]) {
        return;
    }
    let (tmp, c) = setup();
    let m = LoopMount::fresh(tmp.path(), "ext4", "mkfs.ext4 -q -F {img} 64M");
    std::fs::write(m.0.join("data"), b"payload").unwrap();
    let seen = tmp.path().join("seen");
    let probe = format!(
        "if fsfreeze -f {0} 2>/dev/null; then fsfreeze -u {0}; echo thawed > {1}; else echo frozen > {1}; fi",
        m.0.display(),
        s(&seen)
    );
    let p = json(&c.ok(&[
        "--json",
        "backup",
        s(&m.0),
        "--snapshot-command",
        &probe,
        "--freeze",
        s(&m.0),
    ]));
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap().trim(),
        "frozen",
        "not frozen while the snapshot was made"
    );
    assert!(!frozen(&m.0), "left frozen after the backup");
    assert_eq!(p["consistency"], "filesystem");
    assert_eq!(p["consistency_report"]["frozen"][0], s(&m.0));

    // Past the maximum freeze: thawed by the guard, and the point says crash-consistent.
    let t = Instant::now();
    let p = json(&c.ok(&[
        "--json",
        "backup",
        s(&m.0),
        "--snapshot-command",
        "sleep 3",
        "--freeze",
        s(&m.0),
        "--max-freeze",
        "1",
    ]));
    assert_eq!(p["consistency"], "crash");
    assert!(t.elapsed() >= Duration::from_secs(3));

    // Killed while frozen: the guard thaws.
    let mut child = c
        .cmd(&[
            "backup",
            s(&m.0),
            "--snapshot-command",
            "sleep 37",
            "--freeze",
            s(&m.0),
            "--max-freeze",
            "60",
        ])
        .spawn()
        .unwrap();
    let _reaper = Reaper(child.id());
    // Probing with FIFREEZE would race with the backup's own freeze: wait for the snapshot command instead, which
    // runs only once the file system is frozen.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Command::new("pgrep")
        .args(["-f", "^(sh -c )?sleep 37"])
        .stdout(Stdio::null())
        .status()
        .unwrap()
        .success()
    {
        assert!(Instant::now() < deadline, "the snapshot command never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(frozen(&m.0), "the backup never froze the file system");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while frozen(&m.0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!frozen(&m.0), "still frozen 5 s after the backup was killed");
}

#[test]
fn btrfs_snapshots_are_made_used_and_removed() {
    if !have(&["mkfs.btrfs", "btrfs"]) {
        return;
    }
    let (tmp, c) = setup();
    let m = LoopMount::fresh(tmp.path(), "btrfs", "truncate -s 300M {img} && mkfs.btrfs -q {img}");
    let vol = m.0.join("vol");
    sh(&format!(
        "btrfs -q subvolume create {0} && mkdir {0}/d && echo one > {0}/d/f",
        vol.display()
    ));
    let p = json(&c.ok(&["--json", "backup", s(&vol), "--snapshot", "btrfs"]));
    assert_eq!(p["consistency"], "filesystem");
    assert!(
        p["consistency_report"]["snapshot"]
            .as_str()
            .unwrap()
            .contains(".coffer-snapshot-")
    );
    let listed = Command::new("btrfs")
        .args(["subvolume", "list", s(&m.0)])
        .output()
        .unwrap()
        .stdout;
    assert!(
        !String::from_utf8_lossy(&listed).contains("coffer-snapshot"),
        "snapshot left behind"
    );
    let f = format!("latest:{}/d/f", vol.display());
    assert_eq!(c.cmd(&["cat", &f]).output().unwrap().stdout, b"one\n");
    let err = c.fails(&["backup", s(&tmp.path().join("vault")), "--snapshot", "btrfs"]);
    assert!(err.contains("not on a btrfs"), "{err}");
}
