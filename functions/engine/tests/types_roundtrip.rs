//! Every (Snowflake type, PostgreSQL type) pair of the COPY table goes
//! through thaw's binary COPY encoder into a real PostgreSQL and reads back
//! exact values; bad values fail with the right error kind and message; and
//! the reconciliation canonical forms agree between the Snowflake emulator
//! (fakesnow) and PostgreSQL for the same rows.
//!
//! Run under the harness: `python3 tests/harness.py run -- cargo test -p thaw-engine --test integration types_roundtrip::`.
//!
//! Hand-built batches use the layouts real Snowflake sends and fakesnow never
//! does (scaled Int8/16/32 NUMBER, Int64 timestamps, 2-field TIMESTAMP_TZ with
//! non-UTC offsets); the emulator test uses fakesnow's own Arrow.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int16Array, Int32Array, Int64Array, Int8Array,
    StringArray, StructArray,
};
use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use bytes::BytesMut;
use futures::SinkExt;

use thaw_engine::reconcile::{self, canonical, row_hash};
use thaw_engine::sync::table_plan::{ColumnPair, SourceColumn};
use thaw_engine::sink::encode::{supported_targets, CopyEncoder};
use thaw_engine::sink;
use thaw_engine::sink::values::{EXTENSION_NAME_KEY, JSON_EXTENSION};
use thaw_engine::source::arrow::{LogicalType, SnowflakeDecoder};
use thaw_engine::source::{self, sql};
use thaw_engine::{Error, ErrorKind};
use tokio_postgres::Client;

async fn postgres() -> Client {
    let client = sink::connect(&thaw_test_support::postgres(), "postgres").await.expect("connect to the harness PostgreSQL");
    client.batch_execute("SET TimeZone = 'UTC'").await.unwrap();
    client
}

/// A field with Snowflake's metadata.
fn field(data_type: DataType, logical: &str, scale: u32, byte_length: Option<u32>) -> Field {
    let mut md = HashMap::from([("logicalType".to_string(), logical.to_string()), ("scale".to_string(), scale.to_string())]);
    if let Some(b) = byte_length {
        md.insert("byteLength".to_string(), b.to_string());
    }
    Field::new("SRC", data_type, true).with_metadata(md)
}

/// Struct{epoch, [fraction,] [timezone]} with an optional struct-level null.
fn ts_struct(epoch: &[i64], fraction: Option<&[i32]>, timezone: Option<&[i32]>, valid: &[bool]) -> ArrayRef {
    let mut children: Vec<(Arc<Field>, ArrayRef)> = vec![(Arc::new(Field::new("epoch", DataType::Int64, false)), Arc::new(Int64Array::from(epoch.to_vec())))];
    if let Some(f) = fraction {
        children.push((Arc::new(Field::new("fraction", DataType::Int32, false)), Arc::new(Int32Array::from(f.to_vec()))));
    }
    if let Some(t) = timezone {
        children.push((Arc::new(Field::new("timezone", DataType::Int32, false)), Arc::new(Int32Array::from(t.to_vec()))));
    }
    let (fields, arrays): (Vec<_>, Vec<_>) = children.into_iter().unzip();
    Arc::new(StructArray::new(fields.into(), arrays, Some(valid.to_vec().into())))
}

/// One round trip: a Snowflake column copied into a PostgreSQL column type.
struct Case {
    field: Field,
    array: ArrayRef,
    pg: &'static str,
    /// `col::text` read back (session TimeZone UTC), NULL as None.
    expected: Vec<Option<&'static str>>,
}

fn case(field: Field, array: ArrayRef, pg: &'static str, expected: &[Option<&'static str>]) -> Case {
    Case { field, array, pg, expected: expected.to_vec() }
}

