//! Shared test helpers: a deterministic tree generator holding every node kind a backup must keep, a mutator for
//! incremental tests, and a comparer that checks two trees content for content and metadata for metadata.
#![allow(dead_code)]

pub mod run;

use std::collections::{BTreeMap, HashMap};
use std::ffi::{CString, OsStr};
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How big a generated tree is.
#[derive(Clone, Copy, Debug)]
pub enum Scale {
    /// Every node kind, a few dozen entries.
    Small,
    /// Every node kind plus a few hundred files and a 6 MiB mixed file.
    Normal,
}

/// Deterministic pseudo-random numbers (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// `len` incompressible, deterministic bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}

fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).unwrap()
}

/// Sets atime and mtime (ns) of `path` itself (not a symlink's target).
pub fn set_times(path: &Path, secs: i64, nanos: i64) {
    let ts = [
        libc::timespec {
            tv_sec: secs - 1000,
            tv_nsec: (nanos + 7) % 1_000_000_000,
        },
        libc::timespec {
            tv_sec: secs,
            tv_nsec: nanos,
        },
    ];
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c(path).as_ptr(), ts.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

fn lchown(path: &Path, uid: u32, gid: u32) {
    assert_eq!(
        unsafe { libc::lchown(c(path).as_ptr(), uid, gid) },
        0,
        "lchown {}",
        path.display()
    );
}

fn mknod(path: &Path, kind: u32, major: u32, minor: u32) {
    let rc = unsafe { libc::mknod(c(path).as_ptr(), kind | 0o640, libc::makedev(major, minor)) };
    assert_eq!(rc, 0, "mknod {}", path.display());
}

/// Raw `system.posix_acl_*` bytes: version 2, then (tag, perm, id) entries, little endian.
pub fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

const ACL_FILE: &[(u16, u16, u32)] = &[
    (1, 6, u32::MAX),
    (2, 4, 1234),
    (4, 4, u32::MAX),
    (0x10, 6, u32::MAX),
    (0x20, 4, u32::MAX),
];

fn write(path: &Path, data: &[u8]) {
    fs::write(path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Builds a tree under `root` (which must exist and be empty) holding: files of many sizes (empty to MiB, random and
/// compressible), a sparse file ending in a hole, hardlinks (a 3-name group across directories and a pair),
/// symlinks (relative, absolute, dangling, non-UTF-8 target), non-UTF-8 names and names with spaces, newlines and
/// leading dashes, a 30-level deep path, empty directories, setuid/setgid/sticky modes, read-only files and
/// directories, assorted owners, user xattrs with binary values, POSIX ACLs (access and default), character and block
/// devices, a FIFO and a socket, and nanosecond times set last (directories deepest first).
pub fn generate_tree(root: &Path, seed: u64, scale: Scale) {
    let mut rng = Rng::new(seed);
    let mut dirs = vec![root.to_path_buf()];
    for d in ["docs", "docs/sub", "empty", "caf\u{e9}", "with space", "readonly"] {
        fs::create_dir(root.join(d)).unwrap();
        dirs.push(root.join(d));
    }
    let weird = root.join(OsStr::from_bytes(b"\xff\xfe-bin"));
    fs::create_dir(&weird).unwrap();
    dirs.push(weird.clone());
    let count = match scale {
        Scale::Small => 12,
        Scale::Normal => 300,
    };
    for i in 0..count {
        let size = [0usize, 1, 100, 4096, 10_000, 100_000][i % 6] + (rng.next() % 50) as usize;
        let mut data = rng.bytes(size / 2);
        data.extend(std::iter::repeat_n(b'a' + (i % 26) as u8, size - size / 2));
        write(&dirs[i % dirs.len()].join(format!("file{i:04}.dat")), &data);
    }
    if let Scale::Normal = scale {
        let mut big = rng.bytes(3 << 20);
        big.extend(b"compressible text line\n".repeat((3 << 20) / 23));
        write(&root.join("docs/big.bin"), &big);
    }
    special_names(root, &weird);
    sparse_file(&root.join("sparse.img"), &mut rng);
    links(root);
    specials(root);
    permissions_owners_xattrs(root);
    deep_path(root);
    set_all_times(root, 1_700_000_000);
}

fn special_names(root: &Path, weird: &Path) {
    write(&root.join(OsStr::from_bytes(b"caf\xe9.txt")), b"latin-1 name");
    write(&weird.join(OsStr::from_bytes(b"\x01\x7f\xc3")), b"control bytes");
    write(&root.join("name with\nnewline"), b"nl");
    write(&root.join("-leading-dash"), b"dash");
    write(&root.join("with space/a file.txt"), b"spaces");
}

fn sparse_file(path: &Path, rng: &mut Rng) {
    let f = File::create(path).unwrap();
    f.set_len(64 << 20).unwrap();
    for off in [0u64, 10 << 20, 40 << 20] {
        f.write_all_at(&rng.bytes(64 << 10), off).unwrap();
    }
}

fn links(root: &Path) {
    write(&root.join("docs/linked"), b"one file, three names");
    fs::hard_link(root.join("docs/linked"), root.join("docs/sub/linked-again")).unwrap();
    fs::hard_link(root.join("docs/linked"), root.join("third-name")).unwrap();
    write(&root.join("pair-a"), b"two names");
    fs::hard_link(root.join("pair-a"), root.join("pair-b")).unwrap();
    std::os::unix::fs::symlink("docs/linked", root.join("rel-link")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("dangling")).unwrap();
    std::os::unix::fs::symlink(OsStr::from_bytes(b"t\xe9rget\xff"), root.join("bin-target")).unwrap();
}

fn specials(root: &Path) {
    mknod(&root.join("chardev"), libc::S_IFCHR, 1, 3);
    mknod(&root.join("blockdev"), libc::S_IFBLK, 7, 200);
    let fifo = c(&root.join("fifo"));
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o620) }, 0);
    let _ = std::os::unix::net::UnixListener::bind(root.join("socket")).map(std::mem::forget);
}

fn permissions_owners_xattrs(root: &Path) {
    let set = |p: &str, m: u32| fs::set_permissions(root.join(p), fs::Permissions::from_mode(m)).unwrap();
    write(&root.join("setuid"), b"#!/bin/sh\n");
    set("setuid", 0o4755);
    set("docs", 0o2755);
    write(&root.join("readonly/ro.txt"), b"read only");
    set("readonly/ro.txt", 0o444);
    set("empty", 0o1777);
    write(&root.join("private"), b"secret");
    set("private", 0o600);
    lchown(&root.join("docs"), 1000, 1000);
    lchown(&root.join("private"), 1234, 5678);
    lchown(&root.join("rel-link"), 65534, 65534);
    lchown(&root.join("with space/a file.txt"), 4242, 100);
    xattr::set(root.join("private"), "user.bin", &[0, 1, 2, 255]).unwrap();
    xattr::set(root.join("docs"), "user.dir-note", b"dir xattr").unwrap();
    xattr::set(root.join("private"), "user.empty", b"").unwrap();
    xattr::set(root.join("private"), "system.posix_acl_access", &acl(ACL_FILE)).unwrap();
    xattr::set(root.join("docs/sub"), "system.posix_acl_access", &acl(ACL_FILE)).unwrap();
    xattr::set(root.join("docs/sub"), "system.posix_acl_default", &acl(ACL_FILE)).unwrap();
    set("readonly", 0o555);
}

fn deep_path(root: &Path) {
    let mut p = root.join("deep");
    for i in 0..30 {
        p = p.join(format!("level{i:02}"));
    }
    fs::create_dir_all(&p).unwrap();
    write(&p.join("bottom.txt"), b"deep");
}

/// Gives every entry a distinct time with nanoseconds, directories after their contents.
fn set_all_times(root: &Path, base: i64) {
    let mut entries = walk(root);
    entries.sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
    for (i, (rel, _)) in entries.iter().enumerate() {
        set_times(&root.join(rel), base + i as i64, 100_000_007 * (i as i64 % 9) + 13);
    }
    set_times(root, base - 1, 5);
}

/// Every entry below `root` (not following symlinks) as (relative path, lstat), parents before children.
pub fn walk(root: &Path) -> Vec<(PathBuf, fs::Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let mut names: Vec<_> = fs::read_dir(root.join(&rel))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for name in names.into_iter().rev() {
            let r = rel.join(&name);
            let md = fs::symlink_metadata(root.join(&r)).unwrap();
            if md.is_dir() {
                stack.push(r.clone());
            }
            out.push((r, md));
        }
    }
    out
}

