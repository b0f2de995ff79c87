use super::*;
use crate::vault::test_vault;

const NO_WAIT: Duration = Duration::ZERO;

/// Stores a lock record as another process would have written it.
fn plant(vault: &Vault, kind: LockKind, host: &str, pid: u32, refreshed: Timestamp) -> String {
    let record = LockRecord {
        version: LOCK_VERSION,
        kind,
        host: host.into(),
        machine: if host == crate::util::hostname() {
            this_machine().into()
        } else {
            "elsewhere".into()
        },
        pid,
        command: "backup".into(),
        by: "someone@elsewhere".into(),
        created: crate::util::format_time(refreshed),
        refreshed: crate::util::format_time(refreshed),
    };
    let id: [u8; 32] = crate::format::ids::random_bytes();
    vault
        .store()
        .create(&lock_name(&id), &record.encode(&id, vault.keys()))
        .unwrap();
    lock_name(&id)
}

fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn shared_locks_coexist_and_exclude_an_exclusive_one() {
    let (_, vault) = test_vault(1 << 20);
    let a = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap();
    let b = vault.lock(LockKind::Shared, "mount", NO_WAIT).unwrap();
    let err = vault
        .lock(LockKind::Exclusive, "prune", NO_WAIT)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("in use: shared lock of") && err.contains("coffer unlock"),
        "{err}"
    );
    assert_eq!(
        vault.locks().unwrap().len(),
        2,
        "a refused lock leaves no object behind"
    );
    drop((a, b));
    assert!(vault.locks().unwrap().is_empty(), "dropping a guard removes its lock");
    let x = vault.lock(LockKind::Exclusive, "prune", NO_WAIT).unwrap();
    let err = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap_err().to_string();
    assert!(err.contains("exclusive lock of prune"), "{err}");
    x.check_held().unwrap();
}

#[test]
fn a_waiting_lock_gets_in_once_the_holder_leaves() {
    let (_, vault) = test_vault(1 << 20);
    let held = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        drop(held);
    });
    let start = Instant::now();
    let x = vault
        .lock(LockKind::Exclusive, "prune", Duration::from_secs(20))
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(250));
    releaser.join().unwrap();
    drop(x);
}

#[test]
fn stale_locks_are_ignored_and_unlock_removes_only_them() {
    let (_, vault) = test_vault(1 << 20);
    let now = Timestamp::now();
    let here = crate::util::hostname();
    let dead = plant(&vault, LockKind::Exclusive, &here, dead_pid(), now);
    let old = plant(
        &vault,
        LockKind::Exclusive,
        "otherhost",
        1,
        now - jiff::SignedDuration::from_hours(1),
    );
    let live = plant(&vault, LockKind::Shared, "otherhost", 1, now);
    let stale: Vec<String> = vault
        .locks()
        .unwrap()
        .into_iter()
        .filter(|l| l.stale)
        .map(|l| l.name)
        .collect();
    assert_eq!(stale.len(), 2);
    assert!(stale.contains(&dead) && stale.contains(&old));
    // The stale exclusive locks do not block a shared lock; the live shared one blocks an exclusive one.
    drop(vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap());
    assert!(vault.lock(LockKind::Exclusive, "prune", NO_WAIT).is_err());
    let removed: Vec<String> = vault.unlock(false).unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(removed.len(), 2);
    let left: Vec<String> = vault.locks().unwrap().into_iter().map(|l| l.name).collect();
    assert_eq!(left, vec![live]);
    vault.unlock(true).unwrap();
    assert!(vault.locks().unwrap().is_empty());
}

#[test]
fn a_lock_removed_by_hand_is_noticed_before_committing() {
    let (_, vault) = test_vault(1 << 20);
    let g = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap();
    g.check_held().unwrap();
    g.state.refresh().unwrap();
    assert_eq!(vault.locks().unwrap().len(), 1, "a refresh replaces the lock object");
    g.check_held().unwrap();
    vault.unlock(true).unwrap();
    // The next refresh must not bring the lock back: a prune may have run in the gap.
    assert!(g.state.refresh().is_err());
    assert!(vault.locks().unwrap().is_empty(), "a lost lock is not written again");
    let err = g.check_held().unwrap_err().to_string();
    assert!(err.contains("lost its vault lock"), "{err}");
}

#[test]
fn a_removed_lock_is_noticed_where_deleting_nothing_succeeds() {
    let (store, _) = test_vault(1 << 20);
    let vault = Vault::open(Arc::new(crate::store::faulty::LaxDelete(store)), b"pw").unwrap();
    let g = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap();
    g.state.refresh().unwrap();
    vault.unlock(true).unwrap();
    assert!(
        g.state.refresh().is_err(),
        "the removal is seen before a new lock is written"
    );
    assert!(vault.locks().unwrap().is_empty(), "a lost lock is not written again");
}

#[test]
fn a_holder_that_slept_past_its_refresh_counts_its_lock_as_lost() {
    let (_, vault) = test_vault(1 << 20);
    let g = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap();
    g.state.state.lock().unwrap().written_wall -= Duration::from_secs(16 * 60);
    assert!(
        g.check_held().is_err(),
        "16 minutes without a refresh: others may already ignore it"
    );
    assert!(g.state.refresh().is_err());
}

/// Runs a hook (once) right after `locks/` is listed, before the listed objects are read.
struct HookAfterList {
    inner: crate::store::MemoryStore,
    hook: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Store for HookAfterList {
    fn list(&self, prefix: &str) -> Result<Vec<crate::store::ObjectInfo>, StoreError> {
        let listed = self.inner.list(prefix);
        if prefix == "locks/"
            && let Some(hook) = self.hook.lock().unwrap().take()
        {
            hook();
        }
        listed
    }
    fn read(&self, name: &str, range: Option<std::ops::Range<u64>>) -> Result<Vec<u8>, StoreError> {
        self.inner.read(name, range)
    }
    fn create(&self, name: &str, data: &[u8]) -> Result<(), StoreError> {
        self.inner.create(name, data)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[test]
fn a_lock_refreshed_between_listing_and_reading_still_counts() {
    let (store, vault) = test_vault(1 << 20);
    let g = vault.lock(LockKind::Shared, "backup", NO_WAIT).unwrap();
    let held = g.state.clone();
    let hooked = HookAfterList {
        inner: store,
        hook: Mutex::new(Some(Box::new(move || held.refresh().unwrap()))),
    };
    let other = Vault::open(Arc::new(hooked), b"pw").unwrap();
    let err = other
        .lock(LockKind::Exclusive, "prune", NO_WAIT)
        .unwrap_err()
        .to_string();
    assert!(err.contains("shared lock of backup"), "{err}");
    g.check_held().unwrap();
}
