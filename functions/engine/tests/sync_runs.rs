//! Run-level behaviour (docs/sync.md §6): the run's status tells the truth,
//! planning is an explicit state a resume completes, one run per target
//! table at a time, `--no-resume` really starts fresh, and a run whose
//! process is gone is taken over.

use std::sync::Arc;
use std::time::Duration;

use thaw_engine::config::Config;
use thaw_engine::contract::PlanRequest;
use thaw_engine::failpoints;
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::sync::status_store::StatusStore;
use thaw_engine::ErrorKind;
use thaw_test_support::*;
use tokio_postgres::Client;
use uuid::Uuid;

fn options() -> RunOptions {
    RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }
}

async fn run_status(pg: &Client, run_id: Uuid) -> (String, Option<String>) {
    let row = pg.query_one("SELECT status, error_message FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id]).await.unwrap();
    (row.get(0), row.get(1))
}

/// ORDERS with `rows` rows copied into `tables` targets: ORDERS → orders,
/// ORDERS2 → orders2, ... (same rows, separate tables).
async fn setup(prefix: &str, rows: usize, tables: usize) -> (String, String, Client) {
    let (sf_db, pg_db, pg, sf) = orders(prefix, rows).await;
    for i in 2..=tables {
        sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ORDERS{i}\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\"")).await.unwrap();
        pg.batch_execute(&format!("CREATE TABLE public.orders{i} (LIKE public.orders INCLUDING ALL)")).await.unwrap();
    }
    (sf_db, pg_db, pg)
}

fn table_entry(i: usize) -> String {
    let t = orders_table(Some(("Id", "int")), "");
    if i == 1 {
        t
    } else {
        t.replace("\"source\": \"ORDERS\", \"target\": \"orders\"", &format!("\"source\": \"ORDERS{i}\", \"target\": \"orders{i}\""))
    }
}

fn config_for(sf_db: &str, pg_db: &str, tables: usize) -> Arc<Config> {
    let entries: Vec<String> = (1..=tables).map(table_entry).collect();
    let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
    Arc::new(config(&config_text(sf_db, pg_db, &refs, "")))
}

#[tokio::test]
async fn l14_run_with_a_failed_table_is_recorded_partial_with_the_table_error() {
    let (sf_db, pg_db, pg) = setup("partial", 300, 2).await;
    // orders2 cannot hold the notes: every chunk of it with a note fails.
    pg.batch_execute("DROP TABLE public.orders2; CREATE TABLE public.orders2 (\"Id\" int8, \"Code\" uuid NOT NULL UNIQUE, \"Note\" varchar(5), \"Updated\" timestamptz)").await.unwrap();
    let config = config_for(&sf_db, &pg_db, 2);
    let report = runner::run(config, options(), Arc::new(Quiet)).await.expect("a report");
    assert_eq!(report.status, "partial");
    assert_eq!(report.outcome().unwrap_err().kind, ErrorKind::ChunkFailed);
    assert!(report.reconcile.is_none(), "no reconcile over a partial copy");
    let (status, error) = run_status(&pg, report.plan.run_id).await;
    assert_eq!(status, "partial");
    assert!(error.as_deref().unwrap_or("").contains("1 of 2 table(s) failed"), "{error:?}");
    let rows = pg
        .query("SELECT target_table, status, error_message FROM migration_status.migration_table_status WHERE run_id = $1 ORDER BY target_table", &[&report.plan.run_id])
        .await
        .unwrap();
    assert_eq!((rows[0].get::<_, String>(0), rows[0].get::<_, String>(1)), ("orders".into(), "completed".into()));
    assert_eq!((rows[1].get::<_, String>(0), rows[1].get::<_, String>(1)), ("orders2".into(), "failed".into()));
    let table_error: String = rows[1].get(2);
    assert!(table_error.contains("\"Note\"") && table_error.contains("first failure: chunk"), "{table_error}");
    assert_eq!(pg_count(&pg, "public.orders").await, 300);
}

