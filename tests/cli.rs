//! Integration tests of the real `coffer` binary on real files: every node kind round-trips, incremental backups
//! read nothing unchanged, damage and bad input give clear errors.

mod common;

use common::run::{Coffer, json};
use common::{CompareOptions, Scale, compare_trees, mutate_tree};
use std::path::{Path, PathBuf};
use std::process::Command;

fn setup(scale: Scale) -> (tempfile::TempDir, Coffer, PathBuf) {
    common::run::vault_and_tree(scale, 7)
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The restored copy of absolute `src` below `target`.
fn restored(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

fn assert_same(a: &Path, b: &Path) {
    let diffs = compare_trees(a, b, &CompareOptions::default());
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
}

#[test]
fn every_node_kind_round_trips_and_rsync_agrees() {
    let (tmp, c, src) = setup(Scale::Normal);
    let id = c.ok(&["backup", src.to_str().unwrap()]).trim().to_string();
    assert_eq!(id.len(), 64, "backup prints the full id: {id}");
    let target = tmp.path().join("restore");
    c.ok(&["restore", &id, "--target", target.to_str().unwrap(), "--verify"]);
    assert_same(&src, &restored(&target, &src));
    if Command::new("rsync").arg("--version").output().is_ok() {
        let out = Command::new("rsync")
            .args(["-aHAXn", "--checksum", "--itemize-changes"])
            .arg(format!("{}/", src.display()))
            .arg(format!("{}/", restored(&target, &src).display()))
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&out.stdout);
        let diffs: Vec<&str> = listing.lines().filter(|l| !l.ends_with("socket")).collect();
        assert!(diffs.is_empty(), "rsync sees differences:\n{}", diffs.join("\n"));
    } else {
        eprintln!("rsync not installed: skipping the rsync comparison");
    }
    c.ok(&["check", "--read-data"]);
}

#[test]
fn second_backup_reads_no_file_content_and_stores_nothing() {
    let (_tmp, c, src) = setup(Scale::Normal);
    let first = json(&c.ok(&["backup", "--json", src.to_str().unwrap()]));
    assert!(first["sizes"]["files_read"].as_u64().unwrap() > 10);
    let second = json(&c.ok(&["backup", "--json", src.to_str().unwrap()]));
    assert_eq!(second["sizes"]["files_read"], 0, "{second}");
    assert_eq!(second["sizes"]["bytes_read"], 0);
    // The point records src's ancestors too (/, /tmp, the temp dir). Tests running beside this one create and
    // remove temp dirs, which changes /tmp's mtime, so the trees on the path down to src may be new (measured: one
    // 98-byte root tree). Everything at and below src must dedupe.
    let ancestor_trees = src.ancestors().count() as u64 - 1;
    let blobs_new = second["sizes"]["blobs_new"].as_u64().unwrap();
    let bytes_new = second["sizes"]["bytes_new"].as_u64().unwrap();
    assert!(blobs_new <= ancestor_trees, "only ancestor trees may be new: {second}");
    assert!(
        bytes_new <= 512 * ancestor_trees,
        "unchanged trees must dedupe: {second}"
    );
    assert_eq!(second["parent"], first["id"]);
}

#[test]
fn incremental_after_changes_restores_the_new_state() {
    let (tmp, c, src) = setup(Scale::Normal);
    c.ok(&["backup", src.to_str().unwrap()]);
    mutate_tree(&src, 3);
    let second = json(&c.ok(&["backup", "--json", src.to_str().unwrap()]));
    let read = second["sizes"]["files_read"].as_u64().unwrap();
    let total = second["sizes"]["files"].as_u64().unwrap();
    assert!(
        read > 0 && read * 4 < total,
        "only changed files are read: {read} of {total}"
    );
    let target = tmp.path().join("r");
    c.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same(&src, &restored(&target, &src));
}

#[test]
fn list_ls_and_cat_show_the_point() {
    let (_tmp, c, src) = setup(Scale::Small);
    std::fs::write(src.join("hello.txt"), b"hello coffer\n").unwrap();
    let id = c
        .ok(&["backup", "--tag", "t1", "--host", "h1", src.to_str().unwrap()])
        .trim()
        .to_string();
    let list = json(&c.ok(&["list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["host"], "h1");
    assert_eq!(list[0]["tags"][0], "t1");
    assert_eq!(list[0]["consistency"], "crash");
    assert!(c.ok(&["list"]).contains(&id[..8]));
    let ls = c.ok(&["ls", &id[..8], src.to_str().unwrap()]);
    assert!(ls.lines().any(|l| l.ends_with("/hello.txt")), "{ls}");
    let ls_l = c.ok(&["ls", "latest", src.join("hello.txt").to_str().unwrap(), "-l"]);
    assert!(ls_l.starts_with("-rw"), "{ls_l}");
    let all = json(&c.ok(&["ls", "--json", "--recursive", "latest", "/"]));
    assert!(all.as_array().unwrap().len() > 20);
    let spec = format!("latest:{}", src.join("hello.txt").display());
    assert_eq!(c.ok(&["cat", &spec]), "hello coffer\n");
}

#[test]
fn restore_of_a_subdirectory_with_include_and_exclude() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    for d in ["a/x", "a/y", "b"] {
        std::fs::create_dir_all(src.join(d)).unwrap();
    }
    for f in ["a/x/1.txt", "a/x/2.log", "a/y/3.txt", "b/4.txt"] {
        std::fs::write(src.join(f), f).unwrap();
    }
    c.ok(&["backup", "--exclude", "*.log", src.to_str().unwrap()]);
    let sub = format!("latest:{}", src.join("a").display());
    let t1 = tmp.path().join("t1");
    c.ok(&["restore", &sub, "--target", t1.to_str().unwrap(), "--exclude", "y"]);
    assert!(t1.join("x/1.txt").is_file());
    assert!(!t1.join("x/2.log").exists(), "excluded at backup");
    assert!(!t1.join("y").exists(), "excluded at restore");
    let t2 = tmp.path().join("t2");
    c.ok(&[
        "restore",
        "latest",
        "--target",
        t2.to_str().unwrap(),
        "--include",
        "3.txt",
    ]);
    assert_eq!(
        std::fs::read(restored(&t2, &src).join("a/y/3.txt")).unwrap(),
        b"a/y/3.txt"
    );
    assert!(!restored(&t2, &src).join("b").exists());
}

#[test]
fn bad_input_gives_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    let o = c.run(&["list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no vault at"), "{}", stderr(&o));
    assert_eq!(stderr(&o).trim().lines().count(), 1);
    c.ok(&["init"]);
    let o = c.run(&["init"]);
    assert!(!o.status.success() && stderr(&o).contains("already exists"));
    let mut wrong = c.cmd(&["list"]);
    wrong.env("COFFER_PASSWORD", "wrong");
    let o = wrong.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("wrong passphrase"), "{}", stderr(&o));
    for (args, needle) in [
        (vec!["ls", "deadbeef"], "no recovery point"),
        (vec!["ls", "latest"], "no recovery point matches"),
        (vec!["cat", "zz:/x"], "not a recovery point id"),
        (vec!["backup", "/nonexistent/path"], "/nonexistent/path"),
    ] {
        let o = c.run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(stderr(&o).contains(needle), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o).trim().lines().count(), 1, "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"));
    }
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    c.ok(&["backup", file.to_str().unwrap()]);
    let o = c.run(&["restore", "latest", "--target", file.join("sub").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("restore target"), "{}", stderr(&o));
    let config = tmp.path().join("vault/config");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"version\": 1", "\"version\": 99");
    std::fs::write(&config, text).unwrap();
    let o = c.run(&["list"]);
    assert!(stderr(&o).contains("newer than this program"), "{}", stderr(&o));
}

