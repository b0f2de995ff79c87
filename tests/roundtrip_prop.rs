//! Property test through the library on an in-memory store: random trees (random names including non-UTF-8 bytes,
//! random sizes, holes, modes and times) back up and restore identically, and a second backup reads nothing.

use coffer::backup::{self, BackupOptions, exclude::Patterns, progress::Progress};
use coffer::crypto::KdfParams;
use coffer::restore::{self, RestoreOptions};
use coffer::store::MemoryStore;
use coffer::vault::{InitOptions, PointFilter, Vault, resolve_point};
use coffer::view::View;
use proptest::prelude::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone)]
enum Item {
    File {
        name: Vec<u8>,
        len: usize,
        hole_at: Option<usize>,
        mode: u32,
        seed: u8,
    },
    Dir {
        name: Vec<u8>,
        items: Vec<Item>,
    },
    Link {
        name: Vec<u8>,
        target: Vec<u8>,
    },
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(prop_oneof![b'a'..=b'z', Just(0xffu8), Just(b' '), 0x80u8..=0xfe], 1..12)
}

fn item() -> impl Strategy<Value = Item> {
    let leaf = prop_oneof![
        (
            name(),
            0usize..600_000,
            proptest::option::of(0usize..3),
            prop_oneof![Just(0o644u32), Just(0o4755), Just(0o400)],
            any::<u8>()
        )
            .prop_map(|(name, len, hole_at, mode, seed)| Item::File {
                name,
                len,
                hole_at,
                mode,
                seed
            }),
        (name(), name()).prop_map(|(name, target)| Item::Link { name, target }),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        (name(), proptest::collection::vec(inner, 0..6)).prop_map(|(name, items)| Item::Dir { name, items })
    })
}

fn create(dir: &Path, items: &[Item]) {
    for it in items {
        match it {
            Item::File {
                name,
                len,
                hole_at,
                mode,
                seed,
            } => {
                let p = dir.join(OsStr::from_bytes(name));
                if p.exists() {
                    continue;
                }
                let f = std::fs::File::create(&p).unwrap();
                let data: Vec<u8> = (0..*len)
                    .map(|i| (i as u8).wrapping_mul(*seed) ^ (i >> 9) as u8)
                    .collect();
                match hole_at {
                    Some(k) if *len > 0 => {
                        f.set_len((*len + (k + 1) * 1_048_576) as u64).unwrap();
                        f.write_all_at(&data, (k * 2_097_152) as u64).unwrap();
                    }
                    _ => f.write_all_at(&data, 0).unwrap(),
                }
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
            }
            Item::Dir { name, items } => {
                let p = dir.join(OsStr::from_bytes(name));
                if std::fs::create_dir(&p).is_ok() {
                    create(&p, items);
                }
            }
            Item::Link { name, target } => {
                let _ = std::os::unix::fs::symlink(OsStr::from_bytes(target), dir.join(OsStr::from_bytes(name)));
            }
        }
    }
}

/// Every entry below `root`: relative path, kind, mode, size, mtime, content or link target.
type Entry = (Vec<u8>, u32, u64, i64, i64, Vec<u8>);

fn snapshot(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let body = if md.is_file() {
                std::fs::read(&p).unwrap()
            } else if md.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()
            } else {
                stack.push(p.clone());
                Vec::new()
            };
            let rel = p.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
            let mtime = if md.file_type().is_symlink() { 0 } else { md.mtime() };
            out.push((
                rel,
                md.mode(),
                md.size(),
                mtime,
                md.mtime_nsec() * (mtime != 0) as i64,
                body,
            ));
        }
    }
    out.sort();
    out
}

fn vault() -> Arc<Vault> {
    let opts = InitOptions {
        kdf: KdfParams::FAST_FOR_TESTS,
        ..Default::default()
    };
    Arc::new(Vault::init(Arc::new(MemoryStore::new()), b"pw", &opts).unwrap())
}

fn backup_opts(src: &Path) -> BackupOptions {
    BackupOptions {
        read_threads: 3,
        ..BackupOptions::files(vec![src.to_path_buf()], "test")
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_restore_identically(items in proptest::collection::vec(item(), 1..8)) {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        create(&src, &items);
        let v = vault();
        let first = backup::run(v.clone(), &backup_opts(&src), &Progress::default()).unwrap();
        prop_assert!(first.errors.is_empty(), "{:?}", first.errors);
        let second = backup::run(v.clone(), &backup_opts(&src), &Progress::default()).unwrap();
        prop_assert_eq!(second.stats.files_read, 0);
        prop_assert_eq!(second.tree, first.tree);
        let point = resolve_point(&v, "latest", &PointFilter::default()).unwrap();
        let view = View::new(v.clone());
        let opts = RestoreOptions { includes: Patterns::new(&[]).unwrap(), excludes: Patterns::new(&[]).unwrap(), owner: true };
        let target = tmp.path().join("out");
        let plan = restore::plan(&view, &point, Some(&src), &opts).unwrap();
        let report = restore::execute(&view, &plan, &target, &opts).unwrap();
        prop_assert!(report.errors.is_empty(), "{:?}", report.errors);
        prop_assert!(restore::verify(&v, &plan, &target).is_empty());
        prop_assert_eq!(snapshot(&src), snapshot(&target));
    }
}
