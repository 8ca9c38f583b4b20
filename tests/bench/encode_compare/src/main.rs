//! thaw's binary COPY encoder (`thaw_engine::sink::encode::CopyEncoder`)
//! against the `pgpq` crate on the same record batches (docs/sync.md §5.7).
//!
//! * `thaw-encode-compare speed <thaw|pgpq> <reconcile5|mixed10> [rows] [runs]`:
//!   encode `rows` rows (default 1,000,000, in 100,000-row batches) `runs`
//!   times (default 5) into one buffer each and print one JSON line: the
//!   encoder, the shape, rows, bytes, every run's seconds, the median, and
//!   the process's peak RSS in KiB. Only pairs both encoders handle are in
//!   the shapes, so both write the same bytes (checked: the output lengths
//!   are printed and compared by the caller).
//! * `thaw-encode-compare coverage` (needs `DATABASE_URL`): for each
//!   (Arrow type, PostgreSQL column type) pair thaw's sink writes, encode
//!   the same sample values with both, `COPY … (FORMAT binary)` them into a
//!   fresh table with that column type, read them back as text and print one
//!   JSON line per pair: what thaw did (loaded / refused, with its message)
//!   and what pgpq did (same values as thaw / different values / refused by
//!   pgpq / refused by PostgreSQL, with the message).
//!
//! The columns are built from the same generator in arrow 57 (thaw) and in
//! arrow 59 (pgpq 0.12) by one macro, so both encode identical values.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::SinkExt;

/// Batch size of the speed runs: 100,000 rows, as a Snowflake result arrives in pieces.
const BATCH_ROWS: usize = 100_000;

