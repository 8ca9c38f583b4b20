#!/usr/bin/env python3
"""A literal model of [SF]'s nightly conflict lifecycle, run against thaw
(docs/conflicts.md §8.2, §D17, §D26).

Visits of one SSN at providers A, B and C on two future dates, in two
schedule slots: any two present visits of one date and slot at different
providers pair (rule 1, both orientations). Each night applies random source
changes (delete, restore, missed, slot move) and application edits (pair
and conflict statuses, no-response flags), runs a thaw night (full or
incremental at random, or as MODE=full / MODE=incremental says) and the
model's night — [SF]'s refresh (every detected pair but W/I to U), TASK_02_3
steps 1–9 over the window, the inserts and TASK_04's CONFLICTIDs, then
TASK_05's variant of steps 2–9 without the window — and compares the status
of every pair and conflict. Once per seed "today" moves two years on, so
that one of the dates leaves the window (the second pass alone then covers
it) and no new pair may start.

Run inside the harness (it needs its PostgreSQL) with a debug or release
thaw binary:

    THAW_TEST_BIN=target/debug/thaw python3 tests/harness.py run -- \
        python3 tests/conflict_lifecycle_model.py FIRST_SEED COUNT [NIGHTS] [VISITS]

or with `--ci` instead of the numbers: the fixed seeds `make test` runs
(`CI_SEEDS` below, through tests/run-models.sh).

Prints the first differences of each failing seed (the night's changes,
the rows that differ, the history of the seed) and exits 1 if any seed
failed. Statuses only: thaw's net writes of dates (§D19, §D24, §D25) are not
compared. Known difference (§D26): a conflict edited out of `D` over a
restored visit's lone pair.
"""
import os, random, subprocess, sys, json, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ)
PSQL = ["psql", "-qAt", "-v", "ON_ERROR_STOP=1", "-h", ENV["THAW_PG_HOST"], "-p", ENV["THAW_PG_PORT"], "-U", "thaw"]
ENV["PGPASSWORD"] = ENV["THAW_PG_PASSWORD"]
BIN = os.environ.get("THAW_TEST_BIN", os.path.join(ROOT, "target", "debug", "thaw"))
REF = open(os.path.join(ROOT, "functions", "engine", "tests", "fixtures", "conflicts_reference.sql")).read()
CONFIG = os.path.join(tempfile.mkdtemp(prefix="thaw-lifecycle-model-"), "config.json")
with open(CONFIG, "w") as f:
    f.write('{"postgres": {"host": "${THAW_PG_HOST}", "port": ${THAW_PG_PORT}, "user": "${THAW_PG_USER}", "password": "${THAW_PG_PASSWORD}", "status_database": "${DB}"},\n'
            ' "conflicts": {"database": "${DB}", "analytics_schema": "analytics", "conflict_schema": "conflict", "time_zone": "America/New_York"}}\n')

PROVIDERS = {"A": ("a", "ca"), "B": ("b", "cb"), "C": ("c", "cc")}
DATES = ["2025-03-12", "2025-03-13"]
SLOTS = {0: ("09:00", "13:00"), 1: ("14:00", "16:00")}


def sql(db, text):
    r = subprocess.run(PSQL + ["-d", db], input=text, capture_output=True, text=True, env=ENV)
    if r.returncode:
        raise SystemExit(f"psql failed: {r.stderr}\n{text}")
    return [l for l in r.stdout.splitlines() if l]


def uid(n):
    return f"00000000-0000-0000-0000-{n:012x}"


class Visit:
    def __init__(self, i, prov, date, slot):
        self.i, self.prov, self.date, self.slot = i, prov, date, slot
        self.missed = False
        self.person = 0  # the caregiver (one SSN here; several in conflict_lifecycle_app_model.py)
        self.present = True  # in FACT
        self.deleted = False  # in DELETED

    def row(self):
        p, c = PROVIDERS[self.prov]
        s, e = SLOTS[self.slot]
        return (f"('{uid(self.i)}', {100 + self.i}, '{self.date}', '00000000-0000-0000-0000-0000000000{c}', "
                f"'00000000-0000-0000-0000-00000000000{p}', {ord(p) - 96}, NULL, '{self.date} {s}-04', '{self.date} {e}-04', "
                f"NULL, NULL, {str(self.missed).lower()}, now())")