#[tokio::test]
async fn run_whose_every_table_failed_is_recorded_failed() {
    let (sf_db, pg_db, pg) = setup("allfail", 200, 1).await;
    pg.batch_execute("DROP TABLE public.orders; CREATE TABLE public.orders (\"Id\" int8, \"Code\" uuid NOT NULL UNIQUE, \"Note\" varchar(5), \"Updated\" timestamptz)").await.unwrap();
    let report = runner::run(config_for(&sf_db, &pg_db, 1), options(), Arc::new(Quiet)).await.expect("a report");
    assert_eq!(report.status, "failed");
    assert_eq!(run_status(&pg, report.plan.run_id).await.0, "failed");
}

#[tokio::test]
async fn run_with_reconcile_mismatch_is_recorded_mismatch_and_not_resumed() {
    let (sf_db, pg_db, pg) = setup("mismatch", 300, 1).await;
    let config = config_for(&sf_db, &pg_db, 1);
    let first = runner::run(config.clone(), options(), Arc::new(Quiet)).await.unwrap();
    first.outcome().expect("clean first run");
    assert_eq!(first.status, "completed");
    assert_eq!(run_status(&pg, first.plan.run_id).await, ("completed".into(), None));

    // A row changed behind thaw's back (older watermark: no incremental run re-reads it).
    // A nightly reconcile verifies the touched rows and a rolling slice (docs/reconcile.md §5);
    // a full one finds the row wherever it is.
    pg.batch_execute("UPDATE public.orders SET \"Note\" = 'tampered' WHERE \"Id\" = 10").await.unwrap();
    let second = runner::run(config.clone(), RunOptions { reconcile_full: true, ..options() }, Arc::new(Quiet)).await.unwrap();
    assert_eq!(second.outcome().unwrap_err().kind, ErrorKind::ReconcileMismatch);
    assert_eq!(second.status, "mismatch");
    let (status, error) = run_status(&pg, second.plan.run_id).await;
    assert_eq!(status, "mismatch");
    assert!(error.unwrap_or_default().contains("public.orders"));

    // A mismatch has nothing to resume: the next run is a new run.
    let third = runner::run(config, options(), Arc::new(Quiet)).await.unwrap();
    assert!(!third.plan.resumed);
    assert_ne!(third.plan.run_id, second.plan.run_id);
}

#[tokio::test]
async fn run_whose_reconcile_step_fails_is_recorded_failed_with_a_report() {
    let (sf_db, pg_db, pg) = setup("recfail", 200, 1).await;
    failpoints::arm(failpoints::RECONCILE_STEP, ErrorKind::Unreachable, 1);
    let report = runner::run(config_for(&sf_db, &pg_db, 1), options(), Arc::new(Quiet)).await.expect("a report despite the failed step");
    failpoints::clear();
    let step = report.error.as_ref().expect("the failed step is in the report");
    assert_eq!((step.step.as_str(), step.kind), ("reconcile", ErrorKind::Unreachable));
    assert_eq!(report.status, "failed");
    let err = report.outcome().unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unreachable);
    assert!(err.message.contains("step reconcile"), "{}", err.message);
    let (status, error) = run_status(&pg, report.plan.run_id).await;
    assert_eq!(status, "failed");
    assert!(error.unwrap_or_default().contains("failpoint reconcile_step"));
}

