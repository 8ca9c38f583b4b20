#!/usr/bin/env python3
"""Run statemachines/sync.asl.json for real, locally, and check it against `thaw run`.

    python3 tests/harness.py run -- $THAW_CACHE/sfn-venv/bin/python tests/sfn_local/run.py [--visits N] [--seed S]

(`make sfn-local` does exactly that.) Needs the harness variables (THAW_PG_*, THAW_SF_*,
DATABASE_URL) and `cargo lambda` on PATH. What happens:

1. Build the CLI and the Lambda binaries (dev profile), seed the Snowflake emulator
   (`thaw dev seed`), and run `thaw run` into the database `sfn_reference`.
2. Start moto in-process with its Step Functions interpreter
   (`mock_aws(config={"stepfunctions": {"execute_state_machine": True}})`, patched where it differs
   from AWS: interpreter.py) plus a moto server thread on the same backends for the Rust binaries
   (S3 manifests, config, Secrets Manager).
3. Start `cargo lambda watch --only-lambda-apis` and the binaries built in step 1 polling it
   (functions.py) with the Lambdas' runtime environment (infra/README.md contract: config from S3,
   database password from a Secrets Manager secret), and the adapter in front of it (adapter.py);
   the interpreter reaches it through AWS_ENDPOINT_URL_LAMBDA.
4. Invoke schema-migrate with a CloudFormation Create event (what a deploy does) into `sfn_state`.
5. Scenario "sync": the rendered ASL runs with one injected `Transient` copy-chunk failure; it
   must end SUCCEEDED after a Retry, and the targets, conflict-create's outputs and the
   migration_status outcomes must equal the reference run's.
6. Scenario "failing chunk": a CHECK constraint makes every dimpayer row fail to load
   (a real `ChunkFailed` from copy-chunk); the Map must fail with
   States.ExceedToleratedFailureThreshold and the execution go Catch -> fail-run (run marked
   failed) -> SNS publish -> Fail.

Exit code 0 when every check passed. Workarounds for the interpreter are in README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

from adapter import LambdaAdapter  # noqa: E402
from functions import FunctionProcesses  # noqa: E402
from interpreter import EXCEEDED_ERROR, apply_patches  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "123456789012"
ENVIRONMENT = "local"
BUCKET = "thaw-local-data"
FUNCTIONS = ["plan", "copy-chunk", "merge", "reconcile", "conflict-create", "fail-run", "schema-migrate"]
REFERENCE_DB = "sfn_reference"
STATE_DB = "sfn_state"
NUMERIC_PLACEHOLDERS = ("MaxConcurrency", "ToleratedFailurePercentage", "ExecutionTimeoutSeconds")
MAX_CONCURRENCY = 4  # the Map's MaxConcurrency here (infra/config: workflow.maxConcurrency)
COPY_CHUNK_INSTANCES = 2  # concurrent copy-chunk environments (2 cores; Lambda would run MAX_CONCURRENCY)
# The Lambdas run examples/config.staged.json (the visit fact table staged through the harness's S3
# server); the reference `thaw run` runs examples/config.json (every table direct), so equal
# checksums prove the staged load equals the direct copy. Files of at most this many bytes, so that
# a chunk unloads into several files and LoadStagedFiles has several Map items per chunk.
LAMBDA_CONFIG = "examples/config.staged.json"
STAGED_MAX_FILE_SIZE = 16384


def log(message: str) -> None:
    print(f"sfn-local: {message}", flush=True)


def fail(message: str) -> None:
    raise SystemExit(f"sfn-local: FAILED: {message}")


# ------------------------------------------------------------------ ASL rendering

def render_definition(text: str, values: dict[str, str | int | float]) -> dict:
    """Same rules as infra/lib/asl.ts renderDefinition: numeric placeholders lose their quotes,
    ToleratedFailurePercentage is always a float, strings are inserted JSON-escaped."""
    import re

    missing = sorted({m for m in re.findall(r"\$\{([A-Za-z0-9_]+)\}", text)} - set(values))
    if missing:
        raise ValueError(f"no value for placeholder(s) {', '.join(missing)}")
    out = text
    for name, value in values.items():
        if isinstance(value, (int, float)):
            quoted, bare = f'"${{{name}}}"', f"${{{name}}}"
            if out.count(bare) != out.count(quoted):
                raise ValueError(f"numeric placeholder ${{{name}}} must be a whole JSON string value")
            out = out.replace(quoted, bare)
    for name, value in values.items():
        if isinstance(value, (int, float)):
            text_value = f"{float(value):.1f}" if name == "ToleratedFailurePercentage" and float(value).is_integer() else str(value)
        else:
            text_value = json.dumps(value)[1:-1]
        out = out.replace(f"${{{name}}}", text_value)
    return json.loads(out)


def definition_values(topic_arn: str, tolerated_failure_percentage: float = 0.0) -> dict[str, str | int | float]:
    arn = lambda name: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"  # noqa: E731
    return {
        "Environment": ENVIRONMENT,
        "ManifestBucket": BUCKET,
        "PlanFunctionArn": arn("plan"),
        "CopyChunkFunctionArn": arn("copy-chunk"),
        "MergeFunctionArn": arn("merge"),
        "ReconcileFunctionArn": arn("reconcile"),
        "ConflictCreateFunctionArn": arn("conflict-create"),
        "FailRunFunctionArn": arn("fail-run"),
        "AlarmTopicArn": topic_arn,
        "MaxConcurrency": MAX_CONCURRENCY,
        "ToleratedFailurePercentage": tolerated_failure_percentage,
        "ExecutionTimeoutSeconds": 3600,
        # No dual-read window (as infra/config/<env>.json with dualRead dates null); scenario_dual_read asks by input.
        "DualReadWindowStart": "1970-01-01T00:00:00Z",
        "DualReadWindowEnd": "1970-01-01T00:00:00Z",
        "DualReadSnowflakeDatabase": "CONFLICTREPORT",
        "DualReadSnowflakeSchema": "PUBLIC",
    }


# ------------------------------------------------------------------ PostgreSQL via psql

def psql_bin() -> str:
    found = shutil.which("psql")
    if found:
        return found
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))
    if not candidates:
        fail("psql not found on PATH or in /usr/lib/postgresql/*/bin")
    return str(candidates[-1])


def psql(database: str, sql: str) -> list[list[str]]:
    """Run `sql` in `database` as the harness user; rows as lists of strings."""
    env = dict(os.environ, PGPASSWORD=os.environ["THAW_PG_PASSWORD"])
    out = subprocess.run(
        [psql_bin(), "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
         "-h", os.environ["THAW_PG_HOST"], "-p", os.environ["THAW_PG_PORT"], "-U", os.environ["THAW_PG_USER"],
         "-d", database, "-c", sql],
        env=env, check=True, capture_output=True, text=True,
    ).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def recreate_database(name: str) -> None:
    psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    psql("postgres", f'CREATE DATABASE "{name}"')


# Tables conflict-create writes, compared too (the Lambda and `thaw run` run the same detection).
CONFLICT_OUTPUTS = ["conflict.conflicts", "conflict.conflictvisitmaps"]

# Columns left out of the checksums because they hold the wall clock of the run that wrote them
# (conflict-create's `now()`), or an identity value assigned in insert order; everything else must
# be byte-for-byte equal. Legacy: conflict.settings."LastLoadDate" is the last detection time.
WALL_CLOCK_COLUMNS = {
    "conflict.settings": ["LastLoadDate"],
    "conflict.conflicts": ["RECORDEDDATETIME", "CreatedDate"],
    "conflict.conflictvisitmaps": ["ID", "CreatedDate", "UpdatedDate", "ResolveDate", "CRDATEUNIQUE", "G_CRDATEUNIQUE"],
}


def sync_targets(config: dict) -> list[str]:
    return [f"{s['target_pg_schema']}.{t['target']}" for s in config["sources"] if s.get("enabled", True)
            for t in s["tables"] if t.get("enabled", True)]


def table_checksum_sql(target: str) -> str:
    """count(*) and an order-independent md5 over the rows' JSON, wall-clock columns removed."""
    schema, table = target.split(".")
    dropped = WALL_CLOCK_COLUMNS.get(target, [])
    row = "to_jsonb(t)" + "".join(f" - '{c}'" for c in dropped)
    return (f"SELECT count(*), coalesce(md5(string_agg(md5(({row})::text), '' ORDER BY md5(({row})::text))), '') "
            f'FROM "{schema}"."{table}" t')


