"""The staged-Parquet load of the visit fact table in `make bench` (docs/sync.md §13).

Three loads of the same rows, measured in the same run (ratios, never absolute targets):

* **staged**: thaw's staged path loading files an earlier run unloaded
  (`thaw run --reuse-unload RUN_ID` after truncating the target, so only the
  load is timed): per-file transactions and status rows, streaming reads of
  row groups from the S3 API, thaw's binary COPY encoder;
* **minimal loader**: `functions/engine/examples/parquet_copy_baseline.rs`,
  the same files downloaded whole, decoded synchronously and written through
  as many concurrent COPYs as thaw has workers for the table (its
  `parallel_threads`, files dealt round-robin, one transaction per stream)
  with no status at all — the practical ceiling on this machine (a single
  COPY stream was measured 1.8× slower than thaw's staged load, so it was no
  ceiling);
* **direct**: thaw's direct path (the main phase's inline sync).

Target: staged >= 0.9x the minimal loader. Peak RSS (kB, `/usr/bin/time`)
of the staged run and of the minimal loader are reported. The three targets
must hold the same rows (count and the bench's order-independent checksum).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import ModuleType

STAGED_UNLOAD_DB = "thaw_bench_staged"
MINIMAL_DB = "thaw_bench_staged_minimal"


def _config(bench: ModuleType, configs, database: str) -> Path:
    """The sync config with the fact table staged and a staging section for the harness's S3 API."""
    config = json.loads(configs.sync_text.replace(bench.DB_SENTINEL, database))
    config["staging"] = {"stage": "THAW_BENCH_STAGE", "storage_integration": "THAW_S3_INTEGRATION",
                         "bucket": os.environ["THAW_S3_BUCKET"], "max_file_size_mb": 16}
    for source in config["sources"]:
        for table in source["tables"]:
            if table["source"] == bench.FACT:
                table["source_mode"] = "staged"
    path = configs.work / f"staged-{database}.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    path.chmod(0o600)
    return path


