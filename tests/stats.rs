//! `coffer stats` through the real binary, checked against files of known sizes: random (incompressible) files, one of
//! them in two sources, so every figure can be worked out from the sizes alone.

mod common;

use common::Rng;
use common::run::{Coffer, json};
use serde_json::Value;
use std::path::{Path, PathBuf};

const MIB: u64 = 1 << 20;
const GIB: f64 = (1u64 << 30) as f64;
/// Sealing adds a few dozen bytes per chunk, and each point has a handful of small trees of its own.
const SLACK: u64 = 16 << 10;

fn write_random(path: &Path, seed: u64, size: u64) {
    std::fs::write(path, Rng::new(seed).bytes(size as usize)).unwrap();
}

/// A vault with two points: host h1 backs up `src1` (a: 3 MiB, b: 2 MiB), host h2 backs up `src2` (the same a, and
/// c: 1 MiB).
fn two_sources() -> (tempfile::TempDir, Coffer, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let (src1, src2) = (tmp.path().join("src1"), tmp.path().join("src2"));
    std::fs::create_dir(&src1).unwrap();
    std::fs::create_dir(&src2).unwrap();
    write_random(&src1.join("a"), 1, 3 * MIB);
    write_random(&src2.join("a"), 1, 3 * MIB);
    write_random(&src1.join("b"), 2, 2 * MIB);
    write_random(&src2.join("c"), 3, MIB);
    c.ok(&["backup", "--host", "h1", src1.to_str().unwrap()]);
    c.ok(&["backup", "--host", "h2", src2.to_str().unwrap()]);
    (tmp, c, src1, src2)
}

fn stats(c: &Coffer, extra: &[&str]) -> Value {
    let mut args = vec!["stats", "--json"];
    args.extend(extra);
    json(&c.ok(&args))
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `value` is at least `at_least` and at most `SLACK` more.
fn about(value: &Value, at_least: u64) {
    let v = n(value);
    assert!(
        (at_least..at_least + SLACK).contains(&v),
        "{v} is not {at_least} + less than {SLACK}"
    );
}

/// Sizes of all files under `dir`, recursively.
fn du(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| match e.file_type().unwrap().is_dir() {
            true => du(&e.path()),
            false => e.metadata().unwrap().len(),
        })
        .sum()
}

