//! The S3-staged Parquet path (docs/sync.md §13) end to end: the emulator
//! unloads each chunk to Parquet files on the harness's S3 API, thaw lists
//! them, records them in `migration_file_status` and loads one file per
//! transaction into a real PostgreSQL; nothing is mocked.
//!
//! Run under the harness:
//! `python3 tests/harness.py run -- cargo nextest run -p thaw-engine --features thaw-engine/failpoints --test integration sync_staged::`.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use thaw_engine::config::Config;
use thaw_engine::contract::PlanRequest;
use thaw_engine::failpoints;
use thaw_engine::runner::{self, Quiet, RunOptions, RunReport};
use thaw_engine::source::staged::s3_store;
use thaw_engine::source::SnowflakeSource;
use thaw_engine::sync::status_store::StatusStore;
use thaw_engine::ErrorKind;
use thaw_test_support::*;
use tokio_postgres::Client;
use uuid::Uuid;

include!("fixtures/emulated_types.rs");

/// The `staging` section for the harness: the stage is created by thaw
/// (storage integration given) in the source schema; files of a few KB so
/// that chunks unload into several files.
fn staging_section(max_file_size: u64) -> String {
    format!(
        r#""staging": {{"stage": "THAW_STAGE", "storage_integration": "THAW_S3_INTEGRATION", "bucket": "${{THAW_S3_BUCKET}}", "max_file_size": {max_file_size}}},"#
    )
}

fn options() -> RunOptions {
    RunOptions {
        request: PlanRequest::default(),
        conflicts: false,
        ..Default::default()
    }
}

async fn run(config: &Arc<Config>, request: PlanRequest) -> RunReport {
    runner::run(
        config.clone(),
        RunOptions {
            request,
            ..options()
        },
        Arc::new(Quiet),
    )
    .await
    .expect("the run returns a report")
}

/// ORDERS (900 rows) in a fresh emulator database, and a fresh PostgreSQL
/// database whose `orders` has no unique index (so a duplicate would show);
/// the table is staged with `parallel_threads` workers.
async fn orders_setup(
    table_extra: &str,
    max_file_size: u64,
    parallel_threads: usize,
) -> (Client, Arc<Config>) {
    let sf_db = unique("SFSTAGED").to_uppercase();
    let pg_db = unique("staged");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 900).await;
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(&format!(
        "CREATE TABLE public.orders ({ORDERS_TARGET_COLUMNS})"
    ))
    .await
    .unwrap();
    let table = format!(
        r#"{{"source": "ORDERS", "target": "orders", "uniqueness_columns": ["Code"], "source_mode": "staged", "parallel_threads": {parallel_threads} {table_extra}}}"#
    );
    let config = Arc::new(config(&config_text(
        &sf_db,
        &pg_db,
        &[&table],
        &staging_section(max_file_size),
    )));
    (pg, config)
}

