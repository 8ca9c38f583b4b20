//! Target tables and schema drift at plan time (docs/sync.md §3.6):
//! `create_tables` builds a missing target from the source's columns,
//! `schema_evolution: "add_columns"` adds new source columns, and without it
//! a new, dropped or retyped source column stops the plan with an error that
//! names the column and what to run, before anything is written.
//! (The CLI's exit code for drift: `functions/thaw/tests/bad_input.rs`.)

use std::sync::Arc;

use thaw_engine::contract::PlanRequest;
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::ErrorKind;
use thaw_test_support::*;
use tokio_postgres::Client;

fn options() -> RunOptions {
    RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }
}

async fn runs(pg: &Client) -> i64 {
    pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0)
}

/// `(column, format_type)` of `public.<table>` in column order.
async fn columns(pg: &Client, table: &str) -> Vec<(String, String)> {
    pg.query(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        &[&format!("public.{table}")],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// ORDERS with `rows` rows in a fresh emulator database, a fresh PostgreSQL
/// database (with the standard `public.orders` target when `target`).
async fn setup(prefix: &str, rows: usize, target: bool) -> (String, String, thaw_engine::source::SnowflakeSource, Client) {
    let sf_db = unique(&format!("SF{prefix}")).to_uppercase();
    let pg_db = unique(prefix);
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, rows).await;
    let pg = fresh_pg(&pg_db).await;
    if target {
        create_orders_target(&pg).await;
    }
    (sf_db, pg_db, sf, pg)
}

#[tokio::test]
async fn create_tables_builds_the_target_from_the_source_columns_and_loads_it() {
    let (sf_db, pg_db, _sf, pg) = setup("create", 300, false).await;
    let extra = r#", "column_mapping": {"Note": "note text"}, "exclude_columns": ["Flag"]"#;

    // Without create_tables: today's error, now with the DDL it would run; nothing written.
    let legacy = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, extra)], "")));
    let err = runner::run(legacy, options(), Arc::new(Quiet)).await.expect_err("a missing target is an error");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    let ddl = "CREATE TABLE \"public\".\"orders\" (\"Id\" numeric(38,0), \"Code\" varchar(100), \"Day\" timestamptz, \"Amount\" numeric(19,3), \
               \"note text\" varchar(50), \"Updated\" timestamptz, PRIMARY KEY (\"Code\"));";
    assert!(err.message.contains("does not exist in PostgreSQL"), "{err}");
    assert!(err.message.contains("\"create_tables\": true"), "{err}");
    assert!(err.message.contains(ddl), "{err}");
    assert_eq!(runs(&pg).await, 0);
    assert!(pg.query_opt("SELECT to_regclass('public.orders')::text", &[]).await.unwrap().unwrap().get::<_, Option<String>>(0).is_none());

    // With create_tables (top-level here): the table is created and loaded.
    let created = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, extra)], r#""create_tables": true,"#)));
    let report = runner::run(created.clone(), options(), Arc::new(Quiet)).await.expect("a report");
    report.outcome().expect("created, loaded and reconciled");
    assert_eq!(report.tables[0].rows_written, 300);
    assert_eq!(pg_count(&pg, "public.orders").await, 300);
    let want: Vec<(String, String)> = [
        ("Id", "numeric(38,0)"),
        ("Code", "character varying(100)"),
        ("Day", "timestamp with time zone"),
        ("Amount", "numeric(19,3)"),
        ("note text", "character varying(50)"),
        ("Updated", "timestamp with time zone"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(columns(&pg, "orders").await, want);
    let pk: Vec<String> = pg
        .query_one(
            "SELECT array_agg(a.attname::text) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indrelid = 'public.orders'::regclass AND i.indisprimary",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pk, vec!["Code".to_string()]);
    let notes: i64 = pg.query_one("SELECT count(\"note text\") FROM public.orders", &[]).await.unwrap().get(0);
    assert_eq!(notes, 240, "every fifth Note is NULL");
    let recorded: serde_json::Value = pg
        .query_one("SELECT plan -> 'ddl' FROM migration_status.migration_table_status WHERE run_id = $1", &[&report.plan.run_id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, serde_json::json!([ddl]), "the DDL is recorded with the table's plan");

    // The next run finds the table and changes nothing.
    let again = runner::run(created, options(), Arc::new(Quiet)).await.expect("a report");
    again.outcome().expect("second run is clean");
    assert_eq!(again.tables[0].rows_written, 0);
}

#[tokio::test]
async fn new_source_column_is_added_with_schema_evolution_add_columns() {
    let (sf_db, pg_db, sf, pg) = setup("addcol", 200, true).await;
    let table = orders_table(Some(("Updated", "timestamp_tz")), r#", "schema_evolution": "add_columns""#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");

    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    sf.execute(&format!("ALTER TABLE {fqn} ADD COLUMN \"Extra Count\" NUMBER(10,0)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} (\"Id\", \"Code\", \"Updated\", \"Extra Count\") VALUES \
         (9000001, 'bbbbbbbb-0000-4000-8000-000000000001', '2026-06-01 00:00:00+00:00', 7), \
         (9000002, 'bbbbbbbb-0000-4000-8000-000000000002', '2026-06-01 00:00:00+00:00', 8)"
    ))
    .await
    .unwrap();

    let second = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("second run");
    second.outcome().expect("the column is added, the new rows copied and reconciled");
    let cols = columns(&pg, "orders").await;
    assert_eq!(cols.last().unwrap(), &("Extra Count".to_string(), "bigint".to_string()), "{cols:?}");
    assert_eq!(pg_count(&pg, "public.orders").await, 202);
    let sum: i64 = pg.query_one("SELECT sum(\"Extra Count\")::int8 FROM public.orders", &[]).await.unwrap().get(0);
    assert_eq!(sum, 15);

    // A third run sees no drift: the column is part of the plan now.
    let third = runner::run(config, options(), Arc::new(Quiet)).await.expect("third run");
    third.outcome().expect("third run is clean");
    assert_eq!(third.tables[0].rows_written, 0);
}

#[tokio::test]
async fn dropped_source_column_is_an_error_naming_it() {
    let (sf_db, pg_db, sf, pg) = setup("dropcol", 150, true).await;
    let config1 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "")));
    runner::run(config1.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");
    let before = columns(&pg, "orders").await;

    sf.execute(&format!("ALTER TABLE \"{sf_db}\".\"S\".\"ORDERS\" DROP COLUMN \"Note\"")).await.unwrap();
    let err = runner::run(config1, options(), Arc::new(Quiet)).await.expect_err("a dropped source column stops the plan");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains("\"Note\" (copied into \"Note\")"), "{err}");
    assert!(err.message.contains("no longer exist in Snowflake"), "{err}");
    assert!(err.message.contains("exclude_columns"), "{err}");
    assert_eq!(runs(&pg).await, 1, "no run was recorded");
    assert_eq!(columns(&pg, "orders").await, before);
    assert_eq!(pg_count(&pg, "public.orders").await, 150);

    // Declaring the column PostgreSQL's own (exclude_columns) lets runs go on.
    let owned = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, r#", "exclude_columns": ["Note"]"#)], "")));
    let report = runner::run(owned, options(), Arc::new(Quiet)).await.expect("a report");
    report.outcome().expect("the PostgreSQL-owned column is left alone");
    assert_eq!(pg_count(&pg, "public.orders").await, 150);
}

