#!/usr/bin/env python3
"""Encoder benchmark: thaw's binary COPY encoder against the `pgpq` crate.

Builds tests/bench/encode_compare (its own Cargo workspace, so pgpq and the
arrow major it needs stay out of the engine) in release mode and runs:

* speed: both encoders on the same 1 M-row record batches of two shapes (the
  reconcile bench table's 5 columns, and 10 columns with the visit fact
  table's other types), each encoder in its own processes, interleaved
  thaw, pgpq, thaw, pgpq, ...; median seconds over every run, peak RSS of
  each process (VmHWM);
* coverage (needs DATABASE_URL, i.e. inside tests/harness.py): every
  (Arrow type, PostgreSQL type) pair of docs/sync.md §5.7's table, loaded by
  both encoders into a real column and read back.

Alone: python3 tests/harness.py run -- python3 tests/bench/encode_compare.py
From `make bench`: run_bench.py calls run(logs). docs/benchmarks.md §7 has the numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "tests" / "bench" / "encode_compare"
ROWS = int(os.environ.get("BENCH_ENCODE_ROWS") or 1_000_000)
PROCESSES = int(os.environ.get("BENCH_ENCODE_PROCESSES") or 3)
RUNS_PER_PROCESS = 3


def _log(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def build(logs: Path) -> Path:
    """Build the bench binary in release mode; return a private copy of it."""
    # The repository's target dir unless one is set, so dependencies built for thaw are reused.
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    out = subprocess.run(["cargo", "build", "--release", "--manifest-path", str(CRATE / "Cargo.toml")],
                         capture_output=True, text=True, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    (logs / "encode-compare-build.log").write_text(out.stdout + out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"building tests/bench/encode_compare failed; see {logs / 'encode-compare-build.log'}")
    # The shared target dir is shared by name: run a copy no other build can replace.
    copy = Path(tempfile.mkdtemp(prefix="thaw-encode-compare-")) / "thaw-encode-compare"
    shutil.copy2(target / "release" / "thaw-encode-compare", copy)
    return copy


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def speed(binary: Path, shape: str) -> dict:
    """Interleaved processes of both encoders on one shape."""
    seen: dict[str, dict] = {"thaw": {"seconds": [], "rss_kib": [], "bytes": set()}, "pgpq": {"seconds": [], "rss_kib": [], "bytes": set()}}
    for _ in range(PROCESSES):
        for encoder in ("thaw", "pgpq"):
            out = subprocess.run([str(binary), "speed", encoder, shape, str(ROWS), str(RUNS_PER_PROCESS)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            seen[encoder]["seconds"] += r["seconds"]
            seen[encoder]["rss_kib"].append(r["peak_rss_kib"])
            seen[encoder]["bytes"].add((r["bytes"], r["checksum"]))
    result = {"shape": shape, "rows": ROWS}
    for encoder, s in seen.items():
        median = _median(s["seconds"])
        result[encoder] = {"median_seconds": median, "rows_per_second": ROWS / median, "runs": len(s["seconds"]),
                           "peak_rss_mib": max(s["rss_kib"]) / 1024, "bytes": sorted(s["bytes"])}
    return result


def coverage(binary: Path) -> list[dict]:
    out = subprocess.run([str(binary), "coverage"], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def run(logs: Path) -> tuple[list[tuple[str, float, float]], dict[str, bool], dict]:
    """(metrics, checks, details) for run_bench.py: metric rows are (name, thaw, pgpq)."""
    binary = build(logs)
    try:
        shapes = [speed(binary, shape) for shape in ("reconcile5", "mixed10")]
        pairs = coverage(binary) if os.environ.get("DATABASE_URL") else []
    finally:
        shutil.rmtree(binary.parent, ignore_errors=True)
    metrics = [(f"encode rows/s {s['shape']} (baseline: pgpq)", s["thaw"]["rows_per_second"], s["pgpq"]["rows_per_second"]) for s in shapes]
    checks = {
        "thaw and pgpq encode the speed shapes to the same bytes": all(s["thaw"]["bytes"] == s["pgpq"]["bytes"] for s in shapes),
        "encoder coverage ran every pair": bool(pairs) and all("verdict" in p for p in pairs),
    }
    return metrics, checks, {"speed": shapes, "coverage": pairs}


def report(details: dict) -> list[str]:
    lines = []
    for s in details["speed"]:
        t, p = s["thaw"], s["pgpq"]
        lines.append(f"encode {s['shape']} ({s['rows']} rows, median of {t['runs']}): thaw {t['median_seconds']:.3f} s "
                     f"({t['peak_rss_mib']:.0f} MiB peak), pgpq {p['median_seconds']:.3f} s ({p['peak_rss_mib']:.0f} MiB peak), "
                     f"thaw/pgpq time {t['median_seconds'] / p['median_seconds']:.2f}")
    for p in details["coverage"]:
        lines.append(f"coverage {p['arrow']:>26} -> {p['postgres']:<14} {p['verdict']}: thaw {json.dumps(p['thaw'])[:90]} | pgpq {json.dumps(p['pgpq'])[:120]}")
    return lines


def main() -> int:
    logs = Path(tempfile.mkdtemp(prefix="thaw-encode-compare-logs-"))
    metrics, checks, details = run(logs)
    print("\n".join(report(details)))
    for name, thaw_rate, pgpq_rate in metrics:
        print(f"{name:<50} {thaw_rate:>12,.0f} {pgpq_rate:>12,.0f} {thaw_rate / pgpq_rate:>6.2f}x")
    for name, ok in checks.items():
        print(f"check: {name}: {'ok' if ok else 'FAILED'}")
    print(json.dumps(details))
    shutil.rmtree(logs, ignore_errors=True)
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
