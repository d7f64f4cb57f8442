#!/usr/bin/env bash
# The one test command: installs what is missing, then runs every check and every test.
#
#   scripts/test.sh                 setup, fmt, clippy, deny, cargo tests, build, boto3 end-to-end tests
#   scripts/test.sh e2e [ARGS...]   setup, build, then only `pytest tests/e2e ARGS...` (SQLite store)
#   scripts/test.sh e2e-pg [ARGS...] the same on the PostgreSQL store (STOKE_E2E_STORE=postgres:
#                                   every server on a database of its own in one throw-away cluster)
#   scripts/test.sh all [ARGS...]   the same as no argument, with ARGS passed to pytest (the e2e
#                                   suite runs twice: on SQLite, then on PostgreSQL)
#
# Works on a fresh Debian/Ubuntu machine as root (or with sudo). Environment:
#   CARGO_TARGET_DIR   cargo's target dir (default ./target); the e2e tests use its debug/stoke
#   STOKE_VENV         the Python virtual environment (default ./.venv)
#   PYTHON             the Python that creates the venv (default python3)
#   STOKE_SKIP_SETUP=1 skip the install step (packages, rust target, nextest, venv)
#   STOKE_RUNTIME_LIBS the runtime libraries of python3.x functions (scripts/runtime-libs.txt,
#                      default /var/tmp/stoke-runtime-libs; installed before the e2e tests when
#                      missing, even with STOKE_SKIP_SETUP=1), passed to `stoke serve --runtime-libs`
#   STOKE_RUNTIME_IMAGES the images of process sandboxes' /var/lang and /var/runtime, shared by
#                      every server of the e2e tests (default /var/tmp/stoke-runtime-images;
#                      `stoke serve --runtime-images`)
#   STOKE_GUEST_TARGET_DIR  cargo's target dir for the wasm guests and the guest SDK's tests
#                      (default /var/tmp/stoke-guest-target; see scripts/build-guests.sh), and
#                      under native/ for the `lambda_runtime` example (scripts/build-native.sh)
#
# The process-sandbox tests need root (namespaces, cgroups), Node.js (apt `nodejs` when `node`
# is missing) and AWS's runtime interface client `awslambdaric`, vendored for the system
# python3 under $STOKE_VENV/vendor/awslambdaric (as users vendor it into a zip); their `/tmp`
# disks and the read-only images of /var/lang, /var/runtime and /var/task need mkfs.ext4 and
# debugfs (apt `e2fsprogs`) and loop devices. The PostgreSQL store's tests need PostgreSQL's
# server binaries (apt `postgresql`); they start and stop clusters of their own.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MODE=all
if [[ $# -gt 0 && ( "$1" == "e2e" || "$1" == "e2e-pg" || "$1" == "all" ) ]]; then
  MODE="$1"
  shift
fi
PYTEST_ARGS=("$@")

VENV="${STOKE_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
PY_PINS=(boto3==1.44.5 pytest==9.2.0 pika==1.4.4)
RIC_PIN=awslambdaric==4.2.2
# redis-server, nats-server: the Redis Streams and NATS JetStream event sources' e2e tests
# start servers of their own (tests/e2e/brokers.py). rabbitmq-server: the RabbitMQ event
# source's e2e tests start nodes of their own the same way (pika, in PY_PINS, publishes to them).
# postgresql: the PostgreSQL store's tests (cargo and e2e) start throw-away clusters of their
# own with its initdb and postgres (from /usr/lib/postgresql/*/bin; nothing uses the cluster
# the package makes).
APT_PACKAGES=(build-essential pkg-config python3 python3-venv zip e2fsprogs postgresql redis-server nats-server rabbitmq-server)
if ! command -v node >/dev/null 2>&1; then APT_PACKAGES+=(nodejs); fi
# npm installs the nodejs* runtimes' AWS SDK (scripts/runtime-libs.sh).
if ! command -v npm >/dev/null 2>&1; then APT_PACKAGES+=(npm); fi

# ---------------------------------------------------------------------------------------------
# Stages, each timed; a summary at the end (or at the failing stage).

declare -a TIMINGS=()
CURRENT_STAGE=""
SCRIPT_START=$EPOCHREALTIME
PYTEST_LOG="$(mktemp -t stoke-pytest.XXXXXX)"

elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

summary() {
  local rc=$?
  echo
  echo "==== scripts/test.sh ($MODE) timings ===="
  local t
  for t in "${TIMINGS[@]}"; do echo "  $t"; done
  if [[ $rc -ne 0 && -n "$CURRENT_STAGE" ]]; then
    echo "  FAILED: $CURRENT_STAGE (exit $rc)"
  fi
  echo "  total: $(elapsed_since "$SCRIPT_START")s"
  # pytest's own closing lines last (one per store), so that whoever reads the end of the log
  # sees the counts.
  local last
  last="$(cat "$PYTEST_LOG" 2>/dev/null || true)"
  if [[ -n "$last" ]]; then echo "$last"; fi
  rm -f "$PYTEST_LOG"
}
trap summary EXIT

stage() {
  local name="$1"
  shift
  CURRENT_STAGE="$name"
  echo
  echo "==> $name"
  local start=$EPOCHREALTIME
  "$@"
  local took
  took="$(elapsed_since "$start")"
  TIMINGS+=("$(printf '%-28s %8ss' "$name" "$took")")
  echo "<== $name: ${took}s"
  CURRENT_STAGE=""
}

# ---------------------------------------------------------------------------------------------
# Setup: install only what is missing.

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); fi
fi

install_apt_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "not a Debian/Ubuntu system: skipping apt packages (${APT_PACKAGES[*]})"
    return 0
  fi
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    echo "apt packages present: ${APT_PACKAGES[*]}"
    return 0
  fi
  echo "installing apt packages: ${missing[*]}"
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

check_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (rustup, toolchain 1.95 or newer) first" >&2
    return 1
  fi
  cargo --version
  if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-wasip1; then
      # Needed by the wasm guests of later issues; not fatal while nothing builds them.
      rustup target add wasm32-wasip1 || echo "warning: could not add the wasm32-wasip1 target" >&2
    fi
    local c
    for c in rustfmt clippy; do
      if ! rustup component list --installed | grep -q "^$c"; then
        rustup component add "$c"
      fi
    done
  fi
}

