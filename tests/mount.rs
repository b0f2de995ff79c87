//! Real FUSE mounts of real vaults: the mounted points must look exactly like the backed-up files, stay read-only,
//! and never be left mounted, even when a test fails.

mod common;

use common::mounted::{Mounted, fuse_available, is_mounted};
use common::run::{Coffer, json};
use common::{CompareOptions, Scale, compare_trees};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A vault holding one backup of a generated tree, or `None` (after saying why) when FUSE cannot be used here.
fn backed_up(scale: Scale) -> Option<(tempfile::TempDir, Coffer, PathBuf)> {
    if !fuse_available() {
        return None;
    }
    let (tmp, c, src) = common::run::vault_and_tree(scale, 11);
    c.ok(&["backup", src.to_str().unwrap()]);
    Some((tmp, c, src))
}

fn in_point(mount: &Path, src: &Path) -> PathBuf {
    mount.join("latest/files").join(src.strip_prefix("/").unwrap())
}

#[test]
fn a_mounted_point_equals_the_source_in_content_and_metadata() {
    let Some((tmp, c, src)) = backed_up(Scale::Normal) else {
        return;
    };
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let seen = in_point(&m.dir, &src);
    let opts = CompareOptions {
        sparse: false,
        ..CompareOptions::default()
    };
    let diffs = compare_trees(&src, &seen, &opts);
    assert!(
        diffs.is_empty(),
        "the mount differs from the source:\n{}",
        diffs.join("\n")
    );
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(&src)
        .arg(&seen)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // diff cannot compare special files; compare_trees above checked their kind, mode and rdev.
    let real: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("socket") && !l.contains(" while file "))
        .collect();
    assert!(real.is_empty(), "diff -r:\n{}", real.join("\n"));
}

#[test]
fn copies_out_of_the_mount_keep_hardlinks_holes_and_acls() {
    let Some((tmp, c, src)) = backed_up(Scale::Small) else {
        return;
    };
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let out = tmp.path().join("copy");
    let cp = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(in_point(&m.dir, &src))
        .arg(&out)
        .status()
        .unwrap();
    assert!(cp.success());
    let diffs = compare_trees(&src, &out, &CompareOptions::default());
    assert!(
        diffs.is_empty(),
        "cp -a out of the mount differs:\n{}",
        diffs.join("\n")
    );
    if Command::new("getfacl").arg("--version").output().is_ok() {
        let (want, got) = (acls(&src), acls(&in_point(&m.dir, &src)));
        let missing: Vec<&String> = want.iter().filter(|b| !got.contains(b)).collect();
        assert!(
            missing.is_empty() && want.len() == got.len(),
            "getfacl differs on the mount: {missing:?}"
        );
    }
}

/// `getfacl -R` of a tree as one sorted block per entry, paths relative, so trees listed in different orders compare.
fn acls(root: &Path) -> Vec<String> {
    let out = Command::new("getfacl")
        .args(["-n", "-R", "-P", "."])
        .current_dir(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // Sockets are not backed up, so they are not in the mount.
    let mut blocks: Vec<String> = text
        .split("\n\n")
        .filter(|b| !b.contains("socket"))
        .map(str::to_string)
        .collect();
    blocks.sort();
    blocks
}

#[test]
fn reads_at_random_offsets_and_in_parallel_match_the_source() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let data = common::noise(40 << 20, 5);
    std::fs::write(src.join("big.bin"), &data).unwrap();
    c.ok(&["backup", src.to_str().unwrap()]);
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &["--cache-size", "8M"]);
    let path = in_point(&m.dir, &src).join("big.bin");
    let mut rng = common::Rng::new(3);
    let f = std::fs::File::open(&path).unwrap();
    for _ in 0..300 {
        let off = rng.below(data.len() as u64 - 4096) as usize;
        let mut buf = [0u8; 4096];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, off as u64).unwrap();
        assert_eq!(&buf[..], &data[off..off + 4096], "pread at {off}");
    }
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                assert!(
                    std::fs::read(&path).unwrap() == data,
                    "a parallel reader saw different bytes"
                )
            });
        }
    });
}

#[test]
fn writes_are_refused_with_erofs() {
    let Some((tmp, c, src)) = backed_up(Scale::Small) else {
        return;
    };
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let dir = in_point(&m.dir, &src);
    let erofs = |r: std::io::Result<()>| assert_eq!(r.unwrap_err().raw_os_error(), Some(libc::EROFS));
    erofs(std::fs::write(dir.join("new-file"), b"x"));
    let file = dir.join("sparse.img");
    erofs(std::fs::write(&file, b"x"));
    erofs(std::fs::create_dir(dir.join("newdir")));
    erofs(std::fs::remove_file(&file));
    erofs(std::fs::rename(&file, dir.join("moved")));
    erofs(std::fs::set_permissions(
        &file,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    ));
    erofs(xattr::set(&file, "user.x", b"y"));
    assert!(std::fs::read(&file).is_ok(), "reading still works");
}

