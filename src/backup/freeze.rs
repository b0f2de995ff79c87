//! Freezing file systems around snapshot creation (FIFREEZE/FITHAW), and guard processes that undo what a backup
//! set up if the backup process dies first.
//!
//! A frozen file system blocks every writer on the machine, so it is always thawed: by `Frozen::thaw`, by `Drop`
//! (error paths and unwinding), by the backup's cleanup on a signal, and by a guard process that outlives a killed
//! backup. The guard also enforces the hard maximum freeze time: it thaws when that time has passed, whatever the
//! backup is doing.
//!
//! A guard is this program started again as `coffer __guard ...` with a pipe on its standard input. The backup
//! writes `done` when it has undone the thing itself; end of file without `done` means the backup died, and the
//! guard undoes it. Guards run in their own process group and ignore SIGINT, SIGTERM and SIGHUP, so a Ctrl-C
//! aimed at the backup does not take them down with it.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// `_IOWR('X', 119, int)` and `_IOWR('X', 120, int)` from linux/fs.h.
const FIFREEZE: libc::c_ulong = 0xC004_5877;
const FITHAW: libc::c_ulong = 0xC004_5878;

/// A process that undoes something unless released (see the module documentation).
pub struct Guard {
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Guard {
    /// Starts `exe __guard <args>`.
    pub fn spawn(exe: &Path, args: &[OsString]) -> io::Result<Guard> {
        let mut child = Command::new(exe)
            .arg("__guard")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Guard { child, stdin })
    }

    /// Tells the guard its work is done and waits for it to exit.
    pub fn release(mut self) {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.write_all(b"done\n");
        }
        let _ = self.child.wait();
    }
}

/// A frozen file system; thawed by `thaw` or when dropped.
pub struct Frozen {
    path: PathBuf,
    dir: File,
    guard: Option<Guard>,
    since: Instant,
    thawed: bool,
}

/// Freezes the file system holding `path`. With `guard_exe`, a guard thaws it after `max` or if this process
/// dies; without (library tests), only this process thaws it.
pub fn freeze(path: &Path, max: Duration, guard_exe: Option<&Path>) -> io::Result<Frozen> {
    let dir = File::open(path)?;
    let guard = match guard_exe {
        Some(exe) => {
            let ms = max.as_millis().to_string();
            Some(Guard::spawn(exe, &["thaw".into(), path.into(), ms.into()])?)
        }
        None => None,
    };
    // SAFETY: FIFREEZE takes no argument memory; `dir` is an open descriptor.
    if unsafe { libc::ioctl(dir.as_raw_fd(), FIFREEZE, 0) } != 0 {
        let e = io::Error::last_os_error();
        if let Some(g) = guard {
            g.release();
        }
        return Err(e);
    }
    log::info!("froze the file system of {}", path.display());
    Ok(Frozen {
        path: path.to_path_buf(),
        dir,
        guard,
        since: Instant::now(),
        thawed: false,
    })
}

impl Frozen {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Thaws the file system; returns how long it was frozen. Thawing one that a guard already thawed (at the
    /// maximum freeze time) is not an error.
    pub fn thaw(mut self) -> io::Result<Duration> {
        self.thaw_now()
    }

    fn thaw_now(&mut self) -> io::Result<Duration> {
        let held = self.since.elapsed();
        if self.thawed {
            return Ok(held);
        }
        self.thawed = true;
        let result = thaw_fd(&self.dir);
        log::info!("thawed {} after {:.3} s", self.path.display(), held.as_secs_f64());
        if let Some(g) = self.guard.take() {
            g.release();
        }
        result.map(|()| held)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.thaw_now();
    }
}

/// FITHAW; `EINVAL` (not frozen) counts as success.
fn thaw_fd(dir: &File) -> io::Result<()> {
    // SAFETY: FITHAW takes no argument memory; `dir` is an open descriptor.
    if unsafe { libc::ioctl(dir.as_raw_fd(), FITHAW, 0) } == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EINVAL) {
        Ok(())
    } else {
        Err(e)
    }
}

/// The guard process (`coffer __guard ...`): `thaw PATH MAX_MS` thaws PATH's file system after MAX_MS or when
/// the backup dies; `remove-subvolume PATH` deletes a btrfs snapshot when the backup dies. Returns the exit code.
pub fn guard_main(args: &[String]) -> i32 {
    for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: ignoring a signal installs no handler code.
        unsafe { libc::signal(s, libc::SIG_IGN) };
    }
    match args {
        [mode, path, ms] if mode == "thaw" => {
            let max = Duration::from_millis(ms.parse().unwrap_or(0));
            if wait_for_done(Some(max)) {
                return 0;
            }
            match File::open(path).and_then(|d| thaw_fd(&d)) {
                Ok(()) => eprintln!("coffer guard: thawed {path}"),
                Err(e) => eprintln!("coffer guard: cannot thaw {path}: {e}"),
            }
            0
        }
        [mode, path] if mode == "remove-subvolume" => {
            if !wait_for_done(None) {
                let _ = super::snapshot::delete_subvolume(Path::new(path));
            }
            0
        }
        _ => {
            eprintln!("coffer guard: bad arguments");
            2
        }
    }
}

/// Waits for `done` on standard input: true if it came, false on end of file or when `timeout` passed.
fn wait_for_done(timeout: Option<Duration>) -> bool {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut got = Vec::new();
    loop {
        let wait_ms = match deadline {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .as_millis()
                .min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut pfd = libc::pollfd {
            fd: 0,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stack.
        let n = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
        if n == 0 {
            return false;
        }
        if n < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
        let mut buf = [0u8; 64];
        match io::stdin().lock().read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(k) => got.extend_from_slice(&buf[..k]),
        }
        if got.windows(4).any(|w| w == b"done") {
            return true;
        }
    }
}
