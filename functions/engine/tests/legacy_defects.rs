//! The legacy copy tool's verified defects (docs/sync.md §12), one test per
//! defect that no other test already proves, each named after its number
//! (`l<N>_…`). The defects proved elsewhere carry their number in their own
//! test's name; docs/sync.md §12 lists every test, and
//! `tests/check_repository.py` checks that each numbered defect has one.
//! Run under the harness (`tests/run-rust-tests.sh`).

use std::sync::Arc;

use thaw_engine::contract::PlanRequest;
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_engine::{failpoints, ErrorKind};
use thaw_engine::source::predicate::{render, Dialect};
use thaw_engine::sync::chunk::{ChunkSpec, KeyColumn, KeyKind, KeyValue};
use thaw_test_support::*;
use tokio_postgres::Client;

fn options() -> RunOptions {
    RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }
}

/// Sessions ever opened to `pg`'s database (`pg_stat_database.sessions`, fresh snapshot).
async fn sessions(pg: &Client) -> i64 {
    pg.batch_execute("SELECT pg_stat_clear_snapshot()").await.unwrap();
    pg.query_one("SELECT sessions FROM pg_stat_database WHERE datname = current_database()", &[]).await.unwrap().get(0)
}

/// Make run `run_id` look started (and last heard of) `hours` ago.
async fn age(pg: &Client, run_id: uuid::Uuid, hours: i32) {
    pg.execute(
        "UPDATE migration_status.migration_runs SET started_at = now() - make_interval(hours => $2), \
         heartbeat_at = now() - make_interval(hours => $2) WHERE run_id = $1",
        &[&run_id, &hours],
    )
    .await
    .unwrap();
}

async fn run_status(pg: &Client, run_id: uuid::Uuid) -> String {
    pg.query_one("SELECT status FROM migration_status.migration_runs WHERE run_id = $1", &[&run_id]).await.unwrap().get(0)
}

/// L2: the resume window is 168 hours wherever thaw runs (the legacy CLI
/// resumed only runs younger than 12 hours, its Lambda 168): an unfinished
/// run started 100 hours ago is resumed by default, one started 200 hours
/// ago is not (a new run starts and copies everything).
#[tokio::test]
async fn l2_an_unfinished_run_from_100_hours_ago_is_resumed_and_one_from_200_hours_ago_is_not() {
    let (sf_db, pg_db, pg, sf) = orders("ltwo", 300).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ORDERS2\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\"")).await.unwrap();
    // One chunk fails: the run stays unfinished (partial).
    pg.batch_execute("CREATE TABLE public.orders_ok (LIKE public.orders INCLUDING ALL)").await.unwrap();
    let t1 = orders_table(Some(("Id", "int")), "");
    let t2 = t1.replace("\"source\": \"ORDERS\", \"target\": \"orders\"", "\"source\": \"ORDERS2\", \"target\": \"orders_ok\"");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&t1, &t2], "")));
    failpoints::arm(failpoints::COPY_CHUNK_BEFORE_COMMIT, ErrorKind::ChunkFailed, 1);
    let first = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("run");
    failpoints::clear();
    assert_eq!((first.status.as_str(), first.failures.len()), ("partial", 1), "{:?}", first.failures);
    let run_id = first.plan.run_id;

    age(&pg, run_id, 100).await;
    let resumed = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("resume");
    resumed.outcome().expect("the resumed run completes and reconciles");
    assert!(resumed.plan.resumed, "a 100-hour-old run is within the 168-hour window");
    assert_eq!(resumed.plan.run_id, run_id);
    assert_eq!((pg_count(&pg, "public.orders").await, pg_count(&pg, "public.orders_ok").await), (300, 300));

    // Make it unfinished again and 200 hours old: the next run is a new one.
    pg.execute("UPDATE migration_status.migration_runs SET status = 'partial' WHERE run_id = $1", &[&run_id]).await.unwrap();
    age(&pg, run_id, 200).await;
    let fresh = runner::run(config, options(), Arc::new(Quiet)).await.expect("new run");
    fresh.outcome().expect("a new run completes");
    assert!(!fresh.plan.resumed, "a 200-hour-old run is outside the window");
    assert_ne!(fresh.plan.run_id, run_id);
}

