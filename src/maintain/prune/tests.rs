use super::*;
use crate::backup::{self, BackupOptions, progress::Progress};
use crate::format::point::PointRecord;
use crate::maintain::check::check;
use crate::store::faulty::DieAfterWrites;
use crate::store::{MemoryStore, Store};
use std::path::Path;

const OPTS: PruneOptions = PruneOptions {
    repack_over: 0.2,
    dry_run: false,
};

fn backup(v: &Arc<Vault>, src: &Path) -> PointRecord {
    let opts = BackupOptions {
        read_threads: 2,
        ..BackupOptions::files(vec![src.to_path_buf()], "h")
    };
    backup::run(v.clone(), &opts, &Progress::default()).unwrap()
}

use crate::util::noise;

/// The content of `src/name` in `point`.
fn read(v: &Arc<Vault>, point: &PointRecord, src: &Path, name: &str) -> Vec<u8> {
    let view = View::new(v.clone());
    let crate::view::Entry::Node(node) = view.resolve(point, &src.join(name)).unwrap() else {
        panic!("{name} is not a file")
    };
    let mut out = Vec::new();
    view.write_content(&node, &mut out).unwrap();
    out
}

/// Puts `point` in the recycle bin with its window already over.
fn forget_now(v: &Vault, point: &PointRecord) {
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1);
    v.soft_delete(point.id, past, "test").unwrap();
    let mut s = v.settings().unwrap();
    if s.soft_delete != crate::span::CalSpan::default() {
        let current = s.clone();
        s.soft_delete = crate::span::CalSpan::default();
        v.save_settings(&current, s).unwrap();
    }
}

/// A vault in memory (1 MiB packs) with two points of one directory: the first holds 40 small files and a 3 MiB
/// file that the second no longer has; both share `keep` and the second adds `new`.
struct Scene {
    _tmp: tempfile::TempDir,
    src: std::path::PathBuf,
    store: MemoryStore,
    first: PointRecord,
    second: PointRecord,
}

fn scene() -> Scene {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..40 {
        std::fs::write(src.join(format!("small{i}")), noise(10_000, i + 1)).unwrap();
    }
    std::fs::write(src.join("big"), noise(3 << 20, 99)).unwrap();
    std::fs::write(src.join("keep"), noise(100_000, 7)).unwrap();
    let (store, v) = crate::vault::test_vault(1 << 20);
    let first = backup(&v, &src);
    for i in 4..40 {
        std::fs::remove_file(src.join(format!("small{i}"))).unwrap();
    }
    std::fs::remove_file(src.join("big")).unwrap();
    std::fs::write(src.join("new"), noise(50_000, 8)).unwrap();
    let second = backup(&v, &src);
    forget_now(&v, &first);
    Scene {
        _tmp: tmp,
        src,
        store,
        first,
        second,
    }
}

fn open(store: Arc<dyn Store>) -> Arc<Vault> {
    Arc::new(Vault::open(store, b"pw").unwrap())
}

/// The second point reads back whole and `check` finds the vault healthy.
fn assert_second_intact(v: &Arc<Vault>, s: &Scene) {
    let report = check(v.clone(), true).unwrap();
    assert!(report.healthy(), "{report:?}");
    assert_eq!(read(v, &s.second, &s.src, "keep"), noise(100_000, 7));
    assert_eq!(read(v, &s.second, &s.src, "new"), noise(50_000, 8));
    for i in 0..4 {
        assert_eq!(read(v, &s.second, &s.src, &format!("small{i}")), noise(10_000, i + 1));
    }
}

fn data_bytes(store: &MemoryStore) -> u64 {
    store.list("data/").unwrap().iter().map(|o| o.size).sum()
}