/// Session 12: the state machine retries a reconcile whose Snowflake was
/// unreachable (`Unreachable` is retryable). The first attempt records the
/// run `failed` (a table it could not check); the retry that checks every
/// table clean makes it `completed` again, and fail-run, when the retries
/// run out, keeps the record naming every table.
#[tokio::test]
async fn a_retried_reconcile_step_takes_up_the_run_the_failed_attempt_recorded() {
    let (sf_db, pg_db, pg) = setup("recretry", 120, 1).await;
    let good = config_for(&sf_db, &pg_db, 1);
    let report = runner::run(good.clone(), options(), Arc::new(Quiet)).await.unwrap();
    report.outcome().expect("clean first run");
    let run_id = report.plan.run_id;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let entries = [table_entry(1)];
    let down = config(&config_text(&sf_db, &pg_db, &[&entries[0]], "").replace("${THAW_SF_ENDPOINT}", &format!("127.0.0.1:{closed}")));
    let request = thaw_engine::contract::RunRequest { run_id };

    let (response, _) = thaw_engine::steps::reconcile(&down, &request).await.expect("the step records the tables it could not check");
    assert_eq!(response.errors, 1);
    assert_eq!(thaw_engine::reconcile::require_match(&response).unwrap_err().kind, ErrorKind::Unreachable);
    let (status, error) = run_status(&pg, run_id).await;
    assert_eq!(status, "failed");
    assert!(error.clone().unwrap_or_default().starts_with("reconciliation could not check 1 table(s): public.orders"), "{error:?}");

    // The retries ran out: fail-run keeps the record naming the table.
    let fail = thaw_engine::contract::FailRunRequest { run_id: Some(run_id), error: "Unreachable".into(), cause: "retries exhausted".into() };
    thaw_engine::steps::fail_run(&good, fail).await.unwrap();
    assert_eq!(run_status(&pg, run_id).await, ("failed".to_string(), error));

    // Snowflake is back: the retried step (or the next execution's reconcile of it) verifies and records `completed`.
    let (response, _) = thaw_engine::steps::reconcile(&good, &request).await.unwrap();
    assert_eq!((response.errors, response.mismatches), (0, 0));
    assert_eq!(run_status(&pg, run_id).await, ("completed".to_string(), None));
}

/// Cancels the run (as SIGTERM does) when conflict detection starts.
struct StopAtConflicts(thaw_engine::cancel::Cancel);
impl runner::Observer for StopAtConflicts {
    fn step(&self, name: &str) {
        if name == "conflict-create" {
            self.0.cancel("SIGTERM");
        }
    }
}

/// Session 12: a run stopped during conflict detection said "resume with the
/// same command", but its copy and reconcile finished, so the same command
/// starts a new run (a resumed one would copy nothing). The record and the
/// error say what happens, and the next run is new.
#[tokio::test]
async fn a_run_stopped_during_conflict_detection_says_the_next_run_is_new() {
    let (sf_db, pg_db, pg) = setup("cfstop", 60, 1).await;
    let extra = format!(r#""conflicts": {{"database": "{pg_db}"}},"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table_entry(1)], &extra)));
    let cancel = thaw_engine::cancel::Cancel::new();
    let stopping = RunOptions { request: PlanRequest::default(), conflicts: true, cancel: Some(cancel.clone()), ..Default::default() };
    let report = runner::run(config.clone(), stopping, Arc::new(StopAtConflicts(cancel))).await.expect("a report");
    assert_eq!(report.interrupted.as_deref(), Some("SIGTERM"));
    let err = report.outcome().unwrap_err();
    assert!(err.message.contains("not resumed") && err.message.contains("the next `thaw run` starts a new run") && !err.message.contains("can be resumed"), "{err}");
    let (status, error) = run_status(&pg, report.plan.run_id).await;
    assert_eq!(status, "interrupted");
    let error = error.unwrap_or_default();
    assert!(error.contains("the next run is a new one") && !error.contains("resume with the same command"), "{error}");
    let next = runner::run(config, RunOptions { conflicts: false, ..options() }, Arc::new(Quiet)).await.unwrap();
    assert!(!next.plan.resumed && next.plan.run_id != report.plan.run_id, "a new run");
}

#[tokio::test]
async fn run_stopped_while_planning_resumes_plans_every_table_and_reconciles_them_all() {
    let (sf_db, pg_db, pg) = setup("planstop", 300, 3).await;
    let config = config_for(&sf_db, &pg_db, 3);
    failpoints::arm(failpoints::PLAN_AFTER_TABLE, ErrorKind::Transient, 1);
    let err = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect_err("planning stops after the first table");
    failpoints::clear();
    assert!(err.message.contains("failpoint plan_after_table"), "{}", err.message);
    let row = pg.query_one("SELECT run_id, status, metadata->>'planned' FROM migration_status.migration_runs", &[]).await.unwrap();
    let run_id: Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "failed");
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("false"));
    let planned: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_table_status WHERE run_id = $1", &[&run_id]).await.unwrap().get(0);
    assert_eq!(planned, 1);

    let report = runner::run(config, options(), Arc::new(Quiet)).await.expect("resume");
    report.outcome().expect("every table copied and reconciled");
    assert!(report.plan.resumed);
    assert_eq!(report.plan.run_id, run_id);
    assert_eq!(report.plan.tables, 3);
    assert_eq!(report.status, "completed");
    let reconciled = report.reconcile.as_ref().unwrap();
    assert_eq!(reconciled.tables.len(), 3, "reconcile covers every selected table");
    assert!(reconciled.tables.iter().all(|t| t.matched && t.target_rows == 300));
    for t in ["public.orders", "public.orders2", "public.orders3"] {
        assert_eq!(pg_count(&pg, t).await, 300, "{t}");
    }
}

