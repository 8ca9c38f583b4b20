"""Fixtures for the emulator's own tests: a real connection to the emulator
(snowflake-connector-python over HTTPS, verified against the harness CA) and a
real boto3 client for the harness's S3 server. Run inside the harness:

    python3 tests/harness.py run -- <venv>/bin/pytest -q tests/emulator/tests   (make test-emulator)
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

if not os.environ.get("THAW_SF_ENDPOINT") or not os.environ.get("THAW_S3_ENDPOINT"):
    pytest.exit("run these tests inside tests/harness.py (make test-emulator): THAW_SF_ENDPOINT/THAW_S3_ENDPOINT unset", 2)

# The connector's HTTP stack reads the CA bundle when imported (as tests/bench/legacy_copy.py).
os.environ["REQUESTS_CA_BUNDLE"] = os.environ["THAW_SF_CA_FILE"]

import boto3  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import snowflake.connector  # noqa: E402

DATABASE = "THAW_UNLOAD_TESTS"


def connect(schema: str | None = None) -> snowflake.connector.SnowflakeConnection:
    host, _, port = os.environ["THAW_SF_ENDPOINT"].rpartition(":")
    return snowflake.connector.connect(
        account=os.environ["THAW_SF_ACCOUNT"], user=os.environ["THAW_SF_USER"], password=os.environ["THAW_SF_PASSWORD"],
        host=host, port=int(port), protocol="https", database=DATABASE, schema=schema,
    )


@pytest.fixture(scope="session")
def bucket() -> str:
    return os.environ["THAW_S3_BUCKET"]


@pytest.fixture(scope="session")
def s3() -> Any:
    return boto3.client("s3", endpoint_url=os.environ["THAW_S3_ENDPOINT"], region_name=os.environ["AWS_REGION"])


@pytest.fixture()
def schema() -> str:
    """A fresh schema per test, so stages and tables never collide."""
    return "S_" + uuid.uuid4().hex[:12].upper()


@pytest.fixture()
def cur(schema: str) -> Iterator[Any]:
    conn = connect()
    c = conn.cursor()
    c.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    c.execute(f"CREATE SCHEMA {DATABASE}.{schema}")
    c.execute(f"USE SCHEMA {DATABASE}.{schema}")
    try:
        yield c
    finally:
        conn.close()


@pytest.fixture()
def prefix(schema: str) -> str:
    """The stage's S3 prefix for this test."""
    return f"unload-tests/{schema.lower()}/"


def objects(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted((o for p in pages for o in p.get("Contents", [])), key=lambda o: o["Key"])


def read_parquet(s3: Any, bucket: str, key: str) -> pq.ParquetFile:
    return pq.ParquetFile(io.BytesIO(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
