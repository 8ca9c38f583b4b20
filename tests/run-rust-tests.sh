#!/usr/bin/env bash
# Runs the Rust test suite inside the harness (PostgreSQL + emulator env set).
set -euo pipefail
if cargo nextest --version >/dev/null 2>&1; then
  exec cargo nextest run --workspace --features thaw-engine/failpoints --no-fail-fast --test-threads "${THAW_TEST_THREADS:-4}"
else
  # Without nextest there are no test groups: run tests one at a time.
  exec cargo test --workspace --features thaw-engine/failpoints --no-fail-fast -- --test-threads 1
fi
