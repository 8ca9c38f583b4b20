//! Row hashes kept at load time (docs/reconcile.md §4.2), against the
//! emulator and PostgreSQL: the first-load COPY and the upsert write each
//! row's hash into the side table in the chunk's transaction; a full-scope
//! reconcile reads only the side table on the PostgreSQL side and still finds
//! a difference in the source; a write that bypassed thaw is invisible to the
//! side table but found by `--full` (which refills it) and by the rolling
//! slice (which marks it incomplete); propagate_deletes deletes the hashes
//! with the rows. After every step the side table equals a fresh computation
//! of the hashes from the target's rows.
//!
//! Run under the harness: `python3 tests/harness.py run -- cargo nextest run -p thaw-engine --test integration reconcile_row_hashes::`.

use std::sync::Arc;

use thaw_engine::contract::{PlanRequest, RunRequest};
use thaw_engine::reconcile::{self, canonical, side_table, ReconcileOptions, TableCoverage};
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::sink;
use thaw_engine::sync::table_plan::SourceColumn;
use thaw_test_support::*;
use tokio_postgres::Client;

const ROWS: u64 = 20_000;
const TARGET: &str = "\"public\".\"items\"";

fn coverage(details: &[reconcile::TableReport]) -> TableCoverage {
    details[0].coverage.clone().expect("the table was reconciled")
}

/// The side table holds exactly one row per target row with the hashes
/// PostgreSQL's canonical SQL computes from the row now (and it is
/// registered complete when `complete`).
async fn assert_side_table_equals_the_rows(pg: &Client, complete: bool) {
    let side = side_table::registered(pg, TARGET).await.unwrap().expect("a registered side table");
    let reason: Option<String> = pg.query_one("SELECT reason FROM migration_status.row_hash_tables WHERE target = $1", &[&TARGET]).await.unwrap().get(0);
    assert_eq!(side.complete, complete, "registered complete ({reason:?})");
    let sources = [("ID", "NUMBER", Some(0)), ("NOTE", "TEXT", None), ("AMOUNT", "NUMBER", Some(2)), ("UPDATED", "TIMESTAMP_NTZ", None)];
    let targets = sink::table_columns(pg, "public", "items").await.unwrap();
    let exprs: Vec<String> = sources
        .iter()
        .zip(&targets)
        .map(|((name, data_type, scale), t)| {
            canonical::postgres_expr(&SourceColumn { name: (*name).into(), data_type: (*data_type).into(), scale: *scale, char_length: None }, t)
        })
        .collect();
    let fresh = format!(
        "SELECT CAST(CAST('x' || LEFT(kx, 7) AS BIT(28)) AS INT) AS key_place, decode(kx, 'hex') AS key_md5, CAST(CAST('x' || LEFT(rh, 12) AS BIT(48)) AS BIGINT) AS row_hash \
         FROM (SELECT MD5({}) AS kx, MD5({}) AS rh FROM {TARGET}) t",
        canonical::row_text(&exprs[..1]),
        canonical::row_text(&exprs)
    );
    let side_rows = format!("SELECT key_place, key_md5, row_hash FROM {}", side.name);
    let r = pg
        .query_one(
            &format!("SELECT (SELECT count(*) FROM ({side_rows} EXCEPT ALL {fresh}) a), (SELECT count(*) FROM ({fresh} EXCEPT ALL {side_rows}) b), (SELECT count(*) FROM {TARGET})"),
            &[],
        )
        .await
        .unwrap();
    let (stale, missing, rows): (i64, i64, i64) = (r.get(0), r.get(1), r.get(2));
    assert_eq!((stale, missing), (0, 0), "side table vs a fresh computation over {rows} rows");
}