#[test]
fn prune_frees_exactly_what_no_remaining_point_uses() {
    let s = scene();
    let v = open(Arc::new(s.store.clone()));
    let before = data_bytes(&s.store);
    let dry = prune(&v, PruneOptions { dry_run: true, ..OPTS }).unwrap();
    assert_eq!(data_bytes(&s.store), before, "a dry run deletes nothing");
    let r = prune(&v, OPTS).unwrap();
    assert_eq!(r.points_purged, 1);
    assert_eq!(
        (dry.bytes_deleted, dry.packs_repacked),
        (r.bytes_deleted, r.packs_repacked)
    );
    assert!(
        r.packs_repacked >= 1,
        "the pack of the small files is mostly unused: {r:?}"
    );
    assert_eq!(r.bytes_after, data_bytes(&s.store), "{r:?}");
    assert_eq!(before - r.bytes_freed(), data_bytes(&s.store));
    // What is left: the used blobs, sealed, plus pack headers: well under the 3 MiB file that went.
    let used_plain = 4 * 10_000 + 100_000 + 50_000;
    assert!(
        data_bytes(&s.store) < used_plain + 200_000,
        "{} left",
        data_bytes(&s.store)
    );
    assert!(r.bytes_freed() > 3 << 20, "{r:?}");
    assert!(s.store.list("points/").unwrap().len() == 1 && s.store.list("deleted/").unwrap().is_empty());
    let reopened = open(Arc::new(s.store.clone()));
    assert_second_intact(&reopened, &s);
    let again = prune(&reopened, OPTS).unwrap();
    assert_eq!(
        (again.bytes_deleted, again.packs_written),
        (0, 0),
        "a second prune finds nothing: {again:?}"
    );
}

#[test]
fn points_inside_their_window_keep_their_data() {
    let s = scene();
    let v = open(Arc::new(s.store.clone()));
    v.undelete(&s.first.id).unwrap();
    v.soft_delete(
        s.first.id,
        jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24),
        "test",
    )
    .unwrap();
    let r = prune(&v, OPTS).unwrap();
    assert_eq!(r.points_purged, 0);
    assert_eq!(r.bytes_deleted, 0, "{r:?}");
    v.undelete(&s.first.id).unwrap();
    assert_eq!(read(&v, &s.first, &s.src, "big"), noise(3 << 20, 99));
}

#[test]
fn a_missing_blob_stops_prune_before_it_deletes_anything() {
    let s = scene();
    let v = open(Arc::new(s.store.clone()));
    let keep_chunk = {
        let view = View::new(v.clone());
        let crate::view::Entry::Node(n) = view.resolve(&s.second, &s.src.join("keep")).unwrap() else {
            panic!()
        };
        n.content[0].chunk.unwrap().0
    };
    let pack = v.index().pack(v.index().get(&keep_chunk).unwrap().pack).id;
    s.store.delete(&pack_name(&pack)).unwrap();
    let objects = s.store.list("").unwrap().len();
    let err = prune(&v, OPTS).unwrap_err().to_string();
    assert!(err.contains("in no pack") && err.contains("deletes nothing"), "{err}");
    assert_eq!(s.store.list("").unwrap().len(), objects);
}

#[test]
fn prune_killed_at_any_write_leaves_a_healthy_vault_that_the_next_prune_finishes() {
    let s = scene();
    let counting = Arc::new(DieAfterWrites::new(s.store.deep_copy(), i64::MAX));
    prune(&open(counting.clone()), OPTS).unwrap();
    let writes = counting.writes();
    assert!(writes > 5, "{writes}");
    for k in 0..writes {
        let copy = s.store.deep_copy();
        let dying = Arc::new(DieAfterWrites::new(copy.clone(), k));
        assert!(
            prune(&open(dying.clone()), OPTS).is_err(),
            "prune should fail at write {k}"
        );
        assert!(dying.died());
        let v = open(Arc::new(copy.clone()));
        assert_second_intact(&v, &s);
        prune(&v, OPTS).unwrap();
        let v = open(Arc::new(copy));
        assert_second_intact(&v, &s);
        assert!(
            v.load_all_points().unwrap().len() == 1,
            "write {k}: the first point is purged in the end"
        );
    }
}
