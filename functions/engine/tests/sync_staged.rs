//! The S3-staged Parquet path (docs/sync.md §13) end to end: the emulator
//! unloads each chunk to Parquet files on the harness's S3 API, thaw lists
//! them, records them in `migration_file_status` and loads one file per
//! transaction into a real PostgreSQL; nothing is mocked.
//!
//! Run under the harness:
//! `python3 tests/harness.py run -- cargo nextest run -p thaw-engine --features thaw-engine/failpoints --test sync_staged`.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use thaw_engine::config::Config;
use thaw_engine::contract::PlanRequest;
use thaw_engine::failpoints;
use thaw_engine::runner::{self, Quiet, RunOptions, RunReport};
use thaw_engine::source::staged::s3_store;
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

#[tokio::test]
async fn a_crash_after_k_of_n_files_resumes_at_the_next_file_without_unloading_again() {
    let (pg, config) = orders_setup(r#", "batch_size": 100000"#, 6000, 1).await;
    failpoints::arm_at(
        failpoints::STAGED_FILE_BEFORE_COMMIT,
        ErrorKind::ChunkFailed,
        2,
        1,
    );
    let first = run(&config, PlanRequest::default()).await;
    failpoints::clear();
    assert_eq!(first.outcome().unwrap_err().kind, ErrorKind::ChunkFailed);
    let run_id = first.plan.run_id;
    let before = files(&pg, run_id).await;
    assert!(
        before.len() >= 4,
        "the single chunk unloaded into several files: {before:?}"
    );
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
/// target), files in flight roll back, and the resumed run loads each
/// unfinished file once.
#[tokio::test]
async fn a_crash_during_parallel_file_loads_resumes_exactly() {
    let (pg, config) = orders_setup(r#", "batch_size": 100000"#, 6000, 4).await;
    failpoints::arm_at(
        failpoints::STAGED_FILE_BEFORE_COMMIT,
        ErrorKind::ChunkFailed,
        2,
        1,
    );
    let first = run_with_workers(&config, 4).await;
    failpoints::clear();
    assert_eq!(first.outcome().unwrap_err().kind, ErrorKind::ChunkFailed);
    let run_id = first.plan.run_id;
    let before = files(&pg, run_id).await;
    assert!(before.len() >= 4, "one chunk, several files: {before:?}");
    let done: Vec<_> = before.iter().filter(|f| f.1 == "completed").collect();
    assert!(
        done.len() >= 2 && done.len() < before.len(),
        "the two files before the failure committed, not all: {before:?}"
    );
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
        message.contains(victim.as_str()) && message.contains("not a readable Parquet file"),
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

/// Every type pair of the direct path's round trip (tests/types_roundtrip.rs)
/// through staging: the same Snowflake table is synced directly into one
/// database and through S3 into another; every value reads back identically,
/// both runs reconcile clean against Snowflake, and their target checksums
/// are equal.
#[tokio::test]
async fn every_direct_round_trip_type_round_trips_through_staging_with_identical_checksums() {
    let pairs: Vec<&(&str, &str, &[&str])> = EMULATED.iter().collect();
    let sf_db = unique("SFTYPES").to_uppercase();
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
    let mut results = Vec::new();
    for mode in ["direct", "staged"] {
        let pg_db = unique(&format!("types_{mode}"));
        let pg = fresh_pg(&pg_db).await;
        pg.batch_execute(&format!(
            "CREATE TABLE public.types ({})",
            pg_ddl.join(", ")
        ))
        .await
        .unwrap();
        let table = format!(
            r#"{{"source": "TYPES", "target": "types", "uniqueness_columns": ["ID"], "source_mode": "{mode}"}}"#
        );
        let config = Arc::new(config(&config_text(
            &sf_db,
            &pg_db,
            &[&table],
            &staging_section(100_000),
        )));
        let report = run(&config, PlanRequest::default()).await;
        report
            .outcome()
            .unwrap_or_else(|e| panic!("{mode} run: {e}"));
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