/// Found probing `thaw status`: a run that failed while planning (here: duplicate keys in the
/// second table's source, found by the first-load key check) was recorded `failed`, but the table
/// planned before the failure stayed `in_progress`, so `thaw status` showed it as still copying.
/// Its tables now say `failed` with the run's error; fixing the source and rerunning resumes the
/// run and completes every table.
#[tokio::test]
async fn run_failed_while_planning_shows_its_planned_tables_failed_with_the_error_not_in_progress() {
    let (sf_db, pg_db, pg) = setup("planfail", 300, 2).await;
    let sf = thaw_engine::source::connect(&snowflake(), Some(&sf_db), Some("S")).await.unwrap();
    let orders2 = format!("\"{sf_db}\".\"S\".\"ORDERS2\"");
    sf.execute(&format!("INSERT INTO {orders2} SELECT * FROM {orders2} WHERE \"Id\" = 7")).await.unwrap();
    let config = config_for(&sf_db, &pg_db, 2);
    let err = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect_err("planning fails on the duplicate key");
    assert!(err.message.contains("ORDERS2"), "{}", err.message);

    let runs = thaw_engine::sync::status_postgres::PgStatusStore::new(&pg).overview(None, 5).await.unwrap();
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run.status, "failed");
    let run_error = run.error.clone().expect("the run's error");
    assert!(run_error.contains("ORDERS2"), "{run_error}");
    let tables: Vec<(&str, &str, Option<&str>)> = run.tables.iter().map(|t| (t.target.as_str(), t.status.as_str(), t.error.as_deref())).collect();
    assert_eq!(tables.len(), 1, "only orders was planned: {tables:?}");
    assert_eq!((tables[0].0, tables[0].1), ("public.orders", "failed"), "{tables:?}");
    assert_eq!(tables[0].2, Some(format!("not finished: the run failed: {run_error}").as_str()));
    let failed_tables: i32 =
        pg.query_one("SELECT failed_tables FROM migration_status.migration_runs WHERE run_id = $1", &[&run.run_id]).await.unwrap().get(0);
    assert_eq!(failed_tables, 1);

    // Fixing the source and rerunning resumes the same run, which completes every table.
    sf.execute(&format!("DELETE FROM {orders2} WHERE \"Id\" = 7")).await.unwrap();
    sf.execute(&format!("INSERT INTO {orders2} SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\" WHERE \"Id\" = 7")).await.unwrap();
    let report = runner::run(config, options(), Arc::new(Quiet)).await.expect("resume");
    report.outcome().expect("every table copied and reconciled");
    assert_eq!((report.plan.run_id, report.status.as_str()), (run.run_id, "completed"));
    let runs = thaw_engine::sync::status_postgres::PgStatusStore::new(&pg).overview(Some(run.run_id), 1).await.unwrap();
    assert!(runs[0].tables.iter().all(|t| t.status == "completed" && t.error.is_none()), "{:?}", runs[0].tables);
}

