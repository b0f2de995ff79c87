#!/usr/bin/env python3
"""Measures coffer's fixed disk chunk size: first backup, an incremental after a realistic change, vault size,
chunk count and random 4 KiB reads through the mount, for each size given (default 256K, 1M, 4M).

The disk: a 2 GiB ext4 image made with `mkfs.ext4 -d` from a copy of system files (--source, default
/usr/lib/x86_64-linux-gnu). The change, made through a loop mount of a copy of the image: 8 MiB overwritten in place
in the largest file, plus 200 new 4 KiB files spread over up to 200 directories (scattered writes, the case that
punishes large chunks), plus the ext4 metadata and journal blocks those touch. Seeded, so every size sees the same bytes.

Usage (root; needs mkfs.ext4, losetup, GNU time): python3 scripts/bench/disk_chunk.py --coffer target/release/coffer
"""
import argparse, json, os, random, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(__file__))
import dataset  # noqa: E402
from tools import PASSPHRASE, dir_size, run  # noqa: E402

SIZES = {"256K": 256 << 10, "1M": 1 << 20, "4M": 4 << 20}


def make_images(work, source, seed):
    """Builds before.img from `source` and after.img = before.img plus the seeded change. Returns both paths."""
    before, after = os.path.join(work, "before.img"), os.path.join(work, "after.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", source, before, "2G"], check=True)
    subprocess.run(["cp", "--sparse=always", before, after], check=True)
    dataset.change_image(after, random.Random(seed), new_files=200)
    return before, after


def coffer(binary, vault, *args):
    env = dict(os.environ, COFFER_VAULT=vault, COFFER_PASSWORD=PASSPHRASE)
    return run([binary, "-q", *args], env)


def backup(binary, vault, image, chunk):
    secs, rss, out = coffer(binary, vault, "backup", "--json", "--host", "bench", "--disk-chunk-size", str(chunk),
                            "--disk", f"sda={image}")
    point = json.loads(out)
    return secs, rss, point


def data_blocks(image):
    """Offsets of every 4 KiB block of `image` that holds data (SEEK_DATA/SEEK_HOLE), so reads do not land in holes."""
    blocks, fd = [], os.open(image, os.O_RDONLY)
    try:
        end, pos = os.fstat(fd).st_size, 0
        while pos < end:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break
            pos = os.lseek(fd, start, os.SEEK_HOLE)
            blocks.extend(range(start // 4096 * 4096, pos, 4096))
    finally:
        os.close(fd)
    return blocks


def random_reads(binary, vault, work, blocks, seed, count=200):
    """Median and p90 latency (ms) of `count` 4 KiB reads at seeded data offsets of disks/sda.img in a fresh mount."""
    mp = os.path.join(work, "mp")
    os.makedirs(mp, exist_ok=True)
    coffer(binary, vault, "mount", "--daemon", mp)
    try:
        rng = random.Random(seed)
        path = os.path.join(mp, "latest", "disks", "sda.img")
        fd = os.open(path, os.O_RDONLY)
        times = []
        for _ in range(count):
            offset = rng.choice(blocks)
            t = time.monotonic()
            os.pread(fd, 4096, offset)
            times.append((time.monotonic() - t) * 1000)
        os.close(fd)
    finally:
        subprocess.run(["umount", mp], check=False)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.9)]


def measure(binary, work, before, after, label, chunk, seed):
    vault = os.path.join(work, f"vault-{label}")
    coffer(binary, vault, "init")
    t1, rss1, p1 = backup(binary, vault, before, chunk)
    size1 = dir_size(vault)
    t2, rss2, p2 = backup(binary, vault, after, chunk)
    size2 = dir_size(vault)
    p50, p90 = random_reads(binary, vault, work, data_blocks(after), seed)
    row = {
        "chunk": label,
        "first_s": round(t1, 2),
        "first_rss_mib": rss1 // 1024,
        "vault_mib": round(size1 / 2**20, 1),
        "blobs_first": p1["sizes"]["blobs_new"],
        "changed_mib": round(p2["disks"][0]["bytes_changed"] / 2**20, 1),
        "incr_s": round(t2, 2),
        "incr_stored_mib": round((size2 - size1) / 2**20, 1),
        "read_p50_ms": round(p50, 2),
        "read_p90_ms": round(p90, 2),
    }
    shutil.rmtree(vault)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--coffer", required=True)
    ap.add_argument("--source", default="/usr/lib/x86_64-linux-gnu")
    ap.add_argument("--sizes", default="256K,1M,4M")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir, removed after)")
    a = ap.parse_args()
    binary = os.path.abspath(a.coffer)
    work = a.work or tempfile.mkdtemp(prefix="coffer-disk-chunk-")
    try:
        before, after = make_images(work, a.source, a.seed)
        data = int(subprocess.check_output(["du", "-B1", before]).split()[0])
        print(f"image: 2 GiB, {data / 2**20:.0f} MiB allocated, from {a.source}", flush=True)
        for label in a.sizes.split(","):
            print(json.dumps(measure(binary, work, before, after, label, SIZES[label], a.seed)), flush=True)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
