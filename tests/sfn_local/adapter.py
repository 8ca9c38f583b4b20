"""A Lambda Invoke endpoint in front of `cargo lambda watch`, fixing what moto cannot handle.

moto's Step Functions interpreter calls `lambda.invoke` with boto3, at `AWS_ENDPOINT_URL_LAMBDA`.
`cargo lambda watch` serves the real Rust binaries on the same Invoke API, with two differences
that break the interpreter (see README.md, "Workarounds"):

* a handler error comes back as HTTP 500, which boto3 raises as a client error; real Lambda answers
  HTTP 200 with `X-Amz-Function-Error: Unhandled` and the body `{"errorType", "errorMessage"}`, from
  which the interpreter takes the error name that `Retry`/`Catch` `ErrorEquals` match;
* the ASL names functions by ARN (`arn:aws:lambda:<region>:<account>:function:<name>`); the
  watcher only knows binary names (404 otherwise).

It also records every invocation (function, payload, outcome) and can inject failures
(`inject`), so a scenario can assert that Step Functions retried or caught what it should.
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def function_name(path_segment: str) -> str:
    """`arn:aws:lambda:us-east-1:123:function:plan:$LATEST` or `plan` → `plan`."""
    name = urllib.parse.unquote(path_segment)
    if name.startswith("arn:"):
        parts = name.split(":")
        if len(parts) < 7 or parts[5] != "function":
            raise ValueError(f"not a Lambda function ARN: {name}")
        name = parts[6]
    return name.split(":")[0]


def lambda_error_from_watch(status: int, body: bytes) -> dict:
    """The Lambda error payload for a non-200 answer of `cargo lambda watch`."""
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("errorType"):
        return {"errorType": parsed["errorType"], "errorMessage": parsed.get("errorMessage", "")}
    text = body.decode("utf-8", "replace")[:2000]
    return {"errorType": "Lambda.ServiceException", "errorMessage": f"cargo lambda watch answered HTTP {status}: {text}"}


@dataclass
class Invocation:
    function: str
    payload: object
    error_type: str | None
    injected: bool = False


@dataclass
class Injection:
    function: str
    error_type: str
    times: int
    message: str = "injected by tests/sfn_local/adapter.py"


@dataclass
class LambdaAdapter:
    """HTTP server on 127.0.0.1:`port` forwarding Invoke calls to the watcher at `watch_url`."""

    watch_url: str
    port: int = 0
    invocations: list[Invocation] = field(default_factory=list)
    injections: list[Injection] = field(default_factory=list)
    timeout_seconds: float = 900.0
    before_invoke: Callable[[str], None] | None = None  # e.g. start the function's process if it exited

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        adapter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                parts = self.path.split("?")[0].strip("/").split("/")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if len(parts) != 4 or parts[0] != "2015-03-31" or parts[1] != "functions" or parts[3] != "invocations":
                    self._answer(404, {"message": f"unsupported path {self.path}"}, None)
                    return
                try:
                    name = function_name(parts[2])
                except ValueError as e:
                    self._answer(404, {"Type": "User", "message": str(e)}, None)
                    return
                status, payload, error_type = adapter.invoke(name, body)
                self._answer(status, payload, error_type)

            def _answer(self, status: int, payload: object, error_type: str | None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Amz-Executed-Version", "$LATEST")
                if error_type is not None:
                    self.send_header("X-Amz-Function-Error", "Unhandled")
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LambdaAdapter":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def inject(self, function: str, error_type: str, times: int = 1) -> None:
        """Answer the next `times` invocations of `function` with the error `error_type`, without running it."""
        with self._lock:
            self.injections.append(Injection(function, error_type, times))

    def calls(self, function: str) -> list[Invocation]:
        with self._lock:
            return [i for i in self.invocations if i.function == function]

    def invoke(self, name: str, body: bytes) -> tuple[int, object, str | None]:
        """Run `name` with the event `body`; returns (HTTP status, payload, Lambda error type or None)."""
        try:
            event = json.loads(body or b"null")
        except ValueError:
            event = body.decode("utf-8", "replace")
        with self._lock:
            injection = next((i for i in self.injections if i.function == name and i.times > 0), None)
            if injection is not None:
                injection.times -= 1
                self.invocations.append(Invocation(name, event, injection.error_type, injected=True))
        if injection is not None:
            return 200, {"errorType": injection.error_type, "errorMessage": injection.message}, injection.error_type
        if self.before_invoke is not None:
            self.before_invoke(name)
        request = urllib.request.Request(
            f"{self.watch_url}/2015-03-31/functions/{name}/invocations",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        except (urllib.error.URLError, TimeoutError) as e:
            status, raw = 502, json.dumps({"errorType": "Lambda.ServiceException", "errorMessage": f"cargo lambda watch unreachable: {e}"}).encode()
        if status == 200:
            try:
                payload = json.loads(raw or b"null")
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            if isinstance(payload, dict) and payload.get("errorType") and set(payload) <= {"errorType", "errorMessage", "stackTrace"}:
                error_type = payload["errorType"]
            else:
                error_type = None
        else:
            payload = lambda_error_from_watch(status, raw)
            error_type = payload["errorType"]
        with self._lock:
            self.invocations.append(Invocation(name, event, error_type))
        return 200, payload, error_type
