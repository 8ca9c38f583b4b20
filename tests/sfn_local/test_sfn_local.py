"""Tests of the sfn-local runner: the ASL rendering, the Lambda adapter and the interpreter patches
(fast: no services, moto in-process), and the full scenario (`run.py` under the harness; skipped
unless cargo-lambda is on PATH). The full scenario is bounded by SFN_LOCAL_TIMEOUT seconds
(default 600: a warm run takes about a minute, a cold one builds the binaries first)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from adapter import LambdaAdapter, function_name  # noqa: E402
from interpreter import EXCEEDED_CAUSE, EXCEEDED_ERROR, apply_patches, threshold_exceeded  # noqa: E402
from run import LAMBDA_CONFIG, definition_values, render_definition, staged_lambda_config, staged_sources, sync_targets, table_checksum_sql  # noqa: E402


def test_rendered_sync_definition_has_numeric_map_settings_and_function_arns():
    text = (ROOT / "statemachines" / "sync.asl.json").read_text()
    definition = render_definition(text, definition_values("arn:aws:sns:us-east-1:123456789012:alarms"))
    copy = definition["States"]["CopyChunks"]
    assert copy["MaxConcurrency"] == 4
    assert copy["ToleratedFailurePercentage"] == 0.0 and isinstance(copy["ToleratedFailurePercentage"], float)
    assert definition["TimeoutSeconds"] == 3600
    assert definition["States"]["Plan"]["Parameters"]["FunctionName"].endswith(":function:plan")
    assert "${" not in json.dumps(definition)


def test_rendering_names_a_placeholder_without_value():
    with pytest.raises(ValueError, match="ManifestBucket"):
        render_definition('{"a": "${ManifestBucket}"}', {})


def test_function_arns_and_qualifiers_map_to_binary_names():
    assert function_name("arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Acopy-chunk") == "copy-chunk"
    assert function_name("arn:aws:lambda:us-east-1:123456789012:function:plan:$LATEST") == "plan"
    assert function_name("merge") == "merge"


def test_the_lambdas_config_stages_the_visit_fact_table_in_small_files_and_loads_the_same_targets():
    text = staged_lambda_config((ROOT / LAMBDA_CONFIG).read_text())
    lambda_config = json.loads(text.replace("${THAW_PG_PORT:-5432}", "5432"))
    direct = json.loads((ROOT / "examples" / "config.json").read_text().replace("${THAW_PG_PORT:-5432}", "5432"))
    assert staged_sources(lambda_config) == ["FACTVISITCALLPERFORMANCE_CR"]
    assert staged_sources(direct) == []
    assert lambda_config["staging"]["max_file_size"] == 16384 and "max_file_size_mb" not in lambda_config["staging"]
    assert sync_targets(lambda_config) == sync_targets(direct)
    with pytest.raises(ValueError, match="max_file_size_mb"):
        staged_lambda_config("{}")


class FakeWatch(BaseHTTPRequestHandler):
    """Answers like `cargo lambda watch`: 500 with the diagnostic for handler errors."""

    def log_message(self, *_args):
        pass

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("fail"):
            status, payload = 500, {"errorType": "ChunkFailed", "errorMessage": "chunk 3 of DIMPAYER failed"}
        else:
            status, payload = 200, {"echo": body, "path": self.path}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def adapter():
    watch = ThreadingHTTPServer(("127.0.0.1", 0), FakeWatch)
    threading.Thread(target=watch.serve_forever, daemon=True).start()
    adapter = LambdaAdapter(watch_url=f"http://127.0.0.1:{watch.server_address[1]}").start()
    yield adapter
    adapter.stop()
    watch.shutdown()


def invoke(adapter, name, event):
    request = urllib.request.Request(f"{adapter.url}/2015-03-31/functions/{name}/invocations", data=json.dumps(event).encode(), method="POST")
    with urllib.request.urlopen(request) as response:
        return response.status, response.headers.get("X-Amz-Function-Error"), json.loads(response.read())


def test_handler_error_becomes_a_lambda_function_error_with_its_type(adapter):
    status, function_error, payload = invoke(adapter, "arn:aws:lambda:us-east-1:123456789012:function:copy-chunk", {"fail": True})
    assert (status, function_error) == (200, "Unhandled")
    assert payload == {"errorType": "ChunkFailed", "errorMessage": "chunk 3 of DIMPAYER failed"}
    assert adapter.calls("copy-chunk")[0].error_type == "ChunkFailed"


def test_success_is_forwarded_to_the_binary_by_name(adapter):
    status, function_error, payload = invoke(adapter, "arn:aws:lambda:us-east-1:123456789012:function:merge", {"run_id": "r"})
    assert (status, function_error) == (200, None)
    assert payload["path"] == "/2015-03-31/functions/merge/invocations"


def test_injected_transient_fails_once_then_the_binary_runs(adapter):
    adapter.inject("copy-chunk", "Transient", times=1)
    assert invoke(adapter, "copy-chunk", {"chunk_id": 0})[1:] == ("Unhandled", {"errorType": "Transient", "errorMessage": "injected by tests/sfn_local/adapter.py"})
    assert invoke(adapter, "copy-chunk", {"chunk_id": 0})[1] is None
    assert [c.injected for c in adapter.calls("copy-chunk")] == [True, False]


def test_checksums_leave_out_only_the_wall_clock_columns_of_conflict_create():
    assert table_checksum_sql("analytics.dimpayer").count(" - '") == 0
    assert "to_jsonb(t) - 'LastLoadDate'" in table_checksum_sql("conflict.settings")


@pytest.mark.parametrize(
    ("failed", "total", "count", "percentage", "exceeded"),
    [
        (0, 10, 0, 0.0, False),  # nothing failed
        (1, 10, 0, 0.0, True),  # default threshold: any failed child fails the Map
        (1, 10, 0, 10.0, False),  # 10 % tolerated, 10 % failed
        (2, 10, 0, 10.0, True),
        (2, 10, 2, 0.0, False),  # count only
        (3, 10, 2, 0.0, True),
    ],
)
def test_tolerated_failure_threshold_follows_aws(failed, total, count, percentage, exceeded):
    assert threshold_exceeded(failed, total, count, percentage) is exceeded


def run_in_moto(definition: dict, execution_input: dict) -> dict:
    """Execute `definition` with moto's interpreter (patched) and return describe_execution."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    import boto3
    from moto import mock_aws

    apply_patches()
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        machine = sfn.create_state_machine(name="m", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r")
        execution = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input=json.dumps(execution_input))["executionArn"]
        deadline = time.monotonic() + 30
        while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution still running after 30 s"
            time.sleep(0.05)
        return described