/// Found probing as a new user: a chunk failed on a value too long for the target column and
/// said "widen the column ... rerun the same command to resume"; after widening it, the resumed
/// run still wrote with the stored (narrow) definition and failed the same way until
/// `--no-resume`. A resume now reads the target columns' definitions again.
#[tokio::test]
async fn resume_after_widening_the_target_column_a_chunk_failed_on_completes_the_run() {
    let (sf_db, pg_db, pg) = setup("widen", 300, 1).await;
    pg.batch_execute("ALTER TABLE public.orders ALTER \"Note\" TYPE varchar(5)").await.unwrap();
    let config = config_for(&sf_db, &pg_db, 1);
    let failed = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("a report");
    assert_eq!(failed.status, "failed");
    let said = failed.outcome().unwrap_err().message;
    assert!(said.contains("varchar(5)") && said.contains("widen the column") && said.contains("rerun the same command"), "{said}");

    pg.batch_execute("ALTER TABLE public.orders ALTER \"Note\" TYPE varchar(50)").await.unwrap();
    let resumed = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("resume");
    resumed.outcome().expect("the resumed run writes with the widened column, completes and reconciles");
    assert_eq!((resumed.plan.run_id, resumed.plan.resumed, resumed.status.as_str()), (failed.plan.run_id, true, "completed"));
    assert_eq!(pg_count(&pg, "public.orders").await, 300);
    let plan: serde_json::Value = pg
        .query_one("SELECT plan FROM migration_status.migration_table_status WHERE run_id = $1", &[&failed.plan.run_id])
        .await
        .unwrap()
        .get(0);
    let note = plan["columns"].as_array().unwrap().iter().find(|c| c["target"]["name"] == "Note").unwrap();
    assert_eq!(note["target"]["char_max_length"], 50, "the stored plan records the current definition");

    // A planned target column that is gone stops a resume with a clear error naming it.
    pg.batch_execute("ALTER TABLE public.orders ALTER \"Note\" TYPE varchar(5) USING left(\"Note\", 5)").await.unwrap();
    sf_update_note(&sf_db).await;
    let again = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("a report");
    assert_eq!(again.status, "failed", "{:?}", again.failures);
    pg.batch_execute("ALTER TABLE public.orders DROP COLUMN \"Note\"").await.unwrap();
    let err = runner::run(config, options(), Arc::new(Quiet)).await.expect_err("the planned column is gone");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains("\"Note\"") && err.message.contains("--no-resume"), "{err}");
}

