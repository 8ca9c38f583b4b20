#!/usr/bin/env python3
"""The legacy copy path (Scripts07/DataMigration v2.3), re-implemented as the
sync benchmark's baseline. Not product code.

    legacy_copy.py --config examples/config.json --table FACTVISITCALLPERFORMANCE_CR \
        --pg-database DB [--batch-size 25000] [--threads 4] [--incremental [--upsert-method staging|execute-batch]]

Copies one table of a thaw/legacy config.json from the Snowflake emulator into
PostgreSQL the way docs/sync.md §11:

* plan: one aggregate query "COUNT(*) per chunking column::DATE" (the date-group
  strategy), dates packed greedily into chunks of at most --batch-size rows; a date
  with more rows becomes LIMIT/OFFSET sub-chunks ordered by the chunking and
  uniqueness columns;
* per chunk, in a thread pool: status row `in_progress` (new PostgreSQL connection),
  `SELECT *` with the chunk filter, `fetchall()`, pandas DataFrame, keep only the
  columns whose names equal target columns, NaT -> None, tab-separated CSV in a
  StringIO buffer (`\\N` for NULL), `COPY ... FROM STDIN` in one transaction on a
  new connection (synchronous_commit off + the legacy session settings), status
  `completed` with rows_copied (new connection again);
* the initial full load is all COPY (empty target, uniqueness columns configured).

With --incremental, the legacy's incremental run (docs/sync.md §11.4, §11.5):

* the target's maximum `target_watermark` (one table-wide MAX query);
* the same date-group plan over only the rows with `source_watermark > '<max>'`
  (the filter is added to the count query and to every chunk's SELECT);
* per chunk: fetchall → pandas → CSV as above, `COPY` into a temporary staging
  table (`LIKE` the target), then one `INSERT … SELECT … ON CONFLICT
  (uniqueness_columns) DO UPDATE SET <every other column> = excluded.…` with the
  legacy's guard "target watermark < incoming watermark OR target watermark IS
  NULL", in the chunk's transaction. That is deliberate difference 6 below:
  the legacy sends the upsert with psycopg2 `execute_batch` (pages of 1 000
  rows), which `--upsert-method execute-batch` reproduces; the default staging
  COPY is faster, so the baseline errs in the legacy's favour.

Deliberate differences from the legacy, each in the baseline's favour or needed to
run at all:
1. One Snowflake session per worker thread. The legacy shares one connection
   between threads; the emulator answers concurrent queries on one session with
   "connection is busy" (docs/emulator.md §1), real Snowflake queues them.
2. Integer target columns: pandas turns an integer column containing a NULL into
   float64 and renders `7000010.0`, which `int8` rejects (docs/sync.md §11.5,
   known bug 10; the seeded FACT table has such columns). Those columns are cast
   to pandas' nullable `Int64` before rendering. `--strict-legacy-rendering`
   skips that cast and reproduces the failure.
3. Password login with TLS verified against the emulator's CA (REQUESTS_CA_BUNDLE)
   instead of key-pair auth with `insecure_mode=True`.
4. Status rows go to a `legacy_migration_status.chunk_status` table of the target
   database (the legacy's own status schema clashes with thaw's names); the
   per-call connection pattern is kept.
5. No retry decorator, no memory fallback: a failed chunk fails the run.
6. Incremental upserts go through a COPY into a staging table (see above) unless
   `--upsert-method execute-batch`; the watermark is the table-wide maximum (the
   legacy's chunk-scoped maximum costs it one more query per chunk).

Environment: THAW_SF_ACCOUNT, THAW_SF_USER, THAW_SF_PASSWORD, THAW_SF_ENDPOINT
(host:port), THAW_SF_CA_FILE (as tests/harness.py exports them); PostgreSQL from
the config's `postgres` section after `${VAR}` / `${VAR:-default}` expansion.

Prints one JSON object on stdout: rows, chunks, plan_seconds, copy_seconds,
wall_seconds, threads, batch_size, mode (full / incremental) and, for an
incremental run, watermark and upsert_method.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

# The connector's HTTP stack reads the CA bundle variable when it is imported;
# verification stays on, against the emulator's throwaway CA (this process talks
# to no other HTTPS server, so the CA replaces any bundle set in the environment).
if os.environ.get("THAW_SF_CA_FILE"):
    os.environ["REQUESTS_CA_BUNDLE"] = os.environ["THAW_SF_CA_FILE"]

import pandas as pd  # noqa: E402
import psycopg2  # noqa: E402
import psycopg2.extras  # noqa: E402
import snowflake.connector  # noqa: E402

# Legacy Postgres session settings (docs/sync.md §11.2.
PG_SESSION_SQL = (
    "SET synchronous_commit = off; SET work_mem = '256MB'; SET maintenance_work_mem = '512MB'; "
    "SET temp_buffers = '128MB'; SET effective_cache_size = '4GB'"
)
# Legacy Snowflake session parameters (docs/sync.md §11.2.
SF_SESSION_PARAMETERS = {
    "QUERY_TAG": "postgres-migration",
    "CLIENT_RESULT_PREFETCH_SLOTS": 0,
    "CLIENT_RESULT_PREFETCH_THREADS": 1,
}
# Set by --emulator-rows-per-chunk: run once on every new Snowflake session.
EMULATOR_SESSION_SQL: str | None = None
INTEGER_TYPES = {"smallint", "integer", "bigint"}
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class BenchError(Exception):
    """A setup problem; the message says what and what to do."""


def expand(text: str) -> str:
    """`${VAR}` and `${VAR:-default}` like thaw's config loader."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value:
            return value
        if m.group(2) is not None:
            return m.group(2)
        raise BenchError(f"config placeholder ${{{m.group(1)}}} is not set; run under tests/harness.py or export it")

    return PLACEHOLDER.sub(sub, text)


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class TableConfig:
    sf_table: str  # DB.SCHEMA.TABLE, quoted parts
    target: str  # "schema"."table"
    target_schema: str
    target_table: str
    source_filter: str | None
    chunk_column: str
    uniqueness: list[str]
    column_mapping: dict[str, str]
    source_watermark: str | None
    target_watermark: str | None


def load_table(config_path: str, table: str) -> tuple[dict, TableConfig]:
    config = json.loads(expand(open(config_path, encoding="utf-8").read()))
    for source in config["sources"]:
        for t in source["tables"]:
            if table in (t["source"], t["target"]):
                if not t.get("chunking_columns"):
                    raise BenchError(f"table {table} has no chunking_columns; the baseline implements the date-group strategy only")
                return config, TableConfig(
                    sf_table=".".join(quote(p) for p in (source["source_sf_database"], source["source_sf_schema"], t["source"])),
                    target=f'{quote(source["target_pg_schema"])}.{quote(t["target"])}',
                    target_schema=source["target_pg_schema"],
                    target_table=t["target"],
                    source_filter=t.get("source_filter"),
                    chunk_column=t["chunking_columns"][0],
                    uniqueness=t.get("uniqueness_columns") or [],
                    column_mapping=t.get("column_mapping") or {},
                    source_watermark=t.get("source_watermark"),
                    target_watermark=t.get("target_watermark") or t.get("source_watermark"),
                )
    raise BenchError(f"no table {table!r} in {config_path}")


def snowflake_connect() -> snowflake.connector.SnowflakeConnection:
    host, _, port = os.environ["THAW_SF_ENDPOINT"].rpartition(":")
    return snowflake.connector.connect(
        account=os.environ["THAW_SF_ACCOUNT"],
        user=os.environ["THAW_SF_USER"],
        password=os.environ["THAW_SF_PASSWORD"],
        host=host,
        port=int(port),
        protocol="https",
        session_parameters=SF_SESSION_PARAMETERS,
    )


