//! Nightly reconcile proportional to change (docs/reconcile.md §5): after
//! an incremental run only the rows the run touched plus a rolling slice of
//! the key-hash space are verified; a difference outside the touched rows is
//! found within the period's slices; `full` finds it at once; source deletes
//! are found by the key census and propagated without a row diff of the
//! table. Against the emulator and PostgreSQL.
//!
//! Run under the harness: `python3 tests/harness.py run -- cargo nextest run -p thaw-engine --test integration reconcile_nightly::`.

use std::sync::Arc;

use thaw_engine::contract::{PlanRequest, RunRequest};
use thaw_engine::reconcile::{self, ReconcileOptions, TableCoverage};
use thaw_engine::runner::{self, Quiet, RunOptions};
use thaw_test_support::*;

const ROWS: u64 = 20_000;

/// One night: `thaw run` of `config` without conflict detection.
async fn night(config: &Arc<thaw_engine::config::Config>) -> runner::RunReport {
    runner::run(config.clone(), RunOptions { request: PlanRequest::default(), conflicts: false, ..Default::default() }, Arc::new(Quiet)).await.unwrap()
}

fn coverage(details: &[reconcile::TableReport]) -> TableCoverage {
    details[0].coverage.clone().expect("the table was reconciled")
}

#[tokio::test]
async fn nightly_reconcile_reads_the_touched_rows_and_a_slice_and_finds_every_difference_within_the_period() {
    let (sf_db, pg_db) = (unique("SFNIT").to_uppercase(), unique("nit"));
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"ITEMS\"");
    sf.execute(&format!("CREATE OR REPLACE TABLE {fqn} (\"ID\" NUMBER(38,0), \"NOTE\" VARCHAR(50), \"UPDATED\" TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} SELECT SEQ4() + 1, 'note ' || SEQ4(), DATEADD(second, SEQ4(), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) FROM TABLE(GENERATOR(ROWCOUNT => {ROWS}))"
    ))
    .await
    .unwrap();
    pg.batch_execute("CREATE TABLE public.items (\"ID\" int8 PRIMARY KEY, \"NOTE\" varchar(50), \"UPDATED\" timestamp)").await.unwrap();
    let table = r#"{"source": "ITEMS", "target": "items", "uniqueness_columns": ["ID"], "source_watermark": "UPDATED", "target_watermark": "UPDATED",
                    "propagate_deletes": true, "batch_size": 5000}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));

    // Night 1: nothing verified yet, so the whole table is.
    let first = night(&config).await;
    first.outcome().expect("clean first night");
    let c = coverage(&first.reconcile_details);
    assert_eq!((c.scope.as_str(), c.rows_verified, c.rows_transferred), ("full", ROWS, 0), "{c:?}");
    assert!(c.reason.contains("first verification"), "{c:?}");
    assert_eq!(c.freshness_hours.map(|h| h < 1.0), Some(true));

    // Night 2: 10 rows change. Only the touched rows (the 10 plus the row on the
    // old watermark, re-read by >=) and one seventh of the key-hash space are verified.
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'changed', \"UPDATED\" = '2025-01-01 00:00:00' WHERE \"ID\" <= 10")).await.unwrap();
    let second = night(&config).await;
    second.outcome().expect("clean second night");
    let c = coverage(&second.reconcile_details);
    assert_eq!(c.scope, "nightly", "{c:?}");
    let slice = c.slice.expect("a nightly reconcile has a slice");
    assert_eq!((slice.lo, slice.hi), (0, reconcile::HASH_SPACE.div_ceil(7)));
    let slice_rows = c.rows_verified - 11;
    assert!((ROWS / 7 * 8 / 10..=ROWS / 7 * 12 / 10).contains(&slice_rows), "about a seventh of {ROWS} rows in the slice, got {slice_rows}: {c:?}");
    assert_eq!((c.rows_transferred, c.key_census), (0, false), "a clean night moves only aggregates: {c:?}");
    assert_eq!(second.reconcile.as_ref().unwrap().tables[0].source_rows, ROWS);
    let run_id = second.plan.run_id;

    // Source deletes: the counts differ, the key census finds the three keys and
    // deletes them; only keys of the differing ranges cross the network.
    sf.execute(&format!("DELETE FROM {fqn} WHERE \"ID\" IN (100, 5000, 15000)")).await.unwrap();
    let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
    assert_eq!(summary.tables[0].status, "ok", "{summary:?}");
    assert_eq!((summary.tables[0].source_rows, summary.tables[0].target_rows), (ROWS - 3, ROWS - 3));
    let d = details[0].diff.as_ref().expect("the deletes are reported");
    assert_eq!((d.extra_count, d.deleted, d.missing_count, d.changed_count), (3, 3, 0, 0));
    let mut extra = d.extra.clone();
    extra.sort();
    assert_eq!(extra, ["100", "15000", "5000"]);
    let c = coverage(&details);
    assert!(c.key_census);
    assert!(c.rows_transferred <= 2 * 3 * (ROWS / 32) * 13 / 10, "keys of at most three of 32 ranges, both sides: {c:?}");

    // A difference outside the touched rows (the watermark is left alone):
    // --full finds it at once ...
    pg.batch_execute("UPDATE public.items SET \"NOTE\" = 'tampered' WHERE \"ID\" = 4321").await.unwrap();
    let full = ReconcileOptions { full: true, ..Default::default() };
    let (summary, details) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, full).await.unwrap();
    assert_eq!(summary.tables[0].status, "mismatch");
    assert_eq!(coverage(&details).scope, "full");
    assert_eq!(details[0].diff.as_ref().unwrap().changed, ["4321"]);
    // ... and the nightly slices find it within the period (7 slices), the
    // slices before it verifying clean and moving on.
    let mut found_on = None;
    for night in 1..=7 {
        let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
        if summary.tables[0].status == "mismatch" {
            assert_eq!(details[0].diff.as_ref().unwrap().changed, ["4321"]);
            found_on = Some(night);
            break;
        }
        assert_eq!(summary.tables[0].status, "ok");
    }
    assert!(found_on.is_some(), "a difference anywhere is found within the period's slices");
    // The coverage is stored per table (V14): the rolling position moved on.
    let position: i64 =
        pg.query_one("SELECT rolling_position FROM migration_status.reconcile_coverage WHERE target = 'public.items'", &[]).await.unwrap().get(0);
    assert!(position > 0, "the clean slices advanced the rolling position");
}

