"""PostgreSQL's canonical JSON form (docs/reconcile.md §3): the PL/pgSQL
function of migration V22 (`thaw_reconcile.canonical_json`) against the
recursive CTE it replaced, on the same rows, in the same session.

Part of `make bench` (run_bench.py); alone, under the harness:

    python3 tests/harness.py run -- ~/.cache/thaw/bench-venv/bin/python tests/bench/canonical_json.py [--rows N] [--rounds R]

Two document shapes of N rows each (default 100 000): the reconcile test's
5-leaf document `{"k": i, "a": [1, 2.5, "x"], "tiny": 1e-7}` (its keys are
already in byte order in jsonb's storage order) and an 8-leaf visit-like
document with keys of different lengths and two nested objects (each level
sorted by the function's one query). For each shape the two forms run
interleaved A B A B (R rounds, default 3) with parallel workers and JIT off,
`extra_float_digits = 1` as reconcile sets it; the figure is the median.
Check: both forms give the same text for every row (count of rows whose
texts differ is 0).

The CTE below is the pre-V22 form (canonical.rs before the function), kept
here as the baseline only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[2]
DATABASE = "thaw_bench_canonical_json"


def _postgres_float(x: str) -> str:
    t = f"CAST(TRIM_SCALE(ABS(CAST(CAST({x} AS TEXT) AS NUMERIC))) AS TEXT)"
    digits = "RTRIM(LTRIM(SPLIT_PART(t, '.', 1) || SPLIT_PART(t, '.', 2), '0'), '0')"
    exponent = ("CASE WHEN SPLIT_PART(t, '.', 1) <> '0' THEN LENGTH(SPLIT_PART(t, '.', 1)) - 1 "
                "ELSE -(LENGTH(SPLIT_PART(t, '.', 2)) - LENGTH(LTRIM(SPLIT_PART(t, '.', 2), '0')) + 1) END")
    return (f"CASE WHEN {x} IS NULL THEN NULL WHEN {x} = CAST('NaN' AS FLOAT8) THEN 'NaN' "
            f"WHEN {x} = CAST('Infinity' AS FLOAT8) THEN 'Infinity' WHEN {x} = CAST('-Infinity' AS FLOAT8) THEN '-Infinity' "
            f"WHEN {x} = 0 THEN CASE WHEN CAST({x} AS TEXT) LIKE '-%' THEN '-0' ELSE '0' END "
            f"ELSE (SELECT CASE WHEN {x} < 0 THEN '-' ELSE '' END || LEFT(d, 1) || CASE WHEN LENGTH(d) > 1 THEN '.' || SUBSTR(d, 2) ELSE '' END || 'e' || CAST(e AS TEXT) "
            f"FROM (SELECT {digits} AS d, {exponent} AS e FROM (SELECT {t} AS t) t0) t1) END")


def recursive_cte(j: str) -> str:
    """The pre-V22 canonical JSON form: a recursive CTE per row."""
    leaf = ("CASE jsonb_typeof(v) WHEN 'number' THEN " + _postgres_float("CAST(v #>> '{}' AS FLOAT8)")
            + " WHEN 'object' THEN '{}' WHEN 'array' THEN '[]' ELSE CAST(v AS TEXT) END")
    return (f"(WITH RECURSIVE n(p, v) AS (SELECT CAST('$' AS TEXT), {j} "
            "UNION ALL SELECT n.p || ch.s, ch.x FROM n CROSS JOIN LATERAL ( "
            "SELECT '.' || CAST(to_jsonb(k) AS TEXT), x FROM jsonb_each(CASE WHEN jsonb_typeof(n.v) = 'object' THEN n.v ELSE CAST('{}' AS JSONB) END) e(k, x) "
            "UNION ALL SELECT '[' || CAST(i - 1 AS TEXT) || ']', x FROM jsonb_array_elements(CASE WHEN jsonb_typeof(n.v) = 'array' THEN n.v ELSE CAST('[]' AS JSONB) END) WITH ORDINALITY a(x, i) "
            ") ch(s, x)) "
            "SELECT string_agg(l, ',' ORDER BY l COLLATE \"C\") FROM (SELECT p || '=' || " + leaf + " AS l FROM n "
            "WHERE jsonb_typeof(v) NOT IN ('object', 'array') OR v = CAST('{}' AS JSONB) OR v = CAST('[]' AS JSONB)) leaves)")


FUNCTION = "thaw_reconcile.canonical_json(doc)"
SHAPES = {
    "5-leaf test document": "jsonb_build_object('k', i, 'a', '[1, 2.5, \"x\"]'::jsonb, 'tiny', 1e-7)",
    "8-leaf visit document, keys out of order": (
        "jsonb_build_object('visit', jsonb_build_object('id', i, 'status', 'done', 'miles', 12.5), "
        "'zip', '12345', 'caregiver', jsonb_build_object('id', i % 977, 'name', 'c' || i), 'tags', '[\"a\", \"b\"]'::jsonb, 'payer', NULL)"),
}


def _pg(database: str):
    return psycopg2.connect(host=os.environ["THAW_PG_HOST"], port=int(os.environ["THAW_PG_PORT"]),
                            user=os.environ["THAW_PG_USER"], password=os.environ.get("THAW_PG_PASSWORD"), dbname=database)


def _timed(cur, sql: str) -> float:
    started = time.perf_counter()
    cur.execute(sql)
    cur.fetchall()
    return time.perf_counter() - started


def run(logs: Path | None = None, rows: int = 100_000, rounds: int = 3) -> tuple[list, dict, dict]:
    """Measure both forms on both shapes; return (metrics, checks, details)."""
    admin = _pg("postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cur.execute(f"CREATE DATABASE {DATABASE}")
    metrics, checks, details = [], {}, {"rows": rows, "rounds": rounds, "load_average_before": os.getloadavg()}
    try:
        pg = _pg(DATABASE)
        pg.autocommit = True
        with pg.cursor() as cur:
            cur.execute((REPO / "schema" / "V22__canonical_json.sql").read_text())
            cur.execute("SET max_parallel_workers_per_gather = 0; SET jit = off; SET extra_float_digits = 1")
            for shape, document in SHAPES.items():
                cur.execute(f"DROP TABLE IF EXISTS documents; CREATE TABLE documents AS SELECT i, {document} AS doc FROM generate_series(1, {rows}) i; ANALYZE documents")
                cur.execute(f"SELECT count(*) FROM documents WHERE {FUNCTION} IS DISTINCT FROM {recursive_cte('doc')}")
                differing = cur.fetchone()[0]
                checks[f"canonical JSON: function and CTE agree on every row ({shape})"] = differing == 0
                times = {"cte": [], "function": []}
                for _ in range(rounds):
                    times["cte"].append(_timed(cur, f"SELECT sum(length({recursive_cte('doc')})) FROM documents"))
                    times["function"].append(_timed(cur, f"SELECT sum(length({FUNCTION})) FROM documents"))
                cte, function = statistics.median(times["cte"]), statistics.median(times["function"])
                details[shape] = {"cte_seconds": times["cte"], "function_seconds": times["function"],
                                  "cte_us_per_row": cte / rows * 1e6, "function_us_per_row": function / rows * 1e6}
                metrics.append((f"canonical JSON rows/s, {shape}", rows / function, rows / cte))
                print(f"canonical JSON, {shape}: function {function / rows * 1e6:.1f} µs/row, recursive CTE {cte / rows * 1e6:.1f} µs/row "
                      f"(medians of {rounds}, {rows} rows): {cte / function:.1f}×", file=sys.stderr)
        pg.close()
    finally:
        details["load_average_after"] = os.getloadavg()
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        admin.close()
    return metrics, checks, details


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    metrics, checks, details = run(rows=args.rows, rounds=args.rounds)
    print(f"load average before {details['load_average_before']}, after {details['load_average_after']}")
    for name, function, cte in metrics:
        print(f"{name}: function {function:,.0f}, recursive CTE {cte:,.0f}, ratio {function / cte:.2f}×")
    for name, ok in checks.items():
        print(f"{'ok ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