#[test]
fn layout_links_versions_and_point_json() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let notes = src.join("notes.txt");
    let mut ids = Vec::new();
    for (i, text) in ["one", "one", "two", "two", "three"].iter().enumerate() {
        std::fs::write(&notes, text).unwrap();
        let tag = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(
            c.ok(&["backup", "--host", "h1", "--tag", tag, src.to_str().unwrap()])
                .trim()
                .to_string(),
        );
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let names = |p: PathBuf| {
        let mut v: Vec<String> = std::fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let points = names(m.dir.join("points"));
    assert_eq!(points.len(), 5);
    assert!(
        points.iter().zip(&ids).all(|(n, id)| n.ends_with(&id[..8])),
        "{points:?}"
    );
    assert_eq!(
        std::fs::read_link(m.dir.join("latest")).unwrap(),
        Path::new("points").join(&points[4])
    );
    assert_eq!(names(m.dir.join("hosts/h1")), points);
    assert_eq!(
        names(m.dir.join("tags/odd")),
        vec![points[1].clone(), points[3].clone()]
    );
    let via_tag = std::fs::read(
        m.dir
            .join("tags/even")
            .join(&points[4])
            .join("files")
            .join(notes.strip_prefix("/").unwrap()),
    );
    assert_eq!(via_tag.unwrap(), b"three");
    let versions = m.dir.join("versions/files").join(notes.strip_prefix("/").unwrap());
    let v = names(versions.clone());
    let expected: Vec<String> = [0, 2, 4].iter().map(|&i| format!("{}.txt", points[i])).collect();
    assert_eq!(v, expected, "identical consecutive versions collapse into the oldest");
    assert_eq!(std::fs::read(versions.join(&v[1])).unwrap(), b"two");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.dir.join("latest/point.json")).unwrap()).unwrap();
    assert_eq!(json["id"], ids[4].as_str());
    assert_eq!(json["host"], "h1");
}

#[test]
fn single_point_mounts_sparse_seek_and_stat() {
    let Some((tmp, c, src)) = backed_up(Scale::Small) else {
        return;
    };
    let id = json(&c.ok(&["list", "--json"]))[0]["id"].as_str().unwrap().to_string();
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &["--point", &id[..8]]);
    let root = m.dir.join(src.strip_prefix("/").unwrap());
    assert!(root.is_dir(), "--point shows the point's files at the root");
    for (rel, md) in common::walk(&src)
        .into_iter()
        .filter(|(_, md)| md.is_file() && md.nlink() > 1)
    {
        let seen = std::fs::symlink_metadata(root.join(&rel)).unwrap();
        assert_eq!(seen.nlink(), md.nlink(), "{}", rel.display());
    }
    // sparse.img: 64 MiB with 64 KiB of data at 0, 10 MiB and 40 MiB (see common::generate_tree).
    let (orig, seen) = (
        std::fs::metadata(src.join("sparse.img")).unwrap(),
        std::fs::metadata(root.join("sparse.img")).unwrap(),
    );
    assert_eq!(seen.len(), orig.len());
    assert!(
        seen.blocks() <= orig.blocks(),
        "holes count nothing in st_blocks: {} vs {}",
        seen.blocks(),
        orig.blocks()
    );
    let f = std::fs::File::open(root.join("sparse.img")).unwrap();
    use std::os::fd::AsRawFd;
    let seek = |off: i64, whence: i32| unsafe { libc::lseek(f.as_raw_fd(), off, whence) };
    assert_eq!(seek(0, libc::SEEK_HOLE), 64 << 10);
    assert_eq!(seek(64 << 10, libc::SEEK_DATA), 10 << 20);
    assert_eq!(
        seek((40 << 20) + (64 << 10), libc::SEEK_DATA),
        -1,
        "no data after the last region"
    );
}

#[test]
fn sigterm_unmounts_and_nothing_is_left_behind() {
    let Some((tmp, c, _src)) = backed_up(Scale::Small) else {
        return;
    };
    let dir = tmp.path().join("mnt");
    std::fs::create_dir(&dir).unwrap();
    let mut child = c.cmd(&["mount", dir.to_str().unwrap()]).spawn().unwrap();
    let guard = Mounted { dir: dir.clone() };
    let start = std::time::Instant::now();
    while !is_mounted(&dir) && start.elapsed().as_secs() < 30 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(std::fs::read_dir(&dir).unwrap().count() > 0);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the foreground mount exits cleanly on SIGTERM: {status}"
    );
    assert!(!is_mounted(&dir), "SIGTERM left the mount behind");
    drop(guard);
}

