#!/usr/bin/env bash
# Installs what building and testing coffer needs on a fresh Debian machine (run as root): system packages, and the
# loopback object-storage servers of the tests (PyPI moto[server], npm azurite).
# Idempotent: what is already present is left as it is.
set -euo pipefail

packages=(fuse3 acl attr rsync e2fsprogs btrfs-progs fdisk procps)
# The object-storage tests run an S3 endpoint (moto, Python) and Azure Blob (Azurite, Node.js) on loopback.
command -v python3 >/dev/null 2>&1 || packages+=(python3 python3-pip)
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if ! python3 -c 'import moto.server' >/dev/null 2>&1; then
  # Debian's own Python refuses pip installs outside a venv (PEP 668); a pyenv or venv Python takes the first form.
  python3 -m pip install --quiet 'moto[server]' ||
    python3 -m pip install --quiet --break-system-packages 'moto[server]'
fi
if ! command -v azurite-blob >/dev/null 2>&1; then
  npm install --global --silent azurite
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo (Rust 1.85 or newer) is needed: install it with rustup or your distribution" >&2
  exit 1
fi