/// Decision R1 (docs/reconcile.md §1): an `insert_only_mode` table keeps
/// each row as first copied while the source updates it, so its values
/// differ from Snowflake by design. Reconcile compares its keys only: the
/// nights after source updates are clean (the run exited 3 every night
/// before, found by the sync model), also with row hashes kept, and a
/// missing or extra key is still found, nightly and with `full`.
#[tokio::test]
async fn insert_only_table_is_reconciled_on_its_keys_and_a_lost_row_is_still_found() {
    let (sf_db, pg_db) = (unique("SFINSONLY").to_uppercase(), unique("insonly"));
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"EVENTS\"");
    sf.execute(&format!("CREATE OR REPLACE TABLE {fqn} (\"ID\" NUMBER(38,0), \"NOTE\" VARCHAR(50), \"UPDATED\" TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} SELECT SEQ4() + 1, 'first ' || SEQ4(), DATEADD(second, SEQ4(), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) FROM TABLE(GENERATOR(ROWCOUNT => 1000))"
    ))
    .await
    .unwrap();
    let table = r#"{"source": "EVENTS", "target": "events", "uniqueness_columns": ["ID"], "source_watermark": "UPDATED", "target_watermark": "UPDATED",
                    "insert_only_mode": true, "create_tables": true, "row_hashes": true, "batch_size": 300}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    night(&config).await.outcome().expect("clean first night");

    // Night 2: the source updates 20 rows and adds 5; the target keeps the 20 as first copied.
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'updated', \"UPDATED\" = '2025-01-01 00:00:00' WHERE \"ID\" <= 20")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} SELECT 1000 + SEQ4() + 1, 'new', '2025-01-01 00:00:00'::TIMESTAMP_NTZ FROM TABLE(GENERATOR(ROWCOUNT => 5))"))
        .await
        .unwrap();
    let second = night(&config).await;
    second.outcome().expect("updates the table never applies are not a mismatch");
    let c = coverage(&second.reconcile_details);
    assert!(c.reason.contains("insert_only_mode: keys compared"), "{c:?}");
    let kept: (i64, i64, i64) = pg
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE \"NOTE\" = 'updated'), count(*) FILTER (WHERE \"NOTE\" = 'new') FROM public.events",
            &[],
        )
        .await
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .unwrap();
    assert_eq!(kept, (1005, 0, 5), "the new keys inserted, the updated rows kept as first copied");
    let run_id = second.plan.run_id;
    let (summary, _) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, ReconcileOptions { full: true, ..Default::default() }).await.unwrap();
    assert_eq!(summary.tables[0].status, "ok", "full, keys only: {summary:?}");

    // A row lost from the target (the counts differ: the key census finds it), nightly and full.
    pg.batch_execute("DELETE FROM public.events WHERE \"ID\" = 500").await.unwrap();
    for full in [false, true] {
        let (summary, details) = reconcile::reconcile_run_with(&config, &RunRequest { run_id }, ReconcileOptions { full, ..Default::default() }).await.unwrap();
        assert_eq!(summary.tables[0].status, "mismatch", "full {full}: {summary:?}");
        let d = details[0].diff.as_ref().expect("the lost row is reported");
        assert_eq!((d.missing.clone(), d.extra_count, d.changed_count), (vec!["500".to_string()], 0, 0), "full {full}");
    }
}

