//! Incremental reruns load only rows past the watermark, upsert changes,
//! propagate deletes when the table opts in, and reconcile clean.


use std::sync::Arc;

use thaw_test_support::*;
use thaw_engine::contract::PlanRequest;
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::config::Config;
use thaw_engine::source::SnowflakeSource;

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

/// `thaw run --table T --where P`: only T's rows matching P are re-read and
/// upserted (other tables and other rows untouched), the predicate is
/// recorded, and the next run without a filter still applies the changes the
/// filtered run did not read although the filtered run raised the target's
/// maximum watermark past them.
#[tokio::test]
async fn where_run_reprocesses_one_table_and_does_not_advance_the_watermark_past_unread_rows() {
    let sf_db = unique("SFWHERE").to_uppercase();
    let pg_db = unique("where");
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, 1000).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    let fqn2 = format!("\"{sf_db}\".\"S\".\"ORDERS2\"");
    sf.execute(&format!("CREATE TABLE {fqn2} AS SELECT * FROM {fqn}")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    pg.batch_execute("CREATE TABLE public.orders2 (LIKE public.orders INCLUDING ALL)").await.unwrap();
    let t1 = orders_table(Some(("Id", "bigint")), "");
    let t2 = t1.replace("\"source\": \"ORDERS\", \"target\": \"orders\"", "\"source\": \"ORDERS2\", \"target\": \"orders2\"");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&t1, &t2], "")));
    let opts = |request: PlanRequest| RunOptions { request, conflicts: false, ..Default::default() };
    runner::run(config.clone(), opts(PlanRequest::default()), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run reconciles");

    // Outside the predicate: Id 100 changes first (older watermark); inside:
    // Ids 300-304 change later; the other table changes too.
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'outside', \"Updated\" = '2026-05-01 00:00:00+00:00' WHERE \"Id\" = 100")).await.unwrap();
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'inside', \"Updated\" = '2026-05-02 00:00:00+00:00' WHERE \"Id\" BETWEEN 300 AND 304")).await.unwrap();
    sf.execute(&format!("UPDATE {fqn2} SET \"Note\" = 'other table', \"Updated\" = '2026-05-03 00:00:00+00:00' WHERE \"Id\" = 7")).await.unwrap();
    let in_range: f64 = sf.execute(&format!("SELECT COUNT(*) FROM {fqn} WHERE \"Id\" BETWEEN 300 AND 399")).await.unwrap()[0][0].as_deref().unwrap().parse().unwrap();

    let predicate = r#""Id" BETWEEN 300 AND 399"#;
    let filtered = PlanRequest { tables: Some(vec!["orders".into()]), where_predicate: Some(predicate.into()), ..Default::default() };
    let report = runner::run(config.clone(), opts(filtered), Arc::new(Quiet)).await.expect("filtered run");
    // Every row of the range is read again (no watermark), the 5 changed ones written.
    assert_eq!(report.tables.len(), 1);
    assert_eq!(report.tables[0].rows_read, in_range as u64);
    assert_eq!(report.tables[0].rows_written, 5);
    let note = |table: &'static str, id: i64| {
        let pg = &pg;
        async move { pg.query_one(&format!("SELECT \"Note\" FROM public.{table} WHERE \"Id\" = $1"), &[&id]).await.unwrap().get::<_, Option<String>>(0) }
    };
    assert_eq!(note("orders", 302).await.as_deref(), Some("inside"));
    assert_ne!(note("orders", 100).await.as_deref(), Some("outside"), "a row outside the predicate was written");
    assert_ne!(note("orders2", 7).await.as_deref(), Some("other table"), "another table was touched");
    // The whole table is reconciled: the unread change outside the predicate is reported.
    assert_eq!(report.status, "mismatch", "{:?}", report.reconcile);
    // The predicate is recorded with the run and the table.
    let row = pg
        .query_one(
            "SELECT r.metadata->>'where', t.plan->>'run_filter', t.plan->>'watermark_floor' FROM migration_status.migration_runs r \
             JOIN migration_status.migration_table_status t USING (run_id) WHERE r.run_id = $1",
            &[&report.plan.run_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some(predicate));
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some(predicate));
    assert!(row.get::<_, Option<String>>(2).is_some_and(|f| f.contains("\"Updated\" >=")), "the floor is the watermark before the run");

    // The next ordinary run reads from the floor, not from the raised maximum:
    // Id 100's change (older than the filtered run's rows) is applied.
    let next = runner::run(config.clone(), opts(PlanRequest::default()), Arc::new(Quiet)).await.expect("next run");
    next.outcome().expect("the next run reconciles clean");
    assert_eq!(note("orders", 100).await.as_deref(), Some("outside"));
    assert_eq!(note("orders2", 7).await.as_deref(), Some("other table"));
    // After a complete unfiltered run the floor no longer applies.
    let after = runner::run(config, opts(PlanRequest::default()), Arc::new(Quiet)).await.expect("third run");
    after.outcome().expect("third run reconciles");
    let orders = after.tables.iter().find(|t| t.target == "public.orders").expect("orders copied");
    assert!(orders.rows_read <= 5, "only the rows on the new maximum are re-read, not everything since the floor: {}", orders.rows_read);
}