install_nextest() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest --version | head -n1
    return 0
  fi
  echo "installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest || echo "warning: cargo-nextest did not install; using cargo test" >&2
}

setup_venv() {
  if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    echo "creating the Python virtual environment at $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if "$VENV/bin/python" - "${PY_PINS[@]}" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
for pin in sys.argv[1:]:
    name, want = pin.split("==")
    assert version(name) == want, (name, version(name), want)
PY
  then
    echo "venv $VENV has ${PY_PINS[*]}"
  else
    echo "installing ${PY_PINS[*]} into $VENV"
    "$VENV/bin/python" -m pip install -q "${PY_PINS[@]}"
  fi
}

# awslambdaric for the system python3 (what a `provided` bootstrap runs inside the sandbox),
# from wheels only, into a folder the tests zip with the function.
vendor_awslambdaric() {
  local dir="$VENV/vendor/awslambdaric" pyver
  if [[ -f "$dir/.pin" && "$(cat "$dir/.pin")" == "$RIC_PIN" ]]; then
    echo "awslambdaric vendored at $dir"
    return 0
  fi
  pyver="$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")' 2>/dev/null || "$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  echo "vendoring $RIC_PIN for Python $pyver into $dir"
  rm -rf "$dir"
  "$VENV/bin/python" -m pip install -q --target "$dir" --only-binary=:all: \
    --python-version "$pyver" "$RIC_PIN"
  echo "$RIC_PIN" >"$dir/.pin"
}

# cargo-deny checks the licenses, sources and crates of the dependency graph (deny.toml).
install_deny() {
  if cargo deny --version >/dev/null 2>&1; then
    cargo deny --version | head -n1
    return 0
  fi
  echo "installing cargo-deny from crates.io"
  cargo install --locked cargo-deny
}

setup() {
  install_apt_packages
  check_rust
  if [[ "$MODE" == "all" ]]; then
    install_nextest
    install_deny
  fi
  setup_venv
  vendor_awslambdaric
}

# ---------------------------------------------------------------------------------------------
# Checks and tests.

cargo_tests() {
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-tests=warn
  else
    cargo test --workspace
  fi
}

