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

echo "==> reconcile of nightly run 2: scope and cost per table (docs/reconcile.md §5)"
python3 - "$THAW_MANIFEST_DIR/run2.json" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
for t in report.get("reconcile_details", []):
    s, c = t["summary"], t.get("coverage") or {}
    d = t.get("diff") or {}
    print(f"{s['target']:<42} {s['status']:<8} {c.get('scope', '-'):<8} {c.get('rows_verified', 0):>10} rows verified "
          f"{c.get('rows_transferred', 0):>8} transferred {d.get('deleted', 0):>6} deleted {c.get('seconds', 0):7.2f} s")
r = report.get("reconcile") or {}
freshness = r.get("freshness_hours")
print(f"reconcile: {len(r.get('tables', []))} table(s), {r.get('mismatches', 0)} mismatch(es), {r.get('errors', 0)} error(s), "
      f"freshness {'n/a' if freshness is None else f'{freshness:.1f}'} h")
PY
