//! A vault in a local directory: one file per object.
//!
//! Creation writes a temporary file under `tmp/`, fsyncs it, moves it into place with `renameat2(RENAME_NOREPLACE)`
//! (falling back to `link` + `unlink` where the file system lacks it; both refuse an existing name atomically), then
//! fsyncs the directory so the name survives a crash. A crash or a full disk can leave a file in `tmp/`, never a
//! partial object under its real name.

use super::{ObjectInfo, Store, StoreError, check_name};
use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Write};
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Directory holding temporary files of objects being created.
const TMP_DIR: &str = "tmp";

/// Objects as files under `root`.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`; the directory is created on the first write if missing.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(name: &str, source: io::Error) -> StoreError {
        match source.kind() {
            ErrorKind::NotFound => StoreError::NotFound(name.to_string()),
            _ => StoreError::Io {
                name: name.to_string(),
                source,
            },
        }
    }

    fn write_temp(&self, name: &str, data: &[u8]) -> Result<PathBuf, StoreError> {
        let tmp_dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&tmp_dir).map_err(|e| Self::io(name, e))?;
        let rand: [u8; 8] = crate::format::ids::random_bytes();
        let tmp = tmp_dir.join(format!("{}.tmp", hex::encode(rand)));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            f.write_all(data)?;
            f.sync_all()
        })();
        match result {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                Err(Self::io(name, e))
            }
        }
    }

    /// Creates the parent directories of `path`, fsyncing each new directory's parent.
    fn make_parents(&self, path: &Path) -> io::Result<()> {
        let parent = path.parent().expect("object path has a parent");
        if parent.is_dir() {
            return Ok(());
        }
        self.make_parents(parent)?;
        match fs::create_dir(parent) {
            Err(e) if e.kind() != ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        sync_dir(parent.parent().expect("has parent"))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves `from` to `to` unless `to` exists; `AlreadyExists` error then.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(ErrorKind::InvalidInput));
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD with absolute or relative paths is well defined.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EINVAL) || err.raw_os_error() == Some(libc::ENOSYS) {
        fs::hard_link(from, to)?;
        return fs::remove_file(from);
    }
    Err(err)
}

impl Store for LocalStore {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let dir_part = prefix.rfind('/').map(|i| &prefix[..i]).unwrap_or("");
        let mut out = Vec::new();
        walk(&self.root.join(dir_part), dir_part, &mut out).map_err(|e| Self::io(prefix, e))?;
        out.retain(|o| o.name.starts_with(prefix) && !o.name.starts_with("tmp/"));
        Ok(out)
    }

    fn read(&self, name: &str, range: Option<Range<u64>>) -> Result<Vec<u8>, StoreError> {
        check_name(name)?;
        let path = self.root.join(name);
        let Some(r) = range else {
            return fs::read(&path).map_err(|e| Self::io(name, e));
        };
        let f = File::open(&path).map_err(|e| Self::io(name, e))?;
        let size = f.metadata().map_err(|e| Self::io(name, e))?.len();
        if r.start > r.end || r.end > size {
            return Err(StoreError::OutOfRange {
                name: name.to_string(),
                size,
                range: r,
            });
        }
        let mut buf = vec![0u8; (r.end - r.start) as usize];
        f.read_exact_at(&mut buf, r.start).map_err(|e| Self::io(name, e))?;
        Ok(buf)
    }

    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        check_name(name)?;
        let path = self.root.join(name);
        if path.exists() {
            return Err(StoreError::AlreadyExists(name.to_string()));
        }
        let tmp = self.write_temp(name, data)?;
        let placed = self.make_parents(&path).and_then(|()| rename_noreplace(&tmp, &path));
        if let Err(e) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(match e.kind() {
                ErrorKind::AlreadyExists => StoreError::AlreadyExists(name.to_string()),
                _ => Self::io(name, e),
            });
        }
        sync_dir(path.parent().expect("has parent")).map_err(|e| Self::io(name, e))
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        check_name(name)?;
        fs::remove_file(self.root.join(name)).map_err(|e| Self::io(name, e))
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// Appends every file below `dir` (named `prefix/...`) to `out`; a missing directory lists nothing.
fn walk(dir: &Path, prefix: &str, out: &mut Vec<ObjectInfo>) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Some(fname) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let name = if prefix.is_empty() {
            fname
        } else {
            format!("{prefix}/{fname}")
        };
        let md = entry.metadata()?;
        if md.is_dir() {
            walk(&entry.path(), &name, out)?;
        } else if md.is_file() {
            out.push(ObjectInfo { name, size: md.len() });
        }
    }
    Ok(())
}
