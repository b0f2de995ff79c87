use super::*;
use crate::backup::{self, BackupOptions, progress::Progress};
use crate::maintain::check::check;
use crate::store::MemoryStore;
use crate::store::faulty::Flaky;
use crate::vault::{InitOptions, Vault};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

const FILES: u64 = 100;

const QUICK: RetryPolicy = RetryPolicy {
    attempts: 6,
    first_wait: Duration::from_millis(1),
    max_wait: Duration::from_millis(5),
};

/// An initialised vault in `store` (written without faults), and a source tree of a few hundred KiB.
fn setup(store: &MemoryStore) -> tempfile::TempDir {
    let opts = InitOptions {
        kdf: crate::crypto::KdfParams::FAST_FOR_TESTS,
        pack_size: 64 * 1024,
        ..Default::default()
    };
    Vault::init(Arc::new(store.clone()), b"pw", &opts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for i in 0..FILES {
        let data = crate::util::noise((i * 1500 + 10) as usize, i + 1);
        std::fs::write(dir.path().join(format!("f{i}")), data).unwrap();
    }
    dir
}

fn backup_through(store: Arc<dyn Store>, src: &std::path::Path) -> Result<(), String> {
    let vault = Vault::open(store, b"pw").map_err(|e| e.to_string())?;
    let opts = BackupOptions {
        read_threads: 2,
        ..BackupOptions::files(vec![src.to_path_buf()], "h")
    };
    backup::run(Arc::new(vault), &opts, &Progress::default())
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The vault, read without faults: healthy, and every point's files equal the source.
fn assert_whole(store: &MemoryStore, src: &std::path::Path) -> usize {
    let vault = Arc::new(Vault::open(Arc::new(store.clone()), b"pw").unwrap());
    let report = check(vault.clone(), true).unwrap();
    assert!(report.healthy(), "{report:?}");
    let view = crate::view::View::new(vault.clone());
    let points = vault.load_points().unwrap();
    for p in &points {
        for i in 0..FILES {
            let path = src.join(format!("f{i}"));
            let crate::view::Entry::Node(n) = view.resolve(p, &path).unwrap() else {
                panic!()
            };
            let mut out = Vec::new();
            view.write_content(&n, &mut out).unwrap();
            assert_eq!(out, std::fs::read(&path).unwrap());
        }
    }
    points.len()
}

#[test]
fn backups_through_a_flaky_store_retry_and_finish() {
    for every in [3, 5, 7] {
        let store = MemoryStore::new();
        let src = setup(&store);
        let flaky = Arc::new(Flaky::new(store.clone(), every));
        let retrying = Retrying::new(flaky.clone(), QUICK);
        backup_through(Arc::new(retrying), src.path()).unwrap();
        assert!(
            flaky.faults.load(SeqCst) >= 4,
            "every {every}: all four kinds of fault were injected"
        );
        assert_eq!(assert_whole(&store, src.path()), 1);
    }
}

#[test]
fn without_retries_a_flaky_store_fails_the_backup_cleanly() {
    let store = MemoryStore::new();
    let src = setup(&store);
    let once = RetryPolicy { attempts: 1, ..QUICK };
    let err = backup_through(Arc::new(Retrying::new(Flaky::new(store.clone(), 4), once)), src.path()).unwrap_err();
    assert!(err.contains("injected fault"), "{err}");
    assert_eq!(
        assert_whole(&store, src.path()),
        0,
        "no point whose data may be missing"
    );
}

#[test]
fn a_create_that_landed_before_its_answer_was_lost_succeeds() {
    let store = MemoryStore::new();
    // Every third request faults, in turn: refused (3), timed out (6), landed then failed (9), truncated (12).
    let flaky = Flaky::new(store.clone(), 3);
    for _ in 0..8 {
        let _ = flaky.list("");
    }
    let r = Retrying::new(flaky, QUICK);
    r.create("points/x", b"record").unwrap();
    assert_eq!(store.read("points/x", None).unwrap(), b"record");
    // Request 12 truncates this ranged read; the retry reads it whole.
    assert_eq!(r.read("points/x", Some(1..4)).unwrap(), b"eco");
    let other = Retrying::new(Flaky::new(store.clone(), 2), QUICK);
    assert!(matches!(
        other.create("points/x", b"different"),
        Err(StoreError::AlreadyExists(_))
    ));
}

#[test]
fn the_retrying_store_conforms() {
    crate::store::conformance(&Retrying::new(MemoryStore::new(), QUICK));
}
