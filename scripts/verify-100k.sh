#!/usr/bin/env bash
# End-to-end check at scale: a tree of ~100k files with xattrs, ACLs, hardlinks, sparse files, special files and
# non-UTF-8 names is backed up, restored and compared with `rsync -aHAXn --checksum`; then a second backup of the
# unchanged tree must read no file content. Run as root. Prints timings. Usage: scripts/verify-100k.sh [FILES]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
bash scripts/install-deps.sh
cargo build --release --locked -q
bin=$PWD/target/release/coffer
work=$(mktemp -d /var/tmp/coffer-100k.XXXXXX)
trap 'rm -rf "$work"' EXIT
src=$work/src
mkdir -p "$src"
python3 - "$src" "$n" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
dirs = []
for i in range(n // 100):
    d = os.path.join(root, f"d{i // 30:03d}", f"sub{i:05d}")
    os.makedirs(d, exist_ok=True)
    dirs.append(d)
for i in range(n):
    d = dirs[i % len(dirs)]
    name = f"f{i:06d}.txt" if i % 97 else f"f{i:06d}-caf\xe9".encode("latin-1")
    path = os.path.join(d.encode(), name if isinstance(name, bytes) else name.encode())
    size = rnd.choice([0, 10, 100, 1000, 5000, 20000])
    with open(path, "wb") as f:
        f.write(rnd.randbytes(size // 2) + b"x" * (size - size // 2))
    if i % 50 == 0:
        os.setxattr(path, b"user.note", f"file {i}".encode())
    if i % 1000 == 0:
        os.link(path, path + b".link")
    if i % 333 == 0:
        os.symlink(b"../target-\xff" if i % 2 else b"f000001.txt", path + b".sym")
    os.utime(path, ns=(1_600_000_000_123_456_789 + i, 1_600_000_000_987_654_321 + i))
sp = os.path.join(root, "sparse.img")
with open(sp, "wb") as f:
    f.truncate(1 << 30)
    for off in (0, 300 << 20, 900 << 20):
        f.seek(off); f.write(rnd.randbytes(1 << 20))
os.mkfifo(os.path.join(root, "fifo"))
os.mknod(os.path.join(root, "null"), 0o20666, os.makedev(1, 3))
os.chmod(os.path.join(root, "d000"), 0o2775)
PY
setfacl -m u:1234:rwx,g:5678:r "$src/d000"
setfacl -d -m u:1234:rwx "$src/d000"
chown -R 1000:1000 "$src/d001"
export COFFER_VAULT=$work/vault COFFER_PASSWORD=verify
"$bin" -q init
echo "files: $(find "$src" | wc -l) entries, $(du -sh --apparent-size "$src" | cut -f1) apparent"
t() { /usr/bin/time -f "  %e s, %M KB max RSS" "$@"; }
echo "first backup:";  t "$bin" -q backup "$src" >/dev/null
echo "second backup (unchanged):"
second=$(t "$bin" -q backup --json "$src")
echo "$second" | python3 -c 'import json,sys; s=json.load(sys.stdin)["sizes"]; print("  files read:", s["files_read"], "bytes read:", s["bytes_read"], "bytes new:", s["bytes_new"]); sys.exit(0 if s["files_read"]==0 and s["bytes_read"]==0 else 1)'
echo "restore:"; t "$bin" -q restore latest --target "$work/restore"
echo "rsync -aHAXn --checksum differences:"
diffs=$(rsync -aHAXn --checksum --itemize-changes "$src/" "$work/restore$src/")
if [ -n "$diffs" ]; then echo "$diffs" | head -20; echo "FAIL: restored tree differs"; exit 1; fi
echo "  none"
sparse_kb=$(du -k "$work/restore$src/sparse.img" | cut -f1)
echo "sparse.img restored using ${sparse_kb} KiB on disk (apparent 1 GiB)"
[ "$sparse_kb" -lt 10240 ] || { echo "FAIL: sparse file not sparse"; exit 1; }
echo "check --read-data:"; t "$bin" -q check --read-data

echo "mount (browsing like a file manager):"
mnt=$work/mnt; mkdir -p "$mnt"
trap 'umount "$mnt" 2>/dev/null; rm -rf "$work"' EXIT
t "$bin" mount --daemon "$mnt"
point="$mnt/latest/files$src"
echo "  first ls of the source directory:"; t ls "$point" >/dev/null
echo "  find | wc -l over the point:"; t sh -c "find '$mnt/latest/files' | wc -l"
echo "  stat of every entry (ls -lR):"; t sh -c "ls -lR '$point' >/dev/null"
echo "  first 4 KiB of 5000 files (thumbnails):"
t sh -c "find '$point/d000' '$point/d001' -type f | head -5000 | xargs -d '\n' head -c 4096 >/dev/null"
echo "  mount process RSS: $(ps -o rss= -C coffer | sort -n | tail -1) KB"
diffs=$(rsync -aHAXn --checksum --itemize-changes "$src/" "$point/")
if [ -n "$diffs" ]; then echo "$diffs" | head -20; echo "FAIL: the mount differs from the source"; exit 1; fi
echo "  rsync -aHAXn --checksum source vs mount: no differences"
umount "$mnt"
echo "PASS"
