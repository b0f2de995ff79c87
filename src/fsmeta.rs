//! File-system metadata: reading everything a node records at backup time, and applying it at restore time.
//!
//! Nothing here follows symlinks: lstat, llistxattr/lgetxattr, lchown, lsetxattr and utimensat with
//! `AT_SYMLINK_NOFOLLOW` all act on the link itself.

use crate::format::tree::{Node, NodeKind, Time, Xattr};
use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Errors naming the path and the operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot set xattr {name} on {}: {source}", path.display())]
    Xattr {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Cached uid -> user name and gid -> group name lookups (misses cached too). Safe to share between threads.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl NameCache {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn user(&self, uid: u32) -> Option<String> {
        let mut map = self.users.lock().expect("name cache lock");
        map.entry(uid).or_insert_with(|| lookup_user(uid)).clone()
    }

    pub fn group(&self, gid: u32) -> Option<String> {
        let mut map = self.groups.lock().expect("name cache lock");
        map.entry(gid).or_insert_with(|| lookup_group(gid)).clone()
    }
}

fn lookup_user(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; the result points into `buf`, read before `buf` is dropped.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success pw_name is a NUL-terminated string inside `buf`.
    Some(
        unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

fn lookup_group(gid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::group = std::ptr::null_mut();
    // SAFETY: as in lookup_user.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() {
        return None;
    }
    // SAFETY: on success gr_name is a NUL-terminated string inside `buf`.
    Some(
        unsafe { std::ffi::CStr::from_ptr(grp.gr_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// lstat `path` and build its node (content and subtree empty). `Ok(None)` for sockets, which are not stored.
pub fn read_node(path: &Path, name: Vec<u8>, names: &NameCache) -> Result<Option<Node>, FsError> {
    let md = std::fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    node_from_metadata(path, name, &md, names)
}

/// As `read_node`, from metadata already obtained with `symlink_metadata`.
pub fn node_from_metadata(
    path: &Path,
    name: Vec<u8>,
    md: &Metadata,
    names: &NameCache,
) -> Result<Option<Node>, FsError> {
    let ft = md.file_type();
    let kind = if ft.is_file() {
        NodeKind::File
    } else if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else {
        return Ok(None);
    };
    let mut node = Node::new(name, kind);
    node.mode = md.mode();
    node.uid = md.uid();
    node.gid = md.gid();
    node.user = names.user(md.uid());
    node.group = names.group(md.gid());
    node.mtime = Time {
        secs: md.mtime(),
        nanos: md.mtime_nsec() as u32,
    };
    node.atime = Time {
        secs: md.atime(),
        nanos: md.atime_nsec() as u32,
    };
    node.ctime = Time {
        secs: md.ctime(),
        nanos: md.ctime_nsec() as u32,
    };
    node.size = md.size();
    node.dev = md.dev();
    node.inode = md.ino();
    node.nlink = md.nlink();
    if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        node.rdev = md.rdev();
    }
    if kind == NodeKind::Symlink {
        node.target = std::fs::read_link(path)
            .map_err(io_err("read link", path))?
            .as_os_str()
            .as_bytes()
            .to_vec();
        // Reading a link updates its atime, so a recorded atime would differ in every backup and defeat tree
        // deduplication; a symlink's atime is recorded (and restored) as its mtime.
        node.atime = node.mtime;
    }
    node.xattrs = read_xattrs(path)?;
    Ok(Some(node))
}

/// All extended attributes of `path` (not following symlinks), sorted by name.
fn read_xattrs(path: &Path) -> Result<Vec<Xattr>, FsError> {
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(Vec::new()),
        Err(e) => {
            return Err(FsError::Io {
                op: "list xattrs of",
                path: path.to_path_buf(),
                source: e,
            });
        }
    };
    let mut out = Vec::new();
    for name in names {
        match xattr::get(path, &name) {
            Ok(Some(value)) => out.push(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            }),
            Ok(None) => {}
            Err(e) => {
                return Err(FsError::Io {
                    op: "read xattrs of",
                    path: path.to_path_buf(),
                    source: e,
                });
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Opens a regular file for backup: read-only, not following symlinks, and without updating its atime where the
/// kernel allows (owner or root); retried without `O_NOATIME` on `EPERM`.
pub fn open_for_backup(path: &Path) -> io::Result<File> {
    let open = |flags| OpenOptions::new().read(true).custom_flags(flags).open(path);
    match open(libc::O_NOFOLLOW | libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(libc::O_NOFOLLOW),
        other => other,
    }
}

/// The names in a directory as raw bytes (without `.` and `..`), read without updating the directory's atime
/// where the kernel allows, so that backing up a tree does not change the atimes the next backup records.
pub fn list_dir(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let p = cpath(path)?;
    let open = |extra| {
        // SAFETY: valid NUL-terminated path.
        unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW | extra,
            )
        }
    };
    let mut fd = open(libc::O_NOATIME);
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) {
        fd = open(0);
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is an open directory descriptor; fdopendir takes ownership of it on success.
    let dir = unsafe { libc::fdopendir(fd) };
    if dir.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; readdir on a valid DIR*.
        unsafe { *libc::__errno_location() = 0 };
        let ent = unsafe { libc::readdir(dir) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error().unwrap_or(0) == 0 {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: d_name is a NUL-terminated string inside the entry, valid until the next readdir.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    };
    // SAFETY: dir is a valid DIR* not used after this.
    unsafe { libc::closedir(dir) };
    result.map(|()| names)
}

fn lseek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    use std::os::fd::AsRawFd;
    // SAFETY: lseek on a valid open descriptor has no memory effects.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset as libc::off_t, whence) };
    if r >= 0 {
        return Ok(Some(r as u64));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENXIO) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// The data regions of an open regular file of `size` bytes (everything else is a hole), sorted and disjoint,
/// found with `SEEK_DATA`/`SEEK_HOLE`. Where the file system cannot tell, the whole file is one region.
pub fn data_regions(file: &File, size: u64) -> io::Result<Vec<std::ops::Range<u64>>> {
    let mut regions = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match lseek(file, pos, libc::SEEK_DATA) {
            Ok(Some(s)) => s,
            Ok(None) => break,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) || e.raw_os_error() == Some(libc::ENOTSUP) => {
                return Ok(std::iter::once(0..size).collect());
            }
            Err(e) => return Err(e),
        };
        if start >= size {
            break;
        }
        let end = lseek(file, start, libc::SEEK_HOLE)?.unwrap_or(size).min(size);
        regions.push(start..end);
        pos = end;
    }
    Ok(regions)
}

/// True if the open file's size, mtime or ctime differ from the node's: it changed while being read.
pub fn changed_since(file: &File, node: &Node) -> io::Result<bool> {
    let md = file.metadata()?;
    let mtime = Time {
        secs: md.mtime(),
        nanos: md.mtime_nsec() as u32,
    };
    let ctime = Time {
        secs: md.ctime(),
        nanos: md.ctime_nsec() as u32,
    };
    Ok(md.size() != node.size || mtime != node.mtime || ctime != node.ctime)
}

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates a symlink, device node or FIFO at `path` (which must not exist).
pub fn create_special(path: &Path, node: &Node) -> Result<(), FsError> {
    let perm = node.mode & 0o7777;
    let result = match node.kind {
        NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), path),
        NodeKind::CharDevice | NodeKind::BlockDevice => {
            let kind = if node.kind == NodeKind::CharDevice {
                libc::S_IFCHR
            } else {
                libc::S_IFBLK
            };
            let p = cpath(path).map_err(io_err("create", path))?;
            // SAFETY: valid NUL-terminated path.
            check(unsafe { libc::mknod(p.as_ptr(), kind | perm, node.rdev as libc::dev_t) })
        }
        NodeKind::Fifo => {
            let p = cpath(path).map_err(io_err("create", path))?;
            // SAFETY: valid NUL-terminated path.
            check(unsafe { libc::mkfifo(p.as_ptr(), perm) })
        }
        NodeKind::File | NodeKind::Dir => Err(io::Error::from(io::ErrorKind::InvalidInput)),
    };
    result.map_err(io_err("create", path))
}

/// What `apply_metadata` may change.
#[derive(Clone, Copy, Debug)]
pub struct RestoreOptions {
    /// Set uid/gid (only root can give files away).
    pub owner: bool,
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Applies a node's metadata to an existing path, in this order: ownership (chown clears setuid/setgid, so it comes
/// first), permission bits including setuid/setgid/sticky (not for symlinks, whose mode Linux ignores), xattrs
/// (including POSIX ACLs), then atime and mtime with nanoseconds. ctime cannot be set by any program. Every step is
/// tried; the first error is returned. Directories must get this after their children are written, or writing the
/// children moves their mtime again.
pub fn apply_metadata(path: &Path, node: &Node, opts: &RestoreOptions) -> Result<(), FsError> {
    let p = cpath(path).map_err(io_err("set metadata of", path))?;
    let mut first: Option<FsError> = None;
    let mut note = |r: Result<(), FsError>| {
        if let Err(e) = r
            && first.is_none()
        {
            first = Some(e);
        }
    };
    if opts.owner {
        // SAFETY: valid NUL-terminated path.
        note(check(unsafe { libc::lchown(p.as_ptr(), node.uid, node.gid) }).map_err(io_err("chown", path)));
    }
    if node.kind != NodeKind::Symlink {
        // SAFETY: valid NUL-terminated path.
        note(check(unsafe { libc::chmod(p.as_ptr(), node.mode & 0o7777) }).map_err(io_err("chmod", path)));
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        note(xattr::set(path, name, &x.value).map_err(|source| FsError::Xattr {
            name: String::from_utf8_lossy(&x.name).into_owned(),
            path: path.to_path_buf(),
            source,
        }));
    }
    note(set_times(&p, node).map_err(io_err("set times of", path)));
    first.map_or(Ok(()), Err)
}

fn set_times(p: &CString, node: &Node) -> io::Result<()> {
    let ts = |t: Time| libc::timespec {
        tv_sec: t.secs as libc::time_t,
        tv_nsec: t.nanos as libc::c_long,
    };
    let times = [ts(node.atime), ts(node.mtime)];
    // SAFETY: valid path and a two-element timespec array, as utimensat requires.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::FileExt;

    fn node_of(path: &Path) -> Node {
        read_node(path, b"x".to_vec(), &NameCache::new()).unwrap().unwrap()
    }

    #[test]
    fn file_metadata_round_trips_with_setuid_owner_xattrs_and_ns_times() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"data").unwrap();
        std::fs::write(&b, b"data").unwrap();
        xattr::set(&a, "user.bin", &[0, 255, 1]).unwrap();
        let mut n = node_of(&a);
        n.uid = 1234;
        n.gid = 5678;
        n.mode = (n.mode & !0o7777) | 0o6755;
        n.mtime = Time {
            secs: 1_600_000_000,
            nanos: 123_456_789,
        };
        n.atime = Time {
            secs: 1_500_000_000,
            nanos: 987_654_321,
        };
        apply_metadata(&b, &n, &RestoreOptions { owner: true }).unwrap();
        let m = node_of(&b);
        assert_eq!((m.uid, m.gid, m.mode & 0o7777), (1234, 5678, 0o6755));
        assert_eq!((m.mtime, m.atime), (n.mtime, n.atime));
        assert_eq!(
            m.xattrs,
            vec![Xattr {
                name: b"user.bin".to_vec(),
                value: vec![0, 255, 1]
            }]
        );
    }

    #[test]
    fn acl_xattr_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"").unwrap();
        // version 2; USER_OBJ rw, USER 1234 r, GROUP_OBJ r, MASK r, OTHER none.
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in [
            (1u16, 6u16, u32::MAX),
            (2, 4, 1234),
            (4, 4, u32::MAX),
            (0x10, 4, u32::MAX),
            (0x20, 0, u32::MAX),
        ] {
            acl.extend(tag.to_le_bytes());
            acl.extend(perm.to_le_bytes());
            acl.extend(id.to_le_bytes());
        }
        let mut n = node_of(&f);
        n.xattrs = vec![Xattr {
            name: b"system.posix_acl_access".to_vec(),
            value: acl.clone(),
        }];
        apply_metadata(&f, &n, &RestoreOptions { owner: false }).unwrap();
        let got = node_of(&f);
        let x = got
            .xattrs
            .iter()
            .find(|x| x.name == b"system.posix_acl_access")
            .expect("acl read back");
        assert_eq!(x.value, acl);
    }

    #[test]
    fn specials_symlinks_and_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let mut link = Node::new(b"l".to_vec(), NodeKind::Symlink);
        link.target = b"tar\xffget".to_vec();
        link.mtime = Time {
            secs: 1_000_000_000,
            nanos: 5,
        };
        let lp = dir.path().join("l");
        create_special(&lp, &link).unwrap();
        apply_metadata(&lp, &link, &RestoreOptions { owner: true }).unwrap();
        let got = node_of(&lp);
        assert_eq!(
            (got.kind, got.target.clone(), got.mtime),
            (NodeKind::Symlink, link.target.clone(), link.mtime)
        );
        let mut dev = Node::new(b"d".to_vec(), NodeKind::CharDevice);
        dev.mode = 0o640;
        dev.rdev = libc::makedev(1, 3);
        create_special(&dir.path().join("d"), &dev).unwrap();
        let got = node_of(&dir.path().join("d"));
        assert_eq!(
            (got.kind, got.rdev, got.mode & 0o777),
            (NodeKind::CharDevice, dev.rdev, 0o640)
        );
        let fifo = Node {
            mode: 0o600,
            ..Node::new(b"p".to_vec(), NodeKind::Fifo)
        };
        create_special(&dir.path().join("p"), &fifo).unwrap();
        assert_eq!(node_of(&dir.path().join("p")).kind, NodeKind::Fifo);
        let _sock = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        assert!(
            read_node(&dir.path().join("s"), b"s".to_vec(), &NameCache::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn holes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let f = File::create(&p).unwrap();
        f.set_len(10 << 20).unwrap();
        f.write_all_at(&[1; 4096], 0).unwrap();
        f.write_all_at(&[2; 4096], 5 << 20).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&p).unwrap();
        let r = data_regions(&f, 10 << 20).unwrap();
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].start == 0 && r[0].end >= 4096 && r[1].start <= 5 << 20 && r[1].end >= (5 << 20) + 4096);
        assert!(r.iter().map(|x| x.end - x.start).sum::<u64>() < 1 << 20);
        let empty = File::create(dir.path().join("e")).unwrap();
        assert!(data_regions(&empty, 0).unwrap().is_empty());
        let hole = File::create(dir.path().join("h")).unwrap();
        hole.set_len(1 << 20).unwrap();
        assert!(data_regions(&hole, 1 << 20).unwrap().is_empty());
    }

    #[test]
    fn a_change_while_reading_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let n = node_of(&p);
        let f = open_for_backup(&p).unwrap();
        assert!(!changed_since(&f, &n).unwrap());
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        assert!(changed_since(&f, &n).unwrap());
    }
}