/// (file key, status, rows) of every recorded file of a run, by chunk and key.
async fn files(pg: &Client, run_id: Uuid) -> Vec<(String, String, i64)> {
    pg.query(
        "SELECT file_key, status, rows FROM migration_status.migration_file_status WHERE run_id = $1 ORDER BY chunk_id, file_key",
        &[&run_id],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect()
}

async fn unloaded_at(pg: &Client, run_id: Uuid) -> String {
    pg.query_one(
        "SELECT unloaded_at::text FROM migration_status.migration_chunk_status WHERE run_id = $1",
        &[&run_id],
    )
    .await
    .unwrap()
    .get(0)
}

async fn distinct_codes(pg: &Client) -> i64 {
    pg.query_one("SELECT count(DISTINCT \"Code\") FROM public.orders", &[])
        .await
        .unwrap()
        .get(0)
}

/// The harness bucket's client.
fn bucket() -> Arc<dyn ObjectStore> {
    let settings = thaw_engine::config::StagingSettings {
        bucket: var("THAW_S3_BUCKET"),
        ..Default::default()
    };
    s3_store(&settings, &settings.bucket).unwrap()
}

#[tokio::test]
async fn a_staged_table_unloads_into_several_files_and_loads_every_row_once() {
    let (pg, config) = orders_setup(
        r#", "chunking_columns": ["Id"], "chunking_column_types": ["int"], "batch_size": 300"#,
        6000,
        1,
    )
    .await;
    let report = run(&config, PlanRequest::default()).await;
    report
        .outcome()
        .expect("the staged run completes and reconciles against Snowflake");
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    assert_eq!(distinct_codes(&pg).await, 900);
    let files = files(&pg, report.plan.run_id).await;
    assert!(
        files.len() > report.plan.chunks as usize,
        "several files per chunk: {} files for {} chunks",
        files.len(),
        report.plan.chunks
    );
    assert!(
        files
            .iter()
            .all(|(key, status, _)| status == "completed" && key.ends_with(".snappy.parquet")),
        "{files:?}"
    );
    assert_eq!(
        files.iter().map(|f| f.2).sum::<i64>(),
        900,
        "the footers' rows add up to the table"
    );
    let prefix = format!("S/ORDERS/run_{}/chunk_", report.plan.run_id);
    assert!(
        files.iter().all(|(key, _, _)| key.contains(&prefix)),
        "keys follow the prefix pattern: {files:?}"
    );
    // Per chunk: rows_unloaded = the files' rows = rows_copied.
    let bad: i64 = pg
        .query_one(
            "SELECT count(*) FROM migration_status.migration_chunk_status c WHERE run_id = $1 AND (status <> 'completed' OR rows_unloaded IS DISTINCT FROM rows_copied \
             OR rows_copied <> (SELECT COALESCE(sum(rows), 0) FROM migration_status.migration_file_status f \
                                WHERE f.run_id = c.run_id AND f.source_table = c.source_table AND f.chunk_id = c.chunk_id))",
            &[&report.plan.run_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        bad, 0,
        "every chunk completed with rows_unloaded = its files' rows = rows copied"
    );
}

/// Run `config` (with `workers` copy workers, else the defaults) while the
/// third file to commit fails before its commit (`STAGED_FILE_BEFORE_COMMIT`);
/// the run fails `ChunkFailed`. Returns the run and its files (key, status,
/// rows), at least four: the single chunk unloaded into several.
async fn crash_before_the_third_file_commits(pg: &Client, config: &Arc<Config>, workers: Option<usize>) -> (Uuid, Vec<(String, String, i64)>) {
    failpoints::arm_at(failpoints::STAGED_FILE_BEFORE_COMMIT, ErrorKind::ChunkFailed, 2, 1);
    let first = match workers {
        Some(workers) => run_with_workers(config, workers).await,
        None => run(config, PlanRequest::default()).await,
    };
    failpoints::clear();
    assert_eq!(first.outcome().unwrap_err().kind, ErrorKind::ChunkFailed);
    let run_id = first.plan.run_id;
    let files = files(pg, run_id).await;
    assert!(files.len() >= 4, "the single chunk unloaded into several files: {files:?}");
    (run_id, files)
}

#[tokio::test]
async fn a_crash_after_k_of_n_files_resumes_at_the_next_file_without_unloading_again() {
    let (pg, config) = orders_setup(r#", "batch_size": 100000"#, 6000, 1).await;
    let (run_id, before) = crash_before_the_third_file_commits(&pg, &config, None).await;
    let done: Vec<_> = before.iter().filter(|f| f.1 == "completed").collect();
    assert_eq!(
        done.len(),
        2,
        "exactly the first two files committed: {before:?}"
    );
    assert_eq!(
        before.iter().filter(|f| f.1 == "failed").count(),
        1,
        "the third file is recorded failed: {before:?}"
    );
    let committed_rows: i64 = done.iter().map(|f| f.2).sum();
    assert_eq!(
        pg_count(&pg, "public.orders").await,
        committed_rows,
        "the target holds exactly the committed files' rows"
    );
    let unloaded_before = unloaded_at(&pg, run_id).await;

    let again = run(&config, PlanRequest::default()).await;
    again
        .outcome()
        .expect("the resumed run completes and reconciles");
    assert!(again.plan.resumed && again.plan.run_id == run_id);
    assert_eq!(
        unloaded_at(&pg, run_id).await,
        unloaded_before,
        "the resumed chunk was not unloaded again"
    );
    let after = files(&pg, run_id).await;
    assert_eq!(
        after.iter().map(|f| &f.0).collect::<Vec<_>>(),
        before.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "same files"
    );
    assert!(after.iter().all(|f| f.1 == "completed"));
    assert_eq!(pg_count(&pg, "public.orders").await, 900, "no missing rows");
    assert_eq!(distinct_codes(&pg).await, 900, "no duplicate rows");
    let attempts: Vec<i32> = pg
        .query("SELECT attempts FROM migration_status.migration_file_status WHERE run_id = $1 ORDER BY file_key", &[&run_id])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        &attempts[..3],
        &[1, 1, 2],
        "the two committed files were not loaded again; the failed one was retried once"
    );
}

/// A run of `config` with at most `workers` copy workers in total.
async fn run_with_workers(config: &Arc<Config>, workers: usize) -> RunReport {
    runner::run(
        config.clone(),
        RunOptions {
            max_workers: Some(workers),
            ..options()
        },
        Arc::new(Quiet),
    )
    .await
    .expect("the run returns a report")
}

/// COPY statements into `public.orders` of database `pg_db` waiting for a lock.
async fn copies_waiting(observer: &Client, pg_db: &str) -> i64 {
    observer
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock' AND query ILIKE 'COPY %orders%'",
            &[&pg_db],
        )
        .await
        .unwrap()
        .get(0)
}

/// The files of one chunk load in parallel on the run's worker bound: while
/// the test holds a SHARE lock on the target (reads pass, COPY waits), the
/// waiting COPYs are counted in `pg_stat_activity`. With `--workers 3` and
/// a single chunk of at least 4 files exactly 3 COPYs wait at once, never
/// more; once the lock goes, every file loads exactly once.
#[tokio::test]
async fn the_files_of_one_chunk_load_in_parallel_within_the_worker_bound_exactly_once() {
    let (pg, config) = orders_setup(r#", "batch_size": 100000"#, 6000, 8).await;
    let pg_db = config.sources[0].target_pg_database.clone();
    let mut blocker = thaw_test_support::pg(&pg_db).await;
    let lock = blocker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE public.orders IN SHARE MODE")
        .await
        .unwrap();
    let running = {
        let config = config.clone();
        tokio::spawn(async move { run_with_workers(&config, 3).await })
    };
    let observer = thaw_test_support::pg(&pg_db).await;
    let mut most = 0;
    let mut polls = 0;
    // Wait (bounded) until the bound is reached; it must never be exceeded.
    while most < 3 && polls < 1200 && !running.is_finished() {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        most = most.max(copies_waiting(&observer, &pg_db).await);
        polls += 1;
    }
    for _ in 0..10 {
        most = most.max(copies_waiting(&observer, &pg_db).await);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    lock.rollback().await.unwrap();
    let report = running.await.unwrap();
    assert_eq!(
        most, 3,
        "three files of the chunk were loading at once (--workers 3), never more"
    );
    report
        .outcome()
        .expect("the parallel staged run completes and reconciles");
    assert_eq!(report.plan.chunks, 1, "a single chunk");
    let files = files(&pg, report.plan.run_id).await;
    assert!(
        files.len() >= 4,
        "the chunk unloaded into several files: {files:?}"
    );
    assert!(files.iter().all(|f| f.1 == "completed"), "{files:?}");
    assert_eq!(pg_count(&pg, "public.orders").await, 900, "no missing rows");
    assert_eq!(distinct_codes(&pg).await, 900, "no duplicate rows");
    let row = pg
        .query_one(
            "SELECT (SELECT array_agg(DISTINCT attempts) FROM migration_status.migration_file_status WHERE run_id = $1), \
                    status, rows_copied FROM migration_status.migration_chunk_status WHERE run_id = $1",
            &[&report.plan.run_id],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            row.get::<_, Vec<i32>>(0),
            row.get::<_, String>(1),
            row.get::<_, i64>(2)
        ),
        (vec![1], "completed".to_string(), 900),
        "every file loaded once; the chunk completed with all rows"
    );
}

/// As `a_crash_after_k_of_n_files_resumes_at_the_next_file_without_unloading_again`,
/// with the chunk's files loading in parallel: the third file to reach its
/// commit fails; files that committed stay (exactly their rows are in the
/// target), files in flight roll back (so how many committed depends on
/// timing), and the resumed run loads each unfinished file once.
#[tokio::test]
async fn a_crash_during_parallel_file_loads_resumes_exactly() {
    let (pg, config) = orders_setup(r#", "batch_size": 100000"#, 6000, 4).await;
    let (run_id, before) = crash_before_the_third_file_commits(&pg, &config, Some(4)).await;
    let done: Vec<_> = before.iter().filter(|f| f.1 == "completed").collect();
    // The two files that passed the failpoint before the failing one may
    // still be in flight when the run stops (then they roll back): how many
    // committed is a race, that not all did is not.
    assert!(done.len() < before.len(), "not every file committed: {before:?}");
    assert_eq!(
        before.iter().filter(|f| f.1 == "failed").count(),
        1,
        "one file is recorded failed: {before:?}"
    );
    assert_eq!(
        pg_count(&pg, "public.orders").await,
        done.iter().map(|f| f.2).sum::<i64>(),
        "the target holds exactly the committed files' rows"
    );
    let unloaded_before = unloaded_at(&pg, run_id).await;

    let again = run_with_workers(&config, 4).await;
    again
        .outcome()
        .expect("the resumed run completes and reconciles");
    assert!(again.plan.resumed && again.plan.run_id == run_id);
    assert_eq!(
        unloaded_at(&pg, run_id).await,
        unloaded_before,
        "not unloaded again"
    );
    assert!(files(&pg, run_id).await.iter().all(|f| f.1 == "completed"));
    assert_eq!(pg_count(&pg, "public.orders").await, 900, "no missing rows");
    assert_eq!(distinct_codes(&pg).await, 900, "no duplicate rows");
    let attempts: Vec<(String, i32)> = pg
        .query(
            "SELECT status_before.status, f.attempts FROM migration_status.migration_file_status f \
             JOIN unnest($2::text[], $3::text[]) AS status_before(file_key, status) USING (file_key) WHERE f.run_id = $1",
            &[
                &run_id,
                &before.iter().map(|f| f.0.clone()).collect::<Vec<_>>(),
                &before.iter().map(|f| f.1.clone()).collect::<Vec<_>>(),
            ],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(attempts.len(), before.len());
    for (status_before, attempts) in &attempts {
        let expected = if status_before == "failed" { 2 } else { 1 };
        assert_eq!(
            *attempts, expected,
            "a file {status_before} before the resume was loaded {attempts} time(s): committed files are never loaded again, the failed one once more"
        );
    }
}

/// Unload a single-chunk table and stop before the first file commits;
/// returns the run and its files.
async fn unloaded_but_not_loaded() -> (Client, Arc<Config>, Uuid, Vec<(String, String, i64)>) {
    let (pg, config) = orders_setup(r#", "batch_size": 100000"#, 6000, 1).await;
    failpoints::arm(
        failpoints::STAGED_FILE_BEFORE_COMMIT,
        ErrorKind::ChunkFailed,
        1,
    );
    let first = run(&config, PlanRequest::default()).await;
    failpoints::clear();
    assert!(first.outcome().is_err());
    let run_id = first.plan.run_id;
    let files = files(&pg, run_id).await;
    assert!(files.len() >= 2, "{files:?}");
    (pg, config, run_id, files)
}

#[tokio::test]
async fn a_corrupt_file_is_a_clear_error_naming_its_key_and_is_not_retried() {
    let (pg, config, run_id, files) = unloaded_but_not_loaded().await;
    let victim = &files[1].0;
    // Same size, scrambled bytes: the listed size still matches, the content is not Parquet.
    let store = bucket();
    let original = store
        .get(&ObjectPath::from(victim.as_str()))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let scrambled: Vec<u8> = original.iter().map(|b| b ^ 0x5a).collect();
    store
        .put(
            &ObjectPath::from(victim.as_str()),
            bytes::Bytes::from(scrambled).into(),
        )
        .await
        .unwrap();
    let again = run(&config, PlanRequest::default()).await;
    let err = again.outcome().unwrap_err();
    assert_eq!(err.kind, ErrorKind::ChunkFailed, "{err}");
    let (_, message) = &again.failures[0];
    assert!(
        message.contains(victim.as_str()) && message.contains("not a readable Parquet file") && message.contains("table \"public\".\"orders\""),
        "{message}"
    );
    let row = pg
        .query_one("SELECT status, attempts, error_message FROM migration_status.migration_file_status WHERE run_id = $1 AND file_key = $2", &[&run_id, victim])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("failed".to_string(), 1),
        "failed once, not retried as transient"
    );
    assert!(row.get::<_, String>(2).contains(victim.as_str()));
    let loaded: i64 = files.iter().take(1).map(|f| f.2).sum();
    assert_eq!(
        pg_count(&pg, "public.orders").await,
        loaded,
        "only the file before the corrupt one is in the target"
    );
}

#[tokio::test]
async fn a_missing_file_is_a_clear_error_naming_its_key() {
    let (pg, config, _run_id, files) = unloaded_but_not_loaded().await;
    let victim = &files[0].0;
    bucket()
        .delete(&ObjectPath::from(victim.as_str()))
        .await
        .unwrap();
    let again = run(&config, PlanRequest::default()).await;
    let err = again.outcome().unwrap_err();
    assert_eq!(err.kind, ErrorKind::ChunkFailed, "{err}");
    let (_, message) = &again.failures[0];
    assert!(
        message.contains(victim.as_str()) && message.contains("is missing"),
        "{message}"
    );
    assert_eq!(
        pg_count(&pg, "public.orders").await,
        0,
        "nothing of the chunk was written"
    );
}

#[tokio::test]
async fn reuse_unload_loads_an_earlier_runs_files_without_unloading() {
    let (pg, config, first_run, files) = unloaded_but_not_loaded().await;
    // A new run (not a resume) that reuses the first run's files.
    let again = run(
        &config,
        PlanRequest {
            no_resume: true,
            reuse_unload: Some(first_run),
            ..Default::default()
        },
    )
    .await;
    again
        .outcome()
        .expect("the reusing run completes and reconciles");
    assert_ne!(again.plan.run_id, first_run);
    let reused: Vec<(String, Uuid)> = pg
        .query("SELECT file_key, unloaded_by_run FROM migration_status.migration_file_status WHERE run_id = $1 ORDER BY file_key", &[&again.plan.run_id])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        reused.iter().map(|r| &r.0).collect::<Vec<_>>(),
        files.iter().map(|f| &f.0).collect::<Vec<_>>(),
        "the same objects"
    );
    assert!(
        reused.iter().all(|r| r.1 == first_run),
        "unloaded by the first run: {reused:?}"
    );
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    assert_eq!(distinct_codes(&pg).await, 900);
}

/// The round-trip suite's type pairs as one Snowflake table `S.TYPES`.
struct TypesTable {
    /// The fresh Snowflake database holding it.
    sf_db: String,
    /// (Snowflake type, PostgreSQL type, values) per column.
    pairs: Vec<&'static (&'static str, &'static str, &'static [&'static str])>,
    /// Column names `C<i>`, one per pair, after `ID`.
    columns: Vec<String>,
    /// Rows: the longest value list (shorter lists are padded with NULL).
    rows: usize,
    /// Column definitions of the matching PostgreSQL target (`"ID"` primary key first).
    pg_ddl: Vec<String>,
}

/// Create [`TypesTable`] in a fresh Snowflake database named after `prefix`.
async fn round_trip_types_table(prefix: &str) -> TypesTable {
    let pairs: Vec<&(&str, &str, &[&str])> = EMULATED.iter().collect();
    let sf_db = unique(prefix).to_uppercase();
    let sf = fresh_sf(&sf_db).await;
    let columns: Vec<String> = (0..pairs.len()).map(|i| format!("C{i}")).collect();
    let ddl: Vec<String> = pairs
        .iter()
        .zip(&columns)
        .map(|((sf_type, _, _), c)| format!("{c} {sf_type}"))
        .collect();
    sf.execute(&format!(
        "CREATE TABLE \"{sf_db}\".\"S\".\"TYPES\" (ID NUMBER(38,0), {})",
        ddl.join(", ")
    ))
    .await
    .unwrap();
    let rows = pairs.iter().map(|(_, _, v)| v.len()).max().unwrap_or(0);
    for row in 0..rows {
        let values: Vec<&str> = pairs
            .iter()
            .map(|(_, _, v)| v.get(row).copied().unwrap_or("NULL"))
            .collect();
        sf.execute(&format!(
            "INSERT INTO \"{sf_db}\".\"S\".\"TYPES\" SELECT {row}, {}",
            values.join(", ")
        ))
        .await
        .unwrap();
    }
    let mut pg_ddl = vec!["\"ID\" int8 PRIMARY KEY".to_string()];
    pg_ddl.extend(
        pairs
            .iter()
            .zip(&columns)
            .map(|((_, pg_type, _), c)| format!("\"{c}\" {pg_type}")),
    );
    TypesTable { sf_db, pairs, columns, rows, pg_ddl }
}

/// Load the [`TypesTable`] of `sf_db` into `public.types` (columns `pg_ddl`)
/// of a fresh database named after `db_prefix`, on the `mode` path
/// (`direct` or `staged`), the table entry ending with `extra`; the run
/// must succeed. Returns the database's connection and the run's report.
async fn load_types(sf_db: &str, pg_ddl: &[String], db_prefix: &str, mode: &str, extra: &str) -> (Client, RunReport) {
    let pg_db = unique(db_prefix);
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(&format!("CREATE TABLE public.types ({})", pg_ddl.join(", "))).await.unwrap();
    let table = format!(r#"{{"source": "TYPES", "target": "types", "uniqueness_columns": ["ID"], "source_mode": "{mode}"{extra}}}"#);
    let config = Arc::new(config(&config_text(sf_db, &pg_db, &[&table], &staging_section(100_000))));
    let report = run(&config, PlanRequest::default()).await;
    report.outcome().unwrap_or_else(|e| panic!("{mode} run: {e}"));
    (pg, report)
}

/// Every type pair of the direct path's round trip (tests/types_roundtrip.rs)
/// through staging: the same Snowflake table is synced directly into one
/// database and through S3 into another; every value reads back identically,
/// both runs reconcile clean against Snowflake, and their target checksums
/// are equal.
#[tokio::test]
async fn every_direct_round_trip_type_round_trips_through_staging_with_identical_checksums() {
    let TypesTable { sf_db, pairs, columns, rows, pg_ddl, .. } = round_trip_types_table("SFTYPES").await;
    let mut results = Vec::new();
    for mode in ["direct", "staged"] {
        let (pg, report) = load_types(&sf_db, &pg_ddl, &format!("types_{mode}"), mode, "").await;
        let reconcile = report.reconcile.expect("reconciled");
        assert_eq!(reconcile.mismatches, 0, "{mode}");
        let checksum = reconcile.tables[0].target_checksum.clone();
        let staged_files = files(&pg, report.plan.run_id).await.len();
        assert_eq!(
            staged_files > 0,
            mode == "staged",
            "{mode}: files recorded only on the staged path"
        );
        pg.batch_execute("SET TimeZone = 'UTC'; SET extra_float_digits = 1")
            .await
            .unwrap();
        let select: Vec<String> = columns.iter().map(|c| format!("\"{c}\"::text")).collect();
        let values: Vec<Vec<Option<String>>> = pg
            .query(
                &format!(
                    "SELECT {} FROM public.types ORDER BY \"ID\"",
                    select.join(", ")
                ),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (0..columns.len()).map(|i| r.get(i)).collect())
            .collect();
        assert_eq!(values.len(), rows, "{mode}");
        results.push((checksum, values));
    }
    let (direct, staged) = (&results[0], &results[1]);
    for (row, (d, s)) in direct.1.iter().zip(&staged.1).enumerate() {
        for (i, (a, b)) in d.iter().zip(s).enumerate() {
            assert_eq!(
                a, b,
                "row {row}: {} → {} differs between the direct and the staged load",
                pairs[i].0, pairs[i].1
            );
        }
    }
    assert_eq!(
        direct.0, staged.0,
        "direct and staged loads have the same target checksum"
    );
}

/// The state machine's staged flow through the same step functions the
/// Lambdas call (docs/sync.md §13.7): plan → copy-chunk with
/// `staged: unload` per manifest item → copy-chunk with `staged:
/// file_manifest` → one copy-chunk per file item, files of one chunk loaded
/// concurrently; every chunk completes with its last file.
#[tokio::test]
async fn the_cloud_flow_unloads_writes_the_file_manifest_and_loads_one_file_per_item() {
    use thaw_engine::contract::{ChunkItem, StagedStep};
    let (pg, config) = orders_setup(
        r#", "chunking_columns": ["Id"], "chunking_column_types": ["int"], "batch_size": 450"#,
        6000,
        1,
    )
    .await;
    let dir = std::env::temp_dir().join(unique("staged-manifests"));
    std::fs::create_dir_all(&dir).unwrap();
    let chunks_uri = dir.join("chunks.json").display().to_string();
    let plan = thaw_engine::steps::plan(
        &config,
        &PlanRequest {
            manifest_uri: Some(chunks_uri.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let items = thaw_engine::sync::manifest::read(&chunks_uri)
        .await
        .unwrap();
    assert_eq!(items.len() as u64, plan.chunks);
    for item in &items {
        let unload = ChunkItem {
            staged: Some(StagedStep::Unload),
            ..item.clone()
        };
        thaw_engine::steps::copy_chunk(&config, &unload)
            .await
            .unwrap();
    }
    assert_eq!(
        pg_count(&pg, "public.orders").await,
        0,
        "the unload pass loads nothing"
    );
    let files_uri = dir.join("files.json").display().to_string();
    let manifest_step = ChunkItem {
        run_id: plan.run_id,
        source_name: String::new(),
        source_table: String::new(),
        chunk_id: -1,
        file_key: None,
        staged: Some(StagedStep::FileManifest {
            uri: files_uri.clone(),
        }),
    };
    thaw_engine::steps::copy_chunk(&config, &manifest_step)
        .await
        .unwrap();
    let file_items = thaw_engine::sync::manifest::read(&files_uri).await.unwrap();
    assert_eq!(file_items.len(), files(&pg, plan.run_id).await.len());
    assert!(file_items.len() > items.len(), "several files per chunk");
    // Two concurrent "Map children" over the file items.
    let halves: Vec<Vec<ChunkItem>> = vec![
        file_items.iter().step_by(2).cloned().collect(),
        file_items.iter().skip(1).step_by(2).cloned().collect(),
    ];
    let tasks: Vec<_> = halves
        .into_iter()
        .map(|half| {
            let config = config.clone();
            tokio::spawn(async move {
                for item in half {
                    thaw_engine::steps::copy_chunk(&config, &item)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    assert_eq!(distinct_codes(&pg).await, 900);
    let unfinished: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE run_id = $1 AND (status <> 'completed' OR rows_copied <> rows_unloaded)", &[&plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        unfinished, 0,
        "every chunk completed with its last file, rows_copied = rows_unloaded"
    );
    // A second file manifest is empty: nothing left to load.
    thaw_engine::steps::copy_chunk(&config, &manifest_step)
        .await
        .unwrap();
    assert!(thaw_engine::sync::manifest::read(&files_uri)
        .await
        .unwrap()
        .is_empty());
}

// ---------------------------------------------------------------------------
// Row hashes on the staged path (docs/reconcile.md §4.2): the staged path
// writes each row's hash with the row through the same writer as the direct
// path, so the side table is complete after a staged load.

/// The `Code` of ORDERS row `i` ([`create_orders`]).
fn order_code(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i * 7919 % 100_000_007, i)
}

/// Asserts that the side table of `target` (quoted) is registered complete
/// and holds exactly one row per target row, with the hashes PostgreSQL's
/// canonical SQL computes from the row now (the column types from the plan
/// of `run_id`); returns its (key MD5, row hash) rows in key order.
async fn assert_side_table_equals_the_rows(
    pg: &Client,
    run_id: Uuid,
    target: &str,
) -> Vec<(Vec<u8>, i64)> {
    use thaw_engine::reconcile::{canonical, side_table};
    let side = side_table::registered(pg, target)
        .await
        .unwrap()
        .expect("a registered side table");
    let reason: Option<String> = pg
        .query_one(
            "SELECT reason FROM migration_status.row_hash_tables WHERE target = $1",
            &[&target],
        )
        .await
        .unwrap()
        .get(0);
    assert!(side.complete, "registered complete ({reason:?})");
    let plan: thaw_engine::sync::table_plan::TablePlan = serde_json::from_value(
        pg.query_one(
            "SELECT plan FROM migration_status.migration_table_status WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .unwrap()
        .get(0),
    )
    .unwrap();
    let exprs: Vec<String> = plan
        .columns
        .iter()
        .map(|c| canonical::postgres_expr(&c.source, &c.target))
        .collect();
    let keys: Vec<String> = plan
        .key_columns
        .iter()
        .map(|k| exprs[plan.columns.iter().position(|c| &c.target.name == k).unwrap()].clone())
        .collect();
    let fresh = format!(
        "SELECT CAST(CAST('x' || LEFT(kx, 7) AS BIT(28)) AS INT) AS key_place, decode(kx, 'hex') AS key_md5, CAST(CAST('x' || LEFT(rh, 12) AS BIT(48)) AS BIGINT) AS row_hash \
         FROM (SELECT MD5({}) AS kx, MD5({}) AS rh FROM {target}) t",
        canonical::row_text(&keys),
        canonical::row_text(&exprs)
    );
    let side_rows = format!("SELECT key_place, key_md5, row_hash FROM {}", side.name);
    let r = pg
        .query_one(
            &format!("SELECT (SELECT count(*) FROM ({side_rows} EXCEPT ALL {fresh}) a), (SELECT count(*) FROM ({fresh} EXCEPT ALL {side_rows}) b), \
                      (SELECT count(*) FROM {target}), (SELECT count(*) FROM {})", side.name),
            &[],
        )
        .await
        .unwrap();
    let (stale, missing, rows, hashes): (i64, i64, i64, i64) = (r.get(0), r.get(1), r.get(2), r.get(3));
    assert_eq!(
        (stale, missing, hashes),
        (0, 0, rows),
        "side table vs a fresh computation over the {rows} rows of {target}"
    );
    pg.query(
        &format!("SELECT key_md5, row_hash FROM {} ORDER BY key_md5", side.name),
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The reconcile coverage of the first table of a reconcile's details.
fn coverage(details: &[thaw_engine::reconcile::TableReport]) -> thaw_engine::reconcile::TableCoverage {
    details[0].coverage.clone().expect("the table was reconciled")
}

const ORDERS: &str = "\"public\".\"orders\"";

/// ORDERS (900 rows) staged with `row_hashes` on into a target with a
/// unique key on "Code", `max_file_size` bytes per file.
async fn hashed_orders_setup(
    table_extra: &str,
    max_file_size: u64,
) -> (Client, SnowflakeSource, String, Arc<Config>) {
    let (sf_db, pg_db, pg, sf) = orders("stagedrh", 900).await;
    let table = format!(
        r#"{{"source": "ORDERS", "target": "orders", "uniqueness_columns": ["Code"], "source_mode": "staged", "row_hashes": true {table_extra}}}"#
    );
    let config = Arc::new(config(&config_text(
        &sf_db,
        &pg_db,
        &[&table],
        &staging_section(max_file_size),
    )));
    (pg, sf, sf_db, config)
}

#[tokio::test]
async fn a_staged_load_keeps_row_hashes_that_reconcile_reads_and_differences_are_found() {
    use thaw_engine::contract::RunRequest;
    use thaw_engine::reconcile::{self, ReconcileOptions};
    let (pg, sf, sf_db, config) = hashed_orders_setup(
        r#", "chunking_columns": ["Id"], "chunking_column_types": ["int"], "batch_size": 300"#,
        6000,
    )
    .await;
    let report = run(&config, PlanRequest::default()).await;
    report
        .outcome()
        .expect("the staged run completes and reconciles clean");
    let run_id = report.plan.run_id;
    assert!(
        files(&pg, run_id).await.len() > report.plan.chunks as usize,
        "several files per chunk"
    );
    // The side table is complete, equals the rows, and reconcile read it.
    assert_side_table_equals_the_rows(&pg, run_id, ORDERS).await;
    let c = coverage(&report.reconcile_details);
    assert_eq!(
        (c.scope.as_str(), c.rows_verified, c.rows_transferred, c.row_hashes.as_deref()),
        ("full", 900, 0, Some("read")),
        "{c:?}"
    );
    let forget_coverage = || async {
        pg.batch_execute("DELETE FROM migration_status.reconcile_coverage")
            .await
            .unwrap()
    };

    // A difference in the source is found reading the side table.
    let changed = order_code(321);
    sf.execute(&format!(
        "UPDATE \"{sf_db}\".\"S\".\"ORDERS\" SET \"Note\" = 'changed in the source' WHERE \"Code\" = '{changed}'"
    ))
    .await
    .unwrap();
    forget_coverage().await;
    let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id })
        .await
        .unwrap();
    assert_eq!(summary.tables[0].status, "mismatch", "{summary:?}");
    assert_eq!(details[0].diff.as_ref().unwrap().changed, std::slice::from_ref(&changed));
    assert_eq!(coverage(&details).row_hashes.as_deref(), Some("read"));
    sf.execute(&format!(
        "UPDATE \"{sf_db}\".\"S\".\"ORDERS\" SET \"Note\" = 'note 321 O''Brien' WHERE \"Code\" = '{changed}'"
    ))
    .await
    .unwrap();

    // A difference planted in the target (a write bypassing thaw) is found
    // by --full, which re-derives every hash from the rows and refills the
    // side table.
    let planted = order_code(654);
    pg.execute(
        "UPDATE public.orders SET \"Amount\" = 0.001 WHERE \"Code\" = $1::text::uuid",
        &[&planted],
    )
    .await
    .unwrap();
    let full = ReconcileOptions {
        full: true,
        ..Default::default()
    };
    let (summary, details) =
        reconcile::reconcile_run_with(&config, &RunRequest { run_id }, full).await.unwrap();
    assert_eq!(summary.tables[0].status, "mismatch", "{summary:?}");
    assert_eq!(details[0].diff.as_ref().unwrap().changed, [planted]);
    let refilled = coverage(&details).row_hashes.unwrap_or_default();
    assert!(refilled.starts_with("refilled from the rows"), "{refilled}");
    assert_side_table_equals_the_rows(&pg, run_id, ORDERS).await;
}

/// A crash between two files of a chunk (the third file fails before its
/// commit) leaves the side table equal to the committed rows; then a row
/// written into the target behind thaw's back makes one file's first-load
/// COPY hit the unique index, so that file is loaded again through the
/// upsert (`force_upsert`): the resumed run still leaves a complete side
/// table equal to the rows, which reconcile reads.
#[tokio::test]
async fn a_crash_between_staged_files_and_the_upsert_fallback_leave_a_complete_side_table() {
    let (pg, _sf, _sf_db, config) = hashed_orders_setup(r#", "batch_size": 100000"#, 6000).await;
    let (run_id, before) = crash_before_the_third_file_commits(&pg, &config, None).await;
    let committed: i64 = before.iter().filter(|f| f.1 == "completed").map(|f| f.2).sum();
    assert!(committed > 0 && committed < 900, "{before:?}");
    assert_eq!(pg_count(&pg, "public.orders").await, committed);
    assert_side_table_equals_the_rows(&pg, run_id, ORDERS).await;

    // A source row not loaded yet, written into the target outside thaw.
    let loaded: Vec<String> = pg
        .query("SELECT \"Code\"::text FROM public.orders", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let planted = (0..900)
        .map(order_code)
        .find(|c| !loaded.contains(c))
        .unwrap();
    pg.execute(
        "INSERT INTO public.orders (\"Id\", \"Code\", \"Note\") VALUES (-1, $1::text::uuid, 'planted')",
        &[&planted],
    )
    .await
    .unwrap();

    let again = run(&config, PlanRequest::default()).await;
    again
        .outcome()
        .expect("the resumed run completes and reconciles clean");
    assert!(again.plan.resumed && again.plan.run_id == run_id);
    assert!(files(&pg, run_id).await.iter().all(|f| f.1 == "completed"));
    assert_eq!(pg_count(&pg, "public.orders").await, 900, "no missing rows");
    assert_eq!(distinct_codes(&pg).await, 900, "no duplicate rows");
    let note: Option<String> = pg
        .query_one(
            "SELECT \"Note\" FROM public.orders WHERE \"Code\" = $1::text::uuid",
            &[&planted],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(
        note.as_deref(),
        Some("planted"),
        "the file holding the planted key was loaded through the upsert, which replaced the row"
    );
    assert_side_table_equals_the_rows(&pg, run_id, ORDERS).await;
    assert_eq!(
        coverage(&again.reconcile_details).row_hashes.as_deref(),
        Some("read")
    );
}

/// A `truncate_onstart` replace load with row hashes, on the direct and the
/// staged path: the shadow table's side table is swapped in with the shadow,
/// so after the second (replacing) run the target's side table holds exactly
/// the new rows' hashes; and both paths keep the same hashes for ORDERS
/// (TIMESTAMP_TZ, NUMBER, text into uuid, boolean).
#[tokio::test]
async fn a_replace_load_swaps_in_the_hashes_of_the_new_rows_on_both_paths() {
    let mut sides = Vec::new();
    for mode in ["direct", "staged"] {
        let (sf_db, pg_db, pg, sf) = orders(&format!("replacerh{mode}"), 900).await;
        let table = format!(
            r#"{{"source": "ORDERS", "target": "orders", "uniqueness_columns": ["Code"], "source_mode": "{mode}", "row_hashes": true,
                 "truncate_onstart": true, "chunking_columns": ["Id"], "chunking_column_types": ["int"], "batch_size": 300}}"#
        );
        let config = Arc::new(config(&config_text(
            &sf_db,
            &pg_db,
            &[&table],
            &staging_section(6000),
        )));
        let first = run(&config, PlanRequest::default()).await;
        first.outcome().unwrap_or_else(|e| panic!("{mode} first load: {e}"));
        assert_side_table_equals_the_rows(&pg, first.plan.run_id, ORDERS).await;

        // The source changes: 100 rows go, 50 change; the next run replaces the table.
        let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
        let gone: Vec<String> = (0..100).map(|i| format!("'{}'", order_code(i * 9))).collect();
        sf.execute(&format!("DELETE FROM {fqn} WHERE \"Code\" IN ({})", gone.join(", ")))
            .await
            .unwrap();
        let changed: Vec<String> = (0..50).map(|i| format!("'{}'", order_code(i * 9 + 4))).collect();
        sf.execute(&format!(
            "UPDATE {fqn} SET \"Note\" = 'replaced', \"Amount\" = 7.125 WHERE \"Code\" IN ({})",
            changed.join(", ")
        ))
        .await
        .unwrap();
        let second = run(
            &config,
            PlanRequest {
                no_resume: true,
                allow_truncate: true,
                ..Default::default()
            },
        )
        .await;
        second
            .outcome()
            .unwrap_or_else(|e| panic!("{mode} replace load: {e}"));
        let truncated: bool = pg
            .query_one(
                "SELECT truncated FROM migration_status.migration_table_status WHERE run_id = $1",
                &[&second.plan.run_id],
            )
            .await
            .unwrap()
            .get(0);
        assert!(truncated, "{mode}: the second run replaced the table");
        assert_eq!(pg_count(&pg, "public.orders").await, 800, "{mode}");
        let side = assert_side_table_equals_the_rows(&pg, second.plan.run_id, ORDERS).await;
        assert_eq!(side.len(), 800, "{mode}: exactly the new rows' hashes");
        assert_eq!(
            coverage(&second.reconcile_details).row_hashes.as_deref(),
            Some("read"),
            "{mode}"
        );
        sides.push(side);
    }
    assert!(
        sides[0] == sides[1],
        "the direct and the staged load keep the same hashes, key by key"
    );
}

/// Every type pair of the direct path's round trip with row hashes on,
/// synced directly into one database and through S3 into another: both
/// side tables are complete and equal to their rows, and they are equal key
/// by key — the staged Parquet batches (decimals from text, timestamps
/// re-typed to UTC, TIMESTAMP_TZ as instant and offset, JSON as text) hash
/// to the direct path's values.
#[tokio::test]
async fn staged_and_direct_loads_keep_equal_row_hashes_for_every_round_trip_type() {
    let TypesTable { sf_db, rows, pg_ddl, .. } = round_trip_types_table("SFTYPESRH").await;
    let mut sides = Vec::new();
    for mode in ["direct", "staged"] {
        let (pg, report) = load_types(&sf_db, &pg_ddl, &format!("typesrh_{mode}"), mode, r#", "row_hashes": true"#).await;
        assert_eq!(
            coverage(&report.reconcile_details).row_hashes.as_deref(),
            Some("read"),
            "{mode}: reconcile read the side table"
        );
        let side =
            assert_side_table_equals_the_rows(&pg, report.plan.run_id, "\"public\".\"types\"").await;
        assert_eq!(side.len(), rows, "{mode}");
        sides.push(side);
    }
    for ((dk, dh), (sk, sh)) in sides[0].iter().zip(&sides[1]) {
        assert_eq!(
            (hex(dk), dh),
            (hex(sk), sh),
            "the same key with the same row hash on both paths"
        );
    }
    assert_eq!(sides[0].len(), sides[1].len());
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Found probing as a new user: a staged table whose Snowflake schema and
/// table names hold spaces ("Sales Ops"."Visit Log") failed every chunk with
/// "a stage path cannot carry ' ' unquoted" under the default
/// `staging.prefix_pattern`, after the run was recorded (exit 1). Names are
/// now escaped in the path (`Sales-20Ops/Visit-20Log/…`), and the table
/// loads, merges, reconciles and shows in `thaw status` under its names.
#[tokio::test]
async fn a_staged_table_with_spaces_and_mixed_case_in_its_names_loads_and_reconciles() {
    let sf_db = unique("SFSTAGEDNAMES").to_uppercase();
    let pg_db = unique("stagednames");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 300).await;
    sf.execute(&format!("CREATE SCHEMA \"{sf_db}\".\"Sales Ops\"")).await.unwrap();
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"Sales Ops\".\"Visit Log\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\"")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(&format!("CREATE SCHEMA \"Sales Ops\"; CREATE TABLE \"Sales Ops\".\"Visit Log\" ({ORDERS_TARGET_COLUMNS}, UNIQUE (\"Code\"))"))
        .await
        .unwrap();
    let table = r#"{"source": "Visit Log", "target": "Visit Log", "uniqueness_columns": ["Code"], "source_mode": "staged",
                    "chunking_columns": ["Id"], "chunking_column_types": ["int"], "batch_size": 100}"#;
    let text = config_text(&sf_db, &pg_db, &[table], &staging_section(6000))
        .replace(r#""source_sf_schema": "S""#, r#""source_sf_schema": "Sales Ops""#)
        .replace(r#""target_pg_schema": "public""#, r#""target_pg_schema": "Sales Ops""#);
    let config = Arc::new(config(&text));
    let report = run(&config, PlanRequest::default()).await;
    report.outcome().expect("the staged run completes and reconciles");
    assert_eq!(report.status, "completed");
    assert_eq!(pg_count(&pg, "\"Sales Ops\".\"Visit Log\"").await, 300);
    let files = files(&pg, report.plan.run_id).await;
    assert!(files.len() > 1 && files.iter().all(|(_, status, _)| status == "completed"), "{files:?}");
    let prefix = format!("{sf_db}/Sales-20Ops/Visit-20Log/run_{}/chunk_", report.plan.run_id);
    assert!(files.iter().all(|(key, _, _)| key.contains(&prefix)), "{prefix} in {files:?}");
    let runs = thaw_engine::sync::status_postgres::PgStatusStore::new(&pg).overview(Some(report.plan.run_id), 1).await.unwrap();
    let t = &runs[0].tables[0];
    assert_eq!((t.source_table.as_str(), t.target.as_str(), t.status.as_str(), t.rows), ("Visit Log", "Sales Ops.Visit Log", "completed", 300));
}
