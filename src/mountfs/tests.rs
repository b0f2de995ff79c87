//! The mounted layout tested through the library, without a kernel.

use super::*;
use crate::backup::{self, BackupOptions, progress::Progress};
use std::path::Path;

fn vault() -> Arc<Vault> {
    crate::vault::test_vault(32 << 20).1
}

fn backup(v: &Arc<Vault>, src: &Path, tag: &str) {
    let opts = BackupOptions {
        tags: vec![tag.into()],
        read_threads: 2,
        ..BackupOptions::files(vec![src.to_path_buf()], "h")
    };
    backup::run(v.clone(), &opts, &Progress::default()).unwrap();
}

/// Looks up a `/`-separated path from the root.
fn walk(fs: &MountFs, path: &[&[u8]]) -> Attr {
    let mut ino = ROOT_INO;
    let mut attr = fs.getattr(ino).unwrap();
    for name in path {
        attr = fs
            .lookup(ino, name)
            .unwrap_or_else(|e| panic!("{}: {e:?}", String::from_utf8_lossy(name)));
        ino = attr.ino;
    }
    attr
}

fn names(fs: &MountFs, ino: Ino) -> Vec<String> {
    fs.opendir(ino).unwrap();
    let list = fs.readdir(ino, 0, usize::MAX).unwrap();
    list.into_iter()
        .map(|(_, n, _)| String::from_utf8_lossy(&n).into_owned())
        .collect()
}

fn src_path(src: &Path) -> Vec<Vec<u8>> {
    src.components()
        .skip(1)
        .map(|c| c.as_os_str().as_encoded_bytes().to_vec())
        .collect()
}

#[test]
fn layout_reads_holes_versions_and_inodes() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"first").unwrap();
    let sparse = std::fs::File::create(src.join("sparse")).unwrap();
    sparse.set_len(3 << 20).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&sparse, b"tail", (3 << 20) - 4).unwrap();
    std::fs::hard_link(src.join("a.txt"), src.join("b.txt")).unwrap();
    let v = vault();
    backup(&v, &src, "one");
    std::fs::write(src.join("c.txt"), b"new").unwrap();
    backup(&v, &src, "two");
    let fs = MountFs::new(
        v.clone(),
        v.load_points().unwrap(),
        &MountOptions {
            cache_bytes: 1 << 20,
            single_point: None,
        },
    );

    assert_eq!(names(&fs, ROOT_INO), ["points", "latest", "hosts", "tags", "versions"]);
    let latest = walk(&fs, &[b"latest"]);
    assert_eq!(latest.kind, NodeKind::Symlink);
    assert!(
        String::from_utf8(fs.readlink(latest.ino).unwrap())
            .unwrap()
            .starts_with("points/")
    );
    assert_eq!(names(&fs, walk(&fs, &[b"tags"]).ino), ["one", "two"]);

    let points = names(&fs, walk(&fs, &[b"points"]).ino);
    let mut base: Vec<&[u8]> = vec![b"points", points[1].as_bytes(), b"files"];
    let sp = src_path(&src);
    base.extend(sp.iter().map(Vec::as_slice));
    let dir = walk(&fs, &base);
    assert_eq!(names(&fs, dir.ino), ["a.txt", "b.txt", "c.txt", "sparse"]);

    let a = fs.lookup(dir.ino, b"a.txt").unwrap();
    let b = fs.lookup(dir.ino, b"b.txt").unwrap();
    assert_eq!(a.ino, b.ino, "hardlinks share an inode");
    assert_eq!(a.nlink, 2);

    let s = fs.lookup(dir.ino, b"sparse").unwrap();
    assert_eq!(s.size, 3 << 20);
    assert!(s.blocks < 16, "holes count nothing: {} blocks", s.blocks);
    let fh = fs.open(s.ino).unwrap();
    assert_eq!(fs.read(s.ino, fh, (3 << 20) - 6, 100).unwrap(), b"\0\0tail");
    assert_eq!(fs.read(s.ino, fh, 3 << 20, 100).unwrap(), b"");
    assert_eq!(fs.lseek(s.ino, 0, libc::SEEK_DATA).unwrap() % 4096, 0);
    assert_eq!(fs.lseek(s.ino, 0, libc::SEEK_HOLE).unwrap(), 0);
    fs.release(fh);
    assert_eq!(fs.open(dir.ino), Err(FsError::IsDir));
    assert_eq!(fs.lookup(dir.ino, b"missing"), Err(FsError::NotFound));

    let mut vpath: Vec<&[u8]> = vec![b"versions", b"files"];
    vpath.extend(sp.iter().map(Vec::as_slice));
    let vdir = walk(&fs, &vpath);
    assert_eq!(names(&fs, vdir.ino), ["a.txt", "b.txt", "c.txt", "sparse"]);
    let versions = walk(&fs, &[vpath.clone(), vec![b"a.txt"]].concat());
    assert_eq!(
        names(&fs, versions.ino),
        [format!("{}.txt", points[0])],
        "unchanged content is one version"
    );
    let json = walk(&fs, &[b"points", points[0].as_bytes(), b"point.json"]);
    let fh = fs.open(json.ino).unwrap();
    let text = fs.read(json.ino, fh, 0, 1 << 20).unwrap();
    assert_eq!(text.len() as u64, json.size);
    assert!(String::from_utf8(text).unwrap().contains("\"one\""));
}

#[test]
fn forgotten_inodes_are_dropped_and_memory_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..200 {
        std::fs::write(src.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    let v = vault();
    backup(&v, &src, "t");
    let fs = MountFs::new(
        v.clone(),
        v.load_points().unwrap(),
        &MountOptions {
            cache_bytes: 1 << 20,
            single_point: None,
        },
    );
    let points = names(&fs, walk(&fs, &[b"points"]).ino);
    let sp = src_path(&src);
    let mut full: Vec<&[u8]> = vec![b"points", points[0].as_bytes(), b"files"];
    full.extend(sp.iter().map(Vec::as_slice));
    let dir = walk(&fs, &full);
    let before = fs.usage().0;
    let inos: Vec<Ino> = (0..200)
        .map(|i| fs.lookup(dir.ino, format!("f{i}").as_bytes()).unwrap().ino)
        .collect();
    assert_eq!(fs.usage().0, before + 200);
    inos.iter().for_each(|&i| fs.forget(i, 1));
    assert_eq!(fs.usage().0, before, "forgotten inodes are released");
    let again = fs.lookup(dir.ino, b"f7").unwrap().ino;
    assert_eq!(again, inos[7], "a path gets the same inode number when looked up again");
}
