#!/usr/bin/env bash
# `make bench`: throughput benchmarks of thaw against baselines measured in the
# same run, on the same data and machine (tests/bench/README.md says how to read
# the output). Runs inside tests/harness.py, which exports THAW_PG_* and THAW_SF_*.
#
#   BENCH_VISITS          visits to seed (default 300000)
#   BENCH_SEED            generator seed (default 42)
#   BENCH_ROWS_PER_CHUNK  rows per result chunk of the emulator's chunked mode (default 10000)
#   BENCH_THREADS         legacy baseline worker threads (default: the table's parallel_threads)
#   THAW                  the thaw binary (default $CARGO_TARGET_DIR/release/thaw)
set -euo pipefail
cd "$(dirname "$0")/.."

THAW_CACHE=${THAW_CACHE:-$HOME/.cache/thaw}
export THAW_CACHE
export THAW=${THAW:-${CARGO_TARGET_DIR:-$THAW_CACHE/target}/release/thaw}
# The staged path's minimal loader (tests/bench/staged.py; `make bench` builds it).
export BENCH_STAGED_BASELINE=${BENCH_STAGED_BASELINE:-${CARGO_TARGET_DIR:-$THAW_CACHE/target}/release/examples/parquet_copy_baseline}
if [[ ! -x "$THAW" ]]; then
    echo "bench: no thaw binary at $THAW; run \`make build\` (or \`make bench\`, which builds it)" >&2
    exit 2
fi
if [[ -z "${THAW_SF_ENDPOINT:-}" || -z "${THAW_PG_HOST:-}" ]]; then
    echo "bench: THAW_SF_ENDPOINT/THAW_PG_HOST are not set; run it as \`make bench\` or \`python3 tests/harness.py run -- bash tests/bench.sh\`" >&2
    exit 2
fi

# The benchmark's venv (pandas, psycopg2, the Snowflake connector), reinstalled
# when tests/bench/requirements.txt changes.
venv=$THAW_CACHE/bench-venv
requirements=tests/bench/requirements.txt
marker=$venv/.thaw-requirements.sha256
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $marker || $(cat "$marker") != "$wanted" ]]; then
    echo "==> installing $requirements into $venv (once per change of that file)" >&2
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    if ! "$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements" >"$THAW_CACHE/bench-pip.log" 2>&1; then
        echo "bench: pip could not install $requirements into $venv; see $THAW_CACHE/bench-pip.log" >&2
        tail -20 "$THAW_CACHE/bench-pip.log" >&2
        exit 1
    fi
    echo "$wanted" >"$marker"
fi

exec "$venv/bin/python" tests/bench/run_bench.py "$@"
