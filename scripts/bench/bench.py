#!/usr/bin/env python3
"""coffer side by side with restic and borg on the same data, in the same run. See docs/benchmarks.md.

    bench.py --work DIR [--quick] [--runs N] [--coffer BIN] [--out FILE.md]

Every figure is the median of --runs runs (tools alternate within each run). Restores and copies write into a freshly
made ext4 file system on a loop device. Each row says whether its input was cold (caches dropped before the step) or
warm (read just before).
"""
import argparse, json, os, platform, random, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dataset, tools  # noqa: E402

MiB = 1 << 20


def drop_caches():
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def pre_read(path):
    """Reads every file once so the step after it starts warm."""
    subprocess.run(["tar", "-cf", "/dev/null", path], check=False, stderr=subprocess.DEVNULL)


class Target:
    """A fresh ext4 file system on a loop device, remade for every restore or copy."""

    def __init__(self, work, size_gb):
        self.img, self.mp = os.path.join(work, "target.img"), os.path.join(work, "target")
        os.makedirs(self.mp, exist_ok=True)
        with open(self.img, "ab") as f:
            f.truncate(size_gb << 30)

    def fresh(self):
        self.close()
        subprocess.run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1", self.img], check=True)
        subprocess.run(["mount", "-o", "loop", self.img, self.mp], check=True)
        return self.mp

    def close(self):
        if os.path.ismount(self.mp):
            subprocess.run(["umount", self.mp], check=True)


def pick_subdir(root, want):
    """The directory whose tree is closest to `want` bytes (apparent), for the `cp -a` row."""
    sizes = {}
    for d, _, files in os.walk(root, topdown=False):
        total = sum(os.lstat(os.path.join(d, f)).st_size for f in files)
        total += sum(sizes.get(os.path.join(d, s), 0) for s in os.listdir(d) if os.path.join(d, s) in sizes)
        sizes[d] = total
    return min(sizes, key=lambda d: abs(sizes[d] - want))


class Results:
    def __init__(self):
        self.rows = {}  # row -> tool -> list of values

    def add(self, row, tool, value):
        self.rows.setdefault(row, {}).setdefault(tool, []).append(value)

    def median(self, row, tool):
        v = self.rows.get(row, {}).get(tool)
        return statistics.median(v) if v else None


def timed(res, row, tool, result):
    seconds, rss, _ = result
    res.add(row, tool, seconds)
    res.add(row.replace("time (s)", "peak RSS (MiB)"), tool, rss / 1024)
    return seconds


def backups(res, work, data, tool_sets, runs):
    for r in range(runs):
        for t in rotate(tool_sets[r], r):
            pre_read(data)
            t.init()
            timed(res, "1. first backup, warm: time (s)", t.name, t.backup(data))
            res.add("5a. vault size after first backup (MiB)", t.name, tools.dir_size(t.repo) / MiB)
            timed(res, "2. unchanged backup, warm: time (s)", t.name, t.backup(data))
    dataset.mutate(data, 7)
    for r in range(runs):
        for t in rotate(tool_sets[r], r):
            pre_read(data)
            timed(res, "3. backup after 1% change, warm: time (s)", t.name, t.backup(data))
            res.add("5b. vault size after the change (MiB)", t.name, tools.dir_size(t.repo) / MiB)


def disks(res, before, after, tool_sets, runs):
    """Rows 4 and 5c/5d: each tool backs up the image as one file (coffer as a disk), then the changed image at the
    same path. Each copy is written just before its backup, so both backups start warm."""
    img = os.path.join(os.path.dirname(before), "disk.img")
    for r in range(runs):
        for t in rotate(tool_sets[r], r):
            t.init()
            for row, size_row, source in [("4a. disk image first backup, warm: time (s)", "5c. vault size after the disk image (MiB)", before),
                                          ("4b. disk image after 8 MiB change, warm: time (s)", "5d. vault size after the image change (MiB)", after)]:
                subprocess.run(["cp", "--sparse=always", source, img], check=True)
                timed(res, row, t.name, t.backup_disk(img))
                res.add(size_row, t.name, tools.dir_size(t.repo) / MiB)
    os.remove(img)


def prunes(res, tool_sets, runs):
    """Row 9: after the three tree backups, forget all but the newest and free what only the others used."""
    for r in range(runs):
        for t in rotate(tool_sets[r], r):
            timed(res, "9. forget all but the newest + prune: time (s)", t.name, t.prune_keep_last())
            res.add("5e. vault size after prune (MiB)", t.name, tools.dir_size(t.repo) / MiB)


def rotate(seq, n):
    return seq[n % len(seq):] + seq[: n % len(seq)]


def restores(res, data, tool_list, target, runs):
    for r in range(runs):
        for t in rotate(tool_list, r):
            mp = target.fresh()
            drop_caches()
            result, where = t.restore(data, os.path.join(mp, "r"))
            timed(res, "6. full restore, cold: time (s)", t.name, result)
            if not os.path.exists(os.path.join(where, "generated", "big.bin")):
                raise RuntimeError(f"{t.name} restore lacks generated/big.bin under {where}")
    target.close()


def mounts(res, work, data, tool_list, target, runs, subdir):
    mp = os.path.join(work, "mnt")
    os.makedirs(mp, exist_ok=True)
    for r in range(runs):
        for t in rotate(tool_list, r):
            browse(res, t, mp, data)
            read_big(res, t, mp, data)
            copy_out(res, t, mp, data, target, subdir)
    for r in range(runs):
        dst = target.fresh()
        drop_caches()
        res.add("7f. cp -a of the subdirectory, cold (s)", "local source", tools.run(["cp", "-a", subdir, dst])[0])
    target.close()


