//! The test helpers must be able to fail: a faithful copy compares equal, and each kind of damage is reported.

mod common;

use common::{CompareOptions, Scale, compare_trees, generate_tree, mutate_tree};
use std::path::Path;
use std::process::Command;

fn copy(a: &Path, b: &Path) {
    let ok = Command::new("cp")
        .args(["-a", "--sparse=always"])
        .arg(a)
        .arg(b)
        .status()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn a_faithful_copy_is_equal_and_every_change_is_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    generate_tree(&a, 1, Scale::Small);
    copy(&a, &b);
    let diffs = compare_trees(&a, &b, &CompareOptions::default());
    assert!(diffs.is_empty(), "cp -a copy differs:\n{}", diffs.join("\n"));

    std::fs::write(b.join("private"), b"secreT").unwrap();
    assert!(
        compare_trees(&a, &b, &CompareOptions::default())
            .iter()
            .any(|d| d.contains("content"))
    );

    let c = tmp.path().join("c");
    copy(&a, &c);
    std::fs::remove_file(c.join("pair-b")).unwrap();
    std::fs::copy(c.join("pair-a"), c.join("pair-b")).unwrap();
    let d = compare_trees(&a, &c, &CompareOptions::default());
    assert!(d.iter().any(|d| d.contains("hardlink")), "{d:?}");

    let e = tmp.path().join("e");
    copy(&a, &e);
    mutate_tree(&e, 9);
    let d = compare_trees(&a, &e, &CompareOptions::default());
    for needle in ["content", "size", "missing in copy", "only in copy", "mode", "xattrs"] {
        assert!(d.iter().any(|x| x.contains(needle)), "no '{needle}' in {d:?}");
    }
}

#[test]
fn a_dense_copy_of_a_sparse_file_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir(&a).unwrap();
    generate_tree(&a, 2, Scale::Small);
    let ok = Command::new("cp")
        .args(["-a", "--sparse=never"])
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(ok.success());
    let d = compare_trees(&a, &b, &CompareOptions::default());
    assert!(d.iter().any(|x| x.contains("sparse")), "{d:?}");
}
