#!/usr/bin/env bash
# Runs the Rust test suite inside the harness (PostgreSQL + emulator env set).
set -euo pipefail
# The same build directory as the Makefile's, also when the script is run on
# its own: outside the clone, shared with `make test` (docs/emulator.md).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${THAW_CACHE:-$HOME/.cache/thaw}/target}"
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --features thaw-engine/failpoints --no-fail-fast --test-threads "${THAW_TEST_THREADS:-4}"
else
  # Without nextest there are no test groups: run tests one at a time.
  exec cargo test --workspace --features thaw-engine/failpoints --no-fail-fast -- --test-threads 1
fi
