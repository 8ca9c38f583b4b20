//! thaw's real Snowflake client against the emulator (tests/emulator/server.py).
//!
//! Run under the harness, which starts the emulator and exports THAW_SF_*:
//! `python3 tests/harness.py run -- cargo test -p thaw-engine --test integration emulator_client::`
//! The 1 M-row bulk-load measurement is ignored by default; add
//! `-- --ignored --nocapture bulk_load_of_a_million_rows` to run it.
//!
//! Chunked results are switched on per session with
//! `ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = N` (answered by the
//! emulator wrapper), so these tests need no special harness flag.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use arrow_array::{Array, Int64Array, RecordBatch, StructArray};
use thaw_engine::config::{Secret, SnowflakeSettings};
use thaw_devdata::load::{bulk_load_csv, write_csv_record};
use thaw_engine::source::{self, sql, SnowflakeSource};
use thaw_engine::ErrorKind;

const DATABASE: &str = "THAW_EMULATOR_TEST";

fn settings() -> SnowflakeSettings {
    thaw_test_support::snowflake()
}

async fn session() -> SnowflakeSource {
    source::connect(&settings(), None, None).await.expect("login to the emulator")
}

/// fakesnow can fail (261000) when sessions create the same database concurrently.
static SETUP: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A fresh schema in the shared in-memory database; returns its quoted name.
///
/// The mutex serialises the tests of one process; nextest runs each test in
/// its own process, so two of them can still create the database at the same
/// moment, which fakesnow answers with 261000 (a DuckDB catalog write
/// conflict, answered HTTP 500): that statement is retried a few times,
/// nothing else is.
async fn fresh_schema(source: &SnowflakeSource, name: &str) -> String {
    let _one_at_a_time = SETUP.lock().await;
    let create = format!("CREATE DATABASE IF NOT EXISTS {}", sql::ident(DATABASE));
    let mut attempt = 0;
    while let Err(e) = source.execute(&create).await {
        attempt += 1;
        // The emulator answers that conflict with HTTP 500, which thaw's client
        // reports as a transient "Snowflake answered HTTP 500" (the body's code is not read).
        assert!(attempt < 5 && (e.message.contains("261000") || e.kind == thaw_engine::ErrorKind::Transient), "{create}: {e:?}");
        tokio::time::sleep(std::time::Duration::from_millis(100 * attempt)).await;
    }
    let schema = format!("{}.{}", sql::ident(DATABASE), sql::ident(name));
    source.execute(&format!("CREATE OR REPLACE SCHEMA {schema}")).await.unwrap();
    schema
}

fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

fn temp_csv(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("thaw-emulator-client-{}-{name}.csv", std::process::id()))
}

#[tokio::test]
async fn login_with_the_harness_credentials_runs_queries() {
    let source = session().await;
    let rows = source.execute("SELECT 1 + 1").await.unwrap();
    assert_eq!(rows, vec![vec![Some("2".to_string())]]);
}

#[tokio::test]
async fn wrong_password_is_auth_failed_naming_account_and_user() {
    let mut settings = settings();
    settings.password = Some(Secret("not-the-password".into()));
    let err = source::connect(&settings, None, None).await.err().expect("login must fail");
    assert_eq!(err.kind, ErrorKind::AuthFailed, "{err}");
    assert!(err.message.contains(&settings.account) && err.message.contains(&settings.user), "{err}");
    assert!(err.message.contains("Incorrect username or password"), "{err}");
    assert!(!err.message.contains("not-the-password"), "the password leaked into: {err}");
}

#[tokio::test]
async fn missing_table_is_schema_mismatch() {
    let source = session().await;
    let err = source.query_arrow("SELECT * FROM THAW_EMULATOR_TEST.NOWHERE.NO_SUCH_TABLE").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
}

#[tokio::test]
async fn emulator_internal_error_is_reported_and_the_session_keeps_working() {
    let source = session().await;
    let err = source.execute("SELECT * FROM read_csv('/nonexistent/thaw/file.csv')").await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Internal, "{err}");
    assert_eq!(source.execute("SELECT 3").await.unwrap(), vec![vec![Some("3".to_string())]]);
}

