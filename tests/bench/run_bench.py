#!/usr/bin/env python3
"""`make bench` driver: thaw against baselines measured in the same run.

Started by tests/bench.sh inside tests/harness.py (THAW_PG_*, THAW_SF_* set), with
the bench venv's Python. Steps (tests/bench/README.md explains the output):

1. seed the emulator (`thaw dev seed`, BENCH_VISITS visits, BENCH_SEED);
2. sync benchmark, FACTVISITCALLPERFORMANCE_CR only, each into a fresh database:
   thaw (`thaw run --no-conflicts --report`) and the legacy path
   (tests/bench/legacy_copy.py); the two targets are compared row for row;
3. conflict benchmark on a full thaw run's database: `thaw conflicts --full`
   against tests/bench/conflicts_self_join.sql; the detected pair sets are compared;
4. the thaw sync again under a second harness whose emulator splits results into
   chunks (BENCH_ROWS_PER_CHUNK rows), re-seeded with the same visits and seed,
   plus the legacy baseline on that emulator too;
5. a table (metric, thaw, baseline, ratio) on stdout and the same as JSON in
   ${THAW_CACHE}/bench/bench-<UTC timestamp>.json.

`--phase chunked-sync` is step 4's inner half (run by the nested harness).
Exit code 0 when every measurement ran and every cross-check agreed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg2
import staged  # tests/bench/staged.py

import reconcile as reconcile_bench  # tests/bench/reconcile.py

REPO = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO / "tests" / "bench"
FACT = "FACTVISITCALLPERFORMANCE_CR"
FACT_TARGET = "analytics.factvisitcallperformance_cr"
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
DB_SENTINEL = "__THAW_BENCH_DATABASE__"


def log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


class BenchFailure(Exception):
    """A step failed; the message names the step and where its output is."""


# --- configuration -------------------------------------------------------------
class Configs:
    """Concrete configs generated from examples/config.json in a private temp dir.

    Placeholders are expanded from the harness environment (the files hold the
    harness's throwaway passwords and are deleted with the directory); every
    database name becomes the one of the measurement."""

    def __init__(self, work: Path, source: Path, today: dt.date) -> None:
        self.work = work
        env = dict(os.environ, THAW_PG_DATABASE=DB_SENTINEL)

        def sub(m: re.Match[str]) -> str:
            if env.get(m.group(1)):
                return env[m.group(1)]
            if m.group(2) is not None:
                return m.group(2)
            raise BenchFailure(f"{source}: placeholder ${{{m.group(1)}}} is not set (run under tests/harness.py)")

        full = json.loads(PLACEHOLDER.sub(sub, source.read_text(encoding="utf-8")))
        full.setdefault("conflicts", {})["today"] = today.isoformat()
        self.time_zone = full["conflicts"].get("time_zone") or "America/New_York"
        sync = json.loads(json.dumps(full))
        sync["sources"] = []
        for s in full["sources"]:
            tables = [t for t in s["tables"] if t["source"] == FACT]
            if tables:
                sync["sources"].append(dict(s, tables=tables))
        if not sync["sources"]:
            raise BenchFailure(f"{source} has no {FACT} table")
        self.fact_table = sync["sources"][0]["tables"][0]
        self.full_text = json.dumps(full, indent=2)
        self.sync_text = json.dumps(sync, indent=2)

    def write(self, kind: str, database: str) -> Path:
        path = self.work / f"{kind}-{database}.json"
        text = self.full_text if kind == "full" else self.sync_text
        path.write_text(text.replace(DB_SENTINEL, database), encoding="utf-8")
        path.chmod(0o600)
        return path


# --- processes and databases -------------------------------------------------------
def run(cmd: list[str], what: str, logs: Path, env: dict[str, str] | None = None) -> tuple[str, float]:
    """Run `cmd`, return (stdout, wall seconds); stderr goes to logs/<what>.log."""
    log_path = logs / f"{what}.log"
    started = time.perf_counter()
    with open(log_path, "w") as err:
        result = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env, cwd=REPO)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise BenchFailure(f"{what} failed (exit {result.returncode}): {' '.join(cmd)}\nstdout:\n{result.stdout[-2000:]}\nstderr ({log_path}):\n{tail}")
    return result.stdout, seconds


def pg(database: str):
    return psycopg2.connect(host=os.environ["THAW_PG_HOST"], port=int(os.environ["THAW_PG_PORT"]),
                            user=os.environ["THAW_PG_USER"], password=os.environ.get("THAW_PG_PASSWORD"), dbname=database)


def fresh_database(name: str) -> None:
    conn = pg("postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()


def drop_database(name: str) -> None:
    conn = pg("postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def table_fingerprint(database: str, table: str) -> tuple[int, str]:
    """Row count and an order-independent checksum of every row's text form
    (sums of two 60-bit slices of each row's MD5; no big string, any size)."""
    conn = pg(database)
    with conn.cursor() as cur:
        cur.execute("SELECT count(*), coalesce(sum(('x' || substr(h, 1, 15))::bit(60)::bigint), 0)::text || '/' || "
                    f"coalesce(sum(('x' || substr(h, 16, 15))::bit(60)::bigint), 0)::text FROM (SELECT md5(t::text) AS h FROM {table} t) r")
        count, digest = cur.fetchone()
    conn.close()
    return count, digest


# --- measurements ----------------------------------------------------------------------
def seed(thaw: str, configs: Configs, database: str, visits: int, seed_value: int, today: dt.date, logs: Path, tag: str) -> float:
    config = configs.write("full", database)
    out, seconds = run([thaw, "dev", "seed", "--config", str(config), "--visits", str(visits), "--seed", str(seed_value),
                        "--today", today.isoformat()], f"seed{tag}", logs)
    log(out.strip().splitlines()[-1] if out.strip() else f"seeded in {seconds:.1f} s")
    return seconds


def thaw_sync(thaw: str, configs: Configs, database: str, logs: Path, tag: str, time_reconcile: bool = False) -> dict:
    fresh_database(database)
    config = configs.write("sync", database)
    report_path = logs / f"thaw-sync{tag}.json"
    run([thaw, "run", "--config", str(config), "--no-conflicts", "--no-resume", "--report", str(report_path)], f"thaw-sync{tag}", logs)
    report = json.loads(report_path.read_text())
    table = next((t for t in report["tables"] if t["source_table"] == FACT), None)
    if table is None or table["failed_chunks"]:
        raise BenchFailure(f"thaw sync{tag}: no clean {FACT} copy in {report_path}")
    result = {
        "rows": table["rows_read"],
        "rows_written": table["rows_written"],
        "chunks": table["chunks"],
        "copy_seconds": table["seconds"],
        "wall_seconds": report["wall_seconds"],
    }
    log(f"thaw{tag}: {result['rows']} rows, {result['chunks']} chunks, copy {result['copy_seconds']:.2f} s, wall {result['wall_seconds']:.2f} s")
    if time_reconcile:
        # The run report has no per-step times; the reconcile step (which the
        # legacy lacks) is timed by running it once more on the same run.
        _, seconds = run([thaw, "reconcile", "--config", str(config), "--run-id", report["plan"]["run_id"]],
                         f"thaw-reconcile{tag}", logs)
        result["reconcile_seconds"] = seconds
        log(f"thaw{tag}: reconcile alone {seconds:.2f} s")
    return result


def legacy_sync(thaw: str, configs: Configs, database: str, logs: Path, tag: str, threads: int | None) -> dict:
    fresh_database(database)
    config = configs.write("sync", database)
    run([thaw, "migrate", "--config", str(config)], f"legacy-migrate{tag}", logs)
    cmd = [sys.executable, str(BENCH_DIR / "legacy_copy.py"), "--config", str(config), "--table", FACT,
           "--pg-database", database, "--batch-size", "25000",
           "--threads", str(threads or configs.fact_table.get("parallel_threads") or 4)]
    out, _ = run(cmd, f"legacy-sync{tag}", logs)
    result = json.loads(out.strip().splitlines()[-1])
    log(f"legacy{tag}: {result['rows']} rows, {result['chunks']} chunks, copy {result['copy_seconds']:.2f} s, wall {result['wall_seconds']:.2f} s")
    return result


def compare_targets(thaw_db: str, legacy_db: str) -> dict:
    t_count, t_digest = table_fingerprint(thaw_db, FACT_TARGET)
    l_count, l_digest = table_fingerprint(legacy_db, FACT_TARGET)
    same = (t_count, t_digest) == (l_count, l_digest)
    log(f"targets: thaw {t_count} rows, legacy {l_count} rows, content {'identical' if same else 'DIFFERENT'}")
    return {"thaw_rows": t_count, "legacy_rows": l_count, "identical": same}


# The conflict measurements (step 3 and the state-scale benchmark) live in tests/bench/conflicts.py.


# --- phases ---------------------------------------------------------------------------
def chunked_phase(args: argparse.Namespace) -> int:
    """Inner half of step 4, inside the nested harness (chunked emulator, outer PostgreSQL)."""
    work = Path(args.work)
    logs = work / "logs"
    today = dt.date.fromisoformat(args.today)
    configs = Configs(work, REPO / args.config, today)
    try:
        seed(args.thaw, configs, "thaw_bench_chunked_seed", args.visits, args.seed, today, logs, "-chunked")
        result = {"thaw": thaw_sync(args.thaw, configs, "thaw_bench_sync_thaw_chunked", logs, "-chunked")}
        result["legacy"] = legacy_sync(args.thaw, configs, "thaw_bench_sync_legacy_chunked", logs, "-chunked", args.threads)
        result["targets"] = compare_targets("thaw_bench_sync_thaw_chunked", "thaw_bench_sync_legacy_chunked")
    except BenchFailure as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    (work / "chunked.json").write_text(json.dumps(result))
    return 0


def rate(rows: float, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("nan")


def main_phase(args: argparse.Namespace) -> int:
    thaw = args.thaw
    tz = "America/New_York"
    work = Path(tempfile.mkdtemp(prefix="thaw-bench-"))
    logs = work / "logs"
    logs.mkdir()
    keep_logs = False
    started = time.perf_counter()
    try:
        probe = Configs(work, REPO / args.config, dt.date.today())
        tz = probe.time_zone
        today = dt.datetime.now(ZoneInfo(tz)).date()
        configs = Configs(work, REPO / args.config, today)
        log(f"seeding {args.visits} visits (seed {args.seed}, today {today})")
        seed_seconds = seed(thaw, configs, "thaw_bench", args.visits, args.seed, today, logs, "")

        log(f"sync benchmark: {FACT} with thaw")
        thaw_result = thaw_sync(thaw, configs, "thaw_bench_sync_thaw", logs, "", time_reconcile=True)
        log(f"sync benchmark: {FACT} with the legacy path (tests/bench/legacy_copy.py)")
        legacy_result = legacy_sync(thaw, configs, "thaw_bench_sync_legacy", logs, "", args.threads)
        targets = compare_targets("thaw_bench_sync_thaw", "thaw_bench_sync_legacy")
        log(f"staged benchmark: {FACT} through S3 Parquet files (tests/bench/staged.py)")
        staged_result = staged.measure(sys.modules[__name__], thaw, args.staged_baseline, configs, logs, thaw_result, "thaw_bench_sync_thaw")
        for db in ("thaw_bench_sync_thaw", "thaw_bench_sync_legacy"):
            drop_database(db)

        import conflicts as conflict_bench  # tests/bench/conflicts.py (imports this module)

        log("conflict benchmark")
        conflict_result = conflict_bench.seeded(thaw, configs, "thaw_bench", today, logs)
        log(f"state-scale conflict benchmark ({args.conflict_visits} visits)")
        state = conflict_bench.state_scale(thaw, configs, "thaw_bench_conflicts", today, args.conflict_visits, logs)
        drop_database("thaw_bench_conflicts")

        log("reconcile benchmark (tests/bench/reconcile.py)")
        try:
            reconcile_metrics, reconcile_checks, reconcile_details = reconcile_bench.run(thaw, logs)
        except RuntimeError as e:
            raise BenchFailure(str(e)) from e

        log("canonical JSON benchmark: PL/pgSQL function vs recursive CTE (tests/bench/canonical_json.py)")
        import canonical_json  # tests/bench/canonical_json.py
        json_metrics, json_checks, json_details = canonical_json.run(logs)

        log("encoder benchmark: thaw's COPY encoder vs pgpq (tests/bench/encode_compare.py)")
        import encode_compare  # tests/bench/encode_compare.py
        encode_metrics, encode_checks, encode_details = encode_compare.run(logs)

        log(f"sync benchmark with chunked results ({args.rows_per_chunk} rows per chunk): second harness, re-seeded")
        inner = [sys.executable, str(Path(__file__).resolve()), "--phase", "chunked-sync", "--work", str(work),
                 "--thaw", thaw, "--config", args.config, "--visits", str(args.visits), "--seed", str(args.seed),
                 "--today", today.isoformat()] + (["--threads", str(args.threads)] if args.threads else [])
        # DATABASE_URL (exported by the outer harness) makes the inner one reuse this PostgreSQL.
        run(["python3", str(REPO / "tests" / "harness.py"), "run", "--rows-per-chunk",
             str(args.rows_per_chunk), "--", *inner], "chunked-harness", logs)
        chunked = json.loads((work / "chunked.json").read_text())
        for db in ("thaw_bench_chunked_seed", "thaw_bench_sync_thaw_chunked", "thaw_bench_sync_legacy_chunked"):
            drop_database(db)

        log("sync baselines: thaw vs pure fetch vs minimal ingest, full and incremental, peak RSS (tests/bench/sync_baselines.py)")
        from sync_baselines import sync_baselines
        baselines = sync_baselines(thaw, configs, (fresh_database, drop_database, pg), FACT, FACT_TARGET, args.visits, args.seed,
                                   today, args.rows_per_chunk, logs, chunked["legacy"])
    except (BenchFailure, RuntimeError, subprocess.CalledProcessError) as e:
        keep_logs = True
        print(f"bench: {e}\n(logs kept in {logs})", file=sys.stderr)
        return 1
    finally:
        if not keep_logs:
            shutil.rmtree(work, ignore_errors=True)

    t, lg = thaw_result, legacy_result
    ct, cl = chunked["thaw"], chunked["legacy"]
    c = conflict_result
    metrics = [
        ("sync copy rows/s (inline results)", rate(t["rows"], t["copy_seconds"]), rate(lg["rows"], lg["copy_seconds"])),
        ("sync end-to-end rows/s (inline)", rate(t["rows"], t["wall_seconds"]), rate(lg["rows"], lg["wall_seconds"])),
        (f"sync copy rows/s (chunked {args.rows_per_chunk})", rate(ct["rows"], ct["copy_seconds"]), rate(cl["rows"], cl["copy_seconds"])),
        (f"sync end-to-end rows/s (chunked {args.rows_per_chunk})", rate(ct["rows"], ct["wall_seconds"]), rate(cl["rows"], cl["wall_seconds"])),
        ("conflicts --full visits/s", rate(c["visits"], c["thaw_seconds"]), rate(c["visits"], c["self_join_seconds"])),
        ("conflicts state-scale first run visits/s", rate(state["visits"], state["thaw_seconds"]), rate(state["visits"], state["self_join_seconds"])),
        *staged.metrics(sys.modules[__name__], staged_result),
    ] + baselines["metrics"] + reconcile_metrics + json_metrics + encode_metrics
    checks = {
        "sync targets identical (inline)": targets["identical"],
        "sync targets identical (chunked)": chunked["targets"]["identical"],
        "sync row counts equal": t["rows"] == lg["rows"] == ct["rows"] == cl["rows"],
        "conflict pairs agree with the self-join": c["agree"],
        **baselines["checks"],
        **reconcile_checks,
        **json_checks,
        **encode_checks,
        "state-scale conflict pairs agree with the self-join": state["agree"],
        "staged, minimal-loader and direct targets identical": staged_result["identical"],
    }
    total = time.perf_counter() - started

    print()
    print(f"thaw benchmark: {args.visits} visits (seed {args.seed}), {os.cpu_count()} CPUs, total {total:.0f} s "
          f"(seed {seed_seconds:.0f} s)")
    print("sync baseline: legacy path (fetchall -> pandas -> CSV COPY); conflicts baseline: SQL self-join")
    print(f"{'metric':<40} {'thaw':>12} {'baseline':>12} {'ratio':>7}")
    print("-" * 74)
    for name, thaw_value, base_value in metrics:
        print(f"{name:<40} {thaw_value:>12,.0f} {base_value:>12,.0f} {thaw_value / base_value:>6.2f}x")
    print("-" * 74)
    print(f"rows copied: thaw {t['rows']} in {t['chunks']} chunks, legacy {lg['rows']} in {lg['chunks']} chunks; "
          f"conflicts: {c['visits']} visits, {c['thaw_pairs']} pairs (self-join {c['self_join_pairs']}), "
          f"thaw {c['thaw_seconds']:.2f} s vs self-join {c['self_join_seconds']:.2f} s")
    print(f"thaw sync (inline): run wall {t['wall_seconds']:.1f} s = copy {t['copy_seconds']:.1f} s + plan/merge/reconcile "
          f"{t['wall_seconds'] - t['copy_seconds']:.1f} s (reconcile re-run alone: {t['reconcile_seconds']:.1f} s); "
          f"legacy: wall {lg['wall_seconds']:.1f} s = plan {lg['plan_seconds']:.1f} s + copy {lg['copy_seconds']:.1f} s")
    print("\n".join(baselines["lines"]))
    print("\n".join(conflict_bench.report(state)))
    print("\n".join(encode_compare.report(encode_details)))
    print(f"staged: {staged_result['files']} files, peak RSS staged load {staged_result['staged_peak_rss_kb'] / 1024:.0f} MiB, "
          f"minimal loader {staged_result['minimal_peak_rss_kb'] / 1024:.0f} MiB (target: staged >= 0.9x minimal)")
    for name, ok in checks.items():
        print(f"check: {name}: {'ok' if ok else 'FAILED'}")

    out_dir = Path(os.environ.get("THAW_CACHE") or Path.home() / ".cache" / "thaw") / "bench"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout.strip()
    out_path = out_dir / f"bench-{stamp}.json"
    out_path.write_text(json.dumps({
        "timestamp": stamp,
        "commit": commit or None,
        "visits": args.visits,
        "seed": args.seed,
        "today": today.isoformat(),
        "cpus": os.cpu_count(),
        "rows_per_chunk": args.rows_per_chunk,
        "total_seconds": round(total, 1),
        "metrics": [{"metric": n, "thaw": round(a, 1), "baseline": round(b, 1), "ratio": round(a / b, 3)} for n, a, b in metrics],
        "checks": checks,
        "staged": staged_result,
        "details": {"seed_seconds": round(seed_seconds, 2), "sync_thaw": t, "sync_legacy": lg, "sync_targets": targets,
                    "sync_thaw_chunked": ct, "sync_legacy_chunked": cl, "sync_targets_chunked": chunked["targets"],
                    "conflicts": c, "sync_baselines": baselines["details"],
                    "reconcile": reconcile_details, "canonical_json": json_details, "conflicts_state_scale": state, "encode_compare": encode_details},
    }, indent=2))
    print(f"written to {out_path}")
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase", choices=["main", "chunked-sync"], default="main")
    parser.add_argument("--thaw", default=os.environ.get("THAW", "thaw"), help="thaw binary")
    parser.add_argument("--config", default="examples/config.json", help="config template, relative to the repo")
    parser.add_argument("--visits", type=int, default=int(os.environ.get("BENCH_VISITS") or 300_000))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("BENCH_SEED") or 42))
    parser.add_argument("--conflict-visits", type=int, default=int(os.environ.get("BENCH_CONFLICT_VISITS") or 2_000_000))
    parser.add_argument("--rows-per-chunk", type=int, default=int(os.environ.get("BENCH_ROWS_PER_CHUNK") or 10_000))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS") or 0) or None,
                        help="legacy worker threads (default: the table's parallel_threads)")
    parser.add_argument("--staged-baseline", default=os.environ.get("BENCH_STAGED_BASELINE", "parquet_copy_baseline"), help="minimal Parquet loader")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--today", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return chunked_phase(args) if args.phase == "chunked-sync" else main_phase(args)


if __name__ == "__main__":
    sys.exit(main())
