#!/usr/bin/env bash
# Builds Stoke (release) and starts `stoke serve` on its embedded default: one SQLite file and a
# folder of code blobs under ./.stoke, nothing else to install or start.
#
#   scripts/serve.sh [stoke serve flags...]     e.g. --listen 0.0.0.0:9000 --data-dir /var/lib/stoke
#
# Works on a fresh Debian/Ubuntu machine with Rust (rustup, 1.95 or newer); installs the C
# toolchain that some crates need if it is missing, and the runtime libraries (boto3 and
# botocore for python3.x functions, scripts/runtime-libs.txt; the AWS SDK v3 clients for nodejs*
# ones where npm is installed, scripts/runtime-libs-node) into $STOKE_RUNTIME_LIBS (default
# ./.stoke/runtime-libs), which `stoke serve` mounts under /var/runtime.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SUDO=()
if [[ "$(id -u)" -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  # e2fsprogs: mkfs.ext4 and debugfs, for process sandboxes' /tmp disks and read-only images.
  for p in build-essential pkg-config python3 python3-venv e2fsprogs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [[ ${#missing[@]} -gt 0 ]]; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), toolchain 1.95 or newer" >&2
  exit 1
fi

STOKE_RUNTIME_LIBS="$(scripts/runtime-libs.sh "${STOKE_RUNTIME_LIBS:-$ROOT/.stoke/runtime-libs}" | tail -n1)"
export STOKE_RUNTIME_LIBS

cargo build --release -p stoke
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
exec "$TARGET/release/stoke" serve "$@"
