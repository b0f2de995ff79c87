//! File-system metadata: reading everything a `Node` records at backup time, and applying it at restore time.
//!
//! Nothing here follows symlinks: lstat, llistxattr/lgetxattr, lchown, lsetxattr and utimensat with
//! `AT_SYMLINK_NOFOLLOW` all act on the link itself. Names, link targets and xattr names and values stay raw bytes
//! from the system call to the `Node`; only user and group names are strings (lossily, as the tree stores them).
//!
//! Reading is careful not to disturb what it reads: regular files and directories are opened with `O_NOATIME`
//! where the kernel allows it, so a backup does not change the atimes the next backup records.

use crate::format::tree::{Node, NodeKind, Time, Xattr};
use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// A failed file-system operation, naming the path (and the xattr, if one is involved).
///
/// `Display` is a complete one-line message including the OS error, e.g.
/// `cannot read xattrs of /x/y: Permission denied`. For that reason the `io::Error` is not also exposed as
/// `Error::source` (error-chain printers would repeat it); use [`FsError::io_error`] to inspect it.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// `op` is a verb phrase that reads naturally before the path ("stat", "read xattrs of", "chown").
    #[error("cannot {op} {}: {}", path.display(), os_message(err))]
    Io {
        op: &'static str,
        path: PathBuf,
        err: io::Error,
    },
    /// One extended attribute; `name` is its raw bytes, displayed with non-ASCII bytes escaped.
    #[error("cannot {op} xattr {} of {}: {}", name.escape_ascii(), path.display(), os_message(err))]
    Xattr {
        op: &'static str,
        name: Vec<u8>,
        path: PathBuf,
        err: io::Error,
    },
}

impl FsError {
    /// The path the failed operation was applied to.
    pub fn path(&self) -> &Path {
        match self {
            FsError::Io { path, .. } | FsError::Xattr { path, .. } => path,
        }
    }

    /// The underlying OS error (for `kind()` or `raw_os_error()` checks).
    pub fn io_error(&self) -> &io::Error {
        match self {
            FsError::Io { err, .. } | FsError::Xattr { err, .. } => err,
        }
    }
}

/// An io::Error's text without std's " (os error N)" suffix: "Permission denied", not
/// "Permission denied (os error 13)".
fn os_message(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_string),
        None => text,
    }
}

/// `map_err` adapter for `FsError::Io`.
fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |err| FsError::Io {
        op,
        path: path.to_path_buf(),
        err,
    }
}

/// `map_err` adapter for `FsError::Xattr`.
fn xattr_err<'a>(op: &'static str, name: &'a [u8], path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |err| FsError::Xattr {
        op,
        name: name.to_vec(),
        path: path.to_path_buf(),
        err,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// User and group names

/// Thread-safe cache of uid -> user name and gid -> group name lookups. Misses are cached too, so an unknown id
/// costs one NSS query per backup, not one per file.
///
/// The lock is not held during a lookup (NSS may be slow, e.g. LDAP), so two threads may resolve the same id at
/// once; both get the same answer and the second insert is harmless.
#[derive(Default)]
pub struct NameCache {
    users: Mutex<HashMap<u32, Option<String>>>,
    groups: Mutex<HashMap<u32, Option<String>>>,
}

impl NameCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The user name of `uid`, or `None` if the system does not know it.
    pub fn user(&self, uid: u32) -> Option<String> {
        cached(&self.users, uid, lookup_user)
    }

    /// The group name of `gid`, or `None` if the system does not know it.
    pub fn group(&self, gid: u32) -> Option<String> {
        cached(&self.groups, gid, lookup_group)
    }
}

fn cached(map: &Mutex<HashMap<u32, Option<String>>>, id: u32, lookup: fn(u32) -> Option<String>) -> Option<String> {
    // A poisoned lock only means another thread panicked mid-insert; the map itself is still consistent.
    if let Some(hit) = map.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return hit.clone();
    }
    let name = lookup(id);
    map.lock().unwrap_or_else(|p| p.into_inner()).insert(id, name.clone());
    name
}

/// Calls a `get*_r` style function with a buffer grown on `ERANGE` (up to 1 MiB). `call` returns the function's
/// result code and the name, which it must copy out of the buffer before returning.
fn with_name_buffer(mut call: impl FnMut(&mut [libc::c_char]) -> (libc::c_int, Option<String>)) -> Option<String> {
    let mut len = 4096;
    loop {
        let mut buf = vec![0 as libc::c_char; len];
        match call(&mut buf) {
            (0, name) => return name,
            (libc::ERANGE, _) if len < 1 << 20 => len *= 4,
            _ => return None,
        }
    }
}