/// L3: planning a date-chunked table asks Snowflake a fixed few queries (the
/// table's size, then one aggregate grouped by day), not one COUNT per day
/// (the legacy tool's 11 minutes of planning). The emulator counts every
/// query naming the table while only the plan step runs, over 277 days.
#[tokio::test]
async fn l3_planning_a_date_chunked_table_asks_a_fixed_few_queries_not_one_count_per_day() {
    let (sf_db, pg_db, _pg, sf) = orders("lthree", 900).await;
    let days = sf
        .execute(&format!("SELECT COUNT(DISTINCT CAST(\"Day\" AS DATE)) FROM \"{sf_db}\".\"S\".\"ORDERS\""))
        .await
        .unwrap()[0][0]
        .clone()
        .unwrap()
        .parse::<u64>()
        .unwrap();
    assert!(days > 100, "{days} distinct days");
    let faults = EmulatorFaults::new();
    let counter = faults
        .add(serde_json::json!({"target": "query", "action": "http_500", "times": 0,
                                "sql_regex": format!(r#"FROM "{sf_db}"\."S"\."ORDERS""#)}))
        .await;
    let table = orders_table(Some(("Day", "timestamp_tz")), "");
    let config = config(&config_text(&sf_db, &pg_db, &[&table], ""));
    let plan = thaw_engine::sync::plan::plan_run(&config, &PlanRequest::default()).await.expect("plan");
    let (queries, faulted) = faults.counts(&counter).await;
    faults.remove(&counter).await;
    assert_eq!(faulted, 0);
    assert!(plan.chunks > 5, "{} chunks", plan.chunks);
    assert!((1..=3).contains(&queries), "{queries} planning queries named ORDERS for {days} days");
}

/// L7 (first half): `truncate_onstart` on a non-empty target without the
/// run-level `--allow-truncate` stops before anything is written, naming the
/// table and the flag; the target keeps its rows. (The legacy tool silently
/// skipped the truncation.) The reload with consent is
/// `l7_truncate_onstart_copy_failing_after_truncate_keeps_previous_rows_and_rerun_completes`.
#[tokio::test]
async fn l7_truncate_onstart_on_a_non_empty_target_without_consent_stops_and_changes_nothing() {
    let (sf_db, pg_db, pg, _sf) = orders("lseven", 200).await;
    pg.batch_execute(
        "INSERT INTO public.orders (\"Id\", \"Code\", \"Note\") \
         SELECT g, ('ffffffff-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'old' FROM generate_series(1, 20) g",
    )
    .await
    .unwrap();
    let table = orders_table(Some(("Id", "int")), r#", "truncate_onstart": true"#);
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    let err = runner::run(config, options(), Arc::new(Quiet)).await.expect_err("refused without --allow-truncate");
    assert_eq!(err.kind, ErrorKind::ConfigInvalid, "{err}");
    assert!(err.message.contains("--allow-truncate") && err.message.contains("orders"), "{err}");
    let old: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'old'", &[]).await.unwrap().get(0);
    assert_eq!((pg_count(&pg, "public.orders").await, old), (20, 20));
    // Refused before the run is recorded: no `failed` run for the next command to resume.
    let runs: i64 = pg.query_one("SELECT count(*) FROM migration_status.migration_runs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0, "bad input leaves no run behind");
}

/// L7 (second half): with `insert_only_mode`, a rerun over chunks that
/// already hold rows still inserts the chunks' new rows (the legacy tool
/// skipped a whole chunk on its first duplicate key) and leaves the existing
/// rows as they are.
#[tokio::test]
async fn l7_insert_only_rerun_inserts_the_new_rows_of_chunks_holding_existing_keys() {
    let (sf_db, pg_db, pg, sf) = orders("linsert", 400).await;
    let table = r#"{"source": "ORDERS", "target": "orders", "chunking_columns": ["Id"], "chunking_column_types": ["int"],
                    "uniqueness_columns": ["Code"], "insert_only_mode": true, "batch_size": 100}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    let first = runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run");
    first.outcome().expect("first run completes");
    assert_eq!(pg_count(&pg, "public.orders").await, 400);
    // New rows inside the key ranges of chunks that already loaded.
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"ORDERS\" (\"Id\", \"Code\", \"Note\", \"Updated\") VALUES \
         (5, 'bbbbbbbb-0000-4000-8000-000000000001', 'late', '2026-04-02 00:00:00+00:00'), \
         (150, 'bbbbbbbb-0000-4000-8000-000000000002', 'late', '2026-04-02 00:00:00+00:00'), \
         (250, 'bbbbbbbb-0000-4000-8000-000000000003', 'late', '2026-04-02 00:00:00+00:00')"
    ))
    .await
    .unwrap();
    let second = runner::run(config, options(), Arc::new(Quiet)).await.expect("second run");
    second.outcome().expect("second run completes and reconciles");
    assert!(second.plan.chunks > 1);
    assert_eq!(second.tables[0].rows_written, 3, "only the three new rows are inserted");
    let late: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'late'", &[]).await.unwrap().get(0);
    assert_eq!((pg_count(&pg, "public.orders").await, late), (403, 3));
}

/// L10: NUMBER columns holding NULLs and scaled NUMBERs holding whole values
/// land exactly in integer columns (pandas turned the first into floats such
/// as `4183560.0`, which integer targets reject, and lost digits past 2^53).
#[tokio::test]
async fn l10_nullable_and_scaled_whole_numbers_copy_exactly_into_integer_columns() {
    let sf_db = unique("SFLTEN").to_uppercase();
    let pg_db = unique("lten");
    let sf = fresh_sf(&sf_db).await;
    sf.execute(&format!(
        "CREATE TABLE \"{sf_db}\".\"S\".\"AMOUNTS\" (\"ID\" NUMBER(38,0), \"BIG\" NUMBER(38,0), \"SCALED\" NUMBER(12,5), \"SMALL\" NUMBER(10,0))"
    ))
    .await
    .unwrap();
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"AMOUNTS\" VALUES (1, 4183560, 123.00000, 7), (2, NULL, NULL, NULL), \
         (3, 9007199254740993, -5.00000, -3), (4, -9223372036854775808, 0.00000, 2147483647)"
    ))
    .await
    .unwrap();
    let pg = fresh_pg(&pg_db).await;
    pg.batch_execute("CREATE TABLE public.amounts (id int8 PRIMARY KEY, big int8, scaled int4, small int4)").await.unwrap();
    let table = r#"{"source": "AMOUNTS", "target": "amounts", "uniqueness_columns": ["ID"],
                    "column_mapping": {"ID": "id", "BIG": "big", "SCALED": "scaled", "SMALL": "small"}}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    runner::run(config, options(), Arc::new(Quiet)).await.expect("run").outcome().expect("copies and reconciles");
    type Row = (i64, Option<i64>, Option<i32>, Option<i32>);
    let rows: Vec<Row> = pg
        .query("SELECT id, big, scaled, small FROM public.amounts ORDER BY id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        rows,
        vec![
            (1, Some(4_183_560), Some(123), Some(7)),
            (2, None, None, None),
            (3, Some(9_007_199_254_740_993), Some(-5), Some(-3)),
            (4, Some(i64::MIN), Some(0), Some(i32::MAX)),
        ]
    );
}

