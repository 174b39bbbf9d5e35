#!/usr/bin/env bash
# The one test command (README, .ci/run): format, lints (in the test build), then every
# test, with S3 (moto, s3s-fs) and Azure Blob (Azurite) servers started on 127.0.0.1 and
# stopped afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

export SHH_REQUIRE_SERVERS=1   # a missing server fails the run; it is never silently skipped

# Compiled dependencies are kept outside the checkout, keyed by the registry packages of
# Cargo.lock and the toolchain, so a fresh clone does not rebuild them (DataFusion, axum and
# tonic are on their way); a new crate of our own changes Cargo.lock but not the key. The
# cache is only a cache: delete it to rebuild; set CARGO_TARGET_DIR to use another directory.
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  key=$( { rustc -Vv; awk -v RS= '/source = "registry/' Cargo.lock; } | sha256sum | cut -c1-16)
  export CARGO_TARGET_DIR="${SHH_BUILD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shh-build}/$key"
  printf 'build cache: %s\n' "$CARGO_TARGET_DIR"
fi

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "installing and starting test servers"
scripts/test-servers.sh start
trap 'scripts/test-servers.sh stop' EXIT
# shellcheck disable=SC1091
source .cache/servers/env

step "clippy -D warnings, in the build of every target"
# Clippy's lints run while the workspace's own crates compile for the tests: clippy-driver is
# the workspace's rustc wrapper, as under `cargo clippy` itself, with the same `-D warnings`
# (`CLIPPY_ARGS` is how cargo-clippy hands arguments to the driver). The dependencies are so
# compiled once, for the tests, instead of once more in check mode for a separate
# `cargo clippy --all-targets`: that pass alone took 10m42s of a clean 32m19s run on the
# 2-core CI machine. A lint fails this build exactly as it fails `cargo clippy`.
CLIPPY_DRIVER="$(rustc --print sysroot)/bin/clippy-driver"
[ -x "$CLIPPY_DRIVER" ] || { echo "clippy-driver not found: rustup component add clippy" >&2; exit 1; }
export RUSTC_WORKSPACE_WRAPPER="$CLIPPY_DRIVER"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --workspace --all-targets --no-run

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doctests.
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi
