"""Stages, unload (`COPY INTO @stage`) and `LIST @stage` for thaw's Snowflake
emulator (docs/emulator.md §12). fakesnow has no unload; this module gives
the staged-Parquet path (docs/sync.md §13) something real to run against.

Statements handled here (case-insensitive, one per request, optional `;`):

    CREATE [OR REPLACE] STAGE [IF NOT EXISTS] [db.[schema.]]name
        URL = 's3://bucket/prefix/'
        [STORAGE_INTEGRATION = integ | CREDENTIALS = (AWS_KEY_ID = '…' AWS_SECRET_KEY = '…')]
        [FILE_FORMAT = (TYPE = PARQUET …)]
    DROP STAGE [IF EXISTS] name
    COPY INTO @name[/path/[file_prefix]]
        FROM ( SELECT … ) | FROM table
        FILE_FORMAT = (TYPE = PARQUET [COMPRESSION = AUTO|SNAPPY|ZSTD|NONE])
        [MAX_FILE_SIZE = bytes] [HEADER = TRUE|FALSE] [OVERWRITE = TRUE|FALSE]
        [SINGLE = TRUE|FALSE] [DETAILED_OUTPUT = TRUE|FALSE]
    LIST @name[/path] [PATTERN = 'regex']        (also `LS @…`)

Stages are remembered per database and schema (the session's current ones
for an unqualified name) for the life of the server. The stage's URL names
an S3 bucket on the harness's S3 server (env THAW_S3_ENDPOINT, credentials
from the AWS_* variables); STORAGE_INTEGRATION and CREDENTIALS are accepted
and recorded, never checked.

Unload: the SELECT runs in the session's DuckDB (through fakesnow, so it is
Snowflake SQL), DuckDB writes Parquet files (`COPY … TO … (FORMAT PARQUET)`)
into a temporary directory, and they are uploaded with boto3. When the whole
result is larger than MAX_FILE_SIZE (default 16777216, like Snowflake), rows
are split evenly into ceil(size / MAX_FILE_SIZE) files, so each file is about
MAX_FILE_SIZE or smaller. Files are named like Snowflake's:
`<prefix>data_0_0_<n>.snappy.parquet` (`.zstd.parquet`, `.parquet` for NONE);
when the path does not end in `/` its last part replaces `data`. An empty
result writes no file. Existing objects with the names to be written fail the
statement unless OVERWRITE = TRUE, which first deletes every object under the
path (Snowflake's behaviour).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

DEFAULT_MAX_FILE_SIZE = 16 * 1024 * 1024
# Snowflake caps MAX_FILE_SIZE at 5 GB.
MAX_MAX_FILE_SIZE = 5 * 1024 * 1024 * 1024

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT}){{0,2}}"

_CREATE = re.compile(
    rf"^\s*CREATE\s+(?P<replace>OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?STAGE\s+(?P<ifnot>IF\s+NOT\s+EXISTS\s+)?"
    rf"(?P<name>{_NAME})(?P<rest>.*?)\s*;?\s*$",
    re.I | re.S,
)
_DROP = re.compile(rf"^\s*DROP\s+STAGE\s+(?P<ifexists>IF\s+EXISTS\s+)?(?P<name>{_NAME})\s*;?\s*$", re.I | re.S)
_COPY = re.compile(rf"^\s*COPY\s+INTO\s+@(?P<name>{_NAME})(?P<path>/\S*)?\s+FROM\s+(?P<rest>.*?)\s*;?\s*$", re.I | re.S)
_LIST = re.compile(
    rf"^\s*(?:LIST|LS)\s+@(?P<name>{_NAME})(?P<path>/\S*)?(?:\s+PATTERN\s*=\s*'(?P<pattern>(?:[^']|'')*)')?\s*;?\s*$",
    re.I | re.S,
)


class UnloadError(Exception):
    """A statement Snowflake would refuse; code and SQL state are Snowflake's."""

    def __init__(self, message: str, code: str = "001003", sql_state: str = "42000") -> None:
        super().__init__(message)
        self.message, self.code, self.sql_state = message, code, sql_state


@dataclass
class Stage:
    database: str | None
    schema: str | None
    name: str
    url: str
    bucket: str
    prefix: str  # "" or ends with "/"
    storage_integration: str | None = None
    file_format: str | None = None
    credentials: bool = False

    @property
    def qualified(self) -> str:
        return ".".join(p for p in (self.database, self.schema, self.name) if p)


@dataclass
class UnloadResult:
    rows_unloaded: int
    input_bytes: int
    output_bytes: int
    files: list[tuple[str, int, int]] = field(default_factory=list)  # (name relative to the stage, size, rows)


_stages: dict[tuple[str | None, str | None, str], Stage] = {}
_lock = threading.Lock()


