"""Unload through the emulator into the harness's S3 server, read back with pyarrow.

Every test talks to the real emulator (Snowflake's HTTP protocol over TLS,
snowflake-connector-python) and the real S3 API (boto3 against moto's server);
nothing is mocked. docs/emulator.md §12 describes what is emulated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
from decimal import Decimal

import pytest
import snowflake.connector
from conftest import DATABASE, objects, read_parquet

ROWS = 3000
PARQUET_FORMAT = "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = SNAPPY) HEADER = TRUE"


def make_visits(cur, rows: int = ROWS) -> None:
    cur.execute("CREATE TABLE VISITS (ID NUMBER(38,0), AGENCY VARCHAR, AMOUNT NUMBER(12,2), VISIT_DATE DATE, NOTE VARCHAR)")
    cur.execute(
        "INSERT INTO VISITS SELECT SEQ4() + 1, 'agency-' || MOD(SEQ4(), 7), (SEQ4() * 37 % 100000) / 100, "
        "DATEADD(day, MOD(SEQ4(), 365), '2024-01-01'::DATE), REPEAT('n', MOD(SEQ4(), 50)) "
        f"FROM TABLE(GENERATOR(ROWCOUNT => {rows}))"
    )


def expected_visits(rows: int = ROWS) -> dict[int, tuple]:
    return {
        i + 1: ("agency-%d" % (i % 7), Decimal(i * 37 % 100000) / 100, dt.date(2024, 1, 1) + dt.timedelta(days=i % 365), "n" * (i % 50))
        for i in range(rows)
    }


def create_stage(cur, bucket: str, prefix: str, name: str = "UNLOAD_STAGE") -> None:
    status = cur.execute(f"CREATE STAGE {name} URL = 's3://{bucket}/{prefix}' STORAGE_INTEGRATION = THAW_S3").fetchall()
    assert status == [(f"Stage area {name} successfully created.",)]


def rows_of(s3, bucket: str, keys: list[str]) -> dict[int, tuple]:
    rows: dict[int, tuple] = {}
    for key in keys:
        for r in read_parquet(s3, bucket, key).read().to_pylist():
            assert r["ID"] not in rows, f"row {r['ID']} unloaded twice"
            rows[r["ID"]] = (r["AGENCY"], r["AMOUNT"], r["VISIT_DATE"], r["NOTE"])
    return rows


def test_harness_exports_s3_with_an_existing_bucket(s3, bucket):
    assert bucket in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_unload_splits_by_max_file_size_and_holds_exactly_the_rows(cur, s3, bucket, prefix):
    make_visits(cur)
    create_stage(cur, bucket, prefix)
    # One file with the default MAX_FILE_SIZE (16 MiB): its size is the whole result's.
    whole = cur.execute(f"COPY INTO @UNLOAD_STAGE/whole/ FROM (SELECT * FROM VISITS) {PARQUET_FORMAT}").fetchall()
    assert [d.name for d in cur.description] == ["rows_unloaded", "input_bytes", "output_bytes"]
    [(rows_unloaded, input_bytes, whole_size)] = whole
    assert rows_unloaded == ROWS and input_bytes > 0
    assert [o["Key"] for o in objects(s3, bucket, prefix + "whole/")] == [prefix + "whole/data_0_0_0.snappy.parquet"]

    # A third of that size (plus one byte) per file: three files.
    max_size = whole_size // 3 + 1
    [(rows_unloaded, _, output_bytes)] = cur.execute(
        f"COPY INTO @UNLOAD_STAGE/split/ FROM (SELECT * FROM VISITS) {PARQUET_FORMAT} MAX_FILE_SIZE = {max_size}").fetchall()
    files = objects(s3, bucket, prefix + "split/")
    assert [o["Key"] for o in files] == [f"{prefix}split/data_0_0_{i}.snappy.parquet" for i in range(math.ceil(whole_size / max_size))]
    assert len(files) == 3
    assert rows_unloaded == ROWS
    assert output_bytes == sum(o["Size"] for o in files)
    assert rows_of(s3, bucket, [o["Key"] for o in files]) == expected_visits()


def test_list_returns_every_key_with_size_and_md5(cur, s3, bucket, prefix):
    make_visits(cur, 500)
    create_stage(cur, bucket, prefix)
    cur.execute(f"COPY INTO @UNLOAD_STAGE/a/ FROM (SELECT * FROM VISITS) {PARQUET_FORMAT} MAX_FILE_SIZE = 2000")
    cur.execute(f"COPY INTO @UNLOAD_STAGE/b/ FROM (SELECT * FROM VISITS WHERE ID <= 10) {PARQUET_FORMAT}")
    listed = cur.execute("LIST @UNLOAD_STAGE").fetchall()
    assert [d.name for d in cur.description] == ["name", "size", "md5", "last_modified"]
    stored = objects(s3, bucket, prefix)
    assert len(stored) >= 3
    assert [name for name, *_ in listed] == [f"s3://{bucket}/{o['Key']}" for o in stored]
    for (name, size, md5, last_modified), obj in zip(listed, stored):
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        assert size == len(body) == obj["Size"]
        assert md5 == hashlib.md5(body).hexdigest()  # noqa: S324 - checksum, as S3's ETag
        assert re.fullmatch(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT", last_modified)
    # A path narrows the listing; PATTERN filters it further.
    assert [n for n, *_ in cur.execute("LIST @UNLOAD_STAGE/b/").fetchall()] == [f"s3://{bucket}/{prefix}b/data_0_0_0.snappy.parquet"]
    assert len(cur.execute("LIST @UNLOAD_STAGE PATTERN = '.*/a/.*'").fetchall()) == len(stored) - 1
    assert cur.execute("LIST @UNLOAD_STAGE/nothing-here/").fetchall() == []


def test_chunk_predicate_unloads_exactly_those_rows(cur, s3, bucket, prefix):
    make_visits(cur)
    create_stage(cur, bucket, prefix)
    [(n, _, _)] = cur.execute(
        "COPY INTO @UNLOAD_STAGE/run_1/chunk_0002/ FROM (SELECT * FROM VISITS WHERE VISIT_DATE >= '2024-03-01' "
        f"AND VISIT_DATE < '2024-04-01' AND AGENCY = 'agency-3') {PARQUET_FORMAT} MAX_FILE_SIZE = 4096").fetchall()
    want = {k: v for k, v in expected_visits().items()
            if dt.date(2024, 3, 1) <= v[2] < dt.date(2024, 4, 1) and v[0] == "agency-3"}
    assert n == len(want) > 0
    got = rows_of(s3, bucket, [o["Key"] for o in objects(s3, bucket, prefix + "run_1/chunk_0002/")])
    assert got == want


def test_parquet_types_per_snowflake_type_and_lossless_casts(cur, s3, bucket, prefix):
    cur.execute("CREATE TABLE TYPED (ID NUMBER(38,0), AMT NUMBER(12,2), WIDE NUMBER(38,6), TS_NTZ TIMESTAMP_NTZ, "
                "TS_TZ TIMESTAMP_TZ, TS_LTZ TIMESTAMP_LTZ, V VARIANT, O OBJECT, A ARRAY, B BINARY, F BOOLEAN, D DATE, "
                "T TIME, FL FLOAT, S VARCHAR)")
    cur.execute("INSERT INTO TYPED SELECT 9223372036854775807, 12.34, 12345678901234567890123456789012.123456, "
                "'2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.123456+02:00', '2024-01-02 03:04:05', "
                "PARSE_JSON('{\"a\":[1,2]}'), OBJECT_CONSTRUCT('k', 2), ARRAY_CONSTRUCT(1, 'x'), TO_BINARY('ABCD', 'HEX'), "
                "TRUE, '2024-01-02', '03:04:05.123456', 1.5, 'é'")
    cur.execute("INSERT INTO TYPED (ID) SELECT 1")  # a row of NULLs
    create_stage(cur, bucket, prefix)
    cur.execute(f"COPY INTO @UNLOAD_STAGE/native/ FROM (SELECT * FROM TYPED ORDER BY ID DESC) {PARQUET_FORMAT}")
    f = read_parquet(s3, bucket, prefix + "native/data_0_0_0.snappy.parquet")
    arrow = {field.name: str(field.type) for field in f.schema_arrow}
    assert arrow == {
        "ID": "int64", "AMT": "decimal128(12, 2)", "WIDE": "decimal128(38, 6)", "TS_NTZ": "timestamp[us]",
        "TS_TZ": "timestamp[us, tz=UTC]", "TS_LTZ": "timestamp[us, tz=UTC]", "V": "string", "O": "string", "A": "string",
        "B": "binary", "F": "bool", "D": "date32[day]", "T": "time64[us]", "FL": "double", "S": "string",
    }
    physical = {f.schema.column(i).name: f.schema.column(i).physical_type for i in range(len(f.schema))}
    assert physical["WIDE"] == "FIXED_LEN_BYTE_ARRAY" and physical["AMT"] == "INT64"
    full, nulls = f.read().to_pylist()
    utc = dt.timezone.utc
    assert full["ID"] == 9223372036854775807
    assert full["AMT"] == Decimal("12.34") and full["WIDE"] == Decimal("12345678901234567890123456789012.123456")
    assert full["TS_NTZ"] == dt.datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert full["TS_TZ"] == dt.datetime(2024, 1, 2, 1, 4, 5, 123456, tzinfo=utc)  # the instant, in UTC; the offset is gone
    assert full["V"] == '{"a":[1,2]}' and full["O"] == '{"k":2}' and full["A"] == '[1,"x"]'
    assert full["B"] == b"\xab\xcd" and full["F"] is True and full["D"] == dt.date(2024, 1, 2)
    assert full["T"] == dt.time(3, 4, 5, 123456) and full["FL"] == 1.5 and full["S"] == "é"
    assert {k: v for k, v in nulls.items() if k != "ID"} == dict.fromkeys(arrow.keys() - {"ID"})

    # The unload forms of docs/sync.md §13.2: UTC wall time, JSON text, decimal text.
    cur.execute(
        "COPY INTO @UNLOAD_STAGE/cast/ FROM (SELECT ID, "
        "CONVERT_TIMEZONE('UTC', TS_TZ)::TIMESTAMP_NTZ AS TS_TZ_UTC, CONVERT_TIMEZONE('UTC', TS_LTZ)::TIMESTAMP_NTZ AS TS_LTZ_UTC, "
        "TO_JSON(V) AS V_JSON, TO_VARCHAR(WIDE) AS WIDE_TEXT FROM TYPED WHERE AMT IS NOT NULL) " + PARQUET_FORMAT)
    g = read_parquet(s3, bucket, prefix + "cast/data_0_0_0.snappy.parquet")
    assert {field.name: str(field.type) for field in g.schema_arrow} == {
        "ID": "int64", "TS_TZ_UTC": "timestamp[us]", "TS_LTZ_UTC": "timestamp[us]", "V_JSON": "string", "WIDE_TEXT": "string"}
    [row] = g.read().to_pylist()
    assert row["TS_TZ_UTC"] == dt.datetime(2024, 1, 2, 1, 4, 5, 123456)
    assert row["V_JSON"] == '{"a":[1,2]}'
    assert Decimal(row["WIDE_TEXT"]) == Decimal("12345678901234567890123456789012.123456")


def test_overwrite_empty_result_header_and_compression(cur, s3, bucket, prefix):
    make_visits(cur, 200)
    create_stage(cur, bucket, prefix)
    cur.execute(f"COPY INTO @UNLOAD_STAGE/c/ FROM (SELECT * FROM VISITS) {PARQUET_FORMAT} MAX_FILE_SIZE = 1500")
    before = objects(s3, bucket, prefix + "c/")
    assert len(before) >= 2
    # Same names again without OVERWRITE: refused, nothing changed.
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="already existing at the unload destination"):
        cur.execute(f"COPY INTO @UNLOAD_STAGE/c/ FROM (SELECT * FROM VISITS) {PARQUET_FORMAT} MAX_FILE_SIZE = 1500")
    assert [o["ETag"] for o in objects(s3, bucket, prefix + "c/")] == [o["ETag"] for o in before]
    # OVERWRITE = TRUE removes every object under the path first.
    cur.execute(f"COPY INTO @UNLOAD_STAGE/c/ FROM (SELECT * FROM VISITS WHERE ID = 7) {PARQUET_FORMAT} OVERWRITE = TRUE")
    after = objects(s3, bucket, prefix + "c/")
    assert [o["Key"] for o in after] == [prefix + "c/data_0_0_0.snappy.parquet"]
    assert [r["ID"] for r in read_parquet(s3, bucket, after[0]["Key"]).read().to_pylist()] == [7]
    # An empty result writes no file.
    assert cur.execute(f"COPY INTO @UNLOAD_STAGE/empty/ FROM (SELECT * FROM VISITS WHERE ID < 0) {PARQUET_FORMAT}").fetchall() == [(0, 0, 0)]
    assert objects(s3, bucket, prefix + "empty/") == []
    # Without HEADER = TRUE the columns are _COL_0 …; COMPRESSION picks codec and suffix; a path not ending in / is a file prefix.
    cur.execute("COPY INTO @UNLOAD_STAGE/h/part FROM (SELECT ID, AGENCY FROM VISITS WHERE ID <= 3) "
                "FILE_FORMAT = (TYPE = PARQUET COMPRESSION = ZSTD)")
    f = read_parquet(s3, bucket, prefix + "h/part_0_0_0.zstd.parquet")
    assert f.schema_arrow.names == ["_COL_0", "_COL_1"]
    assert f.metadata.row_group(0).column(0).compression == "ZSTD"
    cur.execute("COPY INTO @UNLOAD_STAGE/n/ FROM VISITS FILE_FORMAT = (TYPE = PARQUET COMPRESSION = NONE) HEADER = TRUE")
    g = read_parquet(s3, bucket, prefix + "n/data_0_0_0.parquet")
    assert g.metadata.row_group(0).column(0).compression == "UNCOMPRESSED" and g.metadata.num_rows == 200
    # DETAILED_OUTPUT = TRUE: one row per file.
    detailed = cur.execute(f"COPY INTO @UNLOAD_STAGE/d/ FROM (SELECT * FROM VISITS) {PARQUET_FORMAT} "
                           "MAX_FILE_SIZE = 1500 DETAILED_OUTPUT = TRUE").fetchall()
    assert [d.name for d in cur.description] == ["FILE_NAME", "FILE_SIZE", "ROW_COUNT"]
    assert sum(n for _, _, n in detailed) == 200
    assert [(f"{prefix}{name}", size) for name, size, _ in detailed] == [(o["Key"], o["Size"]) for o in objects(s3, bucket, prefix + "d/")]


def test_stages_live_in_their_schema_and_errors_are_snowflakes(cur, schema, bucket, prefix):
    create_stage(cur, bucket, prefix, "MINE")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="already exists") as e:
        cur.execute(f"CREATE STAGE MINE URL = 's3://{bucket}/{prefix}'")
    assert e.value.errno == 2002
    cur.execute(f"CREATE OR REPLACE STAGE MINE URL = 's3://{bucket}/{prefix}other/' CREDENTIALS = (AWS_KEY_ID = 'k' AWS_SECRET_KEY = 's')")
    cur.execute(f"CREATE SCHEMA {DATABASE}.{schema}_OTHER")
    cur.execute(f"USE SCHEMA {DATABASE}.{schema}_OTHER")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist or not authorized") as e:
        cur.execute("LIST @MINE")
    assert e.value.errno == 2003
    assert cur.execute(f"LIST @{DATABASE}.{schema}.MINE").fetchall() == []
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="TYPE = PARQUET"):
        cur.execute(f"COPY INTO @{schema}.MINE FROM (SELECT 1 AS X) FILE_FORMAT = (TYPE = CSV)")
    cur.execute(f"DROP STAGE {DATABASE}.{schema}.MINE")
    with pytest.raises(snowflake.connector.errors.ProgrammingError, match="does not exist"):
        cur.execute(f"LIST @{DATABASE}.{schema}.MINE")
