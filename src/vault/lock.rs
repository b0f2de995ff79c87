//! Vault locks: shared for commands that read or add (backup, restore, mount, forget, check), exclusive for prune,
//! which deletes.
//!
//! Protocol (works on any store with create-if-absent and listing): write `locks/<random>`, then list the other
//! locks; if one conflicts (either side exclusive) and is not stale, remove ours, wait with jitter, retry until the
//! deadline. Two processes that lock at the same moment both see each other and both back off, so neither proceeds
//! on a conflict. A holder refreshes its lock every `REFRESH` from a background thread (a new object, then the old
//! one removed). A lock is stale when its process is gone (same host, no such pid) or it was not refreshed for
//! `STALE_AFTER`; stale locks are ignored and `coffer unlock` removes them. Before a backup writes its point it checks
//! that its lock still stands (`LockGuard::check_held`), so a backup that lost its lock (suspended for long, or
//! unlocked by hand) never commits a point whose data a prune may have removed.

use super::{Vault, VaultError};
use crate::crypto::Keys;
use crate::format::lock::{LOCK_VERSION, LockKind, LockRecord, lock_name};
use crate::store::{Store, StoreError};
use jiff::Timestamp;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a held lock is rewritten.
pub const REFRESH: Duration = Duration::from_secs(5 * 60);
/// A lock not refreshed for this long is stale (six missed refreshes).
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// A holder whose last refresh is this old counts its own lock as lost (half of `STALE_AFTER`, so the holder gives up
/// well before other hosts, whose clocks may be ahead, start to ignore it).
const MAX_AGE: Duration = Duration::from_secs(15 * 60);

/// A lock found in the vault.
#[derive(Clone, Debug)]
pub struct FoundLock {
    pub name: String,
    pub record: LockRecord,
    pub stale: bool,
}

impl FoundLock {
    /// "exclusive lock of prune by root@web1 (pid 4242) since 2026-11-25 10:00:00"
    pub fn describe(&self) -> String {
        let kind = match self.record.kind {
            LockKind::Shared => "shared",
            LockKind::Exclusive => "exclusive",
        };
        format!(
            "{kind} lock of {} by {} (pid {}) since {}",
            self.record.command,
            self.record.by,
            self.record.pid,
            self.record
                .created
                .get(..19)
                .unwrap_or(&self.record.created)
                .replace('T', " ")
        )
    }
}