# --- names and options ----------------------------------------------------------
def _ident(part: str) -> str:
    part = part.strip()
    if part.startswith('"'):
        return part[1:-1].replace('""', '"')
    return part.upper()


def _split_name(name: str) -> list[str]:
    return [_ident(p) for p in re.findall(_IDENT, name)]


def _resolve(name: str, database: str | None, schema: str | None) -> tuple[str | None, str | None, str]:
    parts = _split_name(name)
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) == 2:
        return database, parts[0], parts[1]
    return database, schema, parts[0]


def _matching_paren(text: str, start: int) -> int:
    """Index of the `)` closing the `(` at `start`, skipping quoted strings and identifiers."""
    depth, i = 0, start
    while i < len(text):
        c = text[i]
        if c in ("'", '"'):
            end = text.find(c, i + 1)
            while end != -1 and end + 1 < len(text) and text[end + 1] == c:  # doubled quote
                end = text.find(c, end + 2)
            if end == -1:
                break
            i = end
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise UnloadError("SQL compilation error: unbalanced parentheses", "001003", "42000")


def _options(text: str) -> dict[str, str]:
    """`KEY = value KEY2 = (…) …` → {KEY: value}; values keep their parentheses, quotes are removed."""
    options: dict[str, str] = {}
    i = 0
    text = text.strip()
    while i < len(text):
        m = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*", re.S).match(text, i)
        if not m:
            raise UnloadError(f"SQL compilation error: syntax error near '{text[i:i + 40].strip()}'", "001003", "42000")
        key, i = m.group(1).upper(), m.end()
        if i < len(text) and text[i] == "(":
            end = _matching_paren(text, i)
            value, i = text[i : end + 1], end + 1
        elif i < len(text) and text[i] == "'":
            end = i + 1
            while True:
                end = text.find("'", end)
                if end == -1:
                    raise UnloadError("SQL compilation error: unterminated string", "001003", "42000")
                if end + 1 < len(text) and text[end + 1] == "'":
                    end += 2
                    continue
                break
            value, i = text[i + 1 : end].replace("''", "'"), end + 1
        else:
            m2 = re.compile(r"[^\s]+").match(text, i)
            value, i = m2.group(0), m2.end()
        options[key] = value
        while i < len(text) and (text[i].isspace() or text[i] == ","):
            i += 1
    return options


def _bool(value: str, key: str) -> bool:
    v = value.strip().strip("'").upper()
    if v in ("TRUE", "1"):
        return True
    if v in ("FALSE", "0"):
        return False
    raise UnloadError(f"SQL compilation error: invalid value [{value}] for parameter '{key}'", "001008", "22023")


def _parse_s3_url(url: str) -> tuple[str, str]:
    m = re.fullmatch(r"s3://([a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])(?:/(.*))?", url.strip())
    if not m:
        raise UnloadError(f"SQL compilation error: invalid URL '{url}': only s3://bucket/prefix/ is supported by the emulator",
                          "001003", "42000")
    prefix = m.group(2) or ""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return m.group(1), prefix


# --- S3 -----------------------------------------------------------------------------
def _s3() -> Any:
    import boto3  # only when a stage is used: boto3 is slow to import

    endpoint = os.environ.get("THAW_S3_ENDPOINT")
    if not endpoint:
        raise UnloadError("emulator: THAW_S3_ENDPOINT is not set (start the emulator through tests/harness.py)",
                          "000603", "XX000")
    return boto3.client("s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_REGION", "us-east-1"))


def _stage_for(name: str, database: str | None, schema: str | None) -> Stage:
    key = _resolve(name, database, schema)
    with _lock:
        stage = _stages.get(key)
    if stage is None:
        qualified = ".".join(p for p in key if p)
        raise UnloadError(f"SQL compilation error:\nStage '{qualified}' does not exist or not authorized.", "002003", "02000")
    return stage


