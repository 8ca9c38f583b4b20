"""thaw's Snowflake emulator: fakesnow's HTTP server, corrected where it differs
from real Snowflake in ways the Rust `snowflake-api` 0.14 client cannot accept.

Run (tests/harness.py does this):
    uvicorn server:app --app-dir tests/emulator --host 127.0.0.1 --port P \
        --ssl-keyfile K --ssl-certfile C --timeout-keep-alive 75

What this module changes (see docs/emulator.md §1 for why):
1. Response fields real Snowflake sends and the client deserialises strictly:
   login `sessionId`, `masterToken`, `validityInSeconds`,
   `masterValidityInSeconds`, `sessionInfo.roleName`; query `returned`,
   `finalRoleName`, `version`; errors `age`, `internalError`, `queryId`,
   `sqlState` and an error object instead of `data: null`. Session renewal
   (`/session/token-request`) is answered too, so runs longer than the
   session validity (3600 s) keep working.
2. NULL timestamps: fakesnow builds the timestamp struct without a struct-level
   null mask, so its non-nullable children hold nulls and arrow-rs rejects the
   batch. We add the mask (and zero the hidden child slots).
3. Unhandled exceptions become Snowflake-style JSON errors (code 000603,
   internalError true) and the keep-alive connection stays open.
4. Result chunking, like real Snowflake: with more rows than the rows-per-chunk
   setting, the first rows stay inline (`rowsetBase64`) and the rest are
   listed in `chunks[]` (url, rowCount, uncompressedSize, compressedSize) and
   downloaded with GET from this server, which requires the `chunkHeaders`.
   The setting comes from env THAW_EMULATOR_ROWS_PER_CHUNK (server-wide
   default; unset or 0 = never chunk) or, per session, from the statement
   `ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = N` (answered here; 0
   switches chunking off for that session). A chunk can be downloaded once.
5. Passwords: with env THAW_EMULATOR_PASSWORD set, a password login with any
   other password fails like Snowflake (390100 "Incorrect username or password
   was specified."). Key-pair (SNOWFLAKE_JWT) logins are accepted without
   verifying the JWT.
6. Unload, which fakesnow lacks: `CREATE STAGE … URL = 's3://…'`, `DROP STAGE`,
   `COPY INTO @stage FROM (SELECT …) FILE_FORMAT = (TYPE = PARQUET …)` and
   `LIST @stage` are answered by `unload.py` against the S3 server the harness
   starts (THAW_S3_ENDPOINT). Their results are sent through fakesnow as a
   SELECT of literal rows, so they arrive as Arrow like any other result.
7. Speed, not behaviour: a statement text is parsed and transformed by
   sqlglot once (fakesnow parses it up to three times per request and runs
   about seventy tree rewrites over it; the suites send the same planning,
   chunk and checksum queries again and again). Only reads are kept: SELECTs
   sent without bindings, keyed by the session's database and schema, and
   the read-only parses of the server and of the DESCRIBE of a result.
8. Fault injection for tests (`faults.py`, docs/emulator.md §13): rules
   registered at /thaw-emulator/faults make the next N query submissions or
   result-chunk downloads whose SQL matches a regex answer 500/503/429, drop
   the connection, truncate the answer or fail with a Snowflake error, and
   count how often each matching request arrived.

Deliberately NOT changed: concurrent queries on one session token go straight
to fakesnow, which shares one DuckDB connection per session; whatever error
that produces is what the client sees (thaw must never share a session
across concurrent queries).
"""

from __future__ import annotations

import base64
import collections
import contextvars
import functools
import gzip
import hmac
import itertools
import json
import logging
import os
import re
import secrets
import threading
import uuid
from typing import Any

import fakesnow.arrow
import fakesnow.cursor as fakesnow_cursor
import fakesnow.server as fakesnow_server
import snowflake.connector.errors
import sqlglot
from sqlglot import exp
import faults
import pyarrow as pa
import pyarrow.compute as pc
import unload
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger("thaw.emulator")
logger.handlers = logging.getLogger("uvicorn").handlers
logger.setLevel(logging.INFO)

SESSION_VALIDITY_SECONDS = 3600
MASTER_VALIDITY_SECONDS = 14400
DEFAULT_ROLE = "SYSADMIN"
CHUNK_PATH = "/thaw-result-chunks"
CHUNK_KEY_HEADER = "x-thaw-chunk-key"