fn lookup_user(uid: u32) -> Option<String> {
    with_name_buffer(|buf| {
        // SAFETY: `passwd` is plain data (integers and pointers), valid when zeroed.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real length.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut out) };
        // SAFETY: on success with a result, pw_name is a NUL-terminated string inside `buf`, still alive here.
        let name = (rc == 0 && !out.is_null()).then(|| unsafe { CStr::from_ptr(pwd.pw_name) });
        (rc, name.map(|n| n.to_string_lossy().into_owned()))
    })
}

fn lookup_group(gid: u32) -> Option<String> {
    with_name_buffer(|buf| {
        // SAFETY: `group` is plain data (integers and pointers), valid when zeroed.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real length.
        let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut out) };
        // SAFETY: on success with a result, gr_name is a NUL-terminated string inside `buf`, still alive here.
        let name = (rc == 0 && !out.is_null()).then(|| unsafe { CStr::from_ptr(grp.gr_name) });
        (rc, name.map(|n| n.to_string_lossy().into_owned()))
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Reading metadata (backup)

/// lstats `path` and builds the node named `name` with every metadata field filled (see
/// [`node_from_metadata`]). `content` and `subtree` stay empty. `Ok(None)` for a socket, which is never stored;
/// the caller reports it as skipped.
pub fn read_node(path: &Path, name: Vec<u8>, names: &NameCache) -> Result<Option<Node>, FsError> {
    let md = std::fs::symlink_metadata(path).map_err(io_err("stat", path))?;
    node_from_metadata(path, name, &md, names)
}

/// As [`read_node`], from metadata the caller already has; `md` must come from `symlink_metadata` (lstat) of
/// `path`, or a symlink would be described as its target.
///
/// Fills kind, full `st_mode`, uid/gid and their names, mtime/atime/ctime with nanoseconds, size, dev, inode,
/// nlink, rdev (devices only), all xattrs sorted by name (POSIX ACLs included, as `system.posix_acl_*`) and the
/// symlink target bytes.
///
/// A symlink's atime is recorded as its mtime: reading the target (readlink) updates the link's atime, so the real
/// value would differ in every backup and defeat tree deduplication.
pub fn node_from_metadata(
    path: &Path,
    name: Vec<u8>,
    md: &Metadata,
    names: &NameCache,
) -> Result<Option<Node>, FsError> {
    let Some(kind) = kind_of(md) else {
        return Ok(None);
    };
    let mut node = Node::new(name, kind);
    node.mode = md.mode();
    node.uid = md.uid();
    node.gid = md.gid();
    node.user = names.user(md.uid());
    node.group = names.group(md.gid());
    node.mtime = stat_time(md.mtime(), md.mtime_nsec());
    node.atime = stat_time(md.atime(), md.atime_nsec());
    node.ctime = stat_time(md.ctime(), md.ctime_nsec());
    node.size = md.size();
    node.dev = md.dev();
    node.inode = md.ino();
    node.nlink = md.nlink();
    if matches!(kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        node.rdev = md.rdev();
    }
    if kind == NodeKind::Symlink {
        let target = std::fs::read_link(path).map_err(io_err("read link", path))?;
        node.target = target.into_os_string().into_vec();
        node.atime = node.mtime;
    }
    node.xattrs = read_xattrs(path)?;
    Ok(Some(node))
}

/// The stored kind of a file type; `None` for sockets (and anything else Linux may add).
fn kind_of(md: &Metadata) -> Option<NodeKind> {
    let ft = md.file_type();
    Some(if ft.is_file() {
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
        return None;
    })
}

/// A stat time; the kernel guarantees `0 <= nsec < 1e9`, so the narrowing cannot lose anything.
pub fn stat_time(secs: i64, nsec: i64) -> Time {
    Time {
        secs,
        nanos: nsec as u32,
    }
}

/// All extended attributes of `path` (not following symlinks), sorted by name. A file system without xattr
/// support has none. An attribute removed between listing and reading is skipped.
fn read_xattrs(path: &Path) -> Result<Vec<Xattr>, FsError> {
    let listed = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
        Err(e) => return Err(io_err("list xattrs of", path)(e)),
    };
    let mut out = Vec::new();
    for name in listed {
        let name = name.into_vec();
        let value = xattr::get(path, OsStr::from_bytes(&name)).map_err(xattr_err("read", &name, path))?;
        if let Some(value) = value {
            out.push(Xattr { name, value });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Opens a regular file for reading during backup: `O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NOATIME`, retried without
/// `O_NOATIME` on `EPERM` (the kernel allows it only to the owner and to root).
///
/// The open also uses `O_NONBLOCK`, cleared again afterwards, and the result is checked to be a regular file
/// (`InvalidInput` otherwise): if the path was replaced by a FIFO since it was lstat'ed, a blocking open would
/// wait forever for a writer.
pub fn open_for_backup(path: &Path) -> io::Result<File> {
    let open = |extra| {
        let flags = libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | extra;
        OpenOptions::new().read(true).custom_flags(flags).open(path)
    };
    let file = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
    if !file.metadata()?.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    // SAFETY: fcntl on an open descriptor we own; F_GETFL/F_SETFL touch no memory.
    let flags = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// The names in a directory as raw bytes, without `.` and `..`, in the order the file system returns them. The
/// directory is opened with `O_NOATIME` where the kernel allows it (retried without on `EPERM`), so listing it
/// does not change the atime the next backup records; `O_NOFOLLOW` refuses a symlink swapped in for it.
pub fn list_dir(path: &Path) -> io::Result<Vec<Vec<u8>>> {
    let open = |extra| {
        let flags = libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC | extra;
        OpenOptions::new().read(true).custom_flags(flags).open(path)
    };
    let dir = match open(libc::O_NOATIME) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => open(0)?,
        other => other?,
    };
    let fd = std::os::fd::IntoRawFd::into_raw_fd(dir);
    // SAFETY: fd is an open directory descriptor; on success fdopendir owns it (closedir closes it).
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours and closed exactly once here.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let names = read_entries(stream);
    // SAFETY: `stream` is a valid DIR* not used after this.
    unsafe { libc::closedir(stream) };
    names
}

/// Every entry name of an open directory stream except `.` and `..`.
fn read_entries(stream: *mut libc::DIR) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    loop {
        // readdir signals errors only through errno, so it must be cleared first. errno is thread-local.
        // SAFETY: __errno_location returns this thread's errno, always valid to write.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: `stream` is a valid DIR* used by this thread only.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            return if e.raw_os_error() == Some(0) { Ok(names) } else { Err(e) };
        }
        // SAFETY: d_name is a NUL-terminated string inside the entry, valid until the next readdir.
        let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
}

/// `lseek` returning `None` for `ENXIO` (no data / offset at or past end of file).
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let offset = libc::off_t::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: lseek on an open descriptor touches no memory.
    let r = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
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

/// The data regions of an open regular file of `size` bytes (the size the node recorded); everything else is a
/// hole. Found with `SEEK_DATA`/`SEEK_HOLE`; regions are sorted, non-overlapping, merged when adjacent and never
/// extend past `size`. An empty or fully sparse file has none; a file ending in a hole has regions stopping before
/// `size`. Where the kernel or file system cannot seek for data (`EINVAL`, `EOPNOTSUPP`) the whole file is one
/// region; file systems without hole tracking report the whole file as data anyway.
///
/// Moves the file offset; read with positioned reads (`FileExt::read_at`) afterwards.
pub fn data_regions(file: &File, size: u64) -> io::Result<Vec<Range<u64>>> {
    let mut regions: Vec<Range<u64>> = Vec::new();
    let mut pos = 0;
    while pos < size {
        let start = match seek(file, pos, libc::SEEK_DATA) {
            Ok(Some(start)) if start < size => start,
            Ok(_) => break,
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP)) => {
                return Ok(std::iter::once(0..size).collect());
            }
            Err(e) => return Err(e),
        };
        // `None`: the file shrank below `start` since SEEK_DATA; nothing more to read.
        let Some(end) = seek(file, start, libc::SEEK_HOLE)? else {
            break;
        };
        let end = end.min(size);
        if end <= start {
            break;
        }
        match regions.last_mut() {
            Some(last) if last.end == start => last.end = end,
            _ => regions.push(start..end),
        }
        pos = end;
    }
    Ok(regions)
}

