//! The cutover gate (`thaw_engine::cutover::check`, docs/reconcile.md §9)
//! against a real PostgreSQL: after a real sync run that reconciled clean and
//! a finished conflict job, every gate but `dual-read` passes; each gate then
//! fails for its own reason (a failed run, a mismatching table, a running or
//! stale conflict job, a missing dual-read) and names it.
//!
//! Run under tests/harness.py (`make test`).

use std::sync::Arc;

use thaw_engine::contract::PlanRequest;
use thaw_engine::cutover::{check, CutoverReport, GateOptions};
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_test_support::*;

fn gate<'a>(report: &'a CutoverReport, name: &str) -> &'a thaw_engine::cutover::Gate {
    report.gates.iter().find(|g| g.name == name).unwrap_or_else(|| panic!("no gate {name}"))
}

#[tokio::test]
async fn cutover_gate_passes_after_a_clean_night_and_names_each_failing_gate() {
    let sf_db = unique("SFCUT").to_uppercase();
    let pg_db = unique("cut");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 300).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let extra = format!(r#""conflicts": {{"database": "{pg_db}"}},"#);
    let text = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], &extra);
    let config = Arc::new(config(&text));
    let options = RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), options, Arc::new(Quiet)).await.expect("a clean sync run");

    // The conflict job finished an hour ago (wall clock of its zone) and is idle.
    pg.batch_execute(
        "INSERT INTO conflict.settings (\"LastLoadDate\", \"InProgressFlag\") \
         VALUES ((now() - interval '1 hour') AT TIME ZONE 'America/New_York', 2)",
    )
    .await
    .expect("settings row");

    let report = check(&config, &GateOptions::default()).await.expect("gate evaluates");
    for name in ["last-run-completed", "no-failed-runs", "tables-reconciled", "conflicts-ran", "freshness"] {
        assert!(gate(&report, name).passed, "{name} should pass:\n{}", report.render());
    }
    assert!(!gate(&report, "dual-read").passed && gate(&report, "dual-read").reason.contains("--dual-read-signed-off"), "no sign-off given");
    assert!(!report.go, "one failing gate makes it NO-GO");
    assert!(report.render().starts_with("cutover: NO-GO"), "{}", report.render());

    // With the operator's sign-off of the dual-read window, every gate passes: GO.
    let with_dual = GateOptions { dual_read_signed_off: Some("ops on-call, 7 nights, counts and checksums equal".into()), ..Default::default() };
    let report = check(&config, &with_dual).await.unwrap();
    assert!(report.go, "{}", report.render());
    assert!(gate(&report, "dual-read").reason.contains("7 nights"), "the sign-off is recorded in the report");

    // A running conflict job blocks cutover.
    pg.batch_execute("UPDATE conflict.settings SET \"InProgressFlag\" = 1").await.unwrap();
    let report = check(&config, &with_dual).await.unwrap();
    assert!(!gate(&report, "conflicts-ran").passed && gate(&report, "conflicts-ran").reason.contains("running now"), "{}", report.render());
    pg.batch_execute("UPDATE conflict.settings SET \"InProgressFlag\" = 2, \"LastLoadDate\" = \"LastLoadDate\" - interval '3 days'").await.unwrap();
    let report = check(&config, &with_dual).await.unwrap();
    assert!(!gate(&report, "conflicts-ran").passed, "{}", report.render());
    pg.batch_execute("UPDATE conflict.settings SET \"LastLoadDate\" = \"LastLoadDate\" + interval '3 days'").await.unwrap();

    // A table whose least recently verified slice is older than coverage_hours fails freshness.
    pg.batch_execute("UPDATE migration_status.reconcile_coverage SET verified_since = now() - interval '9 days' WHERE target = 'public.orders'").await.unwrap();
    let report = check(&config, &with_dual).await.unwrap();
    let fresh = gate(&report, "freshness");
    assert!(!fresh.passed && fresh.reason.contains("public.orders oldest slice verified 216.0 h ago"), "{}", report.render());
    pg.batch_execute("UPDATE migration_status.reconcile_coverage SET verified_since = now() WHERE target = 'public.orders'").await.unwrap();

    // A mismatching reconcile result of the table is named.
    pg.batch_execute("UPDATE migration_status.reconcile_results SET status = 'mismatch' WHERE target = 'public.orders'").await.unwrap();
    let report = check(&config, &with_dual).await.unwrap();
    let tables = gate(&report, "tables-reconciled");
    assert!(!tables.passed && tables.reason.contains("public.orders: last reconcile 'mismatch'"), "{}", report.render());
    pg.batch_execute("UPDATE migration_status.reconcile_results SET status = 'ok' WHERE target = 'public.orders'").await.unwrap();

    // A failed run of this configuration within the window is named, and it is the newest run.
    let hash = config.config_hash();
    pg.execute(
        "INSERT INTO migration_status.migration_runs (status, config_hash, execution_hash, error_message) VALUES ('failed', $1, 'x', 'boom')",
        &[&hash],
    )
    .await
    .unwrap();
    let report = check(&config, &with_dual).await.unwrap();
    assert!(!gate(&report, "no-failed-runs").passed && gate(&report, "no-failed-runs").reason.contains("(failed)"), "{}", report.render());
    assert!(!gate(&report, "last-run-completed").passed, "{}", report.render());
    assert!(!report.go);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["go"], serde_json::json!(false));
    assert_eq!(json["gates"].as_array().unwrap().len(), 6);
}
