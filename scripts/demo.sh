#!/usr/bin/env bash
# One command from a fresh machine to a first recovery point: installs what is needed, builds coffer, creates a
# vault (default /var/lib/coffer/vault, or $COFFER_VAULT), backs up a directory (default: /etc) and shows the result.
#   bash scripts/demo.sh [DIRECTORY]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked
bin=$PWD/target/release/coffer
export COFFER_VAULT=${COFFER_VAULT:-/var/lib/coffer/vault}
if [ -z "${COFFER_PASSWORD:-}" ]; then
  echo "COFFER_PASSWORD is not set: using the demo passphrase 'demo' (set your own for real use)" >&2
  export COFFER_PASSWORD=demo
fi
src=${1:-/etc}
[ -f "$COFFER_VAULT/config" ] || "$bin" init
id=$("$bin" backup "$src")
"$bin" list
echo "--- top of recovery point $id:"
"$bin" ls "$id" "$src" -l | head -20
