//! Stats of real backups into an in-memory vault, checked against the sizes of the files and of their sealed chunks.

use super::*;
use crate::backup::{self, BackupOptions, progress::Progress, stream::StreamSource};
use crate::vault::Vault;
use crate::view::Entry;
use std::path::Path;
use std::sync::Arc;

const A: usize = 600 << 10;
const B: usize = 300 << 10;
const C: usize = 200 << 10;

/// `n` incompressible bytes, one sequence per seed.
fn random(seed: u64, n: usize) -> Vec<u8> {
    crate::util::noise(n, seed)
}

fn back_up(v: &Arc<Vault>, src: &Path, host: &str) -> PointRecord {
    let opts = BackupOptions {
        read_threads: 2,
        ..BackupOptions::files(vec![src.to_path_buf()], host)
    };
    backup::run(v.clone(), &opts, &Progress::default()).unwrap()
}

/// Sealed bytes of the chunks of the file at `path` in `point`.
fn sealed_size(view: &View, point: &PointRecord, path: &Path) -> u64 {
    let Entry::Node(node) = view.resolve(point, path).unwrap() else {
        panic!("{} is not a file", path.display())
    };
    let index = view.vault().index();
    let chunks = node.content.iter().filter_map(|p| p.chunk);
    chunks.map(|c| index.get(&c.0).unwrap().length as u64).sum()
}

/// Sizes of all packs in the store (`data/**`).
fn pack_bytes(v: &Vault) -> u64 {
    v.store().list("data/").unwrap().iter().map(|o| o.size).sum()
}

/// `dir/src1` holds files a (A bytes) and b (B), `dir/src2` holds the same a and c (C).
fn two_sources(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (src1, src2) = (dir.join("src1"), dir.join("src2"));
    for (src, other, seed, size) in [(&src1, "b", 2, B), (&src2, "c", 3, C)] {
        std::fs::create_dir(src).unwrap();
        std::fs::write(src.join("a"), random(1, A)).unwrap();
        std::fs::write(src.join(other), random(seed, size)).unwrap();
    }
    (src1, src2)
}

#[test]
fn two_sources_sharing_a_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (src1, src2) = two_sources(tmp.path());
    let (_store, v) = crate::vault::test_vault(32 << 20);
    let p1 = back_up(&v, &src1, "h1");
    let p2 = back_up(&v, &src2, "h2");
    let view = View::new(v.clone());
    let s = stats(&view, None).unwrap();
    let (a, b, c) = (
        sealed_size(&view, &p1, &src1.join("a")),
        sealed_size(&view, &p1, &src1.join("b")),
        sealed_size(&view, &p2, &src2.join("c")),
    );
    assert!(
        a > A as u64 && b > B as u64,
        "sealing adds bytes to random data: {a} {b}"
    );

    assert_eq!(s.sources.len(), 2);
    let (s1, s2) = (&s.sources[0], &s.sources[1]);
    assert_eq!((s1.host.as_str(), s2.host.as_str()), ("h1", "h2"));
    assert_eq!(s1.sources, vec![src1.to_str().unwrap().to_string()]);
    assert_eq!(
        (s1.points, s1.oldest.as_str(), s1.newest.as_str()),
        (1, p1.time.as_str(), p1.time.as_str())
    );
    assert_eq!(s1.protected_bytes, (A + B) as u64);
    assert_eq!(s2.protected_bytes, (A + C) as u64);
    assert_eq!(s1.logical_bytes, s1.protected_bytes);
    // Shared: exactly the chunks of a. Unique: the other file's chunks plus the point's own trees (a few small ones).
    assert_eq!((s1.stored.shared_stored_bytes, s2.stored.shared_stored_bytes), (a, a));
    let trees1 = s1.stored.unique_stored_bytes - b;
    let trees2 = s2.stored.unique_stored_bytes - c;
    assert!(
        trees1 > 0 && trees1 < 8192 && trees2 > 0 && trees2 < 8192,
        "{trees1} {trees2}"
    );
    let fair = s1.stored.unique_stored_bytes + a / 2;
    assert!(s1.stored.attributed_stored_bytes.abs_diff(fair) <= 1, "{s1:?}");
    assert_eq!(s.recycle_bin.points, 0);
    assert_eq!(s.recycle_bin.stored, Stored::default());

    let t = &s.totals;
    assert_eq!((t.points, t.sources, t.missing_blobs), (2, 2, 0));
    assert_eq!(t.logical_bytes, (2 * A + B + C) as u64);
    assert_eq!(t.stored_bytes, pack_bytes(&v));
    assert_eq!(t.used_stored_bytes, a + b + c + trees1 + trees2);
    assert_eq!(t.unused_stored_bytes, t.stored_bytes - t.used_stored_bytes);
    assert!(
        t.unused_stored_bytes < 4096,
        "only pack headers: {}",
        t.unused_stored_bytes
    );
    assert_eq!(t.data_raw_bytes, (A + B + C) as u64);
    assert_eq!(t.dedup_ratio, Some((2 * A + B + C) as f64 / (A + B + C) as f64));
    let compression = t.compression_ratio.unwrap();
    assert!((0.99..1.01).contains(&compression), "{compression}");
}