/// L11: a row arriving late with the same watermark as the maximum already
/// copied is still copied by the next run (the legacy filter `>` missed it;
/// thaw reads `>=` and its upsert ignores rows it already holds).
#[tokio::test]
async fn l11_a_late_row_tying_the_watermark_maximum_is_copied_by_the_next_run() {
    let (sf_db, pg_db, pg, sf) = orders("leleven", 300).await;
    let table = orders_table(Some(("Updated", "timestamp_tz")), "");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    runner::run(config.clone(), options(), Arc::new(Quiet)).await.expect("first run").outcome().expect("first run reconciles");
    let max: String = pg
        .query_one("SELECT to_char(max(\"Updated\") AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM public.orders", &[])
        .await
        .unwrap()
        .get(0);
    sf.execute(&format!(
        "INSERT INTO \"{sf_db}\".\"S\".\"ORDERS\" (\"Id\", \"Code\", \"Note\", \"Updated\") VALUES \
         (900001, 'cccccccc-0000-4000-8000-000000000001', 'tie', '{max}+00:00')"
    ))
    .await
    .unwrap();
    let second = runner::run(config, options(), Arc::new(Quiet)).await.expect("second run");
    second.outcome().expect("second run reconciles");
    let tie: i64 = pg.query_one("SELECT count(*) FROM public.orders WHERE \"Note\" = 'tie'", &[]).await.unwrap().get(0);
    assert_eq!((tie, pg_count(&pg, "public.orders").await), (1, 301));
}

