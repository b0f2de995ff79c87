#!/usr/bin/env bash
# The project's test command: installs what the tests need, then runs every test.
# This is exactly what CI runs (.ci/run calls it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --locked --all-targets
cargo test --locked -- --test-threads=2
