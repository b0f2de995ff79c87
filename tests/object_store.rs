//! Vaults on object storage through the real binary, against an S3 endpoint (moto) and Azure Blob (Azurite) started
//! on loopback: init, a backup and an incremental one, list, verified restores identical to the source, check
//! --read-data, forget and prune, and a `mount --daemon` of the result; credentials and endpoints come from the
//! environment, as for users.
#![cfg(feature = "cloud")]

mod common;

use coffer::store::{CloudStore, Store};
use common::mounted::Mounted;
use common::run::{Coffer, coffer_bin, json};
use common::servers::{self, Endpoint};
use common::{CompareOptions, Scale, compare_trees, generate_tree, mutate_tree};
use std::path::Path;
use std::process::Stdio;

fn restore_identical(c: &Coffer, src: &Path, target: &Path) {
    let path = src.to_str().unwrap();
    c.ok(&[
        "restore",
        "latest",
        "--path",
        path,
        "--target",
        target.to_str().unwrap(),
        "--verify",
    ]);
    let copy = target.join(src.strip_prefix("/").unwrap());
    let diffs = compare_trees(src, &copy, &CompareOptions::default());
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}

/// The whole life of a vault at `url`, reached by coffer with `vars`; the test looks at the objects with `endpoint`'s
/// own variables.
fn vault_life(endpoint: &Endpoint, url: &str, vars: &[(String, String)]) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    generate_tree(&src, 41, Scale::Normal);
    // A local read cache in the test's directory (later variables win over the endpoint's COFFER_CACHE_LIMIT=0).
    let cache = tmp.path().join("cache");
    let mut vars = vars.to_vec();
    vars.push(("COFFER_CACHE_DIR".into(), cache.display().to_string()));
    vars.push(("COFFER_CACHE_LIMIT".into(), "64".into()));
    let c = Coffer::at_url(url, &vars);
    let init = c.run(&["init"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    assert!(String::from_utf8_lossy(&init.stderr).contains(&format!(" at {url}")));
    let s = src.to_str().unwrap();
    let first = json(&c.ok(&["backup", "--json", s]));
    mutate_tree(&src, 5);
    let second = json(&c.ok(&["backup", "--json", s]));
    assert_eq!(second["parent"], first["id"]);
    let read = second["sizes"]["files_read"].as_u64().unwrap();
    assert!(read > 0 && read < 10, "only changed files are read: {second}");
    assert_eq!(json(&c.ok(&["list", "--json"])).as_array().unwrap().len(), 2);
    restore_identical(&c, &src, &tmp.path().join("r1"));
    c.ok(&["check", "--read-data"]);

    // A stream point, read back; stats agree with the objects in the bucket.
    let dump: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    std::fs::write(tmp.path().join("dump"), &dump).unwrap();
    let cmd = format!("cat {}", tmp.path().join("dump").display());
    let stream = json(&c.ok(&["backup", "--json", "--stdin-name", "db.sql", "--command", &cmd]));
    let id = stream["id"].as_str().unwrap();
    let out = c.cmd(&["cat", &format!("{id}:streams/db.sql")]).output().unwrap();
    assert!(out.status.success() && out.stdout == dump, "the stream reads back");
    let store = CloudStore::open_with(url, &endpoint.vars).unwrap();
    let stats = json(&c.ok(&["stats", "--json"]));
    let in_bucket: u64 = store.list("data/").unwrap().iter().map(|o| o.size).sum();
    assert_eq!(stats["totals"]["stored_bytes"].as_u64().unwrap(), in_bucket, "{stats}");
    // Soft delete and undelete on the bucket, then forget the stream point for good.
    c.ok(&["forget", "--keep-last", "1", "--host", stream["host"].as_str().unwrap()]);
    assert_eq!(
        json(&c.ok(&["list", "--deleted", "--json"])).as_array().unwrap().len(),
        1
    );
    c.ok(&["undelete", &first["id"].as_str().unwrap()[..12]]);
    assert_eq!(json(&c.ok(&["list", "--json"])).as_array().unwrap().len(), 3);

    c.ok(&["vault", "set", "soft-delete=0d"]);
    c.ok(&["forget", "--keep-last", "1", "--path", s]);
    let pruned = json(&c.ok(&["prune", "--json"]));
    assert_eq!(pruned["points_purged"], 1, "{pruned}");
    assert!(pruned["bytes_freed"].as_u64().unwrap() > 0, "{pruned}");
    let left = json(&c.ok(&["list", "--json", "--path", s]));
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["id"], second["id"]);
    restore_identical(&c, &src, &tmp.path().join("r2"));
    c.ok(&["check", "--read-data"]);
    // The cache holds index files and trees, stays under its cap, and is safe to delete.
    let cached: Vec<_> = common::files_below(&cache);
    assert!(
        cached.iter().any(|f| f.to_string_lossy().contains("index~")),
        "{cached:?}"
    );
    let bytes: u64 = cached.iter().map(|f| f.metadata().unwrap().len()).sum();
    assert!(bytes <= 64 << 20, "{bytes}");
    std::fs::remove_dir_all(&cache).unwrap();
    restore_identical(&c, &src, &tmp.path().join("r3"));

    assert!(
        store.list("locks/").unwrap().is_empty(),
        "every command removed its lock"
    );
    assert!(
        store.list("deleted/").unwrap().is_empty(),
        "the purged point's tombstone is gone"
    );
    assert_eq!(
        store.list("points/").unwrap().len(),
        2,
        "the files point and the stream point"
    );

    // `mount --daemon` hands the URL (and the environment) to its child; the mounted point equals the source.
    if common::mounted::fuse_available() {
        let m = Mounted::new(&c, &tmp.path().join("mnt"), &[]);
        // The files point by its name (`latest` is the stream point): points/<UTC time>_<short id>.
        let time = second["time"].as_str().unwrap()[..19].replace(':', "-");
        let name = format!("points/{time}Z_{}", second["short_id"].as_str().unwrap());
        let seen = m.dir.join(name).join("files").join(src.strip_prefix("/").unwrap());
        let opts = CompareOptions {
            sparse: false,
            ..CompareOptions::default()
        };
        let diffs = compare_trees(&src, &seen, &opts);
        assert!(diffs.is_empty(), "the mount differs:\n{}", diffs.join("\n"));
    }
}