/// L13 and L19: a run keeps one PostgreSQL connection per worker for all its
/// chunks (the legacy tool opened one per statement: thousands per table),
/// and each worker queries Snowflake on its own session (the legacy tool
/// shared one session between threads; the emulator, like Snowflake, answers
/// concurrent statements on one session with "connection is busy").
#[tokio::test]
async fn l13_l19_four_workers_copy_forty_chunks_on_a_few_connections_each_with_its_own_session() {
    let (sf_db, pg_db, pg, _sf) = orders("lthirteen", 4000).await;
    let table = orders_table(Some(("Id", "int")), "");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&table], "")));
    let before = sessions(&pg).await;
    let report = runner::run(config, RunOptions { max_workers: Some(4), ..options() }, Arc::new(Quiet)).await.expect("run");
    report.outcome().expect("four workers copy and reconcile");
    assert!(report.plan.chunks >= 40, "{} chunks", report.plan.chunks);
    assert_eq!(pg_count(&pg, "public.orders").await, 4000);
    // Session counts are flushed when the backends exit; give them a moment.
    let mut opened = 0;
    for _ in 0..20 {
        opened = sessions(&pg).await - before;
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        if opened == sessions(&pg).await - before {
            break;
        }
    }
    // Four workers, plus the lock session, planning, merge and reconcile:
    // far fewer than the chunks (and than one per statement).
    assert!((1..=16).contains(&opened), "{opened} PostgreSQL sessions for {} chunks", report.plan.chunks);
}

/// L21: no chunk predicate thaw renders, for any strategy and either engine,
/// pages with LIMIT/OFFSET (non-deterministic when the order is not unique,
/// and rows shift between pages when the source changes).
#[test]
fn l21_no_chunk_predicate_pages_with_limit_or_offset() {
    let int = KeyColumn::new("Id", KeyKind::Integer);
    let day = KeyColumn::new("Day", KeyKind::Day);
    let text = KeyColumn::new("Code", KeyKind::Text);
    let specs = vec![
        ChunkSpec::All,
        ChunkSpec::NumericRange { column: int.clone(), from: Some(1), to: Some(100), with_nulls: true },
        ChunkSpec::NumericRange { column: int.clone(), from: None, to: None, with_nulls: false },
        ChunkSpec::DateRange {
            column: day,
            from: chrono::NaiveDate::from_ymd_opt(2026, 1, 1),
            to: chrono::NaiveDate::from_ymd_opt(2026, 2, 1),
            with_nulls: true,
        },
        ChunkSpec::KeysetRange { column: text.clone(), from: Some("a".into()), to: Some("m".into()), with_nulls: false },
        ChunkSpec::Values { column: int.clone(), values: vec![KeyValue::Integer(1), KeyValue::Integer(7)] },
        ChunkSpec::OtherValues { column: int, values: vec![KeyValue::Integer(1)], with_nulls: true },
        ChunkSpec::Nulls { column: text },
    ];
    for spec in &specs {
        for dialect in [Dialect::Snowflake, Dialect::Postgres] {
            let sql = render(spec, dialect).to_uppercase();
            assert!(!sql.contains("LIMIT") && !sql.contains("OFFSET"), "{spec:?} renders {sql}");
            assert!(!sql.is_empty());
        }
    }
}