def distributed_map(tolerated_failure_percentage: float) -> dict:
    """A Distributed Map whose child fails with ChunkFailed for items with "fail": true, caught like sync.asl.json."""
    return {"StartAt": "CopyChunks", "States": {
        "CopyChunks": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 2, "ToleratedFailurePercentage": tolerated_failure_percentage,
                       "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, "StartAt": "Chunk", "States": {
                           "Chunk": {"Type": "Choice", "Choices": [{"Variable": "$.fail", "BooleanEquals": True, "Next": "ChunkFailed"}], "Default": "Copied"},
                           "ChunkFailed": {"Type": "Fail", "Error": "ChunkFailed", "Cause": "rejected rows"},
                           "Copied": {"Type": "Succeed"}}},
                       "ResultPath": "$.copy",
                       "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}], "Next": "Merged"},
        "Merged": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}}}


ONE_OF_FOUR_CHUNKS_FAILS = {"items": [{"fail": True}, {"fail": False}, {"fail": False}, {"fail": False}]}


def test_a_failed_chunk_fails_the_map_and_the_fail_state_reraises_the_states_error():
    described = run_in_moto(distributed_map(0.0), ONE_OF_FOUR_CHUNKS_FAILS)
    assert (described["status"], described.get("error"), described.get("cause")) == ("FAILED", EXCEEDED_ERROR, EXCEEDED_CAUSE)


