//! The cutover gate (`thaw_engine::cutover::check`, docs/reconcile.md §9)
//! against a real PostgreSQL: after a real sync run that reconciled clean and
//! a finished conflict job, every gate but `dual-read` passes; each gate then
//! fails for its own reason (a failed run, a mismatching table, a running or
//! stale conflict job, a missing dual-read) and names it. Also the backout's
//! export of what users wrote since cutover (`ops/backout-user-writes.sql`).
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

/// Pairs (VisitID, ConVisitID) of two conflicts, both orientations.
const V: [&str; 4] = ["0a000000-0000-4000-8000-000000000001", "0a000000-0000-4000-8000-000000000002", "0a000000-0000-4000-8000-000000000003", "0a000000-0000-4000-8000-000000000004"];

#[tokio::test]
async fn dual_read_job_records_clean_and_differing_comparisons_and_the_gate_follows_them() {
    use thaw_engine::reconcile::dual_read::{self, DualReadOptions};
    let sf_db = unique("SFDUAL").to_uppercase();
    let pg_db = unique("dual");
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    // The legacy tables in Snowflake (the emulator's dataset has none: seeded here),
    // with their own identifiers: CONFLICTID and ID are not compared.
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"CONFLICTS\" (\"CONFLICTID\" NUMBER(38,0), \"StatusFlag\" VARCHAR(5))")).await.unwrap();
    sf.execute(&format!(
        "CREATE TABLE \"{sf_db}\".\"S\".\"CONFLICTVISITMAPS\" (\"ID\" NUMBER(38,0), \"CONFLICTID\" NUMBER(38,0), \"VisitID\" VARCHAR(36), \"ConVisitID\" VARCHAR(36), \
         \"SSN\" VARCHAR(20), \"VisitDate\" DATE, \"SameSchTimeFlag\" VARCHAR(1), \"DistanceFlag\" VARCHAR(1))"
    ))
    .await
    .unwrap();
    sf.execute(&format!("INSERT INTO \"{sf_db}\".\"S\".\"CONFLICTS\" VALUES (1, 'U'), (2, 'R')")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"CONFLICTVISITMAPS\" VALUES (1, 1, '{a}', '{b}', '111223333', '2026-01-05', 'Y', 'N'), (2, 1, '{b}', '{a}', '111223333', '2026-01-05', 'Y', 'N'), \
         (3, 2, '{c}', '{d}', '444556666', '2026-01-06', 'N', 'Y'), (4, 2, '{d}', '{c}', '444556666', '2026-01-06', 'N', 'Y')",
        a = V[0], b = V[1], c = V[2], d = V[3]
    ))
    .await
    .unwrap();
    pg.batch_execute(&format!(
        "INSERT INTO conflict.conflicts (\"CONFLICTID\", \"StatusFlag\") VALUES (101, 'U'), (102, 'R'); \
         INSERT INTO conflict.conflictvisitmaps (\"CONFLICTID\", \"VisitID\", \"ConVisitID\", \"SSN\", \"VisitDate\", \"SameSchTimeFlag\", \"DistanceFlag\") VALUES \
         (101, '{a}', '{b}', '111223333', '2026-01-05', 'Y', 'N'), (101, '{b}', '{a}', '111223333', '2026-01-05', 'Y', 'N'), \
         (102, '{c}', '{d}', '444556666', '2026-01-06', 'N', 'Y'), (102, '{d}', '{c}', '444556666', '2026-01-06', 'N', 'Y')",
        a = V[0], b = V[1], c = V[2], d = V[3]
    ))
    .await
    .unwrap();
    let extra = format!(r#""conflicts": {{"database": "{pg_db}"}},"#);
    let config = config(&config_text(&sf_db, &pg_db, &[r#"{"source": "X", "target": "x"}"#], &extra));
    let options = DualReadOptions { sf_database: sf_db.clone(), sf_schema: "S".into() };

    // Nothing recorded yet: the gate says so.
    let report = check(&config, &GateOptions::default()).await.unwrap();
    assert!(!gate(&report, "dual-read").passed && gate(&report, "dual-read").reason.contains("no dual-read result"), "{}", report.render());

    // Identical: ok and recorded; one clean night is not a window of seven (found when tried as a
    // new user would: the gate said GO after a single clean comparison, ops/cutover.md §1 asks for
    // --dual-read-days clean days).
    let clean = dual_read::run(&config, &options).await.unwrap();
    assert_eq!((clean.status.as_str(), clean.source_pairs, clean.target_pairs, clean.source_conflicts, clean.target_conflicts), ("ok", 4, 4, 2, 2), "{}", clean.render());
    assert_eq!(clean.columns, ["VisitID", "ConVisitID", "SSN", "VisitDate", "SameSchTimeFlag", "DistanceFlag", "ConflictStatusFlag"]);
    assert_eq!(clean.source_checksum, clean.target_checksum);
    let report = check(&config, &GateOptions::default()).await.unwrap();
    let day = |back: u64| (chrono::Utc::now().date_naive() - chrono::Days::new(back)).to_string();
    let dual = gate(&report, "dual-read");
    let window = format!("{}..{} (UTC)", day(6), day(0));
    assert!(!dual.passed && dual.reason.contains(&format!("clean dual-read comparisons on 1 of the 7 days {window}, none on {}", day(6))), "{}", report.render());
    let one_day = GateOptions { dual_read_days: 1, ..Default::default() };
    assert!(gate(&check(&config, &one_day).await.unwrap(), "dual-read").passed, "--dual-read-days 1: one clean day is enough");
    // Clean comparisons at noon UTC of the days before, one day missing (3 days ago): still NO-GO, naming it.
    let noon = |days: &str| format!("(date_trunc('day', now() AT TIME ZONE 'UTC') - make_interval(days => {days}) + interval '12 hours') AT TIME ZONE 'UTC'");
    let clean_row = "'ok', 4, 4, 2, 2";
    let columns = "checked_at, status, source_pairs, target_pairs, source_conflicts, target_conflicts";
    pg.batch_execute(&format!("INSERT INTO migration_status.dual_read_results ({columns}) SELECT {}, {clean_row} FROM generate_series(1, 6) AS d WHERE d <> 3", noon("d")))
        .await
        .unwrap();
    let report = check(&config, &GateOptions::default()).await.unwrap();
    let dual = gate(&report, "dual-read");
    assert!(!dual.passed && dual.reason.contains(&format!("on 6 of the 7 days {window}, none on {}", day(3))), "{}", report.render());
    // An empty comparison (nothing on either side: the wrong legacy schema, or `thaw conflicts`
    // never run) is identical but proves nothing: its day is named, still NO-GO (found when
    // reviewing the gate: 0 pairs against 0 pairs counted as a clean day).
    pg.batch_execute(&format!("INSERT INTO migration_status.dual_read_results ({columns}) VALUES ({}, 'ok', 0, 0, 0, 0)", noon("3"))).await.unwrap();
    let report = check(&config, &GateOptions::default()).await.unwrap();
    let dual = gate(&report, "dual-read");
    assert!(
        !dual.passed && dual.reason.contains(&format!("on 6 of the 7 days {window}, only empty ones on {} (no pair and no conflict on either side", day(3))),
        "{}",
        report.render()
    );
    // Seven clean days: the gate passes.
    pg.batch_execute(&format!("INSERT INTO migration_status.dual_read_results ({columns}) VALUES ({}, {clean_row})", noon("3"))).await.unwrap();
    let report = check(&config, &GateOptions::default()).await.unwrap();
    assert!(gate(&report, "dual-read").passed && gate(&report, "dual-read").reason.contains(&format!("each of the 7 days {window}, 8 in all")), "{}", report.render());

    // A pair's flag and a conflict's status differ: named by pair and column, recorded, NO-GO.
    pg.batch_execute(&format!(
        "UPDATE conflict.conflictvisitmaps SET \"DistanceFlag\" = 'Y' WHERE \"VisitID\" = '{}'; UPDATE conflict.conflicts SET \"StatusFlag\" = 'U' WHERE \"CONFLICTID\" = 102",
        V[0]
    ))
    .await
    .unwrap();
    let differs = dual_read::run(&config, &options).await.unwrap();
    assert_eq!(differs.status, "mismatch", "{}", differs.render());
    let d = differs.diff.as_ref().unwrap();
    let mut changed: Vec<(String, Vec<String>)> = d.changed_rows.iter().map(|c| (c.key.replace('\u{1f}', " | "), c.columns.iter().map(|x| x.column.clone()).collect())).collect();
    changed.sort();
    assert_eq!(
        changed,
        [
            (format!("{} | {}", V[0], V[1]), vec!["DistanceFlag".to_string()]),
            (format!("{} | {}", V[2], V[3]), vec!["ConflictStatusFlag".to_string()]),
            (format!("{} | {}", V[3], V[2]), vec!["ConflictStatusFlag".to_string()]),
        ]
    );
    assert!(differs.render().contains(&format!("pair differs: {} | {} — DistanceFlag: Some(\"N\") → Some(\"Y\")", V[0], V[1])), "{}", differs.render());
    let stored: Vec<String> = pg
        .query("SELECT status FROM migration_status.dual_read_results WHERE checked_at > now() - interval '1 hour' ORDER BY checked_at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(stored, ["ok", "mismatch"]);
    let report = check(&config, &GateOptions::default()).await.unwrap();
    let dual = gate(&report, "dual-read");
    assert!(!dual.passed && dual.reason.contains("3 differing"), "{}", report.render());
    assert!(!report.go);
    // The operator's sign-off stays an explicit, recorded override.
    let signed = GateOptions { dual_read_signed_off: Some("data owner: status change was a manual fix".into()), ..Default::default() };
    let report = check(&config, &signed).await.unwrap();
    assert!(gate(&report, "dual-read").passed && gate(&report, "dual-read").reason.contains("overridden"), "{}", report.render());

    // The state machine's dual-read step (the reconcile Lambda's operation): the same comparison,
    // recorded; a difference is the response's status, not an error (docs/reconcile.md §10).
    let request = thaw_engine::contract::DualReadRequest {
        operation: thaw_engine::contract::DualReadOperation::DualRead,
        run_id: None,
        snowflake_database: Some(sf_db.clone()),
        snowflake_schema: Some("S".into()),
    };
    let response = thaw_engine::steps::dual_read(&config, &request).await.unwrap();
    let counts = (response.source_conflicts, response.target_conflicts, response.source_pairs, response.target_pairs);
    assert_eq!((response.status.as_str(), counts, response.missing_pairs, response.extra_pairs, response.changed_pairs), ("mismatch", (2, 2, 4, 4), 0, 0, 3));
    assert_eq!(response.error, None);
    let newest: (String, i64) = pg
        .query_one("SELECT status, changed_pairs FROM migration_status.dual_read_results ORDER BY checked_at DESC LIMIT 1", &[])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(newest, ("mismatch".to_string(), 3));
    // Where the legacy tables are not: status error with the reason, recorded too.
    let missing = thaw_engine::contract::DualReadRequest { snowflake_schema: Some("NO_SUCH_SCHEMA".into()), ..request.clone() };
    let response = thaw_engine::steps::dual_read(&config, &missing).await.unwrap();
    assert_eq!(response.status, "error");
    assert!(response.error.as_deref().unwrap_or_default().contains("does not exist"), "{response:?}");
    let stored: i64 = pg.query_one("SELECT count(*) FROM migration_status.dual_read_results WHERE status = 'error'", &[]).await.unwrap().get(0);
    assert_eq!(stored, 1);
    // The gate names failed comparisons as failed, not as differences, and counts them all.
    let report = check(&config, &GateOptions::default()).await.unwrap();
    let dual = gate(&report, "dual-read");
    assert!(!dual.passed && dual.reason.starts_with("3 dual-read result(s) of the last 7 days differed or failed: "), "{}", report.render());
    assert!(dual.reason.contains(" error: ") && dual.reason.contains("does not exist"), "{}", report.render());

    // Found when tried as a new user would: the comparison read the schema `conflict` whatever
    // conflicts.conflict_schema said. Another schema: compared there; none there: named.
    pg.batch_execute("ALTER SCHEMA conflict RENAME TO conflict_app").await.unwrap();
    let response = thaw_engine::steps::dual_read(&config, &request).await.unwrap();
    assert_eq!(response.status, "error");
    assert!(
        response.error.as_deref().unwrap_or_default().contains(&format!("conflict.conflictvisitmaps or conflict.conflicts does not exist in PostgreSQL database '{pg_db}'")),
        "{response:?}"
    );
    let extra = format!(r#""conflicts": {{"database": "{pg_db}", "conflict_schema": "conflict_app"}},"#);
    let in_schema = thaw_test_support::config(&config_text(&sf_db, &pg_db, &[r#"{"source": "X", "target": "x"}"#], &extra));
    let response = thaw_engine::steps::dual_read(&in_schema, &request).await.unwrap();
    assert_eq!((response.status.as_str(), response.target_pairs, response.changed_pairs), ("mismatch", 4, 3), "{response:?}");
}

/// Found when tried as a new user would: `thaw cutover check` against a
/// status database nothing had run against, or with a conflict database the
/// conflict job had never run on, stopped with "relation ... does not exist"
/// (exit 2) instead of answering NO-GO with the reason.
#[tokio::test]
async fn cutover_check_on_a_fresh_database_or_a_conflict_database_never_run_is_no_go_naming_why() {
    let status_db = unique("cutfresh");
    let conflict_db = unique("cutnoconf");
    let admin = pg("postgres").await;
    for db in [&status_db, &conflict_db] {
        admin.batch_execute(&format!("CREATE DATABASE \"{db}\"")).await.unwrap();
    }
    let extra = format!(r#""conflicts": {{"database": "{conflict_db}"}},"#);
    let config = config(&config_text("NOSF", &status_db, &[r#"{"source": "ORDERS", "target": "orders", "uniqueness_columns": ["Code"]}"#], &extra));

    let report = check(&config, &GateOptions::default()).await.expect("a verdict, not an error");
    assert!(!report.go);
    let names: Vec<&str> = report.gates.iter().map(|g| g.name).collect();
    assert_eq!(names, ["last-run-completed", "no-failed-runs", "tables-reconciled", "conflicts-ran", "freshness", "dual-read"]);
    for g in &report.gates {
        assert!(!g.passed && g.reason.contains(&format!("the status database '{status_db}' holds no thaw status yet")) && g.reason.contains("thaw migrate"), "{}", report.render());
    }

    // A status database that does not exist at all: the same verdict naming postgres.status_database,
    // not an error (exit 2) telling to set target_pg_database.
    let mut absent = config.clone();
    absent.postgres.status_database = Some("no_such_status_db".into());
    let report = check(&absent, &GateOptions::default()).await.expect("a verdict, not an error");
    assert!(!report.go && report.gates.len() == 6, "{}", report.render());
    for g in &report.gates {
        assert!(!g.passed && g.reason.contains("the status database 'no_such_status_db' (postgres.status_database) does not exist"), "{}", report.render());
    }

    // Migrated (as `thaw run` does first), nothing run yet; the conflict database still bare.
    let mut status = pg(&status_db).await;
    thaw_engine::migrations::migrate(&mut status).await.unwrap();
    let report = check(&config, &GateOptions::default()).await.expect("a verdict, not an error");
    assert!(!report.go);
    assert!(gate(&report, "last-run-completed").reason.contains("no sync run of this configuration is recorded"), "{}", report.render());
    assert!(gate(&report, "tables-reconciled").reason.contains("public.orders: never reconciled"), "{}", report.render());
    let conflicts = gate(&report, "conflicts-ran");
    assert!(
        !conflicts.passed && conflicts.reason.contains(&format!("database '{conflict_db}' has no conflict.settings table; run `thaw conflicts`")),
        "{}",
        report.render()
    );

    // A conflict database that does not exist at all: a verdict naming conflicts.database, not an error about target_pg_database.
    let mut missing = config.clone();
    missing.conflicts.as_mut().unwrap().database = "no_such_conflict_db".into();
    let report = check(&missing, &GateOptions::default()).await.expect("a verdict, not an error");
    let conflicts = gate(&report, "conflicts-ran");
    assert!(!conflicts.passed && conflicts.reason.contains("database 'no_such_conflict_db' (conflicts.database) does not exist"), "{}", report.render());
}

/// The statements of `ops/backout-user-writes.sql` with the psql variable
/// `:'cutover'` bound to `$1` (the psql meta-commands and comments dropped),
/// each row as JSON.
async fn backout_export(pg: &tokio_postgres::Client, cutover: chrono::NaiveDateTime) -> Vec<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(repo_root().join("ops/backout-user-writes.sql")).unwrap();
    let sql: String = text.lines().filter(|l| !l.starts_with("--") && !l.starts_with('\\')).collect::<Vec<_>>().join("\n");
    let mut exports = Vec::new();
    for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let query = format!("SELECT row_to_json(q)::text FROM ({}) AS q", statement.replace(":'cutover'", "$1"));
        let rows = pg.query(&query, &[&cutover]).await.unwrap_or_else(|e| panic!("{query}: {e:?}"));
        exports.push(rows.iter().map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap()).collect());
    }
    exports
}

/// Found when tried as a new user would: ops/backout.md step 5 selected the
/// rows users wrote since cutover with `"UpdatedDate" >= <cutover time>` on
/// `conflict.conflicts`, which has no such column, and said nothing of how
/// to find the rows in Snowflake, whose CONFLICTIDs are not PostgreSQL's.
/// `ops/backout-user-writes.sql` exports them keyed by visits.
#[tokio::test]
async fn backout_export_of_user_writes_selects_rows_written_since_cutover_keyed_by_visits() {
    let pg = fresh_pg(&unique("backout")).await;
    let v = |i: u32| format!("0b000000-0000-4000-8000-{i:012}");
    pg.batch_execute(&format!(
        "INSERT INTO conflict.conflicts (\"CONFLICTID\", \"StatusFlag\", \"NoResponseFlag\", \"NoResponseDate\") VALUES \
           (101, 'W', 'Y', localtimestamp), (102, 'U', NULL, NULL), (103, 'R', NULL, NULL), (104, 'U', NULL, NULL); \
         UPDATE conflict.conflicts SET \"FlagForReview\" = 'Y', \"FlagForReviewDate\" = localtimestamp WHERE \"CONFLICTID\" = 104; \
         INSERT INTO conflict.conflictvisitmaps (\"CONFLICTID\", \"VisitID\", \"ConVisitID\", \"UpdatedDate\", \"ConNoResponseFlag\", \"StatusFlag\") VALUES \
           (101, '{v1}', '{v2}', localtimestamp, 'Y', 'W'), \
           (101, '{v1}', '{v3}', localtimestamp - interval '3 days', NULL, 'U'), \
           (102, '{v4}', '{v5}', localtimestamp - interval '3 days', NULL, 'U'), \
           (103, '{v6}', '{v7}', localtimestamp, NULL, 'R'), \
           (104, '{v8}', '{v9}', localtimestamp - interval '3 days', NULL, 'U')",
        v1 = v(1), v2 = v(2), v3 = v(3), v4 = v(4), v5 = v(5), v6 = v(6), v7 = v(7), v8 = v(8), v9 = v(9)
    ))
    .await
    .unwrap();
    // Cutover an hour ago, on the clock the rows were written with.
    let cutover: chrono::NaiveDateTime = pg.query_one("SELECT localtimestamp - interval '1 hour'", &[]).await.unwrap().get(0);
    let exports = backout_export(&pg, cutover).await;
    assert_eq!(exports.len(), 2, "two exports: pairs and conflicts");
    let pairs: Vec<(String, String, Option<String>)> = exports[0]
        .iter()
        .map(|r| (r["VisitID"].as_str().unwrap().into(), r["ConVisitID"].as_str().unwrap().into(), r["ConNoResponseFlag"].as_str().map(String::from)))
        .collect();
    assert_eq!(pairs, [(v(1), v(2), Some("Y".into())), (v(6), v(7), None)], "exactly the pairs written since cutover, keyed by visit pair");
    assert!(exports[0].iter().all(|r| r.get("ID").is_none() && r.get("CONFLICTID").is_none()), "never keyed by generated ids");
    let conflicts: Vec<(String, String)> =
        exports[1].iter().map(|r| (r["PrimaryVisitID"].as_str().unwrap().into(), r["StatusFlag"].as_str().unwrap().into())).collect();
    assert_eq!(conflicts, [(v(1), "W".into()), (v(6), "R".into()), (v(8), "U".into())], "written conflicts by their primary visit: own dates or a written pair");
    assert_eq!(exports[1][0]["NoResponseFlag"], "Y");
    assert_eq!(exports[1][2]["FlagForReview"], "Y");
}

/// Found when tried as a new user would: the gate took "runs of this
/// configuration" to be runs with the same `config_hash`, which covers the
/// database user and the Snowflake account, user, role and warehouse. The
/// nightly job runs with its own (the Lambda's secrets replace them), the
/// operator with theirs: `thaw cutover check` found no run at all and stayed
/// NO-GO. Runs are now those of the configuration's sources.
#[tokio::test]
async fn cutover_check_finds_the_nightly_runs_when_the_operator_connects_with_other_credentials() {
    let (sf_db, pg_db, pg, _sf) = orders("cutop", 80).await;
    let extra = format!(r#""conflicts": {{"database": "{pg_db}"}},"#);
    let nightly = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], &extra)));
    runner::run(nightly.clone(), RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }, Arc::new(Quiet)).await.expect("a clean sync run");
    pg.batch_execute("INSERT INTO conflict.settings (\"LastLoadDate\", \"InProgressFlag\") VALUES ((now() - interval '1 hour') AT TIME ZONE 'America/New_York', 2)").await.unwrap();

    // The operator's copy of the configuration: their Snowflake role and warehouse, their sslmode.
    let mut operator = (*nightly).clone();
    operator.snowflake.role = Some("CUTOVER_OPERATOR".into());
    operator.snowflake.warehouse = Some("OPS_WH".into());
    operator.postgres.sslmode = Some("disable".into());
    assert_ne!(operator.config_hash(), nightly.config_hash());
    let signed = GateOptions { dual_read_signed_off: Some("data owner, 7 nights".into()), ..Default::default() };
    let report = check(&operator, &signed).await.unwrap();
    assert!(report.go, "{}", report.render());
    assert!(gate(&report, "last-run-completed").reason.contains("completed"), "{}", report.render());

    // A failed nightly run of the same source is seen too; one of another source is not.
    pg.batch_execute(
        "INSERT INTO migration_status.migration_runs (status, config_hash, execution_hash, error_message, metadata) VALUES \
           ('failed', 'lambda-hash', 'x', 'boom', '{\"sources\": [\"src\"]}'), \
           ('failed', 'other-hash', 'y', 'elsewhere', '{\"sources\": [\"billing\"]}')",
    )
    .await
    .unwrap();
    let report = check(&operator, &signed).await.unwrap();
    let failed = gate(&report, "no-failed-runs");
    assert!(!failed.passed && failed.reason.starts_with("1 run(s) in the last 26 h did not succeed"), "{}", report.render());
    assert!(!gate(&report, "last-run-completed").passed, "the failed nightly run is the newest: {}", report.render());
}