/// True if the open file's size, mtime or ctime (from fstat) differ from the node's: it changed while it was
/// read, so the stored content may be torn.
pub fn changed_since(file: &File, node: &Node) -> io::Result<bool> {
    let md = file.metadata()?;
    Ok(md.size() != node.size
        || stat_time(md.mtime(), md.mtime_nsec()) != node.mtime
        || stat_time(md.ctime(), md.ctime_nsec()) != node.ctime)
}

// ---------------------------------------------------------------------------------------------------------------
// Applying metadata (restore)

fn cpath(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Creates a symlink (to the node's target bytes), character or block device (mknod with the node's rdev and
/// permission bits) or FIFO (mkfifo) at `path`. Fails with `AlreadyExists` if `path` exists, and with
/// `InvalidInput` for regular files and directories, which the caller creates itself.
///
/// The permission bits pass through the umask here; `apply_metadata` sets the exact mode afterwards.
pub fn create_special(path: &Path, node: &Node) -> Result<(), FsError> {
    let perm = node.mode & 0o7777;
    let result = match node.kind {
        NodeKind::Symlink => std::os::unix::fs::symlink(OsStr::from_bytes(&node.target), path),
        NodeKind::CharDevice => mknod(path, libc::S_IFCHR | perm, node.rdev),
        NodeKind::BlockDevice => mknod(path, libc::S_IFBLK | perm, node.rdev),
        NodeKind::Fifo => mknod(path, libc::S_IFIFO | perm, 0),
        NodeKind::File | NodeKind::Dir => Err(io::Error::new(io::ErrorKind::InvalidInput, "not a special file")),
    };
    result.map_err(io_err("create", path))
}

/// mknod(2); with `S_IFIFO` it is exactly mkfifo(3).
fn mknod(path: &Path, mode: libc::mode_t, rdev: u64) -> io::Result<()> {
    let p = cpath(path)?;
    // SAFETY: `p` is a valid NUL-terminated path.
    check(unsafe { libc::mknod(p.as_ptr(), mode, rdev as libc::dev_t) })
}

/// What `apply_metadata` may change.
#[derive(Clone, Copy, Debug)]
pub struct RestoreOptions {
    /// lchown to the node's uid/gid. Only root can give files away, so this is `is_root()` in practice.
    pub owner: bool,
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// POSIX ACL xattrs, which a newly created entry can inherit from its parent's default ACL.
const ACL_XATTRS: [&[u8]; 2] = [b"system.posix_acl_access", b"system.posix_acl_default"];

/// Applies a node's metadata to the existing `path`, not following symlinks. Order matters:
///
/// 1. lchown (if `opts.owner`) first, because chown clears setuid/setgid and file capabilities;
/// 2. xattrs, each with lsetxattr; `system.posix_acl_*` restore ACLs. ACLs the entry inherited at creation from a
///    restored parent's default ACL but the node does not have are removed. Xattrs come before chmod because
///    setting `user.*` xattrs needs write permission, which a read-only mode would take away from a non-root
///    restore; chmod keeps an ACL consistent with the mode (it rewrites the owner, mask and other entries), and
///    the recorded mode and ACL were consistent at backup, so the result is the same either way;
/// 3. chmod with the full permission bits including setuid, setgid and sticky (not for symlinks, whose mode Linux
///    does not use and cannot change);
/// 4. utimensat(`AT_SYMLINK_NOFOLLOW`) setting atime and mtime with nanoseconds, last because every step before
///    may change the times. ctime cannot be set: the kernel sets it to now on every metadata change.
///
/// Every step is tried even after one fails (a target file system refusing an xattr still gets the mode and
/// times); the first error is returned and later ones are logged.
///
/// Directories must get this only after all their children are written: creating an entry in a directory moves
/// its mtime, and a read-only mode would stop the children being created. The caller handles that ordering.
pub fn apply_metadata(path: &Path, node: &Node, opts: &RestoreOptions) -> Result<(), FsError> {
    let c = cpath(path).map_err(io_err("set metadata of", path))?;
    let mut first: Option<FsError> = None;
    let mut keep = |result: Result<(), FsError>| match (result, &first) {
        (Ok(()), _) => {}
        (Err(e), None) => first = Some(e),
        (Err(e), Some(_)) => log::warn!("{e}"),
    };
    if opts.owner {
        // SAFETY: `c` is a valid NUL-terminated path.
        keep(check(unsafe { libc::lchown(c.as_ptr(), node.uid, node.gid) }).map_err(io_err("chown", path)));
    }
    for x in &node.xattrs {
        keep(xattr::set(path, OsStr::from_bytes(&x.name), &x.value).map_err(xattr_err("set", &x.name, path)));
    }
    keep(drop_inherited_acls(path, node));
    if node.kind != NodeKind::Symlink {
        // SAFETY: `c` is a valid NUL-terminated path.
        keep(check(unsafe { libc::chmod(c.as_ptr(), node.mode & 0o7777) }).map_err(io_err("chmod", path)));
    }
    keep(set_times(&c, node).map_err(io_err("set times of", path)));
    first.map_or(Ok(()), Err)
}

/// Removes POSIX ACLs present on `path` but absent from the node (inherited from a parent's default ACL when the
/// entry was created), so an entry without ACLs at backup has none after restore.
fn drop_inherited_acls(path: &Path, node: &Node) -> Result<(), FsError> {
    if node.kind == NodeKind::Symlink {
        return Ok(());
    }
    let present = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(()),
        Err(e) => return Err(io_err("list xattrs of", path)(e)),
    };
    for name in present {
        let name = name.as_bytes();
        if ACL_XATTRS.contains(&name) && !node.xattrs.iter().any(|x| x.name == name) {
            match xattr::remove(path, OsStr::from_bytes(name)) {
                Err(e) if e.raw_os_error() != Some(libc::ENODATA) => return Err(xattr_err("remove", name, path)(e)),
                _ => {}
            }
        }
    }
    Ok(())
}

/// Sets atime and mtime (with nanoseconds) of the path itself, not a symlink's target.
fn set_times(path: &CStr, node: &Node) -> io::Result<()> {
    let ts = |t: Time| libc::timespec {
        tv_sec: t.secs as libc::time_t,
        tv_nsec: t.nanos as libc::c_long,
    };
    let times = [ts(node.atime), ts(node.mtime)];
    // SAFETY: a valid NUL-terminated path and a two-element timespec array, as utimensat requires.
    check(unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) })
}