def test_failed_chunks_within_the_tolerated_percentage_let_the_map_succeed():
    described = run_in_moto(distributed_map(25.0), ONE_OF_FOUR_CHUNKS_FAILS)
    assert described["status"] == "SUCCEEDED"


def dual_read_window_machine(window_start: str, window_end: str) -> dict:
    """The real DualReadWindow and DualReadRequested states of sync.asl.json (rendered with this window), with the
    DualRead task replaced by a Succeed state `Ran` and `Succeeded` renamed `Skipped`."""
    values = definition_values("arn:aws:sns:us-east-1:123456789012:alarms") | {"DualReadWindowStart": window_start, "DualReadWindowEnd": window_end}
    states = render_definition((ROOT / "statemachines" / "sync.asl.json").read_text(), values)["States"]
    rewire = lambda text: text.replace('"DualRead"', '"Ran"').replace('"Succeeded"', '"Skipped"')  # noqa: E731
    return {"StartAt": "Request", "States": {
        "Request": {"Type": "Pass", "Parameters": {"request.$": "$$.Execution.Input"}, "Next": "DualReadWindow"},
        "DualReadWindow": json.loads(rewire(json.dumps(states["DualReadWindow"]))),
        "DualReadRequested": json.loads(rewire(json.dumps(states["DualReadRequested"]))),
        "Ran": {"Type": "Succeed"}, "Skipped": {"Type": "Succeed"}}}


def ended_in(described: dict) -> str:
    return json.loads(described["output"])["ended"] if "ended" in (described.get("output") or "") else described["status"]


@pytest.mark.parametrize("window,execution_input,expected", [
    (("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"), {}, "Ran"),
    (("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"), {}, "Skipped"),
    (("2000-01-01T00:00:00Z", "2001-01-01T00:00:00Z"), {}, "Skipped"),
    (("1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"), {"dual_read": True}, "Ran"),
    (("2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"), {"dual_read": False}, "Skipped"),
])
def test_dual_read_runs_inside_the_window_or_when_the_input_asks(window, execution_input, expected):
    machine = dual_read_window_machine(*window)
    for name in ("Ran", "Skipped"):  # which end state was reached, in the execution's output
        machine["States"][name] = {"Type": "Pass", "Result": name, "ResultPath": "$.ended", "End": True}
    described = run_in_moto(machine, execution_input)
    assert described["status"] == "SUCCEEDED", described
    assert ended_in(described) == expected


def run_bounded(command: list[str], timeout_seconds: float) -> int:
    """Run `command` in its own process group; past the timeout, SIGTERM (the harness then stops
    PostgreSQL and the emulator and deletes its files), then SIGKILL 30 s later."""
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    try:
        return process.wait(timeout=timeout_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        pytest.fail(f"sfn-local did not finish within {timeout_seconds:.0f} s (SFN_LOCAL_TIMEOUT)")
        raise  # unreachable


@pytest.mark.skipif(shutil.which("cargo-lambda") is None or os.environ.get("SFN_LOCAL_FULL", "1") == "0",
                    reason="needs cargo-lambda on PATH (make sfn-local-test puts the infra venv first)")
def test_state_machine_run_equals_thaw_run_and_failing_chunk_is_caught():
    # Inside a harness (`make test` starts one for all its steps) run.py uses its services.
    harness = [] if os.environ.get("THAW_HARNESS") == "1" else [sys.executable, "tests/harness.py", "run", "--"]
    command = [*harness, sys.executable, str(HERE / "run.py"),
               "--visits", os.environ.get("SFN_LOCAL_VISITS", "400"), "--seed", os.environ.get("SFN_LOCAL_SEED", "7")]
    assert run_bounded(command, float(os.environ.get("SFN_LOCAL_TIMEOUT", "600"))) == 0
