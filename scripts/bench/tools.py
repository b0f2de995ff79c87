"""Adapters that drive coffer, restic and borg the same way: init, backup, restore, mount, size.

Every command runs with encryption on. Paths inside mounts and restores differ per tool; each adapter knows its own.
"""
import os, subprocess, tempfile, time

PASSPHRASE = "bench-passphrase"


def run(cmd, env=None, cwd=None):
    """Runs a command under GNU time; returns (seconds, peak RSS in KiB, stdout). Fails loudly with its stderr."""
    with tempfile.NamedTemporaryFile("r") as t:
        start = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, *map(str, cmd)], env=env, cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        seconds = time.monotonic() - start
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
        rss = int(t.read().split()[-1])
    return seconds, rss, p.stdout.decode(errors="replace")


def dir_size(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_blocks * 512
            except OSError:
                pass
    return total


def process_hwm(match):
    """Peak RSS (VmHWM, KiB) of the first process whose command line contains `match`."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            if match in cmd and "bench.py" not in cmd:
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def wait_for(path, timeout=120):
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if os.listdir(path):
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError(f"{path} did not appear within {timeout} s")


class Tool:
    name = "?"

    def __init__(self, repo):
        self.repo = repo
        self.mount_proc = None

    def env(self):
        return dict(os.environ)

    def backup_disk(self, image):
        """Backs up a raw disk image; tools without disk support back it up as a file."""
        return self.backup(image)


class Coffer(Tool):
    name = "coffer"

    def __init__(self, repo, binary):
        super().__init__(repo)
        self.bin = binary

    def env(self):
        return dict(os.environ, COFFER_VAULT=self.repo, COFFER_PASSWORD=PASSPHRASE)

    def init(self):
        return run([self.bin, "-q", "init"], self.env())

    def backup(self, src):
        return run([self.bin, "-q", "backup", src], self.env())

    def backup_disk(self, image):
        return run([self.bin, "-q", "backup", "--disk", f"disk={image}"], self.env())

    def restore(self, src, target):
        r = run([self.bin, "-q", "restore", "latest", "--target", target], self.env())
        return r, os.path.join(target, src.lstrip("/"))

    def mount(self, mp):
        run([self.bin, "mount", "--daemon", mp], self.env())
        return os.path.join(mp, "latest", "files")

    def umount(self, mp):
        subprocess.run(["umount", mp], check=False)

    def mount_rss(self, mp):
        return process_hwm(f"mount {mp}")

    def prune_keep_last(self):
        # Purge at once, as restic and borg do (coffer keeps forgotten points 14 days by default).
        run([self.bin, "-q", "vault", "set", "soft-delete=0d"], self.env())
        return run([self.bin, "-q", "forget", "--keep-last", "1", "--prune"], self.env())


class Restic(Tool):
    name = "restic"

    def env(self):
        return dict(os.environ, RESTIC_REPOSITORY=self.repo, RESTIC_PASSWORD=PASSPHRASE, RESTIC_CACHE_DIR=self.repo + ".cache")

    def init(self):
        return run(["restic", "init", "-q"], self.env())

    def backup(self, src):
        return run(["restic", "backup", "-q", src], self.env())

    def restore(self, src, target):
        r = run(["restic", "restore", "-q", "latest", "--target", target], self.env())
        return r, os.path.join(target, src.lstrip("/"))

    def mount(self, mp):
        self.mount_proc = subprocess.Popen(["restic", "mount", mp], env=self.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(os.path.join(mp, "snapshots"))
        return os.path.join(mp, "snapshots", "latest")

    def umount(self, mp):
        subprocess.run(["umount", mp], check=False)
        if self.mount_proc:
            self.mount_proc.wait(timeout=60)
            self.mount_proc = None

    def mount_rss(self, mp):
        return process_hwm(f"restic mount {mp}")

    def prune_keep_last(self):
        return run(["restic", "forget", "-q", "--keep-last", "1", "--prune"], self.env())


class Borg(Tool):
    def __init__(self, repo, compression):
        super().__init__(repo)
        self.compression = compression
        self.name = f"borg-{compression.split(',')[0]}"
        self.count = 0

    def env(self):
        return dict(os.environ, BORG_REPO=self.repo, BORG_PASSPHRASE=PASSPHRASE, BORG_BASE_DIR=self.repo + ".base",
                    BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes")

    def init(self):
        return run(["borg", "init", "-e", "repokey-blake2"], self.env())

    def backup(self, src):
        self.count += 1
        return run(["borg", "create", "--compression", self.compression, f"::b{self.count}", src], self.env())

    def restore(self, src, target):
        os.makedirs(target, exist_ok=True)
        r = run(["borg", "extract", f"::b{self.count}"], self.env(), cwd=target)
        return r, os.path.join(target, src.lstrip("/"))

    def mount(self, mp):
        run(["borg", "mount", f"::b{self.count}", mp], self.env())
        return mp

    def umount(self, mp):
        subprocess.run(["borg", "umount", mp], env=self.env(), check=False)

    def mount_rss(self, mp):
        return process_hwm(f"mount ::b{self.count} {mp}")

    def prune_keep_last(self):
        a = run(["borg", "prune", "--keep-last", "1"], self.env())
        b = run(["borg", "compact"], self.env())
        return a[0] + b[0], max(a[1], b[1]), a[2] + b[2]