/// Holds a lock until dropped; refreshes it meanwhile.
pub struct LockGuard {
    state: Arc<Held>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

struct Held {
    store: Arc<dyn Store>,
    keys: Keys,
    state: Mutex<HeldState>,
}

/// The lock object standing for this process now, and when it was written by both clocks. Once `lost`, a lock is
/// never refreshed again: another process may have acted on its absence.
struct HeldState {
    name: String,
    record: LockRecord,
    written: Instant,
    written_wall: std::time::SystemTime,
    lost: bool,
}

impl HeldState {
    /// Too long since the last write for others to still count it (by the monotonic clock, which keeps running while
    /// the process is stopped, or by the wall clock, which also runs while the machine sleeps).
    fn overdue(&self) -> bool {
        let wall = std::time::SystemTime::now()
            .duration_since(self.written_wall)
            .unwrap_or_default();
        self.written.elapsed().max(wall) >= MAX_AGE
    }
}

impl Vault {
    /// Takes a lock of `kind` for `command`, waiting up to `wait` for conflicting locks to go away.
    pub fn lock(&self, kind: LockKind, command: &str, wait: Duration) -> Result<LockGuard, VaultError> {
        let deadline = Instant::now() + wait;
        let mut pause = Duration::from_millis(100);
        loop {
            let (name, record) = write_lock(self.store(), self.keys(), kind, command, None)?;
            let conflict = self.locks()?.into_iter().find(|l| {
                l.name != name && !l.stale && (kind == LockKind::Exclusive || l.record.kind == LockKind::Exclusive)
            });
            let Some(other) = conflict else {
                return Ok(LockGuard::start(self.store_arc(), self.keys().clone(), name, record));
            };
            let _ = self.store().delete(&name);
            if Instant::now() >= deadline {
                return Err(VaultError::Locked(format!(
                    "the vault is in use: {} (wait with --lock-wait, or run 'coffer unlock' if that process is gone)",
                    other.describe()
                )));
            }
            std::thread::sleep(jitter(pause).min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    /// Every lock in the vault, with its staleness judged now. A listed lock that is gone when read may have been
    /// replaced by its holder's refresh, so the listing is then taken again until it is consistent.
    pub fn locks(&self) -> Result<Vec<FoundLock>, VaultError> {
        for _ in 0..50 {
            if let Some(found) = self.read_locks()? {
                return Ok(found);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(VaultError::Locked("the vault's locks keep changing; try again".into()))
    }

    /// The locks as listed, or `None` if one vanished between the listing and its read.
    fn read_locks(&self) -> Result<Option<Vec<FoundLock>>, VaultError> {
        let now = Timestamp::now();
        let mut found = Vec::new();
        for o in self.store().list("locks/")? {
            let Some(id) = o
                .name
                .strip_prefix("locks/")
                .and_then(|h| <[u8; 32]>::try_from(hex::decode(h).ok()?).ok())
            else {
                continue;
            };
            let bytes = match self.store().read(&o.name, None) {
                Ok(b) => b,
                Err(StoreError::NotFound(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let record = LockRecord::decode(&id, &bytes, self.keys()).map_err(|e| VaultError::Damaged {
                object: o.name.clone(),
                reason: e.to_string(),
            })?;
            let stale = is_stale(&record, now);
            found.push(FoundLock {
                name: o.name,
                record,
                stale,
            });
        }
        Ok(Some(found))
    }

    /// Removes stale locks (or, with `all`, every lock); returns what was removed.
    pub fn unlock(&self, all: bool) -> Result<Vec<FoundLock>, VaultError> {
        let mut removed = Vec::new();
        for l in self.locks()?.into_iter().filter(|l| all || l.stale) {
            match self.store().delete(&l.name) {
                Ok(()) | Err(StoreError::NotFound(_)) => removed.push(l),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(removed)
    }
}

/// Stale: its process is known to be gone, or it has not been refreshed for `STALE_AFTER` (by this host's clock:
/// hosts sharing a vault need clocks that agree within minutes).
pub fn is_stale(r: &LockRecord, now: Timestamp) -> bool {
    if known_dead(&r.machine, r.pid) {
        return true;
    }
    let refreshed = crate::util::parse_time(&r.refreshed).unwrap_or(Timestamp::UNIX_EPOCH);
    now.duration_since(refreshed).unsigned_abs() > STALE_AFTER && now > refreshed
}

/// This kernel boot and PID namespace: a pid means the same process only where this matches, which the host name
/// alone does not ensure (containers and pods often share one).
pub(crate) fn this_machine() -> &'static str {
    static MACHINE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    MACHINE.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let ns = std::fs::read_link("/proc/self/ns/pid")
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        format!("{} {ns}", boot.trim())
    })
}

/// True if `pid` of `machine` is known not to run any more (only decidable on the same machine).
pub(crate) fn known_dead(machine: &str, pid: u32) -> bool {
    machine.len() > 1 && machine == this_machine() && !process_alive(pid)
}

pub(crate) fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks whether the process exists; no signal is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

fn jitter(d: Duration) -> Duration {
    let r = u64::from_le_bytes(crate::format::ids::random_bytes::<8>());
    d + Duration::from_millis(r % (d.as_millis() as u64 + 1))
}

/// Writes a new lock object: a fresh one, or the refresh of `previous` (same kind, command and creation time).
fn write_lock(
    store: &dyn Store,
    keys: &Keys,
    kind: LockKind,
    command: &str,
    previous: Option<&LockRecord>,
) -> Result<(String, LockRecord), VaultError> {
    let now = crate::util::now_rfc3339();
    let record = LockRecord {
        version: LOCK_VERSION,
        kind,
        host: crate::util::hostname(),
        machine: this_machine().to_string(),
        pid: std::process::id(),
        command: command.to_string(),
        by: super::actor(),
        created: previous.map_or_else(|| now.clone(), |p| p.created.clone()),
        refreshed: now,
    };
    let id: [u8; 32] = crate::format::ids::random_bytes();
    let name = lock_name(&id);
    store.create(&name, &record.encode(&id, keys))?;
    Ok((name, record))
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.state.state.lock().map(|st| st.name.clone()).unwrap_or_default();
        write!(f, "LockGuard({held})")
    }
}

impl LockGuard {
    fn start(store: Arc<dyn Store>, keys: Keys, name: String, record: LockRecord) -> LockGuard {
        let state = Arc::new(Held {
            store,
            keys,
            state: Mutex::new(HeldState {
                name,
                record,
                written: Instant::now(),
                written_wall: std::time::SystemTime::now(),
                lost: false,
            }),
        });
        let (stop, stopped) = channel::<()>();
        let s = state.clone();
        let refresher = std::thread::spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(REFRESH) {
                if let Err(e) = s.refresh() {
                    log::warn!("could not refresh the vault lock: {e}");
                }
            }
        });
        LockGuard {
            state,
            stop: Some(stop),
            refresher: Some(refresher),
        }
    }

    /// Fails if this lock may no longer stand: it was removed (`coffer unlock`), or its last refresh is so old that
    /// other processes may have ignored it, so an exclusive lock may have been taken meanwhile.
    pub fn check_held(&self) -> Result<(), VaultError> {
        let mut st = self.state.state.lock().expect("lock state");
        if !st.lost && st.overdue() {
            st.lost = true;
        }
        if !st.lost {
            match self.state.store.read(&st.name, None) {
                Ok(_) => return Ok(()),
                Err(StoreError::NotFound(_)) => st.lost = true,
                Err(e) => return Err(e.into()),
            }
        }
        Err(lost(&st.name))
    }
}

fn lost(name: &str) -> VaultError {
    VaultError::Locked(format!(
        "this process lost its vault lock ({name} was removed or not refreshed in time); nothing more is committed"
    ))
}

impl Held {
    /// Writes a new lock object and removes the old one; marks the lock lost instead if the old one is gone or the
    /// last refresh is overdue. The old object is read first, since a store may report deleting an absent object
    /// as a success; the delete's own `NotFound` (a removal between the read and the delete) counts as lost too.
    fn refresh(&self) -> Result<(), VaultError> {
        let mut st = self.state.lock().expect("lock state");
        if st.lost || st.overdue() {
            st.lost = true;
            return Err(lost(&st.name));
        }
        match self.store.read(&st.name, None) {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                st.lost = true;
                return Err(lost(&st.name));
            }
            Err(e) => return Err(e.into()),
        }
        let (name, record) = write_lock(
            self.store.as_ref(),
            &self.keys,
            st.record.kind,
            &st.record.command,
            Some(&st.record),
        )?;
        match self.store.delete(&st.name) {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => {
                let _ = self.store.delete(&name);
                st.lost = true;
                return Err(lost(&st.name));
            }
            Err(e) => log::warn!("could not remove the previous lock object: {e}"),
        }
        *st = HeldState {
            name,
            record,
            written: Instant::now(),
            written_wall: std::time::SystemTime::now(),
            lost: false,
        };
        Ok(())
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let name = self.state.state.lock().map(|st| st.name.clone());
        if let Ok(name) = name {
            let _ = self.state.store.delete(&name);
        }
    }
}

#[cfg(test)]
mod tests;
