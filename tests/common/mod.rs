//! Shared helpers for the integration tests (`mod common;`).
//!
//! - [`generate_tree`] builds a deterministic tree holding every node kind a backup tool must round-trip.
//! - [`compare_trees`] lists every difference between two trees, content and metadata alike.
//! - [`mutate_tree`] makes small deterministic changes, for incremental-backup tests.
//! - [`run`] runs the built `coffer` binary against a vault.
//! - [`servers`] starts S3 (moto) and Azure Blob (Azurite) endpoints on loopback for vaults on object storage.
//!
//! Everything here needs root (chown, mknod, ACLs) and a filesystem with user xattrs, ACLs and holes (ext4, tmpfs).
//! Nothing here changes the process-wide state (umask, cwd): tests run in parallel threads.
#![allow(dead_code)]

pub mod machine;
pub mod mounted;
pub mod run;
pub mod servers;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------------------------
// Deterministic randomness
// ---------------------------------------------------------------------------------------------------------------

/// Deterministic pseudo-random numbers (splitmix64): one seed gives one sequence, on every machine and run.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; `n` must not be 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `n` incompressible bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// `n` bytes of highly compressible text: numbered lines drawn from a handful of words.
    pub fn text(&mut self, n: usize) -> Vec<u8> {
        const WORDS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "backup", "vault", "chunk", "restore"];
        let mut v = Vec::with_capacity(n + 64);
        let mut line = 0u64;
        while v.len() < n {
            let w = WORDS[self.below(WORDS.len() as u64) as usize];
            v.extend_from_slice(format!("{line:06} the quick {w} jumps over the lazy dog\n").as_bytes());
            line += 1;
        }
        v.truncate(n);
        v
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Small filesystem primitives
// ---------------------------------------------------------------------------------------------------------------

fn cpath(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("path without NUL")
}

/// Panics with the path and the OS error if `rc` is not 0.
fn check(rc: libc::c_int, what: &str, path: &Path) {
    if rc != 0 {
        panic!("{what} {}: {}", path.display(), io::Error::last_os_error());
    }
}

/// A time as (seconds since the epoch, nanoseconds 0..1e9).
pub type Time = (i64, i64);

/// Sets the atime and mtime of `path` itself (a symlink is not followed). Panics on failure.
pub fn set_times(path: &Path, atime: Time, mtime: Time) {
    let ts = |t: Time| libc::timespec {
        tv_sec: t.0 as libc::time_t,
        tv_nsec: t.1 as _,
    };
    set_timespecs(path, [ts(atime), ts(mtime)]);
}

fn set_timespecs(path: &Path, ts: [libc::timespec; 2]) {
    let flags = libc::AT_SYMLINK_NOFOLLOW;
    let rc = unsafe { libc::utimensat(libc::AT_FDCWD, cpath(path).as_ptr(), ts.as_ptr(), flags) };
    check(rc, "utimensat", path);
}

/// Changes the owner of `path` itself (a symlink is not followed). Panics on failure.
pub fn lchown(path: &Path, uid: u32, gid: u32) {
    check(unsafe { libc::lchown(cpath(path).as_ptr(), uid, gid) }, "lchown", path);
}

/// Sets the permission bits (incl. setuid, setgid, sticky) of `path`, which must not be a symlink.
pub fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Creates a special file: `kind` is `libc::S_IFCHR`, `S_IFBLK`, `S_IFIFO` or `S_IFSOCK`; the mode is then set
/// exactly to `mode` (whatever the umask).
pub fn mknod(path: &Path, kind: libc::mode_t, mode: u32, major: u32, minor: u32) {
    let dev = libc::makedev(major, minor);
    check(
        unsafe { libc::mknod(cpath(path).as_ptr(), kind | 0o600, dev) },
        "mknod",
        path,
    );
    chmod(path, mode);
}

/// Opens `path` for reading without following a final symlink and, where permitted, without updating its atime
/// (`O_NOATIME`; falls back to a plain open where the kernel refuses it). `flags` are added to the open flags.
pub fn open_noatime(path: &Path, flags: libc::c_int) -> io::Result<File> {
    let open = |extra| {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | flags | extra)
            .open(path)
    };
    match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0),
        r => r,
    }
}

/// The names in directory `dir` (without `.` and `..`), sorted bytewise; reading it does not update its atime.
pub fn list_dir(dir: &Path) -> io::Result<Vec<OsString>> {
    let fd = open_noatime(dir, libc::O_DIRECTORY)?.into_raw_fd();
    let d = unsafe { libc::fdopendir(fd) };
    if d.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut names = Vec::new();
    let res = loop {
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) { Ok(()) } else { Err(e) };
        }
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    };
    unsafe { libc::closedir(d) };
    res.map(|()| {
        names.sort();
        names
    })
}

/// The target of symlink `path`, as raw bytes. Linux updates a symlink's atime when it is read; this puts back the
/// atime `md` (the symlink's earlier lstat) recorded, so reading leaves the tree's atimes as they were.
pub fn read_link_keep_atime(path: &Path, md: &Metadata) -> io::Result<OsString> {
    let target = fs::read_link(path)?.into_os_string();
    if let Ok(now) = fs::symlink_metadata(path)
        && (now.atime(), now.atime_nsec()) != (md.atime(), md.atime_nsec())
    {
        let atime = libc::timespec {
            tv_sec: md.atime() as _,
            tv_nsec: md.atime_nsec() as _,
        };
        let omit = libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        };
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        // Best effort: without the right to set times the atime simply stays updated.
        unsafe { libc::utimensat(libc::AT_FDCWD, cpath(path).as_ptr(), [atime, omit].as_ptr(), flags) };
    }
    Ok(target)
}

