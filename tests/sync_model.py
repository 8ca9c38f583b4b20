#!/usr/bin/env python3
"""Random end-to-end model of `thaw run` (sync) and `thaw reconcile` against the emulator and PostgreSQL.

    THAW_TEST_BIN=... python3 tests/harness.py run -- python3 tests/sync_model.py SEED COUNT [NIGHTS]
    python3 tests/harness.py run -- python3 tests/sync_model.py --ci      # the fixed seeds `make test` runs

Per seed: one to three random Snowflake tables in the emulator (identifiers
with mixed case, spaces, quotes and reserved words; every column type of
docs/sync.md §5.2 the emulator can hold; random NULL density; single or
composite keys of numbers, text or dates; a chunking column that may hold
NULLs), random targets (created by thaw with `create_tables`, or created here
with the natural type or an accepted narrowing type of §5.2), random chunking
strategy, batch size and worker count. Then a full `thaw run`; an
independent comparison of every value (read through the Snowflake connector
and psql, converted by the rules of docs/sync.md §5.2 written out here
again); nights of updates, inserts, deletes (with `propagate_deletes`) and
watermark moves, each followed by an incremental `thaw run` and the same
comparison; last, planted target-side differences that `thaw reconcile
--full` must find exactly. With some seeds, one extra table whose target
takes a column in a refused type (exit 2, the table and column named,
nothing written) or a checked-narrowing type too small for one value (exit
1, the table, column and key named, that chunk not written).

Exits 1 on any difference, printing the seed; docs/sync.md §14.
Values the emulator cannot hold are not generated: NUMBER(38,0) beyond a
64-bit integer (fakesnow stores it as BIGINT), sub-microsecond fractions
(DuckDB keeps microseconds), TIMESTAMP_TZ offsets (stored as UTC).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal, getcontext

getcontext().prec = 80  # NUMBER(38, s) values quantized exactly (the default 28 digits raised InvalidOperation)

try:
    import snowflake.connector  # noqa: F401
except ImportError:  # the harness's emulator venv has the connector
    venv = os.path.join(os.environ.get("THAW_CACHE") or os.path.expanduser("~/.cache/thaw"), "venv", "bin", "python")
    if os.path.abspath(sys.executable) == os.path.abspath(venv) or not os.path.exists(venv):
        raise SystemExit(f"sync_model: needs snowflake-connector-python (the harness venv {venv})")
    os.execv(venv, [venv] + sys.argv)

import snowflake.connector  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ)
if ENV.get("THAW_SF_CA_FILE"):
    os.environ["REQUESTS_CA_BUNDLE"] = ENV["THAW_SF_CA_FILE"]
ENV["PGPASSWORD"] = ENV.get("THAW_PG_PASSWORD", "")
PSQL = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", ENV.get("THAW_PG_HOST", ""), "-p", ENV.get("THAW_PG_PORT", ""),
        "-U", ENV.get("THAW_PG_USER", "")]
BIN = os.environ.get("THAW_TEST_BIN", os.path.join(ROOT, "target", "debug", "thaw"))
PG_SESSION = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET extra_float_digits = 1; SET bytea_output = 'hex';\n"


class Mismatch(Exception):
    pass


def qi(name):
    """A quoted identifier (both engines double embedded quotes)."""
    return '"' + name.replace('"', '""') + '"'


def ql(text):
    """A Snowflake string literal: backslash is an escape character there (a lone one hung the emulator's parser)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def pl(text):
    """A PostgreSQL string literal (standard_conforming_strings)."""
    return "'" + text.replace("'", "''") + "'"


def pg(db, text):
    # bytes, not text=True: universal newlines would turn a stored CR LF into LF
    r = subprocess.run(PSQL + ["-d", db], input=(PG_SESSION + text).encode(), capture_output=True, env=ENV)
    if r.returncode:
        raise Mismatch(f"psql failed: {r.stderr.decode(errors='replace')}\n{text[:2000]}")
    return r.stdout.decode()


def pg_rows(db, select):
    out = pg(db, f"COPY ({select}) TO STDOUT WITH (FORMAT csv)")
    return list(csv.reader(io.StringIO(out, newline="")))


class Sf:
    def __init__(self):
        host, _, port = ENV["THAW_SF_ENDPOINT"].rpartition(":")
        self.conn = snowflake.connector.connect(account=ENV["THAW_SF_ACCOUNT"], user=ENV["THAW_SF_USER"],
                                                password=ENV["THAW_SF_PASSWORD"], host=host, port=int(port),
                                                protocol="https")

    def q(self, text):
        cur = self.conn.cursor()
        if os.environ.get("SYNC_MODEL_DEBUG"):
            print("sf:", text[:300], file=sys.stderr, flush=True)
        cur.execute(text)
        try:
            return cur.fetchall()
        except Exception:
            return []


# ---------------------------------------------------------------- types and values

EPOCH = dt.datetime(1970, 1, 1)


def rand_text(rnd, maxlen):
    kind = rnd.random()
    if kind < 0.08:
        s = ""
    elif kind < 0.15:
        s = rnd.choice([" ", "  ", "\t", "\n", " x ", "\r\n"])
    elif kind < 0.2:
        s = "".join(rnd.choice("ab c'\"\\%_") for _ in range(rnd.randint(1, 5000)))
    else:
        alphabet = "abcXYZ 019'\"\\,;\t\néüß€漢字😀👩‍👩‍👧\u0301\u001e\u001f\u001b{}[]"
        s = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 30)))
    return s[:maxlen] if maxlen else s