/// The columns of a speed shape, built with the arrow crates named by `$array`
/// and `$schema` (arrow 57 for thaw, arrow 59 for pgpq): `(fields, columns)`.
macro_rules! shape {
    ($array:ident, $schema:ident, $shape:expr, $rows:expr) => {{
        use $array::{ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
        use $schema::{DataType, Field, TimeUnit};
        let rows: usize = $rows;
        let ts = |i: usize| 1_700_000_000_000_000i64 + i as i64 * 1_000_003;
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut add = |f: Field, c: ArrayRef| {
            fields.push(f);
            columns.push(c);
        };
        // The reconcile bench table: ID int8, NOTE varchar(40), AMOUNT numeric(12,2), TS timestamp, UPDATED timestamp.
        add(
            Field::new("ID", DataType::Int64, false),
            Arc::new(Int64Array::from_iter_values(1..=rows as i64)),
        );
        add(
            Field::new("NOTE", DataType::Utf8, true),
            Arc::new(StringArray::from_iter((0..rows).map(|i| (i % 50 != 0).then(|| format!("note {i}"))))),
        );
        add(
            Field::new("AMOUNT", DataType::Decimal128(12, 2), true),
            Arc::new(
                Decimal128Array::from_iter((0..rows).map(|i| (i % 97 != 0).then_some((i % 100_000) as i128 - 50_000)))
                    .with_precision_and_scale(12, 2)
                    .unwrap(),
            ),
        );
        add(
            Field::new("TS", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Arc::new(TimestampMicrosecondArray::from_iter_values((0..rows).map(ts))),
        );
        add(
            Field::new("UPDATED", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Arc::new(TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| ts(i) / 1_000_000 * 1_000_000))),
        );
        if $shape == "mixed10" {
            // Five more: the other types of the visit fact table.
            add(
                Field::new("PROVIDER", DataType::Int32, true),
                Arc::new(Int32Array::from_iter((0..rows).map(|i| (i % 31 != 0).then_some((i % 5_000) as i32)))),
            );
            add(
                Field::new("MILES", DataType::Float64, true),
                Arc::new(Float64Array::from_iter_values((0..rows).map(|i| (i % 1_000) as f64 * 0.125))),
            );
            add(
                Field::new("IN_SERVICE", DataType::Boolean, true),
                Arc::new(BooleanArray::from_iter((0..rows).map(|i| (i % 13 != 0).then_some(i % 2 == 0)))),
            );
            add(
                Field::new("VISIT_DATE", DataType::Date32, true),
                Arc::new(Date32Array::from_iter_values((0..rows).map(|i| 19_000 + (i % 1_500) as i32))),
            );
            add(
                Field::new("VISIT_START", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
                Arc::new(TimestampMicrosecondArray::from_iter_values((0..rows).map(ts)).with_timezone("UTC")),
            );
        }
        (fields, columns)
    }};
}

/// PostgreSQL column type of each speed-shape column, by name (what thaw's
/// encoder is told the target is).
fn speed_target(name: &str) -> (&'static str, Option<i32>, Option<(i32, i32)>) {
    match name {
        "ID" => ("int8", None, None),
        "NOTE" => ("varchar", Some(40), None),
        "AMOUNT" => ("numeric", None, Some((12, 2))),
        "TS" | "UPDATED" => ("timestamp", None, None),
        "PROVIDER" => ("int4", None, None),
        "MILES" => ("float8", None, None),
        "IN_SERVICE" => ("bool", None, None),
        "VISIT_DATE" => ("date", None, None),
        _ => ("timestamptz", None, None),
    }
}

fn target_column(name: &str, type_name: &str, char_max_length: Option<i32>, numeric: Option<(i32, i32)>) -> thaw_engine::sink::TargetColumn {
    thaw_engine::sink::TargetColumn {
        name: name.to_string(),
        pg_type: thaw_engine::sink::PgType::from_typname(type_name).expect("a type thaw writes"),
        type_name: type_name.to_string(),
        char_max_length,
        numeric_precision: numeric.map(|n| n.0),
        numeric_scale: numeric.map(|n| n.1),
        nullable: true,
    }
}

/// Peak resident set of this process in KiB (`getrusage`, Linux reports KiB).
fn peak_rss_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(-1)
}

/// A checksum of the encoded bytes (SipHash with fixed keys), to compare the two encoders' output.
fn checksum(bytes: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn speed(encoder: &str, shape: &str, rows: usize, runs: usize) {
    let mut seconds = Vec::new();
    let mut bytes = 0usize;
    let mut digest = 0u64;
    match encoder {
        "thaw" => {
            let (fields, columns) = shape!(arrow_array, arrow_schema, shape, rows);
            let pairs: Vec<_> = fields
                .iter()
                .map(|f| {
                    let (t, len, numeric) = speed_target(f.name());
                    (target_column(f.name(), t, len, numeric), Arc::new(f.clone()))
                })
                .collect();
            for _ in 0..runs {
                let mut encoder = thaw_engine::sink::encode::CopyEncoder::new(pairs.clone()).expect("thaw accepts the shape");
                let mut out = BytesMut::with_capacity(bytes.max(1 << 20));
                let started = Instant::now();
                thaw_engine::sink::encode::CopyEncoder::header(&mut out);
                for start in (0..rows).step_by(BATCH_ROWS) {
                    let slice: Vec<_> = columns.iter().map(|c| c.slice(start, BATCH_ROWS.min(rows - start))).collect();
                    encoder.encode_batch(&slice, &mut out).expect("thaw encodes the shape");
                }
                thaw_engine::sink::encode::CopyEncoder::trailer(&mut out);
                seconds.push(started.elapsed().as_secs_f64());
                bytes = out.len();
                digest = checksum(&out);
            }
        }
        "pgpq" => {
            let (fields, columns) = shape!(arrow_array_59, arrow_schema_59, shape, rows);
            let schema = Arc::new(arrow_schema_59::Schema::new(fields));
            for _ in 0..runs {
                let mut encoder = pgpq::ArrowToPostgresBinaryEncoder::try_new(&schema).expect("pgpq accepts the shape");
                let mut out = BytesMut::with_capacity(bytes.max(1 << 20));
                let started = Instant::now();
                encoder.write_header(&mut out).unwrap();
                for start in (0..rows).step_by(BATCH_ROWS) {
                    let slice: Vec<_> = columns.iter().map(|c| c.slice(start, BATCH_ROWS.min(rows - start))).collect();
                    let batch = arrow_array_59::RecordBatch::try_new(schema.clone(), slice).unwrap();
                    encoder.write_batch(&batch, &mut out).expect("pgpq encodes the shape");
                }
                encoder.write_footer(&mut out).unwrap();
                seconds.push(started.elapsed().as_secs_f64());
                bytes = out.len();
                digest = checksum(&out);
            }
        }
        other => panic!("unknown encoder {other}: thaw or pgpq"),
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    println!(
        "{}",
        serde_json::json!({"encoder": encoder, "shape": shape, "rows": rows, "bytes": bytes, "checksum": format!("{digest:016x}"), "seconds": seconds, "median_seconds": median,
                           "rows_per_second": rows as f64 / median, "peak_rss_kib": peak_rss_kib()})
    );
}

/// Sample values of one Arrow type, in arrow 57 and arrow 59.
macro_rules! sample {
    ($array:ident, $schema:ident, $kind:expr) => {{
        use $array::{
            ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array, Int64Array, StringArray, Time64MicrosecondArray,
            TimestampMicrosecondArray,
        };
        use $schema::{DataType, Field, TimeUnit};
        let (data_type, column): (DataType, ArrayRef) = match $kind {
            "int64" => (
                DataType::Int64,
                Arc::new(Int64Array::from(vec![Some(0), Some(-1), Some(2_147_483_647), Some(i64::MAX), None])),
            ),
            "int64 in int4 range" => (
                DataType::Int64,
                Arc::new(Int64Array::from(vec![Some(0), Some(-2_147_483_648), Some(2_147_483_647), None])),
            ),
            "int64 over int4" => (DataType::Int64, Arc::new(Int64Array::from(vec![Some(1), Some(2_147_483_648), None]))),
            "int32" => (DataType::Int32, Arc::new(Int32Array::from(vec![Some(0), Some(-5), Some(32_767), None]))),
            "decimal128(12,2)" => (
                DataType::Decimal128(12, 2),
                Arc::new(
                    Decimal128Array::from(vec![Some(12_345), Some(-1), Some(0), Some(999_999_999_999), None])
                        .with_precision_and_scale(12, 2)
                        .unwrap(),
                ),
            ),
            "decimal128(38,0)" => (
                DataType::Decimal128(38, 0),
                Arc::new(
                    Decimal128Array::from(vec![Some(10i128.pow(37)), Some(-42), None])
                        .with_precision_and_scale(38, 0)
                        .unwrap(),
                ),
            ),
            "float64 in float4 range" => (DataType::Float64, Arc::new(Float64Array::from(vec![Some(0.5), Some(-3.25), None]))),
            "float64" => (
                DataType::Float64,
                Arc::new(Float64Array::from(vec![Some(0.5), Some(-1e300), Some(1.0 / 3.0), None])),
            ),
            "utf8" => (
                DataType::Utf8,
                Arc::new(StringArray::from(vec![Some("plain"), Some("O'Brien ñ €"), Some(""), None])),
            ),
            "utf8 with NUL" => (DataType::Utf8, Arc::new(StringArray::from(vec![Some("a\0b")]))),
            "utf8 json" => (
                DataType::Utf8,
                Arc::new(StringArray::from(vec![
                    Some(r#"{"a": 1, "b": [true, null]}"#),
                    Some("[1, 2.5]"),
                    Some("\"x\""),
                    None,
                ])),
            ),
            "utf8 uuid" => (
                DataType::Utf8,
                Arc::new(StringArray::from(vec![Some("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"), None])),
            ),
            "binary" => (
                DataType::Binary,
                Arc::new(BinaryArray::from(vec![Some(&b"\x00\x01\xff"[..]), Some(&b""[..]), None])),
            ),
            "boolean" => (DataType::Boolean, Arc::new(BooleanArray::from(vec![Some(true), Some(false), None]))),
            "date32" => (DataType::Date32, Arc::new(Date32Array::from(vec![Some(19_000), Some(-1), Some(0), None]))),
            "time64(us)" => (
                DataType::Time64(TimeUnit::Microsecond),
                Arc::new(Time64MicrosecondArray::from(vec![Some(0), Some(86_399_999_999), Some(45_296_000_001), None])),
            ),
            "timestamp(us)" => (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_001), Some(-1), Some(0), None])),
            ),
            "timestamp(us) at midnight" => (
                DataType::Timestamp(TimeUnit::Microsecond, None),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_699_920_000_000_000), None])),
            ),
            "timestamp(us, UTC)" => (
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Arc::new(TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_001), Some(-1), None]).with_timezone("UTC")),
            ),
            other => panic!("no sample {other}"),
        };
        (Field::new("v", data_type, true), column)
    }};
}