/// A table of 200 rows (`ID`, `NOTE`, `UPDATED`) with `propagate_deletes`,
/// copied whole, then rows 1–10 updated in Snowflake and copied by an
/// incremental night whose reconcile is nightly and clean. Returns the
/// Snowflake table's name, the target database, the config and that run.
async fn after_an_incremental_night(name: &str) -> (thaw_engine::source::SnowflakeSource, tokio_postgres::Client, String, Arc<thaw_engine::config::Config>, uuid::Uuid) {
    let (sf_db, pg_db) = (unique(&format!("SF{name}")).to_uppercase(), unique(name));
    let sf = fresh_sf(&sf_db).await;
    let pg = fresh_pg(&pg_db).await;
    let fqn = format!("\"{sf_db}\".\"S\".\"ITEMS\"");
    sf.execute(&format!("CREATE OR REPLACE TABLE {fqn} (\"ID\" NUMBER(38,0), \"NOTE\" VARCHAR(50), \"UPDATED\" TIMESTAMP_NTZ)")).await.unwrap();
    sf.execute(&format!(
        "INSERT INTO {fqn} SELECT SEQ4() + 1, 'note ' || SEQ4(), DATEADD(second, SEQ4(), '2024-01-01 00:00:00'::TIMESTAMP_NTZ) FROM TABLE(GENERATOR(ROWCOUNT => 200))"
    ))
    .await
    .unwrap();
    let table = r#"{"source": "ITEMS", "target": "items", "uniqueness_columns": ["ID"], "source_watermark": "UPDATED", "target_watermark": "UPDATED",
                    "propagate_deletes": true, "create_tables": true}"#;
    let config = Arc::new(config(&config_text(&sf_db, &pg_db, &[table], "")));
    night(&config).await.outcome().expect("clean first night");
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'changed', \"UPDATED\" = '2025-01-01 00:00:00' WHERE \"ID\" <= 10")).await.unwrap();
    let second = night(&config).await;
    second.outcome().expect("clean second night");
    assert_eq!(coverage(&second.reconcile_details).scope, "nightly");
    (sf, pg, fqn, config, second.plan.run_id)
}