#[test]
fn prices_split_shared_blobs_between_their_owners() {
    let tmp = tempfile::tempdir().unwrap();
    let (src1, src2) = two_sources(tmp.path());
    let (_store, v) = crate::vault::test_vault(32 << 20);
    back_up(&v, &src1, "h1");
    back_up(&v, &src2, "h2");
    let mut s = stats(&View::new(v.clone()), None).unwrap();
    s.set_price(0.02).unwrap();
    let attributed: u64 = s.sources.iter().map(|x| x.stored.attributed_stored_bytes).sum();
    assert!(attributed.abs_diff(s.totals.used_stored_bytes) <= 1);
    for x in &s.sources {
        let expected = x.stored.attributed_stored_bytes as f64 * 0.02 / (1u64 << 30) as f64;
        assert_eq!(x.stored.monthly_cost, Some(expected));
    }
    assert_eq!(s.recycle_bin.stored.monthly_cost, Some(0.0));
    assert_eq!(
        s.totals.monthly_cost,
        Some(s.totals.stored_bytes as f64 * 0.02 / (1u64 << 30) as f64)
    );
    assert_eq!(s.totals.price_per_gib_month, Some(0.02));
    assert!(matches!(s.set_price(-1.0), Err(StatsError::Price(_))));
    assert!(matches!(s.set_price(f64::NAN), Err(StatsError::Price(_))));
    assert_eq!(parse_price(" 0.5 ").unwrap(), 0.5);
    assert_eq!(parse_price("0").unwrap(), 0.0);
    for bad in ["-0.01", "abc", "", "inf", "NaN"] {
        assert!(parse_price(bad).is_err(), "{bad}");
    }
}