/// Found when tried as a new user would: a target column the previous run
/// filled, renamed (or dropped) in PostgreSQL, was skipped without a word:
/// the source column stopped being copied and reconcile, comparing only the
/// copied columns, said "ok". It now stops the plan naming the column,
/// before anything is written; `exclude_columns` stops copying it on purpose.
#[tokio::test]
async fn target_column_the_previous_run_filled_renamed_away_is_an_error_naming_it() {
    let (sf_db, pg_db, _sf, pg) = setup("tgtgone", 150, true).await;
    let config1 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "")));
    runner::run(config1.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");

    pg.batch_execute("ALTER TABLE public.orders RENAME COLUMN \"Note\" TO note_old").await.unwrap();
    let err = runner::run(config1, options(), Arc::new(Quiet)).await.expect_err("a target column gone stops the plan");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains("target column(s) \"Note\" (filled from source column \"Note\") that the previous run copied no longer exist"), "{err}");
    assert!(err.message.contains("exclude_columns"), "{err}");
    assert_eq!(runs(&pg).await, 1, "no run was recorded");

    // Copying it no more, on purpose: runs and reconcile go on.
    let skipped = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, r#", "exclude_columns": ["Note"]"#)], "")));
    runner::run(skipped, options(), Arc::new(Quiet)).await.expect("a report").outcome().expect("an excluded column is not drift");
    // Renamed back, the column is copied again.
    pg.batch_execute("ALTER TABLE public.orders RENAME COLUMN note_old TO \"Note\"").await.unwrap();
    let config3 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "")));
    runner::run(config3, options(), Arc::new(Quiet)).await.expect("a report").outcome().expect("the target column is back");
}

