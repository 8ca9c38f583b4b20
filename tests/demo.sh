#!/usr/bin/env bash
# The demo, run inside tests/harness.py: seed the emulated Snowflake, run the
# nightly job, mutate the source, run it again (incremental), print reports.
set -euo pipefail
THAW=${THAW:-thaw}
# STAGED=1: the visit fact table goes through the S3-staged Parquet path (docs/sync.md §13).
if [ "${STAGED:-0}" = 1 ]; then CONFIG=${CONFIG:-examples/config.staged.json}; fi
CONFIG=${CONFIG:-examples/config.json}
export THAW_PG_DATABASE=${THAW_PG_DATABASE:-thaw}
export THAW_MANIFEST_DIR=${THAW_MANIFEST_DIR:-$(mktemp -d)}

echo "==> seeding ${VISITS:-100000} visits (seed ${SEED:-42})"
"$THAW" dev seed --config "$CONFIG" --visits "${VISITS:-100000}" --seed "${SEED:-42}"

echo "==> nightly run 1 (initial load)"
"$THAW" run --config "$CONFIG" --report "$THAW_MANIFEST_DIR/run1.json"
"$THAW" dev check-planted --config "$CONFIG" --visits "${VISITS:-100000}" --seed "${SEED:-42}"

echo "==> mutating the source (updates, inserts, deletes)"
"$THAW" dev mutate --config "$CONFIG" --visits "${VISITS:-100000}" --seed "${SEED:-42}" --mutation-seed 1

echo "==> nightly run 2 (incremental)"
"$THAW" run --config "$CONFIG" --allow-truncate --report "$THAW_MANIFEST_DIR/run2.json"
"$THAW" dev check-planted --config "$CONFIG" --visits "${VISITS:-100000}" --seed "${SEED:-42}"
