"""Fault injection for thaw's Snowflake emulator (docs/emulator.md §13).

A test registers *rules* over HTTPS on the emulator itself:

    POST   /thaw-emulator/faults        {"target": "query" | "chunk" | "login",
                                         "sql_regex": "…",          # re.search on the SQL text
                                         "action": "http_500" | "http_503" | "http_429"
                                                 | "drop" | "truncate" | "sql_error" | "delay",
                                         "times": N,                # default 1; the next N matching requests
                                         "retry_after": seconds,    # optional, http_429 / http_503
                                         "code": "001003", "message": "…",   # optional, sql_error
                                         "seconds": 1.5}                     # delay: how long
                                         -> {"id": "…"}
    GET    /thaw-emulator/faults/{id}   -> the rule with "matched" (requests that matched its
                                           regex, faulted or not) and "faulted" (answered with the fault)
    DELETE /thaw-emulator/faults/{id}

* ``target = "query"`` matches query submissions (``POST /queries/v1/query-request``)
  by their ``sqlText``; ``"chunk"`` matches result-chunk downloads (``GET`` of a
  ``chunks[].url``) by the SQL text of the query that produced the chunk.
* ``target = "login"`` matches login requests (``POST /session/v1/login-request``)
  by their URL query string (``databaseName=…&schemaName=…&warehouse=…``, URL-decoded).
* Rules are scoped by their regex (name the test's own database in it), so tests
  running side by side against one emulator never see each other's faults.
* Actions: ``http_500`` / ``http_503`` / ``http_429`` answer that status with a
  plain-text body (as a load balancer or gateway does; 429 and 503 carry
  ``Retry-After`` when ``retry_after`` is given); ``drop`` reads the request and
  closes the connection without answering (TCP abort); ``truncate`` answers
  ``200`` with a ``Content-Length`` and closes the connection after half of the
  body (chunks) or none of it (queries); ``sql_error`` answers like a
  deterministic Snowflake error (HTTP 200, ``success: false``, default code
  001003 "SQL compilation error"); ``delay`` holds the request for ``seconds``
  (0–60) and then serves it normally (a slow warehouse, for timing tests).
* A faulted chunk download leaves the chunk downloadable (a retry gets it).
* Once ``times`` faults are spent the rule stays registered and keeps counting
  ``matched``: that count is how a test proves how often a request was
  (re)sent.
"""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import re
import threading
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

ADMIN_PATH = "/thaw-emulator/faults"
QUERY_PATH = "/queries/v1/query-request"
LOGIN_PATH = "/session/v1/login-request"
ACTIONS = ("http_500", "http_503", "http_429", "drop", "truncate", "sql_error", "delay")
TARGETS = ("query", "chunk", "login")

_REASONS = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}


@dataclass
class Rule:
    id: str
    target: str
    sql_regex: re.Pattern[str]
    action: str
    times: int
    retry_after: int | None = None
    code: str = "001003"
    message: str = "SQL compilation error: injected by the emulator's fault control"
    seconds: float = 0.0
    matched: int = 0
    faulted: int = 0
    order: int = field(default=0)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "target": self.target, "sql_regex": self.sql_regex.pattern, "action": self.action,
            "times": self.times, "retry_after": self.retry_after, "code": self.code, "message": self.message,
            "seconds": self.seconds, "matched": self.matched, "faulted": self.faulted,
        }


_rules: dict[str, Rule] = {}
_lock = threading.Lock()
_order = itertools.count()


class FaultSpecError(ValueError):
    pass


def parse_rule(spec: dict[str, Any]) -> Rule:
    """A rule from its JSON form; FaultSpecError names the bad field."""
    target = spec.get("target")
    if target not in TARGETS:
        raise FaultSpecError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    action = spec.get("action")
    if action not in ACTIONS:
        raise FaultSpecError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    try:
        regex = re.compile(str(spec.get("sql_regex", "")), re.S)
    except re.error as e:
        raise FaultSpecError(f"sql_regex does not compile: {e}") from e
    times = spec.get("times", 1)
    if not isinstance(times, int) or times < 0:
        raise FaultSpecError(f"times must be a whole number >= 0, got {times!r}")
    retry_after = spec.get("retry_after")
    if retry_after is not None and (not isinstance(retry_after, int) or retry_after < 0):
        raise FaultSpecError(f"retry_after must be whole seconds >= 0, got {retry_after!r}")
    rule = Rule(id=uuid.uuid4().hex, target=target, sql_regex=regex, action=action, times=times,
                retry_after=retry_after, order=next(_order))
    if "code" in spec:
        rule.code = str(spec["code"])
    if "message" in spec:
        rule.message = str(spec["message"])
    seconds = spec.get("seconds", 0)
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds <= 60:
        raise FaultSpecError(f"seconds must be a number of seconds from 0 to 60, got {seconds!r}")
    rule.seconds = float(seconds)
    return rule


def decide(target: str, sql: str | None) -> Rule | None:
    """Count `sql` against every rule of `target` whose regex it matches; return
    the oldest of them with faults left (and spend one), or None."""
    if sql is None:
        return None
    with _lock:
        chosen = None
        for rule in sorted(_rules.values(), key=lambda r: r.order):
            if rule.target != target or not rule.sql_regex.search(sql):
                continue
            rule.matched += 1
            if chosen is None and rule.faulted < rule.times:
                rule.faulted += 1
                chosen = rule
        return chosen


