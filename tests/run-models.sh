#!/usr/bin/env bash
# Runs every literal model of the legacy system (tests/*_model.py) against the
# real thaw binary, each with its fixed CI seeds (`--ci`), inside the harness
# (PostgreSQL + emulator env set). A model exits 1 when thaw and the model
# disagree, after printing the differences and the seed that shows them.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${THAW_CACHE:-$HOME/.cache/thaw}/target}"
export THAW_TEST_BIN="${THAW_TEST_BIN:-$CARGO_TARGET_DIR/debug/thaw}"
if [ ! -x "$THAW_TEST_BIN" ]; then
  echo "run-models: no thaw binary at $THAW_TEST_BIN (build it with cargo build -p thaw, or set THAW_TEST_BIN)" >&2
  exit 2
fi
status=0
for model in tests/*_model.py; do
  start=$(date +%s)
  if python3 "$model" --ci; then
    echo "model $model: agreed ($(( $(date +%s) - start )) s)"
  else
    echo "model $model: DISAGREED ($(( $(date +%s) - start )) s)" >&2
    status=1
  fi
done
exit $status