#[cfg(test)]
mod tests {
    //! These run as root on real files in temporary directories (chown, mknod and trusted.* need root).

    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::{FileExt, PermissionsExt, symlink};

    fn node_of(path: &Path) -> Node {
        read_node(path, b"x".to_vec(), &NameCache::new()).unwrap().unwrap()
    }

    /// Sets times with utimensat directly, so the fixtures do not depend on the code under test.
    fn set_raw_times(path: &Path, atime: Time, mtime: Time) {
        let ts = |t: Time| libc::timespec {
            tv_sec: t.secs,
            tv_nsec: t.nanos as libc::c_long,
        };
        let c = cpath(path).unwrap();
        let times = [ts(atime), ts(mtime)];
        let flags = libc::AT_SYMLINK_NOFOLLOW;
        // SAFETY: valid path and a two-element timespec array.
        assert_eq!(
            unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), flags) },
            0
        );
    }

    const T1: Time = Time {
        secs: 1_500_000_000,
        nanos: 123_456_789,
    };
    const T2: Time = Time {
        secs: 1_600_000_000,
        nanos: 987_654_321,
    };

    /// Raw `system.posix_acl_*` value: version 2 header, then (tag, perm, id) entries, little-endian.
    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut out = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            out.extend(tag.to_le_bytes());
            out.extend(perm.to_le_bytes());
            out.extend(id.to_le_bytes());
        }
        out
    }

    const NO_ID: u32 = u32::MAX;
    /// USER_OBJ rw-, USER 1234 rwx, GROUP_OBJ r--, MASK rwx, OTHER r--: what `setfacl -m u:1234:rwx` makes of 0644.
    const ACL_1234: [(u16, u16, u32); 5] = [
        (1, 6, NO_ID),
        (2, 7, 1234),
        (4, 4, NO_ID),
        (0x10, 7, NO_ID),
        (0x20, 4, NO_ID),
    ];

    fn xattr_value<'a>(node: &'a Node, name: &[u8]) -> Option<&'a [u8]> {
        node.xattrs.iter().find(|x| x.name == name).map(|x| x.value.as_slice())
    }

    #[test]
    fn setuid_setgid_owner_and_ns_times_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::write(&src, b"data").unwrap();
        std::fs::write(&dst, b"data").unwrap();
        std::os::unix::fs::lchown(&src, Some(1234), Some(5678)).unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o6755)).unwrap();
        set_raw_times(&src, T1, T2);
        let n = node_of(&src);
        assert_eq!(
            (n.kind, n.mode, n.uid, n.gid),
            (NodeKind::File, libc::S_IFREG | 0o6755, 1234, 5678)
        );
        assert_eq!((n.atime, n.mtime, n.size, n.nlink), (T1, T2, 4, 1));
        apply_metadata(&dst, &n, &RestoreOptions { owner: true }).unwrap();
        let m = node_of(&dst);
        assert_eq!(
            (m.mode, m.uid, m.gid, m.mtime, m.atime),
            (n.mode, n.uid, n.gid, n.mtime, n.atime)
        );
        assert_ne!(m.inode, n.inode);
    }

    #[test]
    fn binary_xattrs_and_non_utf8_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join(OsStr::from_bytes(b"n\xffme"));
        let dst = dir.path().join("dst");
        std::fs::write(&src, b"").unwrap();
        std::fs::write(&dst, b"").unwrap();
        xattr::set(&src, "user.z", &[0, 255, 1, 0]).unwrap();
        xattr::set(&src, OsStr::from_bytes(b"user.\xfe\x01"), b"").unwrap();
        xattr::set(&src, "trusted.t", &[7; 300]).unwrap();
        let n = read_node(&src, b"n\xffme".to_vec(), &NameCache::new())
            .unwrap()
            .unwrap();
        assert_eq!(n.name, b"n\xffme");
        let names: Vec<&[u8]> = n.xattrs.iter().map(|x| x.name.as_slice()).collect();
        assert_eq!(names, [&b"trusted.t"[..], b"user.z", b"user.\xfe\x01"]);
        assert_eq!(xattr_value(&n, b"user.z"), Some(&[0, 255, 1, 0][..]));
        apply_metadata(&dst, &n, &RestoreOptions { owner: true }).unwrap();
        assert_eq!(node_of(&dst).xattrs, n.xattrs);
    }

    #[test]
    fn posix_acl_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        for p in [&src, &dst] {
            std::fs::write(p, b"").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        xattr::set(&src, "system.posix_acl_access", &acl(&ACL_1234)).unwrap();
        let n = node_of(&src);
        assert_eq!(n.mode & 0o777, 0o674, "the kernel shows the ACL mask as group bits");
        apply_metadata(&dst, &n, &RestoreOptions { owner: true }).unwrap();
        let m = node_of(&dst);
        assert_eq!(xattr_value(&m, b"system.posix_acl_access"), Some(&acl(&ACL_1234)[..]));
        assert_eq!(m.mode, n.mode);
    }

    #[test]
    fn setfacl_acl_is_read_as_the_raw_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let status = match std::process::Command::new("setfacl")
            .arg("-m")
            .arg("u:1234:rwx")
            .arg(&f)
            .status()
        {
            Ok(s) => s,
            Err(e) => return println!("setfacl not runnable ({e}); skipping the setfacl cross-check"),
        };
        assert!(status.success());
        assert_eq!(
            xattr_value(&node_of(&f), b"system.posix_acl_access"),
            Some(&acl(&ACL_1234)[..])
        );
    }

    #[test]
    fn default_acl_restores_and_inherited_acls_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        let default = acl(&[
            (1, 7, NO_ID),
            (2, 7, 1234),
            (4, 5, NO_ID),
            (0x10, 7, NO_ID),
            (0x20, 5, NO_ID),
        ]);
        xattr::set(&src, "system.posix_acl_default", &default).unwrap();
        let n = node_of(&src);
        apply_metadata(&dst, &n, &RestoreOptions { owner: true }).unwrap();
        assert_eq!(
            xattr_value(&node_of(&dst), b"system.posix_acl_default"),
            Some(&default[..])
        );

        // A plain file restored into that directory inherits an ACL at creation; its node has none.
        let plain = dir.path().join("plain");
        std::fs::write(&plain, b"").unwrap();
        let child = dst.join("child");
        std::fs::write(&child, b"").unwrap();
        assert!(xattr_value(&node_of(&child), b"system.posix_acl_access").is_some());
        let p = node_of(&plain);
        apply_metadata(&child, &p, &RestoreOptions { owner: true }).unwrap();
        let c = node_of(&child);
        assert_eq!((c.xattrs.clone(), c.mode), (vec![], p.mode));
    }

    #[test]
    fn symlink_with_non_utf8_target_gets_owner_and_times_on_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join(OsStr::from_bytes(b"tar\xffget"));
        std::fs::write(&target, b"t").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        set_raw_times(&target, T1, T1);
        let src = dir.path().join("src");
        symlink(OsStr::from_bytes(b"tar\xffget"), &src).unwrap();
        std::os::unix::fs::lchown(&src, Some(1234), Some(5678)).unwrap();
        set_raw_times(&src, T2, T2);
        let n = node_of(&src);
        assert_eq!(
            (n.kind, n.target.as_slice(), n.size),
            (NodeKind::Symlink, &b"tar\xffget"[..], 7)
        );
        assert_eq!((n.uid, n.gid, n.mtime, n.atime), (1234, 5678, T2, T2));

        let dst = dir.path().join("dst");
        create_special(&dst, &n).unwrap();
        apply_metadata(&dst, &n, &RestoreOptions { owner: true }).unwrap();
        let md = std::fs::symlink_metadata(&dst).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
        assert_eq!(stat_time(md.mtime(), md.mtime_nsec()), T2);
        assert_eq!(stat_time(md.atime(), md.atime_nsec()), T2);
        assert_eq!(node_of(&dst).target, n.target);
        let t = std::fs::symlink_metadata(&target).unwrap();
        let untouched = (t.uid(), t.mode() & 0o7777, stat_time(t.mtime(), t.mtime_nsec()));
        assert_eq!(untouched, (0, 0o644, T1), "the target is untouched");
    }

    #[test]
    fn devices_and_fifos_are_created_with_kind_rdev_and_mode() {
        let dir = tempfile::tempdir().unwrap();
        let specials = [
            (NodeKind::CharDevice, libc::S_IFCHR | 0o640, libc::makedev(1, 3)),
            (NodeKind::BlockDevice, libc::S_IFBLK | 0o600, libc::makedev(7, 0)),
            (NodeKind::Fifo, libc::S_IFIFO | 0o1646, 0),
        ];
        for (kind, mode, rdev) in specials {
            let mut n = Node::new(b"s".to_vec(), kind);
            (n.mode, n.rdev, n.uid, n.gid, n.mtime, n.atime) = (mode, rdev, 1234, 5678, T2, T1);
            let path = dir.path().join(format!("{kind:?}"));
            create_special(&path, &n).unwrap();
            apply_metadata(&path, &n, &RestoreOptions { owner: true }).unwrap();
            let m = node_of(&path);
            assert_eq!(
                (m.kind, m.mode, m.rdev, m.uid, m.gid),
                (kind, mode, rdev, 1234, 5678),
                "{kind:?}"
            );
            assert_eq!((m.mtime, m.atime), (T2, T1), "{kind:?}");
            let again = create_special(&path, &n).unwrap_err();
            assert_eq!(again.io_error().kind(), io::ErrorKind::AlreadyExists);
            assert_eq!(again.path(), path);
        }
        let file = Node::new(b"f".to_vec(), NodeKind::File);
        let err = create_special(&dir.path().join("f"), &file).unwrap_err();
        assert_eq!(err.io_error().kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn sparse_file_has_two_data_regions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let f = File::create(&p).unwrap();
        let size = 10 << 20;
        f.set_len(size).unwrap();
        f.write_all_at(&[1; 4096], 0).unwrap();
        f.write_all_at(&[2; 4096], 5 << 20).unwrap();
        f.sync_all().unwrap();
        let f = open_for_backup(&p).unwrap();
        let r = data_regions(&f, size).unwrap();
        assert_eq!(r.len(), 2, "{r:?}");
        assert!(r[0].start == 0 && r[0].end >= 4096, "{r:?}");
        assert!(
            r[0].end <= r[1].start && r[1].start <= 5 << 20 && r[1].end >= (5 << 20) + 4096,
            "{r:?}"
        );
        assert!(r[1].end < size, "the file ends in a hole: {r:?}");
        assert!(r.iter().map(|x| x.end - x.start).sum::<u64>() < 1 << 20, "{r:?}");
        let first_1000: Range<u64> = 0..1000;
        assert_eq!(
            data_regions(&f, 1000).unwrap(),
            [first_1000],
            "regions stop at the given size"
        );
    }

    #[test]
    fn empty_fully_sparse_and_dense_files() {
        let dir = tempfile::tempdir().unwrap();
        let empty = File::create(dir.path().join("empty")).unwrap();
        assert_eq!(data_regions(&empty, 0).unwrap(), []);
        let hole = File::create(dir.path().join("hole")).unwrap();
        hole.set_len(3 << 20).unwrap();
        assert_eq!(data_regions(&hole, 3 << 20).unwrap(), []);
        let dense = dir.path().join("dense");
        std::fs::write(&dense, vec![9u8; 100_000]).unwrap();
        let f = open_for_backup(&dense).unwrap();
        let whole: Range<u64> = 0..100_000;
        assert_eq!(data_regions(&f, 100_000).unwrap(), [whole]);
    }

    #[test]
    fn sockets_are_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let s = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&s).unwrap();
        assert!(read_node(&s, b"sock".to_vec(), &NameCache::new()).unwrap().is_none());
    }

    #[test]
    fn an_append_while_reading_is_seen() {
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

    #[test]
    fn reading_files_and_listing_directories_keeps_atime() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let file = sub.join(OsStr::from_bytes(b"\xff"));
        std::fs::write(&file, b"content").unwrap();
        std::fs::write(sub.join("b"), b"").unwrap();
        // atime older than mtime: relatime would update it on any read.
        set_raw_times(&file, T1, T2);
        set_raw_times(&sub, T1, T2);
        let mut names = list_dir(&sub).unwrap();
        names.sort();
        assert_eq!(names, [b"b".to_vec(), b"\xff".to_vec()]);
        let mut content = String::new();
        open_for_backup(&file).unwrap().read_to_string(&mut content).unwrap();
        assert_eq!(content, "content");
        assert_eq!((node_of(&sub).atime, node_of(&file).atime), (T1, T1));
    }

    #[test]
    fn open_for_backup_refuses_fifos_and_symlinks_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        create_special(&fifo, &Node::new(b"fifo".to_vec(), NodeKind::Fifo)).unwrap();
        assert_eq!(open_for_backup(&fifo).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let link = dir.path().join("link");
        std::fs::write(dir.path().join("t"), b"").unwrap();
        symlink("t", &link).unwrap();
        assert_eq!(open_for_backup(&link).unwrap_err().raw_os_error(), Some(libc::ELOOP));
        let dir_link = dir.path().join("dir_link");
        symlink(".", &dir_link).unwrap();
        let err = list_dir(&dir_link).unwrap_err().raw_os_error();
        assert!(matches!(err, Some(libc::ELOOP | libc::ENOTDIR)), "{err:?}");
    }

    #[test]
    fn a_refused_xattr_is_reported_and_the_rest_still_applied() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"").unwrap();
        let mut n = node_of(&p);
        (n.mode, n.mtime, n.atime) = (libc::S_IFREG | 0o604, T2, T1);
        n.xattrs = vec![
            Xattr {
                name: b"bogus.\xff".to_vec(),
                value: vec![1],
            },
            Xattr {
                name: b"user.ok".to_vec(),
                value: vec![2],
            },
        ];
        let err = apply_metadata(&p, &n, &RestoreOptions { owner: false }).unwrap_err();
        let expected = format!(
            "cannot set xattr bogus.\\xff of {}: Operation not supported",
            p.display()
        );
        assert_eq!(err.to_string(), expected);
        let m = node_of(&p);
        assert_eq!((m.mode, m.mtime, m.atime), (n.mode, T2, T1));
        assert_eq!(xattr_value(&m, b"user.ok"), Some(&[2][..]));
    }

    #[test]
    fn errors_name_the_path_in_one_line() {
        let missing = Path::new("/nonexistent/\u{e9}");
        let err = read_node(missing, b"x".to_vec(), &NameCache::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot stat /nonexistent/\u{e9}: No such file or directory"
        );
        assert_eq!(err.io_error().raw_os_error(), Some(libc::ENOENT));
    }

    #[test]
    fn name_cache_resolves_and_caches_misses() {
        fn shared<T: Send + Sync>(_: &T) {}
        let names = NameCache::new();
        shared(&names);
        assert_eq!(names.user(0).as_deref(), Some("root"));
        assert_eq!(names.group(0).as_deref(), Some("root"));
        assert_eq!(names.user(3_999_999), None);
        assert!(names.users.lock().unwrap().contains_key(&3_999_999), "a miss is cached");
        assert_eq!(names.user(3_999_999), None);
        let n = node_of(Path::new("/"));
        assert_eq!(
            (n.kind, n.user.as_deref(), n.group.as_deref()),
            (NodeKind::Dir, Some("root"), Some("root"))
        );
    }

    #[test]
    fn is_root_matches_euid() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(is_root(), unsafe { libc::geteuid() } == 0);
    }
}