/// L24: one failed chunk fails its table, whatever share of the chunks
/// succeeded (the legacy tool failed a table only below 50 % successful
/// chunks, and recognised "systemic" errors by message text): the table is
/// `failed` with the chunk's error, the run `partial`, never `completed`.
#[tokio::test]
async fn l24_one_failed_chunk_of_many_fails_its_table() {
    let (sf_db, pg_db, pg, sf) = orders("ltwentyfour", 900).await;
    sf.execute(&format!("CREATE TABLE \"{sf_db}\".\"S\".\"ORDERS2\" AS SELECT * FROM \"{sf_db}\".\"S\".\"ORDERS\"")).await.unwrap();
    pg.batch_execute(
        "CREATE TABLE public.orders_ok (LIKE public.orders INCLUDING ALL); \
         ALTER TABLE public.orders ALTER COLUMN \"Note\" TYPE varchar(20)",
    )
    .await
    .unwrap();
    // One row of one chunk is too long for the target's varchar(20).
    sf.execute(&format!(
        "UPDATE \"{sf_db}\".\"S\".\"ORDERS\" SET \"Note\" = 'a note much longer than twenty' WHERE \"Id\" = 42"
    ))
    .await
    .unwrap();
    let t1 = orders_table(Some(("Id", "int")), "");
    let t2 = t1.replace("\"source\": \"ORDERS\", \"target\": \"orders\"", "\"source\": \"ORDERS2\", \"target\": \"orders_ok\"");
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[&t1, &t2], "")));
    let report = runner::run(config, options(), Arc::new(Quiet)).await.expect("run");
    assert_eq!(report.status, "partial");
    assert_eq!(run_status(&pg, report.plan.run_id).await, "partial");
    let orders = report.tables.iter().find(|t| t.source_table == "ORDERS").expect("orders summary");
    assert!(orders.chunks > 5, "{} chunks", orders.chunks);
    assert_eq!(orders.failed_chunks, 1, "exactly the chunk holding Id 42 failed");
    let rows = pg
        .query(
            "SELECT target_table, status, coalesce(error_message, '') FROM migration_status.migration_table_status WHERE run_id = $1 ORDER BY 1",
            &[&report.plan.run_id],
        )
        .await
        .unwrap();
    let tables: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(tables.len(), 2);
    assert_eq!((tables[0].0.as_str(), tables[0].1.as_str()), ("orders", "failed"), "{tables:?}");
    assert!(tables[0].2.contains("\"Note\""), "the table's error names the column: {tables:?}");
    assert_eq!((tables[1].0.as_str(), tables[1].1.as_str()), ("orders_ok", "completed"), "{tables:?}");
}

/// L26: the legacy top-level `insert_only_mode` is accepted (old configs
/// keep loading) and, as in the legacy tool, ignored: only the per-table flag
/// counts. docs/sync.md §1.2 says so instead of leaving it silent.
#[test]
fn l26_top_level_insert_only_mode_is_accepted_and_only_the_per_table_flag_counts() {
    let t1 = r#"{"source": "A", "target": "a", "uniqueness_columns": ["ID"]}"#;
    let t2 = r#"{"source": "B", "target": "b", "uniqueness_columns": ["ID"], "insert_only_mode": true}"#;
    let text = config_text("DB", "db", &[t1, t2], r#""insert_only_mode": true,"#);
    let parsed = config(&text);
    let flags: Vec<bool> = parsed.sources[0].tables.iter().map(|t| t.insert_only_mode).collect();
    assert_eq!(flags, vec![false, true]);
}

/// L17: the legacy Lambda checked its 15-minute limit only between tables,
/// so a long table was killed mid-copy. thaw's state machine gives each
/// copy-chunk invocation exactly one chunk (or one staged file): every Map
/// state that invokes it selects one item's `chunk_id` and batches nothing,
/// so an invocation's work is bounded by the planner's chunk size.
#[test]
fn l17_each_copy_chunk_invocation_carries_exactly_one_chunk() {
    let path = repo_root().join("statemachines/sync.asl.json");
    let asl: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("read the state machine")).expect("ASL is JSON");
    let mut maps = Vec::new();
    fn collect<'a>(states: &'a serde_json::Value, out: &mut Vec<(&'a str, &'a serde_json::Value)>) {
        for (name, state) in states.as_object().into_iter().flatten() {
            if state["Type"] == "Map" {
                out.push((name, state));
                collect(&state["ItemProcessor"]["States"], out);
            }
            for branch in state["Branches"].as_array().into_iter().flatten() {
                collect(&branch["States"], out);
            }
        }
    }
    collect(&asl["States"], &mut maps);
    let copy_maps: Vec<_> = maps
        .iter()
        .filter(|(_, m)| m["ItemProcessor"]["States"].to_string().contains("${CopyChunkFunctionArn}"))
        .collect();
    assert!(!copy_maps.is_empty(), "the state machine copies through a Map");
    for (name, map) in copy_maps {
        assert!(map.get("ItemBatcher").is_none(), "{name} batches items: one invocation would copy several chunks");
        assert_eq!(map["ItemSelector"]["chunk_id.$"], "$$.Map.Item.Value.chunk_id", "{name} passes one chunk per item");
    }
}