COLS = ('("Visit Id", "Application Visit Id", "Visit Date", "Caregiver Id", "Provider Id", "Application Provider Id", '
        '"Provider Patient Id", "Scheduled Start Time", "Scheduled End Time", "Visit Start Time", "Visit End Time", "Is Missed", '
        '"Visit Updated Timestamp")')


class Model:
    """[SF] literal: refresh, TASK_02_3 steps 1-9, inserts, TASK_04, TASK_05 variant."""

    def __init__(self):
        self.pairs = {}  # (v1, v2) -> dict(status, cid, miss, conmiss, connr)
        self.conflicts = {}  # cid -> dict(status, nr)

    def night(self, visits, window_dates, future_dates):
        self.win = window_dates
        fact = {v.i: v for v in visits if v.present and v.date in window_dates}
        deleted = {v.i for v in visits if v.deleted}
        detected = {}
        for a in fact.values():
            for b in fact.values():
                if a.i != b.i and a.prov != b.prov and a.date == b.date and a.slot == b.slot and a.person == b.person:
                    detected[(a.i, b.i)] = (a.missed, b.missed)
        P, K = self.pairs, self.conflicts
        # refresh
        upd = {k for k, p in P.items() if p["cid"] is not None and p["date"] in self.win}
        for k, (m1, m2) in detected.items():
            if k in P:
                p = P[k]
                p["miss"], p["conmiss"] = m1, m2
                p["date"] = fact[k[0]].date  # the refresh rewrites the snapshot, VisitDate included
                if p["status"] not in ("W", "I"):
                    p["status"] = "U"
                upd.discard(k)
        self.lifecycle(deleted, upd, window=True)
        # inserts
        new = [k for k, (m1, m2) in detected.items() if k not in P and not m1 and not m2 and fact[k[0]].date in future_dates]
        for k in sorted(new):
            P[k] = dict(status="U", cid=None, miss=False, conmiss=False, connr=None, date=fact[k[0]].date)
        # TASK_04
        nxt = max([c for c in K] + [p["cid"] for p in P.values() if p["cid"] is not None] + [0])
        by_visit = {}
        for k, p in P.items():
            if p["cid"] is not None:
                by_visit.setdefault(k[0], p["cid"])
        for k in sorted(k for k, p in P.items() if p["cid"] is None):
            if k[0] not in by_visit:
                nxt += 1
                by_visit[k[0]] = nxt
            P[k]["cid"] = by_visit[k[0]]
        for p in P.values():
            if p["cid"] not in K:
                K[p["cid"]] = dict(status="U", nr=None)
        self.lifecycle(deleted, set(), window=False)

    def lifecycle(self, deleted, upd, window):
        P, K = self.pairs, self.conflicts
        pairs_of = {}
        for k, p in P.items():
            if not window or p["date"] in self.win:
                pairs_of.setdefault(p["cid"], []).append(k)
        if window:
            # step 1
            for k, p in P.items():
                if k[1] in deleted and p["status"] != "D":
                    p["status"] = "D"
            for k, p in P.items():
                if k[0] in deleted and K[p["cid"]]["status"] != "D":
                    K[p["cid"]]["status"] = "D"
        # step 2
        for cid, ks in pairs_of.items():
            if any((P[k]["miss"] or P[k]["conmiss"]) if window else P[k]["miss"] for k in ks):
                if K[cid]["status"] != "D":
                    K[cid]["status"] = "R"
        # step 3
        for k, p in P.items():
            if window and p["date"] not in self.win:
                continue
            if ((p["miss"] or p["conmiss"]) if window else p["conmiss"]) and p["status"] not in ("R", "D"):
                p["status"] = "R"
        if window:
            # step 4
            for k in upd:
                if P[k]["status"] != "D":
                    P[k]["status"] = "R"
        # step 5
        for cid, ks in pairs_of.items():
            if any(P[k]["status"] == "U" for k in ks) and K[cid]["status"] not in ("D", "I", "W", "U"):
                K[cid]["status"] = "U"
        # step 6
        for cid, ks in pairs_of.items():
            if K[cid]["status"] in ("R", "D"):
                n = len(ks)
                closed = sum(P[k]["status"] in ("R", "D") for k in ks)
                if n == 1 or closed >= n - 1:
                    for k in ks:
                        if P[k]["status"] not in ("R", "D"):
                            P[k]["status"] = "R"
        # step 7
        for cid, ks in pairs_of.items():
            if K[cid]["status"] not in ("R", "D"):
                if all(P[k]["status"] in ("R", "D") for k in ks):
                    K[cid]["status"] = "R"
        # step 8
        for cid, ks in pairs_of.items():
            if K[cid]["status"] in ("U", "N", "W", "I") and K[cid]["nr"] == "Yes":
                K[cid]["status"] = "N"
        for k, p in P.items():
            if window and p["date"] not in self.win:
                continue
            if p["status"] in ("U", "N", "W", "I") and p["connr"] == "Yes":
                p["status"] = "N"

    def snapshot(self):
        pairs = sorted(f"{a}>{b}:{p['status']}" for (a, b), p in self.pairs.items())
        cids = {}
        for (a, b), p in self.pairs.items():
            cids[p["cid"]] = a
        confs = sorted(f"{cids[c]}:{k['status']}" for c, k in self.conflicts.items() if c in cids)
        return pairs, confs


