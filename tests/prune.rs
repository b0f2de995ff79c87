//! Prune and locks through the real binary: prune frees what no point uses and every remaining point restores
//! identically; backups and prunes running at the same time lose nothing; locks of killed processes do not block.

mod common;

use common::run::{Coffer, json};
use common::{CompareOptions, Scale, compare_trees, generate_tree, mutate_tree};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn dir_bytes(dir: &Path) -> u64 {
    common::files_below(dir)
        .iter()
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

fn restore_same(c: &Coffer, point: &str, src: &Path, target: &Path) {
    c.ok(&["restore", point, "--target", target.to_str().unwrap()]);
    let copy = target.join(src.strip_prefix("/").unwrap());
    let diffs = compare_trees(src, &copy, &CompareOptions::default());
    assert!(diffs.is_empty(), "{point}: {}", diffs.join("\n"));
}

/// Kills a child on drop, so a failing test leaves no process behind.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prune_frees_unused_data_and_the_remaining_point_restores_identically() {
    let (tmp, c, src) = common::run::vault_and_tree(Scale::Small, 21);
    let s = src.to_str().unwrap();
    c.ok(&["vault", "set", "soft-delete=0d"]);
    std::fs::write(src.join("big-old"), common::noise(4 << 20, 1)).unwrap();
    c.ok(&["backup", s]);
    std::fs::remove_file(src.join("big-old")).unwrap();
    mutate_tree(&src, 3);
    let last = c.ok(&["backup", s]).trim().to_string();
    let data = c.vault.join("data");
    let before = dir_bytes(&data);

    let dry = json(&c.ok(&["prune", "--dry-run", "--json"]));
    assert_eq!(dry["points_purged"], 0, "nothing is in the recycle bin yet: {dry}");
    let both = json(&c.ok(&["forget", "--keep-last", "1", "--prune", "--json"]));
    assert_eq!(both["forget"].as_array().unwrap().len(), 2);
    let out = &both["prune"];
    assert_eq!(out["points_purged"], 1, "{out}");
    let freed = out["bytes_freed"].as_u64().unwrap();
    assert!(
        freed >= 4 << 20,
        "the 4 MiB file only the old point had is freed: {out}"
    );
    assert_eq!(dir_bytes(&data), before - freed);
    assert_eq!(out["bytes_after"].as_u64().unwrap(), dir_bytes(&data));

    c.ok(&["check", "--read-data"]);
    restore_same(&c, &last, &src, &tmp.path().join("r"));
    assert!(
        json(&c.ok(&["list", "--deleted", "--json"]))
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn concurrent_backups_and_prunes_lose_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    c.ok(&["vault", "set", "soft-delete=0d"]);
    // Four sources sharing most of their content, so their backups deduplicate against each other.
    let sources: Vec<PathBuf> = (0..4).map(|i| tmp.path().join(format!("src{i}"))).collect();
    for s in &sources {
        std::fs::create_dir(s).unwrap();
        generate_tree(s, 5, Scale::Small);
    }
    for round in 0..3u64 {
        for (i, s) in sources.iter().enumerate() {
            mutate_tree(s, round * 10 + i as u64);
        }
        let mut runs: Vec<Reaper> = sources
            .iter()
            .map(|s| {
                Reaper(
                    c.cmd(&["backup", "-q", s.to_str().unwrap()])
                        .stdout(Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        runs.push(Reaper(
            c.cmd(&["forget", "-q", "--keep-last", "1", "--prune"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ));
        for r in &mut runs {
            assert!(r.0.wait().unwrap().success(), "round {round}: a backup or prune failed");
        }
    }
    c.ok(&["forget", "-q", "--keep-last", "1", "--prune"]);
    c.ok(&["check", "--read-data"]);
    let points = json(&c.ok(&["list", "--json"]));
    assert_eq!(points.as_array().unwrap().len(), 4, "{points}");
    for (i, s) in sources.iter().enumerate() {
        let latest = c.ok(&["list", "--json", "--path", s.to_str().unwrap()]);
        let id = json(&latest)[0]["id"].as_str().unwrap().to_string();
        restore_same(&c, &id, s, &tmp.path().join(format!("r{i}")));
    }
}

#[test]
fn a_live_lock_blocks_prune_and_a_killed_holder_does_not() {
    let (_tmp, c, src) = common::run::vault_and_tree(Scale::Small, 22);
    c.ok(&["backup", src.to_str().unwrap()]);
    // A backup whose stream command sleeps holds a shared lock for as long as it runs.
    let mut slow = Reaper(
        c.cmd(&["backup", "--stdin-name", "slow", "--command", "sleep 30"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while !c.vault.join("locks").read_dir().is_ok_and(|mut d| d.next().is_some()) {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the backup never took its lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let err = c.fails(&["prune", "--lock-wait", "0"]);
    assert!(
        err.contains("in use: shared lock of backup") && err.contains("coffer unlock"),
        "{err}"
    );
    // kill -9: the lock stays behind, but its process is gone, so it no longer counts.
    slow.0.kill().unwrap();
    slow.0.wait().unwrap();
    assert_eq!(c.vault.join("locks").read_dir().unwrap().count(), 1);
    c.ok(&["prune", "--lock-wait", "0"]);
    let out = c.ok(&["unlock"]);
    assert!(out.contains("removed shared lock of backup"), "{out}");
    assert_eq!(c.vault.join("locks").read_dir().unwrap().count(), 0);
    c.ok(&["check"]);
}

#[test]
fn prune_killed_at_random_moments_leaves_a_healthy_vault() {
    let (tmp, c, src) = common::run::vault_and_tree(Scale::Normal, 23);
    let s = src.to_str().unwrap();
    c.ok(&["vault", "set", "soft-delete=0d"]);
    c.ok(&["backup", "-q", s]);
    mutate_tree(&src, 4);
    c.ok(&["backup", "-q", s]);
    c.ok(&["forget", "-q", "--keep-last", "1"]);
    let copy = |k: usize| {
        let to = tmp.path().join(format!("vault{k}"));
        let ok = std::process::Command::new("cp")
            .arg("-a")
            .arg(&c.vault)
            .arg(&to)
            .status()
            .unwrap();
        assert!(ok.success());
        Coffer { vault: to, ..c.clone() }
    };
    let whole = copy(0);
    let start = Instant::now();
    whole.ok(&["prune", "-q"]);
    let took = start.elapsed();
    for k in 1..=6usize {
        let v = copy(k);
        let mut run = Reaper(v.cmd(&["prune", "-q"]).stdout(Stdio::null()).spawn().unwrap());
        std::thread::sleep(took * k as u32 / 7);
        let _ = run.0.kill();
        let _ = run.0.wait();
        v.ok(&["check", "--read-data"]);
        restore_same(&v, "latest", &src, &tmp.path().join(format!("r{k}")));
        v.ok(&["prune", "-q"]);
        v.ok(&["check"]);
        let after = json(&v.ok(&["prune", "--dry-run", "--json"]));
        assert_eq!(
            after["bytes_deleted"], 0,
            "kill {k}: the second prune finished the work: {after}"
        );
        assert_eq!(dir_bytes(&v.vault.join("data")), dir_bytes(&whole.vault.join("data")));
    }
}