/// ORDERS with `rows` rows in a fresh emulator database (named after
/// `label`), copied into a fresh PostgreSQL target by a first run chunked on
/// "Id" that reconciled clean: the source session, its database, the target
/// and the config.
async fn orders_copied_once(label: &str, rows: usize) -> (SnowflakeSource, String, tokio_postgres::Client, Arc<Config>) {
    let sf_db = unique(&format!("SF{label}")).to_uppercase();
    let pg_db = unique(&label.to_lowercase());
    let sf = fresh_sf(&sf_db).await;
    create_orders(&sf, &sf_db, rows).await;
    let pg = fresh_pg(&pg_db).await;
    create_orders_target(&pg).await;
    let table = orders_table(Some(("Id", "bigint")), "");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    let first = RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), first, Arc::new(Quiet)).await.expect("first run").outcome().expect("first run reconciles");
    (sf, sf_db, pg, config)
}

/// Found when probing as a new user: a source row updated again without its
/// watermark moving (a DATE or second-granularity watermark, or a second
/// update within the same microsecond) is re-read by the next night
/// (`>=`), but the upsert applied only strictly newer watermarks, so the
/// change was skipped every night, `--full` included, and every reconcile
/// reported it (exit 3). An equal watermark now applies the row when it
/// differs (docs/sync.md §4.3); identical boundary rows stay no-ops.
#[tokio::test]
async fn a_row_updated_at_the_stored_maximum_watermark_is_applied_next_night() {
    let (sf, sf_db, pg, config) = orders_copied_once("EQWM", 200).await;
    let opts = |request| RunOptions { request, conflicts: false, ..Default::default() };

    // Two rows change without their watermark moving: the row holding the
    // stored maximum (re-read by the next incremental night) and an older one
    // (only a --full run re-reads it).
    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    let max_code: String = pg.query_one("SELECT \"Code\"::text FROM public.orders ORDER BY \"Updated\" DESC LIMIT 1", &[]).await.unwrap().get(0);
    let old_code: String = pg.query_one("SELECT \"Code\"::text FROM public.orders ORDER BY \"Updated\" LIMIT 1", &[]).await.unwrap().get(0);
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'same watermark' WHERE \"Code\" IN ('{max_code}', '{old_code}')")).await.unwrap();
    let note = |code: String| {
        let pg = &pg;
        async move {
            pg.query_one("SELECT \"Note\" FROM public.orders WHERE \"Code\"::text = $1", &[&code]).await.unwrap().get::<_, Option<String>>(0)
        }
    };

    let night = runner::run(config.clone(), opts(PlanRequest::default()), Arc::new(Quiet)).await.expect("incremental run");
    assert_eq!(night.tables[0].rows_written, 1, "only the changed boundary row is written, the identical boundary rows stay no-ops");
    assert_eq!(note(max_code.clone()).await.as_deref(), Some("same watermark"));
    assert_ne!(note(old_code.clone()).await.as_deref(), Some("same watermark"), "an incremental night does not re-read older watermarks");

    let full = PlanRequest { mode: thaw_engine::contract::SyncMode::Full, ..Default::default() };
    let full = runner::run(config, opts(full), Arc::new(Quiet)).await.expect("full run");
    full.outcome().expect("a --full run applies the older same-watermark change and reconciles clean");
    assert_eq!(full.tables[0].rows_written, 1);
    assert_eq!(note(old_code).await.as_deref(), Some("same watermark"));
}