/// The same for a replace load (`truncate_onstart` + `--allow-truncate`): its shadow table was
/// created like the narrow target, so the resume also gives the shadow the widened column; the
/// target keeps its previous rows until the swap.
#[tokio::test]
async fn replace_load_resumed_after_widening_the_target_column_completes_and_swaps() {
    let (sf_db, pg_db, pg) = setup("widenshadow", 300, 1).await;
    pg.batch_execute(
        "ALTER TABLE public.orders ALTER \"Note\" TYPE varchar(5); \
         INSERT INTO public.orders (\"Id\", \"Code\", \"Note\") SELECT g, ('ffffffff-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'old' FROM generate_series(1, 20) g",
    )
    .await
    .unwrap();
    let table = orders_table(Some(("Id", "int")), r#", "truncate_onstart": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    let replace = RunOptions { request: PlanRequest { allow_truncate: true, ..Default::default() }, ..options() };
    // Every chunk holds a note longer than five characters and fails; the shadow table exists,
    // created like the narrow target.
    let failed = runner::run(config.clone(), replace.clone(), Arc::new(Quiet)).await.expect("a report");
    assert!(!failed.failures.is_empty());
    assert_ne!(failed.status, "completed");
    assert_eq!(pg_count(&pg, "public.orders").await, 20, "the target keeps its previous rows");

    pg.batch_execute("ALTER TABLE public.orders ALTER \"Note\" TYPE varchar(50)").await.unwrap();
    let resumed = runner::run(config, replace, Arc::new(Quiet)).await.expect("resume");
    resumed.outcome().expect("the resumed replace load completes, swaps and reconciles");
    assert_eq!((resumed.plan.run_id, resumed.status.as_str()), (failed.plan.run_id, "completed"));
    assert_eq!(pg_count(&pg, "public.orders").await, 300, "the source's rows replaced the previous ones");
}

/// Give every ORDERS row a note longer than five characters, touching its watermark.
async fn sf_update_note(sf_db: &str) {
    let sf = thaw_engine::source::connect(&snowflake(), Some(sf_db), Some("S")).await.unwrap();
    sf.execute(&format!("UPDATE \"{sf_db}\".\"S\".\"ORDERS\" SET \"Note\" = 'a longer note', \"Updated\" = '2027-01-01 00:00:00+00:00'"))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_runs_of_the_same_config_second_is_refused_naming_the_holder() {
    let (sf_db, pg_db, pg) = setup("lock", 3000, 1).await;
    let config = config_for(&sf_db, &pg_db, 1);
    let first = tokio::spawn(runner::run(config.clone(), options(), Arc::new(Quiet)));
    // Wait until the first run is copying.
    let mut first_id = None;
    for _ in 0..400 {
        if let Some(r) = pg.query_opt("SELECT run_id FROM migration_status.migration_runs WHERE status = 'running'", &[]).await.unwrap() {
            first_id = Some(r.get::<_, Uuid>(0));
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let first_id = first_id.expect("the first run started copying");
    let err = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect_err("the second run is refused");
    assert_eq!(err.kind, ErrorKind::Locked);
    assert!(err.message.contains(&first_id.to_string()), "names the holder's run: {}", err.message);
    assert!(err.message.contains(&format!("pid {}", std::process::id())), "names the holder's pid: {}", err.message);
    assert!(err.message.contains("public.orders"), "{}", err.message);
    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 1, "the refused run wrote nothing");

    let report = first.await.unwrap().expect("first run");
    report.outcome().expect("the first run succeeds");
    assert_eq!(pg_count(&pg, "public.orders").await, 3000);
    // The lock is released: the next run goes ahead.
    let next = runner::run(config, options(), Arc::new(Quiet)).await.expect("a later run");
    next.outcome().expect("later run clean");
}

#[tokio::test]
async fn runs_of_different_configs_run_side_by_side() {
    let (sf_db, pg_db, pg) = setup("side", 1500, 2).await;
    let one = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table_entry(1)], "")));
    let two = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table_entry(2)], "")));
    let (a, b) = tokio::join!(runner::run(one, options(), Arc::new(Quiet)), runner::run(two, options(), Arc::new(Quiet)));
    let (a, b) = (a.expect("first config"), b.expect("second config"));
    a.outcome().unwrap();
    b.outcome().unwrap();
    assert_ne!(a.plan.run_id, b.plan.run_id);
    assert_eq!(pg_count(&pg, "public.orders").await, 1500);
    assert_eq!(pg_count(&pg, "public.orders2").await, 1500);
}