#[test]
fn a_flipped_byte_in_a_pack_is_named_by_check_and_restore() {
    let (tmp, c, src) = setup(Scale::Small);
    let big = src.join("victim.bin");
    std::fs::write(
        &big,
        vec![0x5au8; 300_000]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ (i % 7) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    c.ok(&["backup", src.to_str().unwrap()]);
    c.ok(&["check", "--read-data"]);
    let packs = common::files_below(&tmp.path().join("vault/data"));
    let data_pack = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut bytes = std::fs::read(data_pack).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(data_pack, bytes).unwrap();
    let o = c.run(&["check", "--read-data"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("damaged: recovery point"), "{out}");
    let name = data_pack.file_name().unwrap().to_str().unwrap();
    assert!(out.contains(name), "check names the pack: {out}");
    let target = tmp.path().join("r");
    let o = c.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains(name), "restore names the pack: {}", stderr(&o));
}

#[test]
fn exclude_file_and_password_sources() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("cache")).unwrap();
    std::fs::write(src.join("keep.txt"), b"k").unwrap();
    std::fs::write(src.join("drop.tmp"), b"d").unwrap();
    std::fs::write(src.join("cache/x"), b"x").unwrap();
    let excl = tmp.path().join("excludes");
    std::fs::write(&excl, format!("# comment\n*.tmp\n\n{}\n", src.join("cache").display())).unwrap();
    let pwfile = tmp.path().join("pw");
    std::fs::write(&pwfile, format!("{}\nsecond line ignored\n", c.password)).unwrap();
    let mut cmd = c.cmd(&[
        "backup",
        "--exclude-file",
        excl.to_str().unwrap(),
        src.to_str().unwrap(),
    ]);
    cmd.env_remove("COFFER_PASSWORD").arg("--password-file").arg(&pwfile);
    assert!(cmd.output().unwrap().status.success());
    let mut ls = c.cmd(&["ls", "latest", src.to_str().unwrap()]);
    ls.env_remove("COFFER_PASSWORD")
        .args(["--password-command", &format!("echo '{}'", c.password)]);
    let out = String::from_utf8(ls.output().unwrap().stdout).unwrap();
    assert!(
        out.contains("keep.txt") && !out.contains("drop.tmp") && !out.contains("cache"),
        "{out}"
    );
    let mut none = c.cmd(&["list"]);
    none.env_remove("COFFER_PASSWORD").stdin(std::process::Stdio::null());
    let o = none.output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no passphrase"), "{}", stderr(&o));
}