/// Found when probing as a new user: a row inserted with a NULL watermark is
/// never read by an incremental night (`>=` is not true for NULL); the
/// documented remedy, `--where '"<watermark>" IS NULL'`, loads it, and
/// `--full` runs leave identical NULL-watermark rows alone instead of
/// rewriting (and counting) every one of them each time (docs/sync.md §3.2).
#[tokio::test]
async fn null_watermark_rows_are_loaded_by_a_where_is_null_run_and_left_alone_by_full_runs() {
    let (sf, sf_db, pg, config) = orders_copied_once("NULLWM", 100).await;
    let opts = |request| RunOptions { request, conflicts: false, ..Default::default() };

    let fqn = format!("\"{sf_db}\".\"S\".\"ORDERS\"");
    sf.execute(&format!(
        "INSERT INTO {fqn} VALUES (7000001, 'bbbbbbbb-0000-4000-8000-000000000001', NULL, 1.5, TRUE, 'no watermark', NULL), \
         (7000002, 'bbbbbbbb-0000-4000-8000-000000000002', NULL, 2.5, TRUE, 'no watermark', NULL)"
    ))
    .await
    .unwrap();
    let night = runner::run(config.clone(), opts(PlanRequest::default()), Arc::new(Quiet)).await.expect("incremental run");
    assert_eq!(night.tables[0].rows_written, 0, "an incremental night does not read NULL watermarks");
    assert_eq!(pg_count(&pg, "public.orders").await, 100);

    let nulls = PlanRequest { tables: Some(vec!["orders".into()]), where_predicate: Some("\"Updated\" IS NULL".into()), ..Default::default() };
    let loaded = runner::run(config.clone(), opts(nulls), Arc::new(Quiet)).await.expect("--where IS NULL run");
    loaded.outcome().expect("the --where run reconciles clean");
    assert_eq!(loaded.tables[0].rows_written, 2);
    assert_eq!(pg_count(&pg, "public.orders").await, 102);

    let full = PlanRequest { mode: thaw_engine::contract::SyncMode::Full, ..Default::default() };
    let full = runner::run(config, opts(full), Arc::new(Quiet)).await.expect("full run");
    full.outcome().expect("the full run reconciles clean");
    assert_eq!(full.tables[0].rows_read, 102);
    assert_eq!(full.tables[0].rows_written, 0, "identical rows, NULL watermarks included, are not rewritten");
    // The full run records where it started, for the next night (docs/sync.md §3.2).
    let at_plan: Option<String> = pg
        .query_one("SELECT plan->>'watermark_at_plan' FROM migration_status.migration_table_status ORDER BY started_at DESC LIMIT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert!(at_plan.as_deref().is_some_and(|p| p.starts_with("\"Updated\" >= ")), "{at_plan:?}");
}