/// Every regular file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walk(dir)
        .into_iter()
        .filter(|(_, m)| m.is_file())
        .map(|(r, _)| dir.join(r))
        .collect()
}

/// Small deterministic changes: edits in place (same size), an append, a deletion, a new file, a chmod and an xattr.
pub fn mutate_tree(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed);
    let files: Vec<PathBuf> = walk(root)
        .into_iter()
        .filter(|(_, m)| m.is_file() && m.len() > 8 && m.len() < 1 << 20 && m.nlink() == 1)
        .map(|(r, _)| root.join(r))
        .collect();
    let f = fs::OpenOptions::new().write(true).open(&files[0]).unwrap();
    f.write_all_at(&rng.bytes(4), 2).unwrap();
    let mut g = fs::OpenOptions::new().append(true).open(&files[1]).unwrap();
    std::io::Write::write_all(&mut g, &rng.bytes(5000)).unwrap();
    fs::remove_file(&files[2]).unwrap();
    write(&root.join("new-file"), &rng.bytes(777));
    fs::set_permissions(&files[3], fs::Permissions::from_mode(0o640)).unwrap();
    xattr::set(&files[4], "user.changed", b"yes").unwrap();
}

/// What `compare_trees` checks.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    pub atime: bool,
    pub sparse: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            atime: false,
            sparse: true,
        }
    }
}