fn cases() -> Vec<Case> {
    let utf8 = |v: &[Option<&str>]| -> ArrayRef { Arc::new(StringArray::from(v.to_vec())) };
    let fixed = |dt: DataType, scale| field(dt, "FIXED", scale, None);
    let dec = |v: Vec<Option<i128>>, p, s| -> ArrayRef { Arc::new(Decimal128Array::from(v).with_precision_and_scale(p, s).unwrap()) };
    // 2024-03-10 20:00:00.5 UTC = 2024-03-11 01:30:00.5 at +05:30 (timezone 1770).
    let tz3 = || ts_struct(&[1_710_100_800, 0], Some(&[500_000_999, 0]), Some(&[1770, 1440]), &[true, false]);
    // 2-field TZ at scale 3: 1969-12-31 23:59:59.999 UTC = 1969-12-31 15:59:59.999 at -08:00.
    let tz2 = || ts_struct(&[-1, 0], None, Some(&[960, 1440]), &[true, false]);
    let tz2_field = || field(DataType::Null, "TIMESTAMP_TZ", 3, Some(8));
    let tz3_field = || field(DataType::Null, "TIMESTAMP_TZ", 9, Some(16));
    // NTZ as 2-field struct (fakesnow's layout) and as Int64 at scale 9.
    let ntz_struct = || ts_struct(&[-1, 0], Some(&[123_456_789, 0]), None, &[true, false]);
    let ntz_int = || -> ArrayRef { Arc::new(Int64Array::from(vec![Some(1_710_100_800_123_456_999), None])) };
    let ltz_int = || -> ArrayRef { Arc::new(Int64Array::from(vec![Some(1_710_100_800_500), None])) };
    // Values a date or timestamp column holds exactly (checked narrowings, docs/sync.md §5.2):
    // midnight wall clocks, and TIMESTAMP_TZ at offset +00:00.
    let ntz_midnight = || ts_struct(&[-86_400, 0], Some(&[0, 0]), None, &[true, false]);
    let ltz_midnight = || -> ArrayRef { Arc::new(Int64Array::from(vec![Some(1_710_028_800_000), None])) };
    // 2024-03-11 00:00 at +05:30 (= 2024-03-10 18:30 UTC) and 1969-12-31 00:00 at -08:00 (scale 3).
    let tz3_midnight = || ts_struct(&[1_710_095_400, 0], Some(&[0, 0]), Some(&[1770, 1440]), &[true, false]);
    let tz2_midnight = || ts_struct(&[-57_600_000, 0], None, Some(&[960, 1440]), &[true, false]);
    let tz3_utc = || ts_struct(&[1_710_100_800, 0], Some(&[500_000_999, 0]), Some(&[1440, 1440]), &[true, false]);
    let tz2_utc = || ts_struct(&[-1, 0], None, Some(&[1440, 1440]), &[true, false]);
    let json = r#"{
  "visit": [1, 2.5, "a b"],
  "id": null
}"#;
    vec![
        // FIXED
        case(fixed(DataType::Int32, 2), Arc::new(Int32Array::from(vec![Some(12_345), Some(-1), None])), "numeric(12,4)", &[Some("123.4500"), Some("-0.0100"), None]),
        case(fixed(DataType::Decimal128(38, 10), 10), dec(vec![Some(12_345_678_901_234_567_890_123_456_789), Some(-5)], 38, 10), "numeric", &[Some("1234567890123456789.0123456789"), Some("-0.0000000005")]),
        case(fixed(DataType::Int64, 0), Arc::new(Int64Array::from(vec![i64::MAX, -1])), "int8", &[Some("9223372036854775807"), Some("-1")]),
        case(fixed(DataType::Int16, 0), Arc::new(Int16Array::from(vec![-32_768, 7])), "int4", &[Some("-32768"), Some("7")]),
        case(fixed(DataType::Decimal128(10, 2), 2), dec(vec![Some(500), Some(-3_276_800)], 10, 2), "int2", &[Some("5"), Some("-32768")]),
        case(fixed(DataType::Int64, 3), Arc::new(Int64Array::from(vec![1_500, -1])), "float8", &[Some("1.5"), Some("-0.001")]),
        case(fixed(DataType::Int8, 1), Arc::new(Int8Array::from(vec![25, -128])), "float4", &[Some("2.5"), Some("-12.8")]),
        case(fixed(DataType::Int8, 0), Arc::new(Int8Array::from(vec![Some(1), Some(0), None])), "bool", &[Some("true"), Some("false"), None]),
        case(fixed(DataType::Int64, 2), Arc::new(Int64Array::from(vec![-150, 7])), "text", &[Some("-1.50"), Some("0.07")]),
        case(fixed(DataType::Int32, 0), Arc::new(Int32Array::from(vec![42])), "varchar(2)", &[Some("42")]),
        case(fixed(DataType::Int32, 0), Arc::new(Int32Array::from(vec![42])), "char(4)", &[Some("42")]),
        // REAL
        case(field(DataType::Float64, "REAL", 0, None), Arc::new(Float64Array::from(vec![Some(0.1 + 0.2), Some(-1e300), None])), "float8", &[Some("0.30000000000000004"), Some("-1e+300"), None]),
        case(field(DataType::Float64, "REAL", 0, None), Arc::new(Float64Array::from(vec![1.5, 0.1])), "float4", &[Some("1.5"), Some("0.1")]),
        case(field(DataType::Float64, "REAL", 0, None), Arc::new(Float64Array::from(vec![0.25, 0.5, -2.5])), "numeric(10,2)", &[Some("0.25"), Some("0.50"), Some("-2.50")]),
        // TEXT
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some("héllo ✓"), Some(""), None]), "text", &[Some("héllo ✓"), Some(""), None]),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some("ééééé")]), "varchar(5)", &[Some("ééééé")]),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some("ab")]), "char(3)", &[Some("ab")]),
        case(
            field(DataType::Utf8, "TEXT", 0, None),
            utf8(&[Some("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"), Some("a0eebc999c0b4ef8bb6d6bb9bd380a12")]),
            "uuid",
            &[Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12")],
        ),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some(r#"{"b": 1}"#)]), "json", &[Some(r#"{"b": 1}"#)]),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some(r#"{"bb":1,"a":[1]}"#)]), "jsonb", &[Some(r#"{"a": [1], "bb": 1}"#)]),
        // Numeric text (legacy VARCHAR application ids): padded, signed, scaled; blank means NULL.
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some(" 0042 "), Some("-9223372036854775808"), Some("123.00000"), Some(""), None]), "int8", &[Some("42"), Some("-9223372036854775808"), Some("123"), None, None]),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some("2147483647"), Some("+7")]), "int4", &[Some("2147483647"), Some("7")]),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some("-32768")]), "int2", &[Some("-32768")]),
        case(field(DataType::Utf8, "TEXT", 0, None), utf8(&[Some("12.5"), Some("-0.125")]), "numeric(10,3)", &[Some("12.500"), Some("-0.125")]),
        // BOOLEAN
        case(field(DataType::Boolean, "BOOLEAN", 0, None), Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])), "bool", &[Some("true"), Some("false"), None]),
        case(field(DataType::Boolean, "BOOLEAN", 0, None), Arc::new(BooleanArray::from(vec![true, false])), "text", &[Some("true"), Some("false")]),
        case(field(DataType::Boolean, "BOOLEAN", 0, None), Arc::new(BooleanArray::from(vec![false])), "varchar(5)", &[Some("false")]),
        case(field(DataType::Boolean, "BOOLEAN", 0, None), Arc::new(BooleanArray::from(vec![true])), "char(5)", &[Some("true")]),
        // DATE
        case(field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![Some(-1), Some(19_792), None])), "date", &[Some("1969-12-31"), Some("2024-03-10"), None]),
        case(field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![-1])), "timestamp", &[Some("1969-12-31 00:00:00")]),
        case(field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![-1])), "timestamptz", &[Some("1969-12-31 00:00:00+00")]),
        case(field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![19_792])), "text", &[Some("2024-03-10")]),
        case(field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![19_792])), "varchar(10)", &[Some("2024-03-10")]),
        case(field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![19_792])), "char(10)", &[Some("2024-03-10")]),
        // TIME at scales 9 (Int64) and 3 (Int32)
        case(field(DataType::Int64, "TIME", 9, None), Arc::new(Int64Array::from(vec![Some(47_655_123_456_789), None])), "time", &[Some("13:14:15.123456"), None]),
        case(field(DataType::Int32, "TIME", 3, None), Arc::new(Int32Array::from(vec![47_655_120])), "time", &[Some("13:14:15.12")]),
        case(field(DataType::Int32, "TIME", 0, None), Arc::new(Int32Array::from(vec![47_655])), "text", &[Some("13:14:15.000000")]),
        case(field(DataType::Int32, "TIME", 0, None), Arc::new(Int32Array::from(vec![47_655])), "varchar(15)", &[Some("13:14:15.000000")]),
        case(field(DataType::Int32, "TIME", 0, None), Arc::new(Int32Array::from(vec![47_655])), "char(15)", &[Some("13:14:15.000000")]),
        // TIMESTAMP_NTZ: struct (seconds + ns) and Int64 at scale 9
        case(field(DataType::Null, "TIMESTAMP_NTZ", 9, None), ntz_struct(), "timestamp", &[Some("1969-12-31 23:59:59.123456"), None]),
        case(field(DataType::Int64, "TIMESTAMP_NTZ", 9, None), ntz_int(), "timestamp", &[Some("2024-03-10 20:00:00.123456"), None]),
        case(field(DataType::Int64, "TIMESTAMP_NTZ", 9, None), ntz_int(), "timestamptz", &[Some("2024-03-10 20:00:00.123456+00"), None]),
        case(field(DataType::Null, "TIMESTAMP_NTZ", 9, None), ntz_midnight(), "date", &[Some("1969-12-31"), None]),
        case(field(DataType::Null, "TIMESTAMP_NTZ", 9, None), ntz_struct(), "text", &[Some("1969-12-31 23:59:59.123456"), None]),
        case(field(DataType::Null, "TIMESTAMP_NTZ", 9, None), ntz_struct(), "varchar(26)", &[Some("1969-12-31 23:59:59.123456"), None]),
        case(field(DataType::Null, "TIMESTAMP_NTZ", 9, None), ntz_struct(), "char(26)", &[Some("1969-12-31 23:59:59.123456"), None]),
        // TIMESTAMP_LTZ as Int64 milliseconds
        case(field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), ltz_int(), "timestamptz", &[Some("2024-03-10 20:00:00.5+00"), None]),
        case(field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), ltz_int(), "timestamp", &[Some("2024-03-10 20:00:00.5"), None]),
        case(field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), ltz_midnight(), "date", &[Some("2024-03-10"), None]),
        case(field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), ltz_int(), "text", &[Some("2024-03-10 20:00:00.500000+00:00"), None]),
        case(field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), ltz_int(), "varchar(32)", &[Some("2024-03-10 20:00:00.500000+00:00"), None]),
        case(field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), ltz_int(), "char(32)", &[Some("2024-03-10 20:00:00.500000+00:00"), None]),
        // TIMESTAMP_TZ: 3-field at +05:30 and 2-field (scaled epoch) at -08:00
        case(tz3_field(), tz3(), "timestamptz", &[Some("2024-03-10 20:00:00.5+00"), None]),
        case(tz2_field(), tz2(), "timestamptz", &[Some("1969-12-31 23:59:59.999+00"), None]),
        case(tz3_field(), tz3_utc(), "timestamp", &[Some("2024-03-10 20:00:00.5"), None]),
        case(tz2_field(), tz2_utc(), "timestamp", &[Some("1969-12-31 23:59:59.999"), None]),
        case(tz3_field(), tz3_midnight(), "date", &[Some("2024-03-11"), None]),
        case(tz2_field(), tz2_midnight(), "date", &[Some("1969-12-31"), None]),
        case(tz3_field(), tz3(), "text", &[Some("2024-03-11 01:30:00.500000+05:30"), None]),
        case(tz2_field(), tz2(), "varchar(32)", &[Some("1969-12-31 15:59:59.999000-08:00"), None]),
        case(tz2_field(), tz2(), "char(32)", &[Some("1969-12-31 15:59:59.999000-08:00"), None]),
        // BINARY
        case(field(DataType::Binary, "BINARY", 0, None), Arc::new(BinaryArray::from(vec![Some(&b"hello"[..]), Some(&[0u8, 255][..]), None])), "bytea", &[Some("\\x68656c6c6f"), Some("\\x00ff"), None]),
        case(field(DataType::Binary, "BINARY", 0, None), Arc::new(BinaryArray::from(vec![&b"h\xc3\xa9"[..]])), "text", &[Some("hé")]),
        case(field(DataType::Binary, "BINARY", 0, None), Arc::new(BinaryArray::from(vec![&b"abc"[..]])), "varchar(3)", &[Some("abc")]),
        case(field(DataType::Binary, "BINARY", 0, None), Arc::new(BinaryArray::from(vec![&b"abc"[..]])), "char(3)", &[Some("abc")]),
        // VARIANT / OBJECT / ARRAY (real Snowflake pretty-prints)
        case(field(DataType::Utf8, "VARIANT", 0, None), utf8(&[Some(json), None]), "jsonb", &[Some(r#"{"id": null, "visit": [1, 2.5, "a b"]}"#), None]),
        case(field(DataType::Utf8, "OBJECT", 0, None), utf8(&[Some(json)]), "json", &[Some(r#"{"visit":[1,2.5,"a b"],"id":null}"#)]),
        case(field(DataType::Utf8, "ARRAY", 0, None), utf8(&[Some("[\n  1,\n  \"x  y\"\n]")]), "text", &[Some(r#"[1,"x  y"]"#)]),
        case(field(DataType::Utf8, "VARIANT", 0, None), utf8(&[Some("[1, 2]")]), "varchar(5)", &[Some("[1,2]")]),
        case(field(DataType::Utf8, "ARRAY", 0, None), utf8(&[Some("[1, 2]")]), "char(5)", &[Some("[1,2]")]),
    ]
}

/// Create `table` with one column of `pg`, decode `arrays` (one Snowflake
/// batch each) into standard Arrow and COPY them through the encoder.
async fn copy_into(pg: &Client, table: &str, pg_type: &str, not_null: bool, field: &Field, arrays: &[ArrayRef]) -> Result<u64, Error> {
    let decoder = SnowflakeDecoder::new(&Schema::new(vec![field.clone()]))?;
    let batches = arrays
        .iter()
        .map(|a| decoder.decode(&RecordBatch::try_new(Arc::new(Schema::new(vec![field.clone().with_data_type(a.data_type().clone())])), vec![a.clone()]).unwrap()))
        .collect::<Result<Vec<_>, Error>>()?;
    copy_standard(pg, table, pg_type, not_null, decoder.schema().field(0), &batches).await
}

/// Create `table` with one column of `pg` and COPY standard Arrow `batches` (one column each) through the encoder.
async fn copy_standard(pg: &Client, table: &str, pg_type: &str, not_null: bool, field: &Field, batches: &[RecordBatch]) -> Result<u64, Error> {
    pg.batch_execute(&format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (v {pg_type}{})", if not_null { " NOT NULL" } else { "" }))
        .await
        .unwrap();
    let columns = sink::table_columns(pg, "public", table).await?;
    let mut encoder = CopyEncoder::new(vec![(columns[0].clone(), Arc::new(field.clone()))])?;
    let mut buf = BytesMut::new();
    CopyEncoder::header(&mut buf);
    for batch in batches {
        encoder.encode_record_batch(batch, &mut buf)?;
    }
    CopyEncoder::trailer(&mut buf);
    let sink = pg.copy_in::<_, bytes::Bytes>(&format!("COPY {table} (v) FROM STDIN (FORMAT binary)")).await.unwrap();
    futures::pin_mut!(sink);
    sink.send(buf.freeze()).await.map_err(|e| thaw_engine::error::from_postgres(e, "COPY"))?;
    sink.finish().await.map_err(|e| thaw_engine::error::from_postgres(e, "COPY"))
}

async fn read_back(pg: &Client, table: &str) -> Vec<Option<String>> {
    pg.query(&format!("SELECT v::text FROM {table} ORDER BY ctid"), &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn every_supported_pair_round_trips_through_binary_copy() {
    let pg = postgres().await;
    let mut covered = Vec::new();
    for (i, c) in cases().into_iter().enumerate() {
        let table = format!("types_roundtrip_{i}");
        let logical = c.field.metadata()["logicalType"].clone();
        copy_into(&pg, &table, c.pg, false, &c.field, std::slice::from_ref(&c.array)).await.unwrap_or_else(|e| panic!("{logical} → {}: {e}", c.pg));
        let got = read_back(&pg, &table).await;
        let expected: Vec<Option<String>> = c.expected.iter().map(|v| v.map(str::to_string)).collect();
        assert_eq!(got, expected, "{logical} → {}", c.pg);
        let target = sink::table_columns(&pg, "public", &table).await.unwrap().remove(0).pg_type;
        covered.push((LogicalType::parse(&logical).unwrap(), target));
        pg.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
    }
    let missing: Vec<String> =
        supported_pairs().into_iter().filter(|(l, t)| !is_covered(&covered, *l, *t)).map(|(l, t)| format!("{} → {t:?}", semi_name(l))).collect();
    assert!(missing.is_empty(), "pairs without a round-trip case: {missing:?}");
}

/// The sink reads standard Arrow without any Snowflake metadata (what a
/// Parquet reader produces): integers, decimals, timestamps in any unit
/// (nanoseconds floored), times and `arrow.json` text.
#[tokio::test]
async fn standard_arrow_without_snowflake_metadata_round_trips() {
    use arrow_array::{Time64MicrosecondArray, TimestampMicrosecondArray, TimestampNanosecondArray};
    let pg = postgres().await;
    let json = Field::new("J", DataType::Utf8, true).with_metadata(HashMap::from([(EXTENSION_NAME_KEY.to_string(), JSON_EXTENSION.to_string())]));
    let cases: Vec<(Field, ArrayRef, &str, Vec<Option<&str>>)> = vec![
        (Field::new("N", DataType::Int64, true), Arc::new(Int64Array::from(vec![Some(i64::MIN), None])), "numeric", vec![Some("-9223372036854775808"), None]),
        (Field::new("D", DataType::Decimal128(12, 3), true), Arc::new(Decimal128Array::from(vec![-1_500]).with_precision_and_scale(12, 3).unwrap()), "numeric(12,3)", vec![Some("-1.500")]),
        (
            Field::new("T", DataType::Timestamp(TimeUnit::Nanosecond, None), true),
            Arc::new(TimestampNanosecondArray::from(vec![-1])),
            "timestamp",
            vec![Some("1969-12-31 23:59:59.999999")],
        ),
        (
            Field::new("U", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
            Arc::new(TimestampMicrosecondArray::from(vec![1_710_100_800_500_000]).with_timezone("UTC")),
            "text",
            vec![Some("2024-03-10 20:00:00.500000+00:00")],
        ),
        (Field::new("H", DataType::Time64(TimeUnit::Microsecond), true), Arc::new(Time64MicrosecondArray::from(vec![47_655_123_456])), "time", vec![Some("13:14:15.123456")]),
        (json, Arc::new(StringArray::from(vec!["{\n  \"a\": [1, 2]\n}"])), "text", vec![Some(r#"{"a":[1,2]}"#)]),
    ];
    for (i, (field, array, pg_type, expected)) in cases.into_iter().enumerate() {
        let table = format!("types_standard_{i}");
        let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field.clone()])), vec![array]).unwrap();
        copy_standard(&pg, &table, pg_type, false, &field, &[batch]).await.unwrap_or_else(|e| panic!("{field:?} → {pg_type}: {e}"));
        let expected: Vec<Option<String>> = expected.iter().map(|v| v.map(str::to_string)).collect();
        assert_eq!(read_back(&pg, &table).await, expected, "{} → {pg_type}", field.data_type());
        pg.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
    }
}

/// A 38-digit NUMBER goes into a `numeric` with more decimals than the
/// source even where the value at the target scale has more digits than an
/// `i128` holds (the digits are kept, only the display scale grows), and is
/// refused, naming the column's limit, when its integer digits do not fit.
#[tokio::test]
async fn thirty_eight_digit_number_into_a_wider_numeric_scale_lands_exactly() {
    let pg = postgres().await;
    let f = field(DataType::Int8, "FIXED", 2, None);
    let nines = 10_i128.pow(38) - 1;
    let batches: Vec<ArrayRef> = vec![Arc::new(Decimal128Array::from(vec![nines, -nines, 5]).with_precision_and_scale(38, 2).unwrap())];
    assert_eq!(copy_into(&pg, "types_wide_scale", "numeric(42,4)", false, &f, &batches).await.unwrap(), 3);
    let got = read_back(&pg, "types_wide_scale").await;
    let integer = "9".repeat(36);
    let want = [format!("{integer}.9900"), format!("-{integer}.9900"), "0.0500".to_string()];
    assert_eq!(got, want.iter().map(|s| Some(s.clone())).collect::<Vec<_>>());
    let err = copy_error("numeric(39,4)", false, f, batches[0].clone()).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed, "{err}");
    assert!(err.message.contains(&format!("value {integer}.99 does not fit numeric(39, 4) (at most 35 digits before the point)")), "{err}");
}

#[tokio::test]
async fn integer_width_changing_between_batches_lands_exactly() {
    let pg = postgres().await;
    let f = field(DataType::Int8, "FIXED", 2, None);
    let batches: Vec<ArrayRef> = vec![
        Arc::new(Int8Array::from(vec![-128])),
        Arc::new(Int16Array::from(vec![32_767])),
        Arc::new(Int32Array::from(vec![-2_147_483_648])),
        Arc::new(Int64Array::from(vec![i64::MAX])),
        Arc::new(Decimal128Array::from(vec![10_i128.pow(20) + 1]).with_precision_and_scale(38, 2).unwrap()),
    ];
    assert_eq!(copy_into(&pg, "types_width", "numeric(40,2)", false, &f, &batches).await.unwrap(), 5);
    let got = read_back(&pg, "types_width").await;
    let want = ["-1.28", "327.67", "-21474836.48", "92233720368547758.07", "1000000000000000000.01"];
    assert_eq!(got, want.iter().map(|s| Some(s.to_string())).collect::<Vec<_>>());
}

async fn copy_error(pg_type: &str, not_null: bool, field: Field, array: ArrayRef) -> Error {
    let pg = postgres().await;
    let table = format!("types_error_{}", std::process::id());
    let err = copy_into(&pg, &table, pg_type, not_null, &field, &[array]).await.expect_err("the copy must fail");
    pg.batch_execute(&format!("DROP TABLE IF EXISTS {table}")).await.unwrap();
    err
}

#[tokio::test]
async fn fractional_number_into_integer_column_fails_the_chunk() {
    let err = copy_error("int4", false, field(DataType::Int64, "FIXED", 2, None), Arc::new(Int64Array::from(vec![100, 250]))).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("column \"v\"") && err.message.contains("value 2.50 has a fractional part") && err.message.contains("row 1"), "{err}");
}

#[tokio::test]
async fn non_numeric_text_into_integer_column_fails_the_chunk() {
    let err = copy_error("int8", false, field(DataType::Utf8, "TEXT", 0, None), Arc::new(StringArray::from(vec!["12", "12a"]))).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("value '12a' is not a decimal number") && err.message.contains("row 1"), "{err}");
}

#[tokio::test]
async fn text_longer_than_varchar_fails_the_chunk() {
    let err = copy_error("varchar(3)", false, field(DataType::Utf8, "TEXT", 0, None), Arc::new(StringArray::from(vec!["abcd"]))).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("value 'abcd' has 4 characters but the column is varchar(3)"), "{err}");
}

#[tokio::test]
async fn malformed_uuid_fails_the_chunk_naming_the_value() {
    let err = copy_error("uuid", false, field(DataType::Utf8, "TEXT", 0, None), Arc::new(StringArray::from(vec!["a0eebc99-zzzz"]))).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("value 'a0eebc99-zzzz' is not a UUID") && err.message.contains("column \"v\" (uuid)"), "{err}");
}

#[tokio::test]
async fn null_into_not_null_column_fails_the_chunk() {
    let err = copy_error("date", true, field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![Some(1), None]))).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("column \"v\" is NOT NULL in PostgreSQL but row 1 of the batch has NULL"), "{err}");
}

#[tokio::test]
async fn binary_that_is_not_utf8_into_text_fails_the_chunk() {
    let err = copy_error("text", false, field(DataType::Binary, "BINARY", 0, None), Arc::new(BinaryArray::from(vec![&b"ok\xff"[..]]))).await;
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("not valid UTF-8") && err.message.contains("6f6bff"), "{err}");
    // What to do names only things a user can do: there is no setting that replaces invalid bytes
    // (the message used to suggest "set the invalid-UTF-8 policy to replace").
    for part in ["bytea", "source_filter", "exclude_columns"] {
        assert!(err.message.contains(part), "missing {part:?} in {err}");
    }
    assert!(!err.message.contains("policy"), "{err}");
}

#[tokio::test]
async fn timestamp_into_uuid_is_rejected_before_copying() {
    let err = copy_error("uuid", false, field(DataType::Int64, "TIMESTAMP_NTZ", 9, None), Arc::new(Int64Array::from(vec![1]))).await;
    assert_eq!(err.kind, ErrorKind::TypeUnsupported);
    assert!(err.message.contains("cannot copy Snowflake TIMESTAMP_NTZ") && err.message.contains("into PostgreSQL uuid") && err.message.contains("timestamp, timestamptz"), "{err}");
}

/// Every (Snowflake type, PostgreSQL type) pair outside `supported_targets`
/// is refused with `TypeUnsupported` when the encoder is built, before any
/// row is read (the "refused" rows of docs/sync.md §5.2).
#[tokio::test]
async fn every_unsupported_pair_is_refused_before_any_row() {
    use thaw_engine::sink::{PgType, TargetColumn};
    let logicals = [
        ("FIXED", DataType::Int64),
        ("REAL", DataType::Float64),
        ("TEXT", DataType::Utf8),
        ("BOOLEAN", DataType::Boolean),
        ("DATE", DataType::Date32),
        ("TIME", DataType::Int64),
        ("TIMESTAMP_NTZ", DataType::Int64),
        ("TIMESTAMP_LTZ", DataType::Int64),
        ("TIMESTAMP_TZ", DataType::Int64),
        ("BINARY", DataType::Binary),
        ("VARIANT", DataType::Utf8),
        ("OBJECT", DataType::Utf8),
        ("ARRAY", DataType::Utf8),
    ];
    let targets = [
        ("bool", PgType::Bool), ("int2", PgType::Int2), ("int4", PgType::Int4), ("int8", PgType::Int8),
        ("float4", PgType::Float4), ("float8", PgType::Float8), ("numeric", PgType::Numeric), ("text", PgType::Text),
        ("varchar", PgType::Varchar), ("bpchar", PgType::Bpchar), ("date", PgType::Date), ("time", PgType::Time),
        ("timestamp", PgType::Timestamp), ("timestamptz", PgType::Timestamptz), ("uuid", PgType::Uuid),
        ("json", PgType::Json), ("jsonb", PgType::Jsonb), ("bytea", PgType::Bytea),
    ];
    let mut refused = 0;
    for (logical, dt) in &logicals {
        let supported = supported_targets(LogicalType::parse(logical).unwrap());
        for (name, pg_type) in &targets {
            if supported.contains(pg_type) {
                continue;
            }
            let target = TargetColumn {
                name: "v".into(),
                pg_type: *pg_type,
                type_name: name.to_string(),
                char_max_length: None,
                numeric_precision: None,
                numeric_scale: Some(2),
                nullable: true,
            };
            let decoder = SnowflakeDecoder::new(&Schema::new(vec![field(dt.clone(), logical, 0, None)])).unwrap();
            let err = CopyEncoder::new(vec![(target, decoder.schema().fields()[0].clone())]).expect_err(&format!("{logical} → {name} must be refused"));
            assert_eq!(err.kind, ErrorKind::TypeUnsupported, "{logical} → {name}: {err}");
            assert!(err.message.contains(logical) && err.message.contains(&format!("PostgreSQL {name}")), "{err}");
            refused += 1;
        }
    }
    assert!(refused > 150, "only {refused} pairs refused");
}

/// The checked narrowings of docs/sync.md §5.2: a value the target type
/// would change (time of day into date, an offset into timestamp, a float
/// that rounds, a fraction into an integer, overflow, a long text) fails the
/// chunk with `ChunkFailed` (deterministic, never retried), naming the
/// column and the value; nothing is written.
#[tokio::test]
async fn lossy_values_are_refused_naming_column_and_value() {
    let utf8 = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
    let i64s = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
    let cases: Vec<(Field, ArrayRef, &str, &str)> = vec![
        (field(DataType::Int64, "TIMESTAMP_NTZ", 9, None), i64s(1_710_100_800_123_456_999), "date", "value 2024-03-10 20:00:00.123456 has a time of day that a date column would drop"),
        (field(DataType::Int64, "TIMESTAMP_LTZ", 3, None), i64s(1_710_100_800_500), "date", "value 2024-03-10 20:00:00.500000+00:00 has a time of day"),
        (
            field(DataType::Null, "TIMESTAMP_TZ", 9, Some(16)),
            ts_struct(&[1_710_100_800], Some(&[0]), Some(&[1770]), &[true]),
            "date",
            "value 2024-03-11 01:30:00.000000+05:30 has a time of day",
        ),
        (
            field(DataType::Null, "TIMESTAMP_TZ", 9, Some(16)),
            ts_struct(&[1_710_100_800], Some(&[0]), Some(&[1770]), &[true]),
            "timestamp",
            "value 2024-03-11 01:30:00.000000+05:30 carries a UTC offset that timestamp (without time zone) would drop",
        ),
        (field(DataType::Null, "TIMESTAMP_TZ", 3, Some(8)), ts_struct(&[-1], None, Some(&[960]), &[true]), "timestamp", "-08:00 carries a UTC offset"),
        (field(DataType::Int64, "FIXED", 0, None), i64s(9_007_199_254_740_993), "float8", "value 9007199254740993 has no exact float8 representation (it would be stored as 9007199254740992)"),
        (field(DataType::Int64, "FIXED", 0, None), i64s(16_777_217), "float4", "value 16777217 has no exact float4 representation"),
        (field(DataType::Float64, "REAL", 0, None), Arc::new(Float64Array::from(vec![0.1 + 0.2])), "float4", "value 0.30000000000000004 has no exact real (float4) representation"),
        (field(DataType::Float64, "REAL", 0, None), Arc::new(Float64Array::from(vec![0.125])), "numeric(10,2)", "value 0.125 has more decimal places than numeric(10, 2)"),
        (field(DataType::Int64, "FIXED", 2, None), i64s(250), "int4", "value 2.50 has a fractional part"),
        (field(DataType::Int64, "FIXED", 0, None), i64s(40_000), "int2", "value 40000 is outside the range of int2"),
        (field(DataType::Int64, "FIXED", 3, None), i64s(1_255), "numeric(10,2)", "value 1.255 has more decimal places than numeric(10, 2)"),
        (field(DataType::Int64, "FIXED", 0, None), i64s(123_456), "numeric(4,0)", "does not fit numeric(4, 0)"),
        (field(DataType::Int8, "FIXED", 0, None), Arc::new(Int8Array::from(vec![2])), "bool", "value 2 is neither 0 nor 1"),
        (field(DataType::Utf8, "TEXT", 0, None), utf8("abcd"), "varchar(3)", "value 'abcd' has 4 characters but the column is varchar(3)"),
        (field(DataType::Utf8, "TEXT", 0, None), utf8("abcd"), "char(3)", "has 4 characters"),
        (field(DataType::Utf8, "TEXT", 0, None), utf8("1.5"), "int8", "value '1.5' has a fractional part"),
        (field(DataType::Utf8, "TEXT", 0, None), utf8("99999"), "int2", "value 99999 is outside the range of int2"),
        (field(DataType::Utf8, "TEXT", 0, None), utf8("1.25"), "numeric(10,1)", "value '1.25' has more decimal places"),
        (field(DataType::Date32, "DATE", 0, None), Arc::new(Date32Array::from(vec![19_792])), "varchar(5)", "has 10 characters"),
        (field(DataType::Int64, "FIXED", 2, None), i64s(-150), "varchar(3)", "value '-1.50' has 5 characters"),
        (field(DataType::Binary, "BINARY", 0, None), Arc::new(BinaryArray::from(vec![&b"ok\xff"[..]])), "text", "not valid UTF-8"),
        (field(DataType::Utf8, "TEXT", 0, None), utf8(r#"{"a": }"#), "jsonb", r#"value '{"a": }' is not valid JSON"#),
        (field(DataType::Utf8, "TEXT", 0, None), utf8("[1,"), "json", "is not valid JSON"),
    ];
    for (f, array, pg_type, fragment) in cases {
        let logical = f.metadata()["logicalType"].clone();
        let err = copy_error(pg_type, false, f, array).await;
        assert_eq!(err.kind, ErrorKind::ChunkFailed, "{logical} → {pg_type}: {err}");
        assert!(!err.kind.is_retryable());
        assert!(err.message.contains(fragment) && err.message.contains("column \"v\""), "{logical} → {pg_type}: {err}");
    }
}

// The emulated pairs are shared with the staged round trip (tests/sync_staged.rs).
include!("fixtures/emulated_types.rs");

/// Pairs whose canonical forms agree only on real Snowflake, with the reason;
/// their Snowflake SQL is checked as text.
const EMULATOR_GAPS: &[(LogicalType, &str)] = &[
    (LogicalType::Date, "fakesnow ignores TO_CHAR formats (docs/emulator.md §8)"),
    (LogicalType::Time, "fakesnow ignores TO_CHAR formats (docs/emulator.md §8)"),
    (LogicalType::TimestampNtz, "fakesnow ignores TO_CHAR formats (docs/emulator.md §8)"),
    (LogicalType::TimestampLtz, "fakesnow ignores TO_CHAR formats (docs/emulator.md §8)"),
    (LogicalType::TimestampTz, "fakesnow ignores TO_CHAR formats (docs/emulator.md §8)"),
];

/// Canonical texts of `pairs` on both sides, row by row: the rows are
/// created in the emulator, copied through the real client and encoder into
/// PostgreSQL, then rendered by reconcile's emulator path
/// (`reconcile::source_texts`) and by `canonical::postgres_expr`.
/// Returns (emulator rows, PostgreSQL rows, target columns), ordered by row.
/// `via_encoder`: fill the PostgreSQL table through thaw's encoder (false: with
/// PostgreSQL's own casts of the same literals, as another tool would, for lossy pairs
/// thaw's copy refuses).
async fn texts_on_both_sides(name: &str, pairs: &[(&str, &str, &[&str])], via_encoder: bool) -> (Vec<Vec<Option<String>>>, Vec<Vec<Option<String>>>, Vec<sink::TargetColumn>) {
    let s = sides(name, pairs, via_encoder).await;
    (s.emulator, s.postgres, s.targets)
}

/// A fresh database with thaw's migrations (the canonical JSON form is the
/// function of migration V22, docs/reconcile.md §3), in UTC.
async fn migrated_postgres(name: &str) -> Client {
    let client = thaw_test_support::fresh_pg(&thaw_test_support::unique(&format!("types_{name}"))).await;
    client.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 1").await.unwrap();
    client
}

/// What [`sides`] finds for one table, row by row (ordered by `ID`).
struct Sides {
    /// Canonical texts on the emulator side (reconcile's emulator path).
    emulator: Vec<Vec<Option<String>>>,
    /// Canonical texts PostgreSQL computes from the stored rows.
    postgres: Vec<Vec<Option<String>>>,
    /// `MD5(key text)` and `MD5(row text)` PostgreSQL computes in SQL (key: `ID`).
    postgres_hashes: Vec<(String, String)>,
    /// Canonical texts computed in Rust from the batches written (`row_hash::RowHasher::texts`).
    rust: Vec<Vec<Option<String>>>,
    /// Row hashes computed in Rust from the batches written.
    rust_hashes: Vec<row_hash::RowHash>,
    /// Per row and column: the canonical text PostgreSQL computes for the
    /// smallest change of the stored value ([`smallest_change`]), when that
    /// change gives a value of its own (`None`: NULL, NaN, a text without letters, …).
    changed: Vec<Vec<Option<Option<String>>>>,
    targets: Vec<sink::TargetColumn>,
}

/// PostgreSQL SQL for the smallest change of column `c` (quoted) of type
/// `pg_type` that the column can hold, copied from a Snowflake `sf_type`:
/// one unit of the last digit a value holds, one microsecond, one day, one
/// ulp of a double, a trailing blank, a flipped letter case, hex digit or
/// boolean, one more byte; a document wrapped in an array. A float holding a
/// NUMBER(p, s) changes by one unit of its s-th decimal: the comparison is at
/// the source's scale by design (docs/reconcile.md §3).
fn smallest_change(c: &str, sf_type: &str, pg_type: &str) -> String {
    let sign = format!("CASE WHEN {c} > 0 THEN -1 ELSE 1 END");
    let sf_scale: i32 = sf_type.split(',').nth(1).and_then(|s| s.trim_end_matches(')').trim().parse().ok()).unwrap_or(0);
    let base = pg_type.split('(').next().unwrap();
    let typmod_scale: Option<i32> = pg_type.split(',').nth(1).and_then(|s| s.trim_end_matches(')').trim().parse().ok());
    match base {
        "int2" | "int4" | "int8" => format!("CAST({c} + {sign} AS {pg_type})"),
        // The last decimal the column holds; an unconstrained numeric holds one beyond the source's.
        // (`POWER(10::numeric, -39)` rounds to 0 at numeric's default 16 digits: a literal is exact.)
        "numeric" => format!("CAST({c} + {sign} * CAST('1e-{}' AS numeric) AS {pg_type})", typmod_scale.unwrap_or(sf_scale + 1)),
        "float8" if sf_type.starts_with("NUMBER") => format!("CAST({c} + {sign} * POWER(10::float8, -{sf_scale}) AS float8)"),
        "float4" if sf_type.starts_with("NUMBER") => format!("CAST({c} + {sign} * POWER(10::float8, -{sf_scale}) AS float4)"),
        "float8" => format!("{c} * (1 + 2.0::float8 ^ (-52))"),
        "float4" => format!("CAST(CAST({c} AS float8) * (1 + 2.0::float8 ^ (-23)) AS float4)"),
        "text" | "varchar" => format!("CAST({c} || ' ' AS text)"),
        // Trailing blanks do not count in char(n): flip the letters' case, or (no letters) the first character.
        "char" => {
            let flipped = format!("translate({c}, 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ', 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz')");
            format!("CAST(CASE WHEN {flipped} <> {c} THEN {flipped} ELSE overlay({c} placing CASE WHEN left({c}, 1) = '0' THEN '1' ELSE '0' END from 1 for 1) END AS {pg_type})")
        }
        "uuid" => format!("CAST(LEFT(CAST({c} AS text), 35) || CASE WHEN RIGHT(CAST({c} AS text), 1) = '0' THEN '1' ELSE '0' END AS uuid)"),
        "json" => format!("json_build_array({c})"),
        "jsonb" => format!("jsonb_build_array({c})"),
        "bool" => format!("NOT {c}"),
        "date" => format!("{c} + 1"),
        "time" | "timestamp" | "timestamptz" => format!("{c} + interval '1 microsecond'"),
        "bytea" => format!("{c} || '\\x00'::bytea"),
        other => panic!("no smallest change for {other}"),
    }
}

async fn sides(name: &str, pairs: &[(&str, &str, &[&str])], via_encoder: bool) -> Sides {
    let pg = migrated_postgres(name).await;
    let sf_settings = thaw_test_support::snowflake();
    let sf = source::connect(&sf_settings, None, None).await.expect("login to the emulator");
    // One database per call: tests run as parallel processes, and the
    // emulator fails a concurrent `CREATE DATABASE IF NOT EXISTS` of one name.
    let database = format!("THAW_TYPES_{}", name.to_uppercase());
    sf.execute(&format!("CREATE DATABASE IF NOT EXISTS {database}")).await.unwrap();
    sf.execute(&format!("CREATE SCHEMA IF NOT EXISTS {database}.CANONICAL")).await.unwrap();
    let fqn = format!("{database}.CANONICAL.{}", name.to_uppercase());
    let columns: Vec<String> = (0..pairs.len()).map(|i| format!("C{i}")).collect();
    let ddl: Vec<String> = pairs.iter().zip(&columns).map(|((sf_type, _, _), c)| format!("{c} {sf_type}")).collect();
    sf.execute(&format!("CREATE OR REPLACE TABLE {fqn} (ID NUMBER(38,0), {})", ddl.join(", "))).await.unwrap();
    let rows = pairs.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
    for row in 0..rows {
        let values: Vec<&str> = pairs.iter().map(|(_, _, v)| v.get(row).copied().unwrap_or("NULL")).collect();
        sf.execute(&format!("INSERT INTO {fqn} SELECT {row}, {}", values.join(", "))).await.unwrap();
    }
    let mut select: Vec<String> = vec![sql::ident("ID")];
    select.extend(columns.iter().map(|c| sql::ident(c)));
    let batches = sf.query_standard(&format!("SELECT {} FROM {fqn} ORDER BY ID", select.join(", "))).await.unwrap();

    let table = format!("types_{name}");
    let mut pg_ddl = vec!["\"ID\" int8".to_string()];
    pg_ddl.extend(pairs.iter().zip(&columns).map(|((_, pg_type, _), c)| format!("\"{c}\" {pg_type}")));
    pg.batch_execute(&format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({})", pg_ddl.join(", "))).await.unwrap();
    let targets = sink::table_columns(&pg, "public", &table).await.unwrap();
    if via_encoder {
        let schema = batches[0].schema();
        let mut encoder = CopyEncoder::new(targets.iter().cloned().zip(schema.fields().iter().cloned()).collect()).unwrap();
        let mut buf = BytesMut::new();
        CopyEncoder::header(&mut buf);
        for batch in &batches {
            encoder.encode_record_batch(batch, &mut buf).unwrap();
        }
        CopyEncoder::trailer(&mut buf);
        let sink = pg.copy_in::<_, bytes::Bytes>(&format!("COPY {table} ({}) FROM STDIN (FORMAT binary)", select.join(", "))).await.unwrap();
        futures::pin_mut!(sink);
        sink.send(buf.freeze()).await.unwrap();
        assert_eq!(sink.finish().await.unwrap(), rows as u64);
    } else {
        for row in 0..rows {
            let values: Vec<&str> = pairs.iter().map(|(_, _, v)| v.get(row).copied().unwrap_or("NULL")).collect();
            pg.batch_execute(&format!("INSERT INTO {table} VALUES ({row}, {})", values.join(", "))).await.unwrap();
        }
    }

    let mut sources = vec![SourceColumn { name: "ID".into(), data_type: "NUMBER".into(), scale: Some(0), char_length: None }];
    sources.extend(pairs.iter().zip(&columns).map(|((sf_type, _, _), c)| SourceColumn {
        name: c.clone(),
        data_type: sf_type.split('(').next().unwrap().to_string(),
        scale: sf_type.split(',').nth(1).and_then(|s| s.trim_end_matches(')').parse().ok()),
        char_length: None,
    }));
    let column_pairs: Vec<ColumnPair> = sources.iter().cloned().zip(targets.iter().cloned()).map(|(source, target)| ColumnPair { source, target }).collect();
    let engine = reconcile::SourceEngine::detect(&sf).await;
    assert_eq!(engine, reconcile::SourceEngine::Emulator);
    let mut sf_rows = reconcile::source_texts(&sf, engine, &column_pairs, &fqn).await.unwrap();
    sf_rows.sort_by_key(|r| r[0].as_deref().and_then(|s| s.parse::<i64>().ok()));
    let pg_exprs: Vec<String> = column_pairs.iter().map(|c| format!("CAST({} AS TEXT)", canonical::postgres_expr(&c.source, &c.target))).collect();
    pg.batch_execute("SET extra_float_digits = 1").await.unwrap();
    let pg_rows: Vec<Vec<Option<String>>> = pg
        .query(&format!("SELECT {} FROM {table} ORDER BY {table}.\"ID\"", pg_exprs.join(", ")), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (0..column_pairs.len()).map(|i| r.get(i)).collect())
        .collect();
    let raw_exprs: Vec<String> = column_pairs.iter().map(|c| canonical::postgres_expr(&c.source, &c.target)).collect();
    let postgres_hashes = pg
        .query(&format!("SELECT MD5({}), MD5({}) FROM {table} ORDER BY {table}.\"ID\"", canonical::row_text(&raw_exprs[..1]), canonical::row_text(&raw_exprs)), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The canonical text of each value's smallest change, where the change is a value of its own.
    let mut changes = vec![sql::ident("ID")];
    for ((sf_type, pg_type, _), c) in pairs.iter().zip(&columns) {
        let change = smallest_change(&sql::ident(c), sf_type, pg_type);
        changes.push(format!("{change} AS {}", sql::ident(c)));
        changes.push(format!("CAST({change} AS TEXT) IS DISTINCT FROM CAST({} AS TEXT) AS {}", sql::ident(c), sql::ident(&format!("{c}_changed"))));
    }
    let flags: Vec<String> = columns.iter().map(|c| sql::ident(&format!("{c}_changed"))).collect();
    let changed: Vec<Vec<Option<Option<String>>>> = pg
        .query(&format!("SELECT {}, {} FROM (SELECT {} FROM {table}) AS {table} ORDER BY {table}.\"ID\"", pg_exprs.join(", "), flags.join(", "), changes.join(", ")), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (0..column_pairs.len()).map(|i| if i > 0 && r.get::<_, bool>(column_pairs.len() + i - 1) { Some(r.get(i)) } else { None }).collect())
        .collect();
    pg.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
    let hasher = row_hash::RowHasher::new(&column_pairs, batches[0].schema().fields(), &["ID".to_string()]).unwrap();
    let (mut rust, mut rust_hashes) = (Vec::new(), Vec::new());
    for batch in &batches {
        rust.extend(hasher.texts(batch).unwrap());
        hasher.hash_batch(batch, &mut rust_hashes).unwrap();
    }
    Sides { emulator: sf_rows, postgres: pg_rows, postgres_hashes, rust, rust_hashes, changed, targets }
}

/// Every type pair of the round trip, value by value: the canonical text the
/// emulator side computes (Snowflake SQL inside the emulator, or Rust for
/// float and JSON columns) equals the one PostgreSQL computes, and every
/// supported pair is covered (or is a documented emulator gap).
#[tokio::test]
async fn canonical_forms_agree_value_by_value_for_every_type_pair() {
    let (sf_rows, pg_rows, targets) = texts_on_both_sides("canonical", EMULATED, true).await;
    assert_eq!(sf_rows.len(), pg_rows.len());
    let mut differences = Vec::new();
    for (row, (s, p)) in sf_rows.iter().zip(&pg_rows).enumerate() {
        for (i, (a, b)) in s.iter().zip(p).enumerate().skip(1) {
            if a != b {
                differences.push(format!("row {row} {} → {}: emulator {a:?} postgres {b:?}", EMULATED[i - 1].0, EMULATED[i - 1].1));
            }
        }
    }
    assert!(differences.is_empty(), "canonical forms differ:\n{}", differences.join("\n"));
    // Spot-check a few forms (the documented ones, docs/reconcile.md §3).
    let col = |sf_type: &str, pg_type: &str| EMULATED.iter().position(|(s, p, _)| *s == sf_type && *p == pg_type).unwrap() + 1;
    let float = col("FLOAT", "float8");
    let floats: Vec<Option<&str>> = sf_rows.iter().map(|r| r[float].as_deref()).collect();
    assert_eq!(floats, [Some("3.0000000000000004e-1"), Some("NaN"), Some("Infinity"), Some("-Infinity"), Some("1e308"), Some("-0"), Some("1e-7"), Some("6.255850405876058e16"), Some("-1.2135477874367973e15"), None]);
    let json = col("TEXT", "jsonb");
    assert_eq!(sf_rows[0][json].as_deref(), Some(r#"$."a"[0]=1e0,$."a"[1]=2.5e0,$."b"=1e-7"#));
    assert_eq!((sf_rows[2][json].as_deref(), sf_rows[3][json].as_deref(), sf_rows[4][json].as_deref()), (Some(r#"$="""#), Some("$=null"), None));
    assert_eq!(sf_rows[0][col("TIMESTAMP_NTZ", "date")].as_deref(), Some("-86400000000"));
    // Scale 38 compared at 38 digits (it was rounded to 37, so a changed 38th decimal reconciled `ok`).
    assert_eq!(sf_rows[0][col("NUMBER(38,38)", "numeric(38,38)")].as_deref(), Some("0.04391924410018483383401209867666976589"));
    assert_eq!(sf_rows[0][col("NUMBER(38,38)", "text")].as_deref(), Some("-0.04391924410018483383401209867666976589"));

    // Coverage: every supported (Snowflake, PostgreSQL) pair is emulated or a documented gap.
    let covered: Vec<(LogicalType, sink::PgType)> =
        EMULATED.iter().zip(targets.iter().skip(1)).map(|((sf_type, _, _), t)| (LogicalType::from_data_type(sf_type).unwrap(), t.pg_type)).collect();
    let text_like = [sink::PgType::Text, sink::PgType::Varchar, sink::PgType::Bpchar];
    let mut missing = Vec::new();
    for logical in LogicalType::ALL.into_iter().filter(|l| !matches!(l, LogicalType::Object | LogicalType::Array)) {
        for target in supported_targets(logical) {
            let is_covered = is_covered(&covered, logical, *target);
            let gap = text_like.contains(target) && EMULATOR_GAPS.iter().any(|(l, _)| *l == logical);
            if !is_covered && !gap {
                missing.push(format!("{logical} → {target:?}"));
            }
            if gap {
                // Checked as text: the real-Snowflake SQL renders with TO_CHAR.
                let source = SourceColumn { name: "C".into(), data_type: logical.name().into(), scale: None, char_length: None };
                let target = sink::TargetColumn {
                    name: "c".into(),
                    pg_type: *target,
                    type_name: "text".into(),
                    char_max_length: None,
                    numeric_precision: None,
                    numeric_scale: None,
                    nullable: true,
                };
                assert!(canonical::snowflake_expr(&source, &target).contains("TO_CHAR("), "{logical} → {:?}", target.pg_type);
            }
        }
    }
    assert!(missing.is_empty(), "pairs without a value-by-value canonical case: {missing:?}");
}

/// Reconcile can only find a difference its canonical forms keep: for every
/// type pair, the smallest change a target column can hold (one unit of
/// the last digit, one microsecond, a trailing blank, a flipped case, one ulp
/// of a double, …; [`smallest_change`]) gives another canonical text than
/// the stored value — except the documented comparisons at a coarser
/// grain (docs/reconcile.md §3.2): JSON numbers as doubles. A NUMBER
/// of scale s in an unconstrained `numeric` used to be compared rounded to s
/// decimals, so a target holding 1.501 for the source's 1.50 reconciled `ok`;
/// a text source in an unconstrained `numeric` was compared at scale 0, so
/// 1.6 for the source's '1.5' did.
#[tokio::test]
async fn the_smallest_change_of_every_stored_value_changes_its_canonical_text() {
    let s = sides("smallest", EMULATED, true).await;
    let mut kept = Vec::new();
    let mut changes = vec![0; EMULATED.len()];
    for (row, (stored, changed)) in s.postgres.iter().zip(&s.changed).enumerate() {
        for (i, (before, after)) in stored.iter().zip(changed).enumerate().skip(1) {
            let (sf_type, pg_type, _) = EMULATED[i - 1];
            let Some(after) = after else { continue };
            changes[i - 1] += 1;
            if before == after {
                kept.push(format!("row {row} {sf_type} → {pg_type}: {before:?} unchanged"));
            }
        }
    }
    let unchanged: Vec<String> = EMULATED.iter().zip(&changes).filter(|(_, n)| **n == 0).map(|((sf_type, pg_type, _), _)| format!("{sf_type} → {pg_type}")).collect();
    assert!(unchanged.is_empty(), "pairs with no value changed (the test would not check them): {unchanged:?}");
    assert!(kept.is_empty(), "changes reconcile cannot see:\n{}", kept.join("\n"));
}

/// The row hashes thaw keeps at load time (docs/reconcile.md §4.2), for
/// every type pair of the round trip, value by value: the canonical text
/// computed in Rust from the Arrow batch the encoder wrote equals the text
/// PostgreSQL computes from the stored row (and the emulator's text of the
/// source row); the Rust key MD5, key-hash place and 48-bit row hash equal
/// PostgreSQL's SQL `MD5(key text)` / `MD5(row text)` and the emulator's.
/// Covers NULLs, NaN/±Infinity/−0.0, JSON key order and number spelling,
/// timestamps at µs, NUMBER scales, text with trailing blanks into `char`.
#[tokio::test]
async fn rust_row_hashes_of_the_written_batch_equal_both_engines_value_by_value() {
    let s = sides("rowhash", EMULATED, true).await;
    let rows = s.postgres.len();
    assert!(rows >= 8 && s.rust.len() == rows && s.rust_hashes.len() == rows && s.emulator.len() == rows);
    let mut differences = Vec::new();
    for (row, (r, p)) in s.rust.iter().zip(&s.postgres).enumerate() {
        for (i, (a, b)) in r.iter().zip(p).enumerate() {
            if a != b {
                let pair = if i == 0 { ("NUMBER(38,0)", "int8") } else { (EMULATED[i - 1].0, EMULATED[i - 1].1) };
                differences.push(format!("row {row} {} → {}: rust {a:?} postgres {b:?}", pair.0, pair.1));
            }
        }
    }
    assert!(differences.is_empty(), "Rust canonical texts differ from PostgreSQL's:\n{}", differences.join("\n"));
    use md5::Digest as _;
    let md5 = |t: &str| -> [u8; 16] { md5::Md5::digest(t.as_bytes()).into() };
    let join = |v: &[Option<String>]| v.iter().map(|x| x.clone().unwrap_or_else(|| canonical::NULL_MARKER.to_string())).collect::<Vec<_>>().join(&canonical::SEPARATOR.to_string());
    for (row, ((h, (pg_key, pg_row)), emulator)) in s.rust_hashes.iter().zip(&s.postgres_hashes).zip(&s.emulator).enumerate() {
        assert_eq!(&hex::encode(h.key_md5), pg_key, "row {row}: key MD5");
        assert_eq!(format!("{:07x}", h.key_place), pg_key[..7], "row {row}: key-hash place");
        assert_eq!(format!("{:012x}", h.row_hash), pg_row[..12], "row {row}: 48-bit row hash vs PostgreSQL");
        assert_eq!(h.key_md5, md5(&join(&emulator[..1])), "row {row}: key MD5 vs the emulator");
        assert_eq!(h.row_hash, row_hash::row_hash48(&md5(&join(emulator))), "row {row}: row hash vs the emulator");
    }
    let distinct: std::collections::BTreeSet<u64> = s.rust_hashes.iter().map(|h| h.row_hash).collect();
    assert_eq!(distinct.len(), rows, "every row of the suite differs, so must its hash");
    assert_eq!(s.targets.len(), EMULATED.len() + 1);
}

/// Copies that lose information canonicalise from the source's full
/// precision, so the target's value renders differently and reconcile
/// reports the row: a timestamp in a `date`, a double rounded into `numeric(10,2)` or `float4`.
#[tokio::test]
async fn lossy_copies_canonicalise_differently_on_the_two_sides() {
    let lossy: &[(&str, &str, &[&str])] = &[
        ("TIMESTAMP_NTZ", "date", &["'2024-03-10 20:00:00'", "'1969-12-31 00:00:00.000001'"]),
        ("FLOAT", "numeric(10,2)", &["0.125", "CAST(1e-7 AS FLOAT)"]),
        ("FLOAT", "float4", &["0.1", "CAST(0.3 AS FLOAT)"]),
    ];
    let (sf_rows, pg_rows, _) = texts_on_both_sides("lossy", lossy, false).await;
    for (row, (s, p)) in sf_rows.iter().zip(&pg_rows).enumerate() {
        for (i, (a, b)) in s.iter().zip(p).enumerate().skip(1) {
            assert_ne!(a, b, "row {row} {} → {}: a lossy copy must not canonicalise equal", lossy[i - 1].0, lossy[i - 1].1);
        }
    }
}

/// Every supported (Snowflake, PostgreSQL) pair, VARIANT/OBJECT/ARRAY counted
/// once (as VARIANT: they share their targets and their encoding).
fn supported_pairs() -> Vec<(LogicalType, sink::PgType)> {
    LogicalType::ALL
        .into_iter()
        .filter(|l| !matches!(l, LogicalType::Object | LogicalType::Array))
        .flat_map(|l| supported_targets(l).iter().map(move |t| (l, *t)))
        .collect()
}

/// Whether `covered` holds the pair; any of VARIANT/OBJECT/ARRAY covers VARIANT.
fn is_covered(covered: &[(LogicalType, sink::PgType)], logical: LogicalType, target: sink::PgType) -> bool {
    if logical == LogicalType::Variant {
        [LogicalType::Variant, LogicalType::Object, LogicalType::Array].iter().any(|l| covered.contains(&(*l, target)))
    } else {
        covered.contains(&(logical, target))
    }
}

/// The name a coverage failure shows for `logical`.
fn semi_name(logical: LogicalType) -> String {
    if logical == LogicalType::Variant { "VARIANT/OBJECT/ARRAY".into() } else { logical.to_string() }
}

/// PostgreSQL's canonical JSON texts ([`canonical::postgres_json`]) of JSON
/// documents given as text (`None`: SQL NULL), in order.
async fn postgres_canonical_json(pg: &Client, documents: &[Option<String>]) -> Vec<Option<String>> {
    let sql = format!(
        "SELECT {} FROM unnest(CAST($1 AS text[])) WITH ORDINALITY AS documents(document, position) ORDER BY position",
        canonical::postgres_json("CAST(document AS JSONB)")
    );
    pg.query(&sql, &[&documents]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

/// Rust's canonical JSON text of a document (the emulator path, and the
/// rules the Snowflake-side JavaScript follows).
fn rust_canonical_json(document: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(document).unwrap_or_else(|e| panic!("{document}: {e}"));
    canonical::canonical_json(&value)
}

/// The documents whose PostgreSQL and Rust texts differ, described.
async fn json_differences(pg: &Client, documents: &[String]) -> Vec<String> {
    let texts = postgres_canonical_json(pg, &documents.iter().cloned().map(Some).collect::<Vec<_>>()).await;
    documents
        .iter()
        .zip(texts)
        .filter_map(|(d, p)| {
            let r = rust_canonical_json(d);
            (p.as_deref() != Some(r.as_str())).then(|| format!("{d}\n  rust     {r}\n  postgres {p:?}"))
        })
        .collect()
}

/// The canonical JSON form (docs/reconcile.md §3) is byte-identical in
/// PostgreSQL (`thaw_reconcile.canonical_json`, migration V22) and Rust for
/// documents chosen to stress it: nesting, empty containers at every depth,
/// key order (keys of different lengths, which `jsonb` stores shorter
/// first), escaped and non-BMP keys, arrays longer than 10, number spellings
/// and edges, strings that look like numbers, and JSON null vs "" vs SQL NULL.
#[tokio::test]
async fn canonical_json_is_the_same_in_postgres_and_rust_for_stressed_documents() {
    let pg = migrated_postgres("json").await;
    let documents: Vec<String> = [
        r#"{"b": {"y": [1, {"z": []}], "x": {}}, "a": [[], {}, [[]], [{}]]}"#,
        r#"{}"#,
        r#"[]"#,
        r#"[{}]"#,
        r#"[[[[]]]]"#,
        r#"{"a": {"b": {"c": {}}}}"#,
        r#"{"zip": 1, "city": 2, "b": 3, "a": 4, "aa": 5, "ab!": 6, "ab": 7, "ab ": 8, "": 9}"#,
        r#"{"q\"uote": 1, "back\\slash": 2, "nl\n": 3, "tab\t": 4, "ctl\u0001": 5, "us\u001f": 6, "del\u007f": 7, "é": 8, "中": 9, "😀": 10, "\ud83d\ude00x": 11, "\uffff": 12, "\u00e9": 13, "sl\/ash": 14}"#,
        r#"["q\"uote", "back\\slash", "nl\n", "\b\f\r", "😀", "\ud83d\ude00", "\uffff", "\/"]"#,
        r#"[1e-7, 0.0000001, 2.50, 2.5, -0, -0.0, 0, 0e10, 1e308, -1e308, 1.7976931348623157e308, 2.2250738585072014e-308, 5e-324]"#,
        r#"[9007199254740993, 18446744073709551615, 18446744073709551616, 123456789012345678901234567890, -9223372036854775809, 62558504058760576, -71640132426411264, 99999999999999999, 5772551892582719500, 1213547787436797.25, 123456789012345.6]"#,
        r#"[0.1, 0.30000000000000004, 1E+2, 1e2, 100, 12345678901234567890e-10, -5, 1.5e300, 123.456, 0.00123, 1e15, 1e14, 1e-4, 1e-5]"#,
        r#"["1", "1e-7", "2.50", "-0", "null", "true", "", " "]"#,
        r#"[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, [12], {"13": 13}]"#,
        r#"{"k": 42, "a": [1, 2.5, "x"], "tiny": 1e-7}"#,
        r#"{"a": {"a": {"a": [{"b": null, "a": true}, false]}}}"#,
        "null",
        r#""""#,
        r#""null""#,
        "true",
        "0",
        "-0",
        "1e-7",
        r#""x""#,
    ]
    .iter()
    .map(|d| d.to_string())
    .chain([format!("{}1{}", "[".repeat(100), "]".repeat(100)), format!("{}{{}}{}", r#"{"a": ["#.repeat(60), "]}".repeat(60))])
    .collect();
    let differences = json_differences(&pg, &documents).await;
    assert!(differences.is_empty(), "canonical JSON texts differ:\n{}", differences.join("\n"));

    // The documented forms (docs/reconcile.md §3), and NULL vs null vs "".
    let all: Vec<Option<String>> = ["null", r#""""#, r#"[-0, 1E+2, 2.50, 1e-7, 62558504058760576, 1213547787436797.25]"#, r#"{"b": 1, "aa": {}}"#].iter().map(|d| Some(d.to_string())).chain([None]).collect();
    let texts = postgres_canonical_json(&pg, &all).await;
    assert_eq!(
        texts,
        [
            Some("$=null".to_string()),
            Some(r#"$="""#.to_string()),
            // As Rust and JavaScript print them, not as PostgreSQL's float8 text does:
            // 16 digits on the half-way point to the next double (not 6.2558504058760576e16),
            // and of two equally near 17-digit forms the larger (not 1.2135477874367972e15).
            Some("$[0]=0,$[1]=1e2,$[2]=2.5e0,$[3]=1e-7,$[4]=6.255850405876058e16,$[5]=1.2135477874367973e15".to_string()),
            Some(r#"$."aa"={},$."b"=1e0"#.to_string()),
            None
        ]
    );
}

/// A JSON string literal over characters that stress escaping and ordering
/// (quotes, backslashes, control characters, DEL, accents, BMP edges,
/// non-BMP), each written raw or as a `\u` escape (surrogate pairs beyond
/// the BMP).
fn json_string() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let chars = prop::sample::select(vec!['a', 'b', 'z', 'A', '0', '1', ' ', '!', '"', '\\', '/', '\n', '\t', '\u{1}', '\u{1f}', '\u{7f}', 'é', '中', '\u{ffff}', '😀', '𝄞']);
    prop::collection::vec((chars, any::<bool>()), 0..5).prop_map(|cs| {
        let mut out = String::from("\"");
        for (c, escaped) in cs {
            if escaped {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            } else {
                // serde_json's own escaping for the characters JSON requires escaped.
                let quoted = serde_json::Value::String(c.to_string()).to_string();
                out.push_str(&quoted[1..quoted.len() - 1]);
            }
        }
        out.push('"');
        out
    })
}

/// A JSON number in one of many spellings: integers of any width (beyond
/// 2^53 and 2^64 too), doubles in Rust's shortest plain and scientific
/// forms (upper- and lower-case exponent), decimals with trailing zeros,
/// and the edges (-0, the largest, the smallest normal and subnormal).
fn json_number() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let finite = any::<f64>().prop_filter("finite, at most 1e-300 from zero only when zero", |x| x.is_finite() && (*x == 0.0 || x.abs() > 1e-300));
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        any::<u64>().prop_map(|i| i.to_string()),
        "-?[1-9][0-9]{15,30}",
        finite.clone().prop_map(|x| format!("{x:e}")),
        finite.clone().prop_map(|x| format!("{x:E}")),
        finite.prop_map(|x| format!("{x}")),
        (any::<bool>(), 0u64..100_000, "[0-9]{1,6}").prop_map(|(negative, whole, fraction)| format!("{}{whole}.{fraction}", if negative { "-" } else { "" })),
        prop::sample::select(vec!["0", "-0", "-0.0", "0e5", "1e308", "-1e308", "1.7976931348623157e308", "2.2250738585072014e-308", "5e-324", "4.9e-324", "1e-7", "2.50", "0.1", "0.30000000000000004", "9007199254740993", "1E+2", "1e+2"]).prop_map(String::from),
    ]
}

/// A JSON document (as text) of at most 4 levels of arrays and objects
/// (arrays up to 12 elements, objects up to 6 members, duplicate keys
/// possible) over null, booleans, [`json_number`] and [`json_string`].
fn json_document() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let leaf = prop_oneof![Just("null".to_string()), Just("true".to_string()), Just("false".to_string()), json_number(), json_string()];
    leaf.prop_recursive(4, 64, 12, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..13).prop_map(|v| format!("[{}]", v.join(", "))),
            prop::collection::vec((json_string(), inner), 0..7)
                .prop_map(|m| format!("{{{}}}", m.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "))),
        ]
    })
}

/// Property: for generated documents (fixed seed, so a failure reproduces),
/// PostgreSQL's canonical JSON text equals Rust's byte for byte.
#[tokio::test]
async fn canonical_json_is_the_same_in_postgres_and_rust_for_generated_documents() {
    use proptest::strategy::{Strategy, ValueTree};
    let pg = migrated_postgres("jsonprop").await;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = json_document();
    let documents: Vec<String> = (0..10_000).map(|_| strategy.new_tree(&mut runner).unwrap().current()).collect();
    assert!(documents.iter().filter(|d| d.starts_with('{') && d.len() > 40).count() > 1000, "the generator makes sizeable objects");
    let differences = json_differences(&pg, &documents).await;
    assert!(differences.is_empty(), "{} of {} generated documents differ:\n{}", differences.len(), documents.len(), differences[..differences.len().min(8)].join("\n"));
}

/// Edge values a faithful copy must reconcile clean (docs/reconcile.md §3):
/// NUMBER(38,s) beyond i64 and at 38 digits, negative zero and trailing
/// zeros at several scales, TIMESTAMP_TZ at non-UTC offsets and across DST
/// changes, timestamps and times at µs and ns, dates at 0001-01-01 and
/// 9999-12-31, text with emoji, control characters, trailing blanks and
/// CRLF, numbers in text with signs, leading zeros and blanks, BOOLEAN
/// NULL, empty BINARY, VARIANT strings vs numbers, nested
/// arrays, JSON null. Within a column, every value differs from the others,
/// so their canonical texts must differ too (a target holding one where
/// the source holds another is found).
const EDGES: &[(&str, &str, &[&str])] = &[
    // (fakesnow stores NUMBER(38,0) as BIGINT, so values beyond i64 use scale 1 here.)
    ("NUMBER(38,1)", "numeric", &["9999999999999999999999999999999999999.9", "-9999999999999999999999999999999999999.9", "9223372036854775808", "-9223372036854775809", "0", "NULL"]),
    ("NUMBER(38,1)", "numeric(38,1)", &["1234567890123456789012345678901234567.8", "-1", "0"]),
    ("NUMBER(38,0)", "numeric", &["9223372036854775807", "-9223372036854775808", "0"]),
    ("NUMBER(38,0)", "int8", &["9223372036854775807", "-9223372036854775808", "0"]),
    ("NUMBER(38,10)", "numeric", &["1234567890123456789012345678.0123456789", "-0.0000000001", "0.1000000000", "0"]),
    ("NUMBER(12,2)", "numeric(14,4)", &["-0.00", "1.10", "-1.00", "0.01"]),
    ("NUMBER(12,2)", "numeric(12,2)", &["-0.00", "1.10", "-1.00"]),
    ("NUMBER(12,2)", "text", &["-0.00", "1.10", "-1.00", "10"]),
    // No integer digits: DuckDB renders DECIMAL(9,9) as `.024996425` (found by tests/sync_model.py seed 600).
    ("NUMBER(9,9)", "text", &["0.024996425", "-0.5", "0"]),
    ("NUMBER(12,2)", "float8", &["-0.00", "1.10", "-1.00"]),
    ("TIMESTAMP_TZ", "timestamptz", &[
        "'2024-03-10 01:59:59.999999-08:00'", "'2024-03-10 03:00:00-07:00'", "'2024-11-03 01:30:00-04:00'", "'2024-11-03 01:30:00-05:00'",
        "'2024-01-01 00:00:00+14:00'", "'2024-01-01 00:00:00-12:00'", "'2024-01-01 00:00:00+05:45'", "'0001-01-01 12:00:00+00:00'", "'9999-12-31 23:59:59.999999+00:00'",
    ]),
    ("TIMESTAMP_NTZ", "timestamp", &[
        "'2024-03-10 20:00:00.123456789'", "'2024-03-10 20:00:00.123456'", "'2024-03-10 20:00:00.000001'", "'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'",
        "'1900-01-01 12:00:00.000001'", "'1969-12-31 23:59:59.999999'",
    ]),
    ("TIMESTAMP_NTZ", "timestamptz", &["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'1969-07-20 20:17:40.000001'"]),
    ("TIMESTAMP_LTZ", "timestamptz", &["'0001-01-01 00:00:00'", "'9999-12-31 23:59:59.999999'", "'2024-03-10 02:30:00'"]),
    ("DATE", "date", &["'0001-01-01'", "'9999-12-31'", "'1582-10-10'", "'1900-02-28'", "'2000-02-29'"]),
    ("DATE", "timestamp", &["'0001-01-01'", "'9999-12-31'"]),
    ("TIME", "time", &["'23:59:59.999999'", "'00:00:00.000001'", "'12:00:00.1'", "'12:00:00'"]),
    ("TEXT", "text", &[
        "'😀 emoji'", "'a' || CHR(13) || CHR(10) || 'b'", "'a' || CHR(10) || 'b'", "'x  '", "'x'", "' x'", "'tab' || CHR(9)", "'ctl' || CHR(1)",
        "'e' || CHR(769)", "CHR(233)", "'中文'", "''", "NULL",
    ]),
    ("TEXT", "varchar(10)", &["'x  '", "'x'", "'😀'"]),
    ("TEXT", "int8", &["'+7'", "'-0'", "'008'", "' 42'"]),
    ("TEXT", "numeric(10,3)", &["'+7'", "'-0.000'", "'007.5'", "'.5'"]),
    // An unconstrained numeric holds the text's own decimals, compared exactly in the shortest form.
    ("TEXT", "numeric", &["'+7'", "'-0.000'", "'007.50'", "'.5'", "'-1.25'", "' 42 '", "'12345678901234567890123456789012345678'", "'-0.0000000000000000000000000000000000001'", "'1.5'", "'-.5'", "NULL"]),
    ("BOOLEAN", "bool", &["NULL", "TRUE", "FALSE"]),
    ("BINARY", "bytea", &["TO_BINARY('', 'HEX')", "NULL", "TO_BINARY('00', 'HEX')", "TO_BINARY('0000', 'HEX')"]),
    ("VARIANT", "jsonb", &[
        r#"PARSE_JSON('"1"')"#, "PARSE_JSON('1')", "PARSE_JSON('[[1, [2, []]], {}]')", "PARSE_JSON('[[1, 2], []]')", "PARSE_JSON('null')", "NULL",
        r#"PARSE_JSON('{"a": null}')"#, r#"PARSE_JSON('{"a": "null"}')"#, r#"PARSE_JSON('{"a": {}}')"#, "PARSE_JSON('[null]')", r#"PARSE_JSON('"😀"')"#,
        "PARSE_JSON('true')", r#"PARSE_JSON('"true"')"#,
    ]),
];

/// [`EDGES`], value by value: the emulator side, PostgreSQL and the Rust row
/// hashes agree on every value copied by thaw's encoder, and distinct
/// values of a column have distinct canonical texts.
#[tokio::test]
async fn edge_values_canonicalise_alike_in_both_engines_and_apart_from_each_other() {
    let s = sides("edges", EDGES, true).await;
    let mut differences = Vec::new();
    for (row, ((e, p), r)) in s.emulator.iter().zip(&s.postgres).zip(&s.rust).enumerate() {
        for (i, ((a, b), c)) in e.iter().zip(p).zip(r).enumerate().skip(1) {
            if a != b || b != c {
                let literal = EDGES[i - 1].2.get(row).copied().unwrap_or("NULL");
                differences.push(format!("row {row} {} → {} {literal}: emulator {a:?} postgres {b:?} rust {c:?}", EDGES[i - 1].0, EDGES[i - 1].1));
            }
        }
    }
    assert!(differences.is_empty(), "canonical forms differ:\n{}", differences.join("\n"));
    let col = |sf_type: &str, pg_type: &str| EDGES.iter().position(|(s, p, _)| *s == sf_type && *p == pg_type).unwrap() + 1;
    // Nanoseconds are lowered to the coarser side's microseconds; NUMBER has no negative zero.
    let ntz = col("TIMESTAMP_NTZ", "timestamp");
    assert_eq!((s.postgres[0][ntz].as_deref(), s.postgres[1][ntz].as_deref()), (Some("1710100800123456"), Some("1710100800123456")));
    let cents = col("NUMBER(12,2)", "numeric(12,2)");
    assert_eq!(s.postgres[0][cents].as_deref(), Some("0.00"), "-0.00 is zero");
    assert_eq!(s.postgres[0][col("NUMBER(12,2)", "numeric(14,4)")].as_deref(), Some("0.0000"));
    assert_eq!(s.postgres[0][col("NUMBER(38,1)", "numeric")].as_deref(), Some("9999999999999999999999999999999999999.9"));
    let mut collisions = Vec::new();
    for (i, (sf_type, pg_type, literals)) in EDGES.iter().enumerate() {
        let mut seen: HashMap<Option<String>, &str> = HashMap::new();
        // The first NTZ literal is the second at nanoseconds (asserted equal above).
        for (row, literal) in literals.iter().enumerate().skip(usize::from(i + 1 == ntz)) {
            if let Some(earlier) = seen.insert(s.postgres[row][i + 1].clone(), literal) {
                collisions.push(format!("{sf_type} → {pg_type}: {earlier} and {literal} both render {:?}", s.postgres[row][i + 1]));
            }
        }
    }
    assert!(collisions.is_empty(), "distinct values render alike:\n{}", collisions.join("\n"));
}