#[test]
fn s3_vault_backs_up_restores_and_prunes() {
    let moto = servers::moto();
    let url = moto.url("e2e/vault");
    vault_life(&moto, &url, &moto.vars);
    // COFFER_VAULT takes a URL as --vault does.
    let out = std::process::Command::new(coffer_bin())
        .args(["list", "--json"])
        .env("COFFER_VAULT", &url)
        .env("COFFER_PASSWORD", "test passphrase")
        .env("COFFER_CACHE_LIMIT", "0")
        .envs(moto.vars.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout)).as_array().unwrap().len(), 2);
}

#[test]
fn azure_vault_backs_up_restores_and_prunes() {
    let azurite = servers::azurite();
    // Azurite's emulator variables, as the README shows them.
    vault_life(&azurite, &azurite.url("e2e/vault"), &azurite.emulator_vars());
}

#[test]
fn a_second_init_and_a_missing_bucket_are_one_line_errors() {
    let moto = servers::moto();
    let c = Coffer::at_url(&moto.url("v"), &moto.vars);
    c.ok(&["init"]);
    let again = c.fails(&["init"]);
    assert!(again.contains("s3://coffer-test/v"), "{again}");
    let missing = Coffer::at_url("s3://no-such-bucket/v", &moto.vars).fails(&["init"]);
    assert!(
        missing.contains("s3://no-such-bucket/v: the bucket or container does not exist"),
        "{missing}"
    );
    assert_eq!(missing.trim_end().lines().count(), 1, "{missing}");
}

#[test]
fn bad_vault_urls_are_one_line_errors() {
    for (url, says) in [
        ("gs://bucket/v", "unsupported scheme 'gs'"),
        ("s3://", "no bucket or container name"),
        ("azure:///v", "no bucket or container name"),
    ] {
        let err = Coffer::new(Path::new(url)).fails(&["list"]);
        assert!(err.contains(says), "{url}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{url}: {err}");
    }
}