class Legacy:
    def __init__(self, config: dict, table: TableConfig, pg_database: str, batch: int, threads: int, strict: bool,
                 upsert_method: str | None = None) -> None:
        pg = config["postgres"]
        self.pg_args = dict(host=pg["host"], port=int(pg.get("port") or 5432), user=pg["user"],
                            password=pg.get("password"), dbname=pg_database)
        self.table = table
        self.batch = batch
        self.threads = threads
        self.strict = strict
        # None: full load (COPY into the target); else incremental with this upsert.
        self.upsert_method = upsert_method
        self.watermark: str | None = None
        self.local = threading.local()
        self.sf_connections: list[snowflake.connector.SnowflakeConnection] = []
        self.lock = threading.Lock()

    # --- connections -------------------------------------------------------------
    def pg(self):
        """A new connection per call, as the legacy does (docs/sync.md §L13)."""
        conn = psycopg2.connect(**self.pg_args)
        with conn.cursor() as cur:
            cur.execute(PG_SESSION_SQL)
        return conn

    def sf(self) -> snowflake.connector.SnowflakeConnection:
        conn = getattr(self.local, "sf", None)
        if conn is None:
            conn = snowflake_connect()
            if EMULATOR_SESSION_SQL:
                conn.cursor().execute(EMULATOR_SESSION_SQL)
            self.local.sf = conn
            with self.lock:
                self.sf_connections.append(conn)
        return conn

    # --- status rows ---------------------------------------------------------------
    def status(self, sql: str, params: tuple) -> None:
        conn = self.pg()
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
            conn.commit()
        finally:
            conn.close()

    def create_status_table(self) -> None:
        self.status(
            "CREATE SCHEMA IF NOT EXISTS legacy_migration_status; "
            "CREATE TABLE IF NOT EXISTS legacy_migration_status.chunk_status ("
            " chunk_id int PRIMARY KEY, filter_sql text, status text, rows_copied bigint, updated_at timestamptz DEFAULT now())",
            (),
        )

    # --- plan (docs/sync.md §11.4, date groups) ------------------------------------------------------
    def where(self, chunk_filter: str) -> str:
        parts = [f"({self.table.source_filter})"] if self.table.source_filter else []
        return " WHERE " + " AND ".join(parts + [chunk_filter])

    def plan(self) -> list[str]:
        col = quote(self.table.chunk_column)
        base = f" WHERE {self.table.source_filter}" if self.table.source_filter else ""
        cur = self.sf().cursor()
        cur.execute(f"SELECT {col}::DATE AS chunk_date, COUNT(*) AS n FROM {self.table.sf_table}{base} GROUP BY 1 ORDER BY 1")
        groups = cur.fetchall()
        cur.close()
        order = ", ".join(quote(c) for c in [self.table.chunk_column, *self.table.uniqueness])
        chunks: list[str] = []
        pack: list[str] = []
        pack_rows = 0

        def flush() -> None:
            nonlocal pack, pack_rows
            if pack:
                test = f"= {pack[0]}" if len(pack) == 1 else f"IN ({', '.join(pack)})"
                chunks.append(f"SELECT * FROM {self.table.sf_table}{self.where(f'{col}::DATE {test}')}")
            pack, pack_rows = [], 0

        for day, n in groups:
            day_literal = literal(str(day)) if day is not None else None
            if day_literal is None:
                flush()
                chunks.append(f"SELECT * FROM {self.table.sf_table}{self.where(f'{col} IS NULL')}")
            elif n > self.batch:
                flush()
                for k in range(math.ceil(n / self.batch)):
                    chunks.append(f"SELECT * FROM {self.table.sf_table}{self.where(f'{col}::DATE = {day_literal}')} "
                                  f"ORDER BY {order} LIMIT {self.batch} OFFSET {k * self.batch}")
            else:
                if pack_rows + n > self.batch:
                    flush()
                pack.append(day_literal)
                pack_rows += n
        flush()
        return chunks

    # --- one chunk (docs/sync.md §11.5, COPY) -----------------------------------------------------
    def target_columns(self) -> dict[str, str]:
        conn = self.pg()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
                    "ORDER BY ordinal_position",
                    (self.table.target_schema, self.table.target_table),
                )
                columns = dict(cur.fetchall())
        finally:
            conn.close()
        if not columns:
            raise BenchError(f"target table {self.table.target} does not exist in database {self.pg_args['dbname']}; run `thaw migrate` first")
        return columns

    def copy_chunk(self, chunk_id: int, sql: str, target_columns: dict[str, str]) -> int:
        self.status("UPDATE legacy_migration_status.chunk_status SET status = 'in_progress', updated_at = now() WHERE chunk_id = %s",
                    (chunk_id,))
        cur = self.sf().cursor()
        cur.execute(sql)
        rows = cur.fetchall()
        names = [d[0] for d in cur.description]
        cur.close()
        df = pd.DataFrame(rows, columns=names)
        del rows
        df = df.rename(columns=self.table.column_mapping)
        keep = [c for c in df.columns if c in target_columns]
        df = df[keep]
        df = df.replace({pd.NaT: None})
        if not self.strict:
            for c in keep:
                if target_columns[c] in INTEGER_TYPES and df[c].dtype.kind == "f":
                    df[c] = df[c].astype("Int64")
        buffer = io.StringIO()
        df.to_csv(buffer, sep="\t", header=False, index=False, na_rep="\\N", quoting=csv.QUOTE_MINIMAL)
        buffer.seek(0)
        conn = self.pg()
        try:
            with conn.cursor() as pg_cur:
                if self.upsert_method is None:
                    pg_cur.copy_expert(
                        f"COPY {self.table.target} ({', '.join(quote(c) for c in keep)}) FROM STDIN "
                        "WITH (FORMAT csv, DELIMITER E'\\t', NULL '\\N')",
                        buffer,
                    )
                else:
                    self.upsert(pg_cur, df, keep, buffer)
            conn.commit()
        finally:
            conn.close()
        n = len(df)
        self.status("UPDATE legacy_migration_status.chunk_status SET status = 'completed', rows_copied = %s, updated_at = now() "
                    "WHERE chunk_id = %s", (n, chunk_id))
        return n

    # --- incremental (docs/sync.md §11.4, §11.5) ---------------------------------------------
    def start_incremental(self) -> None:
        """Read the target's maximum watermark and restrict the plan and every chunk to newer rows."""
        if not self.table.source_watermark or not self.table.uniqueness:
            raise BenchError("--incremental needs source_watermark and uniqueness_columns in the table's config")
        conn = self.pg()
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT MAX({quote(self.table.target_watermark)}) FROM {self.table.target}")
                (latest,) = cur.fetchone()
        finally:
            conn.close()
        if latest is None:
            raise BenchError(f"{self.table.target} is empty: an incremental run needs a full load first")
        self.watermark = str(latest)
        newer = f"{quote(self.table.source_watermark)} > {literal(self.watermark)}"
        self.table.source_filter = f"({self.table.source_filter}) AND {newer}" if self.table.source_filter else newer

    def upsert(self, cur, df: pd.DataFrame, keep: list[str], buffer: io.StringIO) -> None:
        """The legacy UPSERT of one chunk's rows, guarded by the target watermark."""
        columns = ", ".join(quote(c) for c in keep)
        keys = ", ".join(quote(c) for c in self.table.uniqueness)
        others = [c for c in keep if c not in self.table.uniqueness]
        wm = quote(self.table.target_watermark)
        action = ("DO UPDATE SET " + ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in others)
                  + f" WHERE t.{wm} < excluded.{wm} OR t.{wm} IS NULL") if others else "DO NOTHING"
        if self.upsert_method == "execute-batch":
            rows = [tuple(None if v is pd.NA or (isinstance(v, float) and math.isnan(v)) else v for v in r)
                    for r in df.itertuples(index=False, name=None)]
            psycopg2.extras.execute_batch(
                cur, f"INSERT INTO {self.table.target} AS t ({columns}) VALUES ({', '.join(['%s'] * len(keep))}) "
                     f"ON CONFLICT ({keys}) {action}", rows, page_size=1000)
            return
        cur.execute(f"CREATE TEMP TABLE legacy_staging (LIKE {self.table.target} INCLUDING DEFAULTS) ON COMMIT DROP")
        cur.copy_expert(f"COPY legacy_staging ({columns}) FROM STDIN WITH (FORMAT csv, DELIMITER E'\\t', NULL '\\N')", buffer)
        cur.execute(f"INSERT INTO {self.table.target} AS t ({columns}) SELECT {columns} FROM legacy_staging "
                    f"ON CONFLICT ({keys}) {action}")

    def run(self) -> dict:
        started = time.perf_counter()
        if self.upsert_method is not None:
            self.start_incremental()
        self.create_status_table()
        chunks = self.plan()
        conn = self.pg()
        try:
            with conn.cursor() as cur:
                cur.execute("TRUNCATE legacy_migration_status.chunk_status")
                cur.executemany("INSERT INTO legacy_migration_status.chunk_status (chunk_id, filter_sql, status) VALUES (%s, %s, 'pending') "
                                "ON CONFLICT DO NOTHING", list(enumerate(chunks)))
            conn.commit()
        finally:
            conn.close()
        planned = time.perf_counter()
        target_columns = self.target_columns()
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            counts = list(pool.map(lambda item: self.copy_chunk(item[0], item[1], target_columns), enumerate(chunks)))
        finished = time.perf_counter()
        for conn in self.sf_connections:
            conn.close()
        return {
            "rows": sum(counts),
            "chunks": len(chunks),
            "plan_seconds": round(planned - started, 3),
            "copy_seconds": round(finished - planned, 3),
            "wall_seconds": round(finished - started, 3),
            "threads": self.threads,
            "batch_size": self.batch,
            "mode": "full" if self.upsert_method is None else "incremental",
            **({"watermark": self.watermark, "upsert_method": self.upsert_method} if self.upsert_method else {}),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="config.json (legacy format)")
    parser.add_argument("--table", required=True, help="source or target table name in the config")
    parser.add_argument("--pg-database", required=True, help="target database (thaw's migrations applied)")
    parser.add_argument("--batch-size", type=int, default=25_000, help="rows per chunk (legacy production value: 25000)")
    parser.add_argument("--threads", type=int, default=4, help="worker threads (legacy parallel_threads)")
    parser.add_argument("--strict-legacy-rendering", action="store_true",
                        help="render integer columns with NULLs as pandas does (7000010.0); int8 targets reject them")
    parser.add_argument("--emulator-rows-per-chunk", type=int, default=0,
                        help="ask the emulator for chunked results of this many rows (docs/emulator.md §4; 0: its default)")
    parser.add_argument("--incremental", action="store_true",
                        help="the legacy incremental run: rows newer than the target's maximum watermark, upserted")
    parser.add_argument("--upsert-method", choices=("staging", "execute-batch"), default="staging",
                        help="incremental upsert: COPY into a staging table then INSERT … ON CONFLICT (default), "
                             "or the legacy's execute_batch of 1 000-row pages")
    args = parser.parse_args()
    if args.emulator_rows_per_chunk:
        global EMULATOR_SESSION_SQL
        EMULATOR_SESSION_SQL = f"ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = {args.emulator_rows_per_chunk}"
    try:
        config, table = load_table(args.config, args.table)
        result = Legacy(config, table, args.pg_database, args.batch_size, args.threads, args.strict_legacy_rendering,
                        args.upsert_method if args.incremental else None).run()
    except BenchError as e:
        print(f"legacy_copy: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