def rand_json(rnd, depth=0):
    k = rnd.random()
    if depth > 2 or k < 0.4:
        return rnd.choice([0, 1, -7, 2.5, 1e-7, 123456789012, "", "x\"y", "é😀", True, False, None, "1"])
    if k < 0.7:
        return [rand_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {rand_text(rnd, 6): rand_json(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}


class Ty:
    """One Snowflake column type: its declaration, a value generator (SQL literal) and the targets it may take."""

    def __init__(self, kind, decl, **kw):
        self.kind, self.decl = kind, decl
        self.p, self.s, self.n, self.scale = kw.get("p"), kw.get("s"), kw.get("n"), kw.get("scale")

    def literal(self, rnd):
        k = self.kind
        if k == "number":
            intdigits = min(self.p - self.s, 18 if self.s == 0 else self.p - self.s)
            choice = rnd.random()
            if choice < 0.1:
                mag = 10 ** intdigits - 1 if intdigits else 0
                digits = f"{mag}" + (("." + "9" * self.s) if self.s else "")
            elif choice < 0.2:
                digits = "0" + (("." + "0" * self.s) if self.s else "")
            else:
                ip = rnd.randint(0, 10 ** rnd.randint(0, intdigits) - 1) if intdigits else 0
                fp = "".join(rnd.choice("0123456789") for _ in range(self.s))
                digits = f"{ip}" + (f".{fp}" if self.s else "")
            if self.s == 0 and self.p >= 19 and choice < 0.1:
                digits = str(rnd.choice([2 ** 63 - 1, -(2 ** 63)]))
            elif rnd.random() < 0.3:
                digits = "-" + digits
            # from text: the emulator reads a long numeric literal as a double (-0.99…9 at scale 38 became -1)
            return f"CAST('{digits}' AS {self.decl})"
        if k == "float":
            v = rnd.choice([0.1, -0.0, 0.0, float("nan"), float("inf"), float("-inf"), 1e308, 5e-324, 2.5,
                            62558504058760576.0, -1213547787436797.25, 1e15, 123.456, rnd.uniform(-1e6, 1e6),
                            rnd.uniform(-1, 1) * 10 ** rnd.randint(-300, 300)])
            return f"CAST('{repr(v)}' AS FLOAT)"
        if k == "text":
            return ql(rand_text(rnd, self.n))
        if k == "binary":
            return f"X'{bytes(rnd.randrange(256) for _ in range(rnd.randint(0, 12))).hex()}'"
        if k == "bool":
            return rnd.choice(["TRUE", "FALSE"])
        if k == "date":
            return ql(rand_date(rnd).isoformat())
        if k == "time":
            us = rnd.choice([0, 86399999999, rnd.randrange(86400 * 10 ** 6)])
            t = (dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=us)).time()
            return ql(t.isoformat(timespec="microseconds"))
        if k in ("ntz", "ltz", "tz"):
            ts = rand_ts(rnd)
            text = ts.isoformat(sep=" ", timespec="microseconds")
            if k != "ntz":
                off = rnd.choice([0, -720, 345, 840, 330, -570, 60])
                text += ("+" if off >= 0 else "-") + f"{abs(off) // 60:02d}:{abs(off) % 60:02d}"
                if ts.year < 2 or ts.year > 9998:
                    text = ts.isoformat(sep=" ", timespec="microseconds") + "+00:00"
            return ql(text)
        if k in ("variant", "object", "array"):
            v = rand_json(rnd)
            if k == "object" and not isinstance(v, dict):
                v = {"v": v}
            if k == "array" and not isinstance(v, list):
                v = [v]
            return f"PARSE_JSON({ql(json.dumps(v, ensure_ascii=rnd.random() < 0.5))})"
        raise AssertionError(k)

    def natural(self):
        k = self.kind
        if k == "number":
            if self.s == 0 and self.p <= 18:
                return "int8"
            return f"numeric({self.p},{self.s})"
        if k == "text":
            return f"varchar({self.n})" if self.n and self.n <= 10485760 else "text"
        return {"float": "float8", "binary": "bytea", "bool": "bool", "date": "date", "time": "time",
                "ntz": "timestamp", "ltz": "timestamptz", "tz": "timestamptz", "variant": "jsonb", "object": "jsonb",
                "array": "jsonb"}[k]

    def accepted(self):
        """Other target types of docs/sync.md §5.2 that every value this generator makes fits.

        Not TIME/TIMESTAMP into text: the emulator ignores TO_CHAR formats, so
        reconcile's Snowflake side of those pairs only agrees on real Snowflake
        (docs/reconcile.md §7)."""
        k = self.kind
        if k == "number":
            out = ["numeric", f"numeric({self.p + 4},{self.s + 2})", "text"]
            if self.s == 0 and self.p <= 9:
                out += ["int8", "int4"]
            if self.s == 0 and self.p <= 15:
                out.append("float8")
            return out
        return {"float": [], "text": ["text", "varchar(6000)"], "binary": [], "bool": ["text"],
                "date": ["timestamp", "timestamptz", "text"], "time": [], "ntz": ["timestamptz"],
                "ltz": ["timestamp"], "tz": [], "variant": ["json", "text"], "object": ["json"],
                "array": ["text"]}[k]

    def refused(self):
        return {"number": ["date", "bytea"], "float": ["int8", "text"], "text": ["bytea", "date"],
                "binary": ["int4", "jsonb"], "bool": ["int4", "date"], "date": ["time", "int8"],
                "time": ["timestamp", "interval"], "ntz": ["time", "int8"], "ltz": ["time"], "tz": ["time"],
                "variant": ["bytea", "int8"], "object": ["bool"], "array": ["date"]}[self.kind]


def rand_date(rnd):
    return rnd.choice([dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(1970, 1, 1), dt.date(1969, 12, 31),
                       dt.date(1582, 10, 15), dt.date(2000, 2, 29),
                       dt.date(1, 1, 1) + dt.timedelta(days=rnd.randrange(3652058)),
                       dt.date(2024, 1, 1) + dt.timedelta(days=rnd.randrange(800))])


def rand_ts(rnd):
    d = rand_date(rnd)
    if d.year < 2:
        d = dt.date(2, 1, 1)
    if d.year > 9998:
        d = dt.date(9998, 12, 31)
    us = rnd.choice([0, 86399999999, rnd.randrange(86400 * 10 ** 6)])
    return dt.datetime(d.year, d.month, d.day) + dt.timedelta(microseconds=us)


def rand_type(rnd):
    k = rnd.choice(["number", "number", "float", "text", "text", "binary", "bool", "date", "time", "ntz", "ltz", "tz",
                    "variant", "object", "array"])
    if k == "number":
        p = rnd.choice([1, 2, 5, 9, 10, 15, 18, 19, 20, 28, 38, rnd.randint(1, 38)])
        s = rnd.choice([0, 0, 0, rnd.randint(0, p), p, min(p, 2)])
        return Ty("number", f"NUMBER({p},{s})", p=p, s=s)
    if k == "text":
        n = rnd.choice([None, 1, 10, 100, 16777216, 20000000 if False else 5000])
        return Ty("text", "VARCHAR" if n is None else f"VARCHAR({n})", n=n)
    if k in ("time", "ntz", "ltz", "tz"):
        scale = rnd.randint(0, 9)
        name = {"time": "TIME", "ntz": "TIMESTAMP_NTZ", "ltz": "TIMESTAMP_LTZ", "tz": "TIMESTAMP_TZ"}[k]
        return Ty(k, f"{name}({scale})", scale=scale)
    return Ty(k, {"float": "FLOAT", "binary": "BINARY", "bool": "BOOLEAN", "date": "DATE", "variant": "VARIANT",
                  "object": "OBJECT", "array": "ARRAY"}[k])


WATERMARK_TYPES = [Ty("ntz", "TIMESTAMP_NTZ(6)", scale=6), Ty("ntz", "TIMESTAMP_NTZ(9)", scale=9),
                   Ty("ntz", "TIMESTAMP_NTZ(0)", scale=0), Ty("ltz", "TIMESTAMP_LTZ(6)", scale=6),
                   Ty("tz", "TIMESTAMP_TZ(3)", scale=3), Ty("number", "NUMBER(18,0)", p=18, s=0), Ty("date", "DATE")]
KEY_TYPES = [Ty("number", "NUMBER(10,0)", p=10, s=0), Ty("text", "VARCHAR(40)", n=40), Ty("date", "DATE")]
TABLE_NAMES = ["Order Lines", "select", "MiXeD Case", "visit", 'Quote"d', "tab_%d", "ÜNI code", "group", "T %d"]
COLUMN_NAMES = ["Id", "order", "Amount", "amount due", "Col\"Q", "ÉTÉ", "from", "x", "Y", "Note", "user", "a b c",
                "Value", "limit", "Código", "k2", "k3", "Start", "end", "DATA"]


# ---------------------------------------------------------------- expected target text

def canon(ty, pgtype, v):
    """The PostgreSQL text (psql, session of PG_SESSION) that the Snowflake value `v` must arrive as (docs/sync.md §5.2)."""
    if v is None:
        return None
    k = ty.kind
    base = pgtype.split("(")[0]
    if k == "number":
        d = Decimal(v)
        if base == "text":
            d = d.quantize(Decimal(1).scaleb(-ty.s)) if ty.s else Decimal(int(d))
            if d == 0:
                d = abs(d)
            return ("num", f"{d:f}")
        return ("num", d)
    if k == "float":
        return ("float", v)
    if k == "text":
        return ("text", v)
    if k == "binary":
        return ("text", "\\x" + bytes(v).hex())
    if k == "bool":
        return ("text", "true" if v else "false")
    if k == "date":
        if base == "date" or base == "text":
            return ("text", v.isoformat())
        return ("text", v.isoformat() + " 00:00:00" + ("+00" if base == "timestamptz" else ""))
    if k == "time":
        if base == "text":
            return ("text", v.isoformat(timespec="microseconds"))
        return ("text", pg_time(v))
    if k in ("ntz", "ltz", "tz"):
        if v.tzinfo is not None:
            v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
        if base == "text":
            return ("text", v.isoformat(sep=" ", timespec="microseconds") + ("" if k == "ntz" else "+00:00"))
        return ("text", pg_ts(v) + ("+00" if base == "timestamptz" else ""))
    if k in ("variant", "object", "array"):
        return ("json", json.loads(v))
    raise AssertionError(k)


def pg_time(t):
    s = t.strftime("%H:%M:%S")
    if t.microsecond:
        s += f".{t.microsecond:06d}".rstrip("0")
    return s


def pg_ts(v):
    return f"{v.year:04d}-{v.month:02d}-{v.day:02d} {pg_time(v.time())}"


def same(expected, got):
    """Compare an expected form with the PostgreSQL text (None = NULL)."""
    if expected is None or got is None:
        return expected is None and got is None
    kind, v = expected
    if kind == "num":
        return Decimal(got) == v if not isinstance(v, str) else got == v
    if kind == "float":
        g = float(got)
        if math.isnan(v):
            return math.isnan(g)
        return g == v and math.copysign(1, g) == math.copysign(1, v)
    if kind == "json":
        return json.loads(got) == v
    return got == v


# ---------------------------------------------------------------- one table

def key_text(i, j):
    """The text of key column `j` of row `i` (empty prefix, blanks, quote, backslash, case pairs, emoji)."""
    return ["", "a", "A", "é", " k", "k ", "'", "\\", "Z", "ä", "\t", "~"][i % 12] + f"{i}-{j}" + ("😀" if i % 5 == 0 else "")


class Table:
    def __init__(self, rnd, seed, idx, key_types=None):
        """`key_types`: the types keys are drawn from (default `KEY_TYPES`; the
        reconcile model adds scaled NUMBERs and timestamps)."""
        self.rnd = rnd
        name = rnd.choice(TABLE_NAMES)
        self.source = name % (seed * 10 + idx) if "%d" in name else f"{name} {idx}"
        self.target = self.source if rnd.random() < 0.5 else self.source.lower().replace('"', "")
        used = set()

        def col(ty):
            while True:
                n = rnd.choice(COLUMN_NAMES)
                if rnd.random() < 0.3:
                    n = n.upper() if rnd.random() < 0.5 else n.lower()
                if n.lower() not in used:
                    used.add(n.lower())
                    return [n, ty]
        nkeys = rnd.choice([1, 1, 2, 3])
        self.keys = [col(rnd.choice(key_types or KEY_TYPES)) for _ in range(nkeys)]
        self.values = [col(rand_type(rnd)) for _ in range(rnd.randint(1, 7))]
        self.watermark = col(rnd.choice(WATERMARK_TYPES)) if rnd.random() < 0.8 else None
        self.columns = self.keys + self.values + ([self.watermark] if self.watermark else [])
        self.null_density = rnd.choice([0, 0.1, 0.5, 0.95])
        # chunking: the first key, or a nullable value column of a chunkable type
        chunkable = [c for c in self.values if c[1].kind in ("number", "date", "text") and (c[1].kind != "number" or c[1].s == 0)
                     and (c[1].kind != "text" or c[1].n is None or c[1].n >= 10)]
        first = self.keys[:1] if self.keys[0][1].kind in ("date", "text") or (self.keys[0][1].kind == "number" and self.keys[0][1].s == 0) else []
        self.chunk = rnd.choice(first + chunkable) if rnd.random() < 0.85 and first + chunkable else None
        self.strategy = None
        if self.chunk is not None:
            k = self.chunk[1].kind
            self.strategy = rnd.choice([None, None, "single", "grouped_values",
                                        {"number": "numeric_range", "date": "date_range", "text": "keyset"}[k]])
            if self.strategy == "grouped_values" and self.chunk[1].kind == "number" and self.chunk[1].p > 18:
                self.strategy = None
        self.batch = rnd.choice([100, 100, 150, 1000, 100000])
        self.threads = rnd.randint(1, 4)
        self.create = rnd.random() < 0.5
        self.propagate = rnd.random() < 0.5
        self.row_hashes = rnd.random() < 0.3
        self.targets = {}
        for c in self.columns:
            t = c[1].natural()
            if not self.create and c not in self.keys and rnd.random() < 0.4 and c[1].accepted():
                t = rnd.choice(c[1].accepted())
            self.targets[c[0]] = t
        # pre-created targets: some columns named in the other ASCII case (paired by docs/sync.md §4.6)
        # or renamed by column_mapping
        self.tname = {c[0]: c[0] for c in self.columns}
        self.mapping = {}
        if not self.create:
            for n in self.tname:
                r = rnd.random()
                if r < 0.2 and n.isascii() and n.lower() != n:
                    self.tname[n] = n.lower()
                elif r < 0.3 and n.isascii() and n.upper() != n:
                    self.tname[n] = n.upper()
                elif r < 0.4 and (self.watermark is None or n != self.watermark[0]):
                    self.tname[n] = self.mapping[n] = f"{n} Mapped"
        self.rows = {}
        self.next_key = 0
        # Table options drawn from their own generator, so the draws above stay
        # those of the seeds before these options existed.
        opt = random.Random(seed * 1000 + idx)
        first_kind = self.keys[0][1].kind
        self.filter = None
        self.insert_only = opt.random() < 0.25
        self.truncate = not self.insert_only and opt.random() < 0.15
        if not self.truncate and opt.random() < 0.3:
            # On the first key only (a row's key never changes, so it never leaves
            # the filter), with an OR that chunk predicates must not split.
            k = qi(self.keys[0][0])
            self.filter = {"number": f"{k} < 0 OR {k} > 100000000",
                           "text": f"{k} < 'a' OR {k} >= 'k'",
                           "date": f"{k} < '1000-01-01' OR {k} >= '5000-01-01'",
                           "ntz": f"{k} < '1000-01-01' OR {k} >= '5000-01-01'"}[first_kind]
        excludable = [c for c in self.values if c is not self.chunk]
        self.excluded = opt.choice(excludable)[0] if excludable and opt.random() < 0.3 else None
        if self.excluded is not None:
            self.mapping.pop(self.excluded, None)
            self.tname[self.excluded] = self.excluded
        # insert-only: the values each key had when it was first copied
        self.first_copied = {}
        self.first_copied_names = []
        self.added = set()  # columns added to the Snowflake table by drift
        # Parquet unloaded to S3 instead of query results (docs/sync.md §13), small files
        self.staged = opt.random() < 0.25
        # schema drift (docs/sync.md §3.6): `schema_evolution`, and what drift left behind
        self.evolution = opt.choice([None, None, "add_columns", "error"])
        self.more_excluded = []  # columns dropped, retyped or renamed away in Snowflake, then excluded
        self.absent = set()  # columns the target does not hold or the model no longer compares
        self.lenient = {}  # added column -> keys (repr) loaded before it: NULL there until re-copied
        self.drift_rnd = random.Random(seed * 1000 + 500 + idx)  # values of added columns

    def config(self):
        t = {"source": self.source, "target": self.target, "uniqueness_columns": [c[0] for c in self.keys],
             "batch_size": self.batch, "parallel_threads": self.threads, "create_tables": self.create,
             "propagate_deletes": self.propagate, "row_hashes": self.row_hashes}
        if self.chunk is not None:
            t["chunking_columns"] = [self.chunk[0]]
            t["chunking_column_types"] = [{"number": "bigint", "date": "date", "text": "varchar"}[self.chunk[1].kind]]
            if self.strategy:
                t["chunking_strategy"] = self.strategy
        if self.watermark:
            t["source_watermark"] = self.watermark[0]
            t["target_watermark"] = self.tname[self.watermark[0]]
        if self.mapping:
            t["column_mapping"] = self.mapping
        if self.filter:
            t["source_filter"] = self.filter
        if self.insert_only:
            t["insert_only_mode"] = True
        if self.truncate:
            t["truncate_onstart"] = True
        excluded = ([self.excluded] if self.excluded is not None else []) + self.more_excluded
        if excluded:
            t["exclude_columns"] = excluded
        if self.evolution:
            t["schema_evolution"] = self.evolution
        if self.staged:
            t["source_mode"] = "staged"
        return t

    def copied_columns(self):
        """The columns the target holds: every column, less an excluded one thaw created the table without."""
        return [c for c in self.columns if not (self.create and c[0] == self.excluded) and c[0] not in self.absent]

    def compared_values(self):
        """The value columns whose target values the model checks (not excluded, not drifted away)."""
        return [c for c in self.values if c[0] != self.excluded and c[0] not in self.absent]

    def set_columns(self):
        self.columns = self.keys + self.values + ([self.watermark] if self.watermark else [])

    def key_literals(self, i):
        out = []
        for j, (_, ty) in enumerate(self.keys):
            if ty.kind == "number":
                out.append(str((i * 7919 + j * 13) % 10 ** 9 - 5 * 10 ** 8) + (f".{i % 100:02d}".ljust(ty.s + 1, "0") if ty.s else ""))
            elif ty.kind == "ntz":
                at = dt.datetime(1, 1, 1) + dt.timedelta(days=(i * 104729 + j) % 3652058, microseconds=(i * 7919 + j) % 86400000000)
                out.append(ql(at.isoformat(sep=" ", timespec="microseconds")))
            elif ty.kind == "text":
                out.append(ql(key_text(i, j)))
            else:
                out.append(ql((dt.date(1, 1, 1) + dt.timedelta(days=(i * 104729 + j) % 3652058)).isoformat()))
        return out

    def row_literals(self, i, night_ts):
        vals = self.key_literals(i)
        for n, ty in self.values:
            rnd = self.drift_rnd if n in self.added else self.rnd
            vals.append("NULL" if rnd.random() < self.null_density else ty.literal(rnd))
        if self.watermark:
            vals.append(self.watermark_literal(night_ts))
        return vals

    def watermark_literal(self, clock):
        """The watermark of a row changed at `clock`, in the watermark column's type."""
        k = self.watermark[1].kind
        if k == "number":
            return str((clock - dt.datetime(2025, 1, 1)) // dt.timedelta(microseconds=1))
        if k == "date":
            return ql(clock.date().isoformat())
        if k == "ntz":
            return ql(clock.isoformat(sep=" "))
        # the same instant (`clock` in UTC) written at another offset: the watermark still moves forward
        off = self.rnd.choice([0, 345, -720, 840])
        local = clock + dt.timedelta(minutes=off)
        return ql(local.isoformat(sep=" ") + ("+" if off >= 0 else "-") + f"{abs(off) // 60:02d}:{abs(off) % 60:02d}")

    def fq(self, db):
        return f'{qi(db)}."S".{qi(self.source)}'

    def create_source(self, sf, db):
        cols = ", ".join(f"{qi(n)} {ty.decl}" + (" NOT NULL" if [n, ty] in self.keys else "") for n, ty in self.columns)
        sf.q(f"CREATE TABLE {self.fq(db)} ({cols})")

    def insert(self, sf, db, keys, night_ts):
        names = ", ".join(qi(n) for n, _ in self.columns)
        for start in range(0, len(keys), 8):
            part = keys[start:start + 8]
            sel = " UNION ALL ".join("SELECT " + ", ".join(self.row_literals(i, night_ts)) for i in part)
            sf.q(f"INSERT INTO {self.fq(db)} ({names}) {sel}")

    def create_target(self, pgdb):
        cols = ", ".join(f"{qi(self.tname[n])} {self.targets[n]}" for n, _ in self.columns)
        pk = ", ".join(qi(self.tname[n]) for n, _ in self.keys)
        pg(pgdb, f"CREATE TABLE public.{qi(self.target)} ({cols}, PRIMARY KEY ({pk}))")

    def key_repr(self, sf, db, i):
        """The key (as `source_rows` keys rows) of row `i`, None when it is gone."""
        got = sf.q(f"SELECT {', '.join(qi(n) for n, _ in self.keys)} FROM {self.fq(db)} WHERE {self.where_key(i)}")
        return repr(tuple(canon(ty, self.targets[n], v) for (n, ty), v in zip(self.keys, got[0]))) if got else None

    def check_added_types(self, pgdb):
        """A column `add_columns` added has its natural type (docs/sync.md §5.4)."""
        for n, ty in self.values:
            if n not in self.added or n in self.absent:
                continue
            got = pg(pgdb, f"CREATE TEMP TABLE natural_probe (c {ty.natural()}); COPY (SELECT "
                           f"(SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = {pl('public.' + qi(self.target))}::regclass "
                           f"AND attname = {pl(n)} AND NOT attisdropped), (SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                           "WHERE attrelid = 'natural_probe'::regclass AND attname = 'c')) TO STDOUT WITH (FORMAT csv)")
            target, natural = next(csv.reader(io.StringIO(got)))
            if target != natural:
                raise Mismatch(f"table {self.target!r}: added column {n!r} ({ty.decl}) is {target or 'missing'}, want {natural}")

    def where_key(self, i):
        return " AND ".join(f"{qi(n)} = {lit}" for (n, _), lit in zip(self.keys, self.key_literals(i)))

    # -- reading both sides
    def source_rows(self, sf, db):
        """The rows thaw copies (the table's filter applied), by key; an excluded column as the target keeps it: NULL."""
        names = ", ".join(qi(n) for n, _ in self.copied_columns())
        out = {}
        where = f" WHERE {self.filter}" if self.filter else ""
        for r in sf.q(f"SELECT {names} FROM {self.fq(db)}{where}"):
            key = tuple(canon(ty, self.targets[n], v) for (n, ty), v in zip(self.keys, r[:len(self.keys)]))
            out[repr(key)] = [None if n == self.excluded else canon(ty, self.targets[n], v)
                              for (n, ty), v in zip(self.copied_columns(), r)]
        return out

    def expected_rows(self, sf, db):
        """What the target must hold: the source rows, and with insert_only_mode each key's first copied values."""
        src = self.source_rows(sf, db)
        if not self.insert_only:
            return src
        # (first copies are kept by column name: drift adds and removes columns; a column added since holds NULL)
        names = [c[0] for c in self.copied_columns()]
        first = {k: [dict(zip(self.first_copied_names, row)).get(n) for n in names] for k, row in self.first_copied.items()}
        kept = {k: first.get(k, row) for k, row in src.items()}
        if not self.propagate:  # deleted source rows stay in the target
            kept.update({k: row for k, row in first.items() if k not in src})
        return kept

    def target_rows(self, pgdb):
        exprs = ", ".join(f"CASE WHEN {qi(self.tname[n])} IS NULL THEN 'N' ELSE 'V' || {qi(self.tname[n])}::text END"
                          for n, _ in self.copied_columns())
        out = []
        for r in pg_rows(pgdb, f"SELECT {exprs} FROM public.{qi(self.target)}"):
            out.append([None if x == "N" else x[1:] for x in r])
        return out

    def compare(self, sf, db, pgdb, when):
        """Every target row equals its source row (docs/sync.md §5.2). Returns how many rows
        loaded before a column was added hold NULL there while Snowflake holds a value (§3.6:
        they keep NULL until re-copied); any other difference raises `Mismatch`."""
        src = self.expected_rows(sf, db)
        tgt = self.target_rows(pgdb)
        problems = []
        stale = 0
        nk = len(self.keys)
        matched = set()
        for row in tgt:
            found = None
            for key, srow in src.items():
                if key not in matched and all(same(e, g) for e, g in zip(srow[:nk], row[:nk])):
                    found = key
                    break
            if found is None:
                problems.append(f"extra target row {row[:nk]}")
                continue
            matched.add(found)
            for (n, _), e, g in zip(self.copied_columns(), src[found], row):
                if g is None and e is not None and found in self.lenient.get(n, ()):
                    stale += 1
                    continue
                if not same(e, g):
                    problems.append(f"key {row[:nk]} column {n!r} ({self.targets[n]}): source {e!r} target {g!r}")
        for key in src:
            if key not in matched:
                problems.append(f"missing target row {key}")
        if problems:
            raise Mismatch(f"{when}: table {self.source!r} → {self.target!r}:\n  " + "\n  ".join(problems[:20]))
        if self.insert_only:
            self.first_copied = src
            self.first_copied_names = [c[0] for c in self.copied_columns()]
        return stale


# ---------------------------------------------------------------- thaw

def write_config(path, sfdb, pgdb, tables, extra=None):
    cfg = {"snowflake": {"account": "${THAW_SF_ACCOUNT}", "user": "${THAW_SF_USER}", "password": "${THAW_SF_PASSWORD}",
                         "endpoint": "${THAW_SF_ENDPOINT}", "ca_file": "${THAW_SF_CA_FILE}"},
           "postgres": {"host": "${THAW_PG_HOST}", "port": int(ENV["THAW_PG_PORT"]), "user": "${THAW_PG_USER}",
                        "password": "${THAW_PG_PASSWORD}"},
           "sources": [{"source_name": "src", "source_sf_database": sfdb, "source_sf_schema": "S",
                        "target_pg_database": pgdb, "target_pg_schema": "public",
                        "tables": [t.config() for t in tables]}]}
    if any(t.config().get("source_mode") == "staged" for t in tables):
        cfg["staging"] = {"stage": "THAW_STAGE", "storage_integration": "THAW_S3_INTEGRATION", "bucket": "${THAW_S3_BUCKET}",
                          "max_file_size": 4096}
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def thaw(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, env=ENV)
    return r.returncode, r.stdout + r.stderr


def run_thaw(cfg, workdir, extra, what, want=0):
    report = os.path.join(workdir, "report.json")
    if os.path.exists(report):
        os.remove(report)
    rc, out = thaw("run", "-c", cfg, "--no-conflicts", "--report", report, *extra)
    if rc != want:
        raise Mismatch(f"{what}: thaw run exited {rc} (want {want}):\n{out[-4000:]}")
    with open(report) as f:
        return json.load(f)


def run_id_of(report):
    return report["plan"]["run_id"]


def seed_run(seed, nights, log):
    rnd = random.Random(seed)
    # the emulator cannot drop a database: a fresh name per process
    sfdb, pgdb = f"SYNC_MODEL_{seed}_{os.getpid()}", f"sync_model_{seed}"
    workdir = tempfile.mkdtemp(prefix=f"thaw-sync-model-{seed}-")
    cfg = os.path.join(workdir, "config.json")
    sf = Sf()
    sf.q(f"CREATE DATABASE {qi(sfdb)}")
    sf.q(f'CREATE SCHEMA {qi(sfdb)}."S"')
    subprocess.run(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {pgdb}"], env=ENV, capture_output=True)
    pg("postgres", f"CREATE DATABASE {pgdb}")
    tables = [Table(rnd, seed, i) for i in range(rnd.randint(1, 3))]
    names = set()
    for t in tables:
        while t.source in names or t.target in {x.target for x in tables if x is not t}:
            t.source += "_"
            t.target += "_"
        names.add(t.source)
    clock = dt.datetime(2025, 1, 1, 0, 0, 0, 123456)
    for t in tables:
        t.create_source(sf, sfdb)
        n = rnd.choice([0, 1, 5, 40, 300])
        t.insert(sf, sfdb, list(range(n)), clock)
        t.next_key = n
        if not t.create:
            t.create_target(pgdb)
        log.append(f"table {t.source!r}: {[(c[0], c[1].decl, t.tname[c[0]], t.targets[c[0]]) for c in t.columns]} {json.dumps(t.config())} rows {n}")
    write_config(cfg, sfdb, pgdb, tables)
    workers = ["--workers", str(rnd.randint(1, 4))]
    consent = ["--allow-truncate"] if any(t.truncate for t in tables) else []
    report = run_thaw(cfg, workdir, workers + consent, "first run")
    run_id = run_id_of(report)
    for t in tables:
        t.compare(sf, sfdb, pgdb, "after the first run")
    rc, out = thaw("reconcile", "-c", cfg, "--run-id", str(run_id), "--full")
    if rc != 0:
        raise Mismatch(f"reconcile --full after the first run exited {rc}:\n{out[-3000:]}")
    for night in range(nights):
        where_run(random.Random(seed * 1000 + 100 + night), tables, sf, sfdb, pgdb, cfg, workdir, log, night)
        drift = drift_night(random.Random(seed * 1000 + 200 + night), tables, sf, sfdb, pgdb, log, night)
        clock += dt.timedelta(hours=rnd.choice([0, 1, 24]), microseconds=rnd.choice([0, 1, 999]))
        for t in tables:
            keys = [i for i in range(t.next_key)]
            present = [r[0] for r in sf.q(f"SELECT COUNT(*) FROM {t.fq(sfdb)}")]
            acts = []
            if t.watermark:
                for _ in range(rnd.randint(0, 5)):
                    if not keys:
                        break
                    i = rnd.choice(keys)
                    sets = []
                    for n, ty in t.values:
                        if rnd.random() < 0.5:
                            sets.append(f"{qi(n)} = " + ("NULL" if rnd.random() < t.null_density else ty.literal(rnd)))
                    sets.append(f"{qi(t.watermark[0])} = {t.watermark_literal(clock)}")
                    sf.q(f"UPDATE {t.fq(sfdb)} SET {', '.join(sets)} WHERE {t.where_key(i)}")
                    acts.append(f"update {i}")
                    if t.lenient:  # its watermark moved: copied tonight, added columns included
                        key = t.key_repr(sf, sfdb, i)
                        for held in t.lenient.values():
                            held.discard(key)
                new = list(range(t.next_key, t.next_key + rnd.randint(0, 30)))
                if new:
                    t.insert(sf, sfdb, new, clock)
                    t.next_key += len(new)
                    acts.append(f"insert {len(new)}")
            if (t.propagate or t.truncate) and keys and rnd.random() < 0.6:
                for _ in range(rnd.randint(1, 3)):
                    i = rnd.choice(keys)
                    sf.q(f"DELETE FROM {t.fq(sfdb)} WHERE {t.where_key(i)}")
                    acts.append(f"delete {i}")
            log.append(f"night {night} {t.source!r}: {acts} (rows before {present})")
        full = ["--full"] if rnd.random() < 0.2 else []
        args = ["--workers", str(rnd.randint(1, 4))] + full + consent
        drifted = drift_errors(drift, tables, sf, sfdb, pgdb, cfg, workdir, log, night, args)
        log.append(f"night {night}: thaw run {full}")
        interfered = False
        if not drifted:
            interfered = interfere(random.Random(seed * 1000 + 300 + night), tables, sfdb, pgdb, cfg, workdir, log, night, args)
        # Rows loaded before a column was added keep NULL there until re-copied (docs/sync.md §3.6);
        # the run's reconcile verifies such a table whole and reports them (exit 3).
        report_path = os.path.join(workdir, "report.json")
        rc, out = thaw("run", "-c", cfg, "--no-conflicts", "--report", report_path, *args)
        if rc not in (0, 3):
            raise Mismatch(f"night {night}: thaw run exited {rc}:\n{out[-4000:]}")
        with open(report_path) as f:
            report = json.load(f)
        run_id = run_id_of(report)
        stale = {}
        for t in tables:
            if t.watermark or t.propagate or t.truncate or t.source in drifted or t.lenient:
                n = t.compare(sf, sfdb, pgdb, f"after night {night}")
                if n and not t.insert_only:
                    stale[t.source] = n
            if full:
                t.lenient = {}
        if interfered:
            # no run left planning/running once a later run finished (a killed one resumed, §6.3)
            left = [x for x in run_statuses(cfg) if x["status"] in ("planning", "running")]
            if left:
                raise Mismatch(f"night {night}: runs left {[(x['run_id'], x['status']) for x in left]} after the next run finished")
        if rc != (3 if stale else 0):
            raise Mismatch(f"night {night}: thaw run exited {rc}, want {3 if stale else 0} (rows loaded before an added column "
                           f"holding NULL there while Snowflake holds a value: {stale}):\n{out[-4000:]}")
        for t in tables:
            t.check_added_types(pgdb)
            if t.source in stale:
                # the way out the docs give: a --full run of the table copies the new columns' values
                log.append(f"night {night}: {stale[t.source]} rows of {t.source!r} stale in added columns: --table --full")
                run_thaw(cfg, workdir, ["--table", t.source, "--full"] + consent, f"night {night}: --full after an added column")
                t.lenient = {}
                if t.compare(sf, sfdb, pgdb, f"after the --full run of night {night}"):
                    raise AssertionError("lenient cleared")
    # planted differences: reconcile --full must find exactly these keys
    planted = {}
    for t in tables:
        tgt = t.target_rows(pgdb)
        if not tgt or rnd.random() < 0.3:
            continue
        row = rnd.choice(tgt)
        where = " AND ".join(f"{qi(t.tname[n])}::text = {pl(v)}" for (n, _), v in zip(t.keys, row[:len(t.keys)]))
        # insert_only_mode: reconcile compares the keys only (docs/reconcile.md §1), so only a delete is planted
        compared = [c for c in t.compared_values() if not t.insert_only]
        how = rnd.choice(["delete", "update"] if compared else ["delete"])
        if how == "update":
            n, ty = rnd.choice(compared)
            idx = [c[0] for c in t.copied_columns()].index(n)
            n = t.tname[n]
            if row[idx] is None:
                pg(pgdb, f"UPDATE public.{qi(t.target)} SET {qi(n)} = (SELECT {qi(n)} FROM public.{qi(t.target)} WHERE {qi(n)} IS NOT NULL LIMIT 1) WHERE {where}")
                # (compared as sorted rows: an UPDATE moves the row in the heap, so the read order changes)
                if sorted(map(repr, t.target_rows(pgdb))) == sorted(map(repr, tgt)):
                    how = "delete"
            else:
                pg(pgdb, f"UPDATE public.{qi(t.target)} SET {qi(n)} = NULL WHERE {where}")
        if how == "delete":
            pg(pgdb, f"DELETE FROM public.{qi(t.target)} WHERE {where}")
        planted[t.target] = (how, row[:len(t.keys)])
    log.append(f"planted {planted}")
    rep = os.path.join(workdir, "reconcile.json")
    rc, out = thaw("reconcile", "-c", cfg, "--run-id", str(run_id), "--full", "--report", rep)
    if rc != (3 if planted else 0):
        raise Mismatch(f"reconcile --full with planted {planted} exited {rc}:\n{out[-3000:]}")
    if planted:
        with open(rep) as f:
            body = json.load(f)
        for tr in body["tables"]:
            summary = tr.get("summary", tr)
            tname = summary["target"].removeprefix("public.")
            found = json.dumps(tr)
            want = planted.get(tname)
            status = summary.get("status")
            if want is None and status != "ok":
                raise Mismatch(f"reconcile: table {tname} not planted but {status}: {found[:2000]}")
            if want is not None:
                if status != "mismatch":
                    raise Mismatch(f"reconcile: table {tname} planted {want} but {status}: {found[:2000]}")
                how, key = want
                diff = tr.get("diff") or {}
                counts = {k: diff.get(f"{k}_count") for k in ("missing", "extra", "changed", "duplicate_source", "duplicate_target")}
                expect = {k: 0 for k in counts}
                expect["missing" if how == "delete" else "changed"] = 1
                listed = diff.get("missing" if how == "delete" else "changed") or []
                t = next(x for x in tables if x.target == tname)
                plain = len(key) == 1 and t.keys[0][1].kind != "date"
                if counts != expect or (plain and json.dumps(key[0]) not in json.dumps(listed)):
                    raise Mismatch(f"reconcile: table {tname} planted {want}, found {counts}: {json.dumps(diff)[:2000]}")
                log.append(f"reconcile found {tname}: {counts} {listed}")
    if rnd.random() < float(os.environ.get("SYNC_MODEL_BAD", "0.5")):
        bad_target(rnd, sf, sfdb, pgdb, seed, workdir, log)
    subprocess.run(PSQL + ["-d", "postgres", "-c", f"DROP DATABASE IF EXISTS {pgdb}"], env=ENV, capture_output=True)


def where_run(opt, tables, sf, sfdb, pgdb, cfg, workdir, log, night):
    """Sometimes, before a night: damage target rows inside a key range, then
    `thaw run --table T --where '<first key> >= <literal>'` must restore exactly
    them (docs/sync.md §2, `--where`) and leave the other tables alone. Not
    for a `truncate_onstart` table (a filtered load cannot replace a table).
    Drawn from its own generator (`opt`), so the nights' draws are unchanged."""
    if opt.random() >= 0.3:
        return
    # (nor for an insert-only table: a deleted row comes back with the source's current values, which the
    # model's record of each key's first copy does not follow)
    candidates = [t for t in tables if not t.truncate and not t.insert_only and t.next_key > 0]
    if not candidates:
        return
    t = opt.choice(candidates)
    (k, kty) = t.keys[0]
    i = opt.randrange(t.next_key)
    sf_lit = t.key_literals(i)[0]
    pg_col = qi(t.tname[k])
    if kty.kind == "text":  # byte order on both sides (DuckDB and Snowflake compare the UTF-8 bytes)
        pg_pred = f'{pg_col} COLLATE "C" >= {pl(key_text(i, 0))}'
    elif kty.kind == "date":
        pg_pred = f"{pg_col} >= {sf_lit}::date"
    else:
        pg_pred = f"{pg_col} >= {sf_lit}"
    target = f"public.{qi(t.target)}"
    # Damage: two rows inside the range deleted and one value of another row inside it changed; other tables untouched.
    pg(pgdb, f"DELETE FROM {target} WHERE ctid IN (SELECT ctid FROM {target} WHERE {pg_pred} LIMIT 2)")
    compared = t.compared_values()
    if compared:
        n = qi(t.tname[opt.choice(compared)[0]])
        pg(pgdb, f"UPDATE {target} SET {n} = CASE WHEN {n} IS NULL THEN (SELECT {n} FROM {target} WHERE {n} IS NOT NULL LIMIT 1) END "
                 f"WHERE ctid IN (SELECT ctid FROM {target} WHERE {pg_pred} LIMIT 1)")
    predicate = f"{qi(k)} >= {sf_lit}"
    log.append(f"night {night}: --table {t.source!r} --where {predicate!r} after damaging rows inside it")
    before = {x.target: sorted(map(repr, x.target_rows(pgdb))) for x in tables if x is not t}
    run_thaw(cfg, workdir, ["--table", t.source, "--where", predicate], f"night {night}: --where run")
    t.compare(sf, sfdb, pgdb, f"after the --where run of night {night}")
    for x in tables:
        if x is not t and sorted(map(repr, x.target_rows(pgdb))) != before[x.target]:
            raise Mismatch(f"night {night}: the --where run of {t.source!r} changed table {x.target!r}")


# Target types each source kind can go into (docs/sync.md §5.2; `encode::supported_targets`).
SUPPORTED = {
    "number": {"numeric", "int8", "int4", "int2", "float8", "float4", "bool", "text", "varchar", "bpchar"},
    "float": {"float8", "float4", "numeric"},
    "text": {"text", "varchar", "bpchar", "uuid", "json", "jsonb", "int8", "int4", "int2", "numeric"},
    "bool": {"bool", "text", "varchar", "bpchar"},
    "date": {"date", "timestamp", "timestamptz", "text", "varchar", "bpchar"},
    "time": {"time", "text", "varchar", "bpchar"},
    "ntz": {"timestamp", "timestamptz", "date", "text", "varchar", "bpchar"},
    "ltz": {"timestamptz", "timestamp", "date", "text", "varchar", "bpchar"},
    "tz": {"timestamptz", "timestamp", "date", "text", "varchar", "bpchar"},
    "binary": {"bytea", "text", "varchar", "bpchar"},
    "variant": {"jsonb", "json", "text", "varchar", "bpchar"},
    "object": {"jsonb", "json", "text", "varchar", "bpchar"},
    "array": {"jsonb", "json", "text", "varchar", "bpchar"},
}
RETYPES = [Ty("float", "FLOAT"), Ty("bool", "BOOLEAN"), Ty("date", "DATE"), Ty("time", "TIME(3)", scale=3),
           Ty("binary", "BINARY"), Ty("variant", "VARIANT"), Ty("number", "NUMBER(10,0)", p=10, s=0)]
DRIFT_NAMES = ["Added", "neu Spalte", "ÄNDERUNG", 'Add"Q', "select", "x y", "Late Col"]


def drift_night(dr, tables, sf, sfdb, pgdb, log, night):
    """Sometimes, between nights: change Snowflake tables' columns (docs/sync.md §3.6) —
    add a column (old rows given a value or left NULL), drop one, retype one (to a
    type its target column cannot take), rename one (a drop and an add). Returns the
    events `(table, kind, column)` that `drift_errors` expects thaw to refuse or take.
    Drawn from its own generator (`dr`), so the nights' draws stay those of the seeds before it."""
    events = []
    if dr.random() >= float(os.environ.get("SYNC_MODEL_DRIFT", "0.35")):
        return events, dr
    for t in tables:
        if dr.random() < 0.4:
            continue
        droppable = [c for c in t.values if c is not t.chunk and c[0] not in t.more_excluded]
        kind = dr.choice(["add", "add", "drop", "retype", "rename"])
        if kind != "add" and not droppable:
            kind = "add"
        fq = t.fq(sfdb)
        taken = {n.lower() for n in list(t.tname) + list(t.tname.values())}

        def fresh():
            while True:
                n = f"{dr.choice(DRIFT_NAMES)} {night}{dr.randint(0, 99)}"
                if n.lower() not in taken:
                    taken.add(n.lower())
                    return n

        def add_column(name, ty, fill):
            sf.q(f"ALTER TABLE {fq} ADD COLUMN {qi(name)} {ty.decl}")
            keys = set(t.source_rows(sf, sfdb))
            fill()
            t.values.append([name, ty])
            t.added.add(name)
            t.absent.add(name)  # until a run adds it to the target (drift_errors)
            t.targets[name], t.tname[name] = ty.natural(), name
            t.set_columns()
            if t.watermark and not t.truncate and not t.insert_only and keys:
                t.lenient[name] = keys
            events.append((t, "add", name))

        def drop_column(c):
            sf.q(f"ALTER TABLE {fq} DROP COLUMN {qi(c[0])}")
            t.values.remove(c)
            t.set_columns()
            t.lenient.pop(c[0], None)
            events.append((t, "drop" if c[0] != t.excluded else "drop excluded", c[0]))

        if kind == "add":
            ty = rand_type(dr)
            name = fresh()

            def fill_values():
                if dr.random() < 0.7:
                    sf.q(f"UPDATE {fq} SET {qi(name)} = {ty.literal(dr)}")
                for _ in range(dr.randint(0, 3) if t.next_key else 0):
                    lit = "NULL" if dr.random() < 0.3 else ty.literal(dr)
                    sf.q(f"UPDATE {fq} SET {qi(name)} = {lit} WHERE {t.where_key(dr.randrange(t.next_key))}")
            add_column(name, ty, fill_values)
            log.append(f"night {night}: drift {t.source!r}: added {name!r} {ty.decl} (schema_evolution {t.evolution})")
        elif kind == "drop":
            c = dr.choice(droppable)
            drop_column(c)
            log.append(f"night {night}: drift {t.source!r}: dropped {c[0]!r}")
        elif kind == "retype":
            base = {c[0]: t.targets[c[0]].split("(")[0] for c in droppable}
            fits = [(c, ty) for c in droppable for ty in RETYPES if base[c[0]] not in SUPPORTED[ty.kind] and c[0] != t.excluded]
            if not fits:
                continue
            c, ty = dr.choice(fits)
            sf.q(f"ALTER TABLE {fq} DROP COLUMN {qi(c[0])}")
            sf.q(f"ALTER TABLE {fq} ADD COLUMN {qi(c[0])} {ty.decl}")
            sf.q(f"UPDATE {fq} SET {qi(c[0])} = {ty.literal(dr)}")
            t.values[t.values.index(c)] = [c[0], ty]
            t.set_columns()
            t.lenient.pop(c[0], None)
            events.append((t, "retype", c[0]))
            log.append(f"night {night}: drift {t.source!r}: retyped {c[0]!r} {c[1].decl} -> {ty.decl} (target {t.targets[c[0]]})")
        else:
            c = dr.choice(droppable)
            name = fresh()
            add_column(name, c[1], lambda: sf.q(f"UPDATE {fq} SET {qi(name)} = {qi(c[0])}"))
            drop_column(c)
            log.append(f"night {night}: drift {t.source!r}: renamed {c[0]!r} to {name!r}")
    return events, dr


def target_columns(pgdb, t):
    return pg_rows(pgdb, "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                         f"{pl('public.' + qi(t.target))}::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")


def run_count(pgdb):
    return pg_rows(pgdb, "SELECT count(*) FROM migration_status.migration_runs")[0][0]


def drift_errors(drifted, tables, sf, sfdb, pgdb, cfg, workdir, log, night, args):
    """The runs the night's drift makes thaw refuse (docs/sync.md §3.6): a new column
    without `"add_columns"` (exit 2, the `ALTER TABLE` to run), a dropped or retyped
    column (exit 2, named) — each time every target as it was and no run recorded.
    Each error the model then resolves as the message suggests: the new column
    added by `"schema_evolution": "add_columns"` or listed in `exclude_columns`, a
    dropped or retyped one listed in `exclude_columns` (its target column PostgreSQL's
    from then on, no longer compared). Returns the tables that drifted."""
    events, dr = drifted

    def refused(e):
        t, kind, name = e
        if name in t.more_excluded or kind == "drop excluded":
            return False
        return kind != "add" or t.evolution != "add_columns"

    for _ in range(10):
        errors = [e for e in events if refused(e)]
        if not errors:
            break
        before = {t.source: (sorted(map(repr, t.target_rows(pgdb))), target_columns(pgdb, t)) for t in tables}
        runs = run_count(pgdb)
        rc, out = thaw("run", "-c", cfg, "--no-conflicts", *args)
        named = [e for e in errors if e[2] in out]
        log.append(f"night {night}: drift run exit {rc}, named {[(e[0].source, e[1], e[2]) for e in named]}")
        if rc != 2 or not named or "panicked" in out:
            raise Mismatch(f"night {night}: drift {[(e[0].source, e[1], e[2]) for e in errors]}: thaw run exited {rc} "
                           f"(want 2 naming one of these columns):\n{out[-4000:]}")
        if any(e[1] == "add" for e in named) and "ALTER TABLE" not in out:
            raise Mismatch(f"night {night}: a new source column refused without the ALTER TABLE to run:\n{out[-3000:]}")
        for t in tables:
            if (sorted(map(repr, t.target_rows(pgdb))), target_columns(pgdb, t)) != before[t.source]:
                raise Mismatch(f"night {night}: the refused drift run changed table {t.target!r}")
        if run_count(pgdb) != runs:
            raise Mismatch(f"night {night}: the refused drift run recorded a run:\n{out[-2000:]}")
        for t, kind, name in named:
            if kind == "add" and dr.random() < 0.5:
                t.evolution = "add_columns"
            else:
                t.more_excluded.append(name)
                t.absent.add(name)
                t.lenient.pop(name, None)
            log.append(f"night {night}: resolved {kind} {name!r} of {t.source!r}: "
                       f"{'add_columns' if t.evolution == 'add_columns' and name not in t.more_excluded else 'exclude_columns'}")
        write_config(cfg, sfdb, pgdb, tables)
    else:
        raise Mismatch(f"night {night}: drift still refused after ten resolutions")
    for t, kind, name in events:  # the next run adds the new columns it is not told to skip
        if kind == "add" and name not in t.more_excluded:
            t.absent.discard(name)
    return {e[0].source for e in events}


def run_statuses(cfg):
    rc, out = thaw("status", "-c", cfg, "--json", "--limit", "50")
    if rc != 0:
        raise Mismatch(f"thaw status exited {rc}:\n{out[-2000:]}")
    return json.loads(out)["runs"]


def interfere(cr, tables, sfdb, pgdb, cfg, workdir, log, night, args):
    """Sometimes, instead of a night's run ending on its own: `kill -9` it at a random
    moment, or SIGTERM it (exit 143 and `interrupted`, or exit 0 if it had finished),
    or start a second run of the same configuration beside it (one of them refused
    with exit 1 naming the holder, docs/sync.md §6.5, or both run one after the other).
    The caller's next run must then resume or start anew and end exact (§6.2, §6.3, §6.6).
    Drawn from its own generator (`cr`)."""
    r = cr.random() * 0.35 / max(float(os.environ.get("SYNC_MODEL_INTERFERE", "0.35")), 1e-9)
    if r >= 0.35:
        return False
    cmd = [BIN, "run", "-c", cfg, "--no-conflicts", *args]

    def start():
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)

    if r < 0.25:
        sig = signal.SIGKILL if r < 0.15 else signal.SIGTERM
        delay = cr.choice([0.05, 0.3, 1.0, cr.uniform(0, 6)])
        p = start()
        try:
            out, _ = p.communicate(timeout=delay)
            log.append(f"night {night}: the run ended (exit {p.returncode}) before the {sig.name} at {delay:.2f} s")
            if p.returncode != 0:
                raise Mismatch(f"night {night}: thaw run exited {p.returncode}:\n{out[-4000:]}")
            return True
        except subprocess.TimeoutExpired:
            p.send_signal(sig)
            out, _ = p.communicate(timeout=600)
        log.append(f"night {night}: {sig.name} after {delay:.2f} s: exit {p.returncode}")
        runs = run_statuses(cfg)
        if sig == signal.SIGKILL:
            alive = [x for x in runs if x["status"] in ("planning", "running") and x.get("alive") is not False]
            if alive:
                raise Mismatch(f"night {night}: after kill -9, runs still shown alive: {json.dumps(alive)[:2000]}")
            return True
        if p.returncode == 0:
            return True
        ids = re.findall(r"run ([0-9a-f]{8}-[0-9a-f-]{27})", out)
        if p.returncode == 143 and not ids and "no run was recorded" in out:  # stopped before plan recorded it
            return True
        if p.returncode != 143 or "panicked" in out or not ids:
            raise Mismatch(f"night {night}: SIGTERM: thaw run exited {p.returncode} (want 143 naming the run):\n{out[-4000:]}")
        got = {x["run_id"]: x for x in runs}.get(ids[-1])
        if got is None or got["status"] != "interrupted":
            raise Mismatch(f"night {night}: SIGTERM: run {ids[-1]} recorded {got and got['status']}, want interrupted:\n{out[-3000:]}")
        return True
    first = start()
    time.sleep(cr.choice([0, 0.2, 0.6, 1.5]))
    second = start()
    outs = [p.communicate(timeout=900)[0] for p in (first, second)]
    rcs = [first.returncode, second.returncode]
    log.append(f"night {night}: two runs at once: exits {rcs}")
    for i, (rc, out) in enumerate(zip(rcs, outs)):
        other = (first, second)[1 - i]
        if rc == 0:
            continue
        if rc != 1 or rcs[1 - i] != 0 or "another run is writing" not in out or f"pid {other.pid}" not in out:
            raise Mismatch(f"night {night}: two runs at once: exits {rcs}; run {i + 1} (want 0, or 1 naming the other, "
                           f"pid {other.pid}):\n{out[-3000:]}")
    return True


NARROW = [  # (Snowflake type, a value that does not fit, the target type)
    (Ty("text", "VARCHAR(20)", n=20), "'abcdefghij'", "varchar(3)"),
    (Ty("number", "NUMBER(10,0)", p=10, s=0), "70000", "int2"),
    (Ty("number", "NUMBER(10,3)", p=10, s=3), "1.125", "numeric(10,2)"),
    (Ty("number", "NUMBER(18,0)", p=18, s=0), "9007199254740993", "float8"),
    (Ty("float", "FLOAT"), "CAST('0.125' AS FLOAT)", "numeric(10,2)"),
    (Ty("text", "VARCHAR"), "'not json'", "jsonb"),
    (Ty("text", "VARCHAR"), "'nope'", "uuid"),
    (Ty("text", "VARCHAR"), "'12.5'", "int4"),
    (Ty("ntz", "TIMESTAMP_NTZ(6)", scale=6), "'2024-01-02 03:04:05'", "date"),
    (Ty("number", "NUMBER(5,0)", p=5, s=0), "2", "bool"),
]


def bad_target(rnd, sf, sfdb, pgdb, seed, workdir, log):
    """A table whose target takes one column in a refused type (exit 2, nothing written) or in a
    checked-narrowing type one value does not fit (exit 1 naming table, column and key; the chunk not written)."""
    refused = rnd.random() < 0.5
    if refused:
        ty = rand_type(rnd)
        bad, target_type = ty.literal(rnd), rnd.choice(ty.refused())
    else:
        ty, bad, target_type = rnd.choice(NARROW)
    t = Table(random.Random(seed * 7 + 1), seed, 9)
    t.source, t.target = f"Bad {'Refused' if refused else 'Narrow'} {seed}", f"bad target {seed}"
    t.keys = [["Key Col", KEY_TYPES[0]]]
    t.values = [["Odd Col", ty]]
    t.watermark, t.chunk, t.strategy, t.create, t.batch, t.propagate, t.row_hashes = None, None, None, False, 100000, False, False
    t.filter, t.insert_only, t.truncate, t.excluded, t.staged = None, False, False, None, False
    t.columns = t.keys + t.values
    t.targets = {"Key Col": "int8", "Odd Col": target_type}
    t.tname, t.mapping = {"Key Col": "Key Col", "Odd Col": "Odd Col"}, {}
    t.create_source(sf, sfdb)
    sf.q(f"INSERT INTO {t.fq(sfdb)} (\"Key Col\", \"Odd Col\") SELECT 4242, {bad}")
    t.create_target(pgdb)
    pg(pgdb, f"INSERT INTO public.{qi(t.target)} (\"Key Col\") VALUES (-1)")
    before = t.target_rows(pgdb)
    cfg = os.path.join(workdir, "bad.json")
    write_config(cfg, sfdb, pgdb, [t])
    rc, out = thaw("run", "-c", cfg, "--no-conflicts")
    log.append(f"bad target: {ty.decl} {bad} into {target_type}: exit {rc}")
    want_rc = 2 if refused else 1
    named = [t.source, "Odd Col"] + ([] if refused else ["4242"])
    missing = [n for n in named if n not in out]
    if rc != want_rc or missing or "panicked" in out:
        raise Mismatch(f"{ty.decl} {bad} into {target_type}: exit {rc} (want {want_rc}), not named: {missing}\n{out[-3000:]}")
    if t.target_rows(pgdb) != before:
        raise Mismatch(f"{ty.decl} {bad} into {target_type}: the target changed: {t.target_rows(pgdb)}")


def main():
    if sys.argv[1:] == ["--ci"]:
        first, count, nights = CI_SEEDS
        os.environ.setdefault("SYNC_MODEL_BAD", "1")
    else:
        first, count = int(sys.argv[1]), int(sys.argv[2])
        nights = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    bad = 0
    for seed in range(first, first + count):
        log = []
        try:
            seed_run(seed, nights, log)
            print(f"seed {seed}: ok", flush=True)
            if os.environ.get("SYNC_MODEL_VERBOSE"):
                print("\n".join(" " + line[:300] for line in log), flush=True)
        except (Mismatch, snowflake.connector.errors.Error) as e:
            bad += 1
            print(f"seed {seed}: DIFFERENCE\n" + "\n".join(" " + line for line in log) + f"\n {e}", flush=True)
            if bad >= 3:
                break
    print("done, failures:", bad)
    sys.exit(1 if bad else 0)


# The seeds `make test` runs (`--ci`): first seed, count, nights.
# About 15 s per seed with a debug build at load 9; every CI seed also runs
# the refused / too-narrow target case.
CI_SEEDS = (1, 4, 1)

if __name__ == "__main__":
    main()