def thaw_state(db):
    pairs = sql(db, 'SELECT ("AppVisitID" - 100) || \'>\' || ("ConAppVisitID" - 100) || \':\' || "StatusFlag" FROM conflict.conflictvisitmaps')
    confs = sql(db, 'SELECT DISTINCT (c."AppVisitID" - 100) || \':\' || k."StatusFlag" FROM conflict.conflicts k JOIN conflict.conflictvisitmaps c USING ("CONFLICTID")')
    return sorted(pairs), sorted(confs)


def run(seed, nights, nvisits):
    rnd = random.Random(seed)
    db = f"lifecycle_model_{seed}"
    subprocess.run(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {db}"], env=ENV, capture_output=True)
    sql("postgres", f"CREATE DATABASE {db}")
    # migrations via a first run on empty data
    env = dict(ENV, DB=db)
    today = ["2025-03-10"]
    def night(full):
        args = [BIN, "conflicts", "-c", CONFIG, "--today", today[0]] + (["--full"] if full else [])
        r = subprocess.run(args, env=env, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"thaw failed: {r.stderr[-2000:]}")
    # A first run on the empty database applies the migrations (and fails: no SETTINGS row yet).
    subprocess.run([BIN, "conflicts", "-c", CONFIG, "--today", "2025-03-10", "--full"], env=env, capture_output=True, text=True)
    sql(db, REF + "UPDATE analytics.dimprovider SET \"Is Active\" = true; DELETE FROM conflict.conflictvisitmaps; DELETE FROM conflict.conflicts;")
    visits = [Visit(i + 1, rnd.choice("ABC"), rnd.choice(DATES), rnd.choice([0, 1])) for i in range(nvisits)]
    sql(db, f"INSERT INTO analytics.factvisitcallperformance_cr {COLS} VALUES " + ",\n".join(v.row() for v in visits) + ";")
    model = Model()
    log = []
    switch = rnd.randint(2, nights - 1)
    for n in range(nights):
        if n > 0:
            stmts = []
            for _ in range(rnd.randint(1, 4)):
                what = rnd.choice(["delete", "restore", "missed", "move", "pair", "conflict", "connr", "nr", "pair", "conflict"])
                v = rnd.choice(visits)
                if what == "delete" and v.present:
                    v.present, v.deleted = False, True
                    stmts.append(f"INSERT INTO analytics.factvisitcallperformance_deleted_cr (\"Visit Id\", \"Visit Date\", \"Visit Updated Timestamp\") VALUES ('{uid(v.i)}', '{v.date}', now()); DELETE FROM analytics.factvisitcallperformance_cr WHERE \"Visit Id\" = '{uid(v.i)}';")
                elif what == "restore" and v.deleted:
                    v.present, v.deleted = True, False
                    stmts.append(f"INSERT INTO analytics.factvisitcallperformance_cr {COLS} VALUES {v.row()}; DELETE FROM analytics.factvisitcallperformance_deleted_cr WHERE \"Visit Id\" = '{uid(v.i)}';")
                elif what == "missed" and v.present:
                    v.missed = not v.missed
                    stmts.append(f"UPDATE analytics.factvisitcallperformance_cr SET \"Is Missed\" = {str(v.missed).lower()}, \"Visit Updated Timestamp\" = now() WHERE \"Visit Id\" = '{uid(v.i)}';")
                elif what == "move" and v.present:
                    v.slot = 1 - v.slot
                    s, e = SLOTS[v.slot]
                    stmts.append(f"UPDATE analytics.factvisitcallperformance_cr SET \"Scheduled Start Time\" = '{v.date} {s}-04', \"Scheduled End Time\" = '{v.date} {e}-04', \"Visit Updated Timestamp\" = now() WHERE \"Visit Id\" = '{uid(v.i)}';")
                elif what == "pair" and model.pairs:
                    k = rnd.choice(sorted(model.pairs))
                    st = rnd.choice("WIRU")
                    model.pairs[k]["status"] = st
                    stmts.append(f"UPDATE conflict.conflictvisitmaps SET \"StatusFlag\" = '{st}' WHERE \"AppVisitID\" = {100 + k[0]} AND \"ConAppVisitID\" = {100 + k[1]};")
                elif what == "conflict" and model.conflicts:
                    c = rnd.choice(sorted(model.conflicts))
                    st = rnd.choice("WIRU")
                    model.conflicts[c]["status"] = st
                    stmts.append(f"UPDATE conflict.conflicts SET \"StatusFlag\" = '{st}' WHERE \"CONFLICTID\" = {c};")
                elif what == "connr" and model.pairs:
                    k = rnd.choice(sorted(model.pairs))
                    val = rnd.choice(["Yes", None])
                    model.pairs[k]["connr"] = val
                    stmts.append(f"UPDATE conflict.conflictvisitmaps SET \"ConNoResponseFlag\" = {'NULL' if val is None else repr(val)} WHERE \"AppVisitID\" = {100 + k[0]} AND \"ConAppVisitID\" = {100 + k[1]};")
                elif what == "nr" and model.conflicts:
                    c = rnd.choice(sorted(model.conflicts))
                    val = rnd.choice(["Yes", None])
                    model.conflicts[c]["nr"] = val
                    stmts.append(f"UPDATE conflict.conflicts SET \"NoResponseFlag\" = {'NULL' if val is None else repr(val)} WHERE \"CONFLICTID\" = {c};")
            if stmts:
                sql(db, "\n".join(stmts))
            log.append(stmts)
        # the model's CONFLICTIDs must match thaw's: read thaw's after the night and compare
        if n == switch:
            today[0] = "2027-03-13"
            log.append(["today 2027-03-13"])
        full = rnd.random() < 0.5 if not os.environ.get("MODE") else os.environ["MODE"] == "full"
        night(full=full)
        log.append(["full" if full else "incremental"])
        win = set(DATES) if today[0] == "2025-03-10" else {"2025-03-13"}
        fut = set(DATES) if today[0] == "2025-03-10" else set()
        model.night(visits, win, fut)
        got, want = thaw_state(db), model.snapshot()
        if got != want:
            print(f"seed {seed} night {n}: MISMATCH")
            print(" changes:", json.dumps(log[-1] if log else [], indent=1))
            gp, gc = got
            wp, wc = want
            print(" pairs thaw-only :", sorted(set(gp) - set(wp)))
            print(" pairs model-only:", sorted(set(wp) - set(gp)))
            print(" confs thaw-only :", sorted(set(gc) - set(wc)))
            print(" confs model-only:", sorted(set(wc) - set(gc)))
            print(" history:", json.dumps(log, indent=0))
            return False
    subprocess.run(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {db}"], env=ENV, capture_output=True)
    return True


# The seeds `make test` runs (`--ci`, through tests/run-models.sh): first
# seed, count, nights, visits. About 2.5 s per seed with a debug build, so
# about 20 s: the models share `make test`'s 10-minute warm budget.
CI_SEEDS = (1, 8, 8, 6)


def main(run_seed, ci_seeds, default_nights, default_visits):
    """Run `run_seed(seed, nights, visits)` for the seeds of the command line
    (FIRST_SEED COUNT [NIGHTS] [VISITS], or `--ci` for `ci_seeds`), stopping
    after three failing seeds; exit 1 if any failed (shared with
    tests/conflict_lifecycle_app_model.py)."""
    if sys.argv[1:] == ["--ci"]:
        first, count, nights, nvisits = ci_seeds
    else:
        first, count = int(sys.argv[1]), int(sys.argv[2])
        nights = int(sys.argv[3]) if len(sys.argv) > 3 else default_nights
        nvisits = int(sys.argv[4]) if len(sys.argv) > 4 else default_visits
    bad = 0
    for seed in range(first, first + count):
        if not run_seed(seed, nights, nvisits):
            bad += 1
            if bad >= 3:
                break
    print("done, failures:", bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main(run, CI_SEEDS, 6, 6)
