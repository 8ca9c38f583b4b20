//! Incremental reruns load only rows past the watermark, upsert changes,
//! propagate deletes when the table opts in, and reconcile clean.


use std::sync::Arc;

use thaw_test_support::*;
use thaw_engine::contract::PlanRequest;
use thaw_engine::runner::{self, Quiet, RunOptions};

#[tokio::test]
async fn second_run_copies_only_changed_rows_and_reconciles() {
    let sf_db = unique("SFINC").to_uppercase();
    let pg_db = unique("inc");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 1000).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let table = orders_table(Some(("Updated", "timestamp_tz")), r#", "propagate_deletes": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };

    let first = runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("first run");
    first.outcome().expect("first run reconciles");
    assert_eq!(first.tables[0].rows_written, 1000);

    // Change the source: update 10 rows (newer watermark), insert 5, delete 3.
    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'changed', \"Updated\" = '2026-05-01 00:00:00+00:00' WHERE \"Id\" BETWEEN 100 AND 109")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} VALUES (5000001, 'aaaaaaaa-0000-4000-8000-000000000001', NULL, 1.5, TRUE, 'new', '2026-05-02 00:00:00+00:00'), \
         (5000002, 'aaaaaaaa-0000-4000-8000-000000000002', NULL, 2.5, TRUE, 'new', '2026-05-02 00:00:00+00:00'), \
         (5000003, 'aaaaaaaa-0000-4000-8000-000000000003', NULL, 3.5, TRUE, 'new', '2026-05-02 00:00:00+00:00'), \
         (5000004, 'aaaaaaaa-0000-4000-8000-000000000004', NULL, 4.5, TRUE, 'new', '2026-05-02 00:00:00+00:00'), \
         (5000005, 'aaaaaaaa-0000-4000-8000-000000000005', NULL, 5.5, TRUE, 'new', '2026-05-02 00:00:00+00:00')"
    ))
    .await
    .unwrap();
    sf.execute(&format!("DELETE FROM {fqn} WHERE \"Id\" IN (200, 201, 202)")).await.unwrap();

    let second = runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("second run");
    second.outcome().expect("second run reconciles after propagating deletes");
    assert!(!second.plan.resumed);
    let t = &second.tables[0];
    // The 10 updated and 5 inserted rows are past the watermark; the one row
    // sitting exactly on the old maximum is re-read (>=) and left unchanged.
    assert_eq!(t.rows_read, 16);
    assert_eq!(t.rows_written, 15);
    assert_eq!(pg_count(&pg, "public.orders").await, 1000 + 5 - 3);
    let changed: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'changed'", &[]).await.unwrap().get(0);
    assert_eq!(changed, 10);
    let diff = second.reconcile_details[0].diff.as_ref().expect("the deletes were found by reconciliation");
    assert_eq!(diff.extra_count, 3);
    assert_eq!(diff.deleted, 3);

    // Third run with no change: nothing new is read past the boundary ties, nothing written.
    let third = runner::run(config, opts(), Arc::new(Quiet)).await.expect("third run");
    third.outcome().expect("third run reconciles");
    assert_eq!(third.tables.iter().map(|t| t.rows_written).sum::<u64>(), 0);
}