#[tokio::test]
async fn retyped_source_column_is_an_error_naming_both_types() {
    let (sf_db, pg_db, sf, pg) = setup("retype", 150, true).await;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, "")], "")));
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");

    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    sf.execute(&format!("ALTER TABLE {fqn} DROP COLUMN \"Flag\"")).await.unwrap();
    sf.execute(&format!("ALTER TABLE {fqn} ADD COLUMN \"Flag\" DATE")).await.unwrap();
    let err = runner::run(config, options(), Arc::new(Quiet)).await.expect_err("a retyped source column stops the plan");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    assert!(err.message.contains("\"Flag\" is now Snowflake DATE (was BOOLEAN)"), "{err}");
    assert!(err.message.contains("target column \"Flag\" (bool)"), "{err}");
    assert_eq!(runs(&pg).await, 1, "no run was recorded");
    assert_eq!(pg_count(&pg, "public.orders").await, 150);
}

/// A Snowflake table `CASE1` created without quotes (upper-case columns
/// `ID`, `NOTE`, `UPD`; two rows) and a PostgreSQL `public.case1` created
/// without quotes (`id`, `note`, `upd`, empty): names that differ only in
/// case (docs/sync.md §4.6). Returns both clients.
async fn unquoted_case_tables(sf_db: &str, pg_db: &str) -> (thaw_engine::source::SnowflakeSource, Client) {
    let sf = fresh_sf(sf_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"CASE1\"");
    sf.execute(&format!("CREATE TABLE {fqn} (ID NUMBER(38,0), NOTE VARCHAR(20), UPD TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} VALUES (1, 'a', '2024-01-01'), (2, 'b', '2024-01-01')")).await.unwrap();
    let pg = fresh_pg(pg_db).await;
    pg.batch_execute("CREATE TABLE public.case1 (id int8 PRIMARY KEY, note text, upd timestamp)").await.unwrap();
    (sf, pg)
}

/// Found when probing as a new user: a Snowflake table created without
/// quotes (upper-case columns `ID`, `NOTE`, `UPD`) into a PostgreSQL table
/// created without quotes (`id`, `note`, `upd`): with `column_mapping` only
/// for the key, `NOTE` was silently not copied (target `note` all NULL, exit
/// 0, reconcile "ok" because it compares copied columns only) — the legacy
/// defect L18 again. Names that differ only in case now pair up when
/// unambiguous, keys and watermark included; an ambiguous name still needs
/// `column_mapping` (docs/sync.md §4.6).
#[tokio::test]
async fn upper_case_source_columns_fill_lower_case_target_columns() {
    let (sf_db, pg_db) = (unique("SFCASE").to_uppercase(), unique("casefold"));
    let (_sf, pg) = unquoted_case_tables(&sf_db, &pg_db).await;
    let table = r#"{"source": "CASE1", "target": "case1", "uniqueness_columns": ["ID"], "source_watermark": "UPD", "target_watermark": "upd"}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let report = runner::run(config, RunOptions { conflicts: false, ..Default::default() }, Arc::new(Quiet)).await.expect("run");
    report.outcome().expect("the run reconciles clean");
    let rows: Vec<(i64, Option<String>)> =
        pg.query("SELECT id, note FROM public.case1 ORDER BY id", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows, vec![(1, Some("a".into())), (2, Some("b".into()))], "NOTE fills note");
    let plan: serde_json::Value = pg.query_one("SELECT plan FROM migration_status.migration_table_status", &[]).await.unwrap().get(0);
    assert_eq!(plan["dropped_columns"], serde_json::json!([]));
}