#[tokio::test]
async fn row_hashes_kept_at_load_answer_reconcile_and_writes_bypassing_thaw_are_found_by_the_slice_and_full() {
    let (sf_db, pg_db) = (unique("SFRH").to_uppercase(), unique("rh"));
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"ITEMS\"");
    sf.execute(&format!("CREATE OR REPLACE TABLE {fqn} (\"ID\" NUMBER(38,0), \"NOTE\" VARCHAR(50), \"AMOUNT\" NUMBER(12,2), \"UPDATED\" TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} SELECT SEQ4() + 1, IFF(SEQ4() % 97 = 0, NULL, 'note ' || SEQ4()), (SEQ4() % 1000) / 100, \
         DATEADD(second, SEQ4(), '2024-01-01 00:00:00.123456'::TIMESTAMP_NTZ) FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))"
    ))
    .await
    .unwrap();
    pg.batch_execute("CREATE TABLE public.items (\"ID\" int8 PRIMARY KEY, \"NOTE\" varchar(50), \"AMOUNT\" numeric(12,2), \"UPDATED\" timestamp)").await.unwrap();
    let table = r#"{"source": "ITEMS", "target": "items", "uniqueness_columns": ["ID"], "source_watermark": "UPDATED", "target_watermark": "UPDATED",
                    "propagate_deletes": true, "batch_size": 5000}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], r#""reconcile": {"row_hashes": true},"#)));
    let run = || async {
        runner::run(config.clone(), RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }, Arc::new(Quiet)).await.unwrap()
    };
    let forget_coverage = || async { pg.batch_execute("DELETE FROM migration_status.reconcile_coverage").await.unwrap() };

    // Night 1: the first load COPYs rows and hashes; the first (full)
    // verification reads only the side table on the PostgreSQL side.
    let first = run().await;
    first.outcome().expect("clean first night");
    let c = coverage(&first.reconcile_details);
    assert_eq!((c.scope.as_str(), c.rows_verified, c.rows_transferred, c.row_hashes.as_deref()), ("full", ROWS, 0, Some("read")), "{c:?}");
    assert_side_table_equals_the_rows(&pg, true).await;

    // Night 2: 10 rows change and 5 are new: the upsert replaces their hashes.
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'changed', \"AMOUNT\" = 1.5, \"UPDATED\" = '2025-01-01 00:00:00' WHERE \"ID\" <= 10")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} SELECT {ROWS} + SEQ4() + 1, 'new', 2.25, '2025-01-02 00:00:00' FROM TABLE(GENERATOR(ROWCOUNT => 5))")).await.unwrap();
    let second = run().await;
    second.outcome().expect("clean second night");
    assert_eq!(coverage(&second.reconcile_details).scope, "nightly");
    assert_side_table_equals_the_rows(&pg, true).await;
    let run_id = second.plan.run_id;
    let rows = ROWS + 5;

    // A full-scope check (first verification again) reads the side table and
    // finds an engineered difference in the source.
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'source changed' WHERE \"ID\" = 778")).await.unwrap();
    forget_coverage().await;
    let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
    assert_eq!(summary.tables[0].status, "mismatch", "{summary:?}");
    assert_eq!(details[0].diff.as_ref().unwrap().changed, ["778"]);
    let c = coverage(&details);
    assert_eq!((c.scope.as_str(), c.rows_verified, c.row_hashes.as_deref()), ("full", rows, Some("read")), "{c:?}");
    assert!(c.rows_transferred < rows / 10, "only the differing leaf's rows are fetched: {c:?}");
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'note 777' WHERE \"ID\" = 778")).await.unwrap();

    // A write that bypasses thaw: the side table still says what thaw wrote,
    // so reading it is clean (the documented blind spot) ...
    pg.batch_execute("UPDATE public.items SET \"NOTE\" = 'tampered' WHERE \"ID\" = 4321").await.unwrap();
    forget_coverage().await;
    let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
    assert_eq!((summary.tables[0].status.as_str(), coverage(&details).row_hashes.as_deref()), ("ok", Some("read")), "{summary:?}");
    // ... --full re-derives every hash from the rows, finds it and refills the side table.
    let full = ReconcileOptions { full: true, ..Default::default() };
    let (summary, details) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, full).await.unwrap();
    assert_eq!(summary.tables[0].status, "mismatch");
    assert_eq!(details[0].diff.as_ref().unwrap().changed, ["4321"]);
    let refilled = coverage(&details).row_hashes.unwrap_or_default();
    assert!(refilled.starts_with(&format!("refilled from the rows ({rows} rows; it differed")), "{refilled}");
    assert_side_table_equals_the_rows(&pg, true).await;
    pg.batch_execute("UPDATE public.items SET \"NOTE\" = 'note 4320' WHERE \"ID\" = 4321").await.unwrap();
    let (summary, details) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, full).await.unwrap();
    assert_eq!(summary.tables[0].status, "ok");
    assert!(coverage(&details).row_hashes.unwrap_or_default().starts_with("refilled"), "the repair is written back too");
    let (summary, details) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, full).await.unwrap();
    assert_eq!((summary.tables[0].status.as_str(), coverage(&details).row_hashes.as_deref()), ("ok", Some("compared: equal to the rows")));

    // The rolling slice compares the rows with the side table as well: a
    // write bypassing thaw is found within the period and the side table is
    // marked incomplete (reconcile hashes in SQL until --full refills it).
    pg.batch_execute("UPDATE public.items SET \"AMOUNT\" = 999.99 WHERE \"ID\" = 1234").await.unwrap();
    let mut found = None;
    for night in 1..=7 {
        let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
        assert_eq!(coverage(&details).scope, "nightly");
        if summary.tables[0].status == "mismatch" {
            assert_eq!(details[0].diff.as_ref().unwrap().changed, ["1234"]);
            let drift = coverage(&details).row_hashes.unwrap_or_default();
            assert!(drift.starts_with("drift:"), "{drift}");
            found = Some(night);
            break;
        }
        assert_eq!(summary.tables[0].status, "ok");
    }
    assert!(found.is_some(), "the rolling slice finds the write within the period");
    assert!(!side_table::registered(&pg, TARGET).await.unwrap().unwrap().complete, "marked incomplete");
    pg.batch_execute("UPDATE public.items SET \"AMOUNT\" = 2.33 WHERE \"ID\" = 1234").await.unwrap();

    // A manual INSERT and DELETE on the target: --full finds both (the extra
    // row is propagated away with its hash) and refills the side table.
    pg.batch_execute("DELETE FROM public.items WHERE \"ID\" = 50; INSERT INTO public.items VALUES (99999999, 'extra', 1.00, '2024-05-05 00:00:00')").await.unwrap();
    let (summary, details) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, full).await.unwrap();
    assert_eq!(summary.tables[0].status, "mismatch");
    let d = details[0].diff.as_ref().unwrap();
    assert_eq!((d.missing.clone(), d.extra.clone(), d.deleted), (vec!["50".to_string()], vec!["99999999".to_string()], 1));
    assert_side_table_equals_the_rows(&pg, true).await;

    // propagate_deletes deletes the hashes with the rows (the next run also
    // copies row 50 back).
    sf.execute(&format!("DELETE FROM {fqn} WHERE \"ID\" IN (100, 5000, 15000)")).await.unwrap();
    sf.execute(&format!("UPDATE {fqn} SET \"UPDATED\" = '2025-02-01 00:00:00' WHERE \"ID\" = 50")).await.unwrap();
    let third = run().await;
    third.outcome().expect("clean third night");
    let d = third.reconcile_details[0].diff.as_ref().expect("the deletes are reported");
    assert_eq!(d.deleted, 3);
    assert_side_table_equals_the_rows(&pg, true).await;
    let count: i64 = pg.query_one(&format!("SELECT count(*) FROM {}", side_table::side_table_of(TARGET)), &[]).await.unwrap().get(0);
    assert_eq!(count as u64, rows - 3);
}

