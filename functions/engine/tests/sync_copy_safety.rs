//! The copy path under the failures a 272 M-row migration meets (issue 7):
//! a truncating reload that fails half-way, lossy values, duplicate keys on a
//! first load, quoted names in hints, `disable_index` with a crash between
//! drop and restore, a resume after a partial first load, and a PostgreSQL
//! outage in the middle of the copy. Run under the harness with the
//! `failpoints` feature (`tests/run-rust-tests.sh`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use thaw_engine::contract::{ChunkItem, CopyChunkResponse, PlanRequest};
use thaw_engine::failpoints;
use thaw_engine::runner::{self, Observer, Quiet, RunOptions};
use thaw_engine::ErrorKind;
use thaw_test_support::*;
use tokio_postgres::Client;

fn options(allow_truncate: bool) -> RunOptions {
    RunOptions { request: PlanRequest { allow_truncate, ..Default::default() }, conflicts: false, ..Default::default() }
}

/// ORDERS (900 rows) in a fresh emulator database and an empty `public.orders` target.
async fn orders(rows: usize) -> (String, String, Client) {
    let (sf_db, pg_db, pg, _) = thaw_test_support::orders("copy", rows).await;
    (sf_db, pg_db, pg)
}

async fn retry_counts(pg: &Client, run_id: uuid::Uuid) -> Vec<i32> {
    pg.query("SELECT retry_count FROM migration_status.migration_chunk_status WHERE run_id = $1 ORDER BY chunk_id", &[&run_id])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

async fn index_defs(pg: &Client) -> Vec<(String, String)> {
    pg.query("SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'orders' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

// --- 1. truncate_onstart keeps the previous rows until every chunk loaded ---------------

/// 900 source orders and a target already holding 50 previous rows
/// (`"Note"` 'old'), configured as a replace load (`truncate_onstart`,
/// keyed on `"Id"`): the Snowflake database, a client of the target
/// database and the configuration.
async fn replace_load_over_previous_rows() -> (String, Client, Arc<thaw_engine::config::Config>) {
    let (sf_db, pg_db, pg) = orders(900).await;
    pg.batch_execute(
        "INSERT INTO public.orders (\"Id\", \"Code\", \"Note\") \
         SELECT g, ('ffffffff-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'old' FROM generate_series(1, 50) g",
    )
    .await
    .unwrap();
    let table = orders_table(Some(("Id", "int")), r#", "truncate_onstart": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    (sf_db, pg, config)
}

#[tokio::test]
async fn l7_truncate_onstart_copy_failing_after_truncate_keeps_previous_rows_and_rerun_completes() {
    let (_, pg, config) = replace_load_over_previous_rows().await;

    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::ChunkFailed, 1);
    let failed = runner::run(config.clone(), options(true), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!(failed.failures.len(), 1, "one chunk failed after the other chunks loaded");
    assert!(failed.plan.chunks > 3);
    // The target still holds exactly its previous rows.
    let old: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'old'", &[]).await.unwrap().get(0);
    assert_eq!((pg_count(&pg, "public.orders").await, old), (50, 50));
    let status: String = pg
        .query_one("SELECT error_message FROM migration_status.migration_table_status WHERE run_id = $1", &[&failed.plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert!(status.contains("keeps its previous rows"), "{status}");

    // Rerunning the same command resumes, copies the failed chunk and swaps the table in.
    let again = runner::run(config, options(true), Arc::new(Quiet)).await.expect("resume");
    again.outcome().expect("resume completes and reconciles");
    assert!(again.plan.resumed);
    assert_eq!(again.plan.chunks, 1);
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    let old: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'old'", &[]).await.unwrap().get(0);
    assert_eq!(old, 0, "the previous rows were replaced");
    let shadows: i64 = pg.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'thaw_staging'", &[]).await.unwrap().get(0);
    assert_eq!(shadows, 0, "the shadow table is gone after the swap");
}

// --- 2. lossy values fail the chunk, naming table, column, key and value ------------------

#[tokio::test]
async fn lossy_timestamp_into_date_fails_the_chunk_naming_table_column_key_and_value() {
    let sf_db = unique("SFLOSSY").to_uppercase();
    let pg_db = unique("lossy");
    let sf = fresh_sf(&sf_db).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"EVENTS\" (\"ID\" NUMBER(38,0), \"AT\" TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"EVENTS\" VALUES (1, '2024-03-09 00:00:00'), (2, '2024-03-10 20:15:00'), (3, '2024-03-11 00:00:00')"
    ))
    .await
    .unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.events (\"ID\" int8 PRIMARY KEY, \"AT\" date)").await.unwrap();
    let table = r#"{"source": "EVENTS", "target": "events", "uniqueness_columns": ["ID"]}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "\"retry_budget_seconds\": 60,")));
    let started = Instant::now();
    let report = runner::run(config, options(false), Arc::new(Quiet)).await.expect("run");
    assert_eq!(report.failures.len(), 1);
    let text = &report.failures[0].1;
    assert!(text.starts_with("ChunkFailed:"), "{text}");
    for part in [r#"table "public"."events""#, r#"key ("ID")=(2)"#, r#"column "AT" (date)"#, "value 2024-03-10 20:15:00.000000 has a time of day"] {
        assert!(text.contains(part), "missing {part:?} in: {text}");
    }
    assert_eq!(pg_count(&pg, "public.events").await, 0, "the chunk rolled back");
    assert_eq!(retry_counts(&pg, report.plan.run_id).await, vec![1], "a lossy value is deterministic: no retry");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// NUL characters PostgreSQL cannot store fail the chunk like any lossy
/// value: a NUL in a VARCHAR into text, and the JSON escape `\u0000` in a
/// VARIANT into jsonb (which PostgreSQL used to refuse at the end of the
/// COPY with "unsupported Unicode escape sequence", naming neither column
/// nor key), and a NUL in a key value. Each names table, column, key and
/// value, rolls back, is recorded `failed` with its error and is not
/// retried; the message no longer suggests a source query thaw cannot run.
#[tokio::test]
async fn nul_characters_fail_the_chunk_naming_table_column_key_and_value() {
    let sf_db = unique("SFNUL").to_uppercase();
    let pg_db = unique("nul");
    let sf = fresh_sf(&sf_db).await;
    for sql in [
        format!("CREATE TABLE \"{sf_db}\".\"S\".\"NOTES\" (\"ID\" NUMBER(38,0), \"BODY\" VARCHAR(20))"),
        format!("INSERT INTO \"{sf_db}\".\"S\".\"NOTES\" SELECT 1, 'fine' UNION ALL SELECT 2, 'a' || CHR(0) || 'b'"),
        format!("CREATE TABLE \"{sf_db}\".\"S\".\"DOCS\" (\"ID\" NUMBER(38,0), \"DOC\" VARIANT)"),
        format!(r#"INSERT INTO "{sf_db}"."S"."DOCS" SELECT 7, PARSE_JSON('{{"a": "fine"}}') UNION ALL SELECT 8, PARSE_JSON('{{"a": "x\\u0000y"}}')"#),
        format!("CREATE TABLE \"{sf_db}\".\"S\".\"TAGS\" (\"TAG\" VARCHAR(10))"),
        format!("INSERT INTO \"{sf_db}\".\"S\".\"TAGS\" SELECT 'ok' UNION ALL SELECT 'b' || CHR(0)"),
    ] {
        sf.execute(&sql).await.unwrap();
    }
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(
        "CREATE TABLE public.notes (\"ID\" int8 PRIMARY KEY, \"BODY\" text); CREATE TABLE public.docs (\"ID\" int8 PRIMARY KEY, \"DOC\" jsonb); \
         CREATE TABLE public.tags (\"TAG\" text PRIMARY KEY)",
    )
    .await
    .unwrap();
    let tables = [
        r#"{"source": "NOTES", "target": "notes", "uniqueness_columns": ["ID"]}"#,
        r#"{"source": "DOCS", "target": "docs", "uniqueness_columns": ["ID"]}"#,
        r#"{"source": "TAGS", "target": "tags", "uniqueness_columns": ["TAG"]}"#,
    ];
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &tables, "\"retry_budget_seconds\": 60,")));
    let report = runner::run(config, options(false), Arc::new(Quiet)).await.expect("run");
    assert_eq!(report.status, "failed");
    let mut failures: Vec<&String> = report.failures.iter().map(|(_, text)| text).collect();
    failures.sort();
    assert_eq!(failures.len(), 3, "{failures:?}");
    let wanted: [&[&str]; 3] = [
        &[r#"table "public"."docs""#, r#"key ("ID")=(8)"#, r#"column "DOC" (jsonb)"#, r#"value '{"a":"x\u0000y"}' holds the JSON escape \u0000"#],
        &[r#"table "public"."notes""#, r#"key ("ID")=(2)"#, r#"column "BODY" (text)"#, r"value 'a\0b' contains a NUL character"],
        // A NUL in the key itself: written \0 in the message, which could not be stored otherwise.
        &[r#"table "public"."tags""#, r#"key ("TAG")=('b\0')"#, r#"column "TAG" (text)"#],
    ];
    for (text, parts) in failures.iter().zip(wanted) {
        assert!(text.starts_with("ChunkFailed:"), "{text}");
        assert!(!text.contains("source query"), "thaw runs no custom source query: {text}");
        for part in parts.iter().chain(&["exclude_columns"]) {
            assert!(text.contains(part), "missing {part:?} in: {text}");
        }
    }
    assert_eq!(
        (pg_count(&pg, "public.notes").await, pg_count(&pg, "public.docs").await, pg_count(&pg, "public.tags").await),
        (0, 0, 0),
        "every chunk rolled back"
    );
    assert_eq!(retry_counts(&pg, report.plan.run_id).await, vec![1, 1, 1], "a NUL is deterministic: no retry");
    // Each failure is recorded with its error (a NUL in the key's message used
    // to make recording it fail: the chunk stayed in_progress without an error).
    let recorded: Vec<(String, String)> = pg
        .query("SELECT status, coalesce(error_message, '') FROM migration_status.migration_chunk_status WHERE run_id = $1 ORDER BY source_table", &[&report.plan.run_id])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(recorded.len(), 3);
    for (status, error) in &recorded {
        assert_eq!(status, "failed", "{recorded:?}");
        assert!(error.contains("NUL character") || error.contains("JSON escape"), "{recorded:?}");
    }
    assert!(recorded[2].1.contains(r#"key ("TAG")=('b\0')"#), "{recorded:?}");
}

// --- 3. duplicate or NULL keys fail the first load before anything is written ----------------

#[tokio::test]
async fn duplicate_and_null_keys_fail_the_first_load_naming_them() {
    let sf_db = unique("SFKEYS").to_uppercase();
    let pg_db = unique("keys");
    let sf = fresh_sf(&sf_db).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ITEMS\" (\"K\" VARCHAR(10), \"V\" NUMBER(38,0))")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"ITEMS\" VALUES ('a', 1), ('a', 2), ('b', 3), (NULL, 4), (NULL, 5), ('c', 6), ('a', 7)"
    ))
    .await
    .unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.items (\"K\" text, \"V\" int8)").await.unwrap(); // no unique index
    let table = r#"{"source": "ITEMS", "target": "items", "uniqueness_columns": ["K"]}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let err = runner::run(config, options(false), Arc::new(Quiet)).await.expect_err("the first load is refused");
    assert_eq!(err.kind, ErrorKind::ChunkFailed);
    for part in ["2 value(s) of the key (K) are duplicated or NULL", "(5 rows)", "('a') ×3", "(NULL) ×2", "nothing was written"] {
        assert!(err.message.contains(part), "missing {part:?} in: {}", err.message);
    }
    assert_eq!(pg_count(&pg, "public.items").await, 0);
}

#[tokio::test]
async fn null_keys_fail_an_upsert_chunk_instead_of_duplicating_every_run() {
    let sf_db = unique("SFNULLK").to_uppercase();
    let pg_db = unique("nullk");
    let sf = fresh_sf(&sf_db).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ITEMS\" (\"K\" VARCHAR(10), \"V\" NUMBER(38,0))")).await.unwrap();
    sf.execute(&format!("INSERT INTO \"{sf_db}\".\"S\".\"ITEMS\" VALUES ('a', 1), (NULL, 2)")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.items (\"K\" text UNIQUE, \"V\" int8); INSERT INTO public.items VALUES ('z', 0)").await.unwrap();
    let table = r#"{"source": "ITEMS", "target": "items", "uniqueness_columns": ["K"]}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let report = runner::run(config, options(false), Arc::new(Quiet)).await.expect("run");
    assert_eq!(report.failures.len(), 1);
    assert!(report.failures[0].1.contains("1 row(s) of the chunk have a NULL in the key (K)"), "{}", report.failures[0].1);
    // The run's error quotes the chunk's and goes on in one sentence (it used to end "uniqueness_columns.. Fix the cause").
    let outcome = report.outcome().unwrap_err().message;
    assert!(outcome.contains("uniqueness_columns. Fix the cause and rerun"), "{outcome}");
    assert_eq!(pg_count(&pg, "public.items").await, 1, "the chunk rolled back");
}

// --- 4. the unique-index hint is valid SQL for quoted names -----------------------------------

#[tokio::test]
async fn l16_unique_index_hint_is_valid_sql_for_quoted_schema_and_table_names() {
    let sf_db = unique("SFHINT").to_uppercase();
    let pg_db = unique("hint");
    let sf = fresh_sf(&sf_db).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"LINES\" (\"Line Key\" VARCHAR(10), \"V\" NUMBER(38,0))")).await.unwrap();
    sf.execute(&format!("INSERT INTO \"{sf_db}\".\"S\".\"LINES\" VALUES ('a', 1), ('b', 2)")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(
        "CREATE SCHEMA \"Sales \"\"Ops\"\"\"; CREATE TABLE \"Sales \"\"Ops\"\"\".\"Order-Lines\" (\"Line Key\" text, \"V\" int8); \
         INSERT INTO \"Sales \"\"Ops\"\"\".\"Order-Lines\" VALUES ('a', 0)",
    )
    .await
    .unwrap();
    let table = r#"{"source": "LINES", "target": "Order-Lines", "uniqueness_columns": ["Line Key"]}"#;
    let text = config_text(&sf_db, &pg_db, &[table], "").replace(r#""target_pg_schema": "public""#, r#""target_pg_schema": "Sales \"Ops\"""#);
    let config = Arc::new(config(&text));
    let err = runner::run(config.clone(), options(false), Arc::new(Quiet)).await.expect_err("upsert without a unique index is refused");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch);
    let hint = r#"CREATE UNIQUE INDEX ON "Sales ""Ops"""."Order-Lines" ("Line Key");"#;
    assert!(err.message.contains(hint), "{}", err.message);
    // The hint runs as printed, and then the upsert is accepted.
    pg.batch_execute(hint).await.expect("the hint is valid SQL");
    runner::run(config, options(false), Arc::new(Quiet)).await.expect("run").outcome().expect("upserts and reconciles");
    assert_eq!(pg_count(&pg, "\"Sales \"\"Ops\"\"\".\"Order-Lines\"").await, 2);
}

// --- 5. disable_index: drop, record, restore identical definitions, survive a crash ----------

async fn orders_with_indexes(rows: usize) -> (String, String, Client, Vec<(String, String)>) {
    let (sf_db, pg_db, pg) = orders(rows).await;
    pg.batch_execute(
        "CREATE INDEX orders_day ON public.orders (\"Day\" DESC NULLS LAST); \
         CREATE INDEX \"Orders Note\" ON public.orders (lower(\"Note\")) WHERE \"Flag\"; \
         CREATE UNIQUE INDEX orders_id_amount ON public.orders (\"Id\", \"Amount\"); \
         ALTER TABLE public.orders ADD CONSTRAINT orders_pk PRIMARY KEY (\"Code\")",
    )
    .await
    .unwrap();
    let before = index_defs(&pg).await;
    assert_eq!(before.len(), 5, "{before:?}"); // + the UNIQUE constraint of create_orders_target
    (sf_db, pg_db, pg, before)
}

#[tokio::test]
async fn disable_index_drops_secondary_indexes_and_restores_identical_definitions() {
    let (sf_db, pg_db, pg, before) = orders_with_indexes(900).await;
    let table = orders_table(Some(("Id", "int")), r#", "disable_index": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    let report = runner::run(config, options(false), Arc::new(Quiet)).await.expect("run");
    report.outcome().expect("run completes and reconciles");
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    assert_eq!(index_defs(&pg).await, before, "every index is back with its exact definition");
    let mut restored = report.merge.tables[0].indexes_restored.clone();
    restored.sort();
    assert_eq!(restored, vec!["public.Orders Note".to_string(), "public.orders_day".to_string()]);
    let recorded: Vec<(String, String)> = pg
        .query("SELECT index_name, status FROM migration_status.migration_index_status WHERE run_id = $1 ORDER BY 1", &[&report.plan.run_id])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(recorded, vec![("Orders Note".into(), "restored".into()), ("orders_day".into(), "restored".into())], "PK, unique and constraint indexes are never dropped");
}

#[tokio::test]
async fn l9_disable_index_crash_between_drop_and_restore_is_restored_on_resume() {
    let (sf_db, pg_db, pg, before) = orders_with_indexes(900).await;
    let table = orders_table(Some(("Id", "int")), r#", "disable_index": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    failpoints::arm(failpoints::INDEXES_AFTER_DROP, ErrorKind::ChunkFailed, 1);
    let crashed = runner::run(config.clone(), options(false), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!(crashed.failures.len(), 1);
    let during: Vec<String> = index_defs(&pg).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(during, vec!["orders_Code_key".to_string(), "orders_id_amount".to_string(), "orders_pk".to_string()], "secondary indexes dropped; PK, unique index and unique constraint kept");
    let dropped: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_index_status WHERE run_id = $1 AND status = 'dropped'", &[&crashed.plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(dropped, 2, "the definitions survive the crash in migration_status");

    let resumed = runner::run(config, options(false), Arc::new(Quiet)).await.expect("resume");
    resumed.outcome().expect("resume completes and reconciles");
    assert!(resumed.plan.resumed);
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    assert_eq!(index_defs(&pg).await, before);
    assert_eq!(resumed.merge.tables[0].indexes_restored.len(), 2);
    assert!(resumed.merge.tables[0].indexes_failed.is_empty());
}

#[tokio::test]
async fn disable_index_without_table_ownership_loads_with_indexes_in_place() {
    let (sf_db, pg_db, pg, before) = orders_with_indexes(300).await;
    // A loader role like production's: member of thaw_loader, not the table's owner.
    let role = unique("loader");
    pg.batch_execute(&format!(
        "CREATE ROLE \"{role}\" LOGIN PASSWORD 'loader-pw' IN ROLE thaw_loader; \
         GRANT USAGE ON SCHEMA public TO \"{role}\"; GRANT SELECT, INSERT, UPDATE, DELETE ON public.orders TO \"{role}\""
    ))
    .await
    .unwrap();
    let table = orders_table(Some(("Id", "int")), r#", "disable_index": true"#);
    let text = config_text(&sf_db, &pg_db, &[&table], "")
        .replace(r#""user": "${THAW_PG_USER}", "password": "${THAW_PG_PASSWORD}""#, &format!(r#""user": "{role}", "password": "loader-pw""#));
    let config = config(&text);
    let plan = thaw_engine::steps::plan(&config, &PlanRequest::default()).await.expect("plan as the loader");
    for item in thaw_engine::sync::manifest::read(&plan.manifest_uri).await.unwrap() {
        thaw_engine::steps::copy_chunk(&config, &item).await.expect("copy as the loader, indexes in place");
    }
    let merged = thaw_engine::steps::merge(&config, &thaw_engine::contract::RunRequest { run_id: plan.run_id }).await.expect("merge");
    assert_eq!(merged.tables[0].status, "completed");
    assert!(merged.tables[0].indexes_restored.is_empty());
    assert_eq!(pg_count(&pg, "public.orders").await, 300);
    assert_eq!(index_defs(&pg).await, before, "nothing was dropped");
    let recorded: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_index_status", &[]).await.unwrap().get(0);
    assert_eq!(recorded, 0);
}

// --- 6. the write path is decided when a chunk starts ------------------------------------------

#[tokio::test]
async fn l8_load_mode_decided_at_chunk_start_resume_after_partial_load_has_no_duplicate_keys() {
    let (sf_db, pg_db, pg) = orders(900).await;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], "")));
    thaw_engine::migrations::migrate_databases(&config).await.unwrap();
    // Plan on the empty target (the planner records load mode `copy`) and load only the first chunk.
    let plan = thaw_engine::steps::plan(&config, &PlanRequest::default()).await.expect("plan");
    let mode: String = pg.query_one("SELECT load_mode FROM migration_status.migration_table_status WHERE run_id = $1", &[&plan.run_id]).await.unwrap().get(0);
    assert_eq!(mode, "copy");
    let items: Vec<ChunkItem> = thaw_engine::sync::manifest::read(&plan.manifest_uri).await.unwrap();
    assert!(items.len() > 3);
    thaw_engine::steps::copy_chunk(&config, &items[0]).await.expect("first chunk");
    let partial = pg_count(&pg, "public.orders").await;
    assert!(partial > 0 && partial < 900);
    // Meanwhile a row of the loaded chunk moves (in the source) into a chunk not loaded yet:
    // under the stored `copy` mode its key would now be a duplicate.
    move_a_loaded_key_and_let_the_run_die(&sf_db, &pg, plan.run_id).await;
    let resumed = runner::run(config, options(false), Arc::new(Quiet)).await.expect("resume");
    assert!(resumed.plan.resumed);
    assert!(resumed.failures.is_empty(), "no duplicate-key failure: {:?}", resumed.failures);
    resumed.outcome().expect("reconciles");
    assert_eq!(pg_count(&pg, "public.orders").await, 900);
    let moved: i64 = pg.query_one("SELECT \"Id\" FROM public.orders WHERE \"Updated\" = '2026-06-01 00:00:00+00'", &[]).await.unwrap().get(0);
    assert_eq!(moved, 99_000_000, "the moved row was upserted, not duplicated");
    // The resumed chunks COPY straight into the target (a first load, docs/sync.md §4.1); only
    // the chunk holding the moved key meets the unique index, rolls back to its savepoint and
    // upserts within the same attempt: one row updated, no chunk retried.
    let chunks = pg
        .query(
            "SELECT rows_updated, retry_count, status FROM migration_status.migration_chunk_status WHERE run_id = $1 ORDER BY chunk_id",
            &[&plan.run_id],
        )
        .await
        .unwrap();
    let updated: i64 = chunks.iter().map(|r| r.get::<_, i64>(0)).sum();
    assert_eq!(updated, 1, "exactly the moved row is an update");
    // `retry_count` counts a chunk's attempts (each start adds one).
    let states: Vec<(i32, String)> = chunks.iter().map(|r| (r.get(1), r.get(2))).collect();
    assert!(states.iter().all(|(attempts, status)| *attempts == 1 && status == "completed"), "every chunk completed at its first attempt: {states:?}");
}

/// Moves the source row whose `"Id"` is 1 (loaded by the first chunk) to
/// key 99 000 000, which a chunk not loaded yet covers, and lets the
/// Lambda-style run `run_id` die as a crashed run would: it has no lock
/// session and a fresh heartbeat, so it counts as alive until its heartbeat
/// is an hour old (docs/sync.md §6.3).
async fn move_a_loaded_key_and_let_the_run_die(sf_db: &str, pg: &Client, run_id: uuid::Uuid) {
    let sf = thaw_engine::source::connect(&snowflake(), Some(sf_db), Some("S")).await.unwrap();
    sf.execute(&format!("UPDATE \"{sf_db}\".\"S\".\"ORDERS\" SET \"Id\" = 99000000, \"Updated\" = '2026-06-01 00:00:00+00:00' WHERE \"Id\" = 1"))
        .await
        .unwrap();
    pg.execute("UPDATE migration_status.migration_runs SET heartbeat_at = now() - interval '1 hour' WHERE run_id = $1", &[&run_id])
        .await
        .unwrap();
}

/// A replace load (`truncate_onstart` + `--allow-truncate`) whose source moved a key from a loaded
/// chunk into an unloaded one while the load ran: the shadow table has a unique index on the key
/// columns, so the chunk holding the moved key falls back to the upsert instead of putting the key
/// into the shadow twice (which failed the swap on the target's unique index at every resume).
#[tokio::test]
async fn replace_load_key_moved_between_chunks_during_load_is_upserted_in_the_shadow_and_swaps() {
    let (sf_db, pg, config) = replace_load_over_previous_rows().await;
    thaw_engine::migrations::migrate_databases(&config).await.unwrap();
    let request = PlanRequest { allow_truncate: true, ..Default::default() };
    let plan = thaw_engine::steps::plan(&config, &request).await.expect("plan");
    let (mode, truncated): (String, bool) = pg
        .query_one("SELECT load_mode, truncated FROM migration_status.migration_table_status WHERE run_id = $1", &[&plan.run_id])
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!((mode.as_str(), truncated), ("copy", true));
    let items: Vec<ChunkItem> = thaw_engine::sync::manifest::read(&plan.manifest_uri).await.unwrap();
    assert!(items.len() > 3);
    thaw_engine::steps::copy_chunk(&config, &items[0]).await.expect("first chunk");
    // The first chunk went into the shadow; the target keeps its previous rows.
    let old: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'old'", &[]).await.unwrap().get(0);
    assert_eq!((pg_count(&pg, "public.orders").await, old), (50, 50));
    // A row of the loaded chunk moves (in the source) into a chunk not loaded yet.
    move_a_loaded_key_and_let_the_run_die(&sf_db, &pg, plan.run_id).await;

    let resumed = runner::run(config, options(true), Arc::new(Quiet)).await.expect("resume");
    assert!(resumed.plan.resumed);
    assert!(resumed.failures.is_empty(), "no duplicate key in the shadow: {:?}", resumed.failures);
    resumed.outcome().expect("swaps in and reconciles clean");
    assert_eq!(pg_count(&pg, "public.orders").await, 900, "the source's rows replaced the previous ones");
    let left: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'old'", &[]).await.unwrap().get(0);
    assert_eq!(left, 0);
    let duplicated: i64 = pg
        .query_one("SELECT count(*) FROM (SELECT \"Code\" FROM public.orders GROUP BY 1 HAVING count(*) > 1) d", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(duplicated, 0);
    let moved: i64 = pg.query_one("SELECT \"Id\" FROM public.orders WHERE \"Updated\" = '2026-06-01 00:00:00+00'", &[]).await.unwrap().get(0);
    assert_eq!(moved, 99_000_000, "the moved row was upserted in the shadow, not duplicated");
    let updated: i64 = pg
        .query_one("SELECT sum(rows_updated)::bigint FROM migration_status.migration_chunk_status WHERE run_id = $1", &[&plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(updated, 1, "exactly the moved row is an update");
    let status: String =
        pg.query_one("SELECT status FROM migration_status.migration_table_status WHERE run_id = $1", &[&plan.run_id]).await.unwrap().get(0);
    assert_eq!(status, "completed");
    let shadows: i64 = pg.query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'thaw_staging'", &[]).await.unwrap().get(0);
    assert_eq!(shadows, 0, "the shadow was swapped in and dropped");
}

// --- 7. the retry budget rides out a PostgreSQL outage; deterministic errors fail fast ---------

/// Starts the outage when the first chunk completes (mid-copy).
struct OutageAfterFirstChunk {
    proxy: Arc<FlakyProxy>,
    started: AtomicBool,
    outage: Duration,
}

impl Observer for OutageAfterFirstChunk {
    fn chunk_done(&self, _response: &CopyChunkResponse) {
        if !self.started.swap(true, Ordering::SeqCst) {
            self.proxy.outage(self.outage);
        }
    }
}

#[tokio::test]
async fn retry_budget_rides_out_a_postgres_outage_mid_copy() {
    // 3000 rows in many chunks copied by two workers: when the first chunk completes,
    // most are still to copy, so the outage always falls in the middle of the copy.
    let (sf_db, pg_db, pg) = orders(3000).await;
    let proxy = Arc::new(FlakyProxy::start().await);
    let text = config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], "\"retry_budget_seconds\": 60,")
        .replace(r#""port": ${THAW_PG_PORT}"#, &format!(r#""port": {}"#, proxy.port));
    let config = Arc::new(config(&text));
    let outage = Duration::from_secs(10);
    let observer = Arc::new(OutageAfterFirstChunk { proxy, started: AtomicBool::new(false), outage });
    let started = Instant::now();
    let report = runner::run(config, RunOptions { max_workers: Some(2), ..options(false) }, observer).await.expect("run");
    assert!(report.failures.is_empty(), "every chunk rode out the outage: {:?}", report.failures);
    report.outcome().expect("reconciles");
    assert!(started.elapsed() >= outage, "the run spanned the outage");
    assert_eq!(pg_count(&pg, "public.orders").await, 3000);
    // Whether a chunk meets the outage mid-COPY (and is started twice) or while reconnecting
    // (and is started once) depends on timing; either way every chunk must end completed.
    let counts = retry_counts(&pg, report.plan.run_id).await;
    assert!(counts.len() > 2, "the copy has several chunks: {}", counts.len());
    let completed: i64 = pg
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE run_id = $1 AND status = 'completed'", &[&report.plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(completed as usize, counts.len(), "every chunk completed across the outage");
}

/// Terminates every backend of one database (SQLSTATE 57P01, "terminating
/// connection due to administrator command") when the 1st and the 4th chunk
/// complete, i.e. while the other chunks are copying.
struct TerminateBackends {
    database: String,
    done: std::sync::atomic::AtomicUsize,
}

impl Observer for TerminateBackends {
    fn chunk_done(&self, _response: &CopyChunkResponse) {
        let n = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1 || n == 4 {
            let db = self.database.clone();
            tokio::spawn(async move {
                let admin = pg("postgres").await;
                admin
                    .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", &[&db])
                    .await
                    .unwrap();
            });
        }
    }
}

#[tokio::test]
async fn retry_rides_out_terminated_backends_mid_copy() {
    let (sf_db, pg_db, pg) = orders(1500).await;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(Some(("Id", "int")), "")], "\"retry_budget_seconds\": 60,")));
    let observer = Arc::new(TerminateBackends { database: pg_db.clone(), done: std::sync::atomic::AtomicUsize::new(0) });
    let report = runner::run(config, options(false), observer).await.expect("run");
    assert!(report.failures.is_empty(), "every chunk rode out the terminations: {:?}", report.failures);
    report.outcome().expect("reconciles");
    let retried: i64 = thaw_test_support::pg(&pg_db)
        .await
        .query_one("SELECT count(*) FROM migration_status.migration_chunk_status WHERE run_id = $1 AND retry_count > 1", &[&report.plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert!(retried > 0, "chunks in flight were terminated and retried");
    drop(pg); // terminated with the others
    assert_eq!(pg_count(&thaw_test_support::pg(&pg_db).await, "public.orders").await, 1500);
}

#[tokio::test]
async fn l20_deterministic_error_fails_fast_without_retry() {
    let (sf_db, pg_db, pg) = orders(300).await;
    let table = orders_table(None, "");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "\"retry_budget_seconds\": 600, \"max_retry_attempts\": 5,")));
    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::ChunkFailed, 5);
    let started = Instant::now();
    let report = runner::run(config, options(false), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!(report.failures.len(), 1);
    assert_eq!(retry_counts(&pg, report.plan.run_id).await, vec![1], "one attempt only");
    let copy_seconds = report.steps.iter().find(|(s, _)| s == "copy").map(|(_, t)| *t).unwrap();
    assert!(copy_seconds < 10.0, "no backoff sleeps: copy took {copy_seconds} s");
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(pg_count(&pg, "public.orders").await, 0);
}
