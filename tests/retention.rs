//! Retention through the real binary: forget moves points to the recycle bin, undelete brings them back unchanged,
//! stored policies apply when forget has no rules, and an immutable vault refuses what would shorten retention.

mod common;

use common::run::{Coffer, json};
use common::{CompareOptions, Scale, compare_trees};
use std::path::{Path, PathBuf};

/// A vault with four points of `src` (host h1: three, each after a change; host h2: one).
fn four_points() -> (tempfile::TempDir, Coffer, PathBuf, Vec<String>) {
    let (tmp, c, src) = common::run::vault_and_tree(Scale::Small, 11);
    let s = src.to_str().unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        std::fs::write(src.join("changing"), format!("version {i}")).unwrap();
        ids.push(c.ok(&["backup", "--host", "h1", s]).trim().to_string());
    }
    ids.push(c.ok(&["backup", "--host", "h2", s]).trim().to_string());
    (tmp, c, src, ids)
}

fn listed(c: &Coffer, extra: &[&str]) -> Vec<String> {
    let mut args = vec!["list", "--json"];
    args.extend(extra);
    json(&c.ok(&args))
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

fn restore(c: &Coffer, id: &str, target: &Path) {
    c.ok(&["restore", id, "--target", target.to_str().unwrap(), "--verify"]);
}

#[test]
fn forget_soft_deletes_and_undelete_brings_points_back_unchanged() {
    let (tmp, c, src, ids) = four_points();
    let before = tmp.path().join("before");
    restore(&c, &ids[0], &before);

    let dry = c.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    assert!(dry.contains(&format!("would remove  {}", &ids[0][..8])), "{dry}");
    assert_eq!(listed(&c, &[]).len(), 4, "a dry run changes nothing");

    let out = c.ok(&["forget", "--keep-last", "1"]);
    let expected = format!("host h1, sources {}:", src.display());
    assert!(out.contains(&expected), "{out}");
    assert!(
        out.contains(&format!("keep          {}", &ids[2][..8])) && out.contains("last 1"),
        "{out}"
    );
    assert_eq!(listed(&c, &[]), vec![ids[2].clone(), ids[3].clone()]);
    assert_eq!(listed(&c, &["--deleted"]), vec![ids[0].clone(), ids[1].clone()]);

    // A point in the recycle bin is hidden from restore, but its data stays and check still walks it.
    let err = c.fails(&["restore", &ids[0], "--target", tmp.path().join("x").to_str().unwrap()]);
    assert!(err.contains("no recovery point"), "{err}");
    let deleted = json(&c.ok(&["list", "--deleted", "--json"]));
    let d = &deleted[0]["deleted"];
    let (t, purge) = (d["time"].as_str().unwrap(), d["purge_after"].as_str().unwrap());
    let days = (purge.parse::<jiff::Timestamp>().unwrap() - t.parse::<jiff::Timestamp>().unwrap()).as_hours() / 24;
    assert_eq!(days, 14, "the default window is 14 days: {d}");
    c.ok(&["check", "--read-data"]);

    c.ok(&["undelete", &ids[0][..10]]);
    assert_eq!(listed(&c, &[]).len(), 3);
    let after = tmp.path().join("after");
    restore(&c, &ids[0], &after);
    let diffs = compare_trees(&before, &after, &CompareOptions::default());
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let err = c.fails(&["undelete", &ids[0]]);
    assert!(err.contains("no recovery point"), "{err}");
}

#[test]
fn stored_policies_apply_and_an_immutable_vault_refuses_early_removal() {
    let (_tmp, c, src, ids) = four_points();
    c.ok(&["backup", "--host", "h2", src.to_str().unwrap()]);
    c.ok(&["policy", "set", "web", "--keep-last", "2", "--host", "h1"]);
    let policies = c.ok(&["policy", "list"]);
    assert_eq!(policies.trim(), "web: --keep-last 2 (host h1)");
    c.ok(&["vault", "set", "immutable=on"]);

    // Ad-hoc rules that remove more than the policies are refused as a whole; nothing changes.
    let err = c.fails(&["forget", "--keep-last", "1"]);
    assert!(
        err.contains("immutable (on)") && err.contains("may not be removed yet"),
        "{err}"
    );
    assert_eq!(listed(&c, &[]).len(), 5);
    // Points outside every policy (host h2) are kept by an immutable vault.
    let err = c.fails(&["forget", "--keep-last", "1", "--host", "h2"]);
    assert!(err.contains("no policy applies"), "{err}");

    // The stored policy removes the oldest h1 point.
    let out = c.ok(&["forget"]);
    assert!(
        out.contains("policy web: last 1") && out.contains("no policy applies"),
        "{out}"
    );
    assert_eq!(listed(&c, &["--deleted"]), vec![ids[0].clone()]);

    // Shortening retention is refused; lengthening is allowed.
    let err = c.fails(&["policy", "set", "web", "--keep-last", "1", "--host", "h1"]);
    assert!(err.contains("may only keep more"), "{err}");
    c.ok(&["policy", "set", "web", "--keep-last", "5", "--host", "h1"]);
    let err = c.fails(&["vault", "set", "soft-delete=7d"]);
    assert!(err.contains("cannot be shortened from 14d to 7d"), "{err}");
    c.ok(&["vault", "set", "soft-delete=30d"]);

    // on can be turned off; locked cannot.
    c.ok(&["vault", "set", "immutable=off"]);
    c.ok(&["vault", "set", "immutable=locked"]);
    let err = c.fails(&["vault", "set", "immutable=off"]);
    assert!(err.contains("cannot be undone"), "{err}");
    let show = json(&c.ok(&["vault", "show", "--json"]));
    assert_eq!(show["immutable"], "locked");
    assert_eq!(show["soft_delete"]["days"], 30);
}

#[test]
fn bad_retention_input_is_one_clear_line() {
    let (_tmp, c, _src, _ids) = four_points();
    for (args, msg) in [
        (vec!["forget"], "no retention policy is stored"),
        (vec!["forget", "--keep-within", "3x"], "not a duration"),
        (vec!["forget", "--group-by", "colour"], "host, paths and tags"),
        (vec!["policy", "set", "p"], "keeps nothing"),
        (vec!["policy", "remove", "nope"], "no policy named 'nope'"),
        (vec!["vault", "set", "immutable=maybe"], "use off, on or locked"),
        (vec!["undelete", "zz"], "not a recovery point id"),
    ] {
        let err = c.fails(&args);
        // One line (clap adds a hint line to usage errors).
        assert!(err.lines().next().unwrap().contains(msg), "{args:?}: {err}");
    }
    assert_eq!(listed(&c, &[]).len(), 4);
}
