//! `thaw run` as an operator sees it: exit codes and the `--report` file
//! follow the run's outcome, and SIGTERM stops a run at a chunk boundary,
//! records it `interrupted` and a rerun resumes it to the exact row count.
//! Each case runs the real `thaw` binary.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thaw_test_support::*;

fn report(path: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("report {} was written: {e}", path.display()));
    serde_json::from_str(&text).expect("the report is JSON")
}

#[tokio::test]
async fn l5_run_exit_codes_and_report_follow_the_run_outcome() {
    let sf_db = unique("SFEXIT").to_uppercase();
    let pg_db = unique("exit");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 300).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ORDERS2\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\"")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    // orders2 cannot hold the notes: its chunks fail, orders copies fine.
    pg.batch_execute("CREATE TABLE public.orders2 (\"Id\" int8, \"Code\" uuid NOT NULL UNIQUE, \"Note\" varchar(5), \"Updated\" timestamptz)").await.unwrap();
    let t1 = orders_table(Some(("Id", "int")), "");
    let t2 = t1.replace("\"source\": \"ORDERS\", \"target\": \"orders\"", "\"source\": \"ORDERS2\", \"target\": \"orders2\"");
    let path = config_file(&config_text(&sf_db, &pg_db, &[&t1, &t2], ""));
    let cfg = path.to_str().unwrap();
    let dir = std::env::temp_dir().join(unique("thaw-reports"));
    std::fs::create_dir_all(&dir).unwrap();

    // Some tables failed: exit 1, run and report 'partial', the table's error recorded.
    let partial = dir.join("partial.json");
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--report", partial.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains(": partial"), "the summary names the status:\n{}", text(&out));
    let r = report(&partial);
    assert_eq!(r["status"], "partial");
    let run_id = r["plan"]["run_id"].as_str().unwrap().to_string();
    let row = pg
        .query_one("SELECT r.status, t.error_message FROM migration_status.migration_runs r JOIN migration_status.migration_table_status t USING (run_id) WHERE t.target_table = 'orders2'", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "partial");
    assert!(row.get::<_, String>(1).contains("\"Note\""));

    // Fix the table (the stored plan keeps the old column type, so start
    // fresh): everything copied and reconciled, exit 0, 'completed', the
    // partial run superseded.
    pg.batch_execute("ALTER TABLE public.orders2 ALTER COLUMN \"Note\" TYPE varchar(50)").await.unwrap();
    let done = dir.join("done.json");
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--no-resume", "--report", done.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let r = report(&done);
    assert_eq!((r["status"].as_str(), r["plan"]["resumed"].as_bool()), (Some("completed"), Some(false)));
    let old: String = pg
        .query_one("SELECT status FROM migration_status.migration_runs WHERE run_id = $1::text::uuid", &[&run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(old, "superseded");

    // A difference behind thaw's back: exit 3, run and report 'mismatch'.
    pg.batch_execute("DELETE FROM public.orders WHERE \"Id\" = 20").await.unwrap();
    let mismatch = dir.join("mismatch.json");
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--report", mismatch.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("ReconcileMismatch"), "{}", text(&out));
    assert_eq!(report(&mismatch)["status"], "mismatch");

    // Bad input before a run exists: exit 2, and the report file still says why.
    let bad = config_file(&config_text(&sf_db, &pg_db, &[r#"{"source": "NOPE", "target": "orders"}"#], ""));
    let failed = dir.join("failed.json");
    let out = thaw!(&["run", "--config", bad.to_str().unwrap(), "--no-conflicts", "--report", failed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let r = report(&failed);
    assert_eq!(r["status"], "failed");
    assert_eq!(r["error"]["kind"], "SchemaMismatch");
}

/// A `thaw run` copying 20 000 ORDERS rows, caught mid-copy: the real binary
/// is started (stdout/stderr captured) and this returns once two chunks have
/// completed. Returns the child, the config path, the target connection and
/// the source row count. Panics if the run ends or never starts copying.
async fn thaw_run_caught_mid_copy(label: &str) -> (std::process::Child, std::path::PathBuf, tokio_postgres::Client, usize) {
    let sf_db = unique(&format!("SF{label}")).to_uppercase();
    let pg_db = unique(&label.to_lowercase());
    let sf = fresh_sf(&sf_db).await;
    let rows = create_orders(&sf, &sf_db, 20_000).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let mut child = Command::new(thaw_bin(env!("CARGO_BIN_EXE_thaw")))
        .args(["run", "--config", path.to_str().unwrap(), "--no-conflicts"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start thaw run");
    let started = Instant::now();
    loop {
        let done: i64 = pg
            .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE status = 'completed'", &[])
            .await
            .map(|r| r.get(0))
            .unwrap_or(0);
        if done >= 2 {
            return (child, path, pg, rows);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().unwrap();
            panic!("thaw run ended before it was signalled ({status}):\n{}", text(&out));
        }
        assert!(started.elapsed() < Duration::from_secs(60), "thaw run never started copying");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn run_interrupted_by_sigterm_is_recorded_and_resumes_to_the_exact_row_count() {
    let (child, path, pg, rows) = thaw_run_caught_mid_copy("SIG").await;
    let cfg = path.to_str().unwrap();
    let kill = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().expect("thaw exits");
    let all = text(&out);
    assert_eq!(out.status.code(), Some(143), "SIGTERM exits 143:\n{all}");
    let row = pg.query_one("SELECT run_id, status, error_message FROM migration_status.migration_runs", &[]).await.unwrap();
    let run_id: uuid::Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "interrupted");
    assert!(row.get::<_, Option<String>>(2).unwrap_or_default().contains("interrupted by SIGTERM"));
    assert!(all.contains("interrupted by SIGTERM") && all.contains(&format!("run {run_id} can be resumed")), "{all}");
    let counts = pg
        .query_one(
            "SELECT count(*) FILTER (WHERE status = 'in_progress'), count(*) FILTER (WHERE status = 'completed'), count(*) \
             FROM migration_status.migration_chunk_status WHERE run_id = $1",
            &[&run_id],
        )
        .await
        .unwrap();
    let (in_progress, completed, total): (i64, i64, i64) = (counts.get(0), counts.get(1), counts.get(2));
    assert_eq!(in_progress, 0, "no chunk is left in progress");
    assert!(completed < total, "the run stopped before the end ({completed} of {total} chunks)");
    let copied: i64 = pg
        .query_one("SELECT coalesce(sum(rows_copied), 0)::int8 FROM migration_status.migration_chunk_status WHERE run_id = $1 AND status = 'completed'", &[&run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pg_count(&pg, "public.orders").await, copied, "only completed chunks left rows behind");

    // `thaw status --json` of the interrupted run: nothing shows as still
    // copying. Its unfinished table is `pending` with the reason (it used to
    // stay `in_progress` with no error, as if a process still copied it).
    let out = thaw!(&["status", "--config", cfg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let run = &v["runs"][0];
    assert_eq!((run["run_id"].as_str(), run["status"].as_str()), (Some(run_id.to_string().as_str()), Some("interrupted")));
    assert_eq!(run["alive"], serde_json::Value::Null, "an interrupted run is not running: neither alive nor dead");
    assert!(run["error"].as_str().unwrap().contains(&format!("--resume-run-id {run_id}")), "{run}");
    let table = &run["tables"][0];
    assert_eq!((table["status"].as_str(), table["chunks_in_progress"].as_i64()), (Some("pending"), Some(0)), "{table}");
    assert_eq!((table["chunks_completed"].as_i64(), table["chunks"].as_i64(), table["rows"].as_i64()), (Some(completed), Some(total), Some(copied)));
    assert!(table["error"].as_str().unwrap().starts_with("not finished: the run was interrupted by SIGTERM"), "{table}");
    assert_eq!(run["failed_chunks"], serde_json::json!([]));

    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("run {run_id} (resumed): completed")), "{}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, rows as i64);
    let table: (String, Option<String>) = pg
        .query_one("SELECT status, error_message FROM migration_status.migration_table_status WHERE run_id = $1", &[&run_id])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(table, ("completed".to_string(), None), "the resume copied the table again and merge recorded it");
}

#[tokio::test]
async fn status_command_shows_runs_tables_rows_and_failed_chunks() {
    let sf_db = unique("SFSTAT").to_uppercase();
    let pg_db = unique("stat");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 300).await;
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.orders (\"Id\" int8, \"Code\" uuid NOT NULL UNIQUE, \"Note\" varchar(5), \"Updated\" timestamptz)").await.unwrap();
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let cfg = path.to_str().unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    let out = thaw!(&["status", "--config", cfg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let run = &v["runs"][0];
    assert_eq!(run["status"], "failed");
    let table = &run["tables"][0];
    assert_eq!(table["target"], "public.orders");
    assert!(table["chunks"].as_i64().unwrap() >= 1);
    assert_eq!(table["chunks_failed"].as_i64().unwrap() + table["chunks_completed"].as_i64().unwrap(), table["chunks"].as_i64().unwrap());
    assert_eq!(table["rows"].as_i64().unwrap(), pg_count(&pg, "public.orders").await);
    assert_eq!(run["alive"], serde_json::Value::Null, "a finished run is neither alive nor dead");
    assert_eq!(table["status"], "failed");
    assert!(table["error"].as_str().unwrap().contains("\"Note\""), "{table}");
    let failed = run["failed_chunks"].as_array().unwrap();
    assert!(!failed.is_empty());
    assert!(failed[0]["error"].as_str().unwrap().contains("\"Note\""), "{failed:?}");

    let out = thaw!(&["status", "--config", cfg]);
    let shown = text(&out);
    let run_id = run["run_id"].as_str().unwrap();
    assert!(shown.contains(&format!("run {run_id}  failed")) && shown.contains("public.orders") && shown.contains("failed: chunk"), "{shown}");
    assert!(shown.contains("failed public.orders: "), "the table's error is shown: {shown}");
    assert!(!shown.contains("DEAD"), "{shown}");
}

#[tokio::test]
async fn run_killed_with_sigkill_is_taken_over_at_once_by_the_next_run() {
    let (mut child, path, pg, rows) = thaw_run_caught_mid_copy("KILL").await;
    let cfg = path.to_str().unwrap();
    let alive = |out: &std::process::Output| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v["runs"][0]["alive"].clone()
    };
    assert_eq!(alive(&thaw!(&["status", "--config", cfg, "--json"])), serde_json::json!(true), "the running process drives it");
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    // No chance to record anything: the run still says 'running' with a fresh heartbeat.
    let row = pg.query_one("SELECT run_id, status FROM migration_status.migration_runs", &[]).await.unwrap();
    let run_id: uuid::Uuid = row.get(0);
    assert_eq!(row.get::<_, String>(1), "running");
    // `thaw status` says the run is dead (its lock session is gone), not merely running.
    assert_eq!(alive(&thaw!(&["status", "--config", cfg, "--json"])), serde_json::json!(false));
    let shown = text(&thaw!(&["status", "--config", cfg]));
    assert!(shown.contains(&format!("run {run_id}  running")) && shown.contains("DEAD: no thaw process drives this run"), "{shown}");

    // Its lock session died with it: the next run takes it over at once and finishes it.
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("run {run_id} (resumed): completed")), "{}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, rows as i64);
    let taken_over: bool = pg
        .query_one("SELECT metadata ? 'taken_over_from' FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id])
        .await
        .unwrap()
        .get(0);
    assert!(taken_over);
}

/// `kill -9` at seeded random moments (planning, copying, merging or
/// reconciling, whatever the moment hits): every next run takes the dead run
/// over, and the last one ends with an exact, reconciled copy whose status
/// agrees with its rows (docs/sync.md §6.8).
#[tokio::test]
async fn run_killed_with_sigkill_at_seeded_moments_resumes_to_an_exact_copy() {
    use rand::{Rng, SeedableRng};
    let sf_db = unique("SFKILL9").to_uppercase();
    let pg_db = unique("kill9");
    let sf = fresh_sf(&sf_db).await;
    let rows = create_orders(&sf, &sf_db, 6_000).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let cfg = path.to_str().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    for round in 0..4 {
        let delay = Duration::from_millis(rng.gen_range(100..2_500));
        let mut child = Command::new(thaw_bin(env!("CARGO_BIN_EXE_thaw")))
            .args(["run", "--config", cfg, "--no-conflicts"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start thaw run");
        tokio::time::sleep(delay).await;
        let _ = child.kill();
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed after {delay:?} ({status})");
        // Whatever was committed: completed chunks and rows agree.
        let (copied, in_target): (i64, i64) = (
            pg.query_one("SELECT coalesce(sum(rows_inserted), 0)::int8 FROM migration_status.migration_chunk_status WHERE status = 'completed'", &[])
                .await
                .unwrap()
                .get(0),
            pg_count(&pg, "public.orders").await,
        );
        assert_eq!(copied, in_target, "round {round}: completed chunks and rows disagree");
    }
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(": completed"), "{}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, rows as i64);
    let dupes: i64 = pg.query_one("SELECT count(*) - count(DISTINCT \"Code\") FROM public.orders", &[]).await.unwrap().get(0);
    assert_eq!(dupes, 0);
}

/// `--where` must be exactly one boolean expression for exactly one table,
/// which Snowflake compiles against the table: anything else exits 2 with a
/// clear message before anything is written.
#[tokio::test]
async fn bad_where_predicates_exit_2_and_write_nothing() {
    let sf_db = unique("SFBADWHERE").to_uppercase();
    let pg_db = unique("badwhere");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 50).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let cfg = path.to_str().unwrap();
    for (predicate, expected) in [
        (r#""Id" > 5; DROP TABLE "ORDERS""#, "contains ';'"),
        (r#""Id" > 5 -- all"#, "contains a comment"),
        (r#"("Id" > 5"#, "is not one SQL expression"),
        (r#""Id" > 5)"#, "has text after the expression"),
        (r#""Note" = 'unterminated"#, "cannot be read as SQL"),
        ("1", "a single value, not a condition"),
    ] {
        let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--table", "orders", "--where", predicate]);
        assert_eq!(out.status.code(), Some(2), "{predicate}: {}", text(&out));
        assert!(text(&out).contains(expected) && text(&out).contains("--where"), "{predicate}: {}", text(&out));
    }
    // A predicate Snowflake cannot compile against the table (a column it does not have) is bad
    // input too: refused before a run is recorded (it used to leave a `failed` run behind),
    // naming the column.
    for (predicate, column) in [(r#""NoSuchColumn" > 5"#, "NoSuchColumn"), (r#""Note" = 'x' AND "Idd" > 5"#, "Idd")] {
        let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--table", "orders", "--where", predicate]);
        assert_eq!(out.status.code(), Some(2), "{predicate}: {}", text(&out));
        let said = text(&out);
        assert!(said.contains("--where") && said.contains(column) && said.contains("ORDERS"), "{predicate}: {said}");
        assert!(!said.to_lowercase().contains("panick"), "{said}");
    }
    // Without --table, --where is refused by the argument parser.
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts", "--where", r#""Id" > 5"#]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    // Nothing was written: no run recorded, no rows.
    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0, "no run was recorded");
    assert_eq!(pg_count(&pg, "public.orders").await, 0);
}

/// Found when probing as a new user: `thaw status` before the first run (a
/// database without the migration_status schema) failed with `SchemaMismatch:
/// relation "migration_status.migration_runs" does not exist`, exit 2. It
/// now says no run is recorded (exit 0; `--json` gives empty lists) and
/// creates nothing.
#[tokio::test]
async fn status_before_the_first_run_says_no_runs_instead_of_a_missing_relation() {
    let pg_db = unique("nostatus");
    pg("postgres").await.batch_execute(&format!("CREATE DATABASE \"{pg_db}\"")).await.unwrap();
    let path = config_file(&config_text("DB", &pg_db, &[r#"{"source": "T", "target": "t"}"#], ""));
    let out = thaw!(&["status", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(&format!("no runs recorded: the status database '{pg_db}' is not migrated yet")), "{}", text(&out));
    let out = thaw!(&["status", "--config", path.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(json["runs"], serde_json::json!([]));
    assert_eq!(json["freshness"]["tables"], serde_json::json!([]));
    let client = pg(&pg_db).await;
    let schema: Option<String> = client.query_one("SELECT to_regnamespace('migration_status')::text", &[]).await.unwrap().get(0);
    assert_eq!(schema, None, "thaw status created nothing");
}

/// An operator runs `thaw run` with the sync's own least-privilege role
/// (`thaw_loader`, schema/V4__roles.sql), which may not apply migrations:
/// on a database `thaw migrate` brought up to date the run copies and
/// reconciles (it used to fail `Internal: applying schema migrations
/// failed`, exit 1); on one never migrated it says to run `thaw migrate`
/// (exit 2) and creates nothing.
#[tokio::test]
async fn thaw_run_as_the_loader_role_uses_the_migrated_schema() {
    let sf_db = unique("SFLOADER").to_uppercase();
    let pg_db = unique("loader");
    let sf = fresh_sf(&sf_db).await;
    let rows = create_orders(&sf, &sf_db, 120).await;
    let admin = fresh_pg(&pg_db).await;
    admin.batch_execute(&format!("CREATE TABLE analytics.orders ({ORDERS_TARGET_COLUMNS}, UNIQUE (\"Code\"))")).await.unwrap();
    let role = unique("loader");
    admin.batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD 'loader-pw' IN ROLE thaw_loader")).await.unwrap();
    let config = |database: &str| {
        config_text(&sf_db, database, &[&orders_table(Some(("Id", "int")), "")], "")
            .replace(r#""user": "${THAW_PG_USER}", "password": "${THAW_PG_PASSWORD}""#, &format!(r#""user": "{role}", "password": "loader-pw""#))
            .replace(r#""target_pg_schema": "public""#, r#""target_pg_schema": "analytics""#)
    };
    let path = config_file(&config(&pg_db));
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(pg_count(&admin, "analytics.orders").await, rows as i64);

    // A schema behind this thaw (its last migration not applied): the role
    // cannot apply it and says which, before anything is written.
    let last: String = admin
        .query_one("DELETE FROM refinery_schema_history WHERE version = (SELECT max(version) FROM refinery_schema_history) RETURNING name", &[])
        .await
        .unwrap()
        .get(0);
    let count_runs = "SELECT count(*) FROM migration_status.migration_runs";
    let before: i64 = admin.query_one(count_runs, &[]).await.unwrap().get(0);
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts", "--no-resume"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("1 migration(s) pending: V") && text(&out).contains(&last), "{}", text(&out));
    assert!(text(&out).contains(&format!("role {role} may not apply them: run `thaw migrate`")), "{}", text(&out));
    assert_eq!(admin.query_one(count_runs, &[]).await.unwrap().get::<_, i64>(0), before, "no run was recorded");

    let empty = unique("loader_unmigrated");
    admin.batch_execute(&format!("CREATE DATABASE {empty}")).await.unwrap();
    let path = config_file(&config(&empty));
    let out = thaw!(&["run", "--config", path.to_str().unwrap(), "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains(&format!("role {role} may not create it: run `thaw migrate`")), "{}", text(&out));
    let schema: Option<String> = pg(&empty).await.query_one("SELECT to_regnamespace('migration_status')::text", &[]).await.unwrap().get(0);
    assert_eq!(schema, None, "the run created nothing");
}

/// `thaw run` against a database that cannot be written (a reader endpoint,
/// a standby, `default_transaction_read_only = on`) stops before anything is
/// written with one clear error naming the database and what to do, exit 1
/// (a runtime condition: a failover ends it), instead of refinery's
/// "error asserting migrations table: db error" as `Internal`; `thaw status`
/// still reads there; a write refused that way in the middle of a run is
/// `Transient`, so the chunk retries on a new connection, which reaches the
/// new writer once the failover is over. Once writable, the same command
/// picks the change up.
#[tokio::test]
async fn run_against_a_read_only_database_stops_before_writing_with_exit_1_and_says_why() {
    let (sf_db, pg_db, pg, sf) = orders("readonly", 200).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let cfg = path.to_str().unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    sf.execute(&format!("UPDATE \"{sf_db}\".\"S\".\"ORDERS\" SET \"Note\" = 'later', \"Updated\" = '2026-05-01 00:00:00+00:00' WHERE \"Id\" = 5"))
        .await
        .unwrap();
    let runs = || async { pg_count(&pg, "migration_status.migration_runs").await };
    assert_eq!(runs().await, 1);

    pg.batch_execute(&format!("ALTER DATABASE \"{pg_db}\" SET default_transaction_read_only = on")).await.unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let database = format!("database {pg_db} is read-only");
    for part in [database.as_str(), "default_transaction_read_only = on", "nothing was written", "writer"] {
        assert!(shown.contains(part), "missing {part:?} in:\n{shown}");
    }
    assert!(!shown.contains("asserting migrations table") && !shown.contains("Internal"), "{shown}");
    assert_eq!(runs().await, 1, "no run was recorded");
    let note: Option<String> = pg.query_one("SELECT \"Note\" FROM public.orders WHERE \"Id\" = 5", &[]).await.unwrap().get(0);
    assert_ne!(note.as_deref(), Some("later"));
    let out = thaw!(&["status", "--config", cfg, "--json"]);
    assert_eq!(out.status.code(), Some(0), "thaw status only reads: {}", text(&out));

    // A write refused by a read-only session mid-run is retried, never a bad-data failure.
    let reader = thaw_test_support::pg(&pg_db).await; // a new session sees the database's default
    let refused = reader.batch_execute("UPDATE public.orders SET \"Note\" = 'x' WHERE \"Id\" = 5").await.expect_err("read-only");
    assert_eq!(thaw_engine::error::classify_postgres(&refused), thaw_engine::ErrorKind::Transient, "{refused}");

    pg.batch_execute(&format!("ALTER DATABASE \"{pg_db}\" RESET default_transaction_read_only")).await.unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let note: Option<String> = pg.query_one("SELECT \"Note\" FROM public.orders WHERE \"Id\" = 5", &[]).await.unwrap().get(0);
    assert_eq!(note.as_deref(), Some("later"));
}

/// `thaw reconcile` of a finished run against a database that became
/// read-only (a reader endpoint, a standby, `default_transaction_read_only =
/// on`): reconcile records its outcome in migration_status, so it stops
/// before comparing anything with the same clear error as `thaw run`, exit 1,
/// and the stored outcome is the one before. (It used to compare every table,
/// then fail on "cannot execute UPDATE in a read-only transaction".)
#[tokio::test]
async fn reconcile_against_a_read_only_database_says_why_with_exit_1() {
    let (sf_db, pg_db, pg, _sf) = orders("readonlyrec", 50).await;
    let path = config_file(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], ""));
    let cfg = path.to_str().unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run_id: uuid::Uuid = pg.query_one("SELECT run_id FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    let stored = || async {
        let r = pg
            .query_one(
                "SELECT (SELECT status FROM migration_status.migration_runs), \
                        (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM migration_status.reconcile_results t)",
                &[],
            )
            .await
            .unwrap();
        format!("{:?}", (r.get::<_, Option<String>>(0), r.get::<_, Option<String>>(1)))
    };
    let before = stored().await;

    pg.batch_execute(&format!("ALTER DATABASE \"{pg_db}\" SET default_transaction_read_only = on")).await.unwrap();
    let out = thaw!(&["reconcile", "--config", cfg, "--run-id", &run_id.to_string()]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let database = format!("database {pg_db} is read-only");
    for part in [database.as_str(), "default_transaction_read_only = on", "nothing was written"] {
        assert!(shown.contains(part), "missing {part:?} in:\n{shown}");
    }
    assert!(!shown.contains("Internal") && !shown.contains("panicked"), "{shown}");
    pg.batch_execute(&format!("ALTER DATABASE \"{pg_db}\" RESET default_transaction_read_only")).await.unwrap();
    assert_eq!(stored().await, before, "the stored outcome is unchanged");
}

/// `thaw reconcile` whose target database (also the status database) is
/// read-only for the configured role only (`ALTER ROLE … IN DATABASE … SET
/// default_transaction_read_only = on`), on a table whose reconcile would
/// write (row hashes kept in a side table that `--full` refills, deletes
/// propagated, results and coverage recorded): exit 1 before comparing
/// anything, the message says the setting is the role's in that database and
/// gives the statement that undoes it (it used to suggest `ALTER DATABASE …
/// RESET`, which leaves the role's setting in force), and nothing was written:
/// rows, side table, results, coverage and the run's status are as before.
#[tokio::test]
async fn reconcile_against_a_target_read_only_for_the_role_names_the_role_setting_and_writes_nothing() {
    let (sf_db, pg_db, pg, sf) = orders("readonlyrole", 60).await;
    let table = orders_table(Some(("Id", "int")), r#", "row_hashes": true, "propagate_deletes": true"#);
    let path = config_file(&config_text(&sf_db, &pg_db, &[&table], ""));
    let cfg = path.to_str().unwrap();
    let out = thaw!(&["run", "--config", cfg, "--no-conflicts"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let run_id: uuid::Uuid = pg.query_one("SELECT run_id FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    // A reconcile now would delete the row gone from Snowflake and refill the side table.
    sf.execute(&format!("DELETE FROM \"{sf_db}\".\"S\".\"ORDERS\" WHERE \"Id\" = 7")).await.unwrap();
    let state = || async {
        let r = pg
            .query_one(
                "SELECT (SELECT status FROM migration_status.migration_runs), \
                        (SELECT count(*) FROM migration_status.reconcile_results), \
                        (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM migration_status.reconcile_coverage t), \
                        (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM migration_status.row_hash_tables t), \
                        (SELECT count(*) FROM public.orders)",
                &[],
            )
            .await
            .unwrap();
        format!("{:?}", (r.get::<_, String>(0), r.get::<_, i64>(1), r.get::<_, Option<String>>(2), r.get::<_, Option<String>>(3), r.get::<_, i64>(4)))
    };
    let side: String = pg.query_one("SELECT side_table FROM migration_status.row_hash_tables", &[]).await.unwrap().get(0);
    let side_rows = || async { pg_count(&pg, &side).await };
    let (before, side_before) = (state().await, side_rows().await);

    let role: String = pg.query_one("SELECT current_user::text", &[]).await.unwrap().get(0);
    pg.batch_execute(&format!("ALTER ROLE \"{role}\" IN DATABASE \"{pg_db}\" SET default_transaction_read_only = on")).await.unwrap();
    let report = std::env::temp_dir().join(format!("{}.json", unique("readonlyrole")));
    let out = thaw!(&["reconcile", "--config", cfg, "--run-id", &run_id.to_string(), "--full", "--report", report.to_str().unwrap()]);
    pg.batch_execute(&format!("ALTER ROLE \"{role}\" IN DATABASE \"{pg_db}\" RESET default_transaction_read_only")).await.unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(1), "{shown}");
    let undo = format!("ALTER ROLE \"{role}\" IN DATABASE \"{pg_db}\" RESET default_transaction_read_only");
    let set_for = format!("set for role {role} in database {pg_db}");
    for part in [format!("database {pg_db} is read-only"), set_for, undo, "nothing was written".to_string()] {
        assert!(shown.contains(&part), "missing {part:?} in:\n{shown}");
    }
    assert!(!shown.contains("ALTER DATABASE") && !shown.contains("panicked"), "{shown}");
    let written: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!((written["status"].as_str(), written["error"]["kind"].as_str()), (Some("failed"), Some("Transient")), "{written}");
    assert_eq!(state().await, before, "nothing was written");
    assert_eq!(side_rows().await, side_before);

    // Writable again: the same command reconciles, deletes the row and refills the side table.
    let out = thaw!(&["reconcile", "--config", cfg, "--run-id", &run_id.to_string(), "--full"]);
    assert_eq!(out.status.code(), Some(0), "the deleted row is propagated, then the table is clean: {}", text(&out));
    assert_eq!(pg_count(&pg, "public.orders").await, 59);
}
