#!/usr/bin/env python3
"""Deterministic benchmark dataset: a slice of /usr plus generated content, and a 1% mutation step.

    dataset.py make DIR [--quick]      build the tree in DIR (must not exist)
    dataset.py mutate DIR [--seed N]   change ~1% of it: edit 200 files, add 100, delete 100, append 4 MiB to big.bin
    dataset.py disk DIR [--quick]      DIR/before.img: a 2 GiB ext4 image (mkfs.ext4 -d) of ~700 MiB of /usr files;
                                       DIR/after.img: the same with 8 MiB overwritten inside a file (through a loop mount)

The /usr slice is the first files of /usr in sorted path order, so the same machine image gives the same tree.
Everything generated comes from a seeded PRNG.
"""
import os, random, subprocess, sys

FULL = dict(small=20_000, files=97_000, usr_bytes=950 << 20, big=512 << 20, sparse=1 << 30, max_file=1 << 20,
            disk_bytes=700 << 20, disk_size="2G")
QUICK = dict(small=2_000, files=12_000, usr_bytes=150 << 20, big=64 << 20, sparse=256 << 20, max_file=1 << 20,
             disk_bytes=150 << 20, disk_size="512M")


def usr_slice(limit_files, limit_bytes, max_file):
    """Relative paths under / of regular files and symlinks of /usr, in sorted order, up to the limits."""
    picked, total = [], 0
    for root, dirs, files in os.walk("/usr"):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if st.st_size > max_file or not os.access(path, os.R_OK):
                continue
            picked.append(path[1:])
            total += st.st_size
            if len(picked) >= limit_files or total >= limit_bytes:
                return picked
    return picked


def mixed(rng, size):
    """Half random, half compressible text, in 1 MiB stripes."""
    text = b"".join(b"line %08d of compressible benchmark text, repeated with small changes\n" % i for i in range(15000))
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(1 << 19)
        out += text[: 1 << 19]
    return bytes(out[:size])


def generated(d, cfg, rng):
    g = os.path.join(d, "generated")
    os.makedirs(g)
    with open(os.path.join(g, "big.bin"), "wb") as f:
        f.write(mixed(rng, cfg["big"]))
    with open(os.path.join(g, "sparse.img"), "wb") as f:
        f.truncate(cfg["sparse"])
        for off in range(0, cfg["sparse"], cfg["sparse"] // 4):
            f.seek(off)
            f.write(rng.randbytes(1 << 20))
    deep = os.path.join(g, *[f"level{i:02d}" for i in range(40)])
    os.makedirs(deep)
    open(os.path.join(deep, "bottom.txt"), "w").write("deep\n")
    for i in range(cfg["small"]):
        sub = os.path.join(g, "small", f"d{i % 200:03d}")
        os.makedirs(sub, exist_ok=True)
        p = os.path.join(sub, f"f{i:04d}.txt")
        with open(p, "wb") as f:
            f.write(rng.randbytes(rng.randrange(0, 4000)) if i % 10 else b"")
        if i % 7 == 0:
            os.setxattr(p, "user.bench", b"value %d" % i)
        if i % 50 == 0:
            os.link(p, p + ".hardlink")
        if i % 30 == 0:
            os.symlink(f"f{i:04d}.txt", p + ".symlink")


def make(d, quick):
    cfg = QUICK if quick else FULL
    rng = random.Random(20261124)
    os.makedirs(d)
    files = usr_slice(cfg["files"], cfg["usr_bytes"], cfg["max_file"])
    lst = os.path.join(d, ".files-from")
    with open(lst, "w") as f:
        f.write("\n".join(files) + "\n")
    subprocess.run(["rsync", "-aHAX", "--files-from", lst, "/", os.path.join(d, "tree")], check=True)
    os.remove(lst)
    generated(d, cfg, rng)


def mutate(d, seed):
    """~1% change: edit 200 files in place, add 100, delete 100, append 4 MiB to big.bin."""
    rng = random.Random(seed)
    files = []
    for root, dirs, names in os.walk(os.path.join(d, "tree")):
        dirs.sort()
        files += [os.path.join(root, n) for n in sorted(names) if os.path.isfile(os.path.join(root, n)) and not os.path.islink(os.path.join(root, n))]
    victims = rng.sample(files, 300)
    for p in victims[:200]:
        size = os.path.getsize(p)
        if size:
            with open(p, "r+b") as f:
                f.seek(rng.randrange(size))
                f.write(rng.randbytes(min(64, size)))
    for p in victims[200:]:
        os.remove(p)
    new = os.path.join(d, "generated", f"new-{seed}")
    os.makedirs(new, exist_ok=True)
    for i in range(100):
        with open(os.path.join(new, f"n{i:03d}"), "wb") as f:
            f.write(rng.randbytes(rng.randrange(1000, 50000)))
    with open(os.path.join(d, "generated", "big.bin"), "ab") as f:
        f.write(rng.randbytes(4 << 20))


def make_disk(d, quick, seed=8):
    """before.img: an ext4 image of a /usr slice (files up to 64 MiB); after.img: a sparse copy changed by
    `change_image` with 8 MiB overwritten. Returns both paths."""
    cfg = QUICK if quick else FULL
    os.makedirs(d)
    staging = os.path.join(d, "fs")
    lst = os.path.join(d, ".files-from")
    with open(lst, "w") as f:
        f.write("\n".join(usr_slice(10**9, cfg["disk_bytes"], 64 << 20)) + "\n")
    subprocess.run(["rsync", "-aHAX", "--files-from", lst, "/", staging], check=True)
    before, after = os.path.join(d, "before.img"), os.path.join(d, "after.img")
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", staging, before, cfg["disk_size"]], check=True)
    subprocess.run(["rm", "-rf", staging, lst], check=True)
    subprocess.run(["cp", "--sparse=always", before, after], check=True)
    change_image(after, random.Random(seed))
    return before, after


def change_image(image, rng, new_files=0):
    """Through a loop mount of `image`: 8 MiB overwritten at a random place of its largest file, then `new_files`
    new 4 KiB files spread over up to 50 directories."""
    mnt = image + ".mnt"
    os.makedirs(mnt)
    subprocess.run(["mount", "-o", "loop", image, mnt], check=True)
    try:
        files = [os.path.join(r, n) for r, _, ns in sorted(os.walk(mnt)) for n in sorted(ns)]
        files = [f for f in files if os.path.isfile(f) and not os.path.islink(f)]
        largest = max(files, key=os.path.getsize)
        with open(largest, "r+b") as f:
            f.seek(rng.randrange(0, max(1, os.path.getsize(largest) - (8 << 20))))
            f.write(rng.randbytes(8 << 20))
        dirs = sorted({os.path.dirname(f) for f in files})
        for i in range(new_files):
            with open(os.path.join(dirs[i * 7919 % len(dirs)], f"bench-new-{i}"), "wb") as f:
                f.write(rng.randbytes(4096))
    finally:
        subprocess.run(["umount", mnt], check=True)
        os.rmdir(mnt)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "make":
        make(sys.argv[2], "--quick" in sys.argv)
    elif len(sys.argv) >= 3 and sys.argv[1] == "mutate":
        mutate(sys.argv[2], int(sys.argv[sys.argv.index("--seed") + 1]) if "--seed" in sys.argv else 1)
    elif len(sys.argv) >= 3 and sys.argv[1] == "disk":
        make_disk(sys.argv[2], "--quick" in sys.argv)
    else:
        sys.exit(__doc__)
