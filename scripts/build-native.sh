#!/usr/bin/env bash
# Builds the native `provided` example (examples/provided-rust: a Rust function on AWS's
# `lambda_runtime` crate) for the host, and prints the path of its `bootstrap` on the last line
# (scripts/test.sh exports it as STOKE_NATIVE_BOOTSTRAP for the e2e tests).
#
#   scripts/build-native.sh
#
# Environment:
#   STOKE_GUEST_TARGET_DIR  the guests' cargo target dir (default /var/tmp/stoke-guest-target);
#                           the native build goes to its native/ folder
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${STOKE_GUEST_TARGET_DIR:-/var/tmp/stoke-guest-target}/native"

cargo build --locked --manifest-path "$ROOT/examples/provided-rust/Cargo.toml" \
  --target-dir "$TARGET_DIR" >&2
echo "$TARGET_DIR/debug/bootstrap"
