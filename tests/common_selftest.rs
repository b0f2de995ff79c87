//! Self-test of the shared test helpers: the generator makes every node kind, a faithful copy (GNU `cp -a`)
//! compares equal, and every kind of damage is reported. Needs root and GNU cp.

mod common;

use common::*;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh temp dir with `src/` generated from `seed` and `scale`.
fn generated(seed: u64, scale: Scale) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    generate_tree(&src, seed, scale);
    (tmp, src)
}

/// `cp -a --preserve=all --sparse=<sparse> from to`; `to` must not exist.
fn cp(from: &Path, to: &Path, sparse: &str) {
    let status = Command::new("cp")
        .args(["-a", "--preserve=all", &format!("--sparse={sparse}")])
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success(), "cp -a {} {}", from.display(), to.display());
}

/// Copies atime and mtime of `from` onto `to` (not following symlinks).
fn copy_times(from: &Path, to: &Path) {
    let m = fs::symlink_metadata(from).unwrap();
    set_times(to, (m.atime(), m.atime_nsec()), (m.mtime(), m.mtime_nsec()));
}

fn p(root: &Path, rel: &[u8]) -> PathBuf {
    root.join(std::ffi::OsStr::from_bytes(rel))
}

/// Asserts some line is about `path` (exactly) and contains `needle`.
fn expect(diffs: &[String], path: &str, needle: &str) {
    assert!(
        diffs
            .iter()
            .any(|d| d.starts_with(&format!("{path}: ")) && d.contains(needle)),
        "no line for '{path}' with '{needle}' in:\n{}",
        diffs.join("\n")
    );
}

fn assert_same(a: &Path, b: &Path, opts: &CompareOptions) {
    let diffs = compare_trees(a, b, opts);
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}

#[test]
fn a_small_tree_holds_every_kind() {
    let (_tmp, src) = generated(1, Scale::Small);
    let s = tree_stats(&src);
    let all = walk(&src).len();
    assert!((40..200).contains(&all), "{all} entries");
    for (what, n) in [("dirs", s.dirs), ("files", s.files), ("symlinks", s.symlinks)] {
        assert!(n >= 7, "{what}: {s:?}");
    }
    let kinds = [
        s.char_devices,
        s.block_devices,
        s.fifos,
        s.sockets,
        s.sparse_files,
        s.setuid,
        s.sticky,
    ];
    assert_eq!(kinds, [1; 7], "{s:?}");
    assert!(
        s.setgid >= 1 && s.non_utf8_names >= 3 && s.with_user_xattrs >= 4 && s.with_acls == 2,
        "{s:?}"
    );
    assert_eq!(s.hardlink_groups, [2, 3]);
    for owner in [(1000, 1000), (1234, 5678), (65534, 65534), (0, 0)] {
        assert!(s.owners.contains(&owner), "{owner:?} in {s:?}");
    }
    assert!(has_socket(&src));
    assert!(
        walk(&src).iter().any(|(rel, _)| rel.components().count() > 31),
        "deep path"
    );
}

#[test]
fn modes_acls_devices_and_times_are_as_documented() {
    let (_tmp, src) = generated(1, Scale::Small);
    let md = |rel: &str| fs::symlink_metadata(src.join(rel)).unwrap();
    let modes = [
        ("modes/setuid", 0o4755),
        ("modes/setgid-dir", 0o2755),
        ("modes/sticky", 0o1777),
        ("modes/private", 0o600),
        ("modes/readonly", 0o444),
        ("modes/no-perms", 0),
        ("modes/ro-dir", 0o500),
        ("acl/file", 0o640),
        ("acl/dir", 0o750),
        ("files/one", 0o644),
        ("empty", 0o755),
    ];
    for (rel, mode) in modes {
        assert_eq!(md(rel).mode() & 0o7777, mode, "{rel}");
    }
    let acl = |rel: &str, name: &str| xattr::get(src.join(rel), name).unwrap().unwrap();
    assert_eq!(acl("acl/file", "system.posix_acl_access"), posix_acl(ACL_FILE));
    assert_eq!(acl("acl/dir", "system.posix_acl_access"), posix_acl(ACL_DIR));
    assert_eq!(acl("acl/dir", "system.posix_acl_default"), posix_acl(ACL_DIR_DEFAULT));
    assert_eq!(md("dev/block-7-200").rdev(), libc::makedev(7, 200));
    assert_eq!(
        (md("times/pre-1970").mtime(), md("times/max-ns").mtime_nsec()),
        (-1_262_304_000, 999_999_999)
    );
    assert_eq!((md("sparse.img").len(), md("own/link-65534").uid()), (64 << 20, 65534));
    let target = fs::read_link(src.join("sym/non-utf8-target")).unwrap();
    assert_eq!(target.as_os_str().as_bytes(), b"caf\xe9/\xff\xfe");
    let sockets = walk(&src).into_iter().filter(|(_, m)| kind(m) == "socket").count();
    assert_eq!(sockets, 1);
}