#[tokio::test]
async fn null_timestamps_round_trip_as_null() {
    let source = session().await;
    let schema = fresh_schema(&source, "NULL_TIMESTAMPS").await;
    source
        .execute(&format!("CREATE TABLE {schema}.VISIT (ID INT, STARTS_TZ TIMESTAMP_TZ, STARTS_NTZ TIMESTAMP_NTZ, STARTS_LTZ TIMESTAMP_LTZ)"))
        .await
        .unwrap();
    source
        .execute(&format!(
            "INSERT INTO {schema}.VISIT VALUES (1, '2026-01-05 09:00:00-05:00', '2026-01-05 09:00:00', '2026-01-05 09:00:00'), \
             (2, NULL, NULL, NULL)"
        ))
        .await
        .unwrap();
    let batches = source.query_arrow(&format!("SELECT * FROM {schema}.VISIT ORDER BY ID")).await.unwrap();
    assert_eq!(row_count(&batches), 2);
    let batch = &batches[0];
    for column in 1..4 {
        let timestamps = batch.column(column).as_any().downcast_ref::<StructArray>().expect("timestamp struct");
        assert!(timestamps.is_valid(0) && timestamps.is_null(1), "column {column}: {timestamps:?}");
    }
    let tz = batch.column(1).as_any().downcast_ref::<StructArray>().unwrap();
    let epoch = tz.column_by_name("epoch").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(epoch.value(0), chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00-05:00").unwrap().timestamp());
}

#[tokio::test]
async fn chunked_results_return_every_row() {
    const ROWS: u64 = 10_000;
    let source = session().await;
    let schema = fresh_schema(&source, "CHUNKED").await;
    let table = format!("{schema}.{}", sql::ident("VISIT"));
    source.execute(&format!("CREATE TABLE {table} (ID INT, NOTE VARCHAR)")).await.unwrap();
    let path = temp_csv("chunked");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    for id in 0..ROWS {
        write_csv_record(&mut out, [Some(id.to_string().as_str()), Some("note")]).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    bulk_load_csv(&source, &table, &["ID".into(), "NOTE".into()], &path).await.unwrap();
    std::fs::remove_file(&path).ok();

    source.execute("ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = 1000").await.unwrap();
    let batches = source.query_arrow(&format!("SELECT ID FROM {table}")).await.unwrap();
    assert!(batches.len() >= 10, "expected one stream per 1000-row chunk, got {} batches", batches.len());
    let mut ids: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..ROWS as i64).collect::<Vec<_>>());

    source.execute("ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = 0").await.unwrap();
    let unchunked = source.query_arrow(&format!("SELECT ID FROM {table}")).await.unwrap();
    assert_eq!(row_count(&unchunked), ROWS as usize);
}

