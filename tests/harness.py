#!/usr/bin/env python3
"""thaw's test harness: a private PostgreSQL, a Snowflake emulator and an S3 API for one command.

    python3 tests/harness.py run [--rows-per-chunk N] -- COMMAND [ARG...]
    python3 tests/harness.py shell [--rows-per-chunk N]

`run` starts the three services (PostgreSQL, the emulator, S3), runs COMMAND
with the variables below in its environment, stops everything and deletes every temporary file (on success,
failure, Ctrl-C and SIGTERM; a detached `rm -rf` finishes the deletion after the harness exits), and
exits with COMMAND's exit code.
`shell` starts them, prints `export ...` lines for a developer's shell, and
keeps running until interrupted.

Exported to COMMAND:
  THAW_PG_HOST THAW_PG_PORT THAW_PG_USER THAW_PG_PASSWORD
  DATABASE_URL        postgres://USER:PASSWORD@HOST:PORT/postgres
  THAW_SF_ACCOUNT     thaw-emulator (host thaw-emulator.snowflakecomputing.com;
                      a hyphen is valid in a host name, unlike an underscore)
  THAW_SF_USER        thaw
  THAW_SF_PASSWORD    random per run; other passwords are refused (390100)
  THAW_SF_ENDPOINT    127.0.0.1:PORT of the emulator (connect there, verify TLS
                      for <account>.snowflakecomputing.com)
  THAW_SF_CA_FILE     the throwaway CA that signed the emulator's certificate
  THAW_S3_ENDPOINT    http://127.0.0.1:PORT of a local S3 API (moto's server)
  THAW_S3_BUCKET      thaw-staging, a bucket created there for unloads
  AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
                      dummy credentials (moto checks none) and us-east-1
  THAW_HARNESS        1 (`run` only): the command runs inside a harness. The
                      Makefile's steps and the sfn-local test then use these
                      services instead of starting their own, so `make test`
                      starts the three services once for all its steps.

S3: moto's server (`python -m moto.server`, from the same venv) on 127.0.0.1
and a free port, plain HTTP, in-memory; the emulator gets THAW_S3_* too and
writes `COPY INTO @stage` unloads there (docs/emulator.md §12). Clients must
use path-style addressing against THAW_S3_ENDPOINT.

PostgreSQL: a fresh cluster (initdb) in a temporary directory, listening on
127.0.0.1 only, on a free port, scram-sha-256 password auth for user `thaw`.
Binaries come from PATH or /usr/lib/postgresql/<version>/bin (newest). As
root, initdb/pg_ctl run as the `postgres` user (PostgreSQL refuses root).
DATABASE_URL set in the caller's environment means "use my own PostgreSQL":
none is started and THAW_PG_* are derived from it.

The emulator (tests/emulator/server.py: fakesnow behind uvicorn, TLS) runs in
the venv ${THAW_CACHE:-~/.cache/thaw}/venv, created here from
tests/emulator/requirements.txt and reinstalled when that file changes.
--rows-per-chunk N sets THAW_EMULATOR_ROWS_PER_CHUNK (results larger than N
rows arrive as chunks); a session can also switch it with
`ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = N`.
Logs go to the temporary directory; on failure the last 40 lines of the
emulator's log (and PostgreSQL's, if it failed to start) are printed.

Standard library only: this script creates the environment everything else needs.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import os
import secrets
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EMULATOR_DIR = REPO / "tests" / "emulator"
REQUIREMENTS = EMULATOR_DIR / "requirements.txt"
SF_ACCOUNT = "thaw-emulator"
SF_HOST = f"{SF_ACCOUNT}.snowflakecomputing.com"
SF_USER = "thaw"
S3_BUCKET = "thaw-staging"
S3_REGION = "us-east-1"
PG_USER = "thaw"
STARTUP_TIMEOUT_SECONDS = 60


def terminate(process: "subprocess.Popen | None") -> None:
    """Stop a service process: SIGTERM, then SIGKILL after 10 s; no-op if it already ended."""
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class HarnessError(Exception):
    """A service could not be prepared or started; the message says which and why."""


class Terminated(Exception):
    """SIGTERM arrived."""


def log(message: str) -> None:
    # Never let a closed stderr (e.g. `... | head`) abort the cleanup.
    with contextlib.suppress(OSError, ValueError):
        print(f"[harness] {message}", file=sys.stderr, flush=True)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise HarnessError(f"{what} exited with code {process.returncode} while starting; log {log_path}:\n{tail(log_path)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise HarnessError(f"{what} did not accept connections on 127.0.0.1:{port} within {STARTUP_TIMEOUT_SECONDS}s; log {log_path}:\n{tail(log_path)}")


# --- Python environment for the emulator ------------------------------------
def ensure_venv() -> Path:
    """The venv with tests/emulator/requirements.txt installed; returns its python."""
    cache = Path(os.environ.get("THAW_CACHE") or Path.home() / ".cache" / "thaw")
    venv = cache / "venv"
    python = venv / "bin" / "python"
    marker = venv / ".thaw-requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and marker.exists() and marker.read_text().strip() == wanted:
        return python
    if not python.exists():
        log(f"creating the emulator's Python environment in {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    log(f"installing {REQUIREMENTS.relative_to(REPO)} into {venv} (once per change of that file)")
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise HarnessError(f"pip could not install {REQUIREMENTS} into {venv}:\n{result.stdout}{result.stderr}")
    marker.write_text(wanted + "\n")
    return python


# --- PostgreSQL ---------------------------------------------------------------
def postgres_bin_dir() -> Path:
    if initdb := shutil.which("initdb"):
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name), reverse=True
    )
    if candidates:
        return Path(candidates[0]).parent
    raise HarnessError(
        "PostgreSQL server binaries (initdb, pg_ctl) are neither on PATH nor under /usr/lib/postgresql/*/bin; "
        "install the PostgreSQL 15 server package or set DATABASE_URL to use your own server"
    )


class Postgres:
    """A throwaway cluster in `work/pg`; `stop()` is safe to call at any time."""

    def __init__(self, work: Path) -> None:
        self.dir = work / "pg"
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.bin = postgres_bin_dir()
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.started = False
        self.as_postgres = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, start_new_session=True)
        if result.returncode != 0:
            raise HarnessError(f"`{shlex.join(cmd)}` failed ({result.returncode}):\n{result.stdout}{result.stderr}\n{tail(self.log_path)}")

    def start(self) -> None:
        self.dir.mkdir()
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.as_postgres:
            for path in (self.dir.parent, self.dir, pwfile):
                shutil.chown(path, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", PG_USER, f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                  "--auth-local=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync")
        pwfile.unlink()
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='{self.dir}' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self.started = True
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log_path), "-o", options, "-w", "-t", "60", "start")
        wait_for_port(self.port, None, "PostgreSQL", self.log_path)

    def stop(self) -> None:
        if self.started:
            self.started = False
            try:
                # immediate: no shutdown checkpoint, the cluster is deleted next
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except HarnessError as e:
                log(f"stopping PostgreSQL failed: {e}")

    def env(self) -> dict[str, str]:
        return {
            "THAW_PG_HOST": "127.0.0.1",
            "THAW_PG_PORT": str(self.port),
            "THAW_PG_USER": PG_USER,
            "THAW_PG_PASSWORD": self.password,
            "DATABASE_URL": f"postgres://{PG_USER}:{self.password}@127.0.0.1:{self.port}/postgres",
        }


def env_from_database_url(url: str) -> dict[str, str]:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("postgres", "postgresql") or not parsed.hostname:
        raise HarnessError(f"DATABASE_URL must look like postgres://user:password@host:port/db (got scheme {parsed.scheme!r})")
    return {
        "THAW_PG_HOST": parsed.hostname,
        "THAW_PG_PORT": str(parsed.port or 5432),
        "THAW_PG_USER": urllib.parse.unquote(parsed.username or os.environ.get("USER", "postgres")),
        "THAW_PG_PASSWORD": urllib.parse.unquote(parsed.password or ""),
        "DATABASE_URL": url,
    }


# --- the emulator -------------------------------------------------------------
class Emulator:
    """fakesnow behind tests/emulator/server.py, over TLS on 127.0.0.1."""

    def __init__(self, work: Path, python: Path, rows_per_chunk: int | None, extra_env: dict[str, str]) -> None:
        self.dir = work / "emulator"
        self.extra_env = extra_env
        self.log_path = self.dir / "emulator.log"
        self.python = python
        self.port = free_port()
        self.password = secrets.token_hex(16)
        self.rows_per_chunk = rows_per_chunk
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.dir.mkdir()
        subprocess.run([str(self.python), str(EMULATOR_DIR / "certs.py"), str(self.dir), SF_HOST, "*.snowflakecomputing.com"],
                       check=True)
        env = dict(os.environ, **self.extra_env, THAW_EMULATOR_PASSWORD=self.password)
        if self.rows_per_chunk is not None:
            env["THAW_EMULATOR_ROWS_PER_CHUNK"] = str(self.rows_per_chunk)
        cmd = [str(self.python), "-m", "uvicorn", "server:app", "--app-dir", str(EMULATOR_DIR),
               "--host", "127.0.0.1", "--port", str(self.port),
               "--ssl-keyfile", str(self.dir / "server-key.pem"), "--ssl-certfile", str(self.dir / "server.pem"),
               # longer than clients keep idle connections (thaw: 60 s), so the server never closes one under them
               "--timeout-keep-alive", "75"]
        with open(self.log_path, "ab") as out:
            # own session: a terminal's Ctrl-C reaches the command, and we stop the emulator after it
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, cwd=self.dir, start_new_session=True)
        wait_for_port(self.port, self.process, "the Snowflake emulator", self.log_path)
        # TLS handshake with the CA and host name clients will use.
        context = ssl.create_default_context(cafile=str(self.dir / "ca.pem"))
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as raw, \
                context.wrap_socket(raw, server_hostname=SF_HOST):
            pass

    def stop(self) -> None:
        terminate(self.process)

    def env(self) -> dict[str, str]:
        return {
            "THAW_SF_ACCOUNT": SF_ACCOUNT,
            "THAW_SF_USER": SF_USER,
            "THAW_SF_PASSWORD": self.password,
            "THAW_SF_ENDPOINT": f"127.0.0.1:{self.port}",
            "THAW_SF_CA_FILE": str(self.dir / "ca.pem"),
        }


# --- S3 -----------------------------------------------------------------------------
class S3Server:
    """moto's S3-compatible server on 127.0.0.1 (plain HTTP, in memory) with one bucket."""

    def __init__(self, work: Path, python: Path) -> None:
        self.dir = work / "s3"
        self.log_path = self.dir / "s3.log"
        self.python = python
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.dir.mkdir()
        cmd = [str(self.python), "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            cwd=self.dir, start_new_session=True)
        wait_for_port(self.port, self.process, "the S3 server (moto)", self.log_path)
        # CreateBucket (us-east-1 needs no location constraint; moto checks no signature).
        request = urllib.request.Request(f"{self.endpoint}/{S3_BUCKET}", method="PUT", data=b"")
        try:
            # no proxy: the server is on loopback whatever HTTP_PROXY says
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
                response.read()
        except OSError as e:
            raise HarnessError(f"could not create bucket {S3_BUCKET} on {self.endpoint}: {e}; log {self.log_path}:\n"
                               f"{tail(self.log_path)}") from e

    def stop(self) -> None:
        terminate(self.process)

    def env(self) -> dict[str, str]:
        return {
            "THAW_S3_ENDPOINT": self.endpoint,
            "THAW_S3_BUCKET": S3_BUCKET,
            "AWS_ACCESS_KEY_ID": "thaw-harness",
            "AWS_SECRET_ACCESS_KEY": "thaw-harness-secret",
            "AWS_REGION": S3_REGION,
        }


# --- commands -------------------------------------------------------------------
def run_command(command: list[str], env: dict[str, str]) -> int:
    try:
        process = subprocess.Popen(command, env=env)
    except OSError as e:
        raise HarnessError(f"cannot start {command[0]!r}: {e}") from e
    try:
        code = process.wait()
    except KeyboardInterrupt:  # the terminal sent SIGINT to the command too: let it finish
        try:
            code = process.wait(timeout=15)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            process.kill()
            code = process.wait()
    except Terminated:
        process.terminate()
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    run_parser = sub.add_parser("run", help="run a command with PostgreSQL, the emulator and S3")
    shell_parser = sub.add_parser("shell", help="start them and print export lines; Ctrl-C stops them")
    for p in (run_parser, shell_parser):
        p.add_argument("--rows-per-chunk", type=int, metavar="N", help="emulator splits results larger than N rows into chunks")
    run_parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.mode == "run" and args.command[:1] == ["--"] else getattr(args, "command", [])
    if args.mode == "run" and not command:
        parser.error("run needs a command after --")

    def on_sigterm(_signum: int, _frame: object) -> None:
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)
    work = Path(tempfile.mkdtemp(prefix="thaw-harness-"))
    postgres: Postgres | None = None
    emulator: Emulator | None = None
    s3: S3Server | None = None
    code = 1
    try:
        python = ensure_venv()
        env = dict(os.environ)
        if os.environ.get("DATABASE_URL"):
            env.update(env_from_database_url(os.environ["DATABASE_URL"]))
        else:
            postgres = Postgres(work)
            postgres.start()
            env.update(postgres.env())
        s3 = S3Server(work, python)
        s3.start()
        env.update(s3.env())
        emulator = Emulator(work, python, args.rows_per_chunk, s3.env())
        emulator.start()
        env.update(emulator.env())
        exported = {k: v for k, v in env.items()
                    if k.startswith(("THAW_PG_", "THAW_SF_", "THAW_S3_")) or k in ("DATABASE_URL", *s3.env())}
        if args.mode == "shell":
            for key, value in exported.items():
                print(f"export {key}={shlex.quote(value)}", flush=True)
            log("PostgreSQL, the emulator and S3 are running; Ctrl-C stops them")
            while True:
                time.sleep(3600)
        code = run_command(command, dict(env, THAW_HARNESS="1"))
    except HarnessError as e:
        log(str(e))
        code = 1
    except (KeyboardInterrupt, Terminated):
        code = 130
    finally:
        # Every step runs even if an earlier one fails; no signal interrupts them.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        emulator_log = ""
        stopping = time.monotonic()
        if emulator is not None:
            with contextlib.suppress(Exception):
                emulator.stop()
            emulator_log = tail(emulator.log_path)
        if s3 is not None:
            with contextlib.suppress(Exception):
                s3.stop()
        stopped_services = time.monotonic()
        if postgres is not None:
            with contextlib.suppress(Exception):
                postgres.stop()
        stopped_postgres = time.monotonic()
        # After a whole suite the cluster holds hundreds of databases: deleting them took 41.5 s of a
        # fresh-clone `make test`. A detached `rm -rf` deletes them after this process exits.
        try:
            subprocess.Popen(["rm", "-rf", str(work)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
            deleting = f"deleting {work} in the background"
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            deleting = f"deleted {work}"
        log(f"stopped the emulator and S3 in {stopped_services - stopping:.1f} s, PostgreSQL in "
            f"{stopped_postgres - stopped_services:.1f} s; {deleting}")
        if emulator is not None and code != 0 and args.mode == "run":
            log(f"last lines of the emulator log:\n{emulator_log}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
