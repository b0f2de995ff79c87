#!/usr/bin/env bash
# Installs what building and testing coffer needs on a fresh Debian machine (run as root).
# Idempotent: packages already present are left as they are.
set -euo pipefail

packages=(fuse3 acl attr rsync e2fsprogs btrfs-progs fdisk procps)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo (Rust 1.85 or newer) is needed: install it with rustup or your distribution" >&2
  exit 1
fi
