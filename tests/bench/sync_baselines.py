"""Sync baselines for `make bench` (docs/benchmarks.md, "Sync baselines"; issue 7).

On the same rows of the visit fact table (FACTVISITCALLPERFORMANCE_CR with the
config's source_filter), with the emulator splitting results into chunks of
BENCH_ROWS_PER_CHUNK rows (through `snowflake.session_parameters`), measure:

* a warm-up read of the table, not measured (the emulator's first query of a
  table after seeding is slower, whichever side runs it);
* thaw full load: `thaw run --no-conflicts --no-resume`, copy phase from the
  report (first chunk start to last chunk end), twice: with `--workers` set to
  the machine's cores (the copy-phase target) and with the config's default
  workers (the peak RSS target, and the run the incremental starts from);
* pure fetch: `bench_loader fetch` (thaw's streaming client, no PostgreSQL),
  which also writes the rows to an Arrow IPC file;
* minimal ingest: `bench_loader ingest`, that file into the same table (thaw's
  migrations: primary key + 3 indexes) in one binary COPY, no source, no status;
* legacy full load: `legacy_copy.py` (fetchall -> pandas -> CSV COPY, 4
  threads, 25 000-row chunks) into its own database, same chunked results;
* thaw incremental: `thaw dev mutate` changes 10 % of the visits, then
  `thaw run` again (watermark, upsert);
* legacy incremental: `legacy_copy.py --incremental` on the legacy's database
  (rows newer than its maximum watermark, CSV COPY into staging, upsert);
  check: after it, the thaw and legacy targets hold identical rows;
* the peak RSS (VmHWM) of every process.

Standalone (without the rest of `make bench`; seeds the emulator first):

    python3 tests/harness.py run -- ~/.cache/thaw/bench-venv/bin/python \
        tests/bench/sync_baselines.py --thaw /tmp/thaw --visits 1000000

Targets: thaw copy <= 1.2 x max(pure fetch, minimal ingest) (fetch and COPY
overlap), measured with as many workers as the machine has cores
(BENCH_COPY_WORKERS) and reported with the config's default workers too;
>= 10x the legacy path; peak RSS < 256 MiB with the default workers.
`bench_loader` is functions/engine/examples/bench_loader.rs (BENCH_LOADER, default
$CARGO_TARGET_DIR/release/examples/bench_loader).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2

MIB = 1024 * 1024


def wait_with_peak_rss(proc: subprocess.Popen) -> int:
    """Wait for `proc`; return its peak RSS in KiB, polled from /proc VmHWM.

    VmHWM belongs to the process image (reset by exec), unlike `wait4`'s
    ru_maxrss, which keeps the high-water mark of the Python parent that
    forked it. Output to a pipe must stay below the pipe's buffer (the caller
    reads it only after the exit).
    """
    peak_kib = 0
    status_path = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status_path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    return peak_kib


def measured(cmd: list[str], what: str, logs: Path) -> tuple[str, float, float]:
    """Run `cmd`; return (stdout, seconds, peak RSS in MiB read from /proc VmHWM)."""
    log_path = logs / f"{what}.log"
    started = time.perf_counter()
    with open(log_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
        peak_kib = wait_with_peak_rss(proc)
        out = proc.stdout.read() if proc.stdout else ""
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{what} exited {proc.returncode}; see {log_path}")
    return out, seconds, peak_kib / 1024


def chunked_config(path: Path, rows_per_chunk: int) -> Path:
    """The same config with the emulator asked for chunked results."""
    config = json.loads(path.read_text())
    config["snowflake"].setdefault("session_parameters", {})["THAW_EMULATOR_ROWS_PER_CHUNK"] = rows_per_chunk
    out = path.with_name(path.stem + "-chunked.json")
    out.write_text(json.dumps(config, indent=2))
    return out


def copy_workers() -> int:
    """Concurrent copy workers for the copy-phase target: the machine's cores.

    Every process of the measurement (the emulator, thaw, PostgreSQL's
    backends) shares this machine; more concurrent COPY streams than cores
    only add contention (docs/benchmarks.md §3, "Workers and cores").
    BENCH_COPY_WORKERS overrides it.
    """
    return int(os.environ.get("BENCH_COPY_WORKERS") or os.cpu_count() or 2)


def thaw_copy(thaw: str, config: Path, logs: Path, what: str, fact: str, workers: int | None = None) -> dict:
    """`thaw run` of `config` (with `--workers` when given); the fact table's figures from its report."""
    report_path = logs / f"{what}.json"
    extra = ["--workers", str(workers)] if workers else []
    _, wall, peak = measured([thaw, "run", "--config", str(config), "--no-conflicts", "--report", str(report_path), *extra], what, logs)
    report = json.loads(report_path.read_text())
    table = next(t for t in report["tables"] if t["source_table"] == fact)
    if table["failed_chunks"]:
        raise RuntimeError(f"{what}: failed chunks, see {report_path}")
    return {"rows": table["rows_read"], "rows_written": table["rows_written"], "copy_seconds": table["seconds"],
            "wall_seconds": wall, "peak_rss_mib": round(peak, 1)}