#[test]
fn a_cp_copy_of_a_small_tree_is_identical() {
    let (tmp, src) = generated(3, Scale::Small);
    let copy = tmp.path().join("copy");
    cp(&src, &copy, "always");
    assert_same(&src, &copy, &CompareOptions::default());
    let strict = CompareOptions {
        ignore_root_meta: false,
        ..Default::default()
    };
    assert_same(&src, &copy, &strict);
}

#[test]
fn a_normal_tree_copies_identically_and_mutations_are_seen() {
    let (tmp, src) = generated(4, Scale::Normal);
    let all = walk(&src).len();
    assert!((300..1000).contains(&all), "{all} entries");
    assert!(fs::metadata(src.join("files/big-mixed.bin")).unwrap().len() > 6_000_000);
    let copy = tmp.path().join("copy");
    cp(&src, &copy, "always");
    assert_same(&src, &copy, &CompareOptions::default());

    mutate_tree(&copy, 9);
    let diffs = compare_trees(&src, &copy, &CompareOptions::default());
    expect(&diffs, "mutated-9.new", "only in b");
    for needle in [
        "content differs",
        "size",
        "missing in b",
        "mode",
        "xattr user.",
        "mtime",
    ] {
        assert!(
            diffs.iter().any(|d| d.contains(needle)),
            "no '{needle}' in:\n{}",
            diffs.join("\n")
        );
    }
}

#[test]
fn mutate_tree_is_deterministic() {
    let (tmp, src) = generated(5, Scale::Small);
    let (c1, c2) = (tmp.path().join("c1"), tmp.path().join("c2"));
    cp(&src, &c1, "always");
    cp(&src, &c2, "always");
    mutate_tree(&c1, 77);
    mutate_tree(&c2, 77);
    let diffs = compare_trees(&c1, &c2, &CompareOptions::default());
    assert!(diffs.iter().all(|d| d.contains(": mtime ")), "{}", diffs.join("\n"));
}

#[test]
fn generation_is_deterministic_and_comparing_keeps_atimes() {
    let (_t1, a) = generated(6, Scale::Small);
    let (_t2, b) = generated(6, Scale::Small);
    let strict = CompareOptions {
        atime: true,
        ignore_root_meta: false,
        ..Default::default()
    };
    assert_same(&a, &b, &strict);
    // A second comparison still sees equal atimes: the first read nothing in a way that updates them.
    assert_same(&a, &b, &strict);
    let (_t3, c) = generated(7, Scale::Small);
    let diffs = compare_trees(&a, &c, &strict);
    expect(&diffs, "files/hundred-k.bin", "content differs");
    expect(&diffs, "sym/relative", "atime");
}

/// Applies one kind of damage per path to `b`, a copy of `a`.
fn damage(a: &Path, b: &Path) {
    let f = fs::OpenOptions::new().write(true).open(b.join("files/page")).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"\x00", 100).unwrap();
    drop(f);
    copy_times(&a.join("files/page"), &b.join("files/page"));
    chmod(&b.join("modes/private"), 0o640);
    let pair = b.join("hard/pair-2");
    fs::remove_file(&pair).unwrap();
    cp(&b.join("hard/pair-1"), &pair, "auto");
    lchown(&b.join("own/link-65534"), 0, 0);
    let one = fs::symlink_metadata(a.join("files/one")).unwrap();
    set_times(
        &b.join("files/one"),
        (one.atime(), 0),
        (one.mtime(), one.mtime_nsec() ^ 1),
    );
    xattr::set(b.join("xattr/dir"), "user.dir", b"changed").unwrap();
    xattr::remove(b.join("acl/file"), "system.posix_acl_access").unwrap();
    fs::remove_file(b.join("sym/dangling")).unwrap();
    std::os::unix::fs::symlink("does/not/exisT", b.join("sym/dangling")).unwrap();
    fs::remove_file(b.join("dev/char-1-3")).unwrap();
    mknod(&b.join("dev/char-1-3"), libc::S_IFCHR, 0o640, 1, 5);
    fs::remove_file(b.join("dev/fifo")).unwrap();
    fs::write(b.join("dev/fifo"), b"").unwrap();
    fs::remove_file(p(b, b"names/caf\xe9")).unwrap();
    fs::create_dir_all(b.join("extra/sub")).unwrap();
}