#[tokio::test]
async fn no_resume_run_supersedes_the_unfinished_run_for_good() {
    let (sf_db, pg_db, pg) = setup("noresume", 500, 1).await;
    // No watermark: a fresh run over the partly loaded target upserts every row.
    let table = r#"{"source": "ORDERS", "target": "orders", "chunking_columns": ["Id"], "chunking_column_types": ["int"], "uniqueness_columns": ["Code"], "batch_size": 100}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::ChunkFailed, 1);
    let broken = runner::run(config.clone(), options(), Arc::new(Quiet)).await.unwrap();
    failpoints::clear();
    assert_eq!(broken.status, "failed", "the only table failed");

    let fresh = runner::run(config.clone(), RunOptions { request: PlanRequest { no_resume: true, ..Default::default() }, ..options() }, Arc::new(Quiet)).await.unwrap();
    fresh.outcome().expect("a fresh run upserts over the partial target and reconciles");
    assert!(!fresh.plan.resumed);
    assert_ne!(fresh.plan.run_id, broken.plan.run_id);
    let (status, error) = run_status(&pg, broken.plan.run_id).await;
    assert_eq!(status, "superseded");
    assert!(error.unwrap_or_default().contains(&format!("superseded by run {}", fresh.plan.run_id)));
    assert_eq!(pg_count(&pg, "public.orders").await, 500);

    // The superseded run is never resumed again.
    let later = runner::run(config, options(), Arc::new(Quiet)).await.unwrap();
    later.outcome().unwrap();
    assert!(!later.plan.resumed);
    assert_ne!(later.plan.run_id, broken.plan.run_id);
}

#[tokio::test]
async fn running_run_with_a_stale_heartbeat_is_taken_over_and_a_live_one_is_not() {
    let (sf_db, pg_db, pg) = setup("dead", 400, 1).await;
    let config = config_for(&sf_db, &pg_db, 1);
    thaw_engine::migrations::migrate_databases(&config).await.unwrap();
    // A run driven by the state machine (no lock session): planned, then its execution died.
    let planned = thaw_engine::steps::plan(&config, &PlanRequest::default()).await.unwrap();
    assert_eq!(run_status(&pg, planned.run_id).await.0, "running");

    // Its heartbeat is fresh: another run must not take it over.
    let err = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect_err("refused while the run looks alive");
    assert_eq!(err.kind, ErrorKind::Locked);
    assert!(err.message.contains(&planned.run_id.to_string()) && err.message.contains("still running"), "{}", err.message);

    // No heartbeat for an hour: dead; the next run takes it over and finishes it.
    pg.execute("UPDATE migration_status.migration_runs SET heartbeat_at = now() - interval '1 hour' WHERE run_id = $1", &[&planned.run_id]).await.unwrap();
    let report = runner::run(config, options(), Arc::new(Quiet)).await.expect("takeover");
    report.outcome().expect("the taken-over run completes");
    assert!(report.plan.resumed);
    assert_eq!(report.plan.run_id, planned.run_id);
    assert_eq!(report.status, "completed");
    assert_eq!(pg_count(&pg, "public.orders").await, 400);
    let row = pg
        .query_one("SELECT metadata ? 'taken_over_from', pid, lock_backend_pid IS NOT NULL FROM migration_status.migration_runs WHERE run_id = $1", &[&planned.run_id])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, Option<i32>>(1), Some(std::process::id() as i32));
    assert!(row.get::<_, bool>(2));
}

/// `RunOptions::max_workers = Some(0)` (the CLI's `--workers 0`, which clap
/// now refuses too) is a `ConfigInvalid` before any database is touched:
/// it used to plan the run, take its lock and wait forever for a worker.
#[tokio::test]
async fn zero_workers_are_refused_before_any_database_is_touched() {
    // A PostgreSQL port nobody listens on: any connection attempt would fail differently.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = config_text("DB", "db", &[r#"{"source": "T", "target": "t"}"#], "").replace("${THAW_PG_PORT}", &port.to_string());
    let options = RunOptions { max_workers: Some(0), conflicts: false, ..Default::default() };
    let err = runner::run(Arc::new(config(&text)), options, Arc::new(Quiet)).await.expect_err("zero workers are refused");
    assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{err}");
    assert!(err.to_string().contains("--workers) must be at least 1"), "{err}");
}
