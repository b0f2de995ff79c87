//! `coffer mount` and `coffer umount`.

use super::Global;
use super::signals::{SigSet, block_signals, wait_for_signal};
use anyhow::{Context, Result, bail};
use coffer::format::point::PointRecord;
use coffer::fuse::FuseFs;
use coffer::mountfs::{MountFs, MountOptions};
use coffer::vault::{PointFilter, resolve_point};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

#[derive(clap::Args, Clone)]
pub struct Args {
    /// An empty directory to mount on
    pub mountpoint: PathBuf,
    /// Show only this point's files at the root (id, prefix or 'latest')
    #[arg(long)]
    pub point: Option<String>,
    /// Only points of this host
    #[arg(long)]
    pub host: Option<String>,
    /// Only points with this tag (repeatable)
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Return once the mount is ready, serving it from a background process
    #[arg(long)]
    pub daemon: bool,
    /// Let other users see the mount (file permissions still apply)
    #[arg(long)]
    pub allow_other: bool,
    /// Unmount after this long without any access, e.g. 30m, 12h (default: never)
    #[arg(long, value_parser = parse_duration)]
    pub idle_timeout: Option<Duration>,
    /// Bytes of decoded data to keep in memory, e.g. 512M, 2G
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub cache_size: u64,
    /// Threads answering the kernel's requests
    #[arg(long, default_value_t = 8)]
    pub threads: usize,
    /// Internal: started by `--daemon`; errors before the mount is up go to the parent through stderr, which is
    /// let go once the mount is up.
    #[arg(long, hide = true)]
    pub daemon_child: bool,
}

pub fn run(g: &Global, a: Args) -> Result<ExitCode> {
    // Before any thread starts (opening the vault starts rayon's pool): every thread inherits the mask, so only the
    // waiting thread ever sees SIGINT/SIGTERM/SIGHUP.
    let signals = block_signals();
    check_mountpoint(&a.mountpoint, g)?;
    if a.daemon {
        // The child opens the vault (a second key derivation here would double the time to ready) and relays any
        // error to us.
        return daemonize(g, &a);
    }
    let vault = g.open_reader("mount")?;
    let filter = PointFilter {
        host: a.host.clone(),
        tags: a.tags.clone(),
        paths: vec![],
        sources: None,
    };
    let single = match &a.point {
        Some(spec) => Some(resolve_point(&vault, spec, &filter)?.id),
        None => None,
    };
    let points: Vec<PointRecord> = vault.load_points()?.into_iter().filter(|p| filter.matches(p)).collect();
    let opts = MountOptions {
        cache_bytes: a.cache_size,
        single_point: single,
    };
    let last_access = Arc::new(AtomicU64::new(now_secs()));
    let fs = FuseFs {
        fs: MountFs::new(vault, points, &opts),
        last_access: last_access.clone(),
        no_opendir: Default::default(),
    };
    serve(fs, &a, last_access, signals)
}

/// Mounts and serves until unmounted (by `umount`, a signal, or the idle timeout).
fn serve(fs: FuseFs, a: &Args, last_access: Arc<AtomicU64>, signals: SigSet) -> Result<ExitCode> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::RO,
        fuser::MountOption::FSName("coffer".into()),
        fuser::MountOption::Subtype("coffer".into()),
        fuser::MountOption::DefaultPermissions,
    ];
    if a.allow_other {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(a.threads.max(1));
    config.clone_fd = true;
    let mut session = fuser::Session::new(fs, &a.mountpoint, &config)
        .with_context(|| format!("cannot mount on {}", a.mountpoint.display()))?;
    let mut on_signal = session.unmount_callable();
    std::thread::spawn(move || {
        let sig = wait_for_signal(&signals);
        log::info!("signal {sig}: unmounting");
        let _ = on_signal.unmount();
    });
    if let Some(limit) = a.idle_timeout {
        let mut on_idle = session.unmount_callable();
        std::thread::spawn(move || {
            while now_secs().saturating_sub(last_access.load(Relaxed)) < limit.as_secs() {
                std::thread::sleep(Duration::from_secs(1).min(limit));
            }
            log::info!("idle for {}s: unmounting", limit.as_secs());
            let _ = on_idle.unmount();
        });
    }
    raise_read_ahead(&a.mountpoint);
    if a.daemon_child {
        release_stderr();
    }
    session.run().context("serving the mount")?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses a mount point that is missing, not an empty directory, or inside the vault.
fn check_mountpoint(mp: &Path, g: &Global) -> Result<()> {
    let md = std::fs::metadata(mp).with_context(|| format!("mount point {}", mp.display()))?;
    if !md.is_dir() {
        bail!("mount point {} is not a directory", mp.display());
    }
    if std::fs::read_dir(mp)?.next().is_some() {
        bail!("mount point {} is not empty", mp.display());
    }
    let real = std::fs::canonicalize(mp)?;
    if let Some(vault) = g.vault_dir().and_then(|v| std::fs::canonicalize(v).ok())
        && real.starts_with(&vault)
    {
        bail!("mount point {} is inside the vault {}", mp.display(), vault.display());
    }
    Ok(())
}

/// Runs this same command without `--daemon` in a new session, and returns once its mount answers; if the child
/// exits first, fails with the error it printed.
fn daemonize(g: &Global, a: &Args) -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().filter(|x| x != "--daemon").collect();
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    let quiet = std::process::Stdio::null;
    cmd.args(&args[1..]).arg("--daemon-child");
    cmd.stdin(quiet()).stdout(quiet()).stderr(std::process::Stdio::piped());
    if let Some(p) = g.passphrase_for_child()? {
        cmd.env("COFFER_PASSWORD", p);
    }
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = cmd.spawn().context("cannot start the mount process")?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait()? {
            let mut said = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut said);
            }
            match said.lines().rev().find(|l| !l.trim().is_empty()) {
                Some(line) => bail!("{}", line.trim_start_matches("coffer: error: ")),
                None => bail!("the mount process exited ({status}) before the mount was ready"),
            }
        }
        if is_mounted(&a.mountpoint) {
            return Ok(ExitCode::SUCCESS);
        }
        // Reading mountinfo costs microseconds; polling often keeps `mount --daemon` from adding latency.
        std::thread::sleep(Duration::from_millis(5));
    }
    bail!("the mount on {} was not ready after 60 s", a.mountpoint.display())
}

