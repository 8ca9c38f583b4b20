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

/// Two small tables `T1`, `T2` (ID, VARIANT) in Snowflake and PostgreSQL.
async fn two_tables(sf: &thaw_engine::source::SnowflakeSource, db: &str, pg: &tokio_postgres::Client) {
    for t in ["T1", "T2"] {
        sf.execute(&format!("CREATE OR REPLACE TABLE \"{db}\".\"S\".\"{t}\" (\"ID\" NUMBER(38,0), \"DOC\" VARIANT, \"F\" FLOAT)")).await.unwrap();
        sf.execute(&format!(
            "INSERT INTO \"{db}\".\"S\".\"{t}\" SELECT SEQ4(), PARSE_JSON('{{\"b\": 1e-7, \"a\": ' || SEQ4() || '}}'), CASE WHEN SEQ4() = 0 THEN CAST('NaN' AS FLOAT) ELSE SEQ4() / 3.0 END \
             FROM TABLE(GENERATOR(ROWCOUNT => 300))"
        ))
        .await
        .unwrap();
        pg.batch_execute(&format!("CREATE TABLE public.{} (\"ID\" int8 PRIMARY KEY, \"DOC\" jsonb, \"F\" float8)", t.to_lowercase())).await.unwrap();
    }
}

#[tokio::test]
async fn a_table_that_cannot_be_reconciled_still_gets_a_summary_and_report_and_exit_1() {
    let sf_db = unique("SFRPT").to_uppercase();
    let pg_db = unique("rpt");
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    two_tables(&sf, &sf_db, &pg).await;
    let entry = |t: &str| format!(r#"{{"source": "{t}", "target": "{}", "uniqueness_columns": ["ID"]}}"#, t.to_lowercase());
    let text = config_text(&sf_db, &pg_db, &[&entry("T1"), &entry("T2")], "");
    let path = config_file(&text);
    let dir = reports_dir();
    let run_report = dir.join(format!("{}.json", unique("run")));
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts", "--report", run_report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run_report).unwrap()).unwrap();
    let run_id = report["plan"]["run_id"].as_str().unwrap().to_string();
    assert_eq!(report["reconcile"]["tables"][0]["status"], "ok", "NaN floats and VARIANT reconcile clean");

    // An extra target row whose JSON number no double holds: T1 cannot be canonicalised in PostgreSQL.
    pg.batch_execute("INSERT INTO public.t1 VALUES (1000000, '{\"a\": 1e400}', 1)").await.unwrap();
    let rec_report = dir.join(format!("{}.json", unique("rec")));
    let out = thaw!(&["reconcile", "--config", path.to_str().unwrap(), "--run-id", &run_id, "--report", rec_report.to_str().unwrap()]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("public.t1") && shown.contains("ERROR") && shown.contains("public.t2") && shown.contains("ok (300 rows)"), "{shown}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec_report).expect("the report is written")).unwrap();
    assert_eq!(written["summary"]["errors"], 1);
    assert_eq!(written["tables"][0]["summary"]["status"], "error");
    assert!(written["tables"][0]["summary"]["error"].as_str().unwrap().contains("reconciling T1"));
    assert_eq!(written["tables"][1]["summary"]["status"], "ok");

    // --json prints the same report; bisection options are taken, and checked.
    let out = thaw!(&["reconcile", "--config", path.to_str().unwrap(), "--run-id", &run_id, "--json", "--bisect-factor", "4", "--leaf-rows", "50"]);
    assert_eq!(out.status.code(), Some(1), "{}", thaw_test_support::text(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!((printed["summary"]["errors"].as_u64(), printed["tables"][1]["summary"]["status"].as_str()), (Some(1), Some("ok")));
    let out = thaw!(&["reconcile", "--config", path.to_str().unwrap(), "--run-id", &run_id, "--bisect-factor", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", thaw_test_support::text(&out));

    // `thaw run` as well: summary printed, report written, exit 1.
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts", "--report", run_report.to_str().unwrap()]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("1 error(s)"), "{shown}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run_report).unwrap()).unwrap();
    assert_eq!(report["reconcile"]["errors"], 1);
    assert_eq!(report["reconcile"]["tables"][1]["status"], "ok");
}

/// The run's status in `migration_runs`.
async fn run_status(pg: &tokio_postgres::Client, run_id: &str) -> (String, String) {
    let row = pg
        .query_one("SELECT status, coalesce(error_message, '') FROM migration_status.migration_runs WHERE run_id = $1::text::uuid", &[&run_id])
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// The directory the tests' report files go to (created).
fn reports_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join("thaw-test-reports");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `thaw run --no-conflicts` of the config file at `path`, which must exit 0;
/// the run id from its report.
fn clean_run(path: &str) -> String {
    let run_report = reports_dir().join(format!("{}.json", unique("run")));
    let out = thaw!(&["run", "--config", path, "--no-conflicts", "--report", run_report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run_report).unwrap()).unwrap();
    report["plan"]["run_id"].as_str().unwrap().to_string()
}

/// Found when tried as a new user would: `thaw reconcile` found differences
/// (exit 3) but the run stayed `completed` in `migration_runs` and in
/// `thaw status`; and an unknown `--run-id` printed "0 table(s)" and exited 0.
#[tokio::test]
async fn thaw_reconcile_records_its_outcome_on_the_run_and_refuses_an_unknown_run() {
    let (sf_db, pg_db, pg, _sf) = orders("recrun", 60).await;
    let text = config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "");
    let path = config_file(&text);
    let path = path.to_str().unwrap();
    let dir = reports_dir();
    let run_id = clean_run(path);
    assert_eq!(run_status(&pg, &run_id).await.0, "completed");
    let reconcile = |extra: &[&str]| {
        let mut args = vec!["reconcile", "--config", path, "--run-id", &run_id];
        args.extend_from_slice(extra);
        thaw!(&args)
    };

    // A changed row: exit 3, and the run says `mismatch`, naming the table.
    let note: Option<String> = pg.query_one("SELECT \"Note\" FROM public.orders WHERE \"Id\" = 2", &[]).await.unwrap().get(0);
    pg.execute("UPDATE public.orders SET \"Note\" = 'tampered' WHERE \"Id\" = 2", &[]).await.unwrap();
    let out = reconcile(&[]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(shown.contains(&format!("run {run_id}: 'mismatch' in migration_status.migration_runs")), "{shown}");
    assert!(!shown.contains("every row verified") && shown.contains("; found different now: public.orders"), "{shown}");
    let (status, error) = run_status(&pg, &run_id).await;
    assert_eq!(status, "mismatch");
    assert!(error.contains("public.orders (60 rows in Snowflake, 60 in PostgreSQL)"), "{error}");
    let out = thaw!(&["status", "--config", path, "--run-id", &run_id, "--json"]);
    let status_json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(status_json["runs"][0]["status"], "mismatch", "{status_json}");

    // A table that cannot be checked: exit 2, the run is `failed` (not verified) and says why;
    // not `mismatch` (a data verdict), and not resumed by the next `thaw run` (its copy finished).
    pg.batch_execute("ALTER TABLE public.orders RENAME TO orders_away").await.unwrap();
    let out = reconcile(&["--json"]);
    assert_eq!(out.status.code(), Some(2), "{}", thaw_test_support::text(&out));
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(printed["run_status"], "failed");
    let (status, error) = run_status(&pg, &run_id).await;
    assert_eq!(status, "failed");
    assert!(error.starts_with("reconciliation could not check 1 table(s) (thaw reconcile): public.orders"), "{error}");
    // A run the nightly reconcile step recorded `failed` for the same reason is taken up too.
    pg.execute("UPDATE migration_status.migration_runs SET status = 'failed', error_message = 'reconciliation could not check 1 table(s): public.orders: gone' WHERE run_id = $1::text::uuid", &[&run_id])
        .await
        .unwrap();

    // Repaired: a clean reconcile makes the run `completed` again, exit 0.
    pg.batch_execute("ALTER TABLE public.orders_away RENAME TO orders").await.unwrap();
    pg.execute("UPDATE public.orders SET \"Note\" = $1 WHERE \"Id\" = 2", &[&note]).await.unwrap();
    let out = reconcile(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    assert_eq!(run_status(&pg, &run_id).await, ("completed".to_string(), String::new()));

    // A run whose copy did not finish keeps its status: a clean reconcile cannot make missing chunks good.
    pg.execute("UPDATE migration_status.migration_runs SET status = 'partial' WHERE run_id = $1::text::uuid", &[&run_id]).await.unwrap();
    let out = reconcile(&[]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    assert_eq!(run_status(&pg, &run_id).await.0, "partial");

    // An unknown run: exit 2 naming it, and the report file says so.
    let unknown = "00000000-0000-4000-8000-000000000001";
    let rec_report = dir.join(format!("{}.json", unique("rec")));
    let out = thaw!(&["reconcile", "--config", path, "--run-id", unknown, "--report", rec_report.to_str().unwrap()]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains(&format!("run {unknown} does not exist in migration_status.migration_runs")), "{shown}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec_report).expect("the report is written")).unwrap();
    assert_eq!((written["status"].as_str(), written["error"]["kind"].as_str()), (Some("failed"), Some("ConfigInvalid")), "{written}");
}

/// Found when tried as a new user would: with a table that could not be
/// checked, or one never verified whole (its first verification differed),
/// the report still said "reconcile freshness: every row verified within
/// the last 0.0 h", and the freshness in the summary (the Lambda's
/// `ReconcileFreshnessHours` metric) left the failing table out.
#[tokio::test]
async fn reconcile_freshness_does_not_claim_every_row_verified_when_a_table_failed_or_was_never_verified_whole() {
    let (sf_db, pg_db, pg, _sf) = orders("recfresh", 40).await;
    let text = config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "");
    let config = Arc::new(config(&text));
    let report = runner::run(config.clone(), RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }, Arc::new(Quiet)).await.unwrap();
    report.outcome().expect("clean first run");
    let path = config_file(&text);
    let (path, run_id) = (path.to_str().unwrap(), report.plan.run_id.to_string());
    // Verified whole two days ago (as if by an earlier night).
    pg.batch_execute(
        "UPDATE migration_status.reconcile_coverage SET verified_since = now() - interval '48 hours', \
           verified_ranges = (SELECT jsonb_agg(jsonb_set(r, '{at}', to_jsonb(now() - interval '48 hours'))) FROM jsonb_array_elements(verified_ranges) AS r)",
    )
    .await
    .unwrap();

    // The table cannot be checked: no "every row" claim; its stored freshness (48 h) is the summary's.
    pg.batch_execute("ALTER TABLE public.orders RENAME TO orders_away").await.unwrap();
    let out = thaw!(&["reconcile", "--config", path, "--run-id", &run_id]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(!shown.contains("every row verified"), "{shown}");
    assert!(shown.contains("reconcile freshness: the tables verified whole were last verified clean within the last 48.0 h; not checked (error below): public.orders"), "{shown}");
    let out = thaw!(&["reconcile", "--config", path, "--run-id", &run_id, "--json"]);
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let hours = printed["summary"]["freshness_hours"].as_f64().expect("the failing table's stored freshness counts");
    assert!((47.9..48.1).contains(&hours), "{printed}");

    // Never verified whole, and its first verification differs: nothing is claimed.
    pg.batch_execute("ALTER TABLE public.orders_away RENAME TO orders; DELETE FROM migration_status.reconcile_coverage; UPDATE public.orders SET \"Note\" = 'tampered' WHERE \"Id\" = 3")
        .await
        .unwrap();
    let out = thaw!(&["reconcile", "--config", path, "--run-id", &run_id]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(3), "{shown}");
    assert!(shown.contains("reconcile freshness: no table verified whole yet; not verified whole yet: public.orders"), "{shown}");
}

/// Found when tried as a new user would: `thaw dual-read` pointed at a
/// Snowflake schema without the legacy conflict tables said
/// "error: Internal: ..." (the kind thaw uses for its own bugs) and exited 1;
/// a missing table is bad input: exit 2, named, and recorded `error`.
#[tokio::test]
async fn dual_read_against_missing_legacy_tables_is_bad_input_with_exit_2() {
    let sf_db = unique("SFDRX").to_uppercase();
    let pg_db = unique("drx");
    let _sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let extra = format!(r#""conflicts": {{"database": "{pg_db}"}},"#);
    let path = config_file(&config_text(&sf_db, &pg_db, &[r#"{"source": "X", "target": "x"}"#], &extra));
    let out = thaw!(&["dual-read", "--config", path.to_str().unwrap(), "--sf-database", &sf_db, "--sf-schema", "S"]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains(&format!("{sf_db}.S.CONFLICTVISITMAPS or {sf_db}.S.CONFLICTS does not exist in Snowflake")) && !shown.contains("Internal"), "{shown}");
    // One kind per line, and the flags that fix it (the line used to read
    // "error: SchemaMismatch: … could not be made: SchemaMismatch: …").
    let line = shown.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    assert_eq!(line.matches("SchemaMismatch").count(), 1, "{line}");
    assert!(line.contains(&format!("looked in {sf_db}.S: give --sf-database and --sf-schema")), "{line}");
    let stored: String = pg.query_one("SELECT status FROM migration_status.dual_read_results", &[]).await.unwrap().get(0);
    assert_eq!(stored, "error");
}

/// Found when tried as a new user would: `thaw reconcile` ran while a
/// `thaw run` was writing the same table (no run lock), so it compared a
/// half-copied table, recorded the run `mismatch` and, with
/// `propagate_deletes`, could delete in a table being loaded. It now takes
/// the run lock of the run's tables, like `thaw run` (exit 1 naming the
/// holder), and releases it on every path.
#[tokio::test]
async fn thaw_reconcile_refuses_while_a_run_writes_its_tables_and_releases_its_lock() {
    let (sf_db, pg_db, pg, _sf) = orders("reclock", 30).await;
    let text = config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "");
    let config = Arc::new(config(&text));
    let report = runner::run(config.clone(), RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }, Arc::new(Quiet)).await.unwrap();
    report.outcome().expect("clean first run");
    let path = config_file(&text);
    let run_id = report.plan.run_id.to_string();

    // Another session holds the table's run lock, as a running `thaw run` does.
    let holder = thaw_test_support::pg(&pg_db).await;
    let key = thaw_engine::sync::lock::table_key(&pg_db, "public", "orders");
    holder.execute("SELECT pg_advisory_lock($1)", &[&key]).await.unwrap();
    let out = thaw!(&["reconcile", "--config", path.to_str().unwrap(), "--run-id", &run_id]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    assert!(shown.contains("Locked") && shown.contains(&format!("another run is writing public.orders in database {pg_db}")), "{shown}");
    let status: String = pg.query_one("SELECT status FROM migration_status.migration_runs WHERE run_id = $1::text::uuid", &[&run_id]).await.unwrap().get(0);
    assert_eq!(status, "completed", "nothing was recorded");

    // Released: reconcile runs, and leaves no lock behind (a run can start right after).
    holder.execute("SELECT pg_advisory_unlock($1)", &[&key]).await.unwrap();
    let out = thaw!(&["reconcile", "--config", path.to_str().unwrap(), "--run-id", &run_id]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    let free: bool = holder.query_one("SELECT pg_try_advisory_lock($1)", &[&key]).await.unwrap().get(0);
    assert!(free, "thaw reconcile released the run lock");
}

/// Found in session 12 (issue 7): an on-demand `thaw reconcile` whose
/// Snowflake login was refused recorded the run `mismatch` — a data
/// verdict for a dependency error. It is `failed` with the login error
/// (exit 2: credentials are bad input; never 3), the report says so, the
/// finished run is not resumed by the next `thaw run`, and a reconcile with
/// the right password makes it `completed` again.
#[tokio::test]
async fn a_snowflake_login_refused_on_demand_is_a_failed_reconcile_never_a_mismatch() {
    let (sf_db, pg_db, pg, _sf) = orders("reclogin", 40).await;
    let text = config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "");
    let path = config_file(&text);
    let path = path.to_str().unwrap();
    let dir = reports_dir();
    let run_id = clean_run(path);

    let wrong = config_file(&text.replace("${THAW_SF_PASSWORD}", "not-the-password"));
    let rec_report = dir.join(format!("{}.json", unique("rec")));
    let out = thaw!(&["reconcile", "--config", wrong.to_str().unwrap(), "--run-id", &run_id, "--report", rec_report.to_str().unwrap()]);
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(2), "a refused login is bad input (credentials), never the mismatch exit 3:\n{shown}");
    assert!(shown.contains("AuthFailed") && !shown.contains("ReconcileMismatch"), "{shown}");
    assert!(shown.contains(&format!("run {run_id}: 'failed' in migration_status.migration_runs")), "{shown}");
    let (status, error) = run_status(&pg, &run_id).await;
    assert_eq!(status, "failed", "{error}");
    assert!(error.starts_with("reconciliation could not check 1 table(s) (thaw reconcile): public.orders") && error.contains("AuthFailed"), "{error}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&rec_report).expect("the report is written")).unwrap();
    assert_eq!((written["run_status"].as_str(), written["summary"]["mismatches"].as_u64(), written["summary"]["errors"].as_u64()), (Some("failed"), Some(0), Some(1)), "{written}");
    let out = thaw!(&["status", "--config", path, "--run-id", &run_id, "--json"]);
    let status_json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(status_json["runs"][0]["status"], "failed", "{status_json}");

    // The next night's run is a new run (the finished one has nothing left to copy).
    let run_report = dir.join(format!("{}.json", unique("run")));
    let out = thaw!(&["run", "--config", path, "--no-conflicts", "--report", run_report.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    let next: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&run_report).unwrap()).unwrap();
    assert_ne!(next["plan"]["run_id"].as_str().unwrap(), run_id, "a new run, not the finished one resumed");
    assert_eq!(next["plan"]["resumed"], false, "{}", next["plan"]);

    // With the right password the run is checked again and `completed`.
    let out = thaw!(&["reconcile", "--config", path, "--run-id", &run_id]);
    assert_eq!(out.status.code(), Some(0), "{}", thaw_test_support::text(&out));
    assert_eq!(run_status(&pg, &run_id).await, ("completed".to_string(), String::new()));
}

/// Session 12: a night whose copy and reconcile succeeded but whose
/// conflict detection failed (here persistently: the analytics tables do
/// not exist in `conflicts.database`) was recorded `failed`, which every
/// later `thaw run` resumed — a run with nothing left to copy — so no new
/// row was synced while the cause lasted. The run stays `failed` with the
/// step's error (exit 2 for this bad input), and the next night is a new
/// run that copies the new rows.
#[tokio::test]
async fn a_failed_conflict_detection_does_not_make_every_later_run_resume_the_finished_run() {
    let (sf_db, pg_db, pg, sf) = orders("cfstall", 30).await;
    let extra = format!(r#""conflicts": {{"database": "{pg_db}"}},"#);
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], &extra));
    let path = path.to_str().unwrap();
    let dir = reports_dir();
    let report_path = dir.join(format!("{}.json", unique("run")));
    let night = || {
        let out = thaw!(&["run", "--config", path, "--report", report_path.to_str().unwrap()]);
        let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
        (out, report)
    };
    let (out, first) = night();
    let shown = thaw_test_support::text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert_eq!(first["error"]["step"], "conflict-create", "{first}");
    let first_id = first["plan"]["run_id"].as_str().unwrap().to_string();
    let (status, error) = run_status(&pg, &first_id).await;
    assert_eq!(status, "failed");
    assert!(error.starts_with("step conflict-create failed"), "{error}");

    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"ORDERS\" (\"Id\", \"Code\", \"Updated\") VALUES (77777777, 'c0ffee00-0000-4000-8000-000000000001', '2030-01-01 00:00:00+00:00')"
    ))
    .await
    .unwrap();
    let (out, second) = night();
    assert_eq!(out.status.code(), Some(2), "{}", thaw_test_support::text(&out));
    assert_ne!(second["plan"]["run_id"].as_str().unwrap(), first_id, "a new run, not the finished one resumed: {}", second["plan"]);
    assert_eq!(second["plan"]["resumed"], false);
    let copied: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Id\" = 77777777", &[]).await.unwrap().get(0);
    assert_eq!(copied, 1, "the night's new row is synced");
}