def end_state(database: str, targets: list[str]) -> dict:
    """Counts and checksums of every sync target and conflict output, plus the latest run's
    migration_status outcomes (per target: status, rows copied, chunks total/completed/failed)."""
    tables = {target: tuple(psql(database, table_checksum_sql(target))[0]) for target in targets}
    run = psql(database, "SELECT run_id, status FROM migration_status.migration_runs ORDER BY started_at DESC LIMIT 1")
    run_id, run_status = run[0]
    outcomes = psql(database, "SELECT target_schema || '.' || target_table, status, total_rows_copied, total_chunks, completed_chunks, "
                              "failed_chunks FROM migration_status.migration_table_status "
                              f"WHERE run_id = '{run_id}' ORDER BY 1") if run_id else []
    return {"tables": tables, "run_status": run_status, "table_outcomes": [tuple(r) for r in outcomes]}


def staged_lambda_config(text: str, max_file_size: int = STAGED_MAX_FILE_SIZE) -> str:
    """examples/config.staged.json as the Lambdas get it: `max_file_size_mb` replaced by
    `max_file_size` = `max_file_size` bytes (every other key as written)."""
    key = '"max_file_size_mb": 16'
    if text.count(key) != 1:
        raise ValueError(f"{LAMBDA_CONFIG} no longer holds exactly one {key}: update staged_lambda_config")
    return text.replace(key, f'"max_file_size": {max_file_size}')