#[test]
fn a_missing_pack_is_named_by_check_with_the_affected_files() {
    let (tmp, c, src) = setup(Scale::Small);
    std::fs::write(
        src.join("only-here.bin"),
        (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    let id = c.ok(&["backup", src.to_str().unwrap()]).trim().to_string();
    let packs = common::files_below(&tmp.path().join("vault/data"));
    let data_pack = packs
        .iter()
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    std::fs::remove_file(data_pack).unwrap();
    let o = c.run(&["check"]);
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("pack is missing"), "{out}");
    let line = format!(
        "damaged: recovery point {}: {}",
        &id[..8],
        src.join("only-here.bin").display()
    );
    assert!(out.contains(&line), "expected '{line}' in:\n{out}");
    let spec = format!("latest:{}", src.join("only-here.bin").display());
    let o = c.run(&["cat", &spec]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("only-here.bin") && stderr(&o).contains(&id[..8]),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_file_growing_during_backup_is_reported_with_exit_3() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Coffer::new(&tmp.path().join("vault"));
    c.ok(&["init"]);
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let log = src.join("growing.log");
    std::fs::write(&log, vec![b'x'; 64 << 20]).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::io::Write::write_all(&mut f, b"appended line\n").unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        })
    };
    let o = c.run(&["backup", "--json", src.to_str().unwrap()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("changed while it was read"), "{}", stderr(&o));
    let rec = json(&String::from_utf8_lossy(&o.stdout));
    assert!(rec["errors"][0]["path"].as_str().unwrap().ends_with("growing.log"));
    // The jobs log records the backup as finished with a warning, naming the file.
    let jobs = json(&c.ok(&["jobs", "--json"]));
    let end = &jobs[0]["end"];
    assert_eq!(jobs[0]["status"], "warning", "{jobs}");
    assert_eq!(end["problems"], 1);
    assert!(end["message"].as_str().unwrap().contains("growing.log: "), "{end}");
}

#[test]
fn restore_replaces_whatever_stands_in_the_way() {
    let (tmp, c, src) = setup(Scale::Small);
    let id = c.ok(&["backup", src.to_str().unwrap()]).trim().to_string();
    let target = tmp.path().join("restore");
    c.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
    let got = restored(&target, &src);
    // A directory where a file was, a file where a symlink was, a symlink where a hard link was.
    let file = got.join("files/small.txt");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir_all(file.join("inner")).unwrap();
    let link = got.join("sym/relative");
    std::fs::remove_file(&link).unwrap();
    std::fs::write(&link, b"not a link").unwrap();
    let hard = got.join("hard/pair-2");
    std::fs::remove_file(&hard).unwrap();
    std::os::unix::fs::symlink("elsewhere", &hard).unwrap();
    c.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
    assert_same(&src, &got);
}