/// A column added with `"add_columns"` holds NULL in the rows loaded before
/// it (their watermark did not move, docs/sync.md §3.6), while Snowflake may
/// hold a value there (a column added with a DEFAULT). The table's standing
/// verification no longer covers them: reconcile verifies the table whole,
/// reports the rows that differ (exit 3 in the CLI) and keeps doing so on the
/// following nights until a `--full` run copies the values; the nightly scope
/// used to check only the touched rows and a rolling slice and said "ok".
#[tokio::test]
async fn column_added_with_a_default_is_verified_in_every_row_until_a_full_run_copies_it() {
    let (sf_db, pg_db, sf, pg) = setup("addcoldefault", 120, true).await;
    let table = orders_table(Some(("Updated", "timestamp_tz")), r#", "schema_evolution": "add_columns""#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");

    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    sf.execute(&format!("ALTER TABLE {fqn} ADD COLUMN \"Region\" VARCHAR DEFAULT 'east'")).await.unwrap();
    let second = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("second run");
    assert_eq!(second.status, "mismatch", "{:?}", second.reconcile);
    let report = &second.reconcile_details[0];
    let coverage = report.coverage.as_ref().expect("coverage");
    assert_eq!(coverage.scope, "full", "{coverage:?}");
    assert!(coverage.reason.contains("\"Region\" added since the previous run"), "{}", coverage.reason);
    let diff = report.diff.as_ref().expect("a diff");
    // Every row but those the run re-read at the watermark's maximum (§3.2) lacks the new column's value.
    assert!(diff.changed_count >= 110 && diff.missing_count == 0 && diff.extra_count == 0, "{diff:?}");

    // The next night changes nothing: still verified whole, still a mismatch.
    let third = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("third run");
    assert_eq!(third.status, "mismatch", "{:?}", third.reconcile_details[0].coverage);
    assert_eq!(third.reconcile_details[0].coverage.as_ref().unwrap().scope, "full");

    // A --full run copies the column's values; the table is clean again and nightly afterwards.
    let full = RunOptions { request: PlanRequest { mode: thaw_engine::contract::SyncMode::Full, ..Default::default() }, conflicts: false, ..Default::default() };
    runner::run(config.clone(), full, Arc::new(Quiet)).await.expect("full run").outcome().expect("the full run is clean");
    let regions: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Region\" = 'east'", &[]).await.unwrap().get(0);
    assert_eq!(regions, 120);
    let nightly = runner::run(config, options(), Arc::new(Quiet)).await.expect("nightly run");
    nightly.outcome().expect("clean");
    assert_eq!(nightly.reconcile_details[0].coverage.as_ref().unwrap().scope, "nightly");
}