# --- admin endpoint -----------------------------------------------------------
def _json(payload: Any, status_code: int = 200) -> Response:
    return Response(json.dumps(payload), status_code=status_code, media_type="application/json")


async def add(request: Request) -> Response:
    try:
        rule = parse_rule(json.loads(await request.body()))
    except (FaultSpecError, json.JSONDecodeError, AttributeError) as e:
        return _json({"error": f"bad fault rule: {e}"}, 400)
    with _lock:
        _rules[rule.id] = rule
    return _json(rule.as_json(), 201)


async def show(request: Request) -> Response:
    with _lock:
        rule = _rules.get(request.path_params["rule_id"])
        return _json(rule.as_json()) if rule else _json({"error": "no such fault rule"}, 404)


async def remove(request: Request) -> Response:
    with _lock:
        rule = _rules.pop(request.path_params["rule_id"], None)
    return _json(rule.as_json()) if rule else _json({"error": "no such fault rule"}, 404)


# --- applying a fault ---------------------------------------------------------
def _error_json(rule: Rule) -> bytes:
    return json.dumps({
        "data": {"internalError": False, "errorCode": rule.code, "age": 0, "sqlState": "42000",
                 "queryId": str(uuid.uuid4()), "line": -1, "pos": -1},
        "code": rule.code, "message": rule.message, "success": False, "headers": None,
    }).encode()


async def _drop(send: Send) -> bool:
    """Abort the connection under the request (uvicorn's h11 cycle is `send`'s
    owner). False when the server is not one whose transport we can reach."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    transport.abort()
    cycle.disconnected = True  # uvicorn then writes no 500 of its own
    return True


async def apply(rule: Rule, target: str, send: Send, chunk_body: bytes | None) -> None:
    """Answer the request with `rule`'s fault."""
    if rule.action == "drop" and await _drop(send):
        return
    if rule.action in ("truncate", "drop"):
        body = chunk_body if target == "chunk" and chunk_body else b'{"data":{}, "success": true}' * 8
        sent = body[: len(body) // 2] if target == "chunk" else b""
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode()),
                                (b"content-type", b"application/octet-stream")]})
        await send({"type": "http.response.body", "body": sent, "more_body": True})
        # Returning without completing makes uvicorn close the connection.
        return
    if rule.action == "sql_error":
        status, headers, body = 200, [(b"content-type", b"application/json")], _error_json(rule)
    else:
        status = int(rule.action.removeprefix("http_"))
        headers = [(b"content-type", b"text/plain")]
        if rule.retry_after is not None and status in (429, 503):
            headers.append((b"retry-after", str(rule.retry_after).encode()))
        body = f"{status} {_REASONS[status]} (injected by the emulator's fault control)".encode()
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _faulted(rule: Rule | None, target: str, send: Send, chunk_body: bytes | None) -> bool:
    """Apply `rule` (if any): True when the request was answered with a fault;
    False when it goes on to the emulator (no rule, or a `delay`, served
    after `rule.seconds`)."""
    if rule is None:
        return False
    if rule.action == "delay":
        await asyncio.sleep(rule.seconds)
        return False
    await apply(rule, target, send, chunk_body)
    return True


class FaultMiddleware:
    """Outermost ASGI layer: applies a matching rule before the request reaches
    the emulator. `chunk_origin(chunk_id)` gives (origin SQL, chunk bytes) of a
    pending result chunk."""

    def __init__(self, inner: ASGIApp, chunk_path: str, chunk_origin: Any) -> None:
        self.inner = inner
        self.chunk_path = chunk_path.rstrip("/") + "/"
        self.chunk_origin = chunk_origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _rules:
            await self.inner(scope, receive, send)
            return
        path = scope["path"]
        if scope["method"] == "POST" and path == QUERY_PATH:
            messages: list[Message] = []
            body = b""
            while True:
                message = await receive()
                messages.append(message)
                body += message.get("body", b"")
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            sql = _sql_text(body, scope)
            if await _faulted(decide("query", sql), "query", send, None):
                return
            replay = iter(messages)

            async def replayed() -> Message:
                return next(replay, None) or await receive()

            await self.inner(scope, replayed, send)
            return
        if scope["method"] == "POST" and path == LOGIN_PATH:
            query = urllib.parse.unquote_plus((scope.get("query_string") or b"").decode("latin-1"))
            if await _faulted(decide("login", query), "login", send, None):
                return
        if scope["method"] == "GET" and path.startswith(self.chunk_path):
            origin = self.chunk_origin(path[len(self.chunk_path):])
            if await _faulted(decide("chunk", origin[0] if origin else None), "chunk", send, origin[1] if origin else None):
                return
        await self.inner(scope, receive, send)


def _sql_text(body: bytes, scope: Scope) -> str | None:
    headers = dict(scope.get("headers") or [])
    try:
        if headers.get(b"content-encoding") == b"gzip":
            body = gzip.decompress(body)
        return json.loads(body).get("sqlText")
    except (OSError, ValueError, AttributeError):
        return None
