"""Sync baselines for `make bench` (docs/benchmarks.md, "Sync baselines"; issue 7).

On the same rows of the visit fact table (FACTVISITCALLPERFORMANCE_CR with the
config's source_filter), with the emulator splitting results into chunks of
BENCH_ROWS_PER_CHUNK rows (through `snowflake.session_parameters`), measure:

* thaw full load: `thaw run --no-conflicts --no-resume`, copy phase from the
  report (first chunk start to last chunk end);
* pure fetch: `bench_loader fetch` (thaw's streaming client, no PostgreSQL),
  which also writes the rows to an Arrow IPC file;
* minimal ingest: `bench_loader ingest`, that file into the same table (thaw's
  migrations: primary key + 3 indexes) in one binary COPY, no source, no status;
* thaw incremental: `thaw dev mutate` changes 10 % of the visits, then
  `thaw run` again (watermark, upsert);
* the peak RSS (VmHWM) of every process.

Targets: thaw copy <= 1.2 x max(pure fetch, minimal ingest) (fetch and COPY
overlap); >= 10x the legacy path; peak RSS < 256 MiB with the default workers.
`bench_loader` is functions/engine/examples/bench_loader.rs (BENCH_LOADER, default
$CARGO_TARGET_DIR/release/examples/bench_loader).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import psycopg2

MIB = 1024 * 1024


def measured(cmd: list[str], what: str, logs: Path) -> tuple[str, float, float]:
    """Run `cmd`; return (stdout, seconds, peak RSS in MiB read from /proc VmHWM)."""
    log_path = logs / f"{what}.log"
    started = time.perf_counter()
    with open(log_path, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
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


def thaw_copy(thaw: str, config: Path, logs: Path, what: str, fact: str) -> dict:
    report_path = logs / f"{what}.json"
    _, wall, peak = measured([thaw, "run", "--config", str(config), "--no-conflicts", "--report", str(report_path)], what, logs)
    report = json.loads(report_path.read_text())
    table = next(t for t in report["tables"] if t["source_table"] == fact)
    if table["failed_chunks"]:
        raise RuntimeError(f"{what}: failed chunks, see {report_path}")
    return {"rows": table["rows_read"], "rows_written": table["rows_written"], "copy_seconds": table["seconds"],
            "wall_seconds": wall, "peak_rss_mib": round(peak, 1)}


def sync_baselines(thaw: str, configs, database_helpers, fact: str, fact_target: str, visits: int, seed: int, today,
                   rows_per_chunk: int, logs: Path, legacy: dict) -> dict:
    """Run the baselines; return {"metrics": [(name, thaw, baseline)], "checks": {...}, "details": {...}}.

    `database_helpers` is (fresh_database, drop_database, pg) from run_bench.py;
    `legacy` is the legacy path's result on the same rows (chunked emulator).
    """
    fresh_database, drop_database, pg = database_helpers
    loader = os.environ.get("BENCH_LOADER") or str(
        Path(os.environ.get("CARGO_TARGET_DIR") or Path.home() / ".cache" / "thaw" / "target") / "release" / "examples" / "bench_loader")
    thaw_db, ingest_db = "thaw_bench_baseline_thaw", "thaw_bench_baseline_ingest"

    fresh_database(thaw_db)
    config = chunked_config(configs.write("sync", thaw_db), rows_per_chunk)
    full = thaw_copy(thaw, config, logs, "baseline-thaw-full", fact)

    # The same rows and columns thaw copied: the target's columns, the table's filter.
    schema, table = fact_target.split(".")
    with pg(thaw_db) as conn, conn.cursor() as cur:
        cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "ORDER BY ordinal_position", (schema, table))
        columns = [r[0] for r in cur.fetchall()]
    source = json.loads(config.read_text())["sources"][0]
    fact_config = next(t for s in json.loads(config.read_text())["sources"] for t in s["tables"] if t["source"] == fact)
    quoted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    where = fact_config.get("source_filter") or "TRUE"
    sql = f'SELECT {quoted} FROM "{source["source_sf_database"]}"."{source["source_sf_schema"]}"."{fact}" WHERE {where}'
    rows_file = logs / "baseline-rows.arrows"
    out, _, fetch_peak = measured([loader, "fetch", "--sql", sql, "--out", str(rows_file),
                                   "--before", f"ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = {rows_per_chunk}"],
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

    # Incremental: 10 % of the visits updated in the source, then the nightly run again.
    updates = max(1, visits // 10)
    subprocess.run([thaw, "dev", "mutate", "--config", str(config), "--visits", str(visits), "--seed", str(seed),
                    "--today", today.isoformat(), "--updates", str(updates), "--inserts", "0", "--deletes", "0"],
                   check=True, capture_output=True)
    incremental = thaw_copy(thaw, config, logs, "baseline-thaw-incremental", fact)
    drop_database(thaw_db)

    ceiling = max(fetch["seconds"], ingest["seconds"])
    legacy_rate = legacy["rows"] / legacy["copy_seconds"]
    metrics = [
        ("copy s: thaw vs max(fetch, ingest)", full["copy_seconds"], ceiling),
        ("pure fetch rows/s (bench_loader)", fetch["rows"] / fetch["seconds"], legacy_rate),
        ("minimal ingest rows/s (bench_loader)", ingest["rows"] / ingest["seconds"], legacy_rate),
        ("thaw full copy rows/s vs legacy", full["rows"] / full["copy_seconds"], legacy_rate),
        ("thaw incremental rows/s vs legacy full", incremental["rows"] / incremental["copy_seconds"], legacy_rate),
    ]
    peak = max(full["peak_rss_mib"], incremental["peak_rss_mib"])
    checks = {"baselines: fetch, ingest and thaw saw the same rows": fetch["rows"] == ingest["rows"] == full["rows"]}
    # Targets are reported, not checked: a miss is a finding, not a broken run.
    targets = {
        "thaw copy <= 1.2 x max(pure fetch, minimal ingest)": full["copy_seconds"] <= 1.2 * ceiling,
        "thaw full copy >= 10x legacy": full["rows"] / full["copy_seconds"] >= 10 * legacy_rate,
        "thaw incremental >= 10x legacy (legacy full-load rate)": incremental["rows"] / incremental["copy_seconds"] >= 10 * legacy_rate,
        "thaw peak RSS < 256 MiB": peak < 256,
    }
    lines = [
        f"sync baselines ({full['rows']} rows, {rows_per_chunk}-row result chunks): "
        f"thaw copy {full['copy_seconds']:.2f} s (peak RSS {full['peak_rss_mib']:.0f} MiB), "
        f"pure fetch {fetch['seconds']:.2f} s ({fetch['peak_rss_mib']:.0f} MiB), "
        f"minimal ingest {ingest['seconds']:.2f} s ({ingest['peak_rss_mib']:.0f} MiB), "
        f"thaw incremental {incremental['rows']} rows in {incremental['copy_seconds']:.2f} s ({incremental['peak_rss_mib']:.0f} MiB), "
        f"legacy {legacy['rows']} rows in {legacy['copy_seconds']:.2f} s",
    ] + [f"target: {name}: {'met' if ok else 'NOT met'}" for name, ok in targets.items()]
    return {"metrics": metrics, "checks": checks, "lines": lines,
            "details": {"thaw_full": full, "fetch": fetch, "ingest": ingest, "thaw_incremental": incremental, "targets": targets}}
