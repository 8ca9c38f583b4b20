"""The emulator's fault control (docs/emulator.md §13) against the running
emulator: raw HTTPS for the exact answers, and snowflake-connector-python for a
real driver riding out a faulted result-chunk download."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
import uuid
from typing import Any

import pytest
from conftest import connect

QUERY = "/queries/v1/query-request"


def _https() -> http.client.HTTPSConnection:
    host, _, port = os.environ["THAW_SF_ENDPOINT"].rpartition(":")
    context = ssl.create_default_context(cafile=os.environ["THAW_SF_CA_FILE"])
    return http.client.HTTPSConnection(host, int(port), context=context, timeout=30)


def _call(method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], bytes]:
    conn = _https()
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def add_rule(**spec: Any) -> str:
    status, _, body = _call("POST", "/thaw-emulator/faults", spec)
    assert status == 201, body
    return json.loads(body)["id"]


def rule(rule_id: str) -> dict[str, Any]:
    status, _, body = _call("GET", f"/thaw-emulator/faults/{rule_id}")
    assert status == 200, body
    return json.loads(body)


@pytest.fixture()
def tag() -> str:
    """A marker only this test's SQL contains."""
    return "FAULT_" + uuid.uuid4().hex[:10].upper()


def test_query_faults_answer_statuses_errors_and_drops_then_pass_and_count(tag: str) -> None:
    ids = [
        add_rule(target="query", sql_regex=tag, action="http_503", times=1, retry_after=7),
        add_rule(target="query", sql_regex=tag, action="sql_error", times=1, code="002003", message="no such table"),
        add_rule(target="query", sql_regex=tag, action="drop", times=1),
    ]
    submit = {"sqlText": f"SELECT 1 AS {tag}", "asyncExec": False}
    status, headers, body = _call("POST", QUERY, submit)
    assert (status, headers.get("retry-after")) == (503, "7"), body
    assert b"Service Unavailable" in body
    status, _, body = _call("POST", QUERY, submit)
    answer = json.loads(body)
    assert (status, answer["success"], answer["code"], answer["message"]) == (200, False, "002003", "no such table")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        _call("POST", QUERY, submit)
    # Faults spent: the request reaches the emulator (no session token: its own refusal, not a fault).
    status, _, body = _call("POST", QUERY, submit)
    assert b"injected" not in body and status != 503
    assert [(rule(i)["matched"], rule(i)["faulted"]) for i in ids] == [(4, 1), (4, 1), (4, 1)]
    # Other SQL is never matched.
    _call("POST", QUERY, {"sqlText": "SELECT 2", "asyncExec": False})
    assert rule(ids[0])["matched"] == 4
    for i in ids:
        assert _call("DELETE", f"/thaw-emulator/faults/{i}")[0] == 200
    assert _call("GET", f"/thaw-emulator/faults/{ids[0]}")[0] == 404


def test_a_delay_holds_the_request_then_serves_it(cur: Any, tag: str) -> None:
    delay = add_rule(target="query", sql_regex=tag, action="delay", times=1, seconds=1.5)
    started = time.monotonic()
    cur.execute(f"SELECT 7 AS {tag}")
    assert cur.fetchall() == [(7,)]
    assert time.monotonic() - started >= 1.5
    started = time.monotonic()
    cur.execute(f"SELECT 8 AS {tag}")
    assert cur.fetchall() == [(8,)]
    assert time.monotonic() - started < 1.5, "the delay is spent"
    assert (rule(delay)["matched"], rule(delay)["faulted"]) == (2, 1)


def test_bad_rules_are_refused_with_the_field_named() -> None:
    status, _, body = _call("POST", "/thaw-emulator/faults", {"target": "query", "action": "explode"})
    assert status == 400 and b"action must be one of" in body
    status, _, body = _call("POST", "/thaw-emulator/faults", {"target": "warehouse", "action": "drop"})
    assert status == 400 and b"target must be one of" in body
    status, _, body = _call("POST", "/thaw-emulator/faults", {"target": "query", "action": "delay", "seconds": 600})
    assert status == 400 and b"seconds must be" in body


def test_a_driver_rides_out_a_faulted_chunk_download(cur: Any, tag: str) -> None:
    cur.execute(f"CREATE TABLE {tag} (ID INT, NOTE VARCHAR)")
    cur.execute(f"INSERT INTO {tag} SELECT i, 'row ' || i FROM range(0, 3000) t(i)")
    cur.execute("ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = 1000")
    chunk_rule = add_rule(target="chunk", sql_regex=f"FROM {tag}", action="http_500", times=1)
    cur.execute(f"SELECT ID, NOTE FROM {tag} ORDER BY ID")
    rows = cur.fetchall()
    assert [r[0] for r in rows] == list(range(3000))
    # Two chunks downloaded, the first one twice (the 500, then the retry).
    assert (rule(chunk_rule)["faulted"], rule(chunk_rule)["matched"]) == (1, 3)