#[test]
fn every_kind_of_damage_is_reported() {
    let (tmp, a) = generated(8, Scale::Small);
    let b = tmp.path().join("b");
    cp(&a, &b, "always");
    damage(&a, &b);
    let d = compare_trees(&a, &b, &CompareOptions::default());
    expect(&d, "files/page", "content differs from byte 100");
    expect(&d, "modes/private", "mode 0600 vs 0640");
    expect(&d, "hard/pair-1", "hardlink group [hard/pair-1, hard/pair-2] in a");
    expect(&d, "own/link-65534", "owner 65534:65534 vs 0:0");
    expect(&d, "files/one", "mtime");
    expect(&d, "xattr/dir", "xattr user.dir");
    expect(&d, "acl/file", "xattr system.posix_acl_access");
    expect(&d, "sym/dangling", "symlink target does/not/exist vs does/not/exisT");
    expect(&d, "dev/char-1-3", "rdev 1,3 vs 1,5");
    expect(&d, "dev/fifo", "kind fifo vs file");
    expect(&d, "names/caf\\xe9", "missing in b");
    expect(&d, "extra", "only in b");
    expect(&d, "hard", "mtime");
    assert!(
        !d.iter().any(|l| l.starts_with("extra/sub")),
        "below a reported dir: {d:?}"
    );
    assert!(
        !d.iter().any(|l| l.starts_with("files/page+1")),
        "undamaged file reported: {d:?}"
    );
}

#[test]
fn sockets_are_ignored_only_where_the_source_had_one() {
    let (tmp, a) = generated(10, Scale::Small);
    let b = tmp.path().join("b");
    cp(&a, &b, "always");
    fs::remove_file(b.join("dev/socket")).unwrap();
    copy_times(&a.join("dev"), &b.join("dev"));
    assert_same(&a, &b, &CompareOptions::default());
    mknod(&b.join("stray-socket"), libc::S_IFSOCK, 0o755, 0, 0);
    expect(
        &compare_trees(&a, &b, &CompareOptions::default()),
        "stray-socket",
        "only in b",
    );
}

#[test]
fn a_dense_copy_of_the_sparse_file_is_reported() {
    let (tmp, a) = generated(11, Scale::Small);
    let b = tmp.path().join("b");
    cp(&a, &b, "never");
    let d = compare_trees(&a, &b, &CompareOptions::default());
    expect(&d, "sparse.img", "sparse in a");
    let lax = CompareOptions {
        sparse: false,
        ..Default::default()
    };
    assert_same(&a, &b, &lax);
}

#[test]
fn root_metadata_is_compared_only_on_request() {
    let (tmp, a) = generated(12, Scale::Small);
    let b = tmp.path().join("b");
    cp(&a, &b, "always");
    chmod(&b, 0o700);
    xattr::set(&b, "user.root", b"x").unwrap();
    assert_same(&a, &b, &CompareOptions::default());
    let strict = CompareOptions {
        ignore_root_meta: false,
        ..Default::default()
    };
    let d = compare_trees(&a, &b, &strict);
    expect(&d, ".", "mode");
    expect(&d, ".", "xattr user.root");
}

#[test]
fn files_scale_adds_many_files_in_nested_dirs() {
    let (tmp, a) = generated(13, Scale::Files(2_500));
    let small = tree_stats(&generated(13, Scale::Small).1);
    let s = tree_stats(&a);
    assert_eq!(s.files, small.files + 2_500);
    let leaves = walk(&a.join("many"))
        .iter()
        .filter(|(r, m)| m.is_dir() && r.components().count() == 2)
        .count();
    assert_eq!(leaves, 25);
    let b = tmp.path().join("b");
    cp(&a, &b, "always");
    assert_same(&a, &b, &CompareOptions::default());
}
