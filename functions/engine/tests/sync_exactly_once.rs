//! Exactly once under a forced failure between COPY and commit: the chunk's
//! rows and its `completed` status commit together, so a retried or resumed
//! chunk neither loses nor duplicates rows.


use std::sync::Arc;

use thaw_test_support::*;
use thaw_engine::failpoints;
use thaw_engine::contract::PlanRequest;
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::ErrorKind;

async fn setup(rows: usize) -> (String, String, tokio_postgres::Client, Arc<thaw_engine::config::Config>) {
    let sf_db = unique("SFONCE").to_uppercase();
    let pg_db = unique("once");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, rows).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], "")));
    (sf_db, pg_db, pg, config)
}

fn options() -> RunOptions {
    RunOptions { request: PlanRequest { no_resume: false, ..Default::default() }, conflicts: false, ..Default::default() }
}

#[tokio::test]
async fn transient_failure_before_commit_is_retried_without_duplicates() {
    let (_sf, _db, pg, config) = setup(900).await;
    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::Transient, 2);
    let report = runner::run(config, options(), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    report.outcome().expect("the retried chunks succeed and reconcile clean");
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    let retried: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE run_id = $1 AND retry_count > 1", &[&report.plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(retried, 2, "two chunks failed once before commit and were retried");
}

#[tokio::test]
async fn l6_failed_chunk_leaves_nothing_behind_and_resume_completes_it() {
    let (_sf, _db, pg, config) = setup(900).await;
    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::ChunkFailed, 1);
    let report = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!(report.failures.len(), 1);
    let err = report.outcome().unwrap_err();
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    assert!(err.message.contains("rerun the same command to resume"), "{}", err.message);
    let (item, _) = &report.failures[0];
    let est: i64 = pg
        .query_one(
            "SELECT rows_copied FROM migration_status.migration_chunk_status WHERE run_id = $1 AND chunk_id = $2 AND status = 'failed'",
            &[&report.plan.run_id, &item.chunk_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(est, 0);
    let partial = pg_count(&pg, "public.orders").await;
    assert!(partial < 900 && partial > 0, "the failed chunk's rows were rolled back: {partial}");

    // Rerun: the unfinished run is resumed and only the failed chunk is copied.
    let again = runner::run(config, options(), Arc::new(Quiet)).await.expect("resume");
    again.outcome().expect("resume completes and reconciles");
    assert!(again.plan.resumed);
    assert_eq!(again.plan.run_id, report.plan.run_id);
    assert_eq!(again.plan.chunks, 1);
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
}
