#!/usr/bin/env python3
"""Conflict benchmarks of `make bench` (tests/bench/README.md, docs/benchmarks.md).

Two measurements, both against the SQL self-join formulation of rules 1-7
(tests/bench/conflicts_self_join.sql) on the same tables in the same run:

* `seeded(...)`: on the database of a full `thaw run` of the seeded emulator
  dataset, `thaw conflicts --full` against the self-join; the pair sets must
  agree (step 3 of run_bench.py).
* `state_scale(...)`: a generated state-scale analytics mirror written
  straight into PostgreSQL (BENCH_CONFLICT_VISITS visits in the window,
  default 2 000 000; caregivers each working for 2 or 3 of 300 agencies,
  in-service trainings and PTO absences): the first full run from an empty
  conflict schema, the self-join, incremental nights with 0.1 %, 1 % and 5 %
  of the visits touched, peak memory of each thaw process, and the p95
  latency of the application's reads (functions/engine/src/conflicts/app_queries.rs).

Standalone (inside tests/harness.py, with the bench venv's Python):
    python3 tests/bench/conflicts.py --thaw path/to/thaw [--visits N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run_bench as rb

APP_QUERIES = rb.REPO / "functions" / "engine" / "src" / "conflicts" / "app_queries.rs"
VISIT_PAIRS = "\"InServiceFlag\" IS DISTINCT FROM 'Y' AND \"PTOFlag\" IS DISTINCT FROM 'Y'"


# GNU time measures the peak RSS of a process it forks itself. The rusage
# of a process this script starts would not do: Linux keeps the
# high-water mark of the forked (or vforked) Python image across exec, so
# every thaw run would report at least this script's own RSS (about 110 MiB
# after generating a dataset, docs/benchmarks.md §5).
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_measured(cmd: list[str], what: str, logs: Path) -> tuple[str, float, int]:
    """Run `cmd`; return (stdout, wall seconds, peak resident memory in KiB of that process)."""
    log_path = logs / f"{what}.log"
    rss_path = logs / f"{what}.maxrss"
    measured = [GNU_TIME, "-f", "%M", "-o", str(rss_path), *cmd] if GNU_TIME else cmd
    started = time.perf_counter()
    with open(log_path, "w") as err, tempfile.TemporaryFile("w+") as out:
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG") or "warn,thaw=info,thaw_engine=debug")
        process = subprocess.Popen(measured, stdout=out, stderr=err, text=True, cwd=rb.REPO, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        stdout = out.read()
    if process.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise rb.BenchFailure(f"{what} failed (exit {process.returncode}): {' '.join(cmd)}\nstderr ({log_path}):\n{tail}")
    if GNU_TIME:
        return stdout, seconds, int(rss_path.read_text().split()[-1])
    return stdout, seconds, usage.ru_maxrss


def self_join(database: str, today: dt.date, time_zone: str) -> tuple[float, int, int, int, int]:
    """Run the self-join; return (seconds, pairs, creatable pairs, thaw's stored open visit pairs, differing pairs)."""
    conn = rb.pg(database)
    with conn.cursor() as cur:
        cur.execute("SET thaw_bench.today = %s; SET thaw_bench.time_zone = %s", (today.isoformat(), time_zone))
        conn.commit()
        started = time.perf_counter()
        cur.execute((rb.BENCH_DIR / "conflicts_self_join.sql").read_text())
        conn.commit()
        seconds = time.perf_counter() - started
        cur.execute("SELECT count(*), count(*) FILTER (WHERE new_conflict_allowed) FROM public.bench_self_join_pairs")
        pairs, allowed = cur.fetchone()
        # The self-join's creatable pairs against the visit pairs thaw stored, with all seven flags.
        cur.execute(f"""
            WITH stored AS (
                SELECT "VisitID" AS visit_id, "ConVisitID" AS con_visit_id,
                       ARRAY["SameSchTimeFlag" = 'Y', "SameVisitTimeFlag" = 'Y', "SchAndVisitTimeSameFlag" = 'Y',
                             "SchOverAnotherSchTimeFlag" = 'Y', "VisitTimeOverAnotherVisitTimeFlag" = 'Y',
                             "SchTimeOverVisitTimeFlag" = 'Y', "DistanceFlag" = 'Y'] AS flags
                FROM conflict.conflictvisitmaps WHERE "StatusFlag" <> 'R' AND {VISIT_PAIRS}
            ), joined AS (
                SELECT visit_id, con_visit_id,
                       ARRAY[same_scheduled_time, same_visit_time, scheduled_and_visit_time_same, scheduled_over_scheduled,
                             visit_over_visit, scheduled_over_visit, distance] AS flags
                FROM public.bench_self_join_pairs WHERE new_conflict_allowed
            )
            SELECT (SELECT count(*) FROM stored),
                   count(*) FILTER (WHERE s.visit_id IS NULL OR j.visit_id IS NULL OR s.flags IS DISTINCT FROM j.flags)
            FROM stored s FULL JOIN joined j USING (visit_id, con_visit_id)
        """)
        stored, differing = cur.fetchone()
        cur.execute("DROP TABLE public.bench_self_join_pairs")
        conn.commit()
    conn.close()
    return seconds, pairs, allowed, stored, differing


def seeded(thaw: str, configs: rb.Configs, database: str, today: dt.date, logs: Path) -> dict:
    """Step 3 of run_bench.py: `thaw conflicts --full` on a full thaw run's database against the self-join."""
    rb.fresh_database(database)
    config = configs.write("full", database)
    report_path = logs / "thaw-full-run.json"
    rb.log("full thaw run (every table, conflicts on)")
    rb.run([thaw, "run", "--config", str(config), "--no-resume", "--report", str(report_path)], "thaw-full-run", logs)
    rb.log("thaw conflicts --full")
    out, process_seconds = rb.run([thaw, "conflicts", "--config", str(config), "--full"], "thaw-conflicts-full", logs)
    summary = json.loads(out)
    rb.log(f"thaw: {summary['visits_considered']} visits, {summary['pairs_detected']} pairs in {summary['seconds']:.2f} s")
    rb.log("SQL self-join baseline")
    join_seconds, join_pairs, join_allowed, stored, differing = self_join(database, today, configs.time_zone)
    agree = join_pairs == summary["pairs_detected"] and join_allowed == stored and differing == 0
    rb.log(f"self-join: {join_pairs} pairs ({join_allowed} creatable) in {join_seconds:.2f} s; "
           f"thaw stored {stored}; {differing} pair(s) differ -> {'agree' if agree else 'DISAGREE'}")
    return {
        "visits": summary["visits_considered"],
        "thaw_seconds": summary["seconds"],
        "thaw_process_seconds": process_seconds,
        "thaw_pairs": summary["pairs_detected"],
        "thaw_stored_pairs": stored,
        "self_join_seconds": join_seconds,
        "self_join_pairs": join_pairs,
        "self_join_creatable_pairs": join_allowed,
        "differing_pairs": differing,
        "agree": agree,
    }


# --- state-scale dataset ------------------------------------------------------------
def generate(database: str, visits: int, today: dt.date) -> dict:
    """Fill the analytics mirror of `database` (migrated, empty) with a state-scale dataset.

    Deterministic (hash functions of the row number). `visits` visits dated over
    [today - 730, today + 45]; one person per 50 visits, each person a caregiver
    at 2 or 3 of 300 agencies (same SSN, one caregiver id per agency); 90 % of
    the past visits completed (actual = schedule + 0-9 minutes), 5 % missed, 5 %
    scheduled only; every future visit scheduled only; a patient per 20 visits
    with a GPS address around New York City (10 % of the agencies in PA with PA
    patients); 15 % of the visits without a payer patient; 30 % of the completed
    visits with call-out GPS. Three in-service trainings (2 h) and one PTO
    absence (1-3 days) per person. Returns the row counts."""
    persons = max(visits // 50, 10)
    patients = max(visits // 20, 10)
    sql = f"""
SET LOCAL synchronous_commit = off;
INSERT INTO analytics.dimprovider ("Provider Id", "Application Provider Id", "Provider Name", "Is Active", "Is Demo",
    "Phone Number 1", "Federal Tax Number", "Address State")
SELECT md5('provider' || p)::uuid, p, 'Agency ' || p, p % 97 <> 0, false, '555-' || lpad(p::text, 4, '0'), 'TAX' || p,
       CASE WHEN p % 10 = 0 THEN 'PA' ELSE 'NY' END
FROM generate_series(1, 300) p;
INSERT INTO analytics.dimpayer ("Payer Id", "Application Payer Id", "Payer Name", "Is Active", "Is Demo", "Payer State")
SELECT md5('payer' || y)::uuid, y, 'Payer ' || y, true, false, 'NY' FROM generate_series(1, 120) y;
-- Person n works for k = 2 + n % 2 agencies; slot s's agency is spread over the 300.
CREATE TEMP TABLE bench_caregiver AS
SELECT n AS person, s AS slot, md5('caregiver' || n || '-' || s)::uuid AS caregiver_id,
       1 + (n * 7 + s * 101) % 300 AS provider, 2 + n % 2 AS slots
FROM generate_series(1, {persons}) n, generate_series(0, 2) s WHERE s < 2 + n % 2;
INSERT INTO analytics.dimcaregiver ("Caregiver Id", "Application Caregiver Id", "SSN", "Caregiver Code", "Caregiver Fullname",
    "Caregiver Firstname", "Caregiver Lastname", "Status")
SELECT caregiver_id, person * 10 + slot, lpad(person::text, 9, '0'), 'C' || person, 'Aide ' || person, 'Aide', 'No' || person, 'Active'
FROM bench_caregiver;
CREATE INDEX ON bench_caregiver (person, slot);
INSERT INTO analytics.dimpatient ("Patient Id", "Application Patient Id", "Patient Name", "Patient Firstname", "Patient Lastname", "Status")
SELECT md5('patient' || t)::uuid, t, 'Patient ' || t, 'Pat', 'No' || t, 'Active' FROM generate_series(1, {patients}) t;
INSERT INTO analytics.dimpatientaddress ("Patient Address Id", "Patient Id", "Address Type", "Primary Address", "Address Line 1",
    "City", "Zip Code", "Address State", "Latitude", "Longitude", "Application Created UTC Timestamp")
SELECT md5('address' || t)::uuid, md5('patient' || t)::uuid, 'GPS', true, t || ' Main St', 'Brooklyn',
       (11200 + t % 40)::text, CASE WHEN t % 10 = 0 THEN 'PA' ELSE 'NY' END,
       40.55 + (abs(hashint4(t)) % 2000) / 10000.0, -74.05 + (abs(hashint4(t + 1)) % 3000) / 10000.0, '2020-01-01Z'
FROM generate_series(1, {patients}) t;
INSERT INTO analytics.factvisitcallperformance_cr ("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id",
    "Application Caregiver Id", "Provider Id", "Application Provider Id", "Provider Patient Id", "Payer Patient Id", "Payer Id",
    "Application Payer Id", "Application Contract Id", "Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time",
    "Call Out GPS Coordinates", "Billed", "Billed Rate", "Bill Type", "Billed Hours", "Bill Rate Non-Billed", "Is Missed",
    "Visit Updated Timestamp")
SELECT md5('visit' || v.i)::uuid, v.i, v.day, c.caregiver_id, c.person * 10 + c.slot, md5('provider' || c.provider)::uuid, c.provider,
       md5('patient' || v.patient)::uuid, CASE WHEN v.h % 100 < 15 THEN NULL ELSE md5('patient' || v.patient)::uuid END,
       md5('payer' || (1 + v.h % 120))::uuid, 1 + v.h % 120, 0,
       v.start, v.start + v.minutes * interval '1 minute',
       CASE WHEN v.kind = 'C' THEN v.start + (v.h % 10) * interval '1 minute' END,
       CASE WHEN v.kind = 'C' THEN v.start + (v.minutes + v.h % 10) * interval '1 minute' END,
       CASE WHEN v.kind = 'C' AND v.h % 10 < 3 THEN '"' || (40.55 + (v.h % 2000) / 10000.0) || ',' || (-74.05 + (v.h % 3000) / 10000.0) || '"' END,
       CASE WHEN v.h % 2 = 0 THEN 'yes' ELSE 'no' END, 20 + v.h % 15, 'Hourly', v.minutes / 60.0, 18 + v.h % 10,
       v.kind = 'M', now() - interval '1 day'
FROM (
    SELECT i, abs(hashint4(i)) AS h, 1 + i % {persons} AS person, 1 + abs(hashint4(i + 7)) % {patients} AS patient,
           ('{today.isoformat()}'::date - 730 + abs(hashint4(i + 3)) % 776) AS day,
           60 + (abs(hashint4(i + 5)) % 13) * 15 AS minutes,
           CASE WHEN ('{today.isoformat()}'::date - 730 + abs(hashint4(i + 3)) % 776) >= '{today.isoformat()}'::date THEN 'S'
                WHEN abs(hashint4(i + 11)) % 100 < 5 THEN 'S'
                WHEN abs(hashint4(i + 11)) % 100 < 10 THEN 'M'
                ELSE 'C' END AS kind,
           (('{today.isoformat()}'::date - 730 + abs(hashint4(i + 3)) % 776) + time '06:00'
              + (abs(hashint4(i + 13)) % 48) * interval '15 minutes') AT TIME ZONE 'America/New_York' AS start
    FROM generate_series(1, {visits}) i
) v
JOIN bench_caregiver c ON c.person = v.person AND c.slot = (v.i / {persons}) % (2 + v.person % 2);
INSERT INTO analytics.factcaregiverinservice ("Application Caregiver Inservice Id", "Environment", "Caregiver Id", "Provider Id",
    "Inservice start date", "Inservice end date", "Updated Datatimestamp")
SELECT c.person * 10 + e, 'prod', c.caregiver_id, md5('provider' || c.provider)::uuid, start, start + interval '2 hours', now() - interval '1 day'
FROM bench_caregiver c, generate_series(1, 3) e,
     LATERAL (SELECT (('{today.isoformat()}'::date - 700 + abs(hashint4(c.person * 3 + e)) % 740) + time '09:00')
                     AT TIME ZONE 'America/New_York' AS start) s
WHERE c.slot = e % c.slots;
INSERT INTO analytics.factcaregiverabsence ("Caregiver Vacation Id", "Environment", "Global Caregiver Id", "Provider Id",
    "Start Date", "End Date", "Updated Datatimestamp")
SELECT c.person, 'prod', c.caregiver_id, md5('provider' || c.provider)::uuid, start, start + (1 + c.person % 3) * interval '1 day' - interval '1 hour',
       now() - interval '1 day'
FROM bench_caregiver c,
     LATERAL (SELECT ('{today.isoformat()}'::date - 700 + abs(hashint4(c.person + 5)) % 740)::timestamp AT TIME ZONE 'America/New_York' AS start) s
WHERE c.slot = 0;
INSERT INTO conflict.settings ("ID", "ExtraDistance", "ExtraDistancePer", "InProgressFlag") VALUES (1, 20, 1.2, 2);
INSERT INTO conflict.mph ("From", "To", "AverageMilesPerHour") VALUES (0, 2, 2), (2, 5, 6), (5, 10, 15), (10, 25, 25), (25, 100, 40);
"""
    conn = rb.pg(database)
    with conn.cursor() as cur:
        cur.execute(sql)
        conn.commit()
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
        counts = {}
        for table in ("factvisitcallperformance_cr", "dimcaregiver", "factcaregiverinservice", "factcaregiverabsence"):
            cur.execute(f"SELECT count(*) FROM analytics.{table}")
            counts[table] = cur.fetchone()[0]
    conn.close()
    return counts


def touch(database: str, percent: float, salt: int) -> int:
    """Move the actual and scheduled times of `percent` % of the visits by 5 minutes, as a night's source changes."""
    conn = rb.pg(database)
    with conn.cursor() as cur:
        cur.execute(
            """UPDATE analytics.factvisitcallperformance_cr
               SET "Scheduled Start Time" = "Scheduled Start Time" + interval '5 minutes',
                   "Visit Start Time" = "Visit Start Time" + interval '5 minutes',
                   "Visit Updated Timestamp" = clock_timestamp()
               WHERE abs(hashint8("Application Visit Id" * 31 + %s)) %% 100000 < %s""",
            (salt, int(percent * 1000)),
        )
        touched = cur.rowcount
        cur.execute("ANALYZE analytics.factvisitcallperformance_cr")
        conn.commit()
    conn.close()
    return touched


def app_queries() -> list[dict]:
    """The application's reads as listed in app_queries.rs: name, SQL ($n parameters) and parameter kinds."""
    text = APP_QUERIES.read_text()
    out = []
    for m in re.finditer(r'name:\s*"((?:[^"\\]|\\.)*)",\s*sql:\s*"((?:[^"\\]|\\.)*)",\s*params:\s*&\[([^\]]*)\]', text, re.S):
        sql = re.sub(r"\\\n\s*", "", m.group(2)).replace('\\"', '"')
        params = [p.strip().removeprefix("Param::") for p in m.group(3).split(",") if p.strip()]
        out.append({"name": m.group(1), "sql": sql, "params": params})
    if not out:
        raise rb.BenchFailure(f"no application query found in {APP_QUERIES}")
    return out


def app_latencies(database: str, today: dt.date, samples: int = 200) -> list[dict]:
    """p50/p95 latency (ms) of every application read, over `samples` executions with values taken from the rows."""
    conn = rb.pg(database)
    conn.autocommit = True
    results = []
    with conn.cursor() as cur:
        cur.execute(f"""SELECT "ProviderID"::text, "PayerID"::text, "CONFLICTID", "VisitID"::text, "GroupID", "SSN"
                        FROM conflict.conflictvisitmaps TABLESAMPLE SYSTEM (5) WHERE "PayerID" IS NOT NULL AND "GroupID" IS NOT NULL LIMIT {samples}""")
        rows = cur.fetchall()
        if not rows:
            cur.execute(f"""SELECT "ProviderID"::text, "PayerID"::text, "CONFLICTID", "VisitID"::text, "GroupID", "SSN"
                            FROM conflict.conflictvisitmaps WHERE "PayerID" IS NOT NULL AND "GroupID" IS NOT NULL LIMIT {samples}""")
            rows = cur.fetchall()
        if not rows:
            raise rb.BenchFailure("no conflict rows to sample the application reads from")
        for q_index, q in enumerate(app_queries()):
            cur.execute(f"PREPARE bench_q{q_index} AS {q['sql']}")
            timings = []
            for k in range(samples):
                provider, payer, conflict_id, visit, group, ssn = rows[k % len(rows)]
                value = {"Provider": provider, "Payer": payer, "Statuses": ["U", "N", "W", "I"],
                         "From": today - dt.timedelta(days=365), "To": today + dt.timedelta(days=45),
                         "ConflictId": conflict_id, "Visit": visit, "Group": group, "Ssn": ssn}
                args = [value[p] for p in q["params"]]
                started = time.perf_counter()
                cur.execute(f"EXECUTE bench_q{q_index}({', '.join(['%s'] * len(args))})", args)
                cur.fetchall()
                timings.append((time.perf_counter() - started) * 1000)
            timings.sort()
            results.append({"name": q["name"], "p50_ms": timings[len(timings) // 2], "p95_ms": timings[int(len(timings) * 0.95) - 1]})
    conn.close()
    return results


def profile(log_path: Path) -> dict:
    """Where a `thaw conflicts` run spent its time, from its debug log (RUST_LOG=thaw_engine=debug):
    candidate read + detection + staging COPY, then each set-based statement of the store."""
    out: dict[str, float] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        fields = json.loads(line).get("fields", {})
        if "seconds" in fields and fields.get("message") in ("conflict store", "candidates read, detected and staged"):
            name = fields.get("step") or fields["message"]
            out[name] = out.get(name, 0.0) + float(fields["seconds"])
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def state_scale(thaw: str, configs: rb.Configs, database: str, today: dt.date, visits: int, logs: Path) -> dict:
    """The state-scale conflict benchmark (module docs); returns every number measured."""
    rb.fresh_database(database)
    config = configs.write("full", database)
    rb.run([thaw, "migrate", "--config", str(config)], "state-migrate", logs)
    rb.log(f"state-scale conflicts: generating {visits} visits")
    started = time.perf_counter()
    counts = generate(database, visits, today)
    generate_seconds = time.perf_counter() - started
    rb.log(f"generated {counts} in {generate_seconds:.1f} s")

    rb.log("thaw conflicts --full, first run on an empty conflict schema")
    out, full_process_seconds, full_rss = run_measured([thaw, "conflicts", "--config", str(config), "--full"], "state-full", logs)
    full = json.loads(out)
    full_profile = profile(logs / "state-full.log")
    rb.log(f"thaw: {full['visits_considered']} visits, {full['pairs_detected']} pairs, {full['inserted']} rows in {full['seconds']:.2f} s")

    rb.log("SQL self-join baseline")
    join_seconds, join_pairs, join_allowed, stored, differing = self_join(database, today, configs.time_zone)
    agree = join_pairs == full["pairs_detected"] and join_allowed == stored and differing == 0
    rb.log(f"self-join: {join_pairs} pairs in {join_seconds:.2f} s; {differing} differ -> {'agree' if agree else 'DISAGREE'}")

    incremental = []
    for salt, percent in enumerate((0.1, 1.0, 5.0)):
        changed = touch(database, percent, salt)
        out, process_seconds, rss = run_measured([thaw, "conflicts", "--config", str(config)], f"state-incremental-{percent}", logs)
        night = json.loads(out)
        if night.get("mode") != "incremental":
            raise rb.BenchFailure(f"the {percent} % night ran as {night.get('mode')}: {night.get('mode_reason')}")
        incremental.append({"percent": percent, "profile_seconds": profile(logs / f"state-incremental-{percent}.log"), "visits_changed": changed, "keys_touched": night.get("keys_touched"),
                            "seconds": night["seconds"], "process_seconds": process_seconds, "peak_rss_kib": rss,
                            "visits_considered": night["visits_considered"], "inserted": night["inserted"],
                            "updated": night["updated"], "resolved": night["resolved"]})
        rb.log(f"incremental {percent} %: {changed} visits changed, {night.get('keys_touched')} keys, {night['seconds']:.2f} s")

    rb.log("application reads: p95 latency")
    latencies = app_latencies(database, today)
    conn = rb.pg(database)
    with conn.cursor() as cur:
        cur.execute(f"""SELECT count(*), count(*) FILTER (WHERE NOT ({VISIT_PAIRS})), count(DISTINCT "CONFLICTID"), count(DISTINCT "GroupID")
                        FROM conflict.conflictvisitmaps""")
        rows, event_rows, conflicts, groups = cur.fetchone()
    conn.close()
    return {
        "visits": full["visits_considered"],
        "generated": counts,
        "generate_seconds": generate_seconds,
        "thaw_seconds": full["seconds"],
        "thaw_process_seconds": full_process_seconds,
        "thaw_peak_rss_kib": full_rss,
        "thaw_pairs": full["pairs_detected"],
        "thaw_profile_seconds": full_profile,
        "rows": rows,
        "event_rows": event_rows,
        "conflicts": conflicts,
        "groups": groups,
        "self_join_seconds": join_seconds,
        "self_join_pairs": join_pairs,
        "differing_pairs": differing,
        "agree": agree,
        "incremental": incremental,
        "app_queries": latencies,
    }


def report(result: dict) -> list[str]:
    """Human-readable lines of a state-scale result."""
    r = result
    lines = [
        f"state-scale conflicts: {r['visits']} visits in the window, {r['thaw_pairs']} visit pairs, {r['rows']} rows "
        f"({r['event_rows']} in-service/PTO), {r['conflicts']} conflicts, {r['groups']} groups",
        f"  full run from an empty schema: {r['thaw_seconds']:.2f} s = {r['visits'] / r['thaw_seconds']:,.0f} visits/s, "
        f"peak RSS {r['thaw_peak_rss_kib'] / 1024:.0f} MiB; self-join {r['self_join_seconds']:.2f} s = "
        f"{r['visits'] / r['self_join_seconds']:,.0f} visits/s; ratio {r['self_join_seconds'] / r['thaw_seconds']:.2f}x; "
        f"pairs {'agree' if r['agree'] else 'DISAGREE'}",
    ]
    if r.get("thaw_profile_seconds"):
        top = list(r["thaw_profile_seconds"].items())[:6]
        lines.append("  where the full run's time goes: " + ", ".join(f"{k} {v:.2f} s" for k, v in top))
    for n in r["incremental"]:
        per_key = n["seconds"] / n["keys_touched"] * 1000 if n["keys_touched"] else float("nan")
        lines.append(f"  incremental {n['percent']:>4} %: {n['visits_changed']} visits, {n['keys_touched']} keys, "
                     f"{n['seconds']:.2f} s ({per_key:.2f} ms/key), peak RSS {n['peak_rss_kib'] / 1024:.0f} MiB")
    for q in r["app_queries"]:
        lines.append(f"  app read {q['name']}: p50 {q['p50_ms']:.2f} ms, p95 {q['p95_ms']:.2f} ms")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--thaw", default=os.environ.get("THAW", "thaw"))
    parser.add_argument("--config", default="examples/config.json")
    parser.add_argument("--visits", type=int, default=int(os.environ.get("BENCH_CONFLICT_VISITS") or 2_000_000))
    parser.add_argument("--database", default="thaw_bench_conflicts")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="thaw-bench-conflicts-"))
    logs = work / "logs"
    logs.mkdir()
    today = dt.date.today()
    try:
        configs = rb.Configs(work, rb.REPO / args.config, today)
        result = state_scale(args.thaw, configs, args.database, today, args.visits, logs)
    except rb.BenchFailure as e:
        print(f"bench: {e}\n(logs kept in {logs})", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, default=str))
    print("\n".join(report(result)))
    print(f"logs: {logs}")
    return 0 if result["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