/// A crash between chunks — a chunk failing after its rows and hashes were
/// written (first-load COPY) or after its staging COPY (upsert) — leaves the
/// side table equal to the rows, and the resumed run completes both.
#[tokio::test]
async fn a_chunk_failing_before_its_commit_leaves_the_side_table_consistent_with_the_rows() {
    use thaw_engine::{failpoints, ErrorKind};
    let (sf_db, pg_db) = (unique("SFRHC").to_uppercase(), unique("rhc"));
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"ITEMS\"");
    sf.execute(&format!("CREATE OR REPLACE TABLE {fqn} (\"ID\" NUMBER(38,0), \"NOTE\" VARCHAR(50), \"AMOUNT\" NUMBER(12,2), \"UPDATED\" TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} SELECT SEQ4() + 1, 'note ' || SEQ4(), (SEQ4() % 1000) / 100, DATEADD(second, SEQ4(), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) \
         FROM TABLE(GENERATOR(ROWCOUNT => 4000))"
    ))
    .await
    .unwrap();
    pg.batch_execute("CREATE TABLE public.items (\"ID\" int8 PRIMARY KEY, \"NOTE\" varchar(50), \"AMOUNT\" numeric(12,2), \"UPDATED\" timestamp)").await.unwrap();
    let table = r#"{"source": "ITEMS", "target": "items", "uniqueness_columns": ["ID"], "source_watermark": "UPDATED", "target_watermark": "UPDATED",
                    "chunking_columns": ["ID"], "chunking_column_types": ["int"], "batch_size": 1000, "row_hashes": true}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let options = || RunOptions { request: PlanRequest { no_resume: false, ..Default::default() }, conflicts: false, ..Default::default() };
    let count = |sql: String| {
        let pg = &pg;
        async move { pg.query_one(&sql, &[]).await.unwrap().get::<_, i64>(0) }
    };

    // First load: one chunk fails after its COPY of rows and hashes.
    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::ChunkFailed, 1);
    let report = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!(report.outcome().unwrap_err().kind, ErrorKind::ChunkFailed);
    let rows = count(format!("SELECT count(*) FROM {TARGET}")).await;
    assert!(rows > 0 && rows < 4000, "the failed chunk's rows were rolled back: {rows}");
    assert_eq!(count(format!("SELECT count(*) FROM {}", side_table::side_table_of(TARGET))).await, rows, "and so were its hashes");
    assert_side_table_equals_the_rows(&pg, true).await;
    let again = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("resume");
    again.outcome().expect("the resumed run completes and reconciles clean");
    assert_eq!(coverage(&again.reconcile_details).row_hashes.as_deref(), Some("read"));
    assert_side_table_equals_the_rows(&pg, true).await;

    // Upsert: 20 rows change; the chunk fails after its staging COPY.
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'changed', \"UPDATED\" = '2025-01-01 00:00:00' WHERE \"ID\" % 200 = 0")).await.unwrap();
    failpoints::arm(failpoints::COPY_CHUNK_AFTER_COPY, ErrorKind::ChunkFailed, 1);
    let report = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!(report.outcome().unwrap_err().kind, ErrorKind::ChunkFailed);
    assert_eq!(count(format!("SELECT count(*) FROM {TARGET} WHERE \"NOTE\" = 'changed'")).await, 0);
    assert_side_table_equals_the_rows(&pg, true).await;
    let again = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("resume");
    again.outcome().expect("the resumed run completes and reconciles clean");
    assert_eq!(count(format!("SELECT count(*) FROM {TARGET} WHERE \"NOTE\" = 'changed'")).await, 20);
    assert_side_table_equals_the_rows(&pg, true).await;
}
