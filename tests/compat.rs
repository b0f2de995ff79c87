//! Format compatibility: a vault frozen at format version 1 stays readable, byte for byte and metadata for metadata.

mod common;

use common::run::Coffer;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

const SRC: &str = "/tmp/coffer-fixture-src";

/// A scratch copy of the frozen vault, so tests never change the committed one.
fn fixture() -> (tempfile::TempDir, Coffer) {
    let tmp = tempfile::tempdir().unwrap();
    let vault = tmp.path().join("vault");
    let frozen = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vault-v1");
    assert!(
        std::process::Command::new("cp")
            .arg("-a")
            .arg(&frozen)
            .arg(&vault)
            .status()
            .unwrap()
            .success()
    );
    let c = Coffer {
        password: "fixture".into(),
        ..Coffer::new(&vault)
    };
    (tmp, c)
}

#[test]
fn the_v1_vault_lists_reads_restores_and_checks() {
    let (tmp, c) = fixture();
    let list: serde_json::Value = serde_json::from_str(&c.ok(&["list", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["short_id"], "437c1d2f");
    assert_eq!(list[0]["host"], "fixture-host");
    assert_eq!(list[0]["tags"][0], "golden");
    assert_eq!(
        c.ok(&["cat", &format!("437c:{SRC}/hello.txt")]),
        "hello from format version 1\n"
    );
    let target = tmp.path().join("r");
    c.check_and_restore(&target);
    let root = target.join(&SRC[1..]);
    let expected: Vec<u8> = (0..700_000u32).map(|i| ((i * 31 + 7) % 256) as u8).collect();
    assert_eq!(std::fs::read(root.join("dir/binary.bin")).unwrap(), expected);
    let md = std::fs::metadata(root.join("dir/binary.bin")).unwrap();
    assert_eq!(md.mode() & 0o7777, 0o4750);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_704_164_645, 123_456_789));
    assert_eq!(std::fs::read_link(root.join("link")).unwrap(), Path::new("hello.txt"));
    assert_eq!(
        xattr::get(root.join("hello.txt"), "user.fixture").unwrap().unwrap(),
        b"kept"
    );
    let sparse = std::fs::read(root.join("sparse")).unwrap();
    assert_eq!(sparse.len(), (5 << 20) + 4);
    assert!(sparse.ends_with(b"tail") && sparse[..5 << 20].iter().all(|&b| b == 0));
}

#[test]
fn a_new_backup_into_the_v1_vault_dedupes_against_it() {
    let (tmp, c) = fixture();
    let src = tmp.path().join("again");
    std::fs::create_dir(&src).unwrap();
    let expected: Vec<u8> = (0..700_000u32).map(|i| ((i * 31 + 7) % 256) as u8).collect();
    std::fs::write(src.join("same-content.bin"), &expected).unwrap();
    let rec: serde_json::Value = serde_json::from_str(&c.ok(&["backup", "--json", src.to_str().unwrap()])).unwrap();
    assert!(
        rec["sizes"]["bytes_new"].as_u64().unwrap() < 10_000,
        "the chunk is already in the v1 vault: {rec}"
    );
    c.ok(&["check", "--read-data"]);
}