def inside(point_root, data):
    return os.path.join(point_root, data.lstrip("/"))


def browse(res, t, mp, data):
    drop_caches()
    start = time.monotonic()
    root = inside(t.mount(mp), data)
    os.listdir(root)
    res.add("7a. mount ready + first ls, cold (s)", t.name, time.monotonic() - start)
    start = time.monotonic()
    n = int(subprocess.run(f"find '{root}' | wc -l", shell=True, capture_output=True, text=True).stdout)
    res.add("7b. find | wc -l over the point (s)", t.name, time.monotonic() - start)
    res.add("entries seen by find", t.name, n)
    big = os.path.join(root, "generated", "big.bin")
    fd, lat, rng = os.open(big, os.O_RDONLY), [], random.Random(5)
    size = os.fstat(fd).st_size
    for _ in range(1000):
        off = rng.randrange(0, size - 4096)
        s = time.monotonic()
        os.pread(fd, 4096, off)
        lat.append((time.monotonic() - s) * 1000)
    os.close(fd)
    lat.sort()
    res.add("7e. random 4 KiB pread p50 (ms)", t.name, lat[len(lat) // 2])
    res.add("7e. random 4 KiB pread p99 (ms)", t.name, lat[int(len(lat) * 0.99)])
    res.add("8. mount process peak RSS (MiB)", t.name, t.mount_rss(mp) / 1024)
    t.umount(mp)


def read_big(res, t, mp, data):
    drop_caches()
    big = os.path.join(inside(t.mount(mp), data), "generated", "big.bin")
    size = os.path.getsize(big)
    for label in ("cold", "warm"):
        s = time.monotonic()
        subprocess.run(["cat", big], stdout=subprocess.DEVNULL, check=True)
        res.add(f"7c. cat of big.bin, {label} (MB/s)", t.name, size / 1e6 / (time.monotonic() - s))
    res.add("8. mount process peak RSS (MiB)", t.name, t.mount_rss(mp) / 1024)
    t.umount(mp)


def copy_out(res, t, mp, data, target, subdir):
    dst = target.fresh()
    drop_caches()
    src = os.path.join(inside(t.mount(mp), data), os.path.relpath(subdir, data))
    res.add("7f. cp -a of the subdirectory, cold (s)", t.name, tools.run(["cp", "-a", src, dst])[0])
    res.add("8. mount process peak RSS (MiB)", t.name, t.mount_rss(mp) / 1024)
    t.umount(mp)


LOWER_IS_BETTER = ("(s)", "(ms)", "(MiB)")


def table(res, names, machine):
    lines = [f"Machine: {machine}", "", "| row | " + " | ".join(names) + " | coffer vs best peer |",
             "|---|" + "---|" * (len(names) + 1)]
    for row in sorted(res.rows):
        vals = {n: res.median(row, n) for n in names}
        cells = ["" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}" for v in vals.values()]
        peers = [v for n, v in vals.items() if n != "coffer" and v is not None and n != "local source"]
        ratio = ""
        if vals.get("coffer") and peers and row.endswith(LOWER_IS_BETTER + ("(MB/s)",)):
            lower = row.endswith(LOWER_IS_BETTER)
            best = min(peers) if lower else max(peers)
            ratio = f"{best / vals['coffer']:.2f}x" if lower else f"{vals['coffer'] / best:.2f}x"
        lines.append(f"| {row} | " + " | ".join(cells) + f" | {ratio} |")
    lines.append("")
    lines.append("Ratios above 1 mean coffer is better (faster, smaller, lighter) than the best of restic and borg.")
    return "\n".join(lines)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))) // (1 << 20)
    ver = lambda c: subprocess.run(c, capture_output=True, text=True).stdout.strip().splitlines()[0]
    return (f"{os.cpu_count()} cores ({cpu}), {mem} GiB, kernel {platform.release()}; "
            f"{ver(['restic', 'version'])}; {ver(['borg', '--version'])}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int)
    ap.add_argument("--coffer", default="target/release/coffer")
    ap.add_argument("--out")
    a = ap.parse_args()
    runs = a.runs or (1 if a.quick else 3)
    work, coffer = os.path.abspath(a.work), os.path.abspath(a.coffer)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "repos"))
    data = os.path.join(work, "data")
    dataset.make(data, a.quick)
    subdir = pick_subdir(os.path.join(data, "tree"), (40 if a.quick else 200) * MiB)
    before, after = dataset.make_disk(os.path.join(work, "disk"), a.quick)
    repo = lambda name, r, kind: os.path.join(work, "repos", f"{name}-{kind}-{r}")
    sets = lambda kind: [[tools.Coffer(repo("coffer", r, kind), coffer), tools.Restic(repo("restic", r, kind)),
                          tools.Borg(repo("borg-zstd", r, kind), "zstd,3"), tools.Borg(repo("borg-lz4", r, kind), "lz4")]
                         for r in range(runs)]
    tree_sets = sets("tree")
    res = Results()
    target = Target(work, 8 if a.quick else 16)
    try:
        backups(res, work, data, tree_sets, runs)
        restores(res, data, tree_sets[0], target, runs)
        mounts(res, work, data, tree_sets[0], target, runs, subdir)
        prunes(res, tree_sets, runs)
        disks(res, before, after, sets("disk"), runs)
    finally:
        target.close()
    names = [t.name for t in tree_sets[0]] + ["local source"]
    text = table(res, names, machine())
    text += f"\n\nDataset: {'quick' if a.quick else 'full'}, runs: {runs}, cp -a subdirectory: {os.path.relpath(subdir, data)}\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
        with open(a.out + ".json", "w") as f:
            json.dump(res.rows, f, indent=1)


if __name__ == "__main__":
    main()
