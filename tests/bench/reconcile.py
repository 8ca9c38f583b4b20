"""Reconcile benchmark (part of `make bench`; docs/benchmarks.md, docs/reconcile.md §5).

One generated table in the emulator, RECONCILE_BENCH (BENCH_RECONCILE_ROWS rows,
default 1 000 000 — the issue's 5 M with BENCH_RECONCILE_ROWS=5000000, about
5× the time: ID, NOTE, AMOUNT NUMBER(12,2), TS, UPDATED as the watermark;
no FLOAT or VARIANT column, so the emulator computes its side in SQL and
nothing is streamed), copied by `thaw run` into a fresh database, then:

1. identical: `thaw reconcile --full --json`: rows/s of the whole reconcile and
   of the PostgreSQL side's checksum (coverage.target_seconds), the emulator
   side's seconds, rows transferred to thaw (must be 0); baseline: PostgreSQL's
   naive whole-row checksum (`sum` of 48 bits of `md5(t::text)`) over the same
   table, timed in the same run;
2. 10 scattered differences planted in PostgreSQL (one changed NOTE each):
   `thaw reconcile --full --leaf-rows <a 4 000th of the rows, 16 to 512> --json`: all 10 found, rows
   transferred / rows (target < 0.5 %);
3. the nightly reconcile after a 1 % change in Snowflake (`thaw run`, whose
   reconcile verifies the touched rows plus a 1/7 rolling slice) against the
   full reconcile of step 1: seconds and rows verified;
5. row hashes kept at load time (docs/reconcile.md §4.2; `row_hashes`,
   BENCH_RECONCILE_ROW_HASHES=0 skips it): the same table copied again into a
   second database with `reconcile.row_hashes: true`; the copy's rows/s with
   and without the hashes (step 1's copy), the side table's bytes per row,
   and the full-scope check of identical tables (`thaw reconcile` after the
   table's coverage is forgotten, so "first verification": full scope, not
   `--full`) reading the side table vs hashing the rows in SQL (the first
   database), interleaved A B A B, medians: PostgreSQL-side rows/s and rows
   transferred;
4. the issue's engineered differences in a table with FLOAT and VARIANT
   columns (`engineered`, BENCH_RECONCILE_ENGINEERED_ROWS rows, default
   1 000 000; 0 skips it): all found exactly, seconds, peak RSS.

`run()` returns (metrics, checks, details) for run_bench.py; run alone inside
tests/harness.py with `python3 tests/bench/reconcile.py --thaw PATH`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

if os.environ.get("THAW_SF_CA_FILE"):
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["THAW_SF_CA_FILE"]

import psycopg2  # noqa: E402
import snowflake.connector  # noqa: E402
from sync_baselines import wait_with_peak_rss  # noqa: E402

SF_DATABASE = "RECONCILE_BENCH"
PG_DATABASE = "thaw_bench_reconcile"
DIFFERENCES = 10
# Leaf size of the differences step: with the default 16 384, 10 differences in
# 1 M rows are located in leaves of ~980 rows (~2 % of the rows' keys and
# hashes transferred); one more bisection level (one query per side) makes
# that ~30 rows (5 M rows: ~150). Smaller tables get smaller leaves (a
# 4 000th of the rows, at least 16), so that 10 leaves stay within the 0.5 %
# target down to about 32 000 rows (100 000 rows: leaves of 25; below 32 000
# the 16-row floor makes 10 leaves more than 0.5 % and the check fails).
LEAF_ROWS = 512


def leaf_rows(rows: int) -> int:
    """Leaf size of the differences step for a table of `rows` rows."""
    return max(16, min(LEAF_ROWS, rows // 4000))


def _sf():
    host, _, port = os.environ["THAW_SF_ENDPOINT"].rpartition(":")
    return snowflake.connector.connect(account=os.environ["THAW_SF_ACCOUNT"], user=os.environ["THAW_SF_USER"],
                                       password=os.environ["THAW_SF_PASSWORD"], host=host, port=int(port), protocol="https")


def _pg(database: str):
    return psycopg2.connect(host=os.environ["THAW_PG_HOST"], port=int(os.environ["THAW_PG_PORT"]),
                            user=os.environ["THAW_PG_USER"], password=os.environ.get("THAW_PG_PASSWORD"), dbname=database)


def _fresh_database(admin, name: str):
    """Drop and create the PostgreSQL database `name` (through the autocommit
    `admin` connection); return an autocommit connection to it."""
    with admin.cursor() as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    pg = _pg(name)
    pg.autocommit = True
    return pg


def _config(path: Path, table: dict | None = None, database: str = PG_DATABASE) -> Path:
    table = table or {"source": "RECONCILE_BENCH", "target": "reconcile_bench", "uniqueness_columns": ["ID"],
                      "source_watermark": "UPDATED", "target_watermark": "UPDATED", "chunking_columns": ["ID"], "chunking_column_types": ["int"]}
    config = {
        "snowflake": {"account": os.environ["THAW_SF_ACCOUNT"], "user": os.environ["THAW_SF_USER"],
                      "password": os.environ["THAW_SF_PASSWORD"], "endpoint": os.environ["THAW_SF_ENDPOINT"],
                      "ca_file": os.environ.get("THAW_SF_CA_FILE", "")},
        "postgres": {"host": os.environ["THAW_PG_HOST"], "port": int(os.environ["THAW_PG_PORT"]),
                     "user": os.environ["THAW_PG_USER"], "password": os.environ.get("THAW_PG_PASSWORD", "")},
        "sources": [{"source_name": "bench", "source_sf_database": SF_DATABASE, "source_sf_schema": "S",
                     "target_pg_database": database, "target_pg_schema": "public", "tables": [table]}],
    }
    path.write_text(json.dumps(config))
    path.chmod(0o600)
    return path


def _thaw(thaw: str, args: list[str], logs: Path, what: str, ok_codes=(0,)) -> tuple[dict, float]:
    import subprocess
    started = time.perf_counter()
    with open(logs / f"{what}.log", "w") as err:
        result = subprocess.run([thaw, *args], stdout=subprocess.PIPE, stderr=err, text=True)
    seconds = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise RuntimeError(f"{what}: thaw {' '.join(args)} exited {result.returncode}; see {logs / (what + '.log')}\n{result.stdout[-2000:]}")
    return (json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}), seconds


def _table(report: dict) -> dict:
    return report["tables"][0]


ENGINEERED_DATABASE = "thaw_bench_reconcile_engineered"


def _rss_thaw(thaw: str, args: list[str], logs: Path, what: str) -> tuple[dict, float, int, int]:
    """Run thaw; return (JSON stdout, seconds, exit code, peak RSS in KiB of that process)."""
    import subprocess
    started = time.perf_counter()
    with open(logs / f"{what}.log", "w") as err, tempfile.TemporaryFile(mode="w+") as out:
        proc = subprocess.Popen([thaw, *args], stdout=out, stderr=err, text=True)
        peak_kib = wait_with_peak_rss(proc)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    return (json.loads(text) if text.strip().startswith("{") else {}), seconds, proc.returncode, peak_kib


def engineered(thaw: str, logs: Path, rows: int, sf, admin) -> tuple[list, dict, dict]:
    """4. The issue's engineered differences at `rows` rows (docs/reconcile.md §7.1), the same as
    `engineered_differences_are_found_exactly_with_key_column_and_values` (functions/engine/tests/reconcile_rows.rs)
    with the release binary: a table with FLOAT and VARIANT columns (streamed from the emulator in bounded
    batches), copied by `thaw run`, then one changed value, a missing row, an extra row, a duplicate key, a
    timestamp 1 µs off, a NUMBER scale difference, a NaN vs NULL float, NULL vs empty string (differences) and a
    JSON with other key order and number spelling (not a difference). Reports seconds and the peak RSS of
    `thaw reconcile`."""
    cur = sf.cursor()
    fqn = f'"{SF_DATABASE}"."S"."RECONCILE_ENGINEERED"'
    cur.execute(f'CREATE OR REPLACE TABLE {fqn} ("ID" NUMBER(38,0), "NOTE" VARCHAR(50), "AMOUNT" NUMBER(12,2), "TS" TIMESTAMP_NTZ, "F" FLOAT, "DOC" VARIANT)')
    cur.execute(f"INSERT INTO {fqn} SELECT SEQ4() + 1, CASE WHEN SEQ4() % 10 = 3 THEN NULL ELSE 'note ' || SEQ4() END, "
                f"(SEQ4() % 100000) / 100.0, DATEADD(microsecond, SEQ4() * 1000003, '2024-01-01 00:00:00'::TIMESTAMP_NTZ), SEQ4() / 7.0, "
                f"PARSE_JSON('{{\"k\": ' || SEQ4() || ', \"a\": [1, 2.5, \"x\"], \"tiny\": 1e-7}}') FROM TABLE(GENERATOR(ROWCOUNT => {rows}))")
    cur.execute(f"UPDATE {fqn} SET \"F\" = CAST('NaN' AS FLOAT) WHERE \"ID\" = 7007")
    pg = _fresh_database(admin, ENGINEERED_DATABASE)
    work = Path(tempfile.mkdtemp(prefix="thaw-bench-reconcile-engineered-"))
    table = {"source": "RECONCILE_ENGINEERED", "target": "reconcile_engineered", "uniqueness_columns": ["ID"],
             "chunking_columns": ["ID"], "chunking_column_types": ["int"]}
    config = _config(work / "config.json", table, ENGINEERED_DATABASE)
    try:
        with pg.cursor() as c:
            c.execute('CREATE TABLE public.reconcile_engineered ("ID" int8 PRIMARY KEY, "NOTE" varchar(50), "AMOUNT" numeric(12,2), '
                      '"TS" timestamp, "F" float8, "DOC" jsonb)')
        _thaw(thaw, ["migrate", "--config", str(config)], logs, "reconcile-engineered-migrate")
        _thaw(thaw, ["run", "--config", str(config), "--no-conflicts", "--report", str(work / "run.json")],
              logs, "reconcile-engineered-copy")
        run_id = json.loads((work / "run.json").read_text())["plan"]["run_id"]
        with pg.cursor() as c:
            c.execute('ALTER TABLE public.reconcile_engineered DROP CONSTRAINT reconcile_engineered_pkey; '
                      'UPDATE public.reconcile_engineered SET "NOTE" = \'changed\' WHERE "ID" = 1001; '
                      'DELETE FROM public.reconcile_engineered WHERE "ID" = 2002; '
                      'INSERT INTO public.reconcile_engineered ("ID", "NOTE") VALUES (99999999, \'extra\'); '
                      'INSERT INTO public.reconcile_engineered SELECT * FROM public.reconcile_engineered WHERE "ID" = 3003; '
                      'UPDATE public.reconcile_engineered SET "TS" = "TS" + interval \'1 microsecond\' WHERE "ID" = 4004; '
                      'UPDATE public.reconcile_engineered SET "AMOUNT" = 12.3 WHERE "ID" = 5005; '
                      'UPDATE public.reconcile_engineered SET "F" = NULL WHERE "ID" = 7007; '
                      'UPDATE public.reconcile_engineered SET "NOTE" = \'\' WHERE "ID" = 8004; '
                      'UPDATE public.reconcile_engineered SET "DOC" = jsonb_build_object(\'tiny\', 0.0000001, \'k\', "ID" - 1, '
                      '\'a\', \'[1, 2.50, "x"]\'::jsonb) WHERE "ID" = 9009; ANALYZE public.reconcile_engineered')
        cur.execute(f"UPDATE {fqn} SET \"AMOUNT\" = 12.34 WHERE \"ID\" = 5005")
        report, seconds, code, rss_kib = _rss_thaw(thaw, ["reconcile", "--config", str(config), "--run-id", run_id, "--full", "--json"],
                                                   logs, "reconcile-engineered")
    finally:
        pg.close()
        with admin.cursor() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{ENGINEERED_DATABASE}" WITH (FORCE)')
    t = report["tables"][0] if report.get("tables") else {}
    d = t.get("diff") or {}
    changed = {r["key"]: [(c["column"], c.get("source"), c.get("target")) for c in r["columns"]] for r in d.get("changed_rows", [])}
    expected = {"1001": [("NOTE", "note 1000", "changed")], "4004": [("TS", "1704071203012009", "1704071203012010")],
                "5005": [("AMOUNT", "12.34", "12.30")], "7007": [("F", "NaN", None)], "8004": [("NOTE", None, "")]}
    cov = t.get("coverage") or {}
    checks = {
        f"reconcile engineered differences at {rows} rows found exactly (exit 3)": code == 3 and changed == expected
        and d.get("missing") == ["2002"] and d.get("extra") == ["99999999"] and d.get("duplicate_target") == ["3003"]
        and (d.get("missing_count"), d.get("extra_count"), d.get("changed_count"), d.get("duplicate_target_count")) == (1, 1, 5, 1),
    }
    details = {"rows": rows, "seconds": round(seconds, 2), "peak_rss_mib": round(rss_kib / 1024, 1), "exit": code,
               "source_seconds": cov.get("source_seconds"), "target_seconds": cov.get("target_seconds"),
               "rows_transferred": cov.get("rows_transferred"), "changed": changed, "missing": d.get("missing"),
               "extra": d.get("extra"), "duplicate_target": d.get("duplicate_target")}
    return [], checks, details


ROW_HASHES_DATABASE = "thaw_bench_reconcile_row_hashes"


def _forget_coverage(database: str) -> None:
    pg = _pg(database)
    pg.autocommit = True
    with pg.cursor() as c:
        c.execute("DELETE FROM migration_status.reconcile_coverage")
    pg.close()


def row_hashes(thaw: str, logs: Path, rows: int, admin, sql_config: Path, sql_run_id: str, sql_copy_seconds: float) -> tuple[list, dict, dict]:
    """5. Row hashes kept at load time against SQL hashing (docs/reconcile.md §4.2): copy the bench table
    into a second database with `reconcile.row_hashes: true`, then time the full-scope check of both
    databases (the SQL-hashing one is `sql_config`/`sql_run_id`, whose copy step took `sql_copy_seconds` in step 1)."""
    import statistics
    pg = _fresh_database(admin, ROW_HASHES_DATABASE)
    work = Path(tempfile.mkdtemp(prefix="thaw-bench-reconcile-row-hashes-"))
    config = _config(work / "config.json", database=ROW_HASHES_DATABASE)
    text = json.loads(config.read_text())
    text["reconcile"] = {"row_hashes": True}
    config.write_text(json.dumps(text))
    try:
        with pg.cursor() as c:
            c.execute('CREATE TABLE public.reconcile_bench ("ID" int8 PRIMARY KEY, "NOTE" varchar(40), "AMOUNT" numeric(12,2), "TS" timestamp, "UPDATED" timestamp)')
            c.execute('CREATE INDEX ON public.reconcile_bench ("UPDATED")')
        _thaw(thaw, ["migrate", "--config", str(config)], logs, "reconcile-row-hashes-migrate")
        _, copy_seconds = _thaw(thaw, ["run", "--config", str(config), "--no-conflicts", "--report", str(work / "run.json")], logs, "reconcile-row-hashes-copy")
        run = json.loads((work / "run.json").read_text())
        run_id = run["plan"]["run_id"]
        copy_seconds = dict(run["steps"]).get("copy", copy_seconds)
        with pg.cursor() as c:
            c.execute("SELECT side_table, complete FROM migration_status.row_hash_tables")
            side, complete = c.fetchone()
            c.execute(f"VACUUM ANALYZE {side}")
            c.execute(f"SELECT pg_total_relation_size('{side}'), pg_relation_size('{side}'), (SELECT count(*) FROM {side})")
            side_bytes, side_heap_bytes, side_rows = c.fetchone()
        hashed, sql = [], []
        for _ in range(2):
            for database, cfg, rid, out in ((ROW_HASHES_DATABASE, config, run_id, hashed), (PG_DATABASE, sql_config, sql_run_id, sql)):
                _forget_coverage(database)
                report, _ = _thaw(thaw, ["reconcile", "--config", str(cfg), "--run-id", rid, "--json"], logs, f"reconcile-row-hashes-{database}")
                out.append(_table(report))
    finally:
        pg.close()
        with admin.cursor() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{ROW_HASHES_DATABASE}" WITH (FORCE)')
    median = lambda ts, key: statistics.median(t["coverage"][key] for t in ts)  # noqa: E731
    rate = lambda n, s: n / s if s > 0 else float("nan")  # noqa: E731
    metrics = [
        ("reconcile identical, PostgreSQL side rows/s, row hashes vs SQL", rate(rows, median(hashed, "target_seconds")), rate(rows, median(sql, "target_seconds"))),
        ("copy rows/s with row hashes vs without", rate(rows, copy_seconds), rate(rows, sql_copy_seconds)),
    ]
    checks = {
        "row hashes: side table complete, one row per target row": complete and side_rows == rows,
        "row hashes: identical tables ok reading the side table, nothing transferred":
            all(t["summary"]["status"] == "ok" and t["coverage"]["row_hashes"] == "read" and t["coverage"]["rows_transferred"] == 0 for t in hashed),
        "row hashes: the SQL-hashing database is ok too": all(t["summary"]["status"] == "ok" for t in sql),
    }
    details = {
        "rows": rows, "copy_seconds_with": round(copy_seconds, 2), "copy_seconds_without": round(sql_copy_seconds, 2),
        "side_table_bytes_per_row": round(side_bytes / rows, 1), "side_table_heap_bytes_per_row": round(side_heap_bytes / rows, 1),
        "postgres_seconds_side_table": [t["coverage"]["target_seconds"] for t in hashed],
        "postgres_seconds_sql": [t["coverage"]["target_seconds"] for t in sql],
        "source_seconds_side_table": [t["coverage"]["source_seconds"] for t in hashed],
        "whole_seconds_side_table": [t["coverage"]["seconds"] for t in hashed], "whole_seconds_sql": [t["coverage"]["seconds"] for t in sql],
        "rows_transferred": [t["coverage"]["rows_transferred"] for t in hashed + sql],
    }
    return metrics, checks, details


def run(thaw: str, logs: Path, rows: int | None = None) -> tuple[list, dict, dict]:
    rows = rows or int(os.environ.get("BENCH_RECONCILE_ROWS") or 1_000_000)
    sf = _sf()
    cur = sf.cursor()
    cur.execute(f'CREATE OR REPLACE DATABASE "{SF_DATABASE}"')
    cur.execute(f'CREATE SCHEMA "{SF_DATABASE}"."S"')
    fqn = f'"{SF_DATABASE}"."S"."RECONCILE_BENCH"'
    cur.execute(f'CREATE TABLE {fqn} ("ID" NUMBER(38,0), "NOTE" VARCHAR(40), "AMOUNT" NUMBER(12,2), "TS" TIMESTAMP_NTZ, "UPDATED" TIMESTAMP_NTZ)')
    cur.execute(f"INSERT INTO {fqn} SELECT SEQ4() + 1, 'note ' || SEQ4(), (SEQ4() % 100000) / 100.0, "
                f"DATEADD(microsecond, SEQ4() * 1000003, '2024-01-01 00:00:00'::TIMESTAMP_NTZ), DATEADD(second, SEQ4(), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) "
                f"FROM TABLE(GENERATOR(ROWCOUNT => {rows}))")
    admin = _pg("postgres")
    admin.autocommit = True
    pg = _fresh_database(admin, PG_DATABASE)
    with pg.cursor() as c:
        c.execute('CREATE TABLE public.reconcile_bench ("ID" int8 PRIMARY KEY, "NOTE" varchar(40), "AMOUNT" numeric(12,2), "TS" timestamp, "UPDATED" timestamp)')
        c.execute('CREATE INDEX ON public.reconcile_bench ("UPDATED")')
    work = Path(tempfile.mkdtemp(prefix="thaw-bench-reconcile-"))
    config = _config(work / "config.json")
    try:
        _thaw(thaw, ["migrate", "--config", str(config)], logs, "reconcile-migrate")
        first, copy_seconds = _thaw(thaw, ["run", "--config", str(config), "--no-conflicts", "--report", str(work / "run1.json")], logs, "reconcile-copy")
        run1 = json.loads((work / "run1.json").read_text())
        run_id = run1["plan"]["run_id"]
        with pg.cursor() as c:
            c.execute("ANALYZE public.reconcile_bench")
            started = time.perf_counter()
            c.execute("SELECT count(*), sum(('x' || substr(md5(t::text), 1, 6))::bit(24)::int8), "
                      "sum(('x' || substr(md5(t::text), 7, 6))::bit(24)::int8) FROM public.reconcile_bench t")
            c.fetchall()
            naive_seconds = time.perf_counter() - started

        # 1. Identical tables, full verification.
        base = ["reconcile", "--config", str(config), "--run-id", run_id, "--json"]
        identical, identical_wall = _thaw(thaw, base + ["--full"], logs, "reconcile-identical")
        same = _table(identical)
        same_cov = same["coverage"]

        # 2. Ten scattered differences.
        ids = [1 + (i * 7919 * 104729) % rows for i in range(1, DIFFERENCES + 1)]
        with pg.cursor() as c:
            c.execute('UPDATE public.reconcile_bench SET "NOTE" = \'planted\' WHERE "ID" = ANY(%s)', (ids,))
        differing, differing_wall = _thaw(thaw, base + ["--full", "--leaf-rows", str(leaf_rows(rows))], logs, "reconcile-differences", ok_codes=(3,))
        diff = _table(differing)
        diff_cov = diff["coverage"]
        found = sorted(int(k) for k in (diff.get("diff") or {}).get("changed", []))
        with pg.cursor() as c:
            c.execute('UPDATE public.reconcile_bench SET "NOTE" = \'note \' || ("ID" - 1) WHERE "ID" = ANY(%s)', (ids,))

        # 3. The nightly reconcile after a 1 % change, against the full one of step 1.
        changed = max(1, rows // 100)
        cur.execute(f"UPDATE {fqn} SET \"NOTE\" = 'night 2', \"UPDATED\" = '2030-01-01 00:00:00' WHERE \"ID\" % 100 = 7")
        _, night_wall = _thaw(thaw, ["run", "--config", str(config), "--no-conflicts", "--report", str(work / "run2.json")], logs, "reconcile-night")
        run2 = json.loads((work / "run2.json").read_text())
        night = run2["reconcile_details"][0]
        night_cov = night["coverage"]

        # 5. Row hashes kept at load time vs SQL hashing (needs this database).
        hash_metrics, hash_checks, hash_details = [], {}, {}
        if os.environ.get("BENCH_RECONCILE_ROW_HASHES", "1") != "0":
            copy_step = dict(run1["steps"]).get("copy", copy_seconds)
            hash_metrics, hash_checks, hash_details = row_hashes(thaw, logs, rows, admin, config, run_id, copy_step)
    finally:
        pg.close()
        with admin.cursor() as c:
            c.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        # the emulator has no DROP DATABASE; CREATE OR REPLACE above starts over

    engineered_rows = int(os.environ.get("BENCH_RECONCILE_ENGINEERED_ROWS") or 1_000_000)
    _, engineered_checks, engineered_details = engineered(thaw, logs, engineered_rows, sf, admin) if engineered_rows else ([], {}, {})
    admin.close()
    sf.close()

    rate = lambda n, s: n / s if s > 0 else float("nan")  # noqa: E731
    metrics = [
        ("reconcile identical, PostgreSQL side rows/s", rate(rows, same_cov["target_seconds"]), rate(rows, naive_seconds)),
        ("reconcile identical, whole rows/s", rate(rows, same_cov["seconds"]), rate(rows, naive_seconds)),
        ("reconcile 10 differences, whole rows/s", rate(rows, diff_cov["seconds"]), rate(rows, naive_seconds)),
        ("nightly reconcile (1 % changed) rows/s", rate(rows, night_cov["seconds"]), rate(rows, same_cov["seconds"])),
        *hash_metrics,
    ]
    checks = {
        "reconcile identical: ok, nothing transferred": same["summary"]["status"] == "ok" and same_cov["rows_transferred"] == 0,
        "reconcile: the 10 planted differences found exactly": found == sorted(ids),
        "reconcile: < 0.5 % of rows transferred to locate them": diff_cov["rows_transferred"] < rows * 0.005,
        **engineered_checks,
        **hash_checks,
        "nightly reconcile ok and nightly-scoped": night["summary"]["status"] == "ok" and night_cov["scope"] == "nightly",
    }
    details = {
        "rows": rows, "copy_seconds": round(copy_seconds, 2), "naive_postgres_checksum_seconds": round(naive_seconds, 3),
        "identical": same_cov, "identical_wall_seconds": round(identical_wall, 2),
        "differences": {**diff_cov, "planted": ids, "found": found, "transferred_percent": round(100.0 * diff_cov["rows_transferred"] / rows, 4)},
        "nightly": {**night_cov, "changed_rows": changed, "run_wall_seconds": round(night_wall, 2),
                    "cost_vs_full": round(night_cov["seconds"] / same_cov["seconds"], 3) if same_cov["seconds"] else None},
        "engineered": engineered_details,
        "row_hashes": hash_details,
    }
    return metrics, checks, details


if __name__ == "__main__":
    import argparse
    import sys
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thaw", default=os.environ.get("THAW", "thaw"))
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="thaw-bench-reconcile-logs-"))
    metrics, checks, details = run(args.thaw, logs, args.rows)
    for name, a, b in metrics:
        print(f"{name:<46} {a:>14,.0f} {b:>14,.0f} {a / b:>7.2f}x")
    for name, ok in checks.items():
        print(f"check: {name}: {'ok' if ok else 'FAILED'}")
    print(json.dumps(details, indent=2))
    sys.exit(0 if all(checks.values()) else 1)