/// A chunked result streams in result order (inline chunk first, then the
/// downloaded chunks), decoded into standard Arrow, every row exactly once;
/// the same query unchunked streams the same rows.
#[tokio::test]
async fn streamed_chunked_result_arrives_in_order_as_standard_arrow() {
    use futures::TryStreamExt;
    const ROWS: u64 = 12_345;
    let source = session().await;
    let schema = fresh_schema(&source, "STREAMED").await;
    let table = format!("{schema}.{}", sql::ident("VISIT"));
    source.execute(&format!("CREATE TABLE {table} (ID NUMBER(38,0), STARTS_AT TIMESTAMP_NTZ(9), NOTE VARCHAR)")).await.unwrap();
    let path = temp_csv("streamed");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    for id in 0..ROWS {
        let at = format!("2026-01-05 09:00:{:02}.123456789", id % 60);
        write_csv_record(&mut out, [Some(id.to_string().as_str()), Some(at.as_str()), Some("note")]).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    bulk_load_csv(&source, &table, &["ID".into(), "STARTS_AT".into(), "NOTE".into()], &path).await.unwrap();
    std::fs::remove_file(&path).ok();

    let query = format!("SELECT ID, STARTS_AT, NOTE FROM {table} ORDER BY ID");
    for rows_per_chunk in [1000, 0] {
        source.execute(&format!("ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = {rows_per_chunk}")).await.unwrap();
        let batches: Vec<RecordBatch> = source.stream_query(&query).await.unwrap().try_collect().await.unwrap();
        if rows_per_chunk > 0 {
            assert!(batches.len() >= 12, "expected a batch per 1000-row chunk, got {}", batches.len());
        }
        let schema = batches[0].schema();
        assert_eq!(schema.field(0).data_type(), &arrow_schema::DataType::Decimal128(38, 0));
        assert_eq!(schema.field(1).data_type(), &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, None));
        let mut ids = Vec::new();
        for batch in &batches {
            assert_eq!(batch.schema(), schema, "every batch has the one standard schema");
            let id = batch.column(0).as_any().downcast_ref::<arrow_array::Decimal128Array>().unwrap();
            let at = batch.column(1).as_any().downcast_ref::<arrow_array::TimestampMicrosecondArray>().unwrap();
            for r in 0..batch.num_rows() {
                ids.push(id.value(r) as u64);
                assert_eq!(at.value(r) % 1_000_000, 123_456, "nanoseconds floored to the microsecond");
            }
        }
        assert_eq!(ids, (0..ROWS).collect::<Vec<_>>(), "rows in result order, each once (rows per chunk {rows_per_chunk})");
    }
}

/// Four sessions of one configuration stream a chunked result at once, each
/// holding its chunk a moment per batch as a COPY would: the downloaded
/// chunks they hold together never exceed `snowflake.download_byte_budget`
/// (docs/sync.md §5.6), while the same streams under a roomy budget do hold
/// more than that; every stream still gets every row in order, also when a
/// single chunk is larger than the whole budget (it is then held alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_streams_hold_no_more_downloaded_bytes_than_the_budget() {
    use futures::StreamExt;
    use thaw_engine::source::download_budget::DownloadBudget;
    const ROWS: u64 = 20_000;
    const TIGHT: u64 = 1024 * 1024;
    const ROOMY: u64 = 64 * 1024 * 1024;
    let setup = session().await;
    let schema = fresh_schema(&setup, "DOWNLOAD_BUDGET").await;
    let table = format!("{schema}.{}", sql::ident("VISIT"));
    setup.execute(&format!("CREATE TABLE {table} (ID NUMBER(38,0), NOTE VARCHAR)")).await.unwrap();
    let path = temp_csv("download-budget");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    let note = "n".repeat(250);
    for id in 0..ROWS {
        write_csv_record(&mut out, [Some(id.to_string().as_str()), Some(note.as_str())]).unwrap();
    }
    out.into_inner().unwrap().sync_all().unwrap();
    bulk_load_csv(&setup, &table, &["ID".into(), "NOTE".into()], &path).await.unwrap();
    std::fs::remove_file(&path).ok();
    let query = format!("SELECT ID, NOTE FROM {table} ORDER BY ID");

    // A reader holds its chunk's reservation until it has read the chunk:
    // after every batch of a downloaded chunk (1000 rows of 250-character
    // notes: over 250 000 bytes), at least that much is reserved.
    let settings_one = SnowflakeSettings { download_byte_budget: Some(3 * TIGHT), ..settings() };
    let one = source::connect(&settings_one, None, None).await.unwrap();
    one.execute("ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = 1000").await.unwrap();
    let budget = DownloadBudget::shared(3 * TIGHT);
    let mut batches = one.stream_query(&query).await.unwrap();
    let mut seen = 0;
    while let Some(batch) = batches.next().await {
        let rows = batch.unwrap().num_rows();
        if seen > 0 {
            // Give the prefetch time to finish: only the reservations must count.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            assert!(budget.held_bytes() >= 250_000, "{} bytes reserved while a downloaded chunk is being read", budget.held_bytes());
        }
        seen += rows;
    }
    drop(batches);
    assert_eq!((seen, budget.held_bytes()), (ROWS as usize, 0));

    // (budget, rows per result chunk): ~270 KB chunks in a roomy and a tight
    // budget, then ~2.7 MB chunks, each larger than the tight budget.
    for (capacity, rows_per_chunk) in [(ROOMY, 1000), (TIGHT, 1000), (TIGHT + 1024, 10_000)] {
        let settings = SnowflakeSettings { download_byte_budget: Some(capacity), ..settings() };
        let mut readers = Vec::new();
        for _ in 0..4 {
            let source = source::connect(&settings, None, None).await.unwrap();
            source.execute(&format!("ALTER SESSION SET THAW_EMULATOR_ROWS_PER_CHUNK = {rows_per_chunk}")).await.unwrap();
            let query = query.clone();
            readers.push(tokio::spawn(async move {
                let mut batches = source.stream_query(&query).await.unwrap();
                let mut ids = Vec::new();
                while let Some(batch) = batches.next().await {
                    let batch = batch.unwrap();
                    let id = batch.column(0).as_any().downcast_ref::<arrow_array::Decimal128Array>().unwrap();
                    ids.extend((0..batch.num_rows()).map(|r| id.value(r) as u64));
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                ids
            }));
        }
        for reader in readers {
            assert_eq!(reader.await.unwrap(), (0..ROWS).collect::<Vec<_>>(), "every row once, in order (budget {capacity}, {rows_per_chunk} rows per chunk)");
        }
        let budget = DownloadBudget::shared(capacity);
        assert_eq!(budget.held_bytes(), 0, "every reservation is returned when the streams end");
        let high_water = budget.high_water_bytes();
        match (capacity, rows_per_chunk) {
            (ROOMY, _) => assert!(high_water > TIGHT, "four streams held only {high_water} bytes at once under a roomy budget: the tight case proves nothing"),
            (_, 1000) => assert!(high_water <= TIGHT && high_water > 0, "held {high_water} bytes at once in a budget of {TIGHT}"),
            _ => {
                assert!(high_water > TIGHT, "a {rows_per_chunk}-row chunk is larger than the budget ({high_water} bytes)");
                assert!(high_water < 2 * TIGHT + 2 * 1024 * 1024, "chunks larger than the budget are held one at a time ({high_water} bytes)");
            }
        }
    }
}