/// The pairs the coverage run checks: (sample, PostgreSQL column type).
const PAIRS: &[(&str, &str)] = &[
    ("int64", "int8"),
    ("int64 in int4 range", "int4"),
    ("int64 over int4", "int4"),
    ("int64", "numeric"),
    ("int64", "text"),
    ("int32", "int4"),
    ("int32", "int2"),
    ("int32", "int8"),
    ("decimal128(12,2)", "numeric"),
    ("decimal128(12,2)", "numeric(12,2)"),
    ("decimal128(12,2)", "numeric(5,2)"),
    ("decimal128(38,0)", "numeric"),
    ("decimal128(12,2)", "float8"),
    ("float64", "float8"),
    ("float64 in float4 range", "float4"),
    ("float64", "float4"),
    ("float64", "numeric"),
    ("utf8", "text"),
    ("utf8", "varchar(40)"),
    ("utf8", "varchar(3)"),
    ("utf8 with NUL", "text"),
    ("utf8 json", "json"),
    ("utf8 json", "jsonb"),
    ("utf8 uuid", "uuid"),
    ("binary", "bytea"),
    ("boolean", "bool"),
    ("date32", "date"),
    ("date32", "timestamp"),
    ("time64(us)", "time"),
    ("timestamp(us)", "timestamp"),
    ("timestamp(us)", "timestamptz"),
    ("timestamp(us)", "date"),
    ("timestamp(us) at midnight", "date"),
    ("timestamp(us, UTC)", "timestamptz"),
    ("timestamp(us, UTC)", "timestamp"),
];