/// Times of the points `list` shows, oldest first.
fn point_times(c: &Coffer) -> Vec<String> {
    let list = json(&c.ok(&["list", "--json"]));
    list.as_array()
        .unwrap()
        .iter()
        .map(|p| p["time"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn stats_match_known_data() {
    let (_tmp, c, src1, src2) = two_sources();
    let s = stats(&c, &[]);
    let times = point_times(&c);
    let (s1, s2) = (&s["sources"][0], &s["sources"][1]);
    assert_eq!(s["sources"].as_array().unwrap().len(), 2, "{s}");
    assert_eq!((s1["host"].as_str(), s2["host"].as_str()), (Some("h1"), Some("h2")));
    assert_eq!(s1["sources"], serde_json::json!([src1.to_str().unwrap()]));
    assert_eq!(s2["sources"], serde_json::json!([src2.to_str().unwrap()]));
    assert_eq!((n(&s1["points"]), n(&s2["points"])), (1, 1));
    assert_eq!(
        (s1["oldest"].as_str().unwrap(), s1["newest"].as_str().unwrap()),
        (&*times[0], &*times[0])
    );
    assert_eq!(s2["newest"].as_str().unwrap(), times[1]);
    assert_eq!(
        (n(&s1["protected_bytes"]), n(&s2["protected_bytes"])),
        (5 * MIB, 4 * MIB)
    );
    about(&s1["unique_stored_bytes"], 2 * MIB);
    about(&s2["unique_stored_bytes"], MIB);
    about(&s1["shared_stored_bytes"], 3 * MIB);
    assert_eq!(s1["shared_stored_bytes"], s2["shared_stored_bytes"]);
    assert_eq!(s["recycle_bin"]["points"], 0);

    let t = &s["totals"];
    assert_eq!(
        n(&t["stored_bytes"]),
        du(&c.vault.join("data")),
        "stored is what the packs take on disk"
    );
    assert_eq!(n(&t["logical_bytes"]), 9 * MIB);
    assert_eq!(n(&t["data_raw_bytes"]), 6 * MIB);
    let dedup = f(&t["dedup_ratio"]);
    assert!((dedup / 1.5 - 1.0).abs() < 0.01, "(3+2+3+1)/(3+2+1) = 1.5, not {dedup}");
    let compression = f(&t["compression_ratio"]);
    assert!(
        (0.99..=1.01).contains(&compression),
        "random data does not compress: {compression}"
    );
    let used = n(&s1["unique_stored_bytes"]) + n(&s2["unique_stored_bytes"]) + n(&s1["shared_stored_bytes"]);
    assert_eq!(n(&t["used_stored_bytes"]), used);
    assert_eq!(n(&t["unused_stored_bytes"]), n(&t["stored_bytes"]) - used);

    let text = c.ok(&["stats"]);
    let line1 = text.lines().find(|l| l.starts_with("h1 ")).unwrap();
    assert!(
        line1.contains(src1.to_str().unwrap()) && line1.contains("5.0 MiB"),
        "{text}"
    );
    assert!(line1.contains("2.0 MiB") && line1.contains("3.0 MiB"), "{text}");
    assert!(text.contains("recycle bin: 0 points"), "{text}");
    assert!(text.contains("vault: 2 points of 2 sources"), "{text}");
    assert!(text.contains("deduplication        1.50x"), "{text}");
    assert!(!text.contains("cost"), "no price, no cost: {text}");
}

#[test]
fn price_per_gib_month_splits_shared_bytes_fairly() {
    let (_tmp, c, _, _) = two_sources();
    let s = stats(&c, &["--price-per-gib-month", "0.02"]);
    let mut attributed = 0;
    for src in s["sources"].as_array().unwrap() {
        let fair = n(&src["unique_stored_bytes"]) + n(&src["shared_stored_bytes"]) / 2;
        assert!(n(&src["attributed_stored_bytes"]).abs_diff(fair) <= 1, "{src}");
        let expected = n(&src["attributed_stored_bytes"]) as f64 * 0.02 / GIB;
        assert!((f(&src["monthly_cost"]) - expected).abs() < 1e-12, "{src}");
        attributed += n(&src["attributed_stored_bytes"]);
    }
    let t = &s["totals"];
    assert!(attributed.abs_diff(n(&t["used_stored_bytes"])) <= 1);
    assert_eq!(f(&t["price_per_gib_month"]), 0.02);
    assert!((f(&t["monthly_cost"]) - n(&t["stored_bytes"]) as f64 * 0.02 / GIB).abs() < 1e-12);

    // At 1000 per GiB the two decimals printed are worth checking.
    let text = c.ok(&["stats", "--price-per-gib-month", "1000"]);
    let s = stats(&c, &["--price-per-gib-month", "1000"]);
    let total = format!("monthly cost    {:>10.2}", f(&s["totals"]["monthly_cost"]));
    assert!(text.contains(&total) && text.contains("cost/month"), "{total}\n{text}");
    let h1 = format!("{:>12.2}", f(&s["sources"][0]["monthly_cost"]));
    assert!(
        text.lines().any(|l| l.starts_with("h1 ") && l.ends_with(&h1)),
        "{h1}\n{text}"
    );
}

#[test]
fn forgotten_point_moves_its_bytes_to_the_recycle_bin() {
    let (_tmp, c, _, src2) = two_sources();
    write_random(&src2.join("c"), 4, MIB);
    c.ok(&["backup", "--host", "h2", src2.to_str().unwrap()]);
    let before = stats(&c, &[]);
    assert_eq!(before["sources"][1]["points"], 2);
    about(&before["sources"][1]["unique_stored_bytes"], 2 * MIB);

    c.ok(&["forget", "--keep-last", "1", "--host", "h2"]);
    let s = stats(&c, &["--price-per-gib-month", "0.02"]);
    let (h2, bin) = (&s["sources"][1], &s["recycle_bin"]);
    let newest = point_times(&c).pop().unwrap();
    assert_eq!((n(&h2["points"]), h2["oldest"].as_str().unwrap()), (1, &*newest));
    assert_eq!(n(&h2["protected_bytes"]), 4 * MIB);
    about(&h2["unique_stored_bytes"], MIB);
    assert_eq!(n(&bin["points"]), 1);
    about(&bin["unique_stored_bytes"], MIB);
    assert_eq!(
        bin["shared_stored_bytes"], h2["shared_stored_bytes"],
        "the file a, shared by all three"
    );
    assert!(f(&bin["monthly_cost"]) > 0.0);
    let t = &s["totals"];
    assert_eq!(
        t["used_stored_bytes"], before["totals"]["used_stored_bytes"],
        "nothing is freed yet"
    );
    assert_eq!(n(&t["logical_bytes"]), 9 * MIB);
    assert_eq!((n(&t["points"]), n(&t["data_raw_bytes"])), (2, 6 * MIB));
    let text = c.ok(&["stats"]);
    assert!(text.contains("recycle bin: 1 point, 1.0 MiB only they use"), "{text}");
}

#[test]
fn host_filter_shows_one_host_with_unchanged_figures() {
    let (_tmp, c, _, _) = two_sources();
    let all = stats(&c, &[]);
    let h2 = stats(&c, &["--host", "h2"]);
    assert_eq!(h2["sources"], serde_json::json!([all["sources"][1]]));
    assert_eq!(h2["totals"], all["totals"]);
    let text = c.ok(&["stats", "--host", "h1"]);
    assert!(text.lines().any(|l| l.starts_with("h1 ")), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("h2 ")), "{text}");
}

#[test]
fn compressible_text_has_a_high_compression_ratio() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("log.txt"), Rng::new(5).text(4 * MIB as usize)).unwrap();
    c.ok(&["backup", src.to_str().unwrap()]);
    let t = &stats(&c, &[])["totals"];
    assert_eq!(n(&t["logical_bytes"]), 4 * MIB);
    let ratio = f(&t["compression_ratio"]);
    assert!(ratio > 2.0, "{t}");
    assert!((ratio - n(&t["used_raw_bytes"]) as f64 / n(&t["used_stored_bytes"]) as f64).abs() < 1e-9);
    assert!(n(&t["stored_bytes"]) < 2 * MIB, "{t}");
}

#[test]
fn empty_vault_and_bad_input() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let s = stats(&c, &[]);
    assert_eq!(s["sources"], serde_json::json!([]));
    assert_eq!(
        (s["totals"]["stored_bytes"].clone(), s["totals"]["dedup_ratio"].clone()),
        (0.into(), Value::Null)
    );
    let text = c.ok(&["stats"]);
    assert!(
        text.contains("vault: 0 points of 0 sources") && text.contains("compression              -"),
        "{text}"
    );

    for bad in ["-1", "abc", "inf"] {
        let o = c.run(&["stats", "--price-per-gib-month", bad]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains(&format!("'{bad}' is not a price")), "{err}");
    }
    let err = c.fails(&["stats", "--host", "nope"]);
    assert_eq!(err.trim(), "coffer: error: no recovery point of host 'nope'");
}
