#!/usr/bin/env bash
# Benchmark coffer against restic and borg on the same data (see docs/benchmarks.md). Run as root.
#   scripts/bench/run.sh [--quick] [--runs N]     (work files go to $BENCH_WORK, default /var/tmp/coffer-bench)
set -euo pipefail
cd "$(dirname "$0")/../.."
bash scripts/install-deps.sh
for p in restic borgbackup time rsync e2fsprogs python3; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="${missing:-} $p"
done
if [ -n "${missing:-}" ]; then apt-get update -qq && apt-get install -y -qq $missing >/dev/null; fi
cargo build --release --locked -q
work=${BENCH_WORK:-/var/tmp/coffer-bench}
mkdir -p scripts/bench/results
suffix=""
if [[ " $* " == *" --quick "* ]]; then suffix=-quick; fi
out=scripts/bench/results/$(date -u +%Y%m%dT%H%M%SZ)$suffix.md
python3 scripts/bench/bench.py --work "$work" --coffer target/release/coffer --out "$out" "$@"
echo "results: $out"