#[tokio::test]
async fn bulk_load_csv_loads_every_row_with_its_types() {
    const ROWS: u64 = 5_000;
    let source = session().await;
    let schema = fresh_schema(&source, "BULK_LOAD").await;
    let table = format!("{schema}.{}", sql::ident("visit detail"));
    source
        .execute(&format!(
            "CREATE TABLE {table} (\"visit id\" NUMBER(38,0), \"Caregiver Name\" VARCHAR, STARTS_AT TIMESTAMP_TZ, \
             ENDS_AT TIMESTAMP_NTZ, IS_BILLED BOOLEAN, AMOUNT NUMBER(10,2), DETAILS VARIANT, VISIT_DATE DATE)"
        ))
        .await
        .unwrap();
    let columns: Vec<String> =
        ["visit id", "Caregiver Name", "STARTS_AT", "ENDS_AT", "IS_BILLED", "AMOUNT", "DETAILS", "VISIT_DATE"].map(String::from).into();
    let path = temp_csv("bulk");
    let mut out = BufWriter::new(std::fs::File::create(&path).unwrap());
    for id in 0..ROWS {
        let id_text = id.to_string();
        let even = id % 2 == 0;
        // Odd rows are NULL everywhere but the id; sparse NULLs must not confuse the load.
        let maybe = |v: &'static str| even.then_some(v);
        write_csv_record(
            &mut out,
            [
                Some(id_text.as_str()),
                maybe("O'Brien, \"Pat\"\nline 2"),
                maybe("2026-01-05 09:00:00-05:00"),
                maybe("2026-01-05 09:00:00.5"),
                maybe("true"),
                maybe("12.34"),
                maybe("{\"payer\":\"Medicaid\",\"units\":4}"),
                maybe("2026-01-05"),
            ],
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let loaded = bulk_load_csv(&source, &table, &columns, &path).await.unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded, ROWS);

    let rows = source
        .execute(&format!(
            "SELECT COUNT(*), COUNT(\"Caregiver Name\"), COUNT_IF(IS_BILLED), COUNT_IF(AMOUNT = 12.34), \
             COUNT_IF(DETAILS:payer::VARCHAR = 'Medicaid'), COUNT_IF(VISIT_DATE = '2026-01-05'::DATE), \
             COUNT_IF(\"Caregiver Name\" = 'O''Brien, \"Pat\"\nline 2') FROM {table}"
        ))
        .await
        .unwrap();
    let half = (ROWS / 2).to_string();
    assert_eq!(rows, vec![[ROWS.to_string(), half.clone(), half.clone(), half.clone(), half.clone(), half.clone(), half].map(Some).to_vec()]);

    let batches = source.query_arrow(&format!("SELECT STARTS_AT FROM {table} WHERE \"visit id\" = 0")).await.unwrap();
    let starts = batches[0].column(0).as_any().downcast_ref::<StructArray>().unwrap();
    let epoch = starts.column_by_name("epoch").unwrap().as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(epoch.value(0), chrono::DateTime::parse_from_rfc3339("2026-01-05T09:00:00-05:00").unwrap().timestamp());
}

#[tokio::test]
async fn bulk_load_of_a_missing_file_is_config_invalid() {
    let source = session().await;
    let err = bulk_load_csv(&source, "\"DB\".\"S\".\"T\"", &["A".into()], std::path::Path::new("/nonexistent/thaw.csv"))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{err}");
}

/// Measurement, not a check of behaviour: 1 M rows × 40 columns.
#[tokio::test]
#[ignore = "slow measurement; run with --ignored --nocapture"]
async fn bulk_load_of_a_million_rows_times_each_step() {
    const ROWS: u64 = 1_000_000;
    let source = session().await;
    let schema = fresh_schema(&source, "BULK_MILLION").await;
    let table = format!("{schema}.{}", sql::ident("WIDE"));
    let types = ["NUMBER(38,0)", "VARCHAR", "TIMESTAMP_TZ", "TIMESTAMP_NTZ", "BOOLEAN", "NUMBER(12,2)", "DATE", "VARCHAR"];
    let columns: Vec<String> = (0..40).map(|i| format!("col {i}")).collect();
    let definitions: Vec<String> = columns.iter().enumerate().map(|(i, c)| format!("{} {}", sql::ident(c), types[i % types.len()])).collect();
    source.execute(&format!("CREATE TABLE {table} ({})", definitions.join(", "))).await.unwrap();

    let started = Instant::now();
    let path = temp_csv("million");
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    for id in 0..ROWS {
        let id_text = id.to_string();
        let fields: Vec<Option<&str>> = (0..40)
            .map(|i| match i % types.len() {
                0 => Some(id_text.as_str()),
                1 => Some("caregiver name"),
                2 => Some("2026-01-05 09:00:00-05:00"),
                3 => (id % 7 != 0).then_some("2026-01-05 09:00:00"),
                4 => Some("true"),
                5 => Some("1234.56"),
                6 => Some("2026-01-05"),
                _ => None,
            })
            .collect();
        write_csv_record(&mut out, fields).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    let written = started.elapsed();
    let size = std::fs::metadata(&path).unwrap().len();

    let started = Instant::now();
    let loaded = bulk_load_csv(&source, &table, &columns, &path).await.unwrap();
    let load = started.elapsed();
    std::fs::remove_file(&path).ok();
    assert_eq!(loaded, ROWS);
    println!("1M rows x 40 columns: CSV written in {written:?} ({} MiB), loaded in {load:?}", size >> 20);
}