#[test]
fn recycle_bin_owns_what_only_its_points_use() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a"), random(1, A)).unwrap();
    std::fs::write(src.join("c"), random(3, C)).unwrap();
    let (_store, v) = crate::vault::test_vault(32 << 20);
    let old = back_up(&v, &src, "h");
    let view = View::new(v.clone());
    let (a, c) = (
        sealed_size(&view, &old, &src.join("a")),
        sealed_size(&view, &old, &src.join("c")),
    );
    std::fs::write(src.join("c"), random(4, C)).unwrap();
    let new = back_up(&v, &src, "h");
    let c2 = sealed_size(&view, &new, &src.join("c"));
    let before = stats(&view, None).unwrap();
    v.soft_delete(old.id, jiff::Timestamp::now(), "test").unwrap();
    let s = stats(&view, None).unwrap();

    let (src_stats, bin) = (&s.sources[0], &s.recycle_bin);
    assert_eq!((before.sources[0].points, src_stats.points, bin.points), (2, 1, 1));
    assert_eq!(
        (src_stats.oldest.as_str(), src_stats.newest.as_str()),
        (new.time.as_str(), new.time.as_str())
    );
    assert_eq!(before.sources[0].oldest, old.time);
    assert_eq!(src_stats.protected_bytes, (A + C) as u64);
    assert_eq!(before.sources[0].logical_bytes, 2 * (A + C) as u64);
    assert_eq!(src_stats.logical_bytes, (A + C) as u64);
    // The old c (and the old point's own trees) now belong to the recycle bin alone; a is shared with it.
    let bin_trees = bin.stored.unique_stored_bytes - c;
    assert!(bin_trees > 0 && bin_trees < 8192, "{bin_trees}");
    assert_eq!(
        (bin.stored.shared_stored_bytes, src_stats.stored.shared_stored_bytes),
        (a, a)
    );
    assert!(src_stats.stored.unique_stored_bytes - c2 < 8192);
    assert_eq!(s.totals.used_stored_bytes, before.totals.used_stored_bytes);
    assert_eq!(s.totals.data_raw_bytes, (A + C) as u64, "the old c is not live data");
    assert_eq!(before.totals.data_raw_bytes, (A + 2 * C) as u64);
    assert_eq!(s.totals.logical_bytes, (A + C) as u64);
}

#[test]
fn host_filter_narrows_sources_only() {
    let tmp = tempfile::tempdir().unwrap();
    let (src1, src2) = two_sources(tmp.path());
    let (_store, v) = crate::vault::test_vault(32 << 20);
    back_up(&v, &src1, "h1");
    back_up(&v, &src2, "h2");
    let view = View::new(v.clone());
    let all = stats(&view, None).unwrap();
    let h2 = stats(&view, Some("h2")).unwrap();
    assert_eq!(h2.sources.len(), 1);
    assert_eq!(h2.sources[0].host, "h2");
    assert_eq!(
        h2.sources[0].stored, all.sources[1].stored,
        "sharing with h1 still counts"
    );
    assert_eq!(h2.totals.stored_bytes, all.totals.stored_bytes);
    assert_eq!(h2.totals.sources, 2);
    let err = stats(&view, Some("h3")).unwrap_err();
    assert_eq!(err.to_string(), "no recovery point of host 'h3'");
}

#[test]
fn streams_count_as_protected_data_and_compress() {
    let (_store, v) = crate::vault::test_vault(32 << 20);
    let opts = BackupOptions {
        stream: Some(StreamSource {
            name: "db.sql".into(),
            command: Some("yes 'INSERT INTO t VALUES (1);' | head -c 500000".into()),
        }),
        ..BackupOptions::files(vec![], "db")
    };
    backup::run(v.clone(), &opts, &Progress::default()).unwrap();
    let s = stats(&View::new(v), None).unwrap();
    assert_eq!(s.sources[0].sources, vec!["stream:db.sql".to_string()]);
    assert_eq!(s.sources[0].protected_bytes, 500_000);
    assert_eq!(s.totals.data_raw_bytes, 500_000);
    assert!(s.totals.compression_ratio.unwrap() > 50.0, "{:?}", s.totals);
}

#[test]
fn an_empty_vault_has_no_ratios() {
    let (_store, v) = crate::vault::test_vault(32 << 20);
    let mut s = stats(&View::new(v), None).unwrap();
    assert!(s.sources.is_empty());
    assert_eq!(
        (s.totals.points, s.totals.stored_bytes, s.totals.logical_bytes),
        (0, 0, 0)
    );
    assert_eq!((s.totals.dedup_ratio, s.totals.compression_ratio), (None, None));
    s.set_price(0.02).unwrap();
    assert_eq!(s.totals.monthly_cost, Some(0.0));
    let json = serde_json::to_value(&s).unwrap();
    assert_eq!(json["totals"]["dedup_ratio"], serde_json::Value::Null);
    assert_eq!(json["recycle_bin"]["unique_stored_bytes"], 0);
}
