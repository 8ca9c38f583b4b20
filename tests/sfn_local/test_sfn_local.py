"""Tests of the sfn-local runner: the ASL rendering and the Lambda adapter (fast, no services), and
the full scenario (`run.py` under the harness; skipped unless cargo-lambda is on PATH)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import threading

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from adapter import LambdaAdapter, function_name  # noqa: E402
from run import definition_values, render_definition  # noqa: E402


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


@pytest.mark.skipif(shutil.which("cargo-lambda") is None or os.environ.get("SFN_LOCAL_FULL", "1") == "0",
                    reason="needs cargo-lambda on PATH (make sfn-local-test puts the infra venv first)")
def test_state_machine_run_equals_thaw_run_and_failing_chunk_is_caught():
    subprocess.run([sys.executable, "tests/harness.py", "run", "--", sys.executable, str(HERE / "run.py"),
                    "--visits", os.environ.get("SFN_LOCAL_VISITS", "400")], cwd=ROOT, check=True, timeout=900)