/// Found when probing as a new user: night 1 fails one chunk; night 2
/// resumes night 1's run (the default) and finishes the failed chunk with
/// rows changed since, which raises the target's maximum watermark; a row
/// the source changed between the nights inside a chunk night 1 had already
/// completed has a watermark below that maximum, so night 3 (reading from
/// the maximum) never read it: lost for good, reconcile reporting it every
/// night. An incremental run now reads from the maximum as the previous run
/// saw it when it planned (docs/sync.md §3.2).
#[tokio::test]
async fn a_change_made_between_a_failed_night_and_its_resume_is_read_by_the_next_night() {
    let sf_db = unique("SFRESUMEWM").to_uppercase();
    let pg_db = unique("resumewm");
    let sf = fresh_sf(&sf_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"N\"");
    sf.execute(&format!("CREATE TABLE {fqn} (\"Id\" NUMBER(38,0), \"Note\" VARCHAR(50), \"Upd\" TIMESTAMP_NTZ)")).await.unwrap();
    let rows: Vec<String> = (1..=300).map(|i| format!("({i}, 'n{i}', '2024-01-01 00:00:00')")).collect();
    sf.execute(&format!("INSERT INTO {fqn} VALUES {}", rows.join(", "))).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    // "Note" holds at most 5 characters: a longer value fails its chunk.
    pg.batch_execute("CREATE TABLE public.n (\"Id\" int8 PRIMARY KEY, \"Note\" varchar(5), \"Upd\" timestamp)").await.unwrap();
    let table = r#"{"source": "N", "target": "n", "chunking_columns": ["Id"], "chunking_column_types": ["bigint"],
                    "uniqueness_columns": ["Id"], "source_watermark": "Upd", "target_watermark": "Upd", "batch_size": 100}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("first load").outcome().expect("first load reconciles");
    assert_eq!(pg_count(&pg, "public.n").await, 300);

    // Night 1: one row too long for its target column fails its chunk.
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'much too long', \"Upd\" = '2024-01-02 00:00:00' WHERE \"Id\" = 250")).await.unwrap();
    let night1 = runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("night 1 runs");
    assert!(night1.outcome().is_err(), "night 1 fails a chunk");

    // Between the nights: a row of a chunk night 1 completed changes, then the bad row is fixed later.
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'ok2', \"Upd\" = '2024-01-02 12:00:00' WHERE \"Id\" = 20")).await.unwrap();
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'fixed', \"Upd\" = '2024-01-03 00:00:00' WHERE \"Id\" = 250")).await.unwrap();
    let night2 = runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("night 2 runs");
    assert!(night2.plan.resumed, "night 2 resumes night 1's run");
    let note = |id: i64| {
        let pg = &pg;
        async move { pg.query_one("SELECT \"Note\" FROM public.n WHERE \"Id\" = $1", &[&id]).await.unwrap().get::<_, Option<String>>(0) }
    };
    assert_eq!(note(250).await.as_deref(), Some("fixed"));

    // Night 3 starts a new run: it must read row 20, whose watermark is below the target's maximum.
    let night3 = runner::run(config, opts(), Arc::new(Quiet)).await.expect("night 3 runs");
    assert!(!night3.plan.resumed);
    assert_eq!(note(20).await.as_deref(), Some("ok2"), "the change made between the nights is applied");
    night3.outcome().expect("night 3 reconciles clean");
}