def staged_sources(config: dict) -> list[str]:
    """Source names (Snowflake table names) of the tables `config` loads through staging."""
    return [t["source"] for s in config["sources"] if s.get("enabled", True) for t in s["tables"]
            if t.get("enabled", True) and t.get("source_mode", s.get("source_mode", "direct")) == "staged"]


# ------------------------------------------------------------------ processes

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fail(f"{what} exited with code {process.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    fail(f"{what} did not listen on {port} within {seconds:.0f} s")


def cargo(*args: str) -> None:
    subprocess.run(["cargo", *args], cwd=ROOT, check=True)


def debug_binaries() -> Path:
    """Where `cargo build` (dev profile) put the CLI and the Lambda binaries."""
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"


def thaw_cli(*args: str, database: str) -> subprocess.CompletedProcess:
    binary = debug_binaries() / "thaw"
    env = dict(os.environ, THAW_PG_DATABASE=database)
    return subprocess.run([str(binary), *args], cwd=ROOT, env=env, check=False, capture_output=True, text=True)


# ------------------------------------------------------------------ the run

class LocalCloud:
    """moto (interpreter in-process + server thread), cargo lambda watch, and the adapter."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.watch: subprocess.Popen | None = None
        self.adapter: LambdaAdapter | None = None

    def start(self) -> None:
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                           "AWS_REGION": REGION, "MOTO_ALLOW_NONEXISTENT_REGION": "true"})
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            os.environ.pop(name, None)
        from moto import mock_aws
        from moto.server import ThreadedMotoServer

        # The interpreter logs every handled failure with its whole parse tree: to a file, not the console.
        # The moto server's request lines go there too.
        for name in ("moto", "werkzeug"):
            logger = logging.getLogger(name)
            logger.addHandler(logging.FileHandler(self.work / "moto.log"))
            logger.propagate = False
        apply_patches()
        self.mock = mock_aws(config={"stepfunctions": {"execute_state_machine": True}})
        self.mock.start()
        self.moto_port = free_port()
        self.moto_server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.moto_port, verbose=False)
        self.moto_server.start()
        import boto3

        self.s3 = boto3.client("s3", region_name=REGION)
        self.sns = boto3.client("sns", region_name=REGION)
        self.sqs = boto3.client("sqs", region_name=REGION)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        self.secrets = boto3.client("secretsmanager", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.topic_arn = self.sns.create_topic(Name=f"thaw-{ENVIRONMENT}-alarms")["TopicArn"]
        queue_url = self.sqs.create_queue(QueueName="alarm-mail")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        self.alarm_queue = queue_url

    def lambda_environment(self, database: str) -> dict[str, str]:
        """The infra/README.md runtime contract, pointed at moto and the harness services."""
        config_key = "config/thaw.json"
        self.s3.put_object(Bucket=BUCKET, Key=config_key, Body=staged_lambda_config((ROOT / LAMBDA_CONFIG).read_text()).encode())
        pg_secret = self.secrets.create_secret(Name=f"thaw-{ENVIRONMENT}/db/loader", SecretString=json.dumps({
            "username": os.environ["THAW_PG_USER"], "password": os.environ["THAW_PG_PASSWORD"], "engine": "postgres",
            "host": os.environ["THAW_PG_HOST"], "port": int(os.environ["THAW_PG_PORT"]), "dbname": database}))["ARN"]
        env = {
            "THAW_ENV": ENVIRONMENT,
            "THAW_CONFIG_URI": f"s3://{BUCKET}/{config_key}",
            "THAW_MANIFEST_BUCKET": BUCKET,
            "THAW_PG_DATABASE": database,
            "THAW_PG_AUTH": "secret",
            "THAW_PG_SECRET_ARN": pg_secret,
            "THAW_PG_ADMIN_SECRET_ARN": pg_secret,
            "THAW_PG_SSLMODE": "disable",
            "THAW_METRICS_NAMESPACE": "Thaw",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{self.moto_port}",
            "RUST_LOG": "info",
        }
        return env

    def start_lambdas(self, database: str, binaries: Path) -> None:
        """`cargo lambda watch --only-lambda-apis` plus the prebuilt binaries polling it (functions.py)."""
        watch_port = free_port()
        log_path = self.work / "cargo-lambda-watch.log"
        self.watch_log = open(log_path, "w")  # noqa: SIM115 (closed in stop)
        self.watch = subprocess.Popen(
            ["cargo", "lambda", "watch", "--only-lambda-apis", "--invoke-address", "127.0.0.1", "--invoke-port", str(watch_port)],
            cwd=ROOT, stdout=self.watch_log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(watch_port, self.watch, "cargo lambda watch", 120)
        env = dict(os.environ, **self.lambda_environment(database))
        env.pop("THAW_PG_PASSWORD")  # the Lambdas must take it from Secrets Manager
        env.pop("DATABASE_URL", None)
        self.functions = FunctionProcesses(binaries=binaries, runtime_api=f"http://127.0.0.1:{watch_port}/.rt", environment=env,
                                           log_dir=self.work, instances={"copy-chunk": COPY_CHUNK_INSTANCES})
        self.functions.start(FUNCTIONS)
        self.adapter = LambdaAdapter(watch_url=f"http://127.0.0.1:{watch_port}", before_invoke=self.functions.ensure_running).start()
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = self.adapter.url
        log(f"moto on {self.moto_port}, cargo lambda watch on {watch_port}, adapter on {self.adapter.port} (logs in {self.work})")

    def invoke(self, function: str, event: dict) -> dict:
        """A direct Lambda invoke through the adapter (what CloudFormation's Provider does)."""
        request = urllib.request.Request(f"{self.adapter.url}/2015-03-31/functions/{function}/invocations",
                                         data=json.dumps(event).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=900) as response:
            payload = json.loads(response.read())
            if response.headers.get("X-Amz-Function-Error"):
                fail(f"{function} failed: {payload}")
            return payload

    def create_state_machine(self, name: str, tolerated_failure_percentage: float = 0.0) -> str:
        text = (ROOT / "statemachines" / "sync.asl.json").read_text()
        definition = render_definition(text, definition_values(self.topic_arn, tolerated_failure_percentage))
        return self.sfn.create_state_machine(name=name, definition=json.dumps(definition), type="STANDARD",
                                             roleArn=f"arn:aws:iam::{ACCOUNT}:role/thaw-{ENVIRONMENT}-sfn")["stateMachineArn"]

    def execute(self, machine_arn: str, name: str, execution_input: dict, timeout_seconds: float = 600) -> dict:
        arn = self.sfn.start_execution(stateMachineArn=machine_arn, name=name, input=json.dumps(execution_input))["executionArn"]
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            described = self.sfn.describe_execution(executionArn=arn)
            if described["status"] != "RUNNING":
                return described
            time.sleep(0.5)
        fail(f"execution {name} still RUNNING after {timeout_seconds:.0f} s")
        raise AssertionError  # unreachable

    def history(self, execution_arn: str) -> list[dict]:
        return self.sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]

    def alarm_messages(self) -> list[dict]:
        got = self.sqs.receive_message(QueueUrl=self.alarm_queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        return [json.loads(m["Body"]) for m in got]

    def stop(self) -> None:
        if self.adapter:
            self.adapter.stop()
        if getattr(self, "functions", None):
            self.functions.stop()
        if self.watch and self.watch.poll() is None:
            os.killpg(self.watch.pid, signal.SIGTERM)
            try:
                self.watch.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.watch.pid, signal.SIGKILL)
        if getattr(self, "moto_server", None):
            self.moto_server.stop()
        if getattr(self, "mock", None):
            self.mock.stop()


def scenario_sync(cloud: LocalCloud, targets: list[str], reference: dict, staged: list[str]) -> None:
    log("scenario sync: injected Transient on the first copy-chunk call must be retried, run must SUCCEED")
    cloud.adapter.inject("copy-chunk", "Transient", times=1)
    machine = cloud.create_state_machine(f"thaw-{ENVIRONMENT}-sync")
    started = time.monotonic()
    result = cloud.execute(machine, "sync-1", {})
    if result["status"] != "SUCCEEDED":
        events = [e for e in cloud.history(result["executionArn"]) if "Failed" in e["type"]]
        fail(f"sync execution ended {result['status']}: {result.get('error')} {result.get('cause', '')[:1500]}\n{json.dumps(events, default=str)[:3000]}")
    copies = cloud.adapter.calls("copy-chunk")
    injected = [c for c in copies if c.injected]
    retried = [c for c in copies if not c.injected and c.payload == injected[0].payload] if injected else []
    if not injected or not retried or retried[0].error_type is not None:
        fail(f"the injected Transient copy-chunk failure was not retried to success: {[(c.payload, c.error_type) for c in copies][:10]}")
    output = json.loads(result.get("output") or "{}")
    log(f"SUCCEEDED in {time.monotonic() - started:.1f} s: plan {output.get('plan')}, {len(copies)} copy-chunk calls "
        f"({len(injected)} injected Transient, retried), reconcile {output.get('reconcile')}")
    manifest_key = f"manifests/sync-1/chunks.json"
    items = json.loads(cloud.s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    if len(items) != output["plan"]["chunks"]:
        fail(f"s3://{BUCKET}/{manifest_key} holds {len(items)} chunk items, plan reported {output['plan']['chunks']}")
    state = end_state(STATE_DB, targets)
    problems = [f"{t}: thaw run {reference['tables'][t]} vs state machine {state['tables'][t]}"
                for t in targets if reference["tables"][t] != state["tables"][t]]
    if reference["table_outcomes"] != state["table_outcomes"]:
        problems.append(f"migration_status outcomes differ: {reference['table_outcomes']} vs {state['table_outcomes']}")
    if reference["run_status"] != state["run_status"]:
        problems.append(f"run status differs: {reference['run_status']} vs {state['run_status']}")
    if problems:
        fail("end state differs from `thaw run`:\n  " + "\n  ".join(problems))
    emf = [json.loads(line) for line in cloud.functions.log_path("reconcile").read_text().splitlines() if '"HoursSinceLastVerifiedSync"' in line]
    if not any(m.get("HoursSinceLastVerifiedSync") == 0 and m.get("Environment") == ENVIRONMENT
               and m["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Thaw" for m in emf):
        fail(f"reconcile logged no EMF datapoint HoursSinceLastVerifiedSync=0 (Environment {ENVIRONMENT}) after the clean reconcile: {emf}")
    rows = sum(int(c) for c, _ in state["tables"].values())
    log(f"end state equals `thaw run`: {len(targets)} tables, {rows} rows, identical checksums and migration_status outcomes; "
        "reconcile emitted HoursSinceLastVerifiedSync=0")
    check_staged_load(cloud, output["plan"]["run_id"], "sync-1", copies, staged)


def check_staged_load(cloud: LocalCloud, run_id: str, execution: str, copies: list, staged: list[str]) -> None:
    """The staged tables went StagedFileManifest -> LoadStagedFiles (one Map item per file): every
    file recorded by the unload is `completed` and was loaded by exactly one successful copy-chunk
    call naming it; the manifest in S3 listed exactly those files; every staged chunk completed with
    rows_copied = rows_unloaded = its files' rows; chunks unloaded into several files."""
    if not staged:
        fail(f"{LAMBDA_CONFIG} stages no table: the staged path would not be covered")
    in_list = ", ".join(f"'{t}'" for t in staged)
    files = psql(STATE_DB, "SELECT source_table, chunk_id, file_key, status, rows FROM migration_status.migration_file_status "
                           f"WHERE run_id = '{run_id}' ORDER BY 1, 2, 3")
    if not files:
        fail(f"run {run_id} recorded no staged file for {staged}")
    if sorted({f[0] for f in files}) != sorted(staged):
        fail(f"staged files recorded for {sorted({f[0] for f in files})}, expected {sorted(staged)}")
    unfinished = [f for f in files if f[3] != "completed"]
    if unfinished:
        fail(f"staged files not completed: {unfinished[:5]}")
    chunks = psql(STATE_DB, "SELECT c.source_table, c.chunk_id, c.status, c.rows_copied, c.rows_unloaded, "
                            "(SELECT coalesce(sum(rows), 0) FROM migration_status.migration_file_status f WHERE f.run_id = c.run_id "
                            "AND f.source_table = c.source_table AND f.chunk_id = c.chunk_id) "
                            f"FROM migration_status.migration_chunk_status c WHERE c.run_id = '{run_id}' AND c.source_table IN ({in_list}) ORDER BY 1, 2")
    bad = [c for c in chunks if c[2] != "completed" or not (c[3] == c[4] == c[5])]
    if bad:
        fail(f"staged chunks not completed with rows_copied = rows_unloaded = their files' rows: {bad[:5]}")
    if len(files) <= len(chunks):
        fail(f"{len(files)} staged files for {len(chunks)} chunks: expected several files per chunk (max_file_size {STAGED_MAX_FILE_SIZE})")
    manifest_key = f"manifests/{execution}/files.json"
    manifest = json.loads(cloud.s3.get_object(Bucket=BUCKET, Key=manifest_key)["Body"].read())
    keys = sorted(f[2] for f in files)
    if sorted(item["file_key"] for item in manifest) != keys:
        fail(f"s3://{BUCKET}/{manifest_key} lists {len(manifest)} files, the run recorded {len(keys)}")
    loaded = sorted(c.payload["file_key"] for c in copies if c.payload and c.payload.get("file_key") and c.error_type is None)
    if loaded != keys:
        fail(f"LoadStagedFiles: successful copy-chunk calls per file {loaded} differ from the recorded files {keys}")
    unloads = {(c.payload["source_table"], int(c.payload["chunk_id"])) for c in copies
               if c.payload and c.payload.get("staged") == "unload" and c.payload.get("source_table") in staged}
    if unloads != {(c[0], int(c[1])) for c in chunks}:
        fail(f"CopyChunks unload items {sorted(unloads)} differ from the staged chunks {[(c[0], c[1]) for c in chunks]}")
    log(f"staged: {len(chunks)} chunk(s) of {', '.join(staged)} unloaded into {len(files)} files ({sum(int(f[4]) for f in files)} rows), "
        f"one LoadStagedFiles item each, all completed; target checksum equals the direct `thaw run`")


def scenario_dual_read(cloud: LocalCloud) -> None:
    """The DualRead state (docs/reconcile.md §10) asked for by the execution input. The emulator holds no legacy
    CONFLICTREPORT tables, so the comparison cannot be made: it must be recorded `error` in dual_read_results,
    published to the alarm topic with the DualReadProblems metric at 1, and leave the run `completed` and the
    execution SUCCEEDED (a dual-read never fails the sync)."""
    log("scenario dual-read: input dual_read=true; the comparison fails (no CONFLICTREPORT) -> recorded, notified, run still completed")
    before = psql(STATE_DB, "SELECT count(*) FROM migration_status.dual_read_results")[0][0]
    machine = cloud.create_state_machine(f"thaw-{ENVIRONMENT}-sync-dual-read")
    # allow_truncate: a second run over examples/config.json reloads its truncate_onstart table (dimuser).
    result = cloud.execute(machine, "sync-dual-read-1", {"dual_read": True, "allow_truncate": True})
    if result["status"] != "SUCCEEDED":
        fail(f"dual-read execution ended {result['status']}: {result.get('error')} {result.get('cause', '')[:1500]}")
    calls = [c for c in cloud.adapter.calls("reconcile") if c.payload and c.payload.get("operation") == "dual-read"]
    if len(calls) != 1 or calls[0].error_type is not None:
        fail(f"the reconcile Lambda was not invoked once for the dual-read: {[(c.payload, c.error_type) for c in calls]}")
    output = json.loads(result.get("output") or "{}")
    run_id = output["plan"]["run_id"]
    if calls[0].payload != {"operation": "dual-read", "run_id": run_id, "snowflake_database": "CONFLICTREPORT", "snowflake_schema": "PUBLIC"}:
        fail(f"DualRead payload {calls[0].payload}")
    dual_read = output.get("dual_read", {})
    if dual_read.get("status") != "error" or not dual_read.get("error"):
        fail(f"the DualRead state's output should be status 'error' with its reason: {dual_read}")
    # The newest row, its reason compared in SQL (it may hold tabs or newlines); the response carries its first 2000 characters.
    reason = dual_read["error"].replace("'", "''")
    rows = psql(STATE_DB, "SELECT count(*), (array_agg(status ORDER BY checked_at DESC))[1], "
                          f"(array_agg(left(error_message, 2000) = '{reason}' ORDER BY checked_at DESC))[1] FROM migration_status.dual_read_results")
    if rows != [[str(int(before) + 1), "error", "t"]]:
        fail(f"dual_read_results should have gained one 'error' row with the step's reason ({dual_read['error'][:300]}): {rows}")
    status = psql(STATE_DB, f"SELECT status FROM migration_status.migration_runs WHERE run_id = '{run_id}'")
    if status != [["completed"]]:
        fail(f"run {run_id} is {status} after a failed dual-read, expected completed (the dual-read never fails the run)")
    if cloud.adapter.calls("fail-run"):
        fail("fail-run was invoked by the dual-read execution")
    messages = cloud.alarm_messages()
    notified = [m for m in messages if m.get("run_id") == run_id and m.get("runbook") == "ops/runbooks/dual-read.md"]
    if not notified or notified[0]["dual_read"]["status"] != "error":
        fail(f"no alarm-topic message with the dual-read outcome for run {run_id}: {messages}")
    emf = [json.loads(line) for line in cloud.functions.log_path("reconcile").read_text().splitlines() if '"DualReadProblems"' in line]
    if not any(m.get("DualReadProblems") == 1 and m.get("Environment") == ENVIRONMENT for m in emf):
        fail(f"reconcile logged no EMF datapoint DualReadProblems=1 after the failed comparison: {emf}")
    log(f"dual-read recorded 'error' ({dual_read['error'][:120]}), notified, DualReadProblems=1; run {run_id} completed, execution SUCCEEDED")


def scenario_failing_chunk(cloud: LocalCloud) -> None:
    log(f"scenario failing chunk: ChunkFailed in copy-chunk must fail the Map ({EXCEEDED_ERROR}) -> Catch -> fail-run -> SNS -> Fail")
    psql(STATE_DB, 'ALTER TABLE analytics.dimpayer ADD CONSTRAINT sfn_local_reject_every_row CHECK ("Payer Name" IS NULL) NOT VALID')
    calls_before = len(cloud.adapter.calls("copy-chunk"))
    try:
        machine = cloud.create_state_machine(f"thaw-{ENVIRONMENT}-sync-failing")
        result = cloud.execute(machine, "sync-failing-1", {"mode": "full", "tables": ["dimpayer"]})
    finally:
        psql(STATE_DB, "ALTER TABLE analytics.dimpayer DROP CONSTRAINT sfn_local_reject_every_row")
    if result["status"] != "FAILED":
        fail(f"failing-chunk execution ended {result['status']}, expected FAILED")
    # AWS: a failed child beyond ToleratedFailurePercentage (0.0) fails the Map Run, and the Map state
    # fails with States.ExceedToleratedFailureThreshold; the chunk's own ChunkFailed stays in the child.
    if result.get("error") != EXCEEDED_ERROR:
        fail(f"failing-chunk execution failed with {result.get('error')!r}, expected {EXCEEDED_ERROR}: {result.get('cause', '')[:500]}")
    copies = [c for c in cloud.adapter.calls("copy-chunk")[calls_before:] if c.payload and c.payload.get("source_table") == "DIMPAYER"]
    if not copies or any(c.error_type != "ChunkFailed" for c in copies):
        fail(f"copy-chunk of DIMPAYER did not fail with ChunkFailed: {[(c.payload, c.error_type) for c in copies]}")
    chunk_ids = [c.payload["chunk_id"] for c in copies]
    if len(chunk_ids) != len(set(chunk_ids)):
        fail(f"a ChunkFailed chunk was retried (ChunkFailed is not in the Retry list): chunk ids {chunk_ids}")
    fail_runs = cloud.adapter.calls("fail-run")
    if not fail_runs or fail_runs[-1].error_type is not None:
        fail(f"fail-run was not invoked successfully: {[(c.payload, c.error_type) for c in fail_runs]}")
    run_id = fail_runs[-1].payload["run_id"]
    if fail_runs[-1].payload.get("error") != EXCEEDED_ERROR:
        fail(f"fail-run got error {fail_runs[-1].payload.get('error')!r}, expected {EXCEEDED_ERROR}")
    status = psql(STATE_DB, f"SELECT status FROM migration_status.migration_runs WHERE run_id = '{run_id}'")
    if status != [["failed"]]:
        fail(f"run {run_id} has status {status} in migration_status, expected failed")
    chunk_errors = psql(STATE_DB, "SELECT count(*) FILTER (WHERE status = 'failed'), count(*) FROM migration_status.migration_chunk_status "
                                  f"WHERE run_id = '{run_id}' AND source_table = 'DIMPAYER'")
    if chunk_errors[0][0] != str(len(copies)):
        fail(f"migration_chunk_status of run {run_id}: {chunk_errors[0][0]} of {chunk_errors[0][1]} DIMPAYER chunks failed, expected {len(copies)}")
    messages = cloud.alarm_messages()
    if not any(m.get("error") == EXCEEDED_ERROR and m.get("run_id") == run_id for m in messages):
        fail(f"no alarm-topic message for run {run_id}: {messages}")
    log(f"FAILED as designed: {len(copies)} DIMPAYER chunk(s) ChunkFailed (not retried), Map {EXCEEDED_ERROR}, "
        f"run {run_id} marked failed, alarm topic got {len(messages)} message(s)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, default=int(os.environ.get("SFN_LOCAL_VISITS", "400")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SFN_LOCAL_SEED", "7")))
    parser.add_argument("--skip-build", action="store_true", help="the binaries are already built")
    args = parser.parse_args(argv)
    for var in ("THAW_PG_HOST", "THAW_PG_PORT", "THAW_PG_USER", "THAW_PG_PASSWORD", "THAW_SF_ENDPOINT"):
        if var not in os.environ:
            fail(f"{var} is not set: run under the harness, e.g. python3 tests/harness.py run -- {sys.executable} {Path(__file__).relative_to(ROOT)}")
    if shutil.which("cargo-lambda") is None:
        fail("cargo-lambda is not on PATH: pip install cargo-lambda (make sfn-local uses $THAW_CACHE/infra-venv)")
    started = time.monotonic()
    if not args.skip_build:
        log("building the CLI and the Lambda binaries (dev profile)")
        cargo("build", "--bin", "thaw", *[a for f in FUNCTIONS for a in ("--bin", f)])
    config = json.loads((ROOT / "examples" / "config.json").read_text().replace("${THAW_PG_PORT:-5432}", "5432"))
    targets = sync_targets(config) + CONFLICT_OUTPUTS
    lambda_config = json.loads((ROOT / LAMBDA_CONFIG).read_text().replace("${THAW_PG_PORT:-5432}", "5432"))
    if sync_targets(lambda_config) != sync_targets(config):
        fail(f"{LAMBDA_CONFIG} and examples/config.json must load the same targets")

    log(f"seeding the emulator: {args.visits} visits, seed {args.seed}")
    seeded = thaw_cli("dev", "seed", "--config", "examples/config.json", "--visits", str(args.visits), "--seed", str(args.seed), database="postgres")
    if seeded.returncode != 0:
        fail(f"thaw dev seed failed:\n{seeded.stdout[-2000:]}\n{seeded.stderr[-2000:]}")
    for database in (REFERENCE_DB, STATE_DB):
        recreate_database(database)
    log("reference: thaw run")
    reference_run = thaw_cli("run", "--config", "examples/config.json", database=REFERENCE_DB)
    if reference_run.returncode != 0:
        fail(f"thaw run failed:\n{reference_run.stdout[-3000:]}\n{reference_run.stderr[-3000:]}")
    reference = end_state(REFERENCE_DB, targets)

    import tempfile

    with tempfile.TemporaryDirectory(prefix="thaw-sfn-local-") as work:
        cloud = LocalCloud(Path(work))
        try:
            cloud.start()
            cloud.start_lambdas(STATE_DB, debug_binaries())
            created = cloud.invoke("schema-migrate", {"RequestType": "Create", "ResourceProperties": {"Database": STATE_DB}})
            log(f"schema-migrate (Create): {created}")
            scenario_sync(cloud, targets, reference, staged_sources(lambda_config))
            scenario_dual_read(cloud)
            scenario_failing_chunk(cloud)
        except BaseException:
            if getattr(cloud, "functions", None):
                print(cloud.functions.tails(), file=sys.stderr)
                if cloud.functions.restarts:
                    print(f"restarted: {cloud.functions.restarts}", file=sys.stderr)
            watch_log = Path(work) / "cargo-lambda-watch.log"
            if watch_log.exists():
                print("--- last 30 lines of cargo lambda watch ---\n" + "\n".join(watch_log.read_text().splitlines()[-30:]), file=sys.stderr)
            raise
        finally:
            cloud.stop()
    log(f"all checks passed in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