target_dir() {
  local t="${CARGO_TARGET_DIR:-$ROOT/target}"
  [[ "$t" == /* ]] || t="$ROOT/$t"
  echo "$t"
}

guest_target_dir() {
  echo "${STOKE_GUEST_TARGET_DIR:-/var/tmp/stoke-guest-target}"
}

# The guest SDK (sdk/rust) is its own crate, outside the workspace: its host unit tests.
sdk_tests() {
  CARGO_TARGET_DIR="$(guest_target_dir)" cargo test --manifest-path sdk/rust/Cargo.toml
}

# Builds examples/ for wasm32-wasip1; the e2e tests find the .wasm files in STOKE_GUESTS_DIR.
build_guests() {
  local out
  out="$(STOKE_GUEST_TARGET_DIR="$(guest_target_dir)" scripts/build-guests.sh)"
  echo "$out"
  STOKE_GUESTS_DIR="$(tail -n1 <<<"$out")"
  export STOKE_GUESTS_DIR
}

# Builds the `lambda_runtime` example for the host; the e2e tests find it in STOKE_NATIVE_BOOTSTRAP.
build_native() {
  local out
  out="$(STOKE_GUEST_TARGET_DIR="$(guest_target_dir)" scripts/build-native.sh)"
  echo "$out"
  STOKE_NATIVE_BOOTSTRAP="$(tail -n1 <<<"$out")"
  export STOKE_NATIVE_BOOTSTRAP
}

# boto3 and botocore for the python3.x runtimes' /var/runtime (scripts/runtime-libs.sh).
runtime_libs() {
  local out
  out="$(scripts/runtime-libs.sh "${STOKE_RUNTIME_LIBS:-/var/tmp/stoke-runtime-libs}" "$VENV/bin/python")"
  echo "$out"
  STOKE_RUNTIME_LIBS="$(tail -n1 <<<"$out")"
  export STOKE_RUNTIME_LIBS
}

# `e2e STORE`: the boto3 suite with every server on STORE (sqlite or postgres).
e2e() {
  local store="$1" bin
  bin="$(target_dir)/debug/stoke"
  echo "STOKE_E2E_STORE=$store"
  echo "STOKE_BIN=$bin"
  echo "STOKE_GUESTS_DIR=$STOKE_GUESTS_DIR"
  echo "STOKE_NATIVE_BOOTSTRAP=$STOKE_NATIVE_BOOTSTRAP"
  echo "STOKE_RUNTIME_LIBS=$STOKE_RUNTIME_LIBS"
  export STOKE_RUNTIME_IMAGES="${STOKE_RUNTIME_IMAGES:-/var/tmp/stoke-runtime-images}"
  local rc=0
  STOKE_E2E_STORE="$store" STOKE_RIC_DIR="$VENV/vendor/awslambdaric" STOKE_BIN="$bin" \
    "$VENV/bin/python" -m pytest tests/e2e "${PYTEST_ARGS[@]}" 2>&1 | tee "$PYTEST_LOG.$store" || rc=$?
  # pytest's closing line, named by the store, for the summary.
  local last
  last="$(grep -E '[0-9]+ (passed|failed|errors?|skipped).* in [0-9.]+s' "$PYTEST_LOG.$store" | tail -n1 || true)"
  echo "pytest ($store): ${last:-no summary line}" >>"$PYTEST_LOG"
  rm -f "$PYTEST_LOG.$store"
  return "$rc"
}

if [[ "${STOKE_SKIP_SETUP:-0}" != "1" ]]; then
  stage "setup" setup
fi
if [[ "$MODE" == "all" ]]; then
  stage "cargo fmt --check" cargo fmt --all --check
  stage "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
  # Advisories need the advisory database on GitHub, which CI's machine cannot reach.
  stage "cargo deny" cargo deny check bans licenses sources
  stage "cargo tests" cargo_tests
  stage "sdk tests" sdk_tests
fi
stage "cargo build -p stoke" cargo build -p stoke
stage "build guests" build_guests
stage "build native example" build_native
stage "runtime libraries" runtime_libs
if [[ "$MODE" != "e2e-pg" ]]; then
  stage "pytest tests/e2e (sqlite)" e2e sqlite
fi
if [[ "$MODE" != "e2e" ]]; then
  stage "pytest tests/e2e (postgres)" e2e postgres
fi
