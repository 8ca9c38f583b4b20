//! Reconciliation finds rows that differ after a sync — missing, extra and
//! changed keys — and `thaw reconcile` exits 3 naming the table.


use std::sync::Arc;

use thaw_test_support::*;
use thaw_engine::contract::{PlanRequest, RunRequest};
use thaw_engine::runner::{self, Quiet, RunOptions};

#[tokio::test]
async fn tampered_target_rows_are_reported_as_missing_extra_and_changed() {
    let sf_db = unique("SFREC").to_uppercase();
    let pg_db = unique("rec");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 500).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let text = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], "");
    let config = Arc::new(config(&text));
    let report = runner::run(config.clone(), RunOptions { request: PlanRequest::default(), ..Default::default() }, Arc::new(Quiet)).await.unwrap();
    report.outcome().expect("clean first run");

    pg.batch_execute(
        "UPDATE public.orders SET \"Note\" = 'tampered' WHERE \"Id\" = 10; \
         DELETE FROM public.orders WHERE \"Id\" = 20; \
         INSERT INTO public.orders (\"Id\", \"Code\") VALUES (999999999, 'ffffffff-0000-4000-8000-000000000000');",
    )
    .await
    .unwrap();

    let (summary, details) = thaw_engine::reconcile::reconcile_run(&config, &RunRequest { run_id: report.plan.run_id }).await.unwrap();
    assert_eq!(summary.mismatches, 1);
    let t = &summary.tables[0];
    assert!(!t.matched);
    assert_eq!((t.source_rows, t.target_rows), (500, 500));
    assert_ne!(t.source_checksum, t.target_checksum);
    let diff = details[0].diff.as_ref().expect("row-level diff");
    assert_eq!((diff.missing_count, diff.extra_count, diff.changed_count), (1, 1, 1));
    assert!(diff.extra[0].contains("ffffffff-0000-4000-8000-000000000000"), "{:?}", diff.extra);
    assert_eq!(diff.deleted, 0, "deletes are not propagated unless the table opts in");

    let path = config_file(&text);
    let out = thaw!(&["reconcile", "--config", path.to_str().unwrap(), "--run-id", &report.plan.run_id.to_string()]);
    assert_eq!(out.status.code(), Some(3), "{}", thaw_test_support::text(&out));
    assert!(thaw_test_support::text(&out).contains("ReconcileMismatch"), "{}", thaw_test_support::text(&out));
}