/// Points stderr at /dev/null: the `--daemon` parent that read it is gone once the mount is up, and writing to a
/// pipe nobody reads would fail.
fn release_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        // SAFETY: dup2 onto fd 2 of an open descriptor; `null` is closed when dropped, fd 2 stays valid.
        unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), 2) };
    }
}

/// `coffer umount MOUNTPOINT`
pub fn umount(mp: &Path) -> Result<ExitCode> {
    if !is_mounted(mp) {
        bail!("{} is not a coffer mount", mp.display());
    }
    let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(mp.as_os_str()))?;
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(ExitCode::SUCCESS);
    }
    let err = std::io::Error::last_os_error();
    let status = std::process::Command::new("fusermount3").arg("-u").arg(mp).status();
    match status {
        Ok(s) if s.success() => Ok(ExitCode::SUCCESS),
        _ => bail!("cannot unmount {}: {err}", mp.display()),
    }
}

/// Whether `/proc/self/mountinfo` lists a coffer FUSE mount at `mp`.
pub fn is_mounted(mp: &Path) -> bool {
    mount_device(mp).is_some()
}

/// `major:minor` of the coffer mount at `mp`, from /proc/self/mountinfo (reading it never touches the mount).
fn mount_device(mp: &Path) -> Option<String> {
    let real = std::fs::canonicalize(mp).unwrap_or_else(|_| mp.to_path_buf());
    let want = real.to_string_lossy().replace(' ', "\\040");
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let fstype = f.iter().skip_while(|x| **x != "-").nth(1)?;
        (f.get(4) == Some(&want.as_str()) && fstype.starts_with("fuse") && l.contains("coffer"))
            .then(|| f[2].to_string())
    })
}

/// Raises the kernel's read-ahead for this mount to 1 MiB (the FUSE handshake is capped lower); best effort.
fn raise_read_ahead(mp: &Path) {
    let mp = mp.to_path_buf();
    std::thread::spawn(move || {
        for _ in 0..100 {
            if let Some(dev) = mount_device(&mp) {
                let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
                if let Err(e) = std::fs::write(&path, "1024") {
                    log::debug!("cannot raise read-ahead ({path}): {e}");
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `30s`, `15m`, `12h`, `2d`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a duration like 30m or 12h"))?;
    let mult = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(n * mult))
}

/// `512M`, `2G`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("'{s}' is not a size like 512M"))?;
    let mult: u64 = match unit.to_ascii_uppercase().trim_end_matches("IB").trim_end_matches('B') {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use K, M or G)")),
    };
    Ok(n * mult)
}

/// `mount.fuse.coffer VAULT MOUNTPOINT [-o OPTIONS]`: what `mount -t fuse.coffer` and /etc/fstab run (install with
/// `ln -s $(command -v coffer) /sbin/mount.fuse.coffer`). Mounts in the background and returns once ready.
pub fn helper(args: &[String]) -> Result<ExitCode> {
    let mut positional = Vec::new();
    let mut options = String::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => options = it.next().cloned().unwrap_or_default(),
            "-n" | "-s" | "-f" | "-v" => {}
            o if o.starts_with("-o") => options = o[2..].to_string(),
            _ => positional.push(a.clone()),
        }
    }
    let [vault, mountpoint] = positional.as_slice() else {
        bail!("usage: mount.fuse.coffer VAULT MOUNTPOINT [-o point=ID,host=H,tag=T,password_file=F,allow_other]");
    };
    let mut cmd: Vec<String> = vec!["coffer".into(), "--vault".into(), vault.clone()];
    let mut mount_args = vec!["mount".to_string(), "--daemon".into(), mountpoint.clone()];
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        match key {
            "point" | "host" | "tag" | "cache_size" | "idle_timeout" => {
                mount_args.push(format!("--{}", key.replace('_', "-")));
                mount_args.push(value.to_string());
            }
            "allow_other" => mount_args.push("--allow-other".into()),
            "password_file" => cmd.extend(["--password-file".into(), value.to_string()]),
            "rw" => bail!("coffer mounts are read-only: remove 'rw' from the options"),
            _ if IGNORED.contains(&key) || key.starts_with("x-") => {}
            _ => bail!("unknown mount option '{opt}'"),
        }
    }
    cmd.extend(mount_args);
    let status = std::process::Command::new(std::env::current_exe()?)
        .args(&cmd[1..])
        .status()?;
    Ok(ExitCode::from(status.code().unwrap_or(1) as u8))
}

/// Options mount(8) and fstab pass that mean nothing to a read-only FUSE mount.
const IGNORED: &[&str] = &[
    "ro",
    "defaults",
    "auto",
    "noauto",
    "nofail",
    "user",
    "users",
    "nouser",
    "_netdev",
    "nosuid",
    "suid",
    "nodev",
    "dev",
    "noexec",
    "exec",
    "relatime",
    "noatime",
    "atime",
    "strictatime",
    "sync",
    "async",
];
