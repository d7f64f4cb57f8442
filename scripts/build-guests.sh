#!/usr/bin/env bash
# Builds the wasm guests: the `examples/` cargo workspace (hello-wasm and the test guests under
# examples/guests) for wasm32-wasip1, in release mode.
#
#   scripts/build-guests.sh [OUT_DIR]
#
# Prints the path of each .wasm, then the folder that holds them all on the last line, so that
# a caller can take it with `tail -n1` (scripts/test.sh exports it as STOKE_GUESTS_DIR).
# Cargo's own output goes to stderr. Environment:
#   STOKE_GUEST_TARGET_DIR  cargo's target dir for the guests (default /var/tmp/stoke-guest-target):
#                           apart from the server's, so the two builds never wait on one lock
#   STOKE_GUESTS_DIR        where to copy the .wasm files when OUT_DIR is not given (default
#                           $STOKE_GUEST_TARGET_DIR/wasm32-wasip1/release: no copy)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=wasm32-wasip1
TARGET_DIR="${STOKE_GUEST_TARGET_DIR:-/var/tmp/stoke-guest-target}"
BUILD_DIR="$TARGET_DIR/$TARGET/release"
OUT="${1:-${STOKE_GUESTS_DIR:-$BUILD_DIR}}"

if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "adding the $TARGET target" >&2
    rustup target add "$TARGET" >&2
  fi
fi

# The JSON messages name every binary built (fresh or not); diagnostics still go to stderr.
messages="$(
  CARGO_TARGET_DIR="$TARGET_DIR" cargo build --release --target "$TARGET" \
    --manifest-path "$ROOT/examples/Cargo.toml" --message-format=json-render-diagnostics
)"
mapfile -t built < <(grep -o '"executable":"[^"]*\.wasm"' <<<"$messages" | sed 's/^"executable":"//; s/"$//' | sort -u)
if [[ ${#built[@]} -eq 0 ]]; then
  echo "build-guests: cargo built no .wasm" >&2
  exit 1
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
for wasm in "${built[@]}"; do
  dest="$OUT/$(basename "$wasm")"
  if [[ "$(cd "$(dirname "$wasm")" && pwd)/$(basename "$wasm")" != "$dest" ]]; then
    cp -f "$wasm" "$dest"
  fi
  echo "$dest"
done
echo "$OUT"