/// Found when probing as a new user: the upsert compares the non-key columns
/// (`IS DISTINCT FROM`) of a table without a watermark, and now of rows with
/// an equal watermark; a `json` target column (a supported target of
/// VARIANT, docs/sync.md §5.2) has no equality operator, so every upsert
/// chunk of such a table failed ("could not identify an equality operator
/// for type json"). `json` columns compare as text.
#[tokio::test]
async fn upserts_into_a_table_with_a_json_column_compare_it_as_text() {
    let sf_db = unique("SFJSONUP").to_uppercase();
    let pg_db = unique("jsonup");
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let mut tables = Vec::new();
    for (name, watermark) in [("J", true), ("K", false)] {
        let fqn = format!("\"{sf_db}\".\"S\".\"{name}\"");
        sf.execute(&format!("CREATE TABLE {fqn} (\"Id\" NUMBER(38,0), \"Doc\" VARIANT, \"Upd\" TIMESTAMP_NTZ)")).await.unwrap();
        sf.execute(&format!(
            "INSERT INTO {fqn} SELECT 1, PARSE_JSON('{{\"a\": 1}}'), '2024-01-01 00:00:00' UNION ALL SELECT 2, PARSE_JSON('[1, 2]'), '2024-01-01 00:00:00'"
        ))
        .await
        .unwrap();
        let lower = name.to_lowercase();
        pg.batch_execute(&format!("CREATE TABLE public.{lower} (\"Id\" int8 PRIMARY KEY, \"Doc\" json, \"Upd\" timestamp)")).await.unwrap();
        let wm = if watermark { r#", "source_watermark": "Upd", "target_watermark": "Upd""# } else { "" };
        tables.push(format!(r#"{{"source": "{name}", "target": "{lower}", "uniqueness_columns": ["Id"]{wm}}}"#));
    }
    let refs: Vec<&str> = tables.iter().map(String::as_str).collect();
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &refs, "")));
    let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("first load").outcome().expect("first load reconciles");

    for name in ["J", "K"] {
        // A change without the watermark moving: the equal-watermark rule (J) and the no-watermark rule (K) compare the row.
        sf.execute(&format!("UPDATE \"{sf_db}\".\"S\".\"{name}\" SET \"Doc\" = PARSE_JSON('{{\"a\": 2}}') WHERE \"Id\" = 1")).await.unwrap();
    }
    let second = runner::run(config, opts(), Arc::new(Quiet)).await.expect("second run");
    second.outcome().expect("the upserts succeed and reconcile clean");
    for table in ["j", "k"] {
        let doc: String = pg.query_one(&format!("SELECT \"Doc\"::text FROM public.{table} WHERE \"Id\" = 1"), &[]).await.unwrap().get(0);
        assert_eq!(doc.replace(' ', ""), r#"{"a":2}"#, "{table}");
    }
    let written: u64 = second.tables.iter().map(|t| t.rows_written).sum();
    assert_eq!(written, 2, "only the changed row of each table is written");
}

/// The watermark predicate the only table of `run_id` read from (`migration_table_status.watermark_from`).
async fn watermark_from(pg: &tokio_postgres::Client, run_id: uuid::Uuid) -> String {
    pg.query_one("SELECT watermark_from FROM migration_status.migration_table_status WHERE run_id = $1", &[&run_id])
        .await
        .unwrap()
        .get(0)
}

/// The first column of every row of `sql`, as text.
async fn texts(pg: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    pg.query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

/// A DATE watermark copied into a `date` column is read back whatever the
/// target database's DateStyle: the maximum used to be read as
/// `max(col)::text`, which under `DateStyle = 'SQL, DMY'` is `03/01/2026`;
/// Snowflake's AUTO date format reads that as March 1, so every change
/// between January 3 and March 1 was skipped for good (the emulator refuses
/// the format, so here the night failed). Now the maximum is formatted
/// `YYYY-MM-DD` and the night reads the boundary day and everything after.
#[tokio::test]
async fn a_date_watermark_is_read_from_the_right_day_whatever_the_target_datestyle() {
    let sf_db = unique("SFDATEWM").to_uppercase();
    let pg_db = unique("datewm");
    let sf = fresh_sf(&sf_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"VISITS\"");
    sf.execute(&format!("CREATE TABLE {fqn} (\"VisitID\" NUMBER(38,0), \"Note\" VARCHAR(20), \"ChangedOn\" DATE)")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} VALUES (1, 'a', '2026-01-01'), (2, 'b', '2026-01-02'), (3, 'c', '2026-01-03')")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(&format!(
        "CREATE TABLE public.visits (\"VisitID\" int8 PRIMARY KEY, \"Note\" text, \"ChangedOn\" date); \
         ALTER DATABASE \"{pg_db}\" SET DateStyle = 'SQL, DMY'"
    ))
    .await
    .unwrap();
    let table = r#"{"source": "VISITS", "target": "visits", "uniqueness_columns": ["VisitID"],
                    "source_watermark": "ChangedOn", "target_watermark": "ChangedOn"}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run reconciles");

    // After the night: one row changes on the boundary day, one a few weeks later, one is new.
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'same day' WHERE \"VisitID\" = 3")).await.unwrap();
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'later', \"ChangedOn\" = '2026-01-20' WHERE \"VisitID\" = 1")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} VALUES (4, 'new', '2026-02-10')")).await.unwrap();
    let night = runner::run(config, opts(), Arc::new(Quiet)).await.expect("second run");
    night.outcome().expect("the night applies every change and reconciles clean");
    assert_eq!(night.tables[0].rows_read, 3, "the boundary day and the two later rows, not the older day");
    let floor = watermark_from(&pg, night.plan.run_id).await;
    assert_eq!(floor, "\"ChangedOn\" >= CAST('2026-01-03' AS DATE)");
    let notes = texts(&pg, "SELECT \"Note\" FROM public.visits ORDER BY \"VisitID\"").await;
    assert_eq!(notes, ["later", "b", "same day", "new"]);
}