def fingerprint(pg, database: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of every row's text form."""
    with pg(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text || '/' || "
                    f"coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint), 0)::text FROM (SELECT md5(t::text) AS h FROM {table} t) r")
        return cur.fetchone()


def legacy_copy(config: Path, fact: str, database: str, rows_per_chunk: int, logs: Path, what: str, extra: list[str]) -> dict:
    """tests/bench/legacy_copy.py with the same chunked results; its JSON plus peak RSS."""
    script = Path(__file__).resolve().with_name("legacy_copy.py")
    out, wall, peak = measured([sys.executable, str(script), "--config", str(config), "--table", fact, "--pg-database", database,
                                "--batch-size", "25000", "--emulator-rows-per-chunk", str(rows_per_chunk), *extra], what, logs)
    return {**json.loads(out.strip().splitlines()[-1]), "process_seconds": round(wall, 2), "peak_rss_mib": round(peak, 1)}


def sync_baselines(thaw: str, configs, database_helpers, fact: str, fact_target: str, visits: int, seed: int, today,
                   rows_per_chunk: int, logs: Path, legacy: dict | None = None) -> dict:
    """Run the baselines; return {"metrics": [(name, thaw, baseline)], "checks": {...}, "details": {...}}.

    `database_helpers` is (fresh_database, drop_database, pg) from run_bench.py.
    `legacy` is unused (kept for callers): the legacy full and incremental runs
    are measured here, on the same emulator as thaw's.
    """
    fresh_database, drop_database, pg = database_helpers
    loader = os.environ.get("BENCH_LOADER") or str(
        Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "thaw" / "target") / "release" / "examples" / "bench_loader")
    thaw_db, ingest_db, legacy_db = "thaw_bench_baseline_thaw", "thaw_bench_baseline_ingest", "thaw_bench_baseline_legacy"

    # A warm-up read of the table (not measured): the first query of a table
    # after seeding pays the emulator's cold caches, whichever side runs it.
    fresh_database(thaw_db)
    config = chunked_config(configs.write("sync", thaw_db), rows_per_chunk)
    source = json.loads(config.read_text())["sources"][0]
    fact_config = next(t for s in json.loads(config.read_text())["sources"] for t in s["tables"] if t["source"] == fact)
    where = fact_config.get("source_filter") or "TRUE"
    table_sql = f'"{source["source_sf_database"]}"."{source["source_sf_schema"]}"."{fact}" WHERE {where}'
    rows_file = logs / "baseline-rows.arrows"
    before = ["--before", f"ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = {rows_per_chunk}"]
    measured([loader, "fetch", "--sql", f"SELECT * FROM {table_sql}", "--out", str(rows_file), *before], "baseline-warm-up", logs)

    # The copy phase with as many workers as the machine has cores, then the
    # full load with the config's default workers (4), kept for the rest.
    workers = copy_workers()
    at_cores = thaw_copy(thaw, config, logs, "baseline-thaw-full-cores", fact, workers)
    fresh_database(thaw_db)
    full = thaw_copy(thaw, config, logs, "baseline-thaw-full", fact)

    # The same rows and columns thaw copied: the target's columns, the table's filter.
    schema, table = fact_target.split(".")
    with pg(thaw_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "ORDER BY ordinal_position", (schema, table))
        columns = [r[0] for r in cur.fetchall()]
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    out, _, fetch_peak = measured([loader, "fetch", "--sql", f"SELECT {quoted} FROM {table_sql}", "--out", str(rows_file), *before],
                                  "baseline-fetch", logs)
    fetch = {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": round(fetch_peak, 1)}

    fresh_database(ingest_db)
    subprocess.run([thaw, "migrate", "--config", str(configs.write("sync", ingest_db))], check=True, capture_output=True)
    dates = [a for c in fact_config.get("truncate_to_date", []) for a in ("--truncate-to-date", c)]
    out, _, ingest_peak = measured([loader, "ingest", "--in", str(rows_file), "--database", ingest_db, "--table", fact_target, *dates],
                                   "baseline-ingest", logs)
    ingest = {**json.loads(out.strip().splitlines()[-1]), "peak_rss_mib": round(ingest_peak, 1)}
    rows_file.unlink(missing_ok=True)
    drop_database(ingest_db)

    fresh_database(legacy_db)
    legacy_config = configs.write("sync", legacy_db)
    subprocess.run([thaw, "migrate", "--config", str(legacy_config)], check=True, capture_output=True)
    legacy = legacy_copy(legacy_config, fact, legacy_db, rows_per_chunk, logs, "baseline-legacy-full", [])

    # Incremental: 10 % of the visits updated in the source, then the nightly run again.
    updates = max(1, visits // 10)
    subprocess.run([thaw, "dev", "mutate", "--config", str(config), "--visits", str(visits), "--seed", str(seed),
                    "--today", today.isoformat(), "--updates", str(updates), "--inserts", "0", "--deletes", "0"],
                   check=True, capture_output=True)
    incremental = thaw_copy(thaw, config, logs, "baseline-thaw-incremental", fact)
    legacy_incremental = legacy_copy(legacy_config, fact, legacy_db, rows_per_chunk, logs, "baseline-legacy-incremental", ["--incremental"])
    same_after_incremental = fingerprint(pg, thaw_db, fact_target) == fingerprint(pg, legacy_db, fact_target)
    drop_database(thaw_db)
    drop_database(legacy_db)

    ceiling = max(fetch["seconds"], ingest["seconds"])
    legacy_rate = legacy["rows"] / legacy["copy_seconds"]
    legacy_incremental_rate = legacy_incremental["rows"] / legacy_incremental["copy_seconds"]
    metrics = [
        (f"copy s: thaw ({workers} workers = cores) vs max(fetch, ingest)", at_cores["copy_seconds"], ceiling),
        ("copy s: thaw (default workers) vs max(fetch, ingest)", full["copy_seconds"], ceiling),
        ("pure fetch rows/s (bench_loader)", fetch["rows"] / fetch["seconds"], legacy_rate),
        ("minimal ingest rows/s (bench_loader)", ingest["rows"] / ingest["seconds"], legacy_rate),
        ("thaw full copy rows/s vs legacy", full["rows"] / full["copy_seconds"], legacy_rate),
        ("thaw incremental rows/s vs legacy incremental", incremental["rows"] / incremental["copy_seconds"], legacy_incremental_rate),
    ]
    peak = max(full["peak_rss_mib"], incremental["peak_rss_mib"])
    checks = {"baselines: fetch, ingest and thaw saw the same rows":
              fetch["rows"] == ingest["rows"] == full["rows"] == at_cores["rows"] == legacy["rows"],
              "baselines: thaw and legacy targets identical after the incremental runs": same_after_incremental}
    # Targets are reported, not checked: a miss is a finding, not a broken run.
    targets = {
        f"thaw copy ({workers} workers = cores) <= 1.2 x max(pure fetch, minimal ingest)": at_cores["copy_seconds"] <= 1.2 * ceiling,
        "thaw copy (default workers) <= 1.2 x max(pure fetch, minimal ingest)": full["copy_seconds"] <= 1.2 * ceiling,
        "thaw full copy >= 10x legacy": full["rows"] / full["copy_seconds"] >= 10 * legacy_rate,
        "thaw incremental >= 10x legacy incremental": incremental["rows"] / incremental["copy_seconds"] >= 10 * legacy_incremental_rate,
        "thaw peak RSS < 256 MiB": peak < 256,
    }
    lines = [
        f"sync baselines ({full['rows']} rows, {rows_per_chunk}-row result chunks): "
        f"thaw copy {full['copy_seconds']:.2f} s (peak RSS {full['peak_rss_mib']:.0f} MiB; "
        f"{at_cores['copy_seconds']:.2f} s and {at_cores['peak_rss_mib']:.0f} MiB with {workers} workers), "
        f"pure fetch {fetch['seconds']:.2f} s ({fetch['peak_rss_mib']:.0f} MiB), "
        f"minimal ingest {ingest['seconds']:.2f} s ({ingest['peak_rss_mib']:.0f} MiB), "
        f"thaw incremental {incremental['rows']} rows in {incremental['copy_seconds']:.2f} s ({incremental['peak_rss_mib']:.0f} MiB), "
        f"legacy {legacy['rows']} rows in {legacy['copy_seconds']:.2f} s ({legacy['peak_rss_mib']:.0f} MiB), "
        f"legacy incremental {legacy_incremental['rows']} rows in {legacy_incremental['copy_seconds']:.2f} s "
        f"({legacy_incremental['peak_rss_mib']:.0f} MiB)",
    ] + [f"target: {name}: {'met' if ok else 'NOT met'}" for name, ok in targets.items()]
    return {"metrics": metrics, "checks": checks, "lines": lines,
            "details": {"thaw_full": full, "thaw_full_at_cores": {**at_cores, "workers": workers}, "fetch": fetch, "ingest": ingest, "thaw_incremental": incremental,
                        "legacy_full": legacy, "legacy_incremental": legacy_incremental, "targets": targets}}


def main() -> int:
    """Seed the emulator and run only these baselines (see the module docs)."""
    import argparse
    import datetime as dt
    import shutil
    import tempfile

    import run_bench as bench  # tests/bench/run_bench.py: configs, seeding, databases

    parser = argparse.ArgumentParser(description="thaw's sync baselines on their own (docs/benchmarks.md §3)")
    parser.add_argument("--thaw", required=True, help="the thaw binary (a release build copied out of the shared target dir)")
    parser.add_argument("--visits", type=int, default=int(os.environ.get("BENCH_VISITS") or 300_000))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED") or 42))
    parser.add_argument("--rows-per-chunk", type=int, default=int(os.environ.get("BENCH_ROWS_PER_CHUNK") or 10_000))
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the work directory (every process's log, thaw's reports) and print its path; "
                             "with RUST_LOG=thaw_engine=debug the logs hold per-chunk timings")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="thaw-sync-baselines-"))
    logs = work / "logs"
    logs.mkdir()
    try:
        today = dt.date.today()
        configs = bench.Configs(work, bench.REPO / "examples" / "config.json", today)
        bench.log(f"seeding {args.visits} visits")
        bench.seed(args.thaw, configs, "thaw_bench", args.visits, args.seed, today, logs, "")
        result = sync_baselines(args.thaw, configs, (bench.fresh_database, bench.drop_database, bench.pg), bench.FACT,
                                bench.FACT_TARGET, args.visits, args.seed, today, args.rows_per_chunk, logs)
    except (bench.BenchFailure, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"sync baselines: {e}\n(logs kept in {logs})", file=sys.stderr)
        return 1
    print("\n".join(result["lines"]))
    for name, value, base in result["metrics"]:
        print(f"{name:<45} {value:>12,.2f} {base:>12,.2f} {value / base:>6.2f}x")
    for name, ok in result["checks"].items():
        print(f"check: {name}: {'ok' if ok else 'FAILED'}")
    print(json.dumps(result["details"]))
    if args.keep_logs:
        print(f"logs kept in {logs}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(result["checks"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