/// `create_tables` into a target schema that does not exist: one error
/// naming the schema, the database and the `CREATE SCHEMA` to run, before
/// anything is recorded. It used to record the run and fail it with
/// PostgreSQL's "schema … does not exist" from the `CREATE TABLE`, leaving a
/// `failed` run behind and no way out in the message.
#[tokio::test]
async fn create_tables_into_a_missing_schema_names_it_and_records_nothing() {
    let (sf_db, pg_db, _sf, pg) = setup("noschema", 40, false).await;
    let text = config_text(&sf_db, &pg_db, &[&orders_table(None, r#", "create_tables": true"#)], "")
        .replace(r#""target_pg_schema": "public""#, r#""target_pg_schema": "Not There""#);
    let err = runner::run(Arc::new(config(&text)), options(), Arc::new(Quiet)).await.expect_err("a missing schema is an error");
    assert_eq!(err.kind, ErrorKind::SchemaMismatch, "{err}");
    for part in ["target schema \"Not There\" does not exist", &pg_db, "CREATE SCHEMA \"Not There\"", "target_pg_schema"] {
        assert!(err.message.contains(part), "missing {part:?} in {err}");
    }
    assert_eq!(runs(&pg).await, 0, "no run was recorded");
}

/// Found by the sync model (`tests/sync_model.py` seed 3 with schema drift,
/// docs/sync.md §14): a column added by `"add_columns"` to a table with
/// `row_hashes` left the kept hashes of the rows the run did not rewrite
/// hashed over the old columns, so the run's reconcile (which reads them)
/// reported the table as a mismatch with 0 missing, 0 extra and 0 changed
/// rows, exit 3, although PostgreSQL held exactly what Snowflake held (the
/// new column NULL on both sides). Planning a table whose copied columns
/// changed now marks its row hashes incomplete, so reconcile hashes the rows
/// (and its whole-table check refills them).
#[tokio::test]
async fn a_column_added_to_a_table_with_row_hashes_does_not_make_its_unchanged_rows_differ() {
    let (sf_db, pg_db, sf, pg) = setup("addcolhash", 120, true).await;
    let table = orders_table(Some(("Updated", "timestamp_tz")), r#", "schema_evolution": "add_columns", "row_hashes": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");
    let complete: bool = pg.query_one("SELECT complete FROM migration_status.row_hash_tables", &[]).await.unwrap().get(0);
    assert!(complete, "the first load keeps every row's hash");

    // A new column, NULL in every row: nothing differs between the two sides.
    sf.execute(&format!("ALTER TABLE \"{sf_db}\".\"S\".\"ORDERS\" ADD COLUMN \"Late Note\" VARCHAR(30)")).await.unwrap();
    let second = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("second run");
    assert_eq!(second.status, "completed", "{:?}", second.reconcile_details[0].diff);
    let changed: Option<String> = pg
        .query_one("SELECT plan->>'columns_changed' FROM migration_status.migration_table_status ORDER BY started_at DESC LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(changed.as_deref(), Some("added \"Late Note\""));
    // The run's whole-table check hashed the rows and refilled the kept hashes from them.
    let (complete, reason): (bool, String) =
        pg.query_one("SELECT complete, reason FROM migration_status.row_hash_tables", &[]).await.map(|r| (r.get(0), r.get(1))).unwrap();
    assert!(complete && reason.contains("refilled from the rows"), "{reason}");

    // The next night reads the refilled hashes and stays clean.
    let third = runner::run(config, options(), Arc::new(Quiet)).await.expect("third run");
    assert_eq!(third.status, "completed", "{:?}", third.reconcile_details[0].diff);
}

/// Found by the sync model (`tests/sync_model.py` seed 5 with schema drift,
/// docs/sync.md §14): a dropped source column that `column_mapping` renames
/// stops the plan, and its message says to list it in `exclude_columns` if
/// PostgreSQL now owns it. Doing just that was refused with `source column
/// "Note", source column "Note" do(es) not exist` (the mapping's key and the
/// excluded name, checked against the source and the target's own names), so
/// the way out the first message gave led nowhere. An excluded column's
/// mapping names nothing thaw copies now; the target column it names is kept.
#[tokio::test]
async fn a_dropped_mapped_source_column_listed_in_exclude_columns_lets_runs_go_on() {
    let (sf_db, pg_db, sf, pg) = setup("dropmapped", 150, false).await;
    let mapped = r#", "create_tables": true, "column_mapping": {"Note": "note text"}"#;
    let config1 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, mapped)], "")));
    runner::run(config1.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");
    let notes = "SELECT count(\"note text\") FROM public.orders";
    let before: i64 = pg.query_one(notes, &[]).await.unwrap().get(0);
    assert!(before > 0);

    sf.execute(&format!("ALTER TABLE \"{sf_db}\".\"S\".\"ORDERS\" DROP COLUMN \"Note\"")).await.unwrap();
    let err = runner::run(config1, options(), Arc::new(Quiet)).await.expect_err("a dropped source column stops the plan");
    assert!(err.message.contains("\"Note\" (copied into \"note text\")") && err.message.contains("exclude_columns"), "{err}");

    // As the message says: exclude it (the mapping left as it was). The target column keeps its values.
    let owned = format!(r#"{mapped}, "exclude_columns": ["Note"]"#);
    let config2 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&orders_table(None, &owned)], "")));
    let report = runner::run(config2.clone(), options(), Arc::new(Quiet)).await.expect("an excluded dropped column is not drift");
    report.outcome().expect("the run is clean");
    // And on later nights, whose previous plan no longer copied it (seeds 23 and 26 of the model).
    runner::run(config2, options(), Arc::new(Quiet)).await.expect("a later run").outcome().expect("clean");
    let after: i64 = pg.query_one(notes, &[]).await.unwrap().get(0);
    assert_eq!(after, before, "PostgreSQL's column is left alone");
    assert_eq!(pg_count(&pg, "public.orders").await, 150);
}

