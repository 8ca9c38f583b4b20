"""The Lambda binaries as processes polling `cargo lambda watch --only-lambda-apis`.

`cargo lambda watch` is the local Lambda service: the Invoke API the adapter forwards to and, per
function, a Runtime API at `<watch>/.rt/<function>` that a binary built on `lambda_runtime` polls
(`AWS_LAMBDA_RUNTIME_API`). Left to itself it also *builds and starts* each function with
`cargo run` on its first invocation; with `--only-lambda-apis` it does not, and this module starts
the binaries the runner built beforehand instead. Why (README.md, workaround 7): `cargo run` at
invocation time re-checks the workspace and rebuilds whatever changed since (any edit in the tree,
or another build into a shared CARGO_TARGET_DIR), which made the first call of each function take
from 2 s to minutes, and could run different code than the `thaw run` reference was built from.

Like Lambda, an instance serves one invocation at a time and keeps its state (configuration,
connections) between invocations; `instances` runs more than one per function (the Map's
MaxConcurrency for copy-chunk). A process that exited is started again before the next invocation
of its function, as Lambda starts a new execution environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FunctionProcesses:
    """`binaries`/<function> started with the Lambda environment of `runtime_api`/<function>."""

    binaries: Path
    runtime_api: str
    environment: dict[str, str]
    log_dir: Path
    instances: dict[str, int] = field(default_factory=dict)
    memory_mb: int = 1024

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: dict[str, list[subprocess.Popen]] = {}
        self._logs: dict[str, object] = {}
        self.restarts: list[str] = []

    def log_path(self, function: str) -> Path:
        return self.log_dir / f"{function}.log"

    def _spawn(self, function: str, index: int) -> subprocess.Popen:
        binary = self.binaries / function
        if not binary.is_file():
            raise FileNotFoundError(f"{binary} does not exist: build it first (cargo build --bin {function})")
        env = dict(self.environment,
                   AWS_LAMBDA_FUNCTION_NAME=function,
                   AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                   AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(self.memory_mb),
                   AWS_LAMBDA_RUNTIME_API=f"{self.runtime_api}/{function}",
                   AWS_LAMBDA_LOG_STREAM_NAME=f"{function}/{index}")
        if function not in self._logs:
            self._logs[function] = open(self.log_path(function), "a")  # noqa: SIM115 (closed in stop)
        return subprocess.Popen([str(binary)], env=env, stdout=self._logs[function], stderr=subprocess.STDOUT,
                                start_new_session=True)

    def start(self, functions: list[str]) -> None:
        """Start every function's instances (they wait for invocations)."""
        with self._lock:
            for function in functions:
                self._processes[function] = [self._spawn(function, i) for i in range(self.instances.get(function, 1))]

    def ensure_running(self, function: str) -> None:
        """Restart the instances of `function` that exited (called before each invocation)."""
        with self._lock:
            for i, process in enumerate(self._processes.get(function, [])):
                if process.poll() is not None:
                    self.restarts.append(f"{function}[{i}] exited with {process.returncode}")
                    self._processes[function][i] = self._spawn(function, i)

    def tails(self, lines: int = 20) -> str:
        """The last `lines` lines of every function's log, for a failure report."""
        out = []
        for function in self._processes:
            path = self.log_path(function)
            if path.exists() and path.stat().st_size:
                out.append(f"--- {function} (last {lines} lines of {path}) ---")
                out.extend(path.read_text(errors="replace").splitlines()[-lines:])
        return "\n".join(out)

    def stop(self) -> None:
        with self._lock:
            for processes in self._processes.values():
                for process in processes:
                    if process.poll() is None:
                        os.killpg(process.pid, signal.SIGTERM)
            for processes in self._processes.values():
                for process in processes:
                    try:
                        process.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        os.killpg(process.pid, signal.SIGKILL)
            for handle in self._logs.values():
                handle.close()