/// Every entry below `root` (not `root` itself, symlinks not followed) as (path relative to `root`, lstat),
/// parents before their children, siblings in bytewise name order. Directories are read without updating their
/// atimes. Panics on an I/O error.
pub fn walk(root: &Path) -> Vec<(PathBuf, Metadata)> {
    let mut errors = Vec::new();
    let out = walk_collect(root, &mut errors);
    assert!(errors.is_empty(), "walking {}: {errors:?}", root.display());
    out
}

/// Like [`walk`], but an I/O error becomes a line in `errors` and the walk goes on.
fn walk_collect(root: &Path, errors: &mut Vec<String>) -> Vec<(PathBuf, Metadata)> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        let names = match list_dir(&root.join(&dir)) {
            Ok(n) => n,
            Err(e) => {
                errors.push(format!("{}: cannot list {}: {e}", show(&dir), root.display()));
                continue;
            }
        };
        let mut subdirs = Vec::new();
        for name in names {
            let rel = dir.join(name);
            match fs::symlink_metadata(root.join(&rel)) {
                Ok(md) => {
                    if md.is_dir() {
                        subdirs.push(rel.clone());
                    }
                    out.push((rel, md));
                }
                Err(e) => errors.push(format!("{}: cannot lstat in {}: {e}", show(&rel), root.display())),
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    out
}

/// Every regular file below `dir`, recursively, as full paths; empty if `dir` does not exist.
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

/// Whether the tree below `root` holds a Unix socket (backups skip sockets: see [`compare_trees`]).
pub fn has_socket(root: &Path) -> bool {
    walk(root).iter().any(|(_, m)| m.file_type().is_socket())
}

/// A relative path shown on one line: non-ASCII, control bytes and backslashes escaped (`\xe9`, `\n`, `\\`);
/// the empty path (a root) is shown as `.`.
pub fn show(rel: &Path) -> String {
    match rel.as_os_str().as_bytes() {
        b"" => ".".into(),
        b => b.escape_ascii().to_string(),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// POSIX ACLs as raw xattr values
// ---------------------------------------------------------------------------------------------------------------

/// One ACL entry: (tag, permission bits rwx = 4|2|1, id).
pub type AclEntry = (u16, u16, u32);

/// ACL entry tags, as in `<linux/posix_acl.h>`.
pub const ACL_USER_OBJ: u16 = 0x01;
pub const ACL_USER: u16 = 0x02;
pub const ACL_GROUP_OBJ: u16 = 0x04;
pub const ACL_GROUP: u16 = 0x08;
pub const ACL_MASK: u16 = 0x10;
pub const ACL_OTHER: u16 = 0x20;
/// The id of entries that have none (USER_OBJ, GROUP_OBJ, MASK, OTHER).
pub const ACL_NO_ID: u32 = u32::MAX;

/// The raw value of a `system.posix_acl_access`/`_default` xattr: a little-endian u32 version 2, then per entry
/// (tag u16, perm u16, id u32), little endian. `entries` must already be in the kernel's order (tag ascending,
/// then id ascending) and hold USER_OBJ, GROUP_OBJ, OTHER, and MASK if there is any USER or GROUP entry.
pub fn posix_acl(entries: &[AclEntry]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

/// Access ACL of `acl/file`: owner rw, user 1234 r, group r, mask r, other none (so mode 0640).
pub const ACL_FILE: &[AclEntry] = &[
    (ACL_USER_OBJ, 6, ACL_NO_ID),
    (ACL_USER, 4, 1234),
    (ACL_GROUP_OBJ, 4, ACL_NO_ID),
    (ACL_MASK, 4, ACL_NO_ID),
    (ACL_OTHER, 0, ACL_NO_ID),
];

/// Access ACL of `acl/dir`: owner rwx, user 1234 rx, group rx, mask rx, other none (so mode 0750).
pub const ACL_DIR: &[AclEntry] = &[
    (ACL_USER_OBJ, 7, ACL_NO_ID),
    (ACL_USER, 5, 1234),
    (ACL_GROUP_OBJ, 5, ACL_NO_ID),
    (ACL_MASK, 5, ACL_NO_ID),
    (ACL_OTHER, 0, ACL_NO_ID),
];

/// Default ACL of `acl/dir`, with a named group too.
pub const ACL_DIR_DEFAULT: &[AclEntry] = &[
    (ACL_USER_OBJ, 7, ACL_NO_ID),
    (ACL_USER, 7, 1234),
    (ACL_GROUP_OBJ, 5, ACL_NO_ID),
    (ACL_GROUP, 5, 5678),
    (ACL_MASK, 7, ACL_NO_ID),
    (ACL_OTHER, 5, ACL_NO_ID),
];

// ---------------------------------------------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------------------------------------------

/// How big a generated tree is. Every scale holds every node kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Every node kind, about a hundred entries (30 of them the deep path), under 1 MiB of data: fast.
    Small,
    /// Small plus a ~6 MiB file mixing random and repetitive text and 300 more files in nested directories.
    Normal,
    /// Small plus `n` more small files (0 to ~300 bytes), 100 per directory, below `many/`.
    Files(usize),
}

/// Builds under `root` (an existing, empty directory) a tree that depends only on `seed` and `scale`:
///
/// - `files/`: regular files of 0, 1, 4095, 4096, 4097 bytes, ~10 KiB, 64 KiB, ~100 KiB (random, text, zeros),
///   two with identical content; with [`Scale::Normal`] also `files/big-mixed.bin` (~6 MiB, random and text).
/// - `sparse.img`: 64 MiB, 64 KiB of data at 0, 10 MiB and 40 MiB, ending in a hole.
/// - `hard/`: one inode with 3 names in 3 directories (`hard/one/trio`, `hard/two/trio.2`, `hard/trio.3`) and a
///   pair (`hard/pair-1`, `hard/pair-2`).
/// - `sym/`: symlinks relative, absolute, dangling, to a directory, to itself, with a non-UTF-8 and a long target.
/// - `names/`: non-UTF-8 names (`caf\xe9`, `\xff\xfe/\x01ctl\x7f\xc3`), spaces, newline, tab, leading dashes, a 255-byte name.
/// - `deep/`: a 30-level path; `empty/`, `empty-nest/a/b/c`: empty directories.
/// - `modes/`: 04755 file, 02755 and 01777 directories, 0600, 0444 and 0000 files, a 0500 directory with content.
/// - `own/`: owners 1000:1000, 1234:5678, 65534:65534 on a file, a directory and a symlink.
/// - `xattr/`: user xattrs with binary, empty and 1000-byte values on a file, a directory and a hardlinked file.
/// - `acl/`: POSIX ACLs (`acl/file` access; `acl/dir` access and default), see [`ACL_FILE`], [`ACL_DIR`].
/// - `dev/`: char device (1,3), block device (7,200), FIFO, Unix socket.
/// - `times/`: an mtime before 1970, one after 2038, nanoseconds 0 and 999999999.
///
/// Every entry (not `root` itself) gets an explicit mode, whatever the umask, and distinct nanosecond atime and
/// mtime, set last (directories after their contents, deepest first). `root`'s own times are set too; its mode and
/// owner are left alone. Needs root. Panics on any failure.
pub fn generate_tree(root: &Path, seed: u64, scale: Scale) {
    assert_eq!(unsafe { libc::geteuid() }, 0, "generate_tree needs root (chown, mknod)");
    let names = list_dir(root).unwrap_or_else(|e| panic!("generate_tree into {}: {e}", root.display()));
    assert!(
        names.is_empty(),
        "generate_tree needs an empty directory: {}",
        root.display()
    );
    let mut g = Gen {
        root: root.to_path_buf(),
        rng: Rng::new(seed),
    };
    g.regular_files(scale == Scale::Normal);
    g.sparse_file();
    g.hardlinks();
    g.symlinks();
    g.odd_names();
    g.deep_and_empty();
    g.specials();
    g.many_files(match scale {
        Scale::Small => 0,
        Scale::Normal => 300,
        Scale::Files(n) => n,
    });
    g.owners();
    g.modes();
    g.xattrs();
    g.acls();
    g.times();
}

struct Gen {
    root: PathBuf,
    rng: Rng,
}

impl Gen {
    fn p(&self, rel: &[u8]) -> PathBuf {
        self.root.join(OsStr::from_bytes(rel))
    }

    /// Creates the directory `rel` and any missing parents, each with mode 0755.
    fn dir(&self, rel: &[u8]) {
        let path = self.p(rel);
        let mut missing: Vec<&Path> = path.ancestors().take_while(|a| !a.exists()).collect();
        missing.reverse();
        for d in missing {
            fs::create_dir(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
            chmod(d, 0o755);
        }
    }

    /// Writes file `rel` (creating its directory) with mode 0644.
    fn file(&self, rel: &[u8], data: &[u8]) {
        let path = self.p(rel);
        if let Some(parent) = Path::new(OsStr::from_bytes(rel)).parent() {
            self.dir(parent.as_os_str().as_bytes());
        }
        fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        chmod(&path, 0o644);
    }

    fn symlink(&self, target: &[u8], rel: &[u8]) {
        let path = self.p(rel);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
    }

    fn regular_files(&mut self, big: bool) {
        self.file(b"files/empty", b"");
        self.file(b"files/one", b"x");
        let text = self.rng.text(300);
        self.file(b"files/small.txt", &text);
        for (name, n) in [
            ("page-1", 4095),
            ("page", 4096),
            ("page+1", 4097),
            ("chunk-64k", 65_536),
        ] {
            let data = self.rng.bytes(n);
            self.file(format!("files/{name}").as_bytes(), &data);
        }
        let mut mixed = self.rng.bytes(5_000);
        let n = 5_000 + self.rng.below(500) as usize;
        mixed.extend(self.rng.text(n));
        self.file(b"files/ten-k", &mixed);
        let n = 100_000 + self.rng.below(3_000) as usize;
        let (random, text) = (self.rng.bytes(n), self.rng.text(n));
        self.file(b"files/hundred-k.bin", &random);
        self.file(b"files/hundred-k.txt", &text);
        self.file(b"files/zeros-100k", &vec![0; 102_400]);
        let dup = self.rng.bytes(20_000);
        self.file(b"files/dup-1", &dup);
        self.file(b"files/sub/dup-2", &dup);
        if big {
            let data = self.big_mixed();
            self.file(b"files/big-mixed.bin", &data);
        }
    }

    /// ~6 MiB alternating 256 KiB of random bytes and of repetitive text, with an odd tail.
    fn big_mixed(&mut self) -> Vec<u8> {
        let mut data = Vec::with_capacity(6 << 20);
        for i in 0..24 {
            let part = if i % 2 == 0 {
                self.rng.bytes(256 << 10)
            } else {
                self.rng.text(256 << 10)
            };
            data.extend(part);
        }
        data.extend(self.rng.bytes(12_345));
        data
    }

    fn sparse_file(&mut self) {
        let path = self.p(b"sparse.img");
        let f = File::create(&path).unwrap();
        f.set_len(64 << 20).unwrap();
        for off in [0u64, 10 << 20, 40 << 20] {
            f.write_all_at(&self.rng.bytes(64 << 10), off).unwrap();
        }
        chmod(&path, 0o644);
    }

    fn hardlinks(&mut self) {
        let (trio, pair) = (self.rng.bytes(3_000), self.rng.text(700));
        self.file(b"hard/one/trio", &trio);
        self.dir(b"hard/two");
        let link = |from: &[u8], to: &[u8]| fs::hard_link(self.p(from), self.p(to)).unwrap();
        link(b"hard/one/trio", b"hard/two/trio.2");
        link(b"hard/one/trio", b"hard/trio.3");
        self.file(b"hard/pair-1", &pair);
        link(b"hard/pair-1", b"hard/pair-2");
    }

    fn symlinks(&mut self) {
        self.dir(b"sym");
        self.symlink(b"../files/small.txt", b"sym/relative");
        self.symlink(b"/etc/hostname", b"sym/absolute");
        self.symlink(b"does/not/exist", b"sym/dangling");
        self.symlink(b"caf\xe9/\xff\xfe", b"sym/non-utf8-target");
        self.symlink(b"../files", b"sym/to-dir");
        self.symlink(b"loop", b"sym/loop");
        self.symlink("long/".repeat(200).as_bytes(), b"sym/long-target");
    }

    fn odd_names(&mut self) {
        let long = "n".repeat(255);
        let names: [&[u8]; 15] = [
            b"caf\xe9",
            b"\xff\xfe/\x01ctl\x7f\xc3",
            b"with space",
            b" leading space",
            b"trailing space ",
            b"line\nbreak",
            b"tab\there",
            b"-dash",
            b"--",
            b"-rf",
            b"back\\slash",
            "ünïcödé".as_bytes(),
            b"*?[glob]",
            b".hidden",
            long.as_bytes(),
        ];
        for name in names {
            let data = self.rng.text(10 + name.len());
            self.file(&[b"names/", name].concat(), &data);
        }
        self.file(b"names/...", b"three dots");
    }

    fn deep_and_empty(&mut self) {
        let deep: String = (0..30).map(|i| format!("/level-{i:02}")).collect();
        self.file(format!("deep{deep}/bottom.txt").as_bytes(), b"deep down");
        self.dir(b"empty");
        self.dir(b"empty-nest/a/b/c");
    }

    fn specials(&mut self) {
        self.dir(b"dev");
        mknod(&self.p(b"dev/char-1-3"), libc::S_IFCHR, 0o640, 1, 3);
        mknod(&self.p(b"dev/block-7-200"), libc::S_IFBLK, 0o660, 7, 200);
        mknod(&self.p(b"dev/fifo"), libc::S_IFIFO, 0o620, 0, 0);
        mknod(&self.p(b"dev/socket"), libc::S_IFSOCK, 0o755, 0, 0);
    }

    /// `n` small files, 100 per directory, in `many/NNNN/NN/`.
    fn many_files(&mut self, n: usize) {
        for i in 0..n {
            let leaf = i / 100;
            let size = self.rng.below(300) as usize;
            let data = if i % 3 == 0 {
                self.rng.bytes(size)
            } else {
                self.rng.text(size)
            };
            self.file(
                format!("many/{:04}/{:02}/f{i:06}", leaf / 16, leaf % 16).as_bytes(),
                &data,
            );
        }
    }

    fn owners(&mut self) {
        self.file(b"own/file-1000", b"owned by 1000");
        self.dir(b"own/dir-1234");
        self.file(b"own/dir-1234/inside", b"owned by root in a dir owned by 1234");
        self.symlink(b"file-1000", b"own/link-65534");
        lchown(&self.p(b"own/file-1000"), 1000, 1000);
        lchown(&self.p(b"own/dir-1234"), 1234, 5678);
        lchown(&self.p(b"own/link-65534"), 65534, 65534);
        lchown(&self.p(b"dev/fifo"), 1234, 5678);
        lchown(&self.p(b"hard/pair-1"), 1000, 1000);
    }

    /// Special modes, set after the owners (chown clears setuid/setgid) and after the content.
    fn modes(&mut self) {
        let files: [(&str, &[u8]); 3] = [("setuid", b"#!/bin/sh\n"), ("private", b"secret"), ("readonly", b"ro")];
        for (rel, data) in files {
            self.file(format!("modes/{rel}").as_bytes(), data);
        }
        self.file(b"modes/no-perms", b"mode 0000");
        self.file(b"modes/setgid-dir/inside", b"in a setgid dir");
        self.dir(b"modes/sticky");
        self.file(b"modes/ro-dir/inside", b"in a 0500 dir");
        lchown(&self.p(b"modes/setuid"), 1000, 1000);
        lchown(&self.p(b"modes/setgid-dir"), 1000, 1000);
        let modes: [(&[u8], u32); 7] = [
            (b"modes/setuid", 0o4755),
            (b"modes/private", 0o600),
            (b"modes/readonly", 0o444),
            (b"modes/no-perms", 0o000),
            (b"modes/setgid-dir", 0o2755),
            (b"modes/sticky", 0o1777),
            (b"modes/ro-dir", 0o500),
        ];
        for (rel, mode) in modes {
            chmod(&self.p(rel), mode);
        }
    }

    fn xattrs(&mut self) {
        let big = self.rng.bytes(1000);
        self.file(b"xattr/file", b"a file with xattrs");
        self.dir(b"xattr/dir");
        let set: [(&[u8], &str, &[u8]); 6] = [
            (b"xattr/file", "user.binary", b"\0\x01\x02\xff\xfe\0"),
            (b"xattr/file", "user.empty", b""),
            (b"xattr/file", "user.big", &big),
            (b"xattr/dir", "user.dir", b"dir\0value\xff"),
            (b"hard/pair-1", "user.linked", b"on both names"),
            (b"modes/setuid", "user.setuid", b"still setuid"),
        ];
        for (rel, name, value) in set {
            xattr::set(self.p(rel), name, value).unwrap_or_else(|e| panic!("xattr {name}: {e}"));
        }
    }

    /// ACLs last but for the times: a later chmod would rewrite their mask.
    fn acls(&mut self) {
        self.file(b"acl/file", b"a file with an access ACL");
        self.file(b"acl/dir/inside", b"created before the default ACL");
        chmod(&self.p(b"acl/file"), 0o640);
        chmod(&self.p(b"acl/dir"), 0o750);
        let set: [(&[u8], &str, &[AclEntry]); 3] = [
            (b"acl/file", "system.posix_acl_access", ACL_FILE),
            (b"acl/dir", "system.posix_acl_access", ACL_DIR),
            (b"acl/dir", "system.posix_acl_default", ACL_DIR_DEFAULT),
        ];
        for (rel, name, acl) in set {
            xattr::set(self.p(rel), name, &posix_acl(acl)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    /// Distinct atime and mtime with nanoseconds on every entry: non-directories first, then directories deepest
    /// first, then `root`; `times/` holds the edge cases.
    fn times(&mut self) {
        self.file(b"times/pre-1970", b"1930");
        self.file(b"times/after-2038", b"2100");
        self.file(b"times/zero-ns", b"ns 0");
        self.file(b"times/max-ns", b"ns 999999999");
        let mut entries = walk(&self.root);
        entries.sort_by_key(|(rel, md)| (md.is_dir(), std::cmp::Reverse(rel.components().count())));
        for (rel, _) in &entries {
            let (atime, mtime) = self.times_for(rel);
            set_times(&self.root.join(rel), atime, mtime);
        }
        let (atime, mtime) = self.times_for(Path::new(""));
        set_times(&self.root, atime, mtime);
    }

    fn times_for(&mut self, rel: &Path) -> (Time, Time) {
        let secs = 1_500_000_000 + self.rng.below(200_000_000) as i64;
        let mtime = (secs, self.rng.below(1_000_000_000) as i64);
        let atime = (
            secs + 1 + self.rng.below(1_000_000) as i64,
            self.rng.below(1_000_000_000) as i64,
        );
        let mtime = match rel.as_os_str().as_bytes() {
            b"times/pre-1970" => (-1_262_304_000, 123_456_789),
            b"times/after-2038" => (4_102_444_800, 987_654_321),
            b"times/zero-ns" => (mtime.0, 0),
            b"times/max-ns" => (mtime.0, 999_999_999),
            _ => mtime,
        };
        (atime, mtime)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The mutator
// ---------------------------------------------------------------------------------------------------------------

/// Makes small changes to the tree below `root`, chosen by `seed` alone (for a given tree): two files edited in
/// place (same size, bytes surely changed), one appended to, one deleted, one new file (`mutated-<seed>.new` in the
/// root), one chmod (other-read toggled), one xattr value changed (or added if no entry has a user xattr). Only
/// regular files of 16 B to 1 MiB with a single link are edited, so hardlink groups stay. Touched entries and their
/// directories get the current time as mtime. Needs at least 6 such files ([`generate_tree`] makes far more).
pub fn mutate_tree(root: &Path, seed: u64) {
    let mut rng = Rng::new(seed ^ 0x6D75_7461_7465);
    let mut files: Vec<PathBuf> = walk(root)
        .into_iter()
        .filter(|(_, m)| m.is_file() && m.nlink() == 1 && (16..=(1 << 20)).contains(&m.len()))
        .map(|(rel, _)| root.join(rel))
        .collect();
    assert!(files.len() >= 6, "mutate_tree: too few files in {}", root.display());
    let mut pick = || files.remove(rng.below(files.len() as u64) as usize);
    let picks: Vec<PathBuf> = (0..5).map(|_| pick()).collect();
    for path in &picks[..2] {
        edit_in_place(path, &mut rng);
    }
    let mut f = fs::OpenOptions::new().append(true).open(&picks[2]).unwrap();
    f.write_all(&rng.bytes(5_000)).unwrap();
    fs::remove_file(&picks[3]).unwrap();
    fs::write(root.join(format!("mutated-{seed}.new")), rng.text(777)).unwrap();
    let mode = fs::metadata(&picks[4]).unwrap().mode();
    chmod(&picks[4], (mode ^ 0o004) & 0o7777);
    change_an_xattr(root, &picks[0]);
}

/// Flips bits in a few bytes of `path` without changing its size.
fn edit_in_place(path: &Path, rng: &mut Rng) {
    let f = fs::OpenOptions::new().read(true).write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    for _ in 0..3 {
        let off = rng.below(len);
        let mut b = [0u8];
        f.read_exact_at(&mut b, off).unwrap();
        b[0] ^= 1 + rng.below(255) as u8;
        f.write_all_at(&b, off).unwrap();
    }
}

/// Changes the value of the first user xattr found in `root` (walk order), or adds one to `fallback`.
fn change_an_xattr(root: &Path, fallback: &Path) {
    for (rel, md) in walk(root) {
        if md.file_type().is_symlink() {
            continue;
        }
        let path = root.join(rel);
        let names = xattr::list(&path).map(|l| l.collect::<Vec<_>>()).unwrap_or_default();
        if let Some(name) = names.iter().find(|n| n.as_bytes().starts_with(b"user.")) {
            let mut value = xattr::get(&path, name).unwrap().unwrap_or_default();
            value.extend_from_slice(b"+mutated");
            xattr::set(&path, name, &value).unwrap();
            return;
        }
    }
    xattr::set(fallback, "user.mutated", b"yes").unwrap();
}

// ---------------------------------------------------------------------------------------------------------------
// The comparer
// ---------------------------------------------------------------------------------------------------------------

/// What [`compare_trees`] checks beyond what it always checks.
#[derive(Clone, Debug)]
pub struct CompareOptions {
    /// Compare atimes (with nanoseconds). Default false: most copiers and readers change them.
    pub atime: bool,
    /// Check that `b` keeps the holes of `a`'s sparse files (see [`compare_trees`]). Default true.
    pub sparse: bool,
    /// Do not compare the two roots' own metadata (mode, owner, times, xattrs). Default true.
    pub ignore_root_meta: bool,
    /// Compare the times of symlinks too (mtime; atime also when `atime`). Default true.
    pub symlink_times: bool,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            atime: false,
            sparse: true,
            ignore_root_meta: true,
            symlink_times: true,
        }
    }
}

type Tree = BTreeMap<PathBuf, Metadata>;

/// Compares the tree below `a` (the original) with the one below `b` (the copy) without following symlinks and
/// without changing either (files and directories are read with `O_NOATIME`; a symlink's atime, which reading it
/// updates, is put back). Returns one line per difference, `<path>: <what>`, paths relative and shown with
/// [`show`]; empty means identical. Checked for each path:
///
/// - presence on both sides (`missing in b` / `only in b`; entries below such a directory are not listed again)
///   and kind (file, dir, symlink, char, block, fifo, socket);
/// - mode incl. setuid/setgid/sticky (not for symlinks), uid and gid, size (files, symlinks), rdev (devices);
/// - all xattrs, names and values (so POSIX ACLs too); file content byte for byte; symlink target bytes;
/// - mtime with ns (directories too; symlinks when `symlink_times`), atime with ns when `atime`;
/// - when `sparse`, for regular files: b may not allocate more than a's blocks + 64 KiB, and a file sparse in `a`
///   (allocated < size/2) must be sparse in `b`.
///
/// Then the hardlink structure: the partition of regular files into same-inode groups must be the same.
/// Sockets: backups skip them, so a socket in `a` is ignored, and so is a socket in `b` at the path of one in `a`;
/// any other socket in `b` is reported like any other extra entry. The roots' own metadata is compared only when
/// `!ignore_root_meta`. I/O errors become difference lines.
pub fn compare_trees(a: &Path, b: &Path, opts: &CompareOptions) -> Vec<String> {
    let mut out = Vec::new();
    let (ta, tb) = scan_pair(a, b, &mut out);
    presence(&ta, &tb, &mut out);
    let cx = Cx { a, b, opts };
    if !opts.ignore_root_meta {
        match (fs::symlink_metadata(a), fs::symlink_metadata(b)) {
            (Ok(ma), Ok(mb)) => cx.entry(Path::new(""), &ma, &mb, &mut out),
            (ra, rb) => out.push(format!(".: cannot lstat roots: {:?} {:?}", ra.err(), rb.err())),
        }
    }
    for (rel, ma) in &ta {
        if let Some(mb) = tb.get(rel) {
            cx.entry(rel, ma, mb, &mut out);
        }
    }
    hardlinks(&ta, &tb, &mut out);
    out
}

/// Both trees, minus the sockets the rule in [`compare_trees`] ignores.
fn scan_pair(a: &Path, b: &Path, out: &mut Vec<String>) -> (Tree, Tree) {
    let is_socket = |m: &Metadata| m.file_type().is_socket();
    let mut ta: Tree = walk_collect(a, out).into_iter().collect();
    let mut tb: Tree = walk_collect(b, out).into_iter().collect();
    let sockets: BTreeSet<PathBuf> = ta
        .iter()
        .filter(|(_, m)| is_socket(m))
        .map(|(p, _)| p.clone())
        .collect();
    ta.retain(|_, m| !is_socket(m));
    tb.retain(|p, m| !(is_socket(m) && sockets.contains(p)));
    (ta, tb)
}

/// Entries on one side only; an entry whose parent is already reported is not listed again.
fn presence(ta: &Tree, tb: &Tree, out: &mut Vec<String>) {
    for (this, other, what) in [(ta, tb, "missing in b"), (tb, ta, "only in b")] {
        let mut reported: BTreeSet<&Path> = BTreeSet::new();
        for rel in this.keys().filter(|k| !other.contains_key(*k)) {
            if !rel.parent().is_some_and(|p| reported.contains(p)) {
                out.push(format!("{}: {what}", show(rel)));
            }
            reported.insert(rel);
        }
    }
}

/// The kind of an entry, as shown in difference lines.
pub fn kind(md: &Metadata) -> &'static str {
    let t = md.file_type();
    let kinds = [
        (t.is_file(), "file"),
        (t.is_dir(), "dir"),
        (t.is_symlink(), "symlink"),
        (t.is_char_device(), "char device"),
        (t.is_block_device(), "block device"),
        (t.is_fifo(), "fifo"),
        (t.is_socket(), "socket"),
    ];
    kinds.into_iter().find(|(is, _)| *is).map_or("unknown", |(_, k)| k)
}

struct Cx<'a> {
    a: &'a Path,
    b: &'a Path,
    opts: &'a CompareOptions,
}

impl Cx<'_> {
    /// All differences of one path present on both sides.
    fn entry(&self, rel: &Path, ma: &Metadata, mb: &Metadata, out: &mut Vec<String>) {
        let mut d = |what: String| out.push(format!("{}: {what}", show(rel)));
        if kind(ma) != kind(mb) {
            return d(format!("kind {} vs {}", kind(ma), kind(mb)));
        }
        self.meta(ma, mb, &mut d);
        self.times(ma, mb, &mut d);
        let (pa, pb) = (self.a.join(rel), self.b.join(rel));
        match (xattrs(&pa), xattrs(&pb)) {
            (Ok(xa), Ok(xb)) => xattr_diffs(&xa, &xb, &mut d),
            (xa, xb) => d(format!("cannot list xattrs: {:?} {:?}", xa.err(), xb.err())),
        }
        if ma.is_file() {
            content(&pa, &pb, &mut d);
            if self.opts.sparse {
                sparseness(ma, mb, &mut d);
            }
        } else if ma.file_type().is_symlink() {
            match (read_link_keep_atime(&pa, ma), read_link_keep_atime(&pb, mb)) {
                (Ok(ta), Ok(tb)) if ta == tb => {}
                (Ok(ta), Ok(tb)) => d(format!(
                    "symlink target {} vs {}",
                    show(Path::new(&ta)),
                    show(Path::new(&tb))
                )),
                (ta, tb) => d(format!("cannot read symlink: {:?} {:?}", ta.err(), tb.err())),
            }
        }
    }

    fn meta(&self, ma: &Metadata, mb: &Metadata, d: &mut dyn FnMut(String)) {
        let link = ma.file_type().is_symlink();
        if !link && ma.mode() & 0o7777 != mb.mode() & 0o7777 {
            d(format!("mode {:04o} vs {:04o}", ma.mode() & 0o7777, mb.mode() & 0o7777));
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            d(format!("owner {}:{} vs {}:{}", ma.uid(), ma.gid(), mb.uid(), mb.gid()));
        }
        if (ma.is_file() || link) && ma.size() != mb.size() {
            d(format!("size {} vs {}", ma.size(), mb.size()));
        }
        let t = ma.file_type();
        if (t.is_char_device() || t.is_block_device()) && ma.rdev() != mb.rdev() {
            d(format!("rdev {} vs {}", show_dev(ma.rdev()), show_dev(mb.rdev())));
        }
    }

    fn times(&self, ma: &Metadata, mb: &Metadata, d: &mut dyn FnMut(String)) {
        if ma.file_type().is_symlink() && !self.opts.symlink_times {
            return;
        }
        let (a, b) = ((ma.mtime(), ma.mtime_nsec()), (mb.mtime(), mb.mtime_nsec()));
        if a != b {
            d(format!("mtime {} vs {}", show_time(a), show_time(b)));
        }
        let (a, b) = ((ma.atime(), ma.atime_nsec()), (mb.atime(), mb.atime_nsec()));
        if self.opts.atime && a != b {
            d(format!("atime {} vs {}", show_time(a), show_time(b)));
        }
    }
}

fn show_time((secs, nanos): Time) -> String {
    format!("{secs}.{nanos:09}")
}

fn show_dev(rdev: u64) -> String {
    format!("{},{}", libc::major(rdev), libc::minor(rdev))
}

/// All xattrs of `path` itself (symlinks not followed), by name.
pub fn xattrs(path: &Path) -> io::Result<BTreeMap<OsString, Vec<u8>>> {
    let mut map = BTreeMap::new();
    for name in xattr::list(path)? {
        if let Some(value) = xattr::get(path, &name)? {
            map.insert(name, value);
        }
    }
    Ok(map)
}

fn xattr_diffs(xa: &BTreeMap<OsString, Vec<u8>>, xb: &BTreeMap<OsString, Vec<u8>>, d: &mut dyn FnMut(String)) {
    let names: BTreeSet<&OsString> = xa.keys().chain(xb.keys()).collect();
    let val = |v: Option<&Vec<u8>>| v.map_or("(none)".into(), |v| format!("\"{}\"", v.escape_ascii()));
    for name in names {
        let (va, vb) = (xa.get(name), xb.get(name));
        if va != vb {
            d(format!("xattr {}: {} vs {}", show(Path::new(name)), val(va), val(vb)));
        }
    }
}

/// Reports the first offset where the contents of two regular files differ.
fn content(pa: &Path, pb: &Path, d: &mut dyn FnMut(String)) {
    let (fa, fb) = match (open_noatime(pa, 0), open_noatime(pb, 0)) {
        (Ok(fa), Ok(fb)) => (fa, fb),
        (fa, fb) => return d(format!("cannot open: {:?} {:?}", fa.err(), fb.err())),
    };
    match first_difference(fa, fb) {
        Ok(None) => {}
        Ok(Some(off)) => d(format!("content differs from byte {off}")),
        Err(e) => d(format!("cannot read: {e}")),
    }
}

fn first_difference(mut fa: File, mut fb: File) -> io::Result<Option<u64>> {
    let len = fa.metadata()?.len().max(fb.metadata()?.len());
    let cap = (len as usize).clamp(4096, 1 << 20);
    let (mut ba, mut bb) = (vec![0u8; cap], vec![0u8; cap]);
    let mut offset = 0u64;
    loop {
        let (na, nb) = (read_full(&mut fa, &mut ba)?, read_full(&mut fb, &mut bb)?);
        let n = na.min(nb);
        if ba[..n] != bb[..n] {
            let i = ba[..n].iter().zip(&bb[..n]).position(|(x, y)| x != y).unwrap_or(n);
            return Ok(Some(offset + i as u64));
        }
        if na != nb {
            return Ok(Some(offset + n as u64));
        }
        if na == 0 {
            return Ok(None);
        }
        offset += na as u64;
    }
}

/// Reads until `buf` is full or the end of the file; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Whether a file's allocated size is under half its length.
pub fn is_sparse(md: &Metadata) -> bool {
    md.blocks() * 512 < md.size() / 2
}

fn sparseness(ma: &Metadata, mb: &Metadata, d: &mut dyn FnMut(String)) {
    let (ua, ub) = (ma.blocks() * 512, mb.blocks() * 512);
    if ub > ua + (64 << 10) {
        d(format!("allocated {ub} bytes in b, {ua} in a"));
    }
    if is_sparse(ma) && !is_sparse(mb) {
        d(format!(
            "sparse in a ({ua} bytes allocated) but not in b ({ub} bytes allocated)"
        ));
    }
}

/// Groups of 2 or more paths of regular files sharing an inode, each sorted, in sorted order.
pub fn hardlink_groups(tree: &BTreeMap<PathBuf, Metadata>) -> BTreeSet<Vec<PathBuf>> {
    let mut by_inode: HashMap<(u64, u64), Vec<PathBuf>> = HashMap::new();
    for (rel, md) in tree.iter().filter(|(_, m)| m.is_file()) {
        by_inode.entry((md.dev(), md.ino())).or_default().push(rel.clone());
    }
    by_inode.into_values().filter(|g| g.len() > 1).collect()
}

fn hardlinks(ta: &Tree, tb: &Tree, out: &mut Vec<String>) {
    let (ga, gb) = (hardlink_groups(ta), hardlink_groups(tb));
    let list = |g: &Vec<PathBuf>| g.iter().map(|p| show(p)).collect::<Vec<_>>().join(", ");
    for g in ga.difference(&gb) {
        out.push(format!(
            "{}: hardlink group [{}] in a is not one group in b",
            show(&g[0]),
            list(g)
        ));
    }
    for g in gb.difference(&ga) {
        out.push(format!(
            "{}: hardlink group [{}] in b is not one group in a",
            show(&g[0]),
            list(g)
        ));
    }
}

/// Counts of what a tree holds, to check that a generated tree has every kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub char_devices: usize,
    pub block_devices: usize,
    pub fifos: usize,
    pub sockets: usize,
    pub sparse_files: usize,
    /// Sizes of the hardlink groups, sorted.
    pub hardlink_groups: Vec<usize>,
    pub setuid: usize,
    pub setgid: usize,
    pub sticky: usize,
    pub non_utf8_names: usize,
    pub with_user_xattrs: usize,
    pub with_acls: usize,
    /// Distinct (uid, gid) pairs.
    pub owners: BTreeSet<(u32, u32)>,
}

/// What the tree below `root` holds (not counting `root`).
pub fn tree_stats(root: &Path) -> TreeStats {
    let tree: Tree = walk(root).into_iter().collect();
    let mut s = TreeStats::default();
    for (rel, md) in &tree {
        let counter = match kind(md) {
            "file" => Some(&mut s.files),
            "dir" => Some(&mut s.dirs),
            "symlink" => Some(&mut s.symlinks),
            "char device" => Some(&mut s.char_devices),
            "block device" => Some(&mut s.block_devices),
            "fifo" => Some(&mut s.fifos),
            "socket" => Some(&mut s.sockets),
            _ => None,
        };
        counter.into_iter().for_each(|c| *c += 1);
        s.sparse_files += usize::from(md.is_file() && is_sparse(md));
        s.setuid += usize::from(md.mode() & 0o4000 != 0);
        s.setgid += usize::from(md.mode() & 0o2000 != 0);
        s.sticky += usize::from(md.mode() & 0o1000 != 0);
        s.non_utf8_names += usize::from(rel.file_name().is_some_and(|n| n.to_str().is_none()));
        s.owners.insert((md.uid(), md.gid()));
        let names = xattrs(&root.join(rel)).unwrap_or_default();
        s.with_user_xattrs += usize::from(names.keys().any(|n| n.as_bytes().starts_with(b"user.")));
        s.with_acls += usize::from(names.keys().any(|n| n.as_bytes().starts_with(b"system.posix_acl")));
    }
    s.hardlink_groups = hardlink_groups(&tree).iter().map(Vec::len).collect();
    s.hardlink_groups.sort();
    s
}

/// `len` incompressible, deterministic bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    Rng::new(seed).bytes(len)
}
