//! A whole machine in one recovery point: two disk images, /etc-like files and a database dump, with pre- and
//! post-scripts. The point has the right consistency label, everything in it is reachable through the mount (files,
//! the dump, both disks, a file system inside a disk), and the next backup stores only what changed.
//! Runs as root (CI); says SKIP and returns when a tool, root or FUSE is missing.

mod common;

use common::machine::{LoopMount, have, last_point, s, setup, sh};
use common::mounted::{Mounted, fuse_available};
use common::run::json;
use std::path::Path;
use std::process::Command;

/// A deterministic SQL-like dump of `rows` rows, as a shell command.
fn dump_command(rows: u32) -> String {
    format!("seq 1 {rows} | sed 's/^/INSERT INTO orders VALUES (/; s/$/, 42.00);/'")
}

fn output_of(script: &str) -> Vec<u8> {
    let out = Command::new("sh").arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "`{script}` failed");
    out.stdout
}

fn backup_machine(c: &common::run::Coffer, t: &Path, rows: u32) -> serde_json::Value {
    let marker = format!("echo $COFFER_APP >> {}", s(&t.join("scripts-ran")));
    json(&c.ok(&[
        "--json",
        "backup",
        s(&t.join("etc")),
        "--disk",
        &format!("root={}", s(&t.join("root.img"))),
        "--disk",
        &format!("data={}", s(&t.join("data.img"))),
        "--command",
        &dump_command(rows),
        "--stdin-name",
        "db.sql",
        "--pre-script",
        &marker,
        "--post-script",
        &marker,
    ]))
}

/// The mount's directory of a point: `points/<time>_<short id>`. (Two points made in the same second sort by id,
/// not by time, so the test finds them by id.)
fn point_dir(mnt: &Path, point: &serde_json::Value) -> std::path::PathBuf {
    let suffix = format!("_{}", point["short_id"].as_str().unwrap());
    let dirs = std::fs::read_dir(mnt.join("points"))
        .unwrap()
        .map(|e| e.unwrap().path());
    let found: Vec<_> = dirs.filter(|d| s(d).ends_with(&suffix)).collect();
    assert_eq!(found.len(), 1, "one directory per point: {found:?}");
    found[0].clone()
}

#[test]
fn a_whole_machine_is_one_point_reachable_through_the_mount_and_incrementals_store_only_changes() {
    if !have(&["mkfs.ext4", "cmp", "diff", "dd"]) || !fuse_available() {
        return;
    }
    let (tmp, c) = setup();
    let t = tmp.path();
    sh(&format!(
        "cd {} && mkdir rootfs && cp -a /usr/share/doc/coreutils rootfs/ && head -c 2M /dev/urandom > rootfs/r \
         && mkfs.ext4 -q -F -d rootfs root.img 128M \
         && truncate -s 96M data.img && head -c 16M /dev/urandom | dd of=data.img bs=1M seek=8 conv=notrunc status=none \
         && mkdir -p etc/app && echo machine1 > etc/hostname && seq 1 5000 > etc/app/app.conf \
         && ln -s app/app.conf etc/app.conf && cp --sparse=always data.img data-1.img",
        s(t)
    ));

    let first = backup_machine(&c, t, 300_000);
    assert_eq!(first["consistency"], "application", "{}", first["consistency_report"]);
    assert_eq!(last_point(&c)["consistency"], "application", "list shows the label");
    assert_eq!(first["disks"].as_array().unwrap().len(), 2);
    assert_eq!(
        first["streams"][0]["size"].as_u64().unwrap(),
        output_of(&dump_command(300_000)).len() as u64
    );
    assert_eq!(first["sizes"]["files"], 2, "hostname and app.conf");

    // One /etc file, 2 MiB of the data disk (two grid chunks) and 1000 dump rows change; the root disk does not.
    sh(&format!(
        "cd {} && echo machine2 > etc/hostname \
         && head -c 2M /dev/urandom | dd of=data.img bs=1M seek=40 conv=notrunc status=none",
        s(t)
    ));
    let second = backup_machine(&c, t, 301_000);
    assert_eq!(second["consistency"], "application");
    assert_eq!(second["parent"], first["id"]);
    let disk = |name: &str| {
        let disks = second["disks"].as_array().unwrap();
        disks.iter().find(|d| d["name"] == name).unwrap().clone()
    };
    assert_eq!(
        (disk("root")["reused"].as_bool(), disk("root")["bytes_read"].as_u64()),
        (Some(true), Some(0))
    );
    assert_eq!(disk("data")["bytes_changed"], 2 << 20);
    assert_eq!(second["sizes"]["files_read"], 1);
    let new = second["sizes"]["bytes_new"].as_u64().unwrap();
    assert!(
        (2 << 20..6 << 20).contains(&new),
        "stored {new} bytes for 2 MiB of disk, a 9-byte file and the dump's last rows"
    );
    let ran = std::fs::read_to_string(t.join("scripts-ran")).unwrap();
    assert_eq!(ran.lines().count(), 4, "a pre- and a post-script per backup: {ran}");

    let mnt = Mounted::new(&c, &t.join("mnt"), &[]);
    assert_eq!(std::fs::read_dir(mnt.dir.join("points")).unwrap().count(), 2);
    for (point, host, rows, data) in [
        (&first, "machine1\n", 300_000, "data-1.img"),
        (&second, "machine2\n", 301_000, "data.img"),
    ] {
        let dir = point_dir(&mnt.dir, point);
        let etc = dir.join("files").join(s(&t.join("etc")).trim_start_matches('/'));
        assert_eq!(std::fs::read_to_string(etc.join("hostname")).unwrap(), host);
        assert_eq!(
            std::fs::read_link(etc.join("app.conf")).unwrap(),
            Path::new("app/app.conf")
        );
        sh(&format!(
            "cmp {} {}",
            s(&etc.join("app/app.conf")),
            s(&t.join("etc/app/app.conf"))
        ));
        assert_eq!(
            std::fs::read(dir.join("streams/db.sql")).unwrap(),
            output_of(&dump_command(rows))
        );
        sh(&format!("cmp {} {}", s(&dir.join("disks/data.img")), s(&t.join(data))));
        sh(&format!(
            "cmp {} {}",
            s(&dir.join("disks/root.img")),
            s(&t.join("root.img"))
        ));
        let record = json(&std::fs::read_to_string(dir.join("point.json")).unwrap());
        assert_eq!(record["consistency"], "application");
    }
    let inner = LoopMount::new(&mnt.dir.join("latest/disks/root.img"), &t.join("inner"), "ro");
    sh(&format!(
        "diff -r --no-dereference {} {} -x lost+found",
        s(&t.join("rootfs")),
        s(&inner.0)
    ));
}