#[tokio::test]
async fn a_float_watermark_is_read_exactly_whatever_the_target_extra_float_digits() {
    let sf_db = unique("SFFLOATWM").to_uppercase();
    let pg_db = unique("floatwm");
    let sf = fresh_sf(&sf_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"READINGS\"");
    sf.execute(&format!("CREATE TABLE {fqn} (\"ReadingID\" NUMBER(38,0), \"Note\" VARCHAR(20), \"Version\" FLOAT)")).await.unwrap();
    // 1.2345678901234567 printed with 15 significant digits (extra_float_digits = 0)
    // is 1.23456789012346, above the stored maximum: its row would be skipped.
    sf.execute(&format!("INSERT INTO {fqn} VALUES (1, 'a', 1.0), (2, 'b', 1.2345678901234567)")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute(&format!(
        "CREATE TABLE public.readings (\"ReadingID\" int8 PRIMARY KEY, \"Note\" text, \"Version\" float8); \
         ALTER DATABASE \"{pg_db}\" SET extra_float_digits = 0"
    ))
    .await
    .unwrap();
    let table = r#"{"source": "READINGS", "target": "readings", "uniqueness_columns": ["ReadingID"],
                    "source_watermark": "Version", "target_watermark": "Version"}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run reconciles");

    // A change at the stored maximum (the watermark did not move) is re-read (`>=`).
    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'same version' WHERE \"ReadingID\" = 2")).await.unwrap();
    let night = runner::run(config, opts(), Arc::new(Quiet)).await.expect("second run");
    night.outcome().expect("the night applies the change and reconciles clean");
    let floor = watermark_from(&pg, night.plan.run_id).await;
    assert_eq!(floor, "\"Version\" >= 1.2345678901234567");
    assert_eq!(night.tables[0].rows_read, 1, "the row at the maximum, not the older one");
    let notes = texts(&pg, "SELECT \"Note\" FROM public.readings ORDER BY \"ReadingID\"").await;
    assert_eq!(notes, ["a", "same version"]);
}

/// Found by the sync model (`tests/sync_model.py` seed 30, docs/sync.md §14):
/// a NUMBER watermark kept in a `text` target column (a pair §5.2 accepts).
/// The upsert applied a row only when its incoming watermark was greater than
/// the stored one, compared as text: an update from watermark 9 to 10 (or
/// 86400124456 to 172800124457) lost the comparison ('10' < '9'), was counted
/// "unchanged" and never written, the run's reconcile reporting the row as
/// changed every night after. The watermark now compares as a number.
#[tokio::test]
async fn a_number_watermark_kept_in_a_text_column_applies_an_update_whose_watermark_gains_a_digit() {
    let sf_db = unique("SFTEXTWM").to_uppercase();
    let pg_db = unique("textwm");
    let sf = fresh_sf(&sf_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"T\"");
    sf.execute(&format!("CREATE TABLE {fqn} (\"Id\" NUMBER(10,0), \"Note\" VARCHAR(20), \"Version\" NUMBER(18,0))")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} VALUES (1, 'old', 9), (2, 'old', 9)")).await.unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.t (\"Id\" int8 PRIMARY KEY, \"Note\" text, \"Version\" text)").await.unwrap();
    let table = r#"{"source": "T", "target": "t", "uniqueness_columns": ["Id"], "source_watermark": "Version", "target_watermark": "Version"}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let opts = || RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() };
    runner::run(config.clone(), opts(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run is clean");

    sf.execute(&format!("UPDATE {fqn} SET \"Note\" = 'new', \"Version\" = 10 WHERE \"Id\" = 1")).await.unwrap();
    let second = runner::run(config, opts(), Arc::new(Quiet)).await.expect("second run");
    assert_eq!(second.status, "completed", "{:?}", second.reconcile_details[0].diff);
    assert_eq!(texts(&pg, "SELECT \"Note\" || '@' || \"Version\" FROM public.t ORDER BY \"Id\"").await, vec!["new@10", "old@9"]);
}
