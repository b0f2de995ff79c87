//! The jobs log through the real binary: every backup, restore, check, forget and prune is recorded with its
//! outcome; a failure keeps its message; a backup killed with SIGKILL shows as running while it runs and as
//! interrupted afterwards.

mod common;

use common::Scale;
use common::run::{Coffer, json};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn jobs(c: &Coffer, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["jobs", "--json"];
    args.extend(extra);
    json(&c.ok(&args)).as_array().unwrap().clone()
}

fn summary(list: &[serde_json::Value]) -> Vec<(String, String)> {
    list.iter()
        .map(|j| {
            (
                j["start"]["kind"].as_str().unwrap().into(),
                j["status"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn every_operation_is_logged_with_its_outcome() {
    let (tmp, c, src) = common::run::vault_and_tree(Scale::Small, 31);
    let id = c.ok(&["backup", src.to_str().unwrap()]).trim().to_string();
    c.ok(&["restore", "latest", "--target", tmp.path().join("r").to_str().unwrap()]);
    c.ok(&["check"]);
    c.fails(&["restore", "abcdef", "--target", tmp.path().join("x").to_str().unwrap()]);
    c.ok(&["forget", "--keep-last", "1"]);
    c.ok(&["prune"]);
    let all = jobs(&c, &[]);
    let expected: Vec<(String, String)> = [
        ("backup", "succeeded"),
        ("restore", "succeeded"),
        ("check", "succeeded"),
        ("restore", "failed"),
        ("forget", "succeeded"),
        ("prune", "succeeded"),
    ]
    .iter()
    .map(|(k, s)| (k.to_string(), s.to_string()))
    .collect();
    assert_eq!(summary(&all), expected);
    let backup = &all[0];
    let stats = common::tree_stats(&src);
    assert_eq!(backup["end"]["point"], id.as_str());
    assert_eq!(backup["end"]["files"], stats.files as u64, "{backup}");
    assert_eq!(backup["start"]["target"], src.to_str().unwrap());
    assert!(backup["end"]["duration_secs"].as_f64().unwrap() > 0.0);
    let failed = jobs(&c, &["--failed"]);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["end"]["message"]
            .as_str()
            .unwrap()
            .contains("no recovery point 'abcdef'"),
        "{:?}",
        failed[0]
    );
    assert_eq!(jobs(&c, &["--kind", "restore"]).len(), 2);
    assert_eq!(jobs(&c, &["--since", "1h"]).len(), 6);
    assert_eq!(jobs(&c, &["--host", "no-such-host"]).len(), 0);
    let prefix = &all[3]["id"].as_str().unwrap()[..14];
    let shown = c.ok(&["jobs", "show", prefix]);
    assert!(
        shown.contains("status    failed") && shown.contains("message   no recovery point"),
        "{shown}"
    );
    let table = c.ok(&["jobs"]);
    assert_eq!(table.lines().count(), 7, "{table}");
}

#[test]
fn a_killed_backup_is_running_then_interrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let mut child = c
        .cmd(&["backup", "--stdin-name", "dump", "--command", "sleep 30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let running = loop {
        let list = jobs(&c, &[]);
        if !list.is_empty() {
            break list;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the backup never logged its start");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(summary(&running), vec![("backup".to_string(), "running".to_string())]);
    child.kill().unwrap();
    child.wait().unwrap();
    let after = jobs(&c, &["--failed"]);
    assert_eq!(summary(&after), vec![("backup".to_string(), "interrupted".to_string())]);
    assert!(after[0]["end"].is_null());
}