# Per-session state added by this wrapper, keyed by fakesnow's session token.
_roles: dict[str, str] = {}
_session_ids: dict[str, int] = {}
_rows_per_chunk: dict[str, int] = {}
_master_tokens: dict[str, str] = {}  # master token -> session token
_session_counter = itertools.count(1_000_000_001)
# Downloadable result chunks: id -> (required key, Arrow IPC stream bytes).
_chunks: dict[str, tuple[str, bytes]] = {}
# The SQL text of the query each pending chunk belongs to (for fault rules).
_chunk_origins: dict[str, str] = {}

_ALTER_CHUNKING = re.compile(r"^\s*ALTER\s+SESSION\s+SET\s+THAW_EMULATOR_ROWS_PER_CHUNK\s*=\s*(\d+)\s*;?\s*$", re.I)


# --- 2. NULL timestamps ------------------------------------------------------
_fakesnow_timestamp_to_sf_struct = fakesnow.arrow.timestamp_to_sf_struct


def _timestamp_struct_with_null_mask(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    struct = _fakesnow_timestamp_to_sf_struct(ts)
    if ts.null_count == 0:
        return struct
    is_null = pc.is_null(ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts)
    fields = [struct.type.field(i) for i in range(struct.type.num_fields)]
    children = [pc.fill_null(struct.field(i), 0) for i in range(len(fields))]
    return pa.StructArray.from_arrays(children, fields=fields, mask=is_null)


# fakesnow.arrow.to_sf looks the function up in its module on every call.
fakesnow.arrow.timestamp_to_sf_struct = _timestamp_struct_with_null_mask


# --- speed: keep fakesnow's Arrow result out of its JSON ----------------------
# fakesnow base64-encodes the Arrow IPC stream into its JSON response; parsing
# and re-serialising a 100+ MiB JSON string (and decoding it again to split it
# into chunks) would cost about a second per million rows. While one of our
# query requests runs, its base64 step hands the raw stream to us instead, and
# we splice the (possibly shortened) rowset into our response ourselves.
_captured_rowsets: contextvars.ContextVar[list | None] = contextvars.ContextVar("captured_rowsets", default=None)
_fakesnow_b64encode = fakesnow_server.b64encode
_ROWSET_PLACEHOLDER = "thaw-rowset-" + secrets.token_hex(16)


def _capture_rowset(ipc_stream: Any) -> bytes:
    captured = _captured_rowsets.get()
    if captured is None:
        return _fakesnow_b64encode(ipc_stream)
    captured.append(ipc_stream)
    return _ROWSET_PLACEHOLDER.encode()


fakesnow_server.b64encode = _capture_rowset


# --- 7. speed: parse and transform a statement once ---------------------------
# The server parses each statement only to read its type and placeholders, and
# the description of a result re-parses the DuckDB SQL it ran under DESCRIBE;
# neither parse is changed afterwards, so one parse per text serves them all.
_PARSES_KEPT = 4096
_server_parse = functools.lru_cache(maxsize=_PARSES_KEPT)(fakesnow_server.parse_one)
fakesnow_server.parse_one = _server_parse


@functools.lru_cache(maxsize=_PARSES_KEPT)
def _describe_expression(duckdb_sql: str) -> exp.Expression:
    return sqlglot.parse_one(f"DESCRIBE {duckdb_sql}", read="duckdb")


def _describe_last_sql(self: fakesnow_cursor.FakeSnowflakeCursor) -> list:
    # fakesnow's own, with the parse kept (a separate cursor keeps this one's rows).
    with self._conn.cursor() as cur:
        cur._execute(_describe_expression(self._last_sql), self._last_params)
        return cur.fetchall()


fakesnow_cursor.FakeSnowflakeCursor._describe_last_sql = _describe_last_sql

# The cursor transforms its parse in place, so its result is kept instead: the
# transformed tree of a SELECT sent without bindings depends only on the text
# and the session's current database and schema, and executing it only reads it.
# Requests run in Starlette's thread pool: the dict is guarded; a kept tree is
# shared, which is safe because generating SQL from it works on a copy.
_transformed_selects: collections.OrderedDict[tuple[str | None, str | None, str], exp.Expression] = collections.OrderedDict()
_transformed_lock = threading.Lock()
_fakesnow_execute = fakesnow_cursor.FakeSnowflakeCursor.execute


def _execute_once_transformed(self: fakesnow_cursor.FakeSnowflakeCursor, command: str, params: Any = None, *args: Any, **kwargs: Any) -> Any:
    if params is not None or kwargs.get("binding_params") or os.environ.get("FAKESNOW_DEBUG"):
        return _fakesnow_execute(self, command, params, *args, **kwargs)
    key = (self._conn.database, self._conn.schema, self._inline_variables(command))
    with _transformed_lock:
        transformed = _transformed_selects.get(key)
        if transformed is not None:
            _transformed_selects.move_to_end(key)
    if transformed is None:
        result = _fakesnow_execute(self, command, params, *args, **kwargs)
        # RESULT_SCAN restores an earlier statement's tree and rows: never kept.
        done = self._last_transformed
        if isinstance(done, exp.Select) and "RESULT_SCAN" not in key[2].upper() and not self._conn.nop_regexes:
            with _transformed_lock:
                _transformed_selects[key] = done
                if len(_transformed_selects) > _PARSES_KEPT:
                    _transformed_selects.popitem(last=False)
        return result
    self._sqlstate = None
    try:
        self._execute(transformed, None)
    except snowflake.connector.errors.ProgrammingError as e:
        self._sqlstate = e.sqlstate
        raise
    return self


fakesnow_cursor.FakeSnowflakeCursor.execute = _execute_once_transformed


# --- helpers ---------------------------------------------------------------
def _json(payload: dict[str, Any], status_code: int = 200) -> Response:
    return Response(json.dumps(payload, separators=(",", ":")), status_code=status_code, media_type="application/json")


def _token(request: Request) -> str:
    # Header: Snowflake Token="<token>"
    auth = request.headers.get("Authorization", "")
    return auth[len('Snowflake Token="') : -1] if auth.startswith('Snowflake Token="') else ""


def _query_error(code: str, message: str, sql_state: str, *, internal: bool, status_code: int = 200) -> Response:
    return _json(
        {
            "data": {
                "internalError": internal,
                "errorCode": code,
                "age": 0,
                "sqlState": sql_state,
                "queryId": str(uuid.uuid4()),
                "line": -1,
                "pos": -1,
            },
            "code": code,
            "message": message,
            "success": False,
            "headers": None,
        },
        status_code,
    )


def _complete_error_data(payload: dict[str, Any]) -> None:
    """1. Give a failed query's `data` every field the client requires."""
    data = payload.get("data") or {}
    data.setdefault("errorCode", payload.get("code") or "000603")
    data.setdefault("sqlState", "XX000")
    data.setdefault("age", 0)
    data.setdefault("internalError", data["errorCode"] in ("000603", "261000"))
    data.setdefault("queryId", str(uuid.uuid4()))
    payload["data"] = data


# --- 1 + 5. login, renewal -----------------------------------------------------
async def login(request: Request) -> Response:
    body = await request.body()  # Starlette caches it; fakesnow reads it again
    if request.headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    data = json.loads(body)["data"]
    expected = os.environ.get("THAW_EMULATOR_PASSWORD")
    is_key_pair = str(data.get("AUTHENTICATOR", "")).upper() == "SNOWFLAKE_JWT"
    if expected is not None and not is_key_pair:
        if not hmac.compare_digest(str(data.get("PASSWORD", "")).encode(), expected.encode()):
            logger.info("login refused for user %s: incorrect password", data.get("LOGIN_NAME"))
            return _json(
                {
                    "data": {
                        "nextAction": "RETRY_LOGIN",
                        "authnMethod": "USERNAME_PASSWORD",
                        "loginName": data.get("LOGIN_NAME"),
                        "requestId": request.query_params.get("requestId"),
                        "errorCode": "390100",
                        "signInOptions": {},
                    },
                    "code": "390100",
                    "message": "Incorrect username or password was specified.",
                    "success": False,
                    "headers": None,
                }
            )

    response = await fakesnow_server.login_request(request)
    payload = json.loads(response.body)
    token = payload["data"]["token"]
    master = secrets.token_urlsafe(32)
    _master_tokens[master] = token
    _session_ids[token] = next(_session_counter)
    _roles[token] = (request.query_params.get("roleName") or DEFAULT_ROLE).upper()
    payload["data"].update(
        sessionId=_session_ids[token],
        masterToken=master,
        validityInSeconds=SESSION_VALIDITY_SECONDS,
        masterValidityInSeconds=MASTER_VALIDITY_SECONDS,
    )
    payload["data"]["sessionInfo"].update(
        roleName=_roles[token], warehouseName=request.query_params.get("warehouse")
    )
    payload.update(code=None, message=None)
    return _json(payload)


async def renew(request: Request) -> Response:
    """Session renewal: the master token buys the same session token more time."""
    session_token = _master_tokens.get(_token(request))
    if session_token is None or session_token not in fakesnow_server.sessions:
        return _json(
            {
                "data": {"errorCode": "390114", "authnMethod": None},
                "code": "390114",
                "message": "Authentication token has expired.  The user must authenticate again.",
                "success": False,
                "headers": None,
            }
        )
    return _json(
        {
            "data": {
                "sessionToken": session_token,
                "validityInSecondsST": SESSION_VALIDITY_SECONDS,
                "masterToken": _token(request),
                "validityInSecondsMT": MASTER_VALIDITY_SECONDS,
                "sessionId": _session_ids.get(session_token, 0),
            },
            "code": None,
            "message": None,
            "success": True,
        }
    )


# --- 1 + 4. queries, chunks --------------------------------------------------
def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _split_into_chunks(request: Request, sql: str, data: dict[str, Any], ipc_stream: Any, rows_per_chunk: int) -> bytes:
    """4. Publish all but the first `rows_per_chunk` rows as chunks; return the first rows' stream."""
    table = pa.ipc.open_stream(ipc_stream).read_all()
    slices = [table.slice(offset, rows_per_chunk) for offset in range(0, table.num_rows, rows_per_chunk)]
    key = secrets.token_urlsafe(24)
    chunks = []
    for part in slices[1:]:
        chunk_id = secrets.token_urlsafe(16)
        _chunks[chunk_id] = (key, _ipc(part))
        _chunk_origins[chunk_id] = sql
        size = len(_chunks[chunk_id][1])
        url = f"{request.url.scheme}://{request.url.netloc}{CHUNK_PATH}/{chunk_id}"
        chunks.append({"url": url, "rowCount": part.num_rows, "uncompressedSize": size, "compressedSize": size})
    data["chunks"] = chunks
    data["chunkHeaders"] = {CHUNK_KEY_HEADER: key}
    return _ipc(slices[0])


def _default_rows_per_chunk() -> int:
    return int(os.environ.get("THAW_EMULATOR_ROWS_PER_CHUNK") or 0)


async def query(request: Request) -> Response:
    token = _token(request)
    body = await request.body()
    sql = json.loads(gzip.decompress(body) if request.headers.get("Content-Encoding") == "gzip" else body)["sqlText"]
    if (alter := _ALTER_CHUNKING.match(sql)) and token in fakesnow_server.sessions:
        _rows_per_chunk[token] = int(alter.group(1))
        return _json(
            {
                "data": {
                    "parameters": [],
                    "rowtype": [{"name": "status", "type": "text", "nullable": True, "length": 16777216,
                                 "byteLength": 16777216, "scale": None, "precision": None}],
                    "rowset": [["Statement executed successfully."]],
                    "total": 1, "returned": 1, "queryId": str(uuid.uuid4()), "statementTypeId": 0x4000,
                    "finalRoleName": _roles.get(token, DEFAULT_ROLE), "version": 1, "queryResultFormat": "json",
                },
                "code": None, "message": None, "success": True,
            }
        )

    if unload.handles(sql) and token in fakesnow_server.sessions:
        try:
            request = await _answer_unload_statement(request, token, sql)
        except unload.UnloadError as e:
            return _query_error(e.code, e.message, e.sql_state, internal=False)

    captured: list = []
    context_token = _captured_rowsets.set(captured)
    try:
        response = await fakesnow_server.query_request(request)
    finally:
        _captured_rowsets.reset(context_token)
    payload = json.loads(response.body)
    data = payload.get("data")
    rowset = captured[0] if captured and isinstance(data, dict) and data.get("rowsetBase64") == _ROWSET_PLACEHOLDER else None
    if not payload.get("success"):
        _complete_error_data(payload)
    elif isinstance(data, dict) and "rowtype" in data:  # a query result, not PUT stage info
        data.setdefault("returned", data.get("total", 0))
        data.setdefault("finalRoleName", _roles.get(token, DEFAULT_ROLE))
        data.setdefault("version", 1)
        rows_per_chunk = _rows_per_chunk.get(token, _default_rows_per_chunk())
        if rowset is not None and rows_per_chunk > 0 and data.get("total", 0) > rows_per_chunk:
            rowset = _split_into_chunks(request, sql, data, rowset, rows_per_chunk)
    payload.setdefault("code", None)
    payload.setdefault("message", None)
    body = json.dumps(payload, separators=(",", ":")).encode()
    if rowset is not None:
        body = body.replace(_ROWSET_PLACEHOLDER.encode(), base64.b64encode(rowset), 1)
    return Response(body, status_code=response.status_code, media_type="application/json")


# --- 6. stages, unload, LIST ----------------------------------------------------
def _literal(value: Any, sf_type: str) -> str:
    if value is None:
        return f"CAST(NULL AS {sf_type})"
    if sf_type == "NUMBER":
        return f"CAST({int(value)} AS NUMBER(38,0))"
    return "CAST('" + str(value).replace("'", "''") + "' AS VARCHAR)"


def _rows_as_select(columns: list[str], types: list[str], rows: list[list[Any]]) -> str:
    """A SELECT returning exactly `rows` (or no row, with the columns' types)."""
    def one(row: list[Any]) -> str:
        return "SELECT " + ", ".join(f'{_literal(v, t)} AS "{c}"' for v, t, c in zip(row, types, columns))

    if not rows:
        return one([None] * len(columns)) + " LIMIT 0"
    return " UNION ALL ".join(one(r) for r in rows)


async def _answer_unload_statement(request: Request, token: str, sql: str) -> Request:
    """Run a stage/unload/LIST statement; return the request rewritten into a
    SELECT of its result rows, for fakesnow to answer."""
    conn = fakesnow_server.sessions[token]

    def run_select(select: str) -> pa.Table:
        cur = conn.cursor()
        cur.execute(select)
        return cur._arrow_table if cur._arrow_table is not None else pa.table({})  # noqa: SLF001

    columns, types, rows = await run_in_threadpool(unload.execute, sql, run_select, conn.database, conn.schema)
    body = json.loads(await request.body() if request.headers.get("Content-Encoding") != "gzip"
                      else gzip.decompress(await request.body()))
    body["sqlText"] = _rows_as_select(columns, types, rows)
    encoded = json.dumps(body).encode()
    request._body = gzip.compress(encoded) if request.headers.get("Content-Encoding") == "gzip" else encoded  # noqa: SLF001
    return request


async def chunk(request: Request) -> Response:
    entry = _chunks.get(request.path_params["chunk_id"])
    if entry is None:
        return Response("no such result chunk (already downloaded or never existed)", status_code=404)
    key, content = entry
    if not hmac.compare_digest(request.headers.get(CHUNK_KEY_HEADER, "").encode(), key.encode()):
        return Response("missing or wrong chunk header", status_code=403)
    del _chunks[request.path_params["chunk_id"]]
    _chunk_origins.pop(request.path_params["chunk_id"], None)
    return Response(content, media_type="application/octet-stream")


async def session_delete(request: Request) -> Response:
    """Closing a session also forgets this wrapper's state for it."""
    token = _token(request)
    response = await fakesnow_server.session(request)
    if request.query_params.get("delete"):
        for state in (_roles, _session_ids, _rows_per_chunk):
            state.pop(token, None)
    return response


# --- 3. unhandled exceptions -------------------------------------------------
async def _unhandled(request: Request, exc: Exception) -> Response:
    logger.error("unhandled exception answering %s %s", request.method, request.url.path, exc_info=exc)
    message = f"SQL execution internal error: emulator failed with {type(exc).__name__}: {exc}"
    return _query_error("000603", message, "XX000", internal=True, status_code=500)


class _KeepConnectionAlive:
    """Starlette re-raises an exception after its handler has answered; uvicorn
    then closes the keep-alive connection and the client's *next* request
    fails. The error is already answered and logged, so swallow it here."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.inner(scope, receive, send)
        except Exception:  # noqa: BLE001 - answered by _unhandled
            if scope["type"] != "http":
                raise


# fakesnow's own routes are reused (not its `app`, whose debug error page is
# HTML); ours come first and take precedence.
_starlette = Starlette(
    routes=[
        Route("/session/v1/login-request", login, methods=["POST"]),
        Route("/session/token-request", renew, methods=["POST"]),
        Route("/session", session_delete, methods=["POST"]),
        Route("/queries/v1/query-request", query, methods=["POST"]),
        Route(CHUNK_PATH + "/{chunk_id}", chunk, methods=["GET"]),
        Route(faults.ADMIN_PATH, faults.add, methods=["POST"]),
        Route(faults.ADMIN_PATH + "/{rule_id}", faults.show, methods=["GET"]),
        Route(faults.ADMIN_PATH + "/{rule_id}", faults.remove, methods=["DELETE"]),
        *fakesnow_server.routes,
    ],
    exception_handlers={Exception: _unhandled},
)


def _pending_chunk(chunk_id: str) -> tuple[str, bytes] | None:
    """(origin SQL, content) of a result chunk not yet downloaded."""
    sql, entry = _chunk_origins.get(chunk_id), _chunks.get(chunk_id)
    return (sql, entry[1]) if sql is not None and entry is not None else None


app = faults.FaultMiddleware(_KeepConnectionAlive(_starlette), CHUNK_PATH, _pending_chunk)