/// COPY `data` into `table (v)` and read the values back as text, in order;
/// `Err` is PostgreSQL's message.
async fn load(client: &tokio_postgres::Client, table: &str, data: Bytes) -> Result<Vec<Option<String>>, String> {
    client.batch_execute(&format!("TRUNCATE {table}")).await.map_err(|e| e.to_string())?;
    let copied = async {
        let sink = client.copy_in(&format!("COPY {table} (v) FROM STDIN (FORMAT binary)")).await?;
        futures::pin_mut!(sink);
        sink.send(data).await?;
        sink.finish().await
    }
    .await;
    copied.map_err(|e| e.as_db_error().map(|d| d.message().to_string()).unwrap_or_else(|| e.to_string()))?;
    let rows = client
        .query(&format!("SELECT v::text FROM {table} ORDER BY i"), &[])
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

async fn coverage() {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (run under tests/harness.py)");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.expect("PostgreSQL");
    tokio::spawn(connection);
    client.batch_execute("CREATE SCHEMA IF NOT EXISTS thaw_encode_compare").await.unwrap();
    for (n, (kind, pg_type)) in PAIRS.iter().enumerate() {
        let table = format!("thaw_encode_compare.t{n}");
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (i int8 GENERATED ALWAYS AS IDENTITY, v {pg_type})"
            ))
            .await
            .unwrap();
        // thaw: the target column as thaw reads it from the catalog.
        let target = thaw_engine::sink::table_columns(&client, "thaw_encode_compare", &format!("t{n}"))
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name == "v")
            .expect("column v");
        let (field, column) = sample!(arrow_array, arrow_schema, *kind);
        let thaw = match thaw_engine::sink::encode::CopyEncoder::new(vec![(target, Arc::new(field))]) {
            Err(e) => Err(format!("refused before any row: {}", e.message)),
            Ok(mut encoder) => {
                let mut out = BytesMut::new();
                thaw_engine::sink::encode::CopyEncoder::header(&mut out);
                match encoder.encode_batch(&[column], &mut out) {
                    Err(e) => Err(format!("refused the value: {}", e.message)),
                    Ok(_) => {
                        thaw_engine::sink::encode::CopyEncoder::trailer(&mut out);
                        load(&client, &table, out.freeze()).await.map_err(|e| format!("PostgreSQL refused: {e}"))
                    }
                }
            }
        };
        // pgpq: its default encoder for the Arrow type; for json/jsonb targets
        // its documented text-as-json output.
        let (field, column) = sample!(arrow_array_59, arrow_schema_59, *kind);
        let field = Arc::new(field);
        let builder = match *pg_type {
            "json" | "jsonb" => {
                let output = if *pg_type == "json" {
                    pgpq::pg_schema::PostgresType::Json
                } else {
                    pgpq::pg_schema::PostgresType::Jsonb
                };
                pgpq::encoders::StringEncoderBuilder::new_with_output(field.clone(), output).map(pgpq::encoders::EncoderBuilder::String)
            }
            _ => pgpq::encoders::EncoderBuilder::try_new(field.clone()),
        };
        let schema = Arc::new(arrow_schema_59::Schema::new(vec![field]));
        let pgpq_result = match builder.and_then(|b| {
            let encoders = std::collections::HashMap::from([("v".to_string(), b)]);
            pgpq::ArrowToPostgresBinaryEncoder::try_new_with_encoders(&schema, &encoders)
        }) {
            Err(e) => Err(format!("pgpq refused: {e}")),
            Ok(mut encoder) => {
                let mut out = BytesMut::new();
                let batch = arrow_array_59::RecordBatch::try_new(schema.clone(), vec![column]).unwrap();
                let encoded = encoder
                    .write_header(&mut out)
                    .and_then(|_| encoder.write_batch(&batch, &mut out))
                    .and_then(|_| encoder.write_footer(&mut out));
                match encoded {
                    Err(e) => Err(format!("pgpq refused the value: {e}")),
                    Ok(()) => load(&client, &table, out.freeze()).await.map_err(|e| format!("PostgreSQL refused: {e}")),
                }
            }
        };
        let verdict = match (&thaw, &pgpq_result) {
            (Ok(a), Ok(b)) if a == b => "same values as thaw",
            (Ok(_), Ok(_)) => "different values from thaw",
            (Ok(_), Err(_)) => "fails where thaw loads",
            (Err(_), Ok(_)) => "loads what thaw refuses",
            (Err(_), Err(_)) => "both refuse",
        };
        let show = |r: &Result<Vec<Option<String>>, String>| match r {
            Ok(values) => serde_json::json!({"loaded": values}),
            Err(e) => serde_json::json!({"error": e}),
        };
        println!(
            "{}",
            serde_json::json!({"arrow": kind, "postgres": pg_type, "thaw": show(&thaw), "pgpq": show(&pgpq_result), "verdict": verdict})
        );
    }
    client.batch_execute("DROP SCHEMA thaw_encode_compare CASCADE").await.unwrap();
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("speed") => {
            let encoder = args.get(1).expect("speed <thaw|pgpq> <reconcile5|mixed10> [rows] [runs]");
            let shape = args.get(2).map(String::as_str).unwrap_or("reconcile5");
            let rows = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(1_000_000);
            let runs = args.get(4).and_then(|r| r.parse().ok()).unwrap_or(5);
            speed(encoder, shape, rows, runs);
        }
        Some("coverage") => coverage().await,
        _ => {
            eprintln!("usage: thaw-encode-compare speed <thaw|pgpq> <reconcile5|mixed10> [rows] [runs] | coverage");
            std::process::exit(2);
        }
    }
}