#[test]
fn bad_mount_points_are_refused() {
    let (tmp, c, _src) = common::run::vault_and_tree(Scale::Small, 11);
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("x"), b"x").unwrap();
    assert!(c.fails(&["mount", full.to_str().unwrap()]).contains("not empty"));
    let inside = c.vault.join("mnt");
    std::fs::create_dir(&inside).unwrap();
    assert!(
        c.fails(&["mount", inside.to_str().unwrap()])
            .contains("inside the vault")
    );
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    assert!(c.fails(&["mount", file.to_str().unwrap()]).contains("not a directory"));

    // With --daemon the background process opens the vault; its error comes back as the command's one line.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = c.fails(&["mount", "--daemon", "--point", "nope", empty.to_str().unwrap()]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("'nope' is not a recovery point"), "{err}");
    let mut wrong = c.cmd(&["mount", "--daemon", empty.to_str().unwrap()]);
    let out = wrong.env("COFFER_PASSWORD", "not the passphrase").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("wrong passphrase"), "{err}");
    assert!(!is_mounted(&empty));
}

/// `/sbin/mount.fuse.coffer` pointing at the binary under test, removed when dropped.
struct Helper(PathBuf);

impl Helper {
    fn install() -> Option<Helper> {
        let path = PathBuf::from("/sbin/mount.fuse.coffer");
        if std::fs::symlink_metadata(&path).is_ok() {
            eprintln!("SKIP: {} already exists; not replacing it", path.display());
            return None;
        }
        std::os::unix::fs::symlink(common::run::coffer_bin(), &path).ok()?;
        Some(Helper(path))
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn plain_mount_with_the_fuse_coffer_type_works() {
    if !fuse_available() {
        return;
    }
    let (tmp, c, src) = common::run::vault_and_tree(Scale::Small, 11);
    c.ok(&["backup", "--tag", "t", src.to_str().unwrap()]);
    let Some(_helper) = Helper::install() else { return };
    let pw = tmp.path().join("pw");
    std::fs::write(&pw, &c.password).unwrap();
    let dir = tmp.path().join("mnt");
    std::fs::create_dir(&dir).unwrap();
    let guard = Mounted { dir: dir.clone() };
    let opts = format!("ro,noauto,point=latest,tag=t,password_file={}", pw.display());
    let out = Command::new("mount")
        .args(["-t", "fuse.coffer", "-o", &opts])
        .arg(&c.vault)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mount -t fuse.coffer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = dir.join(src.strip_prefix("/").unwrap());
    assert!(
        root.join("sparse.img").is_file(),
        "point=latest shows the point's files at the root"
    );
    let bad = Command::new("mount")
        .args(["-t", "fuse.coffer", "-o", "rw"])
        .arg(&c.vault)
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("read-only"));
    drop(guard);
    assert!(!is_mounted(&dir));
}

#[test]
fn an_idle_mount_unmounts_itself() {
    let Some((tmp, c, _src)) = backed_up(Scale::Small) else {
        return;
    };
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &["--idle-timeout", "2s"]);
    assert!(m.dir.join("latest").exists());
    let start = std::time::Instant::now();
    while is_mounted(&m.dir) && start.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(!is_mounted(&m.dir), "the mount is still there after 20 s of idleness");
    assert!(start.elapsed().as_secs() >= 1, "it stayed while it was used");
}

#[test]
fn a_damaged_chunk_fails_only_its_file_with_eio() {
    if !fuse_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..20 {
        std::fs::write(src.join(format!("f{i:02}")), common::noise(50_000, i)).unwrap();
    }
    c.ok(&["backup", src.to_str().unwrap()]);
    let packs = common::files_below(&c.vault.join("data"));
    let data_pack = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(data_pack).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(data_pack, bytes).unwrap();
    let m = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
    let dir = in_point(&m.dir, &src);
    let results: Vec<std::io::Result<Vec<u8>>> = (0..20).map(|i| std::fs::read(dir.join(format!("f{i:02}")))).collect();
    let eio = results
        .iter()
        .filter(|r| r.as_ref().err().and_then(|e| e.raw_os_error()) == Some(libc::EIO))
        .count();
    assert_eq!(eio, 1, "exactly the file holding the damaged chunk fails with EIO");
    for (i, r) in results.iter().enumerate() {
        if let Ok(data) = r {
            assert_eq!(data, &common::noise(50_000, i as u64), "f{i:02} reads correctly");
        }
    }
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 20, "listing still works");
}

#[test]
fn allow_other_lets_other_users_in() {
    if Command::new("setpriv").arg("--version").output().is_err() {
        return;
    }
    let Some((tmp, c, _src)) = backed_up(Scale::Small) else {
        return;
    };
    std::fs::set_permissions(tmp.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let as_nobody = |dir: &Path| {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "ls"])
            .arg(dir)
            .output()
            .unwrap()
            .status
            .success()
    };
    let private = Mounted::new(&c, &tmp.path().join("private"), &[]);
    assert!(
        !as_nobody(&private.dir.join("points")),
        "without --allow-other only the mounting user gets in"
    );
    let shared = Mounted::new(&c, &tmp.path().join("shared"), &["--allow-other"]);
    assert!(
        as_nobody(&shared.dir.join("points")),
        "with --allow-other other users can browse"
    );
}
