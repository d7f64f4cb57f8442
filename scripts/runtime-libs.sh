#!/usr/bin/env bash
# Installs the runtime libraries (scripts/runtime-libs.txt) into DIR/python, unless the pins there
# are already those: the boto3 and botocore that python3.x functions find under /var/runtime, as
# on Lambda (never the host's). Prints DIR on its last line.
#
#   scripts/runtime-libs.sh DIR [PYTHON]    PYTHON: a Python with pip (default: a venv made in DIR)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$1"
PY="${2:-}"
PINS="$(grep -v '^#' "$ROOT/scripts/runtime-libs.txt" | xargs)"
target="$DIR/python"
if [[ -f "$target/.pin" && "$(cat "$target/.pin")" == "$PINS" ]]; then
  echo "runtime libraries ($PINS) at $target"
  echo "$DIR"
  exit 0
fi
mkdir -p "$DIR"
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
