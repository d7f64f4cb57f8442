#!/usr/bin/env bash
# Installs the runtime libraries into DIR, unless the pins there are already those, as Lambda's
# runtimes ship them under /var/runtime (never the host's): DIR/python, the boto3 and botocore of
# python3.x functions (scripts/runtime-libs.txt); DIR/node/node_modules, the AWS SDK for
# JavaScript v3 clients of nodejs* functions (scripts/runtime-libs-node/package-lock.json, with
# npm ci; skipped with a warning where npm is missing). Prints DIR on its last line.
#
#   scripts/runtime-libs.sh DIR [PYTHON]    PYTHON: a Python with pip (default: a venv made in DIR)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$1"
PY="${2:-}"
PINS="$(grep -v '^#' "$ROOT/scripts/runtime-libs.txt" | xargs)"
mkdir -p "$DIR"

# nodejs*: npm ci of the lock file into DIR/node/node_modules.
node_libs() {
  local lock="$ROOT/scripts/runtime-libs-node/package-lock.json" target="$DIR/node" pin tmp
  pin="$(sha256sum "$lock" | cut -d' ' -f1)"
  if [[ -f "$target/.pin" && "$(cat "$target/.pin")" == "$pin" ]]; then
    echo "runtime libraries of nodejs* at $target"
    return
  fi
  if ! command -v npm >/dev/null 2>&1; then
    echo "warning: npm is missing: nodejs* functions get no AWS SDK under /var/runtime" >&2
    return
  fi
  echo "installing the runtime libraries of nodejs* (the AWS SDK v3 clients) into $target"
  tmp="$(mktemp -d "$DIR/.node.XXXXXX")"
  cp "$ROOT/scripts/runtime-libs-node/package.json" "$lock" "$tmp/"
  (cd "$tmp" && npm ci --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
  # Only node_modules goes under /var/runtime (a package.json there would decide how Node reads
  # the runtime's bootstrap.js).
  rm -f "$tmp/package.json" "$tmp/package-lock.json" "$tmp/node_modules/.package-lock.json"
  echo "$pin" >"$tmp/.pin"
  chmod 755 "$tmp"
  rm -rf "$target.old"
  if [[ -d "$target" ]]; then mv "$target" "$target.old"; fi
  mv "$tmp" "$target"
  rm -rf "$target.old"
}
node_libs

target="$DIR/python"
if [[ -f "$target/.pin" && "$(cat "$target/.pin")" == "$PINS" ]]; then
  echo "runtime libraries ($PINS) at $target"
  echo "$DIR"
  exit 0
fi
if [[ -z "$PY" ]]; then
  # Debian's python3 has no pip of its own: a small venv for pip.
  if [[ ! -x "$DIR/.pip-venv/bin/python" ]]; then python3 -m venv "$DIR/.pip-venv"; fi
  PY="$DIR/.pip-venv/bin/python"
fi
echo "installing the runtime libraries ($PINS) into $target"
tmp="$(mktemp -d "$DIR/.python.XXXXXX")"
"$PY" -m pip install -q --disable-pip-version-check --target "$tmp" --only-binary=:all: \
  -r "$ROOT/scripts/runtime-libs.txt"
echo "$PINS" >"$tmp/.pin"
chmod 755 "$tmp"
# Replaced in one step: a server reading the old folder keeps it until it restarts.
rm -rf "$target.old"
if [[ -d "$target" ]]; then mv "$target" "$target.old"; fi
mv "$tmp" "$target"
rm -rf "$target.old"
echo "$DIR"