def _keys_under(client: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        objects.extend(page.get("Contents", []))
    return objects


# --- statements -----------------------------------------------------------------------
def handles(sql: str) -> bool:
    """Whether `sql` is one of this module's statements."""
    return any(p.match(sql) for p in (_CREATE, _DROP, _COPY, _LIST))


def execute(sql: str, run_select: Any, database: str | None, schema: str | None) -> tuple[list[str], list[str], list[list[Any]]]:
    """Run one statement. `run_select(sql)` runs Snowflake SQL in the session and
    returns a pyarrow Table. Returns (column names, Snowflake column types, rows)."""
    if m := _CREATE.match(sql):
        return _create(m, database, schema)
    if m := _DROP.match(sql):
        key = _resolve(m.group("name"), database, schema)
        with _lock:
            existed = _stages.pop(key, None)
        if existed is None and not m.group("ifexists"):
            raise UnloadError(f"SQL compilation error:\nStage '{'.'.join(p for p in key if p)}' does not exist or not authorized.",
                              "002003", "02000")
        return ["status"], ["TEXT"], [[f"{key[2]} successfully dropped."]]
    if m := _COPY.match(sql):
        return _copy(m, run_select, database, schema)
    if m := _LIST.match(sql):
        return _list(m, database, schema)
    raise UnloadError("emulator: not an unload statement", "000603", "XX000")


def _create(m: re.Match, database: str | None, schema: str | None) -> tuple[list[str], list[str], list[list[Any]]]:
    key = _resolve(m.group("name"), database, schema)
    options = _options(m.group("rest"))
    unknown = set(options) - {"URL", "STORAGE_INTEGRATION", "CREDENTIALS", "FILE_FORMAT", "COMMENT", "ENCRYPTION"}
    if unknown:
        raise UnloadError(f"SQL compilation error: the emulator does not support stage option(s) {sorted(unknown)}", "001003", "42000")
    if "URL" not in options:
        raise UnloadError("SQL compilation error: the emulator supports external S3 stages only (URL = 's3://bucket/prefix/')",
                          "001003", "42000")
    if "STORAGE_INTEGRATION" in options and "CREDENTIALS" in options:
        raise UnloadError("SQL compilation error: STORAGE_INTEGRATION and CREDENTIALS cannot both be specified", "001003", "42000")
    bucket, prefix = _parse_s3_url(options["URL"])
    stage = Stage(database=key[0], schema=key[1], name=key[2], url=options["URL"], bucket=bucket, prefix=prefix,
                  storage_integration=options.get("STORAGE_INTEGRATION"), file_format=options.get("FILE_FORMAT"),
                  credentials="CREDENTIALS" in options)
    with _lock:
        if key in _stages and not m.group("replace"):
            if m.group("ifnot"):
                return ["status"], ["TEXT"], [[f"{key[2]} already exists, statement succeeded."]]
            raise UnloadError(f"SQL compilation error:\nObject '{key[2]}' already exists.", "002002", "42710")
        _stages[key] = stage
    return ["status"], ["TEXT"], [[f"Stage area {key[2]} successfully created."]]


def _file_format(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    if not (text.startswith("(") and text.endswith(")")):
        raise UnloadError("SQL compilation error: FILE_FORMAT must be ( TYPE = PARQUET … )", "001003", "42000")
    return _options(text[1:-1])


def _copy(m: re.Match, run_select: Any, database: str | None, schema: str | None) -> tuple[list[str], list[str], list[list[Any]]]:
    import duckdb  # noqa: PLC0415

    stage = _stage_for(m.group("name"), database, schema)
    rest = m.group("rest")
    if rest.startswith("("):
        end = _matching_paren(rest, 0)
        select, opts_text = rest[1:end], rest[end + 1 :]
    else:
        name_match = re.compile(_NAME).match(rest)
        if not name_match:
            raise UnloadError("SQL compilation error: COPY INTO @stage needs FROM ( SELECT … ) or FROM table", "001003", "42000")
        select, opts_text = f"SELECT * FROM {name_match.group(0)}", rest[name_match.end() :]
    options = _options(opts_text)
    unknown = set(options) - {"FILE_FORMAT", "MAX_FILE_SIZE", "HEADER", "OVERWRITE", "SINGLE", "DETAILED_OUTPUT"}
    if unknown:
        raise UnloadError(f"SQL compilation error: the emulator does not support copy option(s) {sorted(unknown)}", "001003", "42000")
    fmt = _file_format(options.get("FILE_FORMAT") or stage.file_format)
    fmt_unknown = set(fmt) - {"TYPE", "COMPRESSION"}
    if fmt_unknown:
        raise UnloadError(f"SQL compilation error: the emulator does not support file format option(s) {sorted(fmt_unknown)}",
                          "001003", "42000")
    if fmt.get("TYPE", "").upper() != "PARQUET":
        raise UnloadError("SQL compilation error: the emulator unloads FILE_FORMAT = (TYPE = PARQUET) only", "001003", "42000")
    compression = fmt.get("COMPRESSION", "AUTO").upper()
    codec, suffix = {"AUTO": ("snappy", ".snappy.parquet"), "SNAPPY": ("snappy", ".snappy.parquet"),
                     "ZSTD": ("zstd", ".zstd.parquet"), "NONE": ("uncompressed", ".parquet")}.get(compression, (None, None))
    if codec is None:
        raise UnloadError(f"SQL compilation error: invalid value [{compression}] for parameter 'COMPRESSION'", "001008", "22023")
    max_file_size = int(options.get("MAX_FILE_SIZE", DEFAULT_MAX_FILE_SIZE))
    if not 1 <= max_file_size <= MAX_MAX_FILE_SIZE:
        raise UnloadError(f"SQL compilation error: invalid value [{max_file_size}] for parameter 'MAX_FILE_SIZE'", "001008", "22023")
    header = _bool(options.get("HEADER", "FALSE"), "HEADER")
    overwrite = _bool(options.get("OVERWRITE", "FALSE"), "OVERWRITE")
    single = _bool(options.get("SINGLE", "FALSE"), "SINGLE")
    detailed = _bool(options.get("DETAILED_OUTPUT", "FALSE"), "DETAILED_OUTPUT")

    path = (m.group("path") or "/").lstrip("/")
    directory, _, file_prefix = path.rpartition("/")
    directory = directory + "/" if directory else ""
    if single:
        base_names = [file_prefix or "data" + suffix]
    else:
        base_names = None  # decided after splitting
    name_stem = file_prefix or "data"

    table = run_select(select)
    if not header:  # Snowflake names Parquet columns _COL_0, _COL_1, … without HEADER = TRUE
        table = table.rename_columns([f"_COL_{i}" for i in range(table.num_columns)])
    rows = table.num_rows
    client = _s3()
    key_prefix = stage.prefix + directory
    written: list[tuple[str, int, int]] = []
    with tempfile.TemporaryDirectory(prefix="thaw-unload-") as tmp:
        con = duckdb.connect()
        try:
            def write(part: Any, target: Path) -> int:
                con.register("unload_part", part)
                try:
                    quoted = str(target).replace("'", "''")
                    con.execute(f"COPY (SELECT * FROM unload_part) TO '{quoted}' (FORMAT PARQUET, COMPRESSION {codec})")
                finally:
                    con.unregister("unload_part")
                return target.stat().st_size

            parts: list[tuple[Any, Path]] = []
            if rows > 0:
                whole = Path(tmp) / "whole.parquet"
                size = write(table, whole)
                n_files = 1 if single or size <= max_file_size else min(rows, math.ceil(size / max_file_size))
                if n_files == 1:
                    parts.append((table, whole))
                else:
                    per_file = math.ceil(rows / n_files)
                    for i, offset in enumerate(range(0, rows, per_file)):
                        target = Path(tmp) / f"part{i}.parquet"
                        write(table.slice(offset, per_file), target)
                        parts.append((table.slice(offset, per_file), target))
            names = base_names if base_names else [f"{name_stem}_0_0_{i}{suffix}" for i in range(len(parts))]
            if parts:
                existing = {o["Key"] for o in _keys_under(client, stage.bucket, key_prefix + (file_prefix if single else ""))}
                if overwrite:
                    doomed = [o["Key"] for o in _keys_under(client, stage.bucket, key_prefix)]
                    for start in range(0, len(doomed), 1000):
                        client.delete_objects(Bucket=stage.bucket,
                                              Delete={"Objects": [{"Key": k} for k in doomed[start : start + 1000]]})
                else:
                    clash = sorted(existing & {key_prefix + n for n in names})
                    if clash:
                        raise UnloadError(
                            f"Files already existing at the unload destination: {stage.url.rstrip('/')}/{directory}. "
                            "Use overwrite option to force unloading.", "001030", "22000")
            for (part, target), name in zip(parts, names):
                client.upload_file(str(target), stage.bucket, key_prefix + name)
                written.append((directory + name, target.stat().st_size, part.num_rows))
        finally:
            con.close()
    output_bytes = sum(size for _, size, _ in written)
    input_bytes = int(table.nbytes)
    if detailed:
        return (["FILE_NAME", "FILE_SIZE", "ROW_COUNT"], ["TEXT", "NUMBER", "NUMBER"],
                [[name, size, n] for name, size, n in written])
    return (["rows_unloaded", "input_bytes", "output_bytes"], ["NUMBER", "NUMBER", "NUMBER"],
            [[rows, input_bytes, output_bytes]])


def _list(m: re.Match, database: str | None, schema: str | None) -> tuple[list[str], list[str], list[list[Any]]]:
    stage = _stage_for(m.group("name"), database, schema)
    path = (m.group("path") or "/").lstrip("/")
    pattern = re.compile(m.group("pattern").replace("''", "'")) if m.group("pattern") is not None else None
    client = _s3()
    rows = []
    for obj in sorted(_keys_under(client, stage.bucket, stage.prefix + path), key=lambda o: o["Key"]):
        url = f"s3://{stage.bucket}/{obj['Key']}"
        if pattern is not None and not pattern.fullmatch(url) and not pattern.fullmatch(obj["Key"]):
            continue
        etag = obj["ETag"].strip('"')
        rows.append([url, int(obj["Size"]), etag, format_datetime(obj["LastModified"].astimezone(timezone.utc), usegmt=True)])
    return ["name", "size", "md5", "last_modified"], ["TEXT", "NUMBER", "TEXT", "TEXT"], rows