/// One line per difference between the trees below `a` (the original) and `b` (the copy); empty if identical.
/// Sockets are ignored on both sides (backups skip them). The roots' own metadata is not compared.
pub fn compare_trees(a: &Path, b: &Path, opts: &CompareOptions) -> Vec<String> {
    let ea: BTreeMap<PathBuf, fs::Metadata> = walk(a)
        .into_iter()
        .filter(|(_, m)| !m.file_type().is_socket_like())
        .collect();
    let eb: BTreeMap<PathBuf, fs::Metadata> = walk(b)
        .into_iter()
        .filter(|(_, m)| !m.file_type().is_socket_like())
        .collect();
    let mut diffs = Vec::new();
    for rel in ea.keys().filter(|k| !eb.contains_key(*k)) {
        diffs.push(format!("{}: missing in copy", rel.display()));
    }
    for rel in eb.keys().filter(|k| !ea.contains_key(*k)) {
        diffs.push(format!("{}: only in copy", rel.display()));
    }
    for (rel, ma) in &ea {
        if let Some(mb) = eb.get(rel) {
            compare_entry(&a.join(rel), &b.join(rel), ma, mb, opts, &mut |d| {
                diffs.push(format!("{}: {d}", rel.display()))
            });
        }
    }
    diffs.extend(compare_hardlinks(&ea, &eb));
    diffs
}

trait SocketLike {
    fn is_socket_like(&self) -> bool;
}

impl SocketLike for fs::FileType {
    fn is_socket_like(&self) -> bool {
        std::os::unix::fs::FileTypeExt::is_socket(self)
    }
}

fn compare_entry(
    pa: &Path,
    pb: &Path,
    ma: &fs::Metadata,
    mb: &fs::Metadata,
    o: &CompareOptions,
    d: &mut dyn FnMut(String),
) {
    let link = ma.file_type().is_symlink();
    let mode_mask = if link { libc::S_IFMT } else { 0o177777 };
    if ma.mode() & mode_mask != mb.mode() & mode_mask {
        d(format!("mode {:o} vs {:o}", ma.mode(), mb.mode()));
    }
    if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
        d(format!("owner {}:{} vs {}:{}", ma.uid(), ma.gid(), mb.uid(), mb.gid()));
    }
    if !ma.is_dir() && ma.size() != mb.size() {
        d(format!("size {} vs {}", ma.size(), mb.size()));
    }
    if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
        d(format!(
            "mtime {}.{:09} vs {}.{:09}",
            ma.mtime(),
            ma.mtime_nsec(),
            mb.mtime(),
            mb.mtime_nsec()
        ));
    }
    if o.atime && !link && (ma.atime(), ma.atime_nsec()) != (mb.atime(), mb.atime_nsec()) {
        d(format!(
            "atime {}.{:09} vs {}.{:09}",
            ma.atime(),
            ma.atime_nsec(),
            mb.atime(),
            mb.atime_nsec()
        ));
    }
    if ma.rdev() != mb.rdev() {
        d(format!("rdev {} vs {}", ma.rdev(), mb.rdev()));
    }
    if xattrs(pa) != xattrs(pb) {
        d(format!("xattrs {:?} vs {:?}", xattrs(pa), xattrs(pb)));
    }
    if link && fs::read_link(pa).unwrap() != fs::read_link(pb).unwrap() {
        d("symlink target differs".into());
    }
    if ma.is_file() && mb.is_file() {
        if read_noatime(pa) != read_noatime(pb) {
            d("content differs".into());
        }
        let (ua, ub) = (ma.blocks() * 512, mb.blocks() * 512);
        if o.sparse && ua < ma.size() / 2 && (ub > ua + (64 << 10) || ub >= mb.size() / 2) {
            d(format!("sparse file uses {ub} bytes in the copy, {ua} in the original"));
        }
    }
}

fn read_noatime(p: &Path) -> Vec<u8> {
    let mut f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOATIME)
        .open(p)
        .unwrap();
    let mut v = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut v).unwrap();
    v
}

fn xattrs(p: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let names = xattr::list(p).map(|l| l.collect::<Vec<_>>()).unwrap_or_default();
    names
        .into_iter()
        .filter_map(|n| Some((n.as_bytes().to_vec(), xattr::get(p, &n).ok()??)))
        .collect()
}

/// The partition of regular files into same-inode groups must be the same on both sides.
fn compare_hardlinks(ea: &BTreeMap<PathBuf, fs::Metadata>, eb: &BTreeMap<PathBuf, fs::Metadata>) -> Vec<String> {
    let groups = |e: &BTreeMap<PathBuf, fs::Metadata>| {
        let mut by_ino: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
        for (p, m) in e.iter().filter(|(_, m)| m.is_file()) {
            by_ino.entry((m.dev(), m.ino())).or_default().push(p.clone());
        }
        let mut g: Vec<Vec<PathBuf>> = by_ino.into_values().filter(|v| v.len() > 1).collect();
        g.iter_mut().for_each(|v| v.sort());
        g.sort();
        g
    };
    let (ga, gb) = (groups(ea), groups(eb));
    if ga == gb {
        Vec::new()
    } else {
        vec![format!("hardlink groups differ: {ga:?} vs {gb:?}")]
    }
}