/// The touched rows of a nightly reconcile are those at or above the run's
/// watermark bound on either side (docs/reconcile.md §5.1), so a row can be
/// touched on one side only: a back-dated correction in Snowflake (its
/// watermark moved into the past) leaves the source row out while its target
/// row is in, and a source update after the run puts the source row in while
/// its target row is out. Such a key is on both sides and is a changed row.
/// It was reported `extra` (and, with `propagate_deletes`, deleted from the
/// target although Snowflake holds it) or `missing`; found by the reconcile
/// model (tests/reconcile_model.py, seeds 1 and 2).
#[tokio::test]
async fn a_row_touched_on_one_side_only_is_a_changed_row_and_is_never_deleted() {
    let (sf, pg, fqn, config, run_id) = after_an_incremental_night("oneside").await;
    // Row 5 (copied tonight, so touched in PostgreSQL): corrected in Snowflake with
    // an old watermark. Row 150 (an old row): updated in Snowflake after the run.
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'corrected', \"UPDATED\" = '2023-06-01 00:00:00' WHERE \"ID\" = 5")).await.unwrap();
    sf.execute(&format!("UPDATE {fqn} SET \"NOTE\" = 'later', \"UPDATED\" = '2025-02-01 00:00:00' WHERE \"ID\" = 150")).await.unwrap();
    let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
    assert_eq!(summary.tables[0].status, "mismatch", "{summary:?}");
    let d = details[0].diff.as_ref().expect("the two rows are reported");
    assert_eq!((d.missing_count, d.extra_count, d.deleted), (0, 0, 0), "{d:?}");
    assert_eq!(d.changed, ["150", "5"], "{d:?}");
    let notes: Vec<(String, String)> = d.changed_rows.iter().flat_map(|r| r.columns.iter().map(|c| (c.column.clone(), c.source.clone().unwrap_or_default()))).collect();
    assert!(notes.contains(&("NOTE".into(), "corrected".into())) && notes.contains(&("NOTE".into(), "later".into())), "{d:?}");
    let kept: i64 = pg.query_one("SELECT count(*) FROM public.items WHERE \"ID\" = 5", &[]).await.unwrap().get(0);
    assert_eq!(kept, 1, "a row Snowflake holds is never deleted");
}

/// Equal counts skip the key census (docs/reconcile.md §5.2), but they can
/// be equal because a row is missing while another is extra. When the
/// touched rows or the slice find the extra one and `propagate_deletes`
/// deletes it, the counts differ: the census runs then and finds the
/// missing row. Before, the table was `ok` with 200 rows in Snowflake and
/// 199 in PostgreSQL; found by the reconcile model (seed 10).
#[tokio::test]
async fn a_row_missing_behind_equal_counts_is_found_once_a_propagated_delete_makes_them_differ() {
    let (sf, pg, fqn, config, run_id) = after_an_incremental_night("behindcounts").await;
    // Row 3 (touched tonight) deleted in Snowflake; row 500 arrives late with an old watermark.
    sf.execute(&format!("DELETE FROM {fqn} WHERE \"ID\" = 3")).await.unwrap();
    sf.execute(&format!("INSERT INTO {fqn} SELECT 500, 'late', '2023-01-01 00:00:00'::TIMESTAMP_NTZ")).await.unwrap();
    let (summary, details) = reconcile::reconcile_run(&config, &RunRequest { run_id }).await.unwrap();
    let t = &summary.tables[0];
    assert_eq!((t.status.as_str(), t.source_rows, t.target_rows), ("mismatch", 200, 199), "{summary:?}");
    let d = details[0].diff.as_ref().expect("both rows are reported");
    assert_eq!((d.missing.as_slice(), d.extra.as_slice(), d.deleted), (&["500".to_string()][..], &["3".to_string()][..], 1), "{d:?}");
    assert!(coverage(&details).key_census, "the census ran once the counts differed");
    let gone: i64 = pg.query_one("SELECT count(*) FROM public.items WHERE \"ID\" = 3", &[]).await.unwrap().get(0);
    assert_eq!(gone, 0, "the source delete was propagated");
}