def _timed(bench: ModuleType, cmd: list[str], what: str, logs: Path) -> tuple[str, float, int]:
    """Run `cmd` under /usr/bin/time: (stdout, wall seconds, peak RSS in kB)."""
    rss_file = logs / f"{what}.rss"
    out, seconds = bench.run(["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *cmd], what, logs)
    return out, seconds, int(rss_file.read_text().strip().splitlines()[-1])


def _fact(report: dict, bench: ModuleType, what: str) -> dict:
    table = next((t for t in report["tables"] if t["source_table"] == bench.FACT), None)
    if table is None or table["failed_chunks"]:
        raise bench.BenchFailure(f"{what}: no clean {bench.FACT} load in the report")
    return table


def measure(bench: ModuleType, thaw: str, baseline: str, configs, logs: Path, direct: dict, direct_db: str,
            repeats: int = 1) -> dict:
    """Unload once, then time the staged load and the minimal loader on the same files, `repeats`
    times interleaved (staged, minimal, staged, minimal, …); seconds and peak RSS are the medians."""
    bench.fresh_database(STAGED_UNLOAD_DB)
    config = _config(bench, configs, STAGED_UNLOAD_DB)
    first_report = logs / "staged-unload.json"
    bench.run([thaw, "run", "--config", str(config), "--full", "--no-conflicts", "--no-resume", "--report", str(first_report)], "staged-unload", logs)
    unload = json.loads(first_report.read_text())
    run_id = unload["plan"]["run_id"]
    _fact(unload, bench, "staged unload run")

    staged_runs, minimal_runs = [], []
    for attempt in range(1, repeats + 1):
        staged_runs.append(_staged_load(bench, thaw, config, run_id, logs, attempt))
        minimal_runs.append(_minimal_load(bench, thaw, baseline, configs, run_id, logs, attempt))
        bench.log(f"staged round {attempt}/{repeats}: staged load {staged_runs[-1]['seconds']:.2f} s, "
                  f"minimal loader {minimal_runs[-1]['seconds']:.2f} s")
    load = {"rows_read": staged_runs[0]["rows"], "seconds": _median([r["seconds"] for r in staged_runs])}
    staged_rss = int(_median([r["rss"] for r in staged_runs]))
    minimal = {"rows": minimal_runs[0]["rows"], "seconds": _median([r["seconds"] for r in minimal_runs])}
    minimal_rss = int(_median([r["rss"] for r in minimal_runs]))

    fingerprints = {db: bench.table_fingerprint(db, bench.FACT_TARGET) for db in (STAGED_UNLOAD_DB, MINIMAL_DB, direct_db)}
    files = bench.pg(STAGED_UNLOAD_DB)
    with files.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM migration_status.migration_file_status WHERE run_id = %s", (run_id,))
        file_count, file_bytes = cur.fetchone()
    files.close()
    result = {
        "rows": load["rows_read"], "files": file_count, "bytes": int(file_bytes),
        "staged_seconds": load["seconds"], "staged_peak_rss_kb": staged_rss,
        "minimal_rows": minimal["rows"], "minimal_seconds": minimal["seconds"], "minimal_peak_rss_kb": minimal_rss,
        "direct_rows": direct["rows"], "direct_seconds": direct["copy_seconds"],
        "identical": len(set(fingerprints.values())) == 1,
        "repeats": repeats,
        "staged_seconds_each": [r["seconds"] for r in staged_runs],
        "minimal_seconds_each": [r["seconds"] for r in minimal_runs],
    }
    bench.log(f"staged: {result['rows']} rows in {file_count} files ({int(file_bytes) / 1e6:.1f} MB): staged load "
              f"{result['staged_seconds']:.2f} s (peak RSS {staged_rss / 1024:.0f} MiB), minimal loader "
              f"{result['minimal_seconds']:.2f} s (peak RSS {minimal_rss / 1024:.0f} MiB), direct copy {result['direct_seconds']:.2f} s")
    for db in (STAGED_UNLOAD_DB, MINIMAL_DB):
        bench.drop_database(db)
    return result


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _staged_load(bench: ModuleType, thaw: str, config: Path, run_id: str, logs: Path, attempt: int) -> dict:
    """The load alone: run `run_id`'s files again into the emptied target (same status database)."""
    conn = bench.pg(STAGED_UNLOAD_DB)
    with conn, conn.cursor() as cur:
        cur.execute(f"TRUNCATE {bench.FACT_TARGET}")
    conn.close()
    load_report = logs / f"staged-load-{attempt}.json"
    _, _, rss = _timed(bench, [thaw, "run", "--config", str(config), "--full", "--no-conflicts", "--no-resume",
                               "--reuse-unload", run_id, "--report", str(load_report)], f"staged-load-{attempt}", logs)
    load_run = json.loads(load_report.read_text())
    load = _fact(load_run, bench, "staged load run")
    conn = bench.pg(STAGED_UNLOAD_DB)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM migration_status.migration_file_status WHERE run_id = %s AND unloaded_by_run <> %s",
                    (load_run["plan"]["run_id"], run_id))
        unloaded_again = cur.fetchone()[0]
    conn.close()
    if unloaded_again:
        raise bench.BenchFailure(f"the load-only run unloaded {unloaded_again} file(s) again (its chunk plan differs from run {run_id})")
    return {"rows": load["rows_read"], "seconds": load["seconds"], "rss": rss}


def _minimal_load(bench: ModuleType, thaw: str, baseline: str, configs, run_id: str, logs: Path, attempt: int) -> dict:
    """The minimal loader on the same files into a fresh, migrated database."""
    bench.fresh_database(MINIMAL_DB)
    bench.run([thaw, "migrate", "--config", str(_config(bench, configs, MINIMAL_DB))], f"staged-minimal-migrate-{attempt}", logs)
    truncate_to_date = ",".join(configs.fact_table.get("truncate_to_date") or [])
    # As many concurrent COPY streams as thaw has workers for the table (its parallel_threads).
    streams = str(configs.fact_table.get("parallel_threads") or 4)
    out, _, rss = _timed(bench, [baseline, STAGED_UNLOAD_DB, run_id, bench.FACT, MINIMAL_DB, truncate_to_date, streams],
                         f"staged-minimal-{attempt}", logs)
    minimal = json.loads(out.strip().splitlines()[-1])
    return {"rows": minimal["rows"], "seconds": minimal["seconds"], "rss": rss}


def per_file(r: dict) -> dict:
    """Per-file figures of the staged load (what docs/benchmarks.md §6.1's model takes): MB/s and
    rows/s of the whole load, and seconds per file of the average size (and per 16 MiB)."""
    seconds = r["staged_seconds"]
    mb = r["bytes"] / 1e6
    return {
        "mb_per_second": mb / seconds,
        "rows_per_second": r["rows"] / seconds,
        "mean_file_mb": mb / max(r["files"], 1),
        "rows_per_mb": r["rows"] / mb if mb else 0.0,
        "seconds_per_16_mib_file": (16 * 1024 * 1024 / 1e6) / (mb / seconds) if mb else 0.0,
    }


def main() -> int:
    """Only this benchmark (seed, direct sync, staged), under the harness:
    `python3 tests/harness.py run -- <bench venv python> tests/bench/staged.py --thaw THAW --baseline LOADER`."""
    import argparse
    import datetime as dt
    import sys
    import tempfile
    import time

    import run_bench as bench  # tests/bench/run_bench.py

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0])
    parser.add_argument("--thaw", required=True)
    parser.add_argument("--baseline", required=True, help="the release build of examples/parquet_copy_baseline.rs")
    parser.add_argument("--visits", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="thaw-bench-staged-"))
    logs = work / "logs"
    logs.mkdir()
    started = time.perf_counter()
    today = dt.date.today()
    configs = bench.Configs(work, bench.REPO / "examples" / "config.json", today)
    bench.log(f"seeding {args.visits} visits (seed {args.seed})")
    bench.seed(args.thaw, configs, "thaw_bench", args.visits, args.seed, today, logs, "")
    direct = bench.thaw_sync(args.thaw, configs, "thaw_bench_sync_thaw", logs, "")
    result = measure(bench, args.thaw, args.baseline, configs, logs, direct, "thaw_bench_sync_thaw", args.repeats)
    bench.drop_database("thaw_bench_sync_thaw")
    result["per_file"] = per_file(result)
    for name, thaw_rate, base_rate in metrics(bench, result):
        print(f"{name}: {thaw_rate:,.0f} vs {base_rate:,.0f} rows/s = {thaw_rate / base_rate:.2f}x")
    print(json.dumps(result, indent=2))
    bench.log(f"staged benchmark done in {time.perf_counter() - started:.0f} s (logs in {logs})")
    return 0 if result["identical"] else 1


def metrics(bench: ModuleType, r: dict) -> list[tuple[str, float, float]]:
    """Rows for the bench table: (name, thaw staged rows/s, baseline rows/s)."""
    staged = bench.rate(r["rows"], r["staged_seconds"])
    return [
        ("staged load rows/s vs minimal loader", staged, bench.rate(r["minimal_rows"], r["minimal_seconds"])),
        ("staged load rows/s vs thaw direct copy", staged, bench.rate(r["direct_rows"], r["direct_seconds"])),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