/// Found by the sync model (`tests/sync_model.py` seeds 5 and 18 with schema
/// drift): the same dead end for a dropped source column whose target column
/// differs only in case (`NOTE` filling `note`, docs/sync.md §4.6): listed in
/// `exclude_columns` as the drift error says, it was refused as `source column
/// "NOTE" do(es) not exist` (neither the source nor the target has that exact name).
/// (The same for a column dropped while already excluded from a table thaw
/// created without it: seed 24.)
#[tokio::test]
async fn a_dropped_case_folded_source_column_listed_in_exclude_columns_lets_runs_go_on() {
    let (sf_db, pg_db) = (unique("SFCASEDROP").to_uppercase(), unique("casedrop"));
    let (sf, pg) = unquoted_case_tables(&sf_db, &pg_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"CASE1\"");
    let table = |extra: &str| {
        format!(r#"{{"source": "CASE1", "target": "case1", "uniqueness_columns": ["ID"], "source_watermark": "UPD", "target_watermark": "upd"{extra}}}"#)
    };
    let config1 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table("")], "")));
    runner::run(config1.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");

    sf.execute(&format!("ALTER TABLE {fqn} DROP COLUMN NOTE")).await.unwrap();
    let err = runner::run(config1, options(), Arc::new(Quiet)).await.expect_err("a dropped source column stops the plan");
    assert!(err.message.contains("\"NOTE\" (copied into \"note\")") && err.message.contains("exclude_columns"), "{err}");

    let config2 = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table(r#", "exclude_columns": ["NOTE"]"#)], "")));
    runner::run(config2.clone(), options(), Arc::new(Quiet)).await.expect("an excluded dropped column is not drift").outcome().expect("clean");
    runner::run(config2, options(), Arc::new(Quiet)).await.expect("a later run").outcome().expect("clean");
    let notes: i64 = pg.query_one("SELECT count(note) FROM public.case1", &[]).await.unwrap().get(0);
    assert_eq!(notes, 2, "PostgreSQL's column is left alone");
}

/// Found by the sync model (`tests/sync_model.py` seed 24): a column listed
/// in `exclude_columns`, so never copied (the table thaw created has no such
/// column), dropped from Snowflake: not drift, yet every later run was refused
/// as `source column "Note" do(es) not exist` (the name in neither table).
#[tokio::test]
async fn an_excluded_column_dropped_from_snowflake_is_not_drift() {
    let (sf_db, pg_db, sf, pg) = setup("dropexcluded", 80, false).await;
    let table = orders_table(None, r#", "create_tables": true, "exclude_columns": ["Note"]"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");
    sf.execute(&format!("ALTER TABLE \"{sf_db}\".\"S\".\"ORDERS\" DROP COLUMN \"Note\"")).await.unwrap();
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("an excluded column's drop is not drift").outcome().expect("clean");
    runner::run(config, options(), Arc::new(Quiet)).await.expect("a later run").outcome().expect("clean");
    assert_eq!(pg_count(&pg, "public.orders").await, 80);
}
